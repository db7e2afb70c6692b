//! The artifact tables: one row type per table, stored as Parquet. The row
//! structs are the contract; their JSON Schemas are checked in under
//! `schemas/tables/`.

use assay_store::table;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_arrow::schema::{SchemaLike, TracingOptions};

use crate::stage::{Input, StageError};

/// One timed event of the raw measurement (`events` of a measure node).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventRow {
    pub cell: String,
    /// 0-based run index within the cell (warmup runs first).
    pub repetition: u32,
    pub warmup: bool,
    /// First run after model load.
    pub cold: bool,
    /// `load`, `prefill`, `ttft`, `decode` or `e2e`.
    pub phase: String,
    /// Index of the generated token this event produced (0 for ttft, 1.. for
    /// decode steps); null for load, prefill and e2e.
    pub token_index: Option<u32>,
    /// Tokens processed (prefill) or produced (decode, ttft, e2e) by the event.
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
    pub evidence: String,
}

fn tracing() -> TracingOptions {
    TracingOptions::default()
        .strings_as_large_utf8(false)
        .allow_null_fields(true)
}

/// Rows to deterministic Parquet bytes.
pub fn to_parquet<T: Serialize + DeserializeOwned>(rows: &[T]) -> Result<Vec<u8>, StageError> {
    let fields = Vec::<arrow::datatypes::FieldRef>::from_type::<T>(tracing())
        .map_err(|e| StageError::Failed(format!("table schema: {e}")))?;
    let batch = serde_arrow::to_record_batch(&fields, &rows)
        .map_err(|e| StageError::Failed(format!("table encoding: {e}")))?;
    Ok(table::to_parquet(&batch)?)
}

/// Parquet bytes to rows.
pub fn from_parquet<T: DeserializeOwned>(bytes: &[u8]) -> Result<Vec<T>, String> {
    let batch = table::from_parquet(bytes).map_err(|e| e.to_string())?;
    serde_arrow::from_record_batch(&batch).map_err(|e| e.to_string())
}

/// Raw events decoded column by column. Event tables are the largest
/// artifacts by far (one row per decode step), and the generic serde path
/// costs several times the Parquet read itself at millions of rows (see the
/// `summarise_scale` bench); this reads the same schema directly. A test
/// checks it against the serde path.
pub fn events_from_parquet(bytes: &[u8]) -> Result<Vec<EventRow>, String> {
    let batch = table::from_parquet(bytes).map_err(|e| e.to_string())?;
    events_from_batch(&batch)
}

/// The decoding half of [`events_from_parquet`].
pub fn events_from_batch(batch: &arrow::array::RecordBatch) -> Result<Vec<EventRow>, String> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{UInt32Type, UInt64Type};
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| format!("events table has no column {name}"))
    };
    let strings = |name: &str| -> Result<_, String> {
        column(name)?
            .as_string_opt::<i32>()
            .ok_or_else(|| format!("events column {name} is not a string column"))
    };
    let u32s = |name: &str| -> Result<_, String> {
        column(name)?
            .as_primitive_opt::<UInt32Type>()
            .ok_or_else(|| format!("events column {name} is not a u32 column"))
    };
    let u64s = |name: &str| -> Result<_, String> {
        column(name)?
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| format!("events column {name} is not a u64 column"))
    };
    let bools = |name: &str| -> Result<_, String> {
        column(name)?
            .as_boolean_opt()
            .ok_or_else(|| format!("events column {name} is not a boolean column"))
    };
    let (cell, phase) = (strings("cell")?, strings("phase")?);
    let (repetition, token_index, tokens) =
        (u32s("repetition")?, u32s("token_index")?, u32s("tokens")?);
    let (warmup, cold) = (bools("warmup")?, bools("cold")?);
    let (start_ns, ns) = (u64s("start_ns")?, u64s("ns")?);
    for (name, array) in [
        ("cell", cell as &dyn Array),
        ("phase", phase),
        ("repetition", repetition),
        ("tokens", tokens),
        ("warmup", warmup),
        ("cold", cold),
        ("start_ns", start_ns),
        ("ns", ns),
    ] {
        if array.null_count() > 0 {
            return Err(format!("events column {name} has nulls"));
        }
    }
    let mut rows = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        rows.push(EventRow {
            cell: cell.value(i).to_string(),
            repetition: repetition.value(i),
            warmup: warmup.value(i),
            cold: cold.value(i),
            phase: phase.value(i).to_string(),
            token_index: token_index.is_valid(i).then(|| token_index.value(i)),
            tokens: tokens.value(i),
            start_ns: start_ns.value(i),
            ns: ns.value(i),
        });
    }
    Ok(rows)
}

/// Read a measure node's events, naming the input on failure.
pub fn read_events(
    ctx: &crate::StageContext<'_>,
    input: &Input,
) -> Result<Vec<EventRow>, StageError> {
    let bytes = ctx.read(input)?;
    events_from_parquet(&bytes).map_err(|e| StageError::bad_input(input, e))
}

/// The phase of an event as a one-byte code: the hot loops of validate and
/// summarise compare codes, never strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Phase {
    Load = 0,
    Prefill = 1,
    Ttft = 2,
    Decode = 3,
    E2e = 4,
    /// A name no stage knows: counted where every event counts, else
    /// ignored, as an unknown string was before.
    Other = 5,
}

impl Phase {
    /// The known phases, in report order (`Phase as usize` indexes it).
    pub const KNOWN: [Phase; 5] = [
        Phase::Load,
        Phase::Prefill,
        Phase::Ttft,
        Phase::Decode,
        Phase::E2e,
    ];

    pub fn from_name(name: &str) -> Phase {
        match name {
            "load" => Phase::Load,
            "prefill" => Phase::Prefill,
            "ttft" => Phase::Ttft,
            "decode" => Phase::Decode,
            "e2e" => Phase::E2e,
            _ => Phase::Other,
        }
    }

    /// The stored name; `other` stands for any unknown one.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Load => "load",
            Phase::Prefill => "prefill",
            Phase::Ttft => "ttft",
            Phase::Decode => "decode",
            Phase::E2e => "e2e",
            Phase::Other => "other",
        }
    }

    fn from_code(code: u8) -> Phase {
        Phase::KNOWN
            .get(usize::from(code))
            .copied()
            .unwrap_or(Phase::Other)
    }
}

/// The columns of an events table that validate and summarise read, as
/// Arrow buffers; row `i` of each is event `i`, in table order. Event tables
/// are the largest artifacts by far (one row per decode step), and these
/// stages need a handful of numbers per event: reading just those columns
/// and grouping rows by index costs a fraction of materialising an
/// `EventRow` with two heap strings per event (see the `summarise_scale`
/// bench). `start_ns` is not read (only energy gating needs it, and that
/// takes rows).
#[derive(Debug, Clone)]
pub struct EventColumns {
    /// `Phase as u8` per event, decoded once from the phase strings.
    phase: arrow::buffer::ScalarBuffer<u8>,
    pub repetition: arrow::buffer::ScalarBuffer<u32>,
    pub warmup: arrow::buffer::BooleanBuffer,
    pub cold: arrow::buffer::BooleanBuffer,
    /// Null for load, prefill and e2e.
    pub token_index: arrow::array::UInt32Array,
    pub tokens: arrow::buffer::ScalarBuffer<u32>,
    pub ns: arrow::buffer::ScalarBuffer<u64>,
    /// Only when asked for: a measure node's table holds one cell, which its
    /// manifest names, so the stages never read this column.
    pub cell: Option<arrow::array::StringViewArray>,
}

/// The columns [`EventColumns`] reads, in its order; `cell` is last.
const EVENT_COLUMNS: [&str; 8] = [
    "phase",
    "repetition",
    "warmup",
    "cold",
    "token_index",
    "tokens",
    "ns",
    "cell",
];

impl EventColumns {
    pub fn len(&self) -> usize {
        self.ns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ns.is_empty()
    }

    pub fn phase(&self, i: usize) -> Phase {
        Phase::from_code(self.phase[i])
    }

    /// Event `i`'s token index (None for load, prefill and e2e).
    pub fn token_index(&self, i: usize) -> Option<u32> {
        use arrow::array::Array;
        self.token_index
            .is_valid(i)
            .then(|| self.token_index.value(i))
    }

    /// Events `offset..offset + len`, sharing the buffers (no copy).
    pub fn slice(&self, offset: usize, len: usize) -> EventColumns {
        EventColumns {
            phase: self.phase.slice(offset, len),
            repetition: self.repetition.slice(offset, len),
            warmup: self.warmup.slice(offset, len),
            cold: self.cold.slice(offset, len),
            token_index: self.token_index.slice(offset, len),
            tokens: self.tokens.slice(offset, len),
            ns: self.ns.slice(offset, len),
            cell: self.cell.as_ref().map(|c| c.slice(offset, len)),
        }
    }

    /// The columns of rows already in memory (tests, small tables).
    pub fn from_rows(rows: &[EventRow]) -> EventColumns {
        let column = |f: &dyn Fn(&EventRow) -> bool| rows.iter().map(f).collect();
        EventColumns {
            phase: rows
                .iter()
                .map(|e| Phase::from_name(&e.phase) as u8)
                .collect(),
            repetition: rows.iter().map(|e| e.repetition).collect(),
            warmup: column(&|e| e.warmup),
            cold: column(&|e| e.cold),
            token_index: rows.iter().map(|e| e.token_index).collect(),
            tokens: rows.iter().map(|e| e.tokens).collect(),
            ns: rows.iter().map(|e| e.ns).collect(),
            cell: Some(rows.iter().map(|e| Some(e.cell.as_str())).collect()),
        }
    }

    /// Read the columns from an events table's Parquet bytes (taken as
    /// `Bytes`, so a `Vec<u8>` from the store is not copied), `cell` only
    /// when `with_cell`. Strings are read as views: a phase or cell name of
    /// up to 12 bytes is decoded into its 16-byte view without touching
    /// the heap.
    pub fn from_parquet(
        bytes: impl Into<bytes::Bytes>,
        with_cell: bool,
    ) -> Result<EventColumns, String> {
        use arrow::datatypes::{DataType, Schema};
        use parquet::arrow::ProjectionMask;
        use parquet::arrow::arrow_reader::{
            ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
        };
        let bytes: bytes::Bytes = bytes.into();
        let err = |e: parquet::errors::ParquetError| e.to_string();
        let plain = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new()).map_err(err)?;
        let file = plain.schema().clone();
        let wanted = &EVENT_COLUMNS[..EVENT_COLUMNS.len() - usize::from(!with_cell)];
        let roots = wanted
            .iter()
            .map(|name| {
                file.index_of(name)
                    .map_err(|_| format!("events table has no column {name}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let fields: Vec<arrow::datatypes::Field> = file
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
                _ => f.as_ref().clone(),
            })
            .collect();
        let hint = Schema::new_with_metadata(fields, file.metadata().clone());
        let options = ArrowReaderOptions::new().with_schema(std::sync::Arc::new(hint));
        let meta = ArrowReaderMetadata::try_new(plain.metadata().clone(), options).map_err(err)?;
        let mask = ProjectionMask::roots(meta.parquet_schema(), roots);
        // One batch for the whole table: no concatenation afterwards.
        let rows = meta.metadata().file_metadata().num_rows().max(1) as usize;
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, meta)
            .with_projection(mask)
            .with_batch_size(rows)
            .build()
            .map_err(err)?;
        let schema = arrow::array::RecordBatchReader::schema(&reader);
        let mut batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let batch = match batches.pop() {
            Some(batch) if batches.is_empty() => batch,
            last => {
                batches.extend(last);
                arrow::compute::concat_batches(&schema, &batches).map_err(|e| e.to_string())?
            }
        };
        Self::from_batch(&batch, with_cell)
    }

    /// The typed columns of a batch read by [`Self::from_parquet`].
    fn from_batch(
        batch: &arrow::array::RecordBatch,
        with_cell: bool,
    ) -> Result<EventColumns, String> {
        use arrow::array::{Array, AsArray};
        use arrow::datatypes::{UInt32Type, UInt64Type};
        let column = |name: &str| -> Result<&dyn Array, String> {
            let array = batch
                .column_by_name(name)
                .ok_or_else(|| format!("events table has no column {name}"))?;
            if name != "token_index" && array.null_count() > 0 {
                return Err(format!("events column {name} has nulls"));
            }
            Ok(array.as_ref())
        };
        let wrong = |name: &str, what: &str| format!("events column {name} is not a {what} column");
        let u32s = |name: &str| {
            column(name)?
                .as_primitive_opt::<UInt32Type>()
                .cloned()
                .ok_or_else(|| wrong(name, "u32"))
        };
        let bools = |name: &str| {
            column(name)?
                .as_boolean_opt()
                .map(|b| b.values().clone())
                .ok_or_else(|| wrong(name, "boolean"))
        };
        let strings = |name: &str| {
            column(name)?
                .as_string_view_opt()
                .cloned()
                .ok_or_else(|| wrong(name, "string"))
        };
        let ns = column("ns")?
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| wrong("ns", "u64"))?;
        Ok(EventColumns {
            phase: phase_codes(&strings("phase")?).into(),
            repetition: u32s("repetition")?.values().clone(),
            warmup: bools("warmup")?,
            cold: bools("cold")?,
            token_index: u32s("token_index")?,
            tokens: u32s("tokens")?.values().clone(),
            ns: ns.values().clone(),
            cell: if with_cell {
                Some(strings("cell")?)
            } else {
                None
            },
        })
    }
}

/// Phase codes of a phase column. Events of a phase come in runs, and equal
/// views are equal strings, so a name is matched only where the view changes.
fn phase_codes(phase: &arrow::array::StringViewArray) -> Vec<u8> {
    let mut codes = Vec::with_capacity(phase.views().len());
    let mut last: Option<(u128, u8)> = None;
    for (i, view) in phase.views().iter().enumerate() {
        let code = match last {
            Some((v, code)) if v == *view => code,
            _ => {
                let code = Phase::from_name(phase.value(i)) as u8;
                last = Some((*view, code));
                code
            }
        };
        codes.push(code);
    }
    codes
}

/// Read a measure node's event columns (not `cell`), naming the input on
/// failure.
pub fn read_event_columns(
    ctx: &crate::StageContext<'_>,
    input: &Input,
) -> Result<EventColumns, StageError> {
    let bytes = ctx.read(input)?;
    EventColumns::from_parquet(bytes, false).map_err(|e| StageError::bad_input(input, e))
}

/// Read an input artifact as rows of `T`, naming the input on failure.
pub fn read_rows<T: DeserializeOwned>(
    ctx: &crate::StageContext<'_>,
    input: &Input,
) -> Result<Vec<T>, StageError> {
    let bytes = ctx.read(input)?;
    from_parquet(&bytes).map_err(|e| StageError::bad_input(input, e))
}

/// Read a JSON input artifact.
pub fn read_json<T: DeserializeOwned>(
    ctx: &crate::StageContext<'_>,
    input: &Input,
) -> Result<T, StageError> {
    let bytes = ctx.read(input)?;
    serde_json::from_slice(&bytes).map_err(|e| StageError::bad_input(input, e))
}

/// Canonical JSON bytes of an artifact: pretty, sorted keys (BTreeMap and
/// declaration order), trailing newline.
pub fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StageError> {
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|e| StageError::Failed(e.to_string()))?;
    bytes.push(b'\n');
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_parquet() {
        let rows = vec![EventRow {
            cell: "c".into(),
            repetition: 0,
            warmup: true,
            cold: true,
            phase: "decode".into(),
            token_index: Some(3),
            tokens: 1,
            start_ns: 100,
            ns: 12345,
        }];
        let bytes = to_parquet(&rows).unwrap();
        assert_eq!(bytes, to_parquet(&rows).unwrap());
        let back: Vec<EventRow> = from_parquet(&bytes).unwrap();
        assert_eq!(back, rows);
        let empty: Vec<EventRow> = from_parquet(&to_parquet::<EventRow>(&[]).unwrap()).unwrap();
        assert!(empty.is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        /// The columnar event reader and the serde path agree row for row.
        #[test]
        fn columnar_events_match_the_serde_path(
            raw in proptest::collection::vec(
                (0u32..4, proptest::bool::ANY, proptest::bool::ANY, 0usize..5,
                 proptest::option::of(0u32..300), 0u32..5000, proptest::num::u64::ANY, proptest::num::u64::ANY),
                0..200,
            )
        ) {
            let phases = ["load", "prefill", "ttft", "decode", "e2e"];
            let rows: Vec<EventRow> = raw
                .into_iter()
                .map(|(rep, warmup, cold, phase, token_index, tokens, start_ns, ns)| EventRow {
                    cell: format!("b/m/s{}", rep % 2),
                    repetition: rep,
                    warmup,
                    cold,
                    phase: phases[phase].to_string(),
                    token_index,
                    tokens,
                    start_ns,
                    ns,
                })
                .collect();
            let bytes = to_parquet(&rows).unwrap();
            let serde: Vec<EventRow> = from_parquet(&bytes).unwrap();
            proptest::prop_assert_eq!(&events_from_parquet(&bytes).unwrap(), &serde);
            proptest::prop_assert_eq!(&serde, &rows);
            let columns = EventColumns::from_parquet(bytes, true).unwrap();
            proptest::prop_assert_eq!(column_rows(&columns), column_rows(&EventColumns::from_rows(&rows)));
            proptest::prop_assert_eq!(column_rows(&columns), expected_columns(&rows));
            // A slice is the same rows.
            let half = rows.len() / 2;
            proptest::prop_assert_eq!(
                column_rows(&columns.slice(half, rows.len() - half)),
                expected_columns(&rows[half..])
            );
        }
    }

    /// What `EventColumns` holds for each row: everything but `start_ns`,
    /// the phase as a code.
    type ColumnRow = (String, Phase, u32, bool, bool, Option<u32>, u32, u64);

    fn column_rows(c: &EventColumns) -> Vec<ColumnRow> {
        let cell = c.cell.as_ref().unwrap();
        (0..c.len())
            .map(|i| {
                (
                    cell.value(i).to_string(),
                    c.phase(i),
                    c.repetition[i],
                    c.warmup.value(i),
                    c.cold.value(i),
                    c.token_index(i),
                    c.tokens[i],
                    c.ns[i],
                )
            })
            .collect()
    }

    fn expected_columns(rows: &[EventRow]) -> Vec<ColumnRow> {
        rows.iter()
            .map(|e| {
                (
                    e.cell.clone(),
                    Phase::from_name(&e.phase),
                    e.repetition,
                    e.warmup,
                    e.cold,
                    e.token_index,
                    e.tokens,
                    e.ns,
                )
            })
            .collect()
    }

    #[test]
    fn event_columns_know_phases_long_names_and_empty_tables() {
        let row = |cell: &str, phase: &str| EventRow {
            cell: cell.into(),
            phase: phase.into(),
            ..Default::default()
        };
        // Names past 12 bytes live outside the views; unknown phases are
        // `Other`, known ones keep their codes around them.
        let long = "backend-with-a-long-name/model/scenario";
        let rows = vec![
            row(long, "decode"),
            row(long, "a-phase-name-longer-than-twelve"),
            row(long, "decode"),
            row("b/m/s", "e2e"),
            row("b/m/s", "e2e-ish"),
        ];
        let c = EventColumns::from_parquet(to_parquet(&rows).unwrap(), true).unwrap();
        assert_eq!(column_rows(&c), expected_columns(&rows));
        let phases: Vec<Phase> = (0..c.len()).map(|i| c.phase(i)).collect();
        use Phase::*;
        assert_eq!(phases, [Decode, Other, Decode, E2e, Other]);
        assert!(c.cell.is_some());
        assert!(
            EventColumns::from_parquet(to_parquet(&rows).unwrap(), false)
                .unwrap()
                .cell
                .is_none()
        );
        let empty = EventColumns::from_parquet(to_parquet::<EventRow>(&[]).unwrap(), true).unwrap();
        assert!(empty.is_empty());
        assert_eq!(
            Phase::KNOWN.map(|p| Phase::from_name(p.name())),
            Phase::KNOWN
        );
    }

    #[test]
    fn the_columnar_reader_names_what_is_wrong() {
        let bytes = to_parquet(&[RunRow::default()]).unwrap();
        let err = events_from_parquet(&bytes).unwrap_err();
        assert!(err.contains("no column phase"), "{err}");
        let err = EventColumns::from_parquet(bytes, false).unwrap_err();
        assert!(err.contains("no column phase"), "{err}");
        let err = EventColumns::from_parquet(b"not parquet".to_vec(), false).unwrap_err();
        assert!(!err.is_empty());
    }
}
