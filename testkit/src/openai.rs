//! The OpenAI-compatible protocol: [`Flavor::OpenAi`] (vLLM-like) and
//! [`Flavor::LlamaCpp`] (the same plus `/props` and `timings`).
//!
//! Streams are Server-Sent Events: each event is `data: <json>\n\n` (one
//! HTTP chunk), and the stream ends with `data: [DONE]\n\n`.

use std::io;
use std::net::TcpStream;

use serde_json::{Value, json};

use crate::Flavor;
use crate::generation::{self, Encoder, Plan, full_text, respond_json, token_text};
use crate::http::Request;
use crate::server::{Fate, Shared};

/// Which generation endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// `/v1/completions`: `prompt` in, `text` out.
    Completions,
    /// `/v1/chat/completions`: `messages` in, `delta` / `message` out.
    Chat,
}

/// Paths llama.cpp serves without an API key.
const PUBLIC_PATHS: [&str; 3] = ["/health", "/v1/models", "/models"];

pub(crate) fn handle(shared: &Shared, stream: &TcpStream, request: &Request) -> io::Result<()> {
    let route = (request.method.as_str(), request.path.as_str());
    let api = match route {
        ("POST", "/v1/completions") => Some(Api::Completions),
        ("POST", "/v1/chat/completions") => Some(Api::Chat),
        _ => None,
    };
    // A generation request counts (and is recorded) whatever happens next.
    let admission = api.map(|_| shared.admit(request));

    if let Some(key) = &shared.behavior.api_key
        && !PUBLIC_PATHS.contains(&request.path.as_str())
        && request.header("authorization") != Some(&format!("Bearer {key}"))
    {
        return respond_error(stream, 401, "Invalid API Key");
    }

    if let (Some(api), Some(admission)) = (api, admission) {
        return generate(
            shared,
            stream,
            request,
            api,
            admission.index,
            admission.fate,
        );
    }
    let model = &shared.behavior.model_name;
    match route {
        ("GET", "/health") => respond_json(stream, 200, &json!({"status": "ok"})),
        ("GET", "/v1/models" | "/models") => respond_json(
            stream,
            200,
            &json!({
                "object": "list",
                "data": [{"id": model, "object": "model", "created": 0, "owned_by": "fake"}],
            }),
        ),
        ("GET", "/props") if shared.flavor == Flavor::LlamaCpp => respond_json(
            stream,
            200,
            &json!({
                "build_info": "b0-fake",
                "model_path": "/fake/model.gguf",
                "total_slots": 1,
                "default_generation_settings": {"n_ctx": 4096},
            }),
        ),
        _ => respond_error(stream, 404, "File Not Found"),
    }
}

/// `{"error":{"message","type","code"}}`, llama.cpp's (and OpenAI's) shape.
fn respond_error(stream: &TcpStream, status: u16, message: &str) -> io::Result<()> {
    let kind = match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        501 => "not_supported_error",
        503 => "unavailable_error",
        _ => "server_error",
    };
    respond_json(
        stream,
        status,
        &json!({"error": {"message": message, "type": kind, "code": status}}),
    )
}

fn generate(
    shared: &Shared,
    stream: &TcpStream,
    request: &Request,
    api: Api,
    index: u32,
    fate: Fate,
) -> io::Result<()> {
    if let Fate::HttpError { status } = fate {
        return respond_error(stream, status, &format!("fake fault: HTTP {status}"));
    }
    let body: Value = match serde_json::from_slice(&request.body) {
        Ok(body @ Value::Object(_)) => body,
        Ok(_) => return respond_error(stream, 400, "request body must be a JSON object"),
        Err(e) => return respond_error(stream, 400, &format!("invalid JSON body: {e}")),
    };
    let parsed = match api {
        Api::Completions => parse_completions(&body),
        Api::Chat => parse_chat(&body),
    };
    let (prompt_tokens, max_tokens) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => return respond_error(stream, 400, &message),
    };
    let streamed = body["stream"].as_bool().unwrap_or(false);
    let plan = Plan::new(
        prompt_tokens,
        max_tokens,
        shared.behavior.stop_early_at,
        streamed,
    );
    let timings = (shared.flavor == Flavor::LlamaCpp).then(|| timings(shared, &plan));
    let encoder = OpenAiEncoder {
        api,
        id: match api {
            Api::Completions => format!("cmpl-{}", index + 1),
            Api::Chat => format!("chatcmpl-{}", index + 1),
        },
        model: shared.behavior.model_name.clone(),
        include_usage: body["stream_options"]["include_usage"].as_bool() == Some(true),
        timings,
        plan,
    };
    generation::run(shared, stream, &encoder.plan, fate, &encoder)
}

/// `(prompt tokens, max tokens)` of a `/v1/completions` body. A prompt of
/// token ids counts its ids; a text prompt counts its words.
fn parse_completions(body: &Value) -> Result<(u32, u32), String> {
    let prompt_tokens = match &body["prompt"] {
        Value::String(text) => count_words(text),
        Value::Array(ids) if ids.iter().all(Value::is_u64) => ids.len(),
        Value::Null => return Err("\"prompt\" is required".into()),
        _ => {
            return Err(
                "\"prompt\" must be a string or an array of token ids (the fake \
                        serves one prompt per request)"
                    .into(),
            );
        }
    };
    Ok((to_u32(prompt_tokens), max_tokens(body, "max_tokens")?))
}

/// `(prompt tokens, max tokens)` of a `/v1/chat/completions` body: the words
/// of every message's content.
fn parse_chat(body: &Value) -> Result<(u32, u32), String> {
    let Some(messages) = body["messages"].as_array().filter(|m| !m.is_empty()) else {
        return Err("\"messages\" must be a non-empty array".into());
    };
    let mut words = 0;
    for message in messages {
        words += match &message["content"] {
            Value::String(text) => count_words(text),
            // Content parts: [{"type": "text", "text": "..."}, ...]
            Value::Array(parts) => parts
                .iter()
                .filter_map(|part| part["text"].as_str())
                .map(count_words)
                .sum(),
            Value::Null => 0,
            _ => return Err("message \"content\" must be a string or an array of parts".into()),
        };
    }
    let field = if body["max_completion_tokens"].is_null() {
        "max_tokens"
    } else {
        "max_completion_tokens"
    };
    Ok((to_u32(words), max_tokens(body, field)?))
}

/// The token limit: absent, null or negative (llama.cpp's -1, "unlimited")
/// means [`crate::OPENAI_DEFAULT_MAX_TOKENS`].
fn max_tokens(body: &Value, field: &str) -> Result<u32, String> {
    match &body[field] {
        Value::Null => Ok(crate::OPENAI_DEFAULT_MAX_TOKENS),
        value => match (value.as_u64(), value.as_i64()) {
            (Some(n), _) => Ok(n.min(u64::from(u32::MAX)) as u32),
            (None, Some(_)) => Ok(crate::OPENAI_DEFAULT_MAX_TOKENS),
            _ => Err(format!("\"{field}\" must be an integer")),
        },
    }
}

fn count_words(text: &str) -> usize {
    text.split_whitespace().count()
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// llama.cpp's `timings`, from the configured delays rather than the clock
/// (so tests can assert exact values). A rate over a zero time is reported
/// as 0 (llama.cpp would print `null`; it never measures exactly zero).
fn timings(shared: &Shared, plan: &Plan) -> Value {
    let prompt_ms = ms(plan.prompt_time(shared.behavior.first_token_delay));
    let predicted_ms = ms(plan.predicted_time(shared.behavior.token_delay));
    let p = f64::from(plan.prompt_tokens);
    let c = f64::from(plan.completion_tokens);
    json!({
        "prompt_n": plan.prompt_tokens,
        "prompt_ms": prompt_ms,
        "prompt_per_token_ms": ratio(prompt_ms, p),
        "prompt_per_second": ratio(1e3 * p, prompt_ms),
        "predicted_n": plan.completion_tokens,
        "predicted_ms": predicted_ms,
        "predicted_per_token_ms": ratio(predicted_ms, c),
        "predicted_per_second": ratio(1e3 * c, predicted_ms),
    })
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 { 0.0 } else { num / den }
}

/// Spells a generation as OpenAI SSE events / a whole OpenAI response.
struct OpenAiEncoder {
    api: Api,
    id: String,
    model: String,
    plan: Plan,
    include_usage: bool,
    /// llama.cpp only.
    timings: Option<Value>,
}

impl OpenAiEncoder {
    /// One chunk object with these choices (and, if given, extra fields).
    fn chunk(&self, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": match self.api {
                Api::Completions => "text_completion",
                Api::Chat => "chat.completion.chunk",
            },
            "created": 0,
            "model": self.model,
            "choices": choices,
        })
    }

    /// A choice carrying `text` (completions `text`, chat `delta.content`).
    fn choice(&self, text: &str, finish_reason: Option<&str>) -> Value {
        match self.api {
            Api::Completions => json!({
                "index": 0, "text": text, "logprobs": null, "finish_reason": finish_reason,
            }),
            Api::Chat => json!({
                "index": 0, "delta": {"content": text}, "finish_reason": finish_reason,
            }),
        }
    }

    fn usage(&self) -> Value {
        let (p, c) = (
            u64::from(self.plan.prompt_tokens),
            u64::from(self.plan.completion_tokens),
        );
        json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c})
    }

    /// The final token chunk carries `timings` when no usage chunk follows.
    fn with_timings_unless_usage(&self, mut chunk: Value) -> Value {
        if let (Some(timings), false) = (&self.timings, self.include_usage) {
            chunk["timings"] = timings.clone();
        }
        chunk
    }
}

fn sse(value: &Value) -> Vec<u8> {
    format!("data: {value}\n\n").into_bytes()
}

impl Encoder for OpenAiEncoder {
    fn stream_content_type(&self) -> &'static str {
        "text/event-stream"
    }

    fn preamble(&self) -> Vec<Vec<u8>> {
        match self.api {
            Api::Completions => Vec::new(),
            // Real servers open a chat stream with a role-only delta, which
            // carries no token.
            Api::Chat => vec![sse(&self.chunk(json!([{
                "index": 0, "delta": {"role": "assistant"}, "finish_reason": null,
            }])))],
        }
    }

    fn token(&self, i: u32, last: bool, text: bool) -> Vec<u8> {
        let finish_reason = last.then(|| self.plan.finish_reason());
        let text = if text { token_text(i) } else { String::new() };
        let mut chunk = self.chunk(json!([self.choice(&text, finish_reason)]));
        if last {
            chunk = self.with_timings_unless_usage(chunk);
        }
        sse(&chunk)
    }

    fn finish(&self) -> Vec<Vec<u8>> {
        let mut events = Vec::new();
        if self.plan.completion_tokens == 0 {
            // No token chunk carried the finish reason: an empty one does.
            let choice = match self.api {
                Api::Completions => self.choice("", Some(self.plan.finish_reason())),
                Api::Chat => json!({
                    "index": 0, "delta": {}, "finish_reason": self.plan.finish_reason(),
                }),
            };
            events.push(sse(
                &self.with_timings_unless_usage(self.chunk(json!([choice])))
            ));
        }
        if self.include_usage {
            let mut chunk = self.chunk(json!([]));
            chunk["usage"] = self.usage();
            if let Some(timings) = &self.timings {
                chunk["timings"] = timings.clone();
            }
            events.push(sse(&chunk));
        }
        events.push(b"data: [DONE]\n\n".to_vec());
        events
    }

    fn garbage_event(&self) -> &'static [u8] {
        b"data: {\"choices\": [garbage\n\n"
    }

    fn garbage_body(&self) -> &'static [u8] {
        b"{\"choices\": [garbage"
    }

    fn whole(&self) -> Value {
        let text = full_text(self.plan.completion_tokens);
        let finish_reason = self.plan.finish_reason();
        let (object, choice) = match self.api {
            Api::Completions => (
                "text_completion",
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish_reason}),
            ),
            Api::Chat => (
                "chat.completion",
                json!({
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish_reason,
                }),
            ),
        };
        let mut body = json!({
            "id": self.id,
            "object": object,
            "created": 0,
            "model": self.model,
            "choices": [choice],
            "usage": self.usage(),
        });
        if let Some(timings) = &self.timings {
            body["timings"] = timings.clone();
        }
        body
    }
}
