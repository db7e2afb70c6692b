//! The experiment spec: the seed's experiment-planning template (Appendix X)
//! as YAML. Loading is parse -> JSON-Schema validation -> typed decode ->
//! semantic checks; every error is located in the user's file.

mod checks;
mod diagnostic;
pub mod load;
mod locate;
pub mod program;
mod types;

pub use diagnostic::{Diagnostic, render_diagnostics};
pub use load::{LoadedSpec, Purpose, load_spec, load_spec_for, spec_schema};
pub use program::{LoadedProgram, Program, Target, load_program, load_target};
pub use types::{ExecutionSpec, JobStore, OutputsSpec, Spec, Sweep};
