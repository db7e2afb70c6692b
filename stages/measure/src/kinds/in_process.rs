//! What every in-process kind shares: measuring a cell in a worker process
//! over the prepared model's weights, and the spec checks of a library that
//! runs on this machine's cores.

use crate::candle::WeightFiles;
use crate::harness::{self, TokenizerFacts};
use crate::stage::registry::{
    Backend, CheckContext, Evaluation, Findings, Generated, GeneratedText, Measured,
};
use crate::stage::{MeasureStage, ModelIdentity, unix_ms};
use crate::text::{self, ModelTokenizer, prompts};
use crate::worker::{self, TextPrompts, WorkerRequest};
use assay_core::config::{BackendConfig, Boundary, Dtype, PromptSource, Scenario};
use assay_core::domain::{ModelSource, WeightsFormat};
use assay_core::inputs::find_input;
use assay_core::stage::{Input, StageContext, StageError};
use assay_core::tables;
use assay_model::prepare::{self, ExportFormat, ModelRecord};

/// Measure one cell of an in-process kind in a worker process: the weight
/// files it reads are the export its entry asks for (`needs_export`), else
/// the prepared model's own (a GGUF file, or safetensors shards).
pub fn measure(
    kind: &'static dyn Backend,
    stage: &MeasureStage,
    ctx: &StageContext<'_>,
    inputs: &[Input],
) -> Result<Measured, StageError> {
    let started = unix_ms();
    let (record, files, weights) = weights(stage.needs_export(), ctx, inputs)?;
    let seed = record.declaration.as_ref().map_or(0, |d| d.seed);
    let text = if stage.boundary.tokenizes() {
        Some(text_prompts(stage, ctx, &record)?)
    } else {
        None
    };
    let request = WorkerRequest {
        cell: stage.cell.clone(),
        info: record.info.clone(),
        backend: stage.backend.clone(),
        files,
        scenario: stage.scenario.clone(),
        boundary: stage.boundary.clone(),
        prompts: match text {
            Some(_) => Vec::new(),
            None => harness::prompt_ids(&stage.scenario, record.info.vocab, seed),
        },
        text,
        energy: stage.energy,
        generate: None,
    };
    let mut measurement = worker::measure_isolated(kind, &request, ctx)?;
    if let Some(t) = &request.text {
        measurement.attribution.tokenizer = Some(TokenizerFacts::of(&t.tokenizer_json));
    }
    Ok(Measured {
        measurement,
        model_info: Some(record.info),
        weights: Some(weights),
        started_unix_ms: Some(started),
        requests: None,
    })
}

/// The prepared model's record, the weight files a cell reads (the export
/// its entry asks for, else the prepared model's own: a GGUF file, or
/// safetensors shards) and their identity for the manifest.
pub(crate) fn weights(
    export: Option<ExportFormat>,
    ctx: &StageContext<'_>,
    inputs: &[Input],
) -> Result<(ModelRecord, WeightFiles, ModelIdentity), StageError> {
    let record_input = find_input(inputs, prepare::output::MODEL)?;
    let record: ModelRecord = tables::read_json(ctx, record_input)?;
    let (files, format, weights_blake3, stored_dtype) = match export {
        Some(export) => {
            let input = find_input(inputs, export.output())?;
            let path = ctx.store.object_path(&input.digest);
            let hash = input.digest.to_hex();
            match export {
                ExportFormat::Onnx => (
                    WeightFiles::Onnx(path),
                    WeightsFormat::Onnx,
                    hash,
                    record.stored_dtype.clone(),
                ),
                ExportFormat::Gguf(ty) => (
                    WeightFiles::Gguf(path),
                    WeightsFormat::Gguf,
                    hash,
                    ty.as_str().to_string(),
                ),
            }
        }
        None => prepared_files(ctx, inputs, &record, record_input)?,
    };
    let identity = ModelIdentity {
        source: record.source.clone(),
        model_digest: record.model_digest.clone(),
        weights_format: format.as_str().into(),
        weights_blake3,
        stored_dtype,
    };
    Ok((record, files, identity))
}

/// An evaluation's prompts through an in-process kind: tokenised here with
/// the model's own tokenizer, generated greedily in a worker process over
/// the weights this backend's cells read, detokenised here.
pub fn generate(
    kind: &'static dyn Backend,
    job: &Evaluation<'_>,
    ctx: &StageContext<'_>,
    inputs: &[Input],
) -> Result<Generated, StageError> {
    let (record, files, weights) = weights(kind.needs_export(job.backend, job.model), ctx, inputs)?;
    let tok = ModelTokenizer::from_json(&text::tokenizer_json(ctx, &record)?)
        .map_err(StageError::Failed)?;
    let mut ids = Vec::with_capacity(job.prompts.len());
    for (i, prompt) in job.prompts.iter().enumerate() {
        let encoded = tok.encode(prompt).map_err(StageError::Failed)?;
        let limit = record.info.max_positions as usize;
        let needed = encoded.len() + job.max_tokens.get(i).copied().unwrap_or(1) as usize;
        if encoded.is_empty() || needed > limit {
            return Err(StageError::Failed(format!(
                "prompt {} of the evaluation tokenises to {} tokens with model {}'s tokenizer; with its {} generated tokens that must fit the model's {limit} positions",
                i + 1,
                encoded.len(),
                record.info.name,
                job.max_tokens.get(i).copied().unwrap_or(1),
            )));
        }
        ids.push(encoded);
    }
    let longest = ids.iter().map(Vec::len).max().unwrap_or(1) as u32;
    let request = WorkerRequest {
        cell: format!("evaluate/{}/{}", job.backend.name, job.model.name),
        info: record.info.clone(),
        backend: job.backend.clone(),
        files,
        // Only its lengths are read: the KV cache the longest item needs.
        scenario: Scenario {
            name: "evaluate".into(),
            prompt_tokens: longest,
            batch: 1,
            gen_tokens: job.max_tokens.iter().copied().max().unwrap_or(1),
            load: None,
        },
        boundary: Boundary::once(),
        prompts: ids,
        text: None,
        energy: None,
        generate: Some(job.max_tokens.to_vec()),
    };
    let generation = worker::generate_isolated(kind, &request, ctx)?;
    let mut outputs = Vec::with_capacity(generation.tokens.len());
    for (prompt, tokens) in request.prompts.iter().zip(&generation.tokens) {
        outputs.push(GeneratedText {
            prompt_tokens: prompt.len() as u32,
            output_tokens: tokens.len() as u32,
            output: tok.decode(tokens).map_err(StageError::Failed)?,
        });
    }
    Ok(Generated {
        outputs,
        attribution: generation.attribution,
        weights,
    })
}

/// The cell's text prompts, one per sequence, and the tokenizer that runs
/// them: generated to the scenario's length with the model's tokenizer,
/// or the spec's file read at load (sequence `i` takes prompt `i`,
/// cycling), each of which must reach `prompt_tokens` tokens.
fn text_prompts(
    stage: &MeasureStage,
    ctx: &StageContext<'_>,
    record: &ModelRecord,
) -> Result<TextPrompts, StageError> {
    let json = text::tokenizer_json(ctx, record)?;
    let tok = ModelTokenizer::from_json(&json).map_err(StageError::Failed)?;
    let spec = stage.boundary.text_prompts();
    let scenario = &stage.scenario;
    let mut texts = Vec::with_capacity(scenario.batch as usize);
    match spec.source() {
        PromptSource::Generated => {
            let words = prompts::word_list(&tok).map_err(StageError::Failed)?;
            for seq in 0..scenario.batch {
                let (text, _) = prompts::generate(
                    &tok,
                    &words,
                    scenario.prompt_tokens,
                    spec.seed.unwrap_or(0),
                    seq,
                )
                .map_err(StageError::Failed)?;
                texts.push(text);
            }
        }
        PromptSource::File => {
            let file = spec.file.as_deref().unwrap_or("prompts");
            if spec.texts.is_empty() {
                return Err(StageError::Failed(format!(
                    "{file}: the prompts file was not read with the spec"
                )));
            }
            for seq in 0..scenario.batch as usize {
                let k = seq % spec.texts.len();
                let text = &spec.texts[k];
                let n = tok.encode(text).map_err(StageError::Failed)?.len();
                if n < scenario.prompt_tokens as usize {
                    return Err(StageError::Failed(format!(
                        "{file}: prompt {} tokenises to {n} tokens with model {}'s tokenizer; scenario {} needs at least {} (longer prompts are cut to it)",
                        k + 1,
                        record.info.name,
                        scenario.name,
                        scenario.prompt_tokens
                    )));
                }
                texts.push(text.clone());
            }
        }
    }
    Ok(TextPrompts {
        texts,
        tokenizer_json: json,
    })
}

/// The prepared model's own weights: a local GGUF file, the synthetic
/// model's generated safetensors, or a local checkpoint's shards.
fn prepared_files(
    ctx: &StageContext<'_>,
    inputs: &[Input],
    record: &ModelRecord,
    record_input: &Input,
) -> Result<(WeightFiles, WeightsFormat, String, String), StageError> {
    let stored = record.stored_dtype.clone();
    let weights: Vec<_> = record.weight_files().collect();
    let paths: Vec<std::path::PathBuf> = weights
        .iter()
        .filter_map(|f| f.path.as_ref().map(Into::into))
        .collect();
    // One file is identified by its own hash; shards by the model's.
    let hash = if weights.len() == 1 {
        weights[0].blake3.clone()
    } else {
        record.model_digest.clone()
    };
    if record.format() == Some(WeightsFormat::Gguf) {
        let path = paths.into_iter().next().ok_or_else(|| {
            StageError::bad_input(record_input, "GGUF model record without a file")
        })?;
        Ok((WeightFiles::Gguf(path), WeightsFormat::Gguf, hash, stored))
    } else if record.source() == Some(ModelSource::Synthetic) {
        let input = find_input(inputs, prepare::output::WEIGHTS)?;
        Ok((
            WeightFiles::Safetensors(vec![ctx.store.object_path(&input.digest)]),
            WeightsFormat::Safetensors,
            input.digest.to_hex(),
            stored,
        ))
    } else {
        Ok((
            WeightFiles::Safetensors(paths),
            WeightsFormat::Safetensors,
            hash,
            stored,
        ))
    }
}

/// The device is one the kind can be asked for (`choices` lists them for
/// the message). Returns whether it is.
pub fn check_device(
    cx: &CheckContext<'_>,
    b: &BackendConfig,
    allowed: &[&str],
    choices: &str,
    findings: &mut dyn Findings,
) -> bool {
    let ok = allowed.contains(&b.device.as_str());
    if !ok {
        findings.at_value(
            &cx.at("/device"),
            format!(
                "{} can be asked for {}; device {:?} is not available",
                b.kind, choices, b.device
            ),
        );
    }
    ok
}

/// Kinds that run the f32 safetensors checkpoint only.
pub fn check_f32(cx: &CheckContext<'_>, b: &BackendConfig, findings: &mut dyn Findings) {
    if b.dtype != Dtype::F32 {
        findings.at_value(
            &cx.at("/dtype"),
            format!(
                "{} runs the f32 checkpoint only; dtype {} is not supported",
                b.kind,
                b.dtype.as_str()
            ),
        );
    }
}

/// Kinds that run safetensors checkpoints: one error per local GGUF model,
/// at the model.
pub fn check_safetensors_models(
    cx: &CheckContext<'_>,
    b: &BackendConfig,
    findings: &mut dyn Findings,
) {
    for (j, m) in cx.models.iter().enumerate() {
        if m.path.as_deref().is_some_and(|p| p.ends_with(".gguf")) {
            findings.at_value(
                &format!("/models/{j}/path"),
                format!(
                    "backend {:?} ({}) runs safetensors checkpoints; model {:?} is a GGUF file",
                    b.name, b.kind, m.name
                ),
            );
        }
    }
}

/// Refuses a device other than the CPU when the worker opens a kind that
/// runs only there (the spec checks said so first; this guards library
/// users).
pub fn cpu_only(b: &BackendConfig) -> Result<(), String> {
    if b.device == "cpu" {
        Ok(())
    } else {
        Err(format!(
            "backend {}: {} runs on the CPU only here; device {:?} is not available",
            b.name, b.kind, b.device
        ))
    }
}
