#!/usr/bin/env bash
# Regenerates the real peer-tool outputs under tests/fixtures/imported/ that
# the `imported` backend kind's tests read (docs/importers.md):
#   llama-bench.json, llama-bench.jsonl   llama-bench -o json / -o jsonl
#   aiperf/profile_export.jsonl,
#   aiperf/profile_export_aiperf.json     AIPerf against a launched llama-server
# vllm-bench-serve.json is written by hand to vLLM's format (vLLM needs a
# GPU); this script does not touch it.
#
# The model is assay's own: a small synthetic llama, prepared and exported to
# a q8_0 GGUF by `assay run` of a throwaway spec (its tokenizer.json serves
# AIPerf, in the Hugging Face cache layout AIPerf loads offline).
#
# Needs: cargo, cmake/g++ (llama.cpp, via scripts/install-llama-cpp.sh),
# python3 with venv. AIPerf installs from PyPI into
# ${ASSAY_IMPORT_TOOLS:-/var/cache/assay/import-tools} (reused when present).
#
# Usage: scripts/make-import-fixtures.sh
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$repo/tests/fixtures/imported"
tools="${ASSAY_IMPORT_TOOLS:-/var/cache/assay/import-tools}"
work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

eval "$(bash "$repo/scripts/install-llama-cpp.sh")"
if [ ! -x "$tools/bin/aiperf" ]; then
    python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet aiperf >&2
fi

# 1. A q8_0 GGUF and a tokenizer from assay.
(cd "$repo" && cargo build -q -p assay-engine)
assay="$repo/target/debug/assay"
cat > "$work/export.yaml" <<'SPEC'
assay: 1
id: import-fixture-model
title: A GGUF for the importer fixtures
question: none
decision: none
boundary: { warmup_runs: 0, repetitions: 1 }
scenarios:
  - { name: s, prompt_tokens: 8, batch: 1, gen_tokens: 4 }
models:
  - { name: tiny, synthetic: { arch: llama, layers: 2, hidden: 128, heads: 4, kv_heads: 2, vocab: 16000, max_positions: 512, seed: 1 } }
backends:
  - { name: candle-q8, kind: candle, dtype: q8_0, threads: 1 }
outputs: { dir: report }
SPEC
"$assay" run --store "$work/store" "$work/export.yaml" >&2
# Objects are content-addressed: the GGUF is the one that starts with its
# magic, the tokenizer the JSON object with a `model` and `added_tokens`.
gguf=""
tokenizer=""
while IFS= read -r f; do
    if [ "$(head -c 4 "$f")" = "GGUF" ]; then gguf="$f"; fi
    if head -c 200 "$f" | grep -q '"added_tokens"'; then tokenizer="$f"; fi
done < <(find "$work/store" -type f)
[ -n "$gguf" ] || { echo "make-import-fixtures: no GGUF in the store" >&2; exit 1; }
[ -n "$tokenizer" ] || { echo "make-import-fixtures: no tokenizer.json in the store" >&2; exit 1; }
cp "$gguf" "$work/tiny-q8_0.gguf"

# 2. llama-bench: prompt 16 and generation 8, 3 repetitions, 1 thread.
cd "$work"
"$ASSAY_LLAMA_BENCH" -m tiny-q8_0.gguf -p 16 -n 8 -r 3 -t 1 -o json > "$out/llama-bench.json"
"$ASSAY_LLAMA_BENCH" -m tiny-q8_0.gguf -p 16 -n 8 -r 3 -t 1 -o jsonl > "$out/llama-bench.jsonl"

# 3. AIPerf against llama-server: one request at a time, 6 requests of a
# 16-token prompt and 8 generated tokens. The tokenizer in the HF cache
# layout (hub/models--ORG--NAME/snapshots/REV with refs/main).
# The snapshot's name must be a commit hash (huggingface_hub resolves
# refs/main to it and refuses anything else offline): the tokenizer's own
# digest, truncated to 40 hex digits.
hub="$work/hf/hub/models--assay--tiny"
rev="$(sha256sum "$tokenizer" | cut -c1-40)"
mkdir -p "$hub/snapshots/$rev" "$hub/refs"
printf '%s' "$rev" > "$hub/refs/main"
cp "$tokenizer" "$hub/snapshots/$rev/tokenizer.json"
echo '{"tokenizer_class": "PreTrainedTokenizerFast"}' > "$hub/snapshots/$rev/tokenizer_config.json"
port=18431
"$ASSAY_LLAMA_SERVER" -m tiny-q8_0.gguf --host 127.0.0.1 --port "$port" -t 1 -c 512 \
    --alias assay/tiny >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 0.2
done
HF_HOME="$work/hf" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    "$tools/bin/aiperf" profile --model assay/tiny --tokenizer assay/tiny \
    --url "http://127.0.0.1:$port" --endpoint-type completions --streaming \
    --synthetic-input-tokens-mean 16 --synthetic-input-tokens-stddev 0 \
    --output-tokens-mean 8 --output-tokens-stddev 0 --extra-inputs ignore_eos:true \
    --concurrency 1 --request-count 6 --warmup-request-count 1 \
    --artifact-dir "$work/aiperf" >&2
mkdir -p "$out/aiperf"
jsonl="$(find "$work/aiperf" -name profile_export.jsonl | head -1)"
cp "$jsonl" "$out/aiperf/profile_export.jsonl"
cp "$(dirname "$jsonl")/profile_export_aiperf.json" "$out/aiperf/profile_export_aiperf.json"
echo "make-import-fixtures: wrote $out" >&2
