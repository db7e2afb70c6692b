//! In-process fake inference servers for tests, with fault injection.
//!
//! A [`FakeServer`] listens on `127.0.0.1:<ephemeral port>` and speaks one of
//! three wire protocols ([`Flavor`]): llama.cpp's `llama-server`, a plain
//! OpenAI-compatible server (vLLM-like), or Ollama. It "generates" tokens
//! `" tok0"`, `" tok1"`, ... with configured delays ([`Behavior`]), so a
//! client's latency and throughput measurements have something to measure,
//! and it can misbehave on a chosen request ([`Fault`]): die mid-stream,
//! stall, send garbage, truncate, or answer with an HTTP error.
//!
//! Everything is std: one thread accepts, one thread serves each connection,
//! HTTP/1.1 is parsed by hand, and every response carries
//! `Connection: close` (one request per connection), so the server's state
//! is only the counters and records behind one mutex.
//!
//! ```no_run
//! use assay_testkit::{Behavior, FakeServer, Fault, Flavor};
//!
//! let server = FakeServer::start(
//!     Flavor::LlamaCpp,
//!     Behavior { fault: Some(Fault::Truncated { request: 1 }), ..Behavior::default() },
//! )
//! .unwrap();
//! let base = server.url(); // "http://127.0.0.1:PORT"
//! // ... drive the client under test against `base` ...
//! assert_eq!(server.requests_seen(), 2);
//! assert_eq!(server.bodies()[0]["max_tokens"], 16);
//! ```

mod generation;
mod http;
mod ollama;
mod openai;
mod proxy;
mod server;
mod tls;

pub use proxy::CutProxy;
pub use tls::{TEST_CA_PEM, TlsFront};

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use server::Shared;

/// The digest every fake Ollama model reports (`/api/ps`, `/api/tags`).
pub const OLLAMA_DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The size in bytes of the fake Ollama model (`size` in `/api/ps` and
/// `/api/tags`; also `size_vram` unless [`Behavior::ollama_size_vram`] says
/// otherwise).
pub const OLLAMA_MODEL_SIZE: u64 = 5_137_025_024;
/// `load_duration` (ns) reported by the first Ollama generation after start
/// (or after an unload): the model "loads". Reported, never slept.
pub const OLLAMA_COLD_LOAD_NS: u64 = 50_000_000;
/// `load_duration` (ns) reported while the model is already loaded.
pub const OLLAMA_WARM_LOAD_NS: u64 = 20_000;
/// Tokens generated when a request does not say how many: OpenAI's default
/// for `max_tokens` (used for both OpenAI flavors).
pub const OPENAI_DEFAULT_MAX_TOKENS: u32 = 16;
/// Tokens generated when an Ollama request has no `options.num_predict`.
pub const OLLAMA_DEFAULT_NUM_PREDICT: u32 = 8;

/// Which server the fake imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// llama.cpp's `llama-server`: OpenAI-compatible, plus `/props` and a
    /// `timings` object on the final chunk / whole response.
    LlamaCpp,
    /// A plain OpenAI-compatible server (vLLM, SGLang): no `timings`, no
    /// `/props`.
    OpenAi,
    /// Ollama's native `/api/*` protocol (newline-delimited JSON streams).
    Ollama,
}

/// How the fake behaves. Build with struct update syntax:
/// `Behavior { stop_early_at: Some(3), ..Behavior::default() }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behavior {
    /// Pause between consecutive streamed tokens (the "decode" step).
    /// Default 1 ms.
    pub token_delay: Duration,
    /// Pause before the first token (the "prefill"). Default 5 ms.
    pub first_token_delay: Duration,
    /// Generate at most this many tokens, then finish with `"stop"` (an
    /// output shorter than asked for, as when the model emits EOS). `None`:
    /// always generate exactly the requested count and finish `"length"`.
    pub stop_early_at: Option<u32>,
    /// Misbehave on one request (or die after some); `None`: never.
    pub fault: Option<Fault>,
    /// The model name the server reports and (Ollama) accepts. Default
    /// `"fake-model"`.
    pub model_name: String,
    /// Ollama only: `size_vram` in `/api/ps`. `None`: the whole model is on
    /// the GPU (`size_vram == size`); `Some(0)`: CPU only; in between:
    /// partial offload.
    pub ollama_size_vram: Option<u64>,
    /// OpenAI flavors only: when set, every endpoint except `/health` and
    /// `/v1/models` requires `Authorization: Bearer <key>` and answers 401
    /// otherwise (llama.cpp's `--api-key`). Default `None`: no check.
    pub api_key: Option<String>,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            token_delay: Duration::from_millis(1),
            first_token_delay: Duration::from_millis(5),
            stop_early_at: None,
            fault: None,
            model_name: "fake-model".to_string(),
            ollama_size_vram: None,
            api_key: None,
        }
    }
}

/// A fault injected into one generation request.
///
/// Generation requests are the POSTs to `/v1/completions`,
/// `/v1/chat/completions`, `/api/generate` and `/api/chat`, numbered from 0
/// in the order they arrive (malformed ones included). "After k tokens"
/// means after `min(k, generated)` tokens and always before the final event.
/// On a non-streamed request a fault that cuts a stream applies to the whole
/// body instead (see each variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Requests `0..n` complete normally; request `n` streams 2 tokens and
    /// then the whole server dies as by [`FakeServer::kill`]: the listener
    /// closes (later connects are refused) and every open connection is cut.
    /// Non-streamed: the server dies before answering.
    DieAfterRequests(u32),
    /// Request `request` sends `tokens` tokens and then nothing more, keeping
    /// the connection open until [`FakeServer::kill`] or drop. Non-streamed:
    /// no response at all (not even the status line).
    StallAfterTokens { request: u32, tokens: u32 },
    /// Request `request`'s stream carries, after 2 tokens, one event that is
    /// not JSON (`data: {"choices": [garbage\n\n`; Ollama: the line
    /// `{"response": garbage\n`) and then carries on normally. Non-streamed:
    /// a 200 whose body is that broken JSON.
    Garbage { request: u32 },
    /// Request `request`'s stream ends after 2 tokens: the connection is
    /// closed cleanly (FIN) without the final event, `[DONE]`/`done: true`
    /// or the chunked terminator. Non-streamed: the `Content-Length` is
    /// announced but only half the body is sent.
    Truncated { request: u32 },
    /// Request `request` is answered with this HTTP status and an error
    /// body: OpenAI flavors `{"error":{"message":..,"type":..,"code":status}}`,
    /// Ollama `{"error":".."}` (each server's own error shape).
    HttpError { request: u32, status: u16 },
    /// Request `request` generates its tokens at the usual pace, but no
    /// event carries text, as when llama.cpp holds back tokens that never
    /// complete a UTF-8 character: the stream is only the last token's
    /// event with empty text (finish reason, usage and timings counting
    /// every token) and the final events. Non-streamed: answered as usual.
    NoText { request: u32 },
}

/// A running fake server. Dropping it kills it and joins its threads.
pub struct FakeServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Binds `127.0.0.1:0` and starts serving in background threads.
    pub fn start(flavor: Flavor, behavior: Behavior) -> std::io::Result<FakeServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let handler: server::Handler = match flavor {
            Flavor::LlamaCpp | Flavor::OpenAi => openai::handle,
            Flavor::Ollama => ollama::handle,
        };
        let shared = Arc::new(Shared::new(flavor, behavior, addr, handler));
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("fake-{flavor:?}-accept"))
                .spawn(move || server::accept_loop(shared, listener))?
        };
        Ok(FakeServer {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// Base URL without a trailing slash: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn flavor(&self) -> Flavor {
        self.shared.flavor
    }

    /// Generation requests received so far (see [`Fault`] for which
    /// requests count), whether or not they were answered successfully.
    pub fn requests_seen(&self) -> u32 {
        self.shared.lock().generation_requests
    }

    /// The bodies of the generation requests received, in arrival order
    /// (index `i` is request `i`). A body that is not JSON is recorded as a
    /// JSON string holding its text (lossily decoded).
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.shared.lock().bodies.clone()
    }

    /// The headers of each generation request, in arrival order; names
    /// lower-cased, values trimmed (e.g. `("authorization", "Bearer k")`).
    pub fn headers(&self) -> Vec<Vec<(String, String)>> {
        self.shared.lock().headers.clone()
    }

    /// Every request received (generation or not), as `"METHOD /path"`, in
    /// arrival order: to check that a client polled `/health` or `/api/ps`.
    pub fn request_log(&self) -> Vec<String> {
        self.shared.lock().log.clone()
    }

    /// Waits (on a condition variable, not by polling) until at least `n`
    /// generation requests have arrived; false if `timeout` passes first.
    pub fn wait_for_requests(&self, n: u32, timeout: Duration) -> bool {
        self.shared.wait_for_requests(n, timeout)
    }

    /// True once the server has been killed (by [`FakeServer::kill`] or a
    /// [`Fault::DieAfterRequests`]).
    pub fn is_dead(&self) -> bool {
        self.shared.lock().killed
    }

    /// The server dies: the listener is closed first (new connects are then
    /// refused), then every open connection is shut down in both directions
    /// (a client mid-stream reads EOF before the end of the body; std cannot
    /// set `SO_LINGER`, so this is a FIN rather than a RST). Stalled and
    /// delayed responses wake up and end. Returns once all of this is done;
    /// idempotent.
    pub fn kill(&self) {
        self.shared.kill();
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.shared.kill();
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // The acceptor has exited, so every connection thread is registered.
        let threads = std::mem::take(&mut self.shared.lock().threads);
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer")
            .field("flavor", &self.shared.flavor)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}
