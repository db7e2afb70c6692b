//! Server backends: an OpenAI-compatible server (vLLM, TGI, SGLang,
//! llama.cpp's llama-server, launched by assay or already running) or
//! Ollama, measured over HTTP from the client side, under a load profile.

pub mod cell;
pub mod client;
pub mod launch;
pub mod load;
pub mod ollama;
pub mod openai;
pub mod protocol;
pub mod stream;
pub mod tls;

pub use crate::harness::ServerFacts;
pub use assay_core::config::server::{
    LaunchOptions, LengthKnob, PromptFormat, ServerApi, ServerOptions,
};
pub use cell::display_url;

use assay_core::config::BackendKind;

/// The server kinds' names (their registry entries are in `kinds::server`).
pub const OPENAI: BackendKind = BackendKind::new("openai");
pub const OLLAMA: BackendKind = BackendKind::new("ollama");

/// The protocol of a server backend kind: the one place that maps kinds to
/// protocols. A new protocol is one module implementing
/// [`protocol::Protocol`], one arm here and one registry entry.
pub fn protocol_for(kind: &BackendKind) -> &'static dyn protocol::Protocol {
    if *kind == OLLAMA {
        &ollama::Ollama
    } else {
        &openai::OpenAi
    }
}
