//! `assay verify`: recompute every derived node from the stored inputs and
//! compare bytes with the store and the lockfile. Measurements cannot be
//! recomputed; their objects are checked against their digests.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use assay_core::{Input, Outputs, StageContext};
use assay_store::{Digest, LockEntry, Lockfile, Store};
use petgraph::graph::NodeIndex;
use serde::Serialize;

use super::print_json;
use super::remote::pull_lockfile;
use super::target::load_planned;
use crate::cli::{CliError, CmdResult, EXIT_INTERRUPTED, EXIT_MISMATCH, EXIT_OK, StoreArg};
use crate::exec::record_node;
use crate::keys::node_key;
use crate::plan::Plan;
use crate::remote::{self, Remote, RemoteArgs};
use crate::spec::Purpose;

#[derive(Serialize)]
struct Problem {
    node: String,
    problem: String,
}

pub fn verify(
    spec_path: &Path,
    store_arg: &StoreArg,
    json: bool,
    remote_args: &RemoteArgs,
    cancel: &AtomicBool,
) -> CmdResult {
    let planned = load_planned(spec_path, Purpose::Read)?;
    let plan = &planned.plan;
    let lock_path = planned.lock_path();
    let lock = Lockfile::read(&lock_path)?.ok_or_else(|| {
        CliError::usage(format!(
            "{}: no lockfile; run `assay run {}` first",
            lock_path.display(),
            spec_path.display()
        ))
    })?;
    let remote = match remote::resolve(remote_args, planned.target.dir(), false)? {
        Some(cfg) => Some(Remote::open(&cfg)?),
        None => None,
    };
    let store = match &remote {
        // A fresh machine verifies into a new store.
        Some(_) => Store::open(planned.store_dir(store_arg))?,
        None => Store::open_existing(planned.store_dir(store_arg))?,
    };
    let _lock = store.lock(|| {
        eprintln!(
            "assay: waiting for another assay process to release {}",
            store.root().join("lock").display()
        )
    })?;
    if let Some(remote) = &remote {
        // Only what cannot be recomputed (measurements, model preparation)
        // comes from the remote; every derived node is recomputed here.
        let raw_ids: std::collections::BTreeSet<&str> = plan
            .order
            .iter()
            .map(|&i| plan.node(i))
            .filter(|n| n.stage.machine().device().is_some())
            .map(|n| n.id.as_str())
            .collect();
        let raw = Lockfile {
            nodes: lock
                .nodes
                .iter()
                .filter(|(id, _)| raw_ids.contains(id.as_str()))
                .map(|(id, e)| (id.clone(), e.clone()))
                .collect(),
            ..lock.clone()
        };
        let pulled = pull_lockfile(remote, &store, &raw, json, cancel)?;
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(EXIT_INTERRUPTED);
        }
        if !json {
            eprintln!(
                "assay: pulled {} measured and prepared nodes ({} bytes) from {}; {} were here already",
                pulled.pulled, pulled.bytes, remote.shown, pulled.present
            );
        }
    }

    let mut verifier = Verifier {
        plan,
        lock: &lock,
        store: &store,
        cancel: AtomicBool::new(false),
        problems: Vec::new(),
        outputs: BTreeMap::new(),
        fill: remote.is_some(),
    };
    if lock.spec_digest != planned.target.digest() {
        verifier.problem(
            "(spec)",
            format!(
                "{} changed since {} was written; run it again",
                spec_path.display(),
                lock_path.display()
            ),
        );
    }
    let mut verified = 0;
    for &idx in &plan.order {
        if verifier.verify_node(idx) {
            verified += 1;
        }
    }
    let problems = verifier.problems;
    let ok = problems.is_empty();
    if json {
        print_json(
            &serde_json::json!({ "ok": ok, "verified": verified, "nodes": plan.len(), "problems": problems }),
        );
    } else if ok {
        eprintln!(
            "assay: verified {verified} of {} nodes: every derived artifact recomputes byte-identical",
            plan.len()
        );
    } else {
        for p in &problems {
            eprintln!("MISMATCH {}: {}", p.node, p.problem);
        }
        eprintln!(
            "assay: verification failed: {} problem(s), {verified} of {} nodes verified",
            problems.len(),
            plan.len()
        );
    }
    Ok(if ok { EXIT_OK } else { EXIT_MISMATCH })
}

/// Walks the plan in order, checking each node against the lockfile and
/// the store, and collects every problem found.
struct Verifier<'a> {
    plan: &'a Plan,
    lock: &'a Lockfile,
    store: &'a Store,
    cancel: AtomicBool,
    problems: Vec<Problem>,
    /// The lockfile's outputs of the nodes seen so far: the inputs of the
    /// nodes after them.
    outputs: BTreeMap<String, BTreeMap<String, Digest>>,
    /// Store a derived node this store lacks once it recomputes to the
    /// lockfile's bytes (`verify --remote` on a fresh store): a later
    /// `run` then finds everything cached and writes the same report.
    fill: bool,
}

impl Verifier<'_> {
    fn problem(&mut self, node: &str, text: String) {
        self.problems.push(Problem {
            node: node.to_string(),
            problem: text,
        })
    }

    /// Whether the node verified: its objects intact and, unless it is a
    /// measurement, its outputs recomputed byte-identical.
    fn verify_node(&mut self, idx: NodeIndex) -> bool {
        let plan = self.plan;
        let node = plan.node(idx);
        let Some(entry) = self.lock.nodes.get(&node.id) else {
            self.problem(&node.id, "not in the lockfile".into());
            return false;
        };
        self.outputs.insert(node.id.clone(), entry.outputs.clone());
        // Every object the lockfile names must be intact; a derived object a
        // fresh store lacks (`verify --remote`) is recomputed below instead.
        let derived = node.stage.machine().device().is_none();
        let mut intact = true;
        for (name, digest) in &entry.outputs {
            if self.fill && derived && !self.store.has_object(digest) {
                continue;
            }
            if let Err(e) = self.store.check_object(digest) {
                self.problem(&node.id, format!("output {name}: {e}"));
                intact = false;
            }
        }
        // What occupies a device (measurements, model preparation) is not
        // run again: its objects are checked above.
        if node.stage.machine().device().is_some() {
            return intact;
        }
        let inputs = self.inputs_of(idx);
        let key = match node_key(node.stage.as_ref(), &inputs) {
            Ok(key) => key,
            Err(e) => {
                self.problem(&node.id, e.to_string());
                return false;
            }
        };
        if key != entry.key {
            self.problem(
                &node.id,
                format!(
                    "key {} differs from the lockfile's {}",
                    key.short(),
                    entry.key.short()
                ),
            );
            return false;
        }
        let missing = self.fill && matches!(self.store.get_node(&key), Ok(None));
        if !missing {
            self.check_record(&node.id, &key, entry);
        }
        let quiet = |_: &str| {};
        let ctx = StageContext::new(self.store, key, &self.cancel, &quiet);
        match node.stage.run(&ctx, &inputs) {
            Err(e) => {
                self.problem(&node.id, format!("cannot recompute: {e}"));
                false
            }
            Ok(recomputed) => {
                let same = self.compare_outputs(&node.id, entry, &recomputed);
                if same && missing {
                    self.store_recomputed(idx, key, &inputs, &recomputed);
                }
                same && intact
            }
        }
    }

    /// Store a recomputed node that matched the lockfile: its objects, then
    /// its record, as `run` records a node.
    fn store_recomputed(
        &mut self,
        idx: NodeIndex,
        key: Digest,
        inputs: &[Input],
        outputs: &Outputs,
    ) {
        let node = self.plan.node(idx);
        let mut stored = BTreeMap::new();
        let start = std::time::Instant::now();
        if let Err(e) = record_node(
            node,
            inputs,
            key,
            self.store,
            start,
            outputs.clone(),
            &mut stored,
        ) {
            self.problem(&node.id, format!("recomputed but not stored: {e}"));
        }
    }

    /// The node's inputs as the lockfile recorded them.
    fn inputs_of(&self, idx: NodeIndex) -> Vec<Input> {
        let mut inputs = Vec::new();
        for (src, name) in self.plan.inputs(idx) {
            let src_id = &self.plan.node(src).id;
            let src_key = self.lock.nodes.get(src_id).map(|e| e.key);
            if let (Some(d), Some(src_key)) =
                (self.outputs.get(src_id).and_then(|o| o.get(name)), src_key)
            {
                inputs.push(Input {
                    node: self.plan.input_node(idx, src).to_string(),
                    key: src_key,
                    name: name.to_string(),
                    digest: *d,
                });
            }
        }
        inputs
    }

    /// The store's record of the node must name the lockfile's outputs.
    fn check_record(&mut self, node_id: &str, key: &Digest, entry: &LockEntry) {
        match self.store.get_node(key) {
            Ok(Some(record)) if record.outputs != entry.outputs => {
                self.problem(
                    node_id,
                    "store record outputs differ from the lockfile".into(),
                );
            }
            Ok(Some(_)) => {}
            Ok(None) => self.problem(
                node_id,
                format!("no node record for key {} in the store", key.short()),
            ),
            Err(e) => self.problem(node_id, e.to_string()),
        }
    }

    /// Whether the recomputed outputs are exactly the lockfile's, by name
    /// and digest.
    fn compare_outputs(&mut self, node_id: &str, entry: &LockEntry, recomputed: &Outputs) -> bool {
        let mut same = true;
        for name in entry
            .outputs
            .keys()
            .filter(|n| !recomputed.contains_key(*n))
        {
            same = false;
            self.problem(
                node_id,
                format!("output {name} in the lockfile is no longer produced"),
            );
        }
        for (name, bytes) in recomputed {
            let digest = Digest::of(bytes);
            match entry.outputs.get(name) {
                Some(d) if *d == digest => {}
                Some(d) => {
                    same = false;
                    self.problem(
                        node_id,
                        format!(
                            "output {name} recomputes to {}, lockfile has {}",
                            digest.short(),
                            d.short()
                        ),
                    );
                }
                None => {
                    same = false;
                    self.problem(node_id, format!("output {name} is not in the lockfile"));
                }
            }
        }
        same
    }
}
