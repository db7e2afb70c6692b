//! GGUF export (f16 and q8_0) in llama.cpp's layout, with a minimal valid
//! tokenizer, so that llama.cpp and candle's quantised path run the same
//! model as the safetensors checkpoint; and GGUF metadata read back into a
//! [`ModelInfo`].

use std::io::Cursor;

use candle_core::quantized::{
    GgmlDType, QTensor,
    gguf_file::{self, Value},
};
use candle_core::{DType, Tensor};

pub use crate::decl::GgufType;
use crate::decl::{Arch, ModelInfo};
use crate::prepare::synthetic::{BOS, EOS, UNK, vocab_tokens};
use crate::weights::{SafetensorsSource, WeightSource};

impl GgufType {
    fn ggml(self) -> GgmlDType {
        match self {
            GgufType::F16 => GgmlDType::F16,
            GgufType::Q8_0 => GgmlDType::Q8_0,
        }
    }

    /// `general.file_type` (llama.cpp's `LLAMA_FTYPE_MOSTLY_*`).
    fn file_type(self) -> u32 {
        match self {
            GgufType::F16 => 1,
            GgufType::Q8_0 => 7,
        }
    }
}

/// GGUF tensor names of a model, in llama.cpp's order.
pub fn tensor_names(info: &ModelInfo, has_output: bool) -> Vec<String> {
    let mut names = vec!["token_embd.weight".to_string()];
    if info.arch == Arch::Gpt2 {
        names.push("position_embd.weight".into());
    }
    for i in 0..info.n_layer {
        let parts: &[&str] = match info.arch {
            Arch::Llama => &[
                "attn_norm.weight",
                "attn_q.weight",
                "attn_k.weight",
                "attn_v.weight",
                "attn_output.weight",
                "ffn_norm.weight",
                "ffn_gate.weight",
                "ffn_up.weight",
                "ffn_down.weight",
            ],
            Arch::Gpt2 => &[
                "attn_norm.weight",
                "attn_norm.bias",
                "attn_qkv.weight",
                "attn_qkv.bias",
                "attn_output.weight",
                "attn_output.bias",
                "ffn_norm.weight",
                "ffn_norm.bias",
                "ffn_up.weight",
                "ffn_up.bias",
                "ffn_down.weight",
                "ffn_down.bias",
            ],
        };
        names.extend(parts.iter().map(|p| format!("blk.{i}.{p}")));
    }
    names.push("output_norm.weight".into());
    if info.arch == Arch::Gpt2 {
        names.push("output_norm.bias".into());
    }
    if has_output {
        names.push("output.weight".into());
    }
    names
}

/// llama.cpp's rotary convention pairs adjacent values; Hugging Face rotates
/// halves. Permute q/k rows per head as llama.cpp's converter does, so
/// interleaved rotation of the permuted weights equals the original.
fn permute_for_interleaved_rope(w: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    let hd = rows / heads;
    w.reshape((heads, 2, hd / 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))
}

fn string_array(items: impl IntoIterator<Item = String>) -> Value {
    Value::Array(items.into_iter().map(Value::String).collect())
}

/// GPT-2's byte-to-printable-character map (byte-level BPE pieces).
fn gpt2_byte_chars() -> Vec<String> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut extra = 0;
    (0..256u32)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).map(String::from).unwrap_or_default()
            } else {
                extra += 1;
                char::from_u32(255 + extra)
                    .map(String::from)
                    .unwrap_or_default()
            }
        })
        .collect()
}

fn tokenizer_metadata(info: &ModelInfo) -> Result<Vec<(String, Value)>, String> {
    let v = info.vocab;
    let mut m = Vec::new();
    match info.arch {
        Arch::Llama => {
            if v < 259 {
                return Err(format!(
                    "GGUF export needs a vocabulary of at least 259 tokens (3 specials and 256 byte tokens); this model has {v}"
                ));
            }
            let tokens = vocab_tokens(v);
            let types: Vec<Value> = (0..v)
                .map(|i| {
                    Value::I32(match i {
                        UNK => 2,
                        BOS | EOS => 3,
                        3..=258 => 6,
                        _ => 1,
                    })
                })
                .collect();
            m.push(("tokenizer.ggml.model".into(), Value::String("llama".into())));
            m.push(("tokenizer.ggml.tokens".into(), string_array(tokens)));
            m.push((
                "tokenizer.ggml.scores".into(),
                Value::Array((0..v).map(|i| Value::F32(-(i as f32))).collect()),
            ));
            m.push(("tokenizer.ggml.token_type".into(), Value::Array(types)));
            m.push(("tokenizer.ggml.bos_token_id".into(), Value::U32(BOS)));
            m.push(("tokenizer.ggml.eos_token_id".into(), Value::U32(EOS)));
            m.push(("tokenizer.ggml.unknown_token_id".into(), Value::U32(UNK)));
        }
        Arch::Gpt2 => {
            if v < 257 {
                return Err(format!(
                    "GGUF export needs a vocabulary of at least 257 tokens (256 byte tokens and end-of-text); this model has {v}"
                ));
            }
            // Byte pieces first, filler pieces, end-of-text last (GPT-2's order).
            let mut tokens = gpt2_byte_chars();
            tokens.extend((256..v - 1).map(|i| format!("t{i}")));
            tokens.push("<|endoftext|>".into());
            let eot = v - 1;
            let types: Vec<Value> = (0..v)
                .map(|i| Value::I32(if i == eot { 3 } else { 1 }))
                .collect();
            m.push(("tokenizer.ggml.model".into(), Value::String("gpt2".into())));
            m.push(("tokenizer.ggml.pre".into(), Value::String("gpt-2".into())));
            m.push(("tokenizer.ggml.tokens".into(), string_array(tokens)));
            m.push(("tokenizer.ggml.token_type".into(), Value::Array(types)));
            m.push(("tokenizer.ggml.merges".into(), Value::Array(Vec::new())));
            m.push(("tokenizer.ggml.bos_token_id".into(), Value::U32(eot)));
            m.push(("tokenizer.ggml.eos_token_id".into(), Value::U32(eot)));
        }
    }
    Ok(m)
}

/// Write the checkpoint as GGUF: 2-D weights in `ty` (a row length that is
/// not a multiple of the q8_0 block falls back to f16, as llama.cpp does),
/// norms and biases in f32.
pub fn export(
    info: &ModelInfo,
    name: &str,
    src: &SafetensorsSource,
    ty: GgufType,
) -> Result<Vec<u8>, String> {
    let e = |e: candle_core::Error| e.to_string();
    let arch = match info.arch {
        Arch::Llama => "llama",
        Arch::Gpt2 => "gpt2",
    };
    // A llama checkpoint with tied embeddings has no separate head.
    let has_output = info.arch == Arch::Llama && src.has("output.weight");
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for tname in tensor_names(info, has_output) {
        let mut t = src.torch_layout(&tname).map_err(e)?;
        if info.arch == Arch::Llama && tname.ends_with("attn_q.weight") {
            t = permute_for_interleaved_rope(&t, info.n_head as usize).map_err(e)?;
        }
        if info.arch == Arch::Llama && tname.ends_with("attn_k.weight") {
            t = permute_for_interleaved_rope(&t, info.n_kv_head as usize).map_err(e)?;
        }
        let q = if t.rank() == 2 {
            let row = t.dim(1).map_err(e)?;
            let target = if ty == GgufType::Q8_0 && row % 32 != 0 {
                GgmlDType::F16
            } else {
                ty.ggml()
            };
            QTensor::quantize(&t, target).map_err(e)?
        } else {
            QTensor::quantize(&t.to_dtype(DType::F32).map_err(e)?, GgmlDType::F32).map_err(e)?
        };
        tensors.push((tname, q));
    }

    let u = |x: u32| Value::U32(x);
    let mut meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        ("general.name".into(), Value::String(name.into())),
        ("general.file_type".into(), u(ty.file_type())),
        ("general.alignment".into(), u(32)),
        (format!("{arch}.context_length"), u(info.max_positions)),
        (format!("{arch}.embedding_length"), u(info.n_embd)),
        (format!("{arch}.block_count"), u(info.n_layer)),
        (format!("{arch}.feed_forward_length"), u(info.intermediate)),
        (format!("{arch}.attention.head_count"), u(info.n_head)),
        (format!("{arch}.attention.head_count_kv"), u(info.n_kv_head)),
        (format!("{arch}.vocab_size"), u(info.vocab)),
    ];
    match info.arch {
        Arch::Llama => {
            meta.push((
                "llama.attention.layer_norm_rms_epsilon".into(),
                Value::F32(info.norm_eps as f32),
            ));
            meta.push(("llama.rope.dimension_count".into(), u(info.head_dim())));
            meta.push((
                "llama.rope.freq_base".into(),
                Value::F32(info.rope_theta as f32),
            ));
        }
        Arch::Gpt2 => meta.push((
            "gpt2.attention.layer_norm_epsilon".into(),
            Value::F32(info.norm_eps as f32),
        )),
    }
    meta.extend(tokenizer_metadata(info)?);

    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &meta_refs, &tensor_refs).map_err(e)?;
    Ok(out.into_inner())
}

/// Read a GGUF file's architecture facts (llama and gpt2 only).
pub fn model_info(name: &str, content: &gguf_file::Content) -> Result<ModelInfo, String> {
    let get = |key: &str| content.metadata.get(key);
    let arch_name = get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .ok_or("GGUF file has no general.architecture")?;
    let arch = match arch_name.as_str() {
        "llama" => Arch::Llama,
        "gpt2" => Arch::Gpt2,
        other => {
            return Err(format!(
                "GGUF architecture {other:?} is not supported (expected llama or gpt2)"
            ));
        }
    };
    let num = |key: &str| -> Result<u32, String> {
        let v = get(&format!("{arch_name}.{key}"))
            .ok_or_else(|| format!("GGUF file has no {arch_name}.{key}"))?;
        v.to_u32()
            .or_else(|_| v.to_u64().map(|x| x as u32))
            .map_err(|e| format!("{arch_name}.{key}: {e}"))
    };
    let float = |key: &str, default: f64| -> f64 {
        get(&format!("{arch_name}.{key}"))
            .and_then(|v| v.to_f32().ok())
            .map_or(default, f64::from)
    };
    let n_head = num("attention.head_count")?;
    let embd = content
        .tensor_infos
        .get("token_embd.weight")
        .ok_or("GGUF file has no token_embd.weight")?;
    let vocab = embd.shape.dims().first().copied().unwrap_or(0) as u32;
    let parameter_count: u64 = content
        .tensor_infos
        .values()
        .map(|t| t.shape.elem_count() as u64)
        .sum();
    let n_embd = num("embedding_length")?;
    let max_positions = num("context_length")?;
    let streamed = match arch {
        Arch::Llama if content.tensor_infos.contains_key("output.weight") => {
            parameter_count.saturating_sub(u64::from(vocab) * u64::from(n_embd))
        }
        Arch::Llama => parameter_count,
        Arch::Gpt2 => parameter_count.saturating_sub(u64::from(max_positions) * u64::from(n_embd)),
    };
    let info = ModelInfo {
        name: name.to_string(),
        arch,
        parameter_count,
        streamed_parameters: streamed,
        n_layer: num("block_count")?,
        n_embd,
        n_head,
        n_kv_head: num("attention.head_count_kv").unwrap_or(n_head),
        intermediate: num("feed_forward_length")?,
        vocab,
        max_positions,
        norm_eps: match arch {
            Arch::Llama => float("attention.layer_norm_rms_epsilon", 1e-5),
            Arch::Gpt2 => float("attention.layer_norm_epsilon", 1e-5),
        },
        rope_theta: float("rope.freq_base", 10_000.0),
    };
    info.check_shape()?;
    Ok(info)
}
