//! Building blocks shared by the candle model implementations: a linear
//! layer over dense or quantised weights, a preallocated KV cache, rotary
//! position tables and the causal mask.

use candle_core::{D, DType, Device, Result, Tensor};

pub use assay_model::weights::Linear;

/// A KV cache of one attention layer, allocated once at its largest size and
/// reused across runs: `reset` only rewinds, so the next run's prefill does
/// not pay for an allocation the previous run already made.
#[derive(Debug, Default)]
pub struct KvCache {
    buffers: Option<(Tensor, Tensor)>,
    len: usize,
}

impl KvCache {
    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Append `k`, `v` (`[batch, kv_heads, t, head_dim]`) and return the whole
    /// cached keys and values so far.
    pub fn append(&mut self, k: &Tensor, v: &Tensor, capacity: usize) -> Result<(Tensor, Tensor)> {
        let (b, h, t, d) = k.dims4()?;
        let fits = match &self.buffers {
            Some((kb, _)) => {
                let (kb_b, kb_h, kb_cap, kb_d) = kb.dims4()?;
                (kb_b, kb_h, kb_d) == (b, h, d) && kb.dtype() == k.dtype() && kb_cap >= self.len + t
            }
            None => false,
        };
        if !fits {
            let cap = capacity.max(self.len + t);
            let kb = Tensor::zeros((b, h, cap, d), k.dtype(), k.device())?;
            let vb = Tensor::zeros((b, h, cap, d), v.dtype(), v.device())?;
            if let Some((old_k, old_v)) = &self.buffers
                && self.len > 0
            {
                kb.slice_set(&old_k.narrow(2, 0, self.len)?, 2, 0)?;
                vb.slice_set(&old_v.narrow(2, 0, self.len)?, 2, 0)?;
            }
            self.buffers = Some((kb, vb));
        }
        let (kb, vb) = self.buffers.as_ref().expect("allocated above");
        kb.slice_set(&k.contiguous()?, 2, self.len)?;
        vb.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len += t;
        Ok((kb.narrow(2, 0, self.len)?, vb.narrow(2, 0, self.len)?))
    }
}

/// Rotary position tables, `[max_positions, head_dim / 2]`.
#[derive(Debug, Clone)]
pub struct Rope {
    cos: Tensor,
    sin: Tensor,
    /// GGUF llama weights have q and k permuted for ggml's interleaved
    /// rotation; Hugging Face weights rotate halves.
    interleaved: bool,
}

impl Rope {
    pub fn new(
        head_dim: usize,
        max_positions: usize,
        theta: f64,
        interleaved: bool,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let half = head_dim / 2;
        let (cos, sin) = assay_model::rope::tables(head_dim, max_positions, theta);
        let shape = (max_positions, half);
        Ok(Rope {
            cos: Tensor::from_vec(cos, shape, device)?.to_dtype(dtype)?,
            sin: Tensor::from_vec(sin, shape, device)?.to_dtype(dtype)?,
            interleaved,
        })
    }

    /// Rotate `x` (`[batch, heads, t, head_dim]`) for positions `pos..pos+t`.
    pub fn apply(&self, x: &Tensor, pos: usize) -> Result<Tensor> {
        let t = x.dim(2)?;
        let cos = self.cos.narrow(0, pos, t)?;
        let sin = self.sin.narrow(0, pos, t)?;
        let x = x.contiguous()?;
        if self.interleaved {
            candle_nn::rotary_emb::rope_i(&x, &cos, &sin)
        } else {
            candle_nn::rotary_emb::rope(&x, &cos, &sin)
        }
    }
}

/// Additive causal mask `[t, pos + t]` for a chunk of `t` new tokens after
/// `pos` cached ones; `None` for a single token, which sees everything.
pub fn causal_mask(t: usize, pos: usize, dtype: DType, device: &Device) -> Result<Option<Tensor>> {
    if t <= 1 {
        return Ok(None);
    }
    let total = pos + t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| (0..total).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Some(
        Tensor::from_vec(mask, (t, total), device)?.to_dtype(dtype)?,
    ))
}

/// Scaled dot-product attention with grouped-query heads. `q` is
/// `[b, heads, t, d]`, `k` and `v` are `[b, kv_heads, s, d]`. Scores and
/// softmax are computed in f32 whatever the compute dtype.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let (b, heads, t, d) = q.dims4()?;
    let kv_heads = k.dim(1)?;
    let group = heads / kv_heads;
    let dtype = q.dtype();
    // Fold the query heads of one group into the rows so that each KV head
    // is read once, without materialising repeated keys.
    let q = q.reshape((b, kv_heads, group * t, d))?;
    let scale = 1.0 / (d as f64).sqrt();
    let scores = (q.matmul(&k.t()?)? * scale)?.to_dtype(DType::F32)?;
    let scores = match mask {
        Some(m) => {
            let s = scores.dim(D::Minus1)?;
            let scores = scores.reshape((b, kv_heads, group, t, s))?;
            scores
                .broadcast_add(&m.to_dtype(DType::F32)?)?
                .reshape((b, kv_heads, group * t, s))?
        }
        None => scores,
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(dtype)?;
    probs.matmul(&v.contiguous()?)?.reshape((b, heads, t, d))
}
