//! `candle`: the embedded default, pure Rust on this machine's CPU.

use super::in_process;
use crate::candle::{CANDLE_VERSION, CandleBackend, LIBRARY};
use crate::harness::InferenceBackend;
use crate::stage::MeasureStage;
use crate::stage::registry::{
    Backend, CheckContext, Evaluation, Execution, Findings, Generated, Measured, Open,
};
use assay_core::config::{BackendConfig, Dtype};
use assay_core::stage::{Input, StageContext, StageError};
use assay_model::decl::ModelDecl;
use assay_model::prepare::ExportFormat;
use assay_model::prepare::gguf::GgufType;

#[derive(Debug)]
pub struct Candle;

impl Backend for Candle {
    fn name(&self) -> &'static str {
        "candle"
    }

    fn summary(&self) -> &'static str {
        "candle (pure Rust) on the CPU: the embedded default. f32, f16 and\nbf16 run the safetensors checkpoint; q8_0 runs the GGUF q8_0 export\nthrough candle's quantised kernels."
    }

    fn execution(&self) -> Execution {
        Execution::InProcess
    }

    /// The CPU only.
    fn check(&self, cx: &CheckContext<'_>, b: &BackendConfig, findings: &mut dyn Findings) {
        if b.device != "cpu" {
            findings.at_value(
                &cx.at("/device"),
                format!(
                    "candle runs on the CPU only in this build; device {:?} is not available",
                    b.device
                ),
            );
        }
    }

    /// q8_0 runs the GGUF q8_0 export, unless the model already is a GGUF
    /// file.
    fn needs_export(&self, b: &BackendConfig, model: &ModelDecl) -> Option<ExportFormat> {
        let local_gguf = model.path.as_deref().is_some_and(|p| p.ends_with(".gguf"));
        (b.dtype == Dtype::Q8_0 && !local_gguf).then_some(ExportFormat::Gguf(GgufType::Q8_0))
    }

    /// The roofline attribution of candle's cells reads this machine's
    /// memory bandwidth.
    fn wants_bandwidth(&self) -> bool {
        true
    }

    fn libraries(&self, _stage: &MeasureStage) -> Vec<(String, String)> {
        vec![(LIBRARY.into(), CANDLE_VERSION.into())]
    }

    fn measure(
        &self,
        stage: &MeasureStage,
        ctx: &StageContext<'_>,
        inputs: &[Input],
    ) -> Result<Measured, StageError> {
        in_process::measure(&Candle, stage, ctx, inputs)
    }

    fn evaluates(&self) -> bool {
        true
    }

    fn generate(
        &self,
        job: &Evaluation<'_>,
        ctx: &StageContext<'_>,
        inputs: &[Input],
    ) -> Result<Generated, StageError> {
        in_process::generate(&Candle, job, ctx, inputs)
    }

    fn open(&self, open: &Open<'_>) -> Result<Box<dyn InferenceBackend>, String> {
        in_process::cpu_only(open.backend)?;
        Ok(Box::new(CandleBackend::new(
            open.info.clone(),
            open.files.clone(),
            open.backend.dtype,
            open.capacity,
        )))
    }
}
