//! Energy, gated (seed TR122, Appendices AA.5 and BA). A power sensor is
//! polled at a fixed interval while a cell runs, after an idle baseline
//! window; measure stores the raw samples (`power`), and validate decides,
//! window by window, whether energy is attributable at all: a window with
//! fewer samples than the spec's minimum is `no_data`, never a number.
//! Energy of a valid window is (mean power in it - idle power) x duration.
//!
//! Sensors: Linux RAPL through powercap (`/sys/class/powercap/intel-rapl:N`
//! package domains, read as energy counters and turned into the mean power
//! of each poll interval), and a simulated trace for the simulated backend.
//! No NVML: candle runs on the CPU only.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use assay_core::tables::{EnergyRow, EventRow, PowerRow};

/// The spec's `energy:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnergyParams {
    /// Polling interval of the power sensor, ms (NVML-style polling is
    /// about 100 ms).
    #[serde(default = "default_poll_ms")]
    #[schemars(range(min = 1, max = 60000))]
    pub poll_ms: u32,
    /// Samples a window needs for its energy to be attributable; fewer is
    /// `no_data`. Changing it re-gates stored samples without remeasuring.
    #[serde(default = "default_min_samples")]
    #[schemars(range(min = 1))]
    pub min_samples: u32,
    /// Idle baseline sampled before each cell's model load, ms.
    #[serde(default = "default_idle_ms")]
    #[schemars(range(max = 600000))]
    pub idle_ms: u32,
}

fn default_poll_ms() -> u32 {
    100
}
fn default_min_samples() -> u32 {
    2
}
fn default_idle_ms() -> u32 {
    1000
}

impl EnergyParams {
    /// What measurement depends on (not the gating threshold).
    pub fn sampling(&self) -> Sampling {
        Sampling {
            poll_ms: self.poll_ms,
            idle_ms: self.idle_ms,
        }
    }
}

/// How a cell samples power: part of the measure key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sampling {
    pub poll_ms: u32,
    pub idle_ms: u32,
}

/// What the manifest records about energy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergySource {
    /// `rapl:package-0+package-1`, `simulated`, or `none`.
    pub sensor: String,
    /// Why there is no sensor; absent when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_sensor: Option<String>,
    pub poll_ms: u32,
    pub idle_ms: u32,
    /// Samples taken in the idle baseline window and while the cell ran.
    pub idle_samples: u32,
    pub samples: u32,
}

/// A sampled power trace: times in ns relative to the harness clock's
/// origin (negative: the idle baseline before load), mean watts of the poll
/// interval ending at that time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub sensor: String,
    pub samples: Vec<(i64, f64)>,
}

impl Trace {
    pub fn rows(&self, cell: &str) -> Vec<PowerRow> {
        self.samples
            .iter()
            .map(|(t, w)| PowerRow {
                cell: cell.to_string(),
                t_ns: *t,
                watts: *w,
            })
            .collect()
    }

    pub fn source(&self, sampling: Sampling) -> EnergySource {
        EnergySource {
            sensor: self.sensor.clone(),
            no_sensor: None,
            poll_ms: sampling.poll_ms,
            idle_ms: sampling.idle_ms,
            idle_samples: self.samples.iter().filter(|(t, _)| *t < 0).count() as u32,
            samples: self.samples.iter().filter(|(t, _)| *t >= 0).count() as u32,
        }
    }
}

/// What sampling produced: a trace, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerOutcome {
    Trace(Trace),
    NoSensor(String),
}

impl PowerOutcome {
    pub fn source(&self, sampling: Sampling) -> EnergySource {
        match self {
            PowerOutcome::Trace(t) => t.source(sampling),
            PowerOutcome::NoSensor(reason) => no_sensor(reason.clone(), sampling),
        }
    }

    pub fn rows(&self, cell: &str) -> Vec<PowerRow> {
        match self {
            PowerOutcome::Trace(t) => t.rows(cell),
            PowerOutcome::NoSensor(_) => Vec::new(),
        }
    }
}

/// The manifest entry when no sensor could be read.
pub fn no_sensor(reason: String, sampling: Sampling) -> EnergySource {
    EnergySource {
        sensor: "none".into(),
        no_sensor: Some(reason),
        poll_ms: sampling.poll_ms,
        idle_ms: sampling.idle_ms,
        idle_samples: 0,
        samples: 0,
    }
}

/// Where powercap lives; `ASSAY_POWERCAP_ROOT` points elsewhere (tests, or
/// a machine that mounts sysfs at another path).
fn powercap_root() -> PathBuf {
    std::env::var_os("ASSAY_POWERCAP_ROOT")
        .map_or_else(|| PathBuf::from("/sys/class/powercap"), PathBuf::from)
}

/// RAPL package-domain energy counters.
pub struct Rapl {
    /// (energy_uj file, counter range in uJ for wrap-around).
    domains: Vec<(PathBuf, u64)>,
    names: Vec<String>,
}

impl Rapl {
    /// The package domains (`intel-rapl:N`, not their `:M` subzones), or why
    /// there are none readable.
    pub fn detect() -> Result<Rapl, String> {
        Self::detect_in(&powercap_root())
    }

    fn detect_in(root: &Path) -> Result<Rapl, String> {
        let entries = std::fs::read_dir(root)
            .map_err(|e| format!("no RAPL power sensor: {}: {e}", root.display()))?;
        let mut zones: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("intel-rapl:") && n.matches(':').count() == 1)
            })
            .collect();
        zones.sort();
        if zones.is_empty() {
            return Err(format!(
                "no RAPL power sensor: no intel-rapl package domain under {}",
                root.display()
            ));
        }
        let mut domains = Vec::new();
        let mut names = Vec::new();
        for z in zones {
            let file = z.join("energy_uj");
            read_u64(&file).map_err(|e| {
                format!(
                    "RAPL counter {} is not readable ({e}); reading it usually needs root",
                    file.display()
                )
            })?;
            let range = read_u64(&z.join("max_energy_range_uj")).unwrap_or(u64::MAX);
            let name = std::fs::read_to_string(z.join("name"))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| {
                    z.file_name()
                        .map_or(String::new(), |n| n.to_string_lossy().into())
                });
            // `psys` (the whole platform on Intel clients) already contains
            // the packages: summing it in would double the power.
            if !name.starts_with("package") {
                continue;
            }
            domains.push((file, range));
            names.push(name);
        }
        if domains.is_empty() {
            return Err(format!(
                "no RAPL power sensor: no package domain under {}",
                root.display()
            ));
        }
        Ok(Rapl { domains, names })
    }

    pub fn name(&self) -> String {
        format!("rapl:{}", self.names.join("+"))
    }

    fn read(&self) -> Result<Vec<u64>, String> {
        self.domains
            .iter()
            .map(|(f, _)| read_u64(f).map_err(|e| format!("{}: {e}", f.display())))
            .collect()
    }
}

fn read_u64(path: &Path) -> Result<u64, String> {
    std::fs::read_to_string(path)
        .map_err(|e| e.to_string())?
        .trim()
        .parse()
        .map_err(|e| format!("not a counter: {e}"))
}

/// Energy in uJ between two readings of a counter that wraps at `range`.
fn counter_delta(before: u64, after: u64, range: u64) -> u64 {
    if after >= before {
        after - before
    } else {
        range.saturating_sub(before).saturating_add(after)
    }
}

/// A background thread polling RAPL. Polling is the measurement itself
/// (TR122's instrument), so it sleeps between reads by design.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    /// Samples taken so far.
    taken: Arc<AtomicUsize>,
    handle: Option<JoinHandle<Vec<(Instant, f64)>>>,
    sensor: String,
}

/// A sampler dropped without `finish` (the measurement failed) stops its
/// thread rather than polling for the rest of the process.
impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Sleep `total` in short steps, returning early once `stop` is set, so a
/// finished cell never waits out a long polling interval.
pub fn sleep_unless(total: Duration, stop: &AtomicBool) {
    let step = Duration::from_millis(20);
    let end = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep(step.min(end - now));
    }
}

impl Sampler {
    pub fn start(rapl: Rapl, poll: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let taken = Arc::new(AtomicUsize::new(0));
        let taken_by_thread = taken.clone();
        let sensor = rapl.name();
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut out = Vec::new();
            let Ok(mut last) = rapl.read() else {
                return out;
            };
            let mut last_t = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                sleep_unless(poll, &flag);
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(now) = rapl.read() else { break };
                let t = Instant::now();
                let uj: u64 = rapl
                    .domains
                    .iter()
                    .zip(last.iter().zip(&now))
                    .map(|((_, range), (a, b))| counter_delta(*a, *b, *range))
                    .sum();
                let secs = t.duration_since(last_t).as_secs_f64();
                if secs > 0.0 {
                    out.push((t, uj as f64 / 1e6 / secs));
                    taken_by_thread.fetch_add(1, Ordering::Relaxed);
                }
                last = now;
                last_t = t;
            }
            out
        });
        Sampler {
            stop,
            taken,
            handle: Some(handle),
            sensor,
        }
    }

    /// The idle baseline: sit idle for `idle` and then until the thread has
    /// taken `min_samples` samples (a loaded machine can delay its first
    /// reads), at most ten times `idle` in all. Polling is the measurement,
    /// so this waits on the sampler's own count.
    pub fn idle_baseline(&self, idle: Duration, min_samples: usize) {
        let give_up = Instant::now() + idle * 10;
        let never = AtomicBool::new(false);
        sleep_unless(idle, &never);
        while self.taken.load(Ordering::Relaxed) < min_samples && Instant::now() < give_up {
            sleep_unless(Duration::from_millis(5), &never);
        }
    }

    /// Stop polling; sample times become ns relative to `origin` (the
    /// harness clock's zero).
    pub fn finish(mut self, origin: Instant) -> Trace {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self
            .handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Trace {
            sensor: std::mem::take(&mut self.sensor),
            samples: samples
                .into_iter()
                .map(|(t, w)| {
                    let ns = if t >= origin {
                        t.duration_since(origin).as_nanos() as i64
                    } else {
                        -(origin.duration_since(t).as_nanos() as i64)
                    };
                    (ns, w)
                })
                .collect(),
        }
    }
}

/// Power of the simulated machine: idle, plus a load term while the cell is
/// busy, with seeded noise. Each sample is the mean over its poll interval,
/// like a counter-derived reading. Deterministic from its inputs.
pub fn simulated_trace(events: &[EventRow], sampling: Sampling, seed: u64) -> Trace {
    const IDLE_W: f64 = 40.0;
    const ACTIVE_W: f64 = 35.0;
    let poll = i64::from(sampling.poll_ms.max(1)) * 1_000_000;
    let busy: Vec<(i64, i64)> = events
        .iter()
        .filter(|e| matches!(e.phase.as_str(), "load" | "e2e"))
        .map(|e| (e.start_ns as i64, (e.start_ns + e.ns) as i64))
        .collect();
    let end = busy.iter().map(|b| b.1).max().unwrap_or(0);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut samples = Vec::new();
    let mut t = -i64::from(sampling.idle_ms) * 1_000_000 + poll;
    while t <= end + poll {
        let (a, b) = (t - poll, t);
        let overlap: i64 = busy
            .iter()
            .map(|(s, e)| (b.min(*e) - a.max(*s)).max(0))
            .sum();
        let busy_fraction = (overlap as f64 / poll as f64).min(1.0);
        let noise = 1.0 + 0.02 * (rng.random::<f64>() * 2.0 - 1.0);
        samples.push((t, (IDLE_W + ACTIVE_W * busy_fraction) * noise));
        t += poll;
    }
    Trace {
        sensor: "simulated".into(),
        samples,
    }
}

/// One window energy is attributed to.
struct Window<'a> {
    phase: &'static str,
    start: i64,
    end: i64,
    tokens: u32,
    first: &'a EventRow,
}

/// Windows of every run: the prefill event, the decode span (first step's
/// start to the last step's end: single steps are far shorter than any
/// polling interval, so energy is only ever a macro-window figure), and e2e.
fn windows(events: &[EventRow]) -> Vec<Window<'_>> {
    let mut out = Vec::new();
    let mut runs: std::collections::BTreeMap<u32, Vec<&EventRow>> = Default::default();
    for e in events.iter().filter(|e| e.phase != "load") {
        runs.entry(e.repetition).or_default().push(e);
    }
    for evs in runs.values() {
        for e in evs
            .iter()
            .filter(|e| matches!(e.phase.as_str(), "prefill" | "e2e"))
        {
            out.push(Window {
                phase: if e.phase == "prefill" {
                    "prefill"
                } else {
                    "e2e"
                },
                start: e.start_ns as i64,
                end: (e.start_ns + e.ns) as i64,
                tokens: e.tokens,
                first: e,
            });
        }
        let decode: Vec<&&EventRow> = evs.iter().filter(|e| e.phase == "decode").collect();
        if let (Some(first), Some(start), Some(end)) = (
            decode.first(),
            decode.iter().map(|e| e.start_ns).min(),
            decode.iter().map(|e| e.start_ns + e.ns).max(),
        ) {
            out.push(Window {
                phase: "decode",
                start: start as i64,
                end: end as i64,
                tokens: decode.iter().map(|e| e.tokens).sum(),
                first,
            });
        }
    }
    out.sort_by_key(|w| (w.first.repetition, w.start, w.phase));
    out
}

/// Gate every window of one cell (TR122). A sample is the mean power of
/// the interval since the previous sample (one poll interval for the
/// first), so only samples whose whole interval lies inside the window
/// describe it: a window needs at least
/// `min_samples` of those, which also makes any window shorter than the
/// polling interval `no_data`. Idle power is the mean of the baseline
/// samples (intervals ending before time zero); without a baseline there is
/// no energy above idle, so every window is `no_data`.
pub fn gate(
    events: &[EventRow],
    power: &[PowerRow],
    min_samples: u32,
    poll_ms: u32,
) -> Vec<EnergyRow> {
    let poll_ns = i64::from(poll_ms) * 1_000_000;
    // Each sample covers the time since the previous one (a real poller
    // drifts past its nominal interval); the first covers one interval.
    let mut sorted: Vec<&PowerRow> = power.iter().collect();
    sorted.sort_by_key(|p| p.t_ns);
    let intervals: Vec<(i64, i64, f64)> = sorted
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let from = if i == 0 {
                p.t_ns - poll_ns
            } else {
                sorted[i - 1].t_ns
            };
            (from, p.t_ns, p.watts)
        })
        .collect();
    let idle: Vec<f64> = power
        .iter()
        .filter(|p| p.t_ns < 0)
        .map(|p| p.watts)
        .collect();
    let idle_w = if idle.is_empty() {
        None
    } else {
        Some(assay_core::stats::mean(&idle))
    };
    windows(events)
        .into_iter()
        .map(|w| {
            let inside: Vec<f64> = intervals
                .iter()
                .filter(|(from, to, _)| *from >= w.start && *to <= w.end)
                .map(|(_, _, watts)| *watts)
                .collect();
            let valid =
                inside.len() as u32 >= min_samples && !inside.is_empty() && idle_w.is_some();
            let mean_w = valid.then(|| assay_core::stats::mean(&inside));
            let duration_s = (w.end - w.start) as f64 / 1e9;
            let energy_j = mean_w.zip(idle_w).map(|(m, idle)| (m - idle) * duration_s);
            EnergyRow {
                cell: w.first.cell.clone(),
                repetition: w.first.repetition,
                warmup: w.first.warmup,
                phase: w.phase.into(),
                start_ns: w.start,
                duration_ns: (w.end - w.start) as u64,
                tokens: w.tokens,
                samples: inside.len() as u32,
                status: if valid { "valid" } else { "no_data" }.into(),
                mean_power_w: mean_w,
                idle_power_w: idle_w,
                energy_j,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(rep: u32, phase: &str, start_ms: u64, ms: u64, tokens: u32) -> EventRow {
        EventRow {
            cell: "c".into(),
            repetition: rep,
            phase: phase.into(),
            tokens,
            start_ns: start_ms * 1_000_000,
            ns: ms * 1_000_000,
            ..Default::default()
        }
    }

    fn p(t_ms: i64, watts: f64) -> PowerRow {
        PowerRow {
            cell: "c".into(),
            t_ns: t_ms * 1_000_000,
            watts,
        }
    }

    #[test]
    fn short_windows_are_no_data_and_long_ones_are_idle_subtracted() {
        // Run 0: prefill 0..50 ms (shorter than the polling interval: no
        // sample's interval fits), decode 50..450 ms and e2e 0..450 ms: the
        // samples at 200, 300, 400 cover the 100 ms before them and fit;
        // the one at 100 covers -100..100 (no sample at 0) and does not.
        let events = vec![
            ev(0, "prefill", 0, 50, 64),
            ev(0, "decode", 50, 200, 4),
            ev(0, "decode", 250, 200, 4),
            ev(0, "e2e", 0, 450, 12),
        ];
        let power = vec![
            p(-200, 30.0),
            p(-100, 32.0),
            p(100, 71.0),
            p(200, 71.0),
            p(300, 71.0),
            p(400, 71.0),
        ];
        let rows = gate(&events, &power, 2, 100);
        let by = |phase: &str| rows.iter().find(|r| r.phase == phase).unwrap();
        let prefill = by("prefill");
        assert_eq!((prefill.status.as_str(), prefill.samples), ("no_data", 0));
        assert_eq!(prefill.energy_j, None);
        let decode = by("decode");
        assert_eq!((decode.samples, decode.tokens), (3, 8));
        assert_eq!(by("e2e").samples, 3);
        assert_eq!(decode.idle_power_w, Some(31.0));
        // (71 - 31) W x 0.4 s = 16 J.
        assert!((decode.energy_j.unwrap() - 16.0).abs() < 1e-9);
        assert!((by("e2e").energy_j.unwrap() - 40.0 * 0.45).abs() < 1e-9);
        // The threshold is a parameter: at 5 samples everything is no_data.
        assert!(
            gate(&events, &power, 5, 100)
                .iter()
                .all(|r| r.energy_j.is_none())
        );
    }

    #[test]
    fn without_a_baseline_nothing_is_above_idle() {
        let events = vec![ev(0, "e2e", 0, 1000, 10)];
        let power: Vec<PowerRow> = (1..=10).map(|i| p(i * 100, 50.0)).collect();
        let r = &gate(&events, &power, 2, 100)[0];
        assert_eq!((r.samples, r.idle_power_w), (10, None));
        assert_eq!((r.status.as_str(), r.energy_j), ("no_data", None));
    }

    #[test]
    fn one_sample_never_attributes_a_window_shorter_than_its_interval() {
        // min_samples 1 and a 5 ms window holding a sample timestamp: the
        // sample's 100 ms interval is mostly outside, so no_data.
        let events = vec![ev(0, "prefill", 98, 5, 8)];
        let power = vec![p(-100, 30.0), p(100, 70.0)];
        let r = &gate(&events, &power, 1, 100)[0];
        assert_eq!((r.status.as_str(), r.samples), ("no_data", 0));
    }

    #[test]
    fn counters_wrap() {
        assert_eq!(counter_delta(10, 25, 100), 15);
        assert_eq!(counter_delta(90, 5, 100), 15);
    }

    #[test]
    fn simulated_trace_is_deterministic_and_busier_when_busy() {
        let events = vec![ev(0, "load", 0, 300, 0), ev(0, "e2e", 300, 700, 8)];
        let s = Sampling {
            poll_ms: 100,
            idle_ms: 500,
        };
        let a = simulated_trace(&events, s, 3);
        assert_eq!(a, simulated_trace(&events, s, 3));
        let idle: Vec<f64> = a
            .samples
            .iter()
            .filter(|(t, _)| *t <= 0)
            .map(|x| x.1)
            .collect();
        let busy: Vec<f64> = a
            .samples
            .iter()
            .filter(|(t, _)| *t > 0 && *t <= 1_000_000_000)
            .map(|x| x.1)
            .collect();
        assert_eq!(idle.len(), 5);
        assert!(idle.iter().all(|w| (w - 40.0).abs() < 1.0));
        assert!(busy.iter().all(|w| (w - 75.0).abs() < 2.0), "{busy:?}");
    }

    #[test]
    fn rapl_reads_a_powercap_tree_and_explains_its_absence() {
        let dir = tempfile::tempdir().unwrap();
        let zone = dir.path().join("intel-rapl:0");
        std::fs::create_dir_all(zone.join("intel-rapl:0:0")).unwrap();
        std::fs::write(zone.join("energy_uj"), "1000\n").unwrap();
        std::fs::write(zone.join("max_energy_range_uj"), "262143328850\n").unwrap();
        std::fs::write(zone.join("name"), "package-0\n").unwrap();
        let psys = dir.path().join("intel-rapl:1");
        std::fs::create_dir_all(&psys).unwrap();
        std::fs::write(psys.join("energy_uj"), "5\n").unwrap();
        std::fs::write(psys.join("name"), "psys\n").unwrap();
        let rapl = Rapl::detect_in(dir.path()).unwrap();
        assert_eq!(rapl.name(), "rapl:package-0");
        assert_eq!(rapl.read().unwrap(), vec![1000]);
        let err = Rapl::detect_in(&dir.path().join("absent")).err().unwrap();
        assert!(err.starts_with("no RAPL power sensor"), "{err}");
    }
}
