//! quality: success rates from an external evaluation and the cost per
//! successful outcome (Appendices Z.2, BE.1-BE.4), the model tier decision
//! (AM rule 8, N.4) and the routing recommendation (Z.4, V.5).
//!
//! ```text
//! success rate           p = successes / trials, Wilson 95% interval [p_lo, p_hi]
//! cost per request       c = the cost stage's request-mix price ($/1k requests, V.4),
//!                        [c_lo, c_hi] the same price at the 95% interval bounds of
//!                        the prefill and decode medians
//! cost per success       c / p, interval [c_lo / p_hi, c_hi / p_lo]  (unbounded above when p_lo = 0)
//! ```
//!
//! A model is chosen over the others only where its cost per success
//! interval lies wholly below every other model's (the program's
//! disjoint-interval rule); a tier (default model plus an escalation
//! model) is recommended where a more successful model exists (disjoint
//! Wilson intervals) and the planned volume is large (AM rule 8: more
//! than one worker at burst).
//!
//! A node of its own, over the summary, so that editing the counts file
//! reruns this node and the report only (see docs/design-notes.md).

pub mod counts;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use assay_core::domain::Evidence;
use assay_core::inputs::find_input;
use assay_core::stage::{Input, Outputs, Stage, StageContext, StageError};
use assay_core::tables::{self, Phase, SummaryRow};

use crate::cost::{self, CostParams};
use assay_measure::evaluate::{self, EvaluationCounts};
pub use counts::{CountsError, ModelCounts, parse_counts, parse_counts_lines};

pub const QUALITY_VERSION: u32 = 2;

/// The node id.
pub const NODE: &str = "quality";

/// z of a two-sided 95% normal interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The outputs of quality.
pub mod output {
    /// Per cell and pricing tier: success rate and cost per success
    /// (`QualityRow`).
    pub const QUALITY: &str = "quality";
    /// Per scenario and pricing tier: the model tier decision and the
    /// routing recommendation (`TierRow`).
    pub const TIERS: &str = "tiers";
    /// With the spec's `cost.routing`: the routing policy's success rate
    /// and cost per success per pricing tier (`RoutedRow`, V.5).
    pub const ROUTED: &str = "routed";
}

/// The spec's `quality:` section: success counts from an external
/// evaluation (`file`) or from assay's own (`evaluate`), one of the two.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QualitySpec {
    /// A JSONL file of success counts from an external evaluation, one
    /// `{"model": "...", "successes": N, "trials": M, "evaluator": "...",
    /// "evaluator_version": "..."}` per line (evaluator fields optional),
    /// relative to the spec's folder. Read when the spec is loaded; its
    /// blake3 enters the quality node's key and the report's claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The built-in evaluation: an acceptance set run through backends of
    /// this spec, its successes counted per model (and per backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluate: Option<EvaluateSpec>,
    /// blake3 of the counts file's or the acceptance set's bytes, filled
    /// in when the spec is loaded (never written by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub file_blake3: Option<String>,
    /// The counts file's counts, read when the spec is loaded.
    #[serde(skip)]
    #[schemars(skip)]
    pub counts: Vec<ModelCounts>,
}

impl QualitySpec {
    /// The file whose digest the quality rows cite: the counts file, or
    /// the acceptance set.
    pub fn source_file(&self) -> &str {
        match (&self.file, &self.evaluate) {
            (Some(f), _) => f,
            (None, Some(e)) => &e.set,
            (None, None) => "",
        }
    }
}

/// `quality.evaluate`: the built-in evaluation (the `evaluate` nodes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateSpec {
    /// The acceptance set: a JSONL file of prompts with their criteria,
    /// one `{"id": "...", "prompt": "...", "accept": {"exact" | "contains"
    /// | "regex": "..."}, "max_tokens": N, "model": "..."}` per line (`id`,
    /// `max_tokens` and `model` optional), relative to the spec's folder.
    pub set: String,
    /// Backends of this spec (their names) that run the set, each on every
    /// model it has cells of. The first is the reference: a cell whose own
    /// backend is not listed takes the reference's success rate for its
    /// model.
    #[schemars(length(min = 1))]
    pub backends: Vec<String>,
    /// Tokens generated per item without its own `max_tokens`; default 16.
    #[serde(default = "default_max_tokens")]
    #[schemars(range(min = 1, max = 65536))]
    pub max_tokens: u32,
    /// The set's items, read when the spec is loaded.
    #[serde(skip)]
    #[schemars(skip)]
    pub items: Vec<assay_measure::evaluate::AcceptanceItem>,
}

fn default_max_tokens() -> u32 {
    16
}

/// What the quality node computes from: the counts (with the file's name
/// and digest) and the cost parameters that price a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityParams {
    /// The counts file, or the acceptance set of a built-in evaluation.
    pub counts_file: String,
    pub counts_blake3: String,
    /// The counts file's counts (empty with `evaluated`).
    pub counts: Vec<ModelCounts>,
    /// `usd_per_hour`, `tokens_per_month`, `burst_factor` and
    /// `request_mix` price one request (the spec checks that the mix is
    /// there).
    pub cost: CostParams,
    /// A built-in evaluation's backends, reference first: the counts are
    /// the `counts` inputs of their evaluate nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evaluated: Vec<String>,
}

/// Success counts per model (a counts file) or per (backend, model) (a
/// built-in evaluation), and the rule that picks a cell's.
#[derive(Debug, Clone, Default)]
pub struct CountsTable {
    /// (the backend whose evaluation counted, or none for a counts file
    /// line, which holds for every backend; the counts), in reference order.
    entries: Vec<(Option<String>, ModelCounts)>,
}

impl CountsTable {
    pub fn from_file(counts: &[ModelCounts]) -> Self {
        CountsTable {
            entries: counts.iter().map(|c| (None, c.clone())).collect(),
        }
    }

    /// Add a backend's evaluation of a model; the first backend added for
    /// a model is its reference.
    pub fn push_evaluated(&mut self, backend: &str, counts: ModelCounts) {
        self.entries.push((Some(backend.to_string()), counts));
    }

    /// A cell's counts and the backend whose evaluation counted them: its
    /// own backend's evaluation of the model, else the model's first
    /// (reference) entry.
    pub fn get(&self, backend: &str, model: &str) -> Option<(Option<&str>, &ModelCounts)> {
        let of_model = || self.entries.iter().filter(|(_, c)| c.model == model);
        of_model()
            .find(|(b, _)| b.as_deref() == Some(backend))
            .or_else(|| of_model().next())
            .map(|(b, c)| (b.as_deref(), c))
    }
}

/// Success rate and cost per success of one cell at one pricing tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QualityRow {
    pub cell: String,
    pub backend: String,
    pub model: String,
    pub scenario: String,
    pub evidence: String,
    pub tier: String,
    /// The counts file, as the spec names it, and its blake3.
    pub counts_file: String,
    pub counts_blake3: String,
    /// What counted the successes (empty where the file does not say).
    pub evaluator: String,
    pub evaluator_version: String,
    /// The backend whose built-in evaluation gave these counts (the cell's
    /// own, or the reference); empty for a counts file.
    pub evaluated_by: String,
    pub successes: u64,
    pub trials: u64,
    pub success_rate: f64,
    /// Wilson 95% interval of the success rate.
    pub success_low: f64,
    pub success_high: f64,
    /// The request mix's shadow price (as the cost stage's `mix` row) and
    /// the same price at the bounds of the prefill and decode medians' 95%
    /// intervals (NaN where a median has no interval).
    pub usd_per_1k_requests: f64,
    pub usd_per_1k_requests_low: f64,
    pub usd_per_1k_requests_high: f64,
    /// `usd_per_1k_requests / success_rate`; none with no success.
    pub usd_per_1k_successes: Option<f64>,
    /// `usd_per_1k_requests_low / success_high`.
    pub usd_per_1k_successes_low: f64,
    /// `usd_per_1k_requests_high / success_low`; none (unbounded) where the
    /// Wilson lower bound is 0.
    pub usd_per_1k_successes_high: Option<f64>,
    /// Workers the planned volume needs on this cell at burst, priced on
    /// the mix (tokens per request / seconds per request).
    pub workers_required: u64,
}

/// The model tier decision and the routing recommendation of one scenario
/// at one pricing tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TierRow {
    pub scenario: String,
    pub tier: String,
    /// `measured` only where every compared cell is.
    pub evidence: String,
    /// The models compared, each at its cheapest backend in this scenario,
    /// cheapest per success first: `model@backend`, joined by `, `.
    pub candidates: String,
    /// Row indices into the `quality` table of the candidates, in that
    /// order.
    pub candidate_rows: Vec<u32>,
    /// `choose`: one model's cost per success interval lies wholly below
    /// every other's; `undecided`: the intervals overlap; `single_model`:
    /// only one model has counts.
    pub verdict: String,
    /// False where a compared cell is simulated: the row shows what the
    /// rule gives on those numbers and is not a decision (simulated data
    /// never decides, as in AN.1).
    pub decides: bool,
    /// The chosen model (with `choose`), else none.
    pub model: Option<String>,
    pub backend: Option<String>,
    pub reason: String,
    /// `tier`: keep the default model for most traffic and escalate to a
    /// more successful model (Z.4); `single`: one model serves everything;
    /// `none`: no model could be chosen, so no tier is built on it.
    pub routing: String,
    /// The escalation model of a tier.
    pub escalate_model: Option<String>,
    pub escalate_backend: Option<String>,
    pub routing_reason: String,
    /// Workers the planned volume needs on the default model at burst
    /// (AM rule 8's "large volume" is more than one); 0 without a default.
    pub workers_required: u64,
}

/// Wilson score interval of `successes` out of `trials` at normal quantile
/// `z`, clamped to [0, 1] (exactly 0 below with no success, exactly 1
/// above with no failure).
pub fn wilson(successes: u64, trials: u64, z: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * libm::sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n));
    let low = if successes == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let high = if successes == trials {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    (low, high)
}

/// Cost per success and its interval from a cost per request with its
/// interval and a success rate with its interval: (point, low, high), the
/// point none at rate 0 and the high bound none (unbounded) at a lower
/// rate bound of 0.
pub fn cost_per_success(
    cost: f64,
    cost_low: f64,
    cost_high: f64,
    rate: f64,
    rate_low: f64,
    rate_high: f64,
) -> (Option<f64>, f64, Option<f64>) {
    let point = (rate > 0.0).then(|| cost / rate);
    let low = cost_low / rate_high;
    let high = (rate_low > 0.0).then(|| cost_high / rate_low);
    (point, low, high)
}

/// One candidate of the tier decision: a model at its cheapest backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub model: String,
    pub backend: String,
    pub per_success: Option<f64>,
    pub per_success_low: f64,
    pub per_success_high: Option<f64>,
    pub success_low: f64,
    pub success_high: f64,
    pub workers_required: u64,
}

/// The decision over `candidates` (already sorted cheapest per success
/// first): verdict, chosen index, reason.
pub fn tier_verdict(candidates: &[Candidate]) -> (&'static str, Option<usize>, String) {
    let Some(best) = candidates.first() else {
        return ("undecided", None, "no model has counts".into());
    };
    if candidates.len() == 1 {
        return (
            "single_model",
            Some(0),
            format!(
                "only {} has quality counts: nothing to choose between",
                best.model
            ),
        );
    }
    // The best's interval lies wholly below each other's: its upper bound
    // (unbounded where none) under their lower bounds. NaN bounds (a
    // median without an interval) compare false, so they never decide.
    let overlapping: Vec<&str> = candidates[1..]
        .iter()
        .filter(|o| !best.per_success_high.is_some_and(|h| h < o.per_success_low))
        .map(|o| o.model.as_str())
        .collect();
    if overlapping.is_empty() {
        (
            "choose",
            Some(0),
            format!(
                "{} has the lowest cost per success with a 95% interval disjoint from every other model's (Appendix Z.2)",
                best.model
            ),
        )
    } else {
        (
            "undecided",
            None,
            format!(
                "the cost per success interval of {} overlaps that of {}: no model is cheaper per success with disjoint intervals; more trials or repetitions narrow them",
                best.model,
                overlapping.join(", ")
            ),
        )
    }
}

/// The routing recommendation for a chosen default (Z.4, AM rule 8):
/// (routing, escalation index, reason).
pub fn routing_advice(
    candidates: &[Candidate],
    default: Option<usize>,
) -> (&'static str, Option<usize>, String) {
    let Some(d) = default.and_then(|i| candidates.get(i).map(|c| (i, c))) else {
        return (
            "none",
            None,
            "no model is chosen, so no tier is built on one".into(),
        );
    };
    let (di, default) = d;
    // More successful with disjoint Wilson intervals; of those the one
    // cheapest per success (candidates are in that order).
    let escalate = candidates
        .iter()
        .enumerate()
        .find(|(i, c)| *i != di && c.success_low > default.success_high);
    match escalate {
        None => (
            "single",
            None,
            format!(
                "no model succeeds more often than {} with disjoint Wilson intervals: it serves all traffic",
                default.model
            ),
        ),
        Some((ei, e)) if default.workers_required > 1 => (
            "tier",
            Some(ei),
            format!(
                "the volume is large ({} workers at burst): tier by default (AM rule 8, N.4): {} for most traffic, {} (more successful, disjoint Wilson intervals) reserved for high-value or failed requests (Z.4)",
                default.workers_required, default.model, e.model
            ),
        ),
        Some((ei, e)) => (
            "single",
            Some(ei),
            format!(
                "{} is more successful (disjoint Wilson intervals), but one worker serves the planned volume: tiering is the default only once volume is large (AM rule 8)",
                e.model
            ),
        ),
    }
}

/// The spec's routing policy (`cost.routing`, V.5) priced per success at
/// one pricing tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RoutedRow {
    pub tier: String,
    /// `measured` only where every routed cell is.
    pub evidence: String,
    /// The policy as written, e.g. `0.8 sim/tiny/micro + 0.2 sim/mid/micro`.
    pub policy: String,
    /// Row indices into the `quality` table of the routed cells, in the
    /// policy's order.
    pub route_rows: Vec<u32>,
    /// Share-weighted cost per request (as the cost stage's routing row)
    /// and its bounds.
    pub usd_per_1k_requests: f64,
    pub usd_per_1k_requests_low: f64,
    pub usd_per_1k_requests_high: f64,
    /// Share-weighted success rate (requests routed by share, not by
    /// difficulty) and the share-weighted Wilson bounds.
    pub success_rate: f64,
    pub success_low: f64,
    pub success_high: f64,
    pub usd_per_1k_successes: Option<f64>,
    pub usd_per_1k_successes_low: f64,
    pub usd_per_1k_successes_high: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct QualityStage {
    pub params: QualityParams,
}

impl Stage for QualityStage {
    fn kind(&self) -> &'static str {
        "quality"
    }

    fn version(&self) -> u32 {
        QUALITY_VERSION
    }

    fn outputs(&self) -> Vec<&'static str> {
        let mut names = vec![output::QUALITY, output::TIERS];
        if !self.params.cost.routing.is_empty() {
            names.push(output::ROUTED);
        }
        names
    }

    fn params(&self) -> Result<Value, StageError> {
        serde_json::to_value(&self.params).map_err(|e| StageError::params("quality", e))
    }

    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError> {
        let summary: Vec<SummaryRow> =
            tables::read_rows(ctx, find_input(inputs, crate::summarise::OUTPUT)?)?;
        let counts = self.counts(ctx, inputs)?;
        let rows = quality_rows(&self.params, &counts, &summary);
        let tiers = tier_rows(&rows);
        let mut out = Outputs::new();
        out.insert(output::QUALITY.into(), tables::to_parquet(&rows)?);
        out.insert(output::TIERS.into(), tables::to_parquet(&tiers)?);
        if !self.params.cost.routing.is_empty() {
            let routed = routed_rows(&self.params.cost, &rows);
            out.insert(output::ROUTED.into(), tables::to_parquet(&routed)?);
        }
        Ok(out)
    }
}

impl QualityStage {
    /// The counts file's, or the evaluate nodes' `counts` in the order of
    /// `evaluated` (reference first), then of the node ids.
    fn counts(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<CountsTable, StageError> {
        let mut table = CountsTable::from_file(&self.params.counts);
        let mut evaluated = Vec::new();
        for input in inputs.iter().filter(|i| i.name == evaluate::output::COUNTS) {
            let c: EvaluationCounts = tables::read_json(ctx, input)?;
            let rank = self
                .params
                .evaluated
                .iter()
                .position(|b| *b == c.backend)
                .ok_or_else(|| {
                    StageError::bad_input(input, format!("backend {} was not evaluated", c.backend))
                })?;
            evaluated.push((rank, input.node.clone(), c));
        }
        evaluated.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (_, _, c) in evaluated {
            table.push_evaluated(
                &c.backend,
                ModelCounts {
                    model: c.model,
                    successes: c.successes,
                    trials: c.trials,
                    evaluator: Some(c.evaluator),
                    evaluator_version: Some(c.evaluator_version),
                },
            );
        }
        Ok(table)
    }
}

/// Rate of a phase at a bound of its median's interval: the same tokens
/// per event over the bound's time.
fn rate_at(s: &SummaryRow, bound_ms: f64) -> f64 {
    s.tokens_per_s * s.median_ms / bound_ms
}

/// Seconds one mix request takes at prefill and decode rates `p`, `d`.
fn mix_seconds(params: &CostParams, p: f64, d: f64) -> f64 {
    let parts: Vec<(f64, f64)> = params
        .request_mix
        .iter()
        .map(|c| {
            (
                c.share,
                cost::request_seconds(f64::from(c.prompt_tokens), f64::from(c.gen_tokens), p, d),
            )
        })
        .collect();
    cost::weighted(&parts)
}

/// One row per (cell whose model has counts, pricing tier), in cell then
/// tier order.
pub fn quality_rows(
    p: &QualityParams,
    counts: &CountsTable,
    summary: &[SummaryRow],
) -> Vec<QualityRow> {
    let mut cells: BTreeMap<&str, (Option<&SummaryRow>, Option<&SummaryRow>)> = BTreeMap::new();
    for s in summary {
        let entry = cells.entry(s.cell.as_str()).or_default();
        match s.phase() {
            Phase::Prefill => entry.0 = Some(s),
            Phase::Decode => entry.1 = Some(s),
            _ => {}
        }
    }
    let mix_tokens = cost::weighted(
        &p.cost
            .request_mix
            .iter()
            .map(|c| {
                (
                    c.share,
                    f64::from(c.prompt_tokens) + f64::from(c.gen_tokens),
                )
            })
            .collect::<Vec<_>>(),
    );
    let mut rows = Vec::new();
    for (cell, (prefill, decode)) in cells {
        let (Some(prefill), Some(decode)) = (prefill, decode) else {
            continue;
        };
        if prefill.tokens_per_s <= 0.0 || decode.tokens_per_s <= 0.0 {
            continue;
        }
        let Some((evaluated_by, c)) = counts.get(&decode.backend, &decode.model) else {
            continue;
        };
        let seconds = mix_seconds(&p.cost, prefill.tokens_per_s, decode.tokens_per_s);
        // Slower at the upper bound of each median, faster at the lower.
        let seconds_high = mix_seconds(
            &p.cost,
            rate_at(prefill, prefill.median_ci_high_ms),
            rate_at(decode, decode.median_ci_high_ms),
        );
        let seconds_low = mix_seconds(
            &p.cost,
            rate_at(prefill, prefill.median_ci_low_ms),
            rate_at(decode, decode.median_ci_low_ms),
        );
        let (rate_low, rate_high) = wilson(c.successes, c.trials, Z95);
        let rate = c.successes as f64 / c.trials as f64;
        let (_, workers) = cost::workers(
            p.cost.tokens_per_month,
            mix_tokens / seconds,
            p.cost.burst_factor,
        );
        for (tier, usd_per_hour) in &p.cost.usd_per_hour {
            let usd = cost::usd_per_1k_requests(seconds, *usd_per_hour);
            let usd_low = cost::usd_per_1k_requests(seconds_low, *usd_per_hour);
            let usd_high = cost::usd_per_1k_requests(seconds_high, *usd_per_hour);
            let (per, per_low, per_high) =
                cost_per_success(usd, usd_low, usd_high, rate, rate_low, rate_high);
            rows.push(QualityRow {
                cell: cell.to_string(),
                backend: decode.backend.clone(),
                model: decode.model.clone(),
                scenario: decode.scenario.clone(),
                evidence: decode.evidence.clone(),
                tier: tier.clone(),
                counts_file: p.counts_file.clone(),
                counts_blake3: p.counts_blake3.clone(),
                evaluator: c.evaluator.clone().unwrap_or_default(),
                evaluator_version: c.evaluator_version.clone().unwrap_or_default(),
                evaluated_by: evaluated_by.unwrap_or_default().to_string(),
                successes: c.successes,
                trials: c.trials,
                success_rate: rate,
                success_low: rate_low,
                success_high: rate_high,
                usd_per_1k_requests: usd,
                usd_per_1k_requests_low: usd_low,
                usd_per_1k_requests_high: usd_high,
                usd_per_1k_successes: per,
                usd_per_1k_successes_low: per_low,
                usd_per_1k_successes_high: per_high,
                workers_required: workers,
            });
        }
    }
    rows
}

/// One decision per (scenario, tier) over the models with counts, each at
/// its cheapest backend in that scenario (the backend is chosen per model
/// elsewhere, AN.1; here a model's price is its cheapest measured one).
pub fn tier_rows(rows: &[QualityRow]) -> Vec<TierRow> {
    // (scenario, tier) -> model -> row index of its cheapest cell.
    let mut groups: BTreeMap<(&str, &str), BTreeMap<&str, usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        let models = groups
            .entry((r.scenario.as_str(), r.tier.as_str()))
            .or_default();
        // Cheapest per success (none: no success, dearest), then per
        // request: with one success rate per model the two orders agree;
        // with one per backend (a built-in evaluation) a cheap backend that
        // fails more is not the cheaper one.
        let per_success = |r: &QualityRow| r.usd_per_1k_successes.unwrap_or(f64::INFINITY);
        let cheaper = |j: usize| {
            per_success(r)
                .total_cmp(&per_success(&rows[j]))
                .then_with(|| {
                    r.usd_per_1k_requests
                        .total_cmp(&rows[j].usd_per_1k_requests)
                })
                .then_with(|| r.backend.cmp(&rows[j].backend))
                .is_lt()
        };
        let keep = models.get(r.model.as_str()).is_some_and(|&j| !cheaper(j));
        if !keep {
            models.insert(r.model.as_str(), i);
        }
    }
    let mut out = Vec::new();
    for ((scenario, tier), models) in groups {
        let mut idx: Vec<usize> = models.into_values().collect();
        // Cheapest per success first; no success sorts last; then by name.
        idx.sort_by(|&a, &b| {
            let key = |i: usize| rows[i].usd_per_1k_successes.unwrap_or(f64::INFINITY);
            key(a)
                .total_cmp(&key(b))
                .then_with(|| rows[a].model.cmp(&rows[b].model))
        });
        let candidates: Vec<Candidate> = idx
            .iter()
            .map(|&i| {
                let r = &rows[i];
                Candidate {
                    model: r.model.clone(),
                    backend: r.backend.clone(),
                    per_success: r.usd_per_1k_successes,
                    per_success_low: r.usd_per_1k_successes_low,
                    per_success_high: r.usd_per_1k_successes_high,
                    success_low: r.success_low,
                    success_high: r.success_high,
                    workers_required: r.workers_required,
                }
            })
            .collect();
        let (verdict, chosen, reason) = tier_verdict(&candidates);
        let (routing, escalate, routing_reason) = routing_advice(&candidates, chosen);
        let measured = idx
            .iter()
            .all(|&i| Evidence::is_measured(&rows[i].evidence));
        out.push(TierRow {
            scenario: scenario.to_string(),
            tier: tier.to_string(),
            evidence: if measured {
                Evidence::Measured
            } else {
                Evidence::Simulated
            }
            .as_str()
            .into(),
            candidates: candidates
                .iter()
                .map(|c| format!("{}@{}", c.model, c.backend))
                .collect::<Vec<_>>()
                .join(", "),
            candidate_rows: idx.iter().map(|&i| i as u32).collect(),
            verdict: verdict.into(),
            decides: measured,
            model: chosen.map(|i| candidates[i].model.clone()),
            backend: chosen.map(|i| candidates[i].backend.clone()),
            reason,
            routing: routing.into(),
            escalate_model: escalate
                .filter(|_| routing == "tier")
                .map(|i| candidates[i].model.clone()),
            escalate_backend: escalate
                .filter(|_| routing == "tier")
                .map(|i| candidates[i].backend.clone()),
            routing_reason,
            workers_required: chosen.map_or(0, |i| candidates[i].workers_required),
        });
    }
    out
}

/// The routing policy per pricing tier, where every routed cell has a
/// quality row at that tier (a routed model without counts leaves the
/// tier out: its success rate is unknown).
pub fn routed_rows(p: &CostParams, rows: &[QualityRow]) -> Vec<RoutedRow> {
    let mut out = Vec::new();
    for tier in p.usd_per_hour.keys() {
        let found: Option<Vec<(f64, usize)>> = p
            .routing
            .iter()
            .map(|route| {
                let cell = format!("{}/{}/{}", route.backend, route.model, route.scenario);
                rows.iter()
                    .position(|r| r.cell == cell && &r.tier == tier)
                    .map(|i| (route.share, i))
            })
            .collect();
        let Some(found) = found else {
            continue;
        };
        let sum = |f: &dyn Fn(&QualityRow) -> f64| -> f64 {
            cost::weighted(
                &found
                    .iter()
                    .map(|&(share, i)| (share, f(&rows[i])))
                    .collect::<Vec<_>>(),
            )
        };
        let usd = sum(&|r| r.usd_per_1k_requests);
        let usd_low = sum(&|r| r.usd_per_1k_requests_low);
        let usd_high = sum(&|r| r.usd_per_1k_requests_high);
        let rate = sum(&|r| r.success_rate);
        let rate_low = sum(&|r| r.success_low);
        let rate_high = sum(&|r| r.success_high);
        let (per, per_low, per_high) =
            cost_per_success(usd, usd_low, usd_high, rate, rate_low, rate_high);
        let measured = found
            .iter()
            .all(|&(_, i)| Evidence::is_measured(&rows[i].evidence));
        out.push(RoutedRow {
            tier: tier.clone(),
            evidence: if measured {
                Evidence::Measured
            } else {
                Evidence::Simulated
            }
            .as_str()
            .into(),
            policy: p
                .routing
                .iter()
                .map(|r| format!("{} {}/{}/{}", r.share, r.backend, r.model, r.scenario))
                .collect::<Vec<_>>()
                .join(" + "),
            route_rows: found.iter().map(|&(_, i)| i as u32).collect(),
            usd_per_1k_requests: usd,
            usd_per_1k_requests_low: usd_low,
            usd_per_1k_requests_high: usd_high,
            success_rate: rate,
            success_low: rate_low,
            success_high: rate_high,
            usd_per_1k_successes: per,
            usd_per_1k_successes_low: per_low,
            usd_per_1k_successes_high: per_high,
        });
    }
    out
}

#[cfg(test)]
mod tests;
