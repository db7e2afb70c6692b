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
        // Each cell gets its own noise stream, independent of the order
        // cells run in.
        let stream = stage.stream_seed();
        let (mut backend, clock) = SimulatedBackend::new(
            opts,
            arch.clone(),
            stage.backend.dtype,
            &stage.backend.device,
            stage.backend.threads,
            stream,
        );
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
            let trace = energy::simulated_trace(&measurement.events, sampling, stream);
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
