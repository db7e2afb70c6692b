//! Energy gating inside validate (seed TR122; Appendices BA.1, AI.3, S.3,
//! AQ.4): every window of a cell, the per-run windows and the cell's macro
//! window, gated from the stored power samples by `assay_measure::energy::gate`,
//! and one `energy_coverage` check per cell. Everything here derives from
//! the stored samples, so the thresholds are validate's params only:
//! changing them re-gates without measuring again.

use assay_core::domain::{EnergyStatus, ValidationCheck};
use assay_core::inputs::CellInputs;
use assay_core::stage::{StageContext, StageError};
use assay_core::tables::{self, EnergyRow, EventRow, PowerRow};
use assay_measure::Manifest;
use assay_measure::energy::{CELL_WINDOW, Gate, gate};

use super::CheckResult;
use super::sensor;

/// Revision of energy validation, in validate's params (not its stage
/// version) so that specs without energy, whose outputs it cannot change,
/// keep their keys. 2: a sensor that went silent while the cell ran fails
/// the coverage check. 3: the seed's gate (duration against the polling
/// interval, readings inside the window, coverage), the cell's macro
/// window, and the idle baseline's variance with an interval on every
/// figure.
pub(super) const ENERGY_GATE_REVISION: u32 = 3;

/// Gate one cell's windows and judge its coverage.
pub(super) fn gate_cell(
    ctx: &StageContext<'_>,
    cell: &CellInputs<'_>,
    manifest: &Manifest,
    thresholds: Gate,
) -> Result<(Vec<EnergyRow>, CheckResult), StageError> {
    let power: Vec<PowerRow> = match cell.power {
        Some(p) => tables::read_rows(ctx, p)?,
        None => Vec::new(),
    };
    let poll_ms = manifest.energy.as_ref().map_or(1, |e| e.poll_ms);
    // Gating takes whole rows, start times included: only specs that ask
    // for energy decode them.
    let events: Vec<EventRow> = tables::read_events(ctx, cell.events)?;
    let rows = gate(&events, &power, thresholds, poll_ms);
    let dead = sensor::sensor_dead(&events, &power, poll_ms);
    let check = energy_check(manifest, &rows, thresholds.min_samples, dead);
    Ok((rows, check))
}

/// TR122: how many of the cell's steady per-run windows are attributable,
/// whether its macro window is, and whether a sensor that was there died
/// (`dead`, from `sensor_dead`). The check passes when some steady window
/// or the macro window is attributable and the sensor lived.
pub(super) fn energy_check(
    manifest: &Manifest,
    rows: &[EnergyRow],
    min: u32,
    dead: Option<String>,
) -> CheckResult {
    // Steady windows only: warmup windows never feed an aggregate.
    let steady: Vec<&EnergyRow> = rows
        .iter()
        .filter(|r| !r.warmup && r.phase != CELL_WINDOW)
        .collect();
    let valid = steady
        .iter()
        .filter(|r| r.status() == Some(EnergyStatus::Valid))
        .count();
    let cell = rows.iter().find(|r| r.phase == CELL_WINDOW);
    let cell_valid = cell.is_some_and(|r| r.status() == Some(EnergyStatus::Valid));
    let source = manifest.energy.as_ref();
    let detail = match source.and_then(|s| s.no_sensor.as_deref()) {
        Some(reason) => format!("no energy: {reason}"),
        None => format!(
            "{}{}{valid} of {} steady windows attributable (>= {min} samples at {} ms polling, sensor {})",
            dead.as_ref()
                .map_or(String::new(), |why| format!("{why}; ")),
            cell.map_or(String::new(), |c| format!(
                "cell window over {} steady runs {}; ",
                c.runs,
                match &c.reason {
                    Some(why) => format!("no_data ({why})"),
                    None => "attributable".into(),
                }
            )),
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
        passed: (valid > 0 || cell_valid) && dead.is_none(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use assay_measure::energy::EnergySource;

    fn manifest() -> Manifest {
        let mut m = crate::validate::tests::manifest(0, 1);
        m.energy = Some(EnergySource {
            sensor: "simulated".into(),
            no_sensor: None,
            poll_ms: 100,
            idle_ms: 1000,
            idle_samples: 10,
            samples: 7,
        });
        m
    }

    fn window(phase: &str, status: &str, reason: Option<&str>) -> EnergyRow {
        EnergyRow {
            cell: "c".into(),
            phase: phase.into(),
            runs: if phase == CELL_WINDOW { 20 } else { 1 },
            status: status.into(),
            reason: reason.map(str::to_string),
            ..Default::default()
        }
    }

    /// AQ.4: energy numbers are valid for macro windows; a cell whose runs
    /// are each too short still has attributable energy through its macro
    /// window, and the check says so.
    #[test]
    fn a_valid_macro_window_passes_coverage_where_every_event_is_too_short() {
        let rows = vec![
            window("e2e", "no_data", Some("too_short")),
            window("prefill", "no_data", Some("too_short")),
            window(CELL_WINDOW, "valid", None),
        ];
        let c = energy_check(&manifest(), &rows, 1, None);
        assert!(c.passed, "{c:?}");
        assert_eq!(
            c.detail,
            "cell window over 20 steady runs attributable; 0 of 2 steady windows attributable \
             (>= 1 samples at 100 ms polling, sensor simulated)"
        );
        let rows = vec![
            window("e2e", "no_data", Some("too_short")),
            window(CELL_WINDOW, "no_data", Some("too_few_samples")),
        ];
        let c = energy_check(&manifest(), &rows, 1, None);
        assert!(!c.passed);
        assert!(
            c.detail
                .starts_with("cell window over 20 steady runs no_data (too_few_samples); "),
            "{}",
            c.detail
        );
    }
}
