//! The row type of every stored table.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One timed event of the raw measurement (`events` of a measure node).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventRow {
    pub cell: String,
    /// 0-based run index within the cell (warmup runs first).
    pub repetition: u32,
    pub warmup: bool,
    /// First run after model load.
    pub cold: bool,
    /// `load`, `prefill`, `ttft`, `decode` or `e2e`; with
    /// `boundary.tokenization: included` also `tokenize` (before prefill)
    /// and `detokenize` (before e2e ends).
    pub phase: String,
    /// Index of the generated token this event produced (0 for ttft, 1.. for
    /// decode steps); null for the other phases.
    pub token_index: Option<u32>,
    /// Tokens processed (prefill; tokenize: the tokenizer's output) or
    /// produced (decode, ttft, e2e; detokenize: the ids turned into text)
    /// by the event.
    pub tokens: u32,
    /// Start of the event on the cell's clock (ns since the clock's zero,
    /// just before model load): places events against power samples.
    pub start_ns: u64,
    pub ns: u64,
}

/// One power sample of a measure node (`power`, when the spec asks for
/// energy and a sensor exists).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PowerRow {
    pub cell: String,
    /// End of the poll interval on the cell's clock, ns; negative in the idle
    /// baseline before model load.
    pub t_ns: i64,
    /// Mean power over the poll interval, W.
    pub watts: f64,
}

/// Energy attribution of one window of one run (`energy` of validate):
/// `valid` with a number, or `no_data` without one (TR122 gating).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnergyRow {
    pub cell: String,
    pub repetition: u32,
    pub warmup: bool,
    /// `prefill`, `decode` (first step's start to last step's end) or `e2e`.
    pub phase: String,
    pub start_ns: i64,
    pub duration_ns: u64,
    pub tokens: u32,
    /// Power samples inside the window.
    pub samples: u32,
    /// `valid` or `no_data`.
    pub status: String,
    pub mean_power_w: Option<f64>,
    /// Mean of the idle baseline samples; null when there were none (then
    /// energy is gross, not above idle).
    pub idle_power_w: Option<f64>,
    /// (mean power - idle power) x duration, J; null when `no_data`.
    pub energy_j: Option<f64>,
}

/// One run of a cell (`runs` of a measure node).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunRow {
    pub cell: String,
    pub repetition: u32,
    pub warmup: bool,
    pub cold: bool,
    pub prompt_tokens: u32,
    pub batch: u32,
    pub gen_tokens_requested: u32,
    pub gen_tokens_produced: u32,
    /// Generation stopped before the requested length.
    pub short: bool,
    /// blake3 of the generated token ids, to compare outputs across backends.
    pub output_digest: String,
}

/// One generated token of one run: the greedy pick and its margin over the
/// runner-up logit (null for the simulated backend, which has no logits).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OutputRow {
    pub cell: String,
    pub repetition: u32,
    pub sequence: u32,
    /// 0 is the token from prefill.
    pub step: u32,
    pub token: u32,
    pub margin: Option<f32>,
}

/// One request sent to a server backend (`requests` of a measure node of
/// kind `openai` or `ollama`), in the order requests were issued. Times are
/// on the cell's monotonic clock, ns since it started; latencies are
/// client-side unless their name says `server_`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RequestRow {
    pub cell: String,
    /// 0-based issue order.
    pub request: u32,
    /// `warmup`, `steady` or `cooldown`; only `steady` enters statistics.
    pub window: String,
    /// When the load profile meant to send it (open loop: its arrival).
    pub scheduled_ns: u64,
    /// When it was sent.
    pub sent_ns: u64,
    /// `sent_ns - scheduled_ns`: time the request waited on the client for a
    /// free slot (`max_in_flight`) or a late generator.
    pub queue_ns: u64,
    /// Send to the first generated token.
    pub ttft_ns: Option<u64>,
    /// Gaps between successive chunks carrying generated text, ns.
    pub itl_ns: Vec<u64>,
    /// Send to the end of the stream.
    pub e2e_ns: Option<u64>,
    /// Prompt tokens as the server counted them (absent when it did not say).
    pub prompt_tokens: Option<u32>,
    /// Generated tokens as the server counted them (absent when it did not say).
    pub completion_tokens: Option<u32>,
    /// Stream chunks that carried generated text.
    pub chunks: u32,
    pub gen_tokens_requested: u32,
    /// The server generated fewer tokens than requested.
    pub short: bool,
    /// The server's `finish_reason` / `done_reason`.
    pub finish_reason: Option<String>,
    /// Prompt processing time the server reported (llama.cpp
    /// `timings.prompt_ms`, Ollama `prompt_eval_duration`), ms.
    pub server_prompt_ms: Option<f64>,
    /// Prompt tokens that time covers (llama.cpp `timings.prompt_n`,
    /// Ollama `prompt_eval_count`): fewer than `prompt_tokens` when the
    /// server's prompt cache served the rest.
    pub server_prompt_tokens: Option<u32>,
    /// Generation time the server reported (llama.cpp
    /// `timings.predicted_ms`, Ollama `eval_duration`), ms.
    pub server_decode_ms: Option<f64>,
    /// Model load time the server reported (Ollama `load_duration`), ms.
    pub server_load_ms: Option<f64>,
    /// `ok`, or what went wrong: `timeout`, `stall`, `connect`, `http`,
    /// `malformed`, `truncated`.
    pub status: String,
    pub error: Option<String>,
    /// The response bytes of a failed request (lossy UTF-8, first 64 KiB).
    pub raw: Option<String>,
    /// blake3 of the generated text, to see whether outputs repeat.
    pub output_digest: Option<String>,
}

/// Serving under load of one server cell (`load` of goodput): throughput,
/// latency tails and SLO attainment over the cell's steady window. Failed
/// requests count as SLO misses; latencies are client-side, from the send.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoadRow {
    pub cell: String,
    pub backend: String,
    pub model: String,
    /// The scenario as expanded (`chat-r2`).
    pub scenario: String,
    /// The rate sweep the scenario was expanded from (`chat`); null when
    /// the goodput stage was given none for it.
    pub family: Option<String>,
    /// `measured` or `simulated`.
    pub evidence: String,
    /// `closed`, `constant` or `poisson`; `none` for a scenario without a
    /// load profile.
    pub arrival: String,
    /// Requests in flight (closed loop); null for open loop.
    pub concurrency: Option<u32>,
    /// Offered rate, requests/s (open loop); null for closed loop.
    pub offered_rps: Option<f64>,
    /// The rate the schedule actually offered over the steady window:
    /// (steady requests - 1) / (last - first scheduled time). A short
    /// Poisson sample's realised rate differs from the nominal one. Null
    /// for closed loop or under two steady requests.
    pub realised_rps: Option<f64>,
    /// The rate completions came out at: (completed - 1) / (last - first
    /// steady end). A server that keeps up completes at the realised rate;
    /// one that falls behind at its service rate. Null under two.
    pub completion_rps: Option<f64>,
    /// Steady-window requests, failed ones included.
    pub requests: u32,
    /// Steady requests with status `ok`.
    pub completed: u32,
    /// Steady requests with any other status.
    pub failed: u32,
    /// Steady requests the server answered with fewer tokens than requested.
    pub short: u32,
    /// First steady send to the last steady end (send + e2e), s; 0 without
    /// steady requests.
    pub window_s: f64,
    /// completed / window_s; null when the window is empty.
    pub achieved_rps: Option<f64>,
    /// Output tokens of the completed steady requests.
    pub output_tokens: u64,
    /// output_tokens / window_s; null when the window is empty.
    pub output_tps: Option<f64>,
    /// Where output token counts came from: `server` (its
    /// `completion_tokens` for every completed request), `chunks` (stream
    /// chunks carrying text, for every one: the server gave no count) or
    /// `mixed`.
    pub tokens_source: String,
    /// Time to first token of completed steady requests, ms (type-7
    /// quantiles; null without data).
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p90_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    /// Time per output token after the first, (e2e - ttft) / (output tokens
    /// - 1), of completed steady requests with at least two output tokens, ms.
    pub tpot_p50_ms: Option<f64>,
    pub tpot_p90_ms: Option<f64>,
    pub tpot_p99_ms: Option<f64>,
    /// Over every inter-chunk gap of the completed steady requests, ms.
    pub itl_p50_ms: Option<f64>,
    pub itl_p99_ms: Option<f64>,
    /// Send to end of stream of completed steady requests, ms.
    pub e2e_p50_ms: Option<f64>,
    pub e2e_p99_ms: Option<f64>,
    /// Client-side wait before the send (`queue_ns`) of every steady
    /// request, ms.
    pub queue_p99_ms: Option<f64>,
    /// The scenario's SLO limits; null when not set.
    pub slo_ttft_ms: Option<f64>,
    pub slo_tpot_ms: Option<f64>,
    /// Attainment a rate needs to be sustainable; null without an SLO.
    pub slo_attainment: Option<f64>,
    /// Steady requests meeting every limit (ok, TTFT within its limit, TPOT
    /// within its limit or one output token); null without an SLO.
    pub good: Option<u32>,
    /// good / requests; null without an SLO or steady requests.
    pub attainment: Option<f64>,
    /// good / window_s (vLLM `--goodput`); null without an SLO or window.
    pub goodput_rps: Option<f64>,
    /// MLPerf server-scenario style: no failed steady request, p99 TTFT and
    /// p99 TPOT within their limits; null without an SLO.
    pub mlperf_pass: Option<bool>,
    /// attainment >= slo_attainment; null without an SLO or steady requests.
    pub sustainable: Option<bool>,
}

/// The knee of one open-loop rate sweep (`knees` of goodput): one row per
/// (backend, model, family) with at least one offered rate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KneeRow {
    pub backend: String,
    pub model: String,
    /// The sweep's family; a rate cell without one is its own family, named
    /// after its scenario.
    pub family: String,
    /// `measured` only when every cell of the sweep is; else `simulated`.
    pub evidence: String,
    /// Offered rates tested, requests/s, ascending.
    pub rates: Vec<f64>,
    /// The cells of those rates, in the same order.
    pub cells: Vec<String>,
    /// Attainment a rate needs (the SLO of the lowest rate that has one);
    /// null without an SLO.
    pub slo_attainment: Option<f64>,
    /// Highest offered rate that is sustainable with every lower rate
    /// sustainable too; null when the lowest is not, or without an SLO.
    pub knee_rps: Option<f64>,
    /// Highest offered rate whose achieved_rps >= 0.95 x offered, with every
    /// lower rate so too; null when the lowest falls short.
    pub saturation_rps: Option<f64>,
    /// Each rate's verdict in words, e.g. `r=4 met 0.970 >= 0.9; r=8 met
    /// 0.410 < 0.9`.
    pub reason: String,
}

/// Validation verdict of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ValidationRow {
    pub cell: String,
    pub repetition: u32,
    pub warmup: bool,
    /// `ok`, `degraded` or `failed`.
    pub status: String,
    /// Reason codes, `;`-separated, empty when ok.
    pub reasons: String,
    /// Flags that do not change the status, `;`-separated (e.g. `outlier`:
    /// flagged, never dropped).
    pub flags: String,
    /// `measured` or `simulated`.
    pub evidence: String,
}

/// Distribution of one phase of one cell over its steady-state ok runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SummaryRow {
    pub cell: String,
    pub backend: String,
    pub model: String,
    pub scenario: String,
    pub phase: String,
    pub evidence: String,
    /// Device and dtype that actually ran (from the manifest's attribution).
    pub device: String,
    pub dtype: String,
    /// Architecture family (`llama`, `gpt2`): fits across families treat
    /// parameter count as a regime descriptor only (Appendix AN.4).
    pub arch: String,
    pub parameter_count: u64,
    pub n_layer: u32,
    pub n_embd: u32,
    /// Attention heads (Appendix AX.2); 0 where unknown (a server that
    /// does not say).
    pub n_head: u32,
    pub prompt_tokens: u32,
    pub batch: u32,
    pub gen_tokens: u32,
    pub n: u32,
    pub mean_ms: f64,
    pub median_ms: f64,
    /// 95% percentile-bootstrap interval of the median (1,000 resamples,
    /// seeded from the node key); NaN below two samples.
    pub median_ci_low_ms: f64,
    pub median_ci_high_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub std_ms: f64,
    /// Median absolute deviation from the median.
    pub mad_ms: f64,
    /// Warmup events of this phase (kept, never in the statistics above).
    pub warmup_n: u32,
    pub warmup_median_ms: f64,
    /// warmup median / steady median (seed Appendix AA.4); NaN without warmup.
    pub warmup_ratio: f64,
    /// Median of this phase in the cold run (the first after load).
    pub cold_median_ms: f64,
    /// e2e rows only: median over runs of (sum of decode steps / e2e), the
    /// seed's AA.3 decode fraction; NaN on other phases.
    pub decode_fraction: f64,
    /// e2e rows only: median over runs of the summed decode steps, ms (what
    /// the linear fit against generation length uses); NaN elsewhere.
    pub decode_total_ms: f64,
    /// Tokens per event divided by the median event time.
    pub tokens_per_s: f64,
    /// Decode rows of measured cells: bytes one decode step must read
    /// (streamed weights once, plus every sequence's KV cache at the mean
    /// context length); NaN elsewhere.
    pub roofline_bytes_per_step: f64,
    /// Memory bandwidth of the machine at the cell's thread count (STREAM
    /// copy, GB/s); NaN where not measured.
    pub bandwidth_gbps: f64,
    /// Decode tokens/s the bandwidth allows: batch * bandwidth / bytes.
    pub roofline_tokens_per_s: f64,
    /// Measured decode tokens/s as a fraction of that bound.
    pub roofline_fraction: f64,
    /// Energy windows of this phase in steady ok runs (prefill, decode span,
    /// e2e; 0 when the spec asks for no energy).
    pub energy_windows: u32,
    /// Of those, windows with enough power samples to attribute energy.
    pub energy_valid: u32,
    /// Median energy above idle per window, J, over valid windows only;
    /// null (no_data) when none is valid.
    pub energy_j_median: Option<f64>,
    /// Median of (energy / tokens of the window), J per token; null when
    /// no window is valid.
    pub energy_j_per_token: Option<f64>,
}

/// Shadow-price cost of one (cell, phase, pricing tier).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CostRow {
    pub cell: String,
    pub backend: String,
    pub model: String,
    pub scenario: String,
    pub phase: String,
    pub evidence: String,
    pub tier: String,
    pub usd_per_hour: f64,
    pub tokens_per_s: f64,
    pub seconds_per_1m: f64,
    pub usd_per_1m: f64,
    /// Mean load of the planned volume, tokens/s.
    pub mean_load_tokens_per_s: f64,
    /// Workers a perfectly utilised fleet needs for the mean load.
    pub workers_utilization_perfect: f64,
    /// Workers needed at burst (ceil, at least one).
    pub workers_required: u64,
    pub usd_per_month: f64,
    /// Electricity for 1M tokens above idle at the spec's $/kWh: null
    /// unless the spec prices energy and the phase's energy passed gating.
    pub energy_usd_per_1m: Option<f64>,
    /// Carbon for 1M tokens, g CO2e, under the same conditions.
    pub carbon_g_per_1m: Option<f64>,
}

/// One scaling fit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FitRow {
    /// `log-log` (ln y = a + b ln x, b is the scaling exponent) or `linear`
    /// (y = a + b x, b in ms per token).
    pub form: String,
    pub backend: String,
    /// The model of a linear fit; empty for fits across models.
    pub model: String,
    /// Scenario of a log-log fit; the `+`-joined scenarios of a linear one.
    pub scenario: String,
    /// For a fit within one architecture family (`llama f32`: arch and
    /// dtype; Appendix AC.2), that family; empty for a fit over every model
    /// of its cell (pooled: `heterogeneous` says whether they span several
    /// families) and for the linear fits, which are per model.
    pub family: String,
    /// For a series fit inside a family, what it varies and what it holds
    /// (`depth at hidden 256, heads 4`); empty for a fit over the whole
    /// family or across families.
    pub series: String,
    /// The predictors of the model the slope belongs to: `x` for a
    /// one-predictor fit, `+`-joined (`layers+hidden`) for a multivariate
    /// one, whose other coefficients are the sibling rows.
    pub terms: String,
    /// What the fit holds fixed (`short`, `batch 1`, `batch 1, prompt 128`):
    /// fits differing only in it are compared by the boundary-shift check.
    pub boundary: String,
    pub y: String,
    pub x: String,
    pub n: u32,
    pub slope: f64,
    pub intercept: f64,
    pub r_squared: f64,
    pub slope_ci_low: f64,
    pub slope_ci_high: f64,
    /// Spearman rank correlation of x and y.
    pub spearman: f64,
    /// False when R^2 < 0.2 and the slope CI crosses zero (or is unknown):
    /// the exponent is not actionable and feeds no claim (Appendix AM rule 7).
    pub identifiable: bool,
    /// Devices the fitted cells ran on (`cpu`), `+`-joined if several.
    pub device: String,
    /// The fitted models differ in architecture family or dtype: parameter
    /// count is then a regime descriptor only (Appendix AN.4).
    pub heterogeneous: bool,
    /// `increasing`, `decreasing`, `sign uncertain` (identifiable, slope CI
    /// spans zero) or `unidentifiable`.
    pub regime: String,
    /// The regime differs under another boundary (AD.4): the conclusion is
    /// boundary-specific.
    pub boundary_flip: bool,
    /// Each boundary's regime when it flips; empty otherwise.
    pub boundary_note: String,
    /// The falsification test across boundaries (AD.4) of this fit and its
    /// shifted repeats: `held` (one identifiable regime, slope CIs share a
    /// point), `magnitude shifted` (one identifiable regime, CIs disjoint),
    /// `flipped` (regimes differ), `untestable` (no boundary identifiable);
    /// empty when the fit was measured under one boundary only.
    pub shift: String,
    pub evidence: String,
}

/// One detokenised output of a run of a cell whose boundary includes
/// tokenisation (measure output `texts`): what a service would have
/// returned for sequence `sequence`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TextRow {
    pub cell: String,
    pub repetition: u32,
    pub sequence: u32,
    /// The prompt text this sequence sent.
    pub prompt: String,
    /// Prompt tokens the model ran for this sequence (after the cut to the
    /// scenario's `prompt_tokens`).
    pub prompt_tokens: u32,
    /// Tokens the tokenizer gave for the prompt text, before any cut.
    pub prompt_tokens_encoded: u32,
    /// The generated tokens, detokenised (special tokens kept, so that the
    /// text re-tokenises to the ids in `outputs`).
    pub output: String,
}
