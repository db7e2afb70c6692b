//! The harness drives every backend through one small trait and owns the
//! clock, in the manner of hyperfine's `Executor`: backends do work and
//! confirm it is finished; only the harness reads the timer. So every backend
//! is timed the same way, at the same boundary.

use std::collections::BTreeMap;

use assay_core::tables::{EventRow, OutputRow, RunRow};

use crate::energy::PowerOutcome;
use assay_core::tables::TextRow;

use assay_core::config::{Boundary, ModelLoad, Scenario};

/// A monotonic nanosecond clock. Real backends use [`MonotonicClock`]; the
/// simulated backend advances a virtual one.
pub trait Clock {
    fn now_ns(&self) -> u64;
}

pub struct MonotonicClock(std::time::Instant);

impl MonotonicClock {
    pub fn new() -> Self {
        MonotonicClock(std::time::Instant::now())
    }

    /// The instant this clock reads as zero.
    pub fn origin(&self) -> std::time::Instant {
        self.0
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ns(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// What actually ran, as reported by the backend after loading. Compared
/// against what the spec requested (label drift is a degraded run).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Attribution {
    pub device: String,
    pub dtype: String,
    pub threads: u32,
    pub library: String,
    pub library_version: String,
    /// Execution providers (ONNX Runtime): requested, registered, ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub providers: Option<Providers>,
    /// What a compiled path did, as evidence that it is "compiler-real"
    /// (TR120): graph sizes before and after, and how it was compiled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compiler: Option<CompilerEvidence>,
    /// What a server backend said about itself and its model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerFacts>,
    /// The tokenizer that ran inside the boundary
    /// (`tokenization: included`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<TokenizerFacts>,
}

/// Which tokenizer ran inside the timed region, by digest.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TokenizerFacts {
    /// `tokenizers` (Hugging Face's Rust crate).
    pub library: String,
    pub library_version: String,
    /// blake3 of the `tokenizer.json` text that was loaded.
    pub blake3: String,
}

impl TokenizerFacts {
    pub fn of(tokenizer_json: &str) -> Self {
        TokenizerFacts {
            library: "tokenizers".into(),
            library_version: crate::versions::TOKENIZERS.into(),
            blake3: blake3::hash(tokenizer_json.as_bytes()).to_hex().to_string(),
        }
    }
}

impl Attribution {
    /// A backend with no providers and no compiler.
    pub fn plain(device: &str, dtype: &str, threads: u32, library: &str, version: &str) -> Self {
        Attribution {
            device: device.into(),
            dtype: dtype.into(),
            threads,
            library: library.into(),
            library_version: version.into(),
            providers: None,
            compiler: None,
            server: None,
            tokenizer: None,
        }
    }
}

/// Execution providers as ONNX Runtime saw them. A requested provider that
/// did not register (say CUDA on a CPU-only build) is missing from
/// `registered`, and `ran_on` says where the graph actually ran.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Providers {
    /// In the spec's priority order.
    pub requested: Vec<String>,
    /// Those that registered with the session, in priority order (CPU is
    /// always last: ONNX Runtime falls back to it).
    pub registered: Vec<String>,
    /// The highest-priority registered provider: where the graph ran.
    pub ran_on: String,
}

/// Evidence of a compiled path (ONNX Runtime graph optimisation,
/// TorchScript), recorded by the backend after load.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CompilerEvidence {
    /// `onnxruntime-graph-optimization`, `torchscript-trace`, ...
    pub kind: String,
    /// The mode that ran: an optimisation level, an executor mode.
    pub mode: String,
    /// Graph nodes before compilation (as exported or traced).
    pub nodes_before: u64,
    /// Graph nodes after compilation (after fusion), when the library
    /// exposes the compiled graph.
    pub nodes_after: Option<u64>,
    /// Nodes per operator type before and after.
    pub ops_before: BTreeMap<String, u64>,
    pub ops_after: BTreeMap<String, u64>,
    /// Other facts: what was traced, executor settings, file digests.
    pub detail: BTreeMap<String, String>,
    /// The compiler demonstrably changed the graph (nodes fused or
    /// rewritten): "compiler-real" in the seed's sense. False means the
    /// label says compiled but the graph that ran is the one exported.
    pub real: bool,
}

/// Why a backend could not do what the harness asked. The message of each
/// variant is what the cell's failure says; the variant says whose fault it
/// is, for code that must tell them apart.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A method that needs the model was called before `load`.
    #[error("model used before load")]
    NotLoaded,
    /// The harness's input breaks the backend's contract (prompts of
    /// different lengths, ids that do not split into the batch).
    #[error("{0}")]
    BadInput(String),
    /// A forward pass would take a sequence to `needed` positions when the
    /// cell allows `allowed` (the smaller of the model's `max_positions` and
    /// the cell's prompt + generation `capacity`).
    #[error(
        "context full: {needed} tokens exceed the {allowed} positions this cell allows (model: {max_positions}, prompt + generation: {capacity})"
    )]
    ContextFull {
        needed: usize,
        allowed: usize,
        max_positions: u32,
        capacity: usize,
    },
    /// The weights cannot be read, or do not fit the declared model.
    #[error("{0}")]
    Weights(String),
    /// The inference library failed or refused (its own message).
    #[error("{0}")]
    Library(String),
    /// A failure the spec asked for (the simulated backend's `fail_at_run`).
    #[error("{0}")]
    Injected(String),
}

impl BackendError {
    pub fn context_full(
        needed: usize,
        allowed: usize,
        max_positions: u32,
        capacity: usize,
    ) -> Self {
        BackendError::ContextFull {
            needed,
            allowed,
            max_positions,
            capacity,
        }
    }
}

/// One inference engine as the harness sees it. Every method returns only
/// after the work is complete on the device (the backend synchronises).
pub trait InferenceBackend {
    /// Load weights and prepare to run. Timed as the `load` phase.
    fn load(&mut self) -> Result<Attribution, BackendError>;
    /// Forget the KV cache and any state of the previous run.
    fn reset(&mut self);
    /// Run the prompts (one per sequence) and materialise last-position logits.
    fn prefill(&mut self, prompts: &[Vec<u32>]) -> Result<(), BackendError>;
    /// Pick the next token of every sequence from the current logits
    /// (greedy; [`greedy`] does it for a row of logits).
    fn sample(&mut self) -> Result<Vec<Pick>, BackendError>;
    /// Feed one token per sequence through the model with the KV cache.
    /// Returns false when the backend cannot continue (e.g. context full).
    fn decode_step(&mut self, tokens: &[u32]) -> Result<bool, BackendError>;
}

/// One greedy pick: the token, and by how much its logit led the
/// runner-up's. The margin lets output checks across backends tell a real
/// divergence from a near-tie that float rounding may flip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pick {
    pub token: u32,
    /// Top-1 minus top-2 logit; `None` when the backend has no logits
    /// (the simulated backend).
    pub margin: Option<f32>,
}

/// Greedy choice over one row of logits; the lowest index wins a tie, so
/// it is deterministic.
pub fn greedy(row: &[f32]) -> Pick {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    let runner_up = row
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != best)
        .map(|(_, v)| *v)
        .fold(f32::NEG_INFINITY, f32::max);
    Pick {
        token: best as u32,
        margin: (row.len() > 1).then(|| row.get(best).copied().unwrap_or(0.0) - runner_up),
    }
}

/// Everything one cell's measurement produced.
pub struct CellMeasurement {
    pub events: Vec<EventRow>,
    pub runs: Vec<RunRow>,
    /// The greedy tokens of every run, for output checks across backends.
    pub outputs: Vec<OutputRow>,
    /// Each run's outputs as text, when the boundary includes tokenisation
    /// (else empty).
    pub texts: Vec<TextRow>,
    pub attribution: Attribution,
    /// Power samples when the spec asks for energy (set by the caller: the
    /// sensor runs beside the harness, not inside it).
    pub power: Option<PowerOutcome>,
}

/// Deterministic prompt token ids: the same cell always sends the same
/// prompt, so outputs can be compared across backends.
pub fn prompt_ids(scenario: &Scenario, vocab: u32, seed: u64) -> Vec<Vec<u32>> {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    (0..scenario.batch)
        .map(|_| {
            (0..scenario.prompt_tokens)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    ((state >> 33) % u64::from(vocab.max(1))) as u32
                })
                .collect()
        })
        .collect()
}

/// The events of one run (an in-process repetition or a server request):
/// the one place an `EventRow` is built, so that both kinds of backend
/// write the same rows.
pub struct RunEvents<'a> {
    pub cell: &'a str,
    pub repetition: u32,
    pub warmup: bool,
    pub cold: bool,
}

impl RunEvents<'_> {
    /// A timed phase of the run, from `start_ns` for `ns`.
    pub fn event(
        &self,
        phase: &str,
        token_index: Option<u32>,
        tokens: u32,
        start_ns: u64,
        ns: u64,
    ) -> EventRow {
        EventRow {
            cell: self.cell.to_string(),
            repetition: self.repetition,
            warmup: self.warmup,
            cold: self.cold,
            phase: phase.to_string(),
            token_index,
            tokens,
            start_ns,
            ns,
        }
    }
}

/// The model load of a cell: before every run, so it belongs to the first
/// (a cold warmup) and produces no tokens.
pub fn load_event(cell: &str, start_ns: u64, ns: u64) -> EventRow {
    RunEvents {
        cell,
        repetition: 0,
        warmup: true,
        cold: true,
    }
    .event("load", None, 0, start_ns, ns)
}

/// A tokenizer as the harness times it (`boundary.tokenization:
/// included`). Like a backend, it only does work; the harness reads the
/// clock.
pub trait TextCodec {
    /// Parse the tokenizer: timed with the model's `load`.
    fn load(&mut self) -> Result<(), BackendError>;
    fn encode(&self, text: &str) -> Result<Vec<u32>, BackendError>;
    fn decode(&self, ids: &[u32]) -> Result<String, BackendError>;
}

/// What a cell's runs feed the model.
pub enum CellPrompts<'a> {
    /// Token ids, one list per sequence: no tokenizer in the timed region.
    Ids(&'a [Vec<u32>]),
    /// Text, one per sequence, tokenised inside every run's timed region
    /// (and the outputs detokenised) by `codec`.
    Text {
        texts: &'a [String],
        codec: &'a mut dyn TextCodec,
    },
}

/// Measure one cell: load once (timed apart), then warmup runs and steady
/// runs, each split into prefill, time to first token, every decode step and
/// end to end. `should_stop` is polled between runs (Ctrl-C).
pub fn measure_cell(
    backend: &mut dyn InferenceBackend,
    clock: &dyn Clock,
    cell: &str,
    scenario: &Scenario,
    boundary: &Boundary,
    prompts: &[Vec<u32>],
    on_run: impl FnMut(u32, u32) -> bool,
) -> Result<Option<CellMeasurement>, BackendError> {
    let prompts = CellPrompts::Ids(prompts);
    measure_cell_with(backend, clock, cell, scenario, boundary, prompts, on_run)
}

/// [`measure_cell`] with ids or text. With text the tokenizer is loaded
/// inside the `load` event, and each run has a `tokenize` event before its
/// prefill and a `detokenize` event after its last decode step, both inside
/// its `ttft` (tokenize) and `e2e` (both). With `model_load: included` the
/// first run's `ttft` and `e2e` start where the load starts.
pub fn measure_cell_with(
    backend: &mut dyn InferenceBackend,
    clock: &dyn Clock,
    cell: &str,
    scenario: &Scenario,
    boundary: &Boundary,
    mut prompts: CellPrompts<'_>,
    mut on_run: impl FnMut(u32, u32) -> bool,
) -> Result<Option<CellMeasurement>, BackendError> {
    let t0 = clock.now_ns();
    let attribution = backend.load()?;
    if let CellPrompts::Text { codec, .. } = &mut prompts {
        codec.load()?;
    }
    let t1 = clock.now_ns();
    let mut runner = CellRunner {
        backend,
        clock,
        cell,
        scenario,
        prompts,
        events: vec![load_event(cell, t0, t1 - t0)],
        outputs: Vec::new(),
        texts: Vec::new(),
    };
    let mut runs = Vec::new();

    let total = boundary.warmup_runs + boundary.repetitions;
    for rep in 0..total {
        if !on_run(rep, total) {
            return Ok(None);
        }
        let run = RunEvents {
            cell,
            repetition: rep,
            warmup: rep < boundary.warmup_runs,
            cold: rep == 0,
        };
        // A service's first request waits for the model it loads.
        let load_included = boundary.model_load == ModelLoad::Included && rep == 0;
        runs.push(runner.run(&run, load_included.then_some(t0))?);
    }
    Ok(Some(CellMeasurement {
        events: runner.events,
        runs,
        outputs: runner.outputs,
        texts: runner.texts,
        attribution,
        power: None,
    }))
}

/// Greedy generation for an evaluation (no clock: nothing is timed): the
/// loaded backend runs each prompt alone from a reset cache for up to its
/// own number of tokens, stopping early only where the backend cannot go
/// on (context full). `keep_going` is polled between prompts (Ctrl-C);
/// `None` when it said stop.
pub fn generate(
    backend: &mut dyn InferenceBackend,
    prompts: &[Vec<u32>],
    max_tokens: &[u32],
    mut keep_going: impl FnMut(usize, usize) -> bool,
) -> Result<Option<Vec<Vec<u32>>>, BackendError> {
    let mut outputs = Vec::with_capacity(prompts.len());
    for (i, (prompt, &max)) in prompts.iter().zip(max_tokens).enumerate() {
        if !keep_going(i, prompts.len()) {
            return Ok(None);
        }
        backend.reset();
        backend.prefill(std::slice::from_ref(prompt))?;
        let mut tokens = Vec::with_capacity(max as usize);
        let mut next = first_pick(backend.sample()?)?;
        tokens.push(next);
        while tokens.len() < max as usize {
            if !backend.decode_step(&[next])? {
                break;
            }
            next = first_pick(backend.sample()?)?;
            tokens.push(next);
        }
        outputs.push(tokens);
    }
    Ok(Some(outputs))
}

/// The token of a batch of one.
fn first_pick(picks: Vec<Pick>) -> Result<u32, BackendError> {
    picks
        .first()
        .map(|p| p.token)
        .ok_or_else(|| BackendError::Library("the backend sampled no token".into()))
}

/// The runs of one in-process cell, and the events and greedy tokens they
/// have recorded so far.
struct CellRunner<'a, 'p> {
    backend: &'a mut dyn InferenceBackend,
    clock: &'a dyn Clock,
    cell: &'a str,
    scenario: &'a Scenario,
    prompts: CellPrompts<'p>,
    events: Vec<EventRow>,
    outputs: Vec<OutputRow>,
    texts: Vec<TextRow>,
}

impl CellRunner<'_, '_> {
    /// One run from a reset backend: [tokenize,] prefill, the first token,
    /// decode steps until `gen_tokens` or the backend cannot go on,
    /// [detokenize,] end to end. `since` moves the start of `ttft` and
    /// `e2e` back (to the model load, when the boundary includes it).
    fn run(&mut self, run: &RunEvents, since: Option<u64>) -> Result<RunRow, BackendError> {
        let scenario = self.scenario;
        let batch = scenario.batch;
        let event = |phase: &str, token_index: Option<u32>, tokens: u32, from: u64, to: u64| {
            run.event(phase, token_index, tokens, from, to - from)
        };
        self.backend.reset();
        let mut generated: Vec<Vec<u32>> = vec![Vec::new(); batch as usize];

        let start = self.clock.now_ns();
        let encoded = self.tokenize(run, start)?;
        let start_prefill = match &encoded {
            Some(_) => self.clock.now_ns(),
            None => start,
        };
        let prompt_len = encoded.as_ref().map_or(scenario.prompt_tokens, |(ids, _)| {
            ids.first().map_or(0, |s| s.len() as u32)
        });
        match (&encoded, &self.prompts) {
            (Some((ids, _)), _) => self.backend.prefill(ids)?,
            (None, CellPrompts::Ids(ids)) => self.backend.prefill(ids)?,
            (None, CellPrompts::Text { .. }) => return Err(BackendError::NotLoaded),
        }
        let prefilled = self.clock.now_ns();
        let first = self.backend.sample()?;
        let first_token = self.clock.now_ns();
        let from = since.unwrap_or(start);
        self.events.push(event(
            "prefill",
            None,
            prompt_len * batch,
            start_prefill,
            prefilled,
        ));
        self.events
            .push(event("ttft", Some(0), batch, from, first_token));
        for (seq, p) in generated.iter_mut().zip(&first) {
            seq.push(p.token);
        }
        self.record(run.repetition, 0, &first);

        let mut last: Vec<u32> = first.iter().map(|p| p.token).collect();
        let mut produced = 1;
        for index in 1..scenario.gen_tokens {
            let step_start = self.clock.now_ns();
            if !self.backend.decode_step(&last)? {
                break;
            }
            let next = self.backend.sample()?;
            let step_end = self.clock.now_ns();
            self.events
                .push(event("decode", Some(index), batch, step_start, step_end));
            for (seq, p) in generated.iter_mut().zip(&next) {
                seq.push(p.token);
            }
            self.record(run.repetition, index, &next);
            last = next.iter().map(|p| p.token).collect();
            produced += 1;
        }
        if let Some((_, encoded_lens)) = &encoded {
            self.detokenize(run, &generated, prompt_len, encoded_lens)?;
        }
        let end = self.clock.now_ns();
        self.events
            .push(event("e2e", None, produced * batch, from, end));

        Ok(RunRow {
            cell: self.cell.to_string(),
            repetition: run.repetition,
            warmup: run.warmup,
            cold: run.cold,
            prompt_tokens: prompt_len,
            batch,
            gen_tokens_requested: scenario.gen_tokens,
            gen_tokens_produced: produced,
            short: produced < scenario.gen_tokens,
            output_digest: output_digest(&generated),
        })
    }

    /// Text prompts to ids, timed as the run's `tokenize` event: every
    /// sequence's text is encoded, then all are cut to the shortest and to
    /// the scenario's `prompt_tokens` (a batch runs prompts of one length).
    /// `None` for id prompts. Also returns each text's encoded length.
    #[allow(clippy::type_complexity)]
    fn tokenize(
        &mut self,
        run: &RunEvents,
        start: u64,
    ) -> Result<Option<(Vec<Vec<u32>>, Vec<u32>)>, BackendError> {
        let CellPrompts::Text { texts, codec } = &self.prompts else {
            return Ok(None);
        };
        let mut ids = Vec::with_capacity(texts.len());
        for text in texts.iter() {
            ids.push(codec.encode(text)?);
        }
        let end = self.clock.now_ns();
        let lens: Vec<u32> = ids.iter().map(|s| s.len() as u32).collect();
        let total = lens.iter().sum();
        self.events
            .push(run.event("tokenize", None, total, start, end - start));
        let keep = ids
            .iter()
            .map(Vec::len)
            .min()
            .unwrap_or(0)
            .min(self.scenario.prompt_tokens as usize);
        if keep == 0 {
            return Err(BackendError::BadInput(
                "a text prompt tokenised to no tokens".into(),
            ));
        }
        for seq in &mut ids {
            seq.truncate(keep);
        }
        Ok(Some((ids, lens)))
    }

    /// The run's generated ids to text, timed as its `detokenize` event
    /// (before the end of `e2e`); one `texts` row per sequence.
    fn detokenize(
        &mut self,
        run: &RunEvents,
        generated: &[Vec<u32>],
        prompt_len: u32,
        encoded: &[u32],
    ) -> Result<(), BackendError> {
        let CellPrompts::Text { codec, texts } = &self.prompts else {
            return Ok(());
        };
        let start = self.clock.now_ns();
        let mut outputs = Vec::with_capacity(generated.len());
        for seq in generated {
            outputs.push(codec.decode(seq)?);
        }
        let end = self.clock.now_ns();
        let tokens = generated.iter().map(|s| s.len() as u32).sum();
        self.events
            .push(run.event("detokenize", None, tokens, start, end - start));
        for (sequence, output) in outputs.into_iter().enumerate() {
            let prompt = texts.get(sequence).cloned().unwrap_or_default();
            self.texts.push(TextRow {
                cell: self.cell.to_string(),
                repetition: run.repetition,
                sequence: sequence as u32,
                prompt,
                prompt_tokens: prompt_len,
                prompt_tokens_encoded: encoded.get(sequence).copied().unwrap_or(0),
                output,
            });
        }
        Ok(())
    }

    /// The picks of one step, one output row per sequence.
    fn record(&mut self, repetition: u32, step: u32, picks: &[Pick]) {
        for (sequence, p) in picks.iter().enumerate() {
            self.outputs.push(OutputRow {
                cell: self.cell.to_string(),
                repetition,
                sequence: sequence as u32,
                step,
                token: p.token,
                margin: p.margin,
            });
        }
    }
}

/// blake3 of a run's generated tokens, sequence by sequence: every kind
/// that reports tokens stores this digest, so equal outputs have equal
/// digests across kinds.
pub(crate) fn output_digest(generated: &[Vec<u32>]) -> String {
    let mut hasher = blake3::Hasher::new();
    for seq in generated {
        for t in seq {
            hasher.update(&t.to_le_bytes());
        }
        hasher.update(b"|");
    }
    hasher.finalize().to_hex().to_string()
}

/// What the server said about itself and its model: the attribution of a
/// server cell (`actual.server` in the manifest).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServerFacts {
    /// `openai` or `ollama`.
    pub protocol: String,
    /// `completions` or `chat`.
    pub api: String,
    /// The server's address (no credentials, no query).
    pub url: String,
    /// assay launched the server for this cell (llama-server).
    pub launched: bool,
    /// The model name sent in requests.
    pub served_model: String,
    /// Models the server lists (`/v1/models`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listed_models: Vec<String>,
    /// The server's version: llama.cpp's `build_info` (`/props`), Ollama's
    /// `/api/version`; absent when the server does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Context size and slots (llama.cpp `/props`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_ctx: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<u64>,
    /// Ollama `/api/show` and `/api/ps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_count: Option<u64>,
    /// Depth, width and attention heads from Ollama's `/api/show` model
    /// info (`<arch>.block_count`, `.embedding_length`,
    /// `.attention.head_count`): the structural predictors of TR121's fits
    /// for a model that exists only on the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_layer: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_embd: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_head: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Bytes of the loaded model, and of them in GPU memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_vram: Option<u64>,
    /// `size_vram / size`: 1 fully offloaded to the GPU, 0 on the CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_offload: Option<f64>,
    /// Whether the device in the attribution was observed (Ollama's
    /// offload, a CPU-only llama-server assay launched) or only declared by
    /// the spec (an OpenAI-compatible server says nothing of its device).
    pub device_observed: bool,
}

#[cfg(test)]
mod tests;
