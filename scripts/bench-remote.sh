#!/usr/bin/env bash
# Bench of the remote cache (docs/benchmarks.md, "Remote cache"): a store
# of 1,000 simulated measure cells pushed to moto's S3 server on
# 127.0.0.1, and the time to a verified report on a fresh machine (an empty
# store with only the spec and its lockfile: `assay verify --remote`, then
# `assay run`), side by side with `aws s3 sync` of the same store folder up
# and down (the AWS CLI from PyPI, in its own cached virtual environment).
#
# Usage: scripts/bench-remote.sh [ASSAY_BINARY]   (default: target/release/assay)
# Needs python3 (moto and the AWS CLI come from PyPI). Prints a table.
set -euo pipefail

assay="$(realpath "${1:-target/release/assay}")"
eval "$(bash "$(dirname "$0")/install-s3-server.sh")"
root="${ASSAY_NATIVE_DIR:-$HOME/.cache/assay/native}"
cli="$root/awscli-1"
if [[ ! -x "$cli/bin/aws" ]]; then
    python3 -m venv "$cli" >&2
    "$cli/bin/pip" install --quiet --disable-pip-version-check awscli >&2
fi
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$ASSAY_S3_SERVER" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
server=$!
until curl -s -o /dev/null "http://127.0.0.1:$port"; do sleep 0.1; done
curl -s -X PUT "http://127.0.0.1:$port/bench" >/dev/null
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
endpoint="http://127.0.0.1:$port"
remote=(--remote-url s3://bench/assay --remote-endpoint "$endpoint")

# 4 models x 250 swept scenarios on the simulated backend: 1,000 cells.
mkdir -p "$work/a" "$work/b"
cat >"$work/a/spec.yaml" <<'SPEC'
assay: 1
id: remote-bench
title: remote cache bench
question: How fast does a 1,000-cell store move through the remote cache?
decision: none (a bench)
boundary: { warmup_runs: 1, repetitions: 3 }
sweeps:
  - { prompt_tokens: [8, 16, 32, 64, 128, 192, 256, 384, 512, 768], batch: [1, 2, 4, 8, 16], gen_tokens: [8, 16, 32, 64, 128] }
models:
  - { name: m1, synthetic: { arch: llama, layers: 2, hidden: 64, heads: 4, vocab: 1000, seed: 1 } }
  - { name: m2, synthetic: { arch: llama, layers: 4, hidden: 128, heads: 4, vocab: 1000, seed: 1 } }
  - { name: m3, synthetic: { arch: llama, layers: 6, hidden: 256, heads: 8, vocab: 1000, seed: 1 } }
  - { name: m4, synthetic: { arch: llama, layers: 8, hidden: 512, heads: 8, vocab: 1000, seed: 1 } }
backends:
  - { name: sim, kind: simulated, simulated: { seed: 7, noise_cv: 0.05 } }
outputs: { dir: reports, formats: [md, json] }
SPEC
t() { local s=$SECONDS; "$@" >/dev/null 2>&1; echo $((SECONDS - s)); }
ms() { local s; s=$(date +%s%N); "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }; echo $((($(date +%s%N) - s) / 1000000)); }
cd "$work/a"
run_ms=$(ms "$assay" run spec.yaml --no-progress)
nodes=$(python3 -c 'import json; print(len(json.load(open("spec.yaml.lock"))["nodes"]))')
objects=$(find .assay/objects -type f | wc -l)
bytes=$(du -sb .assay/objects | cut -f1)
push_ms=$(ms "$assay" push spec.yaml "${remote[@]}")
cp spec.yaml spec.yaml.lock "$work/b/"
cd "$work/b"
verify_ms=$(ms "$assay" verify spec.yaml "${remote[@]}")
rerun_ms=$(ms "$assay" run spec.yaml --no-progress)
cmp -s "$work/a/reports/report.md" "$work/b/reports/report.md" || { echo "reports differ" >&2; exit 1; }
rm -rf "$work/b/.assay"
pull_ms=$(ms "$assay" pull spec.yaml "${remote[@]}")
# The same store folder through the AWS CLI.
cd "$work/a"
sync_up_ms=$(ms "$cli/bin/aws" --endpoint-url "$endpoint" s3 sync .assay s3://bench/sync --only-show-errors)
sync_down_ms=$(ms "$cli/bin/aws" --endpoint-url "$endpoint" s3 sync s3://bench/sync "$work/c" --only-show-errors)
mb=$(python3 -c "print(round($bytes/1e6, 1))")
printf '| step | ms | note |\n| --- | --- | --- |\n'
printf '| run from an empty store | %s | %s nodes, %s objects, %s MB |\n' "$run_ms" "$nodes" "$objects" "$mb"
printf '| assay push | %s | %s MB/s |\n' "$push_ms" "$(python3 -c "print(round($bytes/1e6/($push_ms/1e3), 1))")"
printf '| aws s3 sync up (same folder) | %s | %.2fx assay push |\n' "$sync_up_ms" "$(python3 -c "print($sync_up_ms/$push_ms)")"
printf '| assay pull (everything, fresh store) | %s | %s MB/s |\n' "$pull_ms" "$(python3 -c "print(round($bytes/1e6/($pull_ms/1e3), 1))")"
printf '| aws s3 sync down (same folder) | %s | %.2fx assay pull |\n' "$sync_down_ms" "$(python3 -c "print($sync_down_ms/$pull_ms)")"
printf '| fresh machine: verify --remote | %s | measurements pulled, derived nodes recomputed and compared |\n' "$verify_ms"
printf '| fresh machine: then run | %s | all cached; report byte-identical to the first machine'"'"'s |\n' "$rerun_ms"
