//! One class's decision: its scenarios and their AL.1 types, the AN.1
//! branch, per model configuration the backend candidates with their metric
//! per scenario and the AN.3 cold-start advice, and the models side by side.

use std::collections::{BTreeMap, BTreeSet};

use assay_core::config::Scenario;
use assay_core::stats::{self, geomean};
use assay_core::tables::{CostRow, Phase, SummaryRow};

use super::class::ScenarioKind;
use super::class::{WorkloadClass, default_scenarios};
use super::metric::Metric;
use super::types::{
    BackendDecision, CandidateScore, Decision, Inputs, ModelChoice, ModelComparison, ModelCost,
    ModelEntry, Outcome, ScenarioType, ScenarioValue, SloLimits, TierChoice,
};
use super::verdict;
use super::{DECODE_HEAVY_FRACTION, DECODE_HEAVY_GEN, MIN_N, WARMUP_RATIO_LIMIT, num};

/// (backend, model, dtype, scenario, phase).
type RowKey<'a> = (&'a str, &'a str, &'a str, &'a str, Phase);
/// (backend, model, scenario, phase, tier).
type CostKey<'a> = (&'a str, &'a str, &'a str, Phase, &'a str);

pub(super) struct Ctx<'a> {
    summary: &'a [SummaryRow],
    cost: &'a [CostRow],
    scenarios: &'a [Scenario],
    slo: &'a BTreeMap<String, SloLimits>,
    tiers: &'a [crate::quality::TierRow],
    /// (backend, model, dtype, scenario, phase) -> summary row indices.
    rows: BTreeMap<RowKey<'a>, Vec<usize>>,
    /// (backend, model, scenario, phase, tier) -> cost row indices.
    costs: BTreeMap<CostKey<'a>, Vec<usize>>,
}

/// One candidate's evaluation in one scenario.
struct Cell {
    value: ScenarioValue,
    /// (value, low, high) when usable as evidence.
    usable: Option<(f64, f64, f64)>,
}

/// How a cold-start delta compares with a scenario's SLO (AN.3, T.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SloCheck {
    /// The steady state meets the limit and the cold request does not: the
    /// delta (cold - steady) exceeds the budget (limit - steady).
    Breaks,
    /// The cold request meets the limit too.
    Within,
    /// The steady state already misses the limit: not a cold-start effect.
    SteadyOver,
}

/// AN.3's "warmup deltas > SLO budget": `cold` and `steady` medians
/// against `limit`, all ms.
pub(super) fn slo_check(cold: f64, steady: f64, limit: f64) -> SloCheck {
    if steady > limit {
        SloCheck::SteadyOver
    } else if cold > limit {
        SloCheck::Breaks
    } else {
        SloCheck::Within
    }
}

impl<'a> Ctx<'a> {
    pub(super) fn new(inputs: &Inputs<'a>) -> Self {
        let mut rows: BTreeMap<RowKey<'a>, Vec<usize>> = BTreeMap::new();
        for (i, r) in inputs.summary.iter().enumerate() {
            let key = (
                r.backend.as_str(),
                r.model.as_str(),
                r.dtype.as_str(),
                r.scenario.as_str(),
                r.phase(),
            );
            rows.entry(key).or_default().push(i);
        }
        let mut costs: BTreeMap<CostKey<'a>, Vec<usize>> = BTreeMap::new();
        for (i, c) in inputs.cost.iter().enumerate() {
            let key = (
                c.backend.as_str(),
                c.model.as_str(),
                c.scenario.as_str(),
                c.phase(),
                c.tier.as_str(),
            );
            costs.entry(key).or_default().push(i);
        }
        Ctx {
            summary: inputs.summary,
            cost: inputs.cost,
            scenarios: inputs.scenarios,
            slo: inputs.slo,
            tiers: inputs.tiers,
            rows,
            costs,
        }
    }

    fn rows_of<'k>(&'k self, key: RowKey<'k>) -> &'k [usize] {
        self.rows.get(&key).map(Vec::as_slice).unwrap_or(&[])
    }

    pub(super) fn decide_class(
        &self,
        class: WorkloadClass,
        explicit: Option<&Vec<String>>,
    ) -> Decision {
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
        if let Some(reason) = self.unevaluable(class, explicit.is_some(), &names) {
            return not_evaluated(class, names, reason);
        }
        let shapes: Vec<&Scenario> = names
            .iter()
            .filter_map(|n| self.scenarios.iter().find(|s| &s.name == n))
            .collect();
        let scenario_types = shapes
            .iter()
            .map(|s| {
                let kind = ScenarioKind::of(s);
                ScenarioType {
                    scenario: s.name.clone(),
                    kind,
                    primary: kind.primary(s),
                }
            })
            .collect();

        let mut branch_rows: BTreeSet<usize> = BTreeSet::new();
        let (metric, branch) = self.branch(&shapes, &names, &mut branch_rows);
        let branch_simulated = branch_rows.iter().any(|&i| !self.summary[i].is_measured());

        let mut evidence_rows = branch_rows;
        let mut cost_rows: BTreeSet<usize> = BTreeSet::new();
        let mut backends = Vec::new();
        let mut entries = Vec::new();
        for (model, dtype) in self.model_configs(&names) {
            let candidates = self.ranked_candidates(model, dtype, &names, &metric);
            let ranked: Vec<&CandidateScore> =
                candidates.iter().filter(|c| c.excluded.is_none()).collect();
            let mut model_rows: BTreeSet<usize> = BTreeSet::new();
            let mut model_costs: BTreeSet<usize> = BTreeSet::new();
            for c in &ranked {
                for v in &c.per_scenario {
                    model_rows.insert(v.row as usize);
                    model_costs.extend(v.cost_row.map(|i| i as usize));
                }
            }
            let simulated = branch_simulated
                || model_rows.iter().any(|&i| !self.summary[i].is_measured())
                || model_costs.iter().any(|&i| !self.cost[i].is_measured());
            let outcome = verdict::outcome(&ranked, &candidates, &names, &metric, simulated);
            let cold_start = match ranked.first() {
                Some(lead) => self.cold_start(lead, &names, &mut model_rows),
                None => "not assessed: no ranked backend".into(),
            };
            let entry = self.model_entry(model, dtype, &names, &outcome, &ranked, simulated);
            if let Some(c) = &entry.cost {
                model_costs.extend(c.cost_rows.iter().map(|&i| i as usize));
            }
            evidence_rows.extend(model_rows);
            cost_rows.extend(model_costs);
            entries.push(entry);
            backends.push(BackendDecision {
                model: model.into(),
                dtype: dtype.into(),
                outcome,
                cold_start,
                candidates,
            });
        }
        let choice = model_choice(&entries, &names, self.tiers);

        Decision {
            class,
            scenarios: names,
            scenario_types,
            branch,
            unevaluated: None,
            metric: metric.name(),
            unit: metric.unit().into(),
            higher_is_better: metric.higher_is_better(),
            backends,
            models: ModelComparison { entries, choice },
            evidence_rows: evidence_rows.into_iter().map(|i| i as u32).collect(),
            cost_rows: cost_rows.into_iter().map(|i| i as u32).collect(),
        }
    }

    /// Why the class cannot be evaluated: no scenario, or scenarios the
    /// spec does not define; None when it can.
    fn unevaluable(
        &self,
        class: WorkloadClass,
        explicit: bool,
        names: &[String],
    ) -> Option<String> {
        if names.is_empty() {
            return Some(if explicit {
                format!(
                    "the spec's workloads map gives {} no scenario",
                    class.name()
                )
            } else {
                format!(
                    "no scenario in the class: {} needs a scenario with {} (seed {}), \
                     or an explicit workloads entry",
                    class.name(),
                    class.shape(),
                    class.seed_section()
                )
            });
        }
        let unknown: Vec<&str> = names
            .iter()
            .filter(|n| !self.scenarios.iter().any(|s| &s.name == *n))
            .map(String::as_str)
            .collect();
        (!unknown.is_empty()).then(|| {
            format!(
                "the spec's workloads map names unknown scenario(s) for {}: {}",
                class.name(),
                unknown.join(", ")
            )
        })
    }

    /// Every (model, dtype) with a summary row in a class scenario, in
    /// name order.
    fn model_configs(&self, names: &[String]) -> BTreeSet<(&'a str, &'a str)> {
        self.summary
            .iter()
            .filter(|r| names.contains(&r.scenario))
            .map(|r| (r.model.as_str(), r.dtype.as_str()))
            .collect()
    }

    /// Every backend with a row of the model configuration in a class
    /// scenario: ranked ones best first, then excluded ones, ties by name.
    fn ranked_candidates(
        &self,
        model: &str,
        dtype: &str,
        names: &[String],
        metric: &Metric,
    ) -> Vec<CandidateScore> {
        let backends: BTreeSet<&str> = self
            .summary
            .iter()
            .filter(|r| names.contains(&r.scenario) && r.model == model && r.dtype == dtype)
            .map(|r| r.backend.as_str())
            .collect();
        let mut candidates: Vec<CandidateScore> = backends
            .iter()
            .map(|&b| self.candidate(b, model, dtype, names, metric))
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
                .then_with(|| x.backend.cmp(&y.backend))
        });
        candidates
    }

    /// AN.1 with AL.2's metric mapping: decode-heavy, batched prefill, or
    /// single-prompt latency (TTFT where a micro/short scenario makes it
    /// primary, prefill latency otherwise).
    fn branch(
        &self,
        shapes: &[&Scenario],
        names: &[String],
        evidence_rows: &mut BTreeSet<usize>,
    ) -> (Metric, String) {
        // Per scenario: decode-heavy by length; below gen 64, by the median
        // decode fraction of its e2e rows, except that AL.2 makes TTFT
        // primary for micro/short scenarios ("decode dominates cost only if
        // gen length is high"), whatever their decode fraction.
        let mut heavy_by_fraction = Vec::new();
        let mut not_heavy: Option<String> = None;
        let mut ttft_primary: Option<(&Scenario, ScenarioKind)> = None;
        for s in shapes {
            if s.gen_tokens >= DECODE_HEAVY_GEN {
                continue;
            }
            let kind = ScenarioKind::of(s);
            if kind.ttft_primary() {
                ttft_primary.get_or_insert((*s, kind));
                not_heavy.get_or_insert_with(|| {
                    format!(
                        "{} is {} (AL.1) with gen_tokens {} < 64, so TTFT is primary (AL.2)",
                        s.name,
                        kind.name(),
                        s.gen_tokens
                    )
                });
                continue;
            }
            let mut fractions = Vec::new();
            for (i, r) in self.summary.iter().enumerate() {
                if r.scenario == s.name && r.phase() == Phase::E2e && r.decode_fraction.is_finite()
                {
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
            return match ttft_primary {
                Some((s, kind)) => (
                    Metric::Ttft,
                    format!(
                        "single-prompt latency as TTFT (AN.1 step 2, no; AL.2: TTFT is primary \
                         for micro/short, and {} is {}): not decode-heavy ({not_heavy}) and not \
                         batched ({} has batch {})",
                        s.name,
                        kind.name(),
                        single.name,
                        single.batch
                    ),
                ),
                None => (
                    Metric::PrefillLatency,
                    format!(
                        "single-prompt prefill latency (AN.1 step 2, no): not decode-heavy \
                         ({not_heavy}) and not batched ({} has batch {})",
                        single.name, single.batch
                    ),
                ),
            };
        }
        let tiers: BTreeSet<&str> = self
            .costs
            .keys()
            .filter(|k| k.3 == Phase::Prefill && names.iter().any(|n| n == k.2))
            .map(|k| k.4)
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

    /// One backend's metric for the model configuration in each scenario,
    /// and whether it is ranked.
    fn candidate(
        &self,
        backend: &str,
        model: &str,
        dtype: &str,
        names: &[String],
        metric: &Metric,
    ) -> CandidateScore {
        let mut per_scenario = Vec::new();
        let mut problems = Vec::new();
        let mut usable = Vec::new();
        for name in names {
            match self.cell((backend, model, dtype, name.as_str()), metric) {
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
            dtype: dtype.into(),
            geomean,
            ci_low,
            ci_high,
            per_scenario,
            excluded,
        }
    }

    /// The single row of (backend, model, dtype, scenario, phase), or why
    /// there is none.
    fn single_row(
        &self,
        (backend, model, dtype, scenario): (&str, &str, &str, &str),
        phase: Phase,
    ) -> Result<usize, String> {
        match self.rows_of((backend, model, dtype, scenario, phase)) {
            [] => Err(format!("no {} row in {scenario}", phase.name())),
            [i] => Ok(*i),
            many => Err(format!(
                "{} {} rows in {scenario}",
                many.len(),
                phase.name()
            )),
        }
    }

    /// The single cost row of (backend, model, scenario, phase, tier), or
    /// why there is none.
    fn single_cost(
        &self,
        (backend, model, scenario): (&str, &str, &str),
        phase: Phase,
        tier: &str,
    ) -> Result<usize, String> {
        match self
            .costs
            .get(&(backend, model, scenario, phase, tier))
            .map(Vec::as_slice)
        {
            None | Some([]) => Err(format!(
                "no {} cost row of tier {tier} in {scenario}",
                phase.name()
            )),
            Some([i]) => Ok(*i),
            Some(many) => Err(format!(
                "{} {} cost rows of tier {tier} in {scenario}",
                many.len(),
                phase.name()
            )),
        }
    }

    fn cell(
        &self,
        (backend, model, dtype, scenario): (&str, &str, &str, &str),
        metric: &Metric,
    ) -> Result<Cell, String> {
        let idx = self.single_row((backend, model, dtype, scenario), metric.phase())?;
        let s = &self.summary[idx];
        let cost_idx = match metric {
            Metric::PrefillCost { tier } => {
                Some(self.single_cost((backend, model, scenario), Phase::Prefill, tier)?)
            }
            _ => None,
        };
        let c = cost_idx.map(|i| &self.cost[i]);
        let (v, lo, hi) = metric.value(s, c);
        let finite = |x: f64| x.is_finite().then_some(x);
        let evidence = match c {
            Some(c) if s.is_measured() => c.evidence.clone(),
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

    /// The model configuration's entry in the side-by-side comparison: the
    /// recommended (else leading) backend's figures and cost.
    fn model_entry(
        &self,
        model: &str,
        dtype: &str,
        names: &[String],
        outcome: &Outcome,
        ranked: &[&CandidateScore],
        simulated: bool,
    ) -> ModelEntry {
        let (lead, decided) = match outcome {
            Outcome::Recommend { backend, .. } => {
                (ranked.iter().find(|c| &c.backend == backend), true)
            }
            Outcome::NoDecision { .. } => (ranked.first(), false),
        };
        let evidence = if simulated { "simulated" } else { "measured" };
        ModelEntry {
            model: model.into(),
            dtype: dtype.into(),
            backend: lead.map(|c| c.backend.clone()),
            backend_decided: decided && lead.is_some(),
            value: lead.and_then(|c| c.geomean),
            ci_low: lead.and_then(|c| c.ci_low),
            ci_high: lead.and_then(|c| c.ci_high),
            evidence: evidence.into(),
            cost: lead.and_then(|c| self.model_cost(&c.backend, model, dtype, names)),
        }
    }

    /// Cost per request of one backend for a model configuration over the
    /// class's scenarios, from the e2e cost rows of the first tier in name
    /// order that prices every scenario; None without one.
    fn model_cost(
        &self,
        backend: &str,
        model: &str,
        dtype: &str,
        names: &[String],
    ) -> Option<ModelCost> {
        let tiers: BTreeSet<&str> = self
            .costs
            .keys()
            .filter(|k| k.0 == backend && k.1 == model && k.3 == Phase::E2e)
            .map(|k| k.4)
            .collect();
        tiers
            .into_iter()
            .find_map(|tier| self.model_cost_in(tier, backend, model, dtype, names))
    }

    fn model_cost_in(
        &self,
        tier: &str,
        backend: &str,
        model: &str,
        dtype: &str,
        names: &[String],
    ) -> Option<ModelCost> {
        let mut per_request = Vec::new();
        let mut per_1m = Vec::new();
        let mut cost_rows = Vec::new();
        let mut measured = true;
        for name in names {
            let shape = self.scenarios.iter().find(|s| &s.name == name)?;
            let ci = self
                .single_cost((backend, model, name.as_str()), Phase::E2e, tier)
                .ok()?;
            let c = &self.cost[ci];
            // The e2e row's interval scales the cost (cost ~ median).
            let si = self
                .single_row((backend, model, dtype, name.as_str()), Phase::E2e)
                .ok()?;
            let s = &self.summary[si];
            let usd = c.usd_per_1m * f64::from(shape.gen_tokens) / 1e6;
            let (lo, hi) = (
                usd * s.median_ci_low_ms / s.median_ms,
                usd * s.median_ci_high_ms / s.median_ms,
            );
            if ![usd, lo, hi, c.usd_per_1m]
                .iter()
                .all(|x| x.is_finite() && *x > 0.0)
            {
                return None;
            }
            measured &= c.is_measured() && s.is_measured();
            per_request.push((usd, lo, hi));
            per_1m.push(c.usd_per_1m);
            cost_rows.push(ci as u32);
        }
        let g = |f: fn(&(f64, f64, f64)) -> f64| {
            geomean(&per_request.iter().map(f).collect::<Vec<_>>())
        };
        Some(ModelCost {
            tier: tier.into(),
            usd_per_request: g(|v| v.0),
            ci_low: g(|v| v.1),
            ci_high: g(|v| v.2),
            usd_per_1m_tokens: geomean(&per_1m),
            evidence: if measured { "measured" } else { "simulated" }.into(),
            cost_rows,
        })
    }

    /// AN.3 for one backend of a model configuration: the largest warmup
    /// ratio of its prefill, ttft and decode rows in the class's scenarios
    /// (above 10x: manage cold start), and, where a scenario states an SLO,
    /// whether the cold-start delta (cold median - steady median) of its
    /// TTFT, decode step (TPOT) or e2e would break it (T.2).
    fn cold_start(
        &self,
        c: &CandidateScore,
        names: &[String],
        evidence_rows: &mut BTreeSet<usize>,
    ) -> String {
        let rows = |name: &str, phase: Phase| -> Vec<usize> {
            self.rows_of((
                c.backend.as_str(),
                c.model.as_str(),
                c.dtype.as_str(),
                name,
                phase,
            ))
            .to_vec()
        };
        let mut worst: Option<(f64, &str, &str)> = None;
        for name in names {
            for phase in [Phase::Prefill, Phase::Ttft, Phase::Decode] {
                for i in rows(name.as_str(), phase) {
                    let ratio = self.summary[i].warmup_ratio;
                    if !ratio.is_finite() {
                        continue;
                    }
                    evidence_rows.insert(i);
                    if worst.is_none_or(|(w, _, _)| ratio.total_cmp(&w).is_gt()) {
                        worst = Some((ratio, phase.name(), name.as_str()));
                    }
                }
            }
        }
        let mut breaks = Vec::new();
        let mut steady_over = Vec::new();
        // (budget left after the delta, text) of the tightest check within.
        let mut tightest: Option<(f64, String)> = None;
        for name in names {
            let Some(limits) = self.slo.get(name) else {
                continue;
            };
            for (phase, limit, label) in [
                (Phase::Ttft, limits.ttft_ms, "TTFT"),
                (Phase::Decode, limits.tpot_ms, "TPOT (decode step)"),
                (Phase::E2e, limits.e2e_ms, "e2e"),
            ] {
                let Some(limit) = limit.filter(|l| l.is_finite()) else {
                    continue;
                };
                for i in rows(name.as_str(), phase) {
                    let r = &self.summary[i];
                    let (cold, steady) = (r.cold_median_ms, r.median_ms);
                    if !cold.is_finite() || !steady.is_finite() {
                        continue;
                    }
                    evidence_rows.insert(i);
                    let (delta, budget) = (cold - steady, limit - steady);
                    match slo_check(cold, steady, limit) {
                        SloCheck::Breaks => breaks.push(format!(
                            "cold-start {label} delta {} ms in {name} > its SLO budget {} ms \
                             (steady median {} ms, SLO {} ms)",
                            num(delta),
                            num(budget),
                            num(steady),
                            num(limit)
                        )),
                        SloCheck::SteadyOver => steady_over.push(format!(
                            "steady-state {label} median {} ms in {name} already above its \
                             {} ms SLO (not a cold-start effect)",
                            num(steady),
                            num(limit)
                        )),
                        SloCheck::Within => {
                            let left = budget - delta;
                            if tightest.as_ref().is_none_or(|(l, _)| left < *l) {
                                tightest = Some((
                                    left,
                                    format!(
                                        "{label} in {name}: delta {} ms of a {} ms budget",
                                        num(delta),
                                        num(budget)
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
        }
        let who = format!("{}/{}", c.backend, c.model);
        let over = if steady_over.is_empty() {
            String::new()
        } else {
            format!("; {}", steady_over.join("; "))
        };
        let mut triggers = Vec::new();
        if let Some((r, phase, scenario)) = worst.filter(|w| w.0 > WARMUP_RATIO_LIMIT) {
            triggers.push(format!(
                "warmup ratio {}x ({phase}, {scenario}) > 10x",
                num(r)
            ));
        }
        triggers.extend(breaks);
        if !triggers.is_empty() {
            return format!(
                "enforce warm pools and pre-routing warmup: {who} has {}{over}",
                triggers.join("; ")
            );
        }
        let within = tightest.map_or_else(String::new, |(_, t)| {
            format!("; every cold-start delta within its SLO budget (tightest: {t})")
        });
        match worst {
            None if within.is_empty() && over.is_empty() => {
                format!("no warmup measured for {who}")
            }
            None => format!("monitor cold-start trends: {who} has no warmup ratio{within}{over}"),
            Some((r, phase, scenario)) => format!(
                "monitor cold-start trends: {who} has max warmup ratio {}x ({phase}, {scenario}) \
                 <= 10x{within}{over}",
                num(r)
            ),
        }
    }
}

/// The choice between the class's model configurations: never on speed.
/// With quality counts, the quality stage's tier rows for the class's
/// scenarios choose (cost per successful outcome, AM rule 8).
fn model_choice(
    entries: &[ModelEntry],
    scenarios: &[String],
    tiers: &[crate::quality::TierRow],
) -> ModelChoice {
    match entries {
        [] => ModelChoice::NoModel,
        [one] => ModelChoice::Single {
            model: one.model.clone(),
            dtype: one.dtype.clone(),
        },
        many => {
            let quoted: Vec<TierChoice> = tiers
                .iter()
                .enumerate()
                .filter(|(_, t)| scenarios.contains(&t.scenario))
                .map(|(i, t)| TierChoice {
                    scenario: t.scenario.clone(),
                    tier: t.tier.clone(),
                    row: i as u32,
                    verdict: t.verdict.clone(),
                    decides: t.decides,
                    model: t.model.clone(),
                    backend: t.backend.clone(),
                    reason: t.reason.clone(),
                })
                .collect();
            if !quoted.is_empty() {
                return ModelChoice::ByCostPerSuccess { tiers: quoted };
            }
            ModelChoice::NeedsQuality {
                reason: format!(
                    "the model configurations ({}) are compared side by side, not chosen between: \
                     a faster model is not a better choice if it succeeds less often. Choosing \
                     one needs each model's success rate on the workload's acceptance criteria, \
                     to compare cost per successful outcome (Appendices Z.2, BE.4; AM rule 8)",
                    many.iter()
                        .map(|e| format!("{} {}", e.model, e.dtype))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    }
}

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
        scenario_types: Vec::new(),
        branch: "not evaluated: no usable scenario".into(),
        unevaluated: Some(reason),
        metric: "none".into(),
        unit: String::new(),
        higher_is_better: false,
        backends: Vec::new(),
        models: ModelComparison {
            entries: Vec::new(),
            choice: ModelChoice::NoModel,
        },
        evidence_rows: Vec::new(),
        cost_rows: Vec::new(),
    }
}
