//! The `python` kind through the real binary: assay's Python harness in the
//! environment of `scripts/install-python-harness.sh` (`ASSAY_PYTHON`), on
//! tiny synthetic models. Under CI=true a missing environment fails these
//! tests; elsewhere they say they did not run. The misbehaving-harness
//! tests need only the system's python3 (a fake harness as the
//! interpreter); without one they too fail under CI=true and say they did
//! not run elsewhere.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{Workspace, assay};

/// The harness environment's interpreter, or `None` (a failure under CI).
fn python() -> Option<String> {
    match std::env::var("ASSAY_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "ASSAY_PYTHON is not set: CI must build the Python harness environment (scripts/install-python-harness.sh)"
            );
            eprintln!(
                "ASSAY_PYTHON not set: python harness test not run (eval \"$(scripts/install-python-harness.sh)\")"
            );
            None
        }
    }
}

pub(crate) fn spec(scenario: &str, backends: &str) -> String {
    format!(
        "assay: 1
id: python
title: python harness
question: q
decision: d
boundary: {{ warmup_runs: 1, repetitions: 2 }}
scenarios:
  - {scenario}
models:
  - {{ name: llama, synthetic: {{ arch: llama, layers: 2, hidden: 64, heads: 4, kv_heads: 2, vocab: 300, max_positions: 64, seed: 3 }} }}
backends:
  - {{ name: candle, kind: candle, threads: 1 }}
{backends}
validate: {{ max_cv: 10 }}
outputs: {{ dir: reports/e2e, formats: [md, json] }}
"
    )
}

pub(crate) fn object_json(ws: &Workspace, digest: &str) -> Value {
    let path = ws.store().join("objects").join(&digest[..2]).join(digest);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

pub(crate) fn output(ws: &Workspace, node: &str, name: &str) -> String {
    let lock: Value = serde_json::from_slice(&std::fs::read(ws.lock_path()).unwrap()).unwrap();
    lock["nodes"][node]["outputs"][name]
        .as_str()
        .unwrap_or_else(|| panic!("{node} has no output {name}"))
        .to_string()
}

pub(crate) fn manifest(ws: &Workspace, cell: &str) -> Value {
    object_json(ws, &output(ws, &format!("measure/{cell}"), "manifest"))
}

pub(crate) fn check<'a>(checks: &'a [Value], cell: &str, name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["cell"] == cell && c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} check for {cell}"))
}

fn detail(m: &Value, key: &str) -> String {
    m["actual"]["compiler"]["detail"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no compiler detail {key}: {m}"))
        .to_string()
}

/// Eager and torch.compile (full, and prefill only with decode eager) on
/// the same f32 weights as candle: the same greedy tokens (output
/// invariance), every run complete, what ran attributed, the compile timed
/// as its own phase and Dynamo's evidence in the manifest. `aot_eager`
/// (Dynamo's capture and AOTAutograd, no code generation) keeps the test
/// fast on 2 cores; specs/compile-cpu.yaml runs Inductor.
#[test]
fn python_eager_and_compiled_match_candle_with_evidence() {
    let Some(py) = python() else { return };
    let ws = Workspace::with_spec(&spec(
        "{ name: s, prompt_tokens: 8, batch: 1, gen_tokens: 4 }",
        &format!(
            "  - {{ name: eager, kind: python, threads: 1, python: {{ interpreter: {py:?} }} }}
  - {{ name: compiled, kind: python, threads: 1, python: {{ interpreter: {py:?}, compile: {{ backend: aot_eager, dynamic: true }} }} }}
  - {{ name: prefill-only, kind: python, threads: 1, python: {{ interpreter: {py:?}, compile: {{ backend: aot_eager, phases: prefill }} }} }}"
        ),
    ));
    let result = ws.run(&["--no-progress"]);
    assert_eq!(result["failed"], 0, "{result}");
    let checks = object_json(&ws, &output(&ws, "validate", "checks"));
    let checks = checks["checks"].as_array().unwrap();
    for cell in ["eager/llama/s", "compiled/llama/s", "prefill-only/llama/s"] {
        let inv = check(checks, cell, "output_invariance");
        assert_eq!(inv["passed"], true, "{inv}");
        assert!(
            inv["detail"].as_str().unwrap().contains("candle/llama/s"),
            "{inv}"
        );
        for name in [
            "attribution",
            "phases_complete",
            "fixed_length_decode",
            "model_load_timed",
        ] {
            let c = check(checks, cell, name);
            assert_eq!(c["passed"], true, "{c}");
        }
        let m = manifest(&ws, cell);
        assert_eq!(m["actual"]["library"], "transformers", "{m}");
        let version = m["actual"]["library_version"].as_str().unwrap();
        assert!(
            version.contains("torch") && version.contains("protocol 1"),
            "{version}"
        );
        assert_eq!(m["actual"]["device"], "cpu");
        assert_eq!(m["actual"]["threads"], 1);
        assert_eq!(m["weights"]["weights_format"], "safetensors");
    }
    let eager = manifest(&ws, "eager/llama/s");
    assert!(eager["requested"].get("compiled").is_none(), "{eager}");
    assert!(eager["actual"].get("compiler").is_none(), "{eager}");

    let full = manifest(&ws, "compiled/llama/s");
    assert_eq!(
        full["requested"]["compiled"],
        "torch.compile:aot_eager:default:all"
    );
    assert_eq!(full["actual"]["compiler"]["real"], true, "{full}");
    assert_eq!(detail(&full, "backend_ran"), "aot_eager");
    assert_eq!(detail(&full, "phases"), "all");
    assert!(detail(&full, "graphs_compiled").parse::<u64>().unwrap() >= 1);
    assert!(full["actual"]["compiler"]["nodes_before"].as_u64().unwrap() > 0);
    for key in [
        "frames_compiled",
        "graph_breaks",
        "recompiles",
        "unique_graphs",
        "recompile_limit_hits",
    ] {
        detail(&full, key).parse::<u64>().unwrap();
    }
    assert!(detail(&full, "torch").starts_with("2."), "{full}");

    let prefill = manifest(&ws, "prefill-only/llama/s");
    assert_eq!(
        prefill["requested"]["compiled"],
        "torch.compile:aot_eager:default:prefill"
    );
    assert_eq!(prefill["actual"]["compiler"]["real"], true);
    assert_eq!(detail(&prefill, "phases"), "prefill");
    // Decode ran eagerly: the compile phase traced the prefill shapes only,
    // and no decode step ever reached Dynamo.
    assert_eq!(
        detail(&prefill, "graphs_compiled"),
        detail(&prefill, "graphs_at_compile")
    );
    assert_eq!(detail(&prefill, "recompiles"), "0");

    // Compile is its own phase: summarised beside load for the compiled
    // cells, absent for eager.
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(
        md.contains("| compiled | llama | s | compile | 1 |"),
        "{md}"
    );
    assert!(
        md.contains("| prefill-only | llama | s | compile | 1 |"),
        "{md}"
    );
    assert!(!md.contains("| eager | llama | s | compile |"), "{md}");
    assert!(md.contains("### Output invariance"), "{md}");
}

/// A shape-varying cell: with `dynamic: false` every decode step has a new
/// KV length, so Dynamo recompiles on each until its cache limit, then runs
/// that frame eagerly; the manifest records the recompiles, their reasons
/// and the limit hit, and the outputs still match candle.
#[test]
fn python_shape_varying_decode_records_recompiles() {
    let Some(py) = python() else { return };
    let ws = Workspace::with_spec(&spec(
        "{ name: s, prompt_tokens: 6, batch: 1, gen_tokens: 12 }",
        &format!(
            "  - {{ name: static, kind: python, threads: 1, python: {{ interpreter: {py:?}, compile: {{ backend: eager, dynamic: false }} }} }}"
        ),
    ));
    let result = ws.run(&["--no-progress"]);
    assert_eq!(result["failed"], 0, "{result}");
    let m = manifest(&ws, "static/llama/s");
    let recompiles: u64 = detail(&m, "recompiles").parse().unwrap();
    assert!(recompiles >= 1, "{m}");
    assert!(
        detail(&m, "recompile_reasons").contains("size mismatch"),
        "{m}"
    );
    let hits: u64 = detail(&m, "recompile_limit_hits").parse().unwrap();
    assert!(hits >= 1, "{m}");
    let checks = object_json(&ws, &output(&ws, "validate", "checks"));
    let checks = checks["checks"].as_array().unwrap();
    assert_eq!(
        check(checks, "static/llama/s", "output_invariance")["passed"],
        true
    );
}

/// A fake harness: an "interpreter" that runs `body` with the system's
/// python3 after the handshake line `hello` (the real binary starts it as
/// `<interpreter> -m assay_harness`; the fake ignores its arguments).
///
/// Asked for its versions (`-c <script>`, as assay does once per
/// interpreter for the key) it answers as the system's python3 would, or,
/// with `versions`, with that JSON line.
pub(crate) fn fake_interpreter(dir: &Path, hello: &str, body: &str) -> Option<PathBuf> {
    fake_interpreter_with(dir, hello, body, None)
}

/// The system's python3; without one the fake-harness tests fail under
/// CI=true and say they did not run elsewhere.
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
        eprintln!("no python3 on PATH: fake harness test not run");
    }
    found
}

fn fake_interpreter_with(
    dir: &Path,
    hello: &str,
    body: &str,
    versions: Option<&str>,
) -> Option<PathBuf> {
    let py3 = python3()?;
    let script = dir.join("fake_harness.py");
    std::fs::write(
        &script,
        format!(
            "import json, sys, time\nprint({hello:?}, flush=True)\ncell = json.loads(sys.stdin.readline())\n{body}\n"
        ),
    )
    .unwrap();
    let interp = dir.join("fake-python");
    std::fs::write(
        &interp,
        match versions {
            Some(v) => format!(
                "#!/bin/sh\nif [ \"$1\" = -c ]; then echo '{v}'; exit 0; fi\nexec {} {}\n",
                py3.display(),
                script.display()
            ),
            None => format!(
                "#!/bin/sh\nif [ \"$1\" = -c ]; then exec {py} \"$@\"; fi\nexec {py} {}\n",
                script.display(),
                py = py3.display(),
            ),
        },
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&interp, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    Some(interp)
}

/// `assay run` of one python cell driven by a fake harness: the cell's
/// failure message.
fn failed_cell(hello: &str, body: &str, timeout: &str) -> Option<String> {
    let ws = Workspace::with_spec(&spec(
        "{ name: s, prompt_tokens: 4, batch: 1, gen_tokens: 2 }",
        "",
    ));
    let interp = fake_interpreter(ws.path(), hello, body)?;
    ws.edit(
        "backends:\n",
        &format!(
            "backends:\n  - {{ name: py, kind: python, threads: 1, python: {{ interpreter: {:?}{timeout} }} }}\n",
            interp.to_string_lossy()
        ),
    );
    let started = std::time::Instant::now();
    let out = assay(&["run", ws.spec.to_str().unwrap(), "--json", "--no-progress"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        Workspace::nodes_with(&r, "failed"),
        ["measure/py/llama/s"],
        "{r}"
    );
    // The candle sibling still ran.
    assert!(Workspace::nodes_with(&r, "ran").contains(&"measure/candle/llama/s".to_string()));
    let node = r["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["status"] == "failed")
        .unwrap();
    Some(node["error"].as_str().unwrap().to_string())
}

pub(crate) const HELLO: &str = r#"{"type":"hello","protocol":1,"harness":"fake"}"#;

#[test]
fn python_a_harness_of_another_protocol_fails_its_cell() {
    let hello = r#"{"type":"hello","protocol":99,"harness":"future"}"#;
    let Some(e) = failed_cell(hello, "", "") else {
        return;
    };
    assert!(
        e.contains("protocol 99") && e.contains("speaks protocol 1"),
        "{e}"
    );
}

#[test]
fn python_a_crashed_harness_fails_its_cell_with_stderr() {
    let body = "sys.stderr.write('Segmentation fault in libtorch_cpu\\n'); sys.stderr.flush(); sys.exit(139)";
    let Some(e) = failed_cell(HELLO, body, "") else {
        return;
    };
    assert!(
        e.contains("exited") && e.contains("Segmentation fault in libtorch_cpu"),
        "{e}"
    );
}

#[test]
fn python_a_hung_harness_fails_its_cell_after_the_timeout() {
    let Some(e) = failed_cell(HELLO, "time.sleep(600)", ", timeout_s: 2") else {
        return;
    };
    assert!(e.contains("hung") && e.contains("2 s"), "{e}");
}

#[test]
fn python_garbage_on_stdout_fails_its_cell() {
    let Some(e) = failed_cell(HELLO, "print('hello from a library', flush=True)", "") else {
        return;
    };
    assert!(
        e.contains("protocol error") && e.contains("hello from a library"),
        "{e}"
    );
}

/// Without an interpreter a measuring command refuses the spec (exit 2),
/// naming the field.
#[test]
fn python_without_an_interpreter_the_spec_is_refused() {
    let ws = Workspace::with_spec(&spec(
        "{ name: s, prompt_tokens: 4, batch: 1, gen_tokens: 2 }",
        "  - { name: py, kind: python, threads: 1 }",
    ));
    let out = crate::support::assay_cmd()
        .env_remove("ASSAY_PYTHON")
        .args(["run", ws.spec.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("python.interpreter") && err.contains("ASSAY_PYTHON"),
        "{err}"
    );
}

/// A compile that fell back to eager (the harness's evidence says no graph
/// went through the requested backend) is attribution drift: validate's
/// attribution check fails and names the compiler.
#[test]
fn python_a_compile_that_fell_back_is_attribution_drift() {
    let body = r#"
def send(**m):
    sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
send(type="loaded", events=[{"phase":"load","token_index":None,"tokens":0,"start_ns":0,"ns":50},
                            {"phase":"compile","token_index":None,"tokens":0,"start_ns":60,"ns":70}])
n = cell["gen_tokens"]
for rep in range(cell["warmup_runs"] + cell["repetitions"]):
    t = 1000 + rep * 1000
    ev = [{"phase":"prefill","token_index":None,"tokens":4,"start_ns":t,"ns":10},
          {"phase":"ttft","token_index":0,"tokens":1,"start_ns":t,"ns":12}]
    ev += [{"phase":"decode","token_index":i,"tokens":1,"start_ns":t+12+i,"ns":1} for i in range(1, n)]
    ev.append({"phase":"e2e","token_index":None,"tokens":n,"start_ns":t,"ns":40})
    send(type="run", repetition=rep, events=ev, tokens=[[7] * n], margins=[[1.0] * n])
send(type="done", attribution={"device":"cpu","dtype":"f32","threads":1,"library":"transformers",
     "library_version":"4","torch_version":"2"},
     compiler={"kind":"torch.compile","mode":"inductor:default","nodes_before":0,"nodes_after":None,
               "ops_before":{},"ops_after":{},"detail":{"backend_ran":"none","graphs_compiled":"0"},"real":False})
"#;
    let ws = Workspace::with_spec(&spec(
        "{ name: s, prompt_tokens: 4, batch: 1, gen_tokens: 2 }",
        "",
    ));
    let Some(interp) = fake_interpreter(ws.path(), HELLO, body) else {
        return;
    };
    ws.edit(
        "backends:\n",
        &format!(
            "backends:\n  - {{ name: py, kind: python, threads: 1, python: {{ interpreter: {:?}, compile: {{}} }} }}\n",
            interp.to_string_lossy()
        ),
    );
    let result = ws.run(&["--no-progress"]);
    assert_eq!(result["failed"], 0, "{result}");
    let checks = object_json(&ws, &output(&ws, "validate", "checks"));
    let checks = checks["checks"].as_array().unwrap();
    let a = check(checks, "py/llama/s", "attribution");
    assert_eq!(a["passed"], false, "{a}");
    assert!(a["detail"].as_str().unwrap().contains("compiler"), "{a}");
    let m = manifest(&ws, "py/llama/s");
    assert_eq!(
        m["requested"]["compiled"],
        "torch.compile:inductor:default:all"
    );
}

/// The Python environment's versions are in the key: two interpreters
/// whose environments report different torch versions give the python cell
/// different keys (the interpreter's path itself stays out).
#[test]
fn python_the_environments_versions_are_in_the_key() {
    let ws = Workspace::with_spec(&spec(
        "{ name: s, prompt_tokens: 4, batch: 1, gen_tokens: 2 }",
        "  - { name: py, kind: python, threads: 1 }",
    ));
    let key = |dir: &str, versions: &str| -> Option<String> {
        let d = ws.path().join(dir);
        std::fs::create_dir_all(&d).unwrap();
        let interp = fake_interpreter_with(&d, HELLO, "", Some(versions))?;
        // A measure cell's key needs its prepared model: the first call
        // runs the spec (the fake's cell fails, the model is prepared).
        if dir == "a" {
            crate::support::assay_cmd()
                .env("ASSAY_PYTHON", &interp)
                .args(["run", ws.spec.to_str().unwrap(), "--no-progress"])
                .output()
                .unwrap();
        }
        let out = crate::support::assay_cmd()
            .env("ASSAY_PYTHON", &interp)
            .args(["plan", ws.spec.to_str().unwrap(), "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
        let node = plan
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == "measure/py/llama/s")
            .unwrap_or_else(|| panic!("no python cell in {plan}"));
        Some(node["key"].as_str().unwrap().to_string())
    };
    let v251 = r#"{"python": "3.11.9", "torch": "2.5.1", "transformers": "4.46.3"}"#;
    let v260 = r#"{"python": "3.11.9", "torch": "2.6.0", "transformers": "4.46.3"}"#;
    let Some(a) = key("a", v251) else { return };
    let Some(b) = key("b", v260) else { return };
    let Some(a_elsewhere) = key("c", v251) else {
        return;
    };
    assert_ne!(a, b, "another torch must measure again");
    assert_eq!(a, a_elsewhere, "the interpreter's path is not in the key");
}

/// An interpreter that cannot report its environment refuses the spec
/// (exit 2), naming it.
#[test]
fn python_an_interpreter_that_cannot_report_its_versions_is_refused() {
    let ws = Workspace::with_spec(&spec(
        "{ name: s, prompt_tokens: 4, batch: 1, gen_tokens: 2 }",
        "",
    ));
    let Some(interp) = fake_interpreter_with(ws.path(), HELLO, "", Some("not json")) else {
        return;
    };
    ws.edit(
        "backends:\n",
        &format!(
            "backends:\n  - {{ name: py, kind: python, threads: 1, python: {{ interpreter: {:?} }} }}\n",
            interp.to_string_lossy()
        ),
    );
    let out = assay(&["run", ws.spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read the Python environment") && err.contains("python.interpreter"),
        "{err}"
    );
}

/// `boundary.model_load: included` is refused for a python backend at the
/// spec check (exit 2), at the field: its harness times the load apart.
#[test]
fn python_model_load_included_is_refused() {
    let ws = Workspace::with_spec(&spec(
        "{ name: s, prompt_tokens: 4, batch: 1, gen_tokens: 2 }",
        "  - { name: py, kind: python, threads: 1, python: { interpreter: /bin/true } }",
    ));
    ws.edit(
        "boundary: { warmup_runs: 1,",
        "boundary: { model_load: included, warmup_runs: 1,",
    );
    let out = assay(&["plan", ws.spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("boundary.model_load") && err.contains("python"),
        "{err}"
    );
}
