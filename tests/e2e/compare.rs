//! `assay compare BASE NEW` through the real binary: an injected slowdown
//! (a slower simulated backend, candle with fewer threads) is a regression
//! with exit 4, noise between two runs of the same spec is not, cells that
//! cannot be compared say why, the three input kinds agree, and bad input
//! is named with exit 2.

use std::path::Path;

use serde_json::Value;

use crate::support::{Workspace, assay, assay_cmd};

/// `assay compare` with `args`: (exit code, stdout, stderr).
fn compare(args: &[&str]) -> (i32, String, String) {
    let out = assay(&[&["compare"], args].concat());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "compare panicked: {stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        stderr,
    )
}

/// `assay compare --json BASE NEW`: (exit code, the JSON object).
fn compare_json(base: &Path, new: &Path, extra: &[&str]) -> (i32, Value) {
    let (code, stdout, stderr) = compare(
        &[
            &[base.to_str().unwrap(), new.to_str().unwrap(), "--json"],
            extra,
        ]
        .concat(),
    );
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {stderr}"));
    (code, json)
}

fn cells(result: &Value) -> &Vec<Value> {
    result["cells"].as_array().unwrap()
}

fn phase<'a>(cell: &'a Value, name: &str) -> &'a Value {
    cell["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == name)
        .unwrap_or_else(|| panic!("{} has no {name} phase: {cell}", cell["cell"]))
}

/// The e2e fixture run as it is, and again with its simulated backend
/// edited (`from` -> `to`).
fn base_and(from: &str, to: &str) -> (Workspace, Workspace) {
    let base = Workspace::new();
    base.run(&[]);
    let new = Workspace::new();
    new.edit(from, to);
    new.run(&[]);
    (base, new)
}

/// Lower memory bandwidth: every simulated decode step is slower.
fn slowdown() -> (Workspace, Workspace) {
    base_and("noise_cv: 0.05", "noise_cv: 0.05, memory_gbps: 14")
}

#[test]
fn a_slower_simulated_step_is_a_regression_with_exit_4() {
    let (base, new) = slowdown();
    let (code, result) = compare_json(&base.spec, &new.spec, &[]);
    assert_eq!(code, 4, "{result}");
    assert_eq!(result["assay_compare"], 1);
    assert_eq!(result["thresholds"]["decode"], 10.0);
    assert_eq!(result["summary"]["cells"], 6);
    assert_eq!(result["summary"]["regression"], 6);
    for cell in cells(&result) {
        assert_eq!(cell["verdict"], "regression", "{cell}");
        let decode = phase(cell, "decode");
        assert_eq!(decode["verdict"], "regression");
        let ratio = decode["throughput"]["ratio"].as_f64().unwrap();
        assert!(ratio < 0.9, "{}: throughput ratio {ratio}", cell["cell"]);
        assert!(decode["throughput"]["ratio_ci_high"].as_f64().unwrap() < 1.0);
        assert!(decode["slowdown_pct"].as_f64().unwrap() > 10.0);
        // Only decode has a threshold by default.
        assert!(phase(cell, "ttft")["verdict"].is_null());
    }

    // A looser threshold than the slowdown lets it pass; a TTFT threshold
    // judges TTFT by latency.
    let (code, loose) = compare_json(&base.spec, &new.spec, &["--threshold", "decode=60"]);
    assert_eq!(code, 0, "{loose}");
    assert_eq!(loose["summary"]["regression"], 0);
    let (_, ttft) = compare_json(&base.spec, &new.spec, &["--threshold", "ttft=5"]);
    assert_eq!(ttft["thresholds"]["ttft"], 5.0);
    let micro = cells(&ttft)
        .iter()
        .find(|c| c["cell"] == "sim/mid/micro")
        .unwrap();
    assert_eq!(phase(micro, "ttft")["threshold_pct"], 5.0);
    assert!(!phase(micro, "ttft")["verdict"].is_null());

    // The table and the Markdown say the same, with the same exit code.
    let args = [base.spec.to_str().unwrap(), new.spec.to_str().unwrap()];
    let (code, table, _) = compare(&args);
    assert_eq!(code, 4);
    assert!(table.contains("sim/tiny/micro: regression"), "{table}");
    assert!(
        table.contains(
            "summary: 6 cells: 6 regression, 0 improvement, 0 no change, 0 not comparable"
        ),
        "{table}"
    );
    assert!(!table.contains('\x1b'), "colour with NO_COLOR set");
    let (code, md, _) = compare(&[&args[..], &["--markdown"]].concat());
    assert_eq!(code, 4);
    assert!(md.starts_with("## assay compare: 6 regressions\n"), "{md}");
    assert!(md.contains("| `sim/tiny/micro` | **regression** |"), "{md}");

    // Byte-identical on a rerun and at another thread count: the bootstrap
    // is seeded from the data.
    let once = compare(&[&args[..], &["--json"]].concat());
    let again = assay_cmd()
        .env("RAYON_NUM_THREADS", "1")
        .args([&["compare"], &args[..], &["--json"]].concat())
        .output()
        .unwrap();
    assert_eq!(once.1.as_bytes(), again.stdout.as_slice());
}

/// A spec declares its regression policy (`compare.thresholds`): it
/// applies when a side is that spec, NEW's spec over BASE's, the command
/// line over both, and the output names where each threshold came from.
#[test]
fn a_spec_declares_its_thresholds_and_the_command_line_overrides_them() {
    let (base, new) = slowdown();
    new.edit(
        "outputs:",
        "compare: { thresholds: { decode: 60, e2e: 500 } }\noutputs:",
    );
    // No node key holds the policy: declaring it reruns nothing.
    assert!(Workspace::nodes_with(&new.run(&[]), "ran").is_empty());
    let (code, loose) = compare_json(&base.spec, &new.spec, &[]);
    assert_eq!(code, 0, "{loose}");
    assert_eq!(loose["thresholds"]["decode"], 60.0);
    assert_eq!(loose["thresholds"]["e2e"], 500.0);
    let from_new = format!("spec {}", new.spec.display());
    assert_eq!(loose["threshold_sources"]["decode"], from_new.as_str());
    assert_eq!(loose["summary"]["regression"], 0);

    // BASE's spec applies where NEW's says nothing; NEW's wins where both do.
    base.edit(
        "outputs:",
        "compare: { thresholds: { decode: 5, ttft: 5 } }\noutputs:",
    );
    let (_, both) = compare_json(&base.spec, &new.spec, &[]);
    assert_eq!(both["thresholds"]["decode"], 60.0);
    assert_eq!(both["thresholds"]["ttft"], 5.0);
    let from_base = format!("spec {}", base.spec.display());
    assert_eq!(both["threshold_sources"]["ttft"], from_base.as_str());

    // The command line overrides the spec: the slowdown is a regression again.
    let (code, strict) = compare_json(&base.spec, &new.spec, &["--threshold", "decode=10"]);
    assert_eq!(code, 4, "{strict}");
    assert_eq!(strict["threshold_sources"]["decode"], "--threshold");
    let (_, table, _) = compare(&[
        base.spec.to_str().unwrap(),
        new.spec.to_str().unwrap(),
        "--threshold",
        "decode=10",
    ]);
    assert!(
        table.contains("decode throughput down >10% (--threshold)"),
        "{table}"
    );

    // A lockfile carries no policy: the default applies.
    let (code, default) = compare_json(&base.lock_path(), &new.lock_path(), &[]);
    assert_eq!(code, 4, "{default}");
    assert_eq!(default["threshold_sources"]["decode"], "default");

    // A threshold the command line would refuse is a located spec error.
    new.edit("decode: 60", "decode: 120");
    let (code, _, stderr) = compare(&[base.spec.to_str().unwrap(), new.spec.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("spec.yaml:28:")
            && stderr.contains("compare.thresholds.decode")
            && stderr.contains("below 100"),
        "{stderr}"
    );
}

#[test]
fn noise_between_two_runs_of_one_spec_is_not_a_regression() {
    // Same spec, another noise seed: the medians move by a few percent.
    let (base, new) = base_and("seed: 7,", "seed: 8,");
    let (code, result) = compare_json(&base.spec, &new.spec, &[]);
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["summary"]["cells"], 6);
    assert_eq!(result["summary"]["no_change"], 6, "{result}");
    for cell in cells(&result) {
        let decode = phase(cell, "decode");
        assert_eq!(decode["verdict"], "no_change");
        let slowdown = decode["slowdown_pct"].as_f64().unwrap();
        assert!(slowdown.abs() < 10.0, "{}: {slowdown}", cell["cell"]);
        // The events differ (another seed), so this is not a comparison of
        // a run with itself.
        assert_ne!(cell["base"]["events"], cell["new"]["events"]);
    }
}

#[test]
fn a_different_boundary_model_or_cell_set_is_not_comparable_and_named() {
    let base = Workspace::new();
    base.run(&[]);
    let new = Workspace::new();
    new.edit("repetitions: 4", "repetitions: 3");
    new.edit("layers: 2, hidden: 64", "layers: 3, hidden: 64");
    new.edit(
        "scenarios:\n",
        "scenarios:\n  - { name: solo, prompt_tokens: 4, batch: 1, gen_tokens: 4 }\n",
    );
    new.run(&[]);
    let (code, result) = compare_json(&base.spec, &new.spec, &[]);
    assert_eq!(code, 0, "not comparable is not a regression: {result}");
    assert_eq!(result["summary"]["cells"], 9);
    assert_eq!(result["summary"]["not_comparable"], 9);
    let by_cell = |name: &str| {
        cells(&result)
            .iter()
            .find(|c| c["cell"] == name)
            .unwrap_or_else(|| panic!("no cell {name}: {result}"))
    };
    let kinds = |cell: &Value| -> Vec<String> {
        cell["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap().to_string())
            .collect()
    };
    let tiny = by_cell("sim/tiny/micro");
    assert_eq!(kinds(tiny), ["boundary", "model"]);
    assert_eq!(tiny["reasons"][0]["detail"], "boundary.repetitions 4 -> 3");
    assert!(
        tiny["reasons"][1]["detail"]
            .as_str()
            .unwrap()
            .contains("n_layer 2 -> 3"),
        "{tiny}"
    );
    assert!(tiny["phases"].as_array().unwrap().is_empty());
    assert_eq!(kinds(by_cell("sim/mid/batch")), ["boundary"]);
    assert_eq!(kinds(by_cell("sim/tiny/solo")), ["only_in_new"]);

    // The readable form names them too.
    let (_, table, _) = compare(&[base.spec.to_str().unwrap(), new.spec.to_str().unwrap()]);
    assert!(
        table.contains("different boundary: boundary.repetitions 4 -> 3"),
        "{table}"
    );
    assert!(table.contains("only in NEW"), "{table}");
}

#[test]
fn report_spec_and_lockfile_give_the_same_verdicts() {
    let (base, new) = slowdown();
    let report = |ws: &Workspace| ws.path().join("reports/e2e/report.json");
    let (code, by_spec) = compare_json(&base.spec, &new.spec, &[]);
    assert_eq!(code, 4);
    assert_eq!(by_spec["base"]["kind"], "spec");
    for (b, n, kind) in [
        (base.lock_path(), new.lock_path(), "lockfile"),
        (report(&base), report(&new), "report"),
        (report(&base), new.lock_path(), "report"),
    ] {
        let (code, other) = compare_json(&b, &n, &[]);
        assert_eq!(code, 4, "{kind}: {other}");
        assert_eq!(other["base"]["kind"], kind);
        assert_eq!(other["cells"], by_spec["cells"], "{kind} differs from spec");
        assert_eq!(other["summary"], by_spec["summary"]);
    }
    // A report's folder stands for its report.json, and --store names the
    // store explicitly.
    let folder = base.path().join("reports/e2e");
    let store = base.store();
    let (code, other) = compare_json(
        &folder,
        &report(&new),
        &[
            "--base-store",
            store.to_str().unwrap(),
            "--new-store",
            new.store().to_str().unwrap(),
        ],
    );
    assert_eq!(code, 4);
    assert_eq!(other["cells"], by_spec["cells"]);
}

#[test]
fn bad_input_is_named_with_exit_2_and_missing_objects_with_exit_1() {
    let ws = Workspace::new();
    ws.run(&[]);
    let spec = ws.spec.to_str().unwrap();

    let missing = ws.path().join("nope.json");
    let (code, _, stderr) = compare(&[spec, missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("NEW") && stderr.contains("nope.json"),
        "{stderr}"
    );

    let malformed = ws.path().join("report.json");
    std::fs::write(&malformed, "{ \"assay_report\": 1, ").unwrap();
    let (code, _, stderr) = compare(&[malformed.to_str().unwrap(), spec]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("BASE") && stderr.contains("report.json: not a valid report.json"),
        "{stderr}"
    );

    // The exit code is documented with the others.
    let help = String::from_utf8_lossy(&assay(&["--help"]).stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(help.contains("4 regression found"), "{help}");

    let (code, _, stderr) = compare(&[spec, spec, "--threshold", "decode=abc"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("decode=abc"), "{stderr}");

    // A spec that never ran has no lockfile.
    let fresh = Workspace::new();
    let (code, _, stderr) = compare(&[spec, fresh.spec.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no lockfile"), "{stderr}");

    // An events object gone from the store: a store error naming it.
    let lock: Value = serde_json::from_slice(&std::fs::read(ws.lock_path()).unwrap()).unwrap();
    let events = lock["nodes"]["measure/sim/tiny/micro"]["outputs"]["events"]
        .as_str()
        .unwrap();
    std::fs::remove_file(ws.store().join("objects").join(&events[..2]).join(events)).unwrap();
    let (code, _, stderr) = compare(&[spec, spec]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("events of measure/sim/tiny/micro") && stderr.contains(events),
        "{stderr}"
    );
}

/// candle on a model whose decode step is big enough to split across two
/// threads (batch 32 x width 1024): on an idle 2-core machine one thread
/// instead of two decodes far more than 10% slower.
const CANDLE: &str = "assay: 1
id: threads
title: Decode with two threads and with one
question: Does decode slow down with fewer threads?
decision: Keep the thread count that decodes fastest.
boundary: { warmup_runs: 1, repetitions: 5 }
scenarios:
  - { name: wide, prompt_tokens: 8, batch: 32, gen_tokens: 6 }
models:
  - { name: m, synthetic: { arch: llama, layers: 2, hidden: 1024, heads: 8, kv_heads: 8, vocab: 2000, max_positions: 64, seed: 1 } }
backends:
  - { name: cpu, kind: candle, threads: 2 }
outputs: { dir: reports, formats: [json] }
";

/// How many times the test measures the two cells before it gives up. A
/// second thread only helps while the second core is free, and `cargo test`
/// runs other tests (and a developer's machine other builds) beside this
/// one: on a loaded machine an attempt can find two threads no faster than
/// one, which compare then rightly does not call a regression. Every
/// attempt's verdict is checked against the rule; the test passes once the
/// real slowdown shows and is caught. If it never shows, the machine could
/// not produce it: the test says so and passes, except under `CI=true`,
/// where it fails (as the llama.cpp tests do without their server).
const ATTEMPTS: usize = 3;

/// Ignored in the parallel suite: beside the other e2e tests the second
/// core is rarely free, so one thread is not measurably slower than two.
/// `.ci/run` runs it alone (`--ignored --test-threads=1`), under `CI=true`.
#[test]
#[ignore = "timing: needs both cores free; .ci/run runs it alone"]
fn candle_with_fewer_threads_is_a_regression() {
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        eprintln!("candle_with_fewer_threads_is_a_regression: needs 2 cores, did not run");
        return;
    }
    // Two specs in one folder share the store: the weights are prepared
    // once, and only the measure node differs.
    let ws = Workspace::with_spec(CANDLE);
    let fewer = ws.path().join("fewer.yaml");
    std::fs::write(&fewer, CANDLE.replace("threads: 2", "threads: 1")).unwrap();
    let mut seen = Vec::new();
    for attempt in 0..ATTEMPTS {
        for spec in [&ws.spec, &fewer] {
            let remeasure: &[&str] = if attempt == 0 { &[] } else { &["--remeasure"] };
            let run = [&["run", spec.to_str().unwrap(), "--no-progress"], remeasure].concat();
            let out = assay(&run);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let (code, result) = compare_json(&ws.spec, &fewer, &[]);
        let cell = &cells(&result)[0];
        assert_eq!(cell["cell"], "cpu/m/wide");
        assert_eq!(cell["notes"][0], "threads 2 -> 1", "{cell}");
        assert!(cell["reasons"].as_array().unwrap().is_empty(), "{cell}");
        let decode = phase(cell, "decode");
        assert_eq!(decode["base_runs"], 5);
        // Whatever this machine measured, the verdict follows the rule.
        let slowdown = decode["slowdown_pct"].as_f64().unwrap();
        let ci_high = decode["throughput"]["ratio_ci_high"].as_f64().unwrap();
        let regression = slowdown > 10.0 && ci_high < 1.0;
        assert_eq!(decode["verdict"] == "regression", regression, "{decode}");
        assert_eq!(code == 4, regression, "{result}");
        if regression {
            assert_eq!(cell["verdict"], "regression");
            return;
        }
        seen.push(format!(
            "attempt {}: decode throughput {slowdown:+.1}% slower, CI high {ci_high:.3}",
            attempt + 1
        ));
    }
    let message = format!(
        "candle_with_fewer_threads_is_a_regression: one thread was never measurably slower than two on this machine (busy cores?); the verdicts followed the rule:\n{}",
        seen.join("\n")
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
    eprintln!("{message}\ndid not run to its end");
}
