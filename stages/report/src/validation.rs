//! Validation summary: run verdicts, failed checks, outliers (flagged, kept), the degraded or failed runs excluded from aggregates, monotonicity exceptions (AH.3) and in-process SLO attainment (Q.1).

use std::collections::BTreeMap;

use crate::document::{Block, f, header, sig};
use crate::{Out, Report, source};
use assay_analysis::validate::{self, slo::SloRow};
use assay_core::domain::ValidationCheck;
use assay_core::inputs::find_input;
use assay_core::stage::StageError;
use assay_core::tables;

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
    // The total the paragraph opens with (issue 15: every number a claim).
    out.claim(
        "validation/runs".into(),
        format!("{} runs validated (warmup included)", rep.validation.len()),
        rep.validation.len() as f64,
        "runs",
        &rep.evidence,
        source(
            rep.validation_in,
            (0..rep.validation.len() as u32).collect(),
        ),
    );
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
    monotonicity(rep, out)?;
    cost_monotonicity(rep, out)?;
    service_levels(rep, out)?;
    injected_faults(rep, out);
    Ok(())
}

/// Appendix AH.3: how many cells were compared along prompt and generation
/// length, and how many carry an exception (their failed checks are in the
/// table above). Nothing is shown where no two cells of one configuration
/// differ in only one of the two lengths.
fn monotonicity(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    let monotonic = |c: &validate::CheckResult| {
        matches!(
            c.check(),
            Some(ValidationCheck::MonotonicPrompt | ValidationCheck::MonotonicGen)
        )
    };
    let compared: Vec<u32> = (0..rep.checks.checks.len() as u32)
        .filter(|i| monotonic(&rep.checks.checks[*i as usize]))
        .collect();
    if compared.is_empty() {
        return Ok(());
    }
    let failed: Vec<u32> = compared
        .iter()
        .copied()
        .filter(|i| !rep.checks.checks[*i as usize].passed)
        .collect();
    let cells = |rows: &[u32]| {
        rows.iter()
            .map(|i| rep.checks.checks[*i as usize].cell.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    let (n_compared, n_failed) = (cells(&compared), cells(&failed));
    let checks_in = find_input(rep.inputs, validate::output::CHECKS)?;
    out.claim(
        "validation/monotonicity_cells_compared".into(),
        format!("{n_compared} cells compared along prompt or generation length (Appendix AH.3)"),
        n_compared as f64,
        "cells",
        &rep.evidence,
        source(checks_in, compared.clone()),
    );
    out.claim(
        "validation/monotonicity_exceptions".into(),
        format!(
            "{n_failed} of {n_compared} cells compared along prompt or generation length have a latency that falls as the length grows"
        ),
        n_failed as f64,
        "cells",
        &rep.evidence,
        source(checks_in, if failed.is_empty() { compared } else { failed }),
    );
    out.doc.push(Block::Heading(3, "Monotonicity".into()));
    out.doc.push(Block::Para(format!(
        "Latency must not fall as the prompt grows (prefill, TTFT) or as the generation grows \
         (end to end, summed decode) for one backend, model and batch (Appendix AH.3). Cells are \
         compared pairwise on the medians of their steady ok runs; an exception needs the longer \
         scenario's 95% interval wholly below the shorter one's, so noise alone never makes one. \
         {n_failed} of {n_compared} compared cells have an exception{}",
        if n_failed == 0 {
            ".".to_string()
        } else {
            " (`non_monotonic:prompt` or `non_monotonic:gen` in the failed checks above). \
             Their runs are flagged by these checks, not excluded: one of each pair is suspect \
             without the data saying which, so a decision that rests on them needs the exception \
             explained first."
                .to_string()
        }
    )));
    Ok(())
}

/// Appendix AI.4: the cost stage's monotonicity and pricing tier checks
/// (only with the spec's `cost`).
fn cost_monotonicity(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    let Some(checks_in) = rep
        .inputs
        .iter()
        .find(|i| i.name == assay_analysis::cost::output::CHECKS)
    else {
        return Ok(());
    };
    let checks: validate::Checks = tables::read_json(rep.ctx, checks_in)?;
    let all: Vec<u32> = (0..checks.checks.len() as u32).collect();
    let failed: Vec<u32> = all
        .iter()
        .copied()
        .filter(|i| !checks.checks[*i as usize].passed)
        .collect();
    let cells = |rows: &[u32]| {
        rows.iter()
            .map(|i| checks.checks[*i as usize].cell.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    let (n_cells, n_failed) = (cells(&all), cells(&failed));
    out.claim(
        "validation/cost_cells_checked".into(),
        format!(
            "{n_cells} priced cells checked for cost monotonicity and pricing tiers (Appendix AI.4)"
        ),
        n_cells as f64,
        "cells",
        &rep.evidence,
        source(checks_in, all.clone()),
    );
    out.claim(
        "validation/cost_monotonicity_exceptions".into(),
        format!(
            "{n_failed} of {n_cells} priced cells fail cost monotonicity or pricing tier validation"
        ),
        n_failed as f64,
        "cells",
        &rep.evidence,
        source(
            checks_in,
            if failed.is_empty() {
                all
            } else {
                failed.clone()
            },
        ),
    );
    out.doc.push(Block::Heading(3, "Cost monotonicity".into()));
    out.doc.push(Block::Para(format!(
        "Cost per token is derived from throughput and price (Appendix AI.4): at one tier and phase \
         more throughput never costs more per token, a dearer tier never gives a cheaper token, and \
         on decode a longer context (prompt or generation) never gives a cheaper token for one \
         backend, model and batch (judged, as latency is, on disjoint 95% intervals). \
         {n_failed} of {n_cells} priced cells fail a check{}",
        if n_failed == 0 { "." } else { ":" }
    )));
    if !failed.is_empty() {
        out.doc.push(Block::Table(
            header(&["cell", "check", "detail"]),
            failed
                .iter()
                .map(|i| {
                    let c = &checks.checks[*i as usize];
                    vec![c.cell.clone(), c.check.clone(), c.detail.clone()]
                })
                .collect(),
        ));
    }
    Ok(())
}

/// Appendix Q.1: each judged cell's share of steady ok runs meeting every
/// in-process SLO limit, from validate's `slo` table (only with the spec's
/// `slo`).
fn service_levels(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    let Some(slo_in) = rep.inputs.iter().find(|i| i.name == validate::output::SLO) else {
        return Ok(());
    };
    let rows: Vec<SloRow> = tables::read_rows(rep.ctx, slo_in)?;
    out.doc
        .push(Block::Heading(3, "Service levels (in process)".into()));
    if rows.is_empty() {
        out.doc.push(Block::Para(
            "The spec sets in-process SLOs, but no cell outside a load profile has a limit to judge."
                .into(),
        ));
        return Ok(());
    }
    let passed: Vec<u32> = (0..rows.len() as u32)
        .filter(|i| rows[*i as usize].passed)
        .collect();
    out.claim(
        "validation/slo_cells_judged".into(),
        format!("{} cells judged against an in-process SLO", rows.len()),
        rows.len() as f64,
        "cells",
        &rep.evidence,
        source(slo_in, (0..rows.len() as u32).collect()),
    );
    out.claim(
        "validation/slo_cells_met".into(),
        format!(
            "{} of {} cells judged against an in-process SLO meet it",
            passed.len(),
            rows.len()
        ),
        passed.len() as f64,
        "cells",
        &rep.evidence,
        source(slo_in, (0..rows.len() as u32).collect()),
    );
    let mut table = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        if let Some(a) = r.attainment {
            out.claim(
                format!("validation/slo/{}/attainment", r.cell),
                format!(
                    "{} of {} steady ok runs of {} meet its SLO (required {})",
                    r.met_all, r.runs, r.cell, r.required
                ),
                a,
                "share",
                &r.evidence,
                source(slo_in, vec![i as u32]),
            );
        }
        let limit = |l: Option<f64>, met: u32, q: Option<f64>| match l {
            None => "-".to_string(),
            Some(l) => format!(
                "<= {} ms: {met} of {} met, p{} {}",
                sig(l, 4),
                r.runs,
                (r.required * 1000.0).round() / 10.0,
                q.map_or("n/a".to_string(), |q| format!("{} ms", sig(q, 4)))
            ),
        };
        table.push(vec![
            r.cell.clone(),
            limit(r.ttft_ms_limit, r.met_ttft, r.ttft_ms_q),
            limit(r.tpot_ms_limit, r.met_tpot, r.tpot_ms_q),
            limit(r.e2e_ms_limit, r.met_e2e, r.e2e_ms_q),
            format!("{} of {}", r.met_all, r.runs),
            r.attainment.map_or("n/a".to_string(), |a| f(a, 3)),
            f(r.required, 3),
            if r.passed { "met" } else { "missed" }.to_string(),
        ]);
    }
    out.doc.push(Block::Para(format!(
        "Every steady ok run is judged against its scenario's limits (the spec's `slo`, Appendix Q.1): \
         TTFT, TPOT (`(e2e - ttft) / (generated tokens - 1)`) and end to end. A cell meets its SLO when \
         the share of runs meeting every limit reaches the required attainment; `p` is the quantile \
         of each metric at that share (Q.1 states its SLOs at p95). {} of {} cells meet their SLO. A missed SLO judges \
         the configuration, not the measurement: the runs stay in every aggregate.",
        passed.len(),
        rows.len()
    )));
    out.doc.push(Block::Table(
        header(&[
            "cell",
            "ttft",
            "tpot",
            "e2e",
            "runs meeting all",
            "attainment",
            "required",
            "SLO",
        ]),
        table,
    ));
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
            // A fault that never happened is neither caught nor missed: a
            // slowed scenario in another scenario's cell, a dead sensor
            // without `energy:` (no sensor to kill).
            if let Some(other) = slowed_elsewhere(fault, &m.scenario.name) {
                table.push(vec![
                    m.cell.clone(),
                    fault.clone(),
                    format!(
                        "not exercised: this cell runs scenario {}, not {other}",
                        m.scenario.name
                    ),
                ]);
                continue;
            }
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
        "validation/injected_faults_exercised".into(),
        format!("{injected} faults injected on purpose and exercised (simulated `inject`)"),
        f64::from(injected),
        "faults",
        &rep.evidence,
        source(rep.validation_in, caught_rows.clone()),
    );
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

/// `slow_scenario` slows one scenario's cells only: in a cell of another
/// scenario the fault never happened. The scenario it slows, if not this.
fn slowed_elsewhere(fault: &str, scenario: &str) -> Option<String> {
    let rest = fault.strip_prefix("slow_scenario: every forward pass of scenario ")?;
    let slowed = rest.split(' ').next()?;
    (slowed != scenario).then(|| slowed.to_string())
}

/// What caught one injected fault in its cell (None: nothing did), and the
/// validation rows that show it. Each fault has the signal a real one
/// leaves: a short run its reason, drift its field's reason, a dead sensor
/// the energy coverage check.
fn caught_by(rep: &Report<'_>, cell: &str, fault: &str) -> (Option<String>, Vec<u32>) {
    let reason = match fault.split(':').next() {
        Some("short_run") => "short_generation",
        Some("attribution_drift") => "attribution_drift:",
        Some("slow_scenario") => {
            let check = rep.checks.checks.iter().find(|c| {
                c.cell == cell
                    && !c.passed
                    && matches!(
                        c.check(),
                        Some(ValidationCheck::MonotonicPrompt | ValidationCheck::MonotonicGen)
                    )
            });
            return (
                check.map(|c| {
                    let reasons: std::collections::BTreeSet<&str> = c
                        .detail
                        .split("; ")
                        .filter_map(|d| d.split(' ').next())
                        .map(|r| r.trim_end_matches(':'))
                        .collect();
                    format!(
                        "{}: {}",
                        c.check,
                        reasons.into_iter().collect::<Vec<_>>().join(", ")
                    )
                }),
                Vec::new(),
            );
        }
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
