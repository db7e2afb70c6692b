//! validate: per-run verdicts (ok / degraded / failed) with reasons as data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use assay_core::inputs::cell_inputs;
use assay_core::stage::{Input, Outputs, Stage, StageContext, StageError};
use assay_core::tables::{
    self, EnergyRow, EventColumns, EventRow, OutputRow, Phase, PowerRow, RunRow, ValidationRow,
};
use assay_measure::energy;
use assay_measure::{Boundary, Manifest};

mod invariance;

pub const VALIDATE_VERSION: u32 = 5;

/// Validation thresholds (spec `validate:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateParams {
    /// Largest coefficient of variation (std / mean) of a cell's steady-state
    /// end-to-end latency before every run of the cell is degraded
    /// (`high_cv`).
    #[serde(default = "default_max_cv")]
    pub max_cv: f64,
    /// A steady run whose end-to-end latency is further than k scaled MADs
    /// (1.4826 * MAD) from the cell's median is flagged `outlier` (kept, not
    /// dropped, in the manner of criterion).
    #[serde(default = "default_outlier_k")]
    pub outlier_k: f64,
    /// Output invariance across backends: where two backends' greedy tokens
    /// first differ, a difference is a near-tie (not a divergence) when the
    /// winning logit led the runner-up by at most this much in either
    /// backend, since float rounding can flip such a choice.
    #[serde(default = "default_output_tolerance")]
    pub output_tolerance: f64,
    /// The backend (by name) whose greedy tokens every other backend's are
    /// compared with, in each group it has a cell in. Without it, the
    /// reference is the `candle` cell, else the cell whose backend name
    /// sorts first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invariance_reference: Option<String>,
}

fn default_output_tolerance() -> f64 {
    1e-3
}

fn default_max_cv() -> f64 {
    0.25
}

fn default_outlier_k() -> f64 {
    5.0
}

impl Default for ValidateParams {
    fn default() -> Self {
        ValidateParams {
            max_cv: default_max_cv(),
            outlier_k: default_outlier_k(),
            output_tolerance: default_output_tolerance(),
            invariance_reference: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ValidateStage {
    pub params: ValidateParams,
    /// The spec's `energy.min_samples`: gate each cell's power samples into
    /// an `energy` table. None when the spec asks for no energy.
    pub energy_min_samples: Option<u32>,
}

/// One check of one cell, for the report's validation section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub cell: String,
    pub check: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checks {
    pub checks: Vec<CheckResult>,
}

/// The outputs of validate.
pub mod output {
    /// One verdict per run (`tables::ValidationRow`).
    pub const VALIDATION: &str = "validation";
    /// Every check with its result (`Checks`).
    pub const CHECKS: &str = "checks";
    /// Only when the spec asks for energy: gated energy per run.
    pub const ENERGY: &str = "energy";
}

impl Stage for ValidateStage {
    fn kind(&self) -> &'static str {
        "validate"
    }

    fn version(&self) -> u32 {
        VALIDATE_VERSION
    }

    fn outputs(&self) -> Vec<&'static str> {
        let mut names = vec![output::CHECKS, output::VALIDATION];
        if self.energy_min_samples.is_some() {
            names.push(output::ENERGY);
        }
        names
    }

    fn params(&self) -> Result<Value, StageError> {
        let mut params =
            serde_json::to_value(&self.params).map_err(|e| StageError::params("validate", e))?;
        // Only when asked for, so specs without energy keep their keys.
        if let Some(min) = self.energy_min_samples {
            params["energy_min_samples"] = json!(min);
        }
        Ok(params)
    }

    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError> {
        let mut rows = Vec::new();
        let mut checks = Vec::new();
        let mut energy_rows = Vec::new();
        let mut boundaries = Vec::new();
        let mut generated = Vec::new();
        for cell in cell_inputs(inputs)? {
            ctx.check_cancel()?;
            let events = tables::read_event_columns(ctx, cell.events)?;
            let runs_input = cell.runs.ok_or_else(|| {
                StageError::Failed(format!("measure node {} has no runs output", cell.node))
            })?;
            let runs: Vec<RunRow> = tables::read_rows(ctx, runs_input)?;
            let manifest: Manifest = tables::read_json(ctx, cell.manifest)?;
            boundaries.push((manifest.cell.clone(), manifest.boundary.clone()));
            let (mut cell_rows, mut cell_checks) =
                validate_cell(&manifest, &events, &runs, &self.params);
            if let Some(outputs) = cell.outputs {
                let rows: Vec<OutputRow> = tables::read_rows(ctx, outputs)?;
                generated.push(invariance::CellOutputs::new(&manifest, &runs, rows));
            }
            rows.append(&mut cell_rows);
            checks.append(&mut cell_checks);
            if let Some(min) = self.energy_min_samples {
                let power: Vec<PowerRow> = match cell.power {
                    Some(p) => tables::read_rows(ctx, p)?,
                    None => Vec::new(),
                };
                let poll_ms = manifest.energy.as_ref().map_or(1, |e| e.poll_ms);
                // Gating (assay-measure) takes whole rows, start times
                // included: only specs that ask for energy decode them.
                let events: Vec<EventRow> = tables::read_events(ctx, cell.events)?;
                let mut cell_energy = energy::gate(&events, &power, min, poll_ms);
                checks.push(energy_check(&manifest, &cell_energy, min));
                energy_rows.append(&mut cell_energy);
            }
        }
        mark_boundary_mismatch(&boundaries, &mut rows, &mut checks);
        invariance::check_outputs(
            &generated,
            &invariance::Settings {
                tolerance: self.params.output_tolerance,
                reference: self.params.invariance_reference.as_deref(),
            },
            &mut rows,
            &mut checks,
        );
        rows.sort_by(|a, b| (&a.cell, a.repetition).cmp(&(&b.cell, b.repetition)));
        let mut out = Outputs::new();
        if self.energy_min_samples.is_some() {
            out.insert(output::ENERGY.into(), tables::to_parquet(&energy_rows)?);
        }
        out.insert(output::VALIDATION.into(), tables::to_parquet(&rows)?);
        out.insert(output::CHECKS.into(), tables::to_json(&Checks { checks })?);
        Ok(out)
    }
}

/// Cells compared in one report must share one measurement boundary (what
/// the timed region includes): a cell whose manifest records another
/// boundary than the most common one has every run degraded
/// (`boundary_mismatch`). Ties go to the first boundary in a fixed order, so
/// the verdict never depends on input order.
pub fn mark_boundary_mismatch(
    boundaries: &[(String, Boundary)],
    rows: &mut [ValidationRow],
    checks: &mut Vec<CheckResult>,
) {
    let key = |b: &Boundary| serde_json::to_string(b).unwrap_or_default();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (_, b) in boundaries {
        *counts.entry(key(b)).or_default() += 1;
    }
    if counts.len() < 2 {
        return;
    }
    let reference = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(k, _)| k.clone())
        .unwrap_or_default();
    for (cell, b) in boundaries {
        if key(b) == reference {
            continue;
        }
        for row in rows.iter_mut().filter(|r| &r.cell == cell) {
            if !row.reasons.is_empty() {
                row.reasons.push(';');
            }
            row.reasons.push_str("boundary_mismatch");
            if row.status == "ok" {
                row.status = "degraded".into();
            }
        }
        checks.push(CheckResult {
            cell: cell.clone(),
            check: "boundary".into(),
            passed: false,
            detail: format!(
                "measured under {}, the other cells under {reference}",
                key(b)
            ),
        });
    }
}

/// TR122: how many of the cell's energy windows are attributable.
fn energy_check(manifest: &Manifest, rows: &[EnergyRow], min: u32) -> CheckResult {
    // Steady windows only: warmup windows never feed an aggregate.
    let steady: Vec<&EnergyRow> = rows.iter().filter(|r| !r.warmup).collect();
    let valid = steady.iter().filter(|r| r.status == "valid").count();
    let source = manifest.energy.as_ref();
    let detail = match source.and_then(|s| s.no_sensor.as_deref()) {
        Some(reason) => format!("no energy: {reason}"),
        None => format!(
            "{valid} of {} steady windows attributable (>= {min} samples at {} ms polling, sensor {})",
            steady.len(),
            source.map_or(0, |s| s.poll_ms),
            source.map_or("none", |s| s.sensor.as_str())
        ),
    };
    CheckResult {
        cell: manifest.cell.clone(),
        check: "energy_coverage".into(),
        passed: valid > 0,
        detail,
    }
}

/// Verdicts for every run of one cell, and the cell's checks.
pub fn validate_cell(
    manifest: &Manifest,
    events: &EventColumns,
    runs: &[RunRow],
    params: &ValidateParams,
) -> (Vec<ValidationRow>, Vec<CheckResult>) {
    let cell = manifest.cell.as_str();
    let mut checks = Vec::new();
    let mut check = |name: &str, passed: bool, detail: String| {
        checks.push(CheckResult {
            cell: cell.to_string(),
            check: name.to_string(),
            passed,
            detail,
        });
    };

    // Cell-level reasons apply to every run of the cell.
    let mut cell_reasons = cell_level(manifest, events, runs, &mut check);
    let server = manifest.actual.server.as_ref();
    let under_load = server.is_some() && manifest.scenario.load.is_some();
    let outliers = dispersion(events, params, under_load, &mut check, &mut cell_reasons);

    // Each run's events by row index, in table order.
    let mut by_run: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for i in (0..events.len()).filter(|i| events.phase(*i) != Phase::Load) {
        by_run.entry(events.repetition[i]).or_default().push(i);
    }
    let mut rows = Vec::new();
    let mut short_runs = 0;
    let mut incomplete_runs = 0;
    for run in runs {
        let mut reasons = cell_reasons.clone();
        let evs = by_run
            .get(&run.repetition)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let phase_reasons = run_phase_reasons(events, evs, run, server.is_some(), &mut reasons);
        if !phase_reasons.is_empty() {
            incomplete_runs += 1;
        }
        let failed = !phase_reasons.is_empty();
        reasons.extend(phase_reasons);
        if run.short {
            short_runs += 1;
            reasons.push("short_generation".into());
        }
        let status = if failed {
            "failed"
        } else if reasons.is_empty() {
            "ok"
        } else {
            "degraded"
        };
        rows.push(ValidationRow {
            cell: cell.to_string(),
            repetition: run.repetition,
            warmup: run.warmup,
            status: status.into(),
            reasons: reasons.join(";"),
            flags: if outliers.contains(&run.repetition) {
                "outlier".into()
            } else {
                String::new()
            },
            evidence: manifest.evidence.clone(),
        });
    }
    check(
        "phases_complete",
        incomplete_runs == 0,
        format!("{incomplete_runs} runs with missing or misordered phases"),
    );
    check(
        "fixed_length_decode",
        short_runs == 0,
        format!("{short_runs} runs generated fewer tokens than requested"),
    );
    check(
        "evidence",
        manifest.evidence == "measured",
        format!("{} data", manifest.evidence),
    );
    (rows, checks)
}

/// The checks every run of the cell shares (model load, attribution,
/// repetitions, warmup labels), and the reasons they give every run.
fn cell_level(
    manifest: &Manifest,
    events: &EventColumns,
    runs: &[RunRow],
    check: &mut impl FnMut(&str, bool, String),
) -> Vec<String> {
    let mut cell_reasons: Vec<String> = Vec::new();
    let loads = (0..events.len())
        .filter(|i| events.phase(*i) == Phase::Load)
        .count();
    let server = manifest.actual.server.as_ref();
    // A server assay did not start (an OpenAI-compatible URL) loads its
    // model out of sight: there is no load phase to time.
    let load_unobservable =
        loads == 0 && server.is_some_and(|s| !s.launched && s.protocol != "ollama");
    check(
        "model_load_timed",
        loads == 1 || load_unobservable,
        if load_unobservable {
            "server already running: its model load is not observable".into()
        } else {
            format!("{loads} load events")
        },
    );
    if loads != 1 && !load_unobservable {
        cell_reasons.push("missing_load".into());
    }
    let drift = attribution_drift(manifest);
    check(
        "attribution",
        drift.is_empty(),
        if drift.is_empty() {
            "requested configuration ran".into()
        } else {
            format!("label drift in {}", drift.join(", "))
        },
    );
    cell_reasons.extend(drift.iter().map(|f| format!("attribution_drift:{f}")));
    let steady = runs.iter().filter(|r| !r.warmup).count();
    // Under a load profile the windows are counted in requests (a
    // duration-bound window has no count to reach).
    let (wanted, warmup_declared) = match (&manifest.scenario.load, server) {
        (Some(load), Some(_)) => (
            load.requests.unwrap_or(0) as usize,
            load.warmup_requests as usize,
        ),
        _ => (
            manifest.boundary.repetitions as usize,
            manifest.boundary.warmup_runs as usize,
        ),
    };
    check(
        "repetitions",
        steady >= wanted,
        format!("{steady} steady runs of {wanted} declared"),
    );
    if steady < wanted {
        cell_reasons.push("too_few_repetitions".into());
    }
    let warm = runs.iter().filter(|r| r.warmup).count();
    check(
        "warmup_labelled",
        warm == warmup_declared,
        format!("{warm} warmup runs of {warmup_declared} declared"),
    );
    cell_reasons
}

/// Dispersion of the steady end-to-end latency: a cell too noisy to support
/// a claim is degraded as a whole (`high_cv` into `cell_reasons`); single
/// wild runs are flagged. Returns the flagged runs.
fn dispersion(
    events: &EventColumns,
    params: &ValidateParams,
    under_load: bool,
    check: &mut impl FnMut(&str, bool, String),
    cell_reasons: &mut Vec<String>,
) -> std::collections::BTreeSet<u32> {
    let steady_e2e: Vec<(u32, f64)> = (0..events.len())
        .filter(|i| events.phase(*i) == Phase::E2e && !events.warmup.value(*i))
        .map(|i| (events.repetition[i], events.ns[i] as f64))
        .collect();
    let values: Vec<f64> = steady_e2e.iter().map(|(_, v)| *v).collect();
    let mut outliers: std::collections::BTreeSet<u32> = std::collections::BTreeSet::new();
    if under_load {
        // Queueing spreads latencies by design: the spread is what a load
        // profile measures, not noise that would void a claim.
        check(
            "dispersion",
            true,
            "not applied under a load profile: the latency spread is the measurement".into(),
        );
    } else if values.len() >= 2 {
        let cv = assay_core::stats::std_dev(&values) / assay_core::stats::mean(&values);
        check(
            "dispersion",
            cv <= params.max_cv,
            format!(
                "steady e2e coefficient of variation {cv:.3} (max {})",
                params.max_cv
            ),
        );
        if cv > params.max_cv {
            cell_reasons.push("high_cv".into());
        }
        let median = assay_core::stats::median(&values);
        let spread = 1.4826 * assay_core::stats::mad(&values);
        for (rep, v) in &steady_e2e {
            if spread > 0.0 && (v - median).abs() > params.outlier_k * spread {
                outliers.insert(*rep);
            }
        }
        check(
            "outliers",
            outliers.is_empty(),
            format!(
                "{} steady runs beyond {} scaled MADs (flagged, kept)",
                outliers.len(),
                params.outlier_k
            ),
        );
    }
    outliers
}

/// The reasons of one run's own events: the phase problems that fail it
/// (returned), and `no_visible_text` (into `reasons`), for a server run
/// whose tokens carried no text.
fn run_phase_reasons(
    events: &EventColumns,
    evs: &[usize],
    run: &RunRow,
    server: bool,
    reasons: &mut Vec<String>,
) -> Vec<String> {
    if !server {
        return phase_problems(events, evs, true, run.gen_tokens_produced.saturating_sub(1));
    }
    let chunks = evs
        .iter()
        .filter(|i| events.phase(**i) == Phase::Decode)
        .count() as u32;
    let saw_text = evs.iter().any(|i| events.phase(*i) == Phase::Ttft);
    let e2e_tokens: Vec<u32> = evs
        .iter()
        .filter(|i| events.phase(**i) == Phase::E2e)
        .map(|i| events.tokens[*i])
        .collect();
    if !saw_text && chunks == 0 && matches!(e2e_tokens[..], [t] if t > 0) {
        // The server generated tokens that carried no visible text: end to
        // end and the server's counts stand, the client's TTFT and decode
        // gaps do not exist.
        reasons.push("no_visible_text".into());
        Vec::new()
    } else {
        phase_problems(events, evs, false, chunks)
    }
}

/// Fields where what ran differs from what was requested.
fn attribution_drift(m: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    // A provider list that fell back (CUDA requested, CPU ran) is drift even
    // where the device label happens to agree.
    if let Some(p) = &m.actual.providers
        && p.requested.first() != Some(&p.ran_on)
    {
        out.push("execution_provider".to_string());
    }
    // A compiled path must show that it compiled (the seed's
    // "compiler-real"): no evidence, or a graph that ran as exported, is a
    // compiled label on an uncompiled run.
    if m.requested.compiled.is_some() && !m.actual.compiler.as_ref().is_some_and(|c| c.real) {
        out.push("compiler".to_string());
    }
    if m.requested.device != m.actual.device {
        out.push("device".to_string());
    }
    if m.requested.dtype != m.actual.dtype {
        out.push("dtype".to_string());
    }
    if m.requested.threads != m.actual.threads {
        out.push("threads".to_string());
    }
    out
}

/// The phases of one run: prefill (optional for servers, which may not
/// report it), ttft, decode steps with indices 1..=`decode_steps`, e2e, in
/// that order. In process a run has one decode step per generated token
/// after the first; a server run one per chunk after the first (a chunk may
/// carry more than one token, so there the count is the events').
fn phase_problems(
    events: &EventColumns,
    rows: &[usize],
    prefill_required: bool,
    decode_steps: u32,
) -> Vec<String> {
    let mut reasons = Vec::new();
    let phases: Vec<Phase> = rows.iter().map(|i| events.phase(*i)).collect();
    for (required, optional) in [
        (Phase::Prefill, !prefill_required),
        (Phase::Ttft, false),
        (Phase::E2e, false),
    ] {
        match phases.iter().filter(|p| **p == required).count() {
            1 => {}
            0 if optional => {}
            0 => reasons.push(format!("missing_phase:{}", required.name())),
            _ => reasons.push(format!("duplicate_phase:{}", required.name())),
        }
    }
    let decode_indices = rows
        .iter()
        .filter(|i| events.phase(**i) == Phase::Decode)
        .filter_map(|i| events.token_index(*i));
    if !decode_indices.eq(1..=decode_steps) {
        reasons.push("decode_steps_mismatch".into());
    }
    let body: Vec<Phase> = phases
        .iter()
        .copied()
        .filter(|p| *p != Phase::Prefill)
        .collect();
    let order_ok = (!prefill_required || phases.first() == Some(&Phase::Prefill))
        && body.first() == Some(&Phase::Ttft)
        && body.last() == Some(&Phase::E2e);
    if reasons.is_empty() && !order_ok {
        reasons.push("phase_order".into());
    }
    reasons
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use assay_measure::harness::Attribution;
    use assay_measure::stage::Requested;
    use assay_measure::{BackendKind, Boundary, Scenario};
    use assay_model::decl::{Arch, SyntheticArch};

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
            },
            requested: Requested {
                kind: BackendKind::Simulated,
                device: "cpu".into(),
                dtype: "f32".into(),
                threads: 1,
                compiled: None,
            },
            actual: Attribution::plain("cpu", "f32", 1, "test", "0"),
            model_info: Some(arch.info("m")),
            weights: None,
            started_unix_ms: None,
            energy: None,
            environment: None,
            assay_version: "0".into(),
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
}
