//! The model's weights in libtorch: read through candle's
//! [`SafetensorsSource`] (GGUF names, GPT-2's `Conv1D` transpose undone), so
//! libtorch runs exactly the tensors candle runs, and laid out in the order
//! the forward function and the traced graphs take them.

use std::path::PathBuf;

use candle_core::DType;
use tch::Tensor;

use super::tch_err;
use crate::harness::BackendError;
use assay_model::decl::{Arch, ModelInfo};
use assay_model::weights::{SafetensorsSource, WeightSource};

/// The structure the forward function needs; everything in it is a model
/// constant, so it may be baked into a trace.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    pub(super) arch: Arch,
    pub(super) layers: usize,
    pub(super) hidden: i64,
    pub(super) heads: i64,
    pub(super) kv_heads: i64,
    pub(super) head_dim: i64,
    pub(super) eps: f64,
    /// The output head is the token embedding (no `output.weight`).
    pub(super) tied: bool,
}

impl Layout {
    /// Global tensors before the per-layer ones: llama `[embed, norm, cos,
    /// sin, head?]`, GPT-2 `[wte, wpe, ln_f.weight, ln_f.bias, head?]`.
    fn globals(&self) -> usize {
        4 + usize::from(!self.tied)
    }

    fn per_layer(&self) -> usize {
        match self.arch {
            Arch::Llama => 9,
            Arch::Gpt2 => 12,
        }
    }

    fn param_count(&self) -> usize {
        self.globals() + self.layers * self.per_layer()
    }

    pub(super) fn head<'a>(&self, p: &'a [Tensor]) -> &'a Tensor {
        if self.tied { &p[0] } else { &p[4] }
    }

    pub(super) fn layer<'a>(&self, p: &'a [Tensor], l: usize) -> &'a [Tensor] {
        let start = self.globals() + l * self.per_layer();
        &p[start..start + self.per_layer()]
    }
}

/// The model's tensors in the order [`Layout`] describes, f32 on the CPU.
pub(super) struct Model {
    pub(super) layout: Layout,
    pub(super) params: Vec<Tensor>,
}

/// Reads the shards, maps them onto GGUF names with candle's
/// [`SafetensorsSource`] and copies every tensor into libtorch.
pub(super) fn load_model(
    info: &ModelInfo,
    paths: &[PathBuf],
    capacity: usize,
) -> Result<Model, BackendError> {
    let shards = paths
        .iter()
        .map(|p| {
            std::fs::read(p)
                .map_err(|e| BackendError::Weights(format!("reading {}: {e}", p.display())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&[u8]> = shards.iter().map(Vec::as_slice).collect();
    let src = SafetensorsSource::new(info.arch, DType::F32, &refs).map_err(|e| {
        BackendError::Weights(format!(
            "parsing safetensors: {}",
            assay_model::weights::error_text(&e)
        ))
    })?;
    let layout = Layout {
        arch: info.arch,
        layers: info.n_layer as usize,
        hidden: i64::from(info.n_embd),
        heads: i64::from(info.n_head),
        kv_heads: i64::from(info.n_kv_head),
        head_dim: i64::from(info.head_dim()),
        eps: info.norm_eps,
        tied: !src.has("output.weight"),
    };
    let params = match info.arch {
        Arch::Llama => llama_params(info, &src, &layout, capacity)?,
        Arch::Gpt2 => gpt2_params(info, &src, &layout)?,
    };
    debug_assert_eq!(params.len(), layout.param_count());
    Ok(Model { layout, params })
}

/// One tensor of the checkpoint, which must have `shape`, in torch's layout.
fn take(src: &SafetensorsSource, name: &str, shape: &[i64]) -> Result<Tensor, BackendError> {
    let t = src.torch_layout(name).map_err(|e| {
        BackendError::Weights(format!(
            "loading {name}: {}",
            assay_model::weights::error_text(&e)
        ))
    })?;
    let dims: Vec<i64> = t.dims().iter().map(|&d| d as i64).collect();
    if dims != shape {
        return Err(BackendError::Weights(format!(
            "{name} has shape {dims:?}, the model needs {shape:?}"
        )));
    }
    let values = t
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| {
            BackendError::Weights(format!(
                "reading {name}: {}",
                assay_model::weights::error_text(&e)
            ))
        })?;
    Tensor::from_slice(&values)
        .f_view(shape)
        .map_err(tch_err("building a weight tensor"))
}

/// Llama's tensors in [`Layout`] order; the rotary tables are computed for
/// `capacity` positions.
fn llama_params(
    info: &ModelInfo,
    src: &SafetensorsSource,
    layout: &Layout,
    capacity: usize,
) -> Result<Vec<Tensor>, BackendError> {
    let (h, heads, hd) = (layout.hidden, layout.heads, layout.head_dim);
    let kv = layout.kv_heads * hd;
    let ff = i64::from(info.intermediate);
    let vocab = i64::from(info.vocab);
    let mut params = Vec::with_capacity(layout.param_count());
    params.push(take(src, "token_embd.weight", &[vocab, h])?);
    params.push(take(src, "output_norm.weight", &[h])?);
    let (cos, sin) = assay_model::rope::tables(info.head_dim() as usize, capacity, info.rope_theta);
    for table in [cos, sin] {
        params.push(
            Tensor::from_slice(&table)
                .f_view([capacity as i64, hd / 2])
                .map_err(tch_err("rotary table"))?,
        );
    }
    if !layout.tied {
        params.push(take(src, "output.weight", &[vocab, h])?);
    }
    for i in 0..info.n_layer {
        let n = |part: &str| format!("blk.{i}.{part}.weight");
        params.push(take(src, &n("attn_norm"), &[h])?);
        params.push(take(src, &n("attn_q"), &[heads * hd, h])?);
        params.push(take(src, &n("attn_k"), &[kv, h])?);
        params.push(take(src, &n("attn_v"), &[kv, h])?);
        params.push(take(src, &n("attn_output"), &[h, heads * hd])?);
        params.push(take(src, &n("ffn_norm"), &[h])?);
        params.push(take(src, &n("ffn_gate"), &[ff, h])?);
        params.push(take(src, &n("ffn_up"), &[ff, h])?);
        params.push(take(src, &n("ffn_down"), &[h, ff])?);
    }
    Ok(params)
}

/// GPT-2's tensors in [`Layout`] order.
fn gpt2_params(
    info: &ModelInfo,
    src: &SafetensorsSource,
    layout: &Layout,
) -> Result<Vec<Tensor>, BackendError> {
    let h = layout.hidden;
    let kv = layout.kv_heads * layout.head_dim;
    let ff = i64::from(info.intermediate);
    let vocab = i64::from(info.vocab);
    let mut params = Vec::with_capacity(layout.param_count());
    params.push(take(src, "token_embd.weight", &[vocab, h])?);
    params.push(take(
        src,
        "position_embd.weight",
        &[i64::from(info.max_positions), h],
    )?);
    params.push(take(src, "output_norm.weight", &[h])?);
    params.push(take(src, "output_norm.bias", &[h])?);
    if !layout.tied {
        params.push(take(src, "output.weight", &[vocab, h])?);
    }
    for i in 0..info.n_layer {
        let n = |part: &str, what: &str| format!("blk.{i}.{part}.{what}");
        params.push(take(src, &n("attn_norm", "weight"), &[h])?);
        params.push(take(src, &n("attn_norm", "bias"), &[h])?);
        params.push(take(src, &n("attn_qkv", "weight"), &[h + 2 * kv, h])?);
        params.push(take(src, &n("attn_qkv", "bias"), &[h + 2 * kv])?);
        params.push(take(src, &n("attn_output", "weight"), &[h, h])?);
        params.push(take(src, &n("attn_output", "bias"), &[h])?);
        params.push(take(src, &n("ffn_norm", "weight"), &[h])?);
        params.push(take(src, &n("ffn_norm", "bias"), &[h])?);
        params.push(take(src, &n("ffn_up", "weight"), &[ff, h])?);
        params.push(take(src, &n("ffn_up", "bias"), &[ff])?);
        params.push(take(src, &n("ffn_down", "weight"), &[h, ff])?);
        params.push(take(src, &n("ffn_down", "bias"), &[h])?);
    }
    Ok(params)
}
