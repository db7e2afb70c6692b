//! Local models: a Hugging Face directory (`config.json` plus safetensors
//! shards) or a GGUF file. They are hashed where they lie, never copied into
//! the store and never downloaded.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::decl::{Arch, ModelInfo};

/// What kind of local model a path is.
#[derive(Debug, Clone, PartialEq)]
pub enum LocalLayout {
    HfDir {
        config: PathBuf,
        shards: Vec<PathBuf>,
        tokenizer: Option<PathBuf>,
    },
    Gguf(PathBuf),
}

pub fn layout(path: &Path) -> Result<LocalLayout, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_file() {
        return if path.extension().is_some_and(|x| x == "gguf") {
            Ok(LocalLayout::Gguf(path.to_path_buf()))
        } else {
            Err(format!(
                "{}: a model file must be GGUF (.gguf); a Hugging Face model is a directory",
                path.display()
            ))
        };
    }
    let config = path.join("config.json");
    if !config.is_file() {
        return Err(format!(
            "{}: no config.json (Hugging Face layout expected)",
            path.display()
        ));
    }
    let mut shards: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    shards.sort();
    // Some repositories ship a consolidated copy beside the HF shards: the
    // index, when present, names the shards; otherwise prefer `model*`.
    let index = path.join("model.safetensors.index.json");
    if let Ok(text) = std::fs::read_to_string(&index) {
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", index.display()))?;
        let named: std::collections::BTreeSet<&str> = v["weight_map"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        shards.retain(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| named.contains(n))
        });
    } else if shards.iter().any(|p| is_model_shard(p)) {
        shards.retain(|p| is_model_shard(p));
    }
    if shards.is_empty() {
        return Err(format!("{}: no *.safetensors weights", path.display()));
    }
    let tokenizer = Some(path.join("tokenizer.json")).filter(|p| p.is_file());
    Ok(LocalLayout::HfDir {
        config,
        shards,
        tokenizer,
    })
}

/// Tensors some checkpoints store that are not parameters: GPT-2's causal
/// mask buffers and old llama rotary frequency tables.
fn is_buffer(name: &str) -> bool {
    name.ends_with(".attn.bias") && !name.contains("c_attn")
        || name.ends_with(".attn.masked_bias")
        || name.ends_with("rotary_emb.inv_freq")
}

fn is_model_shard(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("model"))
}

impl LocalLayout {
    /// Every file the model consists of, in a fixed order.
    pub fn files(&self) -> Vec<PathBuf> {
        match self {
            LocalLayout::HfDir {
                config,
                shards,
                tokenizer,
            } => {
                let mut v = vec![config.clone()];
                v.extend(shards.iter().cloned());
                v.extend(tokenizer.iter().cloned());
                v
            }
            LocalLayout::Gguf(p) => vec![p.clone()],
        }
    }
}

/// Cheap fingerprint (size and modification time of every file): part of the
/// prepare key, so an edited model is hashed again and an untouched one is not.
pub fn fingerprint(path: &Path) -> Value {
    let files = match layout(path) {
        Ok(l) => l.files(),
        Err(e) => return Value::String(format!("unreadable: {e}")),
    };
    Value::Array(
        files
            .iter()
            .map(|f| {
                let m = std::fs::metadata(f).ok();
                let mtime = m
                    .as_ref()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_nanos().to_string());
                serde_json::json!({
                    "file": f.file_name().map(|n| n.to_string_lossy().into_owned()),
                    "bytes": m.map(|m| m.len()),
                    "mtime_ns": mtime,
                })
            })
            .collect(),
    )
}

/// blake3 of a file, streamed.
pub fn hash_file(path: &Path) -> Result<(String, u64), String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok((h.finalize().to_hex().to_string(), total))
}

/// Tensor shapes and dtypes from a safetensors header, without reading data.
pub fn safetensors_header(path: &Path) -> Result<Vec<(String, String, Vec<u64>)>, String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let mut f = std::fs::File::open(path).map_err(|e| err(&e))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| err(&e))?;
    let len = u64::from_le_bytes(len);
    if len > 100 << 20 {
        return Err(err(
            &"safetensors header larger than 100 MiB; not a safetensors file?",
        ));
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).map_err(|e| err(&e))?;
    let v: Value = serde_json::from_slice(&header).map_err(|e| err(&e))?;
    let obj = v
        .as_object()
        .ok_or_else(|| err(&"header is not an object"))?;
    let mut out = Vec::new();
    for (name, t) in obj.iter().filter(|(k, _)| *k != "__metadata__") {
        let dtype = t["dtype"].as_str().unwrap_or("?").to_string();
        let shape = t["shape"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        out.push((name.clone(), dtype, shape));
    }
    Ok(out)
}

/// Architecture facts of a Hugging Face directory from its `config.json`,
/// with the parameter count summed from the shards' headers.
pub fn hf_model_info(
    name: &str,
    config: &Path,
    shards: &[PathBuf],
) -> Result<(ModelInfo, String), String> {
    let text = std::fs::read_to_string(config).map_err(|e| format!("{}: {e}", config.display()))?;
    let c: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", config.display()))?;
    let hf = HfConfig {
        c: &c,
        path: config,
    };
    let arch = hf.supported_arch()?;
    let tensors = tensor_totals(shards)?;
    let info = match arch {
        Arch::Llama => hf.llama_info(name, &tensors)?,
        Arch::Gpt2 => hf.gpt2_info(name, &tensors)?,
    };
    info.check_shape()
        .map_err(|e| format!("{}: {e}", config.display()))?;
    let stored = tensors.stored;
    let stored = match stored.as_str() {
        "f32" | "f16" | "bf16" => stored,
        "float32" => "f32".into(),
        other => other.to_string(),
    };
    Ok((info, stored))
}

/// A parsed `config.json` and where it was read from (for error messages).
struct HfConfig<'a> {
    c: &'a Value,
    path: &'a Path,
}

/// What the shards' headers say: parameters (buffers excluded), the dtype
/// most of them are stored in, and whether the output head is its own
/// tensor.
struct TensorTotals {
    parameter_count: u64,
    stored: String,
    has_lm_head: bool,
}

fn tensor_totals(shards: &[PathBuf]) -> Result<TensorTotals, String> {
    let mut parameter_count = 0u64;
    let mut dtypes = std::collections::BTreeMap::<String, u64>::new();
    let mut has_lm_head = false;
    for shard in shards {
        for (tname, dtype, shape) in safetensors_header(shard)?
            .into_iter()
            .filter(|(n, _, _)| !is_buffer(n))
        {
            let n: u64 = shape.iter().product();
            parameter_count += n;
            *dtypes.entry(dtype).or_default() += n;
            has_lm_head |= tname == "lm_head.weight";
        }
    }
    let stored = dtypes
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(d, _)| d.to_lowercase())
        .unwrap_or_default();
    Ok(TensorTotals {
        parameter_count,
        stored,
        has_lm_head,
    })
}

impl HfConfig<'_> {
    /// The first of `keys` the config has as a number.
    fn field(&self, keys: &[&str]) -> Option<u64> {
        keys.iter().find_map(|k| self.c[*k].as_u64())
    }

    fn need(&self, keys: &[&str]) -> Result<u32, String> {
        self.field(keys).map(|v| v as u32).ok_or_else(|| {
            format!(
                "{}: field {} is missing or not a number",
                self.path.display(),
                keys[0]
            )
        })
    }

    /// The architecture, once the config asks for nothing the candle
    /// models lack.
    fn supported_arch(&self) -> Result<Arch, String> {
        let (c, config) = (self.c, self.path);
        // Features the candle models do not implement: refuse rather than
        // measure a different model.
        if !c["rope_scaling"].is_null() {
            return Err(format!(
                "{}: rope_scaling is not supported",
                config.display()
            ));
        }
        for flag in ["attention_bias", "mlp_bias"] {
            if c[flag].as_bool() == Some(true) {
                return Err(format!("{}: {flag} is not supported", config.display()));
            }
        }
        if let Some(hd) = c["head_dim"].as_u64()
            && let (Some(h), Some(n)) =
                (c["hidden_size"].as_u64(), c["num_attention_heads"].as_u64())
            && n > 0
            && hd != h / n
        {
            return Err(format!(
                "{}: head_dim {hd} differs from hidden_size / num_attention_heads; not supported",
                config.display()
            ));
        }
        let model_type = c["model_type"].as_str().unwrap_or("");
        match model_type {
            "llama" | "mistral" => Ok(Arch::Llama),
            "gpt2" => Ok(Arch::Gpt2),
            other => Err(format!(
                "{}: model_type {other:?} is not supported (expected llama, mistral or gpt2)",
                config.display()
            )),
        }
    }

    fn llama_info(&self, name: &str, tensors: &TensorTotals) -> Result<ModelInfo, String> {
        let parameter_count = tensors.parameter_count;
        let hidden = self.need(&["hidden_size"])?;
        let heads = self.need(&["num_attention_heads"])?;
        let vocab = self.need(&["vocab_size"])?;
        Ok(ModelInfo {
            name: name.into(),
            arch: Arch::Llama,
            parameter_count,
            streamed_parameters: if tensors.has_lm_head {
                parameter_count.saturating_sub(u64::from(vocab) * u64::from(hidden))
            } else {
                parameter_count
            },
            n_layer: self.need(&["num_hidden_layers"])?,
            n_embd: hidden,
            n_head: heads,
            n_kv_head: self
                .field(&["num_key_value_heads"])
                .map_or(heads, |v| v as u32),
            intermediate: self.need(&["intermediate_size"])?,
            vocab,
            max_positions: self.need(&["max_position_embeddings"])?,
            norm_eps: self.c["rms_norm_eps"].as_f64().unwrap_or(1e-6),
            rope_theta: self.c["rope_theta"].as_f64().unwrap_or(10_000.0),
        })
    }

    fn gpt2_info(&self, name: &str, tensors: &TensorTotals) -> Result<ModelInfo, String> {
        let parameter_count = tensors.parameter_count;
        let hidden = self.need(&["n_embd"])?;
        let heads = self.need(&["n_head"])?;
        let positions = self.need(&["n_positions", "n_ctx"])?;
        Ok(ModelInfo {
            name: name.into(),
            arch: Arch::Gpt2,
            parameter_count,
            streamed_parameters: parameter_count
                .saturating_sub(u64::from(positions) * u64::from(hidden)),
            n_layer: self.need(&["n_layer"])?,
            n_embd: hidden,
            n_head: heads,
            n_kv_head: self.field(&["n_head_kv"]).map_or(heads, |v| v as u32),
            intermediate: self.field(&["n_inner"]).map_or(4 * hidden, |v| v as u32),
            vocab: self.need(&["vocab_size"])?,
            max_positions: positions,
            norm_eps: self.c["layer_norm_epsilon"].as_f64().unwrap_or(1e-5),
            rope_theta: 10_000.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_and_their_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let err = layout(&d.join("missing")).unwrap_err();
        assert!(err.contains("missing"), "{err}");
        assert!(layout(d).unwrap_err().contains("no config.json"));
        std::fs::write(d.join("config.json"), "{}").unwrap();
        assert!(layout(d).unwrap_err().contains("no *.safetensors"));
        std::fs::write(d.join("b.safetensors"), b"").unwrap();
        std::fs::write(d.join("a.safetensors"), b"").unwrap();
        match layout(d).unwrap() {
            LocalLayout::HfDir {
                shards, tokenizer, ..
            } => {
                assert_eq!(
                    shards,
                    vec![d.join("a.safetensors"), d.join("b.safetensors")]
                );
                assert_eq!(tokenizer, None);
            }
            other => panic!("{other:?}"),
        }
        // A consolidated copy beside `model*` shards is left out; an index
        // names exactly the shards it maps.
        std::fs::write(d.join("model-1.safetensors"), b"").unwrap();
        let shards = |l: LocalLayout| match l {
            LocalLayout::HfDir { shards, .. } => shards,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            shards(layout(d).unwrap()),
            vec![d.join("model-1.safetensors")]
        );
        std::fs::write(
            d.join("model.safetensors.index.json"),
            r#"{"weight_map": {"x": "a.safetensors", "y": "b.safetensors"}}"#,
        )
        .unwrap();
        assert_eq!(
            shards(layout(d).unwrap()),
            vec![d.join("a.safetensors"), d.join("b.safetensors")]
        );
        std::fs::write(d.join("model.bin"), b"x").unwrap();
        assert!(
            layout(&d.join("model.bin"))
                .unwrap_err()
                .contains("must be GGUF")
        );
        std::fs::write(d.join("m.gguf"), b"x").unwrap();
        assert_eq!(
            layout(&d.join("m.gguf")).unwrap(),
            LocalLayout::Gguf(d.join("m.gguf"))
        );
    }

    #[test]
    fn buffers_are_not_parameters() {
        assert!(is_buffer("h.3.attn.bias") && is_buffer("transformer.h.0.attn.masked_bias"));
        assert!(is_buffer("model.layers.0.self_attn.rotary_emb.inv_freq"));
        assert!(!is_buffer("h.3.attn.c_attn.bias") && !is_buffer("h.3.attn.c_proj.bias"));
    }

    #[test]
    fn a_corrupt_checkpoint_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.safetensors");
        std::fs::write(&f, u64::MAX.to_le_bytes()).unwrap();
        assert!(
            safetensors_header(&f)
                .unwrap_err()
                .contains("x.safetensors")
        );
        std::fs::write(&f, [4, 0, 0, 0, 0, 0, 0, 0, b'{', b'x']).unwrap();
        assert!(safetensors_header(&f).is_err());
        let config = dir.path().join("config.json");
        std::fs::write(&config, r#"{"model_type": "bert"}"#).unwrap();
        let err = hf_model_info("m", &config, &[]).unwrap_err();
        assert!(err.contains("bert") && err.contains("config.json"), "{err}");
        std::fs::write(
            &config,
            r#"{"model_type": "llama", "rope_scaling": {"type": "llama3"}}"#,
        )
        .unwrap();
        assert!(
            hf_model_info("m", &config, &[])
                .unwrap_err()
                .contains("rope_scaling")
        );
        std::fs::write(
            &config,
            r#"{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 3, "num_hidden_layers": 1, "vocab_size": 9, "intermediate_size": 8, "max_position_embeddings": 8}"#,
        )
        .unwrap();
        assert!(
            hf_model_info("m", &config, &[])
                .unwrap_err()
                .contains("divide evenly")
        );
        std::fs::write(&config, r#"{"model_type": "llama", "hidden_size": 64}"#).unwrap();
        let err = hf_model_info("m", &config, &[]).unwrap_err();
        assert!(err.contains("num_attention_heads"), "{err}");
    }
}
