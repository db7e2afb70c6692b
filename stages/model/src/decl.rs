//! Model declarations. Latency does not depend on weight values, so a spec can
//! declare a model by architecture; its structure (and so its parameter
//! count) is exact.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A model of the spec: either `synthetic` (declared by architecture, with
/// seeded weights) or `path` (a local model), never both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelDecl {
    /// Unique model name.
    pub name: String,
    /// A synthetic model declared by architecture, with seeded weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<SyntheticArch>,
    /// A local model, relative to the spec file: a directory in the Hugging
    /// Face layout (`config.json` and `*.safetensors`) or a `.gguf` file.
    /// Hashed, never downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// GGUF exports to write beside the safetensors checkpoint (for
    /// llama.cpp and other GGUF runtimes). A q8_0 candle backend adds q8_0
    /// by itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gguf: Vec<GgufType>,
    /// The name a server knows the model by (`model` in OpenAI requests,
    /// an Ollama tag such as `llama3.1:8b`). Alone, it declares a model
    /// that exists only on the server: server backends with a `url` run
    /// it, nothing is prepared, and the server's own facts (digest,
    /// quantisation) identify it. Beside `synthetic` or `path`, it is only
    /// the name sent. Default: the model's `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<String>,
}

impl ModelDecl {
    /// The model exists only on a server (nothing to prepare).
    pub fn server_only(&self) -> bool {
        self.synthetic.is_none() && self.path.is_none()
    }

    /// The name sent to servers.
    pub fn served_name(&self) -> &str {
        self.served.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// RMSNorm, RoPE, SwiGLU, grouped-query attention.
    Llama,
    /// LayerNorm, learned positions, GELU MLP.
    Gpt2,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Gpt2 => "gpt2",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyntheticArch {
    pub arch: Arch,
    #[schemars(range(min = 1))]
    pub layers: u32,
    /// Hidden (embedding) size; must be divisible by `heads`.
    #[schemars(range(min = 1))]
    pub hidden: u32,
    #[schemars(range(min = 1))]
    pub heads: u32,
    /// Key/value heads (grouped-query attention); defaults to `heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_heads: Option<u32>,
    #[schemars(range(min = 1))]
    pub vocab: u32,
    /// MLP inner size; defaults to 4*hidden (gpt2) or 8/3*hidden rounded up
    /// to a multiple of 32 (llama).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intermediate: Option<u32>,
    /// Context length the model supports.
    #[serde(default = "default_max_positions")]
    pub max_positions: u32,
    /// Seed of the model's random weights and of the prompt token ids.
    #[serde(default)]
    pub seed: u64,
}

fn default_max_positions() -> u32 {
    2048
}

/// Structural facts recorded with every measurement (the seed's model
/// registry schema, Appendix BC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelInfo {
    pub name: String,
    pub arch: Arch,
    pub parameter_count: u64,
    /// Parameters read in full for every decoded token: all but the lookup
    /// tables (token embeddings unless tied to the head, learned positions).
    /// The weight term of the roofline.
    #[serde(default)]
    pub streamed_parameters: u64,
    pub n_layer: u32,
    pub n_embd: u32,
    pub n_head: u32,
    pub n_kv_head: u32,
    pub intermediate: u32,
    pub vocab: u32,
    pub max_positions: u32,
    /// Epsilon of the RMSNorm / LayerNorm.
    pub norm_eps: f64,
    /// RoPE base frequency (llama only).
    pub rope_theta: f64,
}

impl ModelInfo {
    /// The structural facts a model implementation relies on: heads divide
    /// the hidden size, KV heads divide heads, nothing is zero, and llama's
    /// rotary head size is even.
    pub fn check_shape(&self) -> Result<(), String> {
        let (h, heads, kv) = (self.n_embd, self.n_head, self.n_kv_head);
        if h == 0 || heads == 0 || kv == 0 || self.n_layer == 0 || self.vocab == 0 {
            return Err(format!(
                "hidden {h}, heads {heads}, KV heads {kv}, layers {}, vocab {}: none may be zero",
                self.n_layer, self.vocab
            ));
        }
        if h % heads != 0 || heads % kv != 0 {
            return Err(format!(
                "hidden size {h} / heads {heads} / KV heads {kv} do not divide evenly"
            ));
        }
        if self.arch == Arch::Llama && !self.head_dim().is_multiple_of(2) {
            return Err(format!("llama head size {} must be even", self.head_dim()));
        }
        Ok(())
    }

    pub fn head_dim(&self) -> u32 {
        self.n_embd / self.n_head.max(1)
    }

    /// Values of K and V cached per token per sequence.
    pub fn kv_values_per_token(&self) -> u64 {
        2 * u64::from(self.n_layer) * u64::from(self.n_kv_head) * u64::from(self.head_dim())
    }
}

/// Norm epsilon of synthetic models (the Llama and GPT-2 default).
pub const SYNTHETIC_NORM_EPS: f64 = 1e-5;
/// RoPE base of synthetic llama models.
pub const SYNTHETIC_ROPE_THETA: f64 = 10_000.0;

impl SyntheticArch {
    pub fn kv_heads(&self) -> u32 {
        self.kv_heads.unwrap_or(self.heads)
    }

    pub fn head_dim(&self) -> u32 {
        self.hidden / self.heads.max(1)
    }

    pub fn intermediate(&self) -> u32 {
        self.intermediate.unwrap_or(match self.arch {
            Arch::Gpt2 => 4 * self.hidden,
            Arch::Llama => (8 * self.hidden).div_ceil(3).div_ceil(32) * 32,
        })
    }

    /// Exact parameter count of the declared architecture.
    pub fn parameter_count(&self) -> u64 {
        let h = u64::from(self.hidden);
        let v = u64::from(self.vocab);
        let l = u64::from(self.layers);
        let kv = u64::from(self.kv_heads()) * u64::from(self.head_dim());
        let ff = u64::from(self.intermediate());
        match self.arch {
            Arch::Llama => {
                // q, o: h*h; k, v: h*kv; gate, up, down: h*ff; two RMSNorm weights.
                let per_layer = 2 * h * h + 2 * h * kv + 3 * h * ff + 2 * h;
                // embeddings + final norm + untied lm head
                v * h + l * per_layer + h + h * v
            }
            Arch::Gpt2 => {
                // qkv and proj with biases, fc and proj with biases, two LayerNorms.
                let attn = h * (h + 2 * kv) + (h + 2 * kv) + h * h + h;
                let mlp = h * ff + ff + ff * h + h;
                let norms = 4 * h;
                // token + position embeddings, final LayerNorm; lm head tied.
                v * h + u64::from(self.max_positions) * h + l * (attn + mlp + norms) + 2 * h
            }
        }
    }

    /// Values of K and V cached per token per sequence.
    pub fn kv_values_per_token(&self) -> u64 {
        2 * u64::from(self.layers) * u64::from(self.kv_heads()) * u64::from(self.head_dim())
    }

    /// The same architecture with every default made explicit, so that
    /// writing a default out in the spec does not change a key.
    pub fn resolved(&self) -> SyntheticArch {
        SyntheticArch {
            kv_heads: Some(self.kv_heads()),
            intermediate: Some(self.intermediate()),
            ..self.clone()
        }
    }

    pub fn info(&self, name: &str) -> ModelInfo {
        ModelInfo {
            name: name.to_string(),
            arch: self.arch,
            parameter_count: self.parameter_count(),
            streamed_parameters: self.parameter_count()
                - match self.arch {
                    Arch::Llama => u64::from(self.vocab) * u64::from(self.hidden),
                    Arch::Gpt2 => u64::from(self.max_positions) * u64::from(self.hidden),
                },
            n_layer: self.layers,
            n_embd: self.hidden,
            n_head: self.heads,
            n_kv_head: self.kv_heads(),
            intermediate: self.intermediate(),
            vocab: self.vocab,
            max_positions: self.max_positions,
            norm_eps: SYNTHETIC_NORM_EPS,
            rope_theta: SYNTHETIC_ROPE_THETA,
        }
    }
}

/// GGUF weight formats assay exports.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum GgufType {
    F16,
    #[serde(rename = "q8_0")]
    Q8_0,
}

impl GgufType {
    pub fn as_str(self) -> &'static str {
        match self {
            GgufType::F16 => "f16",
            GgufType::Q8_0 => "q8_0",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch(a: Arch) -> SyntheticArch {
        SyntheticArch {
            arch: a,
            layers: 2,
            hidden: 64,
            heads: 4,
            kv_heads: Some(2),
            vocab: 100,
            intermediate: Some(128),
            max_positions: 32,
            seed: 0,
        }
    }

    #[test]
    fn llama_parameter_count_by_hand() {
        // per layer: q,o 2*64*64=8192; k,v 2*64*32=4096; mlp 3*64*128=24576; norms 128
        // = 36992; x2 = 73984; embed 6400 + head 6400 + final norm 64
        assert_eq!(
            arch(Arch::Llama).parameter_count(),
            73984 + 6400 + 6400 + 64
        );
    }

    #[test]
    fn gpt2_parameter_count_by_hand() {
        // kv = 2 heads * 16 = 32; attn = 64*(64+64) + 128 + 64*64 + 64 = 12480
        // mlp = 64*128 + 128 + 128*64 + 64 = 16576; norms 256 => 29312 per layer
        let per_layer = 12480 + 16576 + 256;
        assert_eq!(
            arch(Arch::Gpt2).parameter_count(),
            6400 + 32 * 64 + 2 * per_layer + 128
        );
    }

    #[test]
    fn llama_default_intermediate_rounds_to_32() {
        let mut a = arch(Arch::Llama);
        a.intermediate = None;
        a.hidden = 256;
        assert_eq!(a.intermediate(), 704); // 8*256/3 = 682.67 -> 683 -> 704
    }
}
