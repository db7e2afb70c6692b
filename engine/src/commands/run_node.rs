//! `assay run-node` (hidden): one node of a spec, run and recorded in the
//! store, as a Slurm job of `run --executor slurm` runs it on a compute
//! node (docs/cluster.md). The node's inputs are the stored outputs of its
//! producers, found by recomputing their keys as `run` does; the node's own
//! key, recomputed here, must be the one submitted, or nothing runs.
//!
//! The store is not locked here: the `assay run` that submitted the job
//! holds its lock for the whole run, and every write to the store is an
//! atomic rename, so the job's objects and record appear whole or not at
//! all.
//!
//! With `execution.store: remote` (no shared filesystem) the store is one
//! on the compute node: the producers the node lacks are pulled from the
//! remote cache (hashed on the way in), and the recorded cell is pushed to
//! it (objects, then the record, create-only) for the submitting run to
//! pull. A cell the remote already holds is not run again.
//!
//! Also here: the executor `run` hands to the executor, checked before
//! anything is submitted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use assay_core::Input;
use assay_store::{Digest, Store};
use petgraph::graph::NodeIndex;

use super::target::{Planned, load_planned};
use crate::cli::{
    CliError, CmdResult, EXIT_EXECUTOR_UNAVAILABLE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE,
    ExecutorKind,
};
use crate::exec::{Executor, NodeStatus, run_and_record};
use crate::keys::node_key;
use crate::plan::Plan;
use crate::remote::{Remote, RemoteArgs, RemoteConfig};
use crate::slurm::{SlurmOptions, ViaRemote, preflight};
use crate::spec::{ExecutionSpec, JobStore, Purpose, Target};

/// How a job of `execution.store: remote` names the remote cache
/// (`RemoteConfig::job_args` on the submitting side).
pub struct JobRemote {
    pub url: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

pub fn run_node(
    spec: &Path,
    store_dir: &Path,
    node_id: &str,
    key_hex: &str,
    remote: Option<&JobRemote>,
    cancel: &AtomicBool,
) -> CmdResult {
    let wanted: Digest = key_hex
        .parse()
        .map_err(|_| CliError::usage(format!("--key {key_hex:?} is not a node key")))?;
    let planned = load_planned(spec, Purpose::Measure)?;
    let plan = &planned.plan;
    let idx = plan
        .order
        .iter()
        .copied()
        .find(|&i| plan.node(i).id == node_id)
        .ok_or_else(|| CliError::usage(format!("{} plans no node {node_id:?}", spec.display())))?;
    let remote = match remote {
        Some(r) => Some(open_remote(r, planned.target.dir())?),
        None => None,
    };
    let store = match &remote {
        // The node's own store, made on the node's first job.
        Some(_) => Store::open(store_dir)?,
        None => Store::open_existing(store_dir)?,
    };
    if let Some(remote) = &remote
        && remote.holds_node(&wanted)?
    {
        eprintln!(
            "assay: {node_id} is on the remote {} already: not run again",
            remote.shown
        );
        return Ok(EXIT_OK);
    }
    let inputs = stored_inputs(plan, idx, &store, remote.as_ref())?;
    let key = node_key(plan.node(idx).stage.as_ref(), &inputs)
        .map_err(|e| CliError::failed(e.to_string()))?;
    if key != wanted {
        return Err(CliError::failed(format!(
            "{node_id}: its key here is {}, not the submitted {}: the spec, the store or this \
             machine's environment differs from the submitting side; nothing was run",
            key.short(),
            wanted.short()
        )));
    }
    let result = run_and_record(plan, idx, inputs, key, &store, cancel, &|_| {});
    match result.status {
        NodeStatus::Ran => {
            eprintln!("assay: {node_id} ran in {:.1} ms", result.duration_ms);
            if let Some(remote) = &remote {
                let record = store.cached_node(&key)?.ok_or_else(|| {
                    CliError::failed(format!("{node_id} ran but its record is not in the store"))
                })?;
                let stop = || cancel.load(std::sync::atomic::Ordering::Relaxed);
                let Some(pushed) = remote.push_nodes(&store, &[record], &stop, &|| {})? else {
                    return Ok(EXIT_INTERRUPTED);
                };
                eprintln!(
                    "assay: {node_id} pushed to {}: {} objects ({} bytes) sent, {} there already",
                    remote.shown, pushed.objects_sent, pushed.bytes_sent, pushed.objects_present
                );
            }
            Ok(EXIT_OK)
        }
        NodeStatus::Cancelled => Ok(EXIT_INTERRUPTED),
        _ => Err(CliError::failed(
            result.error.unwrap_or_else(|| format!("{node_id} failed")),
        )),
    }
}

/// The remote a job was given, as the submitting run resolved it (the
/// folder config beside the spec may add what the arguments leave out).
fn open_remote(r: &JobRemote, spec_dir: &Path) -> Result<Remote, CliError> {
    let args = RemoteArgs {
        remote: true,
        remote_url: Some(r.url.clone()),
        remote_endpoint: r.endpoint.clone(),
    };
    let mut cfg = crate::remote::resolve(&args, spec_dir, true)?
        .ok_or_else(|| CliError::usage("--remote-url names no remote".to_string()))?;
    if r.region.is_some() {
        cfg.region.clone_from(&r.region);
    }
    Ok(Remote::open(&cfg)?)
}

/// The inputs of `target` from the store: every ancestor's key recomputed
/// in plan order from its own producers' stored outputs, as `run` would.
/// An ancestor the store lacks is pulled from `remote`, where given.
fn stored_inputs(
    plan: &Plan,
    target: NodeIndex,
    store: &Store,
    remote: Option<&Remote>,
) -> Result<Vec<Input>, CliError> {
    let mut needed = vec![false; plan.len()];
    let mut stack = vec![target];
    while let Some(i) = stack.pop() {
        for (src, _) in plan.inputs(i) {
            if !needed[src.index()] {
                needed[src.index()] = true;
                stack.push(src);
            }
        }
    }
    let mut known: Vec<Option<(Digest, BTreeMap<String, Digest>)>> = vec![None; plan.len()];
    for &i in plan.order.iter().filter(|i| needed[i.index()]) {
        let inputs = inputs_of(plan, i, &known)?;
        let node = plan.node(i);
        let key =
            node_key(node.stage.as_ref(), &inputs).map_err(|e| CliError::failed(e.to_string()))?;
        let mut record = store.cached_node(&key)?;
        if let (None, Some(remote)) = (&record, remote) {
            record = remote.pull_node(store, &key)?;
        }
        let record = record.ok_or_else(|| {
            let remote =
                remote.map_or(String::new(), |r| format!(" nor on the remote {}", r.shown));
            CliError::failed(format!(
                "input {} (key {}) is not in the store {}{remote}",
                node.id,
                key.short(),
                store.root().display()
            ))
        })?;
        known[i.index()] = Some((key, record.outputs));
    }
    inputs_of(plan, target, &known)
}

fn inputs_of(
    plan: &Plan,
    idx: NodeIndex,
    known: &[Option<(Digest, BTreeMap<String, Digest>)>],
) -> Result<Vec<Input>, CliError> {
    plan.inputs(idx)
        .into_iter()
        .map(|(src, name)| {
            let (key, outputs) = known[src.index()].as_ref().ok_or_else(|| {
                CliError::failed(format!("input {} has not been recorded", plan.node(src).id))
            })?;
            Ok(Input {
                node: plan.input_node(idx, src).to_string(),
                key: *key,
                name: name.to_string(),
                digest: *outputs.get(name).ok_or_else(|| {
                    CliError::failed(format!(
                        "input {name} from {}: the producer did not write it",
                        plan.node(src).id
                    ))
                })?,
            })
        })
        .collect()
}

/// The executor `assay run` uses: for Slurm, its commands and controller
/// are checked here, before anything is submitted (exit 6 otherwise), and
/// `execution.store: remote` needs the run's remote cache (exit 2).
pub(super) fn executor_for(
    kind: ExecutorKind,
    planned: &Planned,
    store_dir: &Path,
    remote: Option<&RemoteConfig>,
) -> Result<Executor, CliError> {
    match kind {
        ExecutorKind::Local => Ok(Executor::Local),
        ExecutorKind::Slurm => {
            let execution = execution_of(&planned.target);
            let via_remote = match (execution.store, remote) {
                (JobStore::Shared, _) => None,
                (JobStore::Remote, Some(cfg)) => Some(ViaRemote {
                    remote_args: cfg.job_args(),
                    node_store: execution.node_store.clone(),
                }),
                (JobStore::Remote, None) => {
                    return Err(CliError::usage(format!(
                        "{}: execution.store is remote, so the jobs need the remote cache: \
                         give --remote-url URL, set ASSAY_REMOTE_URL, or name one in assay.yaml \
                         beside the spec (docs/cluster.md). Nothing was submitted.",
                        planned.target.path().display()
                    )));
                }
            };
            preflight().map_err(|e| CliError {
                code: EXIT_EXECUTOR_UNAVAILABLE,
                message: e.to_string(),
            })?;
            let absolute = |p: &Path| -> Result<PathBuf, CliError> {
                std::path::absolute(p)
                    .map_err(|e| CliError::failed(format!("{}: {e}", p.display())))
            };
            let exe = std::env::current_exe().map_err(|e| CliError {
                code: EXIT_USAGE,
                message: format!("--executor slurm: where is this assay binary? {e}"),
            })?;
            Ok(Executor::Slurm(Box::new(SlurmOptions {
                spec: absolute(planned.target.path())?,
                store: absolute(store_dir)?,
                exe,
                execution,
                via_remote,
            })))
        }
    }
}

/// A spec's `execution:`; for a program, its first member's that has one.
fn execution_of(target: &Target) -> ExecutionSpec {
    match target {
        Target::Spec(s) => s.spec.execution.clone(),
        Target::Program(p) => p.members.iter().find_map(|m| m.spec.execution.clone()),
    }
    .unwrap_or_default()
}
