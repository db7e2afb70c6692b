//! One HTTP client for both server protocols: it sends a request, reads the
//! stream as it arrives and times it on the client: time to the first
//! generated token, the gap before every later chunk, end to end. Token
//! counts are the server's (usage, `eval_count`), never a re-tokenisation
//! of the text. A request that fails is an [`Outcome`] with a [`Failure`]
//! (kind, message, the bytes received), never a panic or a lost record.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::protocol::{FrameFacts, Protocol, RequestSpec};
use super::stream::{Frame, Framer, Framing};
use assay_core::config::BackendKind;
use assay_core::config::server::{ServerApi, ServerOptions};
use assay_core::domain::RequestStatus;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Any status but `ok`: how the request ended.
    pub kind: RequestStatus,
    pub message: String,
    /// The response bytes received (lossy UTF-8, capped).
    pub raw: String,
}

/// What one request produced. Times are ns from the send.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub ttft_ns: Option<u64>,
    pub itl_ns: Vec<u64>,
    pub e2e_ns: Option<u64>,
    pub chunks: u32,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
    pub finish_reason: Option<String>,
    pub server_prompt_ms: Option<f64>,
    pub server_decode_ms: Option<f64>,
    pub server_load_ms: Option<f64>,
    /// Prompt tokens the server evaluated (llama.cpp `timings.prompt_n`:
    /// without those its prompt cache served).
    pub server_prompt_tokens: Option<u32>,
    pub output_digest: Option<String>,
    pub failure: Option<Failure>,
    /// When the request went out: the start of its timed region.
    pub sent: Option<Instant>,
}

/// The host name of `base` and its addresses, or `None` when `base` names
/// an IP address (nothing to resolve).
fn resolve_host(base: &str) -> Result<Option<(String, Vec<SocketAddr>)>, Unusable> {
    let url =
        reqwest::Url::parse(base).map_err(|e| Unusable(format!("{base} is not a URL: {e}")))?;
    let Some(host) = url.host_str() else {
        return Ok(None);
    };
    if host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
        return Ok(None);
    }
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Unusable(format!("cannot resolve the host {host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(Unusable(format!("the host {host} has no address")));
    }
    Ok(Some((host.to_string(), addrs)))
}

/// A server connection for one cell.
pub struct Client {
    http: reqwest::Client,
    base: String,
    protocol: &'static dyn Protocol,
    model: String,
    opts: ServerOptions,
    /// Sent as a bearer token; never printed (no Debug) and scrubbed from
    /// anything stored.
    api_key: Option<String>,
}

/// A server that cannot be used at all (before any measurement).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unusable(pub String);

impl Client {
    pub fn new(
        kind: &BackendKind,
        base: &str,
        model: &str,
        opts: &ServerOptions,
        api_key: Option<String>,
    ) -> Result<Self, Unusable> {
        // reqwest asks rustls for the process's provider even for plain
        // HTTP; the first client installs it.
        static PROVIDER: std::sync::Once = std::sync::Once::new();
        PROVIDER.call_once(|| {
            let _ = super::tls::crypto_provider().install_default();
        });
        let mut builder = reqwest::Client::builder();
        // A host name is resolved here, once: with one connection per
        // request, every request would otherwise look it up again inside
        // its TTFT. Every address is kept, tried in order at connect.
        if let Some((host, addrs)) = resolve_host(base)? {
            builder = builder.resolve_to_addrs(&host, &addrs);
        }
        if base.starts_with("https://") {
            let tls = super::tls::client_config(opts.ca_path.as_deref()).map_err(Unusable)?;
            builder = builder.tls_backend_preconfigured(tls);
        }
        let http = builder
            .connect_timeout(Duration::from_secs_f64(opts.stall_timeout_s.min(10.0)))
            // The servers measured are named by address; a proxy from the
            // environment would put another hop inside the timed region.
            .no_proxy()
            // One connection per request: servers close idle keep-alive
            // connections when they like (llama-server does, between
            // streamed responses), and a POST on a connection the server
            // just closed fails. Each request's TTFT includes its TCP
            // connect (tens of microseconds on loopback), as a new
            // client's would.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| Unusable(format!("cannot build an HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            protocol: super::protocol_for(kind),
            model: model.to_string(),
            opts: opts.clone(),
            api_key,
        })
    }

    /// Replaces the API key wherever it appears in text that will be stored.
    pub fn redact(&self, text: &str) -> String {
        match &self.api_key {
            Some(key) if !key.is_empty() => text.replace(key.as_str(), "[REDACTED]"),
            _ => text.to_string(),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.api_key {
            r = r.header("Authorization", format!("Bearer {key}"));
        }
        r
    }

    /// GET or POST a small JSON document (probes, not timed).
    pub async fn json(&self, path: &str, body: Option<Value>) -> Result<Value, Unusable> {
        let r = match body {
            Some(b) => self
                .request(reqwest::Method::POST, path)
                .header("Content-Type", "application/json")
                .body(b.to_string()),
            None => self.request(reqwest::Method::GET, path),
        };
        let timeout = Duration::from_secs_f64(self.opts.request_timeout_s);
        let resp = tokio::time::timeout(timeout, r.send())
            .await
            .map_err(|_| Unusable(format!("{}{path}: no answer within {timeout:?}", self.base)))?
            .map_err(|e| Unusable(self.describe(path, &e)))?;
        let status = resp.status();
        let bytes = tokio::time::timeout(timeout, resp.bytes())
            .await
            .map_err(|_| {
                Unusable(format!(
                    "{}{path}: body not read within {timeout:?}",
                    self.base
                ))
            })?
            .map_err(|e| Unusable(self.describe(path, &e)))?;
        if !status.is_success() {
            return Err(Unusable(self.redact(&format!(
                "{}{path}: HTTP {status}: {}",
                self.base,
                String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
            ))));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| Unusable(format!("{}{path}: answer is not JSON: {e}", self.base)))
    }

    fn describe(&self, path: &str, e: &reqwest::Error) -> String {
        let mut source: Option<&dyn std::error::Error> = Some(e);
        let mut chain = Vec::new();
        while let Some(s) = source {
            chain.push(s.to_string());
            source = s.source();
        }
        let what = if e.is_connect() {
            "cannot connect"
        } else {
            "request failed"
        };
        self.redact(&format!(
            "{}{path}: {what}: {}",
            self.base,
            chain.last().cloned().unwrap_or_default()
        ))
    }

    /// Sends one generation request and reads its stream to the end, timing
    /// every chunk that carries generated text.
    pub async fn send(&self, req: &RequestSpec) -> Outcome {
        let protocol = self.protocol;
        let (path, body, framing) = (
            protocol.path(self.opts.api),
            protocol.body(&self.opts, &self.model, req),
            protocol.framing(),
        );
        let builder = self
            .request(reqwest::Method::POST, path)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        let mut reading = Reading::new(framing, self.opts.api, protocol);
        let sent = Instant::now();
        let deadline = sent + Duration::from_secs_f64(self.opts.request_timeout_s);
        let stall = Duration::from_secs_f64(self.opts.stall_timeout_s);
        let out = Outcome {
            sent: Some(sent),
            ..Outcome::default()
        };

        let resp = match tokio::time::timeout_at(deadline.into(), builder.send()).await {
            Err(_) => {
                return self.failed(
                    out,
                    RequestStatus::Timeout,
                    "no response headers before the request timeout".into(),
                    &reading.framer,
                );
            }
            Ok(Err(e)) => {
                let kind = if e.is_connect() {
                    RequestStatus::Connect
                } else {
                    RequestStatus::Truncated
                };
                let message = self.describe(path, &e);
                return self.failed(out, kind, message, &reading.framer);
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if let Err((kind, message)) = self
            .read_stream(resp, &mut reading, path, deadline, stall)
            .await
        {
            return self.failed(
                reading.finish_times(out, sent),
                kind,
                message,
                &reading.framer,
            );
        }
        let end = Instant::now();
        self.finish(out, reading, req, status, sent, end)
    }

    /// Reads the response to its end into `reading`. A stall, the request
    /// deadline, a broken stream or a malformed frame ends it with the
    /// failure's kind and message. An error response's bytes are only kept.
    async fn read_stream(
        &self,
        mut resp: reqwest::Response,
        reading: &mut Reading,
        path: &str,
        deadline: Instant,
        stall: Duration,
    ) -> Result<(), (RequestStatus, String)> {
        let status = resp.status();
        loop {
            let wait = stall.min(deadline.saturating_duration_since(Instant::now()));
            match tokio::time::timeout(wait, resp.chunk()).await {
                Err(_) => {
                    return Err(if Instant::now() >= deadline {
                        (
                            RequestStatus::Timeout,
                            format!(
                                "request not finished within {} s",
                                self.opts.request_timeout_s
                            ),
                        )
                    } else {
                        (
                            RequestStatus::Stall,
                            format!(
                                "no byte from the server for {} s",
                                self.opts.stall_timeout_s
                            ),
                        )
                    });
                }
                Ok(Err(e)) => {
                    let message = format!("the stream broke: {}", self.describe(path, &e));
                    return Err((RequestStatus::Truncated, message));
                }
                Ok(Ok(None)) => return Ok(()),
                Ok(Ok(Some(bytes))) => {
                    let at = Instant::now();
                    if !status.is_success() {
                        let _ = reading.framer.push(&bytes);
                        continue;
                    }
                    reading
                        .take(&bytes, at)
                        .map_err(|message| (RequestStatus::Malformed, message))?;
                }
            }
        }
    }

    /// The outcome of a stream read to its end (at `end`): failed for an
    /// error status, an error reported in the stream, a missing end marker
    /// or no generated text at all; otherwise the server's counts and
    /// timings beside the client's.
    fn finish(
        &self,
        mut out: Outcome,
        mut reading: Reading,
        req: &RequestSpec,
        status: reqwest::StatusCode,
        sent: Instant,
        end: Instant,
    ) -> Outcome {
        if !status.is_success() {
            let message = format!("HTTP {status}");
            return self.failed(out, RequestStatus::Http, message, &reading.framer);
        }
        out = reading.finish_times(out, sent);
        out.e2e_ns = Some(ns(end - sent));
        if let Some(error) = reading.error.take() {
            return self.failed(
                out,
                RequestStatus::Http,
                format!("the server reported an error in the stream: {error}"),
                &reading.framer,
            );
        }
        if !reading.complete || reading.framer.leftover() {
            let message = format!("the stream ended without {}", self.protocol.end_marker());
            return self.failed(out, RequestStatus::Truncated, message, &reading.framer);
        }
        // No event carried text. When the server counted tokens it did
        // generate them, only nothing was visible (llama.cpp holds back
        // tokens that never complete a UTF-8 character, special tokens
        // render as nothing): the request is ok with no TTFT, and its run
        // is degraded `no_visible_text`. Without counts there is nothing.
        let counted = reading
            .facts
            .completion_tokens
            .or(reading.facts.server_decode_n)
            .unwrap_or(0);
        if reading.chunks == 0 && req.max_tokens > 0 && counted == 0 {
            return self.failed(
                out,
                RequestStatus::Malformed,
                "the stream carried no generated text and the server counted none".into(),
                &reading.framer,
            );
        }
        out.chunks = reading.chunks;
        out.server_prompt_tokens = reading.facts.server_prompt_n;
        out.prompt_tokens = reading.facts.prompt_tokens;
        out.completion_tokens = reading.facts.completion_tokens;
        out.finish_reason = reading.facts.finish_reason.clone();
        out.server_prompt_ms = reading.facts.server_prompt_ms;
        out.server_decode_ms = reading.facts.server_decode_ms;
        out.server_load_ms = reading.facts.server_load_ms;
        out.output_digest = Some(reading.text.finalize().to_hex().to_string());
        out
    }

    fn failed(
        &self,
        mut out: Outcome,
        kind: RequestStatus,
        message: String,
        framer: &Framer,
    ) -> Outcome {
        out.e2e_ns = None;
        out.failure = Some(Failure {
            kind,
            message: self.redact(&message),
            raw: self.redact(&framer.raw_text()),
        });
        out
    }
}

/// The state of one stream being read.
struct Reading {
    framer: Framer,
    api: ServerApi,
    protocol: &'static dyn Protocol,
    /// Arrival of each chunk that carried text.
    arrivals: Vec<Instant>,
    chunks: u32,
    /// The last values each fact took (usage and timings come at the end).
    facts: FrameFacts,
    text: blake3::Hasher,
    error: Option<String>,
    /// The protocol's end marker was seen (`[DONE]`, `done: true`).
    complete: bool,
}

impl Reading {
    fn new(framing: Framing, api: ServerApi, protocol: &'static dyn Protocol) -> Self {
        Reading {
            framer: Framer::new(framing),
            api,
            protocol,
            arrivals: Vec::new(),
            chunks: 0,
            facts: FrameFacts::default(),
            text: blake3::Hasher::new(),
            error: None,
            complete: false,
        }
    }

    fn take(&mut self, bytes: &[u8], at: Instant) -> Result<(), String> {
        for frame in self.framer.push(bytes)? {
            let data = match frame {
                Frame::Done => {
                    self.complete = true;
                    continue;
                }
                Frame::Data(d) => d,
            };
            if self.complete {
                return Err("data after the end of the stream".into());
            }
            let f = self.protocol.parse(&data, self.api)?;
            if f.content {
                self.chunks += 1;
                self.arrivals.push(at);
                self.text.update(f.text.as_bytes());
            }
            if f.error.is_some() {
                self.error = f.error.clone();
            }
            if f.done {
                self.complete = true;
            }
            let keep = |new: Option<u32>, old: Option<u32>| new.or(old);
            self.facts.prompt_tokens = keep(f.prompt_tokens, self.facts.prompt_tokens);
            self.facts.completion_tokens = keep(f.completion_tokens, self.facts.completion_tokens);
            self.facts.finish_reason = f.finish_reason.or(self.facts.finish_reason.take());
            self.facts.server_prompt_ms = f.server_prompt_ms.or(self.facts.server_prompt_ms);
            self.facts.server_decode_ms = f.server_decode_ms.or(self.facts.server_decode_ms);
            self.facts.server_load_ms = f.server_load_ms.or(self.facts.server_load_ms);
            self.facts.server_prompt_n = f.server_prompt_n.or(self.facts.server_prompt_n);
            // llama.cpp's own counts stand in for usage when it is absent.
            if self.facts.prompt_tokens.is_none() {
                self.facts.prompt_tokens = f.server_prompt_n;
            }
            if self.facts.completion_tokens.is_none() {
                self.facts.completion_tokens = f.server_decode_n;
            }
        }
        Ok(())
    }

    /// TTFT and inter-chunk gaps from the arrivals so far.
    fn finish_times(&self, mut out: Outcome, sent: Instant) -> Outcome {
        out.chunks = self.chunks;
        out.ttft_ns = self.arrivals.first().map(|t| ns(*t - sent));
        out.itl_ns = self.arrivals.windows(2).map(|w| ns(w[1] - w[0])).collect();
        out
    }
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_is_recursive_for_objects() {
        let mut body = json!({"options": {"num_predict": 4}, "stream": true});
        let extra = json!({"options": {"num_ctx": 4096}, "stream": false});
        crate::server::protocol::merge(&mut body, extra.as_object().unwrap());
        assert_eq!(
            body,
            json!({"options": {"num_predict": 4, "num_ctx": 4096}, "stream": false})
        );
    }

    #[test]
    fn a_host_name_is_resolved_once_up_front() {
        // Addresses need no lookup.
        assert_eq!(resolve_host("http://127.0.0.1:8080").unwrap(), None);
        assert_eq!(resolve_host("http://[::1]:8080/").unwrap(), None);
        let (host, addrs) = resolve_host("http://localhost:8080").unwrap().unwrap();
        assert_eq!(host, "localhost");
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8080),
            "{addrs:?}"
        );
        // RFC 6761: .invalid never resolves; the cell fails before any request.
        let e = resolve_host("http://no-such-host.invalid:1").unwrap_err();
        assert!(
            e.0.starts_with("cannot resolve the host no-such-host.invalid"),
            "{}",
            e.0
        );
    }

    #[test]
    fn the_key_is_redacted() {
        let c = Client::new(
            &crate::server::OPENAI,
            "http://127.0.0.1:1",
            "m",
            &ServerOptions::default(),
            Some("sk-secret".into()),
        )
        .unwrap();
        assert_eq!(
            c.redact("echo: Bearer sk-secret!"),
            "echo: Bearer [REDACTED]!"
        );
    }
}
