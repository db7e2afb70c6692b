//! The pipeline's own trust report (TR118) end to end: the shipped spec
//! `specs/program/tr118-validation.yaml` injects a short run, attribution
//! drift and a dead power sensor into simulated cells, and validation
//! must catch each while leaving the clean cells ok.

use assay_core::tables::{self, EnergyRow, EventRow, ValidationRow};
use serde_json::Value;

use crate::support::{Workspace, assay};

const SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../specs/program/tr118-validation.yaml"
);

const CLEAN: [&str; 2] = ["sim", "sim-f16"];
const DEAD_SENSOR: &str = "sim-dead-sensor";

/// The shipped spec, writing its report where `Workspace::report` reads.
fn spec_text() -> String {
    let text = std::fs::read_to_string(SPEC).unwrap();
    assert!(text.contains("dir: reports/tr118-validation"));
    text.replace("dir: reports/tr118-validation", "dir: reports/e2e")
}

fn cell(backend: &str) -> String {
    format!("{backend}/llama-8x512/chat")
}

fn object(ws: &Workspace, digest: &str) -> Vec<u8> {
    std::fs::read(ws.store().join("objects").join(&digest[..2]).join(digest)).unwrap()
}

/// An output of a node, by its digest in the lockfile.
fn output(ws: &Workspace, node: &str, name: &str) -> Vec<u8> {
    let lock: Value = serde_json::from_slice(&std::fs::read(ws.lock_path()).unwrap()).unwrap();
    let digest = lock["nodes"][node]["outputs"][name]
        .as_str()
        .unwrap_or_else(|| panic!("{node} has no output {name}"));
    object(ws, digest)
}

fn manifest(ws: &Workspace, backend: &str) -> Value {
    let node = format!("measure/{}", cell(backend));
    serde_json::from_slice(&output(ws, &node, "manifest")).unwrap()
}

fn validation(ws: &Workspace) -> Vec<ValidationRow> {
    tables::from_parquet(&output(ws, "validate", "validation")).unwrap()
}

fn runs_of<'a>(rows: &'a [ValidationRow], backend: &str) -> Vec<&'a ValidationRow> {
    let rows: Vec<&ValidationRow> = rows.iter().filter(|r| r.cell == cell(backend)).collect();
    // One warmup and four timed runs per cell.
    assert_eq!(rows.len(), 5, "{backend}: {rows:?}");
    rows
}

/// The failed checks of one cell, as (check, detail).
fn failed_checks(ws: &Workspace, backend: &str) -> Vec<(String, String)> {
    let checks: Value = serde_json::from_slice(&output(ws, "validate", "checks")).unwrap();
    checks["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["cell"] == cell(backend).as_str() && c["passed"] == false)
        .filter(|c| c["check"] != "evidence")
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_string(),
                c["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_injected_fault_is_caught_and_clean_cells_stay_ok() {
    let ws = Workspace::with_spec(&spec_text());
    let result = ws.run(&["--no-progress"]);
    assert_eq!(result["failed"], 0, "{result}");
    let rows = validation(&ws);

    for backend in CLEAN.iter().chain(&[DEAD_SENSOR]) {
        for r in runs_of(&rows, backend) {
            // A dead power sensor does not make a latency wrong.
            assert_eq!((r.status.as_str(), r.reasons.as_str()), ("ok", ""), "{r:?}");
        }
    }
    // The short run alone is degraded, for exactly its fault; its events
    // show why: 48 tokens, so 47 decode steps instead of 63.
    for r in runs_of(&rows, "sim-short") {
        let expected = if r.repetition == 2 {
            ("degraded", "short_generation")
        } else {
            ("ok", "")
        };
        assert_eq!((r.status.as_str(), r.reasons.as_str()), expected, "{r:?}");
    }
    let events: Vec<EventRow> =
        tables::events_from_parquet(&output(&ws, "measure/sim-short/llama-8x512/chat", "events"))
            .unwrap();
    let decode_steps = |rep: u32| {
        events
            .iter()
            .filter(|e| e.repetition == rep && e.phase == "decode")
            .count()
    };
    assert_eq!((decode_steps(1), decode_steps(2)), (63, 47));
    // Drift degrades every run of its cell, and the manifest shows what ran.
    for r in runs_of(&rows, "sim-drift") {
        assert_eq!(
            (r.status.as_str(), r.reasons.as_str()),
            ("degraded", "attribution_drift:dtype"),
            "{r:?}"
        );
    }
    let drift = manifest(&ws, "sim-drift");
    assert_eq!(
        (&drift["requested"]["dtype"], &drift["actual"]["dtype"]),
        (&"f16".into(), &"f32".into())
    );

    // What ran shows in the numbers too: the drifted cell decodes at the
    // clean f32 cell's speed, not at the f16 one's it asked for.
    let decode_ns = |backend: &str| -> f64 {
        let node = format!("measure/{}", cell(backend));
        let events = tables::events_from_parquet(&output(&ws, &node, "events")).unwrap();
        let steps: Vec<f64> = events
            .iter()
            .filter(|e| e.phase == "decode" && !e.warmup)
            .map(|e| e.ns as f64)
            .collect();
        steps.iter().sum::<f64>() / steps.len() as f64
    };
    let (f32_ns, f16_ns, drift_ns) = (
        decode_ns("sim"),
        decode_ns("sim-f16"),
        decode_ns("sim-drift"),
    );
    assert!(
        (drift_ns / f32_ns - 1.0).abs() < 0.1,
        "{drift_ns} vs f32 {f32_ns}"
    );
    assert!(drift_ns > 1.5 * f16_ns, "{drift_ns} vs f16 {f16_ns}");

    // The dead sensor: every window of its cell is withheld, and the
    // coverage check names the sensor; clean cells get attributable windows.
    let energy: Vec<EnergyRow> = tables::from_parquet(&output(&ws, "validate", "energy")).unwrap();
    let windows: Vec<&EnergyRow> = energy
        .iter()
        .filter(|e| e.cell == cell(DEAD_SENSOR))
        .collect();
    assert!(!windows.is_empty());
    assert!(
        windows
            .iter()
            .all(|w| w.status == "no_data" && w.energy_j.is_none() && w.samples == 0),
        "{windows:?}"
    );
    let failed = failed_checks(&ws, DEAD_SENSOR);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "energy_coverage");
    assert!(
        failed[0]
            .1
            .starts_with("sensor_dead: no power sample after the idle baseline"),
        "{failed:?}"
    );
    for backend in CLEAN {
        assert!(failed_checks(&ws, backend).is_empty(), "{backend}");
        assert!(
            energy
                .iter()
                .any(|e| e.cell == cell(backend) && e.phase == "e2e" && e.status == "valid")
        );
    }

    // Every injected fault says so in its manifest; evidence stays simulated.
    for (backend, fault) in [
        (
            "sim-short",
            "short_run: run 2 stops after 48 generated tokens",
        ),
        ("sim-drift", "attribution_drift: reports dtype f32"),
        (
            "sim-dead-sensor",
            "dead_sensor: no power samples from model load on",
        ),
    ] {
        let m = manifest(&ws, backend);
        assert_eq!(
            m["requested"]["injected"],
            serde_json::json!([fault]),
            "{backend}"
        );
        assert_eq!(m["evidence"], "simulated");
    }
    for backend in CLEAN {
        assert!(
            manifest(&ws, backend)["requested"]
                .get("injected")
                .is_none()
        );
    }

    // The report says each was caught, and by what.
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(
        md.contains("they are not real faults): 3 of 3 caught by validation."),
        "{md}"
    );
    assert!(!md.contains("NOT CAUGHT"), "{md}");
    for line in [
        "| sim-short/llama-8x512/chat | short_run: run 2 stops after 48 generated tokens | short_generation (1 runs degraded) |",
        "| sim-drift/llama-8x512/chat | attribution_drift: reports dtype f32 | attribution_drift:dtype (5 runs degraded) |",
        "| sim-dead-sensor/llama-8x512/chat | dead_sensor: no power samples from model load on | energy_coverage: sensor_dead: no power sample after the idle baseline",
    ] {
        assert!(md.contains(line), "no {line:?} in {md}");
    }
    let json: Value = serde_json::from_slice(&ws.report("report.json")).unwrap();
    let caught = json["claims"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "validation/injected_faults_caught")
        .expect("no injected-faults claim");
    assert_eq!(
        (caught["value"].as_f64(), &caught["evidence"]),
        (Some(3.0), &"simulated".into())
    );
}

#[test]
fn without_the_injections_the_same_cells_are_clean() {
    // The catches come from the injected faults, not from the cells: the
    // same spec without `inject` validates every run ok and every sensor live.
    let mut text = spec_text();
    for inject in [
        ", inject: { short_run: { run: 2, tokens: 48 } }",
        ", inject: { attribution_drift: { dtype: f32 } }",
        ", inject: { dead_sensor: true }",
    ] {
        assert!(text.contains(inject), "the spec has no {inject:?}");
        text = text.replace(inject, "");
    }
    let ws = Workspace::with_spec(&text);
    ws.run(&["--no-progress"]);
    let rows = validation(&ws);
    assert_eq!(rows.len(), 25);
    assert!(rows.iter().all(|r| r.status == "ok"), "{rows:?}");
    for backend in ["sim", "sim-short", "sim-dead-sensor"] {
        assert!(failed_checks(&ws, backend).is_empty(), "{backend}");
    }
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(!md.contains("Faults injected on purpose"), "{md}");
    assert!(!md.contains("| injected fault |"), "{md}");
}

#[test]
fn an_injection_that_could_not_fire_is_refused() {
    let text = spec_text()
        .replace(
            "short_run: { run: 2, tokens: 48 }",
            "short_run: { run: 2, tokens: 64 }",
        )
        .replace(
            "attribution_drift: { dtype: f32 }",
            "attribution_drift: { dtype: f16 }",
        );
    let ws = Workspace::with_spec(&text);
    let out = assay(&["check", ws.spec.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("short_run.tokens 64 is not below any scenario's gen_tokens"),
        "{err}"
    );
    assert!(
        err.contains("attribution_drift.dtype is the requested dtype: nothing would drift"),
        "{err}"
    );
}

#[test]
fn a_dead_sensor_without_energy_is_not_exercised_rather_than_missed() {
    let energy = "energy: { poll_ms: 5, min_samples: 3, idle_ms: 50 }\n";
    let text = spec_text();
    assert!(text.contains(energy));
    let ws = Workspace::with_spec(&text.replace(energy, ""));
    ws.run(&["--no-progress"]);
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(
        md.contains("they are not real faults): 2 of 2 caught by validation."),
        "{md}"
    );
    let row = format!("| {} | dead_sensor: ", cell(DEAD_SENSOR));
    let line = md
        .lines()
        .find(|l| l.starts_with(&row))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(
        line.contains("not exercised: the spec has no `energy` section"),
        "{line}"
    );
}
