//! Llama-style decoder: RMSNorm, rotary positions, SwiGLU MLP and
//! grouped-query attention, with a KV cache.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::ops::rms_norm;

use super::layers::{KvCache, Linear, Rope, attention, causal_mask};
use assay_model::decl::ModelInfo;
use assay_model::weights::WeightSource;

struct Block {
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
    cache: KvCache,
}

pub struct Llama {
    info: ModelInfo,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    lm_head: Linear,
    rope: Rope,
    dtype: DType,
    capacity: usize,
}

impl Llama {
    pub fn load(info: &ModelInfo, src: &mut dyn WeightSource, capacity: usize) -> Result<Self> {
        let dtype = src.dtype();
        let mut blocks = Vec::with_capacity(info.n_layer as usize);
        for i in 0..info.n_layer {
            let n = |part: &str| format!("blk.{i}.{part}.weight");
            blocks.push(Block {
                attn_norm: src.tensor(&n("attn_norm"))?,
                q: src.linear(&n("attn_q"), None)?,
                k: src.linear(&n("attn_k"), None)?,
                v: src.linear(&n("attn_v"), None)?,
                o: src.linear(&n("attn_output"), None)?,
                ffn_norm: src.tensor(&n("ffn_norm"))?,
                gate: src.linear(&n("ffn_gate"), None)?,
                up: src.linear(&n("ffn_up"), None)?,
                down: src.linear(&n("ffn_down"), None)?,
                cache: KvCache::default(),
            });
        }
        let lm_head = if src.has("output.weight") {
            src.linear("output.weight", None)?
        } else {
            src.linear("token_embd.weight", None)?
        };
        Ok(Llama {
            info: info.clone(),
            embed: src.tensor("token_embd.weight")?,
            blocks,
            norm: src.tensor("output_norm.weight")?,
            lm_head,
            rope: Rope::new(
                info.head_dim() as usize,
                capacity,
                info.rope_theta,
                src.interleaved_rope(),
                dtype,
                &Device::Cpu,
            )?,
            dtype,
            capacity,
        })
    }

    pub fn reset(&mut self) {
        for b in &mut self.blocks {
            b.cache.reset();
        }
    }

    /// Feed `ids` (`[batch, t]`) at positions `pos..pos+t`; returns the
    /// last position's logits, `[batch, vocab]` in f32.
    pub fn forward(&mut self, ids: &Tensor, pos: usize) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let h = self.info.n_embd as usize;
        let heads = self.info.n_head as usize;
        let kv_heads = self.info.n_kv_head as usize;
        let hd = self.info.head_dim() as usize;
        let eps = self.info.norm_eps as f32;
        let mask = causal_mask(t, pos, self.dtype, ids.device())?;
        let mut x = self
            .embed
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, h))?;
        for blk in &mut self.blocks {
            let y = rms_norm(&x, &blk.attn_norm, eps)?;
            let split = |lin: &Linear, n: usize| -> Result<Tensor> {
                lin.forward(&y)?.reshape((b, t, n, hd))?.transpose(1, 2)
            };
            let q = self.rope.apply(&split(&blk.q, heads)?, pos)?;
            let k = self.rope.apply(&split(&blk.k, kv_heads)?, pos)?;
            let v = split(&blk.v, kv_heads)?;
            let (k, v) = blk.cache.append(&k, &v, self.capacity)?;
            let a = attention(&q, &k, &v, mask.as_ref())?;
            let a = a.transpose(1, 2)?.reshape((b, t, h))?;
            x = (x + blk.o.forward(&a)?)?;
            let y = rms_norm(&x, &blk.ffn_norm, eps)?;
            let gated = (candle_nn::ops::silu(&blk.gate.forward(&y)?)? * blk.up.forward(&y)?)?;
            x = (x + blk.down.forward(&gated)?)?;
        }
        let last = x.narrow(1, t - 1, 1)?.contiguous()?;
        let last = rms_norm(&last, &self.norm, eps)?;
        self.lm_head
            .forward(&last)?
            .squeeze(1)?
            .to_dtype(DType::F32)
    }
}
