//! Model preparation. `prepare/<model>` materialises a synthetic
//! architecture as a Hugging Face style checkpoint (or fingerprints and
//! hashes a local model); `export/<model>/gguf-<type>` writes the same
//! weights as GGUF. Everything is stored by digest: the same declaration
//! gives the same bytes, so the same keys downstream.

pub mod gguf;
pub mod local;
pub mod onnx;
pub mod synthetic;

use std::path::{Path, PathBuf};

use assay_store::Digest;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::decl::{ModelDecl, ModelInfo, SyntheticArch};
use crate::weights::SafetensorsSource;
use assay_core::domain::{FileRole, ModelSource, WeightsFormat};
use assay_core::stage::{Input, MachineUse, Outputs, Stage, StageContext, StageError};
use assay_core::tables::{self, to_json};
use gguf::GgufType;
use local::LocalLayout;

pub const PREPARE_VERSION: u32 = 1;
pub const EXPORT_VERSION: u32 = 1;

/// One file of a prepared model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ModelFile {
    /// `weights`, `config`, `tokenizer`.
    pub role: String,
    pub name: String,
    pub bytes: u64,
    /// blake3 of the content (for stored files, the store digest).
    pub blake3: String,
    /// Absolute path of a local model's file; absent for stored files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The registry record of a prepared model (the seed's Appendix BC model
/// registry: parameters, layers, hidden size, heads, KV heads, dtype).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ModelRecord {
    pub info: ModelInfo,
    /// `synthetic` or `local`.
    pub source: String,
    /// `safetensors` or `gguf`.
    pub format: String,
    /// Storage dtype of most weights (`f32`, `bf16`, `q8_0`, ...).
    pub stored_dtype: String,
    /// Digest over the weight files: the model's identity in manifests.
    pub model_digest: String,
    pub files: Vec<ModelFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declaration: Option<SyntheticArch>,
}

impl ModelFile {
    /// `None` for a role this build does not know (a newer record).
    pub fn role(&self) -> Option<FileRole> {
        FileRole::parse(&self.role)
    }
}

impl ModelRecord {
    pub fn local_path(&self, role: FileRole) -> Vec<PathBuf> {
        self.files
            .iter()
            .filter(|f| f.role() == Some(role))
            .filter_map(|f| f.path.as_ref().map(PathBuf::from))
            .collect()
    }

    /// The weight files (shards, or the one GGUF file).
    pub fn weight_files(&self) -> impl Iterator<Item = &ModelFile> {
        self.files
            .iter()
            .filter(|f| f.role() == Some(FileRole::Weights))
    }

    pub fn source(&self) -> Option<ModelSource> {
        ModelSource::parse(&self.source)
    }

    pub fn format(&self) -> Option<WeightsFormat> {
        WeightsFormat::parse(&self.format)
    }
}

/// `prepare/<model>`.
#[derive(Debug, Clone)]
pub struct PrepareStage {
    pub model: ModelDecl,
    /// Directory local model paths are relative to (the spec's).
    pub base_dir: PathBuf,
}

impl PrepareStage {
    pub fn local_path(&self) -> Option<PathBuf> {
        self.model.path.as_ref().map(|p| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                self.base_dir.join(p)
            }
        })
    }
}

/// The outputs of a prepare node: the model record, and for a synthetic
/// model the checkpoint files it generated.
pub mod output {
    pub const MODEL: &str = "model";
    pub const WEIGHTS: &str = "weights";
    pub const CONFIG: &str = "config";
    pub const TOKENIZER: &str = "tokenizer";
}

fn failed(e: impl std::fmt::Display) -> StageError {
    StageError::Failed(e.to_string())
}

impl Stage for PrepareStage {
    fn kind(&self) -> &'static str {
        "prepare"
    }

    fn version(&self) -> u32 {
        PREPARE_VERSION
    }

    fn params(&self) -> Result<Value, StageError> {
        Ok(match (&self.model.synthetic, self.local_path()) {
            (Some(a), _) => json!({ "name": self.model.name, "synthetic": a.resolved() }),
            (None, Some(p)) => json!({ "name": self.model.name, "path": p.to_string_lossy() }),
            (None, None) => json!({ "name": self.model.name }),
        })
    }

    /// A local model's files as they are now (size, mtime): an edited model
    /// is prepared again, an untouched one is not rehashed.
    fn environment(&self) -> Option<Value> {
        self.local_path()
            .map(|p| json!({ "files": local::fingerprint(&p) }))
    }

    fn outputs(&self) -> Vec<&'static str> {
        if self.model.synthetic.is_some() {
            vec![
                output::CONFIG,
                output::MODEL,
                output::TOKENIZER,
                output::WEIGHTS,
            ]
        } else {
            vec![output::MODEL]
        }
    }

    /// Generating weights is CPU-heavy: never beside a measurement.
    fn machine(&self) -> MachineUse {
        MachineUse::Exclusive {
            device: "cpu".into(),
        }
    }

    fn run(&self, ctx: &StageContext<'_>, _inputs: &[Input]) -> Result<Outputs, StageError> {
        let name = &self.model.name;
        let mut out = Outputs::new();
        let record = if let Some(arch) = &self.model.synthetic {
            ctx.progress("generating weights");
            let weights = synthetic::safetensors(arch).map_err(failed)?;
            let config = to_json(&synthetic::config_json(arch))?;
            let tokenizer = to_json(&synthetic::tokenizer_json(arch.vocab))?;
            let file = |role: FileRole, file: &str, bytes: &[u8]| ModelFile {
                role: role.as_str().into(),
                name: file.into(),
                bytes: bytes.len() as u64,
                blake3: Digest::of(bytes).to_hex(),
                path: None,
            };
            let files = vec![
                file(FileRole::Config, "config.json", &config),
                file(FileRole::Weights, "model.safetensors", &weights),
                file(FileRole::Tokenizer, "tokenizer.json", &tokenizer),
            ];
            let record = ModelRecord {
                info: arch.info(name),
                source: ModelSource::Synthetic.as_str().into(),
                format: WeightsFormat::Safetensors.as_str().into(),
                stored_dtype: "f32".into(),
                model_digest: Digest::of(&weights).to_hex(),
                files,
                declaration: Some(arch.resolved()),
            };
            out.insert(output::WEIGHTS.into(), weights);
            out.insert(output::CONFIG.into(), config);
            out.insert(output::TOKENIZER.into(), tokenizer);
            record
        } else {
            let path = self
                .local_path()
                .ok_or_else(|| failed(format!("model {name} has neither synthetic nor path")))?;
            ctx.progress("hashing local model");
            local_record(name, &path)?
        };
        out.insert(output::MODEL.into(), to_json(&record)?);
        Ok(out)
    }
}

fn local_record(name: &str, path: &Path) -> Result<ModelRecord, StageError> {
    let layout = local::layout(path).map_err(failed)?;
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut files = Vec::new();
    let mut weights_hash = blake3::Hasher::new();
    for f in layout.files() {
        let (hash, bytes) = local::hash_file(&f).map_err(failed)?;
        let fname = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let role = if fname == "config.json" {
            FileRole::Config
        } else if fname == "tokenizer.json" {
            FileRole::Tokenizer
        } else {
            weights_hash.update(hash.as_bytes());
            FileRole::Weights
        };
        files.push(ModelFile {
            role: role.as_str().into(),
            name: fname,
            bytes,
            blake3: hash,
            path: Some(abs(&f).to_string_lossy().into_owned()),
        });
    }
    let (info, format, stored) = match &layout {
        LocalLayout::HfDir { config, shards, .. } => {
            let (info, stored) = local::hf_model_info(name, config, shards).map_err(failed)?;
            (info, WeightsFormat::Safetensors, stored)
        }
        LocalLayout::Gguf(p) => {
            let bytes = std::fs::read(p).map_err(|e| failed(format!("{}: {e}", p.display())))?;
            let src = crate::weights::GgufSource::new(&bytes)
                .map_err(|e| failed(format!("{}: {e}", p.display())))?;
            let info = gguf::model_info(name, src.content())
                .map_err(|e| failed(format!("{}: {e}", p.display())))?;
            use crate::weights::WeightSource;
            (info, WeightsFormat::Gguf, src.weight_type())
        }
    };
    Ok(ModelRecord {
        info,
        source: ModelSource::Local.as_str().into(),
        format: format.as_str().into(),
        stored_dtype: stored,
        model_digest: weights_hash.finalize().to_hex().to_string(),
        files,
        declaration: None,
    })
}

/// What an export node writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExportFormat {
    /// GGUF for llama.cpp and candle's quantised path.
    Gguf(GgufType),
    /// ONNX with the KV cache as graph inputs and outputs, for ONNX Runtime.
    Onnx,
}

impl ExportFormat {
    /// The node id's last part: `gguf-q8_0`, `onnx`.
    pub fn id(self) -> String {
        match self {
            ExportFormat::Gguf(ty) => format!("gguf-{}", ty.as_str()),
            ExportFormat::Onnx => "onnx".into(),
        }
    }

    /// The export node's output name.
    pub fn output(self) -> &'static str {
        match self {
            ExportFormat::Gguf(_) => "gguf",
            ExportFormat::Onnx => "onnx",
        }
    }
}

/// `export/<model>/<format>`: the prepared weights as GGUF or ONNX.
#[derive(Debug, Clone)]
pub struct ExportStage {
    pub model: String,
    pub format: ExportFormat,
}

impl Stage for ExportStage {
    fn kind(&self) -> &'static str {
        "export"
    }

    fn version(&self) -> u32 {
        EXPORT_VERSION
    }

    fn params(&self) -> Result<Value, StageError> {
        Ok(match self.format {
            ExportFormat::Gguf(ty) => json!({ "model": self.model, "format": "gguf", "type": ty }),
            ExportFormat::Onnx => json!({
                "model": self.model,
                "format": "onnx",
                "opset": onnx::OPSET,
            }),
        })
    }

    fn outputs(&self) -> Vec<&'static str> {
        vec![self.format.output()]
    }

    /// Writing an export is CPU-heavy: never beside a measurement.
    fn machine(&self) -> MachineUse {
        MachineUse::Exclusive {
            device: "cpu".into(),
        }
    }

    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError> {
        let record_input = assay_core::inputs::find_input(inputs, output::MODEL)?;
        let record: ModelRecord = tables::read_json(ctx, record_input)?;
        if record.format() != Some(WeightsFormat::Safetensors) {
            return Err(failed(format!(
                "model {} is {}; assay exports GGUF and ONNX from safetensors only",
                self.model, record.format
            )));
        }
        ctx.progress(&format!("writing {}", self.format.id()));
        let shards: Vec<Vec<u8>> = match inputs.iter().find(|i| i.name == output::WEIGHTS) {
            Some(w) => vec![ctx.read(w)?],
            None => record
                .local_path(FileRole::Weights)
                .iter()
                .map(|p| std::fs::read(p).map_err(|e| failed(format!("{}: {e}", p.display()))))
                .collect::<Result<_, _>>()?,
        };
        let refs: Vec<&[u8]> = shards.iter().map(Vec::as_slice).collect();
        let bytes = match self.format {
            ExportFormat::Gguf(ty) => {
                let src = SafetensorsSource::new(record.info.arch, candle_core::DType::F32, &refs)
                    .map_err(|e| StageError::bad_input(record_input, e))?;
                gguf::export(&record.info, &self.model, &src, ty).map_err(failed)?
            }
            ExportFormat::Onnx => onnx::export_onnx(&record.info, &refs).map_err(failed)?,
        };
        let mut out = Outputs::new();
        out.insert(self.format.output().into(), bytes);
        Ok(out)
    }
}
