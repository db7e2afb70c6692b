//! Server backends: an OpenAI-compatible server (vLLM, TGI, SGLang,
//! llama.cpp's llama-server, launched by assay or already running) or
//! Ollama, measured over HTTP from the client side, under a load profile.

pub mod cell;
pub mod client;
pub mod launch;
pub mod load;
pub mod ollama;
pub mod openai;
pub mod options;
pub mod stream;

pub use cell::{ServerFacts, display_url};
pub use options::{LaunchOptions, LengthKnob, PromptFormat, ServerApi, ServerOptions};
