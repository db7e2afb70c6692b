//! The built-in backend kinds: one registry entry each (the
//! `stage::registry::Backend` trait), in the order the spec schema lists
//! them. A kind's entry owns its spec checks, plan wiring, key options,
//! compiled label, library versions and measuring; the code that runs it
//! is in its own module (`candle/`, `ort`, `tch_backend/`, `server/`,
//! `simulated`).

pub mod candle;
pub mod imported;
pub mod in_process;
pub mod ort;
pub mod python;
pub mod server;
mod server_checks;
pub mod simulated;
pub mod tch;

use crate::stage::registry::Registry;

/// Every kind this crate has. The optional ones (`ort`, `tch`) are
/// registered even when their cargo feature is off, so that a spec naming
/// them is told how to build them.
pub fn builtin() -> Registry {
    Registry::default()
        .with(&candle::Candle)
        .with(&ort::Ort)
        .with(&tch::Tch)
        .with(&python::Python)
        .with(&server::OpenAi)
        .with(&server::Ollama)
        .with(&simulated::Simulated)
        .with(&imported::Imported)
}
