#!/usr/bin/env bash
# Installs the native libraries of assay's optional in-process backends from
# PyPI wheels, so that nothing comes from a vendor CDN:
#
#   onnxruntime  ONNX Runtime's shared library, from the `onnxruntime` wheel
#                (onnxruntime/capi/libonnxruntime.so.*), for the `ort` feature
#                (ort loads it at run time: `load-dynamic`).
#   libtorch     libtorch's CPU parts, from the `torch` wheel, for the `tch`
#                feature (linked at build time). The wheel is a CUDA build: its
#                CPU library needs only the small CUDA runtime and CUPTI
#                libraries beside it, which come from their own wheels. The
#                CUDA kernels (libtorch_cuda.so, 470 MB) are left out.
#
# Usage: scripts/install-native-libs.sh [onnxruntime] [libtorch]   (both by default)
#
# Installs under ${ASSAY_NATIVE_DIR:-$HOME/.cache/assay/native}/<lib>-<version>,
# keyed by version; an existing, complete install is reused. Prints the
# environment to use on stdout: eval "$(scripts/install-native-libs.sh)".
set -euo pipefail

# Versions pinned to the crates: ort 2.0.0-rc.13 speaks ONNX Runtime 1.28's
# API (it loads 1.24 or newer); tch 0.26 is built against PyTorch 2.13.0, whose CUDA 13.0.3 toolkit
# pins the runtime and CUPTI versions below.
ORT_VERSION=1.28.0
TORCH_VERSION=2.13.0
CUDART_VERSION=13.0.96
CUPTI_VERSION=13.0.85

root="${ASSAY_NATIVE_DIR:-$HOME/.cache/assay/native}"
mkdir -p "$root"
# Downloads of an interrupted earlier run (a torch wheel is 530 MB).
rm -rf "$root"/.download.*
what=("$@")
[ ${#what[@]} -eq 0 ] && what=(onnxruntime libtorch)

download() { # package==version -> path of the wheel
    local dir
    dir="$(mktemp -d "$root/.download.XXXXXX")"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$dir" "$1" >&2
    ls "$dir"/*.whl
}

unpack() { # wheel dest members... : extract members (globs) of a wheel
    local wheel="$1" dest="$2"
    shift 2
    python3 - "$wheel" "$dest" "$@" <<'EOF'
import fnmatch, os, shutil, sys, zipfile
wheel, dest, patterns = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        for pattern in patterns:
            src, _, target = pattern.partition("=>")
            if fnmatch.fnmatch(name, src) and not name.endswith("/"):
                # "prefix/*=>dir": strip the pattern's directory, keep the rest.
                base = src.rsplit("/", 1)[0] + "/" if "/" in src else ""
                rel = name[len(base):] if name.startswith(base) else os.path.basename(name)
                out = os.path.join(dest, target, rel)
                os.makedirs(os.path.dirname(out), exist_ok=True)
                with z.open(name) as r, open(out, "wb") as w:
                    shutil.copyfileobj(r, w)
                break
EOF
}

# An install is reused only when it was completed by this script with the
# same pinned versions (.complete holds them) and its files are all there.
complete() { # dir stamp files...
    local dir="$1" stamp="$2"
    shift 2
    [ "$(cat "$dir/.complete" 2>/dev/null)" = "$stamp" ] || return 1
    for f in "$@"; do [ -f "$dir/lib/$f" ] || return 1; done
}

finish() { # dir stamp files...: fail unless every file was extracted
    local dir="$1" stamp="$2"
    shift 2
    for f in "$@"; do
        [ -f "$dir/lib/$f" ] || { echo "install-native-libs: $dir/lib/$f missing after extraction" >&2; exit 1; }
    done
    echo "$stamp" >"$dir/.complete"
}

install_onnxruntime() {
    local dir="$root/onnxruntime-$ORT_VERSION"
    local files=("libonnxruntime.so.$ORT_VERSION")
    if complete "$dir" "onnxruntime $ORT_VERSION" "${files[@]}"; then
        echo "onnxruntime $ORT_VERSION: already installed in $dir" >&2
    else
        echo "onnxruntime $ORT_VERSION: downloading the PyPI wheel" >&2
        rm -rf "$dir" && mkdir -p "$dir/lib"
        local wheel
        wheel="$(download "onnxruntime==$ORT_VERSION")"
        unpack "$wheel" "$dir" "onnxruntime/capi/libonnxruntime.so.*=>lib"
        rm -rf "$(dirname "$wheel")"
        (cd "$dir/lib" && ln -sf "libonnxruntime.so.$ORT_VERSION" libonnxruntime.so)
        finish "$dir" "onnxruntime $ORT_VERSION" "${files[@]}"
    fi
    printf 'export ORT_DYLIB_PATH=%q\n' "$dir/lib/libonnxruntime.so.$ORT_VERSION"
}

install_libtorch() {
    local dir="$root/libtorch-$TORCH_VERSION-cpu"
    local stamp="torch $TORCH_VERSION cudart $CUDART_VERSION cupti $CUPTI_VERSION"
    local files=(libtorch_cpu.so libc10.so libgomp.so.1 libcudart.so.13 libcupti.so.13 libtorch.so)
    if complete "$dir" "$stamp" "${files[@]}"; then
        echo "libtorch $TORCH_VERSION: already installed in $dir" >&2
    else
        echo "libtorch $TORCH_VERSION: downloading the PyPI wheels (about 540 MB)" >&2
        rm -rf "$dir" && mkdir -p "$dir/lib"
        local wheel
        wheel="$(download "torch==$TORCH_VERSION")"
        unpack "$wheel" "$dir" \
            "torch/include/*=>include" \
            "torch/lib/libtorch_cpu.so=>lib" \
            "torch/lib/libc10.so=>lib" \
            "torch/lib/libgomp.so.1=>lib"
        rm -rf "$(dirname "$wheel")"
        wheel="$(download "nvidia-cuda-runtime==$CUDART_VERSION")"
        unpack "$wheel" "$dir" "nvidia/cu13/lib/libcudart.so.13=>lib"
        rm -rf "$(dirname "$wheel")"
        wheel="$(download "nvidia-cuda-cupti==$CUPTI_VERSION")"
        unpack "$wheel" "$dir" "nvidia/cu13/lib/libcupti.so.13=>lib"
        rm -rf "$(dirname "$wheel")"
        # tch links -ltorch -ltorch_cpu -lc10 -lgomp. The wheel's libtorch.so
        # only pulls in libtorch_cpu.so and libtorch_cuda.so, so the CPU
        # layout gets an empty libtorch.so in its place (as the CPU-only
        # libtorch zip ships one with nothing but libtorch_cpu behind it).
        echo '' | gcc -x c -shared -o "$dir/lib/libtorch.so" -Wl,--no-as-needed \
            -L"$dir/lib" -ltorch_cpu -
        (cd "$dir/lib" && ln -sf libgomp.so.1 libgomp.so)
        echo "$TORCH_VERSION" >"$dir/build-version"
        finish "$dir" "$stamp" "${files[@]}"
    fi
    printf 'export LIBTORCH=%q\n' "$dir"
    echo "export LIBTORCH_CXX11_ABI=1"
    printf 'export LD_LIBRARY_PATH=%q${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\n' "$dir/lib"
}

for lib in "${what[@]}"; do
    case "$lib" in
    onnxruntime) install_onnxruntime ;;
    libtorch) install_libtorch ;;
    *)
        echo "unknown library: $lib (onnxruntime, libtorch)" >&2
        exit 2
        ;;
    esac
done
