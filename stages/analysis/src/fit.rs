//! fit: scaling fits with their gating (seed TR121, Appendix AM rule 7).
//! Log-log least squares of a latency metric against model size (parameter
//! count, and separately the structural predictors layers and hidden size)
//! per (backend, scenario); linear fits of prefill against prompt length and
//! of decode against generation length per (backend, model, batch). Each fit
//! has R^2, Spearman's rank correlation, a seeded bootstrap CI of the slope,
//! a regime label, and a boundary-shift flag when fits that differ only in
//! the boundary they hold fixed disagree.

use std::collections::BTreeMap;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use assay_core::domain::{Evidence, FitForm, FitX, FitY};
use assay_core::inputs::find_input;
use assay_core::stage::{Input, Outputs, Stage, StageContext, StageError};
use assay_core::stats;
use assay_core::tables::{self, FitRow, Phase, SummaryRow};

pub const FIT_VERSION: u32 = 2;

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
    fn phase(self) -> Phase {
        match self {
            FitMetric::DecodeMsPerToken => Phase::Decode,
            FitMetric::PrefillMs => Phase::Prefill,
            FitMetric::TtftMs => Phase::Ttft,
            FitMetric::E2eMs => Phase::E2e,
        }
    }

    pub fn name(self) -> &'static str {
        self.column().as_str()
    }

    /// The metric as stored in `y` of its fits.
    pub fn column(self) -> FitY {
        match self {
            FitMetric::DecodeMsPerToken => FitY::DecodeMsPerToken,
            FitMetric::PrefillMs => FitY::PrefillMs,
            FitMetric::TtftMs => FitY::TtftMs,
            FitMetric::E2eMs => FitY::E2eMs,
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
        self.column().as_str()
    }

    /// The predictor as stored in `x` of its fits.
    pub fn column(self) -> FitX {
        match self {
            FitPredictor::Params => FitX::Params,
            FitPredictor::Layers => FitX::Layers,
            FitPredictor::Hidden => FitX::Hidden,
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

/// One predictor or a list of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Predictors {
    One(FitPredictor),
    Many(Vec<FitPredictor>),
}

impl Predictors {
    /// The predictors in a fixed order, without repeats.
    pub fn list(&self) -> Vec<FitPredictor> {
        let mut v = match self {
            Predictors::One(p) => vec![*p],
            Predictors::Many(ps) => ps.clone(),
        };
        v.sort_by_key(|p| p.name());
        v.dedup();
        v
    }
}

/// Scaling fit parameters: log(y) = a + b log(x) for each predictor x, per
/// (backend, scenario); plus linear fits of prefill against prompt length
/// and of decode against generation length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FitParams {
    pub y: FitMetric,
    /// Size predictors, each fitted separately: parameter count and the
    /// structural ones (layers, hidden). Default: all three.
    #[serde(default = "default_predictors")]
    pub x: Predictors,
    /// Also fit prefill ms against prompt tokens and summed decode ms
    /// against generated tokens, per (backend, model, batch).
    #[serde(default = "default_linear")]
    pub linear: bool,
    #[serde(default = "default_bootstrap")]
    pub bootstrap: Bootstrap,
}

fn default_predictors() -> Predictors {
    Predictors::Many(vec![
        FitPredictor::Params,
        FitPredictor::Layers,
        FitPredictor::Hidden,
    ])
}

fn default_linear() -> bool {
    true
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

/// The one output of fit: one row per fit (`tables::FitRow`).
pub const OUTPUT: &str = "fit";

impl Stage for FitStage {
    fn kind(&self) -> &'static str {
        "fit"
    }

    fn version(&self) -> u32 {
        FIT_VERSION
    }

    /// Resolved: `x: params`, `x: [params]` and a reordered list are the
    /// same fit and get the same key.
    fn outputs(&self) -> Vec<&'static str> {
        vec![OUTPUT]
    }

    fn params(&self) -> Result<Value, StageError> {
        let mut params =
            serde_json::to_value(&self.params).map_err(|e| StageError::params("fit", e))?;
        params["x"] = serde_json::json!(
            self.params
                .x
                .list()
                .iter()
                .map(|p| p.name())
                .collect::<Vec<_>>()
        );
        Ok(params)
    }

    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError> {
        let summary: Vec<SummaryRow> =
            tables::read_rows(ctx, find_input(inputs, crate::summarise::OUTPUT)?)?;
        let rows = fit_all(&self.params, &summary, ctx.seed());
        let mut out = Outputs::new();
        out.insert(OUTPUT.into(), tables::to_parquet(&rows)?);
        Ok(out)
    }
}

/// Points of one fit: (x, y, summary row) before any transform.
struct Group<'a> {
    form: FitForm,
    backend: String,
    model: String,
    scenario: String,
    /// The boundary this fit holds fixed; fits that differ only in it are
    /// compared by the boundary-shift check.
    boundary: String,
    y: String,
    x: String,
    points: Vec<(f64, f64, &'a SummaryRow)>,
}

/// Every fit of the summary: log-log against each size predictor per
/// (backend, scenario), then the linear fits, then the boundary-shift check.
pub fn fit_all(p: &FitParams, summary: &[SummaryRow], seed: u64) -> Vec<FitRow> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    for x in p.x.list() {
        let mut by: BTreeMap<(&str, &str), Vec<&SummaryRow>> = BTreeMap::new();
        for s in summary.iter().filter(|s| s.phase() == p.y.phase()) {
            by.entry((&s.backend, &s.scenario)).or_default().push(s);
        }
        for ((backend, scenario), rows) in by {
            groups.push(Group {
                form: FitForm::LogLog,
                backend: backend.into(),
                model: String::new(),
                scenario: scenario.into(),
                boundary: scenario.into(),
                y: p.y.name().into(),
                x: x.name().into(),
                points: rows
                    .into_iter()
                    .map(|s| (x.of(s), s.median_ms, s))
                    .collect(),
            });
        }
    }
    if p.linear {
        // Prefill against prompt length, holding backend, model and batch.
        let mut by: BTreeMap<(&str, &str, u32), Vec<&SummaryRow>> = BTreeMap::new();
        for s in summary.iter().filter(|s| s.phase() == Phase::Prefill) {
            by.entry((&s.backend, &s.model, s.batch))
                .or_default()
                .push(s);
        }
        for ((backend, model, batch), rows) in by {
            groups.push(Group {
                form: FitForm::Linear,
                backend: backend.into(),
                model: model.into(),
                scenario: join_scenarios(&rows),
                boundary: format!("batch {batch}"),
                y: FitY::PrefillMs.as_str().into(),
                x: FitX::PromptTokens.as_str().into(),
                points: rows
                    .into_iter()
                    .map(|s| (f64::from(s.prompt_tokens), s.median_ms, s))
                    .collect(),
            });
        }
        // Summed decode against generation length, holding backend, model,
        // batch and prompt length.
        let mut by: BTreeMap<(&str, &str, u32, u32), Vec<&SummaryRow>> = BTreeMap::new();
        for s in summary
            .iter()
            .filter(|s| s.phase() == Phase::E2e && s.decode_total_ms.is_finite())
        {
            by.entry((&s.backend, &s.model, s.batch, s.prompt_tokens))
                .or_default()
                .push(s);
        }
        for ((backend, model, batch, prompt), rows) in by {
            groups.push(Group {
                form: FitForm::Linear,
                backend: backend.into(),
                model: model.into(),
                scenario: join_scenarios(&rows),
                boundary: format!("batch {batch}, prompt {prompt}"),
                y: FitY::DecodeTotalMs.as_str().into(),
                // The first token comes from prefill: decode runs gen - 1 steps.
                x: FitX::DecodeSteps.as_str().into(),
                points: rows
                    .into_iter()
                    .map(|s| {
                        (
                            f64::from(s.gen_tokens.saturating_sub(1)),
                            s.decode_total_ms,
                            s,
                        )
                    })
                    .collect(),
            });
        }
    }

    let mut rows: Vec<FitRow> = groups
        .iter()
        .filter_map(|g| fit_group(g, p, seed))
        .collect();
    mark_boundary_flips(&mut rows);
    rows
}

fn join_scenarios(rows: &[&SummaryRow]) -> String {
    let mut names: Vec<&str> = rows.iter().map(|s| s.scenario.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.join("+")
}

fn fit_group(g: &Group<'_>, p: &FitParams, seed: u64) -> Option<FitRow> {
    let log = g.form == FitForm::LogLog;
    // A log-log fit needs positive values; drop nothing silently: a group
    // with a non-positive or non-finite point is not fitted at all.
    let usable = |v: f64| v.is_finite() && (!log || v > 0.0);
    if g.points.iter().any(|(x, y, _)| !usable(*x) || !usable(*y)) {
        return None;
    }
    let t = |v: f64| if log { stats::ln(v) } else { v };
    let x: Vec<f64> = g.points.iter().map(|(x, _, _)| t(*x)).collect();
    let y: Vec<f64> = g.points.iter().map(|(_, y, _)| t(*y)).collect();
    let (intercept, slope, r2) = stats::ols(&x, &y)?;
    // One RNG stream per fit: a fit's CI does not depend on the order in
    // which fits are computed.
    let stream = blake3::hash(
        format!(
            "{}\0{}\0{}\0{}\0{}\0{}",
            g.form.as_str(),
            g.backend,
            g.model,
            g.boundary,
            g.y,
            g.x
        )
        .as_bytes(),
    );
    let stream = u64::from_le_bytes(stream.as_bytes()[..8].try_into().unwrap_or([0; 8]));
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ p.bootstrap.seed ^ stream);
    let (lo, hi) = bootstrap_slope_ci(&x, &y, p.bootstrap.resamples, &mut rng);
    let distinct_x = {
        let mut v = x.clone();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v.len()
    };
    let ok = identifiable(distinct_x, r2, lo, hi);
    let rows: Vec<&SummaryRow> = g.points.iter().map(|(_, _, s)| *s).collect();
    let evidence = Evidence::all_measured(rows.iter().map(|s| s.is_measured())).as_str();
    let mut devices: Vec<&str> = rows.iter().map(|s| s.device.as_str()).collect();
    devices.sort_unstable();
    devices.dedup();
    let family = |s: &&SummaryRow| (s.arch.clone(), s.dtype.clone());
    let heterogeneous = rows
        .iter()
        .map(family)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1;
    Some(FitRow {
        form: g.form.as_str().into(),
        backend: g.backend.clone(),
        model: g.model.clone(),
        scenario: g.scenario.clone(),
        boundary: g.boundary.clone(),
        y: g.y.clone(),
        x: g.x.clone(),
        n: g.points.len() as u32,
        slope,
        intercept,
        r_squared: r2,
        slope_ci_low: lo,
        slope_ci_high: hi,
        spearman: stats::spearman(&x, &y),
        identifiable: ok,
        device: devices.join("+"),
        heterogeneous,
        regime: regime(ok, lo, hi).into(),
        boundary_flip: false,
        boundary_note: String::new(),
        evidence: evidence.into(),
    })
}

/// What a fit says about the relationship, in TR121's regime language.
pub fn regime(identifiable: bool, ci_low: f64, ci_high: f64) -> &'static str {
    if !identifiable {
        "unidentifiable"
    } else if ci_low > 0.0 {
        "increasing"
    } else if ci_high < 0.0 {
        "decreasing"
    } else {
        "sign uncertain"
    }
}

/// Boundary-shift check (Appendix AD.4): fits that differ only in the
/// boundary they hold fixed (scenario for log-log fits; batch, prompt for the
/// linear ones) must agree on the regime, or the conclusion is
/// boundary-specific. Each row of a group that flips gets the flag and a note
/// listing every boundary's regime.
fn mark_boundary_flips(rows: &mut [FitRow]) {
    let mut by: BTreeMap<(String, String, String, String, String), Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        by.entry((
            r.form.clone(),
            r.backend.clone(),
            r.model.clone(),
            r.y.clone(),
            r.x.clone(),
        ))
        .or_default()
        .push(i);
    }
    for idx in by.values() {
        let regimes: std::collections::BTreeSet<&str> =
            idx.iter().map(|i| rows[*i].regime.as_str()).collect();
        if regimes.len() < 2 {
            continue;
        }
        let note = idx
            .iter()
            .map(|i| format!("{}: {}", rows[*i].boundary, rows[*i].regime))
            .collect::<Vec<_>>()
            .join("; ");
        for i in idx {
            rows[*i].boundary_flip = true;
            rows[*i].boundary_note = note.clone();
        }
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

    fn row(backend: &str, model: &str, scenario: &str, phase: &str) -> SummaryRow {
        SummaryRow {
            cell: format!("{backend}/{model}/{scenario}"),
            backend: backend.into(),
            model: model.into(),
            scenario: scenario.into(),
            phase: phase.into(),
            evidence: "measured".into(),
            device: "cpu".into(),
            dtype: "f32".into(),
            arch: "llama".into(),
            batch: 1,
            n: 5,
            ..Default::default()
        }
    }

    fn params(linear: bool) -> FitParams {
        FitParams {
            y: FitMetric::PrefillMs,
            x: Predictors::One(FitPredictor::Params),
            linear,
            bootstrap: Bootstrap {
                resamples: 200,
                seed: 0,
            },
        }
    }

    #[test]
    fn linear_prefill_fit_recovers_ms_per_token_and_intercept() {
        // prefill = 2 ms + 0.05 ms per prompt token, exactly.
        let summary: Vec<SummaryRow> = [(8, "micro"), (128, "short"), (512, "long")]
            .into_iter()
            .map(|(prompt, sc)| SummaryRow {
                prompt_tokens: prompt,
                median_ms: 2.0 + 0.05 * f64::from(prompt),
                ..row("b", "m", sc, "prefill")
            })
            .collect();
        let rows = fit_all(&params(true), &summary, 1);
        let lin: Vec<&FitRow> = rows
            .iter()
            .filter(|r| r.form() == Some(FitForm::Linear))
            .collect();
        assert_eq!(lin.len(), 1);
        let r = lin[0];
        assert_eq!(
            (r.y.as_str(), r.x.as_str()),
            ("prefill_ms", "prompt_tokens")
        );
        assert_eq!(r.scenario, "long+micro+short");
        assert_eq!(r.boundary, "batch 1");
        assert!((r.slope - 0.05).abs() < 1e-12 && (r.intercept - 2.0).abs() < 1e-9);
        assert!(r.identifiable && r.regime == "increasing", "{r:?}");
    }

    #[test]
    fn two_distinct_lengths_are_never_identifiable() {
        let summary: Vec<SummaryRow> = [(8, "a"), (128, "b"), (128, "c")]
            .into_iter()
            .map(|(prompt, sc)| SummaryRow {
                prompt_tokens: prompt,
                median_ms: 1.0 + f64::from(prompt),
                ..row("b", "m", sc, "prefill")
            })
            .collect();
        let rows = fit_all(&params(true), &summary, 1);
        let r = rows
            .iter()
            .find(|r| r.form() == Some(FitForm::Linear))
            .unwrap();
        assert!(!r.identifiable);
        assert_eq!(r.regime, "unidentifiable");
    }

    #[test]
    fn a_regime_that_flips_across_scenarios_is_flagged_boundary_specific() {
        // Under `small`, latency grows with size; under `big` it falls.
        let mut summary = Vec::new();
        for (i, params) in [1.0e6, 1.0e7, 1.0e8].into_iter().enumerate() {
            for (sc, ms) in [("small", 1.0 + i as f64), ("big", 10.0 - 3.0 * i as f64)] {
                summary.push(SummaryRow {
                    parameter_count: params as u64,
                    median_ms: ms,
                    ..row("b", &format!("m{i}"), sc, "prefill")
                });
            }
        }
        let rows = fit_all(&params(false), &summary, 1);
        assert_eq!(rows.len(), 2);
        for r in &rows {
            assert!(r.boundary_flip, "{r:?}");
            assert_eq!(r.boundary_note, "big: decreasing; small: increasing");
        }
        // Agreeing boundaries are not flagged.
        let agree: Vec<SummaryRow> = summary
            .iter()
            .filter(|s| s.scenario == "small")
            .cloned()
            .collect();
        assert!(
            fit_all(&params(false), &agree, 1)
                .iter()
                .all(|r| !r.boundary_flip)
        );
    }

    #[test]
    fn mixed_families_are_heterogeneous_and_structural_predictors_fit_separately() {
        let mut summary = Vec::new();
        for (i, (arch, layers)) in [("llama", 2), ("llama", 4), ("gpt2", 8)]
            .into_iter()
            .enumerate()
        {
            summary.push(SummaryRow {
                parameter_count: 1_000_000 * (i as u64 + 1),
                n_layer: layers,
                n_embd: 64 * (i as u32 + 1),
                arch: arch.into(),
                median_ms: f64::from(layers),
                ..row("b", &format!("m{i}"), "s", "prefill")
            });
        }
        let mut p = params(false);
        p.x = Predictors::Many(vec![
            FitPredictor::Layers,
            FitPredictor::Params,
            FitPredictor::Layers,
        ]);
        let rows = fit_all(&p, &summary, 1);
        let xs: Vec<&str> = rows.iter().map(|r| r.x.as_str()).collect();
        assert_eq!(xs, ["layers", "params"]);
        assert!(rows.iter().all(|r| r.heterogeneous));
        // latency = layers exactly: slope 1 in log-log.
        assert!((rows[0].slope - 1.0).abs() < 1e-12);
    }

    #[test]
    fn fits_are_independent_of_row_order() {
        let mut summary: Vec<SummaryRow> = (0..4)
            .map(|i| SummaryRow {
                parameter_count: 10u64.pow(i + 5),
                prompt_tokens: 8 << i,
                median_ms: 1.0 + f64::from(i) * 0.7 + f64::from(i % 2) * 0.3,
                ..row("b", &format!("m{i}"), &format!("s{i}"), "prefill")
            })
            .collect();
        let a = fit_all(&params(true), &summary, 9);
        summary.reverse();
        let b = fit_all(&params(true), &summary, 9);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
}
