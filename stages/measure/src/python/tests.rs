//! The protocol against fake harnesses: small Python scripts (the system's
//! `python3`, no torch) that answer right, or misbehave in each way a real
//! harness could: another protocol version, a garbage line, a crash, a hang,
//! an error message, runs that do not match the request.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::client::{self, Failure, HarnessCommand};
use super::protocol::{CellRequest, Message, PROTOCOL};
use super::{PACKAGE, ScratchDir, install_package, package_digest};
use assay_core::config::Scenario;

/// The system's python3; without one these tests fail under CI=true and
/// say they did not run elsewhere.
fn python3() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("python3"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no python3 on PATH: CI must have one for the fake-harness tests"
        );
        eprintln!("skipped: no python3 on PATH (fake-harness test not run)");
    }
    found
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
    let py = python3()?;
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
fn python_the_embedded_package_is_written_fresh_and_private() {
    let root = tempfile::tempdir().unwrap();
    // Another user's folder at the old predictable path, with a module
    // that would shadow the standard library's: never used.
    let planted = root
        .path()
        .join(format!("assay-python-harness-{}", &package_digest()[..16]));
    std::fs::create_dir_all(planted.join("assay_harness")).unwrap();
    std::fs::write(planted.join("assay_harness").join("__init__.py"), "").unwrap();
    std::fs::write(planted.join("json.py"), "raise SystemExit('pwned')").unwrap();
    let a = install_package(Some(root.path())).unwrap();
    let b = install_package(Some(root.path())).unwrap();
    assert_ne!(a.path(), planted.as_path());
    assert_ne!(a.path(), b.path(), "one directory per cell");
    for dir in [&a, &b] {
        assert_eq!(dir.path().parent(), Some(root.path()));
        // Only the package: nothing beside it to shadow an import.
        let entries: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, ["assay_harness"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let meta = std::fs::symlink_metadata(dir.path()).unwrap();
            assert!(meta.is_dir());
            assert_eq!(meta.permissions().mode() & 0o777, 0o700);
            let me = std::fs::metadata(root.path()).unwrap().uid();
            assert_eq!(meta.uid(), me);
        }
        for (name, text) in PACKAGE {
            assert_eq!(
                std::fs::read_to_string(dir.path().join("assay_harness").join(name)).unwrap(),
                text
            );
        }
    }
    // The package's version constant is the protocol's.
    assert!(PACKAGE[0].1.contains(&format!("PROTOCOL = {PROTOCOL}")));
    // The planted folder is left alone, and ours go when dropped.
    let a_path = a.path().to_path_buf();
    drop(a);
    assert!(!a_path.exists());
    assert!(planted.join("json.py").is_file());
}

#[test]
fn python_scratch_dirs_are_fresh_and_private() {
    let root = tempfile::tempdir().unwrap();
    let a = ScratchDir::new_in(root.path(), "assay-python-cell").unwrap();
    let b = ScratchDir::new_in(root.path(), "assay-python-cell").unwrap();
    assert_ne!(a.path(), b.path());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(a.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    assert_eq!(std::fs::read_dir(a.path()).unwrap().count(), 0);
}

/// An interpreter that is a shell wrapper WITHOUT `exec` (a conda or uv
/// shim): python is a grandchild holding the pipes. A hang fails the cell
/// after the timeout, and the whole process group is killed.
#[test]
fn python_a_hung_harness_behind_a_wrapper_is_killed_with_its_group() {
    let Some(py) = python3() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let script = dir.path().join("hang.py");
    std::fs::write(
        &script,
        format!(
            "import os, sys, time\nopen({:?}, 'w').write(str(os.getpid()))\nprint({HELLO:?}, flush=True)\nsys.stdin.readline()\ntime.sleep(600)\n",
            pidfile.to_string_lossy()
        ),
    )
    .unwrap();
    let wrapper = dir.path().join("python-shim");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n{} {} \"$@\"\necho shim done >&2\n",
            py.display(),
            script.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let cmd = HarnessCommand {
        interpreter: wrapper,
        args: Vec::new(),
        env: Vec::new(),
        timeout: Duration::from_secs(2),
    };
    let started = Instant::now();
    let m = failure(&cmd);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(m.contains("hung"), "{m}");
    let pid: u32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    // The grandchild is gone (or a zombie awaiting its new parent).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X"),
            Err(_) => false,
        };
        if !alive {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the wrapped python {pid} outlived the cell"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A harness that never reads its (large) request cannot block assay past
/// the timeout.
#[test]
fn python_a_harness_that_never_reads_a_large_request_times_out() {
    let Some(py) = python3() else {
        return;
    };
    let cmd = HarnessCommand {
        interpreter: py,
        args: vec![
            "-c".into(),
            format!("import time; print({HELLO:?}, flush=True); time.sleep(600)"),
        ],
        env: Vec::new(),
        timeout: Duration::from_secs(2),
    };
    let mut req = request();
    // Megabytes: far more than a pipe buffer.
    req.prompts = vec![vec![12345; 1 << 20]];
    let started = Instant::now();
    let out = client::run_cell(&cmd, &req, |_| {}, || false);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    match out {
        Err(Failure::Failed(m)) => assert!(m.contains("hung"), "{m}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// A non-finite margin travels as null (the harness sends NaN as null, and
/// a bare NaN, which is not JSON, is refused as such).
#[test]
fn python_a_null_margin_is_accepted_and_nan_is_not_json() {
    let run =
        r#"{"type":"run","repetition":0,"events":[],"tokens":[[1,2]],"margins":[[null,0.5]]}"#;
    match Message::parse(run) {
        Ok(Message::Run { margins, .. }) => assert_eq!(margins, [[None, Some(0.5)]]),
        other => panic!("{other:?}"),
    }
    let e = Message::parse(&run.replace("null", "NaN")).unwrap_err();
    assert!(e.contains("not JSON"), "{e}");
    // The harness's own channel refuses to write NaN (allow_nan=False).
    let Some(py) = python3() else {
        return;
    };
    let pkg = install_package(None).unwrap();
    let out = std::process::Command::new(py)
        .args([
            "-c",
            "import io\nfrom assay_harness.protocol import Channel\nc = Channel()\nc._out = io.StringIO()\ntry:\n    c.send('run', margins=[[float('nan')]])\nexcept ValueError:\n    print('refused')\nc.send('run', margins=[[None]])\nprint(c._out.getvalue().strip())\n",
        ])
        .env("PYTHONPATH", pkg.path())
        .output()
        .unwrap();
    // The channel moves fd 1 to stderr: prints land there.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("refused"), "{text}");
    assert!(text.contains(r#""margins":[[null]]"#), "{text}");
}
