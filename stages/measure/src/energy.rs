//! Energy, gated (seed TR122, Appendices AA.5, BA.1, S.3 and AQ.4). A power
//! sensor is polled at a fixed interval while a cell runs, after an idle
//! baseline window; measure stores the raw samples (`power`), and validate
//! decides, window by window, whether energy is attributable at all: a
//! window shorter than the polling interval, or holding fewer readings than
//! the spec's minimum, is `no_data`, never a number. Besides each run's
//! windows, every cell has a macro window over all its steady runs, which
//! gives the cell an energy per token where single events are too short.
//! Energy of a valid window is (mean power in it - idle power) x duration,
//! with a 95% interval from the idle baseline's variance.
//!
//! Sensors ([`PowerSensor`]): Linux RAPL through powercap
//! (`/sys/class/powercap/intel-rapl:N` package domains) for a cell on the
//! CPU, and NVML ([`gpu`]) for a cell on an NVIDIA GPU, each read as an
//! energy counter where it has one and turned into the mean power of each
//! poll interval (NVML's power reading where the GPU has no counter); and
//! a simulated trace for the simulated backend. The spec's
//! `energy.sensor` picks one; `auto` picks by the cell's device, so a cell
//! on a GPU never gets the CPU package's energy, nor the reverse.

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

pub mod gpu;

/// Which power sensor measures a cell (the spec's `energy.sensor`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SensorChoice {
    /// NVML for a cell on a `cuda` device, RAPL for one on the CPU.
    #[default]
    Auto,
    /// The CPU packages' RAPL counters (CPU cells only).
    Rapl,
    /// The GPU's own counters through NVML (`cuda` cells only).
    Nvml,
}

impl SensorChoice {
    fn is_auto(&self) -> bool {
        *self == SensorChoice::Auto
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SensorChoice::Auto => "auto",
            SensorChoice::Rapl => "rapl",
            SensorChoice::Nvml => "nvml",
        }
    }

    /// The sensor a cell on `device` uses: `Rapl` or `Nvml`, never `Auto`.
    pub fn for_device(self, device: &str) -> SensorChoice {
        match self {
            SensorChoice::Auto if gpu::is_cuda(device) => SensorChoice::Nvml,
            SensorChoice::Auto => SensorChoice::Rapl,
            chosen => chosen,
        }
    }
}

/// The sensor for a cell on `device`, or why there is none: RAPL's package
/// counters, or NVML's GPU for a `cuda[:N]` device.
pub fn open_sensor(choice: SensorChoice, device: &str) -> Result<Box<dyn PowerSensor>, String> {
    match choice.for_device(device) {
        SensorChoice::Nvml => Ok(Box::new(gpu::NvmlSensor::open(device)?)),
        _ => Ok(Box::new(Rapl::detect()?)),
    }
}

/// One reading of a power sensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    /// A cumulative energy counter, J: the mean power of an interval is
    /// exact from two readings, whatever happened between them.
    Joules(f64),
    /// Power at the moment of reading, W (NVML on a GPU without an energy
    /// counter): a sample, not an interval's mean.
    Watts(f64),
}

/// A power sensor polled beside a cell.
pub trait PowerSensor: Send {
    /// Recorded in the manifest and the power table's trace
    /// (`rapl:package-0`, `nvml:<GPU name>:energy`).
    fn name(&self) -> String;
    fn read(&mut self) -> Result<Reading, String>;
    /// What the sensor saw of its device besides power, once the cell has
    /// ended (a GPU's attribution); None for the CPU's packages.
    fn finish(&mut self) -> Option<gpu::GpuAttribution> {
        None
    }
}

/// The spec's `energy:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnergyParams {
    /// Polling interval of the power sensor, ms (NVML-style polling is
    /// about 100 ms).
    #[serde(default = "default_poll_ms")]
    #[schemars(range(min = 1, max = 60000))]
    pub poll_ms: u32,
    /// Power readings a window needs inside it for its energy to be
    /// attributable; fewer is `no_data`. Changing it re-gates stored
    /// samples without remeasuring.
    #[serde(default = "default_min_samples")]
    #[schemars(range(min = 1))]
    pub min_samples: u32,
    /// Polling intervals a window must last for its energy to be
    /// attributable: 1 is the seed's rule (TR122: no energy for events
    /// shorter than the polling interval). Changing it re-gates stored
    /// samples without remeasuring.
    #[serde(default = "default_min_intervals")]
    #[schemars(range(min = 1))]
    pub min_intervals: u32,
    /// Idle baseline sampled before each cell's model load, ms.
    #[serde(default = "default_idle_ms")]
    #[schemars(range(max = 600000))]
    pub idle_ms: u32,
    /// Which sensor: `auto` (NVML for a `cuda` cell, RAPL for a CPU cell),
    /// `rapl` or `nvml`. A sensor of the other device is refused at check.
    #[serde(default)]
    pub sensor: SensorChoice,
}

fn default_poll_ms() -> u32 {
    100
}
fn default_min_samples() -> u32 {
    1
}
fn default_min_intervals() -> u32 {
    1
}
fn default_idle_ms() -> u32 {
    1000
}

impl EnergyParams {
    /// What measurement depends on (not the gating thresholds).
    pub fn sampling(&self) -> Sampling {
        Sampling {
            poll_ms: self.poll_ms,
            idle_ms: self.idle_ms,
            sensor: self.sensor,
        }
    }

    /// What gating depends on: validate's params, never a measure key.
    pub fn gate(&self) -> Gate {
        Gate {
            min_samples: self.min_samples,
            min_intervals: self.min_intervals,
        }
    }
}

/// The gate's thresholds (TR122; Appendices BA.1, AI.3, AM rule 6): a
/// window is attributable only if it lasts at least `min_intervals`
/// polling intervals and holds at least `min_samples` power readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    pub min_samples: u32,
    pub min_intervals: u32,
}

impl Default for Gate {
    /// The seed's rule: one polling interval, one reading.
    fn default() -> Self {
        Gate {
            min_samples: default_min_samples(),
            min_intervals: default_min_intervals(),
        }
    }
}

/// How a cell samples power: part of the measure key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sampling {
    pub poll_ms: u32,
    pub idle_ms: u32,
    /// Absent from the key when `auto` (the device, in the key, decides),
    /// so specs written before the choice existed keep their keys.
    #[serde(default, skip_serializing_if = "SensorChoice::is_auto")]
    pub sensor: SensorChoice,
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
    /// The GPU the sensor read, before and after the cell (NVML only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<Box<gpu::GpuAttribution>>,
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

    /// The GPU the sensor read, if it read one.
    pub fn gpu(&self) -> Option<gpu::GpuAttribution> {
        match self {
            PowerOutcome::Trace(t) => t.gpu.as_deref().cloned(),
            PowerOutcome::NoSensor(_) => None,
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
    /// The last raw counters, and the energy summed over every domain since
    /// the first read, uJ (the counters wrap; the sum does not).
    last: Option<Vec<u64>>,
    total_uj: u128,
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
        Ok(Rapl {
            domains,
            names,
            last: None,
            total_uj: 0,
        })
    }

    fn read_raw(&self) -> Result<Vec<u64>, String> {
        self.domains
            .iter()
            .map(|(f, _)| read_u64(f).map_err(|e| format!("{}: {e}", f.display())))
            .collect()
    }
}

impl PowerSensor for Rapl {
    fn name(&self) -> String {
        format!("rapl:{}", self.names.join("+"))
    }

    fn read(&mut self) -> Result<Reading, String> {
        let now = self.read_raw()?;
        if let Some(last) = &self.last {
            let uj: u64 = self
                .domains
                .iter()
                .zip(last.iter().zip(&now))
                .map(|((_, range), (a, b))| counter_delta(*a, *b, *range))
                .sum();
            self.total_uj += u128::from(uj);
        }
        self.last = Some(now);
        Ok(Reading::Joules(self.total_uj as f64 / 1e6))
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

/// Consecutive failed readings after which a sensor counts as dead.
const MAX_READ_FAILURES: u32 = 5;

/// What the polling thread hands back: its samples (time, W) and the
/// sensor, for what it saw besides power.
type Polled = (Vec<(Instant, f64)>, Box<dyn PowerSensor>);

/// A background thread polling a sensor. Polling is the measurement itself
/// (TR122's instrument), so it sleeps between reads by design.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    /// Samples taken so far.
    taken: Arc<AtomicUsize>,
    handle: Option<JoinHandle<Polled>>,
    sensor: String,
    /// When the idle baseline ended: samples after it and before the
    /// clock's zero (a harness process starting) are neither idle nor the
    /// cell's, and are dropped.
    idle_end: Option<Instant>,
}

/// A sampler dropped without `finish` (the measurement failed) stops its
/// thread rather than polling for the rest of the process.
impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// CLOCK_MONOTONIC now, ns.
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64) * 1_000_000_000 + t.tv_nsec as u64
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
    /// Polls `sensor` every `poll` on a thread of its own. A counter gives
    /// each interval's mean power (energy over time between two readings);
    /// a power reading is kept as read, at its time.
    pub fn start(mut sensor: Box<dyn PowerSensor>, poll: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let taken = Arc::new(AtomicUsize::new(0));
        let taken_by_thread = taken.clone();
        let name = sensor.name();
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut out = Vec::new();
            let Ok(mut last) = sensor.read() else {
                return (out, sensor);
            };
            let mut last_t = Instant::now();
            let mut failures = 0;
            while !flag.load(Ordering::Relaxed) {
                sleep_unless(poll, &flag);
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                // A transient error skips its interval (the next reading
                // spans two); a sensor that keeps failing is dead, and
                // validate's dead-sensor check names the silence.
                let now = match sensor.read() {
                    Ok(now) => {
                        failures = 0;
                        now
                    }
                    Err(_) if failures + 1 < MAX_READ_FAILURES => {
                        failures += 1;
                        continue;
                    }
                    Err(_) => break,
                };
                let t = Instant::now();
                let secs = t.duration_since(last_t).as_secs_f64();
                let watts = match (last, now) {
                    (Reading::Joules(a), Reading::Joules(b)) if secs > 0.0 => Some((b - a) / secs),
                    (_, Reading::Watts(w)) => Some(w),
                    _ => None,
                };
                if let Some(w) = watts {
                    out.push((t, w));
                    taken_by_thread.fetch_add(1, Ordering::Relaxed);
                }
                last = now;
                last_t = t;
            }
            (out, sensor)
        });
        Sampler {
            stop,
            taken,
            handle: Some(handle),
            sensor: name,
            idle_end: None,
        }
    }

    /// The idle baseline: sit idle for `idle` and then until the thread has
    /// taken `min_samples` samples (a loaded machine can delay its first
    /// reads), at most ten times `idle` in all. Polling is the measurement,
    /// so this waits on the sampler's own count.
    pub fn idle_baseline(&mut self, idle: Duration, min_samples: usize) {
        let give_up = Instant::now() + idle * 10;
        let never = AtomicBool::new(false);
        sleep_unless(idle, &never);
        while self.taken.load(Ordering::Relaxed) < min_samples && Instant::now() < give_up {
            sleep_unless(Duration::from_millis(5), &never);
        }
        self.idle_end = Some(Instant::now());
    }

    /// Stop polling; sample times become ns relative to `origin_ns` on
    /// CLOCK_MONOTONIC: the zero of another process's clock on the same
    /// machine (a Python harness's `time.perf_counter_ns`, which reads
    /// CLOCK_MONOTONIC on Linux, as `Instant` does).
    pub fn finish_at_monotonic_ns(self, origin_ns: u64) -> Trace {
        let now = Instant::now();
        let now_ns = monotonic_ns();
        // The same instant as a process-independent number: `origin` is
        // where CLOCK_MONOTONIC read `origin_ns`.
        let back = now_ns.saturating_sub(origin_ns);
        let ahead = origin_ns.saturating_sub(now_ns);
        let origin = now
            .checked_sub(Duration::from_nanos(back))
            .map(|t| t + Duration::from_nanos(ahead))
            .unwrap_or(now);
        self.finish(origin)
    }

    /// Stop polling; sample times become ns relative to `origin` (the
    /// harness clock's zero).
    pub fn finish(mut self, origin: Instant) -> Trace {
        self.stop.store(true, Ordering::Relaxed);
        let (samples, gpu) = match self.handle.take().and_then(|h| h.join().ok()) {
            Some((samples, mut sensor)) => (samples, sensor.finish().map(Box::new)),
            None => (Vec::new(), None),
        };
        let idle_end = self.idle_end;
        Trace {
            gpu,
            sensor: std::mem::take(&mut self.sensor),
            samples: samples
                .into_iter()
                .filter(|(t, _)| idle_end.is_none_or(|end| *t <= end || *t >= origin))
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
        gpu: None,
    }
}

/// One window energy is attributed to.
struct Window<'a> {
    phase: &'static str,
    start: i64,
    end: i64,
    tokens: u32,
    runs: u32,
    first: &'a EventRow,
}

/// Polling intervals a window may go without a reading at its end before
/// it is `uncovered`: the same tolerance as validate's dead-sensor check
/// (a loaded machine delays reads, and the poller stops at the cell's end
/// without finishing its last interval), so a window is uncovered exactly
/// when the sensor was silent longer than a live one can be.
pub const QUIET_INTERVALS: i64 = 3;

/// The macro window's phase name (Appendices S.3, AQ.4).
pub const CELL_WINDOW: &str = "cell";

/// Why a window is `no_data` (the `reason` of an `EnergyRow`).
pub mod no_data {
    /// Shorter than `min_intervals` polling intervals.
    pub const TOO_SHORT: &str = "too_short";
    /// Fewer than `min_samples` readings inside.
    pub const TOO_FEW_SAMPLES: &str = "too_few_samples";
    /// More than [`QUIET_INTERVALS`](super::QUIET_INTERVALS) polling
    /// intervals of the window have no reading covering them: the sensor
    /// stopped answering.
    pub const UNCOVERED: &str = "uncovered";
    /// Fewer than 2 idle baseline samples: no idle mean and variance.
    pub const NO_BASELINE: &str = "no_baseline";
}

/// Windows of every run: the prefill event, the decode span (first step's
/// start to the last step's end: single steps are far shorter than any
/// polling interval), and e2e; then the cell's macro window, from the
/// first steady run's first event to the last steady run's last event
/// (warmup runs and the load event excluded), whose tokens are those its
/// runs generated (their e2e tokens).
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
                runs: 1,
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
                runs: 1,
                first,
            });
        }
    }
    out.sort_by_key(|w| (w.first.repetition, w.start, w.phase));
    let steady: Vec<&EventRow> = runs
        .values()
        .flatten()
        .copied()
        .filter(|e| !e.warmup)
        .collect();
    if let (Some(first), Some(start), Some(end)) = (
        steady
            .iter()
            .copied()
            .min_by_key(|e| (e.start_ns, e.repetition)),
        steady.iter().map(|e| e.start_ns).min(),
        steady.iter().map(|e| e.start_ns + e.ns).max(),
    ) {
        out.push(Window {
            phase: CELL_WINDOW,
            start: start as i64,
            end: end as i64,
            tokens: steady
                .iter()
                .filter(|e| e.phase == "e2e")
                .map(|e| e.tokens)
                .fold(0u32, u32::saturating_add),
            runs: runs
                .values()
                .filter(|evs| evs.iter().any(|e| !e.warmup))
                .count() as u32,
            first,
        });
    }
    out
}

/// The idle baseline of a cell: its samples with t_ns < 0 (Appendix S.3:
/// "report mean and variance").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    pub samples: u32,
    /// Mean idle power, W; None without samples.
    pub mean_w: Option<f64>,
    /// Sample standard deviation (n - 1), W; None with fewer than 2.
    pub sd_w: Option<f64>,
}

impl Baseline {
    pub fn of(power: &[PowerRow]) -> Baseline {
        let mut idle: Vec<(i64, f64)> = power
            .iter()
            .filter(|p| p.t_ns < 0)
            .map(|p| (p.t_ns, p.watts))
            .collect();
        // Time order, so the sums run in one order whatever the table's.
        idle.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let watts: Vec<f64> = idle.into_iter().map(|(_, w)| w).collect();
        Baseline {
            samples: watts.len() as u32,
            mean_w: (!watts.is_empty()).then(|| assay_core::stats::mean(&watts)),
            sd_w: (watts.len() >= 2).then(|| assay_core::stats::std_dev(&watts)),
        }
    }
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom: exact
/// to 9 digits from the table up to 30, the Cornish-Fisher expansion
/// beyond (within 1e-6 there). Plain arithmetic, so the same bits
/// everywhere.
pub fn t975(df: u32) -> f64 {
    const TABLE: [f64; 30] = [
        12.706204736,
        4.302652730,
        3.182446305,
        2.776445105,
        2.570581836,
        2.446911851,
        2.364624252,
        2.306004135,
        2.262157163,
        2.228138852,
        2.200985160,
        2.178812830,
        2.160368656,
        2.144786688,
        2.131449546,
        2.119905299,
        2.109815578,
        2.100922040,
        2.093024054,
        2.085963447,
        2.079613845,
        2.073873068,
        2.068657610,
        2.063898562,
        2.059538553,
        2.055529439,
        2.051830516,
        2.048407142,
        2.045229642,
        2.042272456,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df as usize - 1],
        _ => {
            let z = 1.959963984540054_f64;
            let (z2, v) = (z * z, f64::from(df));
            let z3 = z2 * z;
            let z5 = z3 * z2;
            let z7 = z5 * z2;
            let z9 = z7 * z2;
            let g1 = (z3 + z) / 4.0;
            let g2 = (5.0 * z5 + 16.0 * z3 + 3.0 * z) / 96.0;
            let g3 = (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / 384.0;
            let g4 = (79.0 * z9 + 776.0 * z7 + 1482.0 * z5 - 1920.0 * z3 - 945.0 * z) / 92160.0;
            z + g1 / v + g2 / (v * v) + g3 / (v * v * v) + g4 / (v * v * v * v)
        }
    }
}

/// A sample's interval: (from, to] and its mean power.
struct Interval {
    from: i64,
    to: i64,
    watts: f64,
}

/// Gate every window of one cell (TR122), the per-run windows and the
/// cell's macro window alike. A window is `valid` when
///
/// - it lasts at least `min_intervals` polling intervals (the seed: energy
///   cannot be attributed to events shorter than the polling interval;
///   AM rule 6, AI.3), else `too_short`;
/// - it holds at least `min_samples` readings (sample times in
///   (start, end]; BA.1 "sufficient samples"), else `too_few_samples`;
/// - the samples' intervals cover all of it but at most
///   [`QUIET_INTERVALS`] polling intervals (the poller's last, unfinished
///   one, late), else `uncovered`;
/// - the cell has at least 2 idle baseline samples (a mean and a variance,
///   S.3), else `no_baseline`.
///
/// A sample is the mean power of the interval since the previous sample
/// (one poll interval for the first), so the window's mean power is the
/// time-weighted mean of the intervals overlapping it, weighted by the
/// overlap; energy is (mean - idle) x duration (AA.5). Its uncertainty
/// from the idle baseline (formulas.md, "Idle baseline variance"):
/// sd = duration x idle_sd x sqrt(1 / idle_samples + sum of squared
/// overlap weights), and the 95% interval energy +- t(0.975,
/// idle_samples - 1) x sd.
pub fn gate(events: &[EventRow], power: &[PowerRow], gate: Gate, poll_ms: u32) -> Vec<EnergyRow> {
    let poll_ns = i64::from(poll_ms) * 1_000_000;
    // Each sample covers the time since the previous one (a real poller
    // drifts past its nominal interval); the first covers one interval.
    let mut sorted: Vec<&PowerRow> = power.iter().collect();
    sorted.sort_by(|a, b| a.t_ns.cmp(&b.t_ns).then(a.watts.total_cmp(&b.watts)));
    let intervals: Vec<Interval> = sorted
        .iter()
        .enumerate()
        .map(|(i, p)| Interval {
            from: if i == 0 {
                p.t_ns - poll_ns
            } else {
                sorted[i - 1].t_ns
            },
            to: p.t_ns,
            watts: p.watts,
        })
        .collect();
    let base = Baseline::of(power);
    windows(events)
        .into_iter()
        .map(|w| attribute(&w, &intervals, &base, gate, poll_ns))
        .collect()
}

/// The gate and the figures of one window.
fn attribute(
    w: &Window<'_>,
    intervals: &[Interval],
    base: &Baseline,
    gate: Gate,
    poll_ns: i64,
) -> EnergyRow {
    let duration = w.end - w.start;
    let readings = intervals
        .iter()
        .filter(|iv| iv.to > w.start && iv.to <= w.end)
        .count() as u32;
    // Overlap of each sample's interval with the window, in time order.
    let overlaps: Vec<(i64, f64)> = intervals
        .iter()
        .map(|iv| (iv.to.min(w.end) - iv.from.max(w.start), iv.watts))
        .filter(|(ov, _)| *ov > 0)
        .collect();
    let covered: i64 = overlaps.iter().map(|(ov, _)| ov).sum();
    let reason = if duration < i64::from(gate.min_intervals).saturating_mul(poll_ns) {
        Some(no_data::TOO_SHORT)
    } else if readings < gate.min_samples || readings == 0 {
        Some(no_data::TOO_FEW_SAMPLES)
    } else if duration - covered > QUIET_INTERVALS * poll_ns || covered <= 0 {
        Some(no_data::UNCOVERED)
    } else if base.sd_w.is_none() {
        Some(no_data::NO_BASELINE)
    } else {
        None
    };
    let duration_s = duration as f64 / 1e9;
    let figures = match (reason, base.mean_w, base.sd_w) {
        (None, Some(idle), Some(sd)) => {
            let total = covered as f64;
            let mean_w = overlaps.iter().map(|(ov, w)| w * *ov as f64).sum::<f64>() / total;
            let sum_w2: f64 = overlaps
                .iter()
                .map(|(ov, _)| (*ov as f64 / total) * (*ov as f64 / total))
                .sum();
            let energy = (mean_w - idle) * duration_s;
            let energy_sd = duration_s * sd * (1.0 / f64::from(base.samples) + sum_w2).sqrt();
            let half = t975(base.samples - 1) * energy_sd;
            Some((mean_w, energy, energy_sd, energy - half, energy + half))
        }
        _ => None,
    };
    EnergyRow {
        cell: w.first.cell.clone(),
        repetition: w.first.repetition,
        warmup: w.first.warmup,
        phase: w.phase.into(),
        start_ns: w.start,
        duration_ns: duration.max(0) as u64,
        tokens: w.tokens,
        runs: w.runs,
        samples: readings,
        status: if figures.is_some() {
            "valid"
        } else {
            "no_data"
        }
        .into(),
        reason: reason.map(str::to_string),
        mean_power_w: figures.map(|f| f.0),
        idle_power_w: base.mean_w,
        idle_samples: base.samples,
        idle_sd_w: base.sd_w,
        energy_j: figures.map(|f| f.1),
        energy_j_sd: figures.map(|f| f.2),
        energy_j_low: figures.map(|f| f.3),
        energy_j_high: figures.map(|f| f.4),
    }
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

    fn ev_w(rep: u32, warmup: bool, phase: &str, start_ms: u64, ms: u64, tokens: u32) -> EventRow {
        EventRow {
            warmup,
            ..ev(rep, phase, start_ms, ms, tokens)
        }
    }

    const SEED_RULE: Gate = Gate {
        min_samples: 1,
        min_intervals: 1,
    };

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn short_windows_are_no_data_and_long_ones_are_idle_subtracted() {
        // Run 0: prefill 0..50 ms (shorter than the polling interval),
        // decode 50..450 ms and e2e 0..450 ms, holding the readings at
        // 100, 200, 300 and 400 ms. The one at 100 covers -100..100, so
        // only its last 50 ms (decode) or 100 ms (e2e) count; the window's
        // last 50 ms are the poller's unfinished interval.
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
        let two = Gate {
            min_samples: 2,
            min_intervals: 1,
        };
        let rows = gate(&events, &power, two, 100);
        let by = |phase: &str| rows.iter().find(|r| r.phase == phase).unwrap();
        let prefill = by("prefill");
        assert_eq!((prefill.status.as_str(), prefill.samples), ("no_data", 0));
        assert_eq!(prefill.reason.as_deref(), Some(no_data::TOO_SHORT));
        assert_eq!(prefill.energy_j, None);
        let decode = by("decode");
        assert_eq!((decode.samples, decode.tokens, decode.runs), (4, 8, 1));
        assert_eq!(decode.reason, None);
        assert_eq!(by("e2e").samples, 4);
        assert_eq!(decode.idle_power_w, Some(31.0));
        assert_eq!(decode.idle_samples, 2);
        // (71 - 31) W x 0.4 s = 16 J.
        assert!(close(decode.energy_j.unwrap(), 16.0));
        // formulas.md's example: weights 50/350 and 3 x 100/350, n = 2.
        let sd = 0.4 * 2f64.sqrt() * (0.5f64 + 32_500.0 / 122_500.0).sqrt();
        assert!(close(decode.energy_j_sd.unwrap(), sd));
        assert!((sd - 0.495).abs() < 5e-4, "{sd}");
        assert!(close(
            decode.energy_j_high.unwrap(),
            16.0 + 12.706204736 * sd
        ));
        assert!(close(by("e2e").energy_j.unwrap(), 40.0 * 0.45));
        // The cell's macro window is the whole (only) steady run.
        let cell = by(CELL_WINDOW);
        assert_eq!((cell.tokens, cell.runs, cell.start_ns), (12, 1, 0));
        assert!(close(cell.energy_j.unwrap(), 18.0));
        // The threshold is a parameter: at 5 readings everything is no_data.
        let five = gate(
            &events,
            &power,
            Gate {
                min_samples: 5,
                ..two
            },
            100,
        );
        assert!(five.iter().all(|r| r.energy_j.is_none()));
        assert!(
            five.iter()
                .filter(|r| r.phase != "prefill")
                .all(|r| r.reason.as_deref() == Some(no_data::TOO_FEW_SAMPLES))
        );
    }

    /// TR122 (O.6): "Polling-based power measurements cannot assign energy
    /// to events shorter than the polling interval"; AM rule 6: "If energy
    /// measurement cadence is slower than event duration, do not report
    /// per-event energy".
    #[test]
    fn an_event_shorter_than_the_poll_interval_is_no_data() {
        // Readings every 100 ms at 50 ms past the hundred: idle before 0.
        let power: Vec<PowerRow> = [p(-250, 40.0), p(-150, 40.0), p(-50, 40.0)]
            .into_iter()
            .chain((1..=5).map(|i| p(i * 100 - 50, 60.0)))
            .collect();
        // 99 ms with a reading (at 50 ms) inside: still shorter than 100 ms.
        let short = gate(&[ev(0, "prefill", 0, 99, 8)], &power, SEED_RULE, 100);
        assert_eq!(short[0].reason.as_deref(), Some(no_data::TOO_SHORT));
        assert_eq!((short[0].samples, short[0].energy_j), (1, None));
        // Exactly one interval is not shorter than it: attributable.
        let one = gate(&[ev(0, "prefill", 0, 100, 8)], &power, SEED_RULE, 100);
        assert_eq!(
            (one[0].status.as_str(), one[0].reason.as_deref()),
            ("valid", None)
        );
        // 140 ms holding one reading (at 50 ms): valid under the seed's rule,
        // though no sample's whole interval lies inside it (the former gate
        // counted only those, and wanted 2 by default).
        let mid = gate(&[ev(0, "prefill", 0, 140, 8)], &power, SEED_RULE, 100);
        assert_eq!((mid[0].status.as_str(), mid[0].samples), ("valid", 1));
        // 50 ms of the (-50, 50] interval and 90 ms of (50, 150], both 60 W.
        assert!(close(mid[0].mean_power_w.unwrap(), 60.0));
        assert!(close(mid[0].energy_j.unwrap(), 20.0 * 0.14));
        let two = Gate {
            min_samples: 2,
            ..SEED_RULE
        };
        let strict = gate(&[ev(0, "prefill", 0, 140, 8)], &power, two, 100);
        assert_eq!(strict[0].reason.as_deref(), Some(no_data::TOO_FEW_SAMPLES));
        // min_intervals raises the duration bar in whole polling intervals.
        let three = Gate {
            min_intervals: 3,
            ..SEED_RULE
        };
        let r = &gate(&[ev(0, "prefill", 0, 250, 8)], &power, three, 100)[0];
        assert_eq!(r.reason.as_deref(), Some(no_data::TOO_SHORT));
    }

    /// S.3 and AQ.4: energy is valid for macro windows; a cell of many runs
    /// each shorter than the polling interval still gets an energy per
    /// token from the window over all its steady runs.
    #[test]
    fn a_macro_window_over_many_short_events_is_valid() {
        // A warmup run at 0..30 ms, then 20 steady runs of 30 ms back to
        // back from 30 ms (prefill 10 ms, e2e 30 ms, 4 tokens each).
        let mut events = vec![
            ev_w(0, true, "prefill", 0, 10, 16),
            ev_w(0, true, "e2e", 0, 30, 4),
        ];
        for r in 1..=20u32 {
            let start = u64::from(r) * 30;
            events.push(ev(r, "prefill", start, 10, 16));
            events.push(ev(r, "e2e", start, 30, 4));
        }
        // 40 W idle, 70 W while busy (0..630 ms), 100 ms polling.
        let mut power: Vec<PowerRow> = (-4..=0).map(|i| p(i * 100, 40.0)).collect();
        power.extend((1..=7).map(|i| p(i * 100, if i * 100 <= 600 { 70.0 } else { 43.0 })));
        let rows = gate(&events, &power, SEED_RULE, 100);
        let per_run: Vec<&EnergyRow> = rows.iter().filter(|r| r.phase != CELL_WINDOW).collect();
        assert_eq!(per_run.len(), 42);
        assert!(
            per_run
                .iter()
                .all(|r| r.reason.as_deref() == Some(no_data::TOO_SHORT))
        );
        let cell = rows.iter().find(|r| r.phase == CELL_WINDOW).unwrap();
        assert_eq!((cell.repetition, cell.warmup, cell.runs), (1, false, 20));
        assert_eq!((cell.start_ns, cell.duration_ns), (30_000_000, 600_000_000));
        // Readings at 100..600 ms inside; 80 tokens, the warmup's excluded.
        assert_eq!(
            (cell.samples, cell.tokens, cell.status.as_str()),
            (6, 80, "valid")
        );
        // (0, 100] overlaps 70 ms of it, the next five 100 ms each (70 W),
        // and (600, 700] 30 ms at 43 W.
        let expect_mean = (570.0 * 70.0 + 30.0 * 43.0) / 600.0;
        assert!(close(cell.mean_power_w.unwrap(), expect_mean));
        let joules = (expect_mean - 40.0) * 0.6;
        assert!(close(cell.energy_j.unwrap(), joules));
        assert!(close(
            cell.energy_j.unwrap() / f64::from(cell.tokens),
            joules / 80.0
        ));
        // A flat baseline has no variance: the interval is the point.
        assert_eq!(cell.idle_sd_w, Some(0.0));
        assert_eq!(
            (cell.energy_j_low, cell.energy_j_high),
            (cell.energy_j, cell.energy_j)
        );
    }

    /// S.3: "Calibrate idle baseline and report mean and variance"; the
    /// variance widens every above-idle figure.
    #[test]
    fn idle_variance_propagates_to_the_energy_interval() {
        // Baseline 38, 40, 42, 40 W: mean 40, sd sqrt(8 / 3).
        let mut power = vec![p(-400, 38.0), p(-300, 40.0), p(-200, 42.0), p(-100, 40.0)];
        power.extend((1..=4).map(|i| p(i * 100, 80.0)));
        let rows = gate(&[ev(0, "e2e", 0, 400, 10)], &power, SEED_RULE, 100);
        let e2e = &rows[0];
        let sd = (8.0f64 / 3.0).sqrt();
        assert_eq!(e2e.idle_samples, 4);
        assert!(close(e2e.idle_sd_w.unwrap(), sd));
        assert!(close(e2e.energy_j.unwrap(), 40.0 * 0.4));
        // Four equal overlaps ((-100, 100] counts its last 100 ms): sum of
        // squared weights 1/4; 1/n = 1/4.
        let energy_sd = 0.4 * sd * (0.25f64 + 0.25).sqrt();
        assert!(close(e2e.energy_j_sd.unwrap(), energy_sd));
        let half = 3.182446305 * energy_sd;
        assert!(close(e2e.energy_j_low.unwrap(), 16.0 - half));
        assert!(close(e2e.energy_j_high.unwrap(), 16.0 + half));
        // Twice the variance, sqrt(2) times the width.
        let wide: Vec<PowerRow> = power
            .iter()
            .map(|s| PowerRow {
                watts: if s.t_ns < 0 {
                    40.0 + (s.watts - 40.0) * 2f64.sqrt()
                } else {
                    s.watts
                },
                ..s.clone()
            })
            .collect();
        let w = &gate(&[ev(0, "e2e", 0, 400, 10)], &wide, SEED_RULE, 100)[0];
        let ratio = (w.energy_j_high.unwrap() - w.energy_j_low.unwrap())
            / (e2e.energy_j_high.unwrap() - e2e.energy_j_low.unwrap());
        assert!((ratio - 2f64.sqrt()).abs() < 1e-9, "{ratio}");
        // One baseline sample has a mean but no variance: no_data.
        let mut lone = vec![p(-100, 40.0)];
        lone.extend((0..=4).map(|i| p(i * 100, 80.0)));
        let r = &gate(&[ev(0, "e2e", 0, 400, 10)], &lone, SEED_RULE, 100)[0];
        assert_eq!(
            (r.reason.as_deref(), r.idle_power_w),
            (Some(no_data::NO_BASELINE), Some(40.0))
        );
        assert_eq!(r.energy_j, None);
    }

    #[test]
    fn without_a_baseline_nothing_is_above_idle() {
        let events = vec![ev(0, "e2e", 0, 1000, 10)];
        let power: Vec<PowerRow> = (1..=10).map(|i| p(i * 100, 50.0)).collect();
        let r = &gate(&events, &power, SEED_RULE, 100)[0];
        assert_eq!((r.samples, r.idle_power_w, r.idle_samples), (10, None, 0));
        assert_eq!((r.status.as_str(), r.energy_j), ("no_data", None));
        assert_eq!(r.reason.as_deref(), Some(no_data::NO_BASELINE));
    }

    #[test]
    fn a_sensor_that_stops_leaves_the_rest_of_a_window_uncovered() {
        // Readings until 300 ms of a 1 s run: 700 ms without any.
        let mut power = vec![p(-200, 40.0), p(-100, 41.0)];
        power.extend((0..=3).map(|i| p(i * 100, 70.0)));
        let r = &gate(&[ev(0, "e2e", 0, 1000, 10)], &power, SEED_RULE, 100)[0];
        assert_eq!(
            (r.samples, r.reason.as_deref()),
            (3, Some(no_data::UNCOVERED))
        );
        // The poller's last unfinished interval, late, is ordinary: up to
        // three intervals without a reading (as the dead-sensor check).
        for (end_ms, status) in [(380, "valid"), (600, "valid"), (601, "no_data")] {
            let r = &gate(&[ev(0, "e2e", 0, end_ms, 10)], &power, SEED_RULE, 100)[0];
            assert_eq!(r.status, status, "{end_ms} ms");
        }
    }

    #[test]
    fn the_t_quantile_matches_published_values() {
        for (df, t) in [
            (1, 12.706204736),
            (10, 2.228138852),
            (30, 2.042272456),
            (40, 2.021075390),
            (60, 2.000297822),
            (120, 1.979930405),
        ] {
            assert!((t975(df) - t).abs() < 1e-6, "df {df}: {} vs {t}", t975(df));
        }
        // The normal quantile in the limit.
        assert!((t975(u32::MAX) - 1.959963985).abs() < 1e-6);
        assert!(t975(0).is_nan());
    }

    #[test]
    fn one_sample_never_attributes_a_window_shorter_than_its_interval() {
        // min_samples 1 and a 5 ms window holding a reading (at 100 ms):
        // the window is shorter than the polling interval, so no_data.
        let events = vec![ev(0, "prefill", 98, 5, 8)];
        let power = vec![p(-200, 30.0), p(-100, 30.0), p(100, 70.0)];
        let r = &gate(&events, &power, SEED_RULE, 100)[0];
        assert_eq!((r.status.as_str(), r.samples), ("no_data", 1));
        assert_eq!(r.reason.as_deref(), Some(no_data::TOO_SHORT));
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
            sensor: SensorChoice::Auto,
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
        let mut rapl = Rapl::detect_in(dir.path()).unwrap();
        assert_eq!(rapl.name(), "rapl:package-0");
        // The first reading is the zero of the energy summed since; a
        // wrapped counter still adds what it counted.
        assert_eq!(rapl.read().unwrap(), Reading::Joules(0.0));
        std::fs::write(zone.join("energy_uj"), "3000\n").unwrap();
        assert_eq!(rapl.read().unwrap(), Reading::Joules(0.002));
        std::fs::write(zone.join("max_energy_range_uj"), "4000\n").unwrap();
        std::fs::write(zone.join("energy_uj"), "1000\n").unwrap();
        let mut wraps = Rapl::detect_in(dir.path()).unwrap();
        wraps.read().unwrap();
        std::fs::write(zone.join("energy_uj"), "500\n").unwrap();
        assert_eq!(wraps.read().unwrap(), Reading::Joules(0.0035));
        let err = Rapl::detect_in(&dir.path().join("absent")).err().unwrap();
        assert!(err.starts_with("no RAPL power sensor"), "{err}");
    }
}
