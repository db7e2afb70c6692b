//! The messages of the Python harness protocol, version [`PROTOCOL`]
//! (docs/python-harness.md): one JSON object per line, each with a `type`.
//! The harness speaks first (`hello`), assay sends one `cell`, then the
//! harness sends `progress`, `loaded`, one `run` per repetition and `done`,
//! or `error` at any point.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::harness::CompilerEvidence;

/// The protocol version this assay speaks; a harness of another one fails
/// the cell at the handshake.
pub const PROTOCOL: u32 = 1;

/// What assay asks the harness to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellRequest {
    /// Always `cell`.
    #[serde(rename = "type")]
    pub kind: String,
    pub protocol: u32,
    pub cell: String,
    /// A Hugging Face layout directory: config.json, model.safetensors (or
    /// shards), tokenizer.json where the model has one.
    pub model_dir: String,
    /// `f32`, `f16` or `bf16`.
    pub dtype: String,
    /// `cpu`, `cuda`, `cuda:N`.
    pub device: String,
    pub threads: u32,
    /// Token ids, one list per sequence, all of one length.
    pub prompts: Vec<Vec<u32>>,
    pub gen_tokens: u32,
    pub warmup_runs: u32,
    pub repetitions: u32,
    /// Absent: eager.
    pub compile: Option<CompileRequest>,
}

/// torch.compile's settings as the harness reads them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompileRequest {
    pub backend: String,
    /// `default`, `reduce-overhead`, `max-autotune`.
    pub mode: String,
    /// `null`: torch's automatic dynamic shapes.
    pub dynamic: Option<bool>,
    /// `all` or `prefill`.
    pub phases: String,
}

/// One timed phase on the harness's clock (`time.perf_counter_ns`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseEvent {
    pub phase: String,
    pub token_index: Option<u32>,
    pub tokens: u32,
    pub start_ns: u64,
    pub ns: u64,
}

/// What the harness says ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HarnessAttribution {
    pub device: String,
    pub dtype: String,
    pub threads: u32,
    /// `transformers`.
    pub library: String,
    pub library_version: String,
    pub torch_version: String,
    /// Anything else the harness knows (kept in the manifest's evidence).
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// A message from the harness.
// Many progress lines against one done per cell: boxing the big variant
// would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    Hello {
        protocol: u32,
        harness: String,
        #[serde(default)]
        harness_version: String,
        #[serde(default)]
        python: String,
    },
    Progress {
        message: String,
    },
    /// The model is loaded (and compiled): the `load` and `compile` events.
    Loaded {
        events: Vec<PhaseEvent>,
    },
    /// One repetition: its events, and per sequence its greedy tokens and
    /// each pick's margin (top-1 minus top-2 logit).
    Run {
        repetition: u32,
        events: Vec<PhaseEvent>,
        tokens: Vec<Vec<u32>>,
        margins: Vec<Vec<Option<f32>>>,
    },
    Done {
        attribution: HarnessAttribution,
        compiler: Option<CompilerEvidence>,
    },
    Error {
        message: String,
        #[serde(default)]
        traceback: String,
    },
}

impl Message {
    /// One protocol line. The handshake is read leniently first (only its
    /// `type` and `protocol`), so that a harness of another version is told
    /// apart from a broken one whatever else its hello carries.
    pub fn parse(line: &str) -> Result<Message, String> {
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("a line that is not JSON ({e}): {}", excerpt(line)))?;
        if value.get("type").and_then(|t| t.as_str()) == Some("hello") {
            let version = value.get("protocol").and_then(serde_json::Value::as_u64);
            if version != Some(u64::from(PROTOCOL)) {
                return Err(format!(
                    "a harness of protocol {} (this assay speaks protocol {PROTOCOL}): {}",
                    version.map_or_else(|| "unknown".to_string(), |v| v.to_string()),
                    excerpt(line)
                ));
            }
        }
        serde_json::from_value(value).map_err(|e| {
            format!(
                "a message outside protocol {PROTOCOL} ({e}): {}",
                excerpt(line)
            )
        })
    }
}

/// The start of a line, for messages (a harness may send megabytes).
pub fn excerpt(line: &str) -> String {
    const MAX: usize = 200;
    match line.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line.to_string(),
    }
}
