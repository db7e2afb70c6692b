"""`python -m assay_harness`: one cell per process (a cold load is only cold
in a fresh process, and Dynamo's caches and counters are per process)."""

import sys

from .protocol import main

if __name__ == "__main__":
    sys.exit(main())
