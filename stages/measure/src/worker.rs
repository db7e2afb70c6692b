//! Real backends measure in a child process: `assay measure-worker`.
//!
//! Why a process: candle (like OpenMP and ONNX Runtime) fixes its thread
//! pool once per process from the environment, so a cell that asks for 1
//! thread and one that asks for 2 cannot share a process; and a cold model
//! load is only cold in a fresh process. The parent sends one JSON request
//! line on stdin and keeps stdin open; the child answers with JSON lines on
//! stdout: progress, then the measurement or an error. The child exits at
//! once when its stdin closes: the parent died (even by SIGKILL, which no
//! handler sees), and a measurement nobody will read must not keep the
//! machine busy.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::Receiver;

use serde::{Deserialize, Serialize};

use crate::candle::WeightFiles;
use crate::energy::{PowerOutcome, Sampler, Sampling, open_sensor};
use crate::harness::{
    self, Attribution, CellMeasurement, CellPrompts, InferenceBackend, MonotonicClock,
};
use crate::stage::registry::{Backend, Open, Registry};
use crate::text::{Codec, TextRow};
use assay_core::config::{BackendConfig, Boundary, Scenario};
use assay_core::stage::{StageContext, StageError};
use assay_core::tables::{EventRow, OutputRow, RunRow};
use assay_model::decl::ModelInfo;

/// One cell for a worker: the backend as the spec gave it (its kind's
/// registry entry opens it), the model and its weight files, and what to
/// run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerRequest {
    pub cell: String,
    pub info: ModelInfo,
    pub backend: BackendConfig,
    pub files: WeightFiles,
    pub scenario: Scenario,
    pub boundary: Boundary,
    pub prompts: Vec<Vec<u32>>,
    /// Text prompts and the tokenizer that runs them, when the boundary
    /// includes tokenisation (then `prompts` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextPrompts>,
    /// Sample power while measuring (the spec's `energy:`).
    #[serde(default)]
    pub energy: Option<Sampling>,
    /// Generate instead of measuring (an evaluation): each of `prompts`
    /// runs alone, greedily, for the number of tokens at its index here;
    /// nothing is timed and the answer is [`Generation`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<Vec<u32>>,
}

/// What a worker asked to generate answers: the greedy tokens of each
/// prompt, and what actually ran them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Generation {
    pub tokens: Vec<Vec<u32>>,
    pub attribution: Attribution,
}

/// A cell's text prompts (one per sequence) and its model's
/// `tokenizer.json`, parsed inside the timed load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextPrompts {
    pub texts: Vec<String>,
    pub tokenizer_json: String,
}

// One Done per cell against many Progress lines: boxing the big variant
// would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WorkerMessage {
    Progress(String),
    Done {
        events: Vec<EventRow>,
        runs: Vec<RunRow>,
        outputs: Vec<OutputRow>,
        #[serde(default)]
        texts: Vec<TextRow>,
        attribution: Attribution,
        power: Option<PowerOutcome>,
    },
    Generated(Generation),
    Failed(String),
}

/// A worker's answer: a measured cell, or an evaluation's generations.
enum Answer {
    Measured(CellMeasurement),
    Generated(Generation),
}

/// How often the parent checks for Ctrl-C while a worker is busy.
const CANCEL_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// The program and arguments that start a worker; set once by the binary.
static WORKER: OnceLock<(PathBuf, Vec<String>)> = OnceLock::new();

/// Register how to start a worker (the `assay` binary does this at startup).
pub fn register(program: PathBuf, args: Vec<String>) {
    let _ = WORKER.set((program, args));
}

/// Measure one cell in-process with the kind's backend: the worker's body,
/// and what library users and unit tests call directly (threads are then
/// whatever the library chose).
pub fn measure_here(
    kind: &dyn Backend,
    req: &WorkerRequest,
    mut progress: impl FnMut(&str),
    mut keep_going: impl FnMut() -> bool,
) -> Result<Option<CellMeasurement>, String> {
    let mut backend = open(kind, req)?;
    // Energy: start polling, then sit idle for the baseline window before
    // the clock's zero (the sleep is the idle measurement, not a wait).
    let sampler = req
        .energy
        .map(|s| match open_sensor(s.sensor, &req.backend.device) {
            Ok(sensor) => {
                progress("idle baseline");
                let mut sampler =
                    Sampler::start(sensor, std::time::Duration::from_millis(s.poll_ms.into()));
                sampler.idle_baseline(std::time::Duration::from_millis(s.idle_ms.into()), 2);
                Ok(sampler)
            }
            Err(reason) => Err(reason),
        });
    let clock = MonotonicClock::new();
    progress("load");
    let warmup = req.boundary.warmup_runs;
    let mut codec = req
        .text
        .as_ref()
        .map(|t| Codec::new(t.tokenizer_json.clone()));
    let prompts = match (&req.text, codec.as_mut()) {
        (Some(t), Some(codec)) => CellPrompts::Text {
            texts: &t.texts,
            codec,
        },
        _ => CellPrompts::Ids(&req.prompts),
    };
    let measured = harness::measure_cell_with(
        backend.as_mut(),
        &clock,
        &req.cell,
        &req.scenario,
        &req.boundary,
        prompts,
        |rep, total| {
            if rep < warmup {
                progress(&format!("warmup {}/{}", rep + 1, warmup));
            } else {
                progress(&format!("run {}/{}", rep + 1 - warmup, total - warmup));
            }
            keep_going()
        },
    )
    .map_err(|e| e.to_string());
    let power = sampler.map(|s| match s {
        Ok(sampler) => PowerOutcome::Trace(sampler.finish(clock.origin())),
        Err(reason) => PowerOutcome::NoSensor(reason),
    });
    measured.map(|m| m.map(|m| CellMeasurement { power, ..m }))
}

/// Generate in-process with the kind's backend: the worker's body for a
/// request with `generate`, and what library users call directly.
pub fn generate_here(
    kind: &dyn Backend,
    req: &WorkerRequest,
    mut progress: impl FnMut(&str),
    mut keep_going: impl FnMut() -> bool,
) -> Result<Option<Generation>, String> {
    let max_tokens = req.generate.as_deref().unwrap_or_default();
    if max_tokens.len() != req.prompts.len() {
        return Err(format!(
            "bad worker request: {} prompts and {} generation lengths",
            req.prompts.len(),
            max_tokens.len()
        ));
    }
    let mut backend = open(kind, req)?;
    progress("load");
    let attribution = backend.load().map_err(|e| e.to_string())?;
    let tokens = harness::generate(backend.as_mut(), &req.prompts, max_tokens, |i, n| {
        progress(&format!("item {}/{n}", i + 1));
        keep_going()
    })
    .map_err(|e| e.to_string())?;
    Ok(tokens.map(|tokens| Generation {
        tokens,
        attribution,
    }))
}

/// The kind's backend over the cell's weight files (an unbuilt optional
/// kind says which cargo feature it needs).
fn open(kind: &dyn Backend, req: &WorkerRequest) -> Result<Box<dyn InferenceBackend>, String> {
    kind.open(&Open {
        backend: &req.backend,
        info: &req.info,
        files: &req.files,
        capacity: (req.scenario.prompt_tokens + req.scenario.gen_tokens) as usize,
    })
}

/// The one line a build without an optional backend says.
pub fn not_built(feature: &str) -> String {
    format!(
        "this assay was built without the `{feature}` backend: rebuild with `cargo build --release --features {feature}` (see docs/backends.md)"
    )
}

/// Entry point of `assay measure-worker`: request on stdin, JSON lines out;
/// the request's kind is looked up in `registry`. Returns the process exit
/// code.
pub fn worker_main(registry: &Registry) -> i32 {
    let stdout = std::io::stdout();
    let emit = |msg: &WorkerMessage| {
        let mut out = stdout.lock();
        let ok = serde_json::to_writer(&mut out, msg).is_ok() && writeln!(out).is_ok();
        ok && out.flush().is_ok()
    };
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    let req: WorkerRequest = match read
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_str(&line).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            emit(&WorkerMessage::Failed(format!("bad worker request: {e}")));
            return 2;
        }
    };
    let Some(kind) = registry.get(req.backend.kind.as_str()) else {
        emit(&WorkerMessage::Failed(format!(
            "backend kind {:?} is not registered in this assay",
            req.backend.kind.as_str()
        )));
        return 2;
    };
    exit_when_the_parent_goes();
    // The parent closing our stdout (it was cancelled) ends the cell.
    let alive = std::cell::Cell::new(true);
    let progress =
        |p: &str| alive.set(alive.get() && emit(&WorkerMessage::Progress(p.to_string())));
    let result = if req.generate.is_some() {
        generate_here(kind, &req, progress, || alive.get()).map(|g| g.map(WorkerMessage::Generated))
    } else {
        measure_here(kind, &req, progress, || alive.get()).map(|m| {
            m.map(|m| WorkerMessage::Done {
                events: m.events,
                runs: m.runs,
                outputs: m.outputs,
                texts: m.texts,
                attribution: m.attribution,
                power: m.power,
            })
        })
    };
    match result {
        Ok(Some(message)) => {
            emit(&message);
            0
        }
        Ok(None) => 130,
        Err(e) => {
            emit(&WorkerMessage::Failed(e));
            1
        }
    }
}

/// Ends this worker process as soon as its stdin reaches end of file: the
/// parent keeps the pipe open for as long as it waits for the answer, so
/// end of file means the parent is gone. A blocking read on a thread costs
/// nothing while the measurement runs, and wakes within microseconds.
fn exit_when_the_parent_goes() {
    std::thread::spawn(|| {
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut rest);
        std::process::exit(130);
    });
}

/// Measure one cell in a worker process with the requested thread count,
/// relaying progress and honouring cancellation. Without a registered
/// worker (library use, unit tests) the cell is measured in this process.
pub fn measure_isolated(
    kind: &dyn Backend,
    req: &WorkerRequest,
    ctx: &StageContext<'_>,
) -> Result<CellMeasurement, StageError> {
    let Some(worker) = WORKER.get() else {
        return measure_here(kind, req, |p| ctx.progress(p), || !ctx.cancelled())
            .map_err(StageError::Failed)?
            .ok_or(StageError::Cancelled);
    };
    match isolated(worker, req, ctx)? {
        Answer::Measured(m) => Ok(m),
        Answer::Generated(_) => Err(StageError::Failed(
            "the measure worker generated text when asked to measure".into(),
        )),
    }
}

/// [`generate_here`] in a worker process with the request's thread count,
/// as [`measure_isolated`] measures: an evaluation runs the backend exactly
/// as its cells do.
pub fn generate_isolated(
    kind: &dyn Backend,
    req: &WorkerRequest,
    ctx: &StageContext<'_>,
) -> Result<Generation, StageError> {
    let Some(worker) = WORKER.get() else {
        return generate_here(kind, req, |p| ctx.progress(p), || !ctx.cancelled())
            .map_err(StageError::Failed)?
            .ok_or(StageError::Cancelled);
    };
    match isolated(worker, req, ctx)? {
        Answer::Generated(g) => Ok(g),
        Answer::Measured(_) => Err(StageError::Failed(
            "the measure worker measured when asked to generate".into(),
        )),
    }
}

/// Send one request to a fresh worker and relay its lines until it exits.
fn isolated(
    (program, args): &(PathBuf, Vec<String>),
    req: &WorkerRequest,
    ctx: &StageContext<'_>,
) -> Result<Answer, StageError> {
    let mut child = spawn_worker(program, args, req.backend.threads)?;
    let mut request = serde_json::to_vec(req).map_err(|e| StageError::Failed(e.to_string()))?;
    request.push(b'\n');
    // Drain stderr beside stdout so a chatty child cannot block on a full pipe.
    let stderr = child.stderr.take();
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut s) = stderr {
            let _ = std::io::Read::read_to_string(&mut s, &mut text);
        }
        text
    });
    // Kept open until the child has exited: its end of file tells the child
    // that this process is gone. A write error means the child died; its
    // exit status says why.
    let mut stdin = child.stdin.take();
    if let Some(pipe) = stdin.as_mut() {
        let _ = pipe.write_all(&request).and_then(|()| pipe.flush());
    }
    // Lines arrive on a thread, so that a cancel is acted on within
    // CANCEL_POLL even while the child is busy inside a long run.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take();
    let stdout_reader = std::thread::spawn(move || {
        if let Some(stdout) = stdout {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        }
    });
    let outcome = relay(&mut child, &lines, ctx);
    let status = child
        .wait()
        .map_err(|e| StageError::Failed(e.to_string()))?;
    drop(stdin);
    let _ = stdout_reader.join();
    let stderr = stderr_reader.join().unwrap_or_default();
    if ctx.cancelled() {
        return Err(StageError::Cancelled);
    }
    match outcome {
        Some(result) => result,
        None => Err(StageError::Failed(format!(
            "measure worker exited with {status} without a result{}",
            if stderr.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", stderr.trim())
            }
        ))),
    }
}

/// Start `assay measure-worker` with every thread pool it may use sized to
/// the cell's thread count, its three pipes open.
fn spawn_worker(program: &Path, args: &[String], threads: u32) -> Result<Child, StageError> {
    let threads = threads.to_string();
    Command::new(program)
        .args(args)
        .env("CANDLE_NUM_THREADS", &threads)
        .env("RAYON_NUM_THREADS", &threads)
        .env("OMP_NUM_THREADS", &threads)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            StageError::Failed(format!(
                "cannot start measure worker {}: {e}",
                program.display()
            ))
        })
}

/// Relay the worker's lines until its stdout closes, passing progress on;
/// the last result it sent, if any. A cancel kills the child.
fn relay(
    child: &mut Child,
    lines: &Receiver<String>,
    ctx: &StageContext<'_>,
) -> Option<Result<Answer, StageError>> {
    let mut outcome: Option<Result<Answer, StageError>> = None;
    loop {
        if ctx.cancelled() {
            let _ = child.kill();
            outcome = Some(Err(StageError::Cancelled));
            break;
        }
        let line = match lines.recv_timeout(CANCEL_POLL) {
            Ok(line) => line,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match serde_json::from_str::<WorkerMessage>(&line) {
            Ok(WorkerMessage::Progress(p)) => ctx.progress(&p),
            Ok(WorkerMessage::Done {
                events,
                runs,
                outputs,
                texts,
                attribution,
                power,
            }) => {
                outcome = Some(Ok(Answer::Measured(CellMeasurement {
                    events,
                    runs,
                    outputs,
                    texts,
                    attribution,
                    power,
                })));
            }
            Ok(WorkerMessage::Generated(g)) => outcome = Some(Ok(Answer::Generated(g))),
            Ok(WorkerMessage::Failed(e)) => outcome = Some(Err(StageError::Failed(e))),
            Err(e) => {
                outcome = Some(Err(StageError::Failed(format!(
                    "measure worker sent a malformed message ({e}): {}",
                    line.chars().take(200).collect::<String>()
                ))));
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {

    /// The install script puts exactly the versions this build expects.
    #[test]
    fn the_install_script_pins_the_expected_library_versions() {
        let script = include_str!("../../../scripts/install-native-libs.sh");
        assert!(script.contains(&format!(
            "\nORT_VERSION={}\n",
            crate::versions::ORT_EXPECTED
        )));
        assert!(script.contains(&format!(
            "\nTORCH_VERSION={}\n",
            crate::versions::TORCH_EXPECTED
        )));
    }
}
