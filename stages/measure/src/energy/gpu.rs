//! An NVIDIA GPU through NVML: its energy counter (or power reading) as a
//! [`PowerSensor`], and what the manifest records of it (name, UUID,
//! driver and CUDA versions, memory, power limit, clocks before and after
//! the cell, this process's GPU memory, and every other process that used
//! the GPU while the cell ran: a shared GPU degrades the cell).
//!
//! `libnvidia-ml` is loaded at run time (nvml-wrapper), so one binary runs
//! with and without a GPU; without the library the cell has no sensor and
//! says why. `ASSAY_NVML_FAKE` names a JSON script ([`FakeGpu`]) that
//! stands in for the library: how the gating, baseline and attribution
//! paths are tested on machines without a GPU.

use std::collections::BTreeMap;
use std::time::Instant;

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::Clock;
use nvml_wrapper::enums::device::UsedGpuMemory;
use serde::{Deserialize, Serialize};

use super::{PowerSensor, Reading};

/// The variable naming a fake GPU script, used instead of NVML.
pub const ASSAY_NVML_FAKE: &str = "ASSAY_NVML_FAKE";

const MIB: u64 = 1024 * 1024;

/// `cuda` or `cuda:N`.
pub fn is_cuda(device: &str) -> bool {
    device == "cuda"
        || device
            .strip_prefix("cuda:")
            .is_some_and(|n| n.parse::<u32>().is_ok())
}

/// What the manifest records of the GPU a cell ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuAttribution {
    /// NVML's index of the GPU (after `CUDA_VISIBLE_DEVICES`).
    pub index: u32,
    #[serde(flatten)]
    pub identity: GpuIdentity,
    /// `energy`: the total-energy counter (exact joules per interval);
    /// `power`: polled power readings.
    pub reading: String,
    pub before: GpuState,
    pub after: GpuState,
    /// The most GPU memory this process and its children held while the
    /// cell ran, MiB; None where NVML did not say.
    pub own_memory_mib: Option<u64>,
    /// Processes other than this one and its children that held a compute
    /// context on the GPU while the cell ran (or when the sensor opened):
    /// the cell shared the GPU.
    pub other_processes: Vec<GpuProcess>,
    /// Processes NVML listed whose PIDs this PID namespace cannot see (a
    /// container, with a driver that reports host PIDs): whether they are
    /// assay's harness or another tenant cannot be told.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unresolved_processes: Vec<GpuProcess>,
    /// Why the GPU's process list could not be read at all; then nothing
    /// is known of other processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes_unreadable: Option<String>,
}

/// Clocks and memory at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuState {
    pub sm_clock_mhz: Option<u32>,
    pub mem_clock_mhz: Option<u32>,
    pub memory_used_mib: Option<u64>,
}

/// A process with a compute context on the GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuProcess {
    pub pid: u32,
    /// The most GPU memory it was seen holding, MiB.
    pub used_mib: Option<u64>,
}

/// What a GPU says of itself, once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuIdentity {
    pub name: String,
    pub uuid: String,
    pub driver_version: String,
    /// The CUDA version the driver supports, `major.minor`.
    pub cuda_version: String,
    pub memory_total_mib: u64,
    /// The enforced power limit, W; None where NVML does not say.
    pub power_limit_w: Option<f64>,
}

/// The small part of NVML assay uses: the real library or a script.
pub trait Gpu: Send {
    fn identity(&self) -> Result<GpuIdentity, String>;
    fn state(&self) -> GpuState;
    /// Energy since the driver loaded, mJ; None where the GPU has no
    /// counter (before Volta).
    fn energy_mj(&self) -> Option<u64>;
    fn power_mw(&self) -> Result<u32, String>;
    /// (pid, bytes of GPU memory) of each process with a compute context.
    fn processes(&self) -> Result<Vec<(u32, Option<u64>)>, String>;
}

/// NVML's device for `device` (`cuda`, `cuda:N`). CUDA numbers the devices
/// `CUDA_VISIBLE_DEVICES` lists; NVML numbers every GPU, so `cuda:N` is the
/// N-th listed entry: an NVML index or a UUID.
fn nvml_selector(device: &str, visible: Option<String>) -> Result<Selector, String> {
    let n: usize = device
        .strip_prefix("cuda:")
        .map_or(Ok(0), str::parse)
        .map_err(|_| format!("{device:?} is not cuda or cuda:N"))?;
    let Some(list) = visible.filter(|v| !v.trim().is_empty()) else {
        return Ok(Selector::Index(n as u32));
    };
    let entry = list
        .split(',')
        .map(str::trim)
        .nth(n)
        .ok_or_else(|| format!("{device}: CUDA_VISIBLE_DEVICES={list} lists no device {n}"))?;
    // A MIG slice shares its GPU's power and energy counters with the other
    // slices: no reading of them is this cell's alone.
    if entry.starts_with("MIG-") {
        return Err(format!(
            "no NVML power sensor: {device} is the MIG instance {entry}, whose GPU's energy \
             counters cover every instance"
        ));
    }
    match entry.parse::<u32>() {
        Ok(i) => Ok(Selector::Index(i)),
        Err(_) => Ok(Selector::Uuid(entry.to_string())),
    }
}

#[derive(Debug, PartialEq)]
enum Selector {
    Index(u32),
    Uuid(String),
}

/// The real GPU: NVML loaded at run time, the device found by its UUID
/// every time (an index could name another GPU than the UUID did).
pub struct NvmlGpu {
    nvml: Nvml,
    uuid: String,
}

impl NvmlGpu {
    fn open(device: &str) -> Result<(NvmlGpu, u32), String> {
        let selector = nvml_selector(device, std::env::var("CUDA_VISIBLE_DEVICES").ok())?;
        let nvml = Nvml::init().map_err(|e| {
            format!(
                "no NVML power sensor: {e} (libnvidia-ml.so.1 comes with the NVIDIA driver and \
                 is loaded at run time)"
            )
        })?;
        let found = match &selector {
            Selector::Index(i) => nvml.device_by_index(*i),
            Selector::Uuid(uuid) => nvml.device_by_uuid(uuid.as_str()),
        };
        let (uuid, index) = found
            .and_then(|d| Ok((d.uuid()?, d.index()?)))
            .map_err(|e| format!("no NVML power sensor: {device}: {e}"))?;
        Ok((NvmlGpu { nvml, uuid }, index))
    }

    fn device(&self) -> Result<nvml_wrapper::Device<'_>, String> {
        self.nvml
            .device_by_uuid(self.uuid.as_str())
            .map_err(|e| format!("NVML GPU {}: {e}", self.uuid))
    }
}

impl Gpu for NvmlGpu {
    fn identity(&self) -> Result<GpuIdentity, String> {
        let d = self.device()?;
        let cuda = self
            .nvml
            .sys_cuda_driver_version()
            .map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10))
            .unwrap_or_default();
        Ok(GpuIdentity {
            name: d.name().map_err(|e| e.to_string())?,
            uuid: d.uuid().map_err(|e| e.to_string())?,
            driver_version: self.nvml.sys_driver_version().unwrap_or_default(),
            cuda_version: cuda,
            memory_total_mib: d.memory_info().map(|m| m.total / MIB).unwrap_or(0),
            power_limit_w: d
                .enforced_power_limit()
                .ok()
                .map(|mw| f64::from(mw) / 1000.0),
        })
    }

    fn state(&self) -> GpuState {
        let Ok(d) = self.device() else {
            return GpuState::default();
        };
        GpuState {
            sm_clock_mhz: d.clock_info(Clock::SM).ok(),
            mem_clock_mhz: d.clock_info(Clock::Memory).ok(),
            memory_used_mib: d.memory_info().ok().map(|m| m.used / MIB),
        }
    }

    fn energy_mj(&self) -> Option<u64> {
        self.device().ok()?.total_energy_consumption().ok()
    }

    fn power_mw(&self) -> Result<u32, String> {
        self.device()?.power_usage().map_err(|e| e.to_string())
    }

    fn processes(&self) -> Result<Vec<(u32, Option<u64>)>, String> {
        let procs = self
            .device()?
            .running_compute_processes()
            .map_err(|e| e.to_string())?;
        Ok(procs
            .into_iter()
            .map(|p| {
                let used = match p.used_gpu_memory {
                    UsedGpuMemory::Used(b) => Some(b),
                    UsedGpuMemory::Unavailable => None,
                };
                (p.pid, used)
            })
            .collect())
    }
}

/// A scripted GPU (`ASSAY_NVML_FAKE=script.json`): power is a step
/// function of the time since the sensor opened, and the energy counter
/// its exact integral, so a test knows what every window holds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FakeScript {
    pub name: String,
    pub uuid: String,
    pub driver_version: String,
    pub cuda_version: String,
    pub memory_total_mib: u64,
    #[serde(default)]
    pub power_limit_w: Option<f64>,
    /// The GPU has a total-energy counter (else only power readings).
    pub energy_counter: bool,
    /// (ms since open, watts from then on), by time.
    pub power_w: Vec<(u64, f64)>,
    #[serde(default)]
    pub sm_clock_mhz: Option<u32>,
    #[serde(default)]
    pub mem_clock_mhz: Option<u32>,
    #[serde(default)]
    pub memory_used_mib: Option<u64>,
    /// (pid, MiB) of processes with a compute context, always listed.
    #[serde(default)]
    pub processes: Vec<(u32, u64)>,
}

pub struct FakeGpu {
    script: FakeScript,
    opened: Instant,
}

impl FakeGpu {
    fn load(path: &str) -> Result<FakeGpu, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("{ASSAY_NVML_FAKE}={path}: {e}"))?;
        let script: FakeScript =
            serde_json::from_str(&text).map_err(|e| format!("{ASSAY_NVML_FAKE}={path}: {e}"))?;
        if script.power_w.first().is_none_or(|(t, _)| *t != 0) {
            return Err(format!(
                "{ASSAY_NVML_FAKE}={path}: power_w must start at 0 ms"
            ));
        }
        Ok(FakeGpu {
            script,
            opened: Instant::now(),
        })
    }

    /// Energy from open to `ms`, J: the step function's integral.
    fn joules_until(&self, ms: f64) -> f64 {
        let steps = &self.script.power_w;
        steps
            .iter()
            .enumerate()
            .map(|(i, (from, w))| {
                let to = steps.get(i + 1).map_or(f64::INFINITY, |(t, _)| *t as f64);
                let span = (ms.min(to) - *from as f64).max(0.0);
                w * span / 1000.0
            })
            .sum()
    }

    fn elapsed_ms(&self) -> f64 {
        self.opened.elapsed().as_secs_f64() * 1000.0
    }
}

impl Gpu for FakeGpu {
    fn identity(&self) -> Result<GpuIdentity, String> {
        let s = &self.script;
        Ok(GpuIdentity {
            name: s.name.clone(),
            uuid: s.uuid.clone(),
            driver_version: s.driver_version.clone(),
            cuda_version: s.cuda_version.clone(),
            memory_total_mib: s.memory_total_mib,
            power_limit_w: s.power_limit_w,
        })
    }

    fn state(&self) -> GpuState {
        GpuState {
            sm_clock_mhz: self.script.sm_clock_mhz,
            mem_clock_mhz: self.script.mem_clock_mhz,
            memory_used_mib: self.script.memory_used_mib,
        }
    }

    fn energy_mj(&self) -> Option<u64> {
        self.script
            .energy_counter
            .then(|| (self.joules_until(self.elapsed_ms()) * 1000.0) as u64)
    }

    fn power_mw(&self) -> Result<u32, String> {
        let ms = self.elapsed_ms();
        let w = self
            .script
            .power_w
            .iter()
            .rev()
            .find(|(from, _)| *from as f64 <= ms)
            .map_or(0.0, |(_, w)| *w);
        Ok((w * 1000.0) as u32)
    }

    fn processes(&self) -> Result<Vec<(u32, Option<u64>)>, String> {
        Ok(self
            .script
            .processes
            .iter()
            .map(|(pid, mib)| (*pid, Some(mib * MIB)))
            .collect())
    }
}

/// The GPU of `device`: the fake when `ASSAY_NVML_FAKE` is set, else NVML.
fn open_gpu(device: &str) -> Result<(Box<dyn Gpu>, u32), String> {
    match std::env::var(ASSAY_NVML_FAKE) {
        Ok(path) if !path.is_empty() => {
            let index = match nvml_selector(device, std::env::var("CUDA_VISIBLE_DEVICES").ok())? {
                Selector::Index(i) => i,
                Selector::Uuid(_) => 0,
            };
            Ok((Box::new(FakeGpu::load(&path)?), index))
        }
        _ => {
            let (gpu, index) = NvmlGpu::open(device)?;
            Ok((Box::new(gpu), index))
        }
    }
}

/// Whose a GPU process is, from `/proc`'s parent links.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Owner {
    /// This process or one of its descendants (a harness it started).
    Ours,
    Other,
    /// Not in this PID namespace's `/proc`.
    Unresolved,
}

fn owner(pid: u32) -> Owner {
    let me = std::process::id();
    if pid != me && parent_of(pid).is_none() {
        return Owner::Unresolved;
    }
    let mut p = pid;
    for _ in 0..64 {
        if p == me {
            return Owner::Ours;
        }
        if p <= 1 {
            return Owner::Other;
        }
        match parent_of(p) {
            Some(parent) => p = parent,
            None => return Owner::Other,
        }
    }
    Owner::Other
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// NVML as a power sensor, which also watches the GPU's processes at
/// every reading.
pub struct NvmlSensor {
    gpu: Box<dyn Gpu>,
    index: u32,
    identity: GpuIdentity,
    counter: bool,
    before: GpuState,
    own_memory: Option<u64>,
    others: BTreeMap<u32, Option<u64>>,
    unresolved: BTreeMap<u32, Option<u64>>,
    /// The last error of the process list, while it was never read.
    processes_error: Option<String>,
    processes_read: bool,
}

impl NvmlSensor {
    pub fn open(device: &str) -> Result<NvmlSensor, String> {
        let (gpu, index) = open_gpu(device)?;
        NvmlSensor::with(gpu, index)
    }

    pub fn with(gpu: Box<dyn Gpu>, index: u32) -> Result<NvmlSensor, String> {
        let identity = gpu
            .identity()
            .map_err(|e| format!("no NVML power sensor: {e}"))?;
        let counter = gpu.energy_mj().is_some();
        if !counter {
            gpu.power_mw().map_err(|e| {
                format!(
                    "no NVML power sensor: {} has neither an energy counter nor a power reading ({e})",
                    identity.name
                )
            })?;
        }
        let before = gpu.state();
        let mut sensor = NvmlSensor {
            gpu,
            index,
            identity,
            counter,
            before,
            own_memory: None,
            others: BTreeMap::new(),
            unresolved: BTreeMap::new(),
            processes_error: None,
            processes_read: false,
        };
        sensor.watch_processes();
        Ok(sensor)
    }

    fn watch_processes(&mut self) {
        let procs = match self.gpu.processes() {
            Ok(procs) => procs,
            Err(e) => {
                self.processes_error = Some(e);
                return;
            }
        };
        self.processes_read = true;
        let mut own: Option<u64> = None;
        for (pid, bytes) in procs {
            let mib = bytes.map(|b| b / MIB);
            let seen = match owner(pid) {
                // Only memory NVML reported counts: unavailable is not 0.
                Owner::Ours => {
                    if let Some(m) = mib {
                        own = Some(own.unwrap_or(0) + m);
                    }
                    continue;
                }
                Owner::Other => self.others.entry(pid).or_insert(mib),
                Owner::Unresolved => self.unresolved.entry(pid).or_insert(mib),
            };
            *seen = (*seen).max(mib);
        }
        if own.is_some() {
            self.own_memory = self.own_memory.max(own);
        }
    }
}

fn listed(seen: &BTreeMap<u32, Option<u64>>) -> Vec<GpuProcess> {
    seen.iter()
        .map(|(pid, used_mib)| GpuProcess {
            pid: *pid,
            used_mib: *used_mib,
        })
        .collect()
}

impl PowerSensor for NvmlSensor {
    fn name(&self) -> String {
        format!(
            "nvml:{}:{}",
            self.identity.name,
            if self.counter { "energy" } else { "power" }
        )
    }

    fn read(&mut self) -> Result<Reading, String> {
        self.watch_processes();
        if self.counter {
            let mj = self
                .gpu
                .energy_mj()
                .ok_or_else(|| format!("{}: the energy counter stopped answering", self.name()))?;
            Ok(Reading::Joules(mj as f64 / 1000.0))
        } else {
            Ok(Reading::Watts(f64::from(self.gpu.power_mw()?) / 1000.0))
        }
    }

    fn finish(&mut self) -> Option<GpuAttribution> {
        self.watch_processes();
        Some(GpuAttribution {
            index: self.index,
            identity: self.identity.clone(),
            reading: if self.counter { "energy" } else { "power" }.into(),
            before: self.before.clone(),
            after: self.gpu.state(),
            own_memory_mib: self.own_memory,
            other_processes: listed(&self.others),
            unresolved_processes: listed(&self.unresolved),
            processes_unreadable: (!self.processes_read)
                .then(|| self.processes_error.clone())
                .flatten(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::Sampler;
    use std::time::Duration;

    fn script(counter: bool, processes: Vec<(u32, u64)>) -> FakeScript {
        FakeScript {
            name: "Fake GPU".into(),
            uuid: "GPU-0000".into(),
            driver_version: "550.54.15".into(),
            cuda_version: "12.4".into(),
            memory_total_mib: 81559,
            power_limit_w: Some(700.0),
            energy_counter: counter,
            power_w: vec![(0, 60.0), (100_000, 300.0)],
            sm_clock_mhz: Some(1980),
            mem_clock_mhz: Some(2619),
            memory_used_mib: Some(512),
            processes,
        }
    }

    fn fake(script: FakeScript) -> Box<dyn Gpu> {
        Box::new(FakeGpu {
            script,
            opened: Instant::now(),
        })
    }

    #[test]
    fn devices_map_through_cuda_visible_devices() {
        assert!(is_cuda("cuda") && is_cuda("cuda:3"));
        assert!(!is_cuda("cpu") && !is_cuda("cuda:x") && !is_cuda("cudax"));
        assert_eq!(nvml_selector("cuda", None).unwrap(), Selector::Index(0));
        assert_eq!(nvml_selector("cuda:2", None).unwrap(), Selector::Index(2));
        let visible = || Some("3, GPU-abc".to_string());
        assert_eq!(
            nvml_selector("cuda:0", visible()).unwrap(),
            Selector::Index(3)
        );
        assert_eq!(
            nvml_selector("cuda:1", visible()).unwrap(),
            Selector::Uuid("GPU-abc".into())
        );
        let err = nvml_selector("cuda:2", visible()).unwrap_err();
        assert!(err.contains("lists no device 2"), "{err}");
        let err = nvml_selector("cuda:0", Some("MIG-5b8c".into())).unwrap_err();
        assert!(err.contains("MIG instance MIG-5b8c"), "{err}");
    }

    #[test]
    fn the_fake_counter_is_the_integral_of_its_power() {
        let gpu = FakeGpu {
            script: FakeScript {
                power_w: vec![(0, 60.0), (1000, 300.0)],
                ..script(true, Vec::new())
            },
            opened: Instant::now(),
        };
        assert_eq!(gpu.joules_until(500.0), 30.0);
        assert_eq!(gpu.joules_until(2000.0), 60.0 + 300.0);
    }

    /// A counter gives each interval's mean power; a GPU without one its
    /// power readings. Processes of others are named, this process's
    /// memory counted apart.
    #[test]
    fn the_sensor_reads_energy_or_power_and_names_other_processes() {
        let me = std::process::id();
        let sensor = NvmlSensor::with(
            fake(script(true, vec![(me, 300), (1, 2048), (4_000_000, 64)])),
            0,
        )
        .unwrap();
        assert_eq!(sensor.name(), "nvml:Fake GPU:energy");
        let mut sampler = Sampler::start(Box::new(sensor), Duration::from_millis(5));
        sampler.idle_baseline(Duration::from_millis(30), 3);
        let trace = sampler.finish(Instant::now());
        assert!(trace.samples.len() >= 3, "{:?}", trace.samples);
        // 60 W from a counter: each interval's mean, to the counter's mJ.
        for (_, w) in &trace.samples {
            assert!((w - 60.0).abs() < 60.0 * 0.25, "{w}");
        }
        let gpu = trace.gpu.unwrap();
        assert_eq!(gpu.reading, "energy");
        assert_eq!(gpu.own_memory_mib, Some(300));
        assert_eq!(
            gpu.other_processes,
            vec![GpuProcess {
                pid: 1,
                used_mib: Some(2048)
            }]
        );
        assert_eq!(
            gpu.unresolved_processes,
            vec![GpuProcess {
                pid: 4_000_000,
                used_mib: Some(64)
            }]
        );
        assert_eq!(gpu.processes_unreadable, None);
        assert_eq!(gpu.before.sm_clock_mhz, Some(1980));

        let mut power = NvmlSensor::with(fake(script(false, Vec::new())), 1).unwrap();
        assert_eq!(power.name(), "nvml:Fake GPU:power");
        assert_eq!(power.read().unwrap(), Reading::Watts(60.0));
        let gpu = power.finish().unwrap();
        assert_eq!((gpu.index, gpu.reading.as_str()), (1, "power"));
        assert!(gpu.other_processes.is_empty());
    }

    /// Samples land on another process's CLOCK_MONOTONIC zero: those
    /// taken before it are negative, after it positive, by the time between.
    #[test]
    fn samples_are_placed_on_a_monotonic_origin() {
        let before = crate::energy::monotonic_ns();
        let sensor = NvmlSensor::with(fake(script(true, Vec::new())), 0).unwrap();
        let sampler = Sampler::start(Box::new(sensor), Duration::from_millis(5));
        let never = std::sync::atomic::AtomicBool::new(false);
        crate::energy::sleep_unless(Duration::from_millis(60), &never);
        let origin = crate::energy::monotonic_ns();
        crate::energy::sleep_unless(Duration::from_millis(60), &never);
        let trace = sampler.finish_at_monotonic_ns(origin);
        // After the poller has stopped: no sample can be later.
        let after = crate::energy::monotonic_ns();
        let ns: Vec<i64> = trace.samples.iter().map(|(t, _)| *t).collect();
        // Every sample lies between the sampler's start and its finish, as
        // seen from the origin, with some on each side of it: a sampler
        // sleeps its first interval, so the earliest is at least one poll
        // after the start, and a wrong offset would move them all.
        let (lo, hi) = (-((origin - before) as i64), (after - origin) as i64);
        assert!(
            ns.iter().all(|t| (lo..=hi).contains(t)),
            "{ns:?} not in [{lo}, {hi}]"
        );
        assert!(ns[0] < 0 && ns[ns.len() - 1] > 0, "{ns:?}");
    }

    /// Without libnvidia-ml (this machine, CI) a GPU cell has no sensor
    /// and says why; with it, the GPU opens.
    #[test]
    fn without_the_nvml_library_there_is_no_sensor_and_a_reason() {
        match NvmlGpu::open("cuda:0") {
            Err(e) => assert!(
                e.starts_with("no NVML power sensor") && e.contains("libnvidia-ml"),
                "{e}"
            ),
            Ok(_) => eprintln!("libnvidia-ml is present: the GPU opened"),
        }
    }
}
