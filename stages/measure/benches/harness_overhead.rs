//! Harness overhead: the median decode step measured through assay's
//! harness against the same candle calls timed in a bare loop, side by side
//! in one process, interleaved in blocks so that machine noise hits both.
//!
//!   cargo bench -p assay-measure --bench harness_overhead
//!
//! Environment: ASSAY_BENCH_BLOCKS (default 40), ASSAY_BENCH_STEPS (decode
//! steps per run, default 32). Target: at most 1% difference.

use assay_core::config::{Boundary, Scenario};
use assay_core::stats::{self, median};
use assay_measure::Dtype;
use assay_measure::candle::{CandleBackend, WeightFiles};
use assay_measure::harness::{self, InferenceBackend, MonotonicClock};
use assay_model::decl::{Arch, SyntheticArch};
use assay_model::prepare::synthetic;
use std::time::Instant;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let blocks = env_usize("ASSAY_BENCH_BLOCKS", 40);
    let steps = env_usize("ASSAY_BENCH_STEPS", 32) as u32;
    let arch = SyntheticArch {
        arch: Arch::Llama,
        layers: 4,
        hidden: 256,
        heads: 4,
        kv_heads: Some(2),
        vocab: 16000,
        intermediate: None,
        max_positions: 1024,
        seed: 1,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("model.safetensors");
    std::fs::write(&path, synthetic::safetensors(&arch).expect("weights")).expect("write");
    let info = arch.info("bench");
    let scenario = Scenario {
        name: "s".into(),
        prompt_tokens: 32,
        batch: 1,
        gen_tokens: steps + 1,
        load: None,
    };
    let boundary = Boundary::once();
    let prompts = harness::prompt_ids(&scenario, arch.vocab, 1);
    let capacity = (scenario.prompt_tokens + scenario.gen_tokens) as usize;
    let mut backend = CandleBackend::new(
        info,
        WeightFiles::Safetensors(vec![path]),
        Dtype::F32,
        capacity,
    );
    let clock = MonotonicClock::new();

    // Both sides start from a fresh load, and the order alternates from
    // block to block (ABBA), so neither always runs on a warmer machine.
    // Block 0 of each is untimed: caches, allocator, KV buffers.
    let mut through_harness = Vec::new();
    let mut bare = Vec::new();
    // Per block: median through the harness / median of the bare loop run
    // right beside it. The median of these paired ratios is robust to the
    // machine's load drifting between blocks.
    let mut paired = Vec::new();
    for block in 0..=blocks {
        let mut pair = [0.0f64; 2];
        for side in 0..2 {
            let harness_side = (side + block) % 2 == 0;
            let steps_ns = if harness_side {
                // The harness: measure_cell loads, then owns the clock
                // around each decode step.
                let m = harness::measure_cell(
                    &mut backend,
                    &clock,
                    "bench",
                    &scenario,
                    &boundary,
                    &prompts,
                    |_, _| true,
                )
                .expect("measure")
                .expect("not cancelled");
                m.events
                    .iter()
                    .filter(|e| e.phase == "decode")
                    .map(|e| e.ns as f64)
                    .collect::<Vec<_>>()
            } else {
                // The bare loop: the same calls, timed inline.
                backend.load().expect("load");
                backend.reset();
                backend.prefill(&prompts).expect("prefill");
                let tokens = |picks: Vec<assay_measure::harness::Pick>| {
                    picks.iter().map(|p| p.token).collect::<Vec<u32>>()
                };
                let mut last = tokens(backend.sample().expect("sample"));
                let mut b = Vec::with_capacity(steps as usize);
                for _ in 0..steps {
                    let t = Instant::now();
                    backend.decode_step(&last).expect("decode");
                    last = tokens(backend.sample().expect("sample"));
                    b.push(t.elapsed().as_nanos() as f64);
                }
                b
            };
            if block > 0 {
                pair[usize::from(!harness_side)] = median(&steps_ns);
                if harness_side {
                    through_harness.extend(steps_ns);
                } else {
                    bare.extend(steps_ns);
                }
            }
        }
        if block > 0 {
            paired.push(pair[0] / pair[1]);
        }
    }
    let mh = median(&through_harness) / 1e6;
    let mb = median(&bare) / 1e6;
    println!(
        "harness overhead: llama 4x256 (vocab 16000), f32, {blocks} blocks x {steps} decode steps each way"
    );
    println!("  median decode step through the harness: {mh:.4} ms");
    println!("  median decode step in a bare loop:      {mb:.4} ms");
    println!(
        "  ratio of the pooled medians: {:.4} ({:+.2}%)",
        mh / mb,
        (mh / mb - 1.0) * 100.0
    );
    let sorted = stats::sorted(&paired);
    let q = |p: f64| stats::quantile_sorted(&sorted, p);
    let m = median(&paired);
    println!(
        "  median of {} paired block ratios: {m:.4} ({:+.2}%), interquartile {:.4}..{:.4}",
        sorted.len(),
        (m - 1.0) * 100.0,
        q(0.25),
        q(0.75)
    );
}
