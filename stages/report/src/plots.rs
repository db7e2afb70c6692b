//! Deterministic SVG plots for `report.html`.
//!
//! Each function takes small plain-data structs (decoupled from the table row
//! types) and returns a standalone `<svg …>…</svg>` string (no XML prolog, no
//! `id` attributes, so several plots can be inlined in one page), or `None`
//! when there is nothing to draw. The bytes are a pure function of the
//! inputs, on any machine:
//!
//! - plotters is built without `ttf`/`font-kit`/`ab_glyph`, so text is measured
//!   by its naive fixed-width estimate (byte count × size) and written as SVG
//!   `<text font-family="sans-serif">`: the viewer's fonts never feed back into
//!   coordinates, and no font is read at build or run time.
//! - Axis ranges, tick positions and tick labels are computed here, with `libm`
//!   (not the platform's math library) for logarithms and powers, and handed
//!   to plotters as explicit key points. plotters' own tick search and log
//!   coordinates (platform `powf`/`ln`) are not used: a log axis is a linear
//!   axis over `log10` values.
//! - Non-finite values (and non-positive ones on log axes) are dropped before
//!   anything reaches plotters, and shapes that could leave the plot area are
//!   clipped here (the SVG backend does not clip).
//! - No hash maps, clocks or randomness; series colours follow first appearance.

use std::error::Error;
use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One latency distribution: a row of [`latency_distributions`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Distribution {
    pub label: String,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    /// 95% confidence interval of the median.
    pub ci_low: f64,
    pub ci_high: f64,
}

/// One stacked bar of [`stacked_bars`]: named segments, stacked in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stack {
    pub label: String,
    pub segments: Vec<(String, f64)>,
}

/// One bar of [`bars`] / [`grouped_bars`], with an optional error bar.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

/// One named series of [`grouped_bars`] (e.g. a pricing tier).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BarSeries {
    pub name: String,
    pub bars: Vec<Bar>,
}

/// A fitted scaling law with its points, for [`scaling`].
///
/// With `log_log`, the fit is `ln y = intercept + slope · ln x`, i.e.
/// `y = exp(intercept + slope · ln x)`; otherwise `y = intercept + slope · x`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scaling {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_log: bool,
    pub points: Vec<(f64, f64)>,
    pub intercept: f64,
    pub slope: f64,
    /// 95% confidence interval of the slope.
    pub slope_ci: (f64, f64),
    pub identifiable: bool,
}

/// Width of every plot, in px.
pub const WIDTH: u32 = 760;

const FONT: &str = "sans-serif";
// plotters writes `font-size = size / 1.24`; these give whole pixels.
const TITLE_PX: f64 = 14.0;
const LABEL_PX: f64 = 11.0;
const SMALL_PX: f64 = 10.0;
const MAX_LABEL_CHARS: usize = 48;
const MAX_TITLE_CHARS: usize = 100;
const SCALING_PLOT_PX: u32 = 340;

const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);
const MUTED: RGBColor = RGBColor(0x80, 0x80, 0x80);
const GRID: RGBColor = RGBColor(0xE4, 0xE4, 0xE4);
const ALERT: RGBColor = RGBColor(0xB2, 0x22, 0x22);
/// Muted, print-safe categorical colours (seaborn "deep").
const PALETTE: [RGBColor; 8] = [
    RGBColor(0x4C, 0x72, 0xB0),
    RGBColor(0xDD, 0x84, 0x52),
    RGBColor(0x55, 0xA8, 0x68),
    RGBColor(0xC4, 0x4E, 0x52),
    RGBColor(0x81, 0x72, 0xB3),
    RGBColor(0x93, 0x78, 0x60),
    RGBColor(0xDA, 0x8B, 0xC3),
    RGBColor(0x8C, 0x8C, 0x8C),
];

type DrawResult = Result<(), Box<dyn Error>>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Coords = Cartesian2d<Ticked, Ticked>;
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Coords>;
type Pt = (f64, f64);

// ---------------------------------------------------------------- public API

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
    render_rows(&spec, |chart, _root| {
        let n = rows.len();
        let x = &spec.axis;
        let area = chart.plotting_area();
        for (i, r) in rows.iter().enumerate() {
            let yc = row_center(n, i);
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
        }
        Ok(())
    })
}

/// Horizontal stacked bars (e.g. the phase split: prefill vs decode ms per
/// cell), one row per label, segments stacked left to right in their order,
/// coloured by segment name (first appearance), with a legend and the total
/// at the end of each bar. Negative and non-finite segments are skipped.
pub fn stacked_bars(title: &str, unit: &str, rows: &[Stack]) -> Option<String> {
    let drawable = |v: f64| v.is_finite() && v >= 0.0;
    let rows: Vec<&Stack> = rows
        .iter()
        .filter(|r| r.segments.iter().any(|(_, v)| drawable(*v)))
        .collect();
    let mut names: Vec<&str> = Vec::new();
    for (name, v) in rows.iter().flat_map(|r| r.segments.iter()) {
        if drawable(*v) && !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    let totals: Vec<f64> = rows
        .iter()
        .map(|r| {
            r.segments
                .iter()
                .map(|s| s.1)
                .filter(|v| drawable(*v))
                .sum()
        })
        .collect();
    let (_, max_total) = min_max(&totals)?;
    let axis = linear_axis(0.0, max_total * 1.14)?;
    let colour = |name: &str| {
        let i = names.iter().position(|n| *n == name).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    };
    let header = Header {
        title: title.to_string(),
        legend: names
            .iter()
            .map(|n| (Swatch::Fill(colour(n)), clean_label(n)))
            .collect(),
        notes: vec![],
    };
    let spec = RowSpec {
        header,
        axis,
        x_desc: axis_desc(unit, false),
        labels: rows.iter().map(|r| clean_label(&r.label)).collect(),
        row_px: 26,
    };
    render_rows(&spec, |chart, root| {
        let n = rows.len();
        let area = chart.plotting_area();
        for (i, (r, total)) in rows.iter().zip(&totals).enumerate() {
            let yc = row_center(n, i);
            let mut left = 0.0;
            for (name, v) in &r.segments {
                if !drawable(*v) {
                    continue;
                }
                let right = left + v;
                if right.is_finite() && right > left {
                    area.draw(&Rectangle::new(
                        [(left, yc - 0.32), (right, yc + 0.32)],
                        colour(name).filled(),
                    ))?;
                }
                left = right;
            }
            if total.is_finite() {
                let (px, py) = chart.backend_coord(&(*total, yc));
                root.draw(&Text::new(
                    fmt_sig(*total),
                    (px + 4, py),
                    text(SMALL_PX, INK).pos(Pos::new(HPos::Left, VPos::Center)),
                ))?;
            }
        }
        Ok(())
    })
}

/// Horizontal bars from zero, one row per bar, with optional error bars
/// (`low..high`), the value at the end of each bar and an optional dashed
/// vertical reference line (e.g. `(0.9, "decode-bound at 0.9")`) named in the
/// legend. Bars with a non-finite value are skipped.
pub fn bars(
    title: &str,
    unit: &str,
    rows: &[Bar],
    reference_line: Option<(f64, &str)>,
) -> Option<String> {
    let rows: Vec<(String, Vec<Option<&Bar>>)> = rows
        .iter()
        .filter(|b| b.value.is_finite())
        .map(|b| (clean_label(&b.label), vec![Some(b)]))
        .collect();
    bars_impl(title, unit, &rows, &[], reference_line)
}

/// Like [`bars`], with several series (e.g. pricing tiers): one row per label
/// (union of all series' labels, in first-appearance order), one coloured
/// sub-bar per series that has that label (its first bar with it), and a
/// legend of the series names.
pub fn grouped_bars(
    title: &str,
    unit: &str,
    series: &[BarSeries],
    reference_line: Option<(f64, &str)>,
) -> Option<String> {
    let mut labels: Vec<&str> = Vec::new();
    for b in series.iter().flat_map(|s| s.bars.iter()) {
        if b.value.is_finite() && !labels.contains(&b.label.as_str()) {
            labels.push(&b.label);
        }
    }
    let rows: Vec<(String, Vec<Option<&Bar>>)> = labels
        .iter()
        .map(|l| {
            let per_series = series
                .iter()
                .map(|s| s.bars.iter().find(|b| b.label == *l && b.value.is_finite()))
                .collect();
            (clean_label(l), per_series)
        })
        .collect();
    let names: Vec<String> = series
        .iter()
        .enumerate()
        .map(|(i, s)| match clean_label(&s.name) {
            n if n.is_empty() => format!("series {}", i + 1),
            n => n,
        })
        .collect();
    bars_impl(title, unit, &rows, &names, reference_line)
}

/// Scatter of the points, the fitted line and the slope's 95% CI band over
/// the whole x range, on log-log axes when `log_log`. The band is the region
/// between the lines of slope `slope_ci.0` and `slope_ci.1` through the fitted
/// line's point at the mean of x in the fit's space (mean of `ln x` in
/// log-log). The slope and its CI are written under the title, and
/// "unidentifiable (AM rule 7)" in red when not identifiable. Points that
/// cannot be drawn (non-finite; non-positive in log-log) are counted in a note.
pub fn scaling(s: &Scaling) -> Option<String> {
    let log = s.log_log;
    let to_plot = |v: f64| {
        if !v.is_finite() {
            None
        } else if log {
            (v > 0.0).then(|| libm::log10(v)).filter(|l| l.is_finite())
        } else {
            Some(v)
        }
    };
    let pts: Vec<Pt> = s
        .points
        .iter()
        .filter_map(|&(x, y)| Some((to_plot(x)?, to_plot(y)?)))
        .collect();
    let skipped = s.points.len() - pts.len();
    let xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
    let ys: Vec<f64> = pts.iter().map(|p| p.1).collect();
    let (x_axis, y_axis) = if log {
        // Back to data space for the log axes (exact decades for the ticks).
        let raw = |v: &[f64]| -> Option<(f64, f64)> {
            let (a, b) = min_max(v)?;
            Some((libm::pow(10.0, a), libm::pow(10.0, b)))
        };
        let (x0, x1) = raw(&xs)?;
        let (y0, y1) = raw(&ys)?;
        (log_axis(x0, x1)?, log_axis(y0, y1)?)
    } else {
        let padded = |v: &[f64]| -> Option<Axis> {
            let (a, b) = min_max(v)?;
            let pad = (b - a) * 0.06;
            // Padding does not push non-negative data below zero.
            let lo = if a >= 0.0 {
                (a - pad).max(0.0)
            } else {
                a - pad
            };
            linear_axis(lo, b + pad)
        };
        (padded(&xs)?, padded(&ys)?)
    };

    // The fit, in plot space: a straight line in both cases.
    let (icpt, slope) = if log {
        (s.intercept / std::f64::consts::LN_10, s.slope)
    } else {
        (s.intercept, s.slope)
    };
    let fit = (icpt.is_finite() && slope.is_finite()).then_some((icpt, slope));
    let mean_x = xs.iter().sum::<f64>() / xs.len() as f64;

    let mut notes = Vec::new();
    let (c0, c1) = s.slope_ci;
    let ci = if c0.is_finite() && c1.is_finite() {
        format!("95% CI {} to {}", fmt_sig(c0.min(c1)), fmt_sig(c0.max(c1)))
    } else {
        "95% CI n/a".to_string()
    };
    let kind = if log { "log-log fit" } else { "linear fit" };
    notes.push((format!("slope {} ({ci}), {kind}", fmt_sig(s.slope)), INK));
    if !s.identifiable {
        notes.push(("unidentifiable (AM rule 7)".to_string(), ALERT));
    }
    if skipped > 0 {
        let why = if log {
            "non-finite or non-positive on log axes"
        } else {
            "non-finite"
        };
        notes.push((format!("{skipped} point(s) not drawn: {why}"), MUTED));
    }
    let header = Header {
        title: s.title.clone(),
        legend: vec![
            (Swatch::Dot(PALETTE[0]), "measured".into()),
            (Swatch::Line(PALETTE[1], 2), "fit".into()),
            (Swatch::Band(PALETTE[1]), "slope 95% CI".into()),
        ],
        notes,
    };
    let y_label_w = y_axis
        .ticks
        .iter()
        .map(|t| text_width(&t.1, LABEL_PX))
        .max()
        .unwrap_or(0)
        + 34;
    let x_desc = axis_desc(&s.x_label, log);
    let y_desc = axis_desc(&s.y_label, log);
    let header_h = header.height();
    let height = header_h + SCALING_PLOT_PX + 44 + 14;
    render(height, |root| {
        header.draw(root)?;
        let (_, body) = root.split_vertically(header_h);
        let mut chart = ChartBuilder::on(&body)
            .margin_top(6)
            .margin_left(8)
            .margin_right(24)
            .margin_bottom(8)
            .x_label_area_size(44)
            .y_label_area_size(y_label_w)
            .build_cartesian_2d(x_axis.coord(), y_axis.coord())?;
        let fx = |v: &f64| x_axis.label(*v);
        let fy = |v: &f64| y_axis.label(*v);
        chart
            .configure_mesh()
            .set_all_tick_mark_size(4)
            .bold_line_style(GRID.stroke_width(1))
            .light_line_style(TRANSPARENT)
            .axis_style(MUTED.stroke_width(1))
            .label_style(text(LABEL_PX, INK))
            .axis_desc_style(text(LABEL_PX, INK))
            .x_label_formatter(&fx)
            .y_label_formatter(&fy)
            .x_desc(x_desc.as_str())
            .y_desc(y_desc.as_str())
            .draw()?;
        let rect = Rect {
            x0: x_axis.lo,
            x1: x_axis.hi,
            y0: y_axis.lo,
            y1: y_axis.hi,
        };
        let area = chart.plotting_area();
        if let Some((a, b)) = fit {
            let pivot = (mean_x, a + b * mean_x);
            if c0.is_finite() && c1.is_finite() {
                for end in [x_axis.lo, x_axis.hi] {
                    let dx = end - pivot.0;
                    let tri = [pivot, (end, pivot.1 + c0 * dx), (end, pivot.1 + c1 * dx)];
                    let clipped = clip_polygon(&tri, &rect);
                    if clipped.len() >= 3 {
                        area.draw(&Polygon::new(clipped, PALETTE[1].mix(0.2).filled()))?;
                    }
                }
            }
            let line = (
                (x_axis.lo, a + b * x_axis.lo),
                (x_axis.hi, a + b * x_axis.hi),
            );
            if let Some((p, q)) = clip_segment(line.0, line.1, &rect) {
                area.draw(&PathElement::new(vec![p, q], PALETTE[1].stroke_width(2)))?;
            }
        }
        for p in &pts {
            area.draw(&Circle::new(*p, 3, PALETTE[0].filled()))?;
        }
        Ok(())
    })
}

// ------------------------------------------------------------------- shared

fn dist_values(r: &Distribution) -> [f64; 8] {
    [
        r.min, r.p50, r.p90, r.p95, r.p99, r.max, r.ci_low, r.ci_high,
    ]
}

fn bars_impl(
    title: &str,
    unit: &str,
    rows: &[(String, Vec<Option<&Bar>>)],
    series_names: &[String],
    reference_line: Option<(f64, &str)>,
) -> Option<String> {
    let bars: Vec<&Bar> = rows
        .iter()
        .flat_map(|r| r.1.iter().flatten())
        .copied()
        .collect();
    if bars.is_empty() {
        return None;
    }
    let mut values = vec![0.0];
    for b in &bars {
        values.push(b.value);
        values.extend(
            [b.low, b.high]
                .into_iter()
                .flatten()
                .filter(|v| v.is_finite()),
        );
    }
    let reference = reference_line.filter(|r| r.0.is_finite());
    if let Some((v, _)) = reference {
        values.push(v);
    }
    let (lo, hi) = min_max(&values)?;
    // Room for the value labels at the ends of the bars.
    let room = (hi - lo) * 0.14;
    let has_neg = bars.iter().any(|b| b.value < 0.0);
    let has_pos = bars.iter().any(|b| b.value >= 0.0);
    let axis = linear_axis(
        if has_neg { lo - room } else { lo },
        if has_pos { hi + room } else { hi },
    )?;
    let n_series = rows.iter().map(|r| r.1.len()).max().unwrap_or(1).max(1);
    let colour = |j: usize| {
        if n_series == 1 {
            PALETTE[0]
        } else {
            PALETTE[j % PALETTE.len()]
        }
    };
    let mut legend: Vec<(Swatch, String)> = if n_series > 1 {
        series_names
            .iter()
            .enumerate()
            .map(|(j, n)| (Swatch::Fill(colour(j)), n.clone()))
            .collect()
    } else {
        vec![]
    };
    if let Some((v, name)) = reference {
        let name = clean_label(name);
        let name = if name.is_empty() {
            format!("reference {}", fmt_sig(v))
        } else {
            name
        };
        legend.push((Swatch::Dashed(ALERT), name));
    }
    let spec = RowSpec {
        header: Header {
            title: title.to_string(),
            legend,
            notes: vec![],
        },
        axis,
        x_desc: axis_desc(unit, false),
        labels: rows.iter().map(|r| r.0.clone()).collect(),
        row_px: (u32::try_from(n_series).unwrap_or(u32::MAX / 16))
            .saturating_mul(13)
            .clamp(24, 120),
    };
    render_rows(&spec, |chart, root| {
        let n = rows.len();
        let area = chart.plotting_area();
        let h = 0.8 / n_series as f64;
        for (i, (_, per_series)) in rows.iter().enumerate() {
            let top = row_center(n, i) + 0.4;
            for (j, bar) in per_series.iter().enumerate() {
                let Some(b) = bar else { continue };
                let (y0, y1) = (top - (j as f64 + 1.0) * h, top - j as f64 * h);
                let yc = (y0 + y1) / 2.0;
                let (inner0, inner1) = (y0 + 0.12 * h, y1 - 0.12 * h);
                area.draw(&Rectangle::new(
                    [
                        (0.0_f64.min(b.value), inner0),
                        (0.0_f64.max(b.value), inner1),
                    ],
                    colour(j).filled(),
                ))?;
                let low = b.low.filter(|v| v.is_finite());
                let high = b.high.filter(|v| v.is_finite());
                if low.is_some() || high.is_some() {
                    let (a, c) = (low.unwrap_or(b.value), high.unwrap_or(b.value));
                    let cap = 0.25 * h;
                    area.draw(&PathElement::new(
                        vec![(a, yc), (c, yc)],
                        INK.stroke_width(1),
                    ))?;
                    for e in [low, high].into_iter().flatten() {
                        area.draw(&PathElement::new(
                            vec![(e, yc - cap), (e, yc + cap)],
                            INK.stroke_width(1),
                        ))?;
                    }
                }
                let ends = [Some(b.value), low, high];
                let ends = ends.iter().flatten().copied();
                let (anchor_x, hpos, dx) = if b.value >= 0.0 {
                    (ends.fold(b.value, f64::max), HPos::Left, 4)
                } else {
                    (ends.fold(b.value, f64::min), HPos::Right, -4)
                };
                let (px, py) = chart.backend_coord(&(anchor_x, yc));
                root.draw(&Text::new(
                    fmt_sig(b.value),
                    (px + dx, py),
                    text(SMALL_PX, INK).pos(Pos::new(hpos, VPos::Center)),
                ))?;
            }
        }
        if let Some((v, _)) = reference {
            // Dashes drawn here (fixed pixel pattern) rather than by plotters.
            let (px, top) = chart.backend_coord(&(v, n as f64));
            let (_, bottom) = chart.backend_coord(&(v, 0.0));
            let mut y = top;
            while y < bottom {
                let end = (y + 6).min(bottom);
                root.draw(&PathElement::new(
                    vec![(px, y), (px, end)],
                    ALERT.stroke_width(2),
                ))?;
                y += 10;
            }
        }
        Ok(())
    })
}

/// A chart with one horizontal row per label (top to bottom), x from `axis`.
struct RowSpec {
    header: Header,
    axis: Axis,
    x_desc: String,
    labels: Vec<String>,
    row_px: u32,
}

fn row_center(n: usize, i: usize) -> f64 {
    n as f64 - i as f64 - 0.5
}

fn render_rows<F>(spec: &RowSpec, body: F) -> Option<String>
where
    F: FnOnce(&Chart<'_, '_>, &Area<'_>) -> DrawResult,
{
    let n = spec.labels.len();
    if n == 0 {
        return None;
    }
    let rows_px = u32::try_from(n).ok()?.checked_mul(spec.row_px)?;
    let header_h = spec.header.height();
    let x_area = if spec.x_desc.is_empty() { 26 } else { 42 };
    let height = header_h.checked_add(rows_px)?.checked_add(x_area + 14)?;
    let label_w = spec
        .labels
        .iter()
        .map(|l| text_width(l, LABEL_PX))
        .max()
        .unwrap_or(0)
        .clamp(20, 320)
        + 14;
    render(height, |root| {
        spec.header.draw(root)?;
        let (_, body_area) = root.split_vertically(header_h);
        let labels = &spec.labels;
        let y_ticks: Vec<f64> = (0..n).map(|i| row_center(n, i)).collect();
        let mut chart = ChartBuilder::on(&body_area)
            .margin_top(6)
            .margin_left(8)
            .margin_right(24)
            .margin_bottom(8)
            .x_label_area_size(x_area)
            .y_label_area_size(label_w)
            .build_cartesian_2d(spec.axis.coord(), Ticked::new(0.0..n as f64, y_ticks))?;
        let fx = |v: &f64| spec.axis.label(*v);
        let fy = |v: &f64| {
            let i = (n as f64 - 0.5 - v).round();
            if i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let mut mesh = chart.configure_mesh();
        mesh.disable_y_mesh()
            .set_all_tick_mark_size(4)
            .bold_line_style(GRID.stroke_width(1))
            .light_line_style(TRANSPARENT)
            .axis_style(MUTED.stroke_width(1))
            .label_style(text(LABEL_PX, INK))
            .axis_desc_style(text(LABEL_PX, INK))
            .x_label_formatter(&fx)
            .y_label_formatter(&fy);
        if !spec.x_desc.is_empty() {
            mesh.x_desc(spec.x_desc.as_str());
        }
        mesh.draw()?;
        body(&chart, root)
    })
}

/// Draws on a fresh white `WIDTH × height` canvas and returns the SVG.
fn render<F>(height: u32, draw: F) -> Option<String>
where
    F: FnOnce(&Area<'_>) -> DrawResult,
{
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        draw(&root).ok()?;
        root.present().ok()?;
    }
    finish(buf)
}

/// A standalone `<svg …>…</svg>`: no XML prolog, no trailing newline.
fn finish(buf: String) -> Option<String> {
    let start = buf.find("<svg")?;
    let svg = buf[start..].trim_end();
    (svg.ends_with("</svg>")).then(|| svg.to_string())
}

fn text(px: f64, colour: RGBColor) -> TextStyle<'static> {
    (FONT, px * 1.24).into_font().color(&colour)
}

/// The layout's width estimate for `s` (≈ 0.6 em per character).
fn text_width(s: &str, px: f64) -> u32 {
    let chars = u32::try_from(s.chars().count()).unwrap_or(u32::MAX / 8);
    (f64::from(chars) * px * 0.6).ceil() as u32
}

/// Printable, single-line, bounded length.
fn clean_label(s: &str) -> String {
    truncate(s, MAX_LABEL_CHARS)
}

fn truncate(s: &str, max_chars: usize) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            // Controls and the XML-invalid noncharacters would break the SVG.
            if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' {
                ' '
            } else {
                c
            }
        })
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.chars().count() <= max_chars {
        cleaned.to_string()
    } else {
        let mut out: String = cleaned.chars().take(max_chars.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

fn axis_desc(unit: &str, log: bool) -> String {
    let unit = clean_label(unit);
    match (unit.is_empty(), log) {
        (true, false) => String::new(),
        (true, true) => "log scale".to_string(),
        (false, false) => unit,
        (false, true) => format!("{unit} (log scale)"),
    }
}

fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let mut it = values.iter().copied().filter(|v| v.is_finite());
    let first = it.next()?;
    Some(it.fold((first, first), |(a, b), v| (a.min(v), b.max(v))))
}

/// Three significant digits, plain for 1e-3 ≤ |v| < 1e6, else scientific.
fn fmt_sig(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let mag = libm::floor(libm::log10(v.abs()));
    if (-3.0..6.0).contains(&mag) {
        let decimals = (2.0 - mag).max(0.0) as usize;
        format!("{v:.decimals$}")
    } else {
        trim_sci(&format!("{v:.2e}"))
    }
}

/// "1.50e6" → "1.5e6", "2.00e-7" → "2e-7".
fn trim_sci(s: &str) -> String {
    match s.split_once('e') {
        Some((m, e)) if m.contains('.') => {
            format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
        }
        _ => s.to_string(),
    }
}

// ---------------------------------------------------------------------- axes

/// An axis in plot space (log10 of the data when `log`), with its ticks.
#[derive(Debug, Clone)]
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    ticks: Vec<(f64, String)>,
}

impl Axis {
    fn map(&self, v: f64) -> Option<f64> {
        if !v.is_finite() {
            None
        } else if self.log {
            (v > 0.0).then(|| libm::log10(v)).filter(|l| l.is_finite())
        } else {
            Some(v)
        }
    }

    fn label(&self, v: f64) -> String {
        self.ticks
            .iter()
            .find(|t| t.0.to_bits() == v.to_bits())
            .map(|t| t.1.clone())
            .unwrap_or_default()
    }

    fn coord(&self) -> Ticked {
        Ticked::new(self.lo..self.hi, self.ticks.iter().map(|t| t.0).collect())
    }
}

/// A linear f64 coordinate whose ticks are given (plotters' `WithKeyPoints`
/// over `RangedCoordf64` cannot take a label formatter); no light grid lines.
struct Ticked {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ticked {
    fn new(range: Range<f64>, ticks: Vec<f64>) -> Self {
        Self {
            inner: range.into(),
            ticks,
        }
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            vec![]
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

/// A linear axis over `min..max` (widened when empty), ticks at the
/// multiples of a "nice" step (1, 2 or 5 × 10^k, about six of them).
fn linear_axis(min: f64, max: f64) -> Option<Axis> {
    if !(min.is_finite() && max.is_finite()) {
        return None;
    }
    let (mut lo, mut hi) = (min.min(max), min.max(max));
    let scale = lo.abs().max(hi.abs());
    if hi - lo <= scale * 1e-9 {
        let d = if scale == 0.0 { 1.0 } else { scale * 0.1 };
        lo -= d;
        hi += d;
    }
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return None;
    }
    let raw = span / 6.0;
    let e = libm::floor(libm::log10(raw));
    let base = libm::pow(10.0, e);
    if !(base.is_finite() && base > 0.0) {
        return None;
    }
    let f = raw / base;
    let (nice, e) = if f <= 1.0 {
        (1.0, e)
    } else if f <= 2.0 {
        (2.0, e)
    } else if f <= 5.0 {
        (5.0, e)
    } else {
        (1.0, e + 1.0)
    };
    let step = nice * libm::pow(10.0, e);
    // Ticks at the multiples of `step` inside the range (a hair of slack so
    // that a bound on a multiple keeps its tick).
    let (k0, k1) = ((lo / step - 1e-9).ceil(), (hi / step + 1e-9).floor());
    if !(k0.is_finite() && k1.is_finite() && step > 0.0) || k1 - k0 > 40.0 || k1 < k0 {
        return None;
    }
    let decimals = (-e).max(0.0) as usize;
    let sci = lo.abs().max(hi.abs()) >= 1e6 || step < 1e-4;
    let ticks = (k0 as i64..=k1 as i64)
        .map(|k| {
            let v = k as f64 * step;
            let label = if k == 0 {
                "0".to_string()
            } else if sci {
                trim_sci(&format!("{v:.3e}"))
            } else {
                format!("{v:.decimals$}")
            };
            (v, label)
        })
        .collect();
    Some(Axis {
        lo,
        hi,
        log: false,
        ticks,
    })
}

/// A log10 axis covering `min..max` (both > 0) with a little padding; ticks
/// at decades, or at 1-2-5 (then 1..9) multiples when fewer than three
/// decades are in range.
fn log_axis(min: f64, max: f64) -> Option<Axis> {
    if !(min.is_finite() && max.is_finite() && min > 0.0 && max > 0.0) {
        return None;
    }
    let (l0, l1) = (libm::log10(min.min(max)), libm::log10(min.max(max)));
    if !(l0.is_finite() && l1.is_finite()) {
        return None;
    }
    let pad = ((l1 - l0) * 0.04).max(0.05);
    let (lo, hi) = (l0 - pad, l1 + pad);
    let (d0, d1) = (lo.floor() as i32, hi.ceil() as i32);
    let stride = ((d1 - d0) / 8).max(1);
    let mut ticks: Vec<(f64, String)> = Vec::new();
    for mults in [&[1][..], &[1, 2, 5], &[1, 2, 3, 4, 5, 6, 7, 8, 9]] {
        ticks.clear();
        for k in d0..=d1 {
            if mults.len() == 1 && k.rem_euclid(stride) != 0 {
                continue;
            }
            for &m in mults {
                let v = libm::log10(f64::from(m)) + f64::from(k);
                if (lo..=hi).contains(&v) {
                    ticks.push((v, pow10_label(m, k)));
                }
            }
        }
        if ticks.len() >= 3 {
            break;
        }
    }
    Some(Axis {
        lo,
        hi,
        log: true,
        ticks,
    })
}

/// `m × 10^k` written exactly: "0.002", "50", "1e9".
fn pow10_label(m: i32, k: i32) -> String {
    if (0..=5).contains(&k) {
        format!("{m}{}", "0".repeat(k as usize))
    } else if (-4..0).contains(&k) {
        format!("0.{}{m}", "0".repeat((-k - 1) as usize))
    } else {
        format!("{m}e{k}")
    }
}

// ------------------------------------------------------------------- header

#[derive(Debug, Clone, Copy)]
enum Swatch {
    Fill(RGBColor),
    Band(RGBColor),
    Box(RGBColor),
    Line(RGBColor, u32),
    Dashed(RGBColor),
    Tick(RGBColor, u32),
    Dot(RGBColor),
    Whisker(RGBColor),
}

/// Title, a wrapped legend line and note lines above the chart.
struct Header {
    title: String,
    legend: Vec<(Swatch, String)>,
    notes: Vec<(String, RGBColor)>,
}

const PAD_X: i32 = 10;
const TITLE_LINE: i32 = 22;
const LEGEND_LINE: i32 = 17;
const NOTE_LINE: i32 = 16;

struct HeaderLayout {
    /// (x, y-centre, swatch, label)
    legend: Vec<(i32, i32, Swatch, String)>,
    /// (y-centre, text, colour)
    notes: Vec<(i32, String, RGBColor)>,
    height: u32,
}

impl Header {
    fn layout(&self) -> HeaderLayout {
        let right = WIDTH as i32 - PAD_X;
        let mut y = 6 + TITLE_LINE;
        let mut legend = Vec::new();
        if !self.legend.is_empty() {
            let mut x = PAD_X;
            let mut yc = y + LEGEND_LINE / 2;
            for (sw, label) in &self.legend {
                let label = truncate(label, 40);
                let w = 18 + text_width(&label, SMALL_PX) as i32 + 14;
                if x > PAD_X && x + w > right {
                    x = PAD_X;
                    yc += LEGEND_LINE;
                }
                legend.push((x, yc, *sw, label));
                x += w;
            }
            y = yc + LEGEND_LINE / 2 + 1;
        }
        let mut notes = Vec::new();
        let max_chars = ((right - PAD_X) as f64 / (SMALL_PX * 0.6)) as usize;
        for (note, colour) in &self.notes {
            notes.push((y + NOTE_LINE / 2, truncate(note, max_chars), *colour));
            y += NOTE_LINE;
        }
        HeaderLayout {
            legend,
            notes,
            height: (y + 4) as u32,
        }
    }

    fn height(&self) -> u32 {
        self.layout().height
    }

    fn draw(&self, root: &Area<'_>) -> DrawResult {
        let layout = self.layout();
        let title = truncate(&self.title, MAX_TITLE_CHARS);
        root.draw(&Text::new(
            title,
            (PAD_X, 6 + TITLE_LINE / 2),
            (FONT, TITLE_PX * 1.24)
                .into_font()
                .style(FontStyle::Bold)
                .color(&INK)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        for (x, yc, sw, label) in &layout.legend {
            draw_swatch(root, *x, *yc, *sw)?;
            root.draw(&Text::new(
                label.clone(),
                (x + 18, *yc),
                text(SMALL_PX, INK).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
        for (yc, note, colour) in &layout.notes {
            root.draw(&Text::new(
                note.clone(),
                (PAD_X, *yc),
                text(SMALL_PX, *colour).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
        Ok(())
    }
}

fn draw_swatch(root: &Area<'_>, x: i32, y: i32, sw: Swatch) -> DrawResult {
    match sw {
        Swatch::Fill(c) => root.draw(&Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()))?,
        Swatch::Band(c) => root.draw(&Rectangle::new(
            [(x, y - 5), (x + 14, y + 5)],
            c.mix(0.2).filled(),
        ))?,
        Swatch::Box(c) => {
            root.draw(&Rectangle::new(
                [(x, y - 5), (x + 14, y + 5)],
                c.mix(0.25).filled(),
            ))?;
            root.draw(&Rectangle::new(
                [(x, y - 5), (x + 14, y + 5)],
                c.stroke_width(1),
            ))?;
        }
        Swatch::Line(c, w) => root.draw(&PathElement::new(
            vec![(x, y), (x + 14, y)],
            c.stroke_width(w),
        ))?,
        Swatch::Dashed(c) => {
            root.draw(&PathElement::new(
                vec![(x, y), (x + 5, y)],
                c.stroke_width(2),
            ))?;
            root.draw(&PathElement::new(
                vec![(x + 9, y), (x + 14, y)],
                c.stroke_width(2),
            ))?;
        }
        Swatch::Tick(c, w) => root.draw(&PathElement::new(
            vec![(x + 7, y - 6), (x + 7, y + 6)],
            c.stroke_width(w),
        ))?,
        Swatch::Dot(c) => root.draw(&Circle::new((x + 7, y), 3, c.filled()))?,
        Swatch::Whisker(c) => {
            root.draw(&PathElement::new(
                vec![(x, y), (x + 14, y)],
                c.stroke_width(1),
            ))?;
            for e in [x, x + 14] {
                root.draw(&PathElement::new(
                    vec![(e, y - 4), (e, y + 4)],
                    c.stroke_width(1),
                ))?;
            }
        }
    }
    Ok(())
}

// ----------------------------------------------------------------- clipping

struct Rect {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

/// Sutherland–Hodgman clip of a convex polygon; empty if anything is
/// non-finite.
fn clip_polygon(poly: &[Pt], r: &Rect) -> Vec<Pt> {
    if poly.iter().any(|p| !(p.0.is_finite() && p.1.is_finite())) {
        return vec![];
    }
    // (inside test, intersection with the edge)
    type Inside = fn(Pt, &Rect) -> bool;
    type Cross = fn(Pt, Pt, &Rect) -> Pt;
    let edges: [(Inside, Cross); 4] = [
        (|p, r| p.0 >= r.x0, |a, b, r| at_x(a, b, r.x0)),
        (|p, r| p.0 <= r.x1, |a, b, r| at_x(a, b, r.x1)),
        (|p, r| p.1 >= r.y0, |a, b, r| at_y(a, b, r.y0)),
        (|p, r| p.1 <= r.y1, |a, b, r| at_y(a, b, r.y1)),
    ];
    let mut out: Vec<Pt> = poly.to_vec();
    for (inside, cross) in edges {
        let input = std::mem::take(&mut out);
        let Some(&last) = input.last() else { break };
        let mut prev = last;
        for &cur in &input {
            match (inside(cur, r), inside(prev, r)) {
                (true, true) => out.push(cur),
                (true, false) => {
                    out.push(cross(prev, cur, r));
                    out.push(cur);
                }
                (false, true) => out.push(cross(prev, cur, r)),
                (false, false) => {}
            }
            prev = cur;
        }
    }
    if out.iter().all(|p| p.0.is_finite() && p.1.is_finite()) {
        out
    } else {
        vec![]
    }
}

fn at_x(a: Pt, b: Pt, x: f64) -> Pt {
    let t = (x - a.0) / (b.0 - a.0);
    (x, a.1 + t * (b.1 - a.1))
}

fn at_y(a: Pt, b: Pt, y: f64) -> Pt {
    let t = (y - a.1) / (b.1 - a.1);
    (a.0 + t * (b.0 - a.0), y)
}

/// Liang–Barsky clip of a segment; `None` when outside or non-finite.
fn clip_segment(a: Pt, b: Pt, r: &Rect) -> Option<(Pt, Pt)> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    if ![a.0, a.1, dx, dy].iter().all(|v| v.is_finite()) {
        return None;
    }
    let (mut t0, mut t1) = (0.0_f64, 1.0_f64);
    for (p, q) in [
        (-dx, a.0 - r.x0),
        (dx, r.x1 - a.0),
        (-dy, a.1 - r.y0),
        (dy, r.y1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
        }
    }
    if t0 > t1 || !(t0.is_finite() && t1.is_finite()) {
        return None;
    }
    let p = (a.0 + t0 * dx, a.1 + t0 * dy);
    let q = (a.0 + t1 * dx, a.1 + t1 * dy);
    [p.0, p.1, q.0, q.1]
        .iter()
        .all(|v| v.is_finite())
        .then_some((p, q))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(label: &str, scale: f64) -> Distribution {
        Distribution {
            label: label.into(),
            min: 1.0 * scale,
            p50: 2.0 * scale,
            p90: 3.0 * scale,
            p95: 3.5 * scale,
            p99: 4.5 * scale,
            max: 6.0 * scale,
            ci_low: 1.9 * scale,
            ci_high: 2.1 * scale,
        }
    }

    fn sample_distributions() -> Vec<Distribution> {
        vec![
            dist("tiny-llama f32 batch=1", 10.0),
            dist("tiny-llama f16 batch=8", 14.0),
            dist("gpt2 q8_0 batch=1", 9.0),
        ]
    }

    fn sample_stacks() -> Vec<Stack> {
        (1..=4)
            .map(|b| Stack {
                label: format!("batch={b}"),
                segments: vec![
                    ("prefill".into(), 12.0 * f64::from(b)),
                    ("decode".into(), 80.0 + 5.0 * f64::from(b)),
                ],
            })
            .collect()
    }

    fn sample_bars() -> Vec<Bar> {
        vec![
            Bar {
                label: "cell a".into(),
                value: 0.95,
                low: Some(0.93),
                high: Some(0.97),
            },
            Bar {
                label: "cell b".into(),
                value: 0.72,
                low: None,
                high: None,
            },
        ]
    }

    fn sample_scaling(log_log: bool, identifiable: bool) -> Scaling {
        let law = |b: f64| {
            let noise = 1.0 + 0.05 * libm::sin(b);
            if log_log {
                3.0 * libm::pow(b, 0.9) * noise
            } else {
                (3.0 + 0.9 * b) * noise
            }
        };
        let points = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
            .iter()
            .map(|&b| (b, law(b)))
            .collect();
        Scaling {
            title: "throughput vs batch".into(),
            x_label: "batch".into(),
            y_label: "tokens/s".into(),
            log_log,
            points,
            intercept: if log_log { libm::log(3.0) } else { 3.0 },
            slope: 0.9,
            slope_ci: (0.82, 0.97),
            identifiable,
        }
    }

    /// Shape only: any label text may appear inside.
    fn assert_svg_shape(svg: &str) {
        assert!(svg.starts_with("<svg "), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<svg").count(), 1);
        assert_eq!(svg.matches("</svg>").count(), 1);
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    /// For inputs whose labels are known: no prolog, ids or non-finite numbers.
    fn assert_svg(svg: &str) {
        assert_svg_shape(svg);
        assert!(!svg.contains("<?xml"));
        assert!(!svg.contains(" id="));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        assert!(svg.contains(r#"font-family="sans-serif""#));
    }

    #[test]
    fn naive_text_measurement_is_in_use() {
        // With plotters' `ttf` feature (font-kit, system fonts) this estimate
        // would differ: the build must keep the fixed-width fallback.
        let font = (FONT, 12.4).into_font();
        let (w, h) = font.box_size("abcd").unwrap();
        let em: f64 = 12.4 / 1.24 / 1.24;
        assert_eq!(w, (em * 0.7 * 4.0).round() as u32);
        assert_eq!(h, (em.round() + (em * 0.24).round()) as u32);
    }

    #[test]
    fn distributions_are_deterministic_and_labelled() {
        let rows = sample_distributions();
        let a = latency_distributions("decode latency", "ms", &rows).unwrap();
        let b = latency_distributions("decode latency", "ms", &rows.clone()).unwrap();
        assert_eq!(a, b);
        assert_svg(&a);
        for r in &rows {
            assert!(a.contains(&r.label), "{}", r.label);
        }
        assert!(a.contains("decode latency"));
        assert!(a.contains(">\nms\n<"), "x axis unit");
        assert!(!a.contains("log scale"));
    }

    #[test]
    fn distributions_use_log_axis_beyond_two_decades() {
        let rows = vec![dist("fast", 0.01), dist("slow", 100.0)];
        let svg = latency_distributions("t", "ms", &rows).unwrap();
        assert_svg(&svg);
        assert!(svg.contains("ms (log scale)"));
        // Decade labels, written exactly.
        assert!(
            svg.contains(">\n0.1\n<") && svg.contains(">\n100\n<"),
            "{svg}"
        );
    }

    #[test]
    fn distributions_degenerate_inputs() {
        assert_eq!(latency_distributions("t", "ms", &[]), None);
        let nan = Distribution {
            label: "nan".into(),
            min: f64::NAN,
            p50: f64::NAN,
            p90: f64::INFINITY,
            p95: f64::NEG_INFINITY,
            p99: f64::NAN,
            max: f64::NAN,
            ci_low: f64::NAN,
            ci_high: f64::NAN,
        };
        assert_eq!(
            latency_distributions("t", "ms", std::slice::from_ref(&nan)),
            None
        );
        // One NaN row among good ones: dropped, the rest drawn.
        let svg = latency_distributions("t", "ms", &[nan, dist("ok", 1.0)]).unwrap();
        assert!(svg.contains(">\nok\n<") && !svg.contains(">\nnan\n<"));
        // Zeros, negatives, partial rows, equal values: a sane plot.
        for r in [
            Distribution {
                label: "zero".into(),
                ..Default::default()
            },
            dist("neg", -3.0),
            Distribution {
                p50: 5.0,
                ..dist("partial", f64::NAN)
            },
            Distribution {
                ci_low: 10.0,
                ci_high: 1.0,
                ..dist("swapped ci", 1.0)
            },
        ] {
            let svg = latency_distributions("t", "", &[r]).unwrap();
            assert_svg(&svg);
        }
    }

    #[test]
    fn stacked_bars_are_deterministic_with_legend() {
        let rows = sample_stacks();
        let a = stacked_bars("phase split", "ms", &rows).unwrap();
        assert_eq!(a, stacked_bars("phase split", "ms", &rows).unwrap());
        assert_svg(&a);
        for l in ["batch=1", "batch=4", "prefill", "decode", "phase split"] {
            assert!(a.contains(l), "{l}");
        }
        // Legend colours follow first appearance.
        let pre = a.find(">\nprefill\n<").unwrap();
        let dec = a.find(">\ndecode\n<").unwrap();
        assert!(pre < dec);
    }

    #[test]
    fn stacked_bars_degenerate_inputs() {
        assert_eq!(stacked_bars("t", "ms", &[]), None);
        let empty = Stack {
            label: "x".into(),
            segments: vec![],
        };
        assert_eq!(stacked_bars("t", "ms", std::slice::from_ref(&empty)), None);
        let bad = Stack {
            label: "bad".into(),
            segments: vec![("a".into(), f64::NAN), ("b".into(), -1.0)],
        };
        assert_eq!(stacked_bars("t", "ms", std::slice::from_ref(&bad)), None);
        let zero = Stack {
            label: "zero".into(),
            segments: vec![("a".into(), 0.0)],
        };
        assert_svg(&stacked_bars("t", "ms", &[zero, bad, empty]).unwrap());
        let huge = Stack {
            label: "huge".into(),
            segments: vec![("a".into(), f64::MAX), ("b".into(), f64::MAX)],
        };
        // Overflowing totals: no panic; None or a plot.
        if let Some(svg) = stacked_bars("t", "ms", &[huge]) {
            assert_svg(&svg);
        }
    }

    #[test]
    fn bars_are_deterministic_with_reference_line() {
        let rows = sample_bars();
        let a = bars(
            "decode fraction",
            "",
            &rows,
            Some((0.9, "decode-bound at 0.9")),
        )
        .unwrap();
        assert_eq!(
            a,
            bars(
                "decode fraction",
                "",
                &rows,
                Some((0.9, "decode-bound at 0.9"))
            )
            .unwrap()
        );
        assert_svg(&a);
        for l in ["cell a", "cell b", "decode-bound at 0.9", "0.950", "0.720"] {
            assert!(a.contains(l), "{l}");
        }
        let none = bars("t", "", &rows, None).unwrap();
        assert!(!none.contains("reference"));
        let unnamed = bars("t", "", &rows, Some((0.9, ""))).unwrap();
        assert!(unnamed.contains("reference 0.900"));
    }

    #[test]
    fn grouped_bars_have_series_legend() {
        let series = vec![
            BarSeries {
                name: "on-demand".into(),
                bars: sample_bars(),
            },
            BarSeries {
                name: String::new(),
                bars: vec![Bar {
                    label: "cell c".into(),
                    value: 0.3,
                    low: Some(0.2),
                    high: Some(0.5),
                }],
            },
        ];
        let a = grouped_bars("cost per 1M tokens", "USD", &series, None).unwrap();
        assert_eq!(
            a,
            grouped_bars("cost per 1M tokens", "USD", &series, None).unwrap()
        );
        assert_svg(&a);
        for l in ["on-demand", "series 2", "cell a", "cell b", "cell c", "USD"] {
            assert!(a.contains(l), "{l}");
        }
        assert_eq!(grouped_bars("t", "", &[], None), None);
    }

    #[test]
    fn bars_degenerate_inputs() {
        assert_eq!(bars("t", "", &[], None), None);
        let nan = Bar {
            label: "nan".into(),
            value: f64::NAN,
            low: Some(f64::NAN),
            high: Some(f64::INFINITY),
        };
        assert_eq!(
            bars("t", "", std::slice::from_ref(&nan), Some((0.9, "x"))),
            None
        );
        let odd = vec![
            nan,
            Bar {
                label: "zero".into(),
                value: 0.0,
                low: Some(f64::NAN),
                high: None,
            },
            Bar {
                label: "negative".into(),
                value: -2.0,
                low: Some(-3.0),
                high: Some(-1.0),
            },
            Bar {
                label: "x".repeat(500),
                value: 1e12,
                low: None,
                high: Some(2e12),
            },
        ];
        let svg = bars("t", "", &odd, Some((f64::NAN, "ignored"))).unwrap();
        assert_svg(&svg);
        assert!(!svg.contains("ignored"));
        assert!(
            !svg.contains(&"x".repeat(MAX_LABEL_CHARS)),
            "long labels are cut"
        );
    }

    #[test]
    fn scaling_is_deterministic_and_annotated() {
        for log_log in [true, false] {
            let s = sample_scaling(log_log, false);
            let a = scaling(&s).unwrap();
            assert_eq!(a, scaling(&s.clone()).unwrap());
            assert_svg(&a);
            for l in [
                "throughput vs batch",
                "unidentifiable (AM rule 7)",
                "slope 0.900 (95% CI 0.820 to 0.970), ",
                "tokens/s",
                "<polygon",
            ] {
                assert!(a.contains(l), "{l} (log_log {log_log})");
            }
            // One circle per point, and one in the legend.
            assert_eq!(a.matches("<circle").count(), s.points.len() + 1);
            let ok = scaling(&sample_scaling(log_log, true)).unwrap();
            assert!(!ok.contains("unidentifiable"));
        }
    }

    #[test]
    fn scaling_degenerate_inputs() {
        let base = sample_scaling(true, true);
        let none = Scaling {
            points: vec![],
            ..base.clone()
        };
        assert_eq!(scaling(&none), None);
        let unplottable = Scaling {
            points: vec![
                (0.0, 1.0),
                (-1.0, 2.0),
                (f64::NAN, 1.0),
                (3.0, f64::INFINITY),
            ],
            ..base.clone()
        };
        assert_eq!(scaling(&unplottable), None);
        let cases = [
            Scaling {
                points: vec![(4.0, 10.0)],
                ..base.clone()
            },
            Scaling {
                points: vec![(4.0, 10.0), (4.0, 12.0), (0.0, 3.0)],
                ..base.clone()
            },
            Scaling {
                intercept: f64::NAN,
                slope: f64::INFINITY,
                slope_ci: (f64::NAN, 1.0),
                ..base.clone()
            },
            Scaling {
                slope: 1e300,
                slope_ci: (-1e300, 1e300),
                ..base.clone()
            },
            Scaling {
                log_log: false,
                points: vec![(0.0, 0.0), (0.0, 0.0)],
                ..base.clone()
            },
            Scaling {
                log_log: false,
                points: vec![(-1e300, 1e-300), (1e300, -1e300)],
                ..base.clone()
            },
        ];
        for s in &cases {
            if let Some(svg) = scaling(s) {
                assert_svg(&svg);
            }
        }
        let skipped = scaling(&cases[1]).unwrap();
        assert!(skipped.contains("1 point(s) not drawn"));
    }

    #[test]
    fn axes_and_numbers_are_exact() {
        let a = linear_axis(0.0, 1.0).unwrap();
        let labels: Vec<&str> = a.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let a = linear_axis(0.0, 3.2e7).unwrap();
        assert!(a.ticks.iter().any(|t| t.1 == "1e7"), "{:?}", a.ticks);
        let a = log_axis(0.02, 300.0).unwrap();
        let labels: Vec<&str> = a.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0.1", "1", "10", "100"]);
        let a = log_axis(3.0, 7.0).unwrap();
        assert!(a.ticks.len() >= 3, "{:?}", a.ticks);
        assert_eq!(pow10_label(5, -3), "0.005");
        assert_eq!(pow10_label(2, 9), "2e9");
        assert_eq!(fmt_sig(1234.6), "1235");
        assert_eq!(fmt_sig(0.012345), "0.0123");
        assert_eq!(fmt_sig(-2.5e-7), "-2.5e-7");
        assert_eq!(truncate("a\u{0}b", 10), "a b");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }

    #[test]
    fn extreme_finite_values_do_not_panic() {
        let extremes = [
            f64::MAX,
            -f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            -5e-324,
            0.0,
            -0.0,
            1e-300,
            1e300,
        ];
        for &a in &extremes {
            for &b in &extremes {
                let d = Distribution {
                    label: "d".into(),
                    min: a,
                    p50: b,
                    p90: a,
                    p95: b,
                    p99: a,
                    max: b,
                    ci_low: a,
                    ci_high: b,
                };
                let stack = Stack {
                    label: "s".into(),
                    segments: vec![("x".into(), a), ("y".into(), b)],
                };
                let bar = Bar {
                    label: "b".into(),
                    value: a,
                    low: Some(b),
                    high: Some(a),
                };
                let outputs = [
                    latency_distributions("t", "ms", &[d]),
                    stacked_bars("t", "ms", &[stack]),
                    bars("t", "", &[bar], Some((b, "ref"))),
                    scaling(&Scaling {
                        points: vec![(a, b), (b, a), (1.0, 1.0)],
                        intercept: a,
                        slope: b,
                        slope_ci: (a, b),
                        ..sample_scaling(true, true)
                    }),
                    scaling(&Scaling {
                        log_log: false,
                        points: vec![(a, b), (b, a)],
                        intercept: a,
                        slope: b,
                        slope_ci: (a, b),
                        ..sample_scaling(false, true)
                    }),
                ];
                for svg in outputs.iter().flatten() {
                    assert_svg(svg);
                }
            }
        }
    }

    #[test]
    fn hostile_labels_are_escaped() {
        let rows = [Bar {
            label: "<script>&\"'\u{0}\u{FFFF}".into(),
            value: 1.0,
            low: None,
            high: None,
        }];
        let svg = bars("</svg>", "<b>", &rows, None).unwrap();
        assert_svg(&svg);
        assert!(!svg.contains("<script") && !svg.contains("<b>") && !svg.contains('\u{0}'));
        assert!(svg.contains("&lt;script&gt;&amp;&quot;&apos;"));
    }

    #[test]
    fn clipping() {
        let r = Rect {
            x0: 0.0,
            x1: 1.0,
            y0: 0.0,
            y1: 1.0,
        };
        assert_eq!(
            clip_segment((-1.0, 0.5), (2.0, 0.5), &r),
            Some(((0.0, 0.5), (1.0, 0.5)))
        );
        assert_eq!(clip_segment((-1.0, 2.0), (2.0, 2.0), &r), None);
        let tri = clip_polygon(&[(0.5, 0.5), (2.0, -1.0), (2.0, 2.0)], &r);
        assert!(
            tri.iter()
                .all(|p| (0.0..=1.0).contains(&p.0) && (0.0..=1.0).contains(&p.1))
        );
        assert!(tri.len() >= 3);
        assert!(clip_polygon(&[(f64::NAN, 0.0), (1.0, 1.0), (0.0, 1.0)], &r).is_empty());
    }

    #[test]
    #[ignore = "writes samples to /tmp/plots-sample for a visual check"]
    fn write_samples() {
        let dir = std::path::Path::new("/tmp/plots-sample");
        std::fs::create_dir_all(dir).unwrap();
        let mut wide = sample_distributions();
        wide.push(dist("a much slower cell with a long label, batch=64", 60.0));
        let files = [
            (
                "distributions.svg",
                latency_distributions("TTFT", "ms", &sample_distributions()),
            ),
            (
                "distributions-log.svg",
                latency_distributions(
                    "per-token latency",
                    "ms",
                    &[dist("fast", 0.05), dist("mid", 2.0), dist("slow", 90.0)],
                ),
            ),
            (
                "distributions-wide.svg",
                latency_distributions("end-to-end latency", "ms", &wide),
            ),
            (
                "stacked.svg",
                stacked_bars("phase split", "ms per request", &sample_stacks()),
            ),
            (
                "bars.svg",
                bars(
                    "decode fraction",
                    "fraction of wall time",
                    &sample_bars(),
                    Some((0.9, "decode-bound (0.9)")),
                ),
            ),
            (
                "grouped.svg",
                grouped_bars(
                    "cost per 1M tokens",
                    "USD",
                    &[
                        BarSeries {
                            name: "on-demand".into(),
                            bars: sample_bars(),
                        },
                        BarSeries {
                            name: "spot".into(),
                            bars: sample_bars()
                                .into_iter()
                                .map(|b| Bar {
                                    value: b.value * 0.4,
                                    low: b.low.map(|v| v * 0.4),
                                    high: b.high.map(|v| v * 0.4),
                                    ..b
                                })
                                .collect(),
                        },
                    ],
                    None,
                ),
            ),
            ("scaling-loglog.svg", scaling(&sample_scaling(true, false))),
            ("scaling-linear.svg", scaling(&sample_scaling(false, true))),
        ];
        for (name, svg) in files {
            std::fs::write(dir.join(name), svg.unwrap()).unwrap();
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        #[test]
        fn no_panics_on_finite_inputs(
            v in proptest::collection::vec(-1e9_f64..1e9, 0..24),
            log_log in proptest::bool::ANY,
            label in ".{0,80}",
        ) {
            let d: Vec<Distribution> = v
                .chunks(8)
                .filter(|c| c.len() == 8)
                .map(|c| Distribution {
                    label: label.clone(),
                    min: c[0], p50: c[1], p90: c[2], p95: c[3],
                    p99: c[4], max: c[5], ci_low: c[6], ci_high: c[7],
                })
                .collect();
            if let Some(svg) = latency_distributions(&label, &label, &d) { assert_svg_shape(&svg); }
            let s: Vec<Stack> = v
                .chunks(3)
                .map(|c| Stack { label: label.clone(), segments: c.iter().map(|x| (label.clone(), *x)).collect() })
                .collect();
            if let Some(svg) = stacked_bars(&label, "ms", &s) { assert_svg_shape(&svg); }
            let b: Vec<Bar> = v
                .chunks(3)
                .map(|c| Bar { label: label.clone(), value: c[0], low: c.get(1).copied(), high: c.get(2).copied() })
                .collect();
            let reference = v.first().map(|r| (*r, label.as_str()));
            if let Some(svg) = bars(&label, "", &b, reference) { assert_svg_shape(&svg); }
            let points: Vec<(f64, f64)> = v.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0], c[1])).collect();
            let sc = Scaling {
                title: label.clone(),
                x_label: label.clone(),
                y_label: String::new(),
                log_log,
                points,
                intercept: v.first().copied().unwrap_or(0.0) / 1e8,
                slope: v.get(1).copied().unwrap_or(1.0) / 1e8,
                slope_ci: (v.get(2).copied().unwrap_or(0.0) / 1e8, v.get(3).copied().unwrap_or(2.0) / 1e8),
                identifiable: log_log,
            };
            if let Some(svg) = scaling(&sc) { assert_svg_shape(&svg); }
        }
    }
}
