//! The scaling-law plot: points, fitted line and the slope's CI band.

use plotters::prelude::*;

use super::axis::{Axis, linear_axis, log_axis};
use super::canvas::{Chart, PlotArea, render};
use super::clip::{Rect, clip_polygon, clip_segment};
use super::header::{Header, Swatch};
use super::hover::{Hotspot, attach, value};
use super::style::{
    ALERT, GRID, INK, LABEL_PX, MUTED, PALETTE, SCALING_PLOT_PX, axis_desc, fmt_sig, min_max, text,
    text_width,
};
use super::{DrawResult, Pt, Scaling};

/// Scatter of the points, the fitted line and the slope's 95% CI band over
/// the whole x range, on log-log axes when `log_log`. The band is the region
/// between the lines of slope `slope_ci.0` and `slope_ci.1` through the fitted
/// line's point at the mean of x in the fit's space (mean of `ln x` in
/// log-log). The slope and its CI are written under the title, and
/// "unidentifiable (AM rule 7)" in red when not identifiable. Points that
/// cannot be drawn (non-finite; non-positive in log-log) are counted in a note.
pub fn scaling(s: &Scaling) -> Option<String> {
    let log = s.log_log;
    let (pts, raw_pts): (Vec<Pt>, Vec<Pt>) = plot_points(s).into_iter().unzip();
    let skipped = s.points.len() - pts.len();
    let xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
    let ys: Vec<f64> = pts.iter().map(|p| p.1).collect();
    let (x_axis, y_axis) = axes(&xs, &ys, log)?;

    // The fit, in plot space: a straight line in both cases.
    let (icpt, slope) = if log {
        (s.intercept / std::f64::consts::LN_10, s.slope)
    } else {
        (s.intercept, s.slope)
    };
    let fit = (icpt.is_finite() && slope.is_finite()).then_some((icpt, slope));
    let mean_x = xs.iter().sum::<f64>() / xs.len() as f64;

    let header = Header {
        title: s.title.clone(),
        legend: vec![
            (Swatch::Dot(PALETTE[0]), "measured".into()),
            (Swatch::Line(PALETTE[1], 2), "fit".into()),
            (Swatch::Band(PALETTE[1]), "slope 95% CI".into()),
        ],
        notes: notes(s, skipped),
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
    let mut spots = Vec::new();
    let svg = render(height, |root| {
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
        draw_mesh(&mut chart, (&x_axis, &y_axis), (&x_desc, &y_desc))?;
        let area = chart.plotting_area();
        if let Some(fit) = fit {
            draw_fit(area, (&x_axis, &y_axis), fit, mean_x, s.slope_ci)?;
        }
        for (p, raw) in pts.iter().zip(&raw_pts) {
            area.draw(&Circle::new(*p, 3, PALETTE[0].filled()))?;
            spots.push(Hotspot::point(
                chart.backend_coord(p),
                format!(
                    "{} {}, {} {}",
                    s.x_label,
                    value(raw.0),
                    s.y_label,
                    value(raw.1)
                ),
            ));
        }
        Ok(())
    })?;
    Some(attach(svg, &spots))
}

/// The points that can be drawn, in plot space (log10 in log-log), each
/// with the data point it came from.
fn plot_points(s: &Scaling) -> Vec<(Pt, Pt)> {
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
    s.points
        .iter()
        .filter_map(|&(x, y)| Some(((to_plot(x)?, to_plot(y)?), (x, y))))
        .collect()
}

/// The x and y axes over the points (plot space): decades on log axes,
/// padded linear ones otherwise.
fn axes(xs: &[f64], ys: &[f64], log: bool) -> Option<(Axis, Axis)> {
    if log {
        // Back to data space for the log axes (exact decades for the ticks).
        let raw = |v: &[f64]| -> Option<(f64, f64)> {
            let (a, b) = min_max(v)?;
            Some((libm::pow(10.0, a), libm::pow(10.0, b)))
        };
        let (x0, x1) = raw(xs)?;
        let (y0, y1) = raw(ys)?;
        Some((log_axis(x0, x1)?, log_axis(y0, y1)?))
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
        Some((padded(xs)?, padded(ys)?))
    }
}

/// The notes under the title: the slope with its CI, identifiability and
/// the points not drawn.
fn notes(s: &Scaling, skipped: usize) -> Vec<(String, RGBColor)> {
    let log = s.log_log;
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
    notes
}

/// Grid, tick labels and axis descriptions.
fn draw_mesh(
    chart: &mut Chart<'_, '_>,
    (x_axis, y_axis): (&Axis, &Axis),
    (x_desc, y_desc): (&str, &str),
) -> DrawResult {
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
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()?;
    Ok(())
}

/// The slope's CI band through the fitted line's point at `mean_x`, and
/// the fitted line `a + b x`, clipped to the axes.
fn draw_fit(
    area: &PlotArea<'_>,
    (x_axis, y_axis): (&Axis, &Axis),
    (a, b): (f64, f64),
    mean_x: f64,
    (c0, c1): (f64, f64),
) -> DrawResult {
    let rect = Rect {
        x0: x_axis.lo,
        x1: x_axis.hi,
        y0: y_axis.lo,
        y1: y_axis.hi,
    };
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
    Ok(())
}
