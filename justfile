# Everyday recipes. `cargo install just` if you do not have it; every recipe
# is a plain cargo command you can also run by hand.

# Build everything (debug).
build:
    cargo build --workspace --all-targets

# The whole test suite (the README's test command).
test:
    cargo test --workspace

# What CI runs: fmt, clippy -D warnings, schema freshness, tests.
ci:
    bash .ci/run

# Benchmarks (release): cached rerun vs DVC, planning at scale.
bench:
    cargo bench -p assay-engine

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
