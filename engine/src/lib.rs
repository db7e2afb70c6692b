//! assay's engine: spec loading and validation, planning, node keys,
//! execution and the CLI commands.

pub mod cli;
pub mod commands;
pub mod exec;
pub mod keys;
pub mod plan;
pub mod remote;
pub mod schemas;
pub mod slurm;
pub mod spec;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;

/// The `assay` binary with the built-in backend kinds.
pub fn main() -> ExitCode {
    main_with(assay_measure::Registry::builtin())
}

/// The `assay` binary with the backend kinds of `registry`: parse the
/// command line (cli), then run the command (commands) with Ctrl-C wired to
/// the cancel flag every stage checks. A build with a kind of its own calls
/// `main_with(Registry::builtin().with(&MyKind))` from its `main`
/// (docs/architecture.md, "Adding a backend").
pub fn main_with(registry: assay_measure::Registry) -> ExitCode {
    assay_measure::install(registry);
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    cli::EXIT_OK
                }
                _ => cli::EXIT_USAGE,
            });
        }
    };
    if matches!(cli.command, cli::Command::MeasureWorker) {
        // A worker keeps the default SIGINT action: Ctrl-C ends it at once,
        // and the parent records the cell as cancelled.
        return ExitCode::from(
            assay_measure::worker::worker_main(assay_measure::registry()).clamp(0, 255) as u8,
        );
    }
    if let Ok(exe) = std::env::current_exe() {
        assay_measure::worker::register(exe, vec!["measure-worker".into()]);
    }
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        // Ctrl-C: ask every stage to stop at its next check; finished nodes
        // are already recorded atomically. A second Ctrl-C exits at once,
        // cancelling first what it submitted to Slurm (jobs outlive us).
        let _ = ctrlc::set_handler(move || {
            if cancel.swap(true, std::sync::atomic::Ordering::SeqCst) {
                slurm::cancel_submitted();
                std::process::exit(i32::from(cli::EXIT_INTERRUPTED));
            }
            eprintln!(
                "assay: interrupt received, stopping after the current step (Ctrl-C again to abort)"
            );
        });
    }
    let result = commands::dispatch(cli.command, &cancel);
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let prefix = if cli::color_enabled() {
                "\x1b[31;1merror:\x1b[0m"
            } else {
                "error:"
            };
            eprintln!("{prefix} {}", e.message);
            ExitCode::from(e.code)
        }
    }
}
