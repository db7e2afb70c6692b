//! Running one cell through a harness process: spawn, handshake, send the
//! cell, read messages each within the timeout, and turn what came back into
//! the rows the Rust harness would have written.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use assay_core::config::Scenario;
use assay_core::tables::{EventRow, OutputRow, RunRow};

use super::protocol::{CellRequest, HarnessAttribution, Message, PROTOCOL, PhaseEvent};
use crate::harness::{
    Attribution, CellMeasurement, CompilerEvidence, RunEvents, load_event, output_digest,
};

/// How to start a harness.
#[derive(Debug, Clone)]
pub struct HarnessCommand {
    pub interpreter: PathBuf,
    /// Arguments after the interpreter (`-m assay_harness`).
    pub args: Vec<String>,
    /// Extra environment (PYTHONPATH, thread counts, Inductor's cache).
    pub env: Vec<(String, String)>,
    /// The longest wait for any one message.
    pub timeout: Duration,
}

/// Why a cell did not finish.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    Cancelled,
    Failed(String),
}

/// What a harness sent for a whole cell, in order.
#[derive(Debug, Clone)]
pub struct Transcript {
    pub harness: String,
    pub harness_version: String,
    pub python: String,
    pub loaded: Vec<PhaseEvent>,
    /// `(repetition, events, tokens, margins)` per run.
    pub runs: Vec<RunMessage>,
    pub attribution: HarnessAttribution,
    pub compiler: Option<CompilerEvidence>,
}

#[derive(Debug, Clone)]
pub struct RunMessage {
    pub repetition: u32,
    pub events: Vec<PhaseEvent>,
    pub tokens: Vec<Vec<u32>>,
    pub margins: Vec<Vec<Option<f32>>>,
}

/// How much of the harness's stderr a failure quotes.
const STDERR_TAIL: usize = 4000;
/// How often a wait checks for Ctrl-C.
const POLL: Duration = Duration::from_millis(100);
/// How long a harness may take to exit after `done` or after its stdout
/// closed.
const EXIT_GRACE: Duration = Duration::from_secs(30);
/// How long the stderr tail is waited for once the harness is gone.
const STDERR_WAIT: Duration = Duration::from_secs(3);

/// SIGKILL to the harness's process group (its id is the harness's pid:
/// `process_group(0)`), then to the harness itself. `kill(1)` because this
/// workspace forbids `unsafe` (libc's `killpg`). After the harness is
/// reaped the group id stays taken while any member lives; an empty
/// group's id is only handed out again once the kernel's cyclic pid
/// allocation wraps, far beyond the milliseconds between reap and kill.
fn kill_group(child: &mut Child) {
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
}

/// Run one cell. `progress` gets the harness's progress lines; `cancelled`
/// is polled while waiting, and a cancel kills the harness.
pub fn run_cell(
    cmd: &HarnessCommand,
    request: &CellRequest,
    mut progress: impl FnMut(&str),
    mut cancelled: impl FnMut() -> bool,
) -> Result<Transcript, Failure> {
    let mut command = Command::new(&cmd.interpreter);
    // Its own process group, so that a kill reaches what it started too
    // (an interpreter that is a wrapper script without `exec`, a conda or
    // uv shim, leaves python as a grandchild holding the pipes).
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .args(&cmd.args)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Failure::Failed(format!(
                "cannot start the Python harness {}: {e}",
                cmd.interpreter.display()
            ))
        })?;
    let stderr = child.stderr.take();
    let (stderr_tx, stderr_tail) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let _ = stderr_tx.send(tail_of(stderr));
    });
    let (tx, lines) = std::sync::mpsc::channel::<std::io::Result<String>>();
    let stdout = child.stdout.take();
    std::thread::spawn(move || {
        if let Some(out) = stdout {
            for line in BufReader::new(out).lines() {
                let stop = line.is_err();
                if tx.send(line).is_err() || stop {
                    break;
                }
            }
        }
    });
    let mut session = Session {
        child: &mut child,
        lines: &lines,
        timeout: cmd.timeout,
        cancelled: &mut cancelled,
    };
    let outcome = session.converse(request, &mut progress);
    // Whatever happened, the child is gone before its stderr is read: a
    // hung harness is killed, a finished one reaped.
    let status = match &outcome {
        Ok(_) => wait_exit(&mut child, EXIT_GRACE),
        Err(_) => {
            kill_group(&mut child);
            child.wait().ok()
        }
    };
    // Whatever else of the group is left goes too: a grandchild that
    // outlived the harness would hold its stderr open, and be orphaned.
    kill_group(&mut child);
    // The tail, unless something outside the group still holds the pipe:
    // then the cell's message goes without it rather than waiting.
    let stderr = stderr_tail.recv_timeout(STDERR_WAIT).unwrap_or_default();
    let with_stderr = |message: String| {
        if stderr.trim().is_empty() {
            Failure::Failed(message)
        } else {
            Failure::Failed(format!(
                "{message}\nharness stderr (last lines):\n{}",
                stderr.trim_end()
            ))
        }
    };
    match outcome {
        Err(Failure::Cancelled) => Err(Failure::Cancelled),
        Err(Failure::Failed(m)) => Err(with_stderr(m)),
        Ok(t) => match status {
            Some(s) if s.success() => Ok(t),
            Some(s) => Err(with_stderr(format!(
                "the Python harness finished the cell but exited with {s}"
            ))),
            None => Err(with_stderr(format!(
                "the Python harness did not exit within {} s of finishing the cell (killed)",
                EXIT_GRACE.as_secs()
            ))),
        },
    }
}

struct Session<'a, C: FnMut() -> bool> {
    child: &'a mut Child,
    lines: &'a Receiver<std::io::Result<String>>,
    timeout: Duration,
    cancelled: &'a mut C,
}

impl<C: FnMut() -> bool> Session<'_, C> {
    fn converse(
        &mut self,
        request: &CellRequest,
        progress: &mut impl FnMut(&str),
    ) -> Result<Transcript, Failure> {
        let (harness, harness_version, python) = match self.next("the handshake (hello)")? {
            Message::Hello {
                protocol,
                harness,
                harness_version,
                python,
            } if protocol == PROTOCOL => (harness, harness_version, python),
            other => {
                return Err(Failure::Failed(format!(
                    "protocol error: the Python harness began with {} instead of hello",
                    name(&other)
                )));
            }
        };
        let mut line = serde_json::to_vec(request).map_err(|e| Failure::Failed(e.to_string()))?;
        line.push(b'\n');
        if let Some(mut stdin) = self.child.stdin.take() {
            // From a thread: a harness that never reads a large request
            // must not block assay past the timeout (the reads below time
            // out, and the kill closes the pipe, ending the write). A write
            // error means the harness died; reading says why.
            std::thread::spawn(move || {
                let _ = stdin.write_all(&line).and_then(|()| stdin.flush());
            });
        }
        let mut loaded = None;
        let mut runs = Vec::new();
        loop {
            let what = if loaded.is_none() {
                "the model load"
            } else {
                "the next run"
            };
            match self.next(what)? {
                Message::Progress { message } => progress(&message),
                Message::Loaded { events } if loaded.is_none() => loaded = Some(events),
                Message::Run {
                    repetition,
                    events,
                    tokens,
                    margins,
                } if loaded.is_some() => runs.push(RunMessage {
                    repetition,
                    events,
                    tokens,
                    margins,
                }),
                Message::Done {
                    attribution,
                    compiler,
                } if loaded.is_some() => {
                    return Ok(Transcript {
                        harness,
                        harness_version,
                        python,
                        loaded: loaded.unwrap_or_default(),
                        runs,
                        attribution,
                        compiler,
                    });
                }
                Message::Error { message, traceback } => {
                    let tb = traceback.trim_end();
                    return Err(Failure::Failed(if tb.is_empty() {
                        format!("the Python harness failed: {message}")
                    } else {
                        format!("the Python harness failed: {message}\n{tb}")
                    }));
                }
                other => {
                    return Err(Failure::Failed(format!(
                        "protocol error: the Python harness sent {} out of order",
                        name(&other)
                    )));
                }
            }
        }
    }

    /// The next message, within the timeout; `what` says what was awaited.
    fn next(&mut self, what: &str) -> Result<Message, Failure> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if (self.cancelled)() {
                return Err(Failure::Cancelled);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Failure::Failed(format!(
                    "the Python harness sent nothing for {} s while assay waited for {what}: killed as hung (python.timeout_s)",
                    self.timeout.as_secs()
                )));
            }
            match self.lines.recv_timeout(POLL.min(deadline - now)) {
                Ok(Ok(line)) if line.trim().is_empty() => continue,
                Ok(Ok(line)) => {
                    return Message::parse(&line).map_err(|e| {
                        Failure::Failed(format!("protocol error: the Python harness sent {e}"))
                    });
                }
                Ok(Err(e)) => {
                    return Err(Failure::Failed(format!(
                        "cannot read the Python harness's output: {e}"
                    )));
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    let status = wait_exit(self.child, EXIT_GRACE);
                    return Err(Failure::Failed(match status {
                        Some(s) => {
                            format!("the Python harness exited ({s}) while assay waited for {what}")
                        }
                        None => format!(
                            "the Python harness closed its output while assay waited for {what}"
                        ),
                    }));
                }
            }
        }
    }
}

fn name(m: &Message) -> &'static str {
    match m {
        Message::Hello { .. } => "hello",
        Message::Progress { .. } => "progress",
        Message::Loaded { .. } => "loaded",
        Message::Run { .. } => "run",
        Message::Done { .. } => "done",
        Message::Error { .. } => "error",
    }
}

/// The child's exit status, waiting up to `grace`; `None` if it is still
/// running then (it is killed).
fn wait_exit(child: &mut Child, grace: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                kill_group(child);
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// The last [`STDERR_TAIL`] bytes of a stream, read to its end (so a chatty
/// child never blocks on a full pipe).
fn tail_of(stream: Option<impl Read>) -> String {
    let Some(mut s) = stream else {
        return String::new();
    };
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 2 * STDERR_TAIL {
            tail.drain(..tail.len() - STDERR_TAIL);
        }
    }
    if tail.len() > STDERR_TAIL {
        tail.drain(..tail.len() - STDERR_TAIL);
    }
    String::from_utf8_lossy(&tail).into_owned()
}

/// The phases a run may hold, and those before the runs.
const RUN_PHASES: [&str; 4] = ["prefill", "ttft", "decode", "e2e"];
const CELL_PHASES: [&str; 2] = ["load", "compile"];

/// The harness's zero: its earliest event's start on its clock
/// (`time.perf_counter_ns`, CLOCK_MONOTONIC on Linux).
pub fn origin_ns(t: &Transcript) -> u64 {
    t.loaded
        .iter()
        .chain(t.runs.iter().flat_map(|r| &r.events))
        .map(|e| e.start_ns)
        .min()
        .unwrap_or(0)
}

/// A transcript as the rows the Rust harness writes for an in-process cell:
/// the same events (plus `compile`), runs, outputs and attribution. Checks
/// what the harness sent against what was asked (run count and order,
/// phases, tokens per sequence), so a harness that answers another question
/// fails the cell instead of storing wrong rows.
pub fn measurement(
    cell: &str,
    scenario: &Scenario,
    warmup_runs: u32,
    repetitions: u32,
    t: &Transcript,
) -> Result<CellMeasurement, String> {
    let bad = |m: String| format!("protocol error: {m}");
    let total = warmup_runs + repetitions;
    if t.runs.len() != total as usize {
        return Err(bad(format!(
            "the harness sent {} runs for {total} requested",
            t.runs.len()
        )));
    }
    // Start times relative to the load's start, as the Rust harness's clock
    // reads zero at its own start.
    let origin = origin_ns(t);
    let mut events: Vec<EventRow> = Vec::new();
    if !t.loaded.iter().any(|e| e.phase == "load") {
        return Err(bad("the harness sent no load event".into()));
    }
    for e in &t.loaded {
        if !CELL_PHASES.contains(&e.phase.as_str()) {
            return Err(bad(format!("phase {:?} before the runs", e.phase)));
        }
        let mut row = load_event(cell, e.start_ns.saturating_sub(origin), e.ns);
        row.phase = e.phase.clone();
        events.push(row);
    }
    let batch = scenario.batch as usize;
    let mut runs = Vec::with_capacity(t.runs.len());
    let mut outputs = Vec::new();
    for (i, r) in t.runs.iter().enumerate() {
        if r.repetition != i as u32 {
            return Err(bad(format!(
                "run {i} arrived as repetition {}",
                r.repetition
            )));
        }
        if r.tokens.len() != batch || r.margins.len() != batch {
            return Err(bad(format!(
                "run {i} has {} token lists and {} margin lists for a batch of {batch}",
                r.tokens.len(),
                r.margins.len()
            )));
        }
        let produced = r.tokens[0].len();
        if produced == 0
            || produced > scenario.gen_tokens as usize
            || r.tokens.iter().any(|s| s.len() != produced)
            || r.margins.iter().any(|s| s.len() != produced)
        {
            return Err(bad(format!(
                "run {i}: sequences of {:?} tokens and {:?} margins for {} requested",
                r.tokens.iter().map(Vec::len).collect::<Vec<_>>(),
                r.margins.iter().map(Vec::len).collect::<Vec<_>>(),
                scenario.gen_tokens
            )));
        }
        let run = RunEvents {
            cell,
            repetition: r.repetition,
            warmup: r.repetition < warmup_runs,
            cold: r.repetition == 0,
        };
        for e in &r.events {
            if !RUN_PHASES.contains(&e.phase.as_str()) {
                return Err(bad(format!("phase {:?} inside run {i}", e.phase)));
            }
            events.push(run.event(
                &e.phase,
                e.token_index,
                e.tokens,
                e.start_ns.saturating_sub(origin),
                e.ns,
            ));
        }
        for step in 0..produced {
            for (sequence, (toks, margins)) in r.tokens.iter().zip(&r.margins).enumerate() {
                outputs.push(OutputRow {
                    cell: cell.to_string(),
                    repetition: r.repetition,
                    sequence: sequence as u32,
                    step: step as u32,
                    token: toks[step],
                    margin: margins[step],
                });
            }
        }
        runs.push(RunRow {
            cell: cell.to_string(),
            repetition: r.repetition,
            warmup: run.warmup,
            cold: run.cold,
            prompt_tokens: scenario.prompt_tokens,
            batch: scenario.batch,
            gen_tokens_requested: scenario.gen_tokens,
            gen_tokens_produced: produced as u32,
            short: (produced as u32) < scenario.gen_tokens,
            output_digest: output_digest(&r.tokens),
        });
    }
    let a = &t.attribution;
    let mut attribution = Attribution::plain(
        &a.device,
        &a.dtype,
        a.threads,
        &a.library,
        &format!("{} (torch {})", a.library_version, a.torch_version),
    );
    attribution.compiler = t.compiler.clone();
    Ok(CellMeasurement {
        events,
        runs,
        outputs,
        texts: Vec::new(),
        attribution,
        power: None,
    })
}
