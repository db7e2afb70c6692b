//! Caching, invalidation, determinism and verification through the binary.

use crate::support::{Workspace, assay, assay_cmd};

#[test]
fn rerun_executes_zero_nodes() {
    let ws = Workspace::new();
    let first = ws.run(&[]);
    assert_eq!(first["failed"], 0);
    assert_eq!(first["cached"], 0);
    // 1 backend x 3 models x 2 scenarios + validate, summarise, cost, fit, report
    assert_eq!(first["ran"], 11);
    assert!(
        first["report_dir"]
            .as_str()
            .unwrap()
            .ends_with("reports/e2e")
    );
    let second = ws.run(&[]);
    assert_eq!(second["ran"], 0);
    assert_eq!(second["cached"], 11);
    assert!(ws.lock_path().is_file());
}

#[test]
fn cost_param_change_reruns_only_cost_and_report() {
    let ws = Workspace::new();
    ws.run(&[]);
    ws.edit("spot: 0.3", "spot: 0.25");
    let plan = assay(&["plan", ws.spec.to_str().unwrap(), "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let cost = plan
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "cost")
        .unwrap();
    assert_eq!(cost["status"], "run");
    assert_eq!(cost["reason"], "usd_per_hour.spot: 0.3 -> 0.25");
    let again = ws.run(&[]);
    assert_eq!(Workspace::nodes_with(&again, "ran"), ["cost", "report"]);
}

#[test]
fn reformatting_the_spec_changes_no_key() {
    let ws = Workspace::new();
    ws.run(&[]);
    // Same values, other spelling: 1.0e9 as an integer, keys reordered.
    ws.edit("tokens_per_month: 1.0e9", "tokens_per_month: 1000000000");
    ws.edit(
        "usd_per_hour: { on_demand: 1.0, spot: 0.3 }",
        "usd_per_hour: { spot: 0.30, on_demand: 1 }",
    );
    let again = ws.run(&[]);
    assert_eq!(again["ran"], 0, "{again}");
}

#[test]
fn adding_a_scenario_measures_only_new_cells() {
    let ws = Workspace::new();
    ws.run(&[]);
    ws.edit(
        "  - { name: batch,",
        "  - { name: long, prompt_tokens: 32, batch: 1, gen_tokens: 16 }\n  - { name: batch,",
    );
    let again = ws.run(&[]);
    let measured: Vec<String> = Workspace::nodes_with(&again, "ran")
        .into_iter()
        .filter(|n| n.starts_with("measure/"))
        .collect();
    assert_eq!(
        measured,
        [
            "measure/sim/mid/long",
            "measure/sim/small/long",
            "measure/sim/tiny/long"
        ]
    );
    assert_eq!(Workspace::nodes_with(&again, "cached").len(), 6);
}

#[test]
fn remeasure_with_identical_bytes_stops_the_ripple() {
    // Simulated measurements are deterministic, so remeasuring yields the same
    // bytes and every dependent stays cached (early cutoff).
    let ws = Workspace::new();
    ws.run(&[]);
    let again = ws.run(&["--remeasure"]);
    let ran = Workspace::nodes_with(&again, "ran");
    assert_eq!(ran.len(), 6);
    assert!(ran.iter().all(|n| n.starts_with("measure/")));
    assert_eq!(
        Workspace::nodes_with(&again, "cached"),
        ["validate", "summarise", "cost", "fit", "report"]
    );
}

#[test]
fn fresh_stores_give_byte_identical_reports_at_any_thread_count() {
    let a = Workspace::new();
    let b = Workspace::new();
    a.run(&[]);
    let out = assay_cmd()
        .env("RAYON_NUM_THREADS", "1")
        .args(["run", b.spec.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    for name in ["report.json", "report.md", "report.html"] {
        assert_eq!(a.report(name), b.report(name), "{name} differs");
    }
    assert_eq!(
        std::fs::read(a.lock_path()).unwrap(),
        std::fs::read(b.lock_path()).unwrap()
    );
}

#[test]
fn verify_passes_then_names_a_corrupt_object() {
    let ws = Workspace::new();
    ws.run(&[]);
    let ok = assay(&["verify", ws.spec.to_str().unwrap()]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.lock_path()).unwrap()).unwrap();
    let digest = lock["nodes"]["summarise"]["outputs"]["summary"]
        .as_str()
        .unwrap()
        .to_string();
    let path = ws.store().join("objects").join(&digest[..2]).join(&digest);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    let bad = assay(&["verify", ws.spec.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains(&digest),
        "verify must name the corrupt object: {stderr}"
    );
    assert!(stderr.contains("corrupt"), "{stderr}");
}

#[test]
fn a_corrupt_cached_artifact_is_named_not_used() {
    let ws = Workspace::new();
    ws.run(&[]);
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.lock_path()).unwrap()).unwrap();
    let digest = lock["nodes"]["report"]["outputs"]["report.md"]
        .as_str()
        .unwrap()
        .to_string();
    let path = ws.store().join("objects").join(&digest[..2]).join(&digest);
    std::fs::write(&path, b"tampered").unwrap();
    let out = assay(&["run", ws.spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&digest));
    // The report on disk is the good one from before, not the tampered bytes.
    assert_ne!(ws.report("report.md"), b"tampered");
}

#[test]
fn gc_removes_superseded_nodes_and_keeps_the_current_chain() {
    let ws = Workspace::new();
    ws.run(&[]);
    ws.edit("spot: 0.3", "spot: 0.2");
    ws.run(&[]);
    let out = assay(&["gc", ws.spec.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let gc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        gc["report"]["nodes_removed"], 2,
        "old cost and report records: {gc}"
    );
    assert!(gc["report"]["objects_removed"].as_u64().unwrap() >= 2);
    let v = assay(&["verify", ws.spec.to_str().unwrap()]);
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&v.stderr)
    );
    assert_eq!(ws.run(&[])["ran"], 0);
}

#[test]
fn a_failed_node_fails_its_dependents_not_its_siblings() {
    let ws = Workspace::new();
    ws.edit(
        "backends:\n",
        "backends:\n  - { name: flaky, kind: simulated, simulated: { fail_at_run: 2 } }\n",
    );
    let out = assay(&["run", ws.spec.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed = Workspace::nodes_with(&r, "failed");
    assert_eq!(failed.len(), 6, "{failed:?}");
    assert!(failed.iter().all(|n| n.starts_with("measure/flaky/")));
    let node = r["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["status"] == "failed")
        .unwrap();
    assert!(
        node["error"]
            .as_str()
            .unwrap()
            .contains("injected failure at run 2")
    );
    // Siblings ran and are stored; dependents were skipped.
    assert_eq!(Workspace::nodes_with(&r, "ran").len(), 6);
    assert_eq!(
        Workspace::nodes_with(&r, "skipped"),
        ["validate", "summarise", "cost", "fit", "report"]
    );
    assert!(r["report_dir"].is_null());
    assert!(!ws.lock_path().exists());
    // Remove the flaky backend: the sibling measurements are reused.
    ws.edit(
        "  - { name: flaky, kind: simulated, simulated: { fail_at_run: 2 } }\n",
        "",
    );
    let again = ws.run(&[]);
    assert_eq!(Workspace::nodes_with(&again, "cached").len(), 6);
}

#[test]
fn report_snapshot() {
    // The whole report of the simulated fixture, byte for byte: any change in
    // a stage's output shows up here for review.
    let ws = Workspace::new();
    ws.run(&[]);
    let report = String::from_utf8(ws.report("report.md")).unwrap();
    // Every section appears once (a "Risks and limits" heading was once
    // reported printed twice).
    let mut headings: Vec<&str> = report.lines().filter(|l| l.starts_with("## ")).collect();
    let all = headings.len();
    headings.sort_unstable();
    headings.dedup();
    assert_eq!(headings.len(), all, "a section heading repeats:\n{report}");
    assert!(headings.contains(&"## Risks and limits"));
    insta::assert_snapshot!("report_md", report);
}

#[test]
fn two_concurrent_runs_on_one_store_serialise() {
    // The store lock is held for the whole execution: whichever run gets it
    // second finds everything cached. Neither corrupts the other.
    let ws = Workspace::new();
    let spawn = || {
        assay_cmd()
            .args(["run", ws.spec.to_str().unwrap(), "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let mut ran: Vec<u64> = [a, b]
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            v["ran"].as_u64().unwrap()
        })
        .collect();
    ran.sort();
    assert_eq!(ran, [0, 11]);
    let v = assay(&["verify", ws.spec.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(0));
}
