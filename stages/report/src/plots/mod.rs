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
//!
//! - Every drawn value gets a hover target (`hover`): an invisible
//!   rectangle with an SVG `<title>` naming the value, appended after
//!   drawing with integer pixels and fixed number formats.
//!
//! Layout: `style` (colours, text and number formats), `axis` (ticked
//! axes), `header` (title, legend and notes), `clip` (clipping to the plot
//! area), `canvas` (the SVG canvas and the one-row-per-label chart),
//! `hover` (the hover targets), and one module per kind of plot:
//! `distribution`, `bars`, `scaling`.

use std::error::Error;

use plotters::coord::Shift;
use plotters::prelude::*;

mod axis;
mod bars;
mod canvas;
mod clip;
mod distribution;
mod header;
mod hover;
mod scaling;
mod style;
#[cfg(test)]
mod tests;

pub use bars::{bars, grouped_bars, stacked_bars};
pub use distribution::latency_distributions;
pub use scaling::scaling;

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

type DrawResult = Result<(), Box<dyn Error>>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Pt = (f64, f64);
