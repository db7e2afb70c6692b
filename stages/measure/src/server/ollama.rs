//! Ollama's native API: `/api/generate` and `/api/chat` streamed as
//! newline-delimited JSON, whose final line carries the server's own load,
//! prompt-evaluation and evaluation durations (ns) and counts; `/api/show`
//! and `/api/ps` for the model's quantisation, digest and GPU offload.

use serde_json::{Value, json};

use super::protocol::{FrameFacts, Protocol, RequestSpec};
use super::stream::Framing;
use assay_core::config::server::{ServerApi, ServerOptions};

pub fn path(api: ServerApi) -> &'static str {
    match api {
        ServerApi::Completions => "/api/generate",
        ServerApi::Chat => "/api/chat",
    }
}

/// The request body. `/api/generate` runs `raw` (no prompt template), so
/// the prompt the server evaluates is the one sent; `num_predict` bounds
/// the output (Ollama has no ignore-EOS option: short outputs are detected
/// from `eval_count`). Greedy, like every assay measurement.
pub fn body(opts: &ServerOptions, model: &str, req: &RequestSpec) -> Value {
    let mut body = json!({
        "model": model,
        "stream": true,
        "options": { "num_predict": req.max_tokens, "temperature": 0.0 },
    });
    match opts.api {
        ServerApi::Completions => {
            body["prompt"] = json!(req.prompt.as_text());
            body["raw"] = json!(true);
        }
        ServerApi::Chat => {
            body["messages"] = json!([{ "role": "user", "content": req.prompt.as_text() }]);
        }
    }
    super::protocol::merge(&mut body, &opts.extra_body);
    body
}

/// What one NDJSON line says.
pub fn parse(line: &str, api: ServerApi) -> Result<FrameFacts, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("line is not JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| "line is not a JSON object".to_string())?;
    let mut facts = FrameFacts::default();
    if let Some(err) = obj.get("error") {
        facts.error = Some(err.as_str().map_or_else(|| err.to_string(), str::to_string));
        return Ok(facts);
    }
    let text = match api {
        ServerApi::Completions => obj.get("response"),
        ServerApi::Chat => obj.get("message").and_then(|m| m.get("content")),
    };
    if let Some(text) = text.and_then(Value::as_str)
        && !text.is_empty()
    {
        facts.content = true;
        facts.text.push_str(text);
    }
    let done = obj
        .get("done")
        .and_then(Value::as_bool)
        .ok_or_else(|| "line has no boolean `done`".to_string())?;
    if done {
        facts.done = true;
        facts.finish_reason = obj
            .get("done_reason")
            .and_then(Value::as_str)
            .map(str::to_string);
        let count = |f: &str| {
            obj.get(f)
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
        };
        let ms = |f: &str| obj.get(f).and_then(Value::as_u64).map(|ns| ns as f64 / 1e6);
        facts.prompt_tokens = count("prompt_eval_count");
        facts.completion_tokens = count("eval_count");
        facts.server_prompt_n = facts.prompt_tokens;
        facts.server_decode_n = facts.completion_tokens;
        facts.server_prompt_ms = ms("prompt_eval_duration");
        facts.server_decode_ms = ms("eval_duration");
        facts.server_load_ms = ms("load_duration");
    }
    Ok(facts)
}

/// What `/api/show` and `/api/ps` say about a model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelFacts {
    pub format: Option<String>,
    pub family: Option<String>,
    pub parameter_size: Option<String>,
    pub quantization: Option<String>,
    pub parameter_count: Option<u64>,
    pub context_length: Option<u64>,
    /// `<arch>.block_count`, `<arch>.embedding_length` and
    /// `<arch>.attention.head_count` of the model info.
    pub n_layer: Option<u32>,
    pub n_embd: Option<u32>,
    pub n_head: Option<u32>,
    pub digest: Option<String>,
    pub size: Option<u64>,
    pub size_vram: Option<u64>,
}

/// Facts from an `/api/show` response.
pub fn show_facts(v: &Value) -> ModelFacts {
    let details = &v["details"];
    let s = |d: &Value, f: &str| d.get(f).and_then(Value::as_str).map(str::to_string);
    let info = &v["model_info"];
    let arch = info
        .get("general.architecture")
        .and_then(Value::as_str)
        .unwrap_or("");
    ModelFacts {
        format: s(details, "format"),
        family: s(details, "family"),
        parameter_size: s(details, "parameter_size"),
        quantization: s(details, "quantization_level"),
        parameter_count: info.get("general.parameter_count").and_then(Value::as_u64),
        context_length: info
            .get(format!("{arch}.context_length"))
            .and_then(Value::as_u64),
        n_layer: info_u32(info, arch, "block_count"),
        n_embd: info_u32(info, arch, "embedding_length"),
        n_head: info_u32(info, arch, "attention.head_count"),
        ..ModelFacts::default()
    }
}

/// `<arch>.<key>` of the model info as a positive u32; absent when the
/// server does not say, or says something that is not a count (a per-layer
/// array, as some architectures give for heads, is not one number).
fn info_u32(info: &Value, arch: &str, key: &str) -> Option<u32> {
    if arch.is_empty() {
        return None;
    }
    info.get(format!("{arch}.{key}"))
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
}

/// Adds what `/api/ps` says of `model` (digest, size, size in VRAM), when
/// it is loaded.
pub fn add_ps_facts(facts: &mut ModelFacts, ps: &Value, model: &str) {
    let wanted = tagged(model);
    let Some(entry) = ps["models"].as_array().and_then(|models| {
        models.iter().find(|m| {
            ["model", "name"].iter().any(|f| {
                m.get(*f)
                    .and_then(Value::as_str)
                    .is_some_and(|n| tagged(n) == wanted)
            })
        })
    }) else {
        return;
    };
    facts.digest = entry
        .get("digest")
        .and_then(Value::as_str)
        .map(str::to_string);
    facts.size = entry.get("size").and_then(Value::as_u64);
    facts.size_vram = entry.get("size_vram").and_then(Value::as_u64);
}

/// A model name with its tag: Ollama lists `llama3` as `llama3:latest`
/// (a `:` in the last path segment is a tag; one before a `/` is a port).
fn tagged(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// The Ollama protocol as the client sees it.
pub struct Ollama;

impl Protocol for Ollama {
    fn path(&self, api: ServerApi) -> &'static str {
        path(api)
    }

    fn body(&self, opts: &ServerOptions, model: &str, req: &RequestSpec) -> Value {
        body(opts, model, req)
    }

    fn framing(&self) -> Framing {
        Framing::NdJson
    }

    fn end_marker(&self) -> &'static str {
        "its `done: true` line"
    }

    fn parse(&self, frame: &str, api: ServerApi) -> Result<FrameFacts, String> {
        parse(frame, api)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::protocol::Prompt;

    #[test]
    fn generate_body_is_raw_with_num_predict() {
        let req = RequestSpec {
            index: 0,
            prompt: Prompt::Text("a b c".into()),
            max_tokens: 9,
        };
        let b = body(&ServerOptions::default(), "llama3", &req);
        assert_eq!(b["prompt"], "a b c");
        assert_eq!(b["raw"], true);
        assert_eq!(b["options"]["num_predict"], 9);
    }

    #[test]
    fn the_final_line_carries_durations_and_counts() {
        let f = parse(
            r#"{"model":"m","response":" x","done":false}"#,
            ServerApi::Completions,
        )
        .unwrap();
        assert!(f.content && !f.done);
        let f = parse(
            r#"{"model":"m","response":"","done":true,"done_reason":"length","total_duration":9000000,"load_duration":2000000,"prompt_eval_count":12,"prompt_eval_duration":3000000,"eval_count":8,"eval_duration":4500000}"#,
            ServerApi::Completions,
        )
        .unwrap();
        assert!(f.done && !f.content);
        assert_eq!((f.prompt_tokens, f.completion_tokens), (Some(12), Some(8)));
        assert_eq!(f.server_load_ms, Some(2.0));
        assert_eq!(f.server_prompt_ms, Some(3.0));
        assert_eq!(f.server_decode_ms, Some(4.5));
        assert_eq!(f.finish_reason.as_deref(), Some("length"));
    }

    #[test]
    fn chat_lines_carry_message_content() {
        let f = parse(
            r#"{"message":{"role":"assistant","content":"hi"},"done":false}"#,
            ServerApi::Chat,
        )
        .unwrap();
        assert_eq!(f.text, "hi");
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(parse("not json", ServerApi::Completions).is_err());
        assert!(parse(r#"{"response":"x"}"#, ServerApi::Completions).is_err());
        let f = parse(r#"{"error":"model not found"}"#, ServerApi::Completions).unwrap();
        assert_eq!(f.error.as_deref(), Some("model not found"));
    }

    /// A `/api/show` response in the shape Ollama returns (llama3.2:1b,
    /// not verbose: tokenizer arrays elided as null): depth, width and
    /// heads come from the `llama.` keys the architecture names.
    #[test]
    fn show_facts_read_depth_width_and_heads_from_model_info() {
        let show: Value =
            serde_json::from_str(include_str!("testdata/ollama-show-llama3.2-1b.json")).unwrap();
        let f = show_facts(&show);
        assert_eq!(
            (f.n_layer, f.n_embd, f.n_head),
            (Some(16), Some(2048), Some(32))
        );
        assert_eq!(f.parameter_count, Some(1_235_814_432));
        assert_eq!(f.family.as_deref(), Some("llama"));
        assert_eq!(f.quantization.as_deref(), Some("Q8_0"));
        // Keys of another architecture are not read as this one's, and a
        // per-layer array of head counts is not one number.
        let other: Value = serde_json::from_str(
            r#"{"model_info":{"general.architecture":"gemma3","llama.block_count":16,"gemma3.block_count":26,"gemma3.embedding_length":1152,"gemma3.attention.head_count":[4,4]}}"#,
        )
        .unwrap();
        let g = show_facts(&other);
        assert_eq!(
            (g.n_layer, g.n_embd, g.n_head),
            (Some(26), Some(1152), None)
        );
        // No architecture named: nothing structural is guessed.
        let none: Value =
            serde_json::from_str(r#"{"model_info":{"llama.block_count":16}}"#).unwrap();
        assert_eq!(show_facts(&none).n_layer, None);
    }

    #[test]
    fn show_and_ps_facts() {
        let show: Value = serde_json::from_str(
            r#"{"details":{"format":"gguf","family":"llama","parameter_size":"8.0B","quantization_level":"Q4_K_M"},"model_info":{"general.architecture":"llama","general.parameter_count":8030261248,"llama.context_length":131072}}"#,
        )
        .unwrap();
        let mut f = show_facts(&show);
        assert_eq!(f.quantization.as_deref(), Some("Q4_K_M"));
        assert_eq!(f.parameter_count, Some(8_030_261_248));
        assert_eq!(f.context_length, Some(131_072));
        let ps: Value = serde_json::from_str(
            r#"{"models":[{"name":"other","model":"other"},{"name":"llama3","model":"llama3","size":100,"size_vram":40,"digest":"abc"}]}"#,
        )
        .unwrap();
        add_ps_facts(&mut f, &ps, "llama3");
        assert_eq!((f.size, f.size_vram), (Some(100), Some(40)));
        // Listed with its tag, asked for without.
        let ps: Value = serde_json::from_str(
            r#"{"models":[{"name":"llama3:latest","model":"llama3:latest","size":7,"size_vram":0}]}"#,
        )
        .unwrap();
        let mut g = ModelFacts::default();
        add_ps_facts(&mut g, &ps, "llama3");
        assert_eq!(g.size, Some(7));
        assert_eq!(f.digest.as_deref(), Some("abc"));
    }
}
