//! End-to-end tests: they drive the real `assay` binary on real files.

mod backends;
mod boundary;
mod candle;
mod cli;
mod compare;
mod diagnostics;
mod economics;
mod energy;
mod evaluate;
mod gpu;
mod imported;
mod interrupt;
mod llama_server;
mod pipeline;
mod presentation;
mod program;
mod python_harness;
mod quality;
mod remote;
mod scaling;
mod servers;
mod slurm;
mod support;
mod trust;
mod validation;
