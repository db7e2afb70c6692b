use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use assay_store::{Lockfile, Store, table};

use super::print_json;
use crate::cli::{CliError, CmdResult, EXIT_OK, EXIT_USAGE, StoreArg};
use crate::schemas::{all_schemas, schema_bytes};
use crate::spec::load::SpecError;
use crate::spec::{Purpose, Target, load_target, render_diagnostics};

pub fn check(specs: &[PathBuf], json: bool) -> CmdResult {
    let mut all = Vec::new();
    let mut bad = 0;
    for path in specs {
        match load_target(path, Purpose::Measure) {
            Ok(Target::Spec(loaded)) => {
                if !json {
                    eprintln!(
                        "{}: ok ({} backends x {} models x {} scenarios)",
                        path.display(),
                        loaded.spec.backends.len(),
                        loaded.spec.models.len(),
                        loaded.scenarios.len()
                    );
                }
            }
            Ok(Target::Program(program)) => {
                if !json {
                    let ids: Vec<&str> =
                        program.members.iter().map(|m| m.spec.id.as_str()).collect();
                    eprintln!(
                        "{}: ok (program of {} specs: {})",
                        path.display(),
                        ids.len(),
                        ids.join(", ")
                    );
                }
            }
            Err(SpecError::Io { path, source }) => {
                bad += 1;
                let d = crate::spec::Diagnostic {
                    file: path.display().to_string(),
                    line: 0,
                    col: 0,
                    message: source.to_string(),
                };
                if !json {
                    eprintln!("{}: error: {}", d.file, d.message);
                }
                all.push(d);
            }
            Err(SpecError::Invalid {
                text, diagnostics, ..
            }) => {
                bad += 1;
                if !json {
                    eprint!("{}", render_diagnostics(&diagnostics, &text));
                }
                all.extend(diagnostics);
            }
        }
    }
    if json {
        print_json(&serde_json::json!({ "ok": bad == 0, "diagnostics": all }));
    }
    Ok(if bad == 0 { EXIT_OK } else { EXIT_USAGE })
}

pub fn show(digest: &str, spec: Option<&Path>, store_arg: &StoreArg, json: bool) -> CmdResult {
    let dir = match (&store_arg.store, spec) {
        (Some(d), _) => d.clone(),
        (None, Some(spec)) => super::load_target_for(spec, Purpose::Read)?
            .dir()
            .join(".assay"),
        (None, None) => PathBuf::from(".assay"),
    };
    let store = Store::open_existing(&dir)?;
    let digest = store.resolve(digest)?;
    let bytes = store.get(&digest)?;
    if table::is_parquet(&bytes) {
        let batch = table::from_parquet(&bytes)?;
        if json {
            for row in table::to_json_rows(&batch)? {
                crate::outln!("{}", serde_json::to_string(&row).unwrap_or_default());
            }
        } else {
            crate::outln!("{}", table::pretty(&batch)?);
            eprintln!("{} rows, parquet, {}", batch.num_rows(), digest);
        }
    } else if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        print_json(&value);
    } else if let Ok(text) = std::str::from_utf8(&bytes) {
        super::out(text);
    } else {
        return Err(CliError::usage(format!(
            "{digest}: binary object of {} bytes",
            bytes.len()
        )));
    }
    Ok(EXIT_OK)
}

pub fn schema(which: &str, write: Option<&Path>) -> CmdResult {
    let schemas = all_schemas();
    if let Some(dir) = write {
        for (name, value) in &schemas {
            let path = dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| CliError::failed(format!("{}: {e}", parent.display())))?;
            }
            std::fs::write(&path, schema_bytes(value))
                .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))?;
            eprintln!("wrote {}", path.display());
        }
        return Ok(EXIT_OK);
    }
    let wanted = format!("{which}.schema.json");
    let found = schemas
        .iter()
        .find(|(name, _)| *name == wanted || name.strip_prefix("tables/") == Some(wanted.as_str()));
    match found {
        Some((_, value)) => {
            super::out(&String::from_utf8_lossy(&schema_bytes(value)));
            Ok(EXIT_OK)
        }
        None => Err(CliError::usage(format!(
            "no schema {which:?}; one of: {}",
            schemas
                .iter()
                .map(|(n, _)| n
                    .trim_start_matches("tables/")
                    .trim_end_matches(".schema.json"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

pub fn gc(specs: &[PathBuf], store_arg: &StoreArg, dry_run: bool, json: bool) -> CmdResult {
    let mut keep = BTreeSet::new();
    let mut dir = store_arg.store.clone();
    for spec in specs {
        let planned = super::target::load_planned(spec, crate::spec::Purpose::Read)?;
        let this = planned.store_dir(store_arg);
        match &dir {
            None => dir = Some(this),
            Some(d) if *d != this => {
                return Err(CliError::usage(format!(
                    "{} uses store {} but an earlier spec uses {}; collect one store at a time",
                    spec.display(),
                    this.display(),
                    d.display()
                )));
            }
            Some(_) => {}
        }
        let lock_path = planned.lock_path();
        let lock = Lockfile::read(&lock_path)?.ok_or_else(|| {
            CliError::usage(format!(
                "{}: no lockfile, so nothing is known to keep; run the spec first",
                lock_path.display()
            ))
        })?;
        keep.extend(lock.nodes.values().map(|e| e.key));
    }
    let Some(dir) = dir else { return Ok(EXIT_OK) };
    let store = Store::open_existing(&dir)?;
    let _lock = store
        .lock(|| eprintln!("assay: waiting for another assay process to release the store"))?;
    let report = store.gc(&keep, dry_run)?;
    let (slurm_folders, slurm_bytes) = crate::slurm::remove_submissions(&dir, dry_run)
        .map_err(|e| CliError::failed(format!("{}: {e}", dir.join("slurm").display())))?;
    if json {
        print_json(&serde_json::json!({
            "dry_run": dry_run,
            "report": report,
            "slurm_submissions_removed": slurm_folders,
            "slurm_bytes_freed": slurm_bytes,
        }));
    } else {
        eprintln!(
            "assay: {}{} node records and {} objects ({} bytes) removed; {} nodes and {} objects kept",
            if dry_run { "dry run: would have " } else { "" },
            report.nodes_removed,
            report.objects_removed,
            report.bytes_freed,
            report.nodes_kept,
            report.objects_kept
        );
        if slurm_folders > 0 {
            eprintln!(
                "assay: {}{slurm_folders} Slurm job folders ({slurm_bytes} bytes) removed",
                if dry_run { "dry run: would have " } else { "" },
            );
        }
    }
    Ok(EXIT_OK)
}

pub fn env() -> CmdResult {
    print_json(&assay_measure::environment::detect());
    Ok(EXIT_OK)
}
