//! assay's engine: spec loading and validation, planning, node keys,
//! execution and the CLI commands.

pub mod cli;
pub mod commands;
pub mod exec;
pub mod keys;
pub mod plan;
pub mod schemas;
pub mod spec;
