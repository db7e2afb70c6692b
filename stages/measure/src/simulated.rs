//! The `simulated` backend: a roofline-style latency model advancing a virtual
//! clock, with seeded noise. Deterministic from (options, model, scenario).
//! Its runs are labelled simulated in every artifact.

use std::cell::Cell;
use std::rc::Rc;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::harness::{Attribution, BackendError, Clock, InferenceBackend, Pick};
use assay_core::config::{Dtype, SimulatedOptions};
use assay_model::decl::SyntheticArch;

/// Version of the latency model; part of measure keys of simulated cells.
pub const SIM_MODEL_VERSION: u32 = 1;

pub struct VirtualClock(Rc<Cell<u64>>);

impl Clock for VirtualClock {
    fn now_ns(&self) -> u64 {
        self.0.get()
    }
}

pub struct SimulatedBackend {
    opts: SimulatedOptions,
    arch: SyntheticArch,
    dtype: Dtype,
    device: String,
    threads: u32,
    clock: Rc<Cell<u64>>,
    rng: ChaCha8Rng,
    batch: u64,
    position: u64,
    cold: bool,
    next_token: u32,
    /// Runs started since load (for fault injection).
    runs_started: u32,
    /// Tokens the current run has generated (for `inject.short_run`).
    generated: u32,
    /// Multiplier of every forward pass (`inject.slow_scenario` in the
    /// scenario it names; 1 elsewhere).
    slowdown: f64,
}

impl SimulatedBackend {
    pub fn new(
        opts: SimulatedOptions,
        arch: SyntheticArch,
        dtype: Dtype,
        device: &str,
        threads: u32,
        stream_seed: u64,
    ) -> (Self, VirtualClock) {
        let clock = Rc::new(Cell::new(0));
        // A drifted dtype is what "ran": the latency model sizes weights
        // and KV cache at it, as a real fallback would.
        let drift = opts
            .inject
            .as_ref()
            .and_then(|i| i.attribution_drift.as_ref());
        let backend = SimulatedBackend {
            rng: ChaCha8Rng::seed_from_u64(opts.seed ^ stream_seed),
            dtype: drift.and_then(|d| d.dtype).unwrap_or(dtype),
            opts,
            arch,
            device: device.to_string(),
            threads,
            clock: clock.clone(),
            batch: 1,
            position: 0,
            cold: true,
            next_token: 1,
            runs_started: 0,
            generated: 0,
            slowdown: 1.0,
        };
        (backend, VirtualClock(clock))
    }

    /// `inject.slow_scenario`: every forward pass takes `factor` times as
    /// long (the noise draws are unchanged, so only the slowed cell moves).
    pub fn slow_forward_passes(mut self, factor: f64) -> Self {
        self.slowdown = factor;
        self
    }

    /// `inject.short_run`: the current run has generated its tokens and
    /// stops, the way a backend whose context filled does.
    fn stops_short(&self) -> bool {
        let short = self.opts.inject.as_ref().and_then(|i| i.short_run);
        short.is_some_and(|s| {
            self.runs_started.checked_sub(1) == Some(s.run) && self.generated >= s.tokens
        })
    }

    fn weight_bytes(&self) -> f64 {
        self.arch.parameter_count() as f64 * self.dtype.bytes_per_value()
    }

    /// Noise factor: log-normal with the configured CV (median 1), plus
    /// occasional outliers.
    fn noise(&mut self) -> f64 {
        let cv = self.opts.noise_cv.max(0.0);
        let sigma = libm::sqrt(libm::log(1.0 + cv * cv));
        // Box-Muller from two uniforms in (0, 1].
        let u1: f64 = 1.0 - self.rng.random::<f64>();
        let u2: f64 = self.rng.random::<f64>();
        let z = libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(std::f64::consts::TAU * u2);
        let mut f = libm::exp(sigma * z);
        if self.opts.outlier_rate > 0.0 && self.rng.random::<f64>() < self.opts.outlier_rate {
            f *= self.opts.outlier_factor;
        }
        f
    }

    fn advance(&mut self, seconds: f64) {
        let mut s = seconds * self.noise();
        if self.cold {
            s *= self.opts.cold_start_factor.max(1.0);
        }
        let ns = (s * 1e9).round().max(1.0) as u64;
        self.clock.set(self.clock.get() + ns);
    }

    /// One forward pass over `tokens` new tokens per sequence at the current
    /// position: max(compute, memory) + overhead.
    fn forward_seconds(&self, tokens: u64) -> f64 {
        let params = self.arch.parameter_count() as f64;
        let flops = 2.0 * params * (tokens * self.batch) as f64;
        let kv = (self.arch.kv_values_per_token() * (self.position + tokens) * self.batch) as f64
            * self.dtype.bytes_per_value();
        let bytes = self.weight_bytes() + kv;
        let compute = flops / (self.opts.peak_gflops * 1e9);
        let memory = bytes / (self.opts.memory_gbps * 1e9);
        (compute.max(memory) + self.opts.overhead_us * 1e-6) * self.slowdown
    }
}

impl InferenceBackend for SimulatedBackend {
    fn load(&mut self) -> Result<Attribution, BackendError> {
        // Reading weights at a tenth of memory bandwidth, plus setup.
        let seconds = self.weight_bytes() / (self.opts.memory_gbps * 1e8) + 0.02;
        self.advance(seconds);
        // `inject.stall_s`: real time, outside the simulated clock.
        if let Some(stall) = self.opts.inject.as_ref().and_then(|i| i.stall_s) {
            std::thread::sleep(std::time::Duration::from_secs(u64::from(stall)));
        }
        // Injected drift reports what "ran" in place of the request, so the
        // manifest carries the same evidence a real label drift leaves.
        let drift = self
            .opts
            .inject
            .as_ref()
            .and_then(|i| i.attribution_drift.as_ref());
        Ok(Attribution::plain(
            drift
                .and_then(|d| d.device.as_deref())
                .unwrap_or(&self.device),
            self.dtype.as_str(),
            drift.and_then(|d| d.threads).unwrap_or(self.threads),
            "assay-simulated",
            &SIM_MODEL_VERSION.to_string(),
        ))
    }

    fn reset(&mut self) {
        // The first run after load is cold; every later run is warm.
        if self.position > 0 {
            self.cold = false;
        }
        self.position = 0;
        self.runs_started += 1;
        self.generated = 0;
    }

    fn prefill(&mut self, prompts: &[Vec<u32>]) -> Result<(), BackendError> {
        if self.opts.fail_at_run == Some(self.runs_started.saturating_sub(1)) {
            return Err(BackendError::Injected(format!(
                "injected failure at run {} (simulated fail_at_run)",
                self.runs_started - 1
            )));
        }
        self.batch = prompts.len().max(1) as u64;
        let tokens = prompts.first().map_or(1, |p| p.len() as u64);
        let s = self.forward_seconds(tokens);
        self.advance(s);
        self.position += tokens;
        self.next_token = prompts.first().and_then(|p| p.last()).copied().unwrap_or(1);
        Ok(())
    }

    fn sample(&mut self) -> Result<Vec<Pick>, BackendError> {
        // argmax over the vocabulary: ~1 ns per logit.
        let s = (u64::from(self.arch.vocab) * self.batch) as f64 * 1e-9;
        self.advance(s);
        // A deterministic stand-in for greedy ids: a function of the previous
        // token and position only, like a real greedy decode.
        self.next_token = ((u64::from(self.next_token) * 31 + self.position * 17)
            % u64::from(self.arch.vocab.max(1))) as u32;
        self.generated += 1;
        let pick = Pick {
            token: self.next_token,
            margin: None,
        };
        Ok(vec![pick; self.batch as usize])
    }

    fn decode_step(&mut self, _tokens: &[u32]) -> Result<bool, BackendError> {
        if self.position >= u64::from(self.arch.max_positions) || self.stops_short() {
            return Ok(false);
        }
        let s = self.forward_seconds(1);
        self.advance(s);
        self.position += 1;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use assay_core::config::inject::{AttributionDrift, Inject, ShortRun};

    fn arch() -> SyntheticArch {
        serde_json::from_value(serde_json::json!({
            "arch": "llama", "layers": 2, "hidden": 64, "heads": 4, "vocab": 256,
        }))
        .unwrap()
    }

    fn backend(inject: Option<Inject>) -> (SimulatedBackend, VirtualClock) {
        let opts = SimulatedOptions {
            inject,
            ..Default::default()
        };
        SimulatedBackend::new(opts, arch(), Dtype::F32, "cpu", 2, 7)
    }

    /// Tokens each of `runs` runs generates when asked for `wanted` tokens,
    /// driven the way the harness drives a backend.
    fn generated(b: &mut SimulatedBackend, runs: u32, wanted: u32) -> Vec<u32> {
        b.load().unwrap();
        (0..runs)
            .map(|_| {
                b.reset();
                b.prefill(&[vec![1, 2, 3]]).unwrap();
                b.sample().unwrap();
                let mut produced = 1;
                while produced < wanted && b.decode_step(&[0]).unwrap() {
                    b.sample().unwrap();
                    produced += 1;
                }
                produced
            })
            .collect()
    }

    #[test]
    fn without_injection_every_run_generates_what_was_asked() {
        let (mut b, _) = backend(None);
        assert_eq!(generated(&mut b, 4, 8), vec![8, 8, 8, 8]);
    }

    #[test]
    fn an_injected_short_run_stops_early_and_only_that_run() {
        let inject = Inject {
            short_run: Some(ShortRun { run: 2, tokens: 3 }),
            ..Default::default()
        };
        let (mut b, _) = backend(Some(inject));
        assert_eq!(generated(&mut b, 4, 8), vec![8, 8, 3, 8]);
    }

    #[test]
    fn injected_drift_is_what_the_attribution_reports_and_what_ran() {
        let (mut clean, clean_clock) = backend(None);
        let plain = clean.load().unwrap();
        assert_eq!(
            (plain.device.as_str(), plain.dtype.as_str(), plain.threads),
            ("cpu", "f32", 2)
        );
        let inject = Inject {
            attribution_drift: Some(AttributionDrift {
                device: Some("cuda:0".into()),
                dtype: Some(Dtype::F16),
                threads: Some(8),
            }),
            ..Default::default()
        };
        let (mut drifted, drifted_clock) = backend(Some(inject));
        let actual = drifted.load().unwrap();
        assert_eq!(
            (
                actual.device.as_str(),
                actual.dtype.as_str(),
                actual.threads
            ),
            ("cuda:0", "f16", 8)
        );
        // Half the weight bytes to read: the drifted load is faster, as the
        // dtype that really ran would make it.
        assert!(drifted_clock.now_ns() < clean_clock.now_ns());
    }
}
