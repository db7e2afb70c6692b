//! Command-line interface. Exit codes (documented in docs/cli.md):
//! 0 ok, 1 run failed (or an I/O or store error), 2 bad usage or spec,
//! 3 verification mismatch or corrupt object (a corrupt remote object
//! too), 4 regression found (`compare`), 5 remote cache unreachable or
//! refusing the credentials (`push`, `pull`, `--remote`),
//! 6 executor unavailable (`run --executor slurm` without `sbatch` or a
//! controller that answers; nothing was submitted), 130 interrupted, 141 stdout closed by its reader (a pipe into `head`).

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_MISMATCH: u8 = 3;
/// `assay compare` found at least one regression (a CI gate fails on it).
pub const EXIT_REGRESSION: u8 = 4;
/// The remote cache did not answer, answered with an error, or refused
/// the credentials (`push`, `pull`, `run --remote`, `verify --remote`).
pub const EXIT_REMOTE: u8 = 5;
/// `run --executor slurm`: Slurm's commands are missing or its controller
/// does not answer; checked before anything is submitted.
pub const EXIT_EXECUTOR_UNAVAILABLE: u8 = 6;
pub const EXIT_INTERRUPTED: u8 = 130;
/// 128 + SIGPIPE: what a shell reports for a process whose reader closed
/// the pipe (`assay show ... | head`).
pub const EXIT_BROKEN_PIPE: i32 = 141;

/// An error that ends a command, with its exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }
    pub fn failed(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_FAILED,
            message: message.into(),
        }
    }
}

impl From<crate::remote::RemoteError> for CliError {
    fn from(e: crate::remote::RemoteError) -> Self {
        use crate::remote::RemoteError;
        let code = match &e {
            RemoteError::Config(_) => EXIT_USAGE,
            RemoteError::Corrupt { .. } => EXIT_MISMATCH,
            RemoteError::Store(_) => EXIT_FAILED,
            RemoteError::Unreachable { .. }
            | RemoteError::Credentials { .. }
            | RemoteError::Incomplete { .. } => EXIT_REMOTE,
        };
        match e {
            // A local store error keeps the store's own exit code.
            RemoteError::Store(s) => CliError::from(s),
            e => CliError {
                code,
                message: e.to_string(),
            },
        }
    }
}

impl From<assay_store::StoreError> for CliError {
    fn from(e: assay_store::StoreError) -> Self {
        let code = match e {
            assay_store::StoreError::CorruptObject { .. } => EXIT_MISMATCH,
            assay_store::StoreError::BadDigest(_)
            | assay_store::StoreError::NoMatch { .. }
            | assay_store::StoreError::AmbiguousDigest { .. } => EXIT_USAGE,
            _ => EXIT_FAILED,
        };
        CliError {
            code,
            message: e.to_string(),
        }
    }
}

pub type CmdResult = Result<u8, CliError>;

#[derive(Parser, Debug)]
#[command(
    name = "assay",
    version,
    about = "Declarative pipeline engine for decision-grade LLM inference benchmarking",
    long_about = "assay turns a YAML experiment spec into a content-addressed DAG of stages \
                  (measure, validate, summarise, cost, fit, report), stores every artifact under \
                  its blake3 digest and reruns only what changed.\n\n\
                  Exit codes: 0 ok, 1 run failed, 2 bad usage or spec, 3 verification mismatch \
                  or corrupt object, 4 regression found (compare), 5 remote cache unreachable \
                  or refusing the credentials (push, pull, --remote), 6 executor unavailable (run \
                  --executor slurm without sbatch or an answering controller; nothing \
                  submitted), 130 interrupted, 141 stdout closed by its reader (e.g. piped \
                  into head).",
    after_help = "Docs: docs/cli.md, docs/spec.md, docs/store.md. NO_COLOR disables colour."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What `push` and `pull` act on.
#[derive(clap::Args, Debug, Clone)]
pub struct TransferArgs {
    /// A spec, a program, or a lockfile (`*.lock`).
    pub target: PathBuf,
    #[command(flatten)]
    pub store: StoreArg,
    #[command(flatten)]
    pub remote: crate::remote::RemoteArgs,
    /// End with one JSON object of counts.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct StoreArg {
    /// Store directory (default: `.assay/` beside the spec).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate specs without running anything.
    Check {
        #[arg(required = true, value_name = "SPEC")]
        specs: Vec<PathBuf>,
        /// Print diagnostics as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show each node with its stage, short key, status and why it would run.
    Plan {
        spec: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        /// Plan as if measurements were forced to rerun.
        #[arg(long)]
        remeasure: bool,
        /// Print a JSON array of {node, stage, key, status, reason}.
        #[arg(long)]
        json: bool,
    },
    /// Run the spec: execute what is not cached, write the report and lockfile.
    Run {
        spec: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        /// Measure again even where cached measurements exist.
        #[arg(long)]
        remeasure: bool,
        /// End with one JSON object: ran, cached, failed, report_dir, nodes.
        #[arg(long)]
        json: bool,
        /// Never draw progress bars.
        #[arg(long)]
        no_progress: bool,
        /// Where measure cells run: `local` (here, one at a time) or `slurm`
        /// (one Slurm job per cell, resources from the spec's `execution:`;
        /// the store must be on a filesystem the compute nodes share).
        /// Exit 6 when Slurm cannot be reached. docs/cluster.md.
        #[arg(long, value_enum, default_value = "local", value_name = "EXECUTOR")]
        executor: ExecutorKind,
        #[command(flatten)]
        remote: crate::remote::RemoteArgs,
    },
    /// Recompute every derived node from stored inputs and compare with the
    /// store and the lockfile. Exit 3 on any mismatch or corrupt object.
    Verify {
        spec: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: crate::remote::RemoteArgs,
    },
    /// Push the nodes a lockfile names (a spec's, a program's, or the
    /// lockfile given) to the remote cache: each node's objects, then its
    /// record, create-only; what the remote holds is skipped, so an
    /// interrupted push resumes. Exit 5 when the remote fails.
    Push(TransferArgs),
    /// Pull the nodes a lockfile names that the local store lacks from the
    /// remote cache, each object hashed before it is stored (a wrong one is
    /// refused: exit 3). Exit 1 when the remote lacks a node.
    Pull(TransferArgs),
    /// Trace a report claim to artifact digests, rows and the measuring manifest.
    Trace {
        /// Claim id from report.json (e.g. `latency/sim/tiny/micro/decode/median_ms`).
        claim: String,
        #[arg(long, value_name = "SPEC")]
        spec: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        #[arg(long)]
        json: bool,
    },
    /// Print a stored artifact (Parquet as a table, JSON pretty-printed).
    Show {
        /// Digest or unique prefix (at least 4 hex characters).
        digest: String,
        /// Use the store beside this spec (without it and --store: ./.assay).
        #[arg(long, value_name = "SPEC")]
        spec: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArg,
        /// Parquet rows as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Print a JSON Schema (spec, lockfile, report, or a table), or write all.
    Schema {
        #[arg(default_value = "spec")]
        which: String,
        /// Write every schema into DIR (as checked in under schemas/).
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
    /// Remove node records and objects no lockfile of the given specs needs.
    Gc {
        #[arg(required = true, value_name = "SPEC")]
        specs: Vec<PathBuf>,
        #[command(flatten)]
        store: StoreArg,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Compare two runs cell by cell: deltas of medians, bootstrap CIs of
    /// their ratios and a verdict per cell. Exit 4 on any regression.
    Compare(CompareArgs),
    /// Print this machine's environment fingerprint as JSON.
    Env,
    /// Internal: measure one cell in this process (request on stdin, JSON
    /// lines on stdout). `assay run` starts one per real measurement.
    #[command(name = "measure-worker", hide = true)]
    MeasureWorker,
    /// Internal: run one node of a spec and record it in the store (what a
    /// Slurm job of `run --executor slurm` runs). Refuses when the node's
    /// key, recomputed here, is not KEY.
    #[command(name = "run-node", hide = true)]
    RunNode {
        #[arg(long, value_name = "SPEC")]
        spec: PathBuf,
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        #[arg(long, value_name = "ID")]
        node: String,
        #[arg(long, value_name = "HEX")]
        key: String,
        /// `execution.store: remote`: pull the node's producers from this
        /// remote into STORE (a store on the compute node), then push the
        /// recorded node to it.
        #[arg(long, value_name = "URL")]
        remote_url: Option<String>,
        #[arg(long, value_name = "URL", requires = "remote_url")]
        remote_endpoint: Option<String>,
        #[arg(long, value_name = "REGION", requires = "remote_url")]
        remote_region: Option<String>,
    },
}

/// `run --executor`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutorKind {
    #[default]
    Local,
    Slurm,
}

/// `assay compare BASE NEW` (docs/cli.md#assay-compare).
#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// The baseline: a report.json (or its folder), a spec (its lockfile
    /// beside it) or a lockfile (`*.lock`).
    #[arg(value_name = "BASE")]
    pub base: PathBuf,
    /// The run to judge, in any of the same forms.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// Store of both sides (default: `.assay/` beside the spec or
    /// lockfile; for a report.json the nearest `.assay/` above it).
    #[command(flatten)]
    pub store: StoreArg,
    /// Store of BASE (overrides --store).
    #[arg(long, value_name = "DIR")]
    pub base_store: Option<PathBuf>,
    /// Store of NEW (overrides --store).
    #[arg(long, value_name = "DIR")]
    pub new_store: Option<PathBuf>,
    /// Slowdown threshold of a phase in percent (prefill, ttft, decode,
    /// e2e; decode by throughput, the others by latency). Repeatable;
    /// default decode=10.
    #[arg(long = "threshold", value_name = "PHASE=PCT")]
    pub thresholds: Vec<String>,
    /// Print one JSON object.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print Markdown for a CI comment.
    #[arg(long)]
    pub markdown: bool,
}

pub fn color_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}
