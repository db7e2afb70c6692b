#!/usr/bin/env bash
# Client cross-check (docs/benchmarks.md, "Client cross-check against
# AIPerf"): assay and AIPerf measure the same llama-server, side by side in
# one run, under the same load profiles (one request at a time, and a closed
# loop of 2), with the same server-side prompt length and generation
# length; the medians of TTFT and inter-token latency are compared.
#
# - The model is assay's own: a synthetic llama (8 layers x 512, vocabulary
#   16,000), prepared and exported to a q8_0 GGUF by `assay run` of a
#   throwaway spec; its tokenizer.json serves AIPerf in the Hugging Face
#   cache layout AIPerf loads offline (as scripts/make-import-fixtures.sh).
# - One llama-server, 1 thread, 2 slots (--parallel 2), on 127.0.0.1,
#   pinned to core 0; both clients pinned to core 1 (taskset), so neither
#   client's processes take the server's core.
# - assay sends its text prompts (`server.prompt: text`), each with a first
#   word of its own (a per-run nonce). AIPerf sends prompts from an input
#   file written fresh for every repeat: the same kind of words, a random
#   first word, each prompt's length checked with llama-server's /tokenize
#   to equal the server's count of assay's prompts. How many prompt tokens
#   the server evaluated (the rest came from its cache) is read back from
#   its log for both clients (and AIPerf's usage_prompt_cache_read_tokens)
#   and printed.
# - One connection per request on both sides (assay always; AIPerf with
#   --connection-reuse-strategy never).
# - Repeats interleaved A/B, the order alternating (ABBA...), per profile.
#
# The figures are computed from both tools' raw per-request outputs
# (assay's `requests` table via `assay show --json`; AIPerf's
# profile_export.jsonl), with one definition for both:
#   TTFT: the median over a repeat's measured requests;
#   ITL:  the median of every gap between successive chunks carrying text,
#         pooled over a repeat's measured requests (llama-server sends one
#         token per chunk);
#   also AIPerf's own `inter_token_latency` per request, (e2e - TTFT) /
#   (output tokens - 1), and the same formula on assay's rows.
# Beside them, from llama-server's log (its own clock), per request: its
# prompt time, subtracted from the client's TTFT (what the client and the
# HTTP exchange add), and its generation time, against the client's
# e2e - TTFT. The server's prompt time moves with what runs on the other
# core (step 6 measures it), so raw TTFT medians compare the server's
# speed during each client's runs as much as the clients' clocks.
# The table gives the median over repeats of each per-repeat median, the
# spread (min-max) over repeats, and assay/AIPerf of the medians.
#
# Usage: scripts/cross-check-aiperf.sh [OUT_DIR]   (default target/cross-check)
# Environment: XC_REPEATS (3), XC_REQUESTS (steady requests per run, 24),
# XC_WARMUP (2), XC_PROMPT_WORDS (assay's prompt_tokens, 16), XC_GEN (64),
# XC_PROFILE (debug | release: the assay build, debug), XC_PIN (1: pin the
# server to core 0 and clients to core 1; 0: no pinning).
# Needs: cargo, llama.cpp (scripts/install-llama-cpp.sh), AIPerf in
# ${ASSAY_IMPORT_TOOLS:-/var/cache/assay/import-tools} (installed from PyPI
# when absent), python3, curl, taskset.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$repo/target/cross-check}" && cd "${1:-$repo/target/cross-check}" && pwd)"
tools="${ASSAY_IMPORT_TOOLS:-/var/cache/assay/import-tools}"
repeats="${XC_REPEATS:-3}"
requests="${XC_REQUESTS:-24}"
warmup="${XC_WARMUP:-2}"
words="${XC_PROMPT_WORDS:-16}"
gen="${XC_GEN:-64}"
profile="${XC_PROFILE:-debug}"
pin="${XC_PIN:-1}"
work="$out/work"
rm -rf "$work"
mkdir -p "$work"
server_pid=""
sampler_pid=""
cleanup() {
    if [ -n "$sampler_pid" ]; then kill "$sampler_pid" 2>/dev/null || true; fi
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
log() { echo "cross-check: $*" >&2; }

eval "$(bash "$repo/scripts/install-llama-cpp.sh")"
if [ ! -x "$tools/bin/aiperf" ]; then
    python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet aiperf >&2
fi
if [ "$pin" = 1 ] && [ "$(nproc)" -ge 2 ]; then
    server_cpu=(taskset -c 0)
    client_cpu=(taskset -c 1)
else
    server_cpu=()
    client_cpu=()
fi

# 1. assay, and the model's q8_0 GGUF and tokenizer from it.
if [ "$profile" = release ]; then
    (cd "$repo" && cargo build -q --release -p assay-engine)
    assay="$repo/target/release/assay"
else
    (cd "$repo" && cargo build -q -p assay-engine)
    assay="$repo/target/debug/assay"
fi
store="$work/store"
model_yaml='{ name: llama-8x512, synthetic: { arch: llama, layers: 8, hidden: 512, heads: 8, kv_heads: 4, vocab: 16000, max_positions: 1024, seed: 1 } }'
cat > "$work/export.yaml" <<SPEC
assay: 1
id: xcheck-model
title: The GGUF the cross-check serves
question: none
decision: none
boundary: { warmup_runs: 0, repetitions: 1 }
scenarios:
  - { name: s, prompt_tokens: 8, batch: 1, gen_tokens: 4 }
models:
  - $model_yaml
backends:
  - { name: candle-q8, kind: candle, dtype: q8_0, threads: 1 }
outputs: { dir: report-export }
SPEC
"$assay" run --no-progress --store "$store" "$work/export.yaml" >"$work/export.log" 2>&1 \
    || { cat "$work/export.log" >&2; exit 1; }
gguf=""
tokenizer=""
while IFS= read -r f; do
    if [ "$(head -c 4 "$f" | tr -d '\0')" = "GGUF" ]; then gguf="$f"; fi
    if head -c 200 "$f" | grep -q '"added_tokens"'; then tokenizer="$f"; fi
done < <(find "$store" -type f)
[ -n "$gguf" ] && [ -n "$tokenizer" ] || { log "no GGUF or tokenizer in the store"; exit 1; }
cp "$gguf" "$work/model-q8_0.gguf"
hub="$work/hf/hub/models--assay--llama-8x512"
rev="$(sha256sum "$tokenizer" | cut -c1-40)"
mkdir -p "$hub/snapshots/$rev" "$hub/refs"
printf '%s' "$rev" > "$hub/refs/main"
cp "$tokenizer" "$hub/snapshots/$rev/tokenizer.json"
echo '{"tokenizer_class": "PreTrainedTokenizerFast"}' > "$hub/snapshots/$rev/tokenizer_config.json"

# 2. llama-server: 1 thread, 2 slots, pinned.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
"${server_cpu[@]}" "$ASSAY_LLAMA_SERVER" -m "$work/model-q8_0.gguf" --host 127.0.0.1 --port "$port" \
    -t 1 -tb 1 --parallel 2 -c 2048 --alias llama-8x512 --no-webui >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 300); do
    curl -sf "$url/health" >/dev/null && break
    sleep 0.2
done
curl -sf "$url/health" >/dev/null || { tail -20 "$work/server.log" >&2; exit 1; }
"$ASSAY_LLAMA_SERVER" --version 2>&1 | grep -m1 version > "$work/server-version.txt" || true

# 3. assay's specs, one per profile, against the running server.
for prof in c1 c2; do
    conc=${prof#c}
    cat > "$work/$prof.yaml" <<SPEC
assay: 1
id: xcheck-$prof
title: Client cross-check against AIPerf, concurrency $conc
question: Do assay and AIPerf time llama-server alike?
decision: none (a cross-check)
boundary: { warmup_runs: 0, repetitions: 1 }
scenarios:
  - name: $prof
    prompt_tokens: $words
    batch: 1
    gen_tokens: $gen
    load: { arrival: closed, concurrency: $conc, requests: $requests, warmup_requests: $warmup }
models:
  - $model_yaml
backends:
  - name: llama-server
    kind: openai
    dtype: q8_0
    threads: 1
    server: { url: "$url", prompt: text }
outputs: { dir: report-$prof }
SPEC
done

# 4. The server's token count of assay's prompts: one assay run whose
# requests table holds the server's prompt_tokens (a warm-up of the
# server, not measured).
"${client_cpu[@]}" "$assay" run --no-progress --remeasure --json --store "$store" "$work/c1.yaml" \
    >"$work/probe.json" 2>"$work/probe.log" || { cat "$work/probe.log" >&2; exit 1; }
assay_rows() { # $1: run --json file; prints the requests table as JSON lines
    local digest
    digest=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print([n for n in r["nodes"] if n["node"].startswith("measure/")][0]["outputs"]["requests"])' "$1")
    "$assay" show --json --store "$store" "$digest" 2>/dev/null
}
assay_rows "$work/probe.json" > "$work/probe.jsonl"
target=$(python3 -c '
import json,sys,statistics
n=[json.loads(l)["prompt_tokens"] for l in open(sys.argv[1])]
print(int(statistics.median(n)))' "$work/probe.jsonl")
log "assay's text prompt of $words words is $target tokens in the server's count (median); AIPerf's prompts are made to match"

# 5. AIPerf's prompts: fresh for every repeat and profile, each with a
# random first word, its length checked with the server's /tokenize.
python3 - "$url" "$work" "$target" "$words" "$repeats" $((requests + warmup + 2)) <<'PY'
import json, random, sys, urllib.request
url, work, target, nwords, repeats, per_run = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
# assay's word list (stages/measure/src/server/cell.rs), in its order.
WORDS = ["the", "time", "people", "way", "day", "man", "thing", "woman", "life", "child", "world",
    "school", "state", "family", "group", "country", "problem", "hand", "part", "place", "case",
    "week", "company", "system", "program", "question", "work", "number", "night", "point", "home",
    "water"]
def count(text):
    req = urllib.request.Request(url + "/tokenize", data=json.dumps({"content": text, "add_special": True}).encode(),
                                 headers={"Content-Type": "application/json"})
    return len(json.load(urllib.request.urlopen(req))["tokens"])
rng = random.SystemRandom()
seen = set()
for prof in ("c1", "c2"):
    for rep in range(1, repeats + 1):
        with open(f"{work}/aiperf-prompts-{prof}-{rep}.jsonl", "w") as f:
            made = tries = 0
            while made < per_run:
                tries += 1
                if tries > 50 * per_run:
                    sys.exit(f"cannot make prompts of {target} tokens (the server's count)")
                body = [WORDS[(i * 7 + 1) % len(WORDS)] for i in range(nwords)]
                n = nwords
                first = "r%016x" % rng.getrandbits(64)
                text = " ".join([first] + body[1:])
                c = count(text)
                # trim or pad words until the server counts `target`.
                while c > target and n > 2:
                    n -= 1; body = body[:n]; text = " ".join([first] + body[1:]); c = count(text)
                while c < target:
                    body.append(WORDS[(len(body) * 7 + 1) % len(WORDS)]); text = " ".join([first] + body[1:]); c = count(text)
                if c != target or first in seen:
                    continue
                seen.add(first)
                f.write(json.dumps({"text": text}) + "\n")
                made += 1
PY

# 6. How the server's own prompt time depends on the other core: requests
# sent one at a time (stream off; llama.cpp's timings) with core 1 idle and
# with one busy loop pinned to it, twice each, alternating.
python3 - "$url" "$gen" "$(head -1 "$work/aiperf-prompts-c1-1.jsonl")" "${client_cpu[*]:-}" > "$work/sensitivity.txt" <<'PY'
import json, random, statistics, subprocess, sys, time, urllib.request
url, gen, text, pin = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])["text"], sys.argv[4]
words = text.split(" ")[1:]
def go():
    d = dict(model="llama-8x512", prompt=" ".join(["r%016x" % random.getrandbits(64)] + words),
             max_tokens=gen, ignore_eos=True, temperature=0)
    req = urllib.request.Request(url + "/v1/completions", data=json.dumps(d).encode(),
                                 headers={"Content-Type": "application/json"})
    t = json.load(urllib.request.urlopen(req))["timings"]
    return t["prompt_ms"], t["predicted_ms"] / t["predicted_n"]
res = {0: [], 1: []}
for _ in range(2):
    for busy in (0, 1):
        loop = subprocess.Popen((pin.split() if pin else []) + ["sh", "-c", "while :; do :; done"]) if busy else None
        time.sleep(0.3)
        res[busy] += [go() for _ in range(5)]
        if loop:
            loop.kill(); loop.wait()
for busy, rs in res.items():
    print(f"{busy} {statistics.median(r[0] for r in rs):.2f} {statistics.median(r[1] for r in rs):.4f} {len(rs)}")
PY

# 7. Interleaved repeats.
export HF_HOME="$work/hf" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
run_assay() { # profile repeat
    local l0
    l0=$(wc -l < "$work/server.log")
    date +%s%N > "$work/window-assay-$1-$2.txt"
    "${client_cpu[@]}" "$assay" run --no-progress --remeasure --json --store "$store" "$work/$1.yaml" \
        >"$work/assay-$1-$2.json" 2>"$work/assay-$1-$2.log" || { cat "$work/assay-$1-$2.log" >&2; exit 1; }
    date +%s%N >> "$work/window-assay-$1-$2.txt"
    tail -n +$((l0 + 1)) "$work/server.log" > "$work/server-assay-$1-$2.log"
    assay_rows "$work/assay-$1-$2.json" > "$work/assay-$1-$2.jsonl"
}
run_aiperf() { # profile repeat
    local conc=${1#c} l0
    l0=$(wc -l < "$work/server.log")
    "${client_cpu[@]}" "$tools/bin/aiperf" profile --model llama-8x512 --tokenizer assay/llama-8x512 \
        --url "$url" --endpoint-type completions --streaming \
        --input-file "$work/aiperf-prompts-$1-$2.jsonl" --custom-dataset-type single_turn \
        --dataset-sampling-strategy sequential \
        --output-tokens-mean "$gen" --output-tokens-stddev 0 --extra-inputs ignore_eos:true \
        --extra-inputs temperature:0 --use-server-token-count \
        --connection-reuse-strategy never \
        --concurrency "$conc" --request-count "$requests" --warmup-request-count "$warmup" \
        --no-server-metrics --no-gpu-telemetry --ui-type none \
        --artifact-dir "$work/aiperf-$1-$2" >"$work/aiperf-$1-$2.log" 2>&1 \
        || { tail -40 "$work/aiperf-$1-$2.log" >&2; exit 1; }
    tail -n +$((l0 + 1)) "$work/server.log" > "$work/server-aiperf-$1-$2.log"
    cp "$(find "$work/aiperf-$1-$2" -name profile_export.jsonl | head -1)" "$work/aiperf-$1-$2.jsonl"
}
# Both cores' busy and steal time (/proc/stat), sampled every 0.2 s through the repeats (the
# table gives each core's busy share while each client's requests ran).
python3 - "$work/cpu.txt" <<'PY' &
import sys, time
with open(sys.argv[1], "w") as f:
    while True:
        cpus = [l.split() for l in open("/proc/stat") if l.startswith(("cpu0 ", "cpu1 "))]
        f.write(" ".join([str(time.time_ns())] + [f"{sum(map(int, c[1:4])) + sum(map(int, c[6:8]))} {c[8]} {sum(map(int, c[1:9]))}" for c in cpus]) + "\n")
        f.flush()
        time.sleep(0.2)
PY
sampler_pid=$!
: > "$work/load.txt"
start=$SECONDS
for rep in $(seq 1 "$repeats"); do
    for prof in c1 c2; do
        echo "$prof repeat $rep: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$work/load.txt"
        if [ $((rep % 2)) = 1 ]; then
            log "$prof repeat $rep: assay, then AIPerf"; run_assay "$prof" "$rep"; run_aiperf "$prof" "$rep"
        else
            log "$prof repeat $rep: AIPerf, then assay"; run_aiperf "$prof" "$rep"; run_assay "$prof" "$rep"
        fi
    done
done
kill "$sampler_pid" 2>/dev/null || true
log "measured in $((SECONDS - start)) s"

# 8. The table, from both raw outputs.
python3 "$repo/scripts/cross-check-aiperf.py" "$work" "$repeats" "$target" "$gen" \
    "$(cat "$work/server-version.txt")" "$profile" "$pin" "$warmup" | tee "$out/cross-check.md"
cp "$work/load.txt" "$out/load.txt"
log "wrote $out/cross-check.md"
