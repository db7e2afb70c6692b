//! What a server protocol is to the client: where to send a generation
//! request, its body, how the stream is framed and what one frame says. One
//! implementation per protocol (`openai.rs`, `ollama.rs`), chosen by the
//! backend kind in [`super::protocol_for`]; the client, the load generator
//! and the cell are shared.

use serde_json::Value;

use super::stream::Framing;
use assay_core::config::server::{ServerApi, ServerOptions};

/// A server protocol. Implementations are stateless.
pub trait Protocol: Send + Sync {
    /// The path of a generation request for `api`.
    fn path(&self, api: ServerApi) -> &'static str;
    /// The JSON body of one streamed generation request.
    fn body(&self, opts: &ServerOptions, model: &str, req: &RequestSpec) -> Value;
    /// How the response stream is framed.
    fn framing(&self) -> Framing;
    /// The stream's end marker, as an error message names it.
    fn end_marker(&self) -> &'static str;
    /// What one frame of the stream says.
    fn parse(&self, frame: &str, api: ServerApi) -> Result<FrameFacts, String>;
}

/// What a request sends as its prompt.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Token ids (`/v1/completions` accepts a list of ids).
    Tokens(Vec<u32>),
    Text(String),
}

impl Prompt {
    pub fn as_text(&self) -> String {
        match self {
            Prompt::Text(t) => t.clone(),
            Prompt::Tokens(ids) => ids.iter().map(u32::to_string).collect::<Vec<_>>().join(" "),
        }
    }
}

/// One request to send.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSpec {
    /// 0-based issue order.
    pub index: u32,
    pub prompt: Prompt,
    pub max_tokens: u32,
}

/// What one stream frame said (see `openai::parse`, `ollama::parse`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameFacts {
    /// The frame carries generated text.
    pub content: bool,
    pub text: String,
    pub finish_reason: Option<String>,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
    pub server_prompt_ms: Option<f64>,
    pub server_decode_ms: Option<f64>,
    pub server_load_ms: Option<f64>,
    pub server_prompt_n: Option<u32>,
    pub server_decode_n: Option<u32>,
    /// The protocol's last frame (Ollama's `done: true`).
    pub done: bool,
    /// An error reported inside the stream.
    pub error: Option<String>,
}

/// Merges `extra` over `body`, objects recursively (so `extra_body:
/// {options: {num_ctx: 4096}}` keeps Ollama's `num_predict`).
pub fn merge(body: &mut Value, extra: &serde_json::Map<String, Value>) {
    for (k, v) in extra {
        match (body.get_mut(k), v) {
            (Some(Value::Object(into)), Value::Object(from)) => {
                let mut sub = Value::Object(std::mem::take(into));
                merge(&mut sub, from);
                body[k] = sub;
            }
            _ => body[k] = v.clone(),
        }
    }
}
