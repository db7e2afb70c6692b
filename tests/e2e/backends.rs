//! The optional in-process backends (cargo features `ort`, `tch`) through
//! the real binary. Compiled only with their feature; they fail, never
//! skip, when the library is missing (CI installs both:
//! scripts/install-native-libs.sh).

#[cfg(any(feature = "ort", feature = "tch"))]
use serde_json::Value;

#[cfg(any(feature = "ort", feature = "tch"))]
use crate::support::Workspace;

/// A spec with candle as the reference and the given extra backends, on a
/// tiny llama and a tiny GPT-2.
#[cfg(any(feature = "ort", feature = "tch"))]
fn spec_with(backends: &str) -> Workspace {
    Workspace::with_spec(&format!(
        "assay: 1
id: backends
title: backends
question: q
decision: d
boundary: {{ warmup_runs: 1, repetitions: 3 }}
scenarios:
  - {{ name: s, prompt_tokens: 12, batch: 2, gen_tokens: 6 }}
models:
  - {{ name: llama, synthetic: {{ arch: llama, layers: 2, hidden: 64, heads: 4, kv_heads: 2, vocab: 300, max_positions: 64, seed: 3 }} }}
  - {{ name: gpt2, synthetic: {{ arch: gpt2, layers: 2, hidden: 64, heads: 4, vocab: 300, max_positions: 64, seed: 4 }} }}
backends:
  - {{ name: candle, kind: candle, threads: 1 }}
{backends}
validate: {{ max_cv: 10 }}
outputs: {{ dir: reports/e2e, formats: [md, json] }}
"
    ))
}

#[cfg(any(feature = "ort", feature = "tch"))]
fn object_json(ws: &Workspace, digest: &str) -> Value {
    let path = ws.store().join("objects").join(&digest[..2]).join(digest);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The lockfile's output digest of `node`'s `name`.
#[cfg(any(feature = "ort", feature = "tch"))]
fn output(ws: &Workspace, node: &str, name: &str) -> String {
    let lock: Value = serde_json::from_slice(&std::fs::read(ws.lock_path()).unwrap()).unwrap();
    lock["nodes"][node]["outputs"][name]
        .as_str()
        .unwrap_or_else(|| panic!("{node} has no output {name}"))
        .to_string()
}

/// Every measured cell ok, and every non-candle cell with an
/// `output_invariance` check that passed against candle.
#[cfg(any(feature = "ort", feature = "tch"))]
fn assert_invariant_and_ok(ws: &Workspace, cells: &[&str]) {
    let checks = object_json(ws, &output(ws, "validate", "checks"));
    let checks = checks["checks"].as_array().unwrap();
    for cell in cells {
        let check = checks
            .iter()
            .find(|c| c["cell"] == *cell && c["check"] == "output_invariance")
            .unwrap_or_else(|| panic!("no output_invariance check for {cell}"));
        assert_eq!(check["passed"], true, "{check}");
        let model = cell.split('/').nth(1).unwrap();
        assert!(
            check["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("candle/{model}/s")),
            "{check}"
        );
        // Attribution as requested, and every run with its phases
        // (prefill, ttft, each decode step, e2e) in order.
        for name in [
            "attribution",
            "phases_complete",
            "fixed_length_decode",
            "model_load_timed",
        ] {
            let c = checks
                .iter()
                .find(|c| c["cell"] == *cell && c["check"] == name)
                .unwrap_or_else(|| panic!("no {name} check for {cell}"));
            assert_eq!(c["passed"], true, "{c}");
        }
    }
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(md.contains("### Output invariance"), "{md}");
    assert!(md.contains("0 of"), "no divergent cell expected: {md}");
}

#[cfg(feature = "ort")]
#[test]
fn ort_runs_the_onnx_export_with_and_without_graph_optimisation() {
    let ws = spec_with(
        "  - { name: ort-off, kind: ort, threads: 1, ort: { graph_optimization: disabled } }
  - { name: ort-all, kind: ort, threads: 1, ort: { graph_optimization: all } }",
    );
    let result = ws.run(&["--no-progress"]);
    assert_eq!(result["failed"], 0, "{result}");
    assert_invariant_and_ok(
        &ws,
        &[
            "ort-off/llama/s",
            "ort-all/llama/s",
            "ort-off/gpt2/s",
            "ort-all/gpt2/s",
        ],
    );
    for model in ["llama", "gpt2"] {
        // One export per model, shared by both configurations.
        output(&ws, &format!("export/{model}/onnx"), "onnx");
        let off = object_json(
            &ws,
            &output(&ws, &format!("measure/ort-off/{model}/s"), "manifest"),
        );
        let all = object_json(
            &ws,
            &output(&ws, &format!("measure/ort-all/{model}/s"), "manifest"),
        );
        for m in [&off, &all] {
            assert_eq!(m["actual"]["library"], "onnxruntime");
            assert_eq!(m["actual"]["device"], "cpu");
            assert_eq!(m["actual"]["providers"]["ran_on"], "cpu");
            assert_eq!(m["weights"]["weights_format"], "onnx");
        }
        // The compiled path shows its fusions; the uncompiled one ran the
        // graph as exported.
        let (before, after) = (
            all["actual"]["compiler"]["nodes_before"].as_u64().unwrap(),
            all["actual"]["compiler"]["nodes_after"].as_u64().unwrap(),
        );
        assert!(after < before, "{model}: {before} -> {after}");
        assert_eq!(all["actual"]["compiler"]["real"], true);
        assert_eq!(all["requested"]["compiled"], "onnxruntime:all");
        assert!(off["requested"].get("compiled").is_none());
        assert_eq!(
            off["actual"]["compiler"]["nodes_after"],
            off["actual"]["compiler"]["nodes_before"]
        );
    }
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(
        md.contains("### Compiled paths and execution providers"),
        "{md}"
    );
    // A second run executes nothing.
    let again = ws.run(&["--no-progress"]);
    assert_eq!(again["ran"], 0, "{again}");
}

#[cfg(feature = "ort")]
#[test]
fn a_cuda_request_that_falls_back_to_the_cpu_is_label_drift() {
    let ws = spec_with(
        "  - { name: ort-cuda, kind: ort, device: 'cuda:0', threads: 1, ort: { providers: [cuda, cpu] } }",
    );
    let result = ws.run(&["--no-progress"]);
    assert_eq!(result["failed"], 0, "{result}");
    let manifest = object_json(&ws, &output(&ws, "measure/ort-cuda/llama/s", "manifest"));
    let providers = &manifest["actual"]["providers"];
    assert_eq!(providers["requested"], serde_json::json!(["cuda", "cpu"]));
    assert_eq!(providers["ran_on"], "cpu", "{providers}");
    assert_eq!(manifest["actual"]["device"], "cpu");
    let checks = object_json(&ws, &output(&ws, "validate", "checks"));
    let drift = checks["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cell"] == "ort-cuda/llama/s" && c["check"] == "attribution")
        .unwrap()
        .clone();
    assert_eq!(drift["passed"], false);
    let detail = drift["detail"].as_str().unwrap();
    assert!(
        detail.contains("device") && detail.contains("execution_provider"),
        "{detail}"
    );
}

#[cfg(feature = "ort")]
#[test]
fn a_missing_onnx_runtime_library_is_one_clear_line_at_check() {
    let ws = spec_with("  - { name: ort, kind: ort, threads: 1 }");
    let out = crate::support::assay_cmd()
        .args(["check", ws.spec.to_str().unwrap()])
        .env(
            "ORT_DYLIB_PATH",
            ws.path().join("no-such-libonnxruntime.so"),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ONNX Runtime library not found"),
        "{stderr}"
    );
    assert!(
        stderr.contains("scripts/install-native-libs.sh"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[cfg(feature = "tch")]
#[test]
fn tch_eager_and_torchscript_match_candle_and_torchscript_records_its_trace() {
    let ws = spec_with(
        "  - { name: tch-eager, kind: tch, threads: 1, tch: { mode: eager } }
  - { name: tch-script, kind: tch, threads: 1, tch: { mode: torchscript } }",
    );
    let result = ws.run(&["--no-progress"]);
    assert_eq!(result["failed"], 0, "{result}");
    assert_invariant_and_ok(
        &ws,
        &[
            "tch-eager/llama/s",
            "tch-script/llama/s",
            "tch-eager/gpt2/s",
            "tch-script/gpt2/s",
        ],
    );
    for model in ["llama", "gpt2"] {
        let eager = object_json(
            &ws,
            &output(&ws, &format!("measure/tch-eager/{model}/s"), "manifest"),
        );
        let script = object_json(
            &ws,
            &output(&ws, &format!("measure/tch-script/{model}/s"), "manifest"),
        );
        assert_eq!(eager["actual"]["library"], "libtorch");
        assert_eq!(eager["actual"]["threads"], 1);
        assert!(eager["actual"].get("compiler").is_none());
        let evidence = &script["actual"]["compiler"];
        assert_eq!(evidence["kind"], "torchscript-trace", "{evidence}");
        assert!(
            evidence["nodes_before"].as_u64().unwrap() > 10,
            "{evidence}"
        );
        assert_eq!(evidence["real"], true);
        assert_eq!(script["requested"]["compiled"], "torchscript");
    }
}

/// Without the feature, a spec naming the backend is refused at check with
/// the feature to build.
#[cfg(not(all(feature = "ort", feature = "tch")))]
#[test]
fn a_backend_this_build_lacks_is_refused_at_check_naming_the_feature() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.yaml");
    let kind = if cfg!(feature = "ort") { "tch" } else { "ort" };
    std::fs::write(
        &spec,
        format!(
            "assay: 1
id: x
title: x
question: q
decision: d
boundary: {{ warmup_runs: 0, repetitions: 1 }}
scenarios: [{{ name: s, prompt_tokens: 4, batch: 1, gen_tokens: 2 }}]
models: [{{ name: m, synthetic: {{ arch: llama, layers: 1, hidden: 8, heads: 2, vocab: 10 }} }}]
backends: [{{ name: b, kind: {kind} }}]
outputs: {{ dir: reports/x, formats: [md] }}
"
        ),
    )
    .unwrap();
    let out = crate::support::assay(&["check", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("built without the `{kind}` backend"))
            && stderr.contains(&format!("--features {kind}")),
        "{stderr}"
    );
}

#[cfg(feature = "ort")]
#[test]
fn provider_lists_and_devices_that_cannot_match_are_refused_at_check() {
    for (backend, expected) in [
        (
            "{ name: o, kind: ort, device: cuda, ort: { providers: [cuda, cpu] } }",
            "`cpu` or `cuda:0`",
        ),
        (
            "{ name: o, kind: ort, ort: { providers: [cpu, cuda] } }",
            "cpu can only be the last execution provider",
        ),
        (
            "{ name: o, kind: ort, device: cpu, ort: { providers: [cuda, cpu] } }",
            "does not match the execution providers",
        ),
        (
            "{ name: o, kind: ort, device: 'cuda:0' }",
            "does not match the execution providers",
        ),
    ] {
        let ws = spec_with(&format!("  - {backend}"));
        let out = crate::support::assay(&["check", ws.spec.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{backend}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{backend}: {stderr}");
    }
}
