#!/usr/bin/env bash
# Regenerates the real peer-tool outputs under tests/fixtures/imported/ that
# the `imported` backend kind's tests read (docs/importers.md):
#   llama-bench.json, llama-bench.jsonl   llama-bench -o json / -o jsonl
#   aiperf/profile_export.jsonl,
#   aiperf/profile_export_aiperf.json     AIPerf against a launched llama-server
#   guidellm-benchmarks.json              GuideLLM against the same llama-server
#   optimum-benchmark/benchmark.json,
#   optimum-benchmark/benchmark_report.json
#                                         optimum-benchmark in process on the CPU
# vllm-bench-serve.json is written by hand to vLLM's format (vLLM needs a
# GPU); this script does not touch it.
#
# The model is assay's own: a small synthetic llama, prepared and exported to
# a q8_0 GGUF by `assay run` of a throwaway spec (its tokenizer.json serves
# AIPerf, in the Hugging Face cache layout AIPerf loads offline, and
# GuideLLM, as a local tokenizer folder; its safetensors checkpoint serves
# optimum-benchmark's pytorch backend).
#
# Needs: cargo, cmake/g++ (llama.cpp, via scripts/install-llama-cpp.sh),
# python3 with venv. AIPerf and GuideLLM install from PyPI into
# ${ASSAY_IMPORT_TOOLS:-/var/cache/assay/import-tools}; optimum-benchmark into
# ${ASSAY_OPTIMUM_BENCH:-/var/cache/assay/optimum-bench}, a venv that sees the
# Python harness's torch and transformers (scripts/install-python-harness.sh)
# through a .pth file, so torch is not installed twice. Both are reused when
# present.
#
# Usage: scripts/make-import-fixtures.sh
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$repo/tests/fixtures/imported"
tools="${ASSAY_IMPORT_TOOLS:-/var/cache/assay/import-tools}"
optimum="${ASSAY_OPTIMUM_BENCH:-/var/cache/assay/optimum-bench}"
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
# GuideLLM's report format changes between releases: the version assay's
# reader was written against (docs/importers.md).
if [ ! -x "$tools/bin/guidellm" ]; then
    [ -x "$tools/bin/pip" ] || python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet guidellm==0.8.1 >&2
fi
# optimum-benchmark 0.6.0 on the harness's torch 2.5.1 / transformers 4.46.3:
# accelerate is held at 1.10.1, the last release that takes torch 2.5
# (later ones pull torch >= 2.6, several GB of CUDA wheels) and has the
# `compile_regions` optimum-benchmark imports.
eval "$(bash "$repo/scripts/install-python-harness.sh")"
if [ ! -x "$optimum/bin/optimum-benchmark" ]; then
    python3 -m venv "$optimum"
    harness_site="$("$ASSAY_PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    own_site="$("$optimum/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    echo "$harness_site" > "$own_site/assay-harness.pth"
    "$optimum/bin/pip" install --quiet optimum-benchmark==0.6.0 accelerate==1.10.1 \
        torch==2.5.1 transformers==4.46.3 >&2
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

# 4. GuideLLM against the same llama-server: synchronous (one request at a
# time), 6 requests, 8 output tokens. GuideLLM's synthetic prompts are words
# of a real corpus, which the synthetic tokenizer maps to <unk> (empty text),
# so the prompts come from a JSON-lines file instead: 12 lowercase letters,
# which llama-server counts as 16 prompt tokens (BOS, the 3-byte word
# boundary, one token per letter).
python3 - "$work/prompts.jsonl" <<'PY'
import json, string, sys
with open(sys.argv[1], "w") as f:
    for i in range(6):
        letters = "".join(string.ascii_lowercase[(7 * i + 3 * k) % 26] for k in range(12))
        f.write(json.dumps({"prompt": letters, "prompt_tokens_count": 16, "output_tokens_count": 8}) + "\n")
PY
mkdir -p "$work/tokenizer"
cp "$tokenizer" "$work/tokenizer/tokenizer.json"
echo '{"tokenizer_class": "PreTrainedTokenizerFast"}' > "$work/tokenizer/tokenizer_config.json"
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
    "$tools/bin/guidellm" run \
    --backend "kind=openai_http,target=http://127.0.0.1:$port,model=assay/tiny,request_format=/v1/completions" \
    --profile kind=synchronous --constraint kind=max_requests,count=6 \
    --tokenizer "kind=huggingface_auto,model=$work/tokenizer" \
    --data "kind=json_file,path=$work/prompts.jsonl" \
    --output "kind=json,path=$work/guidellm.json" --disable-console-interactive >&2
cp "$work/guidellm.json" "$out/guidellm-benchmarks.json"
kill "$server_pid" 2>/dev/null || true
server_pid=""

# 5. optimum-benchmark: pytorch backend on the CPU, inference scenario, batch
# 1, 16 prompt tokens, 8 new tokens, 3 timed calls, on the checkpoint of the
# same model in a folder named assay-tiny (config.json, safetensors,
# tokenizer). transformers refuses safetensors without the `format: pt`
# metadata assay's export leaves out, so the weights are rewritten with it.
ckpt="$work/assay-tiny"
mkdir -p "$ckpt"
cp "$tokenizer" "$ckpt/tokenizer.json"
cp "$work/tokenizer/tokenizer_config.json" "$ckpt/tokenizer_config.json"
"$ASSAY_PYTHON" - "$work/store" "$ckpt" <<'PY'
import json, os, struct, sys
from safetensors.torch import load_file, save_file
store, ckpt = sys.argv[1], sys.argv[2]
for root, _, files in os.walk(store):
    for name in files:
        path = os.path.join(root, name)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                continue
            # A safetensors file: a little-endian header length, then a
            # JSON header.
            n = struct.unpack("<Q", head)[0]
            if 0 < n < 10_000_000 and f.read(2) == b'{"':
                save_file(load_file(path), os.path.join(ckpt, "model.safetensors"), metadata={"format": "pt"})
                continue
        try:
            with open(path) as f:
                cfg = json.load(f)
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(cfg, dict) and "num_hidden_layers" in cfg:
            with open(os.path.join(ckpt, "config.json"), "w") as f:
                json.dump(cfg, f, indent=2)
for need in ("config.json", "model.safetensors"):
    if not os.path.exists(os.path.join(ckpt, need)):
        sys.exit(f"make-import-fixtures: no {need} in the store")
PY
mkdir -p "$work/optimum" "$out/optimum-benchmark"
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    "$optimum/bin/python" "$repo/scripts/optimum-benchmark-fixture.py" "$ckpt" "$work/optimum" >&2
cp "$work/optimum/benchmark.json" "$work/optimum/benchmark_report.json" "$out/optimum-benchmark/"
echo "make-import-fixtures: wrote $out" >&2
