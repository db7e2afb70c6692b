//! Slurm as the executor of measure cells (`assay run --executor slurm`,
//! docs/cluster.md). The cells of one wave become one job array (split at
//! the cluster's `MaxArraySize`): each
//! task runs `assay run-node` for one cell on a compute node, which
//! recomputes the cell's key from the spec and the store, refuses a key
//! other than the one submitted, measures, and records the node in the
//! store (a shared filesystem). This side waits without a busy loop (it
//! asks `scontrol` every [`POLL`] and sleeps in between), collects each
//! task as it ends, and maps a task that did not complete (FAILED,
//! CANCELLED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, ...) to a failed cell
//! carrying Slurm's own state and reason. A cancel (Ctrl-C) runs
//! `scancel` on the array.
//!
//! Nothing here touches keys: where a cell ran is recorded in the run's
//! JSON and, for a real cell, in its manifest (`environment.slurm`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use assay_store::Digest;
use serde::Serialize;

use crate::spec::ExecutionSpec;

/// The arrays this process has submitted and not yet seen end: a second
/// Ctrl-C, which exits at once, still cancels them ([`cancel_submitted`]).
static SUBMITTED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// `scancel` every array this process submitted that is still being
/// watched; what the exit on a second Ctrl-C runs first.
pub fn cancel_submitted() {
    let arrays = std::mem::take(&mut *SUBMITTED.lock().unwrap_or_else(|e| e.into_inner()));
    for id in arrays {
        let _ = Command::new("scancel").arg(&id).output();
    }
}

/// Remember (or forget) a submitted array for [`cancel_submitted`].
fn watch(array: &str, on: bool) {
    let mut list = SUBMITTED.lock().unwrap_or_else(|e| e.into_inner());
    list.retain(|a| a != array);
    if on {
        list.push(array.to_string());
    }
}

/// Delete the job scripts and logs of past submissions
/// (`STORE/slurm/<time>-<pid>/`), which nothing reads once their run has
/// ended: `assay gc` runs under the store lock, which a running
/// `assay run` holds, so none of them belongs to a live run. The folders
/// and bytes removed (or that would be, on a dry run).
pub fn remove_submissions(store: &Path, dry_run: bool) -> std::io::Result<(usize, u64)> {
    let root = store.join("slurm");
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let (mut folders, mut bytes) = (0, 0);
    for entry in entries {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&path)? {
            bytes += file?.metadata().map_or(0, |m| m.len());
        }
        if !dry_run {
            std::fs::remove_dir_all(&path)?;
        }
        folders += 1;
    }
    Ok((folders, bytes))
}

/// How often the state of a submitted array is read.
pub const POLL: Duration = Duration::from_millis(1000);

/// How a run was told to reach Slurm, fixed before anything is submitted.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// The spec or program file, as the compute node will open it.
    pub spec: PathBuf,
    /// The store, on a filesystem the compute nodes share.
    pub store: PathBuf,
    /// The `assay` binary the jobs run (this one).
    pub exe: PathBuf,
    /// The spec's `execution:` section (defaults when absent).
    pub execution: ExecutionSpec,
    /// `execution.store: remote`: the jobs use a store on their node and
    /// the remote cache, not `store`.
    pub via_remote: Option<ViaRemote>,
}

/// How a job of `execution.store: remote` reaches the remote cache, and
/// where its node keeps its store.
#[derive(Debug, Clone)]
pub struct ViaRemote {
    /// The `run-node` options that name the remote (never credentials).
    pub remote_args: Vec<String>,
    /// The store's folder on the compute node; `None`:
    /// `${TMPDIR:-/tmp}/assay-store`.
    pub node_store: Option<String>,
}

/// One cell to submit: its node id and the key it must have.
#[derive(Debug, Clone)]
pub struct Cell {
    pub node: String,
    pub key: Digest,
}

/// Where a cell ran: its Slurm job (`<array job>_<task>`) and node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub job_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node: String,
}

/// What became of a submitted cell.
#[derive(Debug, Clone)]
pub enum CellOutcome {
    /// The job completed; the cell's record should be in the store.
    Completed(Placement),
    /// The job ended in another state: Slurm's state and reason, and the
    /// last error line the cell printed, if any.
    Failed {
        placement: Placement,
        state: String,
        reason: String,
        message: Option<String>,
    },
    /// Cancelled by this run (Ctrl-C) before it ended.
    Cancelled(Placement),
}

/// Slurm cannot be used: no `sbatch`, or no controller answers. Nothing
/// was submitted.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// Check that Slurm's commands exist and the controller answers, before
/// anything is submitted.
pub fn preflight() -> Result<(), Unavailable> {
    for tool in ["sbatch", "scontrol", "scancel"] {
        if let Err(e) = Command::new(tool).arg("--version").output() {
            return Err(Unavailable(format!(
                "--executor slurm: `{tool}` cannot be run ({e}); install Slurm's client commands \
                 (Debian: slurm-client) or put them on PATH. Nothing was submitted."
            )));
        }
    }
    let ping = Command::new("scontrol")
        .arg("ping")
        .output()
        .map_err(|e| Unavailable(format!("--executor slurm: scontrol ping: {e}")))?;
    let text = String::from_utf8_lossy(&ping.stdout);
    if !ping.status.success() || !text.contains("UP") {
        let err = String::from_utf8_lossy(&ping.stderr);
        return Err(Unavailable(format!(
            "--executor slurm: the Slurm controller does not answer (scontrol ping: {}). \
             Nothing was submitted.",
            first_line(if text.trim().is_empty() { &err } else { &text })
        )));
    }
    Ok(())
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no answer")
        .to_string()
}

/// The `sbatch` options of every job from the spec's `execution:` section.
pub fn sbatch_options(ex: &ExecutionSpec) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = &ex.partition {
        out.push(format!("--partition={p}"));
    }
    if let Some(a) = &ex.account {
        out.push(format!("--account={a}"));
    }
    if let Some(t) = ex.time_limit_min {
        out.push(format!("--time={t}"));
    }
    out.push(format!("--cpus-per-task={}", ex.cpus.unwrap_or(1)));
    if let Some(m) = ex.memory_mb {
        out.push(format!("--mem={m}M"));
    }
    if let Some(g) = ex.gpus {
        match &ex.gpu_type {
            Some(t) => out.push(format!("--gres=gpu:{t}:{g}")),
            None => out.push(format!("--gres=gpu:{g}")),
        }
    }
    if ex.exclusive {
        out.push("--exclusive".into());
    }
    out
}

/// Quote for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The batch script of an array: task `i` runs the cell on line `i + 1` of
/// `cells_file` (`<key> <node id>`), read from the shared store. With
/// `execution.store: remote` nothing on this machine is readable there:
/// the cells are written into the script itself (which `sbatch` hands to
/// the controller), the store is the node's own, and the task's output
/// goes to a log beside that store.
pub fn batch_script(opts: &SlurmOptions, cells_file: &Path, cells: &[Cell]) -> String {
    let exe = sh_quote(&opts.exe.display().to_string());
    let spec = sh_quote(&opts.spec.display().to_string());
    let Some(via) = &opts.via_remote else {
        return format!(
            "#!/bin/sh\n\
             # Written by assay run --executor slurm: one measure cell per array task.\n\
             line=\"$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {cells})\"\n\
             key=\"${{line%% *}}\"\n\
             node=\"${{line#* }}\"\n\
             exec {exe} run-node --spec {spec} --store {store} --node \"$node\" --key \"$key\"\n",
            cells = sh_quote(&cells_file.display().to_string()),
            store = sh_quote(&opts.store.display().to_string()),
        );
    };
    let store = via
        .node_store
        .as_deref()
        .map_or_else(|| "\"${TMPDIR:-/tmp}/assay-store\"".to_string(), sh_quote);
    let mut script = format!(
        "#!/bin/sh\n\
         # Written by assay run --executor slurm (execution.store: remote): one measure\n\
         # cell per array task, in a store on this node, through the remote cache.\n\
         store={store}\n\
         mkdir -p \"$store/slurm\" || exit 1\n\
         exec >\"$store/slurm/${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}.out\" 2>&1\n\
         case \"$SLURM_ARRAY_TASK_ID\" in\n"
    );
    for (i, cell) in cells.iter().enumerate() {
        script.push_str(&format!(
            "{i}) key={} node={} ;;\n",
            cell.key.to_hex(),
            sh_quote(&cell.node)
        ));
    }
    let remote: Vec<String> = via.remote_args.iter().map(|a| sh_quote(a)).collect();
    script.push_str(&format!(
        "*) echo \"error: no cell for array task $SLURM_ARRAY_TASK_ID\"; exit 1 ;;\n\
         esac\n\
         exec {exe} run-node --spec {spec} --store \"$store\" --node \"$node\" --key \"$key\" {}\n",
        remote.join(" ")
    ));
    script
}

/// Submit `cells` as job arrays (one, unless the cluster's `MaxArraySize`
/// caps an array below the cell count), wait for every task, and call
/// `done` with each cell's index and outcome as it ends (in the order they
/// end). Once `cancel` is set, the arrays are cancelled (`scancel`) and
/// every cell not yet ended is reported cancelled. An error means the
/// cells could not be submitted (what was submitted is cancelled) or
/// watched; cells already reported keep their outcome.
pub fn run_cells(
    opts: &SlurmOptions,
    cells: &[Cell],
    cancel: &AtomicBool,
    mut done: impl FnMut(usize, CellOutcome),
) -> Result<(), String> {
    if cells.is_empty() {
        return Ok(());
    }
    let dir = opts.store.join("slurm").join(format!(
        "{}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis()),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // (array job id, index of its first cell), in submission order.
    let mut arrays: Vec<(String, usize)> = Vec::new();
    for (n, chunk) in cells.chunks(max_array_tasks()).enumerate() {
        match submit_array(opts, &dir, n, chunk) {
            Ok(id) => {
                watch(&id, true);
                arrays.push((id, n * max_array_tasks()));
            }
            Err(e) => {
                for (id, _) in &arrays {
                    let _ = Command::new("scancel").arg(id).output();
                    watch(id, false);
                }
                return Err(e);
            }
        }
    }
    // However the wait below ends, these arrays are no longer this
    // process's to cancel on exit.
    let _forget = Forget(arrays.iter().map(|(id, _)| id.clone()).collect());
    let placement = |cell: usize, node: &str| {
        let (array, first) = arrays
            .iter()
            .rev()
            .find(|(_, first)| *first <= cell)
            .map_or(("?", 0), |(a, f)| (a.as_str(), *f));
        Placement {
            job_id: format!("{array}_{}", cell - first),
            node: node.to_string(),
        }
    };

    // Cell index -> the node its job runs on, once known.
    let mut pending: BTreeMap<usize, String> =
        (0..cells.len()).map(|i| (i, String::new())).collect();
    let mut unknown_since: Option<Instant> = None;
    while !pending.is_empty() {
        if cancel.load(Ordering::Relaxed) {
            for (id, _) in &arrays {
                let _ = Command::new("scancel").arg(id).output();
            }
            for (cell, node) in std::mem::take(&mut pending) {
                done(cell, CellOutcome::Cancelled(placement(cell, &node)));
            }
            return Ok(());
        }
        let mut lost = None;
        for (array_id, first) in &arrays {
            let tasks = match read_tasks(array_id) {
                Ok(tasks) => tasks,
                Err(e) => {
                    lost = Some(e);
                    continue;
                }
            };
            for t in tasks {
                let cell = first + t.task;
                let Some(node) = pending.get_mut(&cell) else {
                    continue;
                };
                if !t.node.is_empty() {
                    node.clone_from(&t.node);
                }
                if !terminal(&t.state) {
                    continue;
                }
                let node = pending.remove(&cell).unwrap_or_default();
                let place = placement(cell, &node);
                let outcome = if t.state == "COMPLETED" {
                    CellOutcome::Completed(place)
                } else {
                    CellOutcome::Failed {
                        message: job_error(opts, &dir, &place),
                        placement: place,
                        state: t.state,
                        reason: t.reason,
                    }
                };
                done(cell, outcome);
            }
        }
        match lost {
            None => unknown_since = None,
            // The controller forgot an array (its records expire) or does
            // not answer: give it a minute, then fail what is left.
            Some(e) => {
                let since = *unknown_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(60) {
                    for (cell, node) in std::mem::take(&mut pending) {
                        done(
                            cell,
                            CellOutcome::Failed {
                                placement: placement(cell, &node),
                                state: "UNKNOWN".into(),
                                reason: e.clone(),
                                message: None,
                            },
                        );
                    }
                    return Ok(());
                }
            }
        }
        if !pending.is_empty() {
            sleep_unless_cancelled(POLL, cancel);
        }
    }
    Ok(())
}

/// Forgets its arrays for [`cancel_submitted`] when dropped.
struct Forget(Vec<String>);

impl Drop for Forget {
    fn drop(&mut self) {
        for id in &self.0 {
            watch(id, false);
        }
    }
}

/// The most tasks one array may have here: the cluster's `MaxArraySize`
/// (task ids run from 0 to one less), 1001 when it cannot be read (Slurm's
/// default).
fn max_array_tasks() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        Command::new("scontrol")
            .args(["show", "config"])
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
                    let (k, v) = l.split_once('=')?;
                    (k.trim() == "MaxArraySize").then(|| v.trim().parse::<usize>().ok())?
                })
            })
            .map_or(1001, |m| m.max(1))
    })
}

/// Write the `n`-th array's cell listing and batch script into `dir` and
/// submit it; the array job id.
fn submit_array(
    opts: &SlurmOptions,
    dir: &Path,
    n: usize,
    cells: &[Cell],
) -> Result<String, String> {
    let suffix = if n == 0 {
        String::new()
    } else {
        format!("-{n}")
    };
    let cells_file = dir.join(format!("cells{suffix}.txt"));
    let listing: String = cells
        .iter()
        .map(|c| format!("{} {}\n", c.key.to_hex(), c.node))
        .collect();
    std::fs::write(&cells_file, listing).map_err(|e| format!("{}: {e}", cells_file.display()))?;
    let script = dir.join(format!("job{suffix}.sh"));
    std::fs::write(&script, batch_script(opts, &cells_file, cells))
        .map_err(|e| format!("{}: {e}", script.display()))?;
    // Without a shared filesystem the job writes its own log on its node
    // (the script redirects): a path here may not exist there.
    let output = match opts.via_remote {
        None => format!("--output={}/%A_%a.out", dir.display()),
        Some(_) => "--output=/dev/null".to_string(),
    };
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg("--job-name=assay")
        .arg(format!("--array=0-{}", cells.len() - 1))
        .arg(output)
        .args(sbatch_options(&opts.execution))
        .arg(&script)
        .output()
        .map_err(|e| format!("sbatch: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "sbatch refused the job array: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let array_id = stdout.trim().split(';').next().unwrap_or("").to_string();
    if array_id.is_empty() || !array_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("sbatch answered {stdout:?}, not a job id"));
    }
    Ok(array_id)
}

/// Sleep `d`, waking early (every 50 ms at most) when cancelled.
fn sleep_unless_cancelled(d: Duration, cancel: &AtomicBool) {
    let end = Instant::now() + d;
    while Instant::now() < end && !cancel.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
    }
}

/// A task of an array as `scontrol show job` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    pub task: usize,
    pub state: String,
    pub reason: String,
    pub node: String,
}

/// States after which a job does not run again.
pub fn terminal(state: &str) -> bool {
    matches!(
        state,
        "COMPLETED"
            | "FAILED"
            | "CANCELLED"
            | "TIMEOUT"
            | "NODE_FAIL"
            | "OUT_OF_MEMORY"
            | "PREEMPTED"
            | "BOOT_FAIL"
            | "DEADLINE"
    )
}

fn read_tasks(array_id: &str) -> Result<Vec<TaskState>, String> {
    let out = Command::new("scontrol")
        .args(["show", "job", "--oneliner", array_id])
        .output()
        .map_err(|e| format!("scontrol: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scontrol show job {array_id}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_tasks(&String::from_utf8_lossy(&out.stdout)))
}

/// Parse `scontrol show job --oneliner` of an array: one line per task
/// that has its own record; a line whose `ArrayTaskId` is a range (tasks
/// still pending together) is skipped, since they have not started.
pub fn parse_tasks(text: &str) -> Vec<TaskState> {
    text.lines()
        .filter_map(|line| {
            let fields: BTreeMap<&str, &str> = line
                .split_whitespace()
                .filter_map(|w| w.split_once('='))
                .collect();
            let task = fields.get("ArrayTaskId")?.parse().ok()?;
            let state = fields.get("JobState")?.to_string();
            let reason = fields.get("Reason").copied().unwrap_or("None").to_string();
            let node = fields
                .get("BatchHost")
                .or_else(|| fields.get("NodeList"))
                .filter(|n| **n != "(null)")
                .copied()
                .unwrap_or("")
                .to_string();
            Some(TaskState {
                task,
                state,
                reason,
                node,
            })
        })
        .collect()
}

/// What a failed task printed last: its `error:` line from its log, where
/// that log is readable here. A job of `execution.store: remote` logs on
/// its node, so the message says where, unless that folder is readable
/// here too (the same machine, or a shared folder after all).
fn job_error(opts: &SlurmOptions, dir: &Path, place: &Placement) -> Option<String> {
    let log = format!("{}.out", place.job_id);
    let Some(via) = &opts.via_remote else {
        return last_error(&dir.join(log));
    };
    let folder = via.node_store.as_deref().unwrap_or("$TMPDIR/assay-store");
    via.node_store
        .as_deref()
        .and_then(|s| last_error(&Path::new(s).join("slurm").join(&log)))
        .or_else(|| {
            let on = if place.node.is_empty() {
                "its node"
            } else {
                &place.node
            };
            Some(format!("its log is {folder}/slurm/{log} on {on}"))
        })
}

/// The last `error:` line a task printed (what `assay run-node` says when
/// the cell itself failed).
fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .map(|l| l.trim().to_string())
}

impl CellOutcome {
    pub fn placement(&self) -> &Placement {
        match self {
            CellOutcome::Completed(p) | CellOutcome::Cancelled(p) => p,
            CellOutcome::Failed { placement, .. } => placement,
        }
    }
}

/// The error of a failed cell: Slurm's state and reason first.
pub fn failure_message(
    placement: &Placement,
    state: &str,
    reason: &str,
    message: Option<&str>,
) -> String {
    let on = if placement.node.is_empty() {
        String::new()
    } else {
        format!(" on {}", placement.node)
    };
    let mut text = format!(
        "slurm job {} ended {state} (reason: {reason}){on}",
        placement.job_id
    );
    if let Some(m) = message {
        text.push_str(": ");
        text.push_str(m);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_tasks_parse_and_pending_ranges_are_skipped() {
        let text = "JobId=12 ArrayJobId=11 ArrayTaskId=1 JobName=assay JobState=TIMEOUT Reason=TimeLimit Dependency=(null) NodeList=vm BatchHost=vm\n\
                    JobId=11 ArrayJobId=11 ArrayTaskId=2-5 JobName=assay JobState=PENDING Reason=Resources NodeList=(null)\n\
                    JobId=13 ArrayJobId=11 ArrayTaskId=0 JobState=COMPLETED Reason=None NodeList=vm BatchHost=vm\n";
        let tasks = parse_tasks(text);
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[0].task, 1);
        assert_eq!(tasks[0].state, "TIMEOUT");
        assert_eq!(tasks[0].reason, "TimeLimit");
        assert_eq!(tasks[0].node, "vm");
        assert_eq!(tasks[1].state, "COMPLETED");
    }

    #[test]
    fn execution_section_becomes_sbatch_options() {
        let ex = ExecutionSpec {
            partition: Some("gpu".into()),
            account: Some("lab".into()),
            time_limit_min: Some(30),
            cpus: Some(8),
            memory_mb: Some(16384),
            gpus: Some(2),
            gpu_type: Some("a100".into()),
            exclusive: true,
            ..ExecutionSpec::default()
        };
        assert_eq!(
            sbatch_options(&ex),
            [
                "--partition=gpu",
                "--account=lab",
                "--time=30",
                "--cpus-per-task=8",
                "--mem=16384M",
                "--gres=gpu:a100:2",
                "--exclusive"
            ]
        );
        let plain = ExecutionSpec::default();
        assert_eq!(sbatch_options(&plain), ["--cpus-per-task=1", "--exclusive"]);
    }

    #[test]
    fn the_script_quotes_paths() {
        let opts = SlurmOptions {
            spec: "/a b/it's.yaml".into(),
            store: "/s".into(),
            exe: "/bin/assay".into(),
            execution: ExecutionSpec::default(),
            via_remote: None,
        };
        let s = batch_script(&opts, Path::new("/s/cells.txt"), &[]);
        assert!(s.contains(r"'/a b/it'\''s.yaml'"), "{s}");
        assert!(s.contains("run-node"));
    }

    #[test]
    fn a_remote_jobs_script_carries_its_cells_and_names_the_remote() {
        let key: Digest = Digest::of(b"cell");
        let opts = SlurmOptions {
            spec: "/home/r/spec.yaml".into(),
            store: "/here/.assay".into(),
            exe: "/opt/assay".into(),
            execution: ExecutionSpec::default(),
            via_remote: Some(ViaRemote {
                remote_args: vec!["--remote-url".into(), "s3://b/p".into()],
                node_store: None,
            }),
        };
        let cells = [
            Cell {
                node: "measure/a/m/s".into(),
                key,
            },
            Cell {
                node: "measure/b/m/it's".into(),
                key,
            },
        ];
        let s = batch_script(&opts, Path::new("/here/.assay/slurm/x/cells.txt"), &cells);
        // Nothing of this machine's store is read on the node.
        assert!(!s.contains("/here/.assay"), "{s}");
        assert!(s.contains("store=\"${TMPDIR:-/tmp}/assay-store\""), "{s}");
        assert!(
            s.contains(&format!("0) key={} node='measure/a/m/s' ;;", key.to_hex())),
            "{s}"
        );
        assert!(
            s.contains(r"1) key=") && s.contains(r"node='measure/b/m/it'\''s' ;;"),
            "{s}"
        );
        assert!(
            s.contains("--store \"$store\"") && s.contains("'--remote-url' 's3://b/p'"),
            "{s}"
        );
        // The script runs as sh would: each task finds its own cell.
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("assay");
        std::fs::write(&fake, "#!/bin/sh\necho \"$@\" > \"$TMPDIR/args\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let opts = SlurmOptions { exe: fake, ..opts };
        let script = batch_script(&opts, Path::new("/nowhere"), &cells);
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("TMPDIR", dir.path())
            .env("SLURM_ARRAY_JOB_ID", "7")
            .env("SLURM_ARRAY_TASK_ID", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
        assert!(args.contains("--node measure/b/m/it's"), "{args}");
        assert!(
            args.contains(&format!("--store {}/assay-store", dir.path().display())),
            "{args}"
        );
        assert!(dir.path().join("assay-store/slurm/7_1.out").exists());
    }
}
