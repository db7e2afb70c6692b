//! Helpers shared by the bench targets.

/// A size knob from the environment, e.g. `ASSAY_BENCH_CELLS`.
pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a positive integer")),
        Err(_) => default,
    }
}
