//! Where a model's tensors come from. Models ask for tensors by their GGUF
//! (llama.cpp) names; a safetensors checkpoint in the Hugging Face layout is
//! mapped onto those names, so one model implementation loads both, and the
//! GGUF exporter reads the same names it writes.

use std::collections::BTreeMap;
use std::io::Cursor;

use candle_core::quantized::{GgmlDType, QMatMul, gguf_file};
use candle_core::{DType, Device, Module, Result, Tensor, bail};

use crate::decl::Arch;

/// `y = x W^T + b` with `W` stored as `[out, in]`, dense (any float dtype) or
/// GGUF-quantised.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: QMatMul,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: QMatMul, bias: Option<Tensor>) -> Self {
        Linear { weight, bias }
    }

    pub fn dense(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear::new(QMatMul::Tensor(weight), bias)
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.weight.forward(x)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

pub trait WeightSource {
    /// Compute dtype of activations.
    fn dtype(&self) -> DType;
    /// Whether llama q/k weights are permuted for interleaved rotation (GGUF).
    fn interleaved_rope(&self) -> bool;
    fn has(&self, name: &str) -> bool;
    /// A dense tensor in the compute dtype (norms, biases, embeddings).
    fn tensor(&mut self, name: &str) -> Result<Tensor>;
    /// A projection stored `[out, in]`, dense or quantised.
    fn linear(&mut self, weight: &str, bias: Option<&str>) -> Result<Linear>;
    /// Storage type of the projection weights, as recorded in attribution.
    fn weight_type(&self) -> String;
}

/// The Hugging Face name of a GGUF tensor name, and whether HF stores it
/// transposed (`Conv1D` in GPT-2 keeps `[in, out]`).
pub fn hf_name(arch: Arch, gguf: &str) -> Option<(String, bool)> {
    let (layer, rest) = match gguf.strip_prefix("blk.") {
        Some(r) => {
            let (i, rest) = r.split_once('.')?;
            (Some(i), rest)
        }
        None => (None, gguf),
    };
    let (base, suffix) = rest.rsplit_once('.')?;
    let name = match (arch, layer, base) {
        (Arch::Llama, None, "token_embd") => "model.embed_tokens".to_string(),
        (Arch::Llama, None, "output_norm") => "model.norm".to_string(),
        (Arch::Llama, None, "output") => "lm_head".to_string(),
        (Arch::Llama, Some(i), b) => {
            let part = match b {
                "attn_norm" => "input_layernorm",
                "ffn_norm" => "post_attention_layernorm",
                "attn_q" => "self_attn.q_proj",
                "attn_k" => "self_attn.k_proj",
                "attn_v" => "self_attn.v_proj",
                "attn_output" => "self_attn.o_proj",
                "ffn_gate" => "mlp.gate_proj",
                "ffn_up" => "mlp.up_proj",
                "ffn_down" => "mlp.down_proj",
                _ => return None,
            };
            format!("model.layers.{i}.{part}")
        }
        (Arch::Gpt2, None, "token_embd") => "wte".to_string(),
        (Arch::Gpt2, None, "position_embd") => "wpe".to_string(),
        (Arch::Gpt2, None, "output_norm") => "ln_f".to_string(),
        (Arch::Gpt2, Some(i), b) => {
            let part = match b {
                "attn_norm" => "ln_1",
                "ffn_norm" => "ln_2",
                "attn_qkv" => "attn.c_attn",
                "attn_output" => "attn.c_proj",
                "ffn_up" => "mlp.c_fc",
                "ffn_down" => "mlp.c_proj",
                _ => return None,
            };
            format!("h.{i}.{part}")
        }
        _ => return None,
    };
    let conv1d =
        arch == Arch::Gpt2 && layer.is_some() && suffix == "weight" && !base.ends_with("norm");
    Some((format!("{name}.{suffix}"), conv1d))
}

/// A safetensors checkpoint (one or several shards) in the HF layout.
pub struct SafetensorsSource {
    arch: Arch,
    dtype: DType,
    tensors: BTreeMap<String, Tensor>,
}

impl SafetensorsSource {
    /// Parse shards; every tensor is converted to `dtype` as it is taken.
    pub fn new(arch: Arch, dtype: DType, shards: &[&[u8]]) -> Result<Self> {
        let mut tensors = BTreeMap::new();
        for bytes in shards {
            for (name, t) in candle_core::safetensors::load_buffer(bytes, &Device::Cpu)? {
                // GPT2LMHeadModel checkpoints prefix the body with `transformer.`.
                let name = name
                    .strip_prefix("transformer.")
                    .map(str::to_string)
                    .unwrap_or(name);
                tensors.insert(name, t);
            }
        }
        Ok(SafetensorsSource {
            arch,
            dtype,
            tensors,
        })
    }

    /// The tensor under its GGUF name in torch layout (`[out, in]`), f32.
    pub fn torch_layout(&self, gguf: &str) -> Result<Tensor> {
        let Some((name, transposed)) = hf_name(self.arch, gguf) else {
            bail!("no Hugging Face name for tensor {gguf}")
        };
        let Some(t) = self.tensors.get(&name) else {
            bail!("checkpoint has no tensor {name}")
        };
        let t = t.to_dtype(DType::F32)?;
        if transposed {
            t.t()?.contiguous()
        } else {
            Ok(t)
        }
    }
}

impl WeightSource for SafetensorsSource {
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn interleaved_rope(&self) -> bool {
        false
    }
    fn has(&self, name: &str) -> bool {
        hf_name(self.arch, name).is_some_and(|(n, _)| self.tensors.contains_key(&n))
    }
    fn tensor(&mut self, name: &str) -> Result<Tensor> {
        self.torch_layout(name)?.to_dtype(self.dtype)
    }
    fn linear(&mut self, weight: &str, bias: Option<&str>) -> Result<Linear> {
        let w = self.tensor(weight)?;
        let b = bias.map(|b| self.tensor(b)).transpose()?;
        Ok(Linear::dense(w, b))
    }
    fn weight_type(&self) -> String {
        dtype_name(self.dtype).to_string()
    }
}

/// A GGUF file. Projections stay quantised (candle's quantised matmul);
/// norms, biases and embeddings are dequantised to f32.
pub struct GgufSource<'a> {
    content: gguf_file::Content,
    reader: Cursor<&'a [u8]>,
}

impl<'a> GgufSource<'a> {
    pub fn new(bytes: &'a [u8]) -> Result<Self> {
        let mut reader = Cursor::new(bytes);
        let content = gguf_file::Content::read(&mut reader)?;
        Ok(GgufSource { content, reader })
    }

    pub fn content(&self) -> &gguf_file::Content {
        &self.content
    }

    fn qtensor(&mut self, name: &str) -> Result<candle_core::quantized::QTensor> {
        self.content.tensor(&mut self.reader, name, &Device::Cpu)
    }
}

impl WeightSource for GgufSource<'_> {
    fn dtype(&self) -> DType {
        DType::F32
    }
    fn interleaved_rope(&self) -> bool {
        true
    }
    fn has(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }
    fn tensor(&mut self, name: &str) -> Result<Tensor> {
        self.qtensor(name)?.dequantize(&Device::Cpu)
    }
    fn linear(&mut self, weight: &str, bias: Option<&str>) -> Result<Linear> {
        let w = QMatMul::from_qtensor(self.qtensor(weight)?)?;
        let b = bias.map(|b| self.tensor(b)).transpose()?;
        Ok(Linear::new(w, b))
    }
    fn weight_type(&self) -> String {
        // The type of most projection weights (a file may mix types).
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for (name, info) in &self.content.tensor_infos {
            if name.starts_with("blk.") && name.ends_with(".weight") && info.shape.dims().len() == 2
            {
                // candle dequantises f16/bf16 GGUF weights to f32 at load
                // (QMatMul::from_arc): that is what streams and computes.
                let ty = match info.ggml_dtype {
                    GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => "f32",
                    other => ggml_name(other),
                };
                *counts.entry(ty.to_string()).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .max_by_key(|(name, n)| (*n, std::cmp::Reverse(name.clone())))
            .map(|(name, _)| name)
            .unwrap_or_else(|| "unknown".into())
    }
}

pub fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "other",
    }
}

pub fn ggml_name(dtype: GgmlDType) -> &'static str {
    match dtype {
        GgmlDType::F32 => "f32",
        GgmlDType::F16 => "f16",
        GgmlDType::BF16 => "bf16",
        GgmlDType::Q8_0 => "q8_0",
        GgmlDType::Q4_0 => "q4_0",
        GgmlDType::Q4_1 => "q4_1",
        GgmlDType::Q5_0 => "q5_0",
        GgmlDType::Q5_1 => "q5_1",
        GgmlDType::Q8_1 => "q8_1",
        GgmlDType::Q2K => "q2_k",
        GgmlDType::Q3K => "q3_k",
        GgmlDType::Q4K => "q4_k",
        GgmlDType::Q5K => "q5_k",
        GgmlDType::Q6K => "q6_k",
        GgmlDType::Q8K => "q8_k",
    }
}

/// candle's message without the backtrace it captures under RUST_BACKTRACE.
pub fn error_text(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => error_text(inner),
        e => e.to_string(),
    }
}
