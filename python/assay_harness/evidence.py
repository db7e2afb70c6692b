"""Compiler-real evidence (AI.1, AR.4): what torch.compile actually did.

The requested backend is wrapped in a counting backend, so every graph
Dynamo hands a compiler is seen (its FX node count and operators) and the
backend that compiled it is the one recorded, not the one asked for. Dynamo's
own counters (frames, graph breaks with their reasons, unique graphs) and its
recompile and cache-limit log records complete the picture. A compile that
produced no graph, or whose backend failed and fell back to running the
captured graph as Python, is not compiler-real: assay reports that as
attribution drift.
"""

import logging


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.recompiles = []
        self.limit_hits = []

    def emit(self, record):
        try:
            msg = record.getMessage()
        except Exception:  # a record that cannot format is not evidence
            return
        if "cache_size_limit" in msg or "recompile_limit" in msg or "accumulated_cache_size_limit" in msg:
            self.limit_hits.append(first_lines(msg, 3))
        elif record.name.endswith("__recompiles") or record.name.endswith("__recompiles_verbose"):
            self.recompiles.append(first_lines(msg, 4))


def first_lines(text, n):
    return "\n".join(text.strip().splitlines()[:n])


class Dynamo:
    def __init__(self, torch, opts):
        import torch._dynamo

        self.torch = torch
        self.requested = opts["backend"]
        self.mode = opts["mode"]
        self.dynamic = opts.get("dynamic")
        self.phases = opts["phases"]
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        if self.requested == "inductor":
            # What torch.compile builds for backend="inductor": the mode
            # becomes Inductor config patches.
            inner = torch._TorchCompileInductorWrapper(
                None if self.mode == "default" else self.mode, None, self.dynamic
            )
        else:
            inner = torch._dynamo.lookup_backend(self.requested)
        self.graphs = []  # (nodes, {op: count}) per compiled graph
        self.backend_ran = set()
        self.failures = []
        self.compile_graphs = None

        def backend(gm, example_inputs):
            ops = {}
            nodes = 0
            for node in gm.graph.nodes:
                if node.op in ("call_function", "call_method", "call_module"):
                    nodes += 1
                    name = getattr(node.target, "__name__", None) or str(node.target)
                    ops[name] = ops.get(name, 0) + 1
            self.graphs.append((nodes, ops))
            try:
                compiled = inner(gm, example_inputs)
            except Exception as e:
                # What torch._dynamo.config.suppress_errors would do, made
                # visible: the captured graph runs uncompiled.
                self.failures.append("%s: %s" % (type(e).__name__, first_lines(str(e), 2)))
                self.backend_ran.add("eager-fallback")
                return gm.forward
            self.backend_ran.add(self.requested)
            return compiled

        self.backend = backend
        self.records = _Records()
        torch._logging.set_logs(recompiles=True)
        # Records of torch._dynamo's child loggers propagate here: one
        # handler sees each once.
        logging.getLogger("torch._dynamo").addHandler(self.records)

    def mark_compiled(self):
        """The graphs the compile phase produced; later ones are recompiles
        or new frames inside the runs."""
        self.compile_graphs = len(self.graphs)

    def evidence(self):
        counters = self.torch._dynamo.utils.counters
        frames = counters.get("frames", {})
        stats = counters.get("stats", {})
        breaks = dict(counters.get("graph_break", {}))
        unimplemented = dict(counters.get("unimplemented", {}))
        # The same hit is both logged and counted as "unimplemented" by
        # some torch versions, by only one of the two by others.
        limit_hits = max(
            len(self.records.limit_hits),
            sum(v for k, v in unimplemented.items() if "cache_size_limit" in k or "recompile_limit" in k),
        )
        ops = {}
        for _, g in self.graphs:
            for k, v in g.items():
                ops[k] = ops.get(k, 0) + v
        ran = sorted(self.backend_ran) or ["none"]
        compiled = len(self.graphs) > 0 and ran == [self.requested]
        detail = {
            "backend_requested": self.requested,
            "backend_ran": ",".join(ran),
            "mode": self.mode,
            "dynamic": "auto" if self.dynamic is None else str(bool(self.dynamic)).lower(),
            "phases": self.phases,
            "torch": self.torch.__version__,
            "frames_total": str(frames.get("total", 0)),
            "frames_compiled": str(frames.get("ok", 0)),
            "graphs_compiled": str(len(self.graphs)),
            "graphs_at_compile": str(self.compile_graphs if self.compile_graphs is not None else 0),
            "unique_graphs": str(stats.get("unique_graphs", 0)),
            "graph_breaks": str(sum(breaks.values())),
            "recompiles": str(len(self.records.recompiles)),
            "recompile_limit_hits": str(limit_hits),
        }
        if breaks:
            detail["graph_break_reasons"] = "\n".join(
                "%d x %s" % (n, first_lines(r, 2)) for r, n in sorted(breaks.items(), key=lambda kv: -kv[1])[:20]
            )
        if self.records.recompiles:
            detail["recompile_reasons"] = "\n---\n".join(self.records.recompiles[:20])
        if self.records.limit_hits:
            detail["recompile_limit_messages"] = "\n---\n".join(self.records.limit_hits[:5])
        if self.failures:
            detail["backend_failures"] = "\n".join(self.failures[:5])
        return {
            "kind": "torch.compile",
            "mode": "%s:%s" % (self.requested, self.mode),
            "nodes_before": sum(n for n, _ in self.graphs),
            "nodes_after": None,
            "ops_before": ops,
            "ops_after": {},
            "detail": detail,
            "real": compiled,
        }
