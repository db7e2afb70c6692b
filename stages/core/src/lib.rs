//! assay-core: what every stage crate shares. The [`Stage`] trait and its
//! inputs, the row types of every stored table, the statistics, and the
//! spec's vocabulary (backends, scenarios, boundary, dtypes). It depends on
//! the store only; every other stage crate depends on it.

pub mod config;
pub mod domain;
pub mod inputs;
pub mod jsonl;
pub mod stage;
pub mod stats;
pub mod tables;

pub use stage::{Input, MachineUse, Outputs, Stage, StageContext, StageError};
