//! The built-in evaluation (`quality.evaluate`, Appendices Z.2, BE.1)
//! through the real binary: an acceptance set run through candle on two
//! synthetic models, in a worker per backend, with the models' own
//! tokenizers. The expected outputs are the reference backend's greedy
//! text, so the other backends must reproduce it; one criterion fails
//! everywhere. Then what an edit reruns, the claims and their trace, and
//! located errors for a bad set.

use std::collections::BTreeMap;

use assay_analysis::quality::QualityRow;
use assay_core::tables;
use assay_measure::evaluate::EvaluationRow;
use serde_json::Value;

use crate::support::{Workspace, assay};

const SPEC: &str = r#"assay: 1
id: evaluate
title: Built-in evaluation
question: Which model is cheapest per successful answer on this CPU?
decision: Serve the model with the lowest cost per success.
boundary: { tokenization: excluded, model_load: separate, warmup_runs: 1, repetitions: 3, decode: fixed_length }
scenarios:
  - { name: chat, prompt_tokens: 16, batch: 1, gen_tokens: 8 }
models:
  - { name: tiny, synthetic: { arch: llama, layers: 2, hidden: 64, heads: 2, kv_heads: 1, vocab: 512, max_positions: 256, seed: 1 } }
  - { name: small, synthetic: { arch: llama, layers: 2, hidden: 128, heads: 2, kv_heads: 1, vocab: 512, max_positions: 256, seed: 2 } }
backends:
  - { name: f32, kind: candle, dtype: f32, threads: 1 }
  - { name: f32-2t, kind: candle, dtype: f32, threads: 2 }
  - { name: q8, kind: candle, dtype: q8_0, threads: 1 }
cost:
  usd_per_hour: { on_demand: 0.10 }
  tokens_per_month: 1.0e9
  burst_factor: 5
  request_mix:
    - { name: short, share: 1.0, prompt_tokens: 16, gen_tokens: 8 }
quality:
  evaluate: { set: set.jsonl, backends: [f32, q8, f32-2t], max_tokens: 6 }
# Timing noise on a loaded machine must not degrade a cell out of the
# summary: this spec is about counts, not stable timings.
validate: { max_cv: 10 }
outputs: { dir: reports/e2e, formats: [md, json] }
"#;

/// Prompts in the synthetic vocabulary (`▁t<N>` pieces).
const PROMPTS: [&str; 3] = [
    "\u{2581}t1 \u{2581}t2 \u{2581}t3",
    "\u{2581}t10 \u{2581}t20 \u{2581}t30 \u{2581}t40",
    "\u{2581}t100 \u{2581}t7",
];

fn line(id: &str, prompt: &str, accept: Value, model: Option<&str>) -> String {
    let mut item = serde_json::json!({ "id": id, "prompt": prompt, "accept": accept });
    if let Some(m) = model {
        item["model"] = m.into();
    }
    format!("{item}\n")
}

/// A set every output passes (`.`): it reads the backends' greedy text.
fn probe() -> String {
    PROMPTS
        .iter()
        .enumerate()
        .map(|(i, p)| line(&format!("p{i}"), p, serde_json::json!({"regex": "."}), None))
        .collect()
}

fn object(ws: &Workspace, digest: &str) -> Vec<u8> {
    std::fs::read(ws.store().join("objects").join(&digest[..2]).join(digest)).unwrap()
}

fn lock(ws: &Workspace) -> Value {
    serde_json::from_slice(&std::fs::read(ws.lock_path()).unwrap()).unwrap()
}

fn evaluation(ws: &Workspace, backend: &str, model: &str) -> Vec<EvaluationRow> {
    let digest = lock(ws)["nodes"][format!("evaluate/{backend}/{model}")]["outputs"]["evaluation"]
        .as_str()
        .unwrap_or_else(|| panic!("no evaluation of {model} on {backend}"))
        .to_string();
    tables::from_parquet(&object(ws, &digest)).unwrap()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn the_built_in_evaluation_counts_what_each_backend_reproduces() {
    let ws = Workspace::with_spec(SPEC);
    let set = ws.path().join("set.jsonl");
    // First the reference's greedy text: every output passes `.`.
    std::fs::write(&set, probe()).unwrap();
    let first = ws.run(&[]);
    let evaluated = sorted(
        Workspace::nodes_with(&first, "ran")
            .into_iter()
            .filter(|n| n.starts_with("evaluate/"))
            .collect(),
    );
    assert_eq!(
        evaluated,
        [
            "evaluate/f32-2t/small",
            "evaluate/f32-2t/tiny",
            "evaluate/f32/small",
            "evaluate/f32/tiny",
            "evaluate/q8/small",
            "evaluate/q8/tiny"
        ],
        "{first}"
    );
    let reference = evaluation(&ws, "f32", "tiny");
    let quantised = evaluation(&ws, "q8", "tiny");
    assert_eq!(reference.len(), 3);
    for r in &reference {
        assert!(
            r.passed && r.output_tokens == 6 && r.prompt_tokens >= 2,
            "{r:?}"
        );
        assert!(!r.output.trim().is_empty());
    }

    // Then the set a product would write: the reference's outputs for
    // tiny, exactly, and one criterion no output meets, for every model.
    let mut text: String = reference
        .iter()
        .zip(PROMPTS)
        .map(|(r, p)| {
            line(
                &format!("same-{}", r.id),
                p,
                serde_json::json!({ "exact": r.output }),
                Some("tiny"),
            )
        })
        .collect();
    text.push_str(&line(
        "never",
        PROMPTS[0],
        serde_json::json!({"contains": "no such output"}),
        None,
    ));
    std::fs::write(&set, &text).unwrap();
    let second = ws.run(&[]);
    // Nothing is measured again: only the evaluations, quality and the report.
    let ran = Workspace::nodes_with(&second, "ran");
    assert!(
        ran.iter()
            .all(|n| n.starts_with("evaluate/") || n == "quality" || n == "report"),
        "{second}"
    );

    // f32 reproduces itself; two threads reproduce one; q8_0 passes where
    // its own greedy text (from the first set's outputs) equals f32's.
    let q8_same = quantised
        .iter()
        .zip(&reference)
        .filter(|(q, r)| q.output.trim() == r.output.trim())
        .count();
    let counts = |backend: &str, model: &str| {
        let rows = evaluation(&ws, backend, model);
        (rows.iter().filter(|r| r.passed).count(), rows.len())
    };
    assert_eq!(counts("f32", "tiny"), (3, 4));
    assert_eq!(counts("f32-2t", "tiny"), (3, 4));
    assert_eq!(counts("q8", "tiny"), (q8_same, 4));
    assert_eq!(counts("f32", "small"), (0, 1));
    let never = evaluation(&ws, "q8", "small");
    assert_eq!(never[0].criterion, "contains");
    assert!(!never[0].passed);

    // Each cell is priced at its own backend's success rate.
    let digest = lock(&ws)["nodes"]["quality"]["outputs"]["quality"]
        .as_str()
        .unwrap()
        .to_string();
    let quality: Vec<QualityRow> = tables::from_parquet(&object(&ws, &digest)).unwrap();
    let row = |cell: &str| {
        quality.iter().find(|r| r.cell == cell).unwrap_or_else(|| {
            panic!(
                "{cell}: {:?}",
                quality.iter().map(|r| &r.cell).collect::<Vec<_>>()
            )
        })
    };
    let tiny_q8 = row("q8/tiny/chat");
    assert_eq!(
        (
            tiny_q8.successes,
            tiny_q8.trials,
            tiny_q8.evaluated_by.as_str()
        ),
        (q8_same as u64, 4, "q8")
    );
    assert_eq!(row("f32/tiny/chat").successes, 3);
    assert_eq!(row("f32/small/chat").usd_per_1k_successes, None);
    assert_eq!(tiny_q8.counts_file, "set.jsonl");
    assert_eq!(
        tiny_q8.counts_blake3,
        blake3::hash(text.as_bytes()).to_hex().to_string()
    );

    // The report shows each item's verdict per backend, and the counts
    // are claims that cite the evaluation's rows.
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(
        md.contains("### Acceptance set results (built-in evaluation)"),
        "{md}"
    );
    assert!(md.contains("| tiny | same-p0 | 1 | exact `"), "{md}");
    assert!(
        md.contains("| tiny | never | 4 | contains `no such output` | fail: `"),
        "{md}"
    );
    let report: Value = serde_json::from_slice(&ws.report("report.json")).unwrap();
    let claims: BTreeMap<&str, &Value> = report["claims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c))
        .collect();
    let successes = claims["quality/tiny/f32/successes"];
    assert_eq!(successes["value"], 3.0);
    assert_eq!(successes["source"]["node"], "evaluate/f32/tiny");
    assert_eq!(successes["source"]["artifact"], "evaluation");
    assert_eq!(successes["source"]["rows"], serde_json::json!([0, 1, 2, 3]));
    let trace = assay(&[
        "trace",
        "--spec",
        ws.spec.to_str().unwrap(),
        "quality/tiny/f32/successes",
    ]);
    let traced = String::from_utf8_lossy(&trace.stdout);
    assert!(
        trace.status.success() && traced.contains("evaluate/f32/tiny"),
        "{traced}"
    );

    // An item for small alone reruns small's evaluations, quality and the
    // report; tiny's evaluations keep their keys.
    text.push_str(&line(
        "small-only",
        PROMPTS[1],
        serde_json::json!({"regex": "."}),
        Some("small"),
    ));
    std::fs::write(&set, &text).unwrap();
    let third = ws.run(&[]);
    assert_eq!(
        sorted(Workspace::nodes_with(&third, "ran")),
        [
            "evaluate/f32-2t/small",
            "evaluate/f32/small",
            "evaluate/q8/small",
            "quality",
            "report"
        ],
        "{third}"
    );
    assert_eq!(counts("f32", "small"), (1, 2));
}

/// `assay check`'s stderr, with exit 2.
fn check_fails(ws: &Workspace) -> String {
    let out = assay(&["check", ws.spec.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn a_bad_acceptance_set_or_backend_is_a_located_error() {
    let spec_line = |ws: &Workspace, starts: &str| {
        let text = std::fs::read_to_string(&ws.spec).unwrap();
        1 + text
            .lines()
            .position(|l| l.trim_start().starts_with(starts))
            .unwrap()
    };
    let good = line("a", PROMPTS[0], serde_json::json!({"regex": "."}), None);
    let cases = [
        (
            format!("{good}{{\"prompt\": \"p\", \"accept\": {{\"regex\": \"(\"}}}}\n"),
            "set.jsonl:2: field `accept`: not a regular expression",
        ),
        (
            line(
                "b",
                PROMPTS[1],
                serde_json::json!({"exact": "x"}),
                Some("huge"),
            ),
            "set.jsonl:1: field `model`: \"huge\" is not a model of this spec (models: tiny, small)",
        ),
        (
            format!("{good}{good}"),
            "set.jsonl:2: field `id`: \"a\" is already the id of line 1",
        ),
    ];
    for (set, message) in cases {
        let ws = Workspace::with_spec(SPEC);
        std::fs::write(ws.path().join("set.jsonl"), set).unwrap();
        let stderr = check_fails(&ws);
        let at = format!("spec.yaml:{}:", spec_line(&ws, "quality:") + 1);
        assert!(
            stderr.contains(&at) && stderr.contains(message),
            "{at} {message}: {stderr}"
        );
    }

    // A backend the spec does not have, and a kind that cannot generate
    // (the simulated fixture's), each at its entry of `backends`.
    let ws =
        Workspace::with_spec(&SPEC.replace("backends: [f32, q8, f32-2t]", "backends: [f32, fp8]"));
    std::fs::write(ws.path().join("set.jsonl"), &good).unwrap();
    assert!(
        check_fails(&ws)
            .contains("\"fp8\" is not a backend of this spec (backends: f32, f32-2t, q8)")
    );
    let ws = Workspace::new();
    std::fs::write(ws.path().join("set.jsonl"), &good).unwrap();
    let sim = "sim";
    ws.edit(
        "outputs: { dir: reports/e2e",
        &format!("quality: {{ evaluate: {{ set: set.jsonl, backends: [{sim}] }} }}\noutputs: {{ dir: reports/e2e"),
    );
    let stderr = check_fails(&ws);
    assert!(
        stderr.contains(&format!(
            "backend \"{sim}\" is of kind simulated, which cannot run an evaluation"
        )),
        "{stderr}"
    );

    // Counts from a file and from an evaluation at once: one source only.
    let ws =
        Workspace::with_spec(&SPEC.replace("  evaluate: {", "  file: counts.jsonl\n  evaluate: {"));
    std::fs::write(ws.path().join("set.jsonl"), &good).unwrap();
    assert!(
        check_fails(&ws).contains("give `file` (an external evaluation's counts) or `evaluate`")
    );
}

/// ONNX Runtime and libtorch (with their features) run the set on their
/// own weights (the ONNX export, the safetensors through libtorch) and
/// must reproduce candle's greedy text exactly, at f32.
#[cfg(any(feature = "ort", feature = "tch"))]
#[test]
fn the_optional_backends_reproduce_the_references_answers() {
    let mut backends = vec!["f32"];
    let mut entries = String::new();
    if cfg!(feature = "ort") {
        backends.push("onnx");
        entries.push_str("  - { name: onnx, kind: ort, threads: 1 }\n");
    }
    if cfg!(feature = "tch") {
        backends.push("torch");
        entries.push_str("  - { name: torch, kind: tch, threads: 1 }\n");
    }
    let spec = SPEC
        .replace(
            "  - { name: f32-2t, kind: candle, dtype: f32, threads: 2 }\n  - { name: q8, kind: candle, dtype: q8_0, threads: 1 }\n",
            &entries,
        )
        .replace("[f32, q8, f32-2t]", &format!("[{}]", backends.join(", ")));
    let ws = Workspace::with_spec(&spec);
    let set = ws.path().join("set.jsonl");
    std::fs::write(&set, probe()).unwrap();
    ws.run(&[]);
    let mut exact = String::new();
    for model in ["tiny", "small"] {
        for (r, p) in evaluation(&ws, "f32", model).iter().zip(PROMPTS) {
            exact.push_str(&line(
                &format!("{model}-{}", r.id),
                p,
                serde_json::json!({ "exact": r.output }),
                Some(model),
            ));
        }
    }
    std::fs::write(&set, &exact).unwrap();
    ws.run(&[]);
    for backend in &backends {
        for model in ["tiny", "small"] {
            let rows = evaluation(&ws, backend, model);
            assert_eq!(rows.len(), 3);
            for r in rows {
                assert!(r.passed, "{backend} {model}: {r:?}");
            }
        }
    }
}
