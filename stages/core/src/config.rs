//! The spec types the measure stage reads: boundary, scenario, backend.
//! Doc comments become descriptions in `schemas/spec.schema.json`.

pub mod server;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The measurement boundary: what is inside the timed region and how runs
/// are repeated. Numbers measured under different boundaries are never
/// compared in one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Boundary {
    /// Whether tokenisation is inside the timed region.
    #[serde(default)]
    pub tokenization: Tokenization,
    /// How model load is timed: `separate` records it as its own phase, never
    /// mixed into steady state.
    #[serde(default)]
    pub model_load: ModelLoad,
    /// Runs per cell that are measured and kept but labelled warmup and
    /// excluded from steady-state statistics.
    pub warmup_runs: u32,
    /// Steady-state runs per cell.
    #[schemars(range(min = 1))]
    pub repetitions: u32,
    /// `fixed_length`: generation runs to the requested length with EOS
    /// ignored; a shorter run is degraded, never silently averaged.
    #[serde(default)]
    pub decode: DecodeMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tokenization {
    /// Prompts enter as token ids; no tokenizer runs inside the timed region.
    /// (Including tokenisation needs a backend with a tokenizer; none yet.)
    #[default]
    Excluded,
}

/// Compute dtype of a backend.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Dtype {
    F32,
    F16,
    Bf16,
    /// 8-bit block quantisation (GGUF q8_0).
    #[serde(rename = "q8_0")]
    Q8_0,
    /// GGUF 4-bit quantisations, as servers (Ollama, llama.cpp) report
    /// them; server backends only.
    #[serde(rename = "q4_0")]
    Q4_0,
    #[serde(rename = "q4_k_m")]
    Q4KM,
    #[serde(rename = "q5_k_m")]
    Q5KM,
    #[serde(rename = "q6_k")]
    Q6K,
}

impl Dtype {
    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
            Dtype::Q8_0 => "q8_0",
            Dtype::Q4_0 => "q4_0",
            Dtype::Q4KM => "q4_k_m",
            Dtype::Q5KM => "q5_k_m",
            Dtype::Q6K => "q6_k",
        }
    }

    /// Bytes per weight or cache value (ggml's block sizes: q8_0 34 bytes
    /// per 32 values, q4_0 18, q4_K 144 per 256, q5_K 176, q6_K 210).
    pub fn bytes_per_value(self) -> f64 {
        match self {
            Dtype::F32 => 4.0,
            Dtype::F16 | Dtype::Bf16 => 2.0,
            Dtype::Q8_0 => 34.0 / 32.0,
            Dtype::Q4_0 => 18.0 / 32.0,
            Dtype::Q4KM => 144.0 / 256.0,
            Dtype::Q5KM => 176.0 / 256.0,
            Dtype::Q6K => 210.0 / 256.0,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelLoad {
    #[default]
    Separate,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecodeMode {
    #[default]
    FixedLength,
}

/// One workload shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Unique scenario name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Prompt length in tokens, per sequence.
    #[schemars(range(min = 1))]
    pub prompt_tokens: u32,
    /// Sequences processed together.
    #[schemars(range(min = 1))]
    pub batch: u32,
    /// Tokens generated per sequence (the first comes from prefill).
    #[schemars(range(min = 1))]
    pub gen_tokens: u32,
    /// A load profile: many requests against a server backend (`openai`,
    /// `ollama`) instead of one run at a time. Scenarios with a load run on
    /// server backends only; in-process backends skip them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadProfile>,
}

/// How requests arrive at a server, how many are measured, and the service
/// levels they are judged against. Windows are counted in requests: the
/// first `warmup_requests` are warmup, then the steady window (`requests`
/// of them, or every request sent within `duration_s`), then
/// `cooldown_requests` more keep the load on while the steady window
/// drains. Only the steady window enters statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadProfile {
    /// `closed`: `concurrency` requests in flight, the next sent as one
    /// finishes. `constant`: one request every 1/rate seconds. `poisson`:
    /// exponential gaps of mean 1/rate, from `seed`.
    pub arrival: Arrival,
    /// Requests in flight (closed loop).
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1))]
    pub concurrency: u32,
    /// Offered rates in requests per second (open loop). With several, each
    /// rate is its own cell, named `<scenario>-r<rate>` (one rate keeps the
    /// scenario's name); a list is a rate sweep, and the report finds its
    /// knee.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rates: Vec<f64>,
    /// Seed of Poisson arrivals (the same seed, the same schedule).
    #[serde(default)]
    pub seed: u64,
    /// Steady-window size in requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub requests: Option<u32>,
    /// Steady-window length in seconds (instead of `requests`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Requests before the steady window, measured and labelled warmup.
    #[serde(default)]
    pub warmup_requests: u32,
    /// Requests after the steady window, sent to keep the load on while it
    /// finishes; recorded, labelled cooldown, excluded.
    #[serde(default)]
    pub cooldown_requests: u32,
    /// Open loop: the most requests in flight; an arrival beyond it waits,
    /// and the wait is recorded as queueing (`queue_ns`).
    #[serde(default = "default_max_in_flight")]
    #[schemars(range(min = 1))]
    pub max_in_flight: u32,
    /// Service-level objectives for goodput.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<Slo>,
}

/// Service-level objectives, as MLPerf's server scenario and vLLM's
/// `--goodput` define them: time to first token, and time per output token
/// after the first ((e2e - ttft) / (output tokens - 1)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// TTFT limit, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// TPOT limit, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpot_ms: Option<f64>,
    /// Fraction of steady requests that must meet every limit for a rate to
    /// be sustainable (the knee of a rate sweep is the highest such rate).
    #[serde(default = "default_attainment")]
    pub attainment: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    Closed,
    Constant,
    Poisson,
}

impl Arrival {
    pub fn as_str(self) -> &'static str {
        match self {
            Arrival::Closed => "closed",
            Arrival::Constant => "constant",
            Arrival::Poisson => "poisson",
        }
    }
}

fn default_concurrency() -> u32 {
    1
}
fn default_max_in_flight() -> u32 {
    256
}
fn default_attainment() -> f64 {
    0.9
}

/// The name of a backend kind, as a spec writes it (`candle`, `ort`,
/// `openai`, ...). The kinds are not a closed list here: each is an entry
/// of the backend registry (`assay_measure::Registry`), which owns its
/// checks, plan wiring and measuring, and a build of assay may register
/// more. The spec schema lists the registered kinds with their summaries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BackendKind(std::borrow::Cow<'static, str>);

impl BackendKind {
    /// A kind name known at compile time (a registry entry's name).
    pub const fn new(name: &'static str) -> Self {
        BackendKind(std::borrow::Cow::Borrowed(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for BackendKind {
    fn from(name: &str) -> Self {
        BackendKind(std::borrow::Cow::Owned(name.to_string()))
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for BackendKind {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "BackendKind".into()
    }

    /// A string; the engine's spec schema narrows it to the registered
    /// kinds (which this crate cannot see).
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string" })
    }
}

/// Bounds past which a spec's numbers stop being meaningful (and would
/// overflow a clock): at most a day of waiting, at most 4096 server slots.
pub const MAX_SECONDS: f64 = 86_400.0;
pub const MAX_SLOTS: u32 = 4096;

/// One backend configuration: what the spec requests. What actually ran is
/// recorded separately (attribution) and compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Unique backend name.
    pub name: String,
    pub kind: BackendKind,
    /// Requested device, e.g. `cpu`, `cuda:0`.
    #[serde(default = "default_device")]
    pub device: String,
    /// Requested compute dtype.
    #[serde(default = "default_dtype")]
    pub dtype: Dtype,
    /// Requested compute threads (explicit: 2 threads on a noisy 2-core
    /// machine can be far slower than 1).
    #[serde(default = "default_threads")]
    #[schemars(range(min = 1))]
    pub threads: u32,
    /// Options of the `simulated` kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated: Option<SimulatedOptions>,
    /// Options of the `ort` kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ort: Option<OrtOptions>,
    /// Options of the `tch` kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tch: Option<TchOptions>,
    /// Options of the server kinds (`openai`, `ollama`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<crate::config::server::ServerOptions>,
}

/// ONNX Runtime session options. Intra-op threads are the backend's
/// `threads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrtOptions {
    /// Execution providers in priority order. ONNX Runtime falls back to
    /// the CPU for whatever a provider cannot run or when it does not
    /// register; attribution records which registered and where the graph
    /// ran, so a CUDA request that ran on the CPU is label drift.
    #[serde(default = "default_providers")]
    #[schemars(length(min = 1))]
    pub providers: Vec<ExecutionProvider>,
    /// Graph optimisation level. `disabled` runs the graph as exported;
    /// `all` fuses (the compiled path, with node counts as evidence).
    #[serde(default)]
    pub graph_optimization: GraphOptimization,
    /// Threads running independent graph branches in parallel (1: sequential
    /// execution mode).
    #[serde(default = "default_inter_op")]
    #[schemars(range(min = 1))]
    pub inter_op_threads: u32,
}

impl Default for OrtOptions {
    fn default() -> Self {
        OrtOptions {
            providers: default_providers(),
            graph_optimization: GraphOptimization::default(),
            inter_op_threads: default_inter_op(),
        }
    }
}

fn default_providers() -> Vec<ExecutionProvider> {
    vec![ExecutionProvider::Cpu]
}
fn default_inter_op() -> u32 {
    1
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionProvider {
    Cpu,
    Cuda,
}

impl ExecutionProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionProvider::Cpu => "cpu",
            ExecutionProvider::Cuda => "cuda",
        }
    }
}

/// ONNX Runtime's graph optimisation levels.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum GraphOptimization {
    Disabled,
    Basic,
    Extended,
    #[default]
    All,
}

impl GraphOptimization {
    pub fn as_str(self) -> &'static str {
        match self {
            GraphOptimization::Disabled => "disabled",
            GraphOptimization::Basic => "basic",
            GraphOptimization::Extended => "extended",
            GraphOptimization::All => "all",
        }
    }
}

/// libtorch options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TchOptions {
    /// `eager` runs the model op by op; `torchscript` runs a TorchScript
    /// trace of the same model through the graph executor.
    #[serde(default)]
    pub mode: TchMode,
    /// Inter-op threads of libtorch (intra-op threads are `threads`).
    #[serde(default = "default_inter_op")]
    #[schemars(range(min = 1))]
    pub inter_op_threads: u32,
}

impl Default for TchOptions {
    fn default() -> Self {
        TchOptions {
            mode: TchMode::default(),
            inter_op_threads: default_inter_op(),
        }
    }
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TchMode {
    #[default]
    Eager,
    Torchscript,
}

impl TchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TchMode::Eager => "eager",
            TchMode::Torchscript => "torchscript",
        }
    }
}

fn default_device() -> String {
    "cpu".into()
}
fn default_dtype() -> Dtype {
    Dtype::F32
}
fn default_threads() -> u32 {
    1
}

/// The simulated machine. Latency = work / roofline + overhead, times
/// seeded log-normal noise; optional cold start and outliers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulatedOptions {
    /// Seed of the noise generator.
    #[serde(default)]
    pub seed: u64,
    /// Peak compute, GFLOP/s.
    #[serde(default = "default_peak_gflops")]
    pub peak_gflops: f64,
    /// Memory bandwidth, GB/s (bounds decode).
    #[serde(default = "default_bandwidth")]
    pub memory_gbps: f64,
    /// Fixed overhead per forward pass, microseconds.
    #[serde(default = "default_overhead")]
    pub overhead_us: f64,
    /// Coefficient of variation of the multiplicative noise.
    #[serde(default = "default_noise")]
    pub noise_cv: f64,
    /// Latency multiplier of the first run after model load.
    #[serde(default = "default_cold")]
    pub cold_start_factor: f64,
    /// Probability that one simulated operation (a forward pass, a sampling
    /// step, the load) is an outlier.
    #[serde(default)]
    pub outlier_rate: f64,
    /// Latency multiplier of an outlier event.
    #[serde(default = "default_outlier_factor")]
    pub outlier_factor: f64,
    /// Fault injection: the backend fails at this run (0-based, warmup runs
    /// first) of every cell, to exercise failure handling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_at_run: Option<u32>,
}

fn default_peak_gflops() -> f64 {
    100.0
}
fn default_bandwidth() -> f64 {
    20.0
}
fn default_overhead() -> f64 {
    50.0
}
fn default_noise() -> f64 {
    0.03
}
fn default_cold() -> f64 {
    3.0
}
fn default_outlier_factor() -> f64 {
    4.0
}

impl Default for SimulatedOptions {
    fn default() -> Self {
        SimulatedOptions {
            seed: 0,
            peak_gflops: default_peak_gflops(),
            memory_gbps: default_bandwidth(),
            overhead_us: default_overhead(),
            noise_cv: default_noise(),
            cold_start_factor: default_cold(),
            outlier_rate: 0.0,
            outlier_factor: default_outlier_factor(),
            fail_at_run: None,
        }
    }
}
