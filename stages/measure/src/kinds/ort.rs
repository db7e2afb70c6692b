//! `ort`: ONNX Runtime (cargo feature `ort`) running the model's ONNX
//! export, loaded at run time.

use super::in_process;
use crate::harness::InferenceBackend;
use crate::stage::MeasureStage;
use crate::stage::registry::{
    Backend, CheckContext, Evaluation, Execution, Findings, Generated, Measured, Open,
};
use assay_core::config::{BackendConfig, ExecutionProvider, GraphOptimization, OrtOptions};
use assay_core::stage::{Input, StageContext, StageError};
use assay_model::decl::ModelDecl;
use assay_model::prepare::ExportFormat;

#[derive(Debug)]
pub struct Ort;

impl Backend for Ort {
    fn name(&self) -> &'static str {
        "ort"
    }

    fn summary(&self) -> &'static str {
        "ONNX Runtime (cargo feature `ort`) running the model's ONNX export\n(KV cache as graph inputs and outputs). Options under `ort:`."
    }

    fn execution(&self) -> Execution {
        Execution::InProcess
    }

    fn options_section(&self) -> Option<&'static str> {
        Some("ort")
    }

    fn feature(&self) -> Option<(&'static str, bool)> {
        Some(("ort", cfg!(feature = "ort")))
    }

    /// f32, `cpu` or `cuda:0` matching the execution providers, safetensors
    /// models (exported to ONNX), and a library to load when measuring.
    fn check(&self, cx: &CheckContext<'_>, b: &BackendConfig, findings: &mut dyn Findings) {
        in_process::check_f32(cx, b, findings);
        // ONNX Runtime's CUDA provider runs on device 0 (choose the GPU with
        // CUDA_VISIBLE_DEVICES), so `cuda:0` is the one GPU label that can
        // match what ran.
        let device_ok = in_process::check_device(
            cx,
            b,
            &["cpu", "cuda:0"],
            "`cpu` or `cuda:0` (through the CUDA execution provider; pick the GPU with CUDA_VISIBLE_DEVICES)",
            findings,
        );
        check_providers(
            cx,
            b,
            &b.ort.clone().unwrap_or_default(),
            device_ok,
            findings,
        );
        in_process::check_safetensors_models(cx, b, findings);
        #[cfg(feature = "ort")]
        if cx.measuring
            && let Err(line) = crate::ort::library_path()
        {
            findings.at_value(&cx.at("/kind"), line);
        }
    }

    fn needs_export(&self, _b: &BackendConfig, _model: &ModelDecl) -> Option<ExportFormat> {
        Some(ExportFormat::Onnx)
    }

    fn resolve(&self, b: &BackendConfig, _stage: &MeasureStage) -> BackendConfig {
        let mut b = b.clone();
        b.ort = Some(b.ort.unwrap_or_default());
        b
    }

    /// Any optimisation level but `disabled` (the graph as exported).
    fn compiled(&self, b: &BackendConfig) -> Option<String> {
        let level = b.ort.clone().unwrap_or_default().graph_optimization;
        (level != GraphOptimization::Disabled).then(|| format!("onnxruntime:{}", level.as_str()))
    }

    fn libraries(&self, _stage: &MeasureStage) -> Vec<(String, String)> {
        vec![("onnxruntime".into(), crate::versions::ORT_EXPECTED.into())]
    }

    fn measure(
        &self,
        stage: &MeasureStage,
        ctx: &StageContext<'_>,
        inputs: &[Input],
    ) -> Result<Measured, StageError> {
        in_process::measure(&Ort, stage, ctx, inputs)
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
        in_process::generate(&Ort, job, ctx, inputs)
    }

    #[cfg(feature = "ort")]
    fn open(&self, open: &Open<'_>) -> Result<Box<dyn InferenceBackend>, String> {
        let crate::candle::WeightFiles::Onnx(path) = open.files else {
            return Err(format!(
                "ONNX Runtime runs an ONNX export, not {:?}",
                open.files
            ));
        };
        Ok(Box::new(crate::ort::OrtBackend::new(
            open.info.clone(),
            path.clone(),
            open.backend.ort.clone().unwrap_or_default(),
            open.backend.threads,
            open.capacity,
        )))
    }

    #[cfg(not(feature = "ort"))]
    fn open(&self, _open: &Open<'_>) -> Result<Box<dyn InferenceBackend>, String> {
        Err(crate::worker::not_built("ort"))
    }
}

/// `ort.providers`: each once, the CPU last, and the first one matching
/// the device (checked when the device itself is valid).
fn check_providers(
    cx: &CheckContext<'_>,
    b: &BackendConfig,
    o: &OrtOptions,
    device_ok: bool,
    findings: &mut dyn Findings,
) {
    let mut seen = std::collections::BTreeSet::new();
    for (j, p) in o.providers.iter().enumerate() {
        if !seen.insert(*p) {
            findings.at_value(
                &cx.at(&format!("/ort/providers/{j}")),
                format!("execution provider {} is listed twice", p.as_str()),
            );
        }
        // ONNX Runtime always falls back to the CPU last, so a CPU
        // listed before another provider would not take priority.
        if *p == ExecutionProvider::Cpu && j + 1 != o.providers.len() {
            findings.at_value(
                &cx.at(&format!("/ort/providers/{j}")),
                "cpu can only be the last execution provider (ONNX Runtime's fallback)".into(),
            );
        }
    }
    if o.providers.is_empty() {
        findings.at_value(
            &cx.at("/ort/providers"),
            "at least one execution provider is required".into(),
        );
    }
    let cuda = b.device == "cuda:0";
    let first_cuda = o.providers.first() == Some(&ExecutionProvider::Cuda);
    if device_ok && first_cuda != cuda {
        findings.at_value(
            &cx.at("/device"),
            format!(
                "device {:?} does not match the execution providers {:?}: `cuda:0` goes with `providers: [cuda, cpu]`, `cpu` with `providers: [cpu]`",
                b.device,
                o.providers.iter().map(|p| p.as_str()).collect::<Vec<_>>()
            ),
        );
    }
}
