//! validate: per-run verdicts (ok / degraded / failed) with reasons as data.
//!
//! Layout: `cell` (the verdicts and checks of one cell), `phases` (the
//! phase sequence of one run), `boundary` (the boundary shared by every
//! cell), `invariance` (greedy outputs compared across backends),
//! `monotonic` (latency along prompt and generation length, AH.3) and `slo`
//! (in-process service levels, Q.1).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use assay_core::domain::ValidationCheck;
use assay_core::inputs::cell_inputs;
use assay_core::stage::{Input, Outputs, Stage, StageContext, StageError};
use assay_core::tables::{self, OutputRow, RunRow};
use assay_measure::Manifest;

mod boundary;
mod cell;
mod energy;
mod invariance;
pub mod monotonic;
mod phases;
mod sensor;
pub mod slo;
#[cfg(test)]
pub(crate) mod tests;

pub use boundary::mark_boundary_mismatch;
// The tests (tests.rs) see these through `super::*`.
#[cfg(test)]
use assay_core::tables::{EnergyRow, EventRow};
pub use cell::validate_cell;
#[cfg(test)]
use energy::energy_check;

// 6: monotonicity checks (Appendix AH.3) in `checks`.
pub const VALIDATE_VERSION: u32 = 6;

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
    /// The spec's energy gate (`energy.min_samples`, `energy.min_intervals`):
    /// gate each cell's power samples into an `energy` table
    /// (`validate/energy.rs`). None when the spec asks for no energy.
    pub energy: Option<assay_measure::energy::Gate>,
    /// The spec's `slo` (Appendix Q.1): judge every steady ok run into an
    /// `slo` table. None when the spec sets no in-process SLO.
    pub slo: Option<slo::SloParams>,
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
    /// Only when the spec has `slo`: one row per judged cell
    /// (`slo::SloRow`).
    pub const SLO: &str = "slo";
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
        if self.energy.is_some() {
            names.push(output::ENERGY);
        }
        if self.slo.is_some() {
            names.push(output::SLO);
        }
        names
    }

    fn params(&self) -> Result<Value, StageError> {
        let mut params =
            serde_json::to_value(&self.params).map_err(|e| StageError::params("validate", e))?;
        // Only when asked for, so specs without energy keep their keys.
        if let Some(gate) = self.energy {
            params["energy_min_samples"] = json!(gate.min_samples);
            params["energy_min_intervals"] = json!(gate.min_intervals);
            params["energy_gate_revision"] = json!(energy::ENERGY_GATE_REVISION);
        }
        // Only when given, so specs without one keep their keys.
        if let Some(slo) = &self.slo {
            params["slo"] =
                serde_json::to_value(slo).map_err(|e| StageError::params("validate", e))?;
        }
        Ok(params)
    }

    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError> {
        let mut rows = Vec::new();
        let mut checks = Vec::new();
        let mut energy_rows = Vec::new();
        let mut boundaries = Vec::new();
        let mut generated = Vec::new();
        let mut shapes = Vec::new();
        let mut latencies = Vec::new();
        for cell in cell_inputs(inputs)? {
            ctx.check_cancel()?;
            let events = tables::read_event_columns(ctx, cell.events)?;
            let runs_input = cell.runs.ok_or_else(|| {
                StageError::Failed(format!("measure node {} has no runs output", cell.node))
            })?;
            let runs: Vec<RunRow> = tables::read_rows(ctx, runs_input)?;
            let manifest: Manifest = tables::read_json(ctx, cell.manifest)?;
            boundaries.push((manifest.cell.clone(), manifest.boundary.clone()));
            shapes.push(monotonic::CellRuns::new(&manifest, &events));
            if self.slo.is_some() {
                latencies.push(slo::CellLatency::new(&manifest, &events, &runs));
            }
            let (mut cell_rows, mut cell_checks) =
                validate_cell(&manifest, &events, &runs, &self.params);
            if let Some(outputs) = cell.outputs {
                let rows: Vec<OutputRow> = tables::read_rows(ctx, outputs)?;
                generated.push(invariance::CellOutputs::new(&manifest, &runs, rows));
            }
            rows.append(&mut cell_rows);
            checks.append(&mut cell_checks);
            if let Some(gate) = self.energy {
                let (mut cell_energy, check) = energy::gate_cell(ctx, &cell, &manifest, gate)?;
                checks.push(check);
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
        // Both read the final verdicts: only steady ok runs count.
        monotonic::check_monotonicity(&shapes, &rows, ctx.seed(), &mut checks);
        let mut out = Outputs::new();
        if let Some(params) = &self.slo {
            let judged = slo::judge(params, &latencies, &rows, &mut checks);
            out.insert(output::SLO.into(), tables::to_parquet(&judged)?);
        }
        if self.energy.is_some() {
            out.insert(output::ENERGY.into(), tables::to_parquet(&energy_rows)?);
        }
        out.insert(output::VALIDATION.into(), tables::to_parquet(&rows)?);
        out.insert(output::CHECKS.into(), tables::to_json(&Checks { checks })?);
        Ok(out)
    }
}
