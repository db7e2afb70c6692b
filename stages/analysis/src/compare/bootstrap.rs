//! The steady-state samples of one phase grouped by run, and the
//! percentile bootstrap of the ratio of two medians that resamples whole
//! runs.
//!
//! Runs, not events, are the resampled unit: the decode steps of one run
//! share that run's machine state (caches, frequency, a neighbour's load),
//! so they are not independent draws, and an interval from resampled steps
//! would be far narrower than the run-to-run noise that two runs of the
//! same spec really show. Prefill, TTFT and e2e have one event per run, so
//! for them this is the ordinary bootstrap of the median.

use std::collections::BTreeMap;

use rand::RngExt;

use assay_core::stats;
use assay_core::tables::{EventColumns, Phase};

/// The steady-state events of one phase of one cell, by run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PhaseRuns {
    /// Milliseconds per event, one vector per steady (non-warmup) run, in
    /// repetition order; events in table order within a run.
    pub runs: Vec<Vec<f64>>,
    /// Median tokens per event (the batch for decode): turns a median step
    /// time into tokens/s as summarise does.
    pub tokens_per_event: f64,
}

impl PhaseRuns {
    /// Events over all runs.
    pub fn n(&self) -> usize {
        self.runs.iter().map(Vec::len).sum()
    }

    /// The type-7 median of every event pooled: the same number as the
    /// summary row's `median_ms` when every steady run validated ok.
    pub fn median(&self) -> f64 {
        let mut pooled: Vec<f64> = self.runs.iter().flatten().copied().collect();
        let [m] = stats::quantiles_in_place(&mut pooled, [0.5]);
        m
    }
}

/// The steady (non-warmup) events of every phase but load, grouped by
/// run, from a measure node's `events` table. Load is one event per cell,
/// outside the runs, and `other` phases are known to no summary.
pub fn steady_runs(events: &EventColumns) -> BTreeMap<Phase, PhaseRuns> {
    /// Per phase: ms by repetition, and every event's token count.
    type Gathered = (BTreeMap<u32, Vec<f64>>, Vec<f64>);
    let mut by: BTreeMap<Phase, Gathered> = BTreeMap::new();
    for i in 0..events.len() {
        let phase = events.phase(i);
        if matches!(phase, Phase::Load | Phase::Compile | Phase::Other) || events.warmup.value(i) {
            continue;
        }
        let (runs, tokens) = by.entry(phase).or_default();
        runs.entry(events.repetition[i])
            .or_default()
            .push(events.ns[i] as f64 / 1e6);
        tokens.push(f64::from(events.tokens[i]));
    }
    by.into_iter()
        .map(|(phase, (runs, mut tokens))| {
            let [tokens_per_event] = stats::quantiles_in_place(&mut tokens, [0.5]);
            let runs = runs.into_values().collect();
            (
                phase,
                PhaseRuns {
                    runs,
                    tokens_per_event,
                },
            )
        })
        .collect()
}

/// Percentile bootstrap (2.5%, 97.5%) of `median(new) / median(base)`.
///
/// Each resample draws, for BASE then NEW, as many runs as that side has,
/// with replacement (`rng.random_range`), pools their events and takes the
/// median ([`stats::median_in_place`]); the ratio of the two medians is one
/// bootstrap value, and the interval is the type-7 quantiles of the values.
/// The sides are resampled independently: they are separate measurements.
/// Fewer than two runs on a side give NaN: from one run nothing is known
/// about run-to-run noise, so no interval is claimed.
pub fn ratio_of_medians_ci(
    base: &[Vec<f64>],
    new: &[Vec<f64>],
    resamples: u32,
    rng: &mut impl RngExt,
) -> (f64, f64) {
    if base.len() < 2 || new.len() < 2 || resamples == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut ratios = Vec::with_capacity(resamples as usize);
    let mut scratch = Vec::new();
    for _ in 0..resamples {
        let b = resampled_median(base, rng, &mut scratch);
        let n = resampled_median(new, rng, &mut scratch);
        ratios.push(n / b);
    }
    let [low, high] = stats::quantiles_in_place(&mut ratios, [0.025, 0.975]);
    (low, high)
}

/// The median of the events of `runs.len()` runs drawn with replacement.
fn resampled_median(runs: &[Vec<f64>], rng: &mut impl RngExt, scratch: &mut Vec<f64>) -> f64 {
    scratch.clear();
    for _ in 0..runs.len() {
        scratch.extend_from_slice(&runs[rng.random_range(0..runs.len())]);
    }
    stats::median_in_place(scratch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use assay_core::tables::EventRow;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn event(rep: u32, warmup: bool, phase: &str, tokens: u32, ns: u64) -> EventRow {
        EventRow {
            cell: "c".into(),
            repetition: rep,
            warmup,
            cold: rep == 0,
            phase: phase.into(),
            token_index: (phase == "decode").then_some(1),
            tokens,
            start_ns: 0,
            ns,
        }
    }

    #[test]
    fn steady_runs_drop_warmup_and_load_and_group_by_run() {
        let rows = vec![
            event(0, false, "load", 0, 9_000_000),
            event(0, true, "decode", 2, 5_000_000),
            event(1, false, "decode", 2, 1_000_000),
            event(1, false, "decode", 2, 2_000_000),
            event(1, false, "e2e", 4, 7_000_000),
            event(2, false, "decode", 2, 3_000_000),
            event(2, false, "e2e", 4, 8_000_000),
        ];
        let runs = steady_runs(&EventColumns::from_rows(&rows));
        assert!(!runs.contains_key(&Phase::Load));
        let decode = &runs[&Phase::Decode];
        assert_eq!(decode.runs, vec![vec![1.0, 2.0], vec![3.0]]);
        assert_eq!(decode.n(), 3);
        assert_eq!(decode.median(), 2.0);
        assert_eq!(decode.tokens_per_event, 2.0);
        assert_eq!(runs[&Phase::E2e].runs, vec![vec![7.0], vec![8.0]]);
    }

    #[test]
    fn ratio_ci_brackets_a_known_ratio_and_is_deterministic() {
        // NEW is BASE times 1.5 with run-to-run spread: the interval must
        // hold 1.5 and exclude 1.
        let base: Vec<Vec<f64>> = (0..6)
            .map(|r| {
                (0..20)
                    .map(|i| 10.0 + f64::from(r) * 0.1 + f64::from(i % 3) * 0.01)
                    .collect()
            })
            .collect();
        let new: Vec<Vec<f64>> = base
            .iter()
            .map(|run| run.iter().map(|x| x * 1.5).collect())
            .collect();
        let ci = |seed| ratio_of_medians_ci(&base, &new, 500, &mut ChaCha8Rng::seed_from_u64(seed));
        let (lo, hi) = ci(3);
        assert!(
            (1.4..=1.5 + 1e-9).contains(&lo) && (1.5 - 1e-9..1.6).contains(&hi),
            "{lo} {hi}"
        );
        assert_eq!(ci(3), (lo, hi), "same seed, same interval");
    }

    #[test]
    fn identical_sides_give_an_interval_around_one() {
        let runs: Vec<Vec<f64>> = (0..5).map(|r| vec![1.0 + f64::from(r) * 0.05; 4]).collect();
        let (lo, hi) = ratio_of_medians_ci(&runs, &runs, 1000, &mut ChaCha8Rng::seed_from_u64(1));
        assert!(lo < 1.0 && hi > 1.0, "{lo} {hi}");
    }

    #[test]
    fn one_run_claims_no_interval() {
        let one = vec![vec![1.0, 2.0, 3.0]];
        let two = vec![vec![1.0], vec![2.0]];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!(ratio_of_medians_ci(&one, &two, 100, &mut rng).0.is_nan());
        assert!(ratio_of_medians_ci(&two, &one, 100, &mut rng).1.is_nan());
    }
}
