//! assay-measure: the measure stage, one node per (backend, model, scenario)
//! cell. The harness owns the clock and the boundary; backends (in process
//! or servers over HTTP) only do the work. Depends on assay-core and
//! assay-model; nothing here reads analysis or report code.

pub mod bandwidth;
pub mod candle;
pub mod energy;
pub mod environment;
pub mod harness;
#[cfg(feature = "ort")]
pub mod ort;
pub mod server;
pub mod simulated;
pub mod stage;
#[cfg(feature = "tch")]
pub mod tch_backend;
pub mod versions;
pub mod worker;

pub use assay_core::config::{
    Arrival, BackendConfig, BackendKind, Boundary, Dtype, LoadProfile, Scenario, SimulatedOptions,
    Slo,
};
pub use assay_model::decl::{ModelDecl, SyntheticArch};
pub use stage::{MEASURE_VERSION, Manifest, MeasureStage, cell_runs};

/// Whether this build of assay has the backend kind: the optional in-process
/// backends exist only with their cargo features (docs/backends.md).
pub fn built(kind: BackendKind) -> bool {
    match kind {
        BackendKind::Ort => cfg!(feature = "ort"),
        BackendKind::Tch => cfg!(feature = "tch"),
        BackendKind::Candle
        | BackendKind::Simulated
        | BackendKind::OpenAi
        | BackendKind::Ollama => true,
    }
}
