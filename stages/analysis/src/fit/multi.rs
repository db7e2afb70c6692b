//! The multivariate fit (Appendix T risk 6: structural predictors and
//! multivariate fits against over-reliance on parameter count):
//! ln y = a + sum_k b_k ln x_k over the structural predictors the spec
//! lists (layers, hidden, heads) that vary within an architecture family,
//! per (backend, scenario, family). Each coefficient is one `FitRow` (form
//! `multivariate`, `x` the predictor, `terms` all of them) with a
//! pairs-bootstrap CI; a coefficient is identifiable only when the
//! predictors are not collinear, the fit has a residual degree of freedom,
//! and rule 7 passes on its CI and the model's R^2.

use std::collections::BTreeMap;

use assay_core::domain::FitForm;
use assay_core::stats;
use assay_core::tables::{FitRow, SummaryRow};
use rand::RngExt;

use super::{FitParams, FitPredictor, by_cell, distinct, family_of, identifiable, regime};

/// Below this determinant of the predictors' correlation matrix (for two
/// predictors: |r| above 0.995, a variance inflation above 100) the
/// coefficients cannot be told apart: the design, not the data, decides
/// them.
pub const COLLINEAR_DET: f64 = 0.01;

/// The multivariate fits of every (backend, scenario, family).
pub(super) fn fits(p: &FitParams, summary: &[SummaryRow], seed: u64) -> Vec<FitRow> {
    let terms: Vec<FitPredictor> = p.x.list().into_iter().filter(|x| x.structural()).collect();
    if terms.len() < 2 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for ((backend, scenario), rows) in by_cell(p, summary) {
        let mut families: BTreeMap<String, Vec<&SummaryRow>> = BTreeMap::new();
        for s in rows {
            families.entry(family_of(s)).or_default().push(s);
        }
        for (family, members) in families {
            // Only the predictors that vary here; one that is constant has
            // no coefficient to estimate.
            let mut varying: Vec<FitPredictor> = terms
                .iter()
                .copied()
                .filter(|t| distinct(&members.iter().map(|s| t.of(s)).collect::<Vec<_>>()) >= 2)
                .collect();
            let positive = members
                .iter()
                .all(|s| s.median_ms.is_finite() && s.median_ms > 0.0)
                && members
                    .iter()
                    .all(|s| varying.iter().all(|t| t.of(s) > 0.0));
            if !positive {
                continue;
            }
            drop_aliased_heads(&mut varying, &members);
            if varying.len() < 2 || members.len() <= varying.len() {
                continue;
            }
            let cell = Cell {
                backend,
                scenario,
                family: &family,
            };
            out.extend(fit_family(p, &cell, &varying, &members, seed));
        }
    }
    out
}

/// A family that widens at a fixed head size has heads = hidden / head
/// size in every model: heads is aliased with width and has no coefficient
/// of its own. It is left out of that family's fit (`terms` then names
/// depth and width only) rather than making the depth and width
/// coefficients unidentifiable too. Depth and width themselves are never
/// dropped: collinear, they gate the fit (T risk 6 asks for exactly them).
fn drop_aliased_heads(terms: &mut Vec<FitPredictor>, members: &[&SummaryRow]) {
    if terms.len() < 3 || !terms.contains(&FitPredictor::Heads) {
        return;
    }
    let cols: Vec<Vec<f64>> = terms
        .iter()
        .map(|t| members.iter().map(|s| stats::ln(t.of(s))).collect())
        .collect();
    if correlation_det(&cols) < COLLINEAR_DET {
        terms.retain(|t| *t != FitPredictor::Heads);
    }
}

struct Cell<'a> {
    backend: &'a str,
    scenario: &'a str,
    family: &'a str,
}

/// One multivariate fit: its coefficient rows, in the order of `terms`.
fn fit_family(
    p: &FitParams,
    cell: &Cell<'_>,
    terms: &[FitPredictor],
    members: &[&SummaryRow],
    seed: u64,
) -> Vec<FitRow> {
    let cols: Vec<Vec<f64>> = terms
        .iter()
        .map(|t| members.iter().map(|s| stats::ln(t.of(s))).collect())
        .collect();
    let y: Vec<f64> = members.iter().map(|s| stats::ln(s.median_ms)).collect();
    let names: Vec<&str> = terms.iter().map(|t| t.name()).collect();
    let joined = names.join("+");
    let collinear = correlation_det(&cols) < COLLINEAR_DET;
    let (intercept, coefs, r2) =
        ols(&cols, &y).unwrap_or((f64::NAN, vec![f64::NAN; terms.len()], f64::NAN));
    let parts = [
        FitForm::Multivariate.as_str(),
        cell.backend,
        "",
        cell.scenario,
        p.y.name(),
        &joined,
    ];
    let mut rng = super::fit_rng(&parts, Some((cell.family, "")), p, seed);
    let cis = if collinear || !intercept.is_finite() {
        vec![(f64::NAN, f64::NAN); terms.len()]
    } else {
        bootstrap_cis(&cols, &y, p.bootstrap.resamples, &mut rng)
    };
    // One residual degree of freedom at least: with as many points as
    // coefficients the plane passes through every point (R^2 = 1).
    let dof = members.len() >= terms.len() + 2;
    let (device, evidence, heterogeneous) = super::provenance(members);
    terms
        .iter()
        .enumerate()
        .map(|(k, t)| {
            let (lo, hi) = cis[k];
            let ok = dof && !collinear && identifiable(distinct(&cols[k]), r2, lo, hi);
            FitRow {
                form: FitForm::Multivariate.as_str().into(),
                backend: cell.backend.into(),
                model: String::new(),
                scenario: cell.scenario.into(),
                family: cell.family.into(),
                series: String::new(),
                terms: joined.clone(),
                boundary: cell.scenario.into(),
                y: p.y.name().into(),
                x: t.name().into(),
                n: members.len() as u32,
                slope: coefs[k],
                intercept,
                r_squared: r2,
                slope_ci_low: lo,
                slope_ci_high: hi,
                spearman: stats::spearman(&cols[k], &y),
                identifiable: ok,
                device: device.clone(),
                heterogeneous,
                regime: regime(ok, lo, hi).into(),
                boundary_flip: false,
                boundary_note: String::new(),
                shift: String::new(),
                evidence: evidence.into(),
            }
        })
        .collect()
}

/// Least squares of `y` on the columns plus an intercept: (intercept,
/// coefficients, R^2), or `None` when the normal equations are singular.
/// The columns are centred first, which keeps the system well conditioned
/// and leaves the intercept to the means.
pub fn ols(cols: &[Vec<f64>], y: &[f64]) -> Option<(f64, Vec<f64>, f64)> {
    let n = y.len();
    let k = cols.len();
    if n <= k || cols.iter().any(|c| c.len() != n) {
        return None;
    }
    let my = stats::mean(y);
    let means: Vec<f64> = cols.iter().map(|c| stats::mean(c)).collect();
    let mut a = vec![vec![0.0; k + 1]; k];
    for i in 0..k {
        for j in 0..k {
            a[i][j] = (0..n)
                .map(|r| (cols[i][r] - means[i]) * (cols[j][r] - means[j]))
                .sum();
        }
        a[i][k] = (0..n).map(|r| (cols[i][r] - means[i]) * (y[r] - my)).sum();
    }
    let b = solve(a)?;
    let intercept = my - (0..k).map(|i| b[i] * means[i]).sum::<f64>();
    let ss_tot: f64 = y.iter().map(|v| (v - my) * (v - my)).sum();
    let ss_res: f64 = (0..n)
        .map(|r| {
            let fit = intercept + (0..k).map(|i| b[i] * cols[i][r]).sum::<f64>();
            (y[r] - fit) * (y[r] - fit)
        })
        .sum();
    // As the one-predictor fit: constant y is fitted perfectly, and
    // rounding cannot push R^2 outside [0, 1].
    let r2 = if ss_tot > 0.0 {
        (1.0 - ss_res / ss_tot).clamp(0.0, 1.0)
    } else {
        1.0
    };
    Some((intercept, b, r2))
}

/// Gaussian elimination with partial pivoting on an augmented k x (k+1)
/// system; `None` when a pivot vanishes relative to the matrix's scale.
fn solve(mut a: Vec<Vec<f64>>) -> Option<Vec<f64>> {
    let k = a.len();
    let scale = a
        .iter()
        .enumerate()
        .map(|(i, r)| r[i].abs())
        .fold(0.0, f64::max);
    // NaN or zero: nothing to solve.
    if scale.is_nan() || scale <= 0.0 {
        return None;
    }
    for c in 0..k {
        let pivot = (c..k).max_by(|x, y| a[*x][c].abs().total_cmp(&a[*y][c].abs()))?;
        let p = a[pivot][c].abs();
        if p.is_nan() || p <= 1e-12 * scale {
            return None;
        }
        a.swap(c, pivot);
        let pivot_row = a[c].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != c {
                let f = row[c] / pivot_row[c];
                for (v, p) in row.iter_mut().zip(&pivot_row).skip(c) {
                    *v -= f * p;
                }
            }
        }
    }
    Some((0..k).map(|i| a[i][k] / a[i][i]).collect())
}

/// Determinant of the columns' correlation matrix: 1 for uncorrelated
/// predictors, 0 for collinear ones (or a constant column).
pub fn correlation_det(cols: &[Vec<f64>]) -> f64 {
    let k = cols.len();
    let sd: Vec<f64> = cols.iter().map(|c| stats::std_dev(c)).collect();
    if sd.iter().any(|s| s.is_nan() || *s <= 0.0) {
        return 0.0;
    }
    let means: Vec<f64> = cols.iter().map(|c| stats::mean(c)).collect();
    let n = cols[0].len() as f64;
    let mut m = vec![vec![0.0; k]; k];
    for i in 0..k {
        for j in 0..k {
            let cov: f64 = cols[i]
                .iter()
                .zip(&cols[j])
                .map(|(a, b)| (a - means[i]) * (b - means[j]))
                .sum::<f64>()
                / (n - 1.0);
            m[i][j] = cov / (sd[i] * sd[j]);
        }
    }
    determinant(m)
}

fn determinant(mut m: Vec<Vec<f64>>) -> f64 {
    let k = m.len();
    let mut det = 1.0;
    for c in 0..k {
        let Some(pivot) = (c..k).max_by(|x, y| m[*x][c].abs().total_cmp(&m[*y][c].abs())) else {
            return 0.0;
        };
        if m[pivot][c] == 0.0 {
            return 0.0;
        }
        if pivot != c {
            m.swap(c, pivot);
            det = -det;
        }
        det *= m[c][c];
        let pivot_row = m[c].clone();
        for row in m.iter_mut().skip(c + 1) {
            let f = row[c] / pivot_row[c];
            for (v, p) in row.iter_mut().zip(&pivot_row).skip(c) {
                *v -= f * p;
            }
        }
    }
    det
}

/// Percentile bootstrap (2.5%, 97.5%) of each coefficient, resampling
/// points with replacement; singular resamples (a predictor left constant)
/// are skipped, and with none left an interval is NaN, i.e. unknown.
pub fn bootstrap_cis(
    cols: &[Vec<f64>],
    y: &[f64],
    resamples: u32,
    rng: &mut impl RngExt,
) -> Vec<(f64, f64)> {
    let (n, k) = (y.len(), cols.len());
    let mut draws: Vec<Vec<f64>> = vec![Vec::with_capacity(resamples as usize); k];
    let mut bc = vec![vec![0.0; n]; k];
    let mut by = vec![0.0; n];
    for _ in 0..resamples {
        for i in 0..n {
            let j = rng.random_range(0..n);
            for c in 0..k {
                bc[c][i] = cols[c][j];
            }
            by[i] = y[j];
        }
        if let Some((_, b, _)) = ols(&bc, &by) {
            for c in 0..k {
                draws[c].push(b[c]);
            }
        }
    }
    draws
        .iter()
        .map(|d| {
            if d.is_empty() {
                return (f64::NAN, f64::NAN);
            }
            let s = stats::sorted(d);
            (
                stats::quantile_sorted(&s, 0.025),
                stats::quantile_sorted(&s, 0.975),
            )
        })
        .collect()
}
