//! The service-level boundary (TR117, Appendix L) end to end: text prompts
//! tokenised and outputs detokenised inside the timed region with the
//! model's tokenizer, and the model load inside the first run, measured by
//! candle in a worker process through the `assay` binary.

use assay_core::tables::{self, EventRow, OutputRow, ValidationRow};
use assay_measure::text::{ModelTokenizer, TextRow};
use serde_json::Value;

use crate::support::{Workspace, assay};

const SPEC: &str = "\
assay: 1
id: boundary
title: Service-level boundary on a tiny model
question: What does a request cost as a service sees it?
decision: Size the warm pool.
boundary:
  tokenization: included
  model_load: included
  warmup_runs: 1
  repetitions: 2
  prompts: { source: generated, seed: 3 }
scenarios:
  - { name: chat, prompt_tokens: 12, batch: 2, gen_tokens: 6 }
models:
  - { name: tiny, synthetic: { arch: llama, layers: 2, hidden: 64, heads: 4, kv_heads: 2, vocab: 300, max_positions: 64, seed: 1 } }
backends:
  - { name: candle-cpu, kind: candle, device: cpu, dtype: f32, threads: 1 }
validate: { max_cv: 10 }
outputs: { dir: reports/boundary, formats: [md, json] }
";

const CELL: &str = "measure/candle-cpu/tiny/chat";

fn object(ws: &Workspace, digest: &str) -> Vec<u8> {
    std::fs::read(ws.store().join("objects").join(&digest[..2]).join(digest)).unwrap()
}

/// The digest of an output of a node, from the lockfile.
fn output(ws: &Workspace, node: &str, name: &str) -> String {
    let lock: Value = serde_json::from_slice(&std::fs::read(ws.lock_path()).unwrap()).unwrap();
    lock["nodes"][node]["outputs"][name]
        .as_str()
        .unwrap_or_else(|| panic!("{node} has no output {name}"))
        .to_string()
}

fn events(ws: &Workspace) -> Vec<EventRow> {
    tables::events_from_parquet(&object(ws, &output(ws, CELL, "events"))).unwrap()
}

fn of<'a>(events: &'a [EventRow], rep: u32, phase: &str) -> &'a EventRow {
    events
        .iter()
        .find(|e| e.repetition == rep && e.phase == phase)
        .unwrap_or_else(|| panic!("run {rep} has no {phase} event"))
}

#[test]
fn tokenisation_and_model_load_inside_the_boundary() {
    let ws = Workspace::with_spec(SPEC);
    let result = ws.run(&["--no-progress"]);
    assert_eq!(result["failed"], 0);
    let events = events(&ws);
    // Runs with text phases validate like any other: well formed (noise
    // on a shared machine may still degrade them, which is not this test's
    // business).
    let validation: Vec<ValidationRow> =
        tables::from_parquet(&object(&ws, &output(&ws, "validate", "validation"))).unwrap();
    assert_eq!(validation.len(), 3);
    assert!(
        validation
            .iter()
            .all(|v| v.status != "failed" && !v.reasons.contains("phase")),
        "{validation:?}"
    );

    // The load is recorded on its own, and is inside the first run's ttft
    // and e2e, which start where it starts; later runs start at their own
    // tokenisation.
    let load = events.iter().find(|e| e.phase == "load").unwrap();
    assert!(load.ns > 0);
    for phase in ["ttft", "e2e"] {
        let first = of(&events, 0, phase);
        assert_eq!(first.start_ns, load.start_ns, "run 0 {phase}");
        assert!(first.ns > load.ns, "run 0 {phase} includes the load");
        for rep in 1..3 {
            let e = of(&events, rep, phase);
            assert_eq!(e.start_ns, of(&events, rep, "tokenize").start_ns);
            assert!(e.start_ns >= load.start_ns + load.ns);
        }
    }

    // Every run tokenises its prompts and detokenises its outputs inside
    // its ttft (tokenise) and e2e (both), as events of their own.
    for rep in 0..3 {
        let tokenize = of(&events, rep, "tokenize");
        let prefill = of(&events, rep, "prefill");
        let ttft = of(&events, rep, "ttft");
        let detokenize = of(&events, rep, "detokenize");
        let e2e = of(&events, rep, "e2e");
        assert_eq!(tokenize.tokens, 2 * 12);
        assert_eq!(prefill.tokens, 2 * 12);
        assert_eq!(detokenize.tokens, 2 * 6);
        assert!(tokenize.ns > 0 && detokenize.ns > 0);
        assert!(tokenize.start_ns + tokenize.ns <= prefill.start_ns);
        assert!(ttft.start_ns + ttft.ns >= prefill.start_ns + prefill.ns);
        let end = e2e.start_ns + e2e.ns;
        assert!(
            detokenize.start_ns >= prefill.start_ns && detokenize.start_ns + detokenize.ns <= end
        );
    }

    // The outputs are text that re-tokenises, with the tokenizer that ran
    // (its digest in the manifest), to exactly the greedy ids.
    let manifest: Value =
        serde_json::from_slice(&object(&ws, &output(&ws, CELL, "manifest"))).unwrap();
    assert_eq!(manifest["boundary"]["tokenization"], "included");
    assert_eq!(manifest["boundary"]["model_load"], "included");
    assert_eq!(manifest["actual"]["tokenizer"]["library"], "tokenizers");
    let texts: Vec<TextRow> =
        tables::from_parquet(&object(&ws, &output(&ws, CELL, "texts"))).unwrap();
    let outputs: Vec<OutputRow> =
        tables::from_parquet(&object(&ws, &output(&ws, CELL, "outputs"))).unwrap();
    assert_eq!(texts.len(), 3 * 2);
    let tok = tiny_tokenizer(&ws, &manifest);
    for t in &texts {
        let ids: Vec<u32> = outputs
            .iter()
            .filter(|o| o.repetition == t.repetition && o.sequence == t.sequence)
            .map(|o| o.token)
            .collect();
        assert_eq!(ids.len(), 6);
        assert_eq!(
            tok.encode(&t.output).unwrap(),
            ids,
            "run {} seq {}",
            t.repetition,
            t.sequence
        );
        // The generated prompt is exactly the scenario's length.
        assert_eq!((t.prompt_tokens, t.prompt_tokens_encoded), (12, 12));
        assert_eq!(tok.encode(&t.prompt).unwrap().len(), 12);
    }

    // The report states the boundary beside its tables and shows the
    // tokenisation time per cell.
    let md =
        String::from_utf8(std::fs::read(ws.path().join("reports/boundary/report.md")).unwrap())
            .unwrap();
    assert!(md.contains("tokenize, prefill, ttft, decode (per token, KV cache), detokenize, e2e"));
    assert!(
        md.matches("Boundary: tokenization included").count() >= 3,
        "{md}"
    );
    assert!(md.contains("| tokenize |") && md.contains("| detokenize |"));
}

/// The tokenizer the cell ran, rebuilt the way measure builds it for a
/// synthetic model, and checked against the manifest's digest.
fn tiny_tokenizer(ws: &Workspace, manifest: &Value) -> ModelTokenizer {
    let stored = object(ws, &output(ws, "prepare/tiny", "tokenizer"));
    let mut json: Value = serde_json::from_slice(&stored).unwrap();
    json["pre_tokenizer"] = serde_json::json!({ "type": "WhitespaceSplit" });
    let text = serde_json::to_string(&json).unwrap();
    assert_eq!(
        manifest["actual"]["tokenizer"]["blake3"],
        blake3::hash(text.as_bytes()).to_hex().to_string()
    );
    ModelTokenizer::from_json(&text).unwrap()
}

#[test]
fn a_prompts_file_is_read_cut_to_length_and_keyed_by_its_digest() {
    let ws = Workspace::with_spec(&SPEC.replace(
        "prompts: { source: generated, seed: 3 }",
        "prompts: { file: prompts.jsonl }",
    ));
    let long = (0..20)
        .map(|i| format!("\u{2581}t{}", 259 + i))
        .collect::<Vec<_>>();
    let file = format!(
        "{{\"prompt\": \"{}\"}}\n{{\"prompt\": \"{}\"}}\n",
        long.join(" "),
        long[..14].join(" ")
    );
    std::fs::write(ws.path().join("prompts.jsonl"), &file).unwrap();
    ws.run(&["--no-progress"]);
    let texts: Vec<TextRow> =
        tables::from_parquet(&object(&ws, &output(&ws, CELL, "texts"))).unwrap();
    let first = texts.iter().find(|t| t.sequence == 0).unwrap();
    let second = texts.iter().find(|t| t.sequence == 1).unwrap();
    assert_eq!((first.prompt_tokens, first.prompt_tokens_encoded), (12, 20));
    assert_eq!(
        (second.prompt_tokens, second.prompt_tokens_encoded),
        (12, 14)
    );
    let manifest: Value =
        serde_json::from_slice(&object(&ws, &output(&ws, CELL, "manifest"))).unwrap();
    assert_eq!(
        manifest["boundary"]["prompts"]["file_blake3"],
        blake3::hash(file.as_bytes()).to_hex().to_string()
    );

    // Another file is another measurement; the same file is none.
    let spec = ws.spec.to_str().unwrap();
    // The measure cell's status in `assay plan`.
    let status = || {
        let out = String::from_utf8(assay(&["plan", spec]).stdout).unwrap();
        out.lines()
            .find_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                (cols.get(1) == Some(&CELL)).then(|| cols[3].to_string())
            })
            .unwrap()
    };
    assert_eq!(status(), "cached");
    std::fs::write(
        ws.path().join("prompts.jsonl"),
        file.replace("t259", "t290"),
    )
    .unwrap();
    assert_eq!(status(), "run");
}

#[test]
fn a_malformed_prompts_file_is_a_located_error() {
    let ws = Workspace::with_spec(&SPEC.replace(
        "prompts: { source: generated, seed: 3 }",
        "prompts: { file: prompts.jsonl }",
    ));
    std::fs::write(
        ws.path().join("prompts.jsonl"),
        "{\"prompt\": \"\u{2581}t300\"}\n{\"prompt\": 7}\n",
    )
    .unwrap();
    let out = assay(&["check", ws.spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // At the spec's `file` field, naming the prompts file and its line.
    assert!(
        stderr.contains("spec.yaml:11:")
            && stderr.contains("prompts.jsonl:2: \"prompt\" must be a string"),
        "{stderr}"
    );
}

#[test]
fn boundaries_a_kind_cannot_measure_are_refused_at_check() {
    let cases = [
        (
            "{ name: sim, kind: simulated }",
            "backend \"sim\" is simulated and has no tokenizer to time",
        ),
        (
            "{ name: srv, kind: openai, server: { url: \"http://127.0.0.1:9\", prompt: tokens } }",
            "backends[0].server.prompt: tokenization: included sends text prompts",
        ),
    ];
    for (backend, message) in cases {
        let ws = Workspace::with_spec(&SPEC.replace(
            "{ name: candle-cpu, kind: candle, device: cpu, dtype: f32, threads: 1 }",
            backend,
        ));
        let out = assay(&["check", ws.spec.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }
    // Text prompts without tokenisation in the boundary.
    let ws =
        Workspace::with_spec(&SPEC.replace("tokenization: included", "tokenization: excluded"));
    let out = assay(&["check", ws.spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("text prompts need `tokenization: included`")
    );
}
