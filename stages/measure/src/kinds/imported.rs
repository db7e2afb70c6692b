//! `imported`: results another tool measured (llama-bench, vLLM's bench
//! serve, AIPerf, GuideLLM, optimum-benchmark), read from its file as
//! measure nodes. Nothing runs here: the file is read and checked at spec
//! load, each (model, scenario) pair the file holds records for is a cell,
//! and the cell's tables are the file's timings at the grain it holds
//! (`imported/`, docs/importers.md).

use serde_json::{Value, json};

use crate::environment::Environment;
use crate::harness::{Attribution, CellMeasurement};
use crate::imported::cell::{self, Selection};
use crate::imported::{self, Import, ImportedFacts, READER_VERSION, Timings};
use crate::stage::MeasureStage;
use crate::stage::registry::{Backend, CheckContext, Execution, Findings, Measured};
use assay_core::config::imported::{ImportFormat, ImportedOptions};
use assay_core::config::{BackendConfig, Scenario};
use assay_core::stage::{Input, StageContext, StageError};
use assay_model::decl::ModelDecl;

#[derive(Debug)]
pub struct Imported;

impl Backend for Imported {
    fn name(&self) -> &'static str {
        "imported"
    }

    fn summary(&self) -> &'static str {
        "Results another tool measured (llama-bench JSON/JSONL, vLLM bench serve\n--save-result, AIPerf profile_export.jsonl, GuideLLM's report JSON,\noptimum-benchmark's benchmark.json), read from `imported.file`:\nits cells are the spec's (model, scenario) pairs the file holds records\nfor; evidence `imported`, the tool and its recorded machine in the manifest."
    }

    fn execution(&self) -> Execution {
        Execution::Imported
    }

    fn options_section(&self) -> Option<&'static str> {
        Some("imported")
    }

    /// The file was read at spec load (a bad file is reported there, at
    /// `file`); here: the section is given, the `models` map names spec
    /// models and file models, every scenario has records, and no pair
    /// has more than one.
    fn check(&self, cx: &CheckContext<'_>, b: &BackendConfig, findings: &mut dyn Findings) {
        let Some(opts) = &b.imported else {
            findings.at_key(
                &cx.at(""),
                "a backend of kind imported needs an `imported:` section (file, format)".into(),
            );
            return;
        };
        // A file that did not load has its error from the spec load.
        let Ok(import) = imported::load_checked(opts) else {
            return;
        };
        let held = held_models(&import);
        for (spec_model, file_model) in &opts.models {
            if !cx.models.iter().any(|m| &m.name == spec_model) {
                findings.at_key(
                    &cx.at(&format!("/imported/models/{spec_model}")),
                    format!("no model named {spec_model:?} in this spec"),
                );
            }
            if !held.contains(file_model) {
                findings.at_value(
                    &cx.at(&format!("/imported/models/{spec_model}")),
                    format!(
                        "{} holds no records of {file_model:?} (it holds: {})",
                        opts.file,
                        held.join(", ")
                    ),
                );
            }
        }
        let models: Vec<&ModelDecl> = cx
            .models
            .iter()
            .filter(|m| held.iter().any(|h| h == cell::file_model(opts, &m.name)))
            .collect();
        if models.is_empty() {
            findings.at_value(
                &cx.at("/imported/file"),
                format!(
                    "no model of this spec is in {} (it holds: {}); map spec models to them with `models: {{spec_name: name_in_file}}`",
                    opts.file,
                    held.join(", ")
                ),
            );
            return;
        }
        for s in cx.scenarios {
            let mut any = false;
            for m in &models {
                match cell::select(&import, cell::file_model(opts, &m.name), s) {
                    Selection::Ambiguous(all) => findings.at_value(
                        &cx.at("/imported/file"),
                        format!(
                            "{}: {} all fit model {:?} in scenario {:?}: one cell takes one record; split the file",
                            opts.file,
                            all.iter()
                                .map(|r| r.loc.to_string().trim_end_matches(": ").to_string())
                                .collect::<Vec<_>>()
                                .join(", "),
                            m.name,
                            s.name
                        ),
                    ),
                    sel => any |= sel.runs(),
                }
            }
            if !any {
                findings.at_value(
                    &cx.at("/imported/file"),
                    format!(
                        "{} has no records for scenario {:?} (prompt_tokens {}, gen_tokens {}, batch {}, {}); it holds: {}",
                        opts.file,
                        s.name,
                        s.prompt_tokens,
                        s.gen_tokens,
                        s.batch,
                        match cell::concurrency(s) {
                            Some(c) => format!("concurrency {c}"),
                            None => "an open-loop load, which no file records".into(),
                        },
                        workloads(&import)
                    ),
                );
            }
        }
    }

    /// The pairs the file holds records for.
    fn runs(&self, b: &BackendConfig, model: &ModelDecl, scenario: &Scenario) -> bool {
        let Some(opts) = &b.imported else {
            return false;
        };
        imported::load_checked(opts).is_ok_and(|import| {
            cell::select(&import, cell::file_model(opts, &model.name), scenario).runs()
        })
    }

    fn reads_prepared_model(&self, _b: &BackendConfig, _model: &ModelDecl) -> bool {
        false
    }

    /// The numbers depend on the file (its digest, in the backend's
    /// options) and on how assay reads it, not on this machine.
    fn key_environment(&self, _stage: &MeasureStage) -> Option<Value> {
        Some(json!({ "imported_reader_version": READER_VERSION }))
    }

    /// The recorded machine is in the manifest's `imported`.
    fn manifest_environment(&self, _stage: &MeasureStage) -> Option<Environment> {
        None
    }

    fn imported(&self, stage: &MeasureStage) -> Result<Option<ImportedFacts>, StageError> {
        Ok(Some(build(stage)?.1.facts))
    }

    fn measure(
        &self,
        stage: &MeasureStage,
        _ctx: &StageContext<'_>,
        _inputs: &[Input],
    ) -> Result<Measured, StageError> {
        let (attribution, built) = build(stage)?;
        Ok(Measured {
            measurement: CellMeasurement {
                events: built.events,
                runs: built.runs,
                outputs: Vec::new(),
                texts: Vec::new(),
                attribution,
                power: None,
            },
            model_info: stage
                .model
                .synthetic
                .as_ref()
                .map(|a| a.info(&stage.model.name)),
            weights: None,
            started_unix_ms: None,
            requests: Some(built.requests),
        })
    }
}

fn options(stage: &MeasureStage) -> Result<&ImportedOptions, StageError> {
    stage
        .backend
        .imported
        .as_ref()
        .ok_or_else(|| StageError::Failed("an imported backend without `imported:`".into()))
}

/// The cell's tables and facts, and what the file says ran.
fn build(stage: &MeasureStage) -> Result<(Attribution, cell::Built), StageError> {
    let opts = options(stage)?;
    let import = imported::load_checked(opts).map_err(StageError::Failed)?;
    let file_model = cell::file_model(opts, &stage.model.name);
    let selection = cell::select(&import, file_model, &stage.scenario);
    let built = cell::build(
        &stage.cell,
        opts,
        &import,
        file_model,
        &stage.scenario,
        &selection,
    )
    .map_err(StageError::Failed)?;
    Ok((attribution(stage, &import, &selection), built))
}

/// What ran, as far as the file says: llama-bench records its threads,
/// its compute backends and the model's quantisation, optimum-benchmark
/// its device and torch dtype, so a spec that declares otherwise shows
/// drift; a client-side tool does not see the server's device, dtype or
/// threads, which stay as the spec declares.
fn attribution(stage: &MeasureStage, import: &Import, selection: &Selection<'_>) -> Attribution {
    let b = &stage.backend;
    let mut a = Attribution::plain(
        &b.device,
        b.dtype.as_str(),
        b.threads,
        import.tool,
        &import.tool_version,
    );
    if import.format == ImportFormat::LlamaBench
        && let Selection::Tests {
            prompt,
            generate,
            combined,
        } = selection
        && let Some(r) = combined.or(*prompt).or(*generate)
    {
        let field = |k: &str| r.config.get(k);
        if let Some(t) = field("n_threads").and_then(Value::as_u64) {
            a.threads = t as u32;
        }
        if let Some(dtype) = field("model_type")
            .and_then(Value::as_str)
            .and_then(llama_cpp_dtype)
        {
            a.dtype = dtype.into();
        }
        let gpu_layers = field("n_gpu_layers").and_then(Value::as_u64).unwrap_or(0);
        let backends = import.machine.get("backends").and_then(Value::as_str);
        if gpu_layers == 0 || backends == Some("CPU") {
            a.device = "cpu".into();
        }
    }
    // optimum-benchmark runs the model in process and records its device
    // and torch dtype.
    if import.format == ImportFormat::OptimumBenchmark
        && let Selection::Requests(r) = selection
        && let Some(backend) = r.config.get("backend")
    {
        if let Some(device) = backend.get("device").and_then(Value::as_str) {
            a.device = device.into();
        }
        if let Some(dtype) = backend
            .get("torch_dtype")
            .and_then(Value::as_str)
            .and_then(torch_dtype)
        {
            a.dtype = dtype.into();
        }
    }
    a
}

/// The spec dtype of a torch dtype name as optimum-benchmark records it
/// (`float32`, `torch.float16`, `bfloat16`); `None` for others (`auto`,
/// unset), which leave the declared dtype.
fn torch_dtype(name: &str) -> Option<&'static str> {
    match name.trim_start_matches("torch.") {
        "float32" | "float" => Some("f32"),
        "float16" | "half" => Some("f16"),
        "bfloat16" => Some("bf16"),
        _ => None,
    }
}

/// The spec dtype of llama.cpp's file type, the end of llama-bench's
/// `model_type` (`llama 7B Q4_K - Medium`, `qwen2 0.5B all F32`);
/// `None` for a type the spec has no dtype for, which then stays as
/// declared (no drift claimed from a name assay cannot map).
fn llama_cpp_dtype(model_type: &str) -> Option<&'static str> {
    let t = model_type.trim();
    let t = t.strip_suffix("(guessed)").unwrap_or(t).trim_end();
    const NAMES: [(&str, &str); 8] = [
        ("all F32", "f32"),
        ("BF16", "bf16"),
        ("F16", "f16"),
        ("Q8_0", "q8_0"),
        ("Q4_0", "q4_0"),
        ("Q4_K - Medium", "q4_k_m"),
        ("Q5_K - Medium", "q5_k_m"),
        ("Q6_K", "q6_k"),
    ];
    NAMES.iter().find_map(|(name, dtype)| {
        let head = t.strip_suffix(name)?;
        // A whole word: `BF16` must not match as `F16`.
        (head.is_empty() || head.ends_with(' ')).then_some(*dtype)
    })
}

/// The models a file holds, in order of first appearance.
pub fn held_models(import: &Import) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in &import.records {
        if !out.contains(&r.model) {
            out.push(r.model.clone());
        }
    }
    out
}

/// The workloads of a file, one phrase each, for errors and `assay import`.
pub fn workloads(import: &Import) -> String {
    let mut seen: Vec<String> = Vec::new();
    for r in &import.records {
        let w = match &r.timings {
            Timings::Repetitions(_) => match (r.prompt_tokens, r.gen_tokens) {
                (p, 0) => format!("pp{p}"),
                (0, g) => format!("tg{g}"),
                (p, g) => format!("pp{p}+tg{g}"),
            },
            Timings::Requests(q) => format!(
                "prompt {} gen {} concurrency {} ({} requests)",
                r.prompt_tokens,
                r.gen_tokens,
                r.concurrency,
                q.len()
            ),
            Timings::Iterations { generate, .. } => format!(
                "prompt {} gen {} {} ({} calls)",
                r.prompt_tokens,
                r.gen_tokens,
                if r.concurrency == 1 {
                    "batch 1"
                } else {
                    "batch or beams above 1"
                },
                generate.len()
            ),
        };
        let w = match &r.timings {
            Timings::Repetitions(s) if r.depth > 0 => {
                format!("{w} at depth {} ({} repetitions)", r.depth, s.len())
            }
            Timings::Repetitions(s) => format!("{w} ({} repetitions)", s.len()),
            Timings::Requests(_) | Timings::Iterations { .. } => w,
        };
        let w = format!("{}: {w}", r.model);
        if !seen.contains(&w) {
            seen.push(w);
        }
    }
    seen.join("; ")
}

#[cfg(test)]
mod tests {
    use super::{llama_cpp_dtype, torch_dtype};

    #[test]
    fn torch_dtypes_map_to_spec_dtypes() {
        assert_eq!(torch_dtype("float32"), Some("f32"));
        assert_eq!(torch_dtype("torch.float16"), Some("f16"));
        assert_eq!(torch_dtype("bfloat16"), Some("bf16"));
        assert_eq!(torch_dtype("auto"), None);
    }

    #[test]
    fn llama_cpp_file_types_map_to_spec_dtypes() {
        for (model_type, dtype) in [
            ("qwen2 0.5B all F32", Some("f32")),
            ("llama 7B F16", Some("f16")),
            ("llama 7B BF16", Some("bf16")),
            ("llama 7B Q8_0", Some("q8_0")),
            ("llama 7B Q4_0", Some("q4_0")),
            ("llama 7B Q4_K - Medium", Some("q4_k_m")),
            ("qwen2 1.5B Q5_K - Medium", Some("q5_k_m")),
            ("llama 7B Q6_K", Some("q6_k")),
            ("llama 7B Q4_K - Medium (guessed)", Some("q4_k_m")),
            // Not in the spec's Dtype: left as declared.
            ("llama 7B Q4_K - Small", None),
            ("llama 7B Q2_K - Medium", None),
            ("llama 7B IQ4_XS - 4.25 bpw", None),
            ("", None),
        ] {
            assert_eq!(llama_cpp_dtype(model_type), dtype, "{model_type}");
        }
    }
}
