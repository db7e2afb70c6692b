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
/// `cells` (`<key> <node id>`).
pub fn batch_script(opts: &SlurmOptions, cells: &Path) -> String {
    format!(
        "#!/bin/sh\n\
         # Written by assay run --executor slurm: one measure cell per array task.\n\
         line=\"$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {cells})\"\n\
         key=\"${{line%% *}}\"\n\
         node=\"${{line#* }}\"\n\
         exec {exe} run-node --spec {spec} --store {store} --node \"$node\" --key \"$key\"\n",
        cells = sh_quote(&cells.display().to_string()),
        exe = sh_quote(&opts.exe.display().to_string()),
        spec = sh_quote(&opts.spec.display().to_string()),
        store = sh_quote(&opts.store.display().to_string()),
    )
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
            Ok(id) => arrays.push((id, n * max_array_tasks())),
            Err(e) => {
                for (id, _) in &arrays {
                    let _ = Command::new("scancel").arg(id).output();
                }
                return Err(e);
            }
        }
    }
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
                        message: last_error(&dir.join(format!("{}.out", place.job_id))),
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
    std::fs::write(&script, batch_script(opts, &cells_file))
        .map_err(|e| format!("{}: {e}", script.display()))?;
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg("--job-name=assay")
        .arg(format!("--array=0-{}", cells.len() - 1))
        .arg(format!("--output={}/%A_%a.out", dir.display()))
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
        };
        let s = batch_script(&opts, Path::new("/s/cells.txt"));
        assert!(s.contains(r"'/a b/it'\''s.yaml'"), "{s}");
        assert!(s.contains("run-node"));
    }
}
