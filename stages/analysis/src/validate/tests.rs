use super::*;
use assay_measure::harness::Attribution;
use assay_measure::stage::Requested;
use assay_measure::{BackendKind, Boundary, Scenario};
use assay_model::decl::{Arch, SyntheticArch};

use assay_core::tables::{EventColumns, ValidationRow};

pub(crate) fn manifest(warmup_runs: u32, repetitions: u32) -> Manifest {
    let arch = SyntheticArch {
        arch: Arch::Llama,
        layers: 1,
        hidden: 8,
        heads: 2,
        kv_heads: None,
        vocab: 10,
        intermediate: None,
        max_positions: 64,
        seed: 0,
    };
    Manifest {
        cell: "b/m/s".into(),
        backend: "b".into(),
        model: "m".into(),
        scenario: Scenario {
            name: "s".into(),
            prompt_tokens: 2,
            batch: 1,
            gen_tokens: 3,
            load: None,
        },
        evidence: "measured".into(),
        clock: "monotonic".into(),
        boundary: Boundary {
            tokenization: Default::default(),
            model_load: Default::default(),
            warmup_runs,
            repetitions,
            decode: Default::default(),
            prompts: None,
        },
        requested: Requested {
            kind: BackendKind::new("simulated"),
            device: "cpu".into(),
            dtype: "f32".into(),
            threads: 1,
            compiled: None,
            injected: Vec::new(),
        },
        actual: Attribution::plain("cpu", "f32", 1, "test", "0"),
        model_info: Some(arch.info("m")),
        weights: None,
        started_unix_ms: None,
        energy: None,
        environment: None,
        assay_version: "0".into(),
        imported: None,
        gpu: None,
    }
}

/// Events of one well-formed run: prefill 2 ms, ttft 3 ms, two decode
/// steps of `step` ms, e2e = 3 + 2 * step.
pub(crate) fn run_events(rep: u32, warmup: bool, step: f64) -> Vec<EventRow> {
    let ev = |phase: &str, token_index: Option<u32>, ms: f64| EventRow {
        cell: "b/m/s".into(),
        repetition: rep,
        warmup,
        cold: rep == 0,
        phase: phase.into(),
        token_index,
        tokens: 1,
        ns: (ms * 1e6) as u64,
        ..Default::default()
    };
    vec![
        ev("prefill", None, 2.0),
        ev("ttft", Some(0), 3.0),
        ev("decode", Some(1), step),
        ev("decode", Some(2), step),
        ev("e2e", None, 3.0 + 2.0 * step),
    ]
}

pub(crate) fn run_row(rep: u32, warmup: bool, produced: u32) -> RunRow {
    RunRow {
        cell: "b/m/s".into(),
        repetition: rep,
        warmup,
        cold: rep == 0,
        prompt_tokens: 2,
        batch: 1,
        gen_tokens_requested: 3,
        gen_tokens_produced: produced,
        short: produced < 3,
        output_digest: String::new(),
    }
}

fn load() -> EventRow {
    EventRow {
        cell: "b/m/s".into(),
        repetition: 0,
        warmup: true,
        cold: true,
        phase: "load".into(),
        token_index: None,
        tokens: 0,
        ns: 1,
        ..Default::default()
    }
}

#[test]
fn clean_cell_is_ok_and_a_wild_run_is_flagged_not_degraded() {
    let mut events = vec![load()];
    let mut runs = Vec::new();
    for rep in 0..8 {
        let step = if rep == 7 {
            50.0
        } else {
            1.0 + 0.01 * f64::from(rep)
        };
        events.extend(run_events(rep, rep == 0, step));
        runs.push(run_row(rep, rep == 0, 3));
    }
    let params = ValidateParams {
        max_cv: 10.0,
        ..Default::default()
    };
    let columns = EventColumns::from_rows(&events);
    let (rows, checks) = validate_cell(&manifest(1, 7), &columns, &runs, &params);
    assert!(rows.iter().all(|r| r.status == "ok"), "{rows:?}");
    assert_eq!(
        rows.iter()
            .filter(|r| r.flags == "outlier")
            .map(|r| r.repetition)
            .collect::<Vec<_>>(),
        [7]
    );
    assert!(checks.iter().any(|c| c.check == "outliers" && !c.passed));
    // The same cell under a strict CV threshold is degraded as a whole.
    let strict = ValidateParams {
        max_cv: 0.05,
        ..Default::default()
    };
    let (rows, _) = validate_cell(&manifest(1, 7), &columns, &runs, &strict);
    assert!(
        rows.iter()
            .all(|r| r.status == "degraded" && r.reasons.contains("high_cv"))
    );
}

#[test]
fn short_missing_and_drifted_runs() {
    let mut events = vec![load()];
    events.extend(run_events(0, false, 1.0));
    let mut second = run_events(1, false, 1.0);
    second.retain(|e| e.phase != "ttft");
    events.extend(second);
    let runs = vec![run_row(0, false, 2), run_row(1, false, 3)];
    let mut m = manifest(0, 3);
    m.actual.threads = 2;
    let columns = EventColumns::from_rows(&events);
    let (rows, checks) = validate_cell(&m, &columns, &runs, &ValidateParams::default());
    // Run 0: two decode steps recorded but only 2 tokens produced.
    assert_eq!(rows[0].status, "failed");
    assert!(
        rows[0].reasons.contains("decode_steps_mismatch")
            && rows[0].reasons.contains("short_generation")
    );
    assert_eq!(rows[1].status, "failed");
    assert!(rows[1].reasons.contains("missing_phase:ttft"));
    assert!(
        rows.iter()
            .all(|r| r.reasons.contains("attribution_drift:threads"))
    );
    assert!(
        rows.iter()
            .all(|r| r.reasons.contains("too_few_repetitions"))
    );
    assert!(checks.iter().any(|c| c.check == "attribution" && !c.passed));
}

#[test]
fn unknown_phases_and_unnumbered_steps_are_misordered_or_mismatched() {
    // Run 0: an unknown phase last, after e2e. Run 1: a decode step
    // without a token index. Run 2: clean.
    let mut events = vec![load()];
    let mut first = run_events(0, false, 1.0);
    first.push(EventRow {
        phase: "spin".into(),
        ..first[0].clone()
    });
    events.extend(first);
    let mut second = run_events(1, false, 1.0);
    second[3].token_index = None;
    events.extend(second);
    events.extend(run_events(2, false, 1.0));
    let runs: Vec<RunRow> = (0..3).map(|rep| run_row(rep, false, 3)).collect();
    let columns = EventColumns::from_parquet(tables::to_parquet(&events).unwrap(), false);
    let (rows, _) = validate_cell(
        &manifest(0, 3),
        &columns.unwrap(),
        &runs,
        &ValidateParams::default(),
    );
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.status.as_str(), r.reasons.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("failed", "phase_order"),
            ("failed", "decode_steps_mismatch"),
            ("ok", "")
        ]
    );
}

#[test]
fn a_cell_measured_under_another_boundary_is_degraded() {
    let b = |warmup_runs| Boundary {
        tokenization: Default::default(),
        model_load: Default::default(),
        warmup_runs,
        repetitions: 2,
        decode: Default::default(),
        prompts: None,
    };
    let row = |cell: &str, status: &str| ValidationRow {
        cell: cell.into(),
        status: status.into(),
        ..Default::default()
    };
    let boundaries = vec![
        ("a".to_string(), b(1)),
        ("b".to_string(), b(0)),
        ("c".to_string(), b(1)),
    ];
    let mut rows = vec![
        row("a", "ok"),
        row("b", "ok"),
        row("b", "failed"),
        row("c", "ok"),
    ];
    let mut checks = Vec::new();
    mark_boundary_mismatch(&boundaries, &mut rows, &mut checks);
    let got: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r.cell.as_str(), r.status.as_str(), r.reasons.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("a", "ok", ""),
            ("b", "degraded", "boundary_mismatch"),
            ("b", "failed", "boundary_mismatch"),
            ("c", "ok", "")
        ]
    );
    assert_eq!(checks.len(), 1);
    assert_eq!((checks[0].cell.as_str(), checks[0].passed), ("b", false));
    // One boundary everywhere: nothing to flag.
    let mut rows = vec![row("a", "ok")];
    mark_boundary_mismatch(&boundaries[..1], &mut rows, &mut checks);
    assert_eq!(rows[0].status, "ok");
}

#[test]
fn a_dead_sensor_fails_energy_coverage_even_with_attributable_windows() {
    let mut m = manifest(0, 1);
    m.energy = Some(assay_measure::energy::EnergySource {
        sensor: "simulated".into(),
        no_sensor: None,
        poll_ms: 1,
        idle_ms: 20,
        idle_samples: 20,
        samples: 3,
    });
    let row = EnergyRow {
        cell: "c".into(),
        phase: "e2e".into(),
        status: "valid".into(),
        ..Default::default()
    };
    let live = super::energy_check(&m, std::slice::from_ref(&row), 2, None);
    assert!(live.passed, "{live:?}");
    let why = "sensor_dead: no power reading after 3.0 ms of a 40.0 ms cell (1 ms polling)";
    let dead = super::energy_check(&m, &[row], 2, Some(why.into()));
    assert!(!dead.passed);
    assert!(dead.detail.starts_with(why), "{}", dead.detail);
    assert!(
        dead.detail.ends_with(
            "1 of 1 steady windows attributable (>= 2 samples at 1 ms polling, sensor simulated)"
        ),
        "{}",
        dead.detail
    );
}
