//! Service levels of in-process (and one-at-a-time server) runs, seed
//! Appendix Q.1: "TTFT under 500 ms for p95 requests, and end-to-end under
//! 2 seconds for p95 responses". The spec's top-level `slo` sets limits on
//! TTFT, TPOT and end-to-end latency, with per-scenario overrides; every
//! steady ok run of a cell is judged against its scenario's limits, and the
//! cell meets its SLO when the share of runs meeting every limit reaches
//! the required attainment (0.95 by default: Q.1's p95).
//!
//! SLOs judge, they do not measure: they are validate's parameters, never
//! part of a scenario (which is in every measure key), so a limit changed
//! reruns validate and what reads it, never a measurement. A cell that
//! misses its SLO keeps its runs `ok`: the runs are valid measurements of a
//! configuration too slow for the objective. Scenarios with a load profile
//! are judged by their own `load.slo` (goodput), not here.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use assay_core::domain::ValidationCheck;
use assay_core::stats;
use assay_core::tables::{EventColumns, Phase, RunRow, ValidationRow};
use assay_measure::Manifest;

use super::CheckResult;

/// In-process service-level objectives (spec `slo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SloParams {
    /// Time-to-first-token limit, ms (the boundary's `ttft`: tokenisation
    /// included when the boundary includes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// Time per output token after the first, ms: (e2e - ttft) / (generated
    /// tokens - 1) of each run (per sequence: a batch's sequences advance
    /// together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpot_ms: Option<f64>,
    /// End-to-end latency limit, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_ms: Option<f64>,
    /// Share of a cell's steady ok runs that must meet every limit
    /// (Appendix Q.1 states its SLOs at p95: 0.95).
    #[serde(default = "default_attainment")]
    pub attainment: f64,
    /// Per-scenario overrides: each field given replaces the one above for
    /// that scenario (by name, after sweep expansion).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scenarios: BTreeMap<String, SloOverride>,
}

/// The limits of one scenario that differ from the spec-wide ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SloOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpot_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attainment: Option<f64>,
}

/// The limits in force for one scenario.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SloLimits {
    pub ttft_ms: Option<f64>,
    pub tpot_ms: Option<f64>,
    pub e2e_ms: Option<f64>,
    pub attainment: f64,
}

impl SloLimits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.ttft_ms.is_some() || self.tpot_ms.is_some() || self.e2e_ms.is_some()
    }

    /// `ttft <= 500 ms, e2e <= 2000 ms`.
    pub fn describe(&self) -> String {
        [
            ("ttft", self.ttft_ms),
            ("tpot", self.tpot_ms),
            ("e2e", self.e2e_ms),
        ]
        .iter()
        .filter_map(|(n, v)| v.map(|v| format!("{n} <= {v} ms")))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

pub fn default_attainment() -> f64 {
    0.95
}

impl SloParams {
    /// The limits for `scenario`: the spec-wide ones, each replaced by the
    /// scenario's override where it gives one. For decisions that compare
    /// with an SLO budget (AN.3's warmup delta), this is the budget.
    pub fn limits_for(&self, scenario: &str) -> SloLimits {
        let o = self.scenarios.get(scenario).cloned().unwrap_or_default();
        SloLimits {
            ttft_ms: o.ttft_ms.or(self.ttft_ms),
            tpot_ms: o.tpot_ms.or(self.tpot_ms),
            e2e_ms: o.e2e_ms.or(self.e2e_ms),
            attainment: o.attainment.unwrap_or(self.attainment),
        }
    }
}

/// Limits per scenario name for every scenario that has at least one, in
/// name order: what a consumer such as the decision trees (AN.3) takes.
/// `None` (no `slo` section) gives none.
pub fn scenario_limits<'a>(
    slo: Option<&SloParams>,
    scenarios: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<String, SloLimits> {
    let Some(slo) = slo else {
        return BTreeMap::new();
    };
    scenarios
        .into_iter()
        .map(|s| (s.to_string(), slo.limits_for(s)))
        .filter(|(_, l)| l.any())
        .collect()
}

/// One cell judged against its SLO (validate's `slo` table).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SloRow {
    pub cell: String,
    pub backend: String,
    pub model: String,
    pub scenario: String,
    pub evidence: String,
    /// Limits in force (null: no limit on that metric).
    pub ttft_ms_limit: Option<f64>,
    pub tpot_ms_limit: Option<f64>,
    pub e2e_ms_limit: Option<f64>,
    /// Required share of runs meeting every limit.
    pub required: f64,
    /// Steady ok runs judged.
    pub runs: u32,
    /// Runs meeting each limit (a limit not set is met by every run; a
    /// run that generated one token has no TPOT and meets that limit).
    pub met_ttft: u32,
    pub met_tpot: u32,
    pub met_e2e: u32,
    /// Runs meeting every limit.
    pub met_all: u32,
    /// met_all / runs; null without runs.
    pub attainment: Option<f64>,
    /// Type-7 quantile at `required` of each metric over the judged runs
    /// (Q.1's "p95"), ms; null without runs, or without TPOT values.
    pub ttft_ms_q: Option<f64>,
    pub tpot_ms_q: Option<f64>,
    pub e2e_ms_q: Option<f64>,
    /// attainment >= required (false without runs).
    pub passed: bool,
}

/// One run's TTFT, TPOT (None for one generated token) and e2e, ms.
type RunLatency = (Option<f64>, Option<f64>, Option<f64>);

/// What an SLO judges in one cell: its steady runs' latencies.
pub(super) struct CellLatency {
    manifest_cell: String,
    backend: String,
    model: String,
    scenario: String,
    evidence: String,
    under_load: bool,
    runs: BTreeMap<u32, RunLatency>,
}

impl CellLatency {
    pub fn new(manifest: &Manifest, events: &EventColumns, runs: &[RunRow]) -> Self {
        let mut ttft: BTreeMap<u32, f64> = BTreeMap::new();
        let mut e2e: BTreeMap<u32, f64> = BTreeMap::new();
        for i in (0..events.len()).filter(|i| !events.warmup.value(*i)) {
            let ms = events.ns[i] as f64 / 1e6;
            match events.phase(i) {
                Phase::Ttft => {
                    ttft.insert(events.repetition[i], ms);
                }
                Phase::E2e => {
                    e2e.insert(events.repetition[i], ms);
                }
                _ => {}
            }
        }
        let latencies = runs
            .iter()
            .filter(|r| !r.warmup)
            .map(|r| {
                let t = ttft.get(&r.repetition).copied();
                let e = e2e.get(&r.repetition).copied();
                let tpot = match (t, e) {
                    (Some(t), Some(e)) if r.gen_tokens_produced > 1 => {
                        Some((e - t) / f64::from(r.gen_tokens_produced - 1))
                    }
                    _ => None,
                };
                (r.repetition, (t, tpot, e))
            })
            .collect();
        CellLatency {
            manifest_cell: manifest.cell.clone(),
            backend: manifest.backend.clone(),
            model: manifest.model.clone(),
            scenario: manifest.scenario.name.clone(),
            evidence: manifest.evidence.clone(),
            under_load: manifest.scenario.load.is_some(),
            runs: latencies,
        }
    }
}

fn meets(value: Option<f64>, limit: Option<f64>) -> bool {
    match (value, limit) {
        (_, None) | (None, Some(_)) => true,
        (Some(v), Some(l)) => v <= l,
    }
}

fn quantile(values: impl Iterator<Item = Option<f64>>, q: f64) -> Option<f64> {
    let xs: Vec<f64> = values.flatten().collect();
    match xs.len() {
        0 => None,
        1 => Some(xs[0]),
        _ => Some(stats::quantile_sorted(&stats::sorted(&xs), q)),
    }
}

/// Judge every cell not under load whose scenario has a limit: one row and
/// one `slo` check per cell, in cell order. `rows` are the final verdicts.
pub(super) fn judge(
    slo: &SloParams,
    cells: &[CellLatency],
    rows: &[ValidationRow],
    checks: &mut Vec<CheckResult>,
) -> Vec<SloRow> {
    let ok: BTreeSet<(&str, u32)> = rows
        .iter()
        .filter(|r| !r.warmup && r.is_ok())
        .map(|r| (r.cell.as_str(), r.repetition))
        .collect();
    let mut out = Vec::new();
    for c in cells.iter().filter(|c| !c.under_load) {
        let limits = slo.limits_for(&c.scenario);
        if !limits.any() {
            continue;
        }
        let judged: Vec<RunLatency> = c
            .runs
            .iter()
            .filter(|(rep, _)| ok.contains(&(c.manifest_cell.as_str(), **rep)))
            .map(|(_, l)| *l)
            .collect();
        let count = |f: &dyn Fn(&RunLatency) -> bool| judged.iter().filter(|l| f(l)).count() as u32;
        let met_ttft = count(&|l| meets(l.0, limits.ttft_ms));
        let met_tpot = count(&|l| meets(l.1, limits.tpot_ms));
        let met_e2e = count(&|l| meets(l.2, limits.e2e_ms));
        let met_all = count(&|l| {
            meets(l.0, limits.ttft_ms) && meets(l.1, limits.tpot_ms) && meets(l.2, limits.e2e_ms)
        });
        let runs = judged.len() as u32;
        let attainment = (runs > 0).then(|| f64::from(met_all) / f64::from(runs));
        let passed = attainment.is_some_and(|a| a >= limits.attainment);
        let q = limits.attainment;
        let row = SloRow {
            cell: c.manifest_cell.clone(),
            backend: c.backend.clone(),
            model: c.model.clone(),
            scenario: c.scenario.clone(),
            evidence: c.evidence.clone(),
            ttft_ms_limit: limits.ttft_ms,
            tpot_ms_limit: limits.tpot_ms,
            e2e_ms_limit: limits.e2e_ms,
            required: limits.attainment,
            runs,
            met_ttft,
            met_tpot,
            met_e2e,
            met_all,
            attainment,
            ttft_ms_q: quantile(judged.iter().map(|l| l.0), q),
            tpot_ms_q: quantile(judged.iter().map(|l| l.1), q),
            e2e_ms_q: quantile(judged.iter().map(|l| l.2), q),
            passed,
        };
        checks.push(CheckResult {
            cell: c.manifest_cell.clone(),
            check: ValidationCheck::Slo.as_str().into(),
            passed,
            detail: match attainment {
                Some(a) => format!(
                    "{met_all} of {runs} steady ok runs meet {} (attainment {a:.3}, required {})",
                    limits.describe(),
                    limits.attainment
                ),
                None => format!("no steady ok run to judge against {}", limits.describe()),
            },
        });
        out.push(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::tests::{manifest, run_events, run_row};
    use assay_core::tables::EventRow;

    /// Q.1's SaaS chat SLO: TTFT under 500 ms and end to end under 2 s, at
    /// p95.
    fn q1() -> SloParams {
        serde_json::from_value(serde_json::json!({ "ttft_ms": 500.0, "e2e_ms": 2000.0 })).unwrap()
    }

    /// A cell "b/m/s" whose steady runs 1..=n have TTFT 3 ms and e2e
    /// `3 + 2 * step` ms, `step` given per run (3 tokens generated: TPOT is
    /// the step).
    fn cell(steps: &[f64]) -> (CellLatency, Vec<ValidationRow>) {
        let mut events: Vec<EventRow> = run_events(0, true, 1.0);
        let mut runs = vec![run_row(0, true, 3)];
        let mut rows = vec![ValidationRow {
            cell: "b/m/s".into(),
            repetition: 0,
            warmup: true,
            status: "ok".into(),
            ..Default::default()
        }];
        for (i, step) in steps.iter().enumerate() {
            let rep = i as u32 + 1;
            events.extend(run_events(rep, false, *step));
            runs.push(run_row(rep, false, 3));
            rows.push(ValidationRow {
                cell: "b/m/s".into(),
                repetition: rep,
                status: "ok".into(),
                ..Default::default()
            });
        }
        let columns = EventColumns::from_rows(&events);
        let m = manifest(1, steps.len() as u32);
        (CellLatency::new(&m, &columns, &runs), rows)
    }

    #[test]
    fn q1_p95_attainment_passes_at_one_miss_in_twenty_and_fails_at_two() {
        // 20 runs; e2e = 3 + 2 * step: a step of 1000 ms gives 2003 ms,
        // over Q.1's 2 s.
        let mut steps = vec![100.0; 20];
        steps[4] = 1000.0;
        let (c, rows) = cell(&steps);
        let mut checks = Vec::new();
        let judged = judge(&q1(), std::slice::from_ref(&c), &rows, &mut checks);
        assert_eq!(judged.len(), 1);
        let r = &judged[0];
        assert_eq!((r.runs, r.met_ttft, r.met_e2e, r.met_all), (20, 20, 19, 19));
        assert_eq!(r.attainment, Some(0.95));
        assert_eq!(r.required, 0.95);
        assert!(r.passed);
        assert_eq!(r.tpot_ms_limit, None);
        assert_eq!(checks[0].check, "slo");
        assert_eq!(
            checks[0].detail,
            "19 of 20 steady ok runs meet ttft <= 500 ms, e2e <= 2000 ms (attainment 0.950, required 0.95)"
        );
        steps[9] = 1000.0;
        let (c, rows) = cell(&steps);
        let mut checks = Vec::new();
        let judged = judge(&q1(), &[c], &rows, &mut checks);
        assert_eq!(judged[0].attainment, Some(0.9));
        assert!(!judged[0].passed && !checks[0].passed);
        // The p95 of e2e is past the limit where the cell fails.
        assert!(judged[0].e2e_ms_q.unwrap() > 2000.0);
    }

    #[test]
    fn tpot_is_the_time_per_token_after_the_first() {
        // e2e - ttft = 2 * step over 3 - 1 tokens: TPOT is the step.
        let slo: SloParams =
            serde_json::from_value(serde_json::json!({ "tpot_ms": 10.0, "attainment": 0.5 }))
                .unwrap();
        let (c, rows) = cell(&[9.0, 11.0, 9.5, 12.0]);
        let mut checks = Vec::new();
        let r = &judge(&slo, &[c], &rows, &mut checks)[0];
        assert_eq!((r.met_tpot, r.met_all, r.passed), (2, 2, true));
        assert_eq!(r.tpot_ms_q, Some(10.25));
    }

    #[test]
    fn only_steady_ok_runs_are_judged_and_load_profiles_are_left_to_goodput() {
        let (c, mut rows) = cell(&[100.0, 1000.0, 100.0]);
        // The slow run is degraded: it backs no aggregate, nor the SLO.
        rows[2].status = "degraded".into();
        let mut checks = Vec::new();
        let r = &judge(&q1(), &[c], &rows, &mut checks)[0];
        assert_eq!((r.runs, r.met_all, r.passed), (2, 2, true));
        let (mut c, rows) = cell(&[100.0]);
        c.under_load = true;
        let mut checks = Vec::new();
        assert!(judge(&q1(), &[c], &rows, &mut checks).is_empty());
        assert!(checks.is_empty());
        // Without a judged run the cell cannot meet its SLO.
        let (c, mut rows) = cell(&[100.0]);
        rows[1].status = "failed".into();
        let mut checks = Vec::new();
        let r = &judge(&q1(), &[c], &rows, &mut checks)[0];
        assert_eq!((r.runs, r.attainment, r.passed), (0, None, false));
        assert!(checks[0].detail.starts_with("no steady ok run to judge"));
    }

    #[test]
    fn a_scenario_override_replaces_only_what_it_gives() {
        let slo: SloParams = serde_json::from_value(serde_json::json!({
            "ttft_ms": 500.0, "e2e_ms": 2000.0,
            "scenarios": { "long": { "e2e_ms": 8000.0, "attainment": 0.9 }, "batch": { "tpot_ms": 40.0 } }
        }))
        .unwrap();
        assert_eq!(
            slo.limits_for("long"),
            SloLimits {
                ttft_ms: Some(500.0),
                tpot_ms: None,
                e2e_ms: Some(8000.0),
                attainment: 0.9
            }
        );
        assert_eq!(
            slo.limits_for("chat"),
            SloLimits {
                ttft_ms: Some(500.0),
                tpot_ms: None,
                e2e_ms: Some(2000.0),
                attainment: 0.95
            }
        );
        let all = scenario_limits(Some(&slo), ["chat", "batch", "long"]);
        assert_eq!(all.keys().collect::<Vec<_>>(), ["batch", "chat", "long"]);
        assert_eq!(all["batch"].tpot_ms, Some(40.0));
        assert!(scenario_limits(None, ["chat"]).is_empty());
        // Only an override: scenarios without one have no limit.
        let only: SloParams = serde_json::from_value(serde_json::json!({
            "scenarios": { "chat": { "ttft_ms": 300.0 } }
        }))
        .unwrap();
        assert_eq!(scenario_limits(Some(&only), ["chat", "long"]).len(), 1);
    }
}
