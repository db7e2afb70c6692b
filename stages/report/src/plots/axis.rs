//! Axes in plot space with explicit ticks: linear with "nice" steps, and
//! log10 with exact decade labels.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::style::trim_sci;

/// An axis in plot space (log10 of the data when `log`), with its ticks.
#[derive(Debug, Clone)]
pub(super) struct Axis {
    pub(super) lo: f64,
    pub(super) hi: f64,
    pub(super) log: bool,
    pub(super) ticks: Vec<(f64, String)>,
}

impl Axis {
    pub(super) fn map(&self, v: f64) -> Option<f64> {
        if !v.is_finite() {
            None
        } else if self.log {
            (v > 0.0).then(|| libm::log10(v)).filter(|l| l.is_finite())
        } else {
            Some(v)
        }
    }

    pub(super) fn label(&self, v: f64) -> String {
        self.ticks
            .iter()
            .find(|t| t.0.to_bits() == v.to_bits())
            .map(|t| t.1.clone())
            .unwrap_or_default()
    }

    pub(super) fn coord(&self) -> Ticked {
        Ticked::new(self.lo..self.hi, self.ticks.iter().map(|t| t.0).collect())
    }
}

/// A linear f64 coordinate whose ticks are given (plotters' `WithKeyPoints`
/// over `RangedCoordf64` cannot take a label formatter); no light grid lines.
pub(super) struct Ticked {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ticked {
    pub(super) fn new(range: Range<f64>, ticks: Vec<f64>) -> Self {
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
pub(super) fn linear_axis(min: f64, max: f64) -> Option<Axis> {
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
pub(super) fn log_axis(min: f64, max: f64) -> Option<Axis> {
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
pub(super) fn pow10_label(m: i32, k: i32) -> String {
    if (0..=5).contains(&k) {
        format!("{m}{}", "0".repeat(k as usize))
    } else if (-4..0).contains(&k) {
        format!("0.{}{m}", "0".repeat((-k - 1) as usize))
    } else {
        format!("{m}e{k}")
    }
}
