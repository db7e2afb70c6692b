//! The knee and the saturation rate of an open-loop rate sweep.

use std::collections::BTreeMap;

use assay_core::domain::Evidence;
use assay_core::tables::{KneeRow, LoadRow};

use super::SATURATION_FRACTION;

/// One `knees` row per (backend, model, family) with at least one open-loop
/// rate, in that order.
pub fn knees(rows: &[LoadRow]) -> Vec<KneeRow> {
    type Sweep<'a> = Vec<(f64, &'a LoadRow)>;
    let mut sweeps: BTreeMap<(&str, &str, &str), Sweep<'_>> = BTreeMap::new();
    for r in rows {
        let Some(rate) = r.offered_rps else { continue };
        let family = r.family.as_deref().unwrap_or(&r.scenario);
        sweeps
            .entry((&r.backend, &r.model, family))
            .or_default()
            .push((rate, r));
    }
    sweeps
        .into_iter()
        .map(|((backend, model, family), mut sweep)| {
            sweep.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cell.cmp(&b.1.cell)));
            knee_row(backend, model, family, &sweep)
        })
        .collect()
}

fn knee_row(backend: &str, model: &str, family: &str, sweep: &[(f64, &LoadRow)]) -> KneeRow {
    // A rate without an SLO is not sustainable either: the walk stops there.
    let has_slo = sweep.iter().any(|(_, r)| r.slo_attainment.is_some());
    let mut knee = None;
    let mut knee_open = true;
    let mut saturation = None;
    let mut saturation_open = true;
    let mut reasons = Vec::new();
    for (rate, r) in sweep {
        if knee_open && r.sustainable == Some(true) {
            knee = Some(*rate);
        } else {
            knee_open = false;
        }
        // Completions keep pace with the arrivals the schedule really
        // made; without both spacing rates, the window's achieved rate
        // against the nominal one.
        let keeps_up = match (r.completion_rps, r.realised_rps) {
            (Some(done), Some(offered)) => done >= SATURATION_FRACTION * offered,
            _ => r
                .achieved_rps
                .is_some_and(|a| a >= SATURATION_FRACTION * rate),
        };
        if saturation_open && keeps_up {
            saturation = Some(*rate);
        } else {
            saturation_open = false;
        }
        let mut achieved = r.achieved_rps.map_or_else(
            || "no steady window".to_string(),
            |a| format!("achieved {a:.3}"),
        );
        if let (Some(done), Some(offered)) = (r.completion_rps, r.realised_rps) {
            achieved.push_str(&format!(
                " (arrivals at {offered:.3}, completions at {done:.3})"
            ));
        }
        reasons.push(match (r.attainment, r.slo_attainment) {
            (Some(a), Some(target)) => format!(
                "r={rate} met {a:.3} {} {target}, {achieved}",
                if a >= target { ">=" } else { "<" }
            ),
            (None, Some(_)) => format!("r={rate} no steady requests"),
            _ if has_slo => format!("r={rate} no SLO, {achieved}"),
            _ => format!("r={rate} {achieved}"),
        });
    }
    let mut reason = reasons.join("; ");
    if !has_slo {
        reason = format!("no SLO, no knee; {reason}");
    }
    KneeRow {
        backend: backend.into(),
        model: model.into(),
        family: family.into(),
        evidence: Evidence::all_measured(sweep.iter().map(|(_, r)| r.is_measured()))
            .as_str()
            .into(),
        rates: sweep.iter().map(|(rate, _)| *rate).collect(),
        cells: sweep.iter().map(|(_, r)| r.cell.clone()).collect(),
        slo_attainment: sweep.iter().find_map(|(_, r)| r.slo_attainment),
        knee_rps: knee,
        saturation_rps: saturation,
        reason,
    }
}
