//! fit: scaling fits with their gating (seed TR121, Appendix AM rule 7).
//! Log-log least squares of a latency metric against model size (parameter
//! count, and separately the structural predictors layers, hidden size and
//! heads) per (backend, scenario); linear fits of prefill against prompt
//! length and of decode against generation length per (backend, model,
//! batch). Where the models span several architecture families the size
//! fits are repeated within each family (Appendix AC.2; across families
//! parameter count is a regime descriptor only, AN.4), and inside a family
//! along each depth, width or heads series (`family.rs`); a multivariate
//! fit of latency on the structural predictors together (Appendix T risk 6,
//! `multi.rs`). Each fit has R^2, Spearman's rank correlation, a seeded
//! bootstrap CI of the slope, a regime label, and the falsification test
//! across the boundaries it was repeated under (AD.4, `shift.rs`).

mod family;
pub mod multi;
pub mod shift;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

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

/// 3: heads as a predictor, within-family, series and multivariate fits,
/// the `family`, `series`, `terms` and `shift` columns.
pub const FIT_VERSION: u32 = 3;

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
    /// Attention heads (Appendix AX.2).
    Heads,
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
            FitPredictor::Heads => FitX::Heads,
        }
    }

    fn of(self, s: &SummaryRow) -> f64 {
        match self {
            FitPredictor::Params => s.parameter_count as f64,
            FitPredictor::Layers => f64::from(s.n_layer),
            FitPredictor::Hidden => f64::from(s.n_embd),
            FitPredictor::Heads => f64::from(s.n_head),
        }
    }

    /// A structural predictor (depth, width, heads), as opposed to the
    /// parameter count that sums them.
    fn structural(self) -> bool {
        self != FitPredictor::Params
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
    /// structural ones (layers, hidden, heads); the structural ones listed
    /// are also fitted together (multivariate) within each architecture
    /// family. Default: params, layers, hidden.
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
    /// `FitRow::family`, `FitRow::series`.
    family: String,
    series: String,
    /// A within-family or series split of a pooled fit (its RNG stream
    /// names the family and series).
    split: bool,
    /// The boundary this fit holds fixed; fits that differ only in it are
    /// compared by the boundary-shift check.
    boundary: String,
    y: String,
    x: String,
    points: Vec<(f64, f64, &'a SummaryRow)>,
}

/// Every fit of the summary: log-log against each size predictor per
/// (backend, scenario), then the linear fits, then the within-family and
/// series fits, then the multivariate ones, then the boundary-shift check.
/// Rows of earlier forms keep their order and index whatever a spec adds.
pub fn fit_all(p: &FitParams, summary: &[SummaryRow], seed: u64) -> Vec<FitRow> {
    let mut groups = pooled_groups(p, summary);
    if p.linear {
        groups.extend(linear_groups(summary));
    }
    groups.extend(family::groups(p, summary));
    let mut rows: Vec<FitRow> = groups
        .iter()
        .filter_map(|g| fit_group(g, p, seed))
        .collect();
    rows.extend(multi::fits(p, summary, seed));
    shift::mark(&mut rows);
    rows
}

/// The rows of the fitted phase per (backend, scenario), in key order.
fn by_cell<'a>(
    p: &FitParams,
    summary: &'a [SummaryRow],
) -> BTreeMap<(&'a str, &'a str), Vec<&'a SummaryRow>> {
    let mut by: BTreeMap<(&str, &str), Vec<&SummaryRow>> = BTreeMap::new();
    for s in summary.iter().filter(|s| s.phase() == p.y.phase()) {
        by.entry((&s.backend, &s.scenario)).or_default().push(s);
    }
    by
}

/// An architecture family as fits name it: arch and dtype, the two things
/// whose mixing makes parameter count a regime descriptor (AN.4).
pub fn family_of(s: &SummaryRow) -> String {
    format!("{} {}", s.arch, s.dtype)
}

/// The one family of `rows`, or empty when they span several.
fn common_family(rows: &[&SummaryRow]) -> String {
    let families: BTreeSet<String> = rows.iter().map(|s| family_of(s)).collect();
    match families.len() {
        1 => families.into_iter().next().unwrap_or_default(),
        _ => String::new(),
    }
}

/// Log-log against each size predictor, over every model of a (backend,
/// scenario).
fn pooled_groups<'a>(p: &FitParams, summary: &'a [SummaryRow]) -> Vec<Group<'a>> {
    let mut groups = Vec::new();
    for x in p.x.list() {
        for ((backend, scenario), rows) in by_cell(p, summary) {
            groups.push(Group {
                form: FitForm::LogLog,
                backend: backend.into(),
                model: String::new(),
                scenario: scenario.into(),
                family: String::new(),
                series: String::new(),
                split: false,
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
    groups
}

/// Prefill against prompt length per (backend, model, batch); summed decode
/// against decode steps per (backend, model, batch, prompt).
fn linear_groups(summary: &[SummaryRow]) -> Vec<Group<'_>> {
    let mut groups = Vec::new();
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
            family: String::new(),
            series: String::new(),
            split: false,
            boundary: format!("batch {batch}"),
            y: FitY::PrefillMs.as_str().into(),
            x: FitX::PromptTokens.as_str().into(),
            points: rows
                .into_iter()
                .map(|s| (f64::from(s.prompt_tokens), s.median_ms, s))
                .collect(),
        });
    }
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
            family: String::new(),
            series: String::new(),
            split: false,
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
    groups
}

fn join_scenarios(rows: &[&SummaryRow]) -> String {
    let mut names: Vec<&str> = rows.iter().map(|s| s.scenario.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.join("+")
}

/// One RNG stream per fit: a fit's CI does not depend on the order in which
/// fits are computed. Fits that are no split (`split: None`) hash exactly
/// what they hashed before families existed, so their intervals are
/// unchanged.
fn fit_rng(parts: &[&str], split: Option<(&str, &str)>, p: &FitParams, seed: u64) -> ChaCha8Rng {
    let mut material = parts.join("\0");
    if let Some((family, series)) = split {
        material = format!("{material}\0{family}\0{series}");
    }
    let stream = blake3::hash(material.as_bytes());
    let stream = u64::from_le_bytes(stream.as_bytes()[..8].try_into().unwrap_or([0; 8]));
    ChaCha8Rng::seed_from_u64(seed ^ p.bootstrap.seed ^ stream)
}

/// The distinct values of `v`.
fn distinct(v: &[f64]) -> usize {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v.len()
}

/// Devices of the rows, `+`-joined; their evidence; whether they span
/// several families.
fn provenance(rows: &[&SummaryRow]) -> (String, &'static str, bool) {
    let evidence = Evidence::all_measured(rows.iter().map(|s| s.is_measured())).as_str();
    let devices: BTreeSet<&str> = rows.iter().map(|s| s.device.as_str()).collect();
    let devices: Vec<&str> = devices.into_iter().collect();
    let heterogeneous = common_family(rows).is_empty() && !rows.is_empty();
    (devices.join("+"), evidence, heterogeneous)
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
    let parts = [
        g.form.as_str(),
        &g.backend,
        &g.model,
        &g.boundary,
        &g.y,
        &g.x,
    ];
    let split = g.split.then_some((g.family.as_str(), g.series.as_str()));
    let mut rng = fit_rng(&parts, split, p, seed);
    let (lo, hi) = bootstrap_slope_ci(&x, &y, p.bootstrap.resamples, &mut rng);
    let ok = identifiable(distinct(&x), r2, lo, hi);
    let rows: Vec<&SummaryRow> = g.points.iter().map(|(_, _, s)| *s).collect();
    let (device, evidence, heterogeneous) = provenance(&rows);
    Some(FitRow {
        form: g.form.as_str().into(),
        backend: g.backend.clone(),
        model: g.model.clone(),
        scenario: g.scenario.clone(),
        family: g.family.clone(),
        series: g.series.clone(),
        terms: g.x.clone(),
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
        device,
        heterogeneous,
        regime: regime(ok, lo, hi).into(),
        boundary_flip: false,
        boundary_note: String::new(),
        shift: String::new(),
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
