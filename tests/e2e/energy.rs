//! Energy gating end to end (TR122): power sampled beside the measurement,
//! windows gated in validate, numbers only where the sensor resolves them.

use crate::support::*;

/// The simulated fixture with energy on. Simulated events last a few ms, so
/// 1 ms polling resolves long windows and leaves short ones without data.
fn energy_workspace(min_samples: u32) -> Workspace {
    let text = std::fs::read_to_string(FIXTURE).unwrap().replace(
        "fit:",
        &format!("energy: {{ poll_ms: 1, min_samples: {min_samples}, idle_ms: 20 }}\nfit:"),
    );
    let text = text.replace(
        "  burst_factor: 5\n",
        "  burst_factor: 5\n  energy: { usd_per_kwh: 0.15, carbon_g_per_kwh: 400 }\n",
    );
    Workspace::with_spec(&text)
}

fn claims(ws: &Workspace) -> Vec<serde_json::Value> {
    let json: serde_json::Value = serde_json::from_slice(&ws.report("report.json")).unwrap();
    json["claims"].as_array().unwrap().clone()
}

#[test]
fn short_windows_are_no_data_and_only_valid_windows_become_claims() {
    let ws = energy_workspace(3);
    ws.run(&[]);
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(md.contains("## Energy"), "{md}");
    assert!(md.contains("Sensor: simulated."));
    // Prefill lasts about a millisecond in the simulated model: never three
    // samples inside, so never a number.
    let all = claims(&ws);
    let energy_claims: Vec<&serde_json::Value> = all
        .iter()
        .filter(|c| c["id"].as_str().unwrap().starts_with("energy/"))
        .collect();
    assert!(!energy_claims.is_empty());
    assert!(
        energy_claims
            .iter()
            .all(|c| !c["id"].as_str().unwrap().contains("/prefill/")),
        "{energy_claims:?}"
    );
    assert!(md.contains("| prefill | 4 | 0 | no_data | no_data |"));
    for c in &energy_claims {
        assert!(c["value"].as_f64().unwrap() > 0.0, "{c}");
        assert_eq!(c["evidence"], "simulated");
    }
    // An energy claim traces through its gated windows to the samples.
    let id = energy_claims
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .find(|id| id.ends_with("/j_per_token"))
        .unwrap();
    let out = assay(&["trace", "--spec", ws.spec.to_str().unwrap(), "--json", id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hops: Vec<&str> = trace["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hop"].as_str().unwrap())
        .collect();
    for hop in ["summary", "energy", "power", "raw", "manifest"] {
        assert!(hops.contains(&hop), "no {hop} hop in {hops:?}");
    }
}

#[test]
fn changing_the_gate_regates_stored_samples_without_remeasuring() {
    let ws = energy_workspace(3);
    ws.run(&[]);
    let before = claims(&ws)
        .iter()
        .filter(|c| c["id"].as_str().unwrap().starts_with("energy/"))
        .count();
    ws.edit("min_samples: 3", "min_samples: 1000");
    let again = ws.run(&[]);
    let ran = Workspace::nodes_with(&again, "ran");
    assert!(ran.iter().all(|n| !n.starts_with("measure/")), "{ran:?}");
    assert_eq!(ran[0], "validate");
    let after = claims(&ws)
        .iter()
        .filter(|c| c["id"].as_str().unwrap().starts_with("energy/"))
        .count();
    assert!(before > 0);
    assert_eq!(
        after, 0,
        "no window has 1000 samples: no energy number at all"
    );
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(
        md.contains("Energy: 0 of 72 steady windows were attributable"),
        "{md}"
    );
}

#[test]
fn without_an_energy_section_the_report_says_why_there_is_none() {
    let ws = Workspace::new();
    ws.run(&[]);
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(md.contains("No energy: the spec has no `energy` section"));
    assert!(
        claims(&ws)
            .iter()
            .all(|c| !c["id"].as_str().unwrap().starts_with("energy/"))
    );
}

/// One simulated cell of many short runs: enough runs that the cell's
/// macro window spans several polling intervals.
const MACRO_SPEC: &str = "\
assay: 1
id: energy-macro
title: Macro energy windows
question: What does a token cost in energy when every run is shorter than the polling interval?
decision: Report energy per token from the cell's macro window only.
boundary: { warmup_runs: 1, repetitions: 8 }
scenarios:
  - { name: chat, prompt_tokens: 16, batch: 1, gen_tokens: 8 }
models:
  - { name: mid, synthetic: { arch: llama, layers: 6, hidden: 256, heads: 8, kv_heads: 2, vocab: 1000, seed: 1 } }
backends:
  - { name: sim, kind: simulated, simulated: { seed: 7, noise_cv: 0.02 } }
energy: { poll_ms: 1, min_samples: 1, min_intervals: 1, idle_ms: 20 }
outputs: { dir: reports/e2e, formats: [md, json] }
";

const MACRO_CELL: &str = "sim/mid/chat";

/// Validate's `energy` table, by its digest in the lockfile.
fn energy_rows(ws: &Workspace) -> Vec<assay_core::tables::EnergyRow> {
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.lock_path()).unwrap()).unwrap();
    let digest = lock["nodes"]["validate"]["outputs"]["energy"]
        .as_str()
        .unwrap();
    let bytes = std::fs::read(ws.store().join("objects").join(&digest[..2]).join(digest)).unwrap();
    assay_core::tables::from_parquet(&bytes).unwrap()
}

fn claim<'a>(all: &'a [serde_json::Value], id: &str) -> &'a serde_json::Value {
    all.iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no claim {id}"))
}

/// Seed S.3 and AQ.4: energy is valid for macro windows. With the duration
/// gate above every single run's length, no run's window has a number, and
/// the cell's window over its 8 steady runs still gives an energy per token
/// with an interval from the idle baseline's variance; raising the gate
/// re-gates the stored samples without measuring again.
#[test]
fn a_macro_window_gives_a_cell_energy_per_token_where_every_run_is_too_short() {
    let ws = Workspace::with_spec(MACRO_SPEC);
    ws.run(&[]);
    let rows = energy_rows(&ws);
    let longest_run_ns = rows
        .iter()
        .filter(|r| r.phase != "cell")
        .map(|r| r.duration_ns)
        .max()
        .unwrap();
    let cell = rows.iter().find(|r| r.phase == "cell").unwrap();
    // The gate in whole 1 ms intervals: just above the longest run.
    let k = longest_run_ns / 1_000_000 + 1;
    assert!(
        cell.duration_ns >= k * 1_000_000,
        "the fixture's 8 runs ({} ns) must outlast one run ({longest_run_ns} ns) by a polling interval",
        cell.duration_ns
    );
    ws.edit("min_intervals: 1", &format!("min_intervals: {k}"));
    let again = ws.run(&[]);
    let ran = Workspace::nodes_with(&again, "ran");
    assert!(ran.iter().all(|n| !n.starts_with("measure/")), "{ran:?}");
    assert!(ran.contains(&"validate".to_string()), "{ran:?}");

    let rows = energy_rows(&ws);
    let (cells, per_run): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.phase == "cell");
    assert_eq!(
        per_run.len(),
        9 * 3,
        "prefill, decode span and e2e of 9 runs"
    );
    assert!(
        per_run
            .iter()
            .all(|r| r.status == "no_data" && r.reason.as_deref() == Some("too_short")),
        "{per_run:?}"
    );
    let [cell] = cells.as_slice() else {
        panic!("one macro window: {cells:?}")
    };
    assert_eq!(
        (cell.status.as_str(), cell.reason.as_deref()),
        ("valid", None)
    );
    // 8 steady runs of 8 generated tokens; the warmup run is not in it.
    assert_eq!(
        (cell.runs, cell.tokens, cell.repetition, cell.warmup),
        (8, 64, 1, false)
    );
    let (j, lo, hi) = (
        cell.energy_j.unwrap(),
        cell.energy_j_low.unwrap(),
        cell.energy_j_high.unwrap(),
    );
    // The simulated machine draws 35 W above idle while busy, with 2% noise
    // on every sample, the baseline's included: a positive figure inside a
    // proper interval.
    assert!(
        cell.idle_sd_w.unwrap() > 0.0 && cell.idle_samples >= 2,
        "{cell:?}"
    );
    assert!(lo < j && j < hi && j > 0.0, "{cell:?}");

    let all = claims(&ws);
    let value = |id: String| claim(&all, &id)["value"].as_f64().unwrap();
    let per_token = value(format!("energy/{MACRO_CELL}/cell/j_per_token"));
    assert!((per_token - j / 64.0).abs() < 1e-12);
    let low = value(format!("energy_interval/{MACRO_CELL}/cell/j_per_token_low"));
    assert!((low - lo / 64.0).abs() < 1e-12);
    let high = value(format!(
        "energy_interval/{MACRO_CELL}/cell/j_per_token_high"
    ));
    assert!((high - hi / 64.0).abs() < 1e-12);
    assert!((value(format!("energy/{MACRO_CELL}/cell/j")) - j).abs() < 1e-12);
    let statement = claim(&all, &format!("energy/{MACRO_CELL}/cell/j_per_token"))["statement"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(statement.contains("95% interval"), "{statement}");
    assert_eq!(
        claim(&all, &format!("energy_idle/{MACRO_CELL}/sd_w"))["value"].as_f64(),
        cell.idle_sd_w
    );
    // No per-event energy claim: every run's window is too short.
    for phase in ["prefill", "decode", "e2e"] {
        let id = format!("energy/{MACRO_CELL}/{phase}/j_per_token");
        assert!(all.iter().all(|c| c["id"] != id.as_str()), "{id}");
    }
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(
        md.contains(&format!("at least {k} polling interval(s) ({k} ms)")),
        "{md}"
    );
    assert!(md.contains("| sim | mid | chat | 8 |"), "{md}");

    // The macro claim traces to its window, the samples and the runs' events.
    let id = format!("energy/{MACRO_CELL}/cell/j_per_token");
    let out = assay(&["trace", "--spec", ws.spec.to_str().unwrap(), "--json", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let chain = trace["chain"].as_array().unwrap();
    let hop = |name: &str| {
        chain
            .iter()
            .find(|h| h["hop"] == name)
            .unwrap_or_else(|| panic!("no {name} hop"))
    };
    assert_eq!(hop("energy")["node"], "validate");
    assert_eq!(hop("power")["node"], format!("measure/{MACRO_CELL}"));
    let raw = hop("raw")["detail"].as_str().unwrap();
    assert!(raw.starts_with("8 raw e2e events"), "{raw}");
}

/// Appendix S.3: the idle baseline's mean and variance, and every valid
/// figure's interval from it, in the table and the report.
#[test]
fn every_valid_window_carries_an_interval_from_the_idle_variance() {
    let ws = energy_workspace(3);
    ws.run(&[]);
    let rows = energy_rows(&ws);
    let valid: Vec<_> = rows.iter().filter(|r| r.status == "valid").collect();
    assert!(!valid.is_empty());
    for r in &valid {
        let (j, sd) = (r.energy_j.unwrap(), r.energy_j_sd.unwrap());
        let (lo, hi) = (r.energy_j_low.unwrap(), r.energy_j_high.unwrap());
        assert!(sd > 0.0 && lo < j && j < hi, "{r:?}");
        // Symmetric about the figure.
        assert!(
            ((hi - j) - (j - lo)).abs() < 1e-9 * j.abs().max(1.0),
            "{r:?}"
        );
    }
    // Every cell has a macro window, and each gets a number here.
    let cells: Vec<_> = rows.iter().filter(|r| r.phase == "cell").collect();
    assert_eq!(cells.len(), 6);
    assert!(
        cells.iter().all(|c| c.status == "valid" && c.runs == 4),
        "{cells:?}"
    );
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(
        md.contains("Idle baseline per cell (S.3: mean and variance)"),
        "{md}"
    );
    assert!(md.contains("Macro windows (S.3, AQ.4)"), "{md}");
    let all = claims(&ws);
    assert!(
        all.iter()
            .any(|c| c["id"].as_str().unwrap().ends_with("/j_per_token_sd")),
        "per-event figures state their idle uncertainty"
    );
}

/// Gating, macro windows and intervals are pure functions of the stored
/// samples: two fresh stores, one at a single thread, give the same bytes.
#[test]
fn gated_energy_is_byte_identical_across_stores_and_thread_counts() {
    let a = energy_workspace(1);
    let b = energy_workspace(1);
    a.run(&[]);
    let out = assay_cmd()
        .env("RAYON_NUM_THREADS", "1")
        .args(["run", b.spec.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(energy_rows(&a), energy_rows(&b));
    for name in ["report.json", "report.md", "report.html"] {
        assert_eq!(a.report(name), b.report(name), "{name} differs");
    }
    let verify = assay(&["verify", a.spec.to_str().unwrap()]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}
