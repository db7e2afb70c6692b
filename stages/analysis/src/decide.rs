//! decide: the seed's Appendix AN policy decision trees applied to the
//! measured summaries, one decision per workload class (Appendix W).
//!
//! For every class the module answers "use backend/model X (evidence,
//! uncertainty)" or "no decision: evidence insufficient (reason)":
//!
//! - AN.1 backend selection, per class, on the class's scenarios:
//!   decode-heavy -> best decode tokens/s; batched prefill -> cheapest
//!   prefill (or best prefill tokens/s without cost rows); otherwise best
//!   single-prompt prefill latency. Decision-grade only with disjoint 95%
//!   intervals against the runner-up in every scenario, and never on
//!   simulated data.
//! - AN.3 cold start, per class, for the recommended (or leading) candidate.
//! - AN.2 compiler enablement, per backend, and AN.4 scaling, once.
//!
//! Pure and deterministic: plain data in, plain data out; ordered
//! collections only; floats ordered with `total_cmp`; ties broken by name;
//! logarithms from `libm`. The rules are documented in `docs/decisions.md`.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use assay_core::config::Scenario;
use assay_core::stats;
use assay_core::tables::{CostRow, SummaryRow};

/// Fewest steady-state events a metric needs to count as evidence.
pub const MIN_N: u32 = 3;
/// AN.1 step 1 and Appendix AM rule 1: decode dominates at this many
/// generated tokens per sequence.
pub const DECODE_HEAVY_GEN: u32 = 64;
/// AN.1 step 1: a median decode fraction (AA.3) above this is decode-heavy.
pub const DECODE_HEAVY_FRACTION: f64 = 0.9;
/// AN.3 and Appendix AM rule 5: a warmup ratio (AA.4) above this means cold
/// start must be managed explicitly.
pub const WARMUP_RATIO_LIMIT: f64 = 10.0;

/// A workload class of the seed's taxonomy (Appendix W, Appendix F.1). Each
/// class gets its own decision; one scenario may belong to several classes.
/// Without an explicit `workloads` entry a class uses every scenario of its
/// default shape.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadClass {
    /// Interactive (consumer) chat, seed W.1: one request at a time, a
    /// moderate prompt and a generation long enough for decode to dominate.
    /// Default scenarios: batch 1, gen_tokens >= 64, prompt_tokens < 1024.
    InteractiveChat,
    /// Tool-augmented agent steps, seed W.2: short prompts and short
    /// generations, where overhead and cold start dominate. Default
    /// scenarios: batch 1, prompt_tokens <= 512, gen_tokens < 64.
    Agents,
    /// Long-context summarisation, seed W.3: large prefill, moderate decode.
    /// Default scenarios: prompt_tokens >= 1024 (any batch and generation).
    LongContextSummarisation,
    /// Batch analytics and prefill pipelines, seed W.4: batched prompts with
    /// minimal decode. Default scenarios: batch > 1, gen_tokens <= 32.
    BatchPrefill,
    /// Retrieval-augmented generation, seed W.5: a large retrieved context
    /// and a moderate generation. Default scenarios: batch 1,
    /// prompt_tokens >= 512, 32 <= gen_tokens <= 512.
    Rag,
}

impl WorkloadClass {
    /// Every class, in the fixed order decisions are reported in.
    pub const ALL: [WorkloadClass; 5] = [
        WorkloadClass::InteractiveChat,
        WorkloadClass::Agents,
        WorkloadClass::LongContextSummarisation,
        WorkloadClass::BatchPrefill,
        WorkloadClass::Rag,
    ];

    /// The spec spelling (`interactive_chat`, ...).
    pub fn name(self) -> &'static str {
        match self {
            WorkloadClass::InteractiveChat => "interactive_chat",
            WorkloadClass::Agents => "agents",
            WorkloadClass::LongContextSummarisation => "long_context_summarisation",
            WorkloadClass::BatchPrefill => "batch_prefill",
            WorkloadClass::Rag => "rag",
        }
    }

    /// A human title for the report.
    pub fn title(self) -> &'static str {
        match self {
            WorkloadClass::InteractiveChat => "Interactive chat",
            WorkloadClass::Agents => "Tool-augmented agents",
            WorkloadClass::LongContextSummarisation => "Long-context summarisation",
            WorkloadClass::BatchPrefill => "Batch prefill",
            WorkloadClass::Rag => "Retrieval-augmented generation (RAG)",
        }
    }

    /// The seed section that describes the class.
    pub fn seed_section(self) -> &'static str {
        match self {
            WorkloadClass::InteractiveChat => "W.1",
            WorkloadClass::Agents => "W.2",
            WorkloadClass::LongContextSummarisation => "W.3",
            WorkloadClass::BatchPrefill => "W.4",
            WorkloadClass::Rag => "W.5",
        }
    }

    /// The default shape rule, in words.
    pub fn shape(self) -> &'static str {
        match self {
            WorkloadClass::InteractiveChat => "batch 1, gen_tokens >= 64, prompt_tokens < 1024",
            WorkloadClass::Agents => "batch 1, prompt_tokens <= 512, gen_tokens < 64",
            WorkloadClass::LongContextSummarisation => "prompt_tokens >= 1024",
            WorkloadClass::BatchPrefill => "batch > 1, gen_tokens <= 32",
            WorkloadClass::Rag => "batch 1, prompt_tokens >= 512, 32 <= gen_tokens <= 512",
        }
    }

    /// Whether a scenario has the class's default shape.
    pub fn matches(self, s: &Scenario) -> bool {
        let (p, b, g) = (s.prompt_tokens, s.batch, s.gen_tokens);
        match self {
            WorkloadClass::InteractiveChat => b == 1 && g >= 64 && p < 1024,
            WorkloadClass::Agents => b == 1 && p <= 512 && g < 64,
            WorkloadClass::LongContextSummarisation => p >= 1024,
            WorkloadClass::BatchPrefill => b > 1 && g <= 32,
            WorkloadClass::Rag => b == 1 && p >= 512 && (32..=512).contains(&g),
        }
    }
}

/// The scenarios (names, in spec order) that have the class's default shape.
pub fn default_scenarios(class: WorkloadClass, scenarios: &[Scenario]) -> Vec<String> {
    scenarios
        .iter()
        .filter(|s| class.matches(s))
        .map(|s| s.name.clone())
        .collect()
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

/// Apply the Appendix AN trees. `workloads` overrides the default scenarios
/// of the classes it lists; `compiler_real` names the backends with
/// compiler-real evidence; `models` describes every model for AN.4.
pub fn decide(
    summary: &[SummaryRow],
    cost: &[CostRow],
    scenarios: &[Scenario],
    workloads: &BTreeMap<WorkloadClass, Vec<String>>,
    compiler_real: &BTreeSet<String>,
    models: &BTreeMap<String, ModelTraits>,
) -> Decisions {
    let ctx = Ctx::new(summary, cost, scenarios);
    let per_class = WorkloadClass::ALL
        .iter()
        .map(|&class| ctx.decide_class(class, workloads.get(&class)))
        .collect();
    Decisions {
        per_class,
        compiler: compiler_advice(summary, compiler_real),
        scaling: scaling_advice(models),
    }
}

/// AN.2 per backend of the summary. assay's scenarios are fixed shapes
/// (fixed prompt, batch and fixed-length decode), so the "shapes stable or
/// bucketed" question is always yes.
pub fn compiler_advice(
    summary: &[SummaryRow],
    compiler_real: &BTreeSet<String>,
) -> Vec<(String, String)> {
    let backends: BTreeSet<&str> = summary.iter().map(|r| r.backend.as_str()).collect();
    backends
        .into_iter()
        .map(|b| {
            let advice = if compiler_real.contains(b) {
                "compile prefill; keep decode eager unless decode wins are demonstrated \
                 (compiler-real evidence, fixed scenario shapes)"
            } else {
                "disable compile: no compiler-real evidence"
            };
            (b.to_string(), advice.to_string())
        })
        .collect()
}

/// AN.4: parameter count is a usable predictor only across homogeneous
/// models (one family, one dtype).
pub fn scaling_advice(models: &BTreeMap<String, ModelTraits>) -> String {
    if models.is_empty() {
        return "no models described: scaling not assessed".into();
    }
    let families: BTreeSet<&str> = models.values().map(|m| m.family.as_str()).collect();
    let dtypes: BTreeSet<&str> = models.values().map(|m| m.dtype.as_str()).collect();
    let list = |s: &BTreeSet<&str>| s.iter().copied().collect::<Vec<_>>().join(", ");
    if families.len() > 1 || dtypes.len() > 1 {
        format!(
            "params are a regime descriptor only: models are heterogeneous (families {}; dtypes {})",
            list(&families),
            list(&dtypes)
        )
    } else {
        format!(
            "params usable as a proxy with fit gating (R^2 and CI checks): {} model(s), all {} {}",
            models.len(),
            list(&families),
            list(&dtypes)
        )
    }
}

/// Which AN.1 branch, with its metric.
#[derive(Debug, Clone, PartialEq)]
enum Metric {
    DecodeRate,
    PrefillCost { tier: String },
    PrefillRate,
    PrefillLatency,
}

impl Metric {
    fn phase(&self) -> &'static str {
        match self {
            Metric::DecodeRate => "decode",
            _ => "prefill",
        }
    }

    fn name(&self) -> String {
        match self {
            Metric::DecodeRate => "decode tokens/s".into(),
            Metric::PrefillCost { tier } => format!("prefill usd_per_1m (tier {tier})"),
            Metric::PrefillRate => "prefill tokens/s".into(),
            Metric::PrefillLatency => "prefill median latency".into(),
        }
    }

    fn unit(&self) -> &'static str {
        match self {
            Metric::DecodeRate | Metric::PrefillRate => "tokens/s",
            Metric::PrefillCost { .. } => "USD per 1M prefill tokens",
            Metric::PrefillLatency => "ms",
        }
    }

    fn higher_is_better(&self) -> bool {
        matches!(self, Metric::DecodeRate | Metric::PrefillRate)
    }

    /// (value, ci_low, ci_high) in the metric's unit. Rates are inverse to
    /// the median latency, so their bounds come from the opposite latency
    /// bounds; costs are proportional to it.
    fn value(&self, s: &SummaryRow, c: Option<&CostRow>) -> (f64, f64, f64) {
        let (m, lo, hi) = (s.median_ms, s.median_ci_low_ms, s.median_ci_high_ms);
        match self {
            Metric::DecodeRate | Metric::PrefillRate => {
                let v = s.tokens_per_s;
                (v, v * m / hi, v * m / lo)
            }
            Metric::PrefillCost { .. } => {
                let v = c.map_or(f64::NAN, |c| c.usd_per_1m);
                (v, v * lo / m, v * hi / m)
            }
            Metric::PrefillLatency => (m, lo, hi),
        }
    }
}

type Key<'a> = (&'a str, &'a str, &'a str, &'a str);

struct Ctx<'a> {
    summary: &'a [SummaryRow],
    cost: &'a [CostRow],
    scenarios: &'a [Scenario],
    /// (backend, model, scenario, phase) -> summary row indices.
    rows: BTreeMap<Key<'a>, Vec<usize>>,
    /// (backend, model, scenario, tier) -> prefill cost row indices.
    prefill_cost: BTreeMap<Key<'a>, Vec<usize>>,
}

/// One candidate's evaluation in one scenario.
struct Cell {
    value: ScenarioValue,
    /// (value, low, high) when usable as evidence.
    usable: Option<(f64, f64, f64)>,
}

impl<'a> Ctx<'a> {
    fn new(summary: &'a [SummaryRow], cost: &'a [CostRow], scenarios: &'a [Scenario]) -> Self {
        let mut rows: BTreeMap<Key<'a>, Vec<usize>> = BTreeMap::new();
        for (i, r) in summary.iter().enumerate() {
            let key = (
                r.backend.as_str(),
                r.model.as_str(),
                r.scenario.as_str(),
                r.phase.as_str(),
            );
            rows.entry(key).or_default().push(i);
        }
        let mut prefill_cost: BTreeMap<Key<'a>, Vec<usize>> = BTreeMap::new();
        for (i, c) in cost
            .iter()
            .enumerate()
            .filter(|(_, c)| c.phase == "prefill")
        {
            let key = (
                c.backend.as_str(),
                c.model.as_str(),
                c.scenario.as_str(),
                c.tier.as_str(),
            );
            prefill_cost.entry(key).or_default().push(i);
        }
        Ctx {
            summary,
            cost,
            scenarios,
            rows,
            prefill_cost,
        }
    }

    fn decide_class(&self, class: WorkloadClass, explicit: Option<&Vec<String>>) -> Decision {
        let names: Vec<String> = match explicit {
            Some(list) => {
                let mut seen = BTreeSet::new();
                list.iter()
                    .filter(|n| seen.insert(n.as_str()))
                    .cloned()
                    .collect()
            }
            None => default_scenarios(class, self.scenarios),
        };
        if names.is_empty() {
            let reason = match explicit {
                Some(_) => format!(
                    "the spec's workloads map gives {} no scenario",
                    class.name()
                ),
                None => format!(
                    "no scenario in the class: {} needs a scenario with {} (seed {}), \
                     or an explicit workloads entry",
                    class.name(),
                    class.shape(),
                    class.seed_section()
                ),
            };
            return not_evaluated(class, names, reason);
        }
        let unknown: Vec<&str> = names
            .iter()
            .filter(|n| !self.scenarios.iter().any(|s| &s.name == *n))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            let reason = format!(
                "the spec's workloads map names unknown scenario(s) for {}: {}",
                class.name(),
                unknown.join(", ")
            );
            return not_evaluated(class, names, reason);
        }
        let shapes: Vec<&Scenario> = names
            .iter()
            .filter_map(|n| self.scenarios.iter().find(|s| &s.name == n))
            .collect();

        let mut evidence_rows: BTreeSet<usize> = BTreeSet::new();
        let (metric, branch) = self.branch(&shapes, &names, &mut evidence_rows);

        // Candidates: every (backend, model) with a row in a class scenario.
        let pairs: BTreeSet<(&str, &str)> = self
            .summary
            .iter()
            .filter(|r| names.contains(&r.scenario))
            .map(|r| (r.backend.as_str(), r.model.as_str()))
            .collect();
        let mut candidates: Vec<CandidateScore> = pairs
            .iter()
            .map(|&(b, m)| self.candidate(b, m, &names, &metric))
            .collect();
        let hib = metric.higher_is_better();
        candidates.sort_by(|x, y| {
            let rank = |c: &CandidateScore| c.excluded.is_some();
            rank(x)
                .cmp(&rank(y))
                .then_with(|| match (x.geomean, y.geomean) {
                    (Some(a), Some(b)) if hib => b.total_cmp(&a),
                    (Some(a), Some(b)) => a.total_cmp(&b),
                    _ => std::cmp::Ordering::Equal,
                })
                .then_with(|| (&x.backend, &x.model).cmp(&(&y.backend, &y.model)))
        });
        let ranked: Vec<&CandidateScore> =
            candidates.iter().filter(|c| c.excluded.is_none()).collect();

        let mut cost_rows: BTreeSet<usize> = BTreeSet::new();
        for c in &ranked {
            for v in &c.per_scenario {
                evidence_rows.insert(v.row as usize);
                cost_rows.extend(v.cost_row.map(|i| i as usize));
            }
        }

        let cold_start = match ranked.first() {
            Some(lead) => self.cold_start(lead, &names, &mut evidence_rows),
            None => "not assessed: no ranked candidate".into(),
        };

        let outcome = self.outcome(
            &ranked,
            &candidates,
            &names,
            &metric,
            &evidence_rows,
            &cost_rows,
        );

        Decision {
            class,
            scenarios: names,
            branch,
            metric: metric.name(),
            unit: metric.unit().into(),
            higher_is_better: hib,
            outcome,
            cold_start,
            evidence_rows: evidence_rows.into_iter().map(|i| i as u32).collect(),
            cost_rows: cost_rows.into_iter().map(|i| i as u32).collect(),
            candidates,
        }
    }

    /// AN.1: decode-heavy, batched prefill or single-prompt prefill latency.
    fn branch(
        &self,
        shapes: &[&Scenario],
        names: &[String],
        evidence_rows: &mut BTreeSet<usize>,
    ) -> (Metric, String) {
        // Per scenario: decode-heavy by length, or by the median decode
        // fraction of its e2e rows (only consulted below gen 64).
        let mut heavy_by_fraction = Vec::new();
        let mut not_heavy: Option<String> = None;
        for s in shapes {
            if s.gen_tokens >= DECODE_HEAVY_GEN {
                continue;
            }
            let mut fractions = Vec::new();
            for (i, r) in self.summary.iter().enumerate() {
                if r.scenario == s.name && r.phase == "e2e" && r.decode_fraction.is_finite() {
                    fractions.push(r.decode_fraction);
                    evidence_rows.insert(i);
                }
            }
            let df = stats::median(&fractions);
            if df > DECODE_HEAVY_FRACTION {
                heavy_by_fraction.push(format!("{}: decode fraction {}", s.name, num(df)));
            } else if not_heavy.is_none() {
                let why = if df.is_finite() {
                    format!("median decode fraction {} <= 0.9", num(df))
                } else {
                    "no decode fraction measured".into()
                };
                not_heavy = Some(format!(
                    "{} has gen_tokens {} < 64 and {why}",
                    s.name, s.gen_tokens
                ));
            }
        }
        let Some(not_heavy) = not_heavy else {
            let branch = if heavy_by_fraction.is_empty() {
                "decode-heavy (AN.1 step 1): gen_tokens >= 64 in every scenario".to_string()
            } else {
                format!(
                    "decode-heavy (AN.1 step 1): every scenario has gen_tokens >= 64 or a \
                     median decode fraction > 0.9 ({})",
                    heavy_by_fraction.join("; ")
                )
            };
            return (Metric::DecodeRate, branch);
        };
        if let Some(single) = shapes.iter().find(|s| s.batch <= 1) {
            return (
                Metric::PrefillLatency,
                format!(
                    "single-prompt prefill latency (AN.1 step 2, no): not decode-heavy \
                     ({not_heavy}) and not batched ({} has batch {})",
                    single.name, single.batch
                ),
            );
        }
        let tiers: BTreeSet<&str> = self
            .prefill_cost
            .keys()
            .filter(|k| names.iter().any(|n| n == k.2))
            .map(|k| k.3)
            .collect();
        match tiers.first() {
            Some(&tier) => (
                Metric::PrefillCost { tier: tier.into() },
                format!(
                    "batched prefill (AN.1 step 2): batch > 1 in every scenario and not \
                     decode-heavy ({not_heavy}); cheapest prefill cost in tier {tier}, the \
                     first in name order of {} (a tier's price is the same for every cell, \
                     so every tier ranks alike)",
                    tiers.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            ),
            None => (
                Metric::PrefillRate,
                format!(
                    "batched prefill (AN.1 step 2): batch > 1 in every scenario and not \
                     decode-heavy ({not_heavy}); no prefill cost rows, so best prefill tokens/s"
                ),
            ),
        }
    }

    /// One candidate's metric in each scenario, and whether it is ranked.
    fn candidate(
        &self,
        backend: &str,
        model: &str,
        names: &[String],
        metric: &Metric,
    ) -> CandidateScore {
        let mut per_scenario = Vec::new();
        let mut problems = Vec::new();
        let mut usable = Vec::new();
        for name in names {
            match self.cell(backend, model, name, metric) {
                Err(problem) => problems.push(problem),
                Ok(cell) => {
                    match cell.usable {
                        Some(v) => usable.push(v),
                        None => problems.push(unusable(&cell.value)),
                    }
                    per_scenario.push(cell.value);
                }
            }
        }
        let (geomean, ci_low, ci_high, excluded) = if problems.is_empty() {
            let g =
                |f: fn(&(f64, f64, f64)) -> f64| geomean(&usable.iter().map(f).collect::<Vec<_>>());
            (Some(g(|v| v.0)), Some(g(|v| v.1)), Some(g(|v| v.2)), None)
        } else {
            (None, None, None, Some(problems.join("; ")))
        };
        CandidateScore {
            backend: backend.into(),
            model: model.into(),
            geomean,
            ci_low,
            ci_high,
            per_scenario,
            excluded,
        }
    }

    fn cell(
        &self,
        backend: &str,
        model: &str,
        scenario: &str,
        metric: &Metric,
    ) -> Result<Cell, String> {
        let phase = metric.phase();
        let idx = match self
            .rows
            .get(&(backend, model, scenario, phase))
            .map(Vec::as_slice)
        {
            None | Some([]) => return Err(format!("no {phase} row in {scenario}")),
            Some([i]) => *i,
            Some(many) => return Err(format!("{} {phase} rows in {scenario}", many.len())),
        };
        let s = &self.summary[idx];
        let cost_idx = match metric {
            Metric::PrefillCost { tier } => {
                match self
                    .prefill_cost
                    .get(&(backend, model, scenario, tier.as_str()))
                    .map(Vec::as_slice)
                {
                    None | Some([]) => {
                        return Err(format!("no prefill cost row of tier {tier} in {scenario}"));
                    }
                    Some([i]) => Some(*i),
                    Some(many) => {
                        return Err(format!(
                            "{} prefill cost rows of tier {tier} in {scenario}",
                            many.len()
                        ));
                    }
                }
            }
            _ => None,
        };
        let c = cost_idx.map(|i| &self.cost[i]);
        let (v, lo, hi) = metric.value(s, c);
        let finite = |x: f64| x.is_finite().then_some(x);
        let evidence = match c {
            Some(c) if s.evidence == "measured" => c.evidence.clone(),
            _ => s.evidence.clone(),
        };
        let ok = s.n >= MIN_N && [v, lo, hi].iter().all(|x| x.is_finite() && *x > 0.0);
        Ok(Cell {
            value: ScenarioValue {
                scenario: scenario.into(),
                value: finite(v),
                ci_low: finite(lo),
                ci_high: finite(hi),
                n: s.n,
                evidence,
                row: idx as u32,
                cost_row: cost_idx.map(|i| i as u32),
            },
            usable: ok.then_some((v, lo, hi)),
        })
    }

    /// AN.3 for one candidate: the largest warmup ratio of its prefill, ttft
    /// and decode rows in the class's scenarios.
    fn cold_start(
        &self,
        c: &CandidateScore,
        names: &[String],
        evidence_rows: &mut BTreeSet<usize>,
    ) -> String {
        let mut worst: Option<(f64, &str, &str)> = None;
        for name in names {
            for phase in ["prefill", "ttft", "decode"] {
                let key = (c.backend.as_str(), c.model.as_str(), name.as_str(), phase);
                for &i in self.rows.get(&key).map(Vec::as_slice).unwrap_or(&[]) {
                    let ratio = self.summary[i].warmup_ratio;
                    if !ratio.is_finite() {
                        continue;
                    }
                    evidence_rows.insert(i);
                    if worst.is_none_or(|(w, _, _)| ratio.total_cmp(&w).is_gt()) {
                        worst = Some((ratio, phase, name.as_str()));
                    }
                }
            }
        }
        let who = format!("{}/{}", c.backend, c.model);
        match worst {
            None => format!("no warmup measured for {who}"),
            Some((r, phase, scenario)) if r > WARMUP_RATIO_LIMIT => format!(
                "enforce warm pools and pre-routing warmup: {who} has warmup ratio {}x \
                 ({phase}, {scenario}) > 10x",
                num(r)
            ),
            Some((r, phase, scenario)) => format!(
                "monitor cold-start trends: {who} has max warmup ratio {}x ({phase}, {scenario}) <= 10x",
                num(r)
            ),
        }
    }

    fn outcome(
        &self,
        ranked: &[&CandidateScore],
        all: &[CandidateScore],
        names: &[String],
        metric: &Metric,
        evidence_rows: &BTreeSet<usize>,
        cost_rows: &BTreeSet<usize>,
    ) -> Outcome {
        let unit = metric.unit();
        let Some(&winner) = ranked.first() else {
            let reason = if all.is_empty() {
                format!(
                    "no measurements in the class's scenarios ({})",
                    names.join(", ")
                )
            } else {
                format!(
                    "no candidate has {} with n >= {MIN_N} and a finite 95% CI in every scenario \
                     ({} excluded: {})",
                    metric.name(),
                    all.len(),
                    all.iter()
                        .map(|c| format!(
                            "{}/{}: {}",
                            c.backend,
                            c.model,
                            c.excluded.as_deref().unwrap_or("")
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            };
            return Outcome::NoDecision {
                reason,
                leading: None,
            };
        };
        let leading = Some((winner.backend.clone(), winner.model.clone()));
        let wname = format!("{}/{}", winner.backend, winner.model);
        let (value, ci_low, ci_high) = (
            winner.geomean.unwrap_or(f64::NAN),
            winner.ci_low.unwrap_or(f64::NAN),
            winner.ci_high.unwrap_or(f64::NAN),
        );
        let simulated = evidence_rows
            .iter()
            .any(|&i| self.summary[i].evidence != "measured")
            || cost_rows
                .iter()
                .any(|&i| self.cost[i].evidence != "measured");
        if simulated {
            return Outcome::NoDecision {
                reason: format!(
                    "simulated data is not evidence; the simulated numbers would favour {wname} \
                     ({} {unit})",
                    num(value)
                ),
                leading,
            };
        }
        let excluded: Vec<String> = all
            .iter()
            .filter_map(|c| {
                c.excluded
                    .as_ref()
                    .map(|e| format!("{}/{} ({e})", c.backend, c.model))
            })
            .collect();
        let excluded_note = if excluded.is_empty() {
            String::new()
        } else {
            format!("; excluded: {}", excluded.join(", "))
        };
        let Some(&runner) = ranked.get(1) else {
            return Outcome::Recommend {
                backend: winner.backend.clone(),
                model: winner.model.clone(),
                value,
                ci_low,
                ci_high,
                runner_up: None,
                note: format!("no alternative was measured{excluded_note}"),
            };
        };
        let rname = format!("{}/{}", runner.backend, runner.model);
        let hib = metric.higher_is_better();
        for (w, r) in winner.per_scenario.iter().zip(&runner.per_scenario) {
            // Ranked candidates have finite values in every scenario, in
            // class order.
            let (wv, wl, wh) = (
                w.value.unwrap_or(f64::NAN),
                w.ci_low.unwrap_or(f64::NAN),
                w.ci_high.unwrap_or(f64::NAN),
            );
            let (rv, rl, rh) = (
                r.value.unwrap_or(f64::NAN),
                r.ci_low.unwrap_or(f64::NAN),
                r.ci_high.unwrap_or(f64::NAN),
            );
            let (better, worse) = if hib {
                (wl > rh, rl > wh)
            } else {
                (wh < rl, rh < wl)
            };
            if better {
                continue;
            }
            let detail = format!(
                "{wname} {} [{}, {}], {rname} {} [{}, {}] {unit}",
                num(wv),
                num(wl),
                num(wh),
                num(rv),
                num(rl),
                num(rh)
            );
            let reason = if worse {
                format!(
                    "{wname} leads on the geometric mean but {rname} is better in scenario {} \
                     with disjoint 95% CIs ({detail})",
                    w.scenario
                )
            } else {
                format!(
                    "the 95% CIs of {wname} and {rname} overlap in scenario {} ({detail})",
                    w.scenario
                )
            };
            return Outcome::NoDecision { reason, leading };
        }
        let rvalue = runner.geomean.unwrap_or(f64::NAN);
        Outcome::Recommend {
            backend: winner.backend.clone(),
            model: winner.model.clone(),
            value,
            ci_low,
            ci_high,
            runner_up: Some((runner.backend.clone(), runner.model.clone(), rvalue)),
            note: format!(
                "better than the runner-up {rname} ({} {unit}) with disjoint 95% CIs in every \
                 scenario ({}); {}x its {}{excluded_note}",
                num(rvalue),
                names.len(),
                num(value / rvalue),
                metric.name()
            ),
        }
    }
}

use stats::geomean;

fn unusable(v: &ScenarioValue) -> String {
    if v.n < MIN_N {
        format!("n = {} < {MIN_N} in {}", v.n, v.scenario)
    } else if v.value.is_none_or(|x| x <= 0.0) {
        format!("no positive finite value in {}", v.scenario)
    } else {
        format!("no finite 95% CI in {}", v.scenario)
    }
}

fn not_evaluated(class: WorkloadClass, names: Vec<String>, reason: String) -> Decision {
    Decision {
        class,
        scenarios: names,
        branch: "not evaluated: no usable scenario".into(),
        metric: "none".into(),
        unit: String::new(),
        higher_is_better: false,
        outcome: Outcome::NoDecision {
            reason,
            leading: None,
        },
        cold_start: "not assessed: no scenario".into(),
        evidence_rows: Vec::new(),
        cost_rows: Vec::new(),
        candidates: Vec::new(),
    }
}

/// A number to 4 significant digits (fixed notation), `n/a` if not finite.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = libm::floor(libm::log10(v.abs())) as i32;
    let digits = (3 - magnitude).clamp(0, 12) as usize;
    format!("{v:.digits$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scen(name: &str, prompt: u32, batch: u32, gen_tokens: u32) -> Scenario {
        Scenario {
            name: name.into(),
            prompt_tokens: prompt,
            batch,
            gen_tokens,
            load: None,
        }
    }

    /// A measured summary row with median `median` ms and CI
    /// [median - half, median + half]; tokens_per_s as summarise computes
    /// it (prefill P*B, decode B, e2e G*B tokens per median).
    fn row(
        s: &Scenario,
        backend: &str,
        model: &str,
        phase: &str,
        median: f64,
        half: f64,
        n: u32,
    ) -> SummaryRow {
        let tokens = match phase {
            "prefill" => s.prompt_tokens * s.batch,
            "decode" => s.batch,
            "e2e" => s.gen_tokens * s.batch,
            _ => 0,
        };
        SummaryRow {
            cell: format!("{backend}/{model}/{}", s.name),
            backend: backend.into(),
            model: model.into(),
            scenario: s.name.clone(),
            phase: phase.into(),
            evidence: "measured".into(),
            prompt_tokens: s.prompt_tokens,
            batch: s.batch,
            gen_tokens: s.gen_tokens,
            n,
            median_ms: median,
            median_ci_low_ms: median - half,
            median_ci_high_ms: median + half,
            p95_ms: median + 2.0 * half,
            warmup_ratio: f64::NAN,
            decode_fraction: f64::NAN,
            tokens_per_s: f64::from(tokens) / (median / 1000.0),
            ..Default::default()
        }
    }

    fn e2e(s: &Scenario, backend: &str, model: &str, fraction: f64) -> SummaryRow {
        SummaryRow {
            decode_fraction: fraction,
            ..row(s, backend, model, "e2e", 100.0, 1.0, 5)
        }
    }

    fn run(summary: &[SummaryRow], cost: &[CostRow], scenarios: &[Scenario]) -> Decisions {
        run_with(summary, cost, scenarios, &BTreeMap::new())
    }

    fn run_with(
        summary: &[SummaryRow],
        cost: &[CostRow],
        scenarios: &[Scenario],
        workloads: &BTreeMap<WorkloadClass, Vec<String>>,
    ) -> Decisions {
        decide(
            summary,
            cost,
            scenarios,
            workloads,
            &BTreeSet::new(),
            &BTreeMap::new(),
        )
    }

    fn class(d: &Decisions, c: WorkloadClass) -> &Decision {
        d.per_class.iter().find(|x| x.class == c).unwrap()
    }

    fn recommended(d: &Decision) -> (&str, &str) {
        match &d.outcome {
            Outcome::Recommend { backend, model, .. } => (backend, model),
            o => panic!("expected a recommendation, got {o:?}"),
        }
    }

    fn no_decision(d: &Decision) -> (&str, Option<(String, String)>) {
        match &d.outcome {
            Outcome::NoDecision { reason, leading } => (reason, leading.clone()),
            o => panic!("expected no decision, got {o:?}"),
        }
    }

    fn pair(b: &str, m: &str) -> Option<(String, String)> {
        Some((b.into(), m.into()))
    }

    #[test]
    fn default_shapes_sort_scenarios_into_classes() {
        let sc = [
            scen("chat", 256, 1, 128),
            scen("agent", 128, 1, 16),
            scen("long", 4096, 1, 256),
            scen("batch", 256, 8, 1),
            scen("rag", 768, 1, 64),
            scen("micro", 8, 1, 32),
        ];
        let names = |c| default_scenarios(c, &sc);
        assert_eq!(names(WorkloadClass::InteractiveChat), ["chat", "rag"]);
        assert_eq!(names(WorkloadClass::Agents), ["agent", "micro"]);
        assert_eq!(names(WorkloadClass::LongContextSummarisation), ["long"]);
        assert_eq!(names(WorkloadClass::BatchPrefill), ["batch"]);
        assert_eq!(names(WorkloadClass::Rag), ["long", "rag"]);
        // Boundaries: prompt 1024 leaves chat; gen 64 leaves agents.
        assert!(!WorkloadClass::InteractiveChat.matches(&scen("x", 1024, 1, 64)));
        assert!(!WorkloadClass::Agents.matches(&scen("x", 512, 1, 64)));
        assert!(WorkloadClass::Agents.matches(&scen("x", 512, 1, 63)));
        assert!(!WorkloadClass::BatchPrefill.matches(&scen("x", 64, 2, 33)));
    }

    #[test]
    fn every_class_is_answered_in_fixed_order() {
        let d = run(&[], &[], &[]);
        let order: Vec<_> = d.per_class.iter().map(|x| x.class).collect();
        assert_eq!(order, WorkloadClass::ALL);
        let names: Vec<_> = order.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "interactive_chat",
                "agents",
                "long_context_summarisation",
                "batch_prefill",
                "rag"
            ]
        );
        // The serde spelling is the name.
        for c in WorkloadClass::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.name());
        }
    }

    #[test]
    fn missing_class_is_no_decision_naming_the_shape() {
        let sc = [scen("chat", 128, 1, 128)];
        let rows = [
            row(&sc[0], "a", "m", "decode", 10.0, 0.1, 5),
            row(&sc[0], "b", "m", "decode", 20.0, 0.1, 5),
        ];
        let d = run(&rows, &[], &sc);
        let rag = class(&d, WorkloadClass::Rag);
        let (reason, leading) = no_decision(rag);
        assert!(reason.contains("no scenario in the class"), "{reason}");
        assert!(reason.contains(WorkloadClass::Rag.shape()), "{reason}");
        assert!(reason.contains("W.5"), "{reason}");
        assert_eq!(leading, None);
        assert!(rag.scenarios.is_empty() && rag.candidates.is_empty());
        // The chat class itself is answered.
        assert_eq!(
            recommended(class(&d, WorkloadClass::InteractiveChat)),
            ("a", "m")
        );
    }

    #[test]
    fn decode_heavy_by_gen_ranks_decode_throughput_with_rate_ci() {
        let sc = [scen("chat", 128, 1, 128)];
        // a: 10 ms steps, CI [8, 12.5] -> 100 tokens/s, CI [80, 125].
        let mut a = row(&sc[0], "a", "m", "decode", 10.0, 0.0, 5);
        a.median_ci_low_ms = 8.0;
        a.median_ci_high_ms = 12.5;
        // b: 20 ms -> 50 tokens/s, CI [50*20/21, 50*20/19].
        let b = row(&sc[0], "b", "m", "decode", 20.0, 1.0, 5);
        // b's prefill is far faster: a wrong branch would pick b.
        let rows = [
            a,
            b,
            row(&sc[0], "a", "m", "prefill", 50.0, 1.0, 5),
            row(&sc[0], "b", "m", "prefill", 5.0, 1.0, 5),
        ];
        let d = run(&rows, &[], &sc);
        let chat = class(&d, WorkloadClass::InteractiveChat);
        assert!(
            chat.branch.starts_with("decode-heavy") && chat.branch.contains("gen_tokens >= 64"),
            "{}",
            chat.branch
        );
        assert_eq!(chat.metric, "decode tokens/s");
        assert!(chat.higher_is_better);
        match &chat.outcome {
            Outcome::Recommend {
                backend,
                value,
                ci_low,
                ci_high,
                runner_up,
                ..
            } => {
                assert_eq!(backend, "a");
                assert!((value - 100.0).abs() < 1e-9);
                assert!((ci_low - 80.0).abs() < 1e-9);
                assert!((ci_high - 125.0).abs() < 1e-9);
                let (rb, rm, rv) = runner_up.clone().unwrap();
                assert_eq!((rb.as_str(), rm.as_str()), ("b", "m"));
                assert!((rv - 50.0).abs() < 1e-9);
            }
            o => panic!("{o:?}"),
        }
        let b = &chat.candidates[1];
        let v = &b.per_scenario[0];
        assert!((v.ci_low.unwrap() - 50.0 * 20.0 / 21.0).abs() < 1e-9);
        assert!((v.ci_high.unwrap() - 50.0 * 20.0 / 19.0).abs() < 1e-9);
        // Only the decode rows are evidence (no warmup, gen >= 64).
        assert_eq!(chat.evidence_rows, [0, 1]);
    }

    #[test]
    fn decode_fraction_decides_between_decode_and_prefill_latency() {
        // Short generation: decode-heavy only through the decode fraction.
        let sc = [scen("agent", 64, 1, 32)];
        let base = vec![
            // a decodes faster, b prefills faster.
            row(&sc[0], "a", "m", "decode", 10.0, 0.1, 5),
            row(&sc[0], "b", "m", "decode", 20.0, 0.1, 5),
            row(&sc[0], "a", "m", "prefill", 30.0, 0.1, 5),
            row(&sc[0], "b", "m", "prefill", 10.0, 0.1, 5),
        ];
        let with = |fa: f64, fb: f64| {
            let mut rows = base.clone();
            rows.push(e2e(&sc[0], "a", "m", fa));
            rows.push(e2e(&sc[0], "b", "m", fb));
            run(&rows, &[], &sc)
        };
        let heavy = with(0.95, 0.93);
        let agents = class(&heavy, WorkloadClass::Agents);
        assert!(
            agents.branch.starts_with("decode-heavy"),
            "{}",
            agents.branch
        );
        assert!(
            agents.branch.contains("decode fraction 0.9400"),
            "{}",
            agents.branch
        );
        assert_eq!(recommended(agents), ("a", "m"));
        // The e2e rows that decided the branch are evidence.
        assert!(agents.evidence_rows.contains(&4) && agents.evidence_rows.contains(&5));

        // Median exactly 0.9 is not above it: single-prompt prefill latency.
        let light = with(0.95, 0.85);
        let agents = class(&light, WorkloadClass::Agents);
        assert!(
            agents.branch.starts_with("single-prompt prefill latency"),
            "{}",
            agents.branch
        );
        assert!(agents.branch.contains("0.9000 <= 0.9"), "{}", agents.branch);
        assert_eq!(agents.metric, "prefill median latency");
        assert_eq!(agents.unit, "ms");
        assert!(!agents.higher_is_better);
        assert_eq!(recommended(agents), ("b", "m"));
    }

    fn cost_row(s: &SummaryRow, tier: &str, usd: f64) -> CostRow {
        CostRow {
            cell: s.cell.clone(),
            backend: s.backend.clone(),
            model: s.model.clone(),
            scenario: s.scenario.clone(),
            phase: s.phase.clone(),
            evidence: s.evidence.clone(),
            tier: tier.into(),
            usd_per_1m: usd,
            ..Default::default()
        }
    }

    #[test]
    fn batched_prefill_uses_cost_of_the_first_tier_else_throughput() {
        let sc = [scen("batch", 128, 4, 16)];
        let pa = row(&sc[0], "a", "m", "prefill", 40.0, 1.0, 5);
        let pb = row(&sc[0], "b", "m", "prefill", 20.0, 1.0, 5);
        let rows = vec![
            pa.clone(),
            pb.clone(),
            e2e(&sc[0], "a", "m", 0.5),
            e2e(&sc[0], "b", "m", 0.5),
            // a decodes faster: the decode branch would pick a.
            row(&sc[0], "a", "m", "decode", 5.0, 0.1, 5),
            row(&sc[0], "b", "m", "decode", 50.0, 0.1, 5),
        ];

        // Without cost rows: prefill tokens/s, b (20 ms for 512 tokens).
        let d = run(&rows, &[], &sc);
        let bp = class(&d, WorkloadClass::BatchPrefill);
        assert!(bp.branch.starts_with("batched prefill"), "{}", bp.branch);
        assert_eq!(bp.metric, "prefill tokens/s");
        assert!(bp.higher_is_better);
        assert_eq!(recommended(bp), ("b", "m"));
        assert!(bp.cost_rows.is_empty());

        // With cost rows: cheapest usd_per_1m in tier on_demand (before
        // spot in name order), lower is better, CI scaled by the latency CI.
        let cost = vec![
            cost_row(&pa, "spot", 0.3),
            cost_row(&pb, "spot", 0.9),
            cost_row(&pa, "on_demand", 1.0),
            cost_row(&pb, "on_demand", 3.0),
        ];
        let d = run(&rows, &cost, &sc);
        let bp = class(&d, WorkloadClass::BatchPrefill);
        assert_eq!(bp.metric, "prefill usd_per_1m (tier on_demand)");
        assert!(bp.branch.contains("tier on_demand"), "{}", bp.branch);
        assert!(!bp.higher_is_better);
        assert_eq!(recommended(bp), ("a", "m"));
        assert_eq!(bp.cost_rows, [2, 3]);
        let v = &bp.candidates[0].per_scenario[0];
        assert_eq!(v.cost_row, Some(2));
        assert!((v.ci_low.unwrap() - 39.0 / 40.0).abs() < 1e-12);
        assert!((v.ci_high.unwrap() - 41.0 / 40.0).abs() < 1e-12);
    }

    #[test]
    fn geometric_mean_aggregates_scenarios() {
        let sc = [scen("s1", 128, 1, 128), scen("s2", 256, 1, 128)];
        // Decode step medians: a 10 ms and 2.5 ms (100 and 400 tokens/s),
        // b 4 ms and 5 ms (250 and 200 tokens/s). Geomeans: a 200, b
        // sqrt(50000) = 223.6; an arithmetic mean would rank a first.
        let rows = [
            row(&sc[0], "a", "m", "decode", 10.0, 0.01, 5),
            row(&sc[1], "a", "m", "decode", 2.5, 0.01, 5),
            row(&sc[0], "b", "m", "decode", 4.0, 0.01, 5),
            row(&sc[1], "b", "m", "decode", 5.0, 0.01, 5),
        ];
        let d = run(&rows, &[], &sc);
        let chat = class(&d, WorkloadClass::InteractiveChat);
        assert_eq!(chat.scenarios, ["s1", "s2"]);
        let g: Vec<_> = chat
            .candidates
            .iter()
            .map(|c| (c.backend.as_str(), c.geomean.unwrap()))
            .collect();
        assert_eq!(g[0].0, "b");
        assert!((g[0].1 - 50_000f64.sqrt()).abs() < 1e-9);
        assert_eq!(g[1].0, "a");
        assert!((g[1].1 - 200.0).abs() < 1e-9);
        // b leads on the geomean but a is better in s2: no decision.
        let (reason, leading) = no_decision(chat);
        assert!(
            reason.contains("b/m leads on the geometric mean"),
            "{reason}"
        );
        assert!(reason.contains("a/m is better in scenario s2"), "{reason}");
        assert_eq!(leading, pair("b", "m"));

        // Better in both scenarios: recommended at the geomean.
        let rows = [
            row(&sc[0], "a", "m", "decode", 5.0, 0.01, 5),
            row(&sc[1], "a", "m", "decode", 2.5, 0.01, 5),
            row(&sc[0], "b", "m", "decode", 10.0, 0.01, 5),
            row(&sc[1], "b", "m", "decode", 10.0, 0.01, 5),
        ];
        let d = run(&rows, &[], &sc);
        match &class(&d, WorkloadClass::InteractiveChat).outcome {
            Outcome::Recommend { backend, value, .. } => {
                assert_eq!(backend, "a");
                assert!((value - (200.0f64 * 400.0).sqrt()).abs() < 1e-9);
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn overlapping_cis_give_no_decision_naming_both() {
        let sc = [scen("chat", 128, 1, 128)];
        let rows = [
            row(&sc[0], "fast", "m", "decode", 10.0, 1.0, 5),
            row(&sc[0], "slow", "m", "decode", 10.5, 1.0, 5),
        ];
        let d = run(&rows, &[], &sc);
        let chat = class(&d, WorkloadClass::InteractiveChat);
        let (reason, leading) = no_decision(chat);
        assert!(
            reason.contains("the 95% CIs of fast/m and slow/m overlap in scenario chat"),
            "{reason}"
        );
        assert_eq!(leading, pair("fast", "m"));

        // Disjoint: recommended, with the runner-up.
        let rows = [
            row(&sc[0], "fast", "m", "decode", 10.0, 0.2, 5),
            row(&sc[0], "slow", "m", "decode", 10.5, 0.2, 5),
        ];
        let d = run(&rows, &[], &sc);
        let chat = class(&d, WorkloadClass::InteractiveChat);
        assert_eq!(recommended(chat), ("fast", "m"));
        match &chat.outcome {
            Outcome::Recommend {
                runner_up, note, ..
            } => {
                assert_eq!(runner_up.as_ref().unwrap().0, "slow");
                assert!(note.contains("disjoint 95% CIs"), "{note}");
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn simulated_data_is_no_decision_but_names_the_leader() {
        let sc = [scen("chat", 128, 1, 128)];
        let mut rows = vec![
            row(&sc[0], "a", "m", "decode", 10.0, 0.1, 5),
            row(&sc[0], "b", "m", "decode", 20.0, 0.1, 5),
        ];
        rows[1].evidence = "simulated".into();
        let d = run(&rows, &[], &sc);
        let chat = class(&d, WorkloadClass::InteractiveChat);
        let (reason, leading) = no_decision(chat);
        assert!(
            reason.contains("simulated data is not evidence"),
            "{reason}"
        );
        assert!(reason.contains("would favour a/m"), "{reason}");
        assert_eq!(leading, pair("a", "m"));
        // A single simulated candidate is no decision either.
        let d = run(&rows[1..], &[], &sc);
        let (_, leading) = no_decision(class(&d, WorkloadClass::InteractiveChat));
        assert_eq!(leading, pair("b", "m"));
    }

    #[test]
    fn explicit_workloads_override_the_shape_rules() {
        let sc = [scen("chat", 128, 1, 128), scen("tiny", 8, 1, 8)];
        let rows = [
            row(&sc[0], "a", "m", "decode", 10.0, 0.1, 5),
            row(&sc[0], "b", "m", "decode", 20.0, 0.1, 5),
            row(&sc[1], "a", "m", "decode", 10.0, 0.1, 5),
            row(&sc[1], "b", "m", "decode", 20.0, 0.1, 5),
            row(&sc[1], "a", "m", "prefill", 9.0, 0.1, 5),
            row(&sc[1], "b", "m", "prefill", 3.0, 0.1, 5),
        ];
        // By default tiny is an agents scenario and rag has none.
        let d = run(&rows, &[], &sc);
        assert_eq!(class(&d, WorkloadClass::Agents).scenarios, ["tiny"]);
        assert!(class(&d, WorkloadClass::Rag).scenarios.is_empty());
        let workloads = BTreeMap::from([
            (WorkloadClass::Rag, vec!["chat".to_string()]),
            (WorkloadClass::Agents, vec!["chat".into(), "chat".into()]),
            (WorkloadClass::InteractiveChat, vec!["tiny".into()]),
        ]);
        let d = run_with(&rows, &[], &sc, &workloads);
        let rag = class(&d, WorkloadClass::Rag);
        assert_eq!(rag.scenarios, ["chat"]);
        assert_eq!(recommended(rag), ("a", "m"));
        assert_eq!(class(&d, WorkloadClass::Agents).scenarios, ["chat"]);
        // Chat now means tiny: not decode-heavy, so prefill latency (b).
        let chat = class(&d, WorkloadClass::InteractiveChat);
        assert_eq!(chat.scenarios, ["tiny"]);
        assert_eq!(chat.metric, "prefill median latency");
        assert_eq!(recommended(chat), ("b", "m"));
        // Unknown names and empty lists are reported, not guessed.
        let workloads = BTreeMap::from([
            (WorkloadClass::Rag, vec!["nope".to_string()]),
            (WorkloadClass::Agents, vec![]),
        ]);
        let d = run_with(&rows, &[], &sc, &workloads);
        let (reason, _) = no_decision(class(&d, WorkloadClass::Rag));
        assert!(
            reason.contains("unknown scenario(s) for rag: nope"),
            "{reason}"
        );
        let (reason, _) = no_decision(class(&d, WorkloadClass::Agents));
        assert!(reason.contains("gives agents no scenario"), "{reason}");
    }

    #[test]
    fn candidates_need_three_events_and_a_finite_ci() {
        let sc = [scen("chat", 128, 1, 128)];
        let mut nan_ci = row(&sc[0], "c", "m", "decode", 5.0, 0.1, 5);
        nan_ci.median_ci_low_ms = f64::NAN;
        let rows = [
            row(&sc[0], "a", "m", "decode", 10.0, 0.1, 3),
            // b would win, but has only two events.
            row(&sc[0], "b", "m", "decode", 1.0, 0.1, 2),
            nan_ci,
        ];
        let d = run(&rows, &[], &sc);
        let chat = class(&d, WorkloadClass::InteractiveChat);
        assert_eq!(recommended(chat), ("a", "m"));
        match &chat.outcome {
            Outcome::Recommend {
                runner_up, note, ..
            } => {
                assert_eq!(*runner_up, None);
                assert!(note.starts_with("no alternative was measured"), "{note}");
                assert!(note.contains("b/m (n = 2 < 3 in chat)"), "{note}");
            }
            o => panic!("{o:?}"),
        }
        let b = chat.candidates.iter().find(|c| c.backend == "b").unwrap();
        assert_eq!(b.excluded.as_deref(), Some("n = 2 < 3 in chat"));
        assert_eq!(b.geomean, None);
        let c = chat.candidates.iter().find(|c| c.backend == "c").unwrap();
        assert_eq!(c.excluded.as_deref(), Some("no finite 95% CI in chat"));
        // Ranked first, excluded after; excluded rows are not evidence.
        assert_eq!(chat.candidates[0].backend, "a");
        assert_eq!(chat.evidence_rows, [0]);

        // A candidate missing a scenario is excluded too.
        let sc2 = [scen("chat", 128, 1, 128), scen("chat2", 256, 1, 128)];
        let rows = [
            row(&sc2[0], "a", "m", "decode", 10.0, 0.1, 5),
            row(&sc2[1], "a", "m", "decode", 10.0, 0.1, 5),
            row(&sc2[0], "b", "m", "decode", 1.0, 0.1, 5),
        ];
        let d = run(&rows, &[], &sc2);
        let chat = class(&d, WorkloadClass::InteractiveChat);
        let b = chat.candidates.iter().find(|c| c.backend == "b").unwrap();
        assert_eq!(b.excluded.as_deref(), Some("no decode row in chat2"));
        assert_eq!(recommended(chat), ("a", "m"));

        // Nobody eligible: no decision, no leader.
        let rows = [row(&sc[0], "b", "m", "decode", 1.0, 0.1, 2)];
        let d = run(&rows, &[], &sc);
        let (reason, leading) = no_decision(class(&d, WorkloadClass::InteractiveChat));
        assert!(
            reason.contains("no candidate has decode tokens/s with n >= 3"),
            "{reason}"
        );
        assert_eq!(leading, None);
    }

    #[test]
    fn cold_start_threshold_is_ten_x() {
        let sc = [scen("chat", 128, 1, 128)];
        let advice = |ratio: f64| {
            let mut p = row(&sc[0], "a", "m", "prefill", 10.0, 0.1, 5);
            p.warmup_ratio = ratio;
            let mut dec = row(&sc[0], "a", "m", "decode", 10.0, 0.1, 5);
            dec.warmup_ratio = 2.0f64.min(ratio);
            // Load is not a warmup phase: a huge ratio there is ignored.
            let mut load = row(&sc[0], "a", "m", "load", 10.0, 0.1, 1);
            load.warmup_ratio = 1000.0;
            let d = run(&[p, dec, load], &[], &sc);
            class(&d, WorkloadClass::InteractiveChat).cold_start.clone()
        };
        assert!(
            advice(10.0).starts_with("monitor cold-start trends"),
            "{}",
            advice(10.0)
        );
        let high = advice(10.5);
        assert!(
            high.starts_with("enforce warm pools and pre-routing warmup"),
            "{high}"
        );
        assert!(high.contains("(prefill, chat)"), "{high}");
        let nan = advice(f64::NAN);
        // Decode still has a finite ratio of 2 when prefill has none.
        assert!(nan.starts_with("monitor"), "{nan}");

        let mut dec = row(&sc[0], "a", "m", "decode", 10.0, 0.1, 5);
        dec.warmup_ratio = f64::NAN;
        let d = run(&[dec], &[], &sc);
        let cs = &class(&d, WorkloadClass::InteractiveChat).cold_start;
        assert!(cs.starts_with("no warmup measured"), "{cs}");
    }

    #[test]
    fn scaling_tree_checks_heterogeneity() {
        let m = |f: &str, d: &str| ModelTraits {
            family: f.into(),
            dtype: d.into(),
        };
        let same = BTreeMap::from([
            ("x".to_string(), m("llama", "f32")),
            ("y".to_string(), m("llama", "f32")),
        ]);
        assert!(scaling_advice(&same).starts_with("params usable as a proxy with fit gating"));
        let families = BTreeMap::from([
            ("x".to_string(), m("llama", "f32")),
            ("y".to_string(), m("gpt2", "f32")),
        ]);
        let s = scaling_advice(&families);
        assert!(s.starts_with("params are a regime descriptor only"), "{s}");
        assert!(s.contains("families gpt2, llama"), "{s}");
        let dtypes = BTreeMap::from([
            ("x".to_string(), m("llama", "f32")),
            ("y".to_string(), m("llama", "q8_0")),
        ]);
        assert!(scaling_advice(&dtypes).starts_with("params are a regime descriptor only"));
        let d = decide(&[], &[], &[], &BTreeMap::new(), &BTreeSet::new(), &dtypes);
        assert_eq!(d.scaling, scaling_advice(&dtypes));
    }

    #[test]
    fn compiler_tree_per_backend() {
        let sc = scen("chat", 128, 1, 128);
        let rows = [
            row(&sc, "eager", "m", "decode", 10.0, 0.1, 5),
            row(&sc, "compiled", "m", "decode", 10.0, 0.1, 5),
            row(&sc, "compiled", "m", "prefill", 10.0, 0.1, 5),
        ];
        let real = BTreeSet::from(["compiled".to_string(), "absent".to_string()]);
        let d = decide(&rows, &[], &[sc], &BTreeMap::new(), &real, &BTreeMap::new());
        let backends: Vec<_> = d.compiler.iter().map(|(b, _)| b.as_str()).collect();
        assert_eq!(backends, ["compiled", "eager"]);
        assert!(
            d.compiler[0]
                .1
                .starts_with("compile prefill; keep decode eager")
        );
        assert_eq!(
            d.compiler[1].1,
            "disable compile: no compiler-real evidence"
        );
    }

    fn approx_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value::{Array, Number, Object};
        match (a, b) {
            (Number(x), Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
            }
            (Array(x), Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| approx_eq(x, y))
            }
            (Object(x), Object(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .all(|(k, v)| y.get(k).is_some_and(|w| approx_eq(v, w)))
            }
            _ => a == b,
        }
    }

    #[test]
    fn decisions_round_trip_through_json_and_have_a_schema() {
        let sc = [scen("chat", 128, 1, 128), scen("tiny", 8, 1, 8)];
        let rows = [
            row(&sc[0], "a", "m", "decode", 10.0, 0.1, 5),
            row(&sc[0], "b", "m", "decode", 20.0, 0.1, 5),
            row(&sc[1], "a", "m", "prefill", 10.0, 5.0, 5),
            row(&sc[1], "b", "m", "prefill", 11.0, 5.0, 2),
        ];
        let d = run(&rows, &[], &sc);
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.contains(r#""kind":"recommend""#), "{json}");
        assert!(json.contains(r#""kind":"no_decision""#), "{json}");
        assert!(json.contains(r#""class":"interactive_chat""#), "{json}");
        // serde_json (without float_roundtrip) may parse a float 1 ulp off.
        let back: Decisions = serde_json::from_str(&json).unwrap();
        assert_eq!(back.per_class.len(), 5);
        assert!(approx_eq(
            &serde_json::to_value(&back).unwrap(),
            &serde_json::to_value(&d).unwrap()
        ));
        let schema = serde_json::to_value(schemars::schema_for!(Decisions)).unwrap();
        let text = schema.to_string();
        assert!(text.contains("long_context_summarisation"), "{text}");
        assert!(text.contains("Default scenarios: batch 1, gen_tokens >= 64"));
    }

    /// The decisions with every row index replaced by the row's identity,
    /// so outputs over permuted inputs compare equal.
    fn canonical(d: &Decisions, summary: &[SummaryRow], cost: &[CostRow]) -> String {
        let mut d = d.clone();
        let mut ids = Vec::new();
        for dec in &mut d.per_class {
            let mut rows: Vec<String> = dec
                .evidence_rows
                .iter()
                .map(|&i| format!("{}|{}", summary[i as usize].cell, summary[i as usize].phase))
                .collect();
            rows.sort();
            let mut costs: Vec<String> = dec
                .cost_rows
                .iter()
                .map(|&i| format!("{}|{}", cost[i as usize].cell, cost[i as usize].tier))
                .collect();
            costs.sort();
            ids.push((rows, costs));
            dec.evidence_rows.clear();
            dec.cost_rows.clear();
            for c in &mut dec.candidates {
                for v in &mut c.per_scenario {
                    assert_eq!(summary[v.row as usize].scenario, v.scenario);
                    assert_eq!(summary[v.row as usize].backend, c.backend);
                    v.row = 0;
                    v.cost_row = v.cost_row.map(|_| 0);
                }
            }
        }
        format!("{}\n{ids:?}", serde_json::to_string(&d).unwrap())
    }

    #[test]
    fn shuffled_inputs_give_the_same_decisions() {
        let sc = vec![
            scen("chat", 128, 1, 128),
            scen("agent", 64, 1, 16),
            scen("batch", 128, 4, 8),
            scen("long", 2048, 1, 128),
        ];
        let mut rows = Vec::new();
        for (k, s) in sc.iter().enumerate() {
            for (j, b) in ["x", "y", "z"].iter().enumerate() {
                for m in ["m1", "m2"] {
                    let base = 10.0 + (k * 3 + j) as f64;
                    for phase in ["prefill", "ttft", "decode"] {
                        let mut r = row(s, b, m, phase, base, 0.5, 5);
                        r.warmup_ratio = base / 2.0;
                        rows.push(r);
                    }
                    rows.push(e2e(s, b, m, 0.5 + 0.01 * j as f64));
                }
            }
        }
        // Ties: z/m1 and z/m2 are identical; broken by name.
        let cost: Vec<CostRow> = rows
            .iter()
            .filter(|r| r.phase == "prefill")
            .flat_map(|r| {
                [
                    cost_row(r, "spot", r.median_ms / 100.0),
                    cost_row(r, "base", r.median_ms / 10.0),
                ]
            })
            .collect();
        let models = BTreeMap::from([("m1".to_string(), ModelTraits::default())]);
        let go = |rows: &[SummaryRow], cost: &[CostRow], sc: &[Scenario]| {
            decide(rows, cost, sc, &BTreeMap::new(), &BTreeSet::new(), &models)
        };
        let a = go(&rows, &cost, &sc);
        assert_eq!(a, go(&rows, &cost, &sc));

        let mut rows2 = rows.clone();
        rows2.reverse();
        rows2.rotate_left(7);
        let mut cost2 = cost.clone();
        cost2.rotate_left(5);
        cost2.reverse();
        let b = go(&rows2, &cost2, &sc);
        assert_eq!(canonical(&a, &rows, &cost), canonical(&b, &rows2, &cost2));
        // The fixture exercises ties and several branches.
        let bp = class(&a, WorkloadClass::BatchPrefill);
        assert_eq!(bp.metric, "prefill usd_per_1m (tier base)");
        let chat = class(&a, WorkloadClass::InteractiveChat);
        let first: Vec<_> = chat
            .candidates
            .iter()
            .map(|c| format!("{}/{}", c.backend, c.model))
            .collect();
        assert_eq!(first, ["x/m1", "x/m2", "y/m1", "y/m2", "z/m1", "z/m2"]);
    }
}
