//! The stage kinds of an assay pipeline. Each is data plus a pure run
//! function behind the [`Stage`] trait; the engine knows only the trait.

pub mod cost;
pub mod decide;
pub mod fit;
pub mod goodput;
pub mod measure;
pub mod plots;
pub mod prepare;
pub mod report;
pub mod stage;
pub mod stats;
pub mod summarise;
pub mod tables;
pub mod validate;

pub use stage::{Input, Outputs, Stage, StageContext, StageError};
