//! Validation end to end: monotonicity (Appendix AH.3) caught on a
//! simulated backend made non-monotonic (`inject.slow_scenario`) while the
//! clean backend's cells pass, and in-process SLOs (Appendix Q.1) judged
//! from a limit some runs miss, without any measurement rerunning.

use assay_core::tables::{self, EventRow};
use serde_json::Value;

use crate::support::{Workspace, assay};

/// Two configurations over a prompt pair (p16, p64) and a generation pair
/// (p16, g32). `slow` runs every forward pass of p16 8x slower: its p64
/// then prefills faster than its p16, and its g32 finishes sooner.
const SPEC: &str = "assay: 1
id: e2e-validation
title: Validation
question: Which configuration meets the chat SLO?
decision: Pick one that meets it.
boundary: { warmup_runs: 1, repetitions: 5 }
scenarios:
  - { name: p16, prompt_tokens: 16, batch: 1, gen_tokens: 8 }
  - { name: p64, prompt_tokens: 64, batch: 1, gen_tokens: 8 }
  - { name: g32, prompt_tokens: 16, batch: 1, gen_tokens: 32 }
models:
  - { name: tiny, synthetic: { arch: llama, layers: 2, hidden: 64, heads: 4, vocab: 1000, seed: 1 } }
backends:
  - { name: clean, kind: simulated, simulated: { seed: 7, noise_cv: 0.05 } }
  - { name: slow, kind: simulated, simulated: { seed: 7, noise_cv: 0.05, inject: { slow_scenario: { scenario: p16, factor: 8 } } } }
outputs: { dir: reports/e2e, formats: [md, json] }
";

fn output(ws: &Workspace, node: &str, name: &str) -> Vec<u8> {
    let lock: Value = serde_json::from_slice(&std::fs::read(ws.lock_path()).unwrap()).unwrap();
    let digest = lock["nodes"][node]["outputs"][name]
        .as_str()
        .unwrap_or_else(|| panic!("{node} has no output {name}"));
    std::fs::read(ws.store().join("objects").join(&digest[..2]).join(digest)).unwrap()
}

/// Validate's checks of one kind: (cell, passed, detail).
fn checks(ws: &Workspace, kind: &str) -> Vec<(String, bool, String)> {
    let checks: Value = serde_json::from_slice(&output(ws, "validate", "checks")).unwrap();
    checks["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == kind)
        .map(|c| {
            (
                c["cell"].as_str().unwrap().to_string(),
                c["passed"].as_bool().unwrap(),
                c["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn claim(report: &Value, id: &str) -> Value {
    report["claims"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no claim {id}"))
        .clone()
}

#[test]
fn a_non_monotonic_backend_is_caught_and_a_clean_one_is_not() {
    let ws = Workspace::with_spec(SPEC);
    let result = ws.run(&["--no-progress"]);
    assert_eq!(result["failed"], 0, "{result}");

    let prompt = checks(&ws, "monotonic_prompt");
    let gens = checks(&ws, "monotonic_gen");
    // Clean: every cell compared along each dimension it shares, none
    // with an exception (a simulated latency grows with length).
    for (kind, list, cells) in [
        ("prompt", &prompt, ["clean/tiny/p16", "clean/tiny/p64"]),
        ("gen", &gens, ["clean/tiny/p16", "clean/tiny/g32"]),
    ] {
        for cell in cells {
            let c = list
                .iter()
                .find(|c| c.0 == cell)
                .unwrap_or_else(|| panic!("{kind} {cell}: {list:?}"));
            assert!(c.1, "{kind}: {c:?}");
        }
    }
    // Slow: both cells of each pair carry the exception, with its reason.
    for (list, cells, reason) in [
        (
            &prompt,
            ["slow/tiny/p16", "slow/tiny/p64"],
            "non_monotonic:prompt:prefill: slow/tiny/p64 at 64 prompt tokens",
        ),
        (
            &gens,
            ["slow/tiny/p16", "slow/tiny/g32"],
            "non_monotonic:gen:e2e: slow/tiny/g32 at 32 generated tokens",
        ),
    ] {
        for cell in cells {
            let c = list.iter().find(|c| c.0 == cell).unwrap();
            assert!(!c.1 && c.2.starts_with(reason), "{c:?}");
        }
    }
    // Flagged by the checks, not excluded: every run keeps its verdict.
    let rows: Vec<assay_core::tables::ValidationRow> =
        tables::from_parquet(&output(&ws, "validate", "validation")).unwrap();
    assert!(rows.iter().all(|r| r.status == "ok"), "{rows:?}");

    // The report counts the exceptions as a claim sourced from the checks,
    // and lists the injected fault as caught where it was exercised.
    let report: Value = serde_json::from_slice(&ws.report("report.json")).unwrap();
    let exceptions = claim(&report, "validation/monotonicity_exceptions");
    assert_eq!(exceptions["value"], 3.0, "{exceptions}");
    assert_eq!(exceptions["source"]["artifact"], "checks");
    assert_eq!(
        claim(&report, "validation/injected_faults_caught")["value"],
        1.0
    );
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(md.contains("### Monotonicity"), "{md}");
    assert!(
        md.contains("3 of 6 compared cells have an exception"),
        "{md}"
    );
    assert!(
        md.contains("| slow/tiny/p16 | slow_scenario: every forward pass of scenario p16 takes 8x as long | monotonic_prompt: non_monotonic:prompt:prefill, non_monotonic:prompt:ttft |"),
        "{md}"
    );
    assert!(
        md.contains("not exercised: this cell runs scenario p64, not p16"),
        "{md}"
    );
}

/// Steady e2e ms of one cell, by repetition order.
fn steady_e2e(ws: &Workspace, cell: &str) -> Vec<f64> {
    let events: Vec<EventRow> =
        tables::events_from_parquet(&output(ws, &format!("measure/{cell}"), "events")).unwrap();
    events
        .iter()
        .filter(|e| e.phase == "e2e" && !e.warmup)
        .map(|e| e.ns as f64 / 1e6)
        .collect()
}

#[test]
fn an_slo_some_runs_miss_is_reported_without_remeasuring() {
    let ws = Workspace::with_spec(SPEC);
    ws.run(&["--no-progress"]);
    // A limit between the clean p64 cell's runs: some meet it, some miss.
    let mut e2e = steady_e2e(&ws, "clean/tiny/p64");
    e2e.sort_by(f64::total_cmp);
    let limit = (e2e[1] + e2e[2]) / 2.0;
    let met = e2e.iter().filter(|v| **v <= limit).count();
    assert_eq!(met, 2);
    ws.edit(
        "outputs:",
        &format!("slo: {{ e2e_ms: {limit}, scenarios: {{ g32: {{ e2e_ms: 1.0e9 }} }} }}\noutputs:"),
    );
    let result = ws.run(&["--no-progress"]);
    // SLOs judge, they do not measure.
    let ran = Workspace::nodes_with(&result, "ran");
    assert!(ran.iter().all(|n| !n.starts_with("measure/")), "{ran:?}");
    assert!(ran.contains(&"validate".to_string()), "{ran:?}");

    let slo = checks(&ws, "slo");
    let p64 = slo.iter().find(|c| c.0 == "clean/tiny/p64").unwrap();
    assert!(!p64.1);
    assert!(
        p64.2.starts_with("2 of 5 steady ok runs meet e2e <= "),
        "{p64:?}"
    );
    // The override's generous limit is met by every run.
    assert!(
        slo.iter().filter(|c| c.0.ends_with("/g32")).all(|c| c.1),
        "{slo:?}"
    );

    let report: Value = serde_json::from_slice(&ws.report("report.json")).unwrap();
    let attainment = claim(&report, "validation/slo/clean/tiny/p64/attainment");
    assert_eq!(attainment["value"], 0.4);
    assert_eq!(attainment["source"]["artifact"], "slo");
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(md.contains("### Service levels (in process)"), "{md}");
    assert!(md.contains("| clean/tiny/p64 | - | - |"), "{md}");
    assert!(md.contains("| 2 of 5 | 0.400 | 0.950 | missed |"), "{md}");
    // Every number these sections print is a claim or a table row.
    let json: assay_report::ReportJson = serde_json::from_value(report).unwrap();
    let unbacked = assay_report::backing::unbacked_numbers(&md, &json);
    assert!(unbacked.is_empty(), "{unbacked:?}");
}

#[test]
fn bad_slo_values_are_located_errors() {
    let spec = SPEC.replace(
        "outputs:",
        "slo: { ttft_ms: -5, attainment: 1.5, scenarios: { nope: { e2e_ms: 10 } } }\noutputs:",
    );
    let ws = Workspace::with_spec(&spec);
    let out = assay(&["check", ws.spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "spec.yaml:16:17: error: slo.ttft_ms: ttft_ms must be a finite number of ms > 0",
        "spec.yaml:16:33: error: slo.attainment: attainment must be within (0, 1]",
        "spec.yaml:16:51: error: slo.scenarios.nope: no scenario named \"nope\" in this spec (scenarios: p16, p64, g32)",
    ] {
        assert!(err.contains(expected), "{expected}\n{err}");
    }
    let bad_inject = SPEC.replace("scenario: p16, factor: 8", "scenario: p99, factor: 1");
    let ws = Workspace::with_spec(&bad_inject);
    let out = assay(&["check", ws.spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("slow_scenario.factor must be >= 2"), "{err}");
    assert!(
        err.contains("no scenario named \"p99\" in this spec"),
        "{err}"
    );
}
