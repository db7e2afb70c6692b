//! Harness overhead: the median decode step measured through assay's
//! harness against the same candle calls timed in a bare loop, side by side
//! in one process, interleaved in blocks so that machine noise hits both.
//!
//!   cargo bench -p assay-stages --bench harness_overhead
//!
//! Environment: ASSAY_BENCH_BLOCKS (default 10), ASSAY_BENCH_STEPS (decode
//! steps per run, default 64). Target: at most 1% difference.

use assay_stages::measure::Dtype;
use assay_stages::measure::candle::{CandleBackend, WeightFiles};
use assay_stages::measure::config::{Boundary, Scenario};
use assay_stages::measure::harness::{self, InferenceBackend, MonotonicClock};
use assay_stages::measure::model::{Arch, SyntheticArch};
use assay_stages::prepare::synthetic;
use std::time::Instant;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let blocks = env_usize("ASSAY_BENCH_BLOCKS", 10);
    let steps = env_usize("ASSAY_BENCH_STEPS", 64) as u32;
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
    };
    let boundary = Boundary {
        tokenization: Default::default(),
        model_load: Default::default(),
        warmup_runs: 0,
        repetitions: 1,
        decode: Default::default(),
    };
    let prompts = harness::prompt_ids(&scenario, arch.vocab, 1);
    let capacity = (scenario.prompt_tokens + scenario.gen_tokens) as usize;
    let mut backend = CandleBackend::new(
        info,
        WeightFiles::Safetensors(vec![path]),
        Dtype::F32,
        capacity,
    );
    backend.load().expect("load");
    let clock = MonotonicClock::new();

    // One untimed run of each kind first: caches, allocator, KV buffers.
    let mut through_harness = Vec::new();
    let mut bare = Vec::new();
    for block in 0..=blocks {
        // The harness: measure_cell owns the clock around each decode step.
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
        let h: Vec<f64> = m
            .events
            .iter()
            .filter(|e| e.phase == "decode")
            .map(|e| e.ns as f64)
            .collect();

        // The bare loop: the same calls, timed inline.
        backend.reset();
        backend.prefill(&prompts).expect("prefill");
        let mut last = backend.sample().expect("sample");
        let mut b = Vec::with_capacity(steps as usize);
        for _ in 0..steps {
            let t = Instant::now();
            backend.decode_step(&last).expect("decode");
            last = backend.sample().expect("sample");
            b.push(t.elapsed().as_nanos() as f64);
        }
        if block > 0 {
            through_harness.extend(h);
            bare.extend(b);
        }
    }
    let mh = median(&mut through_harness) / 1e6;
    let mb = median(&mut bare) / 1e6;
    println!(
        "harness overhead: llama 4x256 (vocab 16000), f32, {blocks} blocks x {steps} decode steps each way"
    );
    println!("  median decode step through the harness: {mh:.4} ms");
    println!("  median decode step in a bare loop:      {mb:.4} ms");
    println!(
        "  ratio harness / bare: {:.4} ({:+.2}%)",
        mh / mb,
        (mh / mb - 1.0) * 100.0
    );
}
