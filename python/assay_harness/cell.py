"""One cell: load the prepared checkpoint with transformers, optionally
compile it with torch.compile, then warmup and steady runs of prefill, first
token and greedy decode steps with a KV cache, each phase timed on this
process's monotonic clock (`time.perf_counter_ns`), with the device
synchronised before every clock read on a GPU.
"""

import json
import math
import os
import time

from .evidence import Dynamo

DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}


def measure(cell, out):
    import torch
    import transformers

    device = cell["device"]
    threads = int(cell["threads"])
    # Before any op runs: the intra-op pool is fixed at first use.
    torch.set_num_threads(threads)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device %s asked for, but torch sees no CUDA device" % device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.startswith("cuda") else (lambda: None)

    def now():
        sync()
        return time.perf_counter_ns()

    # no_grad rather than inference_mode: inference tensors carry another
    # dispatch key set than ones made outside it, which Dynamo guards on, so
    # a mix of the two recompiles for no reason of the model's.
    dtype = getattr(torch, DTYPES[cell["dtype"]])
    compile_opts = cell.get("compile")
    model_dir = cell["model_dir"]
    check_config(model_dir)

    out.send("progress", message="load")
    t0 = now()
    model = load_model(model_dir, dtype, torch, transformers)
    model.to(device)
    model.eval()
    t1 = now()
    load = [event("load", None, 0, t0, t1)]

    dynamo = None
    prefill_fn = model
    decode_fn = model
    prompts = torch.tensor(cell["prompts"], dtype=torch.long, device=device)
    if compile_opts is not None:
        dynamo = Dynamo(torch, compile_opts)
        compiled = torch.compile(
            model,
            backend=dynamo.backend,
            mode=None if compile_opts["mode"] == "default" else compile_opts["mode"],
            dynamic=compile_opts.get("dynamic"),
        )
        prefill_fn = compiled
        decode_fn = compiled if compile_opts["phases"] == "all" else model
        # torch.compile is lazy: the first call on the cell's shapes traces
        # and compiles. That call (and one decode step where decode is
        # compiled) is the `compile` phase, outside every run, so no run's
        # prefill pays for code generation unless its shapes are new.
        out.send("progress", message="compile")
        t2 = now()
        with torch.no_grad():
            _, cache, picks = prefill(prefill_fn, prompts, transformers)
            if compile_opts["phases"] == "all" and cell["gen_tokens"] > 1:
                nxt = torch.tensor([[p[0] for p in picks]], device=device).T
                decode(decode_fn, nxt, cache, prompts.shape[1])
        t3 = now()
        load.append(event("compile", None, 0, t2, t3))
        dynamo.mark_compiled()

    out.send("loaded", events=load)

    total = cell["warmup_runs"] + cell["repetitions"]
    for rep in range(total):
        out.send("progress", message=("warmup %d/%d" % (rep + 1, cell["warmup_runs"]))
                 if rep < cell["warmup_runs"]
                 else "run %d/%d" % (rep + 1 - cell["warmup_runs"], cell["repetitions"]))
        events, tokens, margins = run(prefill_fn, decode_fn, prompts, cell["gen_tokens"], now, transformers, torch)
        out.send("run", repetition=rep, events=events, tokens=tokens, margins=margins)

    attribution = {
        "device": device,
        "dtype": {v: k for k, v in DTYPES.items()}.get(str(next(model.parameters()).dtype).replace("torch.", ""), str(next(model.parameters()).dtype)),
        "threads": torch.get_num_threads(),
        "library": "transformers",
        "library_version": transformers.__version__,
        "torch_version": torch.__version__,
    }
    out.send("done", attribution=attribution, compiler=dynamo.evidence() if dynamo else None)


def load_model(model_dir, dtype, torch, transformers):
    """`from_pretrained`, as people run it, where it can: transformers reads
    a single safetensors file only if its header carries
    `__metadata__: {"format": "pt"}`, which assay's synthetic checkpoints
    (written by assay, read by candle) do not. Their bytes are the model's
    identity, so they are not rewritten: the model is built from its
    config.json and the tensors loaded by name instead, every tensor
    accounted for (none missing but tied ones, none left over)."""
    from safetensors import safe_open

    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(single):
        with safe_open(single, "pt") as f:
            metadata = f.metadata()
        if not metadata or "format" not in metadata:
            return load_by_name(model_dir, single, dtype, torch, transformers)
    return transformers.AutoModelForCausalLM.from_pretrained(
        model_dir, torch_dtype=dtype, local_files_only=True
    )


def load_by_name(model_dir, path, dtype, torch, transformers):
    from safetensors.torch import load_file

    config = transformers.AutoConfig.from_pretrained(model_dir, local_files_only=True)
    model = transformers.AutoModelForCausalLM.from_config(config, torch_dtype=dtype)
    expected = model.state_dict()
    prefix = model.base_model_prefix
    tensors = {}
    unexpected = []
    for name, tensor in load_file(path).items():
        # GPT-2 checkpoints name the base model's tensors without its prefix.
        for key in (name, "%s.%s" % (prefix, name)):
            if key in expected:
                tensors[key] = tensor
                break
        else:
            unexpected.append(name)
    tied = set(getattr(model, "_tied_weights_keys", None) or []) if getattr(config, "tie_word_embeddings", False) else set()
    missing = sorted(set(expected) - set(tensors) - tied)
    if unexpected or missing:
        raise ValueError(
            "%s does not fit %s: tensors not in the model %s, model tensors not in the file %s"
            % (path, type(model).__name__, unexpected[:10], missing[:10])
        )
    for key, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ValueError("%s: tensor %s has shape %s, the model %s" % (path, key, tuple(tensor.shape), tuple(expected[key].shape)))
    model.load_state_dict(tensors, strict=False)
    model.tie_weights()
    return model


def check_config(model_dir):
    """assay's synthetic GPT-2 may have fewer KV heads than heads (an assay
    extension, `n_head_kv`), which transformers' GPT-2 cannot run: say so
    rather than load mismatched weights."""
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    if config.get("model_type") == "gpt2" and config.get("n_head_kv", config.get("n_head")) != config.get("n_head"):
        raise ValueError(
            "transformers' GPT-2 has no grouped-query attention; this checkpoint has n_head_kv %s of n_head %s"
            % (config.get("n_head_kv"), config.get("n_head"))
        )


def event(phase, token_index, tokens, start, end):
    return {"phase": phase, "token_index": token_index, "tokens": tokens, "start_ns": start, "ns": end - start}


def greedy(logits):
    """Greedy pick per sequence from last-position logits (lowest index wins
    a tie, as assay's `greedy`), with the lead of the top logit over the
    runner-up as the margin output invariance reads."""
    import torch

    row = logits[:, -1, :].float()
    best = torch.argmax(row, dim=-1)  # first maximal index
    top2 = torch.topk(row, 2, dim=-1).values if row.shape[-1] > 1 else None
    picks = []
    for i in range(row.shape[0]):
        margin = float(top2[i, 0] - top2[i, 1]) if top2 is not None else None
        # A NaN or infinite margin (inf - inf, NaN logits) has no JSON
        # spelling: it is sent as null, no margin, as for a vocabulary of one.
        if margin is not None and not math.isfinite(margin):
            margin = None
        picks.append((int(best[i]), margin))
    return picks


def prefill(fn, prompts, transformers):
    cache = transformers.DynamicCache()
    out = fn(input_ids=prompts, past_key_values=cache, use_cache=True)
    return out, out.past_key_values, greedy(out.logits)


def forward_prefill(fn, prompts, transformers):
    cache = transformers.DynamicCache()
    return fn(input_ids=prompts, past_key_values=cache, use_cache=True)


def decode(fn, tokens, cache, position):
    import torch

    pos = torch.full((tokens.shape[0], 1), position, dtype=torch.long, device=tokens.device)
    out = fn(input_ids=tokens, past_key_values=cache, use_cache=True, position_ids=pos)
    return out, out.past_key_values, greedy(out.logits)


def run(prefill_fn, decode_fn, prompts, gen_tokens, now, transformers, torch):
    batch, prompt_len = prompts.shape
    events = []
    tokens = [[] for _ in range(batch)]
    margins = [[] for _ in range(batch)]

    def record(picks):
        for seq, (tok, margin) in enumerate(picks):
            tokens[seq].append(tok)
            margins[seq].append(margin)

    with torch.no_grad():
        start = now()
        out = forward_prefill(prefill_fn, prompts, transformers)
        prefilled = now()
        # As assay's harness: prefill ends with the logits, ttft with the
        # first token picked from them.
        picks = greedy(out.logits)
        cache = out.past_key_values
        first = now()
        events.append(event("prefill", None, prompt_len * batch, start, prefilled))
        events.append(event("ttft", 0, batch, start, first))
        record(picks)
        position = prompt_len
        for index in range(1, gen_tokens):
            step_start = now()
            nxt = torch.tensor([[p[0]] for p in picks], dtype=torch.long, device=prompts.device)
            _, cache, picks = decode(decode_fn, nxt, cache, position)
            step_end = now()
            events.append(event("decode", index, batch, step_start, step_end))
            record(picks)
            position += 1
        end = now()
        events.append(event("e2e", None, len(tokens[0]) * batch, start, end))
    return events, tokens, margins
