//! The server kinds, `openai` and `ollama`: measured over HTTP from the
//! client side (the server is the other process), under a load profile.

use super::server_checks;
use crate::server::cell::{self, ServerCell};
use crate::server::openai::DEFAULT_KNOBS;
use crate::stage::registry::{Backend, CheckContext, Execution, Findings, Measured};
use crate::stage::{MeasureStage, ModelIdentity, unix_ms};
use assay_core::config::{BackendConfig, Dtype, Scenario};
use assay_core::domain::WeightsFormat;
use assay_core::inputs::find_input;
use assay_core::stage::{Input, StageContext, StageError};
use assay_core::tables;
use assay_model::decl::ModelDecl;
use assay_model::prepare::gguf::GgufType;
use assay_model::prepare::{self, ExportFormat, ModelRecord};

/// An OpenAI-compatible server: at `server.url`, or llama-server launched
/// by assay.
#[derive(Debug)]
pub struct OpenAi;

/// An Ollama server through its native API.
#[derive(Debug)]
pub struct Ollama;

/// assay starts llama-server for this backend (an `openai` backend
/// without `server.url`).
fn launches(b: &BackendConfig) -> bool {
    b.server.as_ref().is_none_or(|s| s.url.is_none())
}

fn local_gguf(model: &ModelDecl) -> bool {
    model.path.as_deref().is_some_and(|p| p.ends_with(".gguf"))
}

impl Backend for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn summary(&self) -> &'static str {
        "An OpenAI-compatible server (`/v1/completions`,\n`/v1/chat/completions`, streamed): vLLM, TGI, SGLang, llama.cpp's\nllama-server. Without `server.url`, assay launches llama-server on\nthe model's GGUF export. Options under `server:`."
    }

    fn execution(&self) -> Execution {
        Execution::Server
    }

    fn options_section(&self) -> Option<&'static str> {
        Some("server")
    }

    fn check(&self, cx: &CheckContext<'_>, b: &BackendConfig, findings: &mut dyn Findings) {
        server_checks::check_openai(self, cx, b, findings);
    }

    /// Batch 1 (the server batches); a llama-server assay launches needs a
    /// prepared model to serve.
    fn runs(&self, b: &BackendConfig, model: &ModelDecl, scenario: &Scenario) -> bool {
        scenario.batch == 1 && !(launches(b) && model.server_only())
    }

    /// assay launches llama-server on the GGUF export of the dtype (a
    /// local GGUF model is served as it is).
    fn needs_export(&self, b: &BackendConfig, model: &ModelDecl) -> Option<ExportFormat> {
        (launches(b) && !local_gguf(model)).then_some(ExportFormat::Gguf(
            if b.dtype == Dtype::F16 {
                GgufType::F16
            } else {
                GgufType::Q8_0
            },
        ))
    }

    fn reads_prepared_model(&self, b: &BackendConfig, model: &ModelDecl) -> bool {
        launches(b) || !model.server_only()
    }

    fn resolve(&self, b: &BackendConfig, _stage: &MeasureStage) -> BackendConfig {
        let mut b = b.clone();
        let mut o = b.server.clone().unwrap_or_default();
        o.length_knobs = Some(o.knobs(DEFAULT_KNOBS));
        // Whom the client trusts changes nothing it measures.
        o.ca_file = None;
        if launches(&b) {
            o.launch = Some(o.launch.unwrap_or_default());
        }
        b.server = Some(o);
        b
    }

    /// The llama-server binary assay launches, by the version it reports.
    fn libraries(&self, stage: &MeasureStage) -> Vec<(String, String)> {
        if !launches(&stage.backend) {
            return Vec::new();
        }
        crate::server::launch::binary()
            .and_then(|b| crate::server::launch::version(&b).ok())
            .map(|version| ("llama-server".to_string(), version))
            .into_iter()
            .collect()
    }

    fn measure(
        &self,
        stage: &MeasureStage,
        ctx: &StageContext<'_>,
        inputs: &[Input],
    ) -> Result<Measured, StageError> {
        measure(stage, ctx, inputs, launches(&stage.backend))
    }
}

impl Backend for Ollama {
    fn name(&self) -> &'static str {
        "ollama"
    }

    fn summary(&self) -> &'static str {
        "An Ollama server through its native API (`/api/generate`,\n`/api/chat`, `/api/ps`, `/api/show`). Options under `server:`."
    }

    fn execution(&self) -> Execution {
        Execution::Server
    }

    fn options_section(&self) -> Option<&'static str> {
        Some("server")
    }

    fn check(&self, cx: &CheckContext<'_>, b: &BackendConfig, findings: &mut dyn Findings) {
        server_checks::check_ollama(self, cx, b, findings);
    }

    fn reads_prepared_model(&self, _b: &BackendConfig, model: &ModelDecl) -> bool {
        !model.server_only()
    }

    /// Ollama has no length knobs.
    fn resolve(&self, b: &BackendConfig, _stage: &MeasureStage) -> BackendConfig {
        let mut b = b.clone();
        let mut o = b.server.clone().unwrap_or_default();
        o.length_knobs = Some(o.knobs(&[]));
        o.ca_file = None;
        b.server = Some(o);
        b
    }

    fn measure(
        &self,
        stage: &MeasureStage,
        ctx: &StageContext<'_>,
        inputs: &[Input],
    ) -> Result<Measured, StageError> {
        measure(stage, ctx, inputs, false)
    }
}

/// Measure one server cell: this process is the client; `launch`: assay
/// starts llama-server on the model's GGUF for the cell.
fn measure(
    stage: &MeasureStage,
    ctx: &StageContext<'_>,
    inputs: &[Input],
    launch: bool,
) -> Result<Measured, StageError> {
    let started = unix_ms();
    let record: Option<ModelRecord> = match inputs.iter().find(|i| i.name == prepare::output::MODEL)
    {
        Some(input) => Some(tables::read_json(ctx, input)?),
        None => None,
    };
    // The GGUF a launched llama-server serves: the export, or a local
    // GGUF model's own file; and the dtype it holds.
    let gguf = match (stage.needs_export(), &record) {
        (Some(format), _) => {
            let input = find_input(inputs, format.output())?;
            Some((
                ctx.store.object_path(&input.digest),
                input.digest.to_hex(),
                stage.backend.dtype.as_str().to_string(),
            ))
        }
        (None, Some(r)) if launch && r.format() == Some(WeightsFormat::Gguf) => {
            r.weight_files().next().and_then(|f| {
                let path = f.path.as_ref()?;
                Some((path.into(), f.blake3.clone(), r.stored_dtype.clone()))
            })
        }
        _ => None,
    };
    let server_cell = ServerCell {
        cell: &stage.cell,
        backend: &stage.backend,
        served_model: stage.model.served_name(),
        scenario: &stage.scenario,
        boundary: &stage.boundary,
        vocab: record.as_ref().map(|r| r.info.vocab),
        seed: record
            .as_ref()
            .and_then(|r| r.declaration.as_ref())
            .map_or(0, |d| d.seed),
        nonce: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        gguf: gguf.as_ref().map(|(p, _, _)| p.clone()),
        served_dtype: gguf.as_ref().map(|(_, _, d)| d.clone()),
    };
    let measured = cell::measure(&server_cell, ctx).map_err(|f| {
        if ctx.cancelled() {
            StageError::Cancelled
        } else if f.record.is_null() {
            StageError::Failed(f.message)
        } else {
            StageError::FailedWithRecord {
                message: f.message,
                record: serde_json::to_vec_pretty(&f.record).unwrap_or_default(),
            }
        }
    })?;
    let server = measured
        .measured
        .attribution
        .server
        .clone()
        .unwrap_or_default();
    let weights = match (&record, &gguf) {
        (Some(r), Some((_, hash, dtype))) => Some(ModelIdentity {
            source: r.source.clone(),
            model_digest: r.model_digest.clone(),
            weights_format: WeightsFormat::Gguf.as_str().into(),
            weights_blake3: hash.clone(),
            stored_dtype: dtype.clone(),
        }),
        _ => server.digest.as_ref().map(|digest| ModelIdentity {
            source: stage.backend.kind.to_string(),
            model_digest: digest.clone(),
            weights_format: server.format.clone().unwrap_or_else(|| "unknown".into()),
            weights_blake3: String::new(),
            stored_dtype: server.quantization.clone().unwrap_or_default(),
        }),
    };
    Ok(Measured {
        measurement: measured.measured,
        model_info: record.map(|r| r.info),
        weights,
        started_unix_ms: Some(started),
        requests: Some(measured.requests),
    })
}
