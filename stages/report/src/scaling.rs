//! Scaling: log-log fits against model size (parameters, and separately
//! layers, hidden size and heads), pooled and within each architecture
//! family (AC.2, AN.4); series fits that vary one structural predictor
//! (AX.1, AX.2); the multivariate fit on depth and width together (T risk
//! 6); linear fits against prompt and generation length; their gating
//! (Appendix AM rule 7, T risk 10: regime language, never a law); and the
//! boundary shifts as falsification tests (AD.4).

use crate::document::{Block, f, header};
use crate::{Out, Report, source};
use assay_analysis::fit::shift;
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
         Regime: increasing / decreasing (slope CI excludes zero), sign uncertain, or unidentifiable. An \
         identifiable slope is a regime of this boundary, backend and family, not a law (Appendix T risk 10, \
         AZ). Boundary shift (AD.4): a fit repeated under another boundary must keep its regime, or the \
         conclusion is boundary-specific."
            .into(),
    ));
    size_fits(rep, fit_in, out);
    series_fits(rep, fit_in, out);
    multivariate_fits(rep, fit_in, out);
    linear_fits(rep, fit_in, out);
    falsification(rep, fit_in, out);
    Ok(())
}

fn rows_where<'a>(rep: &'a Report<'_>, keep: impl Fn(&FitRow) -> bool) -> Vec<(usize, &'a FitRow)> {
    rep.fit
        .iter()
        .enumerate()
        .filter(|(_, r)| keep(r))
        .collect()
}

/// Fits against model size over whole families or across them, with their
/// figures and claims.
fn size_fits(rep: &Report<'_>, fit_in: &Input, out: &mut Out) {
    let log_log = rows_where(rep, |r| {
        r.form() == Some(FitForm::LogLog) && r.series.is_empty()
    });
    if log_log.is_empty() {
        return;
    }
    out.doc
        .push(Block::Heading(3, "Against model size (log-log)".into()));
    if log_log.iter().any(|(_, r)| r.heterogeneous) {
        out.doc.push(Block::Para(
            "The fitted models differ in architecture family or dtype: parameter count is a regime \
             descriptor here, not a predictor (Appendix AN.4), so its pooled fits back no claim; the \
             same fits within each family (`family` named) are the ones to read (Appendix AC.2)."
                .into(),
        ));
    }
    out.doc.push(table(&log_log, Kind::Size));
    // Two points fit any line: only fits of 3 or more are drawn.
    for (_, r) in log_log.iter().filter(|(_, r)| r.n >= 3) {
        out.doc.extend(crate::figures::scaling(r, &rep.summary));
    }
    for (i, r) in &log_log {
        claim(fit_in, *i, r, out);
    }
}

/// Series fits inside a family: one structural predictor varied, the
/// others held.
fn series_fits(rep: &Report<'_>, fit_in: &Input, out: &mut Out) {
    let series = rows_where(rep, |r| {
        r.form() == Some(FitForm::LogLog) && !r.series.is_empty()
    });
    if series.is_empty() {
        return;
    }
    out.doc.push(Block::Heading(
        3,
        "Depth, width and heads series within a family (log-log)".into(),
    ));
    out.doc.push(Block::Para(
        "Each series varies one structural predictor and holds the others (Appendix AX.1, AX.2): depth \
         (layers at fixed hidden size and heads), width (hidden size at fixed layers and head size, so \
         heads grow with width and its slope is theirs together) and heads (at fixed layers and hidden \
         size)."
            .into(),
    ));
    out.doc.push(table(&series, Kind::Series));
    for (i, r) in &series {
        claim(fit_in, *i, r, out);
    }
}

/// The multivariate fits: one row per coefficient.
fn multivariate_fits(rep: &Report<'_>, fit_in: &Input, out: &mut Out) {
    let multi = rows_where(rep, |r| r.form() == Some(FitForm::Multivariate));
    if multi.is_empty() {
        return;
    }
    out.doc.push(Block::Heading(
        3,
        "Depth and width together (multivariate, log-log)".into(),
    ));
    out.doc.push(Block::Para(
        "ln y = a + sum_k b_k ln x_k within one family, over the structural predictors that vary in it \
         (Appendix T risk 6: structural predictors and multivariate fits, not parameter count alone). \
         Each b_k is the exponent of its predictor with the others held; R^2 is the model's. CIs from a \
         pairs bootstrap. Predictors whose correlation matrix has a determinant below 0.01 are collinear \
         and the fit is unidentifiable, as is a fit with no residual degree of freedom."
            .into(),
    ));
    out.doc.push(table(&multi, Kind::Multivariate));
    for (i, r) in &multi {
        claim(fit_in, *i, r, out);
    }
}

/// Fits against prompt and generation length, with their figures and
/// claims.
fn linear_fits(rep: &Report<'_>, fit_in: &Input, out: &mut Out) {
    let linear = rows_where(rep, |r| r.form() == Some(FitForm::Linear));
    if linear.is_empty() {
        return;
    }
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
    out.doc.push(table(&linear, Kind::Linear));
    for (_, r) in linear.iter().filter(|(_, r)| r.n >= 3) {
        out.doc.extend(crate::figures::scaling(r, &rep.summary));
    }
    for (i, r) in &linear {
        claim(fit_in, *i, r, out);
    }
}

/// One fit repeated under several boundaries, as the falsification
/// section lists it.
struct Tested<'a> {
    label: String,
    rows: Vec<(usize, &'a FitRow)>,
}

/// The fits measured under more than one boundary, grouped as the fit
/// stage grouped them (all but boundary and scenario equal).
fn tested<'a>(rep: &'a Report<'_>) -> Vec<Tested<'a>> {
    let mut groups: std::collections::BTreeMap<String, Vec<(usize, &FitRow)>> =
        std::collections::BTreeMap::new();
    for (i, r) in rep
        .fit
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.shift.is_empty())
    {
        let scope = [r.model.as_str(), r.family.as_str(), r.series.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        let label = format!(
            "{} {}: {}{}",
            r.backend,
            r.form,
            fit_name(r),
            if scope.is_empty() {
                " (all models)".to_string()
            } else {
                format!(" ({scope})")
            }
        );
        groups.entry(label).or_default().push((i, r));
    }
    groups
        .into_iter()
        .map(|(label, rows)| Tested { label, rows })
        .collect()
}

/// The boundary shifts as falsification tests (AD.4): per fit, its regime
/// and slope under every boundary and whether the relationship held.
fn falsification(rep: &Report<'_>, fit_in: &Input, out: &mut Out) {
    out.doc.push(Block::Heading(
        3,
        "Boundary shifts as falsification tests".into(),
    ));
    let groups = tested(rep);
    if groups.is_empty() {
        out.doc.push(Block::Para(
            "Boundary-shift check: no fit was measured under more than one boundary, so no relationship \
             was put to a falsification test (AD.4)."
                .into(),
        ));
        return;
    }
    out.doc.push(Block::Para(format!(
        "Each fit below was repeated under every boundary it was measured at (a size fit per scenario: \
         batch, generation or prompt length shifted; a linear fit per batch or prompt length). `{}`: one \
         identifiable regime and slope CIs that share a point; `{}`: the sign held, the magnitude did not; \
         `{}`: the regime changed, so the conclusion holds only under the boundary named and must not be \
         generalised; `{}`: no boundary gave an identifiable fit, nothing was tested.",
        shift::HELD,
        shift::MAGNITUDE_SHIFTED,
        shift::FLIPPED,
        shift::UNTESTABLE
    )));
    let table_rows = groups
        .iter()
        .map(|g| {
            let per = g
                .rows
                .iter()
                .map(|(_, r)| {
                    format!(
                        "{}: {} [{}, {}] {}",
                        r.boundary,
                        f(r.slope, 3),
                        f(r.slope_ci_low, 3),
                        f(r.slope_ci_high, 3),
                        r.regime
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            vec![
                g.label.clone(),
                g.rows.len().to_string(),
                per,
                g.rows[0].1.shift.clone(),
            ]
        })
        .collect();
    out.doc.push(Block::Table(
        header(&[
            "fit",
            "boundaries",
            "slope [95% CI] regime per boundary",
            "verdict",
        ]),
        table_rows,
    ));
    for g in &groups {
        shift_claim(fit_in, g, out);
    }
    shift_summary(fit_in, &groups, out);
}

/// How many tested fits held and how many flipped, stated and claimed.
fn shift_summary(fit_in: &Input, groups: &[Tested<'_>], out: &mut Out) {
    let flipped = groups
        .iter()
        .filter(|g| g.rows[0].1.shift == shift::FLIPPED)
        .count();
    let held = groups
        .iter()
        .filter(|g| g.rows[0].1.shift == shift::HELD)
        .count();
    out.doc.push(Block::Para(format!(
        "Of {} fits put to the test, {held} held under every boundary shift and {flipped} flipped \
         (boundary-specific).",
        groups.len()
    )));
    for (value, unit, id, what) in [
        (
            groups.len(),
            "fits",
            "tested",
            "Fits repeated under more than one boundary",
        ),
        (
            held,
            "fits",
            "held",
            "Fits whose relationship held under every boundary shift",
        ),
        (
            flipped,
            "fits",
            "flipped",
            "Fits whose regime flipped under a boundary shift",
        ),
    ] {
        let rows: Vec<u32> = groups
            .iter()
            .filter(|g| id == "tested" || g.rows[0].1.shift == id)
            .flat_map(|g| g.rows.iter().map(|(i, _)| *i as u32))
            .collect();
        let evidence = if groups
            .iter()
            .all(|g| g.rows.iter().all(|(_, r)| r.is_measured()))
        {
            "measured"
        } else {
            "simulated"
        };
        out.claim(
            format!("fit/shift/{id}"),
            format!("{what}: {value} (AD.4)"),
            value as f64,
            unit,
            evidence,
            source(fit_in, rows),
        );
    }
}

/// The verdict of one tested fit as a claim: its value is the number of
/// boundaries it was tested under.
fn shift_claim(fit_in: &Input, g: &Tested<'_>, out: &mut Out) {
    let r = g.rows[0].1;
    let boundaries: Vec<&str> = g.rows.iter().map(|(_, r)| r.boundary.as_str()).collect();
    let evidence = if g.rows.iter().all(|(_, r)| r.is_measured()) {
        "measured"
    } else {
        "simulated"
    };
    out.claim(
        format!("fit/{}/shift", scope_id(r, None)),
        format!(
            "Falsification test of {} across boundaries {}: {} (AD.4)",
            g.label,
            boundaries.join(", "),
            r.shift
        ),
        g.rows.len() as f64,
        "boundaries",
        evidence,
        source(fit_in, g.rows.iter().map(|(i, _)| *i as u32).collect()),
    );
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Size,
    Series,
    Multivariate,
    Linear,
}

fn fit_name(r: &FitRow) -> String {
    match r.form() {
        Some(FitForm::Linear) => format!("{} ~ {}", r.y, r.x),
        Some(FitForm::Multivariate) => {
            format!("log {} ~ {} (coefficient of {})", r.y, r.terms, r.x)
        }
        _ => format!("log {} ~ log {}", r.y, r.x),
    }
}

fn table(rows: &[(usize, &FitRow)], kind: Kind) -> Block {
    // A linear fit is per model and holds a boundary; the others run
    // across models of a scenario, pooled or within a family or series.
    let (second, third) = match kind {
        Kind::Size | Kind::Multivariate => ("scenario", "family"),
        Kind::Series => ("scenario", "series"),
        Kind::Linear => ("model", "boundary"),
    };
    let header = [
        "backend",
        second,
        third,
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
                let (second, third) = match kind {
                    Kind::Linear => (r.model.clone(), r.boundary.clone()),
                    Kind::Series => (r.scenario.clone(), format!("{}: {}", r.family, r.series)),
                    _ if r.family.is_empty() => (r.scenario.clone(), "all (pooled)".into()),
                    _ => (r.scenario.clone(), r.family.clone()),
                };
                vec![
                    r.backend.clone(),
                    second,
                    third,
                    fit_name(r),
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

/// A fit's claim id scope: backend, then scenario (or model and boundary
/// of a linear fit), family and series where the fit is within one, then
/// what it fits. With `boundary: None` the boundary is left out (a
/// falsification test spans them).
fn scope_id(r: &FitRow, boundary: Option<&str>) -> String {
    let slug = |s: &str| s.replace(", ", "/").replace(' ', "-");
    let mut parts = vec![r.backend.clone()];
    let log_log = r.form() != Some(FitForm::Linear);
    match (log_log, boundary) {
        (true, Some(_)) => parts.push(r.scenario.clone()),
        (false, Some(b)) => parts.push(format!("{}/{}", r.model, slug(b))),
        (false, None) => parts.push(r.model.clone()),
        (true, None) => {}
    }
    // Pooled fits (no family) keep the ids they had before families
    // existed; a fit within a family or series names them.
    if !r.family.is_empty() {
        parts.push(slug(&r.family));
    }
    if !r.series.is_empty() {
        parts.push(slug(&r.series));
    }
    if r.form() == Some(FitForm::Multivariate) {
        parts.push(format!("multivariate/{}~{}/{}", r.y, r.terms, r.x));
    } else {
        parts.push(format!("{}~{}", r.y, r.x));
    }
    parts.join("/")
}

/// Rule 7: an unidentifiable fit feeds no claim; AN.4: neither does a
/// parameter-count fit across architecture families or dtypes, where
/// parameter count is a regime descriptor, not a predictor.
fn claim(fit_in: &Input, i: usize, r: &FitRow, out: &mut Out) {
    if !r.identifiable || (r.heterogeneous && r.x() == Some(FitX::Params)) {
        return;
    }
    let within = match (r.family.is_empty(), r.series.is_empty()) {
        (true, _) => String::new(),
        (false, true) => format!(" within {}", r.family),
        (false, false) => format!(" within {}, {}", r.family, r.series),
    };
    let (what, unit) = match r.form() {
        Some(FitForm::Linear) => (
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
        ),
        Some(FitForm::Multivariate) => (
            format!(
                "Multivariate log-log coefficient of {} in {} ~ {} on {}, scenario {}{within}",
                r.x, r.y, r.terms, r.backend, r.scenario
            ),
            "1",
        ),
        _ => (
            format!(
                "Log-log slope of {} against {} on {}, scenario {}{within}",
                r.y, r.x, r.backend, r.scenario
            ),
            "1",
        ),
    };
    let scope = if r.boundary_flip {
        format!("; boundary-specific: {}", r.boundary_note)
    } else {
        String::new()
    };
    out.claim(
        format!("fit/{}/slope", scope_id(r, Some(&r.boundary))),
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
