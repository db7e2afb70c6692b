"""optimum-benchmark on the CPU for tests/fixtures/imported/optimum-benchmark/
(run by scripts/make-import-fixtures.sh): pytorch backend, inference scenario,
one sequence of 16 prompt tokens and 8 new tokens, 1 warmup and 3 timed calls,
on a local checkpoint folder.

Usage: python optimum-benchmark-fixture.py CHECKPOINT_DIR OUT_DIR
writes OUT_DIR/benchmark.json (configuration and report, what assay reads) and
OUT_DIR/benchmark_report.json (the report alone).

The process launcher, as the CLI's default: the inline one shares the config
object with the scenario, which puts its per-token logits processor into
`generate_kwargs`, and the config then fails to serialise.
"""
import sys

from optimum_benchmark import Benchmark, BenchmarkConfig, InferenceConfig, ProcessConfig, PyTorchConfig


def main(model_dir: str, out_dir: str) -> None:
    config = BenchmarkConfig(
        name="assay-tiny-cpu",
        launcher=ProcessConfig(device_isolation=False),
        scenario=InferenceConfig(
            latency=True,
            memory=True,
            iterations=3,
            duration=0,
            warmup_runs=1,
            input_shapes={"batch_size": 1, "sequence_length": 16},
            generate_kwargs={"max_new_tokens": 8, "min_new_tokens": 8},
        ),
        backend=PyTorchConfig(
            model=model_dir, device="cpu", no_weights=False, torch_dtype="float32", task="text-generation"
        ),
    )
    report = Benchmark.launch(config)
    Benchmark(config=config, report=report).save_json(f"{out_dir}/benchmark.json")
    report.save_json(f"{out_dir}/benchmark_report.json")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
