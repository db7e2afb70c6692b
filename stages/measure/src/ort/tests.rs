//! ONNX Runtime against candle, the evidence it records, and finding the
//! library. No skipping: without the library these fail with its one line.

use std::ffi::OsString;
use std::path::PathBuf;

use super::*;
use crate::candle::{CandleBackend, WeightFiles};
use crate::harness::{Attribution, InferenceBackend, prompt_ids};
use assay_core::config::{Dtype, ExecutionProvider, GraphOptimization, OrtOptions, Scenario};
use assay_model::decl::{Arch, ModelInfo};
use assay_model::prepare::onnx;
use assay_model::prepare::synthetic::tiny;

struct Fixture {
    _dir: tempfile::TempDir,
    info: ModelInfo,
    safetensors: PathBuf,
    onnx: PathBuf,
}

fn fixture(arch: Arch) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let a = tiny(arch);
    let info = a.info("tiny");
    let st = assay_model::prepare::synthetic::safetensors(&a).unwrap();
    let model = onnx::export_onnx(&info, &[&st]).unwrap();
    let safetensors = dir.path().join("model.safetensors");
    let onnx = dir.path().join("model.onnx");
    std::fs::write(&safetensors, st).unwrap();
    std::fs::write(&onnx, model).unwrap();
    Fixture {
        _dir: dir,
        info,
        safetensors,
        onnx,
    }
}

fn options(level: GraphOptimization) -> OrtOptions {
    OrtOptions {
        graph_optimization: level,
        ..OrtOptions::default()
    }
}

fn loaded(f: &Fixture, options: OrtOptions, capacity: usize) -> (OrtBackend, Attribution) {
    let mut b = OrtBackend::new(f.info.clone(), f.onnx.clone(), options, 1, capacity);
    // No skipping: without the library this fails with its one line.
    let attribution = b.load().unwrap_or_else(|e| panic!("{e}"));
    (b, attribution)
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

/// Batch 2, prompt 5, 4 decode steps: ONNX Runtime's logits agree with
/// candle's within 1e-4 and the greedy tokens are the same, at every
/// step, twice (the second run after `reset`).
fn agrees_with_candle(arch: Arch, level: GraphOptimization) {
    let f = fixture(arch);
    let capacity = 16;
    let mut candle = CandleBackend::new(
        f.info.clone(),
        WeightFiles::Safetensors(vec![f.safetensors.clone()]),
        Dtype::F32,
        capacity,
    );
    candle.load().unwrap();
    let (mut ort, _) = loaded(&f, options(level), capacity);
    let scenario = Scenario {
        name: "s".into(),
        prompt_tokens: 5,
        batch: 2,
        gen_tokens: 5,
        load: None,
    };
    let prompts = prompt_ids(&scenario, f.info.vocab, 3);
    let mut first_run = Vec::new();
    let mut worst = 0.0f32;
    for run in 0..2 {
        candle.reset();
        ort.reset();
        candle.prefill(&prompts).unwrap();
        ort.prefill(&prompts).unwrap();
        let mut step_logits = Vec::new();
        for step in 0..5 {
            let d = max_diff(candle.logits(), ort.logits());
            assert!(d <= 1e-4, "{arch:?} {level:?} run {run} step {step}: {d}");
            worst = worst.max(d);
            let c: Vec<u32> = candle.sample().unwrap().iter().map(|p| p.token).collect();
            let o: Vec<u32> = ort.sample().unwrap().iter().map(|p| p.token).collect();
            assert_eq!(c, o, "{arch:?} {level:?} run {run} step {step}");
            step_logits.push(ort.logits().to_vec());
            if step < 4 {
                assert!(candle.decode_step(&c).unwrap());
                assert!(ort.decode_step(&o).unwrap());
            }
        }
        if run == 0 {
            first_run = step_logits;
        } else {
            assert_eq!(first_run, step_logits, "reset must start afresh");
        }
    }
    eprintln!("{arch:?} {level:?}: largest logit difference from candle {worst:e}");
}

#[test]
fn llama_matches_candle() {
    agrees_with_candle(Arch::Llama, GraphOptimization::All);
    agrees_with_candle(Arch::Llama, GraphOptimization::Disabled);
}

#[test]
fn gpt2_matches_candle() {
    agrees_with_candle(Arch::Gpt2, GraphOptimization::All);
    agrees_with_candle(Arch::Gpt2, GraphOptimization::Disabled);
}

#[test]
fn optimisation_is_evidenced_by_node_counts() {
    for arch in [Arch::Llama, Arch::Gpt2] {
        let f = fixture(arch);
        let (_, all) = loaded(&f, options(GraphOptimization::All), 8);
        let all = all.compiler.unwrap();
        let (_, off) = loaded(&f, options(GraphOptimization::Disabled), 8);
        let off = off.compiler.unwrap();
        eprintln!(
            "{arch:?}: all {} -> {:?}, disabled {} -> {:?}\n  after all: {:?}",
            all.nodes_before, all.nodes_after, off.nodes_before, off.nodes_after, all.ops_after
        );
        assert_eq!(all.nodes_before, off.nodes_before);
        assert!(all.nodes_after.unwrap() < all.nodes_before, "{arch:?}");
        assert!(all.real);
        assert_eq!(all.mode, "all");
        // Fusion into ONNX Runtime's contrib operators, not only
        // constant folding.
        assert!(
            all.ops_after
                .keys()
                .any(|k| k.starts_with("com.microsoft.")),
            "{arch:?}: {:?}",
            all.ops_after
        );
        assert_eq!(off.nodes_after, Some(off.nodes_before), "{arch:?}");
        assert_eq!(off.ops_after, off.ops_before);
        assert!(!off.real);
        assert_eq!(off.mode, "disabled");
    }
}

#[test]
fn attribution_reports_what_ran() {
    let f = fixture(Arch::Llama);
    let (_, a) = loaded(&f, OrtOptions::default(), 8);
    assert_eq!(a.device, "cpu");
    assert_eq!(a.dtype, "f32");
    assert_eq!(a.threads, 1);
    assert_eq!(a.library, "onnxruntime");
    assert_eq!(a.library_version, ORT_VERSION_EXPECTED);
    let p = a.providers.unwrap();
    assert_eq!(p.requested, ["cpu"]);
    assert_eq!(p.registered, ["cpu"]);
    assert_eq!(p.ran_on, "cpu");
    let c = a.compiler.unwrap();
    assert_eq!(c.kind, "onnxruntime-graph-optimization");
    assert_eq!(c.detail["execution_mode"], "sequential");
    assert_eq!(c.detail["optimized_model_blake3"].len(), 64);
    assert_eq!(c.ops_before.values().sum::<u64>(), c.nodes_before);

    let parallel = OrtOptions {
        inter_op_threads: 2,
        ..OrtOptions::default()
    };
    let (mut b, a) = loaded(&f, parallel, 8);
    assert_eq!(a.compiler.unwrap().detail["execution_mode"], "parallel");
    b.prefill(&[vec![1, 2, 3]]).unwrap();
    assert_eq!(b.sample().unwrap().len(), 1);
}

#[test]
fn a_cuda_request_on_a_cpu_library_reports_the_cpu() {
    let f = fixture(Arch::Gpt2);
    let options = OrtOptions {
        providers: vec![ExecutionProvider::Cuda, ExecutionProvider::Cpu],
        ..OrtOptions::default()
    };
    let (mut b, a) = loaded(&f, options, 8);
    let p = a.providers.unwrap();
    assert_eq!(p.requested, ["cuda", "cpu"]);
    assert_eq!(p.registered, ["cpu"], "the installed library is CPU-only");
    assert_eq!(p.ran_on, "cpu");
    assert_eq!(a.device, "cpu");
    let c = a.compiler.unwrap();
    assert!(
        c.detail.contains_key("cuda_not_registered"),
        "{:?}",
        c.detail
    );
    // And it still runs, on the CPU.
    b.prefill(&[vec![1, 2, 3], vec![4, 5, 6]]).unwrap();
    assert_eq!(b.sample().unwrap().len(), 2);
}

#[test]
fn a_full_context_stops_decode_and_fails_prefill() {
    let f = fixture(Arch::Llama);
    let (mut b, _) = loaded(&f, OrtOptions::default(), 6);
    b.prefill(&[vec![1, 2, 3, 4, 5]]).unwrap();
    assert!(b.decode_step(&[1]).unwrap());
    assert!(!b.decode_step(&[1]).unwrap());
    b.reset();
    let e = b.prefill(&[vec![1; 7]]).unwrap_err().to_string();
    assert!(e.starts_with("context full"), "{e}");
    // Ragged prompts are refused, not silently misread.
    assert!(b.prefill(&[vec![1, 2], vec![3]]).is_err());
}

#[test]
fn a_missing_library_is_one_line() {
    let bogus = Some(OsString::from("/nonexistent/libonnxruntime.so"));
    let e = resolve_library_path(bogus, None, Some("/root".into())).unwrap_err();
    assert!(!e.contains('\n'));
    assert!(
        e.starts_with(
            "ONNX Runtime library not found (ORT_DYLIB_PATH=/nonexistent/libonnxruntime.so missing)"
        ),
        "{e}"
    );
    assert!(
        e.contains("run scripts/install-native-libs.sh onnxruntime"),
        "{e}"
    );

    let e = resolve_library_path(None, Some("/nowhere".into()), Some("/root".into())).unwrap_err();
    assert_eq!(
        e,
        "ONNX Runtime library not found (ORT_DYLIB_PATH unset and /nowhere/onnxruntime-1.28.0/lib/libonnxruntime.so.1.28.0 missing): run scripts/install-native-libs.sh onnxruntime"
    );
    // Empty counts as unset; HOME is the fallback.
    let e =
        resolve_library_path(Some("".into()), Some("".into()), Some("/home/x".into())).unwrap_err();
    assert!(
        e.contains("/home/x/.cache/assay/native/onnxruntime-1.28.0/lib/"),
        "{e}"
    );
    assert!(resolve_library_path(None, None, None).is_err());

    // An existing file is taken as is; the install layout is found.
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("libonnxruntime.so");
    std::fs::write(&lib, b"").unwrap();
    assert_eq!(
        resolve_library_path(Some(lib.clone().into()), None, None).unwrap(),
        lib
    );
    let installed = dir.path().join("onnxruntime-1.28.0/lib");
    std::fs::create_dir_all(&installed).unwrap();
    std::fs::write(installed.join("libonnxruntime.so.1.28.0"), b"").unwrap();
    assert_eq!(
        resolve_library_path(None, Some(dir.path().into()), None).unwrap(),
        installed.join("libonnxruntime.so.1.28.0")
    );
}

#[test]
fn the_version_is_read_from_the_library_file() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib.so");
    // The mark straddles a chunk border.
    let mut bytes = vec![0u8; (1 << 20) - 3];
    bytes.extend_from_slice(b"VERS_1.28.0\0libc.so.6\0");
    std::fs::write(&lib, &bytes).unwrap();
    assert_eq!(library_version(&lib).unwrap(), "1.28.0");
    std::fs::write(&lib, b"no version here").unwrap();
    assert!(library_version(&lib).is_err());
    // And the installed library is the version the script installs.
    let installed = library_path().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(library_version(&installed).unwrap(), ORT_VERSION_EXPECTED);
}

/// Text inside the boundary needs nothing of ONNX Runtime: the shared
/// harness tokenises around its prefill and decode, and the greedy ids it
/// produces from text prompts are candle's.
#[test]
fn text_prompts_run_through_the_shared_harness() {
    use crate::harness::{CellPrompts, MonotonicClock, measure_cell_with};
    use crate::text::{Codec, ModelTokenizer, prompts, synthetic_text_tokenizer};
    use assay_core::config::{Boundary, ModelLoad, Tokenization};

    let f = fixture(Arch::Llama);
    let stored = assay_model::prepare::synthetic::tokenizer_json(f.info.vocab).to_string();
    let json = synthetic_text_tokenizer(&stored).unwrap();
    let tok = ModelTokenizer::from_json(&json).unwrap();
    let words = prompts::word_list(&tok).unwrap();
    let texts: Vec<String> = (0..2)
        .map(|seq| prompts::generate(&tok, &words, 6, 1, seq).unwrap().0)
        .collect();
    let scenario = Scenario {
        name: "s".into(),
        prompt_tokens: 6,
        batch: 2,
        gen_tokens: 5,
        load: None,
    };
    let boundary = Boundary {
        tokenization: Tokenization::Included,
        model_load: ModelLoad::Included,
        warmup_runs: 0,
        repetitions: 1,
        decode: Default::default(),
        prompts: None,
    };
    let run = |backend: &mut dyn InferenceBackend| {
        let mut codec = Codec::new(json.clone());
        let prompts = CellPrompts::Text {
            texts: &texts,
            codec: &mut codec,
        };
        let clock = MonotonicClock::new();
        measure_cell_with(
            backend,
            &clock,
            "c",
            &scenario,
            &boundary,
            prompts,
            |_, _| true,
        )
        .unwrap()
        .unwrap()
    };
    let mut ort = OrtBackend::new(
        f.info.clone(),
        f.onnx.clone(),
        options(GraphOptimization::All),
        1,
        11,
    );
    let m = run(&mut ort);
    let phases: Vec<&str> = m.events.iter().map(|e| e.phase.as_str()).collect();
    assert_eq!(phases.first(), Some(&"load"));
    assert_eq!(phases[1], "tokenize");
    assert_eq!(phases[phases.len() - 2], "detokenize");
    let ttft = m.events.iter().find(|e| e.phase == "ttft").unwrap();
    assert_eq!(
        ttft.start_ns, m.events[0].start_ns,
        "the load is inside the first ttft"
    );
    for t in &m.texts {
        let ids: Vec<u32> = m
            .outputs
            .iter()
            .filter(|o| o.sequence == t.sequence)
            .map(|o| o.token)
            .collect();
        assert_eq!(tok.encode(&t.output).unwrap(), ids);
    }
    let mut candle = CandleBackend::new(
        f.info.clone(),
        WeightFiles::Safetensors(vec![f.safetensors.clone()]),
        Dtype::F32,
        11,
    );
    let c = run(&mut candle);
    let tokens = |m: &crate::harness::CellMeasurement| -> Vec<u32> {
        m.outputs.iter().map(|o| o.token).collect()
    };
    assert_eq!(tokens(&m), tokens(&c));
}
