//! Validation summary: run verdicts, failed checks, outliers (flagged, kept) and the degraded or failed runs excluded from aggregates.

use std::collections::BTreeMap;

use crate::document::{Block, header};
use crate::{Out, Report, source};
use assay_core::domain::ValidationCheck;
use assay_core::stage::StageError;

pub fn validation(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    // Validation.
    out.doc.push(Block::Heading(2, "Validation".into()));
    let mut by_status: BTreeMap<&str, u32> = BTreeMap::new();
    for v in &rep.validation {
        *by_status.entry(v.status.as_str()).or_default() += 1;
    }
    for status in ["ok", "degraded", "failed"] {
        let rows: Vec<u32> = (0..rep.validation.len() as u32)
            .filter(|i| rep.validation[*i as usize].status == status)
            .collect();
        out.claim(
            format!("validation/{status}_runs"),
            format!("{} runs validated {status}", rows.len()),
            rows.len() as f64,
            "runs",
            &rep.evidence,
            source(rep.validation_in, rows),
        );
    }
    out.doc.push(Block::Para(format!(
        "{} runs: {} ok, {} degraded, {} failed. Warmup, degraded and failed runs are excluded from every steady-state aggregate below; model load is reported on its own.",
        rep.validation.len(),
        by_status.get("ok").unwrap_or(&0),
        by_status.get("degraded").unwrap_or(&0),
        by_status.get("failed").unwrap_or(&0)
    )));
    let failed_checks: Vec<Vec<String>> = rep
        .checks
        .checks
        .iter()
        .filter(|c| !c.passed && c.check() != Some(ValidationCheck::Evidence))
        .map(|c| vec![c.cell.clone(), c.check.clone(), c.detail.clone()])
        .collect();
    if failed_checks.is_empty() {
        out.doc.push(Block::Para("All checks passed (phases complete and ordered, fixed-length decode, repetitions, warmup labelling, attribution).".into()));
    } else {
        out.doc.push(Block::Table(
            header(&["cell", "check", "detail"]),
            failed_checks,
        ));
    }
    let flagged: Vec<u32> = (0..rep.validation.len() as u32)
        .filter(|i| !rep.validation[*i as usize].flags.is_empty())
        .collect();
    out.claim(
        "validation/outlier_runs".into(),
        format!(
            "{} steady runs flagged as outliers (kept, not dropped)",
            flagged.len()
        ),
        flagged.len() as f64,
        "runs",
        &rep.evidence,
        source(rep.validation_in, flagged.clone()),
    );
    if !flagged.is_empty() {
        out.doc.push(Block::Para(format!(
            "{} runs flagged as outliers (end-to-end latency beyond k scaled MADs of their cell's median): \
             flagged, kept in the aggregates; the tails below include them.",
            flagged.len()
        )));
        out.doc.push(Block::Table(
            header(&["cell", "run", "flags"]),
            flagged
                .iter()
                .map(|i| {
                    let v = &rep.validation[*i as usize];
                    vec![v.cell.clone(), v.repetition.to_string(), v.flags.clone()]
                })
                .collect(),
        ));
    }
    let degraded: Vec<Vec<String>> = rep
        .validation
        .iter()
        .filter(|v| !v.is_ok())
        .map(|v| {
            vec![
                v.cell.clone(),
                v.repetition.to_string(),
                v.status.clone(),
                v.reasons.clone(),
            ]
        })
        .collect();
    if !degraded.is_empty() {
        out.doc.push(Block::Table(
            header(&["cell", "run", "status", "reasons"]),
            degraded,
        ));
    }

    Ok(())
}
