//! Results of peer tools as measure nodes (the `imported` kind,
//! docs/importers.md) through the real binary: real llama-bench and AIPerf
//! outputs and a vLLM result written to its format, beside a simulated
//! backend; the report's imported cells and what they cannot compute; a
//! cached rerun; an edited file reruns its cells; a bad file is exit 2 at
//! the file and field.

use serde_json::Value;

use crate::support::{Workspace, assay};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/imported");

const SPEC: &str = r#"assay: 1
id: e2e-imported
title: Imported results beside simulated ones
question: Which configuration decodes fastest?
decision: Pick the fastest configuration.
boundary: { warmup_runs: 1, repetitions: 3 }
scenarios:
  - { name: p16g8, prompt_tokens: 16, batch: 1, gen_tokens: 8 }
models:
  - { name: tiny, synthetic: { arch: llama, layers: 2, hidden: 128, heads: 4, kv_heads: 2, vocab: 16000, max_positions: 512, seed: 1 } }
backends:
  - { name: sim, kind: simulated, simulated: { seed: 7 } }
  - name: llamabench
    kind: imported
    dtype: q8_0
    imported: { file: llama-bench.jsonl, format: llama-bench, models: { tiny: tiny-q8_0.gguf } }
  - name: aiperf
    kind: imported
    imported: { file: aiperf/profile_export.jsonl, format: aiperf, models: { tiny: assay/tiny } }
  - name: vllm
    kind: imported
    imported: { file: vllm-bench-serve.json, format: vllm-bench-serve, models: { tiny: assay/tiny } }
validate: { max_cv: 5 }
outputs: { dir: reports/e2e, formats: [md, json] }
"#;

const IMPORTED_CELLS: [&str; 3] = [
    "measure/aiperf/tiny/p16g8",
    "measure/llamabench/tiny/p16g8",
    "measure/vllm/tiny/p16g8",
];

fn workspace() -> Workspace {
    let ws = Workspace::with_spec(SPEC);
    for f in [
        "llama-bench.jsonl",
        "llama-bench.json",
        "vllm-bench-serve.json",
    ] {
        std::fs::copy(format!("{FIXTURES}/{f}"), ws.path().join(f)).unwrap();
    }
    std::fs::create_dir_all(ws.path().join("aiperf")).unwrap();
    for f in ["profile_export.jsonl", "profile_export_aiperf.json"] {
        std::fs::copy(
            format!("{FIXTURES}/aiperf/{f}"),
            ws.path().join("aiperf").join(f),
        )
        .unwrap();
    }
    ws
}

fn measure_nodes(nodes: Vec<String>) -> Vec<String> {
    let mut m: Vec<String> = nodes
        .into_iter()
        .filter(|n| n.starts_with("measure/"))
        .collect();
    m.sort();
    m
}

fn manifest(ws: &Workspace, node: &str) -> Value {
    let lock: Value = serde_json::from_slice(&std::fs::read(ws.lock_path()).unwrap()).unwrap();
    let digest = lock["nodes"][node]["outputs"]["manifest"]
        .as_str()
        .unwrap_or_else(|| panic!("{node} has no manifest"))
        .to_string();
    let bytes = std::fs::read(ws.store().join("objects").join(&digest[..2]).join(&digest)).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn imported_cells_run_beside_simulated_ones_and_the_report_says_what_they_lack() {
    let ws = workspace();
    let result = ws.run(&[]);
    let ran = measure_nodes(Workspace::nodes_with(&result, "ran"));
    for cell in IMPORTED_CELLS {
        assert!(
            ran.contains(&cell.to_string()),
            "{cell} did not run: {ran:?}"
        );
    }
    let lb = manifest(&ws, "measure/llamabench/tiny/p16g8");
    assert_eq!(lb["evidence"], "imported");
    assert_eq!(lb["imported"]["tool"], "llama-bench");
    assert_eq!(lb["imported"]["grain"], "repetitions");
    assert!(lb["imported"]["machine"]["cpu_info"].is_string(), "{lb}");
    assert!(lb["environment"].is_null());
    let ai = manifest(&ws, "measure/aiperf/tiny/p16g8");
    assert_eq!(ai["imported"]["tool"], "aiperf");
    assert_eq!(ai["imported"]["grain"], "requests");

    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(
        md.contains("llamabench"),
        "the report lists no imported cell"
    );
    assert!(
        md.contains("Imported results"),
        "no imported section:\n{md}"
    );
    assert!(
        md.contains("cannot be computed") && md.contains("decode step percentiles"),
        "the report does not say what llama-bench's aggregates cannot give:\n{md}"
    );

    // Nothing changed: everything is cached.
    let again = ws.run(&[]);
    assert_eq!(
        measure_nodes(Workspace::nodes_with(&again, "ran")),
        Vec::<String>::new()
    );

    // An edited file reruns the cells that read it, and only those.
    let path = ws.path().join("llama-bench.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replacen("\"samples_ns\": [", "\"samples_ns\": [1000000, ", 1);
    let edited = if edited == text {
        text.replacen("\"samples_ns\":[", "\"samples_ns\":[1000000,", 1)
    } else {
        edited
    };
    assert_ne!(edited, text);
    // The first record's samples gain one: keep the counts equal.
    std::fs::write(&path, edited).unwrap();
    let third = ws.run(&[]);
    assert_eq!(
        measure_nodes(Workspace::nodes_with(&third, "ran")),
        vec!["measure/llamabench/tiny/p16g8".to_string()]
    );
}

#[test]
fn a_bad_file_is_exit_2_at_the_file_and_field() {
    let ws = workspace();
    let path = ws.path().join("llama-bench.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let bad = text.replacen("\"n_threads\": ", "\"n_threads\": \"x\", \"_was\": ", 1);
    let bad = if bad == text {
        text.replacen("\"n_threads\":", "\"n_threads\":\"x\",\"_was\":", 1)
    } else {
        bad
    };
    std::fs::write(&path, bad).unwrap();
    let out = assay(&["check", ws.spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("llama-bench.jsonl"), "{err}");
    assert!(
        err.contains("line 1") && err.contains("`n_threads`"),
        "{err}"
    );

    // Truncated, and a file of another tool.
    // The last line cut short.
    let cut = text.trim_end();
    std::fs::write(&path, &cut[..cut.len() - 10]).unwrap();
    let out = assay(&["check", ws.spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"));
    std::fs::copy(ws.path().join("vllm-bench-serve.json"), &path).unwrap();
    let out = assay(&["check", ws.spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vLLM"), "{err}");
}

#[test]
fn a_scenario_the_file_lacks_is_refused() {
    let ws = workspace();
    ws.edit(
        "  - { name: p16g8, prompt_tokens: 16, batch: 1, gen_tokens: 8 }",
        "  - { name: p16g8, prompt_tokens: 16, batch: 1, gen_tokens: 8 }\n  - { name: p99g8, prompt_tokens: 99, batch: 1, gen_tokens: 8 }",
    );
    let out = assay(&["check", ws.spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no records for scenario \"p99g8\""), "{err}");
}

#[test]
fn an_imported_section_on_another_kind_is_refused() {
    let ws = workspace();
    ws.edit(
        "  - { name: sim, kind: simulated, simulated: { seed: 7 } }",
        "  - { name: sim, kind: simulated, simulated: { seed: 7 }, imported: { file: vllm-bench-serve.json, format: vllm-bench-serve } }",
    );
    let out = assay(&["check", ws.spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`imported` options given for a backend of kind simulated"),
        "{err}"
    );
}

/// An imported cell beside an in-process backend of the same model,
/// scenario and dtype (q8_0: llama-bench's `Q8_0` file type): imported
/// cells carry no tokens, so output invariance leaves them out rather than
/// degrade them for missing outputs.
#[test]
fn an_imported_cell_beside_candle_joins_no_invariance_group() {
    let ws = workspace();
    ws.edit(
        "  - { name: sim, kind: simulated, simulated: { seed: 7 } }",
        "  - { name: candle, kind: candle, dtype: q8_0, threads: 1 }",
    );
    let result = ws.run(&["--no-progress"]);
    let ran = measure_nodes(Workspace::nodes_with(&result, "ran"));
    assert!(
        ran.contains(&"measure/candle/tiny/p16g8".to_string()),
        "{ran:?}"
    );
    let lb = manifest(&ws, "measure/llamabench/tiny/p16g8");
    assert_eq!(lb["actual"]["dtype"], "q8_0", "{lb}");
    assert_eq!(
        manifest(&ws, "measure/candle/tiny/p16g8")["actual"]["dtype"],
        "q8_0"
    );
    // No host path reaches the stored configuration.
    for c in lb["imported"]["configuration"].as_array().unwrap() {
        let name = c["model_filename"].as_str().unwrap();
        assert!(!name.contains('/'), "{c}");
    }

    let lock: Value = serde_json::from_slice(&std::fs::read(ws.lock_path()).unwrap()).unwrap();
    let digest = lock["nodes"]["validate"]["outputs"]["checks"]
        .as_str()
        .expect("validate has no checks")
        .to_string();
    let bytes = std::fs::read(ws.store().join("objects").join(&digest[..2]).join(&digest)).unwrap();
    let checks: Value = serde_json::from_slice(&bytes).unwrap();
    let checks = checks["checks"].as_array().unwrap();
    for c in checks {
        let check = c["check"].as_str().unwrap();
        if check.starts_with("output_") {
            let cell = c["cell"].as_str().unwrap();
            assert!(
                cell.starts_with("candle/"),
                "an imported cell took part in output invariance: {c}"
            );
        }
    }
    // The imported cell keeps its summaries.
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(!md.contains("output_divergence"), "{md}");
}

/// GuideLLM's report and optimum-benchmark's benchmark.json, both real,
/// beside a simulated backend.
const SPEC_PEERS: &str = r#"assay: 1
id: e2e-imported-peers
title: GuideLLM and optimum-benchmark results beside simulated ones
question: Which configuration decodes fastest?
decision: Pick the fastest configuration.
boundary: { warmup_runs: 1, repetitions: 3 }
scenarios:
  - { name: p16g8, prompt_tokens: 16, batch: 1, gen_tokens: 8 }
models:
  - { name: tiny, synthetic: { arch: llama, layers: 2, hidden: 128, heads: 4, kv_heads: 2, vocab: 16000, max_positions: 512, seed: 1 } }
backends:
  - { name: sim, kind: simulated, simulated: { seed: 7 } }
  - name: guidellm
    kind: imported
    imported: { file: guidellm-benchmarks.json, format: guidellm, models: { tiny: assay/tiny } }
  - name: optimum
    kind: imported
    dtype: f32
    imported: { file: optimum-benchmark/benchmark.json, format: optimum-benchmark, models: { tiny: assay-tiny } }
validate: { max_cv: 5 }
outputs: { dir: reports/e2e, formats: [md, json] }
"#;

fn peers_workspace() -> Workspace {
    let ws = Workspace::with_spec(SPEC_PEERS);
    std::fs::copy(
        format!("{FIXTURES}/guidellm-benchmarks.json"),
        ws.path().join("guidellm-benchmarks.json"),
    )
    .unwrap();
    std::fs::create_dir_all(ws.path().join("optimum-benchmark")).unwrap();
    for f in ["benchmark.json", "benchmark_report.json"] {
        std::fs::copy(
            format!("{FIXTURES}/optimum-benchmark/{f}"),
            ws.path().join("optimum-benchmark").join(f),
        )
        .unwrap();
    }
    ws
}

#[test]
fn guidellm_and_optimum_benchmark_cells_run_and_their_aggregates_are_labelled() {
    let ws = peers_workspace();
    let result = ws.run(&[]);
    let ran = measure_nodes(Workspace::nodes_with(&result, "ran"));
    for cell in ["measure/guidellm/tiny/p16g8", "measure/optimum/tiny/p16g8"] {
        assert!(
            ran.contains(&cell.to_string()),
            "{cell} did not run: {ran:?}"
        );
    }
    let g = manifest(&ws, "measure/guidellm/tiny/p16g8");
    assert_eq!(g["evidence"], "imported");
    assert_eq!(g["imported"]["tool"], "GuideLLM");
    assert_eq!(g["imported"]["tool_version"], "0.8.1");
    assert_eq!(g["imported"]["grain"], "requests");
    assert!(
        g["imported"]["aggregates"][0]
            .as_str()
            .is_some_and(|a| a.starts_with("decode:")),
        "{g}"
    );
    assert!(g["imported"]["machine"]["platform"].is_string(), "{g}");
    let config = g["imported"]["configuration"].to_string();
    assert!(
        !config.contains("http://") && !config.contains("/tmp/"),
        "{config}"
    );
    assert!(config.contains("aggregates"), "{config}");

    let o = manifest(&ws, "measure/optimum/tiny/p16g8");
    assert_eq!(o["imported"]["tool"], "optimum-benchmark");
    assert_eq!(o["imported"]["tool_version"], "0.6.0");
    assert_eq!(o["imported"]["grain"], "iterations");
    assert!(o["imported"]["machine"]["cpu_count"].is_u64(), "{o}");
    assert_eq!(o["actual"]["device"], "cpu", "{o}");
    assert_eq!(o["actual"]["dtype"], "f32", "{o}");
    let config = o["imported"]["configuration"].to_string();
    assert!(
        config.contains("\"p99\"") && !config.contains("/tmp/"),
        "{config}"
    );

    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(
        md.contains("Imported results"),
        "no imported section:\n{md}"
    );
    assert!(
        md.contains("GuideLLM 0.8.1") && md.contains("optimum-benchmark 0.6.0"),
        "the report does not name the tools:\n{md}"
    );
    assert!(
        md.contains("iterations") && md.contains("decode step percentiles"),
        "the report does not say what the aggregates cannot give:\n{md}"
    );

    let again = ws.run(&[]);
    assert_eq!(
        measure_nodes(Workspace::nodes_with(&again, "ran")),
        Vec::<String>::new()
    );
}

fn check_fails(ws: &Workspace) -> String {
    let out = assay(&["check", ws.spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_bad_guidellm_report_is_exit_2_at_the_file_and_field() {
    let ws = peers_workspace();
    let path = ws.path().join("guidellm-benchmarks.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["benchmarks"][0]["requests"]["successful"][1]["request_latency"] = "x".into();
    std::fs::write(&path, v.to_string()).unwrap();
    let err = check_fails(&ws);
    assert!(err.contains("guidellm-benchmarks.json"), "{err}");
    assert!(
        err.contains("record 1") && err.contains("`requests.successful[1].request_latency`"),
        "{err}"
    );

    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["metadata"]["version"] = 3.into();
    std::fs::write(&path, v.to_string()).unwrap();
    let err = check_fails(&ws);
    assert!(
        err.contains("`metadata.version`") && err.contains("unknown version"),
        "{err}"
    );

    std::fs::write(&path, &text[..text.len() / 3]).unwrap();
    assert!(check_fails(&ws).contains("truncated"));
    std::fs::copy(format!("{FIXTURES}/vllm-bench-serve.json"), &path).unwrap();
    let err = check_fails(&ws);
    assert!(err.contains("vLLM"), "{err}");
}

#[test]
fn a_bad_optimum_benchmark_file_is_exit_2_at_the_file_and_field() {
    let ws = peers_workspace();
    let path = ws.path().join("optimum-benchmark/benchmark.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["report"]["decode"]["latency"]["values"][0] = "x".into();
    std::fs::write(&path, v.to_string()).unwrap();
    let err = check_fails(&ws);
    assert!(err.contains("optimum-benchmark/benchmark.json"), "{err}");
    assert!(err.contains("`report.decode.latency.values[0]`"), "{err}");

    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["config"]["environment"]["optimum_benchmark_version"] = "0.9.0".into();
    std::fs::write(&path, v.to_string()).unwrap();
    let err = check_fails(&ws);
    assert!(err.contains("unknown version"), "{err}");

    std::fs::write(&path, &text[..text.len() / 3]).unwrap();
    assert!(check_fails(&ws).contains("truncated"));
    // The report alone: pointed to benchmark.json.
    std::fs::copy(
        ws.path().join("optimum-benchmark/benchmark_report.json"),
        &path,
    )
    .unwrap();
    let err = check_fails(&ws);
    assert!(
        err.contains("`config`") && err.contains("give benchmark.json"),
        "{err}"
    );
    std::fs::copy(format!("{FIXTURES}/guidellm-benchmarks.json"), &path).unwrap();
    let err = check_fails(&ws);
    assert!(err.contains("GuideLLM"), "{err}");
}
