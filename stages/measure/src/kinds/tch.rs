//! `tch`: libtorch (cargo feature `tch`), eager or a TorchScript trace of
//! the same model.

use super::in_process;
use crate::harness::InferenceBackend;
use crate::stage::MeasureStage;
use crate::stage::registry::{
    Backend, CheckContext, Evaluation, Execution, Findings, Generated, Measured, Open,
};
use assay_core::config::{BackendConfig, TchMode};
use assay_core::stage::{Input, StageContext, StageError};

#[derive(Debug)]
pub struct Tch;

impl Backend for Tch {
    fn name(&self) -> &'static str {
        "tch"
    }

    fn summary(&self) -> &'static str {
        "libtorch (cargo feature `tch`): eager, or a TorchScript trace of the\nsame model. Options under `tch:`."
    }

    fn execution(&self) -> Execution {
        Execution::InProcess
    }

    fn options_section(&self) -> Option<&'static str> {
        Some("tch")
    }

    fn feature(&self) -> Option<(&'static str, bool)> {
        Some(("tch", cfg!(feature = "tch")))
    }

    /// f32 safetensors checkpoints on the CPU.
    fn check(&self, cx: &CheckContext<'_>, b: &BackendConfig, findings: &mut dyn Findings) {
        in_process::check_f32(cx, b, findings);
        in_process::check_device(cx, b, &["cpu"], "`cpu` only in this build", findings);
        in_process::check_safetensors_models(cx, b, findings);
    }

    fn resolve(&self, b: &BackendConfig, _stage: &MeasureStage) -> BackendConfig {
        let mut b = b.clone();
        b.tch = Some(b.tch.unwrap_or_default());
        b
    }

    fn compiled(&self, b: &BackendConfig) -> Option<String> {
        (b.tch.clone().unwrap_or_default().mode == TchMode::Torchscript)
            .then(|| "torchscript".to_string())
    }

    fn libraries(&self, _stage: &MeasureStage) -> Vec<(String, String)> {
        vec![("libtorch".into(), crate::versions::TORCH_EXPECTED.into())]
    }

    fn measure(
        &self,
        stage: &MeasureStage,
        ctx: &StageContext<'_>,
        inputs: &[Input],
    ) -> Result<Measured, StageError> {
        in_process::measure(&Tch, stage, ctx, inputs)
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
        in_process::generate(&Tch, job, ctx, inputs)
    }

    #[cfg(feature = "tch")]
    fn open(&self, open: &Open<'_>) -> Result<Box<dyn InferenceBackend>, String> {
        in_process::cpu_only(open.backend)?;
        let crate::candle::WeightFiles::Safetensors(paths) = open.files else {
            return Err(format!(
                "libtorch runs safetensors weights, not {:?}",
                open.files
            ));
        };
        Ok(Box::new(crate::tch_backend::TchBackend::new(
            open.info.clone(),
            paths.clone(),
            open.backend.tch.clone().unwrap_or_default(),
            open.backend.threads,
            open.capacity,
        )))
    }

    #[cfg(not(feature = "tch"))]
    fn open(&self, _open: &Open<'_>) -> Result<Box<dyn InferenceBackend>, String> {
        Err(crate::worker::not_built("tch"))
    }
}
