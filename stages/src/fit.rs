//! fit: log-log least-squares scaling fits of a latency metric against model
//! size, per (backend, scenario), with R^2 and a seeded bootstrap CI of the
//! slope.

use std::collections::BTreeMap;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::stage::{Input, Outputs, Stage, StageContext, StageError};
use crate::stats;
use crate::tables::{self, FitRow, SummaryRow};
use crate::validate::find_input;

pub const FIT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FitMetric {
    /// Median decode step latency (ms per generated token per sequence batch).
    DecodeMsPerToken,
    /// Median prefill latency, ms.
    PrefillMs,
    /// Median time to first token, ms.
    TtftMs,
    /// Median end-to-end latency, ms.
    E2eMs,
}

impl FitMetric {
    fn phase(self) -> &'static str {
        match self {
            FitMetric::DecodeMsPerToken => "decode",
            FitMetric::PrefillMs => "prefill",
            FitMetric::TtftMs => "ttft",
            FitMetric::E2eMs => "e2e",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FitMetric::DecodeMsPerToken => "decode_ms_per_token",
            FitMetric::PrefillMs => "prefill_ms",
            FitMetric::TtftMs => "ttft_ms",
            FitMetric::E2eMs => "e2e_ms",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FitPredictor {
    /// Exact parameter count.
    Params,
    /// Number of layers (depth).
    Layers,
    /// Hidden size (width).
    Hidden,
}

impl FitPredictor {
    pub fn name(self) -> &'static str {
        match self {
            FitPredictor::Params => "params",
            FitPredictor::Layers => "layers",
            FitPredictor::Hidden => "hidden",
        }
    }

    fn of(self, s: &SummaryRow) -> f64 {
        match self {
            FitPredictor::Params => s.parameter_count as f64,
            FitPredictor::Layers => f64::from(s.n_layer),
            FitPredictor::Hidden => f64::from(s.n_embd),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    /// Resamples for the slope confidence interval.
    #[schemars(range(min = 1))]
    pub resamples: u32,
    /// Mixed into the node-key seed, to check sensitivity to the RNG.
    #[serde(default)]
    pub seed: u64,
}

/// Scaling fit parameters: log(y) = a + b log(x).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FitParams {
    pub y: FitMetric,
    pub x: FitPredictor,
    #[serde(default = "default_bootstrap")]
    pub bootstrap: Bootstrap,
}

fn default_bootstrap() -> Bootstrap {
    Bootstrap {
        resamples: 1000,
        seed: 0,
    }
}

#[derive(Debug, Clone)]
pub struct FitStage {
    pub params: FitParams,
}

impl Stage for FitStage {
    fn kind(&self) -> &'static str {
        "fit"
    }

    fn version(&self) -> u32 {
        FIT_VERSION
    }

    fn params(&self) -> Value {
        serde_json::to_value(&self.params).unwrap_or(Value::Null)
    }

    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError> {
        let summary: Vec<SummaryRow> = tables::read_rows(ctx, find_input(inputs, "summary")?)?;
        let p = &self.params;
        let mut groups: BTreeMap<(&str, &str), Vec<&SummaryRow>> = BTreeMap::new();
        for s in summary.iter().filter(|s| s.phase == p.y.phase()) {
            groups.entry((&s.backend, &s.scenario)).or_default().push(s);
        }
        let mut rows = Vec::new();
        for ((backend, scenario), points) in groups {
            let x: Vec<f64> = points.iter().map(|s| stats::ln(p.x.of(s))).collect();
            let y: Vec<f64> = points.iter().map(|s| stats::ln(s.median_ms)).collect();
            let Some((intercept, slope, r2)) = stats::ols(&x, &y) else {
                continue;
            };
            let mut rng = ChaCha8Rng::seed_from_u64(ctx.seed() ^ p.bootstrap.seed);
            let (lo, hi) = bootstrap_slope_ci(&x, &y, p.bootstrap.resamples, &mut rng);
            let evidence = if points.iter().all(|s| s.evidence == "measured") {
                "measured"
            } else {
                "simulated"
            };
            rows.push(FitRow {
                backend: backend.to_string(),
                scenario: scenario.to_string(),
                y: p.y.name().into(),
                x: p.x.name().into(),
                n: points.len() as u32,
                slope,
                intercept,
                r_squared: r2,
                slope_ci_low: lo,
                slope_ci_high: hi,
                spearman: stats::spearman(&x, &y),
                identifiable: identifiable(points.len(), r2, lo, hi),
                evidence: evidence.into(),
            });
        }
        let mut out = Outputs::new();
        out.insert("fit".into(), tables::to_parquet(&rows)?);
        Ok(out)
    }
}

/// Appendix AM rule 7: with R^2 below 0.2 and a slope CI that crosses zero
/// (or cannot be computed) the scaling exponent is not actionable. Fewer than
/// three points are never identifiable either: two points fit any line
/// exactly (R^2 = 1) and support no CI.
pub fn identifiable(n: usize, r_squared: f64, ci_low: f64, ci_high: f64) -> bool {
    let ci_crosses_zero =
        !(ci_low.is_finite() && ci_high.is_finite()) || (ci_low <= 0.0 && 0.0 <= ci_high);
    n >= 3 && !(r_squared < 0.2 && ci_crosses_zero)
}

/// Percentile bootstrap (2.5%, 97.5%) of the OLS slope, resampling points
/// with replacement. Degenerate resamples (all x equal) are skipped; with too
/// few points the interval is NaN, i.e. unknown.
pub fn bootstrap_slope_ci(
    x: &[f64],
    y: &[f64],
    resamples: u32,
    rng: &mut impl RngExt,
) -> (f64, f64) {
    let n = x.len();
    if n < 3 {
        return (f64::NAN, f64::NAN);
    }
    let mut slopes = Vec::with_capacity(resamples as usize);
    let mut bx = vec![0.0; n];
    let mut by = vec![0.0; n];
    for _ in 0..resamples {
        for i in 0..n {
            let j = rng.random_range(0..n);
            bx[i] = x[j];
            by[i] = y[j];
        }
        if let Some((_, b, _)) = stats::ols(&bx, &by) {
            slopes.push(b);
        }
    }
    if slopes.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let s = stats::sorted(&slopes);
    (
        stats::quantile_sorted(&s, 0.025),
        stats::quantile_sorted(&s, 0.975),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gating_follows_rule_7() {
        assert!(!identifiable(5, 0.1, -0.2, 0.3));
        assert!(!identifiable(5, 0.1, f64::NAN, f64::NAN));
        assert!(!identifiable(2, 1.0, f64::NAN, f64::NAN)); // two points fit any line
        assert!(identifiable(5, 0.1, 0.05, 0.3)); // weak fit, but the CI excludes zero
        assert!(identifiable(5, 0.9, -0.1, 0.4)); // strong fit
    }

    #[test]
    fn bootstrap_brackets_a_clean_slope_and_is_seeded() {
        let x: Vec<f64> = (1..=8).map(|v| f64::from(v).ln()).collect();
        let y: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, v)| 0.5 * v + 0.01 * (i % 3) as f64)
            .collect();
        let a = bootstrap_slope_ci(&x, &y, 500, &mut ChaCha8Rng::seed_from_u64(7));
        let b = bootstrap_slope_ci(&x, &y, 500, &mut ChaCha8Rng::seed_from_u64(7));
        assert_eq!(a.0.to_bits(), b.0.to_bits());
        assert!(a.0 <= 0.5 && 0.5 <= a.1 + 1e-3, "{a:?}");
        assert!(
            bootstrap_slope_ci(&x[..2], &y[..2], 10, &mut ChaCha8Rng::seed_from_u64(1))
                .0
                .is_nan()
        );
    }
}
