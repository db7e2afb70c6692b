//! The spec's `server:` section of the `openai` and `ollama` kinds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How assay reaches and drives a server. Credentials never appear here:
/// `api_key_env` names the environment variable that holds the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerOptions {
    /// Base URL of a running server, e.g. `http://127.0.0.1:8000` (no path:
    /// assay appends `/v1/...` or `/api/...`). Required for `ollama`.
    /// Absent for `openai`: assay launches llama.cpp's `llama-server` on
    /// 127.0.0.1 with the model's GGUF export, one server per cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Which endpoint: `completions` (`/v1/completions`, Ollama
    /// `/api/generate`) or `chat` (`/v1/chat/completions`, `/api/chat`).
    #[serde(default)]
    pub api: ServerApi,
    /// How the prompt is sent. `tokens`: the scenario's token ids
    /// (`/v1/completions` with a model assay prepared, so its vocabulary is
    /// known; the prompt length is exact). `text`: words of a fixed list,
    /// about one token each; the server's own count is what is recorded.
    /// Default: `tokens` where it can be sent, else `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PromptFormat>,
    /// Let requests share a prompt so the server's prompt cache can reuse
    /// it. Off (the default), every request starts with a unique prefix, so
    /// a cached prompt never passes for a fast prefill.
    #[serde(default)]
    pub prompt_cache: bool,
    /// How fixed-length output is asked for beyond the token limit
    /// (`max_tokens`, Ollama's `num_predict`): `ignore_eos` (llama.cpp,
    /// vLLM, SGLang), `min_tokens` (vLLM, SGLang), `eos_logit_bias` (a -100
    /// bias on `eos_token_id`; OpenAI, llama.cpp, vLLM). Default
    /// `[ignore_eos]` for `openai`; `ollama` has none of these. Outputs
    /// shorter than asked are detected from the server's token count
    /// either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_knobs: Option<Vec<LengthKnob>>,
    /// The model's end-of-sequence token id, for `eos_logit_bias`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<u32>,
    /// Name of the environment variable holding an API key, sent as
    /// `Authorization: Bearer`. The key is read at run time and is never
    /// written to an artifact, a manifest or a log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// A PEM file of CA certificates trusted for an `https://` url besides
    /// the system's roots: how a private endpoint's CA is trusted. Relative
    /// to the spec's folder. Not part of the measure key: whom the client
    /// trusts changes nothing it measures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// `ca_file` resolved against the spec's folder, set when the spec is
    /// loaded; not serialised.
    #[serde(skip)]
    #[schemars(skip)]
    pub ca_path: Option<std::path::PathBuf>,
    /// Seconds a whole request may take, first byte to last.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_s: f64,
    /// Seconds without a byte from the server before a request counts as
    /// stalled.
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout_s: f64,
    /// Fraction of the steady window's requests that may fail (timeout,
    /// reset, malformed stream) before the cell fails. 0: any failure fails
    /// the cell.
    #[serde(default)]
    pub max_error_rate: f64,
    /// Fields merged into every request body, for server-specific knobs
    /// (e.g. `{cache_prompt: false}` for llama.cpp, `{options: {num_ctx:
    /// 4096}}` for Ollama). Part of the measure key.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// The server assay launches when `url` is absent (`openai` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<LaunchOptions>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            url: None,
            api: ServerApi::default(),
            prompt: None,
            prompt_cache: false,
            length_knobs: None,
            eos_token_id: None,
            api_key_env: None,
            ca_file: None,
            ca_path: None,
            request_timeout_s: default_request_timeout(),
            stall_timeout_s: default_stall_timeout(),
            max_error_rate: 0.0,
            extra_body: serde_json::Map::new(),
            launch: None,
        }
    }
}

impl ServerOptions {
    /// The length knobs sent: the spec's, else the kind's default
    /// (`default`: ignore-EOS for OpenAI-compatible servers, none for
    /// Ollama, which has no such option).
    pub fn knobs(&self, default: &[LengthKnob]) -> Vec<LengthKnob> {
        self.length_knobs
            .clone()
            .unwrap_or_else(|| default.to_vec())
    }
}

/// llama.cpp's `llama-server`, launched by assay on 127.0.0.1 with the
/// model's GGUF export (the backend's dtype picks the export: `q8_0` or
/// `f16`). The binary is `$ASSAY_LLAMA_SERVER`, else `llama-server` on
/// the PATH; its version is part of the measure key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LaunchOptions {
    /// Server slots (`--parallel`): requests decoded together.
    #[serde(default = "default_parallel")]
    #[schemars(range(min = 1))]
    pub parallel: u32,
    /// Context size in tokens (`--ctx-size`), shared by the slots. Absent:
    /// enough for the scenario's prompt and generation in every slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx_size: Option<u32>,
    /// Seconds to wait for the server to load and answer `/health`.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout_s: f64,
    /// Further arguments, appended as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

impl Default for LaunchOptions {
    fn default() -> Self {
        LaunchOptions {
            parallel: default_parallel(),
            ctx_size: None,
            ready_timeout_s: default_ready_timeout(),
            args: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServerApi {
    #[default]
    Completions,
    Chat,
}

impl ServerApi {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerApi::Completions => "completions",
            ServerApi::Chat => "chat",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PromptFormat {
    Tokens,
    Text,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LengthKnob {
    IgnoreEos,
    MinTokens,
    EosLogitBias,
}

fn default_request_timeout() -> f64 {
    120.0
}
fn default_stall_timeout() -> f64 {
    30.0
}
fn default_parallel() -> u32 {
    1
}
fn default_ready_timeout() -> f64 {
    60.0
}
