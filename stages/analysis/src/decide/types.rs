//! The decision records: what a decision says and the evidence behind it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::class::WorkloadClass;

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

/// One (backend, model) candidate of a class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CandidateScore {
    pub backend: String,
    pub model: String,
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

/// The answer for one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Decision-grade: the winner beats the runner-up with disjoint 95%
    /// intervals in every scenario of the class (or is the only candidate).
    Recommend {
        backend: String,
        model: String,
        /// The winner's geometric mean of the metric.
        value: f64,
        ci_low: f64,
        ci_high: f64,
        /// (backend, model, geometric mean) of the runner-up; null when no
        /// alternative was measured.
        runner_up: Option<(String, String, f64)>,
        note: String,
    },
    /// Evidence insufficient: the reason, and the candidate the numbers
    /// lean to, if any.
    NoDecision {
        reason: String,
        leading: Option<(String, String)>,
    },
}

/// The AN.1 and AN.3 answer for one workload class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Decision {
    pub class: WorkloadClass,
    /// The class's scenarios (explicit `workloads` entry, or default shape).
    pub scenarios: Vec<String>,
    /// Which AN.1 branch was taken, and why.
    pub branch: String,
    /// The ranking metric, e.g. `decode tokens/s`.
    pub metric: String,
    pub unit: String,
    pub higher_is_better: bool,
    pub outcome: Outcome,
    /// AN.3 advice for the recommended or leading candidate.
    pub cold_start: String,
    /// Indices into the summary table of every row the decision used
    /// (metric rows of ranked candidates, decode-fraction rows of the branch,
    /// warmup rows of the cold-start advice), ascending.
    pub evidence_rows: Vec<u32>,
    /// Indices into the cost table of the rows used, ascending.
    pub cost_rows: Vec<u32>,
    /// Every candidate: ranked ones best first, then excluded ones by name.
    pub candidates: Vec<CandidateScore>,
}

/// Every decision of a pipeline run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Decisions {
    /// One decision per class, always all five, in `WorkloadClass::ALL` order.
    pub per_class: Vec<Decision>,
    /// AN.2: (backend, advice) for every backend in the summary, by name.
    pub compiler: Vec<(String, String)>,
    /// AN.4 advice on using parameter count as a predictor.
    pub scaling: String,
}
