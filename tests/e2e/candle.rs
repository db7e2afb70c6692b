//! The real backend end to end: the quickstart's structure with tiny
//! synthetic models, measured by candle in worker processes, through the
//! `assay` binary.

use serde_json::Value;

use crate::support::{Workspace, assay};

const QUICKSTART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/quickstart.yaml");
const FIXTURE_LLAMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../stages/measure/tests/fixtures/reference/llama"
);

/// The quickstart with its two models shrunk (same names, so routing and
/// fit still refer to them) and fewer repetitions: a debug build runs it
/// in seconds.
fn tiny_quickstart() -> Workspace {
    let text = std::fs::read_to_string(QUICKSTART).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = if line.starts_with("  - { name: llama-4x256,") {
            "  - { name: llama-4x256, synthetic: { arch: llama, layers: 2, hidden: 64, heads: 4, kv_heads: 2, vocab: 300, max_positions: 1024, seed: 1 } }".to_string()
        } else if line.starts_with("  - { name: llama-8x512,") {
            "  - { name: llama-8x512, synthetic: { arch: llama, layers: 3, hidden: 96, heads: 4, kv_heads: 4, vocab: 300, max_positions: 1024, seed: 1 } }".to_string()
        } else if line.trim_start().starts_with("repetitions:") {
            "  repetitions: 3".to_string()
        } else {
            line.to_string()
        };
        out.push(line);
    }
    let text = out.join("\n") + "\n";
    assert!(
        text.contains("hidden: 96") && text.contains("hidden: 64"),
        "quickstart models changed"
    );
    Workspace::with_spec(&text)
}

fn lock(ws: &Workspace, name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(ws.path().join(format!("{name}.lock"))).unwrap()).unwrap()
}

fn object(ws: &Workspace, digest: &str) -> Vec<u8> {
    std::fs::read(ws.store().join("objects").join(&digest[..2]).join(digest)).unwrap()
}

fn reports(ws: &Workspace) -> std::path::PathBuf {
    ws.path().join("reports/quickstart")
}

#[test]
fn quickstart_measures_for_real_with_tiny_models() {
    let ws = tiny_quickstart();
    // A loaded machine's timing noise must not degrade a cell out of the
    // summary (the fit below needs every prompt length): this test is about
    // the plumbing of real measurements, not their stability.
    ws.edit("outputs:", "validate: { max_cv: 10 }\noutputs:");
    let result = ws.run(&["--no-progress"]);
    let ran = Workspace::nodes_with(&result, "ran");
    for node in [
        "prepare/llama-4x256",
        "prepare/llama-8x512",
        "bandwidth/cpu",
        "measure/candle-cpu/llama-4x256/micro",
        "measure/candle-cpu/llama-8x512/batch_short",
        "report",
    ] {
        assert!(
            ran.contains(&node.to_string()),
            "{node} did not run: {ran:?}"
        );
    }
    assert_eq!(result["failed"], 0);

    // Every measure manifest records the machine, the weights and what ran.
    let lock = lock(&ws, "spec.yaml");
    let nodes = lock["nodes"].as_object().unwrap();
    let measures: Vec<&Value> = nodes
        .iter()
        .filter(|(id, _)| id.starts_with("measure/"))
        .map(|(_, n)| n)
        .collect();
    assert_eq!(measures.len(), 12);
    let prepared: Value = serde_json::from_slice(&object(
        &ws,
        nodes["prepare/llama-8x512"]["outputs"]["model"]
            .as_str()
            .unwrap(),
    ))
    .unwrap();
    for node in measures {
        let m: Value =
            serde_json::from_slice(&object(&ws, node["outputs"]["manifest"].as_str().unwrap()))
                .unwrap();
        assert_eq!(m["evidence"], "measured");
        assert_eq!(m["clock"], "monotonic");
        assert_eq!(m["actual"]["library"], "candle");
        assert_eq!(
            m["actual"]["threads"], m["requested"]["threads"],
            "worker ignored the thread count"
        );
        assert_eq!(m["actual"]["dtype"], "f32");
        assert!(m["started_unix_ms"].as_u64().unwrap() > 1_700_000_000_000);
        let env = &m["environment"];
        for field in [
            "cpu_model",
            "logical_cores",
            "memory_bytes",
            "os",
            "kernel",
            "rustc",
            "assay_git_revision",
        ] {
            assert!(!env[field].is_null(), "environment.{field} missing");
        }
        assert_eq!(env["libraries"]["candle"], "0.11.1");
        assert_eq!(m["weights"]["weights_format"], "safetensors");
        assert_eq!(m["weights"]["weights_blake3"].as_str().unwrap().len(), 64);
        assert_eq!(m["boundary"]["tokenization"], "excluded");
        if m["model"] == "llama-8x512" {
            assert_eq!(m["weights"]["model_digest"], prepared["model_digest"]);
            assert_eq!(
                m["model_info"]["parameter_count"],
                prepared["info"]["parameter_count"]
            );
        }
    }

    // The report says measured and carries roofline claims.
    let report: Value =
        serde_json::from_slice(&std::fs::read(reports(&ws).join("report.json")).unwrap()).unwrap();
    assert_eq!(report["evidence"], "measured");
    let claims = report["claims"].as_array().unwrap();
    let roofline: Vec<f64> = claims
        .iter()
        .filter(|c| c["id"].as_str().unwrap().starts_with("roofline/"))
        .map(|c| c["value"].as_f64().unwrap())
        .collect();
    // One per decode summary row (a cell whose runs all degraded has none).
    let decode_rows = claims
        .iter()
        .filter(|c| {
            let id = c["id"].as_str().unwrap();
            id.starts_with("latency/") && id.ends_with("/decode/median_ms")
        })
        .count();
    assert!(decode_rows >= 1);
    assert_eq!(roofline.len(), decode_rows);
    assert!(
        roofline.iter().all(|f| *f > 0.0 && f.is_finite()),
        "{roofline:?}"
    );

    // Every claim names its producer's current node key; a spec input
    // names its field and the digest of the field's value.
    for c in claims {
        let node = c["source"]["node"].as_str().unwrap();
        if node == "spec" {
            assert!(c["source"]["field"].is_string(), "{c}");
            assert_eq!(c["source"]["key"], c["source"]["digest"], "{c}");
        } else {
            assert_eq!(c["source"]["key"], nodes[node]["key"], "{c}");
        }
    }
    // The report answers every workload class, fits prefill against prompt
    // length on the prompt ladder, and draws its plots.
    let md = String::from_utf8(std::fs::read(reports(&ws).join("report.md")).unwrap()).unwrap();
    // The decisions table names each scenario with its AL.1 type.
    assert!(
        md.lines()
            .any(|l| l.starts_with("| Interactive chat | chat (") && l.contains(", chat_long (")),
        "{md}"
    );
    for class in [
        "Tool-augmented agents",
        "Long-context summarisation",
        "Batch prefill",
        "(RAG)",
    ] {
        assert!(md.contains(class), "no {class} row");
    }
    assert!(
        md.lines().any(|l| l
            .starts_with("| candle-cpu | llama-4x256 | batch 1 | prefill_ms ~ prompt_tokens |")),
        "{md}"
    );
    assert!(
        md.contains("batch 1, prompt 128 | decode_total_ms ~ decode_steps |"),
        "{md}"
    );
    assert!(md.contains("Sensor: "), "{md}");
    let html = std::fs::read_to_string(reports(&ws).join("report.html")).unwrap();
    assert!(html.matches("<svg").count() >= 6);

    // A roofline claim traces to the measuring manifest, the weights that
    // ran and the machine's bandwidth.
    let id = claims
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .find(|id| id.starts_with("roofline/"))
        .unwrap();
    let out = assay(&["trace", "--spec", ws.spec.to_str().unwrap(), "--json", id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hops: Vec<&str> = trace["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hop"].as_str().unwrap())
        .collect();
    for hop in ["summary", "raw", "manifest", "weights", "bandwidth"] {
        assert!(hops.contains(&hop), "no {hop} hop in {hops:?}");
    }
    let weights = trace["chain"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["hop"] == "weights")
        .unwrap();
    assert!(weights["node"].as_str().unwrap().starts_with("prepare/"));
    let prepare = &nodes[weights["node"].as_str().unwrap()]["outputs"]["weights"];
    assert_eq!(&weights["digest"], prepare);

    // Nothing changed: nothing runs, the report is byte-identical.
    let before = std::fs::read(reports(&ws).join("report.md")).unwrap();
    let again = ws.run(&["--no-progress"]);
    assert!(Workspace::nodes_with(&again, "ran").is_empty(), "{again}");
    assert_eq!(
        before,
        std::fs::read(reports(&ws).join("report.md")).unwrap()
    );
}

#[test]
fn q8_0_runs_the_gguf_export_and_local_models_load_in_place() {
    let spec = format!(
        r#"assay: 1
id: local
title: local and quantised
question: Does q8_0 decode faster than f32 on this CPU?
decision: Pick the dtype.
boundary: {{ warmup_runs: 1, repetitions: 2 }}
scenarios:
  - {{ name: s, prompt_tokens: 6, batch: 1, gen_tokens: 4 }}
models:
  - {{ name: local-llama, path: {FIXTURE_LLAMA} }}
  - {{ name: syn, synthetic: {{ arch: gpt2, layers: 1, hidden: 32, heads: 2, vocab: 300, max_positions: 32, seed: 2 }}, gguf: [f16] }}
backends:
  - {{ name: f32, kind: candle, dtype: f32, threads: 1 }}
  - {{ name: q8, kind: candle, dtype: q8_0, threads: 1 }}
outputs: {{ dir: reports/local, formats: [json] }}
"#
    );
    let ws = Workspace::with_spec(&spec);
    let result = ws.run(&["--no-progress"]);
    let ran = Workspace::nodes_with(&result, "ran");
    for node in [
        "prepare/local-llama",
        "export/local-llama/gguf-q8_0",
        "export/syn/gguf-f16",
        "export/syn/gguf-q8_0",
        "measure/q8/local-llama/s",
    ] {
        assert!(
            ran.contains(&node.to_string()),
            "{node} did not run: {ran:?}"
        );
    }
    let lock = lock(&ws, "spec.yaml");
    let nodes = &lock["nodes"];
    // The local model is hashed where it lies, not copied into the store.
    let record: Value = serde_json::from_slice(&object(
        &ws,
        nodes["prepare/local-llama"]["outputs"]["model"]
            .as_str()
            .unwrap(),
    ))
    .unwrap();
    assert_eq!(record["source"], "local");
    assert!(
        nodes["prepare/local-llama"]["outputs"]
            .get("weights")
            .is_none()
    );
    let weights = record["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["role"] == "weights")
        .unwrap();
    let on_disk =
        blake3::hash(&std::fs::read(format!("{FIXTURE_LLAMA}/model.safetensors")).unwrap());
    assert_eq!(weights["blake3"], on_disk.to_hex().as_str());
    // 2 layers x (q,o 2*32*32 + k,v 2*32*16 + mlp 3*32*64 + norms 64)
    // + embeddings and head 2*260*32 + final norm 32.
    assert_eq!(
        record["info"]["parameter_count"],
        2 * 9280 + 2 * 260 * 32 + 32
    );

    let manifest = |node: &str| -> Value {
        serde_json::from_slice(&object(
            &ws,
            nodes[node]["outputs"]["manifest"].as_str().unwrap(),
        ))
        .unwrap()
    };
    let q8 = manifest("measure/q8/local-llama/s");
    assert_eq!(q8["weights"]["weights_format"], "gguf");
    assert_eq!(q8["actual"]["dtype"], "q8_0");
    assert_eq!(
        q8["weights"]["weights_blake3"],
        nodes["export/local-llama/gguf-q8_0"]["outputs"]["gguf"]
    );
    let f32 = manifest("measure/f32/local-llama/s");
    assert_eq!(f32["weights"]["weights_format"], "safetensors");
    assert_eq!(f32["weights"]["source"], "local");
    assert_eq!(f32["weights"]["weights_blake3"], on_disk.to_hex().as_str());
}

#[test]
fn candle_refuses_devices_it_was_not_built_for() {
    let ws = tiny_quickstart();
    ws.edit(
        "    device: cpu\n    dtype: f32",
        "    device: cuda:0\n    dtype: f32",
    );
    let out = assay(&["check", ws.spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.yaml:") && err.contains("candle runs on the CPU only"),
        "{err}"
    );
}

#[test]
fn a_missing_local_model_is_a_located_spec_error() {
    let ws = tiny_quickstart();
    ws.edit(
        "  - { name: llama-4x256, synthetic: { arch: llama, layers: 2, hidden: 64, heads: 4, kv_heads: 2, vocab: 300, max_positions: 1024, seed: 1 } }",
        "  - { name: llama-4x256, path: models/nowhere }",
    );
    let out = assay(&["check", ws.spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not exist") && err.contains("models/nowhere"),
        "{err}"
    );
}

/// Ctrl-C sent to `assay` alone (not its worker): the worker is stopped at
/// its next run, the run exits 130, finished nodes stay, and a rerun
/// completes from them.
#[test]
fn interrupting_a_real_measurement_keeps_finished_nodes() {
    let ws = tiny_quickstart();
    ws.edit("  repetitions: 3", "  repetitions: 2000");
    let mut child = crate::support::assay_cmd()
        .args(["run", ws.spec.to_str().unwrap(), "--json", "--no-progress"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // prepare x2 and bandwidth finish first; the first measure cell then runs
    // for a long time.
    let nodes = ws.store().join("nodes");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while std::fs::read_dir(&nodes).map(|d| d.count()).unwrap_or(0) < 3 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "run ended before it could be interrupted"
        );
        assert!(std::time::Instant::now() < deadline, "no progress");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(130));

    ws.edit("  repetitions: 2000", "  repetitions: 3");
    let resumed = ws.run(&["--no-progress"]);
    let cached = Workspace::nodes_with(&resumed, "cached");
    for node in [
        "prepare/llama-4x256",
        "prepare/llama-8x512",
        "bandwidth/cpu",
    ] {
        assert!(
            cached.contains(&node.to_string()),
            "{node} not kept: {resumed}"
        );
    }
    assert_eq!(resumed["failed"], 0);
}

/// The measure-worker children of `parent` (from /proc; Linux).
fn workers_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid ...: the fields after the last ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if fields.get(1) == Some(&parent.to_string().as_str())
            && String::from_utf8_lossy(&cmdline).contains("measure-worker")
        {
            found.push(pid);
        }
    }
    found
}

/// Whether `pid` still runs (a zombie waiting for a reaper has ended).
fn running(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    matches!(state, Some(s) if s != "Z" && s != "X")
}

/// `assay` killed by SIGKILL (no handler runs) mid-measurement: its worker
/// sees its stdin close and stops at once, instead of measuring its whole
/// cell for nobody. The worker is caught in its 10-minute idle baseline,
/// where it writes nothing (so a closed stdout alone would not stop it).
#[test]
fn a_worker_stops_when_assay_is_killed() {
    let ws = candle_energy_spec();
    ws.edit("idle_ms: 40", "idle_ms: 600000");
    let zone = ws.path().join("powercap/intel-rapl:0");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("energy_uj"), "123456\n").unwrap();
    std::fs::write(zone.join("name"), "package-0\n").unwrap();
    let mut child = crate::support::assay_cmd()
        .args(["run", ws.spec.to_str().unwrap(), "--json", "--no-progress"])
        .env("ASSAY_POWERCAP_ROOT", ws.path().join("powercap"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let worker = loop {
        // prepare and bandwidth run in process; the worker is the cell.
        if let Some(&pid) = workers_of(child.id()).first() {
            break pid;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "run ended before a worker started"
        );
        assert!(std::time::Instant::now() < deadline, "no worker started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = std::time::Instant::now();
    // Bounded: the worker would otherwise sit out its 10-minute baseline.
    while running(worker) {
        assert!(
            killed.elapsed() < std::time::Duration::from_secs(10),
            "worker {worker} still runs {:?} after assay was killed",
            killed.elapsed()
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// A GGUF file used as a local model runs through the quantised path, and a
/// backend that asked for another dtype is shown as attribution drift:
/// requested f32, ran q8_0, every run degraded, never averaged in.
#[test]
fn a_local_gguf_model_runs_and_dtype_drift_is_degraded() {
    // First make a q8_0 GGUF file with a synthetic model's export.
    let make = Workspace::with_spec(
        r#"assay: 1
id: make
title: make a gguf
question: q
decision: d
boundary: { warmup_runs: 0, repetitions: 1 }
scenarios:
  - { name: s, prompt_tokens: 4, batch: 1, gen_tokens: 2 }
models:
  - { name: m, synthetic: { arch: llama, layers: 1, hidden: 32, heads: 2, vocab: 300, max_positions: 32, seed: 5 }, gguf: [q8_0] }
backends:
  - { name: f32, kind: candle, threads: 1 }
outputs: { dir: reports/make, formats: [json] }
"#,
    );
    make.run(&["--no-progress"]);
    let digest = lock(&make, "spec.yaml")["nodes"]["export/m/gguf-q8_0"]["outputs"]["gguf"]
        .as_str()
        .unwrap()
        .to_string();

    let ws = Workspace::with_spec(
        r#"assay: 1
id: gguf
title: a local gguf
question: q
decision: d
boundary: { warmup_runs: 0, repetitions: 3 }
scenarios:
  - { name: s, prompt_tokens: 4, batch: 1, gen_tokens: 3 }
models:
  - { name: local, path: m.gguf }
backends:
  - { name: q8, kind: candle, dtype: q8_0, threads: 1 }
  - { name: f32, kind: candle, dtype: f32, threads: 1 }
outputs: { dir: reports/gguf, formats: [json] }
"#,
    );
    std::fs::write(ws.path().join("m.gguf"), object(&make, &digest)).unwrap();
    let result = ws.run(&["--no-progress"]);
    assert_eq!(result["failed"], 0, "{result}");
    let nodes = &lock(&ws, "spec.yaml")["nodes"];
    assert!(
        nodes.get("export/local/gguf-q8_0").is_none(),
        "a GGUF model is not exported again"
    );
    let record: Value = serde_json::from_slice(&object(
        &ws,
        nodes["prepare/local"]["outputs"]["model"].as_str().unwrap(),
    ))
    .unwrap();
    assert_eq!(
        (record["format"].as_str(), record["stored_dtype"].as_str()),
        (Some("gguf"), Some("q8_0"))
    );
    assert_eq!(record["files"][0]["blake3"], digest.as_str());

    let manifest = |node: &str| -> Value {
        serde_json::from_slice(&object(
            &ws,
            nodes[node]["outputs"]["manifest"].as_str().unwrap(),
        ))
        .unwrap()
    };
    let f32 = manifest("measure/f32/local/s");
    assert_eq!(f32["requested"]["dtype"], "f32");
    assert_eq!(f32["actual"]["dtype"], "q8_0");
    assert_eq!(manifest("measure/q8/local/s")["actual"]["dtype"], "q8_0");

    // validate: the f32 cell's runs are degraded for the drift, the q8 cell's are not.
    let validation = nodes["validate"]["outputs"]["validation"].as_str().unwrap();
    let out = assay(&[
        "show",
        validation,
        "--spec",
        ws.spec.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let status = |cell: &str| -> Vec<(String, String)> {
        rows.iter()
            .filter(|r| r["cell"] == cell)
            .map(|r| {
                (
                    r["status"].as_str().unwrap().to_string(),
                    r["reasons"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let drift = status("f32/local/s");
    assert_eq!(drift.len(), 3);
    assert!(
        drift
            .iter()
            .all(|(s, r)| s == "degraded" && r.contains("attribution")),
        "{drift:?}"
    );
    assert!(
        status("q8/local/s")
            .iter()
            .all(|(s, _)| s == "ok" || s == "degraded")
    );
    assert!(
        status("q8/local/s")
            .iter()
            .all(|(_, r)| !r.contains("attribution"))
    );
}

/// A one-cell candle spec with energy on, polled fast enough to resolve
/// its e2e windows.
fn candle_energy_spec() -> Workspace {
    Workspace::with_spec(
        "assay: 1
id: energy
title: candle energy
question: q
decision: d
boundary: { warmup_runs: 1, repetitions: 3 }
scenarios:
  - { name: s, prompt_tokens: 16, batch: 1, gen_tokens: 400 }
models:
  - { name: m, synthetic: { arch: llama, layers: 4, hidden: 128, heads: 4, kv_heads: 2, vocab: 300, max_positions: 512, seed: 1 } }
backends:
  - { name: c, kind: candle, device: cpu, dtype: f32, threads: 1 }
energy: { poll_ms: 2, min_samples: 1, idle_ms: 40 }
# This test is about energy: a busy machine's latency spread must not
# degrade the cell and hide its energy claims.
validate: { max_cv: 10 }
outputs: { dir: reports/e2e, formats: [md, json] }
",
    )
}

/// `assay run` with the powercap tree at `root`.
fn run_with_powercap(ws: &Workspace, root: &std::path::Path) {
    let out = crate::support::assay_cmd()
        .args(["run", ws.spec.to_str().unwrap(), "--json", "--no-progress"])
        .env("ASSAY_POWERCAP_ROOT", root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_worker_samples_rapl_through_powercap_and_says_when_it_cannot() {
    // A powercap tree whose package counter never moves: the sampler runs
    // for real in the worker, and every resolved window is 0 J above idle.
    let ws = candle_energy_spec();
    let zone = ws.path().join("powercap/intel-rapl:0");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("energy_uj"), "123456\n").unwrap();
    std::fs::write(zone.join("name"), "package-0\n").unwrap();
    run_with_powercap(&ws, &ws.path().join("powercap"));
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(md.contains("Sensor: rapl:package-0."), "{md}");
    let json: Value = serde_json::from_slice(&ws.report("report.json")).unwrap();
    let energy: Vec<&Value> = json["claims"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"].as_str().unwrap().starts_with("energy/"))
        .collect();
    assert!(
        energy
            .iter()
            .any(|c| c["id"].as_str().unwrap().ends_with("/e2e/j_per_token")),
        "{energy:?}"
    );
    assert!(energy.iter().all(|c| c["value"].as_f64() == Some(0.0)));

    // No powercap at all: the manifest and the report say why, and no
    // energy number appears.
    let ws = candle_energy_spec();
    run_with_powercap(&ws, &ws.path().join("absent"));
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(md.contains("Sensor: none (no RAPL power sensor:"), "{md}");
    assert!(!md.contains("| e2e | 3 | 3 |"));
}
