//! The llama and GPT-2 decoders as ONNX graphs, op for op the computation
//! of `measure::candle::{llama, gpt2}` so that ONNX Runtime and candle run
//! the same model (their logits are compared in `measure::ort`'s tests).
//!
//! Norms, GELU, SiLU and attention are composed of standard ONNX
//! operators, the way `torch.onnx` exports them, rather than written as ONNX
//! Runtime's contrib operators: the graph optimiser then has real work to
//! do at level `all`. With ONNX Runtime 1.28 on the CPU it fuses RMSNorm
//! into `SimplifiedLayerNormalization`, the decomposed LayerNorm into
//! `LayerNormalization`, GELU into `com.microsoft.FastGelu`, SiLU into
//! `com.microsoft.QuickGelu`, and the key transpose and the score scale
//! into `com.microsoft.FusedMatMul` (tiny llama: 134 nodes to 111, tiny
//! GPT-2: 135 to 75). The node counts before and after are evidence that
//! the "compiled" configuration differs from the exported one; at level
//! `disabled` the same graph runs as written. (Its `SkipLayerNormFusion`
//! does not apply to a pre-norm decoder: it wants the residual sum to feed
//! the norm alone and a fixed sequence length.)
//!
//! Every constant is an initializer (no `Constant` nodes), so the node
//! count before optimisation counts computation only and constant folding
//! cannot pass for fusion.

use candle_core::Tensor;

use super::graph::{GraphBuilder, attr_int, attr_ints};
use super::proto::data_type;
use crate::decl::{Arch, ModelInfo};
use crate::weights::{SafetensorsSource, WeightSource};

/// Dimensions every layer uses.
struct Shape {
    h: i64,
    heads: i64,
    kv_heads: i64,
    head_dim: i64,
    eps: f32,
}

impl Shape {
    fn of(info: &ModelInfo) -> Shape {
        Shape {
            h: i64::from(info.n_embd),
            heads: i64::from(info.n_head),
            kv_heads: i64::from(info.n_kv_head),
            head_dim: i64::from(info.head_dim()),
            eps: info.norm_eps as f32,
        }
    }

    fn kv(&self) -> i64 {
        self.kv_heads * self.head_dim
    }
}

/// Tensors computed once per call from the past length and shared by all
/// layers.
struct Prelude {
    /// Absolute positions of the new tokens, int64 `[seq]`.
    positions: String,
    /// Additive causal mask, f32 `[seq, past_seq + seq]`: 0 where a query at
    /// absolute position p may attend key j (j <= p), -inf elsewhere.
    mask: String,
}

fn err(e: candle_core::Error) -> String {
    crate::weights::error_text(&e)
}

fn values(t: &Tensor) -> Result<Vec<f32>, String> {
    t.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(err)
}

/// A projection's weight for `MatMul(x, W)`: candle keeps `[out, in]` and
/// computes `x W^T`; ONNX `MatMul` wants `[in, out]`, so the transpose is
/// done once here, as `torch.onnx` does for `nn.Linear`, rather than by a
/// `Transpose` node every step (which level `disabled` would pay for).
fn matmul_weight(
    g: &mut GraphBuilder,
    src: &SafetensorsSource,
    name: &str,
) -> Result<String, String> {
    let w = src.torch_layout(name).map_err(err)?;
    let (out, inp) = w.dims2().map_err(err)?;
    let wt = w.t().and_then(|t| t.contiguous()).map_err(err)?;
    Ok(g.weight(
        &format!("{name}.T"),
        &[inp as i64, out as i64],
        &values(&wt)?,
    ))
}

/// A tensor as stored (norm weights, biases, embeddings), under its GGUF
/// name.
fn plain(g: &mut GraphBuilder, src: &SafetensorsSource, name: &str) -> Result<String, String> {
    let t = src.torch_layout(name).map_err(err)?;
    let dims: Vec<i64> = t.dims().iter().map(|d| *d as i64).collect();
    Ok(g.weight(name, &dims, &values(&t)?))
}

/// `y = x W^T (+ b)`.
fn linear(
    g: &mut GraphBuilder,
    src: &SafetensorsSource,
    x: &str,
    weight: &str,
    bias: Option<&str>,
) -> Result<String, String> {
    let w = matmul_weight(g, src, weight)?;
    let y = g.op("MatMul", &[x, &w], vec![]);
    Ok(match bias {
        Some(b) => {
            let b = plain(g, src, b)?;
            g.op("Add", &[&y, &b], vec![])
        }
        None => y,
    })
}

/// RMSNorm as `x / sqrt(mean(x^2) + eps) * w`: ONNX Runtime's
/// `SimplifiedLayerNormFusion` pattern.
fn rms_norm(g: &mut GraphBuilder, x: &str, w: &str, eps: f32) -> String {
    let two = g.float(2.0);
    let sq = g.op("Pow", &[x, &two], vec![]);
    let ms = reduce_mean(g, &sq);
    let eps = g.float(eps);
    let var = g.op("Add", &[&ms, &eps], vec![]);
    let rms = g.op("Sqrt", &[&var], vec![]);
    let n = g.op("Div", &[x, &rms], vec![]);
    g.op("Mul", &[&n, w], vec![])
}

/// LayerNorm with bias, decomposed: ONNX Runtime's `LayerNormFusion`
/// pattern.
fn layer_norm(g: &mut GraphBuilder, x: &str, w: &str, b: &str, eps: f32) -> String {
    let mean = reduce_mean(g, x);
    let d = g.op("Sub", &[x, &mean], vec![]);
    let two = g.float(2.0);
    let sq = g.op("Pow", &[&d, &two], vec![]);
    let var = reduce_mean(g, &sq);
    let eps = g.float(eps);
    let ve = g.op("Add", &[&var, &eps], vec![]);
    let sd = g.op("Sqrt", &[&ve], vec![]);
    let n = g.op("Div", &[&d, &sd], vec![]);
    let m = g.op("Mul", &[&n, w], vec![]);
    g.op("Add", &[&m, b], vec![])
}

fn reduce_mean(g: &mut GraphBuilder, x: &str) -> String {
    // Opset 17: axes is still an attribute of ReduceMean.
    g.op(
        "ReduceMean",
        &[x],
        vec![attr_ints("axes", &[-1]), attr_int("keepdims", 1)],
    )
}

/// GELU, tanh approximation (GPT-2's `gelu_new`, candle's `gelu`), in the
/// form ONNX Runtime's `FastGeluFusion` recognises:
/// `(0.5 x) (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
fn gelu_tanh(g: &mut GraphBuilder, x: &str) -> String {
    let three = g.float(3.0);
    let cube = g.op("Pow", &[x, &three], vec![]);
    let c = g.float(0.044_715);
    let cube = g.op("Mul", &[&cube, &c], vec![]);
    let inner = g.op("Add", &[x, &cube], vec![]);
    let k = g.float((2.0f64 / std::f64::consts::PI).sqrt() as f32);
    let inner = g.op("Mul", &[&inner, &k], vec![]);
    let t = g.op("Tanh", &[&inner], vec![]);
    let one = g.float(1.0);
    let t = g.op("Add", &[&t, &one], vec![]);
    let half = g.float(0.5);
    let hx = g.op("Mul", &[x, &half], vec![]);
    g.op("Mul", &[&hx, &t], vec![])
}

/// Past length (from `past_key.0`), positions of the new tokens and the
/// causal mask, all computed in the graph: the caller feeds only ids and
/// the cache.
fn prelude(g: &mut GraphBuilder) -> Prelude {
    g.set_scope("prelude");
    let axis0 = || vec![attr_int("axis", 0)];
    let past_shape = g.op("Shape", &["past_key.0"], vec![]);
    let two = g.int(2);
    let past = g.op("Gather", &[&past_shape, &two], axis0());
    let ids_shape = g.op("Shape", &["input_ids"], vec![]);
    let one = g.int(1);
    let seq = g.op("Gather", &[&ids_shape, &one], axis0());
    let total = g.op("Add", &[&past, &seq], vec![]);
    let positions = g.op("Range", &[&past, &total, &one], vec![]);
    let zero = g.int(0);
    let keys = g.op("Range", &[&zero, &total, &one], vec![]);
    let ax0 = g.ints(&[0]);
    let ax1 = g.ints(&[1]);
    let keys_row = g.op("Unsqueeze", &[&keys, &ax0], vec![]);
    let query_col = g.op("Unsqueeze", &[&positions, &ax1], vec![]);
    let future = g.op("Greater", &[&keys_row, &query_col], vec![]);
    let neg_inf = g.float(f32::NEG_INFINITY);
    let zero_f = g.float(0.0);
    let mask = g.op("Where", &[&future, &neg_inf, &zero_f], vec![]);
    Prelude { positions, mask }
}

/// Queries `[b, t, heads * d]` to `[b, kv_heads, group, t, d]`: the query
/// heads of one group folded beside their KV head (candle's
/// `layers::attention` reshape), so each KV head is read once and never
/// repeated. Reshapes use only copied (`0`) and fixed sizes, never `-1`, so
/// ONNX shape inference keeps the symbolic `batch` and `seq` through the
/// attention block (shape-dependent fusions need known shapes).
fn split_query_heads(g: &mut GraphBuilder, s: &Shape, q: &str) -> String {
    let group = s.heads / s.kv_heads;
    let shape = g.ints(&[0, 0, s.kv_heads, group, s.head_dim]);
    let q = g.op("Reshape", &[q, &shape], vec![]);
    g.op(
        "Transpose",
        &[&q],
        vec![attr_ints("perm", &[0, 2, 3, 1, 4])],
    )
}

/// Keys or values `[b, t, kv_heads * d]` to `[b, kv_heads, t, d]` (the
/// cache layout).
fn split_kv_heads(g: &mut GraphBuilder, s: &Shape, x: &str) -> String {
    let shape = g.ints(&[0, 0, s.kv_heads, s.head_dim]);
    let x = g.op("Reshape", &[x, &shape], vec![]);
    g.op("Transpose", &[&x], vec![attr_ints("perm", &[0, 2, 1, 3])])
}

/// Attention of one layer over the cache: appends `k`, `v`
/// (`[b, kv_heads, t, d]`) to the past (`present_*.{layer}`, graph
/// outputs), then grouped-query scaled dot-product attention of `q`
/// (`[b, kv_heads, group, t, d]`) as candle's `layers::attention` computes
/// it. Returns `[b, t, h]`.
fn attention(
    g: &mut GraphBuilder,
    s: &Shape,
    layer: u32,
    q: &str,
    k: &str,
    v: &str,
    mask: &str,
) -> String {
    let present_k = format!("present_key.{layer}");
    let present_v = format!("present_value.{layer}");
    g.op_into(
        "Concat",
        &[&format!("past_key.{layer}"), k],
        &present_k,
        vec![attr_int("axis", 2)],
    );
    g.op_into(
        "Concat",
        &[&format!("past_value.{layer}"), v],
        &present_v,
        vec![attr_int("axis", 2)],
    );
    // [b, kv_heads, 1, s, d]: broadcast over the group axis.
    let ax2 = g.ints(&[2]);
    let k5 = g.op("Unsqueeze", &[&present_k, &ax2], vec![]);
    let kt = g.op(
        "Transpose",
        &[&k5],
        vec![attr_ints("perm", &[0, 1, 2, 4, 3])],
    );
    let scores = g.op("MatMul", &[q, &kt], vec![]);
    let scale = g.float(1.0 / (s.head_dim as f32).sqrt());
    let scores = g.op("Mul", &[&scores, &scale], vec![]);
    let scores = g.op("Add", &[&scores, mask], vec![]);
    let probs = g.op("Softmax", &[&scores], vec![attr_int("axis", -1)]);
    let v5 = g.op("Unsqueeze", &[&present_v, &ax2], vec![]);
    let a = g.op("MatMul", &[&probs, &v5], vec![]);
    // [b, kv_heads, group, t, d] -> [b, t, kv_heads, group, d] -> [b, t, h]
    let a = g.op(
        "Transpose",
        &[&a],
        vec![attr_ints("perm", &[0, 3, 1, 2, 4])],
    );
    let out_shape = g.ints(&[0, 0, s.h]);
    g.op("Reshape", &[&a, &out_shape], vec![])
}

/// Rotary tables for the new tokens: `cos`, `sin` of `[seq, head_dim]`,
/// each half repeating the `[seq, head_dim / 2]` angles, with the
/// inverse frequencies every backend uses (`crate::rope`).
fn rotary_tables(g: &mut GraphBuilder, info: &ModelInfo, positions: &str) -> (String, String) {
    let head_dim = info.head_dim() as usize;
    let inv_freq = crate::rope::inverse_frequencies(head_dim, info.rope_theta);
    let inv = g.floats(&inv_freq);
    let p = g.op(
        "Cast",
        &[positions],
        vec![attr_int("to", i64::from(data_type::FLOAT))],
    );
    let ax1 = g.ints(&[1]);
    let p = g.op("Unsqueeze", &[&p, &ax1], vec![]);
    let angles = g.op("Mul", &[&p, &inv], vec![]);
    let angles = g.op("Concat", &[&angles, &angles], vec![attr_int("axis", -1)]);
    let cos = g.op("Cos", &[&angles], vec![]);
    let sin = g.op("Sin", &[&angles], vec![]);
    (cos, sin)
}

/// Rotate `x` (`[..., t, d]`: keys, or grouped queries) by halves (Hugging Face layout, candle's
/// non-interleaved `rope`): `x cos + rotate_half(x) sin`.
fn rope(g: &mut GraphBuilder, x: &str, cos: &str, sin: &str) -> String {
    let halves = g.op_n("Split", &[x], 2, vec![attr_int("axis", -1)]);
    let neg = g.op("Neg", &[&halves[1]], vec![]);
    let rotated = g.op("Concat", &[&neg, &halves[0]], vec![attr_int("axis", -1)]);
    let a = g.op("Mul", &[x, cos], vec![]);
    let b = g.op("Mul", &[&rotated, sin], vec![]);
    g.op("Add", &[&a, &b], vec![])
}

/// Last position's hidden state, `[b, h]` (candle computes logits only
/// there).
fn last_position(g: &mut GraphBuilder, x: &str) -> String {
    let last = g.int(-1);
    g.op("Gather", &[x, &last], vec![attr_int("axis", 1)])
}

/// The output head: `Gemm` with `transB` reads the `[vocab, h]` matrix as
/// stored, so a head tied to the token embeddings needs no second copy.
fn head(g: &mut GraphBuilder, src: &SafetensorsSource, x: &str, embed: &str) -> Result<(), String> {
    let w = if src.has("output.weight") {
        plain(g, src, "output.weight")?
    } else {
        embed.to_string()
    };
    g.op_into("Gemm", &[x, &w], "logits", vec![attr_int("transB", 1)]);
    Ok(())
}

pub fn llama(
    g: &mut GraphBuilder,
    info: &ModelInfo,
    src: &SafetensorsSource,
) -> Result<(), String> {
    let s = Shape::of(info);
    let pre = prelude(g);
    let (cos, sin) = rotary_tables(g, info, &pre.positions);
    g.set_scope("embed");
    let embed = plain(g, src, "token_embd.weight")?;
    let mut x = g.op("Gather", &[&embed, "input_ids"], vec![attr_int("axis", 0)]);
    for i in 0..info.n_layer {
        let n = |part: &str| format!("blk.{i}.{part}.weight");
        g.set_scope(&format!("blk.{i}/attn"));
        let w = plain(g, src, &n("attn_norm"))?;
        let y = rms_norm(g, &x, &w, s.eps);
        let q = linear(g, src, &y, &n("attn_q"), None)?;
        let k = linear(g, src, &y, &n("attn_k"), None)?;
        let v = linear(g, src, &y, &n("attn_v"), None)?;
        let q = split_query_heads(g, &s, &q);
        let k = split_kv_heads(g, &s, &k);
        let v = split_kv_heads(g, &s, &v);
        let q = rope(g, &q, &cos, &sin);
        let k = rope(g, &k, &cos, &sin);
        let a = attention(g, &s, i, &q, &k, &v, &pre.mask);
        let o = linear(g, src, &a, &n("attn_output"), None)?;
        x = g.op("Add", &[&x, &o], vec![]);
        g.set_scope(&format!("blk.{i}/ffn"));
        let w = plain(g, src, &n("ffn_norm"))?;
        let y = rms_norm(g, &x, &w, s.eps);
        let gate = linear(g, src, &y, &n("ffn_gate"), None)?;
        let sig = g.op("Sigmoid", &[&gate], vec![]);
        let silu = g.op("Mul", &[&gate, &sig], vec![]);
        let up = linear(g, src, &y, &n("ffn_up"), None)?;
        let gated = g.op("Mul", &[&silu, &up], vec![]);
        let down = linear(g, src, &gated, &n("ffn_down"), None)?;
        x = g.op("Add", &[&x, &down], vec![]);
    }
    g.set_scope("head");
    let last = last_position(g, &x);
    let w = plain(g, src, "output_norm.weight")?;
    let last = rms_norm(g, &last, &w, s.eps);
    head(g, src, &last, &embed)
}

pub fn gpt2(g: &mut GraphBuilder, info: &ModelInfo, src: &SafetensorsSource) -> Result<(), String> {
    let s = Shape::of(info);
    let pre = prelude(g);
    g.set_scope("embed");
    let wte = plain(g, src, "token_embd.weight")?;
    let wpe = plain(g, src, "position_embd.weight")?;
    let tokens = g.op("Gather", &[&wte, "input_ids"], vec![attr_int("axis", 0)]);
    let positions = g.op("Gather", &[&wpe, &pre.positions], vec![attr_int("axis", 0)]);
    let mut x = g.op("Add", &[&tokens, &positions], vec![]);
    for i in 0..info.n_layer {
        let n = |part: &str, what: &str| format!("blk.{i}.{part}.{what}");
        g.set_scope(&format!("blk.{i}/attn"));
        let (w, b) = (
            plain(g, src, &n("attn_norm", "weight"))?,
            plain(g, src, &n("attn_norm", "bias"))?,
        );
        let y = layer_norm(g, &x, &w, &b, s.eps);
        let qkv = linear(
            g,
            src,
            &y,
            &n("attn_qkv", "weight"),
            Some(&n("attn_qkv", "bias")),
        )?;
        let sizes = g.ints(&[s.h, s.kv(), s.kv()]);
        let parts = g.op_n("Split", &[&qkv, &sizes], 3, vec![attr_int("axis", -1)]);
        let q = split_query_heads(g, &s, &parts[0]);
        let k = split_kv_heads(g, &s, &parts[1]);
        let v = split_kv_heads(g, &s, &parts[2]);
        let a = attention(g, &s, i, &q, &k, &v, &pre.mask);
        let o = linear(
            g,
            src,
            &a,
            &n("attn_output", "weight"),
            Some(&n("attn_output", "bias")),
        )?;
        x = g.op("Add", &[&x, &o], vec![]);
        g.set_scope(&format!("blk.{i}/ffn"));
        let (w, b) = (
            plain(g, src, &n("ffn_norm", "weight"))?,
            plain(g, src, &n("ffn_norm", "bias"))?,
        );
        let y = layer_norm(g, &x, &w, &b, s.eps);
        let up = linear(
            g,
            src,
            &y,
            &n("ffn_up", "weight"),
            Some(&n("ffn_up", "bias")),
        )?;
        let act = gelu_tanh(g, &up);
        let down = linear(
            g,
            src,
            &act,
            &n("ffn_down", "weight"),
            Some(&n("ffn_down", "bias")),
        )?;
        x = g.op("Add", &[&x, &down], vec![]);
    }
    g.set_scope("head");
    let last = last_position(g, &x);
    let (w, b) = (
        plain(g, src, "output_norm.weight")?,
        plain(g, src, "output_norm.bias")?,
    );
    let last = layer_norm(g, &last, &w, &b, s.eps);
    head(g, src, &last, &wte)
}

/// Build the decoder of `info.arch`.
pub fn build(
    g: &mut GraphBuilder,
    info: &ModelInfo,
    src: &SafetensorsSource,
) -> Result<(), String> {
    match info.arch {
        Arch::Llama => llama(g, info, src),
        Arch::Gpt2 => gpt2(g, info, src),
    }
}
