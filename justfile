# Everyday recipes. `cargo install just` if you do not have it; every recipe
# is a plain cargo command you can also run by hand.

# Build everything (debug).
build:
    cargo build --workspace --all-targets

# The whole test suite (the README's test command).
test:
    cargo test --workspace

# What CI runs: fmt, clippy -D warnings, schema freshness, tests, then the
# optional backends with their libraries.
ci:
    bash .ci/run

# Benchmarks (release): cached rerun vs DVC, planning at scale, harness overhead,
# summary statistics and bootstrap at scale vs DuckDB and scipy.
bench:
    cargo bench -p assay-engine
    cargo bench -p assay-measure --bench harness_overhead
    cargo bench -p assay-analysis --bench summarise_scale

# Regenerate the numpy reference logits of the candle models (needs numpy).
reference:
    cargo test -p assay-measure --test reference -- --ignored write_fixture_models
    for m in llama gpt2; do python3 stages/measure/tests/fixtures/reference/reference.py stages/measure/tests/fixtures/reference/$m 5,17,42,99,3,250,7,64 11,23,200,4 > stages/measure/tests/fixtures/reference/$m.logits.json; done

# Regenerate the checked-in JSON Schemas from the Rust types.
schemas:
    cargo run -q -p assay-engine -- schema --write schemas

# Run the quickstart spec and open nothing: the report path is printed.
demo:
    cargo run --release -p assay-engine -- run specs/quickstart.yaml

fmt:
    cargo fmt --all

lint:
    cargo clippy --workspace --all-targets -- -D warnings

# The optional backends: install ONNX Runtime and libtorch from PyPI, then run
# their tests and the backend comparison spec (docs/backends.md).
backends:
    #!/usr/bin/env bash
    set -euo pipefail
    native_env="$(scripts/install-native-libs.sh)"
    eval "$native_env"
    cargo test --workspace --features assay-engine/ort,assay-engine/tch
    cargo run --release -p assay-engine --features ort,tch -- run specs/backends-cpu.yaml

# The research program (docs/programs.md): every TR spec in specs/program/
# and the conclusive report, with the optional backends it needs.
program:
    #!/usr/bin/env bash
    set -euo pipefail
    native_env="$(scripts/install-native-libs.sh)"
    eval "$native_env"
    cargo run --release -p assay-engine --features ort,tch -- run specs/program/program.yaml
