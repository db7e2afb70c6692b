//! One function per CLI command.

mod compare;
mod misc;
mod remote;
mod run;
mod run_node;
pub mod target;
mod trace;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::cli::{CliError, CmdResult, Command, EXIT_USAGE, StoreArg};
use crate::spec::load::SpecError;
use crate::spec::{LoadedSpec, Purpose, Target, load_spec_for, load_target, render_diagnostics};

pub fn dispatch(command: Command, cancel: &AtomicBool) -> CmdResult {
    match command {
        Command::Check { specs, json } => misc::check(&specs, json),
        Command::Plan {
            spec,
            store,
            remeasure,
            json,
        } => run::plan(&spec, &store, remeasure, json),
        Command::Run {
            spec,
            store,
            remeasure,
            json,
            no_progress,
            executor,
            remote,
        } => run::run(
            &spec,
            &store,
            run::RunOptions {
                remeasure,
                json,
                no_progress,
                executor,
                remote: &remote,
            },
            cancel,
        ),
        Command::Verify {
            spec,
            store,
            json,
            remote,
        } => verify::verify(&spec, &store, json, &remote, cancel),
        Command::Push(args) => remote::push(&args, cancel),
        Command::Pull(args) => remote::pull(&args, cancel),
        Command::Trace {
            claim,
            spec,
            store,
            json,
        } => trace::trace(&claim, &spec, &store, json),
        Command::Show {
            digest,
            spec,
            store,
            json,
        } => misc::show(&digest, spec.as_deref(), &store, json),
        Command::Schema { which, write } => misc::schema(&which, write.as_deref()),
        Command::Gc {
            specs,
            store,
            dry_run,
            json,
        } => misc::gc(&specs, &store, dry_run, json),
        Command::Compare(args) => compare::compare(&args),
        Command::Env => misc::env(),
        Command::RunNode {
            spec,
            store,
            node,
            key,
            remote_url,
            remote_endpoint,
            remote_region,
        } => {
            let remote = remote_url.map(|url| run_node::JobRemote {
                url,
                endpoint: remote_endpoint,
                region: remote_region,
            });
            run_node::run_node(&spec, &store, &node, &key, remote.as_ref(), cancel)
        }
        Command::MeasureWorker => {
            Ok(assay_measure::worker::worker_main(assay_measure::registry()).clamp(0, 255) as u8)
        }
    }
}

/// Load a spec for measuring; on error print located diagnostics and exit 2.
pub fn load(path: &Path) -> Result<LoadedSpec, CliError> {
    load_for(path, Purpose::Measure)
}

/// Load a spec to read what is stored (no runtime checks).
pub fn load_to_read(path: &Path) -> Result<LoadedSpec, CliError> {
    load_for(path, Purpose::Read)
}

fn load_for(path: &Path, purpose: Purpose) -> Result<LoadedSpec, CliError> {
    load_spec_for(path, purpose).map_err(|e| spec_error(path, e))
}

/// Load a spec or a program, whichever `path` is; on error print located
/// diagnostics and exit 2.
pub fn load_target_for(path: &Path, purpose: Purpose) -> Result<Target, CliError> {
    load_target(path, purpose).map_err(|e| spec_error(path, e))
}

fn spec_error(path: &Path, e: SpecError) -> CliError {
    match e {
        SpecError::Io { path, source } => CliError::usage(format!("{}: {source}", path.display())),
        SpecError::Invalid {
            text,
            diagnostics,
            path: invalid,
        } => {
            eprint!("{}", render_diagnostics(&diagnostics, &text));
            let what = if invalid == path {
                "is not a valid spec".to_string()
            } else {
                format!("has an invalid member {}", invalid.display())
            };
            CliError {
                code: EXIT_USAGE,
                message: format!("{} {what}", path.display()),
            }
        }
    }
}

/// The store directory: `--store`, else `.assay/` beside the spec.
pub fn store_dir(spec: &LoadedSpec, arg: &StoreArg) -> PathBuf {
    arg.store.clone().unwrap_or_else(|| spec.dir.join(".assay"))
}

/// Write to stdout. A closed pipe (`assay show ... | head`) ends the
/// process quietly with 141 (128 + SIGPIPE, what a shell reports for a
/// process killed by a closed pipe) instead of panicking like `println!`.
pub fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(crate::cli::EXIT_BROKEN_PIPE);
    }
}

/// `println!` through [`out`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::commands::out(&format!("{}\n", format!($($arg)*)))
    };
}

pub fn print_json(value: &impl serde::Serialize) {
    out(&format!(
        "{}\n",
        serde_json::to_string_pretty(value).unwrap_or_default()
    ));
}
