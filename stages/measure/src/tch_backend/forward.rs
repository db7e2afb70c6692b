//! The forward function that eager mode calls and TorchScript traces: every
//! position- or length-dependent value is a tensor op (see the module docs
//! of `tch_backend`), so one trace serves every shape.

use tch::{Kind, TchError, Tensor};

use super::weights::Layout;
use assay_model::decl::Arch;

/// The inputs of a forward call in graph order: `ids`, `positions`,
/// `slots`, the KV buffers (per layer keys then values), the parameters.
pub(super) fn graph_inputs<'a>(
    ids: &'a Tensor,
    positions: &'a Tensor,
    slots: &'a Tensor,
    cache: &'a [Tensor],
    params: &'a [Tensor],
) -> Vec<&'a Tensor> {
    let mut inputs = Vec::with_capacity(3 + cache.len() + params.len());
    inputs.extend([ids, positions, slots]);
    inputs.extend(cache);
    inputs.extend(params);
    inputs
}

/// The model on `ids` (`[batch, t]`) at `positions` (`[t]`, int64, the
/// same for every sequence), writing this chunk's keys and values into
/// `cache` at those positions and attending over slots `0..=last position`;
/// returns the last position's logits, `[batch, vocab]`.
///
/// Everything position- or length-dependent is a tensor op (see the module
/// docs), so this traces into a graph valid for any batch, chunk length and
/// past length. `masked`: apply the causal mask (chunks of more than one
/// token); a single token sees every cached slot, as in candle.
pub(super) fn forward(
    layout: &Layout,
    p: &[Tensor],
    ids: &Tensor,
    positions: &Tensor,
    slots: &Tensor,
    cache: &[Tensor],
    masked: bool,
) -> Result<Tensor, TchError> {
    // The cached length, as a one-element tensor: last position + 1.
    let end = positions.f_slice(0, -1, None::<i64>, 1)?.f_add_scalar(1)?;
    let mask = if masked {
        let keys = first_split(slots, &end, 0)?;
        // True where a key lies after the query: masked out.
        Some(
            keys.f_unsqueeze(0)?
                .f_gt_tensor(&positions.f_unsqueeze(1)?)?,
        )
    } else {
        None
    };
    let mut x = match layout.arch {
        Arch::Llama => Tensor::f_embedding(&p[0], ids, -1, false, false)?,
        Arch::Gpt2 => Tensor::f_embedding(&p[0], ids, -1, false, false)?
            .f_add(&p[1].f_index_select(0, positions)?)?,
    };
    // Llama's rotary rows for these positions, gathered once for all layers.
    let rotary = match layout.arch {
        Arch::Llama => Some((
            p[2].f_index_select(0, positions)?,
            p[3].f_index_select(0, positions)?,
        )),
        Arch::Gpt2 => None,
    };
    for l in 0..layout.layers {
        let w = layout.layer(p, l);
        let (q, k, v) = qkv(layout, w, &x, rotary.as_ref())?;
        let k = cache[2 * l]
            .shallow_clone()
            .f_index_copy_(2, positions, &k)?;
        let v = cache[2 * l + 1]
            .shallow_clone()
            .f_index_copy_(2, positions, &v)?;
        let k = first_split(&k, &end, 2)?;
        let v = first_split(&v, &end, 2)?;
        let a = attention(layout, &q, &k, &v, mask.as_ref())?;
        let a = a.f_transpose(1, 2)?.f_flatten(2, 3)?;
        x = feed_forward(layout, w, &x, &a)?;
    }
    let last = x.f_select(1, -1)?;
    let last = match layout.arch {
        Arch::Llama => rms_norm(&last, &p[1], layout.eps)?,
        Arch::Gpt2 => {
            last.f_layer_norm([layout.hidden], Some(&p[2]), Some(&p[3]), layout.eps, false)?
        }
    };
    last.f_linear::<&Tensor>(layout.head(p), None)
}

/// `[b, t, n * head_dim]` to `[b, n, t, head_dim]`.
fn heads_of(layout: &Layout, y: &Tensor, n: i64) -> Result<Tensor, TchError> {
    y.f_unflatten(-1, [n, layout.head_dim])?.f_transpose(1, 2)
}

/// One layer's queries, keys and values for the hidden states `x`, split
/// into heads (llama's with the rotary embedding applied); `w` is the
/// layer's tensors.
fn qkv(
    layout: &Layout,
    w: &[Tensor],
    x: &Tensor,
    rotary: Option<&(Tensor, Tensor)>,
) -> Result<(Tensor, Tensor, Tensor), TchError> {
    match layout.arch {
        Arch::Llama => {
            let y = rms_norm(x, &w[0], layout.eps)?;
            let (cos, sin) =
                rotary.ok_or_else(|| TchError::Kind("llama without rotary tables".into()))?;
            let half = layout.head_dim / 2;
            let q = heads_of(layout, &y.f_linear::<&Tensor>(&w[1], None)?, layout.heads)?;
            let k = heads_of(
                layout,
                &y.f_linear::<&Tensor>(&w[2], None)?,
                layout.kv_heads,
            )?;
            let (q, k) = (rope(&q, cos, sin, half)?, rope(&k, cos, sin, half)?);
            let v = heads_of(
                layout,
                &y.f_linear::<&Tensor>(&w[3], None)?,
                layout.kv_heads,
            )?;
            Ok((q, k, v))
        }
        Arch::Gpt2 => {
            let y = x.f_layer_norm([layout.hidden], Some(&w[0]), Some(&w[1]), layout.eps, false)?;
            let qkv = y.f_linear(&w[2], Some(&w[3]))?;
            let kv = layout.kv_heads * layout.head_dim;
            let q = heads_of(layout, &qkv.f_narrow(-1, 0, layout.hidden)?, layout.heads)?;
            let k = heads_of(
                layout,
                &qkv.f_narrow(-1, layout.hidden, kv)?,
                layout.kv_heads,
            )?;
            let v = heads_of(
                layout,
                &qkv.f_narrow(-1, layout.hidden + kv, kv)?,
                layout.kv_heads,
            )?;
            Ok((q, k, v))
        }
    }
}

/// The rest of a layer after attention: the output projection of `a` (the
/// attention, heads merged) added to `x`, then the MLP and its residual.
fn feed_forward(layout: &Layout, w: &[Tensor], x: &Tensor, a: &Tensor) -> Result<Tensor, TchError> {
    match layout.arch {
        Arch::Llama => {
            let x = x.f_add(&a.f_linear::<&Tensor>(&w[4], None)?)?;
            let y = rms_norm(&x, &w[5], layout.eps)?;
            let gated = y
                .f_linear::<&Tensor>(&w[6], None)?
                .f_silu()?
                .f_mul(&y.f_linear::<&Tensor>(&w[7], None)?)?;
            x.f_add(&gated.f_linear::<&Tensor>(&w[8], None)?)
        }
        Arch::Gpt2 => {
            let x = x.f_add(&a.f_linear(&w[4], Some(&w[5]))?)?;
            let y = x.f_layer_norm([layout.hidden], Some(&w[6]), Some(&w[7]), layout.eps, false)?;
            // GPT-2's "gelu_new": the tanh approximation, as candle's gelu.
            let y = y
                .f_linear(&w[8], Some(&w[9]))?
                .f_gelu("tanh")?
                .f_linear(&w[10], Some(&w[11]))?;
            x.f_add(&y)
        }
    }
}

/// `x[..:end]` along `dim` as a view, `end` a one-element int64 tensor:
/// `tensor_split` at a tensor index is recorded with the tensor as its
/// argument, where `narrow` would record the length as a constant.
fn first_split(x: &Tensor, end: &Tensor, dim: i64) -> Result<Tensor, TchError> {
    x.f_tensor_split_tensor_indices_or_sections(end, dim)?
        .into_iter()
        .next()
        .ok_or_else(|| TchError::Kind("tensor_split returned nothing".into()))
}

/// RMSNorm as candle's: `x / sqrt(mean(x^2) + eps) * weight`.
fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor, TchError> {
    let rms = x
        .f_square()?
        .f_mean_dim(-1i64, true, Kind::Float)?
        .f_add_scalar(eps)?
        .f_rsqrt()?;
    x.f_mul(&rms)?.f_mul(weight)
}

/// Non-interleaved rotary embedding (Hugging Face layout: rotate halves), as
/// candle_nn's `rope`; `cos`, `sin` are `[t, half]`, `half` is
/// `head_dim / 2` (a model constant, passed in rather than read from a shape).
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, half: i64) -> Result<Tensor, TchError> {
    let x1 = x.f_narrow(-1, 0, half)?;
    let x2 = x.f_narrow(-1, half, half)?;
    let a = x1.f_mul(cos)?.f_sub(&x2.f_mul(sin)?)?;
    let b = x1.f_mul(sin)?.f_add(&x2.f_mul(cos)?)?;
    Tensor::f_cat(&[a, b], -1)
}

/// Scaled dot-product attention with grouped-query heads, as candle's: the
/// query heads of one group are folded into the rows so each KV head is read
/// once without repeating keys. `q` is `[b, heads, t, d]`, `k` and `v`
/// `[b, kv_heads, s, d]`, `mask` `[t, s]` (true: masked).
fn attention(
    layout: &Layout,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor, TchError> {
    let group = layout.heads / layout.kv_heads;
    let scale = 1.0 / (layout.head_dim as f64).sqrt();
    let q = q
        .f_unflatten(1, [layout.kv_heads, group])?
        .f_flatten(2, 3)?;
    let scores = q.f_matmul(&k.f_transpose(-2, -1)?)?.f_mul_scalar(scale)?;
    let scores = match mask {
        Some(m) => scores
            .f_unflatten(2, [group, -1])?
            .f_masked_fill(m, f64::NEG_INFINITY)?
            .f_flatten(2, 3)?,
        None => scores,
    };
    scores
        .f_softmax(-1, Kind::Float)?
        .f_matmul(v)?
        .f_unflatten(2, [group, -1])?
        .f_flatten(1, 2)
}
