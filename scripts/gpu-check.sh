#!/usr/bin/env bash
# The device check of a GPU machine (issue #17, docs/gpu.md): one prepared
# run of specs/gpu-smoke.yaml (transformers eager vs torch.compile on
# cuda:0 through the Python harness, NVML energy gated per window, GPU
# attribution in every manifest), its report and manifests written to a
# folder that comes back.
#
#   scripts/gpu-check.sh prepare [--profile dev]
#       Here, with the Rust toolchain: builds assay (release by default),
#       strips it into target/gpu-check/assay (about 26 MB: it must travel,
#       and a device machine has no Rust), and checks the spec with it.
#   scripts/gpu-check.sh device OUT_DIR
#       On the GPU machine (no network, no Rust; PyTorch, transformers,
#       Triton, NVML present), from the repository root with
#       target/gpu-check/assay carried along: records nvidia-smi and the
#       Python environment, runs the spec within GPU_CHECK_TIMEOUT_S
#       (default 480) and copies the report, the run's JSON and every
#       measure manifest into OUT_DIR.
#
# Environment: ASSAY (the binary; default target/gpu-check/assay),
# ASSAY_PYTHON (default: python3 on the PATH, which on a device machine has
# torch with CUDA), GPU_CHECK_SPEC (default specs/gpu-smoke.yaml), and
# GPU_CHECK_CPU_REHEARSAL=1, which lets `device` go on without CUDA: how
# its steps are rehearsed here on a CPU copy of the spec (docs/gpu.md).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
stage="$repo/target/gpu-check"
spec="${GPU_CHECK_SPEC:-$repo/specs/gpu-smoke.yaml}"

die() {
    echo "gpu-check: $*" >&2
    exit 1
}

prepare() {
    local profile=release
    if [ "${1:-}" = "--profile" ]; then profile="${2:?--profile needs a name}"; fi
    command -v cargo >/dev/null || die "prepare needs cargo (it runs here, not on the device)"
    (cd "$repo" && cargo build --profile "$profile" -p assay-engine >&2)
    local dir=$profile
    [ "$profile" = dev ] && dir=debug
    mkdir -p "$stage"
    cp "$repo/target/$dir/assay" "$stage/assay"
    strip "$stage/assay" 2>/dev/null || die "strip failed (binutils)"
    local bytes
    bytes=$(stat -c %s "$stage/assay")
    # The device tool carries at most 64 MiB in all.
    [ "$bytes" -lt $((60 * 1024 * 1024)) ] || die "the binary is $bytes bytes: too large to carry"
    # The spec must load (schema, semantics) with the binary that travels;
    # a missing ASSAY_PYTHON here is expected (the device has its own).
    local out others
    if ! out=$("$stage/assay" check "$spec" 2>&1); then
        # Any error but the missing interpreter fails (counted, not grep -q,
        # whose early exit would be a pipefail error of its own).
        others=$(grep "error:" <<<"$out" | grep -vc "python kind needs a Python interpreter" || true)
        if [ "$others" != 0 ]; then
            echo "$out" >&2
            die "$spec does not check"
        fi
    fi
    echo "gpu-check: $stage/assay ($bytes bytes, profile $profile) and $(basename "$spec") ready"
    echo "gpu-check: on the device: bash scripts/gpu-check.sh device \$OUT (carry target/gpu-check)"
}

device() {
    local out="${1:?device needs OUT_DIR}"
    local assay="${ASSAY:-$stage/assay}"
    [ -x "$assay" ] || die "no assay binary at $assay: run 'scripts/gpu-check.sh prepare' here and carry target/gpu-check"
    mkdir -p "$out"
    local python="${ASSAY_PYTHON:-$(command -v python3 || true)}"
    [ -n "$python" ] || die "no python3 on the PATH and ASSAY_PYTHON is not set"
    export ASSAY_PYTHON="$python"
    # What the machine is, before anything runs: the GPU as the driver
    # sees it, and the Python environment the harness will use.
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi -q >"$out/nvidia-smi.txt" 2>&1 || true
    else
        echo "no nvidia-smi" >"$out/nvidia-smi.txt"
    fi
    "$python" - >"$out/python-env.json" <<'PY' || [ "${GPU_CHECK_CPU_REHEARSAL:-0}" = 1 ] \
        || die "the Python environment has no torch with CUDA (see $out/python-env.json)"
import json, sys
facts = {"python": sys.version.split()[0]}
try:
    import torch, transformers
    facts.update(torch=torch.__version__, transformers=transformers.__version__,
                 cuda=torch.version.cuda, cuda_available=torch.cuda.is_available(),
                 devices=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
    try:
        import triton
        facts["triton"] = triton.__version__
    except ImportError:
        facts["triton"] = None
except Exception as e:  # a missing CUDA library is an OSError, a driver fault a RuntimeError
    facts["error"] = "%s: %s" % (type(e).__name__, e)
print(json.dumps(facts, indent=1))
sys.exit(0 if facts.get("cuda_available") else 1)
PY
    # The store (weights included) stays out of OUT_DIR: only what an
    # auditor reads comes back.
    local work
    work="${GPU_CHECK_WORK:-$(mktemp -d)}"
    mkdir -p "$work"
    cp "$spec" "$work/gpu-smoke.yaml"
    local started=$SECONDS rc=0
    # SIGTERM first (assay stops cleanly, keeping what is stored), then KILL.
    timeout -k 30 "${GPU_CHECK_TIMEOUT_S:-480}" "$assay" run "$work/gpu-smoke.yaml" \
        --store "$work/store" --json --no-progress >"$out/run.json" 2>"$out/run.stderr" || rc=$?
    echo "{\"exit\": $rc, \"seconds\": $((SECONDS - started))}" >"$out/run-status.json"
    mkdir -p "$out/reports" "$out/manifests"
    if [ -d "$work/reports" ]; then cp -r "$work/reports/." "$out/reports/"; fi
    # Every measure node's manifest, by node, from the lockfile: the GPU,
    # the sensor, the compiler evidence.
    "$python" - "$work" "$out/manifests" <<'PY' || echo "gpu-check: manifests not all copied" >&2
import json, os, shutil, sys
work, dest = sys.argv[1], sys.argv[2]
lock = json.load(open(os.path.join(work, "gpu-smoke.yaml.lock")))
for node, rec in sorted(lock.get("nodes", {}).items()):
    digest = rec.get("outputs", {}).get("manifest")
    if node.startswith("measure/") and digest:
        src = os.path.join(work, "store", "objects", digest[:2], digest)
        shutil.copy(src, os.path.join(dest, node[len("measure/"):].replace("/", "__") + ".json"))
PY
    cp "$work/gpu-smoke.yaml.lock" "$out/" 2>/dev/null || true
    echo "gpu-check: exit $rc after $((SECONDS - started)) s; report in $out/reports" >&2
    return "$rc"
}

case "${1:-}" in
prepare) shift; prepare "$@" ;;
device) shift; device "$@" ;;
*)
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
