//! The measure stage: one node per (backend, model, scenario) cell. The
//! harness owns the clock and the boundary; backends only do the work.

pub mod bandwidth;
pub mod candle;
pub mod config;
pub mod energy;
pub mod environment;
pub mod harness;
pub mod model;
#[cfg(feature = "ort")]
pub mod ort;
pub mod server;
pub mod simulated;
pub mod stage;
#[cfg(feature = "tch")]
pub mod tch_backend;
pub mod worker;

pub use config::{
    Arrival, BackendConfig, BackendKind, Boundary, Dtype, LoadProfile, Scenario, SimulatedOptions,
    Slo,
};
pub use model::{ModelDecl, SyntheticArch};
pub use stage::{MEASURE_VERSION, Manifest, MeasureStage, cell_runs};
