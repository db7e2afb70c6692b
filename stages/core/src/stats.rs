//! Small, deterministic statistics. Every reduction runs in a fixed order and
//! transcendental functions come from `libm`, so results are bit-identical on
//! every machine.

/// Sort a copy of `xs` (total order; NaN last).
pub fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample standard deviation (n - 1).
pub fn std_dev(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return f64::NAN;
    }
    let m = mean(xs);
    let ss: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    (ss / (xs.len() - 1) as f64).sqrt()
}

/// Quantile of already-sorted data, linear interpolation between closest
/// ranks (Hyndman & Fan type 7, numpy's default).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
            let lo = h.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
        }
    }
}

/// The type-7 median by selection, O(n); reorders `xs`.
pub fn median_in_place(xs: &mut [f64]) -> f64 {
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    let (left, mid, _) = xs.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *mid;
    if n % 2 == 1 {
        return upper;
    }
    let lower = left.iter().copied().max_by(f64::total_cmp).unwrap_or(upper);
    lower + 0.5 * (upper - lower)
}

pub fn median(xs: &[f64]) -> f64 {
    quantile_sorted(&sorted(xs), 0.5)
}

/// Median absolute deviation from the median (unscaled).
pub fn mad(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let m = median(xs);
    let dev: Vec<f64> = xs.iter().map(|x| (x - m).abs()).collect();
    median(&dev)
}

/// Percentile bootstrap (2.5%, 97.5%) of the median. Fewer than two
/// samples give NaN: no interval can be claimed.
pub fn bootstrap_median_ci(xs: &[f64], resamples: u32, rng: &mut impl rand::RngExt) -> (f64, f64) {
    let n = xs.len();
    if n < 2 || resamples == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut medians = Vec::with_capacity(resamples as usize);
    let mut sample = vec![0.0; n];
    for _ in 0..resamples {
        for slot in sample.iter_mut() {
            *slot = xs[rng.random_range(0..n)];
        }
        medians.push(median_in_place(&mut sample));
    }
    let s = sorted(&medians);
    (quantile_sorted(&s, 0.025), quantile_sorted(&s, 0.975))
}

/// Ordinary least squares y = a + b x. Returns (intercept, slope, r_squared).
pub fn ols(x: &[f64], y: &[f64]) -> Option<(f64, f64, f64)> {
    let n = x.len();
    if n < 2 || n != y.len() {
        return None;
    }
    // All x equal: no slope. Checked exactly, because the centred sum of
    // squares of equal values can round to a tiny non-zero number.
    if x.iter().all(|v| *v == x[0]) {
        return None;
    }
    let mx = mean(x);
    let my = mean(y);
    let sxx: f64 = x.iter().map(|v| (v - mx) * (v - mx)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let syy: f64 = y.iter().map(|v| (v - my) * (v - my)).sum();
    if sxx == 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let r2 = if syy == 0.0 {
        1.0
    } else {
        // Rounding can push a perfect fit a hair above 1.
        ((sxy * sxy) / (sxx * syy)).clamp(0.0, 1.0)
    };
    Some((intercept, slope, r2))
}

/// Ranks 1..n, ties sharing their average rank.
pub fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..xs.len()).collect();
    idx.sort_by(|a, b| xs[*a].total_cmp(&xs[*b]));
    let mut out = vec![0.0; xs.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && xs[idx[j + 1]] == xs[idx[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for k in &idx[i..=j] {
            out[*k] = rank;
        }
        i = j + 1;
    }
    out
}

/// Spearman rank correlation: Pearson correlation of the ranks. NaN when
/// either side is constant or fewer than two points.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    if x.len() < 2 || x.len() != y.len() {
        return f64::NAN;
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let (mx, my) = (mean(&rx), mean(&ry));
    let sxy: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = rx.iter().map(|a| (a - mx) * (a - mx)).sum();
    let syy: f64 = ry.iter().map(|b| (b - my) * (b - my)).sum();
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    sxy / (sxx * syy).sqrt()
}

/// exp(mean(ln x)), the seed's scenario aggregation; a single value is
/// returned as is (no rounding noise).
pub fn geomean(xs: &[f64]) -> f64 {
    match xs {
        [x] => *x,
        _ => exp(mean(&xs.iter().map(|&x| ln(x)).collect::<Vec<_>>())),
    }
}

pub fn ln(x: f64) -> f64 {
    libm::log(x)
}

pub fn exp(x: f64) -> f64 {
    libm::exp(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy_type7() {
        // numpy.quantile([1, 2, 3, 4, 10], [0.5, 0.95, 0.99]) = 3, 8.8, 9.76
        let s = sorted(&[4.0, 1.0, 10.0, 3.0, 2.0]);
        assert_eq!(quantile_sorted(&s, 0.5), 3.0);
        assert!((quantile_sorted(&s, 0.95) - 8.8).abs() < 1e-12);
        assert!((quantile_sorted(&s, 0.99) - 9.76).abs() < 1e-12);
    }

    #[test]
    fn std_and_mean() {
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert_eq!(mean(&xs), 5.0);
        // sample std of this classic set is sqrt(32/7)
        assert!((std_dev(&xs) - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn selection_median_matches_sorting() {
        for xs in [
            vec![3.0, 1.0, 2.0],
            vec![4.0, 1.0, 3.0, 2.0],
            vec![5.0],
            vec![2.0, 2.0, 1.0, 9.0, 7.0, 7.0],
        ] {
            let mut v = xs.clone();
            assert_eq!(median_in_place(&mut v), quantile_sorted(&sorted(&xs), 0.5));
        }
    }

    #[test]
    fn spearman_by_hand() {
        // scipy.stats.spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) = 0.8207826816681233
        let r = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]);
        assert!((r - 0.820_782_681_668_123_3).abs() < 1e-12, "{r}");
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), -1.0);
        assert!(spearman(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
        assert_eq!(ranks(&[10.0, 20.0, 10.0]), [1.5, 3.0, 1.5]);
    }

    #[test]
    fn mad_by_hand() {
        // median 3; deviations 2,1,0,1,7 -> median 1
        assert_eq!(mad(&[1.0, 2.0, 3.0, 4.0, 10.0]), 1.0);
    }

    #[test]
    fn bootstrap_median_ci_brackets_the_median_and_is_seeded() {
        use rand::SeedableRng;
        let xs: Vec<f64> = (0..101).map(f64::from).collect();
        let mut a = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut b = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (lo, hi) = bootstrap_median_ci(&xs, 500, &mut a);
        assert_eq!((lo, hi), bootstrap_median_ci(&xs, 500, &mut b));
        assert!(
            lo < 50.0 && 50.0 < hi && lo > 30.0 && hi < 70.0,
            "{lo} {hi}"
        );
        assert!(bootstrap_median_ci(&[1.0], 10, &mut a).0.is_nan());
    }

    #[test]
    fn ols_recovers_a_line() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let y = [3.0, 5.0, 7.0, 9.0];
        let (a, b, r2) = ols(&x, &y).unwrap();
        assert!((a - 1.0).abs() < 1e-12 && (b - 2.0).abs() < 1e-12 && (r2 - 1.0).abs() < 1e-12);
        assert!(ols(&[1.0, 1.0], &[1.0, 2.0]).is_none());
        let x = 12.345_f64.ln();
        assert!(ols(&[x, x, x], &[1.0, 2.0, 3.0]).is_none());
    }
}
