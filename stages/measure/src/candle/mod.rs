//! The embedded default backend: pure-Rust inference with candle on the CPU.
//! Our own llama and GPT-2 implementations (a few hundred lines) rather than
//! candle-transformers, so that both architectures load from Hugging Face
//! safetensors and from GGUF through one code path, and so that what is
//! timed is exactly what is here.

pub mod gpt2;
pub mod layers;
pub mod llama;

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

use crate::harness::{Attribution, BackendError};
use crate::step::{Chunk, Context, StepModel, Stepped};
use assay_core::config::Dtype;
use assay_model::decl::{Arch, ModelInfo};
use assay_model::weights::{GgufSource, SafetensorsSource, WeightSource, error_text};

/// The candle-core version assay is built with (checked against Cargo.lock
/// by a test).
pub const CANDLE_VERSION: &str = "0.11.1";

/// The library name candle cells attribute (`actual.library`). candle is
/// the embedded default, so it is also the default reference of output
/// invariance (validate).
pub const LIBRARY: &str = "candle";

/// Where a backend reads its weights from at load time.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightFiles {
    /// Hugging Face layout: one or more safetensors shards.
    Safetensors(Vec<PathBuf>),
    /// One GGUF file (quantised projections stay quantised).
    Gguf(PathBuf),
    /// An ONNX export (ONNX Runtime only).
    Onnx(PathBuf),
}

/// A loaded model of either architecture.
pub enum CausalLm {
    Llama(llama::Llama),
    Gpt2(gpt2::Gpt2),
}

impl CausalLm {
    /// `capacity`: the most positions one sequence will use; the KV cache
    /// and rotary tables are sized for it, not for the model's whole context.
    pub fn load(
        info: &ModelInfo,
        src: &mut dyn WeightSource,
        capacity: usize,
    ) -> candle_core::Result<Self> {
        let capacity = capacity.clamp(1, info.max_positions.max(1) as usize);
        Ok(match info.arch {
            Arch::Llama => CausalLm::Llama(llama::Llama::load(info, src, capacity)?),
            Arch::Gpt2 => CausalLm::Gpt2(gpt2::Gpt2::load(info, src, capacity)?),
        })
    }

    pub fn forward(&mut self, ids: &Tensor, pos: usize) -> candle_core::Result<Tensor> {
        match self {
            CausalLm::Llama(m) => m.forward(ids, pos),
            CausalLm::Gpt2(m) => m.forward(ids, pos),
        }
    }

    pub fn reset(&mut self) {
        match self {
            CausalLm::Llama(m) => m.reset(),
            CausalLm::Gpt2(m) => m.reset(),
        }
    }
}

/// Load a model from its files in the given compute dtype (ignored for
/// GGUF, whose tensors carry their own types). Returns the model and the
/// storage type of its projection weights.
pub fn load_model(
    info: &ModelInfo,
    files: &WeightFiles,
    dtype: DType,
    capacity: usize,
) -> Result<(CausalLm, String), BackendError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        let text = e.to_string();
        // Drop a captured backtrace (RUST_BACKTRACE): the first line says it.
        let text = text
            .split("\n   0:")
            .next()
            .unwrap_or(&text)
            .trim()
            .to_string();
        BackendError::Weights(format!("{what}: {text}"))
    };
    match files {
        WeightFiles::Safetensors(paths) => {
            let shards = paths
                .iter()
                .map(|p| {
                    std::fs::read(p).map_err(|e| fail(&format!("reading {}", p.display()), &e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&[u8]> = shards.iter().map(Vec::as_slice).collect();
            let mut src = SafetensorsSource::new(info.arch, dtype, &refs)
                .map_err(|e| fail("parsing safetensors", &e))?;
            let model = CausalLm::load(info, &mut src, capacity)
                .map_err(|e| fail("building the model", &e))?;
            Ok((model, src.weight_type()))
        }
        WeightFiles::Onnx(path) => Err(BackendError::Weights(format!(
            "candle cannot run the ONNX export {}",
            path.display()
        ))),
        WeightFiles::Gguf(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| fail(&format!("reading {}", path.display()), &e))?;
            let mut src = GgufSource::new(&bytes).map_err(|e| fail("parsing GGUF", &e))?;
            let model = CausalLm::load(info, &mut src, capacity)
                .map_err(|e| fail("building the model", &e))?;
            Ok((model, src.weight_type()))
        }
    }
}

pub fn candle_dtype(dtype: Dtype) -> DType {
    match dtype {
        Dtype::F16 => DType::F16,
        Dtype::Bf16 => DType::BF16,
        // Quantised weights run with f32 activations (the 4-bit types are
        // servers' only and never reach candle).
        _ => DType::F32,
    }
}

/// candle on the CPU as the harness drives it: [`CandleModel`] under the
/// shared step bookkeeping.
pub type CandleBackend = Stepped<CandleModel>;

impl CandleBackend {
    /// `capacity`: the most tokens one sequence will hold (prompt plus
    /// generation), so the KV cache is allocated once.
    pub fn new(info: ModelInfo, files: WeightFiles, dtype: Dtype, capacity: usize) -> Self {
        Stepped::wrap(CandleModel {
            info,
            files,
            dtype,
            capacity,
            model: None,
        })
    }
}

/// candle's part of a backend: loading and the forward pass. Every pass
/// returns after the logits are copied to host memory, which is the device
/// synchronisation.
pub struct CandleModel {
    info: ModelInfo,
    files: WeightFiles,
    dtype: Dtype,
    capacity: usize,
    model: Option<CausalLm>,
}

fn candle_err(e: candle_core::Error) -> BackendError {
    BackendError::Library(format!("candle: {}", error_text(&e)))
}

impl StepModel for CandleModel {
    fn load(&mut self) -> Result<Attribution, BackendError> {
        let (model, weight_type) = load_model(
            &self.info,
            &self.files,
            candle_dtype(self.dtype),
            self.capacity,
        )?;
        self.model = Some(model);
        Ok(Attribution::plain(
            "cpu",
            &weight_type,
            candle_core::utils::get_num_threads() as u32,
            LIBRARY,
            CANDLE_VERSION,
        ))
    }

    fn reset(&mut self) {
        if let Some(m) = self.model.as_mut() {
            m.reset();
        }
    }

    fn forward(
        &mut self,
        chunk: Chunk<'_>,
        logits: &mut Vec<Vec<f32>>,
    ) -> Result<(), BackendError> {
        let model = self.model.as_mut().ok_or(BackendError::NotLoaded)?;
        let ids = Tensor::from_vec(chunk.ids.to_vec(), (chunk.batch, chunk.len), &Device::Cpu)
            .map_err(candle_err)?;
        let out = model.forward(&ids, chunk.start).map_err(candle_err)?;
        *logits = out.to_vec2::<f32>().map_err(candle_err)?;
        Ok(())
    }

    fn context(&self) -> Context {
        Context {
            max_positions: self.info.max_positions,
            capacity: self.capacity,
        }
    }
}
