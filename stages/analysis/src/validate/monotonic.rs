//! Monotonicity (seed Appendix AH.3: validation artifacts "document missing
//! values, monotonicity checks, and degraded-run classifications"): for one
//! configuration (backend, model, batch), latency must not fall as the
//! prompt grows (prefill, TTFT; same generation length) nor as the
//! generation grows (end to end, summed decode; same prompt length).
//!
//! Cells are compared pairwise along each dimension on the median of their
//! steady ok runs, and an inversion counts only when it is real: the longer
//! scenario's 95% bootstrap interval of the median lies wholly below the
//! shorter one's. Overlapping intervals are noise and never an exception.
//!
//! An inversion is recorded as a failed check on both cells of the pair
//! (`monotonic_prompt` / `monotonic_gen`, detail `non_monotonic:prompt:..`
//! / `non_monotonic:gen:..`); no run changes status. AH.3 lists
//! monotonicity checks beside, not among, the degraded-run classifications,
//! and asks that exceptions be "explicitly justified", not dropped: an
//! inversion says one of two cells is suspect without saying which (a
//! shape-specific slow path in the shorter one, or a real kernel change in
//! the longer), and Appendix T risk 6 reads non-monotonic latency as a
//! signal about the configuration. So both cells stay in the aggregates and
//! the report lists the exception for a reader to explain.

use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use assay_core::domain::ValidationCheck;
use assay_core::stats;
use assay_core::tables::{EventColumns, Phase, ValidationRow};
use assay_measure::Manifest;

use super::CheckResult;

/// Resamples of each bootstrap interval (the summary's count).
const RESAMPLES: u32 = assay_core::stats::MEDIAN_CI_RESAMPLES;

/// A per-run latency compared along a dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Metric {
    Prefill,
    Ttft,
    E2e,
    /// The run's decode steps summed.
    DecodeTotal,
}

impl Metric {
    const ALL: [Metric; 4] = [
        Metric::Prefill,
        Metric::Ttft,
        Metric::E2e,
        Metric::DecodeTotal,
    ];

    fn name(self) -> &'static str {
        match self {
            Metric::Prefill => "prefill",
            Metric::Ttft => "ttft",
            Metric::E2e => "e2e",
            Metric::DecodeTotal => "decode_total",
        }
    }
}

/// One cell's place in the comparison: its configuration, shape and the
/// per-run latencies of its steady runs.
pub(super) struct CellRuns {
    pub cell: String,
    pub backend: String,
    pub model: String,
    pub prompt_tokens: u32,
    pub batch: u32,
    pub gen_tokens: u32,
    /// A cell under a load profile: queueing, not shape, sets its latency.
    pub under_load: bool,
    /// Steady run -> ms of each [`Metric`] (None where the run lacks it).
    pub runs: BTreeMap<u32, [Option<f64>; 4]>,
}

impl CellRuns {
    pub fn new(manifest: &Manifest, events: &EventColumns) -> Self {
        let mut runs: BTreeMap<u32, [Option<f64>; 4]> = BTreeMap::new();
        for i in (0..events.len()).filter(|i| !events.warmup.value(*i)) {
            let metric = match events.phase(i) {
                Phase::Prefill => Metric::Prefill,
                Phase::Ttft => Metric::Ttft,
                Phase::E2e => Metric::E2e,
                Phase::Decode => Metric::DecodeTotal,
                _ => continue,
            };
            let ms = events.ns[i] as f64 / 1e6;
            let slot = &mut runs.entry(events.repetition[i]).or_default()[metric as usize];
            *slot = Some(match (metric, *slot) {
                (Metric::DecodeTotal, Some(sum)) => sum + ms,
                _ => ms,
            });
        }
        let s = &manifest.scenario;
        CellRuns {
            cell: manifest.cell.clone(),
            backend: manifest.backend.clone(),
            model: manifest.model.clone(),
            prompt_tokens: s.prompt_tokens,
            batch: s.batch,
            gen_tokens: s.gen_tokens,
            under_load: s.load.is_some(),
            runs,
        }
    }
}

/// One cell on one metric: where it lies along a dimension and its
/// interval. Shared with the cost stage's monotonicity (Appendix AI.4).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub cell: String,
    /// Points compare only within one group (the configuration and the
    /// dimensions held fixed).
    pub group: String,
    /// The dimension's value (prompt or generation length).
    pub x: u32,
    pub median: f64,
    /// 95% interval of the median; non-finite: not compared.
    pub low: f64,
    pub high: f64,
}

impl Point {
    fn comparable(&self) -> bool {
        self.low.is_finite() && self.high.is_finite()
    }
}

/// Pairs `(shorter, longer)` of indices into `points`, in index order,
/// where both lie in one group, `shorter.x < longer.x`, and the longer's
/// interval lies wholly below the shorter's. Ties and overlaps are not
/// inversions.
pub fn inversions(points: &[Point]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (i, a) in points.iter().enumerate().filter(|(_, p)| p.comparable()) {
        for (j, b) in points.iter().enumerate().filter(|(_, p)| p.comparable()) {
            if a.group == b.group && a.x < b.x && b.high < a.low {
                out.push((i, j));
            }
        }
    }
    out
}

/// For each point, the other points it was compared with (same group,
/// another x, both intervals finite).
pub fn neighbours(points: &[Point]) -> Vec<usize> {
    points
        .iter()
        .map(|a| {
            if !a.comparable() {
                return 0;
            }
            points
                .iter()
                .filter(|b| b.comparable() && b.group == a.group && b.x != a.x)
                .count()
        })
        .collect()
}

/// A dimension of AH.3: which check, which metrics, what varies and what
/// is held.
struct Dimension {
    check: ValidationCheck,
    /// `prompt` or `gen` (the reason is `non_monotonic:<word>:<metric>`).
    word: &'static str,
    what: &'static str,
    metrics: [Metric; 2],
    x: fn(&CellRuns) -> u32,
    /// The other shape dimension, held fixed.
    held: fn(&CellRuns) -> u32,
    held_name: &'static str,
}

const DIMENSIONS: [Dimension; 2] = [
    Dimension {
        check: ValidationCheck::MonotonicPrompt,
        word: "prompt",
        what: "prompt tokens",
        metrics: [Metric::Prefill, Metric::Ttft],
        x: |c| c.prompt_tokens,
        held: |c| c.gen_tokens,
        held_name: "generation length",
    },
    Dimension {
        check: ValidationCheck::MonotonicGen,
        word: "gen",
        what: "generated tokens",
        metrics: [Metric::E2e, Metric::DecodeTotal],
        x: |c| c.gen_tokens,
        held: |c| c.prompt_tokens,
        held_name: "prompt length",
    },
];

/// The median and 95% bootstrap interval of a cell's metric over `ok`
/// runs; one RNG stream per (cell, metric), so the bytes depend on neither
/// cell order nor thread count.
fn interval(
    cell: &CellRuns,
    metric: Metric,
    ok: &BTreeSet<(&str, u32)>,
    seed: u64,
) -> (f64, f64, f64) {
    let xs: Vec<f64> = cell
        .runs
        .iter()
        .filter(|(rep, _)| ok.contains(&(cell.cell.as_str(), **rep)))
        .filter_map(|(_, m)| m[metric as usize])
        .collect();
    if xs.len() < 2 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let stream = blake3::hash(format!("monotonic\0{}\0{}", cell.cell, metric.name()).as_bytes());
    let stream = u64::from_le_bytes(stream.as_bytes()[..8].try_into().unwrap_or([0; 8]));
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ stream);
    let (low, high) = stats::bootstrap_median_ci(&xs, RESAMPLES, &mut rng);
    (stats::median(&xs), low, high)
}

/// AH.3 over every cell: one check per cell and dimension along which it
/// has at least one comparable neighbour. `rows` are the final verdicts:
/// only steady ok runs enter the medians, as in the summary.
pub(super) fn check_monotonicity(
    cells: &[CellRuns],
    rows: &[ValidationRow],
    seed: u64,
    checks: &mut Vec<CheckResult>,
) {
    let ok: BTreeSet<(&str, u32)> = rows
        .iter()
        .filter(|r| !r.warmup && r.is_ok())
        .map(|r| (r.cell.as_str(), r.repetition))
        .collect();
    let cells: Vec<&CellRuns> = cells.iter().filter(|c| !c.under_load).collect();
    let mut intervals: BTreeMap<(usize, Metric), (f64, f64, f64)> = BTreeMap::new();
    for (i, c) in cells.iter().enumerate() {
        for m in Metric::ALL {
            intervals.insert((i, m), interval(c, m, &ok, seed));
        }
    }
    // (cell index, dimension index) -> (neighbours, exceptions).
    let mut found: BTreeMap<(usize, usize), (usize, Vec<String>)> = BTreeMap::new();
    for (d, dim) in DIMENSIONS.iter().enumerate() {
        for metric in dim.metrics {
            let points: Vec<Point> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let (median, low, high) = intervals[&(i, metric)];
                    Point {
                        cell: c.cell.clone(),
                        group: format!(
                            "{}\0{}\0{}\0{}",
                            c.backend,
                            c.model,
                            c.batch,
                            (dim.held)(c)
                        ),
                        x: (dim.x)(c),
                        median,
                        low,
                        high,
                    }
                })
                .collect();
            for (i, n) in neighbours(&points).into_iter().enumerate() {
                if n > 0 {
                    let entry = found.entry((i, d)).or_default();
                    entry.0 = entry.0.max(n);
                }
            }
            for (s, l) in inversions(&points) {
                let (short, long) = (&points[s], &points[l]);
                let detail = format!(
                    "non_monotonic:{}:{}: {} at {} {} has median {:.3} ms [{:.3}, {:.3}], wholly below {} at {}: {:.3} ms [{:.3}, {:.3}]",
                    dim.word,
                    metric.name(),
                    long.cell,
                    long.x,
                    dim.what,
                    long.median,
                    long.low,
                    long.high,
                    short.cell,
                    short.x,
                    short.median,
                    short.low,
                    short.high
                );
                for k in [s, l] {
                    found.entry((k, d)).or_default().1.push(detail.clone());
                }
            }
        }
    }
    for (i, c) in cells.iter().enumerate() {
        for (d, dim) in DIMENSIONS.iter().enumerate() {
            let Some((n, exceptions)) = found.get(&(i, d)) else {
                continue;
            };
            checks.push(CheckResult {
                cell: c.cell.clone(),
                check: dim.check.as_str().into(),
                passed: exceptions.is_empty(),
                detail: if exceptions.is_empty() {
                    format!(
                        "{} and {} do not fall as {} grow, against {n} cells of the same backend, model, batch and {} (95% intervals of the median)",
                        dim.metrics[0].name(),
                        dim.metrics[1].name(),
                        dim.what,
                        dim.held_name
                    )
                } else {
                    exceptions.join("; ")
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::tests::{manifest, run_events};
    use assay_core::tables::EventRow;

    /// A cell of backend `b`, model `m`, batch 1, with steady runs 1..=n
    /// whose every metric is `ms` times a small deterministic jitter.
    fn cell(name: &str, prompt: u32, gen_tokens: u32, batch: u32, ms: f64, n: u32) -> CellRuns {
        let runs = (1..=n)
            .map(|rep| {
                let v = ms * (1.0 + 0.01 * f64::from(rep % 3));
                (rep, [Some(v), Some(v), Some(v), Some(v)])
            })
            .collect();
        CellRuns {
            cell: name.into(),
            backend: "b".into(),
            model: "m".into(),
            prompt_tokens: prompt,
            batch,
            gen_tokens,
            under_load: false,
            runs,
        }
    }

    fn ok_rows(cells: &[CellRuns]) -> Vec<ValidationRow> {
        cells
            .iter()
            .flat_map(|c| {
                c.runs.keys().map(|rep| ValidationRow {
                    cell: c.cell.clone(),
                    repetition: *rep,
                    status: "ok".into(),
                    ..Default::default()
                })
            })
            .collect()
    }

    fn run(cells: &[CellRuns], rows: &[ValidationRow]) -> Vec<CheckResult> {
        let mut checks = Vec::new();
        check_monotonicity(cells, rows, 7, &mut checks);
        checks
    }

    #[test]
    fn a_longer_prompt_that_is_wholly_faster_is_an_exception_on_both_cells() {
        // AH.3: latency must not fall as the prompt grows. p16 at ~9 ms,
        // p64 at ~3 ms (same backend, model, batch, generation length).
        let cells = [cell("p16", 16, 8, 1, 9.0, 6), cell("p64", 64, 8, 1, 3.0, 6)];
        let checks = run(&cells, &ok_rows(&cells));
        let prompt: Vec<&CheckResult> = checks
            .iter()
            .filter(|c| c.check == "monotonic_prompt")
            .collect();
        assert_eq!(prompt.len(), 2, "{checks:?}");
        for c in &prompt {
            assert!(!c.passed);
            assert!(
                c.detail
                    .starts_with("non_monotonic:prompt:prefill: p64 at 64 prompt tokens"),
                "{}",
                c.detail
            );
            assert!(
                c.detail.contains("non_monotonic:prompt:ttft"),
                "{}",
                c.detail
            );
        }
        // Same prompt, same generation: nothing varies along gen.
        assert!(checks.iter().all(|c| c.check != "monotonic_gen"));
    }

    #[test]
    fn overlapping_intervals_are_noise_and_a_rising_latency_passes() {
        // p64 a little faster than p16 but within the runs' spread: the
        // intervals overlap, so no exception.
        let mut noisy = [cell("p16", 16, 8, 1, 5.0, 6), cell("p64", 64, 8, 1, 4.9, 6)];
        for (i, c) in noisy.iter_mut().enumerate() {
            for (rep, m) in c.runs.iter_mut() {
                let v = [4.0, 6.0, 5.0][(*rep as usize + i) % 3];
                *m = [Some(v); 4];
            }
        }
        let checks = run(&noisy, &ok_rows(&noisy));
        assert!(!checks.is_empty());
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
        let rising = [cell("p16", 16, 8, 1, 3.0, 6), cell("p64", 64, 8, 1, 9.0, 6)];
        let checks = run(&rising, &ok_rows(&rising));
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
        assert!(
            checks[0]
                .detail
                .contains("do not fall as prompt tokens grow, against 1 cells")
        );
    }

    #[test]
    fn a_shorter_generation_that_is_wholly_slower_is_a_gen_exception() {
        let cells = [
            cell("g8", 16, 8, 1, 20.0, 5),
            cell("g32", 16, 32, 1, 10.0, 5),
        ];
        let checks = run(&cells, &ok_rows(&cells));
        let gens: Vec<&CheckResult> = checks
            .iter()
            .filter(|c| c.check == "monotonic_gen")
            .collect();
        assert_eq!(gens.len(), 2);
        assert!(gens.iter().all(|c| {
            !c.passed
                && c.detail
                    .starts_with("non_monotonic:gen:e2e: g32 at 32 generated tokens")
                && c.detail.contains("non_monotonic:gen:decode_total")
        }));
    }

    #[test]
    fn other_configurations_load_profiles_and_excluded_runs_are_not_compared() {
        // Another batch: another configuration.
        let cells = [cell("p16", 16, 8, 1, 9.0, 6), cell("p64", 64, 8, 2, 3.0, 6)];
        assert!(run(&cells, &ok_rows(&cells)).is_empty());
        // Under a load profile queueing sets the latency.
        let mut cells = [cell("p16", 16, 8, 1, 9.0, 6), cell("p64", 64, 8, 1, 3.0, 6)];
        cells[1].under_load = true;
        assert!(run(&cells, &ok_rows(&cells)).is_empty());
        // Only steady ok runs count: with all but one of p64's runs
        // degraded it has no interval, so nothing is compared.
        let cells = [cell("p16", 16, 8, 1, 9.0, 6), cell("p64", 64, 8, 1, 3.0, 6)];
        let mut rows = ok_rows(&cells);
        for r in rows
            .iter_mut()
            .filter(|r| r.cell == "p64" && r.repetition > 1)
        {
            r.status = "degraded".into();
        }
        assert!(run(&cells, &rows).is_empty());
    }

    #[test]
    fn the_checks_are_the_same_whatever_the_cell_order() {
        let a = [cell("p16", 16, 8, 1, 9.0, 6), cell("p64", 64, 8, 1, 3.0, 6)];
        let b = [cell("p64", 64, 8, 1, 3.0, 6), cell("p16", 16, 8, 1, 9.0, 6)];
        let mut x = run(&a, &ok_rows(&a));
        let mut y = run(&b, &ok_rows(&b));
        x.sort_by(|p, q| (&p.cell, &p.check).cmp(&(&q.cell, &q.check)));
        y.sort_by(|p, q| (&p.cell, &p.check).cmp(&(&q.cell, &q.check)));
        assert_eq!(x, y);
    }

    #[test]
    fn runs_are_read_from_the_events() {
        // prefill 2 ms, ttft 3 ms, two decode steps of 1.5 ms, e2e 6 ms.
        let mut events: Vec<EventRow> = run_events(0, true, 9.0);
        events.extend(run_events(1, false, 1.5));
        let columns = EventColumns::from_rows(&events);
        let c = CellRuns::new(&manifest(1, 1), &columns);
        assert_eq!(c.runs.len(), 1, "warmup runs are not read");
        assert_eq!(c.runs[&1], [Some(2.0), Some(3.0), Some(6.0), Some(3.0)]);
        assert_eq!((c.prompt_tokens, c.batch, c.gen_tokens), (2, 1, 3));
    }
}
