//! The SVG canvas, and the chart with one horizontal row per label that
//! the distribution and bar plots share.

use plotters::prelude::*;

use super::axis::{Axis, Ticked};
use super::header::Header;
use super::style::{GRID, INK, LABEL_PX, MUTED, text, text_width};
use super::{Area, DrawResult, WIDTH};

type Coords = Cartesian2d<Ticked, Ticked>;
pub(super) type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Coords>;
pub(super) type PlotArea<'a> = DrawingArea<SVGBackend<'a>, Coords>;

/// A chart with one horizontal row per label (top to bottom), x from `axis`.
pub(super) struct RowSpec {
    pub(super) header: Header,
    pub(super) axis: Axis,
    pub(super) x_desc: String,
    pub(super) labels: Vec<String>,
    pub(super) row_px: u32,
}

pub(super) fn row_center(n: usize, i: usize) -> f64 {
    n as f64 - i as f64 - 0.5
}

pub(super) fn render_rows<F>(spec: &RowSpec, body: F) -> Option<String>
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
pub(super) fn render<F>(height: u32, draw: F) -> Option<String>
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
