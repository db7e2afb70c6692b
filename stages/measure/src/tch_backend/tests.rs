//! libtorch against candle (eager and traced), the shape-generic trace, the
//! evidence it records, and the threads it may set.

use std::path::{Path, PathBuf};

use super::trace::count_ops;
use super::*;
use crate::candle::{CandleBackend, WeightFiles};
use crate::harness::InferenceBackend;
use assay_core::config::Dtype;
use assay_model::decl::Arch;
use assay_model::prepare::synthetic::tiny;

/// A checkpoint on disk for one tiny model; the directory lives as long
/// as the returned guard.
fn checkpoint(arch: Arch) -> (tempfile::TempDir, PathBuf, ModelInfo) {
    let a = tiny(arch);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    std::fs::write(
        &path,
        assay_model::prepare::synthetic::safetensors(&a).unwrap(),
    )
    .unwrap();
    (dir, path, a.info(&format!("tiny-{}", arch.name())))
}

fn backend(info: &ModelInfo, path: &Path, mode: TchMode, capacity: usize) -> TchBackend {
    TchBackend::new(
        info.clone(),
        vec![path.to_path_buf()],
        TchOptions {
            mode,
            inter_op_threads: 1,
        },
        1,
        capacity,
    )
}

fn prompts(batch: usize, len: usize, vocab: u32, salt: u32) -> Vec<Vec<u32>> {
    (0..batch)
        .map(|s| {
            (0..len)
                .map(|i| (salt + 37 * s as u32 + 11 * i as u32 + 3) % vocab)
                .collect()
        })
        .collect()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len(), "batch differs");
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len(), "vocab differs");
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

fn tokens(b: &mut dyn InferenceBackend) -> Vec<u32> {
    b.sample().unwrap().iter().map(|p| p.token).collect()
}

/// Batch 2, prompt 5, 4 decode steps: eager and torchscript give candle's
/// logits (1e-4) and greedy tokens at the prefill and every step.
fn agrees_with_candle(arch: Arch) {
    let (_dir, path, info) = checkpoint(arch);
    let mut candle = CandleBackend::new(
        info.clone(),
        WeightFiles::Safetensors(vec![path.clone()]),
        Dtype::F32,
        16,
    );
    candle.load().unwrap();
    let mut eager = backend(&info, &path, TchMode::Eager, 16);
    let mut script = backend(&info, &path, TchMode::Torchscript, 16);
    eager.load().unwrap();
    script.load().unwrap();
    let p = prompts(2, 5, info.vocab, 0);
    candle.prefill(&p).unwrap();
    eager.prefill(&p).unwrap();
    script.prefill(&p).unwrap();
    for step in 0..=4 {
        let want = candle.logits().to_vec();
        assert_eq!(want.len(), 2);
        assert_eq!(want[0].len(), info.vocab as usize);
        for (name, got) in [("eager", eager.logits()), ("torchscript", script.logits())] {
            let d = max_diff(&want, got);
            assert!(d <= 1e-4, "{arch:?} {name} step {step}: max |diff| {d}");
        }
        let next = tokens(&mut candle);
        assert_eq!(tokens(&mut eager), next, "{arch:?} eager step {step}");
        assert_eq!(
            tokens(&mut script),
            next,
            "{arch:?} torchscript step {step}"
        );
        if step < 4 {
            assert!(candle.decode_step(&next).unwrap());
            assert!(eager.decode_step(&next).unwrap());
            assert!(script.decode_step(&next).unwrap());
        }
    }
}

#[test]
fn tch_backend_llama_agrees_with_candle() {
    agrees_with_candle(Arch::Llama);
}

#[test]
fn tch_backend_gpt2_agrees_with_candle() {
    agrees_with_candle(Arch::Gpt2);
}

/// One trace serves every batch, prompt length and past length (none of
/// them those of the example inputs): decode up to a full context, in
/// two runs of different shapes on the same loaded backend, against
/// candle at every past length; and the context-full contract.
fn trace_is_shape_generic(arch: Arch) {
    let (_dir, path, info) = checkpoint(arch);
    let capacity = 14;
    let mut candle = CandleBackend::new(
        info.clone(),
        WeightFiles::Safetensors(vec![path.clone()]),
        Dtype::F32,
        capacity,
    );
    candle.load().unwrap();
    let mut script = backend(&info, &path, TchMode::Torchscript, capacity);
    script.load().unwrap();
    for (batch, prompt, salt) in [(3, 1, 5), (1, 9, 11), (2, 3, 17)] {
        candle.reset();
        script.reset();
        let p = prompts(batch, prompt, info.vocab, salt);
        candle.prefill(&p).unwrap();
        script.prefill(&p).unwrap();
        let mut past = prompt;
        loop {
            let d = max_diff(candle.logits(), script.logits());
            assert!(
                d <= 1e-4,
                "{arch:?} batch {batch} past {past}: max |diff| {d}"
            );
            let next = tokens(&mut candle);
            assert_eq!(tokens(&mut script), next, "{arch:?} past {past}");
            let more = script.decode_step(&next).unwrap();
            assert_eq!(more, candle.decode_step(&next).unwrap());
            if !more {
                break;
            }
            past += 1;
        }
        assert_eq!(past, capacity, "decoded up to the full context");
    }
    // A prompt longer than the context is refused, not truncated.
    script.reset();
    assert!(
        script
            .prefill(&prompts(1, capacity + 1, info.vocab, 0))
            .is_err()
    );
}

#[test]
fn tch_backend_llama_trace_is_shape_generic() {
    trace_is_shape_generic(Arch::Llama);
}

#[test]
fn tch_backend_gpt2_trace_is_shape_generic() {
    trace_is_shape_generic(Arch::Gpt2);
}

/// A prefill after cached tokens (candle's semantics: it continues at
/// the current position) masks against the cache, eager and traced.
#[test]
fn tch_backend_prefill_continues_after_cached_tokens() {
    for arch in [Arch::Llama, Arch::Gpt2] {
        let (_dir, path, info) = checkpoint(arch);
        let mut candle = CandleBackend::new(
            info.clone(),
            WeightFiles::Safetensors(vec![path.clone()]),
            Dtype::F32,
            16,
        );
        let mut eager = backend(&info, &path, TchMode::Eager, 16);
        let mut script = backend(&info, &path, TchMode::Torchscript, 16);
        candle.load().unwrap();
        eager.load().unwrap();
        script.load().unwrap();
        for chunk in [prompts(2, 5, info.vocab, 1), prompts(2, 3, info.vocab, 2)] {
            candle.prefill(&chunk).unwrap();
            eager.prefill(&chunk).unwrap();
            script.prefill(&chunk).unwrap();
            for (name, got) in [("eager", eager.logits()), ("torchscript", script.logits())] {
                let d = max_diff(candle.logits(), got);
                assert!(d <= 1e-4, "{arch:?} {name}: max |diff| {d}");
            }
        }
    }
}

#[test]
fn tch_backend_attribution_and_evidence() {
    for arch in [Arch::Llama, Arch::Gpt2] {
        let (_dir, path, info) = checkpoint(arch);
        let eager = backend(&info, &path, TchMode::Eager, 8).load().unwrap();
        assert_eq!(eager.device, "cpu");
        assert_eq!(eager.dtype, "f32");
        assert_eq!(eager.threads, 1);
        assert_eq!(eager.library, "libtorch");
        assert_eq!(eager.library_version, TORCH_VERSION);
        assert_eq!(eager.providers, None);
        assert_eq!(eager.compiler, None, "eager compiles nothing");

        let script = backend(&info, &path, TchMode::Torchscript, 8)
            .load()
            .unwrap();
        assert_eq!(
            (script.device.as_str(), script.dtype.as_str()),
            ("cpu", "f32")
        );
        assert_eq!(script.library_version, TORCH_VERSION);
        let c = script.compiler.expect("torchscript records evidence");
        assert_eq!(c.kind, "torchscript-trace");
        assert!(
            ["profiling", "simple"].contains(&c.mode.as_str()),
            "{}",
            c.mode
        );
        assert!(c.real);
        assert_eq!(c.nodes_after, None);
        let per: u64 = ["nodes_prefill", "nodes_decode"]
            .iter()
            .map(|k| c.detail[*k].parse::<u64>().unwrap())
            .sum();
        assert_eq!(per, c.nodes_before);
        assert_eq!(c.ops_before.values().sum::<u64>(), c.nodes_before);
        // Per layer and graph: four projections (llama: seven), two
        // attention matmuls, one in-place KV write each for K and V.
        let layers = u64::from(info.n_layer);
        let linears = match arch {
            Arch::Llama => 7 * layers + 1,
            Arch::Gpt2 => 4 * layers + 1,
        };
        assert_eq!(
            c.ops_before["aten::linear"],
            2 * linears,
            "{:?}",
            c.ops_before
        );
        assert_eq!(c.ops_before["aten::matmul"], 2 * 2 * layers);
        assert_eq!(c.ops_before["aten::index_copy_"], 2 * 2 * layers);
        // Only the prefill graph masks.
        assert_eq!(c.ops_before["aten::masked_fill"], layers);
        assert_eq!(c.detail["traced"], "prefill [b x t], decode [b x 1]");
        assert!(["true", "false"].contains(&c.detail["tensor_expr_fuser"].as_str()));
        let digest = &c.detail["torchscript_blake3"];
        assert_eq!(digest.len(), 64);
        // The same model traces to the same program.
        let again = backend(&info, &path, TchMode::Torchscript, 8)
            .load()
            .unwrap();
        assert_eq!(
            &again.compiler.unwrap().detail["torchscript_blake3"],
            digest
        );
        eprintln!(
            "{arch:?}: mode {}, nodes {} (prefill {}, decode {}), {} op kinds, blake3 {digest}",
            c.mode,
            c.nodes_before,
            c.detail["nodes_prefill"],
            c.detail["nodes_decode"],
            c.ops_before.len()
        );
    }
}

#[test]
fn tch_backend_inter_op_threads_cannot_change_once_set() {
    // Whatever order the tests run in, the first load in this process
    // set 1; asking for another number is refused, not mislabelled.
    set_threads(1, 1).unwrap();
    let err = set_threads(1, 2).unwrap_err().to_string();
    assert!(err.contains("cannot change"), "{err}");
    set_threads(1, 1).unwrap();
}

#[test]
fn tch_backend_counts_torchscript_ops() {
    let code = "def forward(self: __torch__.AssayDecode,\n    x: Tensor) -> Tensor:\n  \
                _0 = torch.linear(x, CONSTANTS.c0)\n  _1 = ops.prim.NumToTensor(torch.size(_0, 0))\n  \
                return torch.add(_0, _1)\n";
    let ops = count_ops(code);
    assert_eq!(ops["aten::linear"], 1);
    assert_eq!(ops["aten::size"], 1);
    assert_eq!(ops["aten::add"], 1);
    assert_eq!(ops["prim::NumToTensor"], 1);
    assert_eq!(ops.len(), 4, "{ops:?}");
}
