//! Programs: member specs planned into one DAG, shared nodes run once, a
//! conclusive report whose claims trace into the members, and located
//! errors for bad programs.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{Workspace, assay, assay_cmd};

const SIM: &str = include_str!("specs/sim.yaml");

/// A member spec: the simulated fixture under another id, report folder,
/// and with `edit` applied.
fn member(id: &str, edit: impl Fn(String) -> String) -> String {
    let text = SIM
        .replace("id: e2e-sim", &format!("id: {id}"))
        .replace("dir: reports/e2e", &format!("dir: reports/{id}"));
    edit(text)
}

const PROGRAM: &str = "\
assay_program: 1
id: e2e-program
title: Two reports as one program
question: Which configuration should serve chat, and does the evidence hold across reports?
decision: Backend and model tier for chat.
members:
  - a.yaml
  - b.yaml
outputs: { dir: reports/program }
";

/// `a` is the fixture; `b` drops the `small` model and the batch scenario,
/// so it shares `a`'s cells of tiny and mid on micro.
fn program_workspace() -> (Workspace, PathBuf) {
    let ws = Workspace::with_spec(&member("a", |t| t));
    std::fs::rename(&ws.spec, ws.path().join("a.yaml")).unwrap();
    let b = member("b", |t| {
        t.replace(
            "  - { name: small, synthetic: { arch: gpt2,  layers: 4, hidden: 128, heads: 4, vocab: 1000, seed: 1 } }\n",
            "",
        )
        .replace("  - { name: batch, prompt_tokens: 8, batch: 2, gen_tokens: 8 }\n", "")
    });
    std::fs::write(ws.path().join("b.yaml"), b).unwrap();
    let program = ws.path().join("program.yaml");
    std::fs::write(&program, PROGRAM).unwrap();
    (ws, program)
}

fn run_json(spec: &Path) -> Value {
    let out = assay(&["run", spec.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn nodes(result: &Value) -> Vec<(String, String)> {
    result["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap().to_string(),
                n["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_program_runs_shared_nodes_once_and_writes_every_report() {
    let (ws, program) = program_workspace();
    let result = run_json(&program);
    let nodes = nodes(&result);
    let ids: Vec<&str> = nodes.iter().map(|(n, _)| n.as_str()).collect();
    // The cells both members measure are one node each; the rest belong
    // to their member.
    for shared in [
        "shared/measure/sim/tiny/micro",
        "shared/measure/sim/mid/micro",
    ] {
        assert!(ids.contains(&shared), "{shared} missing from {ids:?}");
    }
    assert!(
        !ids.iter()
            .any(|n| n.starts_with("a/measure/sim/tiny/micro"))
    );
    assert!(ids.contains(&"a/measure/sim/small/batch"));
    assert!(ids.contains(&"a/report") && ids.contains(&"b/report"));
    assert!(ids.contains(&"conclusive"));
    assert!(nodes.iter().all(|(_, s)| s == "ran"), "{nodes:?}");
    for dir in ["reports/a", "reports/b", "reports/program"] {
        for f in ["report.md", "report.html", "report.json"] {
            assert!(ws.path().join(dir).join(f).exists(), "{dir}/{f}");
        }
    }
    let md = std::fs::read_to_string(ws.path().join("reports/program/report.md")).unwrap();
    for heading in [
        "## The answer",
        "## Decision impact matrix (Appendix AT)",
        "## Traceability map (Appendix J)",
        "## Measurement boundary catalog (Appendix L)",
        "## Cross-report comparison (Appendix AS)",
        "## Risk register (Appendix T)",
        "## Cross-report artifact linkage (Appendix AH.6)",
    ] {
        assert!(md.contains(heading), "{heading} missing:\n{md}");
    }
    assert!(md.contains("| sim/tiny/micro | decode |"), "{md}");
    assert!(md.contains("one measurement, shared"), "{md}");
    // The program's lockfile and each member's own.
    for lock in ["program.yaml.lock", "a.yaml.lock", "b.yaml.lock"] {
        assert!(ws.path().join(lock).exists(), "{lock}");
    }

    // A rerun runs nothing.
    let again = run_json(&program);
    assert_eq!(again["ran"], 0, "{again}");
    // A member run alone finds every node in the store: it was keyed as
    // the member's own spec keys it.
    let alone = run_json(&ws.path().join("a.yaml"));
    assert_eq!(alone["ran"], 0, "{alone}");
}

#[test]
fn a_program_verifies_and_regenerates_byte_identical() {
    let (ws, program) = program_workspace();
    run_json(&program);
    let report = |name: &str| std::fs::read(ws.path().join("reports/program").join(name)).unwrap();
    let before = report("report.json");
    for spec in [program.clone(), ws.path().join("b.yaml")] {
        let v = assay(&["verify", spec.to_str().unwrap()]);
        assert!(
            v.status.success(),
            "verify {}: {}",
            spec.display(),
            String::from_utf8_lossy(&v.stderr)
        );
    }
    // A fresh store at one thread gives the same bytes.
    let (other, other_program) = program_workspace();
    let out = assay_cmd()
        .env("RAYON_NUM_THREADS", "1")
        .args(["run", other_program.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let other_report = std::fs::read(other.path().join("reports/program/report.json")).unwrap();
    assert_eq!(before, other_report);
    // gc on the program keeps all it needs.
    let gc = assay(&["gc", program.to_str().unwrap()]);
    assert!(gc.status.success());
    let v = assay(&["verify", program.to_str().unwrap()]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}

#[test]
fn a_conclusive_claim_traces_into_its_member_down_to_raw_rows() {
    let (ws, program) = program_workspace();
    run_json(&program);
    let report: Value = serde_json::from_slice(
        &std::fs::read(ws.path().join("reports/program/report.json")).unwrap(),
    )
    .unwrap();
    let id = "program/b/latency/sim/tiny/micro/decode/median_ms";
    let claim = report["claims"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no claim {id}"));
    assert_eq!(claim["source"]["node"], "b/report");
    let out = assay(&["trace", id, "--spec", program.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t["member"]["id"], "b");
    assert_eq!(
        t["member"]["claim"]["id"],
        "latency/sim/tiny/micro/decode/median_ms"
    );
    assert_eq!(t["member"]["claim"]["value"], claim["value"]);
    let hops: Vec<&str> = t["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hop"].as_str().unwrap())
        .collect();
    assert!(
        hops.contains(&"raw") && hops.contains(&"manifest"),
        "{hops:?}"
    );
    // Every digest on the chain is in the program's store.
    for hop in t["chain"].as_array().unwrap() {
        let d = hop["digest"].as_str().unwrap();
        let shown = assay(&["show", d, "--spec", program.to_str().unwrap()]);
        assert!(shown.status.success(), "show {d}");
    }
}

/// `check` on a program refuses it with a located error and exit 2.
fn refused(program: &Path, expect: &str) -> String {
    let out = assay(&["check", program.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(expect), "expected {expect:?} in:\n{stderr}");
    stderr
}

#[test]
fn bad_programs_are_located_errors() {
    let (ws, program) = program_workspace();
    let dir = ws.path();
    let name = program.file_name().unwrap().to_str().unwrap().to_string();

    std::fs::write(&program, PROGRAM.replace("b.yaml", "missing.yaml")).unwrap();
    let e = refused(&program, "missing.yaml");
    assert!(e.contains(&format!("{name}:8:5")), "{e}");

    std::fs::write(dir.join("b2.yaml"), member("a", |t| t)).unwrap();
    std::fs::write(&program, PROGRAM.replace("b.yaml", "b2.yaml")).unwrap();
    let e = refused(&program, "two members have the id \"a\"");
    assert!(e.contains(&format!("{name}:8:5")), "{e}");

    std::fs::write(
        dir.join("c.yaml"),
        member("c", |t| {
            t.replace("prompt_tokens: 4, batch: 1", "prompt_tokens: 5, batch: 1")
        }),
    )
    .unwrap();
    std::fs::write(&program, PROGRAM.replace("b.yaml", "c.yaml")).unwrap();
    refused(&program, "scenario \"micro\" of");

    // p1 -> p2 -> p1.
    std::fs::write(&program, PROGRAM.replace("b.yaml", "nested.yaml")).unwrap();
    std::fs::write(
        dir.join("nested.yaml"),
        PROGRAM
            .replace("id: e2e-program", "id: nested")
            .replace("  - a.yaml\n  - b.yaml\n", "  - program.yaml\n"),
    )
    .unwrap();
    refused(&program, "a cycle of programs");

    // A nested program's members join (a reached twice counts once).
    std::fs::write(
        dir.join("nested.yaml"),
        PROGRAM.replace("id: e2e-program", "id: nested"),
    )
    .unwrap();
    let ok = assay(&["check", program.to_str().unwrap()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stderr).contains("program of 2 specs: a, b"));
}
