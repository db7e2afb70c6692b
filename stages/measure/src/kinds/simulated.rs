//! `simulated`: a deterministic roofline-style latency model on a virtual
//! clock, for tests and what-ifs. Its numbers are labelled simulated
//! everywhere and are never evidence.

use serde_json::{Value, json};

use crate::energy::{self, PowerOutcome};
use crate::environment::Environment;
use crate::harness;
use crate::simulated::{SIM_MODEL_VERSION, SimulatedBackend};
use crate::stage::MeasureStage;
use crate::stage::registry::{Backend, CheckContext, Execution, Findings, Measured};
use assay_core::config::inject::Inject;
use assay_core::config::{BackendConfig, SimulatedOptions};
use assay_core::stage::{Input, StageContext, StageError};
use assay_model::decl::ModelDecl;

#[derive(Debug)]
pub struct Simulated;

impl Backend for Simulated {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn summary(&self) -> &'static str {
        "Deterministic roofline-style latency model. For tests and what-ifs;\nits numbers are labelled simulated everywhere and are never evidence."
    }

    fn execution(&self) -> Execution {
        Execution::Simulated
    }

    fn options_section(&self) -> Option<&'static str> {
        Some("simulated")
    }

    /// The latency model's parameters, when given.
    fn check(&self, cx: &CheckContext<'_>, b: &BackendConfig, findings: &mut dyn Findings) {
        if let Some(o) = &b.simulated {
            check_options(&cx.at("/simulated"), o, findings);
            if let Some(inject) = &o.inject {
                check_inject(cx, &cx.at("/simulated/inject"), b, inject, findings);
            }
        }
    }

    /// It runs on the declared architecture alone.
    fn reads_prepared_model(&self, _b: &BackendConfig, _model: &ModelDecl) -> bool {
        false
    }

    fn resolve(&self, b: &BackendConfig, _stage: &MeasureStage) -> BackendConfig {
        let mut b = b.clone();
        b.simulated = Some(b.simulated.unwrap_or_default());
        b
    }

    /// Machine-independent by construction: the model's version is what
    /// its numbers depend on.
    fn key_environment(&self, _stage: &MeasureStage) -> Option<Value> {
        Some(json!({ "simulated_model_version": SIM_MODEL_VERSION }))
    }

    fn manifest_environment(&self, _stage: &MeasureStage) -> Option<Environment> {
        None
    }

    fn measure(
        &self,
        stage: &MeasureStage,
        ctx: &StageContext<'_>,
        _inputs: &[Input],
    ) -> Result<Measured, StageError> {
        let arch = stage.model.synthetic.as_ref().ok_or_else(|| {
            StageError::Failed("the simulated backend needs a synthetic model".into())
        })?;
        let prompts = harness::prompt_ids(&stage.scenario, arch.vocab, arch.seed);
        let opts = stage.backend.simulated.clone().unwrap_or_default();
        let dead_sensor = opts.inject.as_ref().is_some_and(|i| i.dead_sensor);
        let slowdown = opts
            .inject
            .as_ref()
            .and_then(|i| i.slow_scenario.as_ref())
            .filter(|s| s.scenario == stage.scenario.name)
            .map_or(1.0, |s| f64::from(s.factor));
        // Each cell gets its own noise stream, independent of the order
        // cells run in.
        let stream = stage.stream_seed();
        let (backend, clock) = SimulatedBackend::new(
            opts,
            arch.clone(),
            stage.backend.dtype,
            &stage.backend.device,
            stage.backend.threads,
            stream,
        );
        let mut backend = backend.slow_forward_passes(slowdown);
        let on_run = |rep: u32, total: u32| {
            ctx.progress(&format!("run {}/{}", rep + 1, total));
            !ctx.cancelled()
        };
        let mut measurement = harness::measure_cell(
            &mut backend,
            &clock,
            &stage.cell,
            &stage.scenario,
            &stage.boundary,
            &prompts,
            on_run,
        )
        .map_err(|e| StageError::Failed(e.to_string()))?
        .ok_or(StageError::Cancelled)?;
        if let Some(sampling) = stage.energy {
            let mut trace = energy::simulated_trace(&measurement.events, sampling, stream);
            if dead_sensor {
                kill_sensor(&mut trace);
            }
            measurement.power = Some(PowerOutcome::Trace(trace));
        }
        Ok(Measured {
            measurement,
            model_info: Some(arch.info(&stage.model.name)),
            weights: None,
            started_unix_ms: None,
            requests: None,
        })
    }
}

fn check_options(at: &str, o: &SimulatedOptions, findings: &mut dyn Findings) {
    for (field, v) in [
        ("peak_gflops", o.peak_gflops),
        ("memory_gbps", o.memory_gbps),
    ] {
        if v.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            findings.at_value(&format!("{at}/{field}"), format!("{field} must be > 0"));
        }
    }
    for (field, v, min) in [
        ("overhead_us", o.overhead_us, 0.0),
        ("cold_start_factor", o.cold_start_factor, 1.0),
        ("outlier_factor", o.outlier_factor, 1.0),
    ] {
        if v.is_nan() || v < min {
            findings.at_value(
                &format!("{at}/{field}"),
                format!("{field} must be >= {min}"),
            );
        }
    }
    if !(0.0..=1.0).contains(&o.outlier_rate) {
        findings.at_value(
            &format!("{at}/outlier_rate"),
            "outlier_rate must be within [0, 1]".into(),
        );
    }
    if o.noise_cv.is_nan() || o.noise_cv < 0.0 {
        findings.at_value(&format!("{at}/noise_cv"), "noise_cv must be >= 0".into());
    }
}

/// `inject.dead_sensor`: the trace a sensor leaves when its reads start
/// failing at model load (time zero): the poller stops producing samples.
/// The idle baseline stays, as it would when a sensor dies mid-measurement,
/// so only the cell's own windows lose their evidence.
fn kill_sensor(trace: &mut energy::Trace) {
    trace.samples.retain(|(t, _)| *t < 0);
}

/// An injection that could not produce its fault is refused: a trust
/// report whose fault never happened would show nothing being caught.
fn check_inject(
    cx: &CheckContext<'_>,
    at: &str,
    b: &BackendConfig,
    inject: &Inject,
    findings: &mut dyn Findings,
) {
    if let Some(short) = inject.short_run {
        if short.tokens == 0 {
            findings.at_value(
                &format!("{at}/short_run/tokens"),
                "short_run.tokens must be >= 1 (the first token comes from prefill)".into(),
            );
        } else if cx.scenarios.iter().all(|s| s.gen_tokens <= short.tokens) {
            findings.at_value(
                &format!("{at}/short_run/tokens"),
                format!(
                    "short_run.tokens {} is not below any scenario's gen_tokens: no run would be short",
                    short.tokens
                ),
            );
        }
    }
    if let Some(d) = &inject.attribution_drift {
        let same = [
            ("device", d.device.as_ref().map(|v| v == &b.device)),
            ("dtype", d.dtype.map(|v| v == b.dtype)),
            ("threads", d.threads.map(|v| v == b.threads)),
        ];
        if same.iter().all(|(_, s)| s.is_none()) {
            findings.at_value(
                &format!("{at}/attribution_drift"),
                "attribution_drift needs at least one of device, dtype, threads".into(),
            );
        }
        for (field, _) in same.iter().filter(|(_, s)| *s == Some(true)) {
            findings.at_value(
                &format!("{at}/attribution_drift/{field}"),
                format!("attribution_drift.{field} is the requested {field}: nothing would drift"),
            );
        }
    }
    if let Some(slow) = &inject.slow_scenario {
        if slow.factor < 2 {
            findings.at_value(
                &format!("{at}/slow_scenario/factor"),
                "slow_scenario.factor must be >= 2".into(),
            );
        }
        if !cx.scenarios.iter().any(|s| s.name == slow.scenario) {
            let names: Vec<&str> = cx.scenarios.iter().map(|s| s.name.as_str()).collect();
            findings.at_value(
                &format!("{at}/slow_scenario/scenario"),
                format!(
                    "no scenario named {:?} in this spec (scenarios: {}): nothing would be slowed",
                    slow.scenario,
                    names.join(", ")
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace() -> energy::Trace {
        energy::Trace {
            sensor: "simulated".into(),
            samples: vec![
                (-2_000_000, 40.0),
                (-1_000_000, 41.0),
                (0, 70.0),
                (1_000_000, 72.0),
            ],
            gpu: None,
        }
    }

    #[derive(Default)]
    struct Collected(Vec<(String, String)>);

    impl Findings for Collected {
        fn at_value(&mut self, pointer: &str, message: String) {
            self.0.push((pointer.into(), message));
        }
        fn at_key(&mut self, pointer: &str, message: String) {
            self.0.push((pointer.into(), message));
        }
    }

    /// The findings of `check_inject` for `inject` on an f32 cpu backend
    /// with 2 threads, over one scenario generating 16 tokens.
    fn findings(inject: serde_json::Value) -> Vec<(String, String)> {
        let b: BackendConfig = serde_json::from_value(serde_json::json!({
            "name": "sim", "kind": "simulated", "threads": 2,
        }))
        .unwrap();
        let scenarios: Vec<assay_core::config::Scenario> = vec![
            serde_json::from_value(serde_json::json!({
                "name": "s", "prompt_tokens": 8, "batch": 1, "gen_tokens": 16,
            }))
            .unwrap(),
        ];
        let cx = CheckContext {
            index: 0,
            models: &[],
            scenarios: &scenarios,
            measuring: false,
            cores: None,
        };
        let inject: Inject = serde_json::from_value(inject).unwrap();
        let mut found = Collected::default();
        check_inject(&cx, "/i", &b, &inject, &mut found);
        found.0
    }

    #[test]
    fn injections_that_fire_pass_the_check() {
        let ok = findings(serde_json::json!({
            "short_run": { "run": 1, "tokens": 15 },
            "attribution_drift": { "device": "cuda:0", "dtype": "f16", "threads": 4 },
            "dead_sensor": true,
        }));
        assert_eq!(ok, vec![]);
    }

    #[test]
    fn injections_that_cannot_fire_are_refused_where_they_are() {
        let pointers = |v| -> Vec<String> { findings(v).into_iter().map(|f| f.0).collect() };
        assert_eq!(
            pointers(serde_json::json!({ "short_run": { "run": 1, "tokens": 0 } })),
            vec!["/i/short_run/tokens"]
        );
        assert_eq!(
            pointers(serde_json::json!({ "short_run": { "run": 1, "tokens": 16 } })),
            vec!["/i/short_run/tokens"]
        );
        assert_eq!(
            pointers(serde_json::json!({ "attribution_drift": {} })),
            vec!["/i/attribution_drift"]
        );
        assert_eq!(
            pointers(serde_json::json!({
                "attribution_drift": { "device": "cpu", "dtype": "f16", "threads": 2 },
            })),
            vec![
                "/i/attribution_drift/device",
                "/i/attribution_drift/threads"
            ]
        );
    }

    #[test]
    fn a_dead_sensor_keeps_only_its_idle_baseline() {
        let mut t = trace();
        kill_sensor(&mut t);
        assert_eq!(t.samples, vec![(-2_000_000, 40.0), (-1_000_000, 41.0)]);
    }
}
