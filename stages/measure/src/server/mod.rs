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

pub use crate::harness::ServerFacts;
pub use assay_core::config::server::{
    LaunchOptions, LengthKnob, PromptFormat, ServerApi, ServerOptions,
};
pub use cell::display_url;

/// The protocol of a server backend kind: the one place that maps kinds to
/// protocols. A new protocol is one module implementing
/// [`protocol::Protocol`] and one arm here.
pub fn protocol_for(kind: crate::BackendKind) -> &'static dyn protocol::Protocol {
    match kind {
        crate::BackendKind::Ollama => &ollama::Ollama,
        _ => &openai::OpenAi,
    }
}
