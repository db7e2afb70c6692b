#!/usr/bin/env bash
# Builds the Python environment that assay's `python` backend kind runs its
# harness in (python/assay_harness, embedded in the assay binary): torch and
# transformers from PyPI, in a virtual environment cached outside the clone by
# version, so a second run reuses it.
#
# The PyPI linux torch wheel is built against CUDA and does not import without
# its nvidia-* dependency wheels, even on a CPU-only machine (`--no-deps` fails
# with "libcublas.so not found"), and the CPU-only wheels live on
# download.pytorch.org, which is not reachable from here; so the full set is
# installed. See docs/python-harness.md for what a fresh install costs.
#
# Usage: scripts/install-python-harness.sh
#
# Installs under
#   ${ASSAY_NATIVE_DIR:-$HOME/.cache/assay/native}/python-harness-<torch>-<transformers>-py<X.Y>
# an existing, complete install is reused, an absent one is rebuilt. Prints the
# environment to use on stdout:
#   eval "$(scripts/install-python-harness.sh)"
# which sets ASSAY_PYTHON (the environment's interpreter).
set -euo pipefail

# torch 2.5.1 and transformers 4.46.3 both support CPython 3.9-3.12; 4.46 is
# the transformers release line that was tested against torch 2.5.
TORCH_VERSION=2.5.1
TRANSFORMERS_VERSION=4.46.3
NUMPY_VERSION=2.1.3

python="${PYTHON:-python3}"
command -v "$python" >/dev/null || {
    echo "install-python-harness: $python not found (set PYTHON to a CPython 3.9-3.12)" >&2
    exit 1
}
pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
root="${ASSAY_NATIVE_DIR:-$HOME/.cache/assay/native}"
dest="$root/python-harness-$TORCH_VERSION-$TRANSFORMERS_VERSION-py$pyver"
stamp="torch==$TORCH_VERSION transformers==$TRANSFORMERS_VERSION numpy==$NUMPY_VERSION"
if [ "$(cat "$dest/.complete" 2>/dev/null)" != "$stamp" ] || [ ! -x "$dest/bin/python" ]; then
    rm -rf "$dest"
    mkdir -p "$root"
    echo "install-python-harness: installing $stamp into $dest" >&2
    start=$(date +%s)
    "$python" -m venv "$dest" >&2
    # --no-cache-dir: pip's own cache would double the few GB on disk.
    "$dest/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir \
        "torch==$TORCH_VERSION" "transformers==$TRANSFORMERS_VERSION" "numpy==$NUMPY_VERSION" >&2
    # Imports both, as the harness does, so a broken install fails here.
    "$dest/bin/python" -c 'import torch, transformers; print("install-python-harness: torch", torch.__version__, "transformers", transformers.__version__)' >&2
    echo "install-python-harness: $(( $(date +%s) - start )) s, $(du -sh "$dest" | cut -f1)" >&2
    echo "$stamp" >"$dest/.complete"
fi
printf 'export ASSAY_PYTHON=%q\n' "$dest/bin/python"
