//! The executor: runs the plan's nodes whose keys are not in the store.
//!
//! Nodes become ready when all their inputs exist. Measurement nodes (those
//! that occupy a device) run one at a time and alone, so nothing else
//! disturbs their timings; analysis nodes of a wave run in parallel on rayon.
//! Each finished node is recorded at once (objects first, then its record,
//! both atomic), so an interrupted run loses nothing that finished. A failed
//! node fails its dependents, never its siblings.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use assay_core::{Input, Outputs, StageContext, StageError};
use assay_store::{Digest, InputRef, LockEntry, Lockfile, NodeRecord, Store, StoreError};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use petgraph::graph::NodeIndex;
use rayon::prelude::*;
use serde::Serialize;

use crate::keys::node_key;
use crate::plan::{Plan, PlanNode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Cached,
    /// Fetched from the remote cache (`--remote`) instead of run.
    Pulled,
    Ran,
    Failed,
    Skipped,
    Cancelled,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeResult {
    pub node: String,
    pub stage: String,
    pub key: Option<Digest>,
    pub status: NodeStatus,
    pub outputs: BTreeMap<String, Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A failed node's record of what it received (e.g. the raw bytes of a
    /// malformed server stream), stored as an object: `assay show DIGEST`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_record: Option<Digest>,
    pub duration_ms: f64,
    /// The Slurm job and node that ran it (`--executor slurm` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slurm: Option<crate::slurm::Placement>,
}

pub struct ExecOptions {
    /// Rerun measure nodes even when cached.
    pub remeasure: bool,
    pub show_progress: bool,
    /// Where the measure nodes run.
    pub executor: Executor,
    /// A remote cache to fetch a node's outputs from, where the local store
    /// lacks them, instead of running it (`run --remote`).
    pub remote: Option<std::sync::Arc<crate::remote::Remote>>,
}

/// Where the nodes that measure (`MachineUse::Measures`) run; every other
/// node runs here either way.
#[derive(Debug, Clone, Default)]
pub enum Executor {
    /// In this process, one at a time (the default).
    #[default]
    Local,
    /// As Slurm jobs, one job array per wave (`crate::slurm`).
    Slurm(Box<crate::slurm::SlurmOptions>),
}

pub struct ExecOutcome {
    /// One result per plan node, in plan order.
    pub results: Vec<NodeResult>,
    pub interrupted: bool,
}

impl ExecOutcome {
    pub fn count(&self, status: NodeStatus) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }

    pub fn succeeded(&self) -> bool {
        !self.interrupted && self.results.iter().all(|r| r.status.succeeded())
    }

    pub fn result(&self, node: &str) -> Option<&NodeResult> {
        self.results.iter().find(|r| r.node == node)
    }

    pub fn lockfile(&self, spec_name: &str, spec_digest: Digest) -> Lockfile {
        Lockfile {
            assay_lock: assay_store::lockfile::LOCKFILE_FORMAT,
            spec: spec_name.to_string(),
            spec_digest,
            nodes: self
                .results
                .iter()
                .filter_map(|r| {
                    Some((
                        r.node.clone(),
                        LockEntry {
                            stage: r.stage.clone(),
                            key: r.key?,
                            outputs: r.outputs.clone(),
                        },
                    ))
                })
                .collect(),
        }
    }
}

/// The inputs of `idx` given the finished upstream results, which must all
/// have succeeded. An edge whose output the producer did not write is an
/// error of this node, never a shorter input list: a key computed over
/// missing inputs would be a key over nothing.
pub fn gather_inputs(
    plan: &Plan,
    idx: NodeIndex,
    results: &[Option<NodeResult>],
) -> Result<Vec<Input>, StageError> {
    plan.inputs(idx)
        .into_iter()
        .map(|(src, name)| {
            let missing = |why: &str| {
                StageError::Failed(format!("input {name} from {}: {why}", plan.node(src).id))
            };
            let r = results[src.index()]
                .as_ref()
                .ok_or_else(|| missing("the producer has not run"))?;
            Ok(Input {
                node: plan.input_node(idx, src).to_string(),
                key: r.key.ok_or_else(|| missing("the producer has no key"))?,
                name: name.to_string(),
                digest: *r
                    .outputs
                    .get(name)
                    .ok_or_else(|| missing("the producer did not write it"))?,
            })
        })
        .collect()
}

/// Run one node's stage and record it. Panics inside a stage become a
/// failure of that node.
fn run_node(
    plan: &Plan,
    idx: NodeIndex,
    inputs: Vec<Input>,
    key: Digest,
    store: &Store,
    cancel: &AtomicBool,
    bar: &ProgressBar,
) -> NodeResult {
    let id = plan.node(idx).id.clone();
    let progress = |msg: &str| bar.set_message(format!("{id}: {msg}"));
    bar.set_message(id.clone());
    let result = run_and_record(plan, idx, inputs, key, store, cancel, &progress);
    bar.inc(1);
    result
}

/// Run one node's stage with these inputs and key, then record its
/// outputs and node record in the store: what `run` does for each node it
/// runs, and `assay run-node` for one cell on a Slurm compute node.
pub fn run_and_record(
    plan: &Plan,
    idx: NodeIndex,
    inputs: Vec<Input>,
    key: Digest,
    store: &Store,
    cancel: &AtomicBool,
    progress: &(dyn Fn(&str) + Sync),
) -> NodeResult {
    let node = plan.node(idx);
    let start = Instant::now();
    let ctx = StageContext::new(store, key, cancel, progress);
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| node.stage.run(&ctx, &inputs)))
        .unwrap_or_else(|panic| {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(StageError::Failed(format!("internal error (panic): {msg}")))
        });
    let mut result = NodeResult {
        node: node.id.clone(),
        stage: node.stage.kind().to_string(),
        key: Some(key),
        status: NodeStatus::Ran,
        outputs: BTreeMap::new(),
        error: None,
        failure_record: None,
        duration_ms: 0.0,
        slurm: None,
    };
    let record = outcome.and_then(|outputs| {
        record_node(
            node,
            &inputs,
            key,
            store,
            start,
            outputs,
            &mut result.outputs,
        )
    });
    result.duration_ms = start.elapsed().as_secs_f64() * 1e3;
    if let Err(e) = record {
        settle_failure(&mut result, e, store);
    }
    result
}

/// Store a node's outputs (into `stored`), then its record.
pub(crate) fn record_node(
    node: &PlanNode,
    inputs: &[Input],
    key: Digest,
    store: &Store,
    start: Instant,
    outputs: Outputs,
    stored: &mut BTreeMap<String, Digest>,
) -> Result<(), StageError> {
    // A stage writes only what it declares: what the planner wired and
    // what consumers may ask for.
    let declared = node.stage.outputs();
    if let Some(name) = outputs.keys().find(|n| !declared.contains(&n.as_str())) {
        return Err(StageError::Failed(format!(
            "internal error: {} wrote the undeclared output {name}",
            node.stage.kind()
        )));
    }
    for (name, bytes) in &outputs {
        stored.insert(name.clone(), store.put(bytes)?);
    }
    let record = NodeRecord {
        key,
        node: node.key_id().to_string(),
        stage: node.stage.kind().to_string(),
        stage_version: node.stage.version(),
        params: node.stage.params()?,
        env: node.stage.environment(),
        inputs: inputs
            .iter()
            .map(|i| InputRef {
                node: i.node.clone(),
                name: i.name.clone(),
                digest: i.digest,
            })
            .collect(),
        outputs: stored.clone(),
        duration_ms: start.elapsed().as_secs_f64() * 1e3,
    };
    store.put_node(&record)?;
    Ok(())
}

/// A node that did not finish keeps no outputs; say why it stopped.
fn settle_failure(result: &mut NodeResult, error: StageError, store: &Store) {
    match error {
        StageError::Cancelled => {
            result.status = NodeStatus::Cancelled;
            result.outputs.clear();
        }
        StageError::FailedWithRecord { message, record } => {
            result.status = NodeStatus::Failed;
            result.outputs.clear();
            // The record is kept even though the node stores nothing else;
            // no lockfile names it, so `assay gc` removes it later.
            match store.put(&record) {
                Ok(digest) => {
                    result.error = Some(format!(
                        "{message} (what was received: assay show {})",
                        digest.short()
                    ));
                    result.failure_record = Some(digest);
                }
                Err(e) => {
                    result.error = Some(format!("{message} (its record was not stored: {e})"));
                }
            }
        }
        e => {
            result.status = NodeStatus::Failed;
            result.error = Some(e.to_string());
            result.outputs.clear();
        }
    }
}

/// A node ready to run: its inputs and its key.
type Job = (NodeIndex, Vec<Input>, Digest);

pub fn execute(
    plan: &Plan,
    store: &Store,
    opts: &ExecOptions,
    cancel: &AtomicBool,
) -> Result<ExecOutcome, StoreError> {
    let multi = MultiProgress::with_draw_target(if opts.show_progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let bar = multi.add(ProgressBar::new(plan.len() as u64));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} nodes  {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));

    let mut results: Vec<Option<NodeResult>> = vec![None; plan.len()];
    loop {
        let ready = ready_nodes(plan, &results);
        if ready.is_empty() {
            break;
        }
        let mut to_run: Vec<Job> = Vec::new();
        for idx in ready {
            match triage(plan, idx, &results, store, opts, cancel)? {
                Triage::Done(r) => {
                    results[idx.index()] = Some(r);
                    bar.inc(1);
                }
                Triage::Run(job) => to_run.push(job),
            }
        }
        if to_run.is_empty() {
            continue;
        }
        run_wave(plan, to_run, &mut results, store, opts, cancel, &bar);
    }
    bar.finish_and_clear();
    let results: Vec<NodeResult> = plan
        .order
        .iter()
        .filter_map(|i| results[i.index()].clone())
        .collect();
    Ok(ExecOutcome {
        interrupted: cancel.load(Ordering::Relaxed),
        results,
    })
}

/// The nodes not yet settled whose inputs all are, in plan order.
fn ready_nodes(plan: &Plan, results: &[Option<NodeResult>]) -> Vec<NodeIndex> {
    plan.order
        .iter()
        .copied()
        .filter(|i| results[i.index()].is_none())
        .filter(|i| {
            plan.inputs(*i)
                .iter()
                .all(|(src, _)| results[src.index()].is_some())
        })
        .collect()
}

/// What becomes of a ready node: settled without running, or run.
enum Triage {
    Done(NodeResult),
    Run(Job),
}

/// Settle a ready node that need not run (an input failed, its key cannot
/// be computed, or it is cached), or hand it back to be run.
fn triage(
    plan: &Plan,
    idx: NodeIndex,
    results: &[Option<NodeResult>],
    store: &Store,
    opts: &ExecOptions,
    cancel: &AtomicBool,
) -> Result<Triage, StoreError> {
    let node = plan.node(idx);
    let blocked = plan.inputs(idx).into_iter().find_map(|(src, _)| {
        let r = results[src.index()].as_ref()?;
        (!r.status.succeeded()).then(|| (r.node.clone(), r.status))
    });
    if let Some((dep, status)) = blocked {
        let status_out = if status == NodeStatus::Cancelled || cancel.load(Ordering::Relaxed) {
            NodeStatus::Cancelled
        } else {
            NodeStatus::Skipped
        };
        let mut r = NodeResult::unrun(plan, idx, None, status_out);
        r.error = Some(format!(
            "not run: input {dep} {}",
            format!("{status:?}").to_lowercase()
        ));
        return Ok(Triage::Done(r));
    }
    let keyed = gather_inputs(plan, idx, results)
        .and_then(|inputs| Ok((node_key(node.stage.as_ref(), &inputs)?, inputs)));
    let (key, inputs) = match keyed {
        Ok(keyed) => keyed,
        Err(e) => {
            let mut r = NodeResult::unrun(plan, idx, None, NodeStatus::Failed);
            r.error = Some(e.to_string());
            return Ok(Triage::Done(r));
        }
    };
    // Remeasuring repeats what reads the machine (measurements and its
    // bandwidth), not the deterministic model preparation.
    let force = opts.remeasure && node.stage.machine().measures();
    let cached = if force {
        None
    } else {
        store.cached_node(&key)?
    };
    if let Some(record) = cached {
        let mut r = NodeResult::unrun(plan, idx, Some(key), NodeStatus::Cached);
        r.outputs = record.outputs;
        return Ok(Triage::Done(r));
    }
    // The remote's copy, where it holds one, is as good as a local one:
    // the same key, every object hashed on its way in. Not when forced.
    if let (Some(remote), false) = (&opts.remote, force) {
        match remote.pull_node(store, &key) {
            Ok(Some(record)) => {
                let mut r = NodeResult::unrun(plan, idx, Some(key), NodeStatus::Pulled);
                r.outputs = record.outputs;
                return Ok(Triage::Done(r));
            }
            Ok(None) => {}
            // A remote that fails fails the node, never silently reruns
            // it: the user asked for the remote's copy.
            Err(e) => {
                let mut r = NodeResult::unrun(plan, idx, Some(key), NodeStatus::Failed);
                r.error = Some(e.to_string());
                return Ok(Triage::Done(r));
            }
        }
    }
    Ok(Triage::Run((idx, inputs, key)))
}

/// Run one wave of nodes: measurements one at a time, then the analysis
/// nodes in parallel. Once cancelled, what has not started is cancelled.
fn run_wave(
    plan: &Plan,
    to_run: Vec<Job>,
    results: &mut [Option<NodeResult>],
    store: &Store,
    opts: &ExecOptions,
    cancel: &AtomicBool,
    bar: &ProgressBar,
) {
    if cancel.load(Ordering::Relaxed) {
        for (idx, _, key) in to_run {
            results[idx.index()] = Some(cancelled(plan, idx, key));
        }
        return;
    }
    let (measure, analysis): (Vec<_>, Vec<_>) = to_run
        .into_iter()
        .partition(|(idx, _, _)| plan.node(*idx).stage.machine().device().is_some());
    // With Slurm, the nodes that measure go to the cluster as one job array;
    // the rest of the wave runs here as without it.
    let measure = match &opts.executor {
        Executor::Local => measure,
        Executor::Slurm(slurm) => {
            let (cells, local): (Vec<_>, Vec<_>) = measure
                .into_iter()
                .partition(|(idx, _, _)| plan.node(*idx).stage.machine().measures());
            let remote = opts.remote.as_deref();
            run_on_slurm(plan, slurm, cells, results, store, remote, cancel, bar);
            local
        }
    };
    // Measurements first, one at a time, nothing beside them.
    for (idx, inputs, key) in measure {
        let r = if cancel.load(Ordering::Relaxed) {
            cancelled(plan, idx, key)
        } else {
            run_node(plan, idx, inputs, key, store, cancel, bar)
        };
        results[idx.index()] = Some(r);
    }
    let done: Vec<(NodeIndex, NodeResult)> = analysis
        .into_par_iter()
        .map(|(idx, inputs, key)| {
            let r = if cancel.load(Ordering::Relaxed) {
                cancelled(plan, idx, key)
            } else {
                run_node(plan, idx, inputs, key, store, cancel, bar)
            };
            (idx, r)
        })
        .collect();
    for (idx, r) in done {
        results[idx.index()] = Some(r);
    }
}

/// Submit these measure nodes as one Slurm job array and settle each as
/// its job ends: ran (its record is read back from the store, or pulled
/// from the remote cache with `execution.store: remote`), failed with
/// Slurm's state and reason, or cancelled.
#[allow(clippy::too_many_arguments)]
fn run_on_slurm(
    plan: &Plan,
    slurm: &crate::slurm::SlurmOptions,
    cells: Vec<Job>,
    results: &mut [Option<NodeResult>],
    store: &Store,
    remote: Option<&crate::remote::Remote>,
    cancel: &AtomicBool,
    bar: &ProgressBar,
) {
    use crate::slurm::{Cell, CellOutcome, failure_message, run_cells};
    if cells.is_empty() {
        return;
    }
    // Without a shared filesystem the jobs find their producers (the
    // prepared models) on the remote: pushed before anything is submitted.
    let remote = slurm.via_remote.as_ref().and(remote);
    if let Some(remote) = remote
        && let Err(e) = push_producers(plan, &cells, results, store, remote, cancel)
    {
        for (idx, _, key) in &cells {
            let mut r = NodeResult::unrun(plan, *idx, Some(*key), NodeStatus::Failed);
            r.error = Some(format!("not submitted to Slurm: {e}"));
            bar.inc(1);
            results[idx.index()] = Some(r);
        }
        return;
    }
    let start = Instant::now();
    bar.set_message(format!("{} cells submitted to Slurm", cells.len()));
    let submitted: Vec<Cell> = cells
        .iter()
        .map(|(idx, _, key)| Cell {
            node: plan.node(*idx).id.clone(),
            key: *key,
        })
        .collect();
    let settle = |i: usize, outcome: CellOutcome| -> (NodeIndex, NodeResult) {
        let (idx, _, key) = &cells[i];
        let mut r = NodeResult::unrun(plan, *idx, Some(*key), NodeStatus::Failed);
        r.slurm = Some(outcome.placement().clone());
        r.duration_ms = start.elapsed().as_secs_f64() * 1e3;
        match outcome {
            CellOutcome::Completed(_) => {
                let record = match (store.cached_node(key), remote) {
                    (Ok(None), Some(remote)) => {
                        remote.pull_node(store, key).map_err(|e| e.to_string())
                    }
                    (found, _) => found.map_err(|e| e.to_string()),
                };
                let job = r.slurm.as_ref().map_or("", |p| p.job_id.as_str());
                match record {
                    Ok(Some(record)) => {
                        r.status = NodeStatus::Ran;
                        r.outputs = record.outputs;
                        r.duration_ms = record.duration_ms;
                    }
                    Ok(None) => {
                        r.error = Some(match remote {
                            Some(remote) => format!(
                                "slurm job {job} completed but the remote {} holds no record of \
                                 the node (its log on the node says why)",
                                remote.shown
                            ),
                            None => format!(
                                "slurm job {job} completed but the node's record is not in the \
                                 store {} (is the store on a filesystem the compute nodes share? \
                                 If not, use execution.store: remote)",
                                store.root().display()
                            ),
                        });
                    }
                    Err(e) => r.error = Some(e),
                }
            }
            CellOutcome::Failed {
                placement,
                state,
                reason,
                message,
            } => {
                r.error = Some(failure_message(
                    &placement,
                    &state,
                    &reason,
                    message.as_deref(),
                ));
            }
            CellOutcome::Cancelled(_) => r.status = NodeStatus::Cancelled,
        }
        (*idx, r)
    };
    let mut settled: Vec<(NodeIndex, NodeResult)> = Vec::new();
    let submitted_ok = run_cells(slurm, &submitted, cancel, |i, outcome| {
        let (idx, r) = settle(i, outcome);
        bar.inc(1);
        bar.set_message(format!("{}: {:?}", r.node, r.status).to_lowercase());
        settled.push((idx, r));
    });
    for (idx, r) in settled {
        results[idx.index()] = Some(r);
    }
    if let Err(e) = submitted_ok {
        // What was never reported fails with the reason.
        for (idx, _, key) in &cells {
            if results[idx.index()].is_none() {
                let mut r = NodeResult::unrun(plan, *idx, Some(*key), NodeStatus::Failed);
                r.error = Some(format!("not run on Slurm: {e}"));
                bar.inc(1);
                results[idx.index()] = Some(r);
            }
        }
    }
}

/// Push every recorded ancestor of `cells` (a job recomputes the cell's key
/// from them all) to the remote, objects before records.
fn push_producers(
    plan: &Plan,
    cells: &[Job],
    results: &[Option<NodeResult>],
    store: &Store,
    remote: &crate::remote::Remote,
    cancel: &AtomicBool,
) -> Result<(), String> {
    let mut seen = vec![false; plan.len()];
    let mut stack: Vec<NodeIndex> = cells.iter().map(|(idx, _, _)| *idx).collect();
    let mut records = Vec::new();
    while let Some(i) = stack.pop() {
        for (src, _) in plan.inputs(i) {
            if std::mem::replace(&mut seen[src.index()], true) {
                continue;
            }
            stack.push(src);
            let key = results[src.index()]
                .as_ref()
                .and_then(|r| r.key)
                .ok_or_else(|| format!("{} has no result yet", plan.node(src).id))?;
            let record = store
                .cached_node(&key)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{} is not in the store", plan.node(src).id))?;
            records.push(record);
        }
    }
    let stop = || cancel.load(Ordering::Relaxed);
    match remote.push_nodes(store, &records, &stop, &|| {}) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("cancelled".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn cancelled(plan: &Plan, idx: NodeIndex, key: Digest) -> NodeResult {
    NodeResult::unrun(plan, idx, Some(key), NodeStatus::Cancelled)
}

impl NodeStatus {
    /// Its outputs exist: it ran, or was cached or pulled.
    pub fn succeeded(self) -> bool {
        matches!(
            self,
            NodeStatus::Cached | NodeStatus::Pulled | NodeStatus::Ran
        )
    }
}

impl NodeResult {
    /// The result of a node whose stage did not run (cached, skipped,
    /// cancelled, or failed before running): no outputs, no error yet.
    fn unrun(plan: &Plan, idx: NodeIndex, key: Option<Digest>, status: NodeStatus) -> Self {
        let node = plan.node(idx);
        NodeResult {
            node: node.id.clone(),
            stage: node.stage.kind().to_string(),
            key,
            status,
            outputs: BTreeMap::new(),
            error: None,
            failure_record: None,
            duration_ms: 0.0,
            slurm: None,
        }
    }
}
