//! `assay push` and `assay pull`: the nodes a lockfile names, between the
//! local store and the remote cache (engine/src/remote/, docs/cluster.md).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use assay_store::{Lockfile, Store};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::print_json;
use crate::cli::{
    CliError, CmdResult, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, StoreArg, TransferArgs,
};
use crate::remote::{self, Remote, RemoteArgs};

/// A spec's, a program's or a lockfile's nodes: the lockfile, and the
/// folder whose `.assay/` and `assay.yaml` are the defaults.
fn lockfile_of(target: &Path) -> Result<(Lockfile, PathBuf, PathBuf), CliError> {
    let lock_path = if target.extension().is_some_and(|e| e == "lock") {
        target.to_path_buf()
    } else {
        Lockfile::path_for(target)
    };
    let lock = Lockfile::read(&lock_path)?.ok_or_else(|| {
        CliError::usage(format!(
            "{}: no lockfile; run `assay run {}` first",
            lock_path.display(),
            target.display()
        ))
    })?;
    let dir = lock_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    Ok((lock, lock_path, dir))
}

/// `--store`, else `.assay/` in the lockfile's folder.
fn store_dir(arg: &StoreArg, dir: &Path) -> PathBuf {
    arg.store.clone().unwrap_or_else(|| dir.join(".assay"))
}

fn open_remote(args: &RemoteArgs, dir: &Path) -> Result<Remote, CliError> {
    let cfg = remote::resolve(args, dir, true)?
        .ok_or_else(|| CliError::usage("no remote".to_string()))?;
    Ok(Remote::open(&cfg)?)
}

/// A spinner counting transfers (objects and records), on stderr when it
/// is a terminal and no `--json` was asked for.
fn progress(json: bool) -> ProgressBar {
    let show = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = ProgressBar::with_draw_target(
        None,
        if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {pos} objects and records {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// Push every node of the lockfile that the remote lacks: its objects,
/// then its record. Resumes where an interrupted push stopped.
pub fn push(transfer: &TransferArgs, cancel: &AtomicBool) -> CmdResult {
    let TransferArgs {
        target,
        store: store_arg,
        remote: args,
        json,
    } = transfer;
    let json = *json;
    let started = Instant::now();
    let (lock, lock_path, dir) = lockfile_of(target)?;
    let store = Store::open_existing(store_dir(store_arg, &dir))?;
    let remote = open_remote(args, &dir)?;
    let mut records = Vec::with_capacity(lock.nodes.len());
    for (node, entry) in &lock.nodes {
        records.push(store.cached_node(&entry.key)?.ok_or_else(|| {
            CliError::failed(format!(
                "{node} (key {}) is not in the local store {} with all its objects; run `assay run` or `assay pull` first",
                entry.key.short(),
                store.root().display()
            ))
        })?);
    }
    let bar = progress(json);
    bar.set_message(format!("to {}", remote.shown));
    let pushed = remote
        .push_nodes(
            &store,
            &records,
            &|| cancel.load(Ordering::Relaxed),
            &|| bar.inc(1),
        )?
        .unwrap_or_default();
    bar.finish_and_clear();
    let (records, present, objects, objects_present, bytes) = (
        pushed.records_sent,
        pushed.records_present,
        pushed.objects_sent,
        pushed.objects_present,
        pushed.bytes_sent,
    );
    let interrupted = cancel.load(Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    if json {
        print_json(&json!({
            "remote": remote.shown,
            "lockfile": lock_path,
            "nodes": lock.nodes.len(),
            "records_sent": records,
            "records_present": present,
            "objects_sent": objects,
            "objects_present": objects_present,
            "bytes_sent": bytes,
            "seconds": seconds,
            "interrupted": interrupted,
        }));
    } else {
        eprintln!(
            "assay: pushed {records} node records and {objects} objects ({bytes} bytes) to {} in {seconds:.1}s; {present} records and {objects_present} objects were there already",
            remote.shown
        );
        if interrupted {
            eprintln!("assay: interrupted; push again to resume");
        }
    }
    Ok(if interrupted {
        EXIT_INTERRUPTED
    } else {
        EXIT_OK
    })
}

/// Pull every node of the lockfile that the local store lacks: each
/// object hashed before it is stored, then the record.
pub fn pull(transfer: &TransferArgs, cancel: &AtomicBool) -> CmdResult {
    let TransferArgs {
        target,
        store: store_arg,
        remote: args,
        json,
    } = transfer;
    let json = *json;
    let started = Instant::now();
    let (lock, lock_path, dir) = lockfile_of(target)?;
    let store = Store::open(store_dir(store_arg, &dir))?;
    let _lock = store.lock(|| {
        eprintln!(
            "assay: waiting for another assay process to release {}",
            store.root().join("lock").display()
        )
    })?;
    let remote = open_remote(args, &dir)?;
    let pulled = pull_lockfile(&remote, &store, &lock, json, cancel)?;
    let seconds = started.elapsed().as_secs_f64();
    let interrupted = cancel.load(Ordering::Relaxed);
    if json {
        print_json(&json!({
            "remote": remote.shown,
            "lockfile": lock_path,
            "nodes": lock.nodes.len(),
            "pulled": pulled.pulled,
            "present": pulled.present,
            "missing": pulled.missing,
            "bytes": pulled.bytes,
            "seconds": seconds,
            "interrupted": interrupted,
        }));
    } else {
        eprintln!(
            "assay: pulled {} nodes ({} bytes) from {} in {seconds:.1}s; {} were here already",
            pulled.pulled, pulled.bytes, remote.shown, pulled.present
        );
        for node in &pulled.missing {
            eprintln!("assay: the remote holds no record of {node}");
        }
    }
    Ok(if interrupted {
        EXIT_INTERRUPTED
    } else if pulled.missing.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// What pulling a lockfile did.
pub struct Pulled {
    pub pulled: usize,
    pub present: usize,
    pub bytes: u64,
    /// Nodes the remote holds no record of.
    pub missing: Vec<String>,
}

/// Pull the lockfile's nodes that the local store lacks (`pull`, and
/// `verify --remote` before it verifies).
pub fn pull_lockfile(
    remote: &Remote,
    store: &Store,
    lock: &Lockfile,
    json: bool,
    cancel: &AtomicBool,
) -> Result<Pulled, CliError> {
    let mut wanted = Vec::new();
    let mut present = 0;
    for entry in lock.nodes.values() {
        if store.cached_node(&entry.key)?.is_some() {
            present += 1;
        } else {
            wanted.push(entry.key);
        }
    }
    let bar = progress(json);
    bar.set_message(format!("from {}", remote.shown));
    let pull = remote.pull_nodes(store, &wanted, &|| cancel.load(Ordering::Relaxed), &|| {
        bar.inc(1)
    });
    bar.finish_and_clear();
    let Some(pull) = pull? else {
        return Ok(Pulled {
            pulled: 0,
            present,
            bytes: 0,
            missing: Vec::new(),
        });
    };
    let missing = lock
        .nodes
        .iter()
        .filter(|(_, e)| pull.missing.contains(&e.key))
        .map(|(node, _)| node.clone())
        .collect();
    Ok(Pulled {
        pulled: pull.records.len(),
        present,
        bytes: pull.bytes,
        missing,
    })
}
