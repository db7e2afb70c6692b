//! Horizontal bar plots: stacked, single and grouped.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{Axis, linear_axis};
use super::canvas::{Chart, RowSpec, render_rows, row_center};
use super::header::{Header, Swatch};
use super::hover::{Hotspot, attach, value, with_unit};
use super::style::{ALERT, INK, PALETTE, SMALL_PX, axis_desc, clean_label, fmt_sig, min_max, text};
use super::{Area, Bar, BarSeries, DrawResult, Stack};

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
    let mut spots = Vec::new();
    let svg = render_rows(&spec, |chart, root| {
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
                    spots.push(Hotspot::new(
                        chart.backend_coord(&(left, yc + 0.32)),
                        chart.backend_coord(&(right, yc - 0.32)),
                        format!(
                            "{}: {name} {} of {}",
                            clean_label(&r.label),
                            with_unit(*v, unit),
                            with_unit(*total, unit)
                        ),
                    ));
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
    })?;
    Some(attach(svg, &spots))
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

/// The bar plots' common body: one row per label, one sub-bar per series.
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
    let reference = reference_line.filter(|r| r.0.is_finite());
    let axis = value_axis(&bars, reference)?;
    let n_series = rows.iter().map(|r| r.1.len()).max().unwrap_or(1).max(1);
    let spec = RowSpec {
        header: Header {
            title: title.to_string(),
            legend: legend(series_names, n_series, reference),
            notes: vec![],
        },
        axis,
        x_desc: axis_desc(unit, false),
        labels: rows.iter().map(|r| r.0.clone()).collect(),
        row_px: (u32::try_from(n_series).unwrap_or(u32::MAX / 16))
            .saturating_mul(13)
            .clamp(24, 120),
    };
    let mut spots = Vec::new();
    let svg = render_rows(&spec, |chart, root| {
        let n = rows.len();
        let h = 0.8 / n_series as f64;
        for (i, (_, per_series)) in rows.iter().enumerate() {
            let top = row_center(n, i) + 0.4;
            for (j, bar) in per_series.iter().enumerate() {
                let Some(b) = bar else { continue };
                let (y0, y1) = (top - (j as f64 + 1.0) * h, top - j as f64 * h);
                draw_bar(chart, root, b, (y0, y1), h, series_colour(n_series, j))?;
                let series = series_names
                    .get(j)
                    .map_or_else(String::new, |s| format!(" ({s})"));
                spots.push(Hotspot::new(
                    chart.backend_coord(&(0.0_f64.min(b.value), y1)),
                    chart.backend_coord(&(0.0_f64.max(b.value), y0)),
                    bar_text(b, &series, unit),
                ));
            }
        }
        if let Some((v, _)) = reference {
            draw_reference(chart, root, v, n)?;
        }
        Ok(())
    })?;
    Some(attach(svg, &spots))
}

/// What a bar's hover says: its value, and its interval when it has one.
fn bar_text(b: &Bar, series: &str, unit: &str) -> String {
    let interval = match (b.low, b.high) {
        (None, None) => String::new(),
        (low, high) => format!(
            " [{}, {}]",
            low.map_or_else(|| "n/a".to_string(), value),
            high.map_or_else(|| "n/a".to_string(), value)
        ),
    };
    format!(
        "{}{series}: {}{interval}",
        clean_label(&b.label),
        with_unit(b.value, unit)
    )
}

/// The x axis: zero, every bar's value and finite error-bar ends, and the
/// reference line, with room for the value labels at the ends of the bars.
fn value_axis(bars: &[&Bar], reference: Option<(f64, &str)>) -> Option<Axis> {
    let mut values = vec![0.0];
    for b in bars {
        values.push(b.value);
        values.extend(
            [b.low, b.high]
                .into_iter()
                .flatten()
                .filter(|v| v.is_finite()),
        );
    }
    if let Some((v, _)) = reference {
        values.push(v);
    }
    let (lo, hi) = min_max(&values)?;
    // Room for the value labels at the ends of the bars.
    let room = (hi - lo) * 0.14;
    let has_neg = bars.iter().any(|b| b.value < 0.0);
    let has_pos = bars.iter().any(|b| b.value >= 0.0);
    linear_axis(
        if has_neg { lo - room } else { lo },
        if has_pos { hi + room } else { hi },
    )
}

/// Series `j`'s colour: the first palette colour when there is one series.
fn series_colour(n_series: usize, j: usize) -> RGBColor {
    if n_series == 1 {
        PALETTE[0]
    } else {
        PALETTE[j % PALETTE.len()]
    }
}

/// The series names (when there are several) and the reference line.
fn legend(
    series_names: &[String],
    n_series: usize,
    reference: Option<(f64, &str)>,
) -> Vec<(Swatch, String)> {
    let mut legend: Vec<(Swatch, String)> = if n_series > 1 {
        series_names
            .iter()
            .enumerate()
            .map(|(j, n)| (Swatch::Fill(series_colour(n_series, j)), n.clone()))
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
    legend
}

/// One bar between `y0` and `y1` (a sub-row `h` high), its error bar and
/// its value label.
fn draw_bar(
    chart: &Chart<'_, '_>,
    root: &Area<'_>,
    b: &Bar,
    (y0, y1): (f64, f64),
    h: f64,
    colour: RGBColor,
) -> DrawResult {
    let area = chart.plotting_area();
    let yc = (y0 + y1) / 2.0;
    let (inner0, inner1) = (y0 + 0.12 * h, y1 - 0.12 * h);
    area.draw(&Rectangle::new(
        [
            (0.0_f64.min(b.value), inner0),
            (0.0_f64.max(b.value), inner1),
        ],
        colour.filled(),
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
    Ok(())
}

/// The dashed vertical reference line at `v` over `n` rows.
fn draw_reference(chart: &Chart<'_, '_>, root: &Area<'_>, v: f64, n: usize) -> DrawResult {
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
    Ok(())
}
