//! One server cell: reach (or launch) the server, learn what it serves,
//! drive the load profile, and turn the requests into the same events and
//! runs every backend produces, plus the per-request `requests` table.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use serde_json::{Value, json};

use super::client::{Client, Outcome};
use super::launch::{self, Launch, LaunchedServer};
use super::load::{self, Issued, Schedule, Window};
use super::ollama;
use super::protocol::{Prompt, RequestSpec};
use super::{OLLAMA, OPENAI};
use crate::harness::{self, Attribution, CellMeasurement};
use crate::harness::{RunEvents, ServerFacts, load_event};
use assay_core::config::server::{PromptFormat, ServerOptions};
use assay_core::config::{BackendConfig, Boundary, Scenario};
use assay_core::domain::RequestStatus;
use assay_core::stage::StageContext;
use assay_core::tables::{EventRow, RequestRow, RunRow};

/// Everything a server cell produced.
pub struct ServerMeasurement {
    pub measured: CellMeasurement,
    pub requests: Vec<RequestRow>,
}

/// A failed cell: the message, and a JSON record of what was received
/// (raw bytes of failed requests) to keep beside the error.
pub struct CellFailure {
    pub message: String,
    pub record: Value,
}

/// One server cell's inputs.
pub struct ServerCell<'a> {
    pub cell: &'a str,
    pub backend: &'a BackendConfig,
    /// The model name the server knows.
    pub served_model: &'a str,
    pub scenario: &'a Scenario,
    pub boundary: &'a Boundary,
    /// Vocabulary and seed of a prepared model (token prompts).
    pub vocab: Option<u32>,
    pub seed: u64,
    /// Mixed into the unique prompt prefixes: a fresh value per run, so a
    /// rerun never meets its own earlier prompts in a server's cache.
    pub nonce: u64,
    /// The GGUF export (or local GGUF file), when assay launches
    /// llama-server.
    pub gguf: Option<PathBuf>,
    /// The dtype that GGUF holds (what a launched server runs).
    pub served_dtype: Option<String>,
}

impl ServerCell<'_> {
    fn opts(&self) -> ServerOptions {
        self.backend.server.clone().unwrap_or_default()
    }

    fn schedule(&self) -> Schedule {
        match &self.scenario.load {
            Some(p) => Schedule::from_profile(p),
            None => Schedule::one_at_a_time(self.boundary.warmup_runs, self.boundary.repetitions),
        }
    }

    /// The prompt of request `index`. Unless the spec asks for prompt-cache
    /// reuse, the first tokens (or the first word) are unique to the
    /// request, so no request can reuse another's cached prefix.
    pub fn prompt(&self, index: u32) -> Prompt {
        let opts = self.opts();
        let n = self.scenario.prompt_tokens as usize;
        let unique = !opts.prompt_cache;
        // Unique per cell and request: two cells on one server never share
        // a prompt either.
        let salt = u64::from_le_bytes(
            blake3::hash(format!("{}\0{}", self.cell, self.nonce).as_bytes()).as_bytes()[..8]
                .try_into()
                .unwrap_or([0; 8]),
        )
        .wrapping_add(u64::from(index));
        // A boundary that includes tokenisation sends text, which the
        // server tokenises inside the client's timed region.
        let tokens = opts.prompt != Some(PromptFormat::Text)
            && !self.boundary.tokenizes()
            && opts.api == assay_core::config::server::ServerApi::Completions
            && self.backend.kind == OPENAI;
        match (tokens, self.vocab) {
            (true, Some(vocab)) => {
                let mut ids = harness::prompt_ids(
                    &Scenario {
                        batch: 1,
                        ..self.scenario.clone()
                    },
                    vocab,
                    self.seed,
                )
                .remove(0);
                if unique {
                    let v = u64::from(vocab.max(2));
                    let x = salt;
                    let prefix = [(x % v) as u32, ((x / v) % v) as u32];
                    for (slot, id) in ids.iter_mut().zip(prefix) {
                        *slot = id;
                    }
                }
                Prompt::Tokens(ids)
            }
            _ => {
                let mut words: Vec<String> = (0..n)
                    .map(|i| WORDS[(i * 7 + self.seed as usize) % WORDS.len()].to_string())
                    .collect();
                // The word is a digest of (cell, nonce, index), not the
                // salt's `+ index`: consecutive salts share their leading
                // hex digits, and a byte-level vocabulary made those a
                // shared prefix that llama-server served from its cache
                // (19 of 140 tokens). Fixed width: every prompt of a cell
                // has the same length.
                if unique && let Some(first) = words.first_mut() {
                    *first = format!("r{:016x}", text_salt(self.cell, self.nonce, index));
                }
                Prompt::Text(words.join(" "))
            }
        }
    }
}

/// The unique first word's value for request `index` of a run: a digest,
/// so that two requests' words share no more leading digits than chance
/// gives (one in 16 shares the first).
fn text_salt(cell: &str, nonce: u64, index: u32) -> u64 {
    u64::from_le_bytes(
        blake3::hash(format!("{cell}\0{nonce}\0{index}").as_bytes()).as_bytes()[..8]
            .try_into()
            .unwrap_or([0; 8]),
    )
}

/// Common English words, each a single token in the usual vocabularies.
const WORDS: [&str; 32] = [
    "the", "time", "people", "way", "day", "man", "thing", "woman", "life", "child", "world",
    "school", "state", "family", "group", "country", "problem", "hand", "part", "place", "case",
    "week", "company", "system", "program", "question", "work", "number", "night", "point", "home",
    "water",
];

/// The URL as recorded: scheme, host, port and path, never user info or a
/// query string.
pub fn display_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{}", rest.trim_end_matches('/'))
}

/// A cell failure with nothing received to keep beside it.
fn fail(message: String) -> CellFailure {
    CellFailure {
        message,
        record: Value::Null,
    }
}

/// Runs one server cell.
pub fn measure(
    cell: &ServerCell<'_>,
    ctx: &StageContext<'_>,
) -> Result<ServerMeasurement, CellFailure> {
    let backend = cell.backend;
    let opts = cell.opts();
    let api_key = api_key(cell, &opts)?;
    let clock = harness::MonotonicClock::new();
    let origin = clock.origin();
    let mut events = Vec::new();

    // Launch llama-server, timed as the load phase.
    let mut launched = None;
    let base = match (&opts.url, &cell.gguf) {
        (Some(url), _) => url.clone(),
        (None, Some(gguf)) => {
            let server = launch_server(cell, ctx, &opts, gguf, origin, &mut events)?;
            let url = server.url.clone();
            launched = Some(server);
            url
        }
        (None, None) => {
            return Err(fail(format!(
                "backend {}: no server.url and no GGUF export to launch llama-server with",
                backend.name
            )));
        }
    };
    let client = Client::new(&backend.kind, &base, cell.served_model, &opts, api_key)
        .map_err(|e| fail(format!("backend {}: {e}", backend.name)))?;
    let client = Rc::new(client);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start the async runtime: {e}")))?;
    let local = tokio::task::LocalSet::new();

    let cancelled = || ctx.cancelled();
    let mut facts = local
        .block_on(
            &rt,
            load::unless_cancelled(probe(&client, cell, &base), &cancelled),
        )
        .ok_or_else(|| fail("cancelled".into()))?
        .map_err(|e| {
            fail(format!(
                "backend {}: the server at {} is not usable: {e}",
                backend.name,
                display_url(&base)
            ))
        })?;
    facts.launched = launched.is_some();

    // The requests, prepared before the clock matters.
    let schedule = cell.schedule();
    ctx.progress(&format!("{} requests", describe(&schedule)));
    let send = {
        let client = client.clone();
        let prompts = Rc::new(ServerCellPrompt::from(cell));
        let max_tokens = cell.scenario.gen_tokens;
        move |index: u32| {
            let client = client.clone();
            let spec = RequestSpec {
                index,
                prompt: prompts.prompt(index),
                max_tokens,
            };
            async move { client.send(&spec).await }
        }
    };
    let issued = local
        .block_on(&rt, load::drive(&schedule, send, &cancelled))
        .ok_or_else(|| fail("cancelled".into()))?;

    if backend.kind == OLLAMA {
        // Only a loaded model is listed: ask after the run.
        if let Ok(ps) = local.block_on(&rt, client.json("/api/ps", None)) {
            add_ps_facts(&mut facts, &ps, cell.served_model);
        }
    }

    let requests: Vec<RequestRow> = issued
        .iter()
        .map(|r| request_row(cell, r, origin))
        .collect();
    check_error_rate(cell, &opts, &requests, &mut launched)?;
    drop(launched);
    Ok(assemble(cell, facts, events, requests))
}

/// The API key, from the environment variable the spec names.
fn api_key(cell: &ServerCell<'_>, opts: &ServerOptions) -> Result<Option<String>, CellFailure> {
    Ok(match &opts.api_key_env {
        Some(var) => Some(std::env::var(var).map_err(|_| {
            fail(format!(
                "backend {}: server.api_key_env names {var}, which is not set in the environment",
                cell.backend.name
            ))
        })?),
        None => None,
    })
}

/// Start llama-server on the cell's GGUF, its start pushed to `events` as
/// the load phase.
fn launch_server(
    cell: &ServerCell<'_>,
    ctx: &StageContext<'_>,
    opts: &ServerOptions,
    gguf: &Path,
    origin: Instant,
    events: &mut Vec<EventRow>,
) -> Result<LaunchedServer, CellFailure> {
    let backend = cell.backend;
    let binary = launch::binary().ok_or_else(|| {
        fail(format!(
            "backend {}: llama-server not found: set {} or put llama-server on the PATH (scripts/install-llama-cpp.sh builds it)",
            backend.name,
            launch::SERVER_ENV
        ))
    })?;
    let lo = opts.launch.clone().unwrap_or_default();
    // Room per slot for the prompt, the generation and what a
    // template or a text prompt's tokenisation adds.
    let per_slot = cell
        .scenario
        .prompt_tokens
        .saturating_add(cell.scenario.gen_tokens)
        .saturating_add(64);
    let ctx_size = lo
        .ctx_size
        .unwrap_or_else(|| per_slot.saturating_mul(lo.parallel));
    ctx.progress("starting llama-server");
    let t0 = clock_ns(origin);
    let server = LaunchedServer::start(
        &Launch {
            binary: &binary,
            gguf,
            alias: cell.served_model,
            threads: backend.threads,
            ctx_size,
            opts: &lo,
        },
        &|| ctx.cancelled(),
    )
    .map_err(|e| fail(format!("backend {}: {e}", backend.name)))?;
    let t1 = clock_ns(origin);
    events.push(load_event(cell.cell, t0, t1 - t0));
    Ok(server)
}

/// What Ollama's `/api/ps` says of the loaded model: its digest, sizes and
/// how much of it sits in GPU memory.
fn add_ps_facts(facts: &mut ServerFacts, ps: &Value, served_model: &str) {
    let mut m = ollama::ModelFacts::default();
    ollama::add_ps_facts(&mut m, ps, served_model);
    facts.digest = m.digest;
    facts.size = m.size;
    facts.size_vram = m.size_vram;
    facts.gpu_offload = match (m.size, m.size_vram) {
        (Some(size), Some(vram)) if size > 0 => Some(vram as f64 / size as f64),
        _ => None,
    };
}

/// Fail the cell when more of its steady requests failed than the spec
/// allows, keeping what the failed requests received.
fn check_error_rate(
    cell: &ServerCell<'_>,
    opts: &ServerOptions,
    requests: &[RequestRow],
    launched: &mut Option<LaunchedServer>,
) -> Result<(), CellFailure> {
    let failed: Vec<&RequestRow> = requests.iter().filter(|r| !r.is_ok()).collect();
    // The error rate is of the steady window, the requests that count.
    let steady = requests.iter().filter(|r| r.is_steady()).count();
    let steady_failed = failed.iter().filter(|r| r.is_steady()).count();
    let rate = steady_failed as f64 / steady.max(1) as f64;
    let too_many = steady_failed > 0 && rate > opts.max_error_rate;
    if !too_many {
        return Ok(());
    }
    let first = failed
        .iter()
        .find(|r| r.is_steady())
        .copied()
        .unwrap_or(failed[0]);
    let mut message = format!(
        "backend {}: {} of {} steady requests failed (max_error_rate {}); request {}: {}: {}",
        cell.backend.name,
        steady_failed,
        steady,
        opts.max_error_rate,
        first.request,
        first.status,
        first.error.as_deref().unwrap_or("")
    );
    if let Some(server) = launched.as_mut()
        && !server.alive()
    {
        message.push_str(&format!(
            "; llama-server exited during the run, its log ends:\n{}",
            server.log_tail()
        ));
    }
    let record = json!({
        "cell": cell.cell,
        "error": message,
        "failed_requests": failed.iter().map(|r| json!({
            "request": r.request,
            "window": r.window,
            "status": r.status,
            "error": r.error,
            "raw": r.raw,
        })).collect::<Vec<_>>(),
    });
    Err(CellFailure { message, record })
}

/// The cell's measurement: the load event(s) so far, then the runs and
/// events the requests make.
fn assemble(
    cell: &ServerCell<'_>,
    facts: ServerFacts,
    mut events: Vec<EventRow>,
    requests: Vec<RequestRow>,
) -> ServerMeasurement {
    let attribution = attribution(cell, facts);
    let (run_events, runs) = runs_and_events(cell, &requests);
    // Ollama reports loading the model in the first request: the load phase.
    if cell.backend.kind == OLLAMA
        && let Some(first) = requests.first()
        && let Some(load_ms) = first.server_load_ms
    {
        events.push(load_event(cell.cell, first.sent_ns, (load_ms * 1e6) as u64));
    }
    events.extend(run_events);
    ServerMeasurement {
        measured: CellMeasurement {
            events,
            runs,
            outputs: Vec::new(),
            texts: Vec::new(),
            attribution,
            power: None,
        },
        requests,
    }
}

/// The prompt maker of a cell, detached from its borrows so that request
/// futures can own it.
struct ServerCellPrompt {
    cell: String,
    backend: BackendConfig,
    scenario: Scenario,
    boundary: Boundary,
    vocab: Option<u32>,
    seed: u64,
    nonce: u64,
}

impl From<&ServerCell<'_>> for ServerCellPrompt {
    fn from(c: &ServerCell<'_>) -> Self {
        ServerCellPrompt {
            cell: c.cell.to_string(),
            backend: c.backend.clone(),
            scenario: c.scenario.clone(),
            boundary: c.boundary.clone(),
            vocab: c.vocab,
            seed: c.seed,
            nonce: c.nonce,
        }
    }
}

impl ServerCellPrompt {
    fn prompt(&self, index: u32) -> Prompt {
        ServerCell {
            cell: &self.cell,
            backend: &self.backend,
            served_model: "",
            scenario: &self.scenario,
            boundary: &self.boundary,
            vocab: self.vocab,
            seed: self.seed,
            nonce: self.nonce,
            gguf: None,
            served_dtype: None,
        }
        .prompt(index)
    }
}

fn describe(s: &Schedule) -> String {
    match s.arrival {
        assay_core::config::Arrival::Closed => format!("closed loop x{}:", s.concurrency),
        a => format!("{} {} rps:", a.as_str(), s.rate),
    }
}

fn clock_ns(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// What the server says about itself, before any measured request.
async fn probe(client: &Client, cell: &ServerCell<'_>, base: &str) -> Result<ServerFacts, String> {
    let opts = cell.opts();
    let mut facts = ServerFacts {
        protocol: cell.backend.kind.as_str().into(),
        api: opts.api.as_str().into(),
        url: display_url(base),
        served_model: cell.served_model.into(),
        ..ServerFacts::default()
    };
    if cell.backend.kind == OLLAMA {
        let v = client.json("/api/version", None).await.map_err(|e| e.0)?;
        facts.version = v["version"].as_str().map(str::to_string);
        let show = client
            .json("/api/show", Some(json!({ "model": cell.served_model })))
            .await
            .map_err(|e| format!("model {:?}: {}", cell.served_model, e.0))?;
        let m = ollama::show_facts(&show);
        facts.quantization = m.quantization;
        facts.format = m.format;
        facts.family = m.family;
        facts.parameter_size = m.parameter_size;
        facts.parameter_count = m.parameter_count;
        facts.n_ctx = m.context_length;
        facts.n_layer = m.n_layer;
        facts.n_embd = m.n_embd;
        facts.n_head = m.n_head;
    } else {
        let models = client.json("/v1/models", None).await.map_err(|e| e.0)?;
        facts.listed_models = models["data"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if !facts.listed_models.is_empty()
            && !facts.listed_models.iter().any(|m| m == cell.served_model)
        {
            return Err(format!(
                "it does not serve model {:?} (it lists: {})",
                cell.served_model,
                facts.listed_models.join(", ")
            ));
        }
        // llama.cpp only; other servers answer 404.
        if let Ok(props) = client.json("/props", None).await {
            facts.version = props["build_info"].as_str().map(str::to_string);
            facts.slots = props["total_slots"].as_u64();
            facts.n_ctx = props["default_generation_settings"]["n_ctx"].as_u64();
        }
    }
    Ok(facts)
}

/// What ran, as far as the server lets anyone see.
fn attribution(cell: &ServerCell<'_>, mut facts: ServerFacts) -> Attribution {
    let b = cell.backend;
    let (device, dtype, library) = if b.kind == OLLAMA {
        facts.device_observed = facts.gpu_offload.is_some();
        let device = match facts.gpu_offload {
            Some(f) if f <= 0.0 => "cpu".to_string(),
            // Fully offloaded: the GPU the spec names (Ollama does not
            // say which).
            Some(f) if f >= 1.0 => {
                if b.device == "cpu" {
                    "gpu".to_string()
                } else {
                    b.device.clone()
                }
            }
            Some(f) => format!("partial-offload:{:.0}%", f * 100.0),
            None => b.device.clone(),
        };
        let dtype = facts
            .quantization
            .as_deref()
            .map_or_else(|| b.dtype.as_str().to_string(), str::to_ascii_lowercase);
        (device, dtype, "ollama")
    } else if facts.launched {
        // assay's llama-server build is CPU-only.
        facts.device_observed = true;
        let dtype = cell
            .served_dtype
            .clone()
            .unwrap_or_else(|| b.dtype.as_str().to_string());
        ("cpu".to_string(), dtype, "llama.cpp")
    } else {
        (
            b.device.clone(),
            b.dtype.as_str().to_string(),
            "openai-compatible",
        )
    };
    let version = facts.version.clone().unwrap_or_else(|| "unknown".into());
    let mut a = Attribution::plain(&device, &dtype, b.threads, library, &version);
    a.server = Some(facts);
    a
}

fn request_row(cell: &ServerCell<'_>, r: &Issued<Outcome>, origin: Instant) -> RequestRow {
    let o = &r.result;
    let at = |t: Instant| u64::try_from(t.duration_since(origin).as_nanos()).unwrap_or(u64::MAX);
    let produced = o.completion_tokens.unwrap_or(o.chunks);
    let requested = cell.scenario.gen_tokens;
    // The client's send instant starts the timed region; everything before
    // it (building the request, waiting for the task to run) is queueing.
    let sent = o.sent.unwrap_or(r.sent);
    RequestRow {
        cell: cell.cell.to_string(),
        request: r.index,
        window: r.window.as_str().into(),
        scheduled_ns: at(r.scheduled),
        sent_ns: at(sent),
        queue_ns: at(sent).saturating_sub(at(r.scheduled)),
        ttft_ns: o.ttft_ns,
        itl_ns: o.itl_ns.clone(),
        e2e_ns: o.e2e_ns,
        prompt_tokens: o.prompt_tokens,
        completion_tokens: o.completion_tokens,
        chunks: o.chunks,
        gen_tokens_requested: requested,
        short: o.failure.is_none() && produced < requested,
        finish_reason: o.finish_reason.clone(),
        server_prompt_ms: o.server_prompt_ms,
        server_decode_ms: o.server_decode_ms,
        server_load_ms: o.server_load_ms,
        server_prompt_tokens: o.server_prompt_tokens,
        status: o
            .failure
            .as_ref()
            .map_or(RequestStatus::Ok, |f| f.kind)
            .as_str()
            .into(),
        error: o.failure.as_ref().map(|f| f.message.clone()),
        raw: o.failure.as_ref().map(|f| f.raw.clone()),
        output_digest: o.output_digest.clone(),
    }
}

/// Every ok request of the warmup and steady windows is a run: the
/// server's prompt time as `prefill` (when it reports one), the client's
/// TTFT, one `decode` event per later chunk, and end to end. A request
/// whose tokens carried no visible text has no TTFT or decode events (its
/// run is degraded by validate). Cooldown and failed requests stay in the
/// `requests` table only.
fn runs_and_events(cell: &ServerCell<'_>, requests: &[RequestRow]) -> (Vec<EventRow>, Vec<RunRow>) {
    let mut events = Vec::new();
    let mut runs = Vec::new();
    for r in requests {
        if r.window() == Some(Window::Cooldown) || !r.is_ok() {
            continue;
        }
        let Some(e2e) = r.e2e_ns else {
            continue;
        };
        let warmup = r.window() == Some(Window::Warmup);
        let cold = r.request == 0;
        let run = RunEvents {
            cell: cell.cell,
            repetition: r.request,
            warmup,
            cold,
        };
        let ev = |phase: &str, token_index: Option<u32>, tokens: u32, start_ns: u64, ns: u64| {
            run.event(phase, token_index, tokens, start_ns, ns)
        };
        let prompt_tokens = r.prompt_tokens.unwrap_or(cell.scenario.prompt_tokens);
        if let Some(ms) = r.server_prompt_ms {
            // The tokens the server's prompt time covers (a prompt cache
            // may have served the rest).
            let evaluated = r.server_prompt_tokens.unwrap_or(prompt_tokens);
            events.push(ev("prefill", None, evaluated, r.sent_ns, (ms * 1e6) as u64));
        }
        if let Some(ttft) = r.ttft_ns {
            events.push(ev("ttft", Some(0), 1, r.sent_ns, ttft));
            let mut at = r.sent_ns + ttft;
            for (k, gap) in r.itl_ns.iter().enumerate() {
                events.push(ev("decode", Some(k as u32 + 1), 1, at, *gap));
                at += gap;
            }
        }
        let produced = r.completion_tokens.unwrap_or(r.chunks);
        events.push(ev("e2e", None, produced, r.sent_ns, e2e));
        runs.push(RunRow {
            cell: cell.cell.to_string(),
            repetition: r.request,
            warmup,
            cold,
            prompt_tokens,
            batch: 1,
            gen_tokens_requested: r.gen_tokens_requested,
            gen_tokens_produced: produced,
            short: r.short,
            output_digest: r.output_digest.clone().unwrap_or_default(),
        });
    }
    (events, runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text prompts of consecutive requests must not share a prefix
    /// beyond chance: a server's prefix cache would serve it (llama-server
    /// reused 19 of 140 tokens per request when the unique word was the
    /// run's salt plus the index, whose leading hex digits never change).
    #[test]
    fn text_prompts_of_consecutive_requests_share_no_prefix() {
        let backend: BackendConfig = serde_json::from_value(json!({
            "name": "s", "kind": "openai",
            "server": { "url": "http://127.0.0.1:1", "prompt": "text" }
        }))
        .unwrap();
        let scenario: Scenario = serde_json::from_value(json!({
            "name": "c", "prompt_tokens": 8, "batch": 1, "gen_tokens": 4
        }))
        .unwrap();
        let boundary: Boundary =
            serde_json::from_value(json!({ "warmup_runs": 0, "repetitions": 1 })).unwrap();
        let cell = ServerCell {
            cell: "s/m/c",
            backend: &backend,
            served_model: "m",
            scenario: &scenario,
            boundary: &boundary,
            vocab: None,
            seed: 1,
            nonce: 42,
            gguf: None,
            served_dtype: None,
        };
        let firsts: Vec<String> = (0..64)
            .map(|i| match cell.prompt(i) {
                Prompt::Text(t) => t.split(' ').next().unwrap().to_string(),
                Prompt::Tokens(_) => panic!("text prompts were asked for"),
            })
            .collect();
        // Unique, all of one length (the prompt's token count is fixed).
        let distinct: std::collections::BTreeSet<_> = firsts.iter().collect();
        assert_eq!(distinct.len(), 64);
        assert!(firsts.iter().all(|w| w.len() == 17 && w.starts_with('r')));
        // Neighbours share their first hex digit about one time in 16, not
        // always.
        let shared = firsts
            .windows(2)
            .filter(|w| w[0].as_bytes()[1] == w[1].as_bytes()[1])
            .count();
        assert!(
            shared < 16,
            "{shared} of 63 neighbours share a first digit: {firsts:?}"
        );
    }

    #[test]
    fn urls_are_recorded_without_credentials() {
        assert_eq!(
            display_url("http://user:pw@host:8000/?key=x"),
            "http://host:8000"
        );
        assert_eq!(
            display_url("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080"
        );
    }
}
