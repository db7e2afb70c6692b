//! The report's plots, drawn from the same rows as its tables (see
//! `crate::plots` for how the SVG stays byte-identical across machines).

use std::collections::BTreeMap;

use crate::document::Block;
use crate::plots::{self, Bar, BarSeries, Distribution, Scaling, Stack};
use assay_core::domain::{FitForm, FitX, FitY};
use assay_core::tables::{CostRow, FitRow, Phase, SummaryRow};

fn figure(caption: &str, svg: Option<String>) -> Option<Block> {
    svg.map(|svg| Block::Figure {
        caption: caption.to_string(),
        svg,
    })
}

fn label(s: &SummaryRow) -> String {
    format!("{}/{}/{}", s.backend, s.model, s.scenario)
}

/// Distribution of one phase per cell: whiskers min..max, box p50..p95,
/// p90/p99 marks and the median's CI.
pub fn latency(summary: &[SummaryRow], phase: Phase, title: &str) -> Option<Block> {
    let rows: Vec<Distribution> = summary
        .iter()
        .filter(|s| s.phase() == phase)
        .map(|s| Distribution {
            label: label(s),
            min: s.min_ms,
            p50: s.median_ms,
            p90: s.p90_ms,
            p95: s.p95_ms,
            p99: s.p99_ms,
            max: s.max_ms,
            ci_low: s.median_ci_low_ms,
            ci_high: s.median_ci_high_ms,
        })
        .collect();
    figure(title, plots::latency_distributions(title, "ms", &rows))
}

/// Median prefill and summed decode per cell (AA.3's two phases).
pub fn phase_split(summary: &[SummaryRow]) -> Option<Block> {
    let prefill: BTreeMap<&str, f64> = summary
        .iter()
        .filter(|s| s.phase() == Phase::Prefill)
        .map(|s| (s.cell.as_str(), s.median_ms))
        .collect();
    let rows: Vec<Stack> = summary
        .iter()
        .filter(|s| s.phase() == Phase::E2e && s.decode_total_ms.is_finite())
        .map(|s| Stack {
            label: label(s),
            segments: vec![
                (
                    "prefill".into(),
                    prefill.get(s.cell.as_str()).copied().unwrap_or(f64::NAN),
                ),
                ("decode".into(), s.decode_total_ms),
            ],
        })
        .collect();
    let title = "Phase split: median prefill and summed decode per run";
    figure(title, plots::stacked_bars(title, "ms", &rows))
}

pub fn decode_fraction(summary: &[SummaryRow]) -> Option<Block> {
    let rows: Vec<Bar> = summary
        .iter()
        .filter(|s| s.phase() == Phase::E2e && s.decode_fraction.is_finite())
        .map(|s| Bar {
            label: label(s),
            value: s.decode_fraction,
            low: None,
            high: None,
        })
        .collect();
    let title = "Decode fraction (decode / e2e)";
    figure(
        title,
        plots::bars(title, "fraction", &rows, Some((0.9, "decode-dominant"))),
    )
}

/// $ per 1M decode tokens per cell, one series per pricing tier.
pub fn cost_per_1m(cost: &[CostRow]) -> Option<Block> {
    let mut tiers: BTreeMap<&str, Vec<Bar>> = BTreeMap::new();
    for c in cost.iter().filter(|c| c.phase() == Phase::Decode) {
        tiers.entry(c.tier.as_str()).or_default().push(Bar {
            label: format!("{}/{}/{}", c.backend, c.model, c.scenario),
            value: c.usd_per_1m,
            low: None,
            high: None,
        });
    }
    let series: Vec<BarSeries> = tiers
        .into_iter()
        .map(|(name, bars)| BarSeries {
            name: name.to_string(),
            bars,
        })
        .collect();
    let title = "Shadow price per 1M decode tokens, by pricing tier";
    figure(title, plots::grouped_bars(title, "$", &series, None))
}

/// The points a fit row was fitted on, in its own units.
fn fit_points(r: &FitRow, summary: &[SummaryRow]) -> Vec<(f64, f64)> {
    let scenarios: Vec<&str> = r.scenario.split('+').collect();
    let y_of = r.y();
    let phase = match y_of {
        Some(FitY::PrefillMs) => Phase::Prefill,
        Some(FitY::TtftMs) => Phase::Ttft,
        Some(FitY::E2eMs | FitY::DecodeTotalMs) => Phase::E2e,
        _ => Phase::Decode,
    };
    let x_of = r.x();
    summary
        .iter()
        .filter(|s| {
            s.backend == r.backend
                && s.phase() == phase
                && scenarios.contains(&s.scenario.as_str())
                && (r.model.is_empty() || s.model == r.model)
                && (r.family.is_empty() || assay_analysis::fit::family_of(s) == r.family)
                && (r.form() != Some(FitForm::Linear) || r.boundary == linear_boundary(r, s))
        })
        .map(|s| {
            let x = match x_of {
                Some(FitX::Params) => s.parameter_count as f64,
                Some(FitX::Layers) => f64::from(s.n_layer),
                Some(FitX::Hidden) => f64::from(s.n_embd),
                Some(FitX::Heads) => f64::from(s.n_head),
                Some(FitX::PromptTokens) => f64::from(s.prompt_tokens),
                _ => f64::from(s.gen_tokens.saturating_sub(1)),
            };
            let y = if y_of == Some(FitY::DecodeTotalMs) {
                s.decode_total_ms
            } else {
                s.median_ms
            };
            (x, y)
        })
        .collect()
}

/// The boundary label a summary row would get in a linear fit like `r`.
fn linear_boundary(r: &FitRow, s: &SummaryRow) -> String {
    if r.y() == Some(FitY::PrefillMs) {
        format!("batch {}", s.batch)
    } else {
        format!("batch {}, prompt {}", s.batch, s.prompt_tokens)
    }
}

pub fn scaling(r: &FitRow, summary: &[SummaryRow]) -> Option<Block> {
    let log_log = r.form() == Some(FitForm::LogLog);
    let title = if log_log {
        format!("{}: {} vs {} ({})", r.backend, r.y, r.x, r.scenario)
    } else {
        format!(
            "{} {}: {} vs {} ({})",
            r.backend, r.model, r.y, r.x, r.boundary
        )
    };
    let s = Scaling {
        title: title.clone(),
        x_label: r.x.clone(),
        y_label: r.y.clone(),
        log_log,
        points: fit_points(r, summary),
        intercept: r.intercept,
        slope: r.slope,
        slope_ci: (r.slope_ci_low, r.slope_ci_high),
        identifiable: r.identifiable,
    };
    figure(
        &format!("Fit {title}, with the 95% slope band"),
        plots::scaling(&s),
    )
}
