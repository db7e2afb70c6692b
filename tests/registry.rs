//! The backend registry is open: `Echo`, a kind defined only in this file
//! and registered with one line, runs a spec end to end through the real
//! engine — checked against the schema, planned, measured in a worker
//! process, validated and reported — while the stock `assay` binary, which
//! does not register it, refuses the same spec at its `kind`.
//!
//! This binary is two programs (`harness = false`): the test, and, when the
//! test starts it with `ASSAY_REGISTRY_TEST_AS_ASSAY` set, assay itself
//! with one more kind. The worker processes it starts are this binary too
//! (they inherit the variable), so the worker finds `Echo` as well.

use std::path::Path;
use std::process::{Command, ExitCode, Output};

use assay_core::config::BackendConfig;
use assay_core::stage::{Input, StageContext, StageError};
use assay_core::tables::OutputRow;
use assay_measure::harness::{Attribution, BackendError, InferenceBackend, Pick};
use assay_measure::kinds::in_process;
use assay_measure::{Backend, CheckContext, Execution, Findings, MeasureStage, Measured, Open};

const AS_ASSAY: &str = "ASSAY_REGISTRY_TEST_AS_ASSAY";

fn main() -> ExitCode {
    if std::env::var_os(AS_ASSAY).is_some() {
        // The one registration line.
        return assay_engine::main_with(assay_measure::Registry::builtin().with(&Echo));
    }
    let tests: [(&str, fn()); 3] = [
        (
            "a_kind_registered_with_one_line_runs_a_spec_end_to_end",
            a_kind_registered_with_one_line_runs_a_spec_end_to_end,
        ),
        (
            "the_kind_checks_its_own_backend_entries",
            the_kind_checks_its_own_backend_entries,
        ),
        (
            "an_assay_without_the_kind_refuses_it_at_its_kind",
            an_assay_without_the_kind_refuses_it_at_its_kind,
        ),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = 0;
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        match std::panic::catch_unwind(test) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A backend that "predicts" the next token as the last one plus one
/// (mod the vocabulary): deterministic, so its outputs can be checked, and
/// it keeps a context like a real model, so the harness's bookkeeping is
/// exercised.
#[derive(Debug)]
struct Echo;

impl Backend for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn summary(&self) -> &'static str {
        "Test kind: the next token is the last one plus one."
    }

    fn execution(&self) -> Execution {
        Execution::InProcess
    }

    fn check(&self, cx: &CheckContext<'_>, b: &BackendConfig, findings: &mut dyn Findings) {
        if b.device != "cpu" {
            findings.at_value(&cx.at("/device"), "echo runs on the CPU".into());
        }
    }

    fn measure(
        &self,
        stage: &MeasureStage,
        ctx: &StageContext<'_>,
        inputs: &[Input],
    ) -> Result<Measured, StageError> {
        in_process::measure(&Echo, stage, ctx, inputs)
    }

    fn open(&self, open: &Open<'_>) -> Result<Box<dyn InferenceBackend>, String> {
        Ok(Box::new(EchoModel {
            vocab: open.info.vocab,
            capacity: open.capacity,
            last: Vec::new(),
            position: 0,
        }))
    }
}

struct EchoModel {
    vocab: u32,
    capacity: usize,
    last: Vec<u32>,
    position: usize,
}

impl InferenceBackend for EchoModel {
    fn load(&mut self) -> Result<Attribution, BackendError> {
        Ok(Attribution::plain("cpu", "f32", 1, "echo", "1"))
    }

    fn reset(&mut self) {
        self.last.clear();
        self.position = 0;
    }

    fn prefill(&mut self, prompts: &[Vec<u32>]) -> Result<(), BackendError> {
        self.last = prompts
            .iter()
            .map(|p| {
                p.last()
                    .copied()
                    .ok_or_else(|| BackendError::BadInput("empty prompt".into()))
            })
            .collect::<Result<_, _>>()?;
        self.position = prompts.first().map_or(0, Vec::len);
        Ok(())
    }

    fn sample(&mut self) -> Result<Vec<Pick>, BackendError> {
        Ok(self
            .last
            .iter()
            .map(|t| Pick {
                token: (t + 1) % self.vocab,
                margin: Some(1.0),
            })
            .collect())
    }

    fn decode_step(&mut self, tokens: &[u32]) -> Result<bool, BackendError> {
        if self.position + 1 > self.capacity {
            return Ok(false);
        }
        self.last = tokens.to_vec();
        self.position += 1;
        Ok(true)
    }
}

const SPEC: &str = "\
assay: 1
id: registry
title: A kind registered by a test
question: Does a registered kind run end to end?
decision: Use echo if it runs.
boundary: { warmup_runs: 1, repetitions: 3 }
scenarios:
  - { name: short, prompt_tokens: 4, batch: 2, gen_tokens: 5 }
models:
  - { name: tiny, synthetic: { arch: llama, layers: 1, hidden: 32, heads: 2, vocab: 50, seed: 1 } }
backends:
  - { name: echo-cpu, kind: echo, threads: 1 }
outputs: { dir: reports/registry, formats: [md, json] }
";

/// This binary as assay with `Echo` registered.
fn assay_with_echo(dir: &Path, args: &[&str]) -> Output {
    let exe = std::env::current_exe().unwrap();
    Command::new(exe)
        .env(AS_ASSAY, "1")
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn stock_assay(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_assay"))
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn workspace(spec: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.yaml"), spec).unwrap();
    dir
}

fn a_kind_registered_with_one_line_runs_a_spec_end_to_end() {
    let ws = workspace(SPEC);
    let out = assay_with_echo(ws.path(), &["run", "spec.yaml", "--json", "--no-progress"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "run failed: {stderr}");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["failed"], 0, "{result}");

    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.path().join("spec.yaml.lock")).unwrap()).unwrap();
    let node = &lock["nodes"]["measure/echo-cpu/tiny/short"];
    let object = |name: &str| {
        let digest = node["outputs"][name].as_str().unwrap();
        std::fs::read(
            ws.path()
                .join(".assay/objects")
                .join(&digest[..2])
                .join(digest),
        )
        .unwrap()
    };
    // Measured for real, in a worker, by the kind the spec named.
    let manifest: serde_json::Value = serde_json::from_slice(&object("manifest")).unwrap();
    assert_eq!(manifest["requested"]["kind"], "echo");
    assert_eq!(manifest["actual"]["library"], "echo");
    assert_eq!(manifest["evidence"], "measured");
    assert_eq!(manifest["clock"], "monotonic");
    // The tokens are the kind's: each one more than the one before it.
    let outputs: Vec<OutputRow> = assay_core::tables::from_parquet(&object("outputs")).unwrap();
    assert_eq!(outputs.len(), 4 * 2 * 5, "4 runs x 2 sequences x 5 tokens");
    for pair in outputs.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if (a.repetition, a.sequence) == (b.repetition, b.sequence) {
            assert_eq!(b.step, a.step + 1);
            assert_eq!(b.token, (a.token + 1) % 50, "{a:?} then {b:?}");
        }
    }
    // And reported.
    let report = std::fs::read_to_string(ws.path().join("reports/registry/report.md")).unwrap();
    assert!(report.contains("echo-cpu"), "{report}");
}

fn the_kind_checks_its_own_backend_entries() {
    let ws = workspace(&SPEC.replace("threads: 1 }", "threads: 1, device: cuda:0 }"));
    let out = assay_with_echo(ws.path(), &["check", "spec.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("spec.yaml:12:55: error: backends[0].device: echo runs on the CPU"),
        "{stderr}"
    );
}

fn an_assay_without_the_kind_refuses_it_at_its_kind() {
    let ws = workspace(SPEC);
    let out = stock_assay(ws.path(), &["check", "spec.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("spec.yaml:12:29: error: backends[0].kind: \"echo\" is not one of: candle, ort, tch, python, openai, ollama, simulated, imported"),
        "{stderr}"
    );
    // The extended assay's schema lists the kind; the stock one's does not.
    let with = assay_with_echo(ws.path(), &["schema", "spec"]);
    let without = stock_assay(ws.path(), &["schema", "spec"]);
    assert!(String::from_utf8_lossy(&with.stdout).contains("\"echo\""));
    assert!(!String::from_utf8_lossy(&without.stdout).contains("\"echo\""));
}
