//! The measurement boundary every compared cell must share.

use std::collections::BTreeMap;

use assay_core::domain::{RunStatus, ValidationCheck};
use assay_core::tables::ValidationRow;
use assay_measure::Boundary;

use super::CheckResult;

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
            if row.is_ok() {
                row.status = RunStatus::Degraded.as_str().into();
            }
        }
        checks.push(CheckResult {
            cell: cell.clone(),
            check: ValidationCheck::Boundary.as_str().into(),
            passed: false,
            detail: format!(
                "measured under {}, the other cells under {reference}",
                key(b)
            ),
        });
    }
}
