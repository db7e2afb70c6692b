//! assay-model: what a model is before anything measures it. Declarations
//! and architectures ([`decl`]), weight sources (safetensors, GGUF:
//! [`weights`]), and the prepare and export stages ([`prepare`]: synthetic
//! weights, local checkpoints, GGUF and ONNX exports). Depends on
//! assay-core only.

pub mod decl;
pub mod prepare;
pub mod rope;
pub mod weights;

pub use decl::{ModelDecl, SyntheticArch};
