//! Risks and limits: what the evidence above does not support, derived from
//! the same artifacts (seed Appendix AQ), so the caveats can never drift
//! from the data. Every count they state is a claim; the most severe of
//! them are repeated as the summary's top risks.

use std::collections::BTreeSet;

use crate::document::Block;
use crate::{Out, Report, source};
use assay_core::domain::Evidence;
use assay_core::stage::StageError;

/// How much a limit weighs on the answer, most severe first: the summary
/// shows the first few.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Severity {
    /// Nothing may be decided on these numbers.
    NotEvidence,
    /// Part of the data is missing or the question is partly unanswered.
    Gap,
    /// The answer holds only under conditions the data cannot widen.
    Scope,
    /// A caveat on how to read a figure.
    Caveat,
}

/// The limits, in reading order, each with its severity.
struct Items(Vec<(Severity, String)>);

impl Items {
    fn push(&mut self, severity: Severity, text: String) {
        self.0.push((severity, text));
    }
}

pub fn limits(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    out.doc.push(Block::Heading(2, "Risks and limits".into()));
    let mut items = Items(Vec::new());
    run_limits(rep, out, &mut items);
    machine_limits(rep, &mut items);
    fit_limits(rep, out, &mut items);
    energy_limits(rep, out, &mut items);
    roofline_decision_and_cost_limits(rep, out, &mut items);
    let mut ranked: Vec<&(Severity, String)> = items.0.iter().collect();
    // Stable: equal severities keep their reading order.
    ranked.sort_by_key(|(severity, _)| *severity);
    out.risks = ranked.iter().map(|(_, text)| text.clone()).collect();
    out.doc
        .push(Block::List(items.0.into_iter().map(|(_, t)| t).collect()));
    Ok(())
}

/// Row indices `0..n` where `keep` holds.
fn rows_where(n: usize, keep: impl Fn(usize) -> bool) -> Vec<u32> {
    (0..n).filter(|i| keep(*i)).map(|i| i as u32).collect()
}

/// Simulated data, and runs excluded or flagged by validation.
fn run_limits(rep: &Report<'_>, out: &mut Out, items: &mut Items) {
    if !Evidence::is_measured(&rep.evidence) {
        items.push(
            Severity::NotEvidence,
            "Simulated data: numbers from the simulated backend exercise the pipeline; they are not \
             evidence and feed no decision."
                .into(),
        );
    }
    let excluded_rows = rows_where(rep.validation.len(), |i| !rep.validation[i].is_ok());
    let excluded = excluded_rows.len();
    if excluded > 0 {
        out.claim(
            "limits/excluded_runs".into(),
            format!("{excluded} runs degraded or failed and excluded from every aggregate"),
            excluded as f64,
            "runs",
            &rep.evidence,
            source(rep.validation_in, excluded_rows),
        );
        items.push(
            Severity::Gap,
            format!(
                "{} degraded or failed and excluded from every aggregate (see Validation).",
                runs(excluded)
            ),
        );
    }
    let outliers = rep
        .validation
        .iter()
        .filter(|v| !v.flags.is_empty())
        .count();
    // The count is the validation section's `validation/outlier_runs`.
    if outliers > 0 {
        items.push(
            Severity::Caveat,
            format!(
                "{} flagged as {} and kept: tails include them.",
                runs(outliers),
                if outliers == 1 {
                    "an outlier"
                } else {
                    "outliers"
                }
            ),
        );
    }
}

/// How many machines the measurements come from. A machine is named as its
/// manifests describe it, in a code span: a name, not a result.
fn machine_limits(rep: &Report<'_>, items: &mut Items) {
    let machines: BTreeSet<String> = rep
        .manifests
        .iter()
        .filter_map(|m| m.environment.as_ref())
        .map(|e| format!("{} ({} cores)", e.cpu_model, e.logical_cores))
        .collect();
    match machines.len() {
        0 => {}
        1 => items.push(
            Severity::Scope,
            format!(
                "One machine (`{}`): conclusions hold for this hardware class; rerun the spec on another \
                 class before generalising (Appendix AE).",
                machines.iter().next().map_or("", String::as_str)
            ),
        ),
        _ => items.push(
            Severity::Scope,
            format!(
                "Measurements come from different machines ({}); compare cells across machines only \
                 through their manifests.",
                machines
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    }
}

/// Fits that back no claim, change regime, or mix families.
fn fit_limits(rep: &Report<'_>, out: &mut Out, items: &mut Items) {
    let Some(fit_in) = rep.fit_in else {
        return;
    };
    let unidentifiable = rows_where(rep.fit.len(), |i| !rep.fit[i].identifiable);
    if !unidentifiable.is_empty() {
        let n = unidentifiable.len();
        out.claim(
            "limits/fits/unidentifiable".into(),
            format!("{n} fits are unidentifiable and back no claim (AM rule 7)"),
            n as f64,
            "fits",
            &rep.evidence,
            source(fit_in, unidentifiable),
        );
        out.claim(
            "limits/fits/all".into(),
            format!("{} fits in the fit table", rep.fit.len()),
            rep.fit.len() as f64,
            "fits",
            &rep.evidence,
            source(fit_in, rows_where(rep.fit.len(), |_| true)),
        );
        items.push(
            Severity::Caveat,
            format!(
                "{n} of {} fits are unidentifiable (R^2 < 0.2 with a slope CI crossing zero, or \
                 fewer than 3 distinct x values) and back no claim (AM rule 7).",
                rep.fit.len()
            ),
        );
    }
    let flips = rows_where(rep.fit.len(), |i| rep.fit[i].boundary_flip);
    if !flips.is_empty() {
        let n = flips.len();
        out.claim(
            "limits/fits/boundary_flips".into(),
            format!("{n} fits change regime across boundaries (AD.4)"),
            n as f64,
            "fits",
            &rep.evidence,
            source(fit_in, flips),
        );
        items.push(
            Severity::Scope,
            format!(
                "{n} fits change regime across boundaries: those conclusions are boundary-specific (AD.4)."
            ),
        );
    }
    if rep.fit.iter().any(|r| r.heterogeneous) {
        items.push(
            Severity::Caveat,
            "The fitted models mix architecture families or dtypes: parameter count is a regime descriptor, \
             not a predictor (AN.4)."
                .into(),
        );
    }
}

/// Whether energy was sampled, by a sensor, and how much of it counts.
fn energy_limits(rep: &Report<'_>, out: &mut Out, items: &mut Items) {
    if rep.p.energy.is_none() {
        items.push(
            Severity::Gap,
            "No energy was sampled: no energy or carbon claim can be made.".into(),
        );
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
            items.push(
                Severity::Gap,
                format!("No energy sensor (`{reason}`): no energy or carbon claim can be made."),
            );
        } else {
            // The cells are the Energy section's rows with a sensor.
            items.push(
                Severity::Gap,
                format!(
                    "Some cells had no energy sensor (`{reason}`): energy figures cover the other cells only."
                ),
            );
        }
    } else {
        let rows = rows_where(rep.summary.len(), |i| rep.summary[i].energy_windows > 0);
        let windows: u32 = rep.summary.iter().map(|s| s.energy_windows).sum();
        let valid: u32 = rep.summary.iter().map(|s| s.energy_valid).sum();
        out.claim(
            "limits/energy/windows".into(),
            format!("{windows} steady energy windows"),
            f64::from(windows),
            "windows",
            &rep.evidence,
            source(rep.summary_in, rows.clone()),
        );
        out.claim(
            "limits/energy/attributable_windows".into(),
            format!("{valid} of {windows} steady energy windows were attributable (TR122)"),
            f64::from(valid),
            "windows",
            &rep.evidence,
            source(rep.summary_in, rows),
        );
        items.push(
            if valid < windows {
                Severity::Gap
            } else {
                Severity::Caveat
            },
            format!(
                "Energy: {valid} of {windows} steady windows were attributable; the rest are no_data (TR122)."
            ),
        );
    }
}

/// Cells above the copy-bandwidth bound, workload classes without a
/// decision, and what the costs are.
fn roofline_decision_and_cost_limits(rep: &Report<'_>, out: &mut Out, items: &mut Items) {
    let above_rows = rows_where(rep.summary.len(), |i| {
        let s = &rep.summary[i];
        s.roofline_fraction.is_finite() && s.roofline_fraction > 1.0
    });
    let above_bound = above_rows.len();
    if above_bound > 0 {
        out.claim(
            "limits/roofline/above_bound_cells".into(),
            format!("{above_bound} decode cells exceed the copy-bandwidth bound"),
            above_bound as f64,
            "cells",
            &rep.evidence,
            source(rep.summary_in, above_rows),
        );
        items.push(Severity::Caveat, format!(
            "{} the copy-bandwidth bound: a STREAM copy counts reads and writes, decode mostly reads, \
             so the bound is conservative there.",
            if above_bound == 1 {
                "1 decode cell exceeds".to_string()
            } else {
                format!("{above_bound} decode cells exceed")
            }
        ));
    }
    // A class counts as decided only when every model in it has a
    // decision-grade backend.
    let undecided: Vec<&str> = crate::decisions::compute(rep)
        .per_class
        .iter()
        .filter(|d| !d.fully_decided())
        .map(|d| d.class.title())
        .collect();
    if !undecided.is_empty() {
        items.push(
            Severity::Gap,
            format!(
                "No decision for: {} (reasons under Decisions by workload class).",
                undecided.join(", ")
            ),
        );
    }
    if rep.cost_in.is_some() {
        items.push(
            Severity::Caveat,
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
