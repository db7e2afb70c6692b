//! assay-measure: the measure stage, one node per (backend, model, scenario)
//! cell. The harness owns the clock and the boundary; backends (in process
//! or servers over HTTP) only do the work. Depends on assay-core and
//! assay-model; nothing here reads analysis or report code.

pub mod bandwidth;
pub mod candle;
pub mod energy;
pub mod environment;
pub mod evaluate;
pub mod harness;
pub mod imported;
pub mod kinds;
#[cfg(feature = "ort")]
pub mod ort;
pub mod python;
pub mod server;
pub mod simulated;
pub mod stage;
pub mod step;
#[cfg(feature = "tch")]
pub mod tch_backend;
pub mod text;
pub mod versions;
pub mod worker;

use std::sync::OnceLock;

pub use assay_core::config::{
    Arrival, BackendConfig, BackendKind, Boundary, Dtype, LoadProfile, Scenario, SimulatedOptions,
    Slo,
};
pub use assay_model::decl::{ModelDecl, SyntheticArch};
pub use stage::registry::{
    Backend, CheckContext, Evaluation, Execution, Findings, Generated, GeneratedText, Measured,
    Open, Registry,
};
pub use stage::{MEASURE_VERSION, Manifest, MeasureStage, cell_runs};

impl Registry {
    /// The kinds this crate has (`kinds::builtin`); add one with
    /// `Registry::builtin().with(&MyKind)`.
    pub fn builtin() -> Self {
        kinds::builtin()
    }
}

/// The registry this process uses, fixed once before any command runs:
/// like the worker command, it is configuration of the binary (which kinds
/// it was built with), not of a spec, and threading it through every spec
/// check and plan call would say nothing more.
static REGISTRY: OnceLock<Registry> = OnceLock::new();

/// Fix this process's registry (the binary does it at startup, through
/// `assay_engine::main_with`). Returns false if one was already fixed or
/// used: the first wins.
pub fn install(registry: Registry) -> bool {
    REGISTRY.set(registry).is_ok()
}

/// This process's registry: the installed one, else the built-in kinds.
pub fn registry() -> &'static Registry {
    REGISTRY.get_or_init(Registry::builtin)
}
