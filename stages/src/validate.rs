//! validate: per-run verdicts (ok / degraded / failed) with reasons as data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::measure::Manifest;
use crate::stage::{Input, Outputs, Stage, StageContext, StageError};
use crate::tables::{self, EventRow, RunRow, ValidationRow};

pub const VALIDATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Default)]
pub struct ValidateStage;

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

/// The three artifacts of one measure node, found among a stage's inputs.
pub struct CellInputs<'a> {
    pub node: &'a str,
    pub events: &'a Input,
    /// Only wired to stages that need it.
    pub runs: Option<&'a Input>,
    pub manifest: &'a Input,
}

/// Group measure outputs by producing node, in node-id order.
pub fn cell_inputs(inputs: &[Input]) -> Result<Vec<CellInputs<'_>>, StageError> {
    let mut by_node: BTreeMap<&str, BTreeMap<&str, &Input>> = BTreeMap::new();
    for input in inputs {
        if matches!(input.name.as_str(), "events" | "runs" | "manifest") {
            by_node
                .entry(input.node.as_str())
                .or_default()
                .insert(input.name.as_str(), input);
        }
    }
    by_node
        .into_iter()
        .map(|(node, m)| {
            let get = |name: &str| {
                m.get(name).copied().ok_or_else(|| {
                    StageError::Failed(format!("measure node {node} has no {name} output"))
                })
            };
            Ok(CellInputs {
                node,
                events: get("events")?,
                runs: m.get("runs").copied(),
                manifest: get("manifest")?,
            })
        })
        .collect()
}

pub fn find_input<'a>(inputs: &'a [Input], name: &str) -> Result<&'a Input, StageError> {
    inputs
        .iter()
        .find(|i| i.name == name)
        .ok_or_else(|| StageError::Failed(format!("missing input artifact {name}")))
}

impl Stage for ValidateStage {
    fn kind(&self) -> &'static str {
        "validate"
    }

    fn version(&self) -> u32 {
        VALIDATE_VERSION
    }

    fn params(&self) -> Value {
        json!({})
    }

    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError> {
        let mut rows = Vec::new();
        let mut checks = Vec::new();
        for cell in cell_inputs(inputs)? {
            ctx.check_cancel()?;
            let events: Vec<EventRow> = tables::read_rows(ctx, cell.events)?;
            let runs_input = cell.runs.ok_or_else(|| {
                StageError::Failed(format!("measure node {} has no runs output", cell.node))
            })?;
            let runs: Vec<RunRow> = tables::read_rows(ctx, runs_input)?;
            let manifest: Manifest = tables::read_json(ctx, cell.manifest)?;
            let (mut cell_rows, mut cell_checks) = validate_cell(&manifest, &events, &runs);
            rows.append(&mut cell_rows);
            checks.append(&mut cell_checks);
        }
        rows.sort_by(|a, b| (&a.cell, a.repetition).cmp(&(&b.cell, b.repetition)));
        let mut out = Outputs::new();
        out.insert("validation".into(), tables::to_parquet(&rows)?);
        out.insert("checks".into(), tables::to_json(&Checks { checks })?);
        Ok(out)
    }
}

/// Verdicts for every run of one cell, and the cell's checks.
pub fn validate_cell(
    manifest: &Manifest,
    events: &[EventRow],
    runs: &[RunRow],
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
    let mut cell_reasons: Vec<String> = Vec::new();
    let loads = events.iter().filter(|e| e.phase == "load").count();
    check(
        "model_load_timed",
        loads == 1,
        format!("{loads} load events"),
    );
    if loads != 1 {
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
    let wanted = manifest.boundary.repetitions as usize;
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
        warm == manifest.boundary.warmup_runs as usize,
        format!(
            "{warm} warmup runs of {} declared",
            manifest.boundary.warmup_runs
        ),
    );

    let mut by_run: BTreeMap<u32, Vec<&EventRow>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.phase != "load") {
        by_run.entry(e.repetition).or_default().push(e);
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
        let phase_reasons = phase_problems(evs, run);
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

/// Fields where what ran differs from what was requested.
fn attribution_drift(m: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
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

/// Every run must have, in order: prefill, ttft, one decode per generated
/// token after the first (indices 1..n), e2e.
fn phase_problems(events: &[&EventRow], run: &RunRow) -> Vec<String> {
    let mut reasons = Vec::new();
    let phases: Vec<&str> = events.iter().map(|e| e.phase.as_str()).collect();
    for required in ["prefill", "ttft", "e2e"] {
        match phases.iter().filter(|p| **p == required).count() {
            1 => {}
            0 => reasons.push(format!("missing_phase:{required}")),
            _ => reasons.push(format!("duplicate_phase:{required}")),
        }
    }
    let decode_indices: Vec<u32> = events
        .iter()
        .filter(|e| e.phase == "decode")
        .filter_map(|e| e.token_index)
        .collect();
    let expected: Vec<u32> = (1..run.gen_tokens_produced).collect();
    if decode_indices != expected {
        reasons.push("decode_steps_mismatch".into());
    }
    let order_ok = phases.first() == Some(&"prefill")
        && phases.get(1) == Some(&"ttft")
        && phases.last() == Some(&"e2e");
    if reasons.is_empty() && !order_ok {
        reasons.push("phase_order".into());
    }
    reasons
}
