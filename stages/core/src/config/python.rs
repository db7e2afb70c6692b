//! The spec's `python:` section of the `python` kind: the interpreter that
//! runs assay's Python harness, and torch.compile's settings.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How the harness process runs. Absent `compile`: transformers eager.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PythonOptions {
    /// The Python interpreter of an environment with torch and
    /// transformers (`scripts/install-python-harness.sh` builds one). Absent:
    /// the environment variable `ASSAY_PYTHON`. The path is not part of the
    /// key; the environment's Python, torch and transformers versions are
    /// (read from it once per run), and what ran is in the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// Seconds assay waits for each message of the harness (the model
    /// load, a compile, one run) before it kills the harness and fails the
    /// cell. Default 600. Not part of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_s: Option<u32>,
    /// Run the model under `torch.compile` (TorchDynamo plus a backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile: Option<CompileOptions>,
}

/// The default wait for one harness message.
pub const DEFAULT_TIMEOUT_S: u32 = 600;

impl PythonOptions {
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S)))
    }
}

/// `torch.compile(model, backend=..., mode=..., dynamic=...)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompileOptions {
    /// The Dynamo backend: `inductor` (the default), or another registered
    /// one (`aot_eager`, `eager`: graph capture without code generation).
    #[serde(default = "default_backend")]
    pub backend: String,
    /// Inductor's mode: `default`, `reduce-overhead` (CUDA graphs),
    /// `max-autotune`. Other backends take `default` only.
    #[serde(default)]
    pub mode: CompileMode,
    /// `true`: compile shape-polymorphic graphs from the start; `false`:
    /// specialise on every shape (a new shape recompiles, up to Dynamo's
    /// cache limit, then runs eagerly). Absent: torch's automatic dynamic
    /// shapes (specialise, then go dynamic on the first recompile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic: Option<bool>,
    /// Which phases run compiled: `all`, or `prefill` (decode steps run
    /// eagerly, Appendix F.2).
    #[serde(default)]
    pub phases: CompilePhases,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            backend: default_backend(),
            mode: CompileMode::default(),
            dynamic: None,
            phases: CompilePhases::default(),
        }
    }
}

fn default_backend() -> String {
    "inductor".into()
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum CompileMode {
    #[default]
    Default,
    ReduceOverhead,
    MaxAutotune,
}

impl CompileMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CompileMode::Default => "default",
            CompileMode::ReduceOverhead => "reduce-overhead",
            CompileMode::MaxAutotune => "max-autotune",
        }
    }
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CompilePhases {
    #[default]
    All,
    Prefill,
}

impl CompilePhases {
    pub fn as_str(self) -> &'static str {
        match self {
            CompilePhases::All => "all",
            CompilePhases::Prefill => "prefill",
        }
    }
}
