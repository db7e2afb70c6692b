#!/usr/bin/env bash
# Installs moto's S3-compatible server (moto[server] from PyPI) for assay's
# remote-cache tests (tests/e2e/remote.rs) and the push/pull bench: a
# Python virtual environment, cached by version, so a second run reuses it.
# moto 5.2.6 honours create-only puts (If-None-Match: *, 412 when the key
# exists) and, with INITIAL_NO_AUTH_ACTION_COUNT=0, refuses unknown
# credentials, which the tests use. About 40 s on a fresh machine.
#
# Usage: scripts/install-s3-server.sh
#
# Installs under ${ASSAY_NATIVE_DIR:-$HOME/.cache/assay/native}/moto-<version>;
# an existing, complete install is reused, an absent one is rebuilt. Prints
# the environment to use on stdout:
#   eval "$(scripts/install-s3-server.sh)"
# which sets ASSAY_S3_SERVER (the moto_server executable).
set -euo pipefail

MOTO_VERSION=5.2.6

command -v python3 >/dev/null || {
    echo "install-s3-server: python3 not found" >&2
    exit 1
}
root="${ASSAY_NATIVE_DIR:-$HOME/.cache/assay/native}"
dest="$root/moto-$MOTO_VERSION"
stamp="$dest/.complete"
if [[ ! -f "$stamp" ]]; then
    rm -rf "$dest"
    mkdir -p "$root"
    echo "install-s3-server: installing moto[server] $MOTO_VERSION into $dest" >&2
    python3 -m venv "$dest" >&2
    "$dest/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
    "$dest/bin/moto_server" --help >/dev/null
    touch "$stamp"
fi
echo "export ASSAY_S3_SERVER=$dest/bin/moto_server"
