//! The `imported:` section of a backend of kind `imported`: a results file
//! written by another benchmarking tool, read as measure nodes
//! (docs/importers.md).

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A results file of a peer tool whose records become this backend's
/// cells: the spec's (model, scenario) pairs the file holds records for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportedOptions {
    /// The results file, relative to the spec's folder.
    pub file: String,
    /// Which tool wrote it, and so how it is read.
    pub format: ImportFormat,
    /// Spec model name -> the model's name in the file (llama-bench:
    /// `model_filename`'s file name; vLLM: `model_id`; AIPerf: the
    /// configuration's first model name; GuideLLM: the backend's `model`;
    /// optimum-benchmark: the backend's `model`, a path reduced to its
    /// last component). A spec model not named here
    /// matches a file model of its own name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, String>,
    /// blake3 of the file's bytes, filled in when the spec is loaded (never
    /// written by hand): the file's content enters every cell's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub file_blake3: Option<String>,
    /// The spec's folder, set when the spec is loaded; not serialised (the
    /// digest stands for the file in keys).
    #[serde(skip)]
    #[schemars(skip)]
    pub base_dir: Option<PathBuf>,
}

impl ImportedOptions {
    /// The file's path: relative to the spec's folder once loaded.
    pub fn path(&self) -> PathBuf {
        match &self.base_dir {
            Some(dir) => dir.join(&self.file),
            None => PathBuf::from(&self.file),
        }
    }
}

/// The tools whose results assay reads.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ImportFormat {
    /// llama.cpp's `llama-bench -o json` or `-o jsonl`.
    LlamaBench,
    /// vLLM's `vllm bench serve --save-result` JSON.
    VllmBenchServe,
    /// AIPerf's per-request `profile_export.jsonl`.
    Aiperf,
    /// GuideLLM's benchmark report JSON (`--output kind=json`).
    Guidellm,
    /// optimum-benchmark's `benchmark.json` (its configuration and report).
    OptimumBenchmark,
}

impl ImportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportFormat::LlamaBench => "llama-bench",
            ImportFormat::VllmBenchServe => "vllm-bench-serve",
            ImportFormat::Aiperf => "aiperf",
            ImportFormat::Guidellm => "guidellm",
            ImportFormat::OptimumBenchmark => "optimum-benchmark",
        }
    }
}
