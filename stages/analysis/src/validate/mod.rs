//! validate: per-run verdicts (ok / degraded / failed) with reasons as data.
//!
//! Layout: `cell` (the verdicts and checks of one cell), `phases` (the
//! phase sequence of one run), `boundary` (the boundary shared by every
//! cell) and `invariance` (greedy outputs compared across backends).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use assay_core::domain::{EnergyStatus, ValidationCheck};
use assay_core::inputs::cell_inputs;
use assay_core::stage::{Input, Outputs, Stage, StageContext, StageError};
use assay_core::tables::{self, EnergyRow, EventRow, OutputRow, PowerRow, RunRow};
use assay_measure::Manifest;
use assay_measure::energy;

mod boundary;
mod cell;
mod invariance;
mod phases;
mod sensor;
#[cfg(test)]
pub(crate) mod tests;

pub use boundary::mark_boundary_mismatch;
pub use cell::validate_cell;

pub const VALIDATE_VERSION: u32 = 5;

/// See `ValidateStage::params`.
const ENERGY_GATE_REVISION: u32 = 2;

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

impl CheckResult {
    /// The stored `check`; None for an unknown name.
    pub fn check(&self) -> Option<ValidationCheck> {
        ValidationCheck::parse(&self.check)
    }
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
            // Revision of energy validation (2: a sensor that went silent
            // while the cell ran fails the coverage check). In the params,
            // not the stage version, so that specs without energy, whose
            // outputs it cannot change, keep their keys.
            params["energy_gate_revision"] = json!(ENERGY_GATE_REVISION);
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
                let dead = sensor::sensor_dead(&events, &power, poll_ms);
                checks.push(energy_check(&manifest, &cell_energy, min, dead));
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

/// TR122: how many of the cell's energy windows are attributable, and
/// whether a sensor that was there died (`dead`, from `sensor_dead`).
fn energy_check(
    manifest: &Manifest,
    rows: &[EnergyRow],
    min: u32,
    dead: Option<String>,
) -> CheckResult {
    // Steady windows only: warmup windows never feed an aggregate.
    let steady: Vec<&EnergyRow> = rows.iter().filter(|r| !r.warmup).collect();
    let valid = steady
        .iter()
        .filter(|r| r.status() == Some(EnergyStatus::Valid))
        .count();
    let source = manifest.energy.as_ref();
    let detail = match source.and_then(|s| s.no_sensor.as_deref()) {
        Some(reason) => format!("no energy: {reason}"),
        None => format!(
            "{}{valid} of {} steady windows attributable (>= {min} samples at {} ms polling, sensor {})",
            dead.as_ref()
                .map_or(String::new(), |why| format!("{why}; ")),
            steady.len(),
            source.map_or(0, |s| s.poll_ms),
            source.map_or("none", |s| s.sensor.as_str())
        ),
    };
    CheckResult {
        cell: manifest.cell.clone(),
        check: ValidationCheck::EnergyCoverage.as_str().into(),
        // A sensor that died mid-cell may leave a few early windows
        // attributable; the cell's energy still is not.
        passed: valid > 0 && dead.is_none(),
        detail,
    }
}
