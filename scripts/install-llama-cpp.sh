#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` and `llama-bench` for assay's server tests
# and reference measurements, from the llama.cpp source that the PyPI
# `llama-cpp-python` source distribution bundles (vendor/llama.cpp), so that
# nothing comes from GitHub or a model hub.
#
# Needs cmake, a C++17 compiler and make (Debian: cmake g++ make). Configured
# without network features (no libcurl, no OpenSSL), without the web UI (no
# prebuilt download) and without examples or tests; only the two tools are
# built. About 20 minutes on 2 cores.
#
# Usage: scripts/install-llama-cpp.sh
#
# Installs under ${ASSAY_NATIVE_DIR:-$HOME/.cache/assay/native}/llama-cpp-<version>-<cpu>,
# keyed by the sdist version and a digest of this CPU's flags (the build is
# -march=native); an existing, complete install is reused, an absent one is
# rebuilt. Prints the environment to use on stdout:
#   eval "$(scripts/install-llama-cpp.sh)"
# which sets ASSAY_LLAMA_SERVER and ASSAY_LLAMA_BENCH.
set -euo pipefail

# llama-cpp-python 0.3.36 bundles llama.cpp 0c1e570 (b8xxx series).
LLAMA_CPP_PYTHON_VERSION=0.3.36

for tool in cmake c++ make python3; do
    command -v "$tool" >/dev/null || {
        echo "install-llama-cpp: $tool not found (Debian: apt-get install cmake g++ make)" >&2
        exit 1
    }
done

root="${ASSAY_NATIVE_DIR:-$HOME/.cache/assay/native}"
# The configuration is part of the stamp: a change to it rebuilds.
cmake_args=(-DCMAKE_BUILD_TYPE=Release
    -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_APP=OFF
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON)
# x86 lists `flags`, ARM `Features`; a machine with neither gets one key.
cpu="$( (grep -m1 -E '^(flags|Features)' /proc/cpuinfo || echo generic) | python3 -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.read().encode()).hexdigest()[:8])')"
dest="$root/llama-cpp-$LLAMA_CPP_PYTHON_VERSION-$cpu"
stamp="llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION ${cmake_args[*]}"

if [ "$(cat "$dest/.complete" 2>/dev/null)" != "$stamp" ] \
    || [ ! -x "$dest/bin/llama-server" ] || [ ! -x "$dest/bin/llama-bench" ]; then
    mkdir -p "$root"
    rm -rf "$dest"
    work="$(mktemp -d "$root/.llama-build.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    # pip prepares the sdist's metadata (fetching scikit-build-core into an
    # isolated environment) but builds nothing.
    python3 -m pip download --quiet --no-deps --no-binary=llama-cpp-python \
        -d "$work" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" >&2
    tar -xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
    src="$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)"
    [ -f "$src/CMakeLists.txt" ] || { echo "install-llama-cpp: no vendor/llama.cpp in the sdist" >&2; exit 1; }
    cmake -S "$src" -B "$work/build" "${cmake_args[@]}" >&2
    cmake --build "$work/build" --target llama-server llama-bench -j "$(nproc)" >&2
    mkdir -p "$dest/bin"
    cp "$work/build/bin/llama-server" "$work/build/bin/llama-bench" "$dest/bin/"
    "$dest/bin/llama-server" --version >"$dest/VERSION" 2>&1 || true
    rm -rf "$work"
    echo "$stamp" >"$dest/.complete"
fi

printf 'export ASSAY_LLAMA_SERVER=%q\n' "$dest/bin/llama-server"
printf 'export ASSAY_LLAMA_BENCH=%q\n' "$dest/bin/llama-bench"
