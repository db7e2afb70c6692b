//! assay-analysis: pure stages over stored measurements. validate (with
//! energy gating and output invariance), summarise, cost, fit, goodput, the
//! decision rules (decide), quality (success rates and cost per
//! successful outcome) and the BASE-vs-NEW comparison behind `assay
//! compare` (compare). Reads the record types of assay-measure;
//! never runs a backend.

pub mod compare;
pub mod cost;
pub mod decide;
pub mod fit;
pub mod goodput;
pub mod quality;
pub mod summarise;
pub mod validate;
