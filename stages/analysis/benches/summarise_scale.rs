//! Summary statistics and bootstrap at scale, side by side with DuckDB and
//! scipy in one run (issue #4).
//!
//!   cargo bench -p assay-analysis --bench summarise_scale
//!
//! 1. Generates a seeded raw event table (`EventRow`, 1,000 cells x phases
//!    prefill / decode / e2e, lognormal latencies with a heavy tail, one
//!    warmup run per cell) and writes it as Parquet with
//!    `assay_core::tables::to_parquet`, as the measure stage does.
//! 2. Times the per cell x phase summary of the steady events (n, mean,
//!    median, p90/p95/p99, min, max, std, MAD) through summarise's own
//!    functions: the file read into `tables::EventColumns` (the columnar
//!    reader summarise and validate use), cut into one zero-copy slice per
//!    cell (a measure node stores one cell per table), each cell's samples
//!    gathered with `summarise::CellSamples::gather` and each phase's
//!    statistics with `stats::distribution`, the calls `summarise_cell`
//!    makes. `summarise_cell` itself is not timed, because it also
//!    bootstraps every row's median (step 3 times the bootstrap on its own),
//!    but three whole cells are checked: `summarise_cell`'s columns must be
//!    the bench's bits, and both the sorting definitions' (`stats::sorted`,
//!    `quantile_sorted`, `std_dev`, `mad`).
//! 3. Times `stats::bootstrap_median_ci` (95% percentile interval) over
//!    1,000 cells x 2,000 resamples of a seeded sample written to a file.
//! 4. Runs `summarise_scale.py` (beside this file) on the same two files:
//!    the summary as DuckDB SQL (threads=1 and DuckDB's default), the
//!    bootstrap with `scipy.stats.bootstrap` and with plain numpy. Rounds are
//!    interleaved and alternate which side goes first, so machine noise
//!    hits both.
//! 5. Cross-checks the numbers and prints the table of times and ratios.
//!
//! Environment: ASSAY_BENCH_EVENTS (default 10,000,000),
//! ASSAY_BENCH_BOOT_CELLS (1,000), ASSAY_BENCH_RESAMPLES (2,000),
//! ASSAY_BENCH_BOOT_N (samples per bootstrap cell, 200),
//! ASSAY_BENCH_REPEATS (rounds, 3), ASSAY_BENCH_PYTHON (`python3`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use assay_analysis::summarise::{CellSamples, summarise_cell};
use assay_core::config::{Boundary, Scenario};
use assay_core::stats::{self, Distribution};
use assay_core::tables::{self, EventColumns, EventRow, Phase};
use assay_measure::harness::Attribution;
use assay_measure::stage::Requested;
use assay_measure::{BackendKind, Manifest};
use assay_model::decl::{Arch, SyntheticArch};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

/// Cells of the event table; events are spread evenly over them.
const CELLS: usize = 1000;
/// Decode steps of one run: a run is prefill, 62 decode steps and e2e, 64
/// events.
const DECODE_STEPS: u32 = 62;
const PROMPT_TOKENS: u32 = 512;
/// Seeds of the event table, the bootstrap sample and assay's resampling.
const EVENTS_SEED: u64 = 4;
const SAMPLE_SEED: u64 = 5;
const BOOT_SEED: u64 = 6;
/// Cells whose bench aggregates are compared with `summarise_cell`'s.
const SUMMARISE_CELL_CHECKS: [usize; 3] = [0, CELLS / 2, CELLS - 1];
/// Relative tolerance of the summary cross-check. Both sides compute from
/// the same f64 values with the same type-7 interpolation; only summation
/// order (mean, std) and rounding inside the interpolation may differ, a
/// few ulps.
const SUMMARY_TOLERANCE: f64 = 1e-12;
const INSTALL_HINT: &str = "python3 -m pip install --user duckdb scipy numpy \
     (or python3 -m venv /work/bench-venv && /work/bench-venv/bin/pip install duckdb scipy numpy, \
     then ASSAY_BENCH_PYTHON=/work/bench-venv/bin/python)";

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace(['_', ','], "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a positive integer")),
        Err(_) => default,
    }
}

const STAT_NAMES: [&str; 9] = [
    "mean", "median", "p90", "p95", "p99", "min", "max", "std", "mad",
];

/// The nine statistics of a distribution, in `STAT_NAMES` order.
fn values(d: &Distribution) -> [f64; 9] {
    [
        d.mean, d.median, d.p90, d.p95, d.p99, d.min, d.max, d.std, d.mad,
    ]
}

type Summary = BTreeMap<(String, &'static str), Distribution>;

/// The table cut into one zero-copy slice per cell. A measure node's table
/// holds one cell, so summarise never does this; the bench's one table of
/// 1,000 cells (the same file DuckDB reads) stands in for 1,000 of them.
/// Each cell's events are contiguous, as the generator writes them.
fn split_by_cell(events: &EventColumns) -> Vec<(String, EventColumns)> {
    let cell = events.cell.as_ref().expect("the cell column was read");
    let views = cell.views();
    let mut out: Vec<(String, EventColumns)> = Vec::new();
    let mut start = 0;
    for i in 1..=events.len() {
        // Equal views are equal strings; unequal ones may still be (a long
        // name in two buffers), so compare those by value.
        if i == events.len() || (views[i] != views[start] && cell.value(i) != cell.value(start)) {
            out.push((
                cell.value(start).to_string(),
                events.slice(start, i - start),
            ));
            start = i;
        }
    }
    let distinct: BTreeSet<&str> = out.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        distinct.len(),
        out.len(),
        "a cell's events are not contiguous"
    );
    out
}

/// Seconds of each part of assay's summary.
struct SummaryTimes {
    /// The file into memory.
    read: f64,
    /// Bytes to `EventColumns` (`EventColumns::from_parquet`: Parquet
    /// decoding of the columns summarise needs, phases to codes).
    columns: f64,
    /// The table into per-cell slices (`split_by_cell`, bench glue).
    split: f64,
    /// `CellSamples::gather` over every cell (phases and runs by index).
    gather: f64,
    /// `stats::distribution` of every cell x phase.
    stats: f64,
    /// Freeing the columns and samples.
    free: f64,
    total: f64,
}

/// assay's side of the summary, through summarise's functions: read the
/// file, decode its columns, then per cell gather the steady samples by
/// phase (every run validated ok here) and compute each phase's
/// distribution. Freeing is inside the clock too: DuckDB's time includes its
/// clean-up.
fn assay_summary(path: &Path) -> (Summary, SummaryTimes) {
    let start = Instant::now();
    let lap = |t: &mut f64| {
        let now = start.elapsed().as_secs_f64();
        let since = now - *t;
        *t = now;
        since
    };
    let mut t = 0.0;
    let bytes = std::fs::read(path).expect("read events");
    let read = lap(&mut t);
    let events = EventColumns::from_parquet(bytes, true).expect("decode events");
    let columns = lap(&mut t);
    let cells = split_by_cell(&events);
    let split = lap(&mut t);
    let mut summary = Summary::new();
    let mut scratch = Vec::new();
    let (mut gather, mut stats_s) = (0.0, 0.0);
    let mut all_samples = Vec::with_capacity(CELLS);
    for (cell, slice) in cells {
        let clock = Instant::now();
        let samples = CellSamples::gather(&slice, |_| true);
        let gathered = clock.elapsed().as_secs_f64();
        for phase in Phase::KNOWN {
            if let Some(d) = stats::distribution(&samples.steady[phase as usize], &mut scratch) {
                summary.insert((cell.clone(), phase.name()), d);
            }
        }
        gather += gathered;
        stats_s += clock.elapsed().as_secs_f64() - gathered;
        all_samples.push(samples);
    }
    lap(&mut t);
    drop(all_samples);
    drop(scratch);
    drop(events);
    let free = lap(&mut t);
    let times = SummaryTimes {
        read,
        columns,
        split,
        gather,
        stats: stats_s,
        free,
        total: t,
    };
    (summary, times)
}

/// assay's side of the bootstrap: one seeded stream per cell, as summarise
/// seeds one per (cell, phase).
fn assay_bootstrap(samples: &[f64], n: usize, resamples: u32) -> Vec<(f64, f64)> {
    samples
        .chunks(n)
        .enumerate()
        .map(|(i, xs)| {
            let mut rng = ChaCha8Rng::seed_from_u64(BOOT_SEED * 1_000_000 + i as u64);
            stats::bootstrap_median_ci(xs, resamples, &mut rng)
        })
        .collect()
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // (0, 1]: ln stays finite
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A latency around `median_ms`: lognormal, and 1 draw in 100 is a stall of
/// 1.5x to 4x (preemption, page faults), the tail real measurements have.
/// Rounded to whole nanoseconds like the harness's clock.
fn latency_ns(rng: &mut ChaCha8Rng, median_ms: f64, sigma: f64) -> u64 {
    let mut ms = median_ms * (sigma * normal(rng)).exp();
    if rng.random::<f64>() < 0.01 {
        ms *= rng.random_range(1.5..4.0);
    }
    (ms * 1e6).round() as u64
}

fn cell_name(i: usize) -> String {
    format!("b{}/m{:02}/s{}", i / 100, i / 10 % 10, i % 10)
}

/// The raw event table: `total` events spread evenly over `CELLS` cells
/// (the remainder to the first cells). Each cell has its own speed; run 0
/// is the cold warmup run, 1.6x slower. A cell's last run is cut short
/// where its share of events ends.
fn generate_events(total: usize) -> Vec<EventRow> {
    let mut rng = ChaCha8Rng::seed_from_u64(EVENTS_SEED);
    let mut rows = Vec::with_capacity(total);
    for c in 0..CELLS {
        let quota = total / CELLS + usize::from(c < total % CELLS);
        let cell = cell_name(c);
        // Decode steps of 4 to 80 ms; prefill of 512 tokens 10x to 40x a step.
        let decode_ms = 4.0 * (3.0 * rng.random::<f64>()).exp();
        let prefill_ms = decode_ms * rng.random_range(10.0..40.0);
        let mut produced = 0;
        let mut rep = 0u32;
        // The cell's clock (`start_ns`): zero before model load, which takes
        // half a second and is not part of this table.
        let mut clock: u64 = 500_000_000;
        while produced < quota {
            let slow = if rep == 0 { 1.6 } else { 1.0 };
            let run_start = clock;
            let event = |phase: &str, token_index, tokens, start_ns, ns| EventRow {
                cell: cell.clone(),
                repetition: rep,
                warmup: rep == 0,
                cold: rep == 0,
                phase: phase.into(),
                token_index,
                tokens,
                start_ns,
                ns,
            };
            let prefill = latency_ns(&mut rng, prefill_ms * slow, 0.05);
            rows.push(event("prefill", None, PROMPT_TOKENS, clock, prefill));
            produced += 1;
            clock += prefill;
            for step in 1..=DECODE_STEPS {
                if produced == quota {
                    break;
                }
                let ns = latency_ns(&mut rng, decode_ms * slow, 0.08);
                rows.push(event("decode", Some(step), 1, clock, ns));
                produced += 1;
                clock += ns;
            }
            // Sampling and bookkeeping between the timed phases.
            clock += latency_ns(&mut rng, 0.2, 0.3);
            if produced < quota {
                let e2e = clock - run_start;
                rows.push(event("e2e", None, DECODE_STEPS + 1, run_start, e2e));
                produced += 1;
            }
            rep += 1;
        }
    }
    rows
}

/// The bootstrap input: `cells` samples of `n` request latencies, each cell
/// around its own median (50 ms to 1 s), lognormal sigma 0.25 with the tail.
fn generate_samples(cells: usize, n: usize) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(SAMPLE_SEED);
    let mut out = Vec::with_capacity(cells * n);
    for _ in 0..cells {
        let median_ms = 50.0 * (3.0 * rng.random::<f64>()).exp();
        for _ in 0..n {
            out.push(latency_ns(&mut rng, median_ms, 0.25) as f64 / 1e6);
        }
    }
    out
}

/// A manifest for `summarise_cell`; only the cell id matters to the columns
/// compared.
fn manifest(cell: &str) -> Manifest {
    let arch = SyntheticArch {
        arch: Arch::Llama,
        layers: 1,
        hidden: 8,
        heads: 2,
        kv_heads: None,
        vocab: 16,
        intermediate: None,
        max_positions: 1024,
        seed: 0,
    };
    Manifest {
        cell: cell.into(),
        backend: "b".into(),
        model: "m".into(),
        scenario: Scenario {
            name: "s".into(),
            prompt_tokens: PROMPT_TOKENS,
            batch: 1,
            gen_tokens: DECODE_STEPS + 1,
            load: None,
        },
        evidence: "simulated".into(),
        clock: "virtual".into(),
        boundary: Boundary {
            tokenization: Default::default(),
            model_load: Default::default(),
            warmup_runs: 1,
            repetitions: 1,
            decode: Default::default(),
            prompts: None,
        },
        requested: Requested {
            kind: BackendKind::new("simulated"),
            device: "cpu".into(),
            dtype: "f32".into(),
            threads: 1,
            compiled: None,
            injected: Vec::new(),
        },
        actual: Attribution::plain("cpu", "f32", 1, "bench", "0"),
        model_info: Some(arch.info("m")),
        weights: None,
        started_unix_ms: None,
        energy: None,
        environment: None,
        assay_version: "0".into(),
        imported: None,
        gpu: None,
    }
}

/// The nine statistics by their sorting definitions: one sorted copy for
/// the quantiles and extremes, `mean`, `std_dev` and `mad` (which sorts
/// twice), as summarise computed them before `stats::distribution`.
fn sorting_definitions(ms: &[f64]) -> [f64; 9] {
    let sorted = stats::sorted(ms);
    let q = |p: f64| stats::quantile_sorted(&sorted, p);
    [
        stats::mean(ms),
        q(0.5),
        q(0.90),
        q(0.95),
        q(0.99),
        sorted[0],
        sorted[sorted.len() - 1],
        if ms.len() > 1 {
            stats::std_dev(ms)
        } else {
            0.0
        },
        stats::mad(ms),
    ]
}

/// `summarise_cell` on a few whole cells (every run ok) against the bench's
/// `stats::distribution` and the sorting definitions: the columns must be
/// bit-identical. Returns the mismatches.
fn check_against_summarise_cell(parquet: Vec<u8>) -> Vec<String> {
    let events = EventColumns::from_parquet(parquet, true).expect("decode events");
    let cells: BTreeMap<String, EventColumns> = split_by_cell(&events).into_iter().collect();
    let mut problems = Vec::new();
    for c in SUMMARISE_CELL_CHECKS {
        let cell = cell_name(c);
        let events = &cells[&cell];
        let ok: BTreeSet<(&str, u32)> = events
            .repetition
            .iter()
            .map(|r| (cell.as_str(), *r))
            .collect();
        let samples = CellSamples::gather(events, |_| true);
        for s in summarise_cell(&manifest(&cell), events, &ok, 0) {
            let ms = &samples.steady[Phase::from_name(&s.phase) as usize];
            let Some(d) = stats::distribution(ms, &mut Vec::new()) else {
                problems.push(format!("{cell} {}: no bench samples", s.phase));
                continue;
            };
            let theirs = [
                s.mean_ms,
                s.median_ms,
                s.p90_ms,
                s.p95_ms,
                s.p99_ms,
                s.min_ms,
                s.max_ms,
                s.std_ms,
                s.mad_ms,
            ];
            let bits = |v: [f64; 9]| v.map(f64::to_bits);
            let reference = sorting_definitions(ms);
            if d.n != s.n as usize
                || bits(values(&d)) != bits(theirs)
                || bits(reference) != bits(theirs)
            {
                problems.push(format!(
                    "{cell} {}: bench n={} {:?}, sorting definitions {reference:?}, \
                     summarise_cell n={} {theirs:?}",
                    s.phase,
                    d.n,
                    values(&d),
                    s.n
                ));
            }
        }
    }
    problems
}

/// One call of the Python side. `Err` carries a line for the report.
fn run_python(python: &str, args: &[String]) -> Result<Value, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/summarise_scale.py");
    let out = Command::new(python)
        .arg(&script)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{} {} failed: {}",
            python,
            script.display(),
            out.status
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "{} printed no JSON ({e}): {}",
            script.display(),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Times of one measured thing over the rounds.
#[derive(Default)]
struct Series(Vec<f64>);

impl Series {
    fn median(&self) -> f64 {
        if self.0.is_empty() {
            f64::NAN
        } else {
            stats::median(&self.0)
        }
    }
    fn best(&self) -> f64 {
        self.0.iter().copied().fold(f64::NAN, f64::min)
    }
}

/// |a - b| relative to the larger magnitude; 0 when both are 0.
fn rel_diff(a: f64, b: f64) -> f64 {
    let scale = a.abs().max(b.abs());
    if scale == 0.0 {
        0.0
    } else {
        (a - b).abs() / scale
    }
}

fn secs(s: f64) -> String {
    if s.is_nan() {
        "-".into()
    } else if s < 10.0 {
        format!("{s:.3} s")
    } else {
        format!("{s:.2} s")
    }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// DuckDB's rows (`[cell, phase, n, mean, ..., mad]`) against assay's.
/// Returns the per-statistic maximum relative difference and any problems.
fn compare_summaries(ours: &Summary, rows: &[Value]) -> ([f64; 9], Vec<String>) {
    let mut max = [0.0f64; 9];
    let mut problems = Vec::new();
    let mut seen = 0;
    for row in rows {
        let r = row.as_array().expect("summary row is an array");
        let phase = r[1].as_str().unwrap_or_default();
        let key = (
            r[0].as_str().unwrap_or_default().to_string(),
            Phase::from_name(phase).name(),
        );
        let Some(a) = ours.get(&key).filter(|_| key.1 == phase) else {
            problems.push(format!(
                "DuckDB has a group assay has not: {:?}",
                (&key.0, phase)
            ));
            continue;
        };
        seen += 1;
        let n = r[2].as_u64().unwrap_or(0) as usize;
        if n != a.n {
            problems.push(format!("{key:?}: n {} (assay) vs {n} (DuckDB)", a.n));
        }
        for (k, (m, ours)) in max.iter_mut().zip(values(a)).enumerate() {
            let theirs = r[3 + k].as_f64().unwrap_or(f64::NAN);
            let d = rel_diff(ours, theirs);
            *m = if d.is_nan() { f64::INFINITY } else { m.max(d) };
        }
    }
    if seen != ours.len() {
        problems.push(format!(
            "assay has {} groups, DuckDB matched {seen}",
            ours.len()
        ));
    }
    for (k, m) in max.iter().enumerate() {
        if *m > SUMMARY_TOLERANCE {
            problems.push(format!(
                "{}: max relative difference {m:.2e} over tolerance {SUMMARY_TOLERANCE:.0e}",
                STAT_NAMES[k]
            ));
        }
    }
    (max, problems)
}

/// CI widths of two bootstraps of the same data with different random
/// draws. Only Monte Carlo noise separates them, so the mean log ratio of
/// the widths must be within 4 standard errors of 0.
struct WidthComparison {
    mean_ratio: f64,
    median_abs_rel: f64,
    max_abs_rel: f64,
    agrees: bool,
    z: f64,
}

fn compare_widths(a: &[(f64, f64)], b: &[(f64, f64)]) -> WidthComparison {
    let logs: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| ((x.1 - x.0) / (y.1 - y.0)).ln())
        .collect();
    let rel: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| rel_diff(x.1 - x.0, y.1 - y.0))
        .collect();
    let m = stats::mean(&logs);
    let se = stats::std_dev(&logs) / (logs.len() as f64).sqrt();
    let z = if se > 0.0 { m / se } else { 0.0 };
    WidthComparison {
        mean_ratio: m.exp(),
        median_abs_rel: stats::median(&rel),
        max_abs_rel: rel.iter().copied().fold(0.0, f64::max),
        agrees: z.abs() <= 4.0,
        z,
    }
}

fn parse_cis(v: &Value) -> Vec<(f64, f64)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let lo = p[0].as_f64().unwrap_or(f64::NAN);
                    let hi = p[1].as_f64().unwrap_or(f64::NAN);
                    (lo, hi)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The bench's sizes, from the environment.
struct Config {
    events_n: usize,
    boot_cells: usize,
    resamples: usize,
    boot_n: usize,
    repeats: usize,
    python: String,
}

impl Config {
    fn from_env() -> Config {
        let cfg = Config {
            events_n: env_usize("ASSAY_BENCH_EVENTS", 10_000_000),
            boot_cells: env_usize("ASSAY_BENCH_BOOT_CELLS", 1000),
            resamples: env_usize("ASSAY_BENCH_RESAMPLES", 2000),
            boot_n: env_usize("ASSAY_BENCH_BOOT_N", 200),
            repeats: env_usize("ASSAY_BENCH_REPEATS", 3).max(1),
            python: std::env::var("ASSAY_BENCH_PYTHON").unwrap_or_else(|_| "python3".into()),
        };
        assert!(
            cfg.events_n >= CELLS,
            "ASSAY_BENCH_EVENTS must be at least {CELLS}"
        );
        assert!(cfg.boot_n >= 2, "ASSAY_BENCH_BOOT_N must be at least 2");
        cfg
    }
}

/// Everything the interleaved rounds measured and returned.
#[derive(Default)]
struct Results {
    assay_summary_t: Series,
    /// Parts of assay's summary: read, columns, split, gather, stats, free.
    parts_t: [Series; 6],
    assay_boot_t: Series,
    /// Python's times, by the names its JSON uses.
    py_t: BTreeMap<String, Series>,
    our_summary: Summary,
    our_cis: Vec<(f64, f64)>,
    duckdb_rows: Vec<Value>,
    py_cis: BTreeMap<String, Vec<(f64, f64)>>,
    /// Versions and DuckDB's threads, merged over the calls.
    py_info: Value,
    missing: BTreeSet<String>,
    py_error: Option<String>,
}

impl Results {
    /// One call of the Python side; in the first round it also returns its
    /// results, for the cross-checks.
    fn record_python(&mut self, python: &str, args: &[String], first: bool) {
        if self.py_error.is_some() {
            return;
        }
        let mut args = args.to_vec();
        if first {
            args.push("--results".into());
        }
        let v = match run_python(python, &args) {
            Ok(v) => v,
            Err(e) => {
                self.py_error = Some(e);
                return;
            }
        };
        if let Some(m) = v["missing"].as_array() {
            (self.missing).extend(m.iter().filter_map(|x| x.as_str().map(String::from)));
        }
        for (k, s) in v["timings"].as_object().into_iter().flatten() {
            if let Some(s) = s.as_f64() {
                self.py_t.entry(k.clone()).or_default().0.push(s);
            }
        }
        if !first {
            return;
        }
        if let Some(rows) = v["rows"].as_array() {
            self.duckdb_rows = rows.clone();
        }
        for (k, c) in v["ci"].as_object().into_iter().flatten() {
            self.py_cis.insert(k.clone(), parse_cis(c));
        }
        for (k, x) in v["info"].as_object().into_iter().flatten() {
            match (&mut self.py_info[k], x) {
                (Value::Object(have), Value::Object(more)) => have.extend(more.clone()),
                (slot, _) => *slot = x.clone(),
            }
        }
    }
}

/// The interleaved rounds: in each, assay's summary and the Python one,
/// then assay's bootstrap and the Python ones, the side that goes first
/// alternating, so neither always runs on a warmer (or busier) machine.
fn run_rounds(cfg: &Config, events_path: &Path, samples_path: &Path, samples: &[f64]) -> Results {
    let summary_args = vec![
        "summary".to_string(),
        "--events".into(),
        events_path.display().to_string(),
    ];
    let boot_args: Vec<String> = [
        "bootstrap",
        "--samples",
        &samples_path.display().to_string(),
        "--cells",
        &cfg.boot_cells.to_string(),
        "--n",
        &cfg.boot_n.to_string(),
        "--resamples",
        &cfg.resamples.to_string(),
        "--seed",
        &BOOT_SEED.to_string(),
    ]
    .map(String::from)
    .into();
    let mut r = Results::default();
    for round in 0..cfg.repeats {
        let first = round == 0;
        for side in 0..2 {
            if (side + round) % 2 == 0 {
                let (s, t) = assay_summary(events_path);
                r.assay_summary_t.0.push(t.total);
                let parts = [t.read, t.columns, t.split, t.gather, t.stats, t.free];
                for (series, s) in r.parts_t.iter_mut().zip(parts) {
                    series.0.push(s);
                }
                r.our_summary = s;
            } else {
                r.record_python(&cfg.python, &summary_args, first);
            }
        }
        for side in 0..2 {
            if (side + round) % 2 == 0 {
                let t = Instant::now();
                r.our_cis = assay_bootstrap(samples, cfg.boot_n, cfg.resamples as u32);
                r.assay_boot_t.0.push(t.elapsed().as_secs_f64());
            } else {
                r.record_python(&cfg.python, &boot_args, first);
            }
        }
        println!(
            "  round {}/{}: assay summary {}, bootstrap {}",
            round + 1,
            cfg.repeats,
            secs(*r.assay_summary_t.0.last().unwrap_or(&f64::NAN)),
            secs(*r.assay_boot_t.0.last().unwrap_or(&f64::NAN)),
        );
    }
    r
}

/// What ran, and on how many threads.
fn print_environment(py_info: &Value) {
    println!();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("threads: machine has {cores} hardware threads");
    println!(
        "  assay: 1 thread (the stats functions are sequential; summarise runs them per cell)"
    );
    println!(
        "  DuckDB: `SET threads=1`, and its default threads={} (all cores)",
        duckdb_threads(py_info)
    );
    println!("  scipy / numpy: 1 thread (indexing, np.median and quantiles do not use BLAS)");
    if let Some(versions) = py_info["versions"].as_object() {
        let v: Vec<String> = versions
            .iter()
            .map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or("?")))
            .collect();
        println!("  versions: {}", v.join(", "));
    }
}

fn duckdb_threads(py_info: &Value) -> String {
    py_info["duckdb_threads_default"]
        .as_u64()
        .map_or("?".to_string(), |n| n.to_string())
}

/// The table of times and ratios, and where assay's summary time went.
fn print_table(cfg: &Config, r: &Results) {
    println!();
    println!(
        "{} interleaved round(s); times are median (best); ratio = their median / assay's \
         median, above 1 means assay is faster",
        cfg.repeats
    );
    println!();
    let summary = format!("summary of {} events", thousands(cfg.events_n));
    let boot = format!(
        "bootstrap {} cells x {} resamples",
        thousands(cfg.boot_cells),
        thousands(cfg.resamples)
    );
    let duckdb_default = format!("DuckDB, threads={} (default)", duckdb_threads(&r.py_info));
    let (ours_s, ours_b) = (&r.assay_summary_t, &r.assay_boot_t);
    let comparisons: [(&str, &Series, &str, &str); 5] = [
        (&summary, ours_s, "DuckDB, threads=1", "duckdb_threads_1"),
        (&summary, ours_s, &duckdb_default, "duckdb_threads_default"),
        (
            &boot,
            ours_b,
            "scipy.stats.bootstrap, per cell",
            "scipy_per_cell",
        ),
        (
            &boot,
            ours_b,
            "scipy.stats.bootstrap, all cells in one call",
            "scipy_one_call",
        ),
        (
            &boot,
            ours_b,
            "numpy resampling, per cell",
            "numpy_per_cell",
        ),
    ];
    println!("| computation | assay (1 thread) | compared with | its time | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    for (label, ours, name, key) in comparisons {
        let (their_time, ratio) = match r.py_t.get(key) {
            Some(s) if !s.0.is_empty() => (
                format!("{} ({})", secs(s.median()), secs(s.best())),
                format!("{:.2}", s.median() / ours.median()),
            ),
            _ => ("not run".into(), "-".into()),
        };
        println!(
            "| {label} | {} ({}) | {name} | {their_time} | {ratio} |",
            secs(ours.median()),
            secs(ours.best())
        );
    }
    println!();
    let p = r.parts_t.each_ref().map(|s| secs(s.median()));
    println!(
        "assay's summary, median of its parts: file into memory {}, Parquet to EventColumns {}, \
         split into cells {}, CellSamples::gather {}, stats::distribution {}, freeing {}",
        p[0], p[1], p[2], p[3], p[4], p[5]
    );
}

/// The summary against DuckDB's and the bootstrap widths against Python's;
/// a disagreement is pushed to `problems`.
fn cross_check(r: &Results, problems: &mut Vec<String>) {
    println!();
    if r.duckdb_rows.is_empty() {
        println!("cross-check, summary: no DuckDB results to compare");
    } else {
        let (max, mut p) = compare_summaries(&r.our_summary, &r.duckdb_rows);
        let parts: Vec<String> = STAT_NAMES
            .iter()
            .zip(max)
            .map(|(n, m)| format!("{n} {m:.1e}"))
            .collect();
        println!(
            "cross-check, summary of {} cell x phase groups against DuckDB \
             (quantile_cont and median are linear interpolation, type 7 like \
             stats::quantile_sorted): n equal in every group; max relative difference: {}; \
             tolerance {SUMMARY_TOLERANCE:.0e}: {}",
            r.our_summary.len(),
            parts.join(", "),
            if p.is_empty() { "ok" } else { "MISMATCH" }
        );
        problems.append(&mut p);
    }
    let show = |name: &str, c: &WidthComparison| {
        println!(
            "  {name}: mean width ratio {:.4} (z = {:+.2}), per-cell |relative difference| \
             median {:.1}%, max {:.1}%{}",
            c.mean_ratio,
            c.z,
            c.median_abs_rel * 100.0,
            c.max_abs_rel * 100.0,
            if c.agrees { "" } else { "  <- DISAGREES" }
        );
    };
    if r.py_cis.is_empty() {
        println!("cross-check, bootstrap: no scipy/numpy results to compare");
        return;
    }
    println!(
        "cross-check, bootstrap CI width (high - low) per cell; different RNGs, so the \
         widths agree only statistically (mean log ratio within 4 standard errors):"
    );
    for (key, cis) in &r.py_cis {
        if cis.len() != r.our_cis.len() {
            problems.push(format!(
                "{key}: {} intervals, assay {}",
                cis.len(),
                r.our_cis.len()
            ));
            continue;
        }
        let c = compare_widths(&r.our_cis, cis);
        show(&format!("assay vs {key}"), &c);
        if !c.agrees {
            problems.push(format!("bootstrap widths: assay vs {key}, z = {:.2}", c.z));
        }
    }
    // The noise floor: two Python implementations, different draws.
    if let (Some(a), Some(b)) = (
        r.py_cis.get("scipy_per_cell"),
        r.py_cis.get("numpy_per_cell"),
    ) {
        show(
            "reference, scipy_per_cell vs numpy_per_cell",
            &compare_widths(a, b),
        );
    }
}

/// Why the Python side did not run, and how to make it.
fn print_python_status(r: &Results) {
    if let Some(e) = &r.py_error {
        println!();
        println!("Python side SKIPPED: {e}");
    }
    if !r.missing.is_empty() || r.py_error.is_some() {
        println!();
        let m: Vec<&str> = r.missing.iter().map(String::as_str).collect();
        println!(
            "To compare with DuckDB and scipy{}: {INSTALL_HINT}",
            if m.is_empty() {
                String::new()
            } else {
                format!(" (missing: {})", m.join(", "))
            }
        );
    }
}

fn main() {
    let cfg = Config::from_env();
    let dir = tempfile::tempdir().expect("temp dir");
    let events_path = dir.path().join("events.parquet");
    let samples_path = dir.path().join("boot_samples.f64");

    let t = Instant::now();
    let events = generate_events(cfg.events_n);
    let parquet = tables::to_parquet(&events).expect("encode events");
    std::fs::write(&events_path, &parquet).expect("write events");
    let steady = events.iter().filter(|e| !e.warmup).count();
    println!(
        "summarise_scale: {} events ({} steady) over {CELLS} cells x prefill/decode/e2e, \
         Parquet {:.1} MB, written in {}",
        thousands(cfg.events_n),
        thousands(steady),
        parquet.len() as f64 / 1e6,
        secs(t.elapsed().as_secs_f64())
    );
    drop(events);
    let mut problems = check_against_summarise_cell(parquet);
    println!(
        "  summarise_cell on cells {SUMMARISE_CELL_CHECKS:?}: {}",
        if problems.is_empty() {
            "n, mean, median, p90, p95, p99, min, max, std, mad bit-identical to the bench's \
             stats::distribution and to the sorting definitions"
        } else {
            "MISMATCH (below)"
        }
    );

    let samples = generate_samples(cfg.boot_cells, cfg.boot_n);
    let bytes: Vec<u8> = samples.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(&samples_path, bytes).expect("write samples");
    println!(
        "  bootstrap input: {} cells x {} latencies (f64 file shared with Python), \
         {} resamples each, 95% percentile interval of the median",
        thousands(cfg.boot_cells),
        cfg.boot_n,
        thousands(cfg.resamples)
    );

    let results = run_rounds(&cfg, &events_path, &samples_path, &samples);
    print_environment(&results.py_info);
    print_table(&cfg, &results);
    cross_check(&results, &mut problems);
    print_python_status(&results);
    if !problems.is_empty() {
        println!();
        for p in &problems {
            println!("MISMATCH: {p}");
        }
        std::process::exit(1);
    }
}
