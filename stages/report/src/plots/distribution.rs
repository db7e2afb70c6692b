//! The latency distribution plot.

use plotters::prelude::*;

use super::axis::{Axis, linear_axis, log_axis};
use super::canvas::{PlotArea, RowSpec, render_rows, row_center};
use super::header::{Header, Swatch};
use super::hover::{Hotspot, attach, value, with_unit};
use super::style::{ALERT, INK, MUTED, PALETTE, axis_desc, clean_label, min_max};
use super::{Distribution, DrawResult};

/// Horizontal distribution plot, one row per label: a whisker `min..max`, a
/// box `p50..p95` with the median as a bold line, a tick at p90, a dot at p99
/// and the median's 95% CI as a red bar above the box. The x axis is log10
/// when all values are positive and span more than two decades.
pub fn latency_distributions(title: &str, unit: &str, rows: &[Distribution]) -> Option<String> {
    let rows: Vec<&Distribution> = rows
        .iter()
        .filter(|r| dist_values(r).iter().any(|v| v.is_finite()))
        .collect();
    let values: Vec<f64> = rows
        .iter()
        .flat_map(|r| dist_values(r))
        .filter(|v| v.is_finite())
        .collect();
    let (lo, hi) = min_max(&values)?;
    let log = lo > 0.0 && hi / lo > 100.0;
    let axis = if log {
        log_axis(lo, hi)?
    } else {
        let pad = (hi - lo) * 0.04;
        let start = if lo >= 0.0 && lo <= 0.25 * hi {
            0.0
        } else {
            lo - pad
        };
        linear_axis(start, hi + pad)?
    };
    let header = Header {
        title: title.to_string(),
        legend: vec![
            (Swatch::Whisker(MUTED), "min-max".into()),
            (Swatch::Box(PALETTE[0]), "p50-p95".into()),
            (Swatch::Tick(INK, 2), "median".into()),
            (Swatch::Tick(PALETTE[0], 1), "p90".into()),
            (Swatch::Dot(PALETTE[1]), "p99".into()),
            (Swatch::Fill(ALERT), "median 95% CI".into()),
        ],
        notes: vec![],
    };
    let labels: Vec<String> = rows.iter().map(|r| clean_label(&r.label)).collect();
    let spec = RowSpec {
        header,
        axis,
        x_desc: axis_desc(unit, log),
        labels,
        row_px: 28,
    };
    let mut spots = Vec::new();
    let svg = render_rows(&spec, |chart, _root| {
        let n = rows.len();
        let x = &spec.axis;
        let area = chart.plotting_area();
        for (i, r) in rows.iter().enumerate() {
            let yc = row_center(n, i);
            draw_row(area, x, yc, r)?;
            // The whole row points at its numbers.
            spots.push(Hotspot::new(
                chart.backend_coord(&(x.lo, yc + 0.5)),
                chart.backend_coord(&(x.hi, yc - 0.5)),
                hover_text(r, unit),
            ));
        }
        Ok(())
    })?;
    Some(attach(svg, &spots))
}

/// What a row's hover says: the median with its CI, then the tails.
fn hover_text(r: &Distribution, unit: &str) -> String {
    format!(
        "{}: median {} (95% CI {} to {}); p90 {}, p95 {}, p99 {}; min {}, max {}",
        clean_label(&r.label),
        with_unit(r.p50, unit),
        value(r.ci_low),
        value(r.ci_high),
        value(r.p90),
        value(r.p95),
        value(r.p99),
        value(r.min),
        value(r.max)
    )
}

fn dist_values(r: &Distribution) -> [f64; 8] {
    [
        r.min, r.p50, r.p90, r.p95, r.p99, r.max, r.ci_low, r.ci_high,
    ]
}

/// One row of the distribution plot, centred at `yc`.
fn draw_row(area: &PlotArea<'_>, x: &Axis, yc: f64, r: &Distribution) -> DrawResult {
    let (min, max) = (x.map(r.min), x.map(r.max));
    if let (Some(a), Some(b)) = (min, max) {
        area.draw(&PathElement::new(
            vec![(a, yc), (b, yc)],
            MUTED.stroke_width(1),
        ))?;
    }
    for end in [min, max].into_iter().flatten() {
        area.draw(&PathElement::new(
            vec![(end, yc - 0.15), (end, yc + 0.15)],
            MUTED.stroke_width(1),
        ))?;
    }
    let (p50, p95) = (x.map(r.p50), x.map(r.p95));
    if let (Some(a), Some(b)) = (p50, p95) {
        let (a, b) = (a.min(b), a.max(b));
        let rect = [(a, yc - 0.2), (b, yc + 0.2)];
        area.draw(&Rectangle::new(rect, PALETTE[0].mix(0.25).filled()))?;
        area.draw(&Rectangle::new(rect, PALETTE[0].stroke_width(1)))?;
    }
    if let Some(p90) = x.map(r.p90) {
        area.draw(&PathElement::new(
            vec![(p90, yc - 0.2), (p90, yc + 0.2)],
            PALETTE[0].stroke_width(1),
        ))?;
    }
    if let Some(m) = p50 {
        area.draw(&PathElement::new(
            vec![(m, yc - 0.26), (m, yc + 0.26)],
            INK.stroke_width(2),
        ))?;
    }
    if let Some(p99) = x.map(r.p99) {
        area.draw(&Circle::new((p99, yc), 3, PALETTE[1].filled()))?;
    }
    if let (Some(a), Some(b)) = (x.map(r.ci_low), x.map(r.ci_high)) {
        let (a, b) = (a.min(b), a.max(b));
        area.draw(&Rectangle::new(
            [(a, yc + 0.25), (b, yc + 0.35)],
            ALERT.filled(),
        ))?;
    }
    Ok(())
}
