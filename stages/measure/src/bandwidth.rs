//! Memory bandwidth of the measuring machine, measured once per environment
//! with a STREAM-style copy kernel. The roofline of decode: a decode step
//! must read every streamed weight and the KV cache, so bytes per step over
//! bandwidth bounds tokens/s from above.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::environment;
use assay_core::stage::{Input, MachineUse, Outputs, Stage, StageContext, StageError};
use assay_core::tables::to_json;

pub const BANDWIDTH_VERSION: u32 = 1;

/// Bytes of each of the two arrays: far above any last-level cache.
pub const ARRAY_BYTES: usize = 128 << 20;
/// Timed copies per thread count; STREAM reports the best.
pub const REPETITIONS: u32 = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandwidthAtThreads {
    pub threads: u32,
    /// Best of the repetitions, GB/s (10^9 bytes), counting the bytes read
    /// and the bytes written, as STREAM's copy does.
    pub best_gbps: f64,
    pub median_gbps: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bandwidth {
    pub method: String,
    pub array_bytes: u64,
    pub repetitions: u32,
    pub by_threads: Vec<BandwidthAtThreads>,
}

impl Bandwidth {
    /// Bandwidth available to a computation on `threads` threads: the
    /// measurement at the largest thread count not above it.
    pub fn at_threads(&self, threads: u32) -> Option<f64> {
        self.by_threads
            .iter()
            .filter(|b| b.threads <= threads.max(1))
            .max_by_key(|b| b.threads)
            .map(|b| b.best_gbps)
    }
}

/// The one output of the bandwidth node.
pub const OUTPUT: &str = "bandwidth";

#[derive(Debug, Clone, Default)]
pub struct BandwidthStage;

impl Stage for BandwidthStage {
    fn kind(&self) -> &'static str {
        "bandwidth"
    }

    fn version(&self) -> u32 {
        BANDWIDTH_VERSION
    }

    fn params(&self) -> Result<Value, StageError> {
        Ok(
            json!({ "method": "stream-copy", "array_bytes": ARRAY_BYTES, "repetitions": REPETITIONS }),
        )
    }

    /// Once per machine: the same facts measure keys use.
    fn environment(&self) -> Option<Value> {
        environment::key_facts(&environment::detect())
    }

    fn outputs(&self) -> Vec<&'static str> {
        vec![OUTPUT]
    }

    fn machine(&self) -> MachineUse {
        MachineUse::Measures {
            device: "cpu".into(),
        }
    }

    fn run(&self, ctx: &StageContext<'_>, _inputs: &[Input]) -> Result<Outputs, StageError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        let mut counts: Vec<u32> = std::iter::successors(Some(1u32), |t| Some(t * 2))
            .take_while(|t| *t < cores)
            .collect();
        counts.push(cores);
        let mut by_threads = Vec::new();
        for threads in counts {
            ctx.check_cancel()?;
            ctx.progress(&format!("copy kernel, {threads} threads"));
            by_threads.push(measure_copy(threads, ARRAY_BYTES, REPETITIONS));
        }
        let result = Bandwidth {
            method: "stream-copy".into(),
            array_bytes: ARRAY_BYTES as u64,
            repetitions: REPETITIONS,
            by_threads,
        };
        let mut out = Outputs::new();
        out.insert(OUTPUT.into(), to_json(&result)?);
        Ok(out)
    }
}

/// Copy `bytes` from one array to another on `threads` threads, each thread
/// its own contiguous slice, `reps` times; GB/s counts read plus write.
pub fn measure_copy(threads: u32, bytes: usize, reps: u32) -> BandwidthAtThreads {
    let n = bytes / 8;
    let src: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let mut dst = vec![0.0f64; n];
    let chunk = n.div_ceil(threads.max(1) as usize);
    let mut rates = Vec::with_capacity(reps as usize);
    // One untimed pass faults every page in.
    for rep in 0..=reps {
        let start = std::time::Instant::now();
        std::thread::scope(|s| {
            for (d, a) in dst.chunks_mut(chunk).zip(src.chunks(chunk)) {
                s.spawn(move || d.copy_from_slice(a));
            }
        });
        let secs = start.elapsed().as_secs_f64();
        if rep > 0 {
            rates.push(2.0 * (n * 8) as f64 / secs / 1e9);
        }
    }
    // Keep the copy observable so it cannot be optimised away.
    std::hint::black_box(&dst);
    rates.sort_by(f64::total_cmp);
    BandwidthAtThreads {
        threads,
        best_gbps: rates.last().copied().unwrap_or(f64::NAN),
        median_gbps: assay_core::stats::quantile_sorted(&rates, 0.5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_kernel_reports_a_plausible_rate() {
        let b = measure_copy(1, 8 << 20, 3);
        // Any machine copies faster than 0.1 GB/s and slower than 10 TB/s.
        assert!(b.best_gbps > 0.1 && b.best_gbps < 10_000.0, "{b:?}");
        assert!(b.median_gbps <= b.best_gbps);
    }

    #[test]
    fn at_threads_picks_the_largest_measured_count_not_above() {
        let bw = Bandwidth {
            method: "stream-copy".into(),
            array_bytes: 0,
            repetitions: 1,
            by_threads: [(1, 10.0), (2, 15.0), (4, 18.0)]
                .iter()
                .map(|&(t, g)| BandwidthAtThreads {
                    threads: t,
                    best_gbps: g,
                    median_gbps: g,
                })
                .collect(),
        };
        assert_eq!(bw.at_threads(1), Some(10.0));
        assert_eq!(bw.at_threads(3), Some(15.0));
        assert_eq!(bw.at_threads(16), Some(18.0));
    }
}
