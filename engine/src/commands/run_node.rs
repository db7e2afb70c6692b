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
use crate::slurm::{SlurmOptions, preflight};
use crate::spec::{ExecutionSpec, Purpose, Target};

pub fn run_node(
    spec: &Path,
    store_dir: &Path,
    node_id: &str,
    key_hex: &str,
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
    let store = Store::open_existing(store_dir)?;
    let inputs = stored_inputs(plan, idx, &store)?;
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
            Ok(EXIT_OK)
        }
        NodeStatus::Cancelled => Ok(EXIT_INTERRUPTED),
        _ => Err(CliError::failed(
            result.error.unwrap_or_else(|| format!("{node_id} failed")),
        )),
    }
}

/// The inputs of `target` from the store: every ancestor's key recomputed
/// in plan order from its own producers' stored outputs, as `run` would.
fn stored_inputs(plan: &Plan, target: NodeIndex, store: &Store) -> Result<Vec<Input>, CliError> {
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
        let record = store.cached_node(&key)?.ok_or_else(|| {
            CliError::failed(format!(
                "input {} (key {}) is not in the store {}",
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
/// are checked here, before anything is submitted (exit 6 otherwise).
pub(super) fn executor_for(
    kind: ExecutorKind,
    planned: &Planned,
    store_dir: &Path,
) -> Result<Executor, CliError> {
    match kind {
        ExecutorKind::Local => Ok(Executor::Local),
        ExecutorKind::Slurm => {
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
            Ok(Executor::Slurm(SlurmOptions {
                spec: absolute(planned.target.path())?,
                store: absolute(store_dir)?,
                exe,
                execution: execution_of(&planned.target),
            }))
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
