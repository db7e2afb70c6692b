//! Boundary shifts as falsification tests (Appendix AD.4): a fit repeated
//! under another boundary (another scenario for the size fits: batch,
//! generation or prompt length shifted; another batch or prompt length for
//! the linear ones) either reproduces the relationship or it does not.

use std::collections::{BTreeMap, BTreeSet};

use assay_core::tables::FitRow;

/// The verdicts of `FitRow::shift`.
pub const HELD: &str = "held";
pub const MAGNITUDE_SHIFTED: &str = "magnitude shifted";
pub const FLIPPED: &str = "flipped";
pub const UNTESTABLE: &str = "untestable";

/// Groups the rows that are the same fit under different boundaries (all
/// but the boundary and its scenario equal), flags regime flips with a note
/// listing every boundary's regime, and writes each group's verdict.
pub(super) fn mark(rows: &mut [FitRow]) {
    type Key = (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
    );
    let mut by: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        by.entry((
            r.form.clone(),
            r.backend.clone(),
            r.model.clone(),
            r.family.clone(),
            r.series.clone(),
            r.y.clone(),
            r.x.clone(),
            r.terms.clone(),
        ))
        .or_default()
        .push(i);
    }
    for idx in by.values() {
        if idx.len() < 2 {
            continue;
        }
        let group: Vec<&FitRow> = idx.iter().map(|i| &rows[*i]).collect();
        let v = verdict(&group);
        let note = if v == FLIPPED {
            idx.iter()
                .map(|i| format!("{}: {}", rows[*i].boundary, rows[*i].regime))
                .collect::<Vec<_>>()
                .join("; ")
        } else {
            String::new()
        };
        for i in idx {
            rows[*i].shift = v.into();
            rows[*i].boundary_flip = v == FLIPPED;
            rows[*i].boundary_note = note.clone();
        }
    }
}

/// The falsification verdict over one fit's boundaries: the regimes must
/// agree (the slope's sign, or its being unidentifiable), and the slope
/// CIs must share a point for the magnitude to have held too. A group where
/// no boundary is identifiable tests nothing.
pub fn verdict(group: &[&FitRow]) -> &'static str {
    let regimes: BTreeSet<&str> = group.iter().map(|r| r.regime.as_str()).collect();
    if regimes.len() > 1 {
        return FLIPPED;
    }
    if group.iter().all(|r| !r.identifiable) {
        return UNTESTABLE;
    }
    let finite = group
        .iter()
        .all(|r| r.slope_ci_low.is_finite() && r.slope_ci_high.is_finite());
    if !finite {
        return UNTESTABLE;
    }
    let low = group
        .iter()
        .map(|r| r.slope_ci_low)
        .fold(f64::NEG_INFINITY, f64::max);
    let high = group
        .iter()
        .map(|r| r.slope_ci_high)
        .fold(f64::INFINITY, f64::min);
    if low <= high { HELD } else { MAGNITUDE_SHIFTED }
}
