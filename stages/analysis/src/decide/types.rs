//! The decision records: what a decision says and the evidence behind it,
//! and the plain inputs `decide` reads besides the tables.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use assay_core::config::Scenario;
use assay_core::tables::{CostRow, SummaryRow};

use super::class::{ScenarioKind, WorkloadClass};

/// Everything `decide` reads. A struct rather than positional arguments so
/// that a new input (quality data for the model-tier decision, say) is one
/// more field, not one more parameter at every call.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The summary table (one row per cell and phase).
    pub summary: &'a [SummaryRow],
    /// The cost table; empty without a `cost` section.
    pub cost: &'a [CostRow],
    /// The spec's scenarios (rate sweeps expanded).
    pub scenarios: &'a [Scenario],
    /// The spec's `workloads` map; classes not listed use their default shape.
    pub workloads: &'a BTreeMap<WorkloadClass, Vec<String>>,
    /// Every backend configuration of the summary, by name (AN.2).
    pub backends: &'a BTreeMap<String, BackendTraits>,
    /// Every model configuration, for AN.4.
    pub models: &'a BTreeMap<String, ModelTraits>,
    /// Per-scenario service-level limits, by scenario name (AN.3).
    pub slo: &'a BTreeMap<String, SloLimits>,
    /// The quality stage's model-tier decisions (cost per successful
    /// outcome, AM rule 8); empty without a `quality` section.
    pub tiers: &'a [crate::quality::TierRow],
}

/// What AN.4 needs to know about a model.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub struct ModelTraits {
    /// Architecture family, e.g. `llama`, `gpt2`.
    pub family: String,
    /// Weight dtype or quantisation, e.g. `f32`, `q8_0`.
    pub dtype: String,
}

/// What AN.2 needs to know about one backend configuration, from its
/// manifests: which eager configuration it is compared against, and
/// whether its compiled path demonstrably ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BackendTraits {
    /// The backend kind (`ort`, `tch`, `candle`, ...).
    pub kind: String,
    /// The device that ran (`cpu`, `cuda:0`).
    pub device: String,
    /// Threads that ran.
    pub threads: u32,
    /// The compiled path the spec asked for (`onnxruntime:all`,
    /// `torchscript`); null for an eager configuration.
    pub compiled: Option<String>,
    /// Every measured cell of the backend recorded compiler-real evidence
    /// (the compiler changed the graph that ran); never for simulated data.
    pub compiler_real: bool,
    /// Compile counters the backend reported (`unique_graphs`,
    /// `recompiles`, `recompile_limit`), by name; empty where it reports
    /// none.
    pub counters: BTreeMap<String, String>,
}

/// Service-level limits of one scenario, ms (Appendix Q.1, T.2). The report
/// fills them from the scenario's load profile `slo`, and from the spec's
/// in-process `slo` section once the spec has one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SloLimits {
    /// Time to first token.
    pub ttft_ms: Option<f64>,
    /// Time per output token (compared with the decode step).
    pub tpot_ms: Option<f64>,
    /// End-to-end request latency.
    pub e2e_ms: Option<f64>,
}

/// One scenario of a class with its AL.1 type and AL.2 primary metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioType {
    pub scenario: String,
    pub kind: ScenarioKind,
    /// The AL.2 primary metric of this scenario (`TTFT`, `decode
    /// throughput`, `prefill and decode (phase split)`, `tokens/s and cost
    /// per token`), with the reason.
    pub primary: String,
}

/// One candidate's metric in one scenario of the class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioValue {
    pub scenario: String,
    /// The metric in the decision's unit; null when not finite.
    pub value: Option<f64>,
    /// Lower end of the metric's 95% interval; null when not finite.
    pub ci_low: Option<f64>,
    /// Upper end of the metric's 95% interval; null when not finite.
    pub ci_high: Option<f64>,
    /// Steady-state events behind the median.
    pub n: u32,
    /// `measured` or `simulated` (of the summary row, or of the cost row if
    /// that one is not measured).
    pub evidence: String,
    /// Index of the summary row used, into the summary table.
    pub row: u32,
    /// Index of the cost row used (cost metric only), into the cost table.
    pub cost_row: Option<u32>,
}

/// One backend candidate for one model configuration of a class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CandidateScore {
    pub backend: String,
    pub model: String,
    /// The dtype that ran (from the summary rows).
    pub dtype: String,
    /// Geometric mean of the metric over the class's scenarios; null when
    /// the candidate is excluded.
    pub geomean: Option<f64>,
    /// Geometric mean of the per-scenario lower bounds (it bounds the
    /// geometric mean whenever every per-scenario interval holds its value).
    pub ci_low: Option<f64>,
    /// Geometric mean of the per-scenario upper bounds.
    pub ci_high: Option<f64>,
    /// The metric in each scenario where the candidate has a row.
    pub per_scenario: Vec<ScenarioValue>,
    /// Why the candidate is not ranked; null when it is.
    pub excluded: Option<String>,
}

/// The AN.1 answer for one model configuration: which backend serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Decision-grade: the winner beats the runner-up with disjoint 95%
    /// intervals in every scenario of the class (or is the only candidate).
    Recommend {
        backend: String,
        /// The winner's geometric mean of the metric.
        value: f64,
        ci_low: f64,
        ci_high: f64,
        /// (backend, geometric mean) of the runner-up; null when no other
        /// backend was measured for the model.
        runner_up: Option<(String, f64)>,
        note: String,
    },
    /// Evidence insufficient: the reason, and the backend the numbers lean
    /// to, if any.
    NoDecision {
        reason: String,
        leading: Option<String>,
    },
}

/// AN.1 and AN.3 for one model configuration (model, dtype) of a class:
/// backends compete only for the same model at the same dtype, because
/// models (and quantisations) differ in quality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BackendDecision {
    pub model: String,
    pub dtype: String,
    pub outcome: Outcome,
    /// AN.3 advice for the recommended or leading backend.
    pub cold_start: String,
    /// Every backend measured for the model: ranked ones best first, then
    /// excluded ones by name.
    pub candidates: Vec<CandidateScore>,
}

/// A model configuration's cost where a cost table exists: one request of
/// each of the class's scenarios, end to end, at the first pricing tier in
/// name order (every tier ranks alike).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelCost {
    pub tier: String,
    /// Geometric mean over the class's scenarios of the cost of one request
    /// (one sequence: e2e `usd_per_1m` x gen_tokens / 1e6), USD.
    pub usd_per_request: f64,
    /// Its 95% interval, carried from the e2e medians' intervals.
    pub ci_low: f64,
    pub ci_high: f64,
    /// Geometric mean of the e2e `usd_per_1m` (per 1M generated tokens,
    /// prefill time included).
    pub usd_per_1m_tokens: f64,
    /// `measured` or `simulated` (simulated if any row is).
    pub evidence: String,
    /// Indices into the cost table of the e2e rows used, in class order.
    pub cost_rows: Vec<u32>,
}

/// One model configuration of a class, side by side with the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelEntry {
    pub model: String,
    pub dtype: String,
    /// The backend whose figures these are: the recommended one, else the
    /// one the numbers lean to; null when no backend is ranked.
    pub backend: Option<String>,
    /// The backend is decision-grade (AN.1 recommended it).
    pub backend_decided: bool,
    /// That backend's geometric mean of the class metric and its interval.
    pub value: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    /// `measured` or `simulated` (simulated if any row is).
    pub evidence: String,
    /// Cost per request and per token; null without a cost table (or
    /// without e2e cost rows in every scenario of the class).
    pub cost: Option<ModelCost>,
}

/// The choice between models in a class. Speed never chooses a model: a
/// faster model that fails more often is not cheaper per successful outcome
/// (Appendices Z.2, BE.4, AM rule 8). A quality-aware tier decision (cost
/// per success) is one more variant here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelChoice {
    /// No model configuration was measured in the class.
    NoModel,
    /// One model configuration: nothing to choose between.
    Single { model: String, dtype: String },
    /// Several: speed and cost are shown side by side; choosing needs the
    /// success rate of each (cost per successful outcome).
    NeedsQuality { reason: String },
    /// Several, with quality counts: the quality stage's tier decision per
    /// scenario of the class and pricing tier chooses (or says why not).
    ByCostPerSuccess { tiers: Vec<TierChoice> },
}

/// One row of the quality stage's `tiers` table, as a class's model choice
/// quotes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TierChoice {
    pub scenario: String,
    pub tier: String,
    /// Row index into the `tiers` table.
    pub row: u32,
    /// `choose`, `undecided` or `single_model`.
    pub verdict: String,
    /// False on simulated costs: the rule's result, not a decision.
    pub decides: bool,
    pub model: Option<String>,
    pub backend: Option<String>,
    pub reason: String,
}

impl TierChoice {
    /// Whether this row chooses a model as a decision.
    pub fn chooses(&self) -> bool {
        self.decides && self.verdict == "choose" && self.model.is_some()
    }
}

/// The models of a class side by side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelComparison {
    /// One entry per model configuration, by (model, dtype).
    pub entries: Vec<ModelEntry>,
    pub choice: ModelChoice,
}

/// The AN.1 and AN.3 answers for one workload class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Decision {
    pub class: WorkloadClass,
    /// The class's scenarios (explicit `workloads` entry, or default shape).
    pub scenarios: Vec<String>,
    /// Each scenario's AL.1 type and AL.2 primary metric, in class order.
    pub scenario_types: Vec<ScenarioType>,
    /// Which AN.1 branch was taken, and why.
    pub branch: String,
    /// Why the class was not evaluated (no scenario, or the `workloads`
    /// map's problem); null when it was.
    pub unevaluated: Option<String>,
    /// The ranking metric, e.g. `decode tokens/s`.
    pub metric: String,
    pub unit: String,
    pub higher_is_better: bool,
    /// AN.1 per model configuration, by (model, dtype).
    pub backends: Vec<BackendDecision>,
    /// The model configurations side by side; no choice on speed.
    pub models: ModelComparison,
    /// Indices into the summary table of every row the decision used
    /// (metric rows of ranked candidates, decode-fraction rows of the branch,
    /// warmup rows of the cold-start advice), ascending.
    pub evidence_rows: Vec<u32>,
    /// Indices into the cost table of the rows used, ascending.
    pub cost_rows: Vec<u32>,
}

impl Decision {
    /// Every model configuration of the class has a decision-grade backend
    /// (false for a class with none).
    pub fn fully_decided(&self) -> bool {
        !self.backends.is_empty()
            && self
                .backends
                .iter()
                .all(|b| matches!(b.outcome, Outcome::Recommend { .. }))
    }
}

/// How a compiled configuration did against its eager pair on one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PhaseVerdict {
    /// Faster with disjoint 95% intervals and a p99 no higher than eager's
    /// in every compared scenario.
    Wins,
    /// Faster with disjoint intervals everywhere, but its p99 is above
    /// eager's somewhere: tails not validated.
    TailsNotValidated,
    /// Slower with disjoint intervals in every compared scenario.
    Loses,
    /// Intervals overlap somewhere, or the phases disagree across scenarios.
    Inconclusive,
    /// Some row is simulated: not evidence.
    Simulated,
    /// No scenario where both have a usable row of the phase.
    NoData,
}

impl PhaseVerdict {
    /// The serde spelling (`wins`, `tails_not_validated`, ...).
    pub fn name(self) -> &'static str {
        match self {
            PhaseVerdict::Wins => "wins",
            PhaseVerdict::TailsNotValidated => "tails_not_validated",
            PhaseVerdict::Loses => "loses",
            PhaseVerdict::Inconclusive => "inconclusive",
            PhaseVerdict::Simulated => "simulated",
            PhaseVerdict::NoData => "no_data",
        }
    }
}

/// One scenario of an eager-vs-compiled comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhaseScenario {
    pub scenario: String,
    /// Median, 95% interval and p99 of the compiled configuration, ms.
    pub compiled_ms: f64,
    pub compiled_ci: (f64, f64),
    pub compiled_p99_ms: f64,
    /// The same for the eager configuration.
    pub eager_ms: f64,
    pub eager_ci: (f64, f64),
    pub eager_p99_ms: f64,
    /// Summary rows (compiled, eager).
    pub rows: (u32, u32),
}

/// One phase (prefill or decode) of an eager-vs-compiled comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhaseComparison {
    /// `prefill` or `decode`.
    pub phase: String,
    pub verdict: PhaseVerdict,
    /// Geometric mean over the compared scenarios of eager median /
    /// compiled median (above 1: compiled is faster); null without data.
    pub speedup: Option<f64>,
    /// Why, with the figures of the deciding scenario.
    pub reason: String,
    pub per_scenario: Vec<PhaseScenario>,
}

/// AN.2 for one compiled configuration against one eager configuration of
/// the same kind, device and threads, on one model at one dtype.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CompilePair {
    /// The compiled backend configuration and its compiled path.
    pub compiled: String,
    pub path: String,
    /// Its compiled path demonstrably ran (compiler-real).
    pub compiler_real: bool,
    /// The eager backend configuration it is compared against.
    pub eager: String,
    pub model: String,
    pub dtype: String,
    /// Prefill, then decode.
    pub phases: Vec<PhaseComparison>,
    /// The shape-stability reading: the shapes compared and the recompile
    /// counters, or "not observable".
    pub shapes: String,
    /// The AN.2 advice for this pair (no figures: they are in `phases`).
    pub advice: String,
}

/// AN.2 for one backend configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CompilerAdvice {
    pub backend: String,
    /// The compiled path the spec asked for; null for eager.
    pub compiled: Option<String>,
    pub compiler_real: bool,
    pub advice: String,
}

/// Every decision of a pipeline run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Decisions {
    /// One decision per class, always all five, in `WorkloadClass::ALL` order.
    pub per_class: Vec<Decision>,
    /// AN.2 for every backend in the summary, by name.
    pub compiler: Vec<CompilerAdvice>,
    /// AN.2 eager-vs-compiled comparisons, by (compiled, eager, model,
    /// dtype).
    pub compile_pairs: Vec<CompilePair>,
    /// AN.4 advice on using parameter count as a predictor.
    pub scaling: String,
}
