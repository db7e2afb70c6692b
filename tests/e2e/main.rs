//! End-to-end tests: they drive the real `assay` binary on real files.

mod backends;
mod candle;
mod cli;
mod diagnostics;
mod energy;
mod interrupt;
mod pipeline;
mod support;
