//! Seeded weights for a declared architecture, written as a Hugging Face
//! style checkpoint (safetensors, config.json, tokenizer.json).
//!
//! Each tensor draws from its own ChaCha stream keyed by (seed, tensor name),
//! so the bytes are a pure function of the declaration, independent of
//! generation order and thread count. Values are uniform with standard
//! deviation 0.02 (norm weights 1 +/- 0.1): latency does not depend on them,
//! and uniform draws need no transcendental functions.

use std::collections::BTreeMap;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde_json::{Value, json};

use crate::decl::{Arch, SYNTHETIC_NORM_EPS, SYNTHETIC_ROPE_THETA, SyntheticArch};

/// How a tensor is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Init {
    /// Uniform, std 0.02.
    Weight,
    /// 1 + uniform in [-0.1, 0.1).
    NormWeight,
}

/// One tensor of the checkpoint: HF name, shape, initialisation.
#[derive(Debug, Clone)]
struct Spec {
    name: String,
    shape: Vec<usize>,
    init: Init,
}

fn tensor_specs(a: &SyntheticArch) -> Vec<Spec> {
    let h = a.hidden as usize;
    let v = a.vocab as usize;
    let kv = (a.kv_heads() * a.head_dim()) as usize;
    let f = a.intermediate() as usize;
    let mut out = Vec::new();
    let mut t = |name: String, shape: &[usize], init: Init| {
        out.push(Spec {
            name,
            shape: shape.to_vec(),
            init,
        })
    };
    match a.arch {
        Arch::Llama => {
            t("model.embed_tokens.weight".into(), &[v, h], Init::Weight);
            for i in 0..a.layers {
                let p = format!("model.layers.{i}");
                t(
                    format!("{p}.input_layernorm.weight"),
                    &[h],
                    Init::NormWeight,
                );
                t(
                    format!("{p}.self_attn.q_proj.weight"),
                    &[h, h],
                    Init::Weight,
                );
                t(
                    format!("{p}.self_attn.k_proj.weight"),
                    &[kv, h],
                    Init::Weight,
                );
                t(
                    format!("{p}.self_attn.v_proj.weight"),
                    &[kv, h],
                    Init::Weight,
                );
                t(
                    format!("{p}.self_attn.o_proj.weight"),
                    &[h, h],
                    Init::Weight,
                );
                t(
                    format!("{p}.post_attention_layernorm.weight"),
                    &[h],
                    Init::NormWeight,
                );
                t(format!("{p}.mlp.gate_proj.weight"), &[f, h], Init::Weight);
                t(format!("{p}.mlp.up_proj.weight"), &[f, h], Init::Weight);
                t(format!("{p}.mlp.down_proj.weight"), &[h, f], Init::Weight);
            }
            t("model.norm.weight".into(), &[h], Init::NormWeight);
            t("lm_head.weight".into(), &[v, h], Init::Weight);
        }
        Arch::Gpt2 => {
            t("wte.weight".into(), &[v, h], Init::Weight);
            t(
                "wpe.weight".into(),
                &[a.max_positions as usize, h],
                Init::Weight,
            );
            for i in 0..a.layers {
                let p = format!("h.{i}");
                t(format!("{p}.ln_1.weight"), &[h], Init::NormWeight);
                t(format!("{p}.ln_1.bias"), &[h], Init::Weight);
                // Conv1D layout: [in, out].
                t(
                    format!("{p}.attn.c_attn.weight"),
                    &[h, h + 2 * kv],
                    Init::Weight,
                );
                t(format!("{p}.attn.c_attn.bias"), &[h + 2 * kv], Init::Weight);
                t(format!("{p}.attn.c_proj.weight"), &[h, h], Init::Weight);
                t(format!("{p}.attn.c_proj.bias"), &[h], Init::Weight);
                t(format!("{p}.ln_2.weight"), &[h], Init::NormWeight);
                t(format!("{p}.ln_2.bias"), &[h], Init::Weight);
                t(format!("{p}.mlp.c_fc.weight"), &[h, f], Init::Weight);
                t(format!("{p}.mlp.c_fc.bias"), &[f], Init::Weight);
                t(format!("{p}.mlp.c_proj.weight"), &[f, h], Init::Weight);
                t(format!("{p}.mlp.c_proj.bias"), &[h], Init::Weight);
            }
            t("ln_f.weight".into(), &[h], Init::NormWeight);
            t("ln_f.bias".into(), &[h], Init::Weight);
        }
    }
    out
}

fn stream(seed: u64, name: &str) -> ChaCha8Rng {
    let mut h = blake3::Hasher::new();
    h.update(b"assay synthetic weights v1\0");
    h.update(&seed.to_le_bytes());
    h.update(name.as_bytes());
    ChaCha8Rng::from_seed(*h.finalize().as_bytes())
}

fn values(spec: &Spec, seed: u64) -> Vec<u8> {
    let n: usize = spec.shape.iter().product();
    let mut rng = stream(seed, &spec.name);
    // Uniform on [-a, a) has std a / sqrt(3).
    let a = 0.02_f32 * 3f32.sqrt();
    let mut bytes = Vec::with_capacity(n * 4);
    for _ in 0..n {
        let u: f32 = rng.random_range(-1.0f32..1.0);
        let v = match spec.init {
            Init::Weight => u * a,
            Init::NormWeight => 1.0 + 0.1 * u,
        };
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

/// The f32 safetensors checkpoint of a declared architecture.
pub fn safetensors(arch: &SyntheticArch) -> Result<Vec<u8>, String> {
    let specs = tensor_specs(arch);
    let data: Vec<Vec<u8>> = specs.par_iter().map(|s| values(s, arch.seed)).collect();
    let views = specs
        .iter()
        .zip(&data)
        .map(|(s, d)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.shape.clone(), d)
                .map(|v| (s.name.clone(), v))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::tensor::serialize(views, None).map_err(|e| e.to_string())
}

/// Number of values in the checkpoint (equals the declared parameter count).
pub fn value_count(arch: &SyntheticArch) -> u64 {
    tensor_specs(arch)
        .iter()
        .map(|s| s.shape.iter().product::<usize>() as u64)
        .sum()
}

/// A Hugging Face `config.json`, so the directory loads as a checkpoint
/// elsewhere too. GPT-2 with fewer KV heads than heads is an assay
/// extension (`n_head_kv`).
pub fn config_json(arch: &SyntheticArch) -> Value {
    let a = arch.resolved();
    let mut c = match a.arch {
        Arch::Llama => json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": a.hidden,
            "intermediate_size": a.intermediate(),
            "num_attention_heads": a.heads,
            "num_hidden_layers": a.layers,
            "num_key_value_heads": a.kv_heads(),
            "vocab_size": a.vocab,
            "max_position_embeddings": a.max_positions,
            "rms_norm_eps": SYNTHETIC_NORM_EPS,
            "rope_theta": SYNTHETIC_ROPE_THETA,
            "hidden_act": "silu",
            "tie_word_embeddings": false,
        }),
        Arch::Gpt2 => json!({
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "n_embd": a.hidden,
            "n_inner": a.intermediate(),
            "n_head": a.heads,
            "n_head_kv": a.kv_heads(),
            "n_layer": a.layers,
            "n_positions": a.max_positions,
            "vocab_size": a.vocab,
            "layer_norm_epsilon": SYNTHETIC_NORM_EPS,
            "activation_function": "gelu_new",
        }),
    };
    if let Some(map) = c.as_object_mut() {
        map.insert("torch_dtype".into(), json!("float32"));
        map.insert("bos_token_id".into(), json!(BOS));
        map.insert("eos_token_id".into(), json!(EOS));
        map.insert("assay_synthetic".into(), json!(a));
    }
    c
}

pub const UNK: u32 = 0;
pub const BOS: u32 = 1;
pub const EOS: u32 = 2;

/// The token strings of a synthetic vocabulary: three specials, then the
/// 256 byte-fallback tokens llama.cpp expects, then filler pieces.
pub fn vocab_tokens(vocab: u32) -> Vec<String> {
    (0..vocab)
        .map(|i| match i {
            UNK => "<unk>".to_string(),
            BOS => "<s>".to_string(),
            EOS => "</s>".to_string(),
            3..=258 => format!("<0x{:02X}>", i - 3),
            _ => format!("\u{2581}t{i}"),
        })
        .collect()
}

/// A minimal valid `tokenizer.json` (word-level over the synthetic
/// vocabulary). Prompts enter as token ids, so it is never on the timed path.
pub fn tokenizer_json(vocab: u32) -> Value {
    let map: BTreeMap<String, u32> = vocab_tokens(vocab)
        .into_iter()
        .enumerate()
        .map(|(i, t)| (t, i as u32))
        .collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [
            {"id": UNK, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": BOS, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": EOS, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
        ],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": map, "unk_token": "<unk>"},
    })
}

/// The tiny models of the backend tests, shared across crates so that every
/// backend is tested on the same weights (candle, ONNX Runtime,
/// libtorch): 2 layers, grouped-query attention (4 heads, 2 KV heads).
pub fn tiny(arch: Arch) -> SyntheticArch {
    SyntheticArch {
        arch,
        layers: 2,
        hidden: 64,
        heads: 4,
        kv_heads: Some(2),
        vocab: 300,
        intermediate: Some(96),
        max_positions: 64,
        seed: 7,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn checkpoint_holds_exactly_the_declared_parameters() {
        for arch in [Arch::Llama, Arch::Gpt2] {
            let a = tiny(arch);
            assert_eq!(value_count(&a), a.parameter_count(), "{arch:?}");
        }
    }

    #[test]
    fn same_declaration_same_bytes_other_seed_other_bytes() {
        let a = tiny(Arch::Llama);
        let x = safetensors(&a).unwrap();
        assert_eq!(x, safetensors(&a).unwrap());
        let mut b = a.clone();
        b.seed = 8;
        assert_ne!(x, safetensors(&b).unwrap());
    }

    #[test]
    fn weights_have_the_declared_spread() {
        let spec = Spec {
            name: "w".into(),
            shape: vec![100_000],
            init: Init::Weight,
        };
        let v: Vec<f32> = values(&spec, 1)
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 1e-3, "{mean}");
        assert!((var.sqrt() - 0.02).abs() < 5e-4, "{}", var.sqrt());
    }
}
