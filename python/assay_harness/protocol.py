"""The harness's side of the JSON-lines protocol (docs/python-harness.md).

stdout carries protocol lines only: everything else a library prints is sent
to stderr, which assay keeps the tail of for a failure's message.
"""

import json
import os
import platform
import sys
import traceback

from . import PROTOCOL, VERSION


class Channel:
    """Protocol lines out on the real stdout; `print` and library chatter go
    to stderr, so no stray text can corrupt the stream."""

    def __init__(self):
        self._out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
        # Anything written to fd 1 from now on (C libraries included) lands
        # on stderr.
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def send(self, kind, **fields):
        fields["type"] = kind
        self._out.write(json.dumps(fields, separators=(",", ":"), allow_nan=False) + "\n")
        self._out.flush()


def read_request(expected):
    line = sys.stdin.readline()
    if not line:
        raise ProtocolError("stdin closed before the %s request" % expected)
    try:
        msg = json.loads(line)
    except ValueError as e:
        raise ProtocolError("the %s request is not JSON: %s" % (expected, e))
    if not isinstance(msg, dict) or msg.get("type") != expected:
        raise ProtocolError("expected a %r request, got %r" % (expected, line[:200]))
    if msg.get("protocol") != PROTOCOL:
        raise ProtocolError(
            "assay speaks protocol %r, this harness %d" % (msg.get("protocol"), PROTOCOL)
        )
    return msg


class ProtocolError(Exception):
    pass


def main():
    out = Channel()
    # The handshake comes before torch is imported (seconds), so assay can
    # tell a wrong harness from a slow one at once.
    out.send(
        "hello",
        protocol=PROTOCOL,
        harness="assay_harness",
        harness_version=VERSION,
        python=platform.python_version(),
    )
    try:
        cell = read_request("cell")
        from .cell import measure

        measure(cell, out)
    except Exception as e:  # every failure is reported, then a nonzero exit
        out.send(
            "error",
            message="%s: %s" % (type(e).__name__, e),
            traceback=traceback.format_exc()[-4000:],
        )
        return 1
    return 0
