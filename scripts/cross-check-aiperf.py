#!/usr/bin/env python3
"""The table of scripts/cross-check-aiperf.sh, from both tools' raw outputs.

Reads, per profile (c1, c2) and repeat, assay's requests table
(assay-<p>-<r>.jsonl, `assay show --json` of the measure node's `requests`),
AIPerf's profile_export.jsonl (aiperf-<p>-<r>.jsonl) and the server's log
lines written during that client's run (server-<client>-<p>-<r>.log), and
prints a markdown report on stdout.

Usage: cross-check-aiperf.py WORK REPEATS PROMPT_TOKENS GEN SERVER_VERSION PROFILE PIN WARMUP
"""
import json
import re
import statistics as st
import sys

work, repeats, target, gen = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
server_version, build, pin, warmup = sys.argv[5], sys.argv[6], sys.argv[7], int(sys.argv[8])
PROFILES = {"c1": "one request at a time", "c2": "closed loop of 2"}


def med(xs):
    return st.median(xs) if xs else float("nan")


def assay_run(path):
    rows = [json.loads(line) for line in open(path)]
    rows = [r for r in rows if r["window"] == "steady" and r["status"] == "ok"]
    ttft = [r["ttft_ns"] / 1e6 for r in rows]
    gaps = [g / 1e6 for r in rows for g in r["itl_ns"]]
    tpot = [(r["e2e_ns"] - r["ttft_ns"]) / 1e6 / (r["completion_tokens"] - 1) for r in rows]
    return {
        "n": len(rows),
        "ttft": ttft,
        "gaps": gaps,
        "tpot": tpot,
        "prompt": [r["prompt_tokens"] for r in rows],
        "completion": [r["completion_tokens"] for r in rows],
        "chunks": [r["chunks"] for r in rows],
        "connect": [],
        "cached": [],
        "residual": [(r["ttft_ns"] / 1e6 - r["server_prompt_ms"]) for r in rows if r.get("server_prompt_ms") is not None],
        # the client's decode time over the server's own (llama.cpp's
        # timings.predicted_ms), per request
        "decode_vs_server": [(r["e2e_ns"] - r["ttft_ns"]) / 1e6 / r["server_decode_ms"]
                             for r in rows if r.get("server_decode_ms")],
    }


def aiperf_run(path):
    every = sorted((json.loads(line) for line in open(path)), key=lambda r: r["metadata"]["request_end_ns"])
    recs = [r for r in every if r["metadata"].get("benchmark_phase") == "profiling" and not r.get("error")]
    m = [r["metrics"] for r in recs]

    def v(x, k):
        return x[k]["value"]

    return {
        "n": len(m),
        "ttft": [v(x, "time_to_first_token") for x in m],
        "gaps": [g for x in m for g in v(x, "inter_chunk_latency")],
        "tpot": [v(x, "inter_token_latency") for x in m],
        "prompt": [v(x, "usage_prompt_tokens") for x in m],
        "completion": [v(x, "usage_completion_tokens") for x in m],
        "chunks": [len(v(x, "inter_chunk_latency")) + 1 for x in m],
        "connect": [v(x, "http_req_connecting") for x in m if "http_req_connecting" in x],
        "reused": [v(x, "http_req_connection_reused") for x in m if "http_req_connection_reused" in x],
        "cached": [v(x, "usage_prompt_cache_read_tokens") for x in m if "usage_prompt_cache_read_tokens" in x],
        "window": (min(r["metadata"]["request_start_ns"] for r in recs),
                   max(r["metadata"]["request_end_ns"] for r in recs)),
        # every request in the order the server finished it, to pair with
        # its log; True for a measured one.
        "finished": [(r["metadata"].get("benchmark_phase") == "profiling" and not r.get("error"),
                      r["metrics"]["time_to_first_token"]["value"],
                      r["metrics"]["request_latency"]["value"] - r["metrics"]["time_to_first_token"]["value"])
                     for r in every],
    }


def cpu_share(window):
    """Busy and steal shares of core 0 and core 1 within `window` (epoch
    ns), from the sampler's /proc/stat readings."""
    try:
        rows = [list(map(int, line.split())) for line in open(f"{work}/cpu.txt")]
    except OSError:
        return None
    inside = [r for r in rows if window[0] <= r[0] <= window[1]]
    if len(inside) < 2:
        return None
    a, b = inside[0], inside[-1]
    total0, total1 = b[3] - a[3], b[6] - a[6]
    if total0 <= 0 or total1 <= 0:
        return None
    return ((b[1] - a[1]) / total0, (b[2] - a[2]) / total0, (b[4] - a[4]) / total1, (b[5] - a[5]) / total1)


def server_log_all(path, what="prompt eval"):
    try:
        text = open(path).read()
    except OSError:
        return []
    return [float(t) for t in re.findall(what + r" time =\s*([\d.]+) ms /\s*\d+ tokens", text)]


def server_log(path):
    """Per request, in the order the server finished them, less the first
    `warmup` (the client's warmup requests): llama-server's own prompt time
    (ms) and the prompt tokens it evaluated (`prompt eval time = T ms / N
    tokens`; N equals the prompt when no cached prefix was reused)."""
    try:
        text = open(path).read()
    except OSError:
        return [], []
    found = re.findall(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens", text)[warmup:]
    return [float(t) for t, _ in found], [int(n) for _, n in found]


runs = {}
for p in PROFILES:
    for c in ("assay", "AIPerf"):
        for r in range(1, repeats + 1):
            f = f"{work}/{'assay' if c == 'assay' else 'aiperf'}-{p}-{r}.jsonl"
            d = assay_run(f) if c == "assay" else aiperf_run(f)
            slog = f"{work}/server-{'assay' if c == 'assay' else 'aiperf'}-{p}-{r}.log"
            d["server_prompt"], d["evaluated"] = server_log(slog)
            if c == "AIPerf":
                # Pair each request with the server's log line of the same
                # request: both in the order the server finished them.
                times = server_log_all(slog)
                d["residual"] = ([t - s for (keep, t, _), s in zip(d["finished"], times) if keep]
                                 if len(times) == len(d["finished"]) else [])
                evals = server_log_all(slog, r"\|\s+eval")
                d["decode_vs_server"] = ([dec / e for (keep, _, dec), e in zip(d["finished"], evals) if keep]
                                         if len(evals) == len(d["finished"]) else [])
            else:
                try:
                    w = [int(x) for x in open(f"{work}/window-assay-{p}-{r}.txt").read().split()]
                    d["window"] = (w[0], w[1])
                except (OSError, IndexError, ValueError):
                    d["window"] = None
            d["cpu"] = cpu_share(d["window"]) if d.get("window") else None
            runs[(p, c, r)] = d


def per_repeat(p, c, key, fn=med):
    return [fn(runs[(p, c, r)][key]) for r in range(1, repeats + 1)]


def rng(xs, digits=2):
    return f"{min(xs):.{digits}f}-{max(xs):.{digits}f}" if xs else "n/a"


def mm(xs):
    return f"{min(xs)}-{max(xs)}" if xs else "n/a"


out = []
out.append(f"llama-server {server_version.replace('version: ', '')}; assay {build} build; "
           f"server pinned to core 0 and clients to core 1: {'yes' if pin == '1' else 'no'}; "
           f"{repeats} interleaved repeats per client and profile; prompt {target} tokens "
           f"(the server's count), {gen} generated tokens.")
out.append("")
out.append("Per repeat: the median over its measured requests (TTFT), and over every gap between "
           "successive text chunks of its measured requests, pooled (ITL). Figures: the median over "
           "repeats, and the spread (min-max) of the per-repeat medians, ms.")
out.append("")
out.append("| profile | client | requests/repeat | TTFT median | TTFT spread | server's prompt time (its log) "
           "| TTFT - the server's prompt time of the same request | spread | ITL median | ITL spread "
           "| per-request (e2e-TTFT)/(n-1) median | spread |")
out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for p, name in PROFILES.items():
    for c in ("assay", "AIPerf"):
        t, g, tp = per_repeat(p, c, "ttft"), per_repeat(p, c, "gaps"), per_repeat(p, c, "tpot")
        sp = per_repeat(p, c, "server_prompt")
        cp = per_repeat(p, c, "residual")
        n = [runs[(p, c, r)]["n"] for r in range(1, repeats + 1)]
        out.append(f"| {name} | {c} | {mm(n)} | {med(t):.2f} | {rng(t)} | {med(sp):.2f} | {med(cp):.2f} | {rng(cp)} "
                   f"| {med(g):.3f} | {rng(g)} | {med(tp):.3f} | {rng(tp)} |")
out.append("")
out.append("assay / AIPerf: of the medians over repeats, and the range of the paired per-repeat ratios "
           "(repeat i of assay over repeat i of AIPerf, run next to each other).")
out.append("")
out.append("| profile | TTFT ratio | paired range | ITL ratio | paired range | per-request ITL ratio | paired range |")
out.append("| --- | --- | --- | --- | --- | --- | --- |")
for p, name in PROFILES.items():
    cells = []
    for key in ("ttft", "gaps", "tpot"):
        a, b = per_repeat(p, "assay", key), per_repeat(p, "AIPerf", key)
        pr = [x / y for x, y in zip(a, b)]
        cells.append(f"{med(a) / med(b):.3f} | {min(pr):.3f}-{max(pr):.3f}")
    out.append(f"| {name} | " + " | ".join(cells) + " |")
out.append("")
out.append("Each client's decode time (e2e - TTFT) over the server's own generation time of the same "
           "request (llama.cpp's `eval time`, its log; assay: the same figure from its requests table), "
           "median over a repeat's requests; median and spread over repeats:")
out.append("")
out.append("| profile | assay | spread | AIPerf | spread |")
out.append("| --- | --- | --- | --- | --- |")
for p, name in PROFILES.items():
    a, b = per_repeat(p, "assay", "decode_vs_server"), per_repeat(p, "AIPerf", "decode_vs_server")
    out.append(f"| {name} | {med(a):.4f} | {rng(a, 4)} | {med(b):.4f} | {rng(b, 4)} |")
out.append("")
out.append("What each request was, by the server's counts (min-max over all measured requests of all repeats):")
out.append("")
out.append("| profile | client | prompt tokens | prompt tokens the server evaluated (its log) "
           "| prompt tokens read from cache (AIPerf: usage) | completion tokens | text chunks "
           "| connect ms (AIPerf: http_req_connecting, median) | connection reused |")
out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for p, name in PROFILES.items():
    for c in ("assay", "AIPerf"):
        allr = [runs[(p, c, r)] for r in range(1, repeats + 1)]
        cat = lambda k: [x for d in allr for x in d.get(k, [])]  # noqa: E731
        conn = cat("connect")
        reused = cat("reused")
        out.append(f"| {name} | {c} | {mm(cat('prompt'))} | {mm(cat('evaluated'))} "
                   f"| {mm(cat('cached')) if c == 'AIPerf' else 'n/a'} | {mm(cat('completion'))} "
                   f"| {mm(cat('chunks'))} | {f'{med(conn):.3f}' if conn else 'n/a'} "
                   f"| {mm(reused) if reused else 'n/a'} |")
out.append("")
out.append("Per repeat (ms: medians of TTFT, the server's prompt time, ITL; each core's busy share "
           "(user, system, irq) and the hypervisor's steal, from /proc/stat):")
out.append("")
out.append("| profile | repeat | assay TTFT | AIPerf TTFT | server's prompt time, assay's run | AIPerf's run "
           "| assay ITL | AIPerf ITL | cores 0 / 1 busy, assay's run (the whole `assay run`) "
           "| AIPerf's run (first request to last) |")
out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for p, name in PROFILES.items():
    for r in range(1, repeats + 1):
        a, b = runs[(p, "assay", r)], runs[(p, "AIPerf", r)]
        def share(d):
            x = d.get("cpu")
            return f"{x[0]:.0%} / {x[2]:.0%} (steal {x[1]:.0%} / {x[3]:.0%})" if x else "n/a"
        out.append(f"| {name} | {r} | {med(a['ttft']):.2f} | {med(b['ttft']):.2f} "
                   f"| {med(a['server_prompt']):.2f} | {med(b['server_prompt']):.2f} "
                   f"| {med(a['gaps']):.3f} | {med(b['gaps']):.3f} | {share(a)} | {share(b)} |")
try:
    sens = [line.split() for line in open(f"{work}/sensitivity.txt")]
    out.append("")
    out.append("The server's own times with the clients' core idle and with one busy loop pinned to it "
               "(requests one at a time, medians, ms):")
    out.append("")
    out.append("| clients' core | prompt time | decode ms/token | requests |")
    out.append("| --- | --- | --- | --- |")
    for busy, pm, dm, n in sens:
        out.append(f"| {'one busy loop' if busy == '1' else 'idle'} | {float(pm):.2f} | {float(dm):.3f} | {n} |")
except OSError:
    pass
print("\n".join(out))
