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
    injected_faults(rep, out);
    Ok(())
}

/// Faults the spec injected on purpose (simulated `inject`, recorded in the
/// manifests), each with what caught it: the pipeline's own trust test
/// (TR118). Nothing is shown where nothing was injected.
fn injected_faults(rep: &Report<'_>, out: &mut Out) {
    let mut table = Vec::new();
    let mut caught_rows = Vec::new();
    let (mut injected, mut caught) = (0, 0);
    for m in rep
        .manifests
        .iter()
        .filter(|m| !m.requested.injected.is_empty())
    {
        for fault in &m.requested.injected {
            // Without `energy:` there is no sensor to kill: a fault that
            // never happened is neither caught nor missed.
            if fault.starts_with("dead_sensor") && rep.p.energy.is_none() {
                table.push(vec![
                    m.cell.clone(),
                    fault.clone(),
                    "not exercised: the spec has no `energy` section, so no sensor to fail".into(),
                ]);
                continue;
            }
            injected += 1;
            let (verdict, rows) = caught_by(rep, &m.cell, fault);
            if verdict.is_some() {
                caught += 1;
            }
            caught_rows.extend(rows);
            table.push(vec![
                m.cell.clone(),
                fault.clone(),
                verdict.unwrap_or_else(|| "NOT CAUGHT".into()),
            ]);
        }
    }
    if table.is_empty() {
        return;
    }
    caught_rows.sort_unstable();
    caught_rows.dedup();
    out.claim(
        "validation/injected_faults_caught".into(),
        format!("{caught} of {injected} faults injected on purpose caught by validation"),
        f64::from(caught),
        "faults",
        &rep.evidence,
        source(rep.validation_in, caught_rows),
    );
    out.doc.push(Block::Para(format!(
        "Faults injected on purpose (simulated backend, `inject`; they are not real faults): \
         {caught} of {injected} caught by validation."
    )));
    out.doc.push(Block::Table(
        header(&["cell", "injected fault", "caught by"]),
        table,
    ));
}

/// What caught one injected fault in its cell (None: nothing did), and the
/// validation rows that show it. Each fault has the signal a real one
/// leaves: a short run its reason, drift its field's reason, a dead sensor
/// the energy coverage check.
fn caught_by(rep: &Report<'_>, cell: &str, fault: &str) -> (Option<String>, Vec<u32>) {
    let reason = match fault.split(':').next() {
        Some("short_run") => "short_generation",
        Some("attribution_drift") => "attribution_drift:",
        Some("dead_sensor") => {
            let check = rep.checks.checks.iter().find(|c| {
                c.cell == cell
                    && !c.passed
                    && c.check() == Some(ValidationCheck::EnergyCoverage)
                    && c.detail.starts_with("sensor_dead")
            });
            return (
                check.map(|c| format!("{}: {}", c.check, c.detail)),
                Vec::new(),
            );
        }
        _ => return (None, Vec::new()),
    };
    let rows: Vec<u32> = (0..rep.validation.len() as u32)
        .filter(|i| {
            let v = &rep.validation[*i as usize];
            v.cell == cell && !v.is_ok() && v.reasons.split(';').any(|r| r.starts_with(reason))
        })
        .collect();
    let mut reasons: Vec<&str> = rows
        .iter()
        .flat_map(|i| rep.validation[*i as usize].reasons.split(';'))
        .filter(|r| r.starts_with(reason))
        .collect();
    reasons.sort_unstable();
    reasons.dedup();
    let verdict = (!rows.is_empty())
        .then(|| format!("{} ({} runs degraded)", reasons.join(", "), rows.len()));
    (verdict, rows)
}
