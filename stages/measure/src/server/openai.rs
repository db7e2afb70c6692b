//! The OpenAI-compatible protocol: request bodies for `/v1/completions` and
//! `/v1/chat/completions`, and the facts in each streamed chunk. llama.cpp's
//! server adds `timings` (its own prompt and generation times) to the last
//! chunk; other servers (vLLM, SGLang, TGI) do not.

use serde_json::{Value, json};

use super::protocol::{FrameFacts, Prompt, Protocol, RequestSpec};
use super::stream::Framing;
use assay_core::config::server::{LengthKnob, ServerApi, ServerOptions};

/// The length knob sent when the spec names none: OpenAI-compatible
/// servers are asked to ignore EOS, so runs reach the requested length.
pub const DEFAULT_KNOBS: &[LengthKnob] = &[LengthKnob::IgnoreEos];

pub fn path(api: ServerApi) -> &'static str {
    match api {
        ServerApi::Completions => "/v1/completions",
        ServerApi::Chat => "/v1/chat/completions",
    }
}

/// The request body: streamed, usage asked for, the length knobs the spec
/// names, then the spec's `extra_body` merged over it.
pub fn body(opts: &ServerOptions, model: &str, req: &RequestSpec) -> Value {
    let mut body = json!({
        "model": model,
        "max_tokens": req.max_tokens,
        "stream": true,
        "stream_options": { "include_usage": true },
        "temperature": 0.0,
    });
    match (opts.api, &req.prompt) {
        (ServerApi::Completions, Prompt::Tokens(ids)) => body["prompt"] = json!(ids),
        (ServerApi::Completions, Prompt::Text(text)) => body["prompt"] = json!(text),
        (ServerApi::Chat, prompt) => {
            body["messages"] = json!([{ "role": "user", "content": prompt.as_text() }]);
        }
    }
    for knob in opts.knobs(DEFAULT_KNOBS) {
        match knob {
            LengthKnob::IgnoreEos => body["ignore_eos"] = json!(true),
            LengthKnob::MinTokens => body["min_tokens"] = json!(req.max_tokens),
            LengthKnob::EosLogitBias => {
                if let Some(eos) = opts.eos_token_id {
                    body["logit_bias"] = json!({ eos.to_string(): -100 });
                }
            }
        }
    }
    super::protocol::merge(&mut body, &opts.extra_body);
    body
}

/// What one SSE event says. An event that is not a JSON object, or whose
/// `choices` is not a list, is malformed.
pub fn parse(data: &str, api: ServerApi) -> Result<FrameFacts, String> {
    let v: Value = serde_json::from_str(data).map_err(|e| format!("event is not JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| "event is not a JSON object".to_string())?;
    let mut facts = FrameFacts::default();
    if let Some(err) = obj.get("error") {
        facts.error = Some(
            err.get("message")
                .and_then(Value::as_str)
                .map_or_else(|| err.to_string(), str::to_string),
        );
        return Ok(facts);
    }
    if let Some(choices) = obj.get("choices") {
        let choices = choices
            .as_array()
            .ok_or_else(|| "`choices` is not a list".to_string())?;
        for choice in choices {
            let text = match api {
                ServerApi::Completions => choice.get("text"),
                ServerApi::Chat => choice.get("delta").and_then(|d| d.get("content")),
            };
            if let Some(text) = text.and_then(Value::as_str)
                && !text.is_empty()
            {
                facts.content = true;
                facts.text.push_str(text);
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                facts.finish_reason = Some(reason.to_string());
            }
        }
    }
    if let Some(usage) = obj.get("usage").filter(|u| !u.is_null()) {
        facts.prompt_tokens = count(usage, "prompt_tokens");
        facts.completion_tokens = count(usage, "completion_tokens");
    }
    if let Some(t) = obj.get("timings").filter(|t| t.is_object()) {
        facts.server_prompt_ms = t.get("prompt_ms").and_then(Value::as_f64);
        facts.server_decode_ms = t.get("predicted_ms").and_then(Value::as_f64);
        facts.server_prompt_n = count(t, "prompt_n");
        facts.server_decode_n = count(t, "predicted_n");
    }
    Ok(facts)
}

fn count(v: &Value, field: &str) -> Option<u32> {
    v.get(field)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

/// The OpenAi protocol as the client sees it.
pub struct OpenAi;

impl Protocol for OpenAi {
    fn path(&self, api: ServerApi) -> &'static str {
        path(api)
    }

    fn body(&self, opts: &ServerOptions, model: &str, req: &RequestSpec) -> Value {
        body(opts, model, req)
    }

    fn framing(&self) -> Framing {
        Framing::Sse
    }

    fn end_marker(&self) -> &'static str {
        "`data: [DONE]`"
    }

    fn parse(&self, frame: &str, api: ServerApi) -> Result<FrameFacts, String> {
        parse(frame, api)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> RequestSpec {
        RequestSpec {
            index: 0,
            prompt: Prompt::Tokens(vec![5, 6, 7]),
            max_tokens: 4,
        }
    }

    #[test]
    fn completions_body_carries_the_knobs() {
        let opts = ServerOptions {
            length_knobs: Some(vec![
                LengthKnob::IgnoreEos,
                LengthKnob::MinTokens,
                LengthKnob::EosLogitBias,
            ]),
            eos_token_id: Some(2),
            extra_body: serde_json::from_str(r#"{"cache_prompt": false, "temperature": 0.5}"#)
                .unwrap(),
            ..ServerOptions::default()
        };
        let b = body(&opts, "m", &req());
        assert_eq!(b["prompt"], json!([5, 6, 7]));
        assert_eq!(b["max_tokens"], 4);
        assert_eq!(b["ignore_eos"], true);
        assert_eq!(b["min_tokens"], 4);
        assert_eq!(b["logit_bias"], json!({"2": -100}));
        assert_eq!(b["stream"], true);
        assert_eq!(b["stream_options"]["include_usage"], true);
        // extra_body wins.
        assert_eq!(b["cache_prompt"], false);
        assert_eq!(b["temperature"], 0.5);
    }

    #[test]
    fn chat_body_has_one_user_message() {
        let opts = ServerOptions {
            api: ServerApi::Chat,
            ..ServerOptions::default()
        };
        let mut r = req();
        r.prompt = Prompt::Text("hello there".into());
        let b = body(&opts, "m", &r);
        assert_eq!(b["messages"][0]["content"], "hello there");
        assert!(b.get("prompt").is_none());
    }

    #[test]
    fn chunks_text_usage_and_timings() {
        let f = parse(
            r#"{"choices":[{"index":0,"text":" a","finish_reason":null}]}"#,
            ServerApi::Completions,
        )
        .unwrap();
        assert!(f.content);
        assert_eq!(f.text, " a");
        let f = parse(
            r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":4},"timings":{"prompt_n":7,"prompt_ms":1.5,"predicted_n":4,"predicted_ms":8.25}}"#,
            ServerApi::Completions,
        )
        .unwrap();
        assert!(!f.content);
        assert_eq!((f.prompt_tokens, f.completion_tokens), (Some(7), Some(4)));
        assert_eq!(
            (f.server_prompt_ms, f.server_decode_ms),
            (Some(1.5), Some(8.25))
        );
        assert_eq!((f.server_prompt_n, f.server_decode_n), (Some(7), Some(4)));
    }

    #[test]
    fn a_role_only_chat_delta_is_not_a_token() {
        let f = parse(
            r#"{"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}"#,
            ServerApi::Chat,
        )
        .unwrap();
        assert!(!f.content);
        let f = parse(
            r#"{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"length"}]}"#,
            ServerApi::Chat,
        )
        .unwrap();
        assert!(f.content);
        assert_eq!(f.finish_reason.as_deref(), Some("length"));
    }

    #[test]
    fn malformed_events_are_errors() {
        assert!(parse("{\"choices\": [garbage", ServerApi::Completions).is_err());
        assert!(parse("[1,2]", ServerApi::Completions).is_err());
        assert!(parse(r#"{"choices": 3}"#, ServerApi::Completions).is_err());
        let f = parse(r#"{"error":{"message":"boom"}}"#, ServerApi::Completions).unwrap();
        assert_eq!(f.error.as_deref(), Some("boom"));
    }
}
