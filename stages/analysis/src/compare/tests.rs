use serde_json::json;

use super::*;
use assay_core::tables::EventRow;

/// A manifest with the fields compare reads.
fn manifest(backend: &str, model: &str, scenario: &str) -> Value {
    json!({
        "cell": format!("{backend}/{model}/{scenario}"),
        "backend": backend,
        "model": model,
        "scenario": { "name": scenario, "prompt_tokens": 4, "batch": 1, "gen_tokens": 8 },
        "evidence": "measured",
        "boundary": { "tokenization": "excluded", "model_load": "separate", "warmup_runs": 1, "repetitions": 5, "decode": "fixed_length" },
        "requested": { "kind": "candle", "device": "cpu", "dtype": "f32", "threads": 2 },
        "actual": { "device": "cpu", "dtype": "f32", "threads": 2, "library": "candle", "library_version": "0.11.1" },
        "weights": { "model_digest": "a".repeat(64) },
        "environment": { "cpu_model": "x", "libraries": { "candle": "0.11.1" } },
        "assay_version": "0.1.0",
    })
}

/// Events of one warmup and `runs` steady runs: each run a prefill, a
/// TTFT, 7 decode steps and an e2e, `scale` times a base time with a small
/// run-to-run wobble (`wobble` per mille per run index).
fn events(runs: u32, decode_ms: f64, wobble: f64) -> EventColumns {
    let mut rows = Vec::new();
    let ev = |rep: u32, phase: &str, ms: f64| EventRow {
        cell: "c".into(),
        repetition: rep,
        warmup: rep == 0,
        cold: rep == 0,
        phase: phase.into(),
        token_index: None,
        tokens: 1,
        start_ns: 0,
        ns: (ms * 1e6) as u64,
    };
    rows.push(ev(0, "load", 50.0));
    for rep in 0..=runs {
        let f = 1.0 + wobble * f64::from(rep % 3) / 1000.0;
        rows.push(ev(rep, "prefill", 2.0 * f));
        rows.push(ev(rep, "ttft", 2.5 * f));
        for step in 0..7 {
            rows.push(ev(
                rep,
                "decode",
                decode_ms * f * (1.0 + f64::from(step) * 0.001),
            ));
        }
        rows.push(ev(rep, "e2e", 2.5 * f + 7.0 * decode_ms * f));
    }
    EventColumns::from_rows(&rows)
}

fn cell(node_suffix: &str, manifest: Value, events: EventColumns, digest: &str) -> CellInput {
    CellInput {
        node: format!("measure/{node_suffix}"),
        events_digest: digest.into(),
        manifest,
        events,
    }
}

fn one(base: CellInput, new: CellInput, t: &Thresholds) -> CellComparison {
    let c = compare(&[base], &[new], t);
    assert_eq!(c.cells.len(), 1);
    c.cells.into_iter().next().unwrap_or_else(|| unreachable!())
}

#[test]
fn a_slower_decode_beyond_the_threshold_is_a_regression() {
    let m = manifest("cpu", "tiny", "micro");
    let c = one(
        cell("cpu/tiny/micro", m.clone(), events(5, 1.0, 10.0), "b"),
        cell("cpu/tiny/micro", m, events(5, 1.25, 10.0), "n"),
        &Thresholds::default(),
    );
    assert_eq!(c.verdict, Verdict::Regression);
    let decode = c.phases.iter().find(|p| p.phase == "decode").unwrap();
    assert_eq!(decode.verdict, Some(Verdict::Regression));
    let t = decode.throughput.as_ref().unwrap();
    assert!((t.ratio - 0.8).abs() < 0.01, "{}", t.ratio);
    assert!(t.ratio_ci_high < 1.0);
    assert!((decode.slowdown_pct - 20.0).abs() < 1.0);
    // Phases without a threshold are reported but not judged.
    let ttft = c.phases.iter().find(|p| p.phase == "ttft").unwrap();
    assert_eq!(ttft.verdict, None);
    assert_eq!(ttft.threshold_pct, None);
}

#[test]
fn a_faster_decode_is_an_improvement_and_a_small_change_is_none() {
    let m = manifest("cpu", "tiny", "micro");
    let faster = one(
        cell("cpu/tiny/micro", m.clone(), events(5, 1.0, 10.0), "b"),
        cell("cpu/tiny/micro", m.clone(), events(5, 0.7, 10.0), "n"),
        &Thresholds::default(),
    );
    assert_eq!(faster.verdict, Verdict::Improvement);
    // 5% slower: below the 10% default, whatever the interval says.
    let small = one(
        cell("cpu/tiny/micro", m.clone(), events(5, 1.0, 10.0), "b"),
        cell("cpu/tiny/micro", m, events(5, 1.05, 10.0), "n"),
        &Thresholds::default(),
    );
    assert_eq!(small.verdict, Verdict::NoChange);
}

#[test]
fn a_slowdown_within_the_noise_is_not_a_regression() {
    // NEW's median is 15% up, but its runs spread so widely that the
    // interval holds 1: not a regression.
    let m = manifest("cpu", "tiny", "micro");
    let c = one(
        cell("cpu/tiny/micro", m.clone(), events(3, 1.0, 400.0), "b"),
        cell("cpu/tiny/micro", m, events(3, 1.15, 400.0), "n"),
        &Thresholds::default(),
    );
    let decode = c.phases.iter().find(|p| p.phase == "decode").unwrap();
    assert!(decode.slowdown_pct > 10.0, "{}", decode.slowdown_pct);
    assert!(decode.throughput.as_ref().unwrap().ratio_ci_high >= 1.0);
    assert_eq!(c.verdict, Verdict::NoChange);
}

#[test]
fn thresholds_per_phase_are_applied() {
    let m = manifest("cpu", "tiny", "micro");
    let t = Thresholds::with([Thresholds::parse_one("decode=30").unwrap()]);
    let c = one(
        cell("cpu/tiny/micro", m.clone(), events(5, 1.0, 10.0), "b"),
        cell("cpu/tiny/micro", m, events(5, 1.25, 10.0), "n"),
        &t,
    );
    assert_eq!(
        c.verdict,
        Verdict::NoChange,
        "20% is within a 30% threshold"
    );
    // A TTFT threshold judges TTFT by latency: the TTFT here is unchanged.
    let t = Thresholds::with([Thresholds::parse_one("ttft=5").unwrap()]);
    assert_eq!(t.get(Phase::Ttft), Some(5.0));
    assert_eq!(t.get(Phase::Decode), Some(10.0));
}

#[test]
fn threshold_parsing_refuses_nonsense() {
    assert_eq!(
        Thresholds::parse_one("ttft=20").unwrap(),
        (Phase::Ttft, 20.0)
    );
    for bad in [
        "decode",
        "load=10",
        "decode=x",
        "decode=0",
        "decode=100",
        "e2e=-5",
        "x=1",
    ] {
        assert!(Thresholds::parse_one(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn different_boundary_model_and_library_are_named() {
    let m = manifest("cpu", "tiny", "micro");
    let mut other = m.clone();
    other["boundary"]["repetitions"] = json!(3);
    other["weights"]["model_digest"] = json!("b".repeat(64));
    other["actual"]["library_version"] = json!("0.12.0");
    let c = one(
        cell("cpu/tiny/micro", m, events(5, 1.0, 10.0), "b"),
        cell("cpu/tiny/micro", other, events(3, 1.0, 10.0), "n"),
        &Thresholds::default(),
    );
    assert_eq!(c.verdict, Verdict::NotComparable);
    assert!(c.phases.is_empty(), "no numbers set side by side");
    let kinds: Vec<ReasonKind> = c.reasons.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            ReasonKind::Boundary,
            ReasonKind::Model,
            ReasonKind::BackendVersion
        ]
    );
    assert_eq!(c.reasons[0].detail, "boundary.repetitions 5 -> 3");
    assert_eq!(
        c.reasons[1].detail,
        format!("model digest {} -> {}", "a".repeat(12), "b".repeat(12))
    );
    assert!(
        c.reasons[2]
            .detail
            .contains("library_version 0.11.1 -> 0.12.0")
    );
}

#[test]
fn a_simulated_model_is_told_apart_by_its_architecture() {
    let mut m = manifest("sim", "tiny", "micro");
    m["weights"] = Value::Null;
    m["model_info"] = json!({ "n_layer": 2 });
    let mut other = m.clone();
    other["model_info"]["n_layer"] = json!(4);
    let c = one(
        cell("sim/tiny/micro", m, events(4, 1.0, 1.0), "b"),
        cell("sim/tiny/micro", other, events(4, 1.0, 1.0), "n"),
        &Thresholds::default(),
    );
    assert_eq!(c.reasons.len(), 1);
    assert_eq!(c.reasons[0].kind, ReasonKind::Model);
    assert_eq!(c.reasons[0].detail, "model_info.n_layer 2 -> 4");
}

#[test]
fn cells_on_one_side_only_and_threads_as_a_note() {
    let a = manifest("cpu", "tiny", "micro");
    let b = manifest("cpu", "tiny", "short");
    let mut a_new = a.clone();
    a_new["actual"]["threads"] = json!(1);
    let cmp = compare(
        &[
            cell("cpu/tiny/micro", a, events(4, 1.0, 1.0), "b1"),
            cell("cpu/tiny/short", b, events(4, 1.0, 1.0), "b2"),
        ],
        &[cell("cpu/tiny/micro", a_new, events(4, 1.0, 1.0), "n1")],
        &Thresholds::default(),
    );
    assert_eq!(cmp.summary.cells, 2);
    assert_eq!(cmp.summary.not_comparable, 1);
    assert_eq!(cmp.summary.no_change, 1);
    let micro = &cmp.cells[0];
    assert_eq!(micro.cell, "cpu/tiny/micro");
    assert_eq!(micro.notes, ["threads 2 -> 1"]);
    let short = &cmp.cells[1];
    assert_eq!(short.reasons[0].kind, ReasonKind::OnlyInBase);
    assert!(!cmp.has_regression());
}

#[test]
fn output_is_the_same_in_any_input_order() {
    let a = manifest("cpu", "tiny", "micro");
    let b = manifest("cpu", "tiny", "short");
    let base = vec![
        cell("cpu/tiny/micro", a.clone(), events(4, 1.0, 30.0), "b1"),
        cell("cpu/tiny/short", b.clone(), events(4, 2.0, 30.0), "b2"),
    ];
    let new = vec![
        cell("cpu/tiny/micro", a, events(4, 1.1, 30.0), "n1"),
        cell("cpu/tiny/short", b, events(4, 2.5, 30.0), "n2"),
    ];
    let t = Thresholds::default();
    let forward = compare(&base, &new, &t);
    let reversed: Vec<CellInput> = base.iter().rev().cloned().collect();
    let backward = compare(&reversed, &new, &t);
    assert_eq!(
        serde_json::to_string(&forward).unwrap(),
        serde_json::to_string(&backward).unwrap()
    );
}

#[test]
fn judge_needs_both_the_threshold_and_the_interval() {
    assert_eq!(judge(15.0, 0.05, 0.2, 10.0), Verdict::Regression);
    assert_eq!(judge(15.0, -0.01, 0.2, 10.0), Verdict::NoChange);
    assert_eq!(judge(9.0, 0.05, 0.12, 10.0), Verdict::NoChange);
    assert_eq!(judge(15.0, f64::NAN, f64::NAN, 10.0), Verdict::NoChange);
    assert_eq!(judge(-15.0, -0.2, -0.05, 10.0), Verdict::Improvement);
}
