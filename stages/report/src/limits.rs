//! Risks and limits: what the evidence above does not support, derived from
//! the same artifacts (seed Appendix AQ), so the caveats can never drift
//! from the data.

use std::collections::BTreeSet;

use crate::document::Block;
use crate::{Out, Report};
use assay_core::domain::Evidence;
use assay_core::stage::StageError;

pub fn limits(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    out.doc.push(Block::Heading(2, "Risks and limits".into()));
    let mut items: Vec<String> = Vec::new();
    run_limits(rep, &mut items);
    machine_limits(rep, &mut items);
    fit_limits(rep, &mut items);
    energy_limits(rep, &mut items);
    roofline_decision_and_cost_limits(rep, &mut items);
    out.doc.push(Block::List(items));
    Ok(())
}

/// Simulated data, and runs excluded or flagged by validation.
fn run_limits(rep: &Report<'_>, items: &mut Vec<String>) {
    if !Evidence::is_measured(&rep.evidence) {
        items.push(
            "Simulated data: numbers from the simulated backend exercise the pipeline; they are not \
             evidence and feed no decision."
                .into(),
        );
    }
    let excluded = rep.validation.iter().filter(|v| !v.is_ok()).count();
    if excluded > 0 {
        items.push(format!(
            "{} degraded or failed and excluded from every aggregate (see Validation).",
            runs(excluded)
        ));
    }
    let outliers = rep
        .validation
        .iter()
        .filter(|v| !v.flags.is_empty())
        .count();
    if outliers > 0 {
        items.push(format!(
            "{} flagged as {} and kept: tails include them.",
            runs(outliers),
            if outliers == 1 {
                "an outlier"
            } else {
                "outliers"
            }
        ));
    }
}

/// How many machines the measurements come from.
fn machine_limits(rep: &Report<'_>, items: &mut Vec<String>) {
    let machines: BTreeSet<String> = rep
        .manifests
        .iter()
        .filter_map(|m| m.environment.as_ref())
        .map(|e| format!("{} ({} cores)", e.cpu_model, e.logical_cores))
        .collect();
    match machines.len() {
        0 => {}
        1 => items.push(format!(
            "One machine ({}): conclusions hold for this hardware class; rerun the spec on another class \
             before generalising (Appendix AE).",
            machines.iter().next().map_or("", String::as_str)
        )),
        n => items.push(format!(
            "Measurements come from {n} different machines; compare cells across machines only through \
             their manifests."
        )),
    }
}

/// Fits that back no claim, change regime, or mix families.
fn fit_limits(rep: &Report<'_>, items: &mut Vec<String>) {
    let unidentifiable = rep.fit.iter().filter(|r| !r.identifiable).count();
    if unidentifiable > 0 {
        items.push(format!(
            "{unidentifiable} of {} fits are unidentifiable (R^2 < 0.2 with a slope CI crossing zero, or \
             fewer than 3 distinct x values) and back no claim (AM rule 7).",
            rep.fit.len()
        ));
    }
    let flips = rep.fit.iter().filter(|r| r.boundary_flip).count();
    if flips > 0 {
        items.push(format!(
            "{flips} fits change regime across boundaries: those conclusions are boundary-specific (AD.4)."
        ));
    }
    if rep.fit.iter().any(|r| r.heterogeneous) {
        items.push(
            "The fitted models mix architecture families or dtypes: parameter count is a regime descriptor, \
             not a predictor (AN.4)."
                .into(),
        );
    }
}

/// Whether energy was sampled, by a sensor, and how much of it counts.
fn energy_limits(rep: &Report<'_>, items: &mut Vec<String>) {
    if rep.p.energy.is_none() {
        items.push("No energy was sampled: no energy or carbon claim can be made.".into());
    } else if let Some(reason) = rep
        .manifests
        .iter()
        .filter_map(|m| m.energy.as_ref()?.no_sensor.as_deref())
        .next()
    {
        let without = rep
            .manifests
            .iter()
            .filter(|m| m.energy.as_ref().is_some_and(|e| e.no_sensor.is_some()))
            .count();
        if without == rep.manifests.len() {
            items.push(format!(
                "No energy sensor ({reason}): no energy or carbon claim can be made."
            ));
        } else {
            items.push(format!(
                "{without} of {} cells had no energy sensor ({reason}): energy figures cover the other cells only.",
                rep.manifests.len()
            ));
        }
    } else {
        let windows: u32 = rep.summary.iter().map(|s| s.energy_windows).sum();
        let valid: u32 = rep.summary.iter().map(|s| s.energy_valid).sum();
        items.push(format!(
            "Energy: {valid} of {windows} steady windows were attributable; the rest are no_data (TR122)."
        ));
    }
}

/// Cells above the copy-bandwidth bound, workload classes without a
/// decision, and what the costs are.
fn roofline_decision_and_cost_limits(rep: &Report<'_>, items: &mut Vec<String>) {
    let above_bound = rep
        .summary
        .iter()
        .filter(|s| s.roofline_fraction.is_finite() && s.roofline_fraction > 1.0)
        .count();
    if above_bound > 0 {
        items.push(format!(
            "{} the copy-bandwidth bound: a STREAM copy counts reads and writes, decode mostly reads, \
             so the bound is conservative there.",
            if above_bound == 1 {
                "1 decode cell exceeds".to_string()
            } else {
                format!("{above_bound} decode cells exceed")
            }
        ));
    }
    let undecided: Vec<&str> = crate::decisions::compute(rep)
        .per_class
        .iter()
        .filter(|d| {
            matches!(
                d.outcome,
                assay_analysis::decide::Outcome::NoDecision { .. }
            )
        })
        .map(|d| d.class.title())
        .collect();
    if !undecided.is_empty() {
        items.push(format!(
            "No decision for: {} (reasons under Decisions by workload class).",
            undecided.join(", ")
        ));
    }
    if rep.cost_in.is_some() {
        items.push(
            "Costs are shadow prices of compute time at the spec's hourly rates, not total cost of \
             ownership."
                .into(),
        );
    }
}

fn runs(n: usize) -> String {
    if n == 1 {
        "1 run was".into()
    } else {
        format!("{n} runs were")
    }
}
