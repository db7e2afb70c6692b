#!/usr/bin/env python3
"""The DuckDB / scipy side of the summarise_scale bench (summarise_scale.rs).

    summarise_scale.py summary --events EVENTS.parquet [--results]
    summarise_scale.py bootstrap --samples FILE --cells C --n N --resamples R --seed S [--results]

`summary` computes per cell x phase of the steady (non-warmup) events: n,
mean, median, p90, p95, p99, min, max, sample std and MAD, in DuckDB SQL
straight from the Parquet file, once with `SET threads=1` and once with
DuckDB's default thread count. `bootstrap` computes the 95% percentile
bootstrap interval of the median of each cell's sample (C x N little-endian
f64, row-major) with `scipy.stats.bootstrap`, per cell and in one call over
all cells, and with plain numpy resampling.

Prints one JSON object on stdout: `timings` (seconds, clock started after the
imports and, for the bootstrap, after reading the sample file), `missing`
(modules that could not be imported; their parts are skipped), `info`
(versions, DuckDB's default threads) and, with --results, the results for the
bench to cross-check (`rows` or `ci`).
"""

import argparse
import importlib
import json
import math
import platform
import sys
import time


def try_import(name, missing):
    try:
        return importlib.import_module(name)
    except ImportError:
        missing.append(name.split(".")[0])  # the package to install
        return None


# mean, median, p90, p95, p99, min, max, std, mad: the columns of
# summarise's SummaryRow. median and quantile_cont interpolate linearly
# between closest ranks (type 7), like assay's stats::quantile_sorted;
# mad() is the median of |x - median(x)| with the same interpolation.
# ms = ns / 1e6 in f64, the conversion summarise makes.
SUMMARY_SQL = """
SELECT cell, phase, count(*) AS n, avg(ms) AS mean,
       quantile_cont(ms, [0.5, 0.9, 0.95, 0.99]) AS q,
       min(ms), max(ms), stddev_samp(ms), mad(ms)
FROM (SELECT cell, phase, CAST(ns AS DOUBLE) / 1e6 AS ms
      FROM read_parquet(?) WHERE NOT warmup)
GROUP BY cell, phase
"""


def summary(args, out):
    duckdb = try_import("duckdb", out["missing"])
    if duckdb is None:
        return
    out["info"]["versions"]["duckdb"] = duckdb.__version__
    out["info"]["duckdb_threads_default"] = int(
        duckdb.connect().execute("SELECT current_setting('threads')").fetchone()[0]
    )
    rows = None
    for key, threads in (("duckdb_threads_1", 1), ("duckdb_threads_default", None)):
        con = duckdb.connect()
        if threads is not None:
            con.execute(f"SET threads={threads}")
        start = time.perf_counter()
        rows = con.execute(SUMMARY_SQL, [args.events]).fetchall()
        out["timings"][key] = time.perf_counter() - start
        con.close()
    if args.results:
        out["rows"] = [
            [cell, phase, n, mean, *q, lo, hi, std, mad]
            for (cell, phase, n, mean, q, lo, hi, std, mad) in rows
        ]


def bootstrap(args, out):
    np = try_import("numpy", out["missing"])
    if np is None:
        return
    out["info"]["versions"]["numpy"] = np.__version__
    x = np.fromfile(args.samples, dtype="<f8").reshape(args.cells, args.n)
    results = {}

    scipy_stats = try_import("scipy.stats", out["missing"])
    if scipy_stats is not None:
        import scipy

        out["info"]["versions"]["scipy"] = scipy.__version__
        # scipy 1.15 renamed random_state to rng.
        import inspect

        rng_arg = (
            "rng"
            if "rng" in inspect.signature(scipy_stats.bootstrap).parameters
            else "random_state"
        )

        def scipy_bootstrap(data, rng, **kw):
            return scipy_stats.bootstrap(
                (data,),
                np.median,
                n_resamples=args.resamples,
                method="percentile",
                confidence_level=0.95,
                vectorized=True,
                **{rng_arg: rng},
                **kw,
            ).confidence_interval

        # Like assay: an independent bootstrap of each cell.
        rng = np.random.default_rng(args.seed)
        start = time.perf_counter()
        ci = [scipy_bootstrap(row, rng) for row in x]
        out["timings"]["scipy_per_cell"] = time.perf_counter() - start
        results["scipy_per_cell"] = [[c.low, c.high] for c in ci]

        # scipy's fastest form: all cells at once along axis -1. The same
        # resample indices serve every cell (intervals correlated across
        # cells, each one still a valid bootstrap); batches keep the
        # cells x batch x n array near 80 MB.
        batch = max(1, 10_000_000 // (args.cells * args.n))
        rng = np.random.default_rng(args.seed + 1)
        start = time.perf_counter()
        c = scipy_bootstrap(x, rng, axis=-1, batch=batch)
        out["timings"]["scipy_one_call"] = time.perf_counter() - start
        results["scipy_one_call"] = [[lo, hi] for lo, hi in zip(c.low, c.high)]

    # What scipy does inside, without its checks: draw R x N indices, take
    # the row medians, type-7 quantiles of the R medians.
    rng = np.random.default_rng(args.seed + 2)
    start = time.perf_counter()
    ci = []
    for row in x:
        idx = rng.integers(0, args.n, size=(args.resamples, args.n))
        medians = np.median(row[idx], axis=1)
        ci.append(np.quantile(medians, [0.025, 0.975]))
    out["timings"]["numpy_per_cell"] = time.perf_counter() - start
    results["numpy_per_cell"] = [[lo, hi] for lo, hi in ci]

    if args.results:
        out["ci"] = results


def finite(v):
    """JSON has no NaN: nulls instead (the bench reads them as NaN)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (list, tuple)):
        return [finite(x) for x in v]
    if isinstance(v, dict):
        return {k: finite(x) for k, x in v.items()}
    if hasattr(v, "item"):  # numpy scalar
        return finite(v.item())
    return v


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("summary")
    s.add_argument("--events", required=True)
    s.add_argument("--results", action="store_true")
    b = sub.add_parser("bootstrap")
    b.add_argument("--samples", required=True)
    b.add_argument("--cells", type=int, required=True)
    b.add_argument("--n", type=int, required=True)
    b.add_argument("--resamples", type=int, required=True)
    b.add_argument("--seed", type=int, required=True)
    b.add_argument("--results", action="store_true")
    args = p.parse_args()

    out = {
        "timings": {},
        "missing": [],
        "info": {"versions": {"python": platform.python_version()}},
    }
    if args.mode == "summary":
        summary(args, out)
    else:
        bootstrap(args, out)
    json.dump(finite(out), sys.stdout, allow_nan=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
