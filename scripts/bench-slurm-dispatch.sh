#!/usr/bin/env bash
# Dispatch overhead per measure cell through Slurm against running the same
# cells locally (docs/benchmarks.md, "Slurm dispatch"): a simulated spec of
# 200 cells (1 model x 200 scenarios, 1 warmup and 2 timed runs each, no
# derived stage but validate, summarise and the report), run from an empty
# store once with the local executor and once with `--executor slurm`
# (non-exclusive 1-CPU jobs, so the cluster runs as many at once as it has
# CPUs; as many arrays as the cluster's MaxArraySize needs), side by side in one invocation; then, as the floor, a bare job
# array of as many `true` tasks with the same options: what Slurm itself
# costs per task on this cluster, whatever runs in it. Needs a running cluster
# (scripts/start-slurm.sh) and a built assay (ASSAY, default
# target/release/assay, else target/debug/assay).
#
# Prints the wall times, the time per cell, and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
assay="${ASSAY:-}"
if [ -z "$assay" ]; then
    if [ -x target/release/assay ]; then assay=target/release/assay; else assay=target/debug/assay; fi
fi
assay="$(realpath "$assay")"
cells="${CELLS:-200}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

{
    cat <<'EOF'
assay: 1
id: slurm-dispatch
title: Slurm dispatch overhead
question: How much does dispatching a cell through Slurm cost?
decision: Whether to run small cells through Slurm.
boundary: { warmup_runs: 1, repetitions: 2 }
models:
  - { name: tiny, synthetic: { arch: llama, layers: 2, hidden: 64, heads: 4, vocab: 1000, seed: 1 } }
backends:
  - { name: sim, kind: simulated, simulated: { seed: 7 } }
execution: { cpus: 1, exclusive: false }
outputs: { dir: reports/dispatch, formats: [md] }
scenarios:
EOF
    for i in $(seq 1 "$cells"); do
        echo "  - { name: s$i, prompt_tokens: $((4 + i % 16)), batch: 1, gen_tokens: 4 }"
    done
} >"$tmp/spec.yaml"

now() { date +%s.%N; }
run() {
    local store="$1"
    shift
    local start end
    start="$(now)"
    "$assay" run "$tmp/spec.yaml" --store "$store" --json --no-progress "$@" >"$store.json"
    end="$(now)"
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }'
}
calc() { awk "BEGIN { printf \"%.1f\", $1 }"; }

echo "bench-slurm-dispatch: $cells simulated cells, $assay, $(nproc) CPUs, $(sinfo -h -N -o '%N %c CPUs' | head -n 1)"
local_s="$(run "$tmp/local")"
cp "$tmp/reports/dispatch/report.md" "$tmp/local-report.md"
slurm_s="$(run "$tmp/slurm" --executor slurm)"
grep -q '"failed": 0' "$tmp/local.json"
grep -q '"failed": 0' "$tmp/slurm.json"
cmp "$tmp/local-report.md" "$tmp/reports/dispatch/report.md"
echo "local: $local_s s ($(calc "$local_s * 1000 / $cells") ms per cell)"
echo "slurm: $slurm_s s ($(calc "$slurm_s * 1000 / $cells") ms per cell)"
# The bare tasks in arrays of the cluster's MaxArraySize, as assay splits.
max_array="$(scontrol show config | awk -F= '/^MaxArraySize/ { gsub(/ /, "", $2); print $2 }')"
max_array="${max_array:-1001}"
start="$(now)"
ids=()
for ((first = 0; first < cells; first += max_array)); do
    n=$((cells - first < max_array ? cells - first : max_array))
    id="$(sbatch --parsable --job-name=bench-true --array=0-$((n - 1)) --cpus-per-task=1 \
        --output=/dev/null --wrap true)"
    ids+=("${id%%;*}")
done
while squeue -h -j "$(IFS=,; echo "${ids[*]}")" 2>/dev/null | grep -q .; do sleep 0.2; done
end="$(now)"
bare_s="$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')"
echo "bare array of $cells true tasks: $bare_s s ($(calc "$bare_s * 1000 / $cells") ms per task)"
echo "overhead per cell: $(calc "($slurm_s - $local_s) * 1000 / $cells") ms; slurm / local: $(calc "$slurm_s / $local_s")x; slurm / bare array: $(calc "$slurm_s / $bare_s")x"
