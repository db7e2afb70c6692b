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
    std_dev_about(xs, mean(xs))
}

/// [`std_dev`] around an already computed `mean(xs)`, the same operations in
/// the same order (so the same bits) without summing the data twice.
fn std_dev_about(xs: &[f64], m: f64) -> f64 {
    let ss: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    (ss / (xs.len() - 1) as f64).sqrt()
}

/// Where the type-7 quantile `q` of `n >= 2` sorted values lies: the lower
/// rank, the upper rank and the fraction of the way between them. Shared by
/// the sorting and the selecting paths, so both interpolate identically.
fn type7(n: usize, q: f64) -> (usize, usize, f64) {
    let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    (lo, (lo + 1).min(n - 1), h - lo as f64)
}

/// Quantile of already-sorted data, linear interpolation between closest
/// ranks (Hyndman & Fan type 7, numpy's default).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let (lo, hi, frac) = type7(n, q);
            sorted[lo] + frac * (sorted[hi] - sorted[lo])
        }
    }
}

/// Put the order statistics of the given ranks (each `< xs.len()`) in
/// their sorted places, as a total-order sort would, in O(n) per distinct
/// rank instead of O(n log n): each selection runs on what lies above the
/// previous rank. Reorders `xs`; other places hold no particular value.
fn select_ranks(xs: &mut [f64], ranks: &mut [usize]) {
    ranks.sort_unstable();
    let mut start = 0;
    for &r in ranks.iter() {
        if r >= start {
            xs[start..].select_nth_unstable_by(r - start, f64::total_cmp);
            start = r + 1;
        }
    }
}

/// Type-7 quantiles by selection: bit for bit `quantile_sorted(&sorted(xs),
/// q)` for each `q`, without sorting. Reorders `xs`.
pub fn quantiles_in_place<const K: usize>(xs: &mut [f64], qs: [f64; K]) -> [f64; K] {
    let n = xs.len();
    match n {
        0 => return [f64::NAN; K],
        1 => return [xs[0]; K],
        _ => {}
    }
    let at = qs.map(|q| type7(n, q));
    let mut ranks: Vec<usize> = at.iter().flat_map(|(lo, hi, _)| [*lo, *hi]).collect();
    select_ranks(xs, &mut ranks);
    at.map(|(lo, hi, frac)| xs[lo] + frac * (xs[hi] - xs[lo]))
}

/// The distribution statistics of one sample (a summary row's columns).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distribution {
    pub n: usize,
    /// Summed in sample order.
    pub mean: f64,
    /// Type-7 quantiles.
    pub median: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
    /// Sample standard deviation (n - 1), two-pass; 0 for a single value.
    pub std: f64,
    /// Median absolute deviation from the median, unscaled.
    pub mad: f64,
}

/// [`Distribution`] of `xs` (None when empty), bit-identical to `mean`,
/// `quantile_sorted` over `sorted`, `std_dev` and `mad`, but with one copy
/// and selection instead of three sorts: the quantiles, extremes and the
/// median of the deviations are order statistics, which selection finds in
/// linear time. `scratch` is a reusable buffer.
pub fn distribution(xs: &[f64], scratch: &mut Vec<f64>) -> Option<Distribution> {
    let n = xs.len();
    if n == 0 {
        return None;
    }
    let mean = mean(xs);
    let std = if n > 1 { std_dev_about(xs, mean) } else { 0.0 };
    scratch.clear();
    scratch.extend_from_slice(xs);
    let qs = [0.5, 0.90, 0.95, 0.99];
    let (min, max, [median, p90, p95, p99]) = if n == 1 {
        (xs[0], xs[0], [xs[0]; 4])
    } else {
        let at = qs.map(|q| type7(n, q));
        let mut ranks: Vec<usize> = at.iter().flat_map(|(lo, hi, _)| [*lo, *hi]).collect();
        ranks.extend([0, n - 1]);
        select_ranks(scratch, &mut ranks);
        let q = at.map(|(lo, hi, frac)| scratch[lo] + frac * (scratch[hi] - scratch[lo]));
        (scratch[0], scratch[n - 1], q)
    };
    // The deviations' multiset does not depend on the order of `scratch`.
    for x in scratch.iter_mut() {
        *x = (*x - median).abs();
    }
    let [mad] = quantiles_in_place(scratch, [0.5]);
    Some(Distribution {
        n,
        mean,
        median,
        p90,
        p95,
        p99,
        min,
        max,
        std,
        mad,
    })
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

/// Resamples of the bootstrap CI of a median wherever the pipeline
/// computes one (summarise's medians, validate's monotonicity intervals):
/// one count, so the two agree on the same data.
pub const MEDIAN_CI_RESAMPLES: u32 = 1000;

/// Percentile bootstrap (2.5%, 97.5%) of the median. Fewer than two
/// samples give NaN: no interval can be claimed.
///
/// Each resample draws `n` indices with `rng.random_range(0..n)`, in order,
/// and takes the median of the values drawn ([`median_in_place`]'s
/// definition); the interval is the type-7 quantiles of the medians. The
/// draws and so the bytes are fixed by that definition; the computation is
/// not: the values are ranked once, a resample is a count per rank, and its
/// median is read off the running counts, so a resample costs its draws
/// (their words fetched in bulk) and a walk over the counts instead of a
/// copy and a selection. [`bootstrap_by_selection`] is the definition
/// written out; the tests hold the two to the same bits and the same words.
pub fn bootstrap_median_ci(xs: &[f64], resamples: u32, rng: &mut impl rand::RngExt) -> (f64, f64) {
    let n = xs.len();
    if n < 2 || resamples == 0 {
        return (f64::NAN, f64::NAN);
    }
    let Ok(range) = u32::try_from(n) else {
        // rand draws 64-bit indices past u32::MAX; keep its path there.
        return bootstrap_by_selection(xs, resamples, rng);
    };
    let ranked = Ranked::new(xs);
    let mut counts = vec![0u32; n];
    let mut medians = Vec::with_capacity(resamples as usize);
    let (mut bytes, mut words) = (vec![0u8; 4 * n], vec![0u32; n]);
    for _ in 0..resamples {
        // The n words a resample needs at least, copied out of the
        // generator in one call instead of n calls.
        rng.fill_bytes(&mut bytes);
        for (w, b) in words.iter_mut().zip(bytes.chunks_exact(4)) {
            *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        // A draw is one word, `below` without its second word, until a
        // word falls in the zone where `below` takes another (about n in
        // 2^32 words); from that draw on the words are a stream that runs
        // on into the generator, so exactly `random_range`'s words are
        // taken.
        let mut drawn = n;
        for (i, word) in words.iter().enumerate() {
            let m = u64::from(*word) * u64::from(range);
            if m as u32 > range.wrapping_neg() {
                drawn = i;
                break;
            }
            counts[ranked.rank[(m >> 32) as usize] as usize] += 1;
        }
        let mut at = drawn;
        let mut next = || {
            let word = words.get(at).copied().unwrap_or_else(|| rng.next_u32());
            at += 1;
            word
        };
        for _ in drawn..n {
            counts[ranked.rank[below(&mut next, range) as usize] as usize] += 1;
        }
        medians.push(ranked.median_of_counts(&counts));
        counts.fill(0);
    }
    let [low, high] = quantiles_in_place(&mut medians, [0.025, 0.975]);
    (low, high)
}

/// The reference definition of [`bootstrap_median_ci`]: each resample
/// copied out and its median selected. Used past `u32::MAX` samples, and by
/// the tests as the oracle the counting path must match bit for bit.
fn bootstrap_by_selection(xs: &[f64], resamples: u32, rng: &mut impl rand::RngExt) -> (f64, f64) {
    let n = xs.len();
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

/// `rng.random_range(0..range)` for `range >= 1`, given the generator's
/// 32-bit words in order: the same words consumed and the same result as
/// rand 0.10's `UniformInt::<u32>` single-sample path (Canon's method: one
/// word, and a second one only when the first falls in the biased zone,
/// about `range` in 2^32 words). Written out so the bootstrap can take its
/// words in bulk; the test `below_draws_what_random_range_draws` pins it to
/// rand itself, so an upgrade that changed rand's algorithm fails there,
/// not silently in the bytes.
#[inline]
fn below(mut next_word: impl FnMut() -> u32, range: u32) -> u32 {
    let m = u64::from(next_word()) * u64::from(range);
    let (result, lo) = ((m >> 32) as u32, m as u32);
    if lo > range.wrapping_neg() {
        let next_hi = ((u64::from(next_word()) * u64::from(range)) >> 32) as u32;
        return result + u32::from(lo.checked_add(next_hi).is_none());
    }
    result
}

/// A sample ranked once for resampling: `sorted` values (total order) and
/// each original index's rank among them.
struct Ranked {
    sorted: Vec<f64>,
    rank: Vec<u32>,
}

impl Ranked {
    fn new(xs: &[f64]) -> Self {
        let mut order: Vec<u32> = (0..xs.len() as u32).collect();
        order.sort_unstable_by(|a, b| xs[*a as usize].total_cmp(&xs[*b as usize]));
        let mut rank = vec![0u32; xs.len()];
        for (r, i) in order.iter().enumerate() {
            rank[*i as usize] = r as u32;
        }
        let sorted = order.iter().map(|i| xs[*i as usize]).collect();
        Ranked { sorted, rank }
    }

    /// The median of a resample given as counts per rank (summing to n):
    /// the values at sorted positions n/2 (and n/2 - 1 for even n), combined
    /// exactly as [`median_in_place`] combines them. Equal values at
    /// neighbouring ranks are the same bits, so the value at a position does
    /// not depend on how ties were ranked.
    fn median_of_counts(&self, counts: &[u32]) -> f64 {
        let n = counts.len();
        // Positions (n-1)/2 and n/2: one position for odd n.
        let (lower_at, upper_at) = ((n - 1) / 2, n / 2);
        let mut r = 0;
        let mut seen = counts[0] as usize;
        while seen <= lower_at {
            r += 1;
            seen += counts[r] as usize;
        }
        let lower = self.sorted[r];
        if n % 2 == 1 {
            return lower;
        }
        while seen <= upper_at {
            r += 1;
            seen += counts[r] as usize;
        }
        let upper = self.sorted[r];
        lower + 0.5 * (upper - lower)
    }
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

    /// Samples with ties, signed zeros, infinities and NaN, of many sizes.
    fn awkward_samples() -> Vec<Vec<f64>> {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut out = vec![
            vec![0.0, -0.0],
            vec![-0.0, 0.0, -0.0],
            vec![1.0, f64::INFINITY, 2.0],
            vec![f64::NAN, 1.0, 2.0, 3.0],
            vec![5.0; 7],
        ];
        for n in (1..40).chain([199, 200, 1001, 4096]) {
            // A few distinct values (many ties), then continuous ones.
            let coarse: Vec<f64> = (0..n)
                .map(|_| f64::from(rng.random_range(0..5u32)))
                .collect();
            let fine: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 1e3 - 5.0).collect();
            out.extend([coarse, fine]);
        }
        out
    }

    #[test]
    fn distribution_is_bit_identical_to_the_sorting_definitions() {
        let mut scratch = Vec::new();
        assert!(distribution(&[], &mut scratch).is_none());
        for xs in awkward_samples() {
            let d = distribution(&xs, &mut scratch).unwrap();
            let s = sorted(&xs);
            let want = [
                mean(&xs),
                quantile_sorted(&s, 0.5),
                quantile_sorted(&s, 0.90),
                quantile_sorted(&s, 0.95),
                quantile_sorted(&s, 0.99),
                s[0],
                s[s.len() - 1],
                if xs.len() > 1 { std_dev(&xs) } else { 0.0 },
                mad(&xs),
            ];
            let got = [
                d.mean, d.median, d.p90, d.p95, d.p99, d.min, d.max, d.std, d.mad,
            ];
            assert_eq!(d.n, xs.len());
            assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "{xs:?}");
            let mut v = xs.clone();
            let qs = quantiles_in_place(&mut v, [0.99, 0.025, 0.5, 1.0, 0.0]);
            let want = [0.99, 0.025, 0.5, 1.0, 0.0].map(|q| quantile_sorted(&s, q).to_bits());
            assert_eq!(qs.map(f64::to_bits), want, "{xs:?}");
        }
    }

    #[test]
    fn below_draws_what_random_range_draws() {
        use rand::{Rng, RngExt, SeedableRng};
        // Near 2^32 the second word (and its carry) is drawn about half the
        // time; small ranges almost never need it.
        for range in [
            1,
            2,
            3,
            7,
            200,
            10_007,
            (1 << 31) + 1,
            u32::MAX - 2,
            u32::MAX,
        ] {
            for seed in 0..4 {
                let mut a = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let mut b = a.clone();
                for _ in 0..5000 {
                    assert_eq!(
                        a.random_range(0..range as usize),
                        below(|| b.next_u32(), range) as usize
                    );
                }
                // The same number of words consumed.
                assert_eq!(a.next_u32(), b.next_u32(), "range {range}");
            }
        }
    }

    #[test]
    fn the_counting_bootstrap_is_bit_identical_to_resampling() {
        use rand::SeedableRng;
        for (i, xs) in awkward_samples().into_iter().enumerate() {
            if xs.len() < 2 || xs.len() > 1001 {
                continue;
            }
            let mut a = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64);
            let mut b = a.clone();
            let got = bootstrap_median_ci(&xs, 301, &mut a);
            let want = bootstrap_by_selection(&xs, 301, &mut b);
            assert_eq!(
                (got.0.to_bits(), got.1.to_bits()),
                (want.0.to_bits(), want.1.to_bits()),
                "{xs:?}"
            );
            // The same words consumed.
            assert_eq!(rand::Rng::next_u32(&mut a), rand::Rng::next_u32(&mut b));
        }
    }

    /// ChaCha8 words with every third one replaced by the word that puts a
    /// draw from `0..range` in the biased zone, so draws take a second word
    /// often and the buffered words run out mid-resample.
    struct Biased {
        inner: rand_chacha::ChaCha8Rng,
        special: u32,
        i: u64,
    }

    impl rand::TryRng for Biased {
        type Error = std::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            self.i += 1;
            let word = rand::Rng::next_u32(&mut self.inner);
            Ok(if self.i.is_multiple_of(3) {
                self.special
            } else {
                word
            })
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            let lo = u64::from(self.try_next_u32()?);
            Ok(lo | (u64::from(self.try_next_u32()?) << 32))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            for chunk in dst.chunks_mut(4) {
                let word = self.try_next_u32()?.to_le_bytes();
                chunk.copy_from_slice(&word[..chunk.len()]);
            }
            Ok(())
        }
    }

    #[test]
    fn draws_that_take_a_second_word_keep_the_counting_bootstrap_exact() {
        use rand::SeedableRng;
        for range in [3u32, 5, 7, 9] {
            // range * special = -1 (mod 2^32): the lowest word of the product
            // is 2^32 - 1, inside the zone Canon's method redraws from.
            let mut inverse = range;
            for _ in 0..5 {
                inverse = inverse.wrapping_mul(2u32.wrapping_sub(range.wrapping_mul(inverse)));
            }
            let special = inverse.wrapping_neg();
            assert_eq!(range.wrapping_mul(special), u32::MAX);
            let xs: Vec<f64> = (0..range).map(|i| f64::from(i % 4)).collect();
            let biased = || Biased {
                inner: rand_chacha::ChaCha8Rng::seed_from_u64(u64::from(range)),
                special,
                i: 0,
            };
            let (mut a, mut b) = (biased(), biased());
            let got = bootstrap_median_ci(&xs, 200, &mut a);
            let want = bootstrap_by_selection(&xs, 200, &mut b);
            assert_eq!(
                (got.0.to_bits(), got.1.to_bits()),
                (want.0.to_bits(), want.1.to_bits())
            );
            assert_eq!(a.i, b.i, "range {range}: words consumed");
        }
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
