//! Killing a run part-way loses nothing that finished, and the rerun gives
//! the same report as an uninterrupted run.

use std::time::{Duration, Instant};

use crate::support::{Workspace, assay_cmd};

/// A spec whose measurement takes long enough to be interrupted: many cells,
/// many repetitions.
fn slow_spec() -> String {
    std::fs::read_to_string(crate::support::FIXTURE)
        .unwrap()
        .replace("repetitions: 4", "repetitions: 400")
        .replace("gen_tokens: 8 }", "gen_tokens: 64 }")
}

/// Wait (bounded) until the store holds at least `n` finished node records.
fn wait_for_records(ws: &Workspace, n: usize, child: &mut std::process::Child) {
    let nodes = ws.store().join("nodes");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let count = std::fs::read_dir(&nodes).map(|d| d.count()).unwrap_or(0);
        if count >= n {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "run ended before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn interrupted_then_resumed(signal: &str) {
    let reference = Workspace::with_spec(&slow_spec());
    let r = reference.run(&[]);
    assert_eq!(r["failed"], 0);

    let ws = Workspace::with_spec(&slow_spec());
    let mut child = assay_cmd()
        .args(["run", ws.spec.to_str().unwrap(), "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_records(&ws, 2, &mut child);
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    if signal == "-INT" {
        assert_eq!(exit.code(), Some(130), "Ctrl-C exits 130");
    }
    assert!(!ws.path().join("reports/e2e/report.json").exists());

    let resumed = ws.run(&[]);
    assert!(
        resumed["cached"].as_u64().unwrap() >= 2,
        "finished nodes were kept: {resumed}"
    );
    assert_eq!(resumed["failed"], 0);
    assert_eq!(ws.report("report.json"), reference.report("report.json"));
    // No temp file survives in the store after the clean rerun... except
    // possibly the killed one's; gc cleans tmp/.
    let v = assay_cmd()
        .args(["verify", ws.spec.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&v.stderr)
    );
}

#[test]
fn sigkill_mid_run_then_rerun_gives_the_same_report() {
    interrupted_then_resumed("-KILL");
}

#[test]
fn ctrl_c_mid_run_exits_130_and_resumes() {
    interrupted_then_resumed("-INT");
}
