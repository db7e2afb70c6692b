//! The protocol against fake harnesses: small Python scripts (the system's
//! `python3`, no torch) that answer right, or misbehave in each way a real
//! harness could: another protocol version, a garbage line, a crash, a hang,
//! an error message, runs that do not match the request.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::client::{self, Failure, HarnessCommand};
use super::protocol::{CellRequest, Message, PROTOCOL};
use super::{PACKAGE, install_package, package_digest};
use assay_core::config::Scenario;

fn python3() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("python3"))
        .find(|p| p.is_file())
}

fn request() -> CellRequest {
    CellRequest {
        kind: "cell".into(),
        protocol: PROTOCOL,
        cell: "measure/py/m/s".into(),
        model_dir: "/nonexistent".into(),
        dtype: "f32".into(),
        device: "cpu".into(),
        threads: 1,
        prompts: vec![vec![5, 6, 7]],
        gen_tokens: 3,
        warmup_runs: 1,
        repetitions: 1,
        compile: None,
    }
}

fn scenario() -> Scenario {
    Scenario {
        name: "s".into(),
        prompt_tokens: 3,
        batch: 1,
        gen_tokens: 3,
        load: None,
    }
}

/// A fake harness whose body (after reading the cell) is `body`; `hello` is
/// its first line.
fn fake(hello: &str, body: &str, timeout: Duration) -> Option<(HarnessCommand, tempfile::TempDir)> {
    let Some(py) = python3() else {
        eprintln!("skipped: no python3 on PATH");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fake.py");
    let text = format!(
        r#"import json, sys, time
def send(**m):
    sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
print({hello:?}, flush=True)
cell = json.loads(sys.stdin.readline())
{body}
"#
    );
    std::fs::write(&script, text).unwrap();
    Some((
        HarnessCommand {
            interpreter: py,
            args: vec![script.to_string_lossy().into_owned()],
            env: Vec::new(),
            timeout,
        },
        dir,
    ))
}

const HELLO: &str =
    r#"{"type":"hello","protocol":1,"harness":"fake","harness_version":"0","python":"3"}"#;

const GOOD: &str = r#"
send(type="progress", message="load")
send(type="loaded", events=[{"phase":"load","token_index":None,"tokens":0,"start_ns":1000,"ns":50},
                            {"phase":"compile","token_index":None,"tokens":0,"start_ns":1100,"ns":70}])
for rep in range(cell["warmup_runs"] + cell["repetitions"]):
    t = 2000 + rep * 1000
    send(type="run", repetition=rep, events=[
        {"phase":"prefill","token_index":None,"tokens":3,"start_ns":t,"ns":10},
        {"phase":"ttft","token_index":0,"tokens":1,"start_ns":t,"ns":12},
        {"phase":"decode","token_index":1,"tokens":1,"start_ns":t+12,"ns":5},
        {"phase":"decode","token_index":2,"tokens":1,"start_ns":t+17,"ns":5},
        {"phase":"e2e","token_index":None,"tokens":3,"start_ns":t,"ns":30}],
        tokens=[[9, 8, 7]], margins=[[0.5, None, 1.25]])
send(type="done", attribution={"device":"cpu","dtype":"f32","threads":1,"library":"transformers",
     "library_version":"4","torch_version":"2"},
     compiler={"kind":"torch.compile","mode":"inductor:default","nodes_before":12,"nodes_after":None,
               "ops_before":{"linear":4},"ops_after":{},"detail":{"recompiles":"0"},"real":True})
"#;

fn run(cmd: &HarnessCommand) -> Result<client::Transcript, Failure> {
    client::run_cell(cmd, &request(), |_| {}, || false)
}

fn failure(cmd: &HarnessCommand) -> String {
    match run(cmd) {
        Err(Failure::Failed(m)) => m,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn python_a_well_behaved_harness_becomes_rows() {
    let Some((cmd, _dir)) = fake(HELLO, GOOD, Duration::from_secs(30)) else {
        return;
    };
    let t = run(&cmd).unwrap();
    assert_eq!(t.harness, "fake");
    let m = client::measurement("measure/py/m/s", &scenario(), 1, 1, &t).unwrap();
    let phases: Vec<&str> = m.events.iter().map(|e| e.phase.as_str()).collect();
    assert_eq!(
        phases,
        [
            "load", "compile", "prefill", "ttft", "decode", "decode", "e2e", "prefill", "ttft",
            "decode", "decode", "e2e"
        ]
    );
    // Start times relative to the load's start; load and compile belong
    // to the cold warmup run 0, as the Rust harness's load does.
    assert_eq!(m.events[0].start_ns, 0);
    assert_eq!(m.events[1].start_ns, 100);
    assert!(
        m.events[..2]
            .iter()
            .all(|e| e.warmup && e.cold && e.repetition == 0)
    );
    assert_eq!(m.runs.len(), 2);
    assert!(m.runs[0].warmup && !m.runs[1].warmup);
    assert!(!m.runs[1].short);
    assert_eq!(m.runs[0].output_digest, m.runs[1].output_digest);
    assert_eq!(m.outputs.len(), 6);
    assert_eq!(m.outputs[1].margin, None);
    assert_eq!(m.outputs[2].margin, Some(1.25));
    let c = m.attribution.compiler.unwrap();
    assert!(c.real);
    assert_eq!(c.nodes_before, 12);
    assert_eq!(m.attribution.library, "transformers");
}

#[test]
fn python_another_protocol_version_fails_the_cell() {
    let hello = r#"{"type":"hello","protocol":2,"harness":"future"}"#;
    let Some((cmd, _dir)) = fake(hello, GOOD, Duration::from_secs(30)) else {
        return;
    };
    let m = failure(&cmd);
    assert!(
        m.contains("protocol 2") && m.contains("speaks protocol 1"),
        "{m}"
    );
}

#[test]
fn python_a_garbage_line_fails_the_cell() {
    let body = r#"print("Loading checkpoint shards: 100%", flush=True)"#;
    let Some((cmd, _dir)) = fake(HELLO, body, Duration::from_secs(30)) else {
        return;
    };
    let m = failure(&cmd);
    assert!(
        m.contains("protocol error") && m.contains("not JSON") && m.contains("Loading checkpoint"),
        "{m}"
    );
}

#[test]
fn python_a_crash_fails_the_cell_with_its_stderr() {
    let body = r#"
send(type="progress", message="load")
sys.stderr.write("Traceback: RuntimeError: out of memory\n"); sys.stderr.flush()
sys.exit(3)
"#;
    let Some((cmd, _dir)) = fake(HELLO, body, Duration::from_secs(30)) else {
        return;
    };
    let m = failure(&cmd);
    assert!(m.contains("exited") && m.contains("3"), "{m}");
    assert!(m.contains("out of memory"), "stderr tail missing: {m}");
}

#[test]
fn python_a_hung_harness_is_killed_after_the_timeout() {
    let body = r#"
send(type="progress", message="load")
time.sleep(600)
"#;
    let Some((cmd, _dir)) = fake(HELLO, body, Duration::from_secs(2)) else {
        return;
    };
    let started = Instant::now();
    let m = failure(&cmd);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(m.contains("hung") && m.contains("the model load"), "{m}");
}

#[test]
fn python_a_silent_harness_before_hello_is_killed() {
    let Some(py) = python3() else {
        return;
    };
    let cmd = HarnessCommand {
        interpreter: py,
        args: vec!["-c".into(), "import time; time.sleep(600)".into()],
        env: Vec::new(),
        timeout: Duration::from_secs(1),
    };
    let m = failure(&cmd);
    assert!(m.contains("hung") && m.contains("hello"), "{m}");
}

#[test]
fn python_an_error_message_fails_the_cell_with_its_traceback() {
    let body = r#"
send(type="error", message="OSError: no config.json", traceback="File cell.py, line 3")
sys.exit(1)
"#;
    let Some((cmd, _dir)) = fake(HELLO, body, Duration::from_secs(30)) else {
        return;
    };
    let m = failure(&cmd);
    assert!(
        m.contains("no config.json") && m.contains("cell.py, line 3"),
        "{m}"
    );
}

#[test]
fn python_a_cancel_kills_the_harness() {
    let body = "time.sleep(600)";
    let Some((cmd, _dir)) = fake(HELLO, body, Duration::from_secs(600)) else {
        return;
    };
    let started = Instant::now();
    let out = client::run_cell(
        &cmd,
        &request(),
        |_| {},
        || started.elapsed() > Duration::from_millis(300),
    );
    assert!(matches!(out, Err(Failure::Cancelled)), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn python_runs_that_do_not_match_the_request_are_refused() {
    // One run for two requested.
    let body = GOOD.replace(
        r#"range(cell["warmup_runs"] + cell["repetitions"])"#,
        "range(1)",
    );
    let Some((cmd, _dir)) = fake(HELLO, &body, Duration::from_secs(30)) else {
        return;
    };
    let t = run(&cmd).unwrap();
    let Err(e) = client::measurement("c", &scenario(), 1, 1, &t) else {
        panic!("accepted")
    };
    assert!(e.contains("1 runs for 2 requested"), "{e}");
    // A phase no run has.
    let body = GOOD.replace(r#""phase":"prefill""#, r#""phase":"warp""#);
    let Some((cmd, _dir)) = fake(HELLO, &body, Duration::from_secs(30)) else {
        return;
    };
    let t = run(&cmd).unwrap();
    let Err(e) = client::measurement("c", &scenario(), 1, 1, &t) else {
        panic!("accepted")
    };
    assert!(e.contains("\"warp\""), "{e}");
}

#[test]
fn python_message_parsing() {
    assert!(matches!(
        Message::parse(r#"{"type":"progress","message":"x"}"#),
        Ok(Message::Progress { .. })
    ));
    let e = Message::parse(r#"{"type":"hello"}"#).unwrap_err();
    assert!(e.contains("protocol unknown"), "{e}");
    let e = Message::parse(r#"{"type":"teleport"}"#).unwrap_err();
    assert!(e.contains("outside protocol 1"), "{e}");
    let long = "x".repeat(10_000);
    let e = Message::parse(&long).unwrap_err();
    assert!(e.len() < 400, "the excerpt is bounded: {}", e.len());
}

#[test]
fn python_the_embedded_package_is_written_once_and_matches() {
    let dir = tempfile::tempdir().unwrap();
    let a = install_package(Some(dir.path())).unwrap();
    let b = install_package(Some(dir.path())).unwrap();
    assert_eq!(a, b);
    assert!(a.ends_with(format!("assay-python-harness-{}", &package_digest()[..16])));
    for (name, text) in PACKAGE {
        assert_eq!(
            std::fs::read_to_string(a.join("assay_harness").join(name)).unwrap(),
            text
        );
    }
    // The package's version constant is the protocol's.
    assert!(PACKAGE[0].1.contains(&format!("PROTOCOL = {PROTOCOL}")));
    // A damaged copy is replaced.
    std::fs::write(a.join("assay_harness").join("cell.py"), "broken").unwrap();
    let c = install_package(Some(dir.path())).unwrap();
    assert_eq!(
        std::fs::read_to_string(c.join("assay_harness").join("cell.py")).unwrap(),
        PACKAGE[3].1
    );
}
