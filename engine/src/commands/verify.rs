//! `assay verify`: recompute every derived node from the stored inputs and
//! compare bytes with the store and the lockfile. Measurements cannot be
//! recomputed; their objects are checked against their digests.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use assay_core::{Input, StageContext};
use assay_store::{Digest, Lockfile, Store};
use serde::Serialize;

use super::{load_to_read, print_json, store_dir};
use crate::cli::{CliError, CmdResult, EXIT_MISMATCH, EXIT_OK, StoreArg};
use crate::keys::node_key;
use crate::plan::build_plan;

#[derive(Serialize)]
struct Problem {
    node: String,
    problem: String,
}

pub fn verify(spec_path: &Path, store_arg: &StoreArg, json: bool) -> CmdResult {
    let loaded = load_to_read(spec_path)?;
    let plan = build_plan(&loaded).map_err(|e| CliError::failed(e.to_string()))?;
    let lock_path = Lockfile::path_for(spec_path);
    let lock = Lockfile::read(&lock_path)?.ok_or_else(|| {
        CliError::usage(format!(
            "{}: no lockfile; run `assay run {}` first",
            lock_path.display(),
            spec_path.display()
        ))
    })?;
    let store = Store::open_existing(store_dir(&loaded, store_arg))?;
    let cancel = AtomicBool::new(false);
    let quiet = |_: &str| {};

    let mut problems: Vec<Problem> = Vec::new();
    let mut problem = |node: &str, text: String| {
        problems.push(Problem {
            node: node.to_string(),
            problem: text,
        })
    };
    if lock.spec_digest != loaded.digest {
        problem(
            "(spec)",
            format!(
                "{} changed since {} was written; run it again",
                spec_path.display(),
                lock_path.display()
            ),
        );
    }
    let mut verified = 0;
    let mut outputs: BTreeMap<String, BTreeMap<String, Digest>> = BTreeMap::new();
    for &idx in &plan.order {
        let node = plan.node(idx);
        let Some(entry) = lock.nodes.get(&node.id) else {
            problem(&node.id, "not in the lockfile".into());
            continue;
        };
        outputs.insert(node.id.clone(), entry.outputs.clone());
        // Every object the lockfile names must be intact.
        let mut intact = true;
        for (name, digest) in &entry.outputs {
            if let Err(e) = store.check_object(digest) {
                problem(&node.id, format!("output {name}: {e}"));
                intact = false;
            }
        }
        // What occupies a device (measurements, model preparation) is not
        // run again: its objects are checked above.
        if node.stage.machine().device().is_some() {
            if intact {
                verified += 1;
            }
            continue;
        }
        let mut inputs = Vec::new();
        for (src, name) in plan.inputs(idx) {
            let src_id = &plan.node(src).id;
            let src_key = lock.nodes.get(src_id).map(|e| e.key);
            if let (Some(d), Some(src_key)) =
                (outputs.get(src_id).and_then(|o| o.get(name)), src_key)
            {
                inputs.push(Input {
                    node: src_id.clone(),
                    key: src_key,
                    name: name.to_string(),
                    digest: *d,
                });
            }
        }
        let key = match node_key(node.stage.as_ref(), &inputs) {
            Ok(key) => key,
            Err(e) => {
                problem(&node.id, e.to_string());
                continue;
            }
        };
        if key != entry.key {
            problem(
                &node.id,
                format!(
                    "key {} differs from the lockfile's {}",
                    key.short(),
                    entry.key.short()
                ),
            );
            continue;
        }
        match store.get_node(&key) {
            Ok(Some(record)) if record.outputs != entry.outputs => {
                problem(
                    &node.id,
                    "store record outputs differ from the lockfile".into(),
                );
            }
            Ok(Some(_)) => {}
            Ok(None) => problem(
                &node.id,
                format!("no node record for key {} in the store", key.short()),
            ),
            Err(e) => problem(&node.id, e.to_string()),
        }
        let ctx = StageContext::new(&store, key, &cancel, &quiet);
        match node.stage.run(&ctx, &inputs) {
            Err(e) => problem(&node.id, format!("cannot recompute: {e}")),
            Ok(recomputed) => {
                let mut same = true;
                for name in entry
                    .outputs
                    .keys()
                    .filter(|n| !recomputed.contains_key(*n))
                {
                    same = false;
                    problem(
                        &node.id,
                        format!("output {name} in the lockfile is no longer produced"),
                    );
                }
                for (name, bytes) in &recomputed {
                    let digest = Digest::of(bytes);
                    match entry.outputs.get(name) {
                        Some(d) if *d == digest => {}
                        Some(d) => {
                            same = false;
                            problem(
                                &node.id,
                                format!(
                                    "output {name} recomputes to {}, lockfile has {}",
                                    digest.short(),
                                    d.short()
                                ),
                            );
                        }
                        None => {
                            same = false;
                            problem(&node.id, format!("output {name} is not in the lockfile"));
                        }
                    }
                }
                if same && intact {
                    verified += 1;
                }
            }
        }
    }
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
