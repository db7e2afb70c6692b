//! Scaling: log-log fits against model size (parameters, and separately
//! layers and hidden size), linear fits against prompt and generation
//! length, their gating (Appendix AM rule 7), regime labels and the
//! boundary-shift check (AD.4).

use crate::document::{Block, f, header};
use crate::{Out, Report, source};
use assay_core::domain::{FitForm, FitX};
use assay_core::stage::{Input, StageError};
use assay_core::tables::FitRow;

pub fn scaling(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    out.doc.push(Block::Heading(2, "Scaling".into()));
    let Some(fit_in) = rep.fit_in else {
        out.doc.push(Block::Para(
            "No fit parameters in the spec: no scaling claims.".into(),
        ));
        return Ok(());
    };
    out.doc.push(Block::Para(
        "OLS with a 95% percentile-bootstrap CI of the slope (seeded from the node key) and Spearman rank \
         correlation. A fit with R^2 < 0.2 whose slope CI crosses zero (or is unknown) is unidentifiable \
         (Appendix AM rule 7), and so is any fit of fewer than 3 distinct x values: shown, never claimed. \
         Regime: increasing / decreasing (slope CI excludes zero), sign uncertain, or unidentifiable. \
         Boundary shift (AD.4): fits that differ only in the boundary they hold fixed must agree on the \
         regime; where they do not, the conclusion is boundary-specific."
            .into(),
    ));
    log_log_fits(rep, fit_in, out);
    linear_fits(rep, fit_in, out);
    boundary_shift(rep, out);
    Ok(())
}

/// Fits against model size, with their figures and claims.
fn log_log_fits(rep: &Report<'_>, fit_in: &Input, out: &mut Out) {
    let log_log: Vec<(usize, &FitRow)> = rep
        .fit
        .iter()
        .enumerate()
        .filter(|(_, r)| r.form() == Some(FitForm::LogLog))
        .collect();
    if !log_log.is_empty() {
        out.doc
            .push(Block::Heading(3, "Against model size (log-log)".into()));
        if log_log.iter().any(|(_, r)| r.heterogeneous) {
            out.doc.push(Block::Para(
                "The fitted models differ in architecture family or dtype: parameter count is a regime \
                 descriptor here, not a predictor (Appendix AN.4), so its fits back no claim."
                    .into(),
            ));
        }
        out.doc.push(table(&log_log, true));
        // Two points fit any line: only fits of 3 or more are drawn.
        for (_, r) in log_log.iter().filter(|(_, r)| r.n >= 3) {
            out.doc.extend(crate::figures::scaling(r, &rep.summary));
        }
        for (i, r) in &log_log {
            claim(fit_in, *i, r, out);
        }
    }
}

/// Fits against prompt and generation length, with their figures and
/// claims.
fn linear_fits(rep: &Report<'_>, fit_in: &Input, out: &mut Out) {
    let linear: Vec<(usize, &FitRow)> = rep
        .fit
        .iter()
        .enumerate()
        .filter(|(_, r)| r.form() == Some(FitForm::Linear))
        .collect();
    if !linear.is_empty() {
        out.doc.push(Block::Heading(
            3,
            "Against prompt and generation length (linear)".into(),
        ));
        out.doc.push(Block::Para(
            "prefill_ms ~ prompt_tokens per (backend, model, batch): slope in ms per prompt position (one token \
             per sequence of the batch), intercept the fixed cost. decode_total_ms ~ decode_steps (generated \
             tokens - 1) per (backend, model, batch, prompt): slope in ms per decode step (one token per \
             sequence)."
                .into(),
        ));
        out.doc.push(table(&linear, false));
        for (_, r) in linear.iter().filter(|(_, r)| r.n >= 3) {
            out.doc.extend(crate::figures::scaling(r, &rep.summary));
        }
        for (i, r) in &linear {
            claim(fit_in, *i, r, out);
        }
    }
}

/// The boundary-shift check (AD.4): fits whose regime flips across the
/// boundaries held fixed.
fn boundary_shift(rep: &Report<'_>, out: &mut Out) {
    let flips: Vec<Vec<String>> = rep
        .fit
        .iter()
        .filter(|r| r.boundary_flip)
        .map(|r| {
            vec![
                r.backend.clone(),
                r.model.clone(),
                format!("{} ~ {}", r.y, r.x),
                r.boundary_note.clone(),
            ]
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if flips.is_empty() {
        out.doc.push(Block::Para(
            "Boundary-shift check: no fit changes regime across the boundaries measured.".into(),
        ));
    } else {
        out.doc.push(Block::Para(
            "Boundary-shift check: these conclusions flip across boundaries and hold only under the \
             boundary named (AD.4):"
                .into(),
        ));
        out.doc.push(Block::Table(
            header(&["backend", "model", "fit", "regime per boundary"]),
            flips,
        ));
    }
}

fn table(rows: &[(usize, &FitRow)], log: bool) -> Block {
    let header = [
        "backend",
        if log { "scenario" } else { "model" },
        "boundary",
        "fit",
        "n",
        "slope",
        "95% CI",
        "intercept",
        "R^2",
        "Spearman",
        "regime",
    ];
    Block::Table(
        header.iter().map(|s| s.to_string()).collect(),
        rows.iter()
            .map(|(_, r)| {
                vec![
                    r.backend.clone(),
                    if log {
                        r.scenario.clone()
                    } else {
                        r.model.clone()
                    },
                    r.boundary.clone(),
                    if log {
                        format!("log {} ~ log {}", r.y, r.x)
                    } else {
                        format!("{} ~ {}", r.y, r.x)
                    },
                    r.n.to_string(),
                    f(r.slope, 3),
                    format!("[{}, {}]", f(r.slope_ci_low, 3), f(r.slope_ci_high, 3)),
                    f(r.intercept, 3),
                    f(r.r_squared, 3),
                    f(r.spearman, 3),
                    format!(
                        "{} ({}){}",
                        r.regime,
                        r.device,
                        if r.boundary_flip {
                            ", boundary-specific"
                        } else {
                            ""
                        }
                    ),
                ]
            })
            .collect(),
    )
}

/// Rule 7: an unidentifiable fit feeds no claim; AN.4: neither does a
/// parameter-count fit across architecture families or dtypes, where
/// parameter count is a regime descriptor, not a predictor.
fn claim(fit_in: &assay_core::stage::Input, i: usize, r: &FitRow, out: &mut Out) {
    if !r.identifiable || (r.heterogeneous && r.x() == Some(FitX::Params)) {
        return;
    }
    let log_log = r.form() == Some(FitForm::LogLog);
    let (what, unit) = if log_log {
        (
            format!(
                "Log-log slope of {} against {} on {}, scenario {}",
                r.y, r.x, r.backend, r.scenario
            ),
            "1",
        )
    } else {
        (
            format!(
                "Slope of {} against {} for {} on {} ({})",
                r.y, r.x, r.model, r.backend, r.boundary
            ),
            // Per decode step (one token per sequence of the batch), or per
            // prompt position (one token per sequence).
            if r.x() == Some(FitX::DecodeSteps) {
                "ms/step"
            } else {
                "ms/prompt position"
            },
        )
    };
    let scope = if r.boundary_flip {
        format!("; boundary-specific: {}", r.boundary_note)
    } else {
        String::new()
    };
    let id_scope = if log_log {
        r.scenario.clone()
    } else {
        format!(
            "{}/{}",
            r.model,
            r.boundary.replace(", ", "/").replace(' ', "-")
        )
    };
    out.claim(
        format!("fit/{}/{}/{}~{}/slope", r.backend, id_scope, r.y, r.x),
        format!(
            "{what}: {} (95% CI [{}, {}], R^2 {}, n={}, {} on {}{scope})",
            f(r.slope, 3),
            f(r.slope_ci_low, 3),
            f(r.slope_ci_high, 3),
            f(r.r_squared, 3),
            r.n,
            r.regime,
            r.device
        ),
        r.slope,
        unit,
        &r.evidence,
        source(fit_in, vec![i as u32]),
    );
}
