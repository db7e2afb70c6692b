//! `assay run --executor slurm` against a real slurmctld and slurmd on this
//! machine (`scripts/start-slurm.sh`; docs/cluster.md): the same keys and
//! report as a local run, the job and node recorded, a job over its time
//! limit and a cancelled job as failed cells with Slurm's state while the
//! other cells are kept, a rerun that submits only what is missing, Ctrl-C
//! cancelling the submitted jobs, and a missing `sbatch` refused before
//! anything is submitted. Under CI=true a missing Slurm fails these tests;
//! elsewhere they say they did not run and return.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{FIXTURE, Workspace, assay_cmd};

/// The tests share one small cluster: one at a time keeps their jobs from
/// queueing behind each other's and their timings predictable.
static CLUSTER: Mutex<()> = Mutex::new(());

/// Whether Slurm answers here; `false` (a failure under CI) when not.
fn slurm_up() -> bool {
    let up = Command::new("scontrol")
        .arg("ping")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("UP"));
    if !up {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no Slurm controller answers: CI must start one (scripts/start-slurm.sh)"
        );
        eprintln!("no Slurm controller answers: Slurm test not run (scripts/start-slurm.sh)");
    }
    up
}

fn run_json(ws: &Workspace, extra: &[&str]) -> (Option<i32>, Value, String) {
    let out = assay_cmd()
        .args(["run", ws.spec.to_str().unwrap(), "--json", "--no-progress"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), json, stderr)
}

/// node id -> (key, status) of a `run --json` result.
fn keys_and_statuses(result: &Value) -> BTreeMap<String, (Value, Value)> {
    result["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap().to_string(),
                (n["key"].clone(), n["status"].clone()),
            )
        })
        .collect()
}

fn node<'a>(result: &'a Value, id: &str) -> &'a Value {
    result["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == id)
        .unwrap_or_else(|| panic!("no node {id} in {result}"))
}

#[test]
fn a_slurm_run_gives_a_local_runs_keys_and_report_and_names_its_jobs() {
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !slurm_up() {
        return;
    }
    let local = Workspace::new();
    let (code, here, err) = run_json(&local, &[]);
    assert_eq!(code, Some(0), "{err}");
    let cluster = Workspace::new();
    let (code, there, err) = run_json(&cluster, &["--executor", "slurm"]);
    assert_eq!(code, Some(0), "{err}");

    assert_eq!(keys_and_statuses(&here), keys_and_statuses(&there));
    assert_eq!(cluster.report("report.md"), local.report("report.md"));
    assert_eq!(
        std::fs::read(cluster.lock_path()).unwrap(),
        std::fs::read(local.lock_path()).unwrap()
    );
    let mut jobs = Vec::new();
    for n in there["nodes"].as_array().unwrap() {
        let id = n["node"].as_str().unwrap();
        if id.starts_with("measure/") {
            let job = n["slurm"]["job_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{n}"));
            assert!(job.contains('_'), "a task of the job array: {job}");
            assert!(!n["slurm"]["node"].as_str().unwrap().is_empty(), "{n}");
            jobs.push(job.to_string());
        } else {
            assert!(n["slurm"].is_null(), "{id} ran here: {n}");
        }
    }
    assert_eq!(jobs.len(), 6);
    // The test cluster's MaxArraySize of 5 splits the 6 cells into two
    // arrays: tasks 0-4 of one, task 0 of the next.
    let arrays: std::collections::BTreeSet<&str> =
        jobs.iter().map(|j| j.split('_').next().unwrap()).collect();
    assert_eq!(arrays.len(), 2, "{jobs:?}");
    let dir = &submissions(&cluster)[0];
    assert_eq!(cells_of(dir).len(), 5);
    assert!(dir.join("cells-1.txt").exists());
    assert!(here["nodes"][0]["slurm"].is_null());

    // Everything is cached: the rerun submits nothing.
    let (code, again, err) = run_json(&cluster, &["--executor", "slurm"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(again["ran"], 0);
    assert_eq!(
        submissions(&cluster).len(),
        1,
        "a rerun with nothing missing submitted"
    );

    // gc deletes the job scripts and logs (nothing reads them once the
    // run has ended) and keeps every node the lockfile names.
    let out = assay_cmd()
        .args(["gc", cluster.spec.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(gc["slurm_submissions_removed"], 1, "{gc}");
    assert_eq!(gc["report"]["nodes_removed"], 0, "{gc}");
    assert!(submissions(&cluster).is_empty());
    let (code, again, err) = run_json(&cluster, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(again["ran"], 0);
}

/// A one-cell candle spec: a real measurement, whose manifest names the
/// machine, and now the job, that measured.
#[test]
fn a_real_cells_manifest_names_its_job_and_node() {
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !slurm_up() {
        return;
    }
    let ws = Workspace::with_spec(
        "assay: 1
id: slurm-candle
title: candle through Slurm
question: q
decision: d
boundary: { warmup_runs: 1, repetitions: 2 }
scenarios:
  - { name: s, prompt_tokens: 8, batch: 1, gen_tokens: 4 }
models:
  - { name: m, synthetic: { arch: llama, layers: 2, hidden: 64, heads: 4, kv_heads: 2, vocab: 300, max_positions: 128, seed: 1 } }
backends:
  - { name: c, kind: candle, device: cpu, dtype: f32, threads: 1 }
validate: { max_cv: 10 }
execution: { time_limit_min: 10, cpus: 1 }
outputs: { dir: reports/e2e, formats: [md, json] }
",
    );
    let (code, result, err) = run_json(&ws, &["--executor", "slurm"]);
    assert_eq!(code, Some(0), "{err}");
    let cell = node(&result, "measure/c/m/s");
    assert_eq!(cell["status"], "ran");
    let digest = cell["outputs"]["manifest"].as_str().unwrap();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(ws.store().join("objects").join(&digest[..2]).join(digest)).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["evidence"], "measured");
    assert_eq!(
        manifest["environment"]["slurm"], cell["slurm"],
        "{manifest}"
    );
    assert!(
        !manifest["environment"]["slurm"]["node"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    // The prepared model ran here, not as a job.
    assert!(node(&result, "prepare/m")["slurm"].is_null());
}

/// One model, two scenarios, two backends: `sim` cells end at once,
/// `stuck` cells wait 600 s of real time in their model load, far over
/// the 1-minute time limit.
fn stuck_spec() -> Workspace {
    let text = std::fs::read_to_string(FIXTURE).unwrap();
    let mut out = String::new();
    let mut skip = false;
    for line in text.lines() {
        if line.starts_with("  - { name: small") || line.starts_with("  - { name: mid") {
            continue;
        }
        if line.starts_with("cost:") || line.starts_with("fit:") {
            skip = line.starts_with("cost:");
            continue;
        }
        if skip && line.starts_with("  ") {
            continue;
        }
        skip = false;
        out.push_str(line);
        out.push('\n');
        if line.starts_with("  - { name: sim,") {
            out.push_str(
                "  - { name: stuck, kind: simulated, simulated: { seed: 7, inject: { stall_s: 600 } } }\n",
            );
        }
    }
    out.push_str("execution: { time_limit_min: 1, cpus: 1, exclusive: false }\n");
    Workspace::with_spec(&out)
}

/// The job arrays a workspace's runs submitted: (array id from its log
/// names, cell listing), oldest first.
fn submissions(ws: &Workspace) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(ws.store().join("slurm"))
        .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// Cell node ids of a submission, in task order.
fn cells_of(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("cells.txt"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_once(' ').unwrap().1.to_string())
        .collect()
}

/// Wait (bounded) until the newest submission's array has a task in
/// `state` for `cell`; returns the array job id and that task's index.
fn wait_for_task(
    ws: &Workspace,
    nth: usize,
    cell: &str,
    state: &str,
    child: &mut Child,
) -> (String, usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(child.try_wait().unwrap().is_none(), "run ended too early");
        assert!(
            Instant::now() < deadline,
            "no task of {cell} became {state}"
        );
        if let Some(dir) = submissions(ws).get(nth) {
            let cells = cells_of(dir);
            if let Some(task) = cells.iter().position(|c| c == cell) {
                let out = Command::new("squeue")
                    .args(["-h", "-r", "-n", "assay", "-o", "%i %T"])
                    .output()
                    .unwrap();
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    let mut f = line.split_whitespace();
                    let (Some(id), Some(st)) = (f.next(), f.next()) else {
                        continue;
                    };
                    if let Some((array, t)) = id.split_once('_')
                        && t == task.to_string()
                        && st == state
                        && dir.join("cells.txt").exists()
                        && array_of(dir).as_deref().is_none_or(|a| a == array)
                    {
                        return (array.to_string(), task);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The array id of a submission, once a task of it has written its log.
fn array_of(dir: &Path) -> Option<String> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find_map(|n| Some(n.strip_suffix(".out")?.split_once('_')?.0.to_string()))
}

fn spawn_run(ws: &Workspace) -> Child {
    assay_cmd()
        .args([
            "run",
            ws.spec.to_str().unwrap(),
            "--json",
            "--no-progress",
            "--executor",
            "slurm",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> (Option<i32>, Value, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn timed_out_and_cancelled_jobs_fail_alone_and_a_rerun_submits_only_them() {
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !slurm_up() {
        return;
    }
    let ws = stuck_spec();
    let mut child = spawn_run(&ws);
    // Cancel one stuck cell while it runs; the other runs into its limit.
    let (array, task) = wait_for_task(&ws, 0, "measure/stuck/tiny/micro", "RUNNING", &mut child);
    let ok = Command::new("scancel")
        .arg(format!("{array}_{task}"))
        .status()
        .unwrap();
    assert!(ok.success());
    let (code, result, err) = finish(child);
    assert_eq!(code, Some(1), "failed cells fail the run: {err}");
    for id in ["measure/sim/tiny/micro", "measure/sim/tiny/batch"] {
        assert_eq!(node(&result, id)["status"], "ran", "{result}");
    }
    let cancelled = node(&result, "measure/stuck/tiny/micro");
    assert_eq!(cancelled["status"], "failed");
    let error = cancelled["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("slurm job {array}_{task} ended CANCELLED")),
        "{error}"
    );
    let timed_out = node(&result, "measure/stuck/tiny/batch");
    assert_eq!(timed_out["status"], "failed");
    let error = timed_out["error"].as_str().unwrap();
    assert!(
        error.contains("ended TIMEOUT") && error.contains("TimeLimit"),
        "{error}"
    );
    assert_eq!(node(&result, "validate")["status"], "skipped");

    // The rerun keeps the finished cells and submits only the two that
    // failed; cancelled at once, they fail as CANCELLED again.
    let mut child = spawn_run(&ws);
    let (array2, _) = wait_for_task(&ws, 1, "measure/stuck/tiny/batch", "RUNNING", &mut child);
    assert_ne!(array2, array);
    assert_eq!(
        cells_of(&submissions(&ws)[1]),
        ["measure/stuck/tiny/batch", "measure/stuck/tiny/micro"]
    );
    assert!(
        Command::new("scancel")
            .arg(&array2)
            .status()
            .unwrap()
            .success()
    );
    let (code, result, err) = finish(child);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(result["cached"], 2, "{result}");
    assert_eq!(result["ran"], 0, "{result}");
    for id in ["measure/stuck/tiny/micro", "measure/stuck/tiny/batch"] {
        let n = node(&result, id);
        assert!(n["error"].as_str().unwrap().contains("CANCELLED"), "{n}");
    }
}

#[test]
fn ctrl_c_cancels_the_submitted_jobs_and_exits_130() {
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !slurm_up() {
        return;
    }
    let ws = stuck_spec();
    let mut child = spawn_run(&ws);
    let (array, _) = wait_for_task(&ws, 0, "measure/stuck/tiny/batch", "RUNNING", &mut child);
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let (code, result, err) = finish(child);
    assert_eq!(code, Some(130), "{err}");
    assert_eq!(result["interrupted"], true);
    assert_eq!(
        node(&result, "measure/stuck/tiny/batch")["status"],
        "cancelled"
    );
    // scancel ran: no task of the array is left pending or running.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new("squeue")
            .args([
                "-h",
                "-r",
                "-j",
                &array,
                "-t",
                "PENDING,RUNNING",
                "-o",
                "%i",
            ])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "jobs of {array} still queued after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Without Slurm's commands on PATH: a clear error and exit 6, and nothing
/// submitted (no job folder in the store). Runs everywhere.
#[test]
fn a_missing_sbatch_is_refused_before_anything_is_submitted() {
    let ws = Workspace::new();
    let empty = tempfile::tempdir().unwrap();
    let out = assay_cmd()
        .args([
            "run",
            ws.spec.to_str().unwrap(),
            "--executor",
            "slurm",
            "--no-progress",
        ])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains("`sbatch` cannot be run") && err.contains("Nothing was submitted"),
        "{err}"
    );
    assert!(!ws.store().join("slurm").exists());
    assert!(!ws.store().join("nodes").exists());
}

/// `assay plan` gives the same keys whatever executor runs them: the
/// `execution:` section is in no key.
#[test]
fn the_execution_section_changes_no_key() {
    let plain = Workspace::new();
    let with = Workspace::new();
    with.edit(
        "outputs:",
        "execution: { partition: debug, account: lab, time_limit_min: 30, cpus: 4, memory_mb: 8192, gpus: 1, gpu_type: a100, exclusive: true }\noutputs:",
    );
    let plan = |ws: &Workspace| {
        let out = assay_cmd()
            .args(["plan", ws.spec.to_str().unwrap(), "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| (e["node"].clone(), e["key"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(plan(&plain), plan(&with));
    let bad = Workspace::new();
    bad.edit(
        "outputs:",
        "execution: { partition: \"a b\", gpu_type: a100 }\noutputs:",
    );
    let out = assay_cmd()
        .args(["check", bad.spec.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("is not a Slurm name") && err.contains("gpu_type needs `gpus`"),
        "{err}"
    );
    // A node store belongs to `store: remote`, and is an absolute path.
    for (execution, message) in [
        (
            "{ node_store: /scratch/s }",
            "node_store is the store on each compute node of `store: remote`",
        ),
        (
            "{ store: remote, node_store: scratch/s }",
            "is not an absolute path on the compute nodes",
        ),
        ("{ store: elsewhere }", "store"),
    ] {
        let bad = Workspace::new();
        bad.edit("outputs:", &format!("execution: {execution}\noutputs:"));
        let out = assay_cmd()
            .args(["check", bad.spec.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{execution}: {err}");
        assert!(err.contains(message) && err.contains(":"), "{err}");
    }
}

/// A cell whose measurement fails on the compute node: FAILED, with the
/// cell's own error after Slurm's state, exactly as the local run's error
/// ends.
#[test]
fn a_cell_that_fails_in_its_job_carries_slurms_state_and_its_own_error() {
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !slurm_up() {
        return;
    }
    let ws = Workspace::new();
    ws.edit("noise_cv: 0.05,", "noise_cv: 0.05, fail_at_run: 0,");
    let (code, local, _) = run_json(&ws, &[]);
    assert_eq!(code, Some(1));
    let local_error = node(&local, "measure/sim/tiny/micro")["error"]
        .as_str()
        .unwrap()
        .to_string();
    let ws = Workspace::new();
    ws.edit("noise_cv: 0.05,", "noise_cv: 0.05, fail_at_run: 0,");
    let (code, there, err) = run_json(&ws, &["--executor", "slurm"]);
    assert_eq!(code, Some(1), "{err}");
    let cell = node(&there, "measure/sim/tiny/micro");
    assert_eq!(cell["status"], "failed");
    let error = cell["error"].as_str().unwrap();
    assert!(
        error.starts_with("slurm job ") && error.contains("ended FAILED"),
        "{error}"
    );
    assert!(error.ends_with(&local_error), "{error} vs {local_error}");
    assert_eq!(node(&there, "validate")["status"], "skipped");
}

/// With Slurm's commands present but no controller answering (this
/// cluster's configuration pointed at a closed port): exit 6 before
/// anything is submitted.
#[test]
fn an_unreachable_controller_is_refused_before_anything_is_submitted() {
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !slurm_up() {
        return;
    }
    let ws = Workspace::new();
    let conf = std::fs::read_to_string("/etc/slurm/slurm.conf").unwrap();
    let bad = ws.path().join("slurm.conf");
    std::fs::write(&bad, format!("SlurmctldPort=1\n{conf}")).unwrap();
    let out = assay_cmd()
        .args([
            "run",
            ws.spec.to_str().unwrap(),
            "--executor",
            "slurm",
            "--no-progress",
        ])
        .env("SLURM_CONF", &bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains("the Slurm controller does not answer") && err.contains("DOWN"),
        "{err}"
    );
    assert!(!ws.store().join("slurm").exists());
}

/// No shared filesystem (`execution.store: remote`): each job keeps a store
/// of its own on its node, pulls the prepared model from the remote cache,
/// measures, and pushes its cell; the submitting run pulls it back. The
/// node's store here is a folder the submitting run never names, and the
/// remote a directory (the same transfers as S3, through object_store).
#[test]
fn without_a_shared_filesystem_cells_travel_through_the_remote_cache() {
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !slurm_up() {
        return;
    }
    let node_store = tempfile::tempdir().unwrap();
    let remote = tempfile::tempdir().unwrap();
    let ws = Workspace::with_spec(&format!(
        "assay: 1
id: slurm-remote
title: candle through Slurm without a shared filesystem
question: q
decision: d
boundary: {{ warmup_runs: 1, repetitions: 2 }}
scenarios:
  - {{ name: s, prompt_tokens: 8, batch: 1, gen_tokens: 4 }}
models:
  - {{ name: m, synthetic: {{ arch: llama, layers: 2, hidden: 64, heads: 4, kv_heads: 2, vocab: 300, max_positions: 128, seed: 1 }} }}
backends:
  - {{ name: c, kind: candle, device: cpu, dtype: f32, threads: 1 }}
validate: {{ max_cv: 10 }}
execution: {{ time_limit_min: 10, cpus: 1, store: remote, node_store: {} }}
outputs: {{ dir: reports/e2e, formats: [md, json] }}
",
        node_store.path().display()
    ));
    let url = remote.path().to_str().unwrap();

    // Without a remote the jobs would have nowhere to put their cells.
    let (code, _, err) = run_json(&ws, &["--executor", "slurm"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("execution.store is remote"), "{err}");
    assert!(!ws.store().join("slurm").exists(), "submitted: {err}");

    let (code, result, err) = run_json(&ws, &["--executor", "slurm", "--remote-url", url]);
    assert_eq!(code, Some(0), "{err}");
    let cell = node(&result, "measure/c/m/s");
    assert_eq!(cell["status"], "ran", "{cell}");
    let cell_key = cell["key"].as_str().unwrap();
    let prepare_key = node(&result, "prepare/m")["key"].as_str().unwrap();
    let record = |root: &Path, key: &str| root.join("nodes").join(format!("{key}.json"));
    // The job pulled the prepared model into its node's store, recorded the
    // cell there, and pushed it; this side pulled it back.
    assert!(record(node_store.path(), prepare_key).exists());
    assert!(record(node_store.path(), cell_key).exists());
    assert!(record(remote.path(), cell_key).exists());
    assert!(record(remote.path(), prepare_key).exists());
    assert!(record(&ws.store(), cell_key).exists());
    // The same bytes on both sides: the manifest names the job and node.
    let manifest = cell["outputs"]["manifest"].as_str().unwrap();
    let object = |root: &Path| {
        std::fs::read(root.join("objects").join(&manifest[..2]).join(manifest)).unwrap()
    };
    assert_eq!(object(node_store.path()), object(&ws.store()));
    let manifest: Value = serde_json::from_slice(&object(&ws.store())).unwrap();
    assert_eq!(
        manifest["environment"]["slurm"], cell["slurm"],
        "{manifest}"
    );
    // The job logged on its node, not into this side's store.
    let job = cell["slurm"]["job_id"].as_str().unwrap();
    let log = node_store.path().join("slurm").join(format!("{job}.out"));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("pushed to"), "{text}");
    assert!(!submissions(&ws)[0].join(format!("{job}.out")).exists());
    // The report was written here from the pulled cell.
    assert!(!ws.report("report.md").is_empty());

    // A fresh store on this side: the remote serves the cell, nothing is
    // submitted (run --remote's cache check comes before Slurm).
    let again = Workspace::with_spec(&std::fs::read_to_string(&ws.spec).unwrap());
    let (code, result, err) = run_json(&again, &["--executor", "slurm", "--remote-url", url]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(node(&result, "measure/c/m/s")["status"], "pulled");
    assert!(!again.store().join("slurm").exists());
}

/// The simulated fixture through the remote cache gives a local run's
/// keys, lockfile and report byte for byte.
#[test]
fn cells_through_the_remote_cache_give_a_local_runs_report() {
    let _one = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if !slurm_up() {
        return;
    }
    let node_store = tempfile::tempdir().unwrap();
    let remote = tempfile::tempdir().unwrap();
    let execution = format!(
        "execution: {{ store: remote, node_store: {} }}\noutputs:",
        node_store.path().display()
    );
    // The same spec text on both sides (the local executor ignores it).
    let local = Workspace::new();
    local.edit("outputs:", &execution);
    let (code, here, err) = run_json(&local, &[]);
    assert_eq!(code, Some(0), "{err}");
    let cluster = Workspace::new();
    cluster.edit("outputs:", &execution);
    let url = remote.path().to_str().unwrap();
    let (code, there, err) = run_json(&cluster, &["--executor", "slurm", "--remote-url", url]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(keys_and_statuses(&here), keys_and_statuses(&there));
    assert_eq!(cluster.report("report.md"), local.report("report.md"));
    assert_eq!(
        std::fs::read(cluster.lock_path()).unwrap(),
        std::fs::read(local.lock_path()).unwrap()
    );
}
