//! One class's decision: its scenarios, the AN.1 branch, the candidates
//! with their metric per scenario, and the AN.3 cold-start advice.

use std::collections::{BTreeMap, BTreeSet};

use assay_core::config::Scenario;
use assay_core::stats::{self, geomean};
use assay_core::tables::{CostRow, Phase, SummaryRow};

use super::class::{WorkloadClass, default_scenarios};
use super::metric::Metric;
use super::types::{CandidateScore, Decision, Outcome, ScenarioValue};
use super::verdict;
use super::{DECODE_HEAVY_FRACTION, DECODE_HEAVY_GEN, MIN_N, WARMUP_RATIO_LIMIT, num};

/// (backend, model, scenario, phase).
type RowKey<'a> = (&'a str, &'a str, &'a str, Phase);
/// (backend, model, scenario, tier).
type CostKey<'a> = (&'a str, &'a str, &'a str, &'a str);

pub(super) struct Ctx<'a> {
    summary: &'a [SummaryRow],
    cost: &'a [CostRow],
    scenarios: &'a [Scenario],
    /// (backend, model, scenario, phase) -> summary row indices.
    rows: BTreeMap<RowKey<'a>, Vec<usize>>,
    /// (backend, model, scenario, tier) -> prefill cost row indices.
    prefill_cost: BTreeMap<CostKey<'a>, Vec<usize>>,
}

/// One candidate's evaluation in one scenario.
struct Cell {
    value: ScenarioValue,
    /// (value, low, high) when usable as evidence.
    usable: Option<(f64, f64, f64)>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(
        summary: &'a [SummaryRow],
        cost: &'a [CostRow],
        scenarios: &'a [Scenario],
    ) -> Self {
        let mut rows: BTreeMap<RowKey<'a>, Vec<usize>> = BTreeMap::new();
        for (i, r) in summary.iter().enumerate() {
            let key = (
                r.backend.as_str(),
                r.model.as_str(),
                r.scenario.as_str(),
                r.phase(),
            );
            rows.entry(key).or_default().push(i);
        }
        let mut prefill_cost: BTreeMap<CostKey<'a>, Vec<usize>> = BTreeMap::new();
        for (i, c) in cost
            .iter()
            .enumerate()
            .filter(|(_, c)| c.phase() == Phase::Prefill)
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

        let mut evidence_rows: BTreeSet<usize> = BTreeSet::new();
        let (metric, branch) = self.branch(&shapes, &names, &mut evidence_rows);

        let candidates = self.ranked_candidates(&names, &metric);
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

        let simulated = evidence_rows
            .iter()
            .any(|&i| !self.summary[i].is_measured())
            || cost_rows.iter().any(|&i| !self.cost[i].is_measured());
        let outcome = verdict::outcome(&ranked, &candidates, &names, &metric, simulated);

        Decision {
            class,
            scenarios: names,
            branch,
            metric: metric.name(),
            unit: metric.unit().into(),
            higher_is_better: metric.higher_is_better(),
            outcome,
            cold_start,
            evidence_rows: evidence_rows.into_iter().map(|i| i as u32).collect(),
            cost_rows: cost_rows.into_iter().map(|i| i as u32).collect(),
            candidates,
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

    /// Every (backend, model) with a row in a class scenario: ranked ones
    /// best first, then excluded ones, ties by name.
    fn ranked_candidates(&self, names: &[String], metric: &Metric) -> Vec<CandidateScore> {
        let pairs: BTreeSet<(&str, &str)> = self
            .summary
            .iter()
            .filter(|r| names.contains(&r.scenario))
            .map(|r| (r.backend.as_str(), r.model.as_str()))
            .collect();
        let mut candidates: Vec<CandidateScore> = pairs
            .iter()
            .map(|&(b, m)| self.candidate(b, m, names, metric))
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
        candidates
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
            None | Some([]) => return Err(format!("no {} row in {scenario}", phase.name())),
            Some([i]) => *i,
            Some(many) => {
                return Err(format!(
                    "{} {} rows in {scenario}",
                    many.len(),
                    phase.name()
                ));
            }
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
            for phase in [Phase::Prefill, Phase::Ttft, Phase::Decode] {
                let key = (c.backend.as_str(), c.model.as_str(), name.as_str(), phase);
                for &i in self.rows.get(&key).map(Vec::as_slice).unwrap_or(&[]) {
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
