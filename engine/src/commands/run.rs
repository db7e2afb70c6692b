use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use assay_core::Input;
use assay_store::atomic::write_atomic;
use assay_store::{Digest, Lockfile, Store};
use petgraph::graph::NodeIndex;
use serde::Serialize;
use serde_json::json;

use super::print_json;
use super::target::{Planned, load_planned};
use crate::cli::{
    CliError, CmdResult, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ExecutorKind, StoreArg,
};
use crate::exec::{ExecOptions, ExecOutcome, NodeStatus, execute};
use crate::keys::{diff_params, node_key};
use crate::plan::Plan;
use crate::remote::RemoteArgs;
use crate::spec::Purpose;

/// Stage files next to their destination, so the final rename is atomic.
fn write_beside(path: &Path, bytes: &[u8]) -> Result<(), assay_store::StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    write_atomic(path, bytes, dir)
}

/// What `assay run` was asked besides its spec and store.
pub struct RunOptions<'a> {
    pub remeasure: bool,
    pub json: bool,
    pub no_progress: bool,
    pub executor: ExecutorKind,
    pub remote: &'a RemoteArgs,
}

pub fn run(
    spec_path: &Path,
    store_arg: &StoreArg,
    opts: RunOptions<'_>,
    cancel: &AtomicBool,
) -> CmdResult {
    let RunOptions {
        remeasure,
        json,
        no_progress,
        executor,
        remote,
    } = opts;
    let started = Instant::now();
    let planned = load_planned(spec_path, Purpose::Measure)?;
    // Opened before anything runs, so a wrong remote fails at once.
    let remote_cfg = crate::remote::resolve(remote, planned.target.dir(), false)?;
    let remote = match &remote_cfg {
        Some(cfg) => Some(std::sync::Arc::new(crate::remote::Remote::open(cfg)?)),
        None => None,
    };
    let executor = super::run_node::executor_for(
        executor,
        &planned,
        &planned.store_dir(store_arg),
        remote_cfg.as_ref(),
    )?;
    let store = Store::open(planned.store_dir(store_arg))?;
    let _lock = store.lock(|| {
        eprintln!(
            "assay: waiting for another assay process to release {}",
            store.root().join("lock").display()
        )
    })?;
    let show_progress =
        !json && !no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let outcome = execute(
        &planned.plan,
        &store,
        &ExecOptions {
            remeasure,
            show_progress,
            executor,
            remote,
        },
        cancel,
    )?;

    let report_dirs = if outcome.succeeded() {
        write_results(&outcome, &planned, &store)?
    } else {
        Vec::new()
    };
    let summary = RunSummary {
        spec_path,
        store: &store,
        outcome: &outcome,
        report_dirs: &report_dirs,
        started,
    };
    if json {
        summary.print_json();
    } else {
        summary.print_text();
    }
    Ok(if outcome.interrupted {
        EXIT_INTERRUPTED
    } else if outcome.succeeded() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// After a successful run: the lockfiles (the target's, and each member's
/// for a program), then every report's files in its output folder. The
/// folders written, the target's own report last.
fn write_results(
    outcome: &ExecOutcome,
    planned: &Planned,
    store: &Store,
) -> Result<Vec<PathBuf>, CliError> {
    let nodes = outcome.lockfile("", planned.target.digest()).nodes;
    for (path, lock) in planned.lockfiles(&nodes) {
        write_beside(&path, &lock.to_bytes())?;
    }
    let mut written = Vec::new();
    for report in planned.reports() {
        let Some(result) = outcome.result(&report.node) else {
            continue;
        };
        std::fs::create_dir_all(&report.dir)
            .map_err(|e| CliError::failed(format!("{}: {e}", report.dir.display())))?;
        for format in &report.formats {
            let name = format.file_name();
            if let Some(digest) = result.outputs.get(name) {
                write_beside(&report.dir.join(name), &store.get(digest)?)?;
            }
        }
        written.push(report.dir);
    }
    Ok(written)
}

/// What `assay run` tells at the end, as JSON on stdout or lines on stderr.
struct RunSummary<'a> {
    spec_path: &'a Path,
    store: &'a Store,
    outcome: &'a ExecOutcome,
    /// Where reports were written (the target's own last).
    report_dirs: &'a [PathBuf],
    started: Instant,
}

impl RunSummary<'_> {
    fn print_json(&self) {
        let outcome = self.outcome;
        print_json(&json!({
            "spec": self.spec_path.display().to_string(),
            "store": self.store.root().display().to_string(),
            "ran": outcome.count(NodeStatus::Ran),
            "cached": outcome.count(NodeStatus::Cached),
            "pulled": outcome.count(NodeStatus::Pulled),
            "failed": outcome.count(NodeStatus::Failed),
            "skipped": outcome.count(NodeStatus::Skipped),
            "cancelled": outcome.count(NodeStatus::Cancelled),
            "interrupted": outcome.interrupted,
            "report_dir": self.report_dirs.last().map(|d| d.display().to_string()),
            "report_dirs": self.report_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
            "nodes": outcome.results,
        }));
    }

    fn print_text(&self) {
        let outcome = self.outcome;
        let ran = outcome.count(NodeStatus::Ran);
        let cached = outcome.count(NodeStatus::Cached);
        let pulled = outcome.count(NodeStatus::Pulled);
        let failed = outcome.count(NodeStatus::Failed);
        let skipped = outcome.count(NodeStatus::Skipped);
        let cancelled = outcome.count(NodeStatus::Cancelled);
        for r in &outcome.results {
            match r.status {
                NodeStatus::Ran => eprintln!("  ran      {:<48} {:>9.1} ms", r.node, r.duration_ms),
                NodeStatus::Failed => eprintln!(
                    "  FAILED   {}: {}",
                    r.node,
                    r.error.as_deref().unwrap_or("")
                ),
                NodeStatus::Skipped => eprintln!(
                    "  skipped  {} ({})",
                    r.node,
                    r.error.as_deref().unwrap_or("")
                ),
                NodeStatus::Cached | NodeStatus::Pulled | NodeStatus::Cancelled => {}
            }
        }
        let pulled = if pulled > 0 {
            format!(", {pulled} pulled from the remote")
        } else {
            String::new()
        };
        let mut line = format!(
            "assay: {ran} ran, {cached} cached{pulled}, {failed} failed, {skipped} skipped in {:.1}s",
            self.started.elapsed().as_secs_f64()
        );
        if let Some(report_dir) = self.report_dirs.last() {
            line.push_str(&format!("; report: {}", report_dir.display()));
        }
        eprintln!("{line}");
        if outcome.interrupted {
            eprintln!(
                "assay: interrupted; {cancelled} nodes not finished. Rerun to resume from what finished."
            );
        }
    }
}

#[derive(Serialize)]
struct PlanEntry {
    node: String,
    stage: String,
    key: Option<String>,
    status: &'static str,
    reason: String,
}

/// Key and outputs known for nodes that are cached; None where a node
/// will run.
type Known = (Digest, BTreeMap<String, Digest>);

pub fn plan(spec_path: &Path, store_arg: &StoreArg, remeasure: bool, json: bool) -> CmdResult {
    let planned = load_planned(spec_path, Purpose::Read)?;
    let plan = &planned.plan;
    let store = Store::open_existing(planned.store_dir(store_arg)).ok();
    let lock = Lockfile::read(&planned.lock_path())?;

    let mut known: Vec<Option<Known>> = vec![None; plan.len()];
    let mut entries = Vec::new();
    for &idx in &plan.order {
        let node = plan.node(idx);
        let (inputs, pending_inputs) = known_inputs(plan, idx, &known);
        let prev = lock.as_ref().and_then(|l| l.nodes.get(&node.id));
        let (key, status, reason) = if !pending_inputs.is_empty() {
            (None, "run", pending_reason(&pending_inputs))
        } else {
            let key = node_key(node.stage.as_ref(), &inputs)
                .map_err(|e| CliError::failed(e.to_string()))?;
            let cached = store
                .as_ref()
                .and_then(|s| s.cached_node(&key).ok().flatten());
            let forced = remeasure && node.stage.machine().measures();
            match cached {
                Some(record) if !forced => {
                    known[idx.index()] = Some((key, record.outputs));
                    (Some(key), "cached", "up to date".to_string())
                }
                Some(_) => (Some(key), "run", "--remeasure".to_string()),
                None => {
                    let reason = explain(
                        store.as_ref(),
                        prev.map(|p| p.key),
                        node.stage.as_ref(),
                        &inputs,
                    );
                    (Some(key), "run", reason)
                }
            }
        };
        entries.push(PlanEntry {
            node: node.id.clone(),
            stage: node.stage.kind().to_string(),
            key: key.map(|k| k.to_hex()),
            status,
            reason,
        });
    }
    if json {
        print_json(&entries);
    } else {
        print_plan(&entries);
    }
    Ok(EXIT_OK)
}

/// The node's inputs whose producers are cached, and the ids of the
/// producers (deduplicated) that will run first.
fn known_inputs(plan: &Plan, idx: NodeIndex, known: &[Option<Known>]) -> (Vec<Input>, Vec<String>) {
    let mut pending_inputs = Vec::new();
    let mut inputs = Vec::new();
    for (src, name) in plan.inputs(idx) {
        match known[src.index()]
            .as_ref()
            .and_then(|(k, o)| Some((*k, o.get(name)?)))
        {
            Some((src_key, d)) => inputs.push(Input {
                node: plan.input_node(idx, src).to_string(),
                key: src_key,
                name: name.to_string(),
                digest: *d,
            }),
            None => pending_inputs.push(plan.node(src).id.clone()),
        }
    }
    pending_inputs.dedup();
    (inputs, pending_inputs)
}

/// Why a node whose inputs are not known yet will run: the first few of
/// the producers it waits for.
fn pending_reason(pending_inputs: &[String]) -> String {
    let shown: Vec<&str> = pending_inputs.iter().take(3).map(String::as_str).collect();
    let more = pending_inputs.len().saturating_sub(3);
    let mut reason = format!("input from {} will be recomputed", shown.join(", "));
    if more > 0 {
        reason.push_str(&format!(" (+{more} more)"));
    }
    reason
}

fn print_plan(entries: &[PlanEntry]) {
    let width = entries.iter().map(|e| e.node.len()).max().unwrap_or(4);
    let stage_width = entries
        .iter()
        .map(|e| e.stage.len())
        .max()
        .unwrap_or(5)
        .max(9);
    crate::outln!(
        "{:<stage_width$} {:<width$} {:<12} {:<7} reason",
        "stage",
        "node",
        "key",
        "status"
    );
    for e in entries {
        let key = e
            .key
            .as_deref()
            .map_or("?".to_string(), |k| k[..12].to_string());
        crate::outln!(
            "{:<stage_width$} {:<width$} {:<12} {:<7} {}",
            e.stage,
            e.node,
            key,
            e.status,
            e.reason
        );
    }
    let run = entries.iter().filter(|e| e.status == "run").count();
    crate::outln!(
        "{} nodes: {} cached, {} to run",
        entries.len(),
        entries.len() - run,
        run
    );
}

/// Why a node with this key is not cached: compare with the record of the
/// key the lockfile had for the same node, field by field.
fn explain(
    store: Option<&Store>,
    prev_key: Option<assay_store::Digest>,
    stage: &dyn assay_core::Stage,
    inputs: &[Input],
) -> String {
    let Some(prev_key) = prev_key else {
        return "new node (not in the lockfile)".into();
    };
    let Some(prev) = store.and_then(|s| s.get_node(&prev_key).ok().flatten()) else {
        return "previous result is not in this store".into();
    };
    if node_key(stage, inputs).is_ok_and(|key| key == prev.key) {
        return "outputs missing from the store".into();
    }
    let mut reasons = Vec::new();
    if prev.stage_version != stage.version() {
        reasons.push(format!(
            "stage version {} -> {}",
            prev.stage_version,
            stage.version()
        ));
    }
    match stage.params() {
        Ok(params) => reasons.extend(diff_params(&prev.params, &params)),
        Err(e) => reasons.push(e.to_string()),
    }
    if prev.env != stage.environment() {
        let old = prev.env.clone().unwrap_or_default();
        let new = stage.environment().unwrap_or_default();
        let d = diff_params(&old, &new);
        reasons.push(format!("environment changed ({})", d.join(", ")));
    }
    let mut changed_inputs: Vec<String> = Vec::new();
    for i in inputs {
        let same = prev
            .inputs
            .iter()
            .any(|p| p.node == i.node && p.name == i.name && p.digest == i.digest);
        if !same {
            changed_inputs.push(format!("{}:{}", i.node, i.name));
        }
    }
    if prev.inputs.len() != inputs.len() {
        reasons.push(format!("inputs {} -> {}", prev.inputs.len(), inputs.len()));
    }
    if !changed_inputs.is_empty() {
        changed_inputs.dedup();
        let n = changed_inputs.len();
        let shown: Vec<String> = changed_inputs.into_iter().take(3).collect();
        reasons.push(format!(
            "input changed: {}{}",
            shown.join(", "),
            if n > 3 {
                format!(" (+{} more)", n - 3)
            } else {
                String::new()
            }
        ));
    }
    if reasons.is_empty() {
        "key changed".into()
    } else {
        reasons.join("; ")
    }
}
