//! GPT-2-style decoder: LayerNorm, learned positions, GELU MLP, fused QKV
//! projection, tied output head, with a KV cache.

use candle_core::{DType, Result, Tensor};
use candle_nn::ops::layer_norm;

use super::layers::{KvCache, Linear, attention, causal_mask};
use assay_model::decl::ModelInfo;
use assay_model::weights::WeightSource;

struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    fn load(src: &mut dyn WeightSource, name: &str) -> Result<Self> {
        Ok(Norm {
            weight: src.tensor(&format!("{name}.weight"))?,
            bias: src.tensor(&format!("{name}.bias"))?,
        })
    }

    fn forward(&self, x: &Tensor, eps: f32) -> Result<Tensor> {
        layer_norm(x, &self.weight, &self.bias, eps)
    }
}

struct Block {
    ln_1: Norm,
    qkv: Linear,
    proj: Linear,
    ln_2: Norm,
    fc: Linear,
    fc_proj: Linear,
    cache: KvCache,
}

pub struct Gpt2 {
    info: ModelInfo,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: Norm,
    lm_head: Linear,
    capacity: usize,
}

impl Gpt2 {
    pub fn load(info: &ModelInfo, src: &mut dyn WeightSource, capacity: usize) -> Result<Self> {
        let mut blocks = Vec::with_capacity(info.n_layer as usize);
        for i in 0..info.n_layer {
            let lin = |src: &mut dyn WeightSource, part: &str| {
                src.linear(
                    &format!("blk.{i}.{part}.weight"),
                    Some(&format!("blk.{i}.{part}.bias")),
                )
            };
            blocks.push(Block {
                ln_1: Norm::load(src, &format!("blk.{i}.attn_norm"))?,
                qkv: lin(src, "attn_qkv")?,
                proj: lin(src, "attn_output")?,
                ln_2: Norm::load(src, &format!("blk.{i}.ffn_norm"))?,
                fc: lin(src, "ffn_up")?,
                fc_proj: lin(src, "ffn_down")?,
                cache: KvCache::default(),
            });
        }
        // The head is tied to the token embeddings unless the file has one.
        let lm_head = if src.has("output.weight") {
            src.linear("output.weight", None)?
        } else {
            src.linear("token_embd.weight", None)?
        };
        Ok(Gpt2 {
            info: info.clone(),
            wte: src.tensor("token_embd.weight")?,
            wpe: src.tensor("position_embd.weight")?,
            blocks,
            ln_f: Norm::load(src, "output_norm")?,
            lm_head,
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
        let kv = kv_heads * hd;
        let eps = self.info.norm_eps as f32;
        let dtype = self.wte.dtype();
        let mask = causal_mask(t, pos, dtype, ids.device())?;
        let tokens = self
            .wte
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, h))?;
        let positions = self.wpe.narrow(0, pos, t)?;
        let mut x = tokens.broadcast_add(&positions)?;
        for blk in &mut self.blocks {
            let y = blk.ln_1.forward(&x, eps)?;
            let qkv = blk.qkv.forward(&y)?;
            let heads_of = |start: usize, width: usize, n: usize| -> Result<Tensor> {
                qkv.narrow(2, start, width)?
                    .reshape((b, t, n, hd))?
                    .transpose(1, 2)
            };
            let q = heads_of(0, h, heads)?.contiguous()?;
            let k = heads_of(h, kv, kv_heads)?;
            let v = heads_of(h + kv, kv, kv_heads)?;
            let (k, v) = blk.cache.append(&k, &v, self.capacity)?;
            let a = attention(&q, &k, &v, mask.as_ref())?;
            let a = a.transpose(1, 2)?.reshape((b, t, h))?;
            x = (x + blk.proj.forward(&a)?)?;
            let y = blk.ln_2.forward(&x, eps)?;
            // GPT-2's "gelu_new": the tanh approximation.
            let y = blk.fc_proj.forward(&blk.fc.forward(&y)?.gelu()?)?;
            x = (x + y)?;
        }
        let last = x.narrow(1, t - 1, 1)?.contiguous()?;
        let last = self.ln_f.forward(&last, eps)?;
        self.lm_head
            .forward(&last)?
            .squeeze(1)?
            .to_dtype(DType::F32)
    }
}
