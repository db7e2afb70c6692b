//! Appendix T's risk register, read from the members' data: for each risk,
//! the signal the seed names, whether the program's data shows it, and
//! the mitigation. A risk no member can observe says so instead of
//! claiming it absent.

use super::sections::boundary_groups;
use super::{Member, ProgramData, ProgramOut, source};
use crate::document::{Block, header};

/// What the data says about one risk.
struct Finding {
    status: &'static str,
    evidence: String,
}

const PRESENT: &str = "signal present";
const ABSENT: &str = "no signal";
const UNOBSERVED: &str = "not observable here";

pub(super) fn register(p: &ProgramData<'_>, out: &mut ProgramOut) {
    out.doc
        .push(Block::Heading(2, "Risk register (Appendix T)".into()));
    let risks: [(&str, &str, Finding); 10] = [
        (
            "1. Label drift",
            "enforce compiler-real evidence and attribution checks (TR120)",
            reasons(p, out, "label_drift", |r| {
                r.starts_with("attribution_drift")
            }),
        ),
        (
            "2. Cold-start tail",
            "warm pools, pre-routing warmups",
            cold_start(p, out),
        ),
        (
            "3. Shape instability",
            "padding, dynamic compile, phase-specific compilation (TR120)",
            Finding {
                status: UNOBSERVED,
                evidence: "no member records recompile counters (they come with torch.compile)"
                    .into(),
            },
        ),
        (
            "4. Measurement boundary drift",
            "manifest enforcement, one boundary per comparison (TR118)",
            boundary_drift(p),
        ),
        (
            "5. Energy false precision",
            "energy gating (TR122)",
            energy(p),
        ),
        (
            "6. Overreliance on parameter count",
            "structural predictors and multivariate fits (TR121)",
            fits(p, out, "params_only", |m, i| {
                let r = &m.fit[i];
                r.x == "params" && (r.heterogeneous || !r.identifiable)
            }),
        ),
        (
            "7. Hidden kernel path changes",
            "`assay compare` against a stored baseline; kernel audits",
            Finding {
                status: UNOBSERVED,
                evidence: "one run shows no change over time: compare against a baseline".into(),
            },
        ),
        (
            "8. Cost misinterpretation",
            "explicit shadow-price labelling (TR119)",
            cost(p),
        ),
        (
            "9. Validation bypass",
            "pipeline enforcement: degraded runs never enter aggregates (TR118)",
            reasons(p, out, "excluded_runs", |r| !r.is_empty()),
        ),
        (
            "10. Overfitting small-n scaling fits",
            "fit gating and regime language (TR121)",
            fits(p, out, "ungated_fits", |m, i| {
                let r = &m.fit[i];
                !r.identifiable || (r.slope_ci_low < 0.0 && r.slope_ci_high > 0.0)
            }),
        ),
    ];
    let rows = risks
        .into_iter()
        .map(|(risk, mitigation, f)| {
            vec![
                risk.to_string(),
                f.status.to_string(),
                f.evidence,
                mitigation.to_string(),
            ]
        })
        .collect();
    out.doc.push(Block::Table(
        header(&["risk", "status", "evidence in this program", "mitigation"]),
        rows,
    ));
}

/// Runs whose validation reasons match `pred`, per member, each count a
/// claim on the validation rows.
fn reasons(
    p: &ProgramData<'_>,
    out: &mut ProgramOut,
    what: &str,
    pred: impl Fn(&str) -> bool,
) -> Finding {
    let mut parts = Vec::new();
    for m in &p.members {
        let rows: Vec<u32> = (0..m.validation.len() as u32)
            .filter(|&i| {
                let v = &m.validation[i as usize];
                !v.warmup && v.reasons.split(';').any(&pred)
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        parts.push(format!("{} runs in {}", rows.len(), m.p.id));
        out.count(
            format!("program/risk/{what}/{}", m.p.id),
            format!(
                "{} steady runs of {} show the signal {what}",
                rows.len(),
                m.p.id
            ),
            rows.len(),
            "runs",
            &m.report.evidence,
            source(m.validation_in, rows),
        );
    }
    finding(parts, "no run shows it")
}

fn finding(parts: Vec<String>, none: &str) -> Finding {
    if parts.is_empty() {
        Finding {
            status: ABSENT,
            evidence: none.into(),
        }
    } else {
        Finding {
            status: PRESENT,
            evidence: parts.join("; "),
        }
    }
}

/// Warmup ratios above 10x (the seed's signal), quoted from the members'
/// warmup claims.
fn cold_start(p: &ProgramData<'_>, out: &mut ProgramOut) -> Finding {
    let mut parts = Vec::new();
    for m in &p.members {
        let over: Vec<usize> = m
            .claims("warmup/")
            .filter(|(_, c)| c.id.ends_with("/ratio") && c.value > 10.0)
            .map(|(i, _)| i)
            .collect();
        for i in over.iter().take(3) {
            out.quote(m, *i);
            parts.push(format!("{}: `{}`", m.p.id, m.report.claims[*i].id));
        }
        if over.len() > 3 {
            parts.push(format!("{}: {} more", m.p.id, over.len() - 3));
        }
    }
    finding(parts, "no warmup ratio above 10x")
}

fn boundary_drift(p: &ProgramData<'_>) -> Finding {
    let groups = boundary_groups(p);
    if groups.len() <= 1 {
        return Finding {
            status: ABSENT,
            evidence: "every member measures under one boundary".into(),
        };
    }
    let list: Vec<String> = groups
        .values()
        .map(|ids| format!("[{}]", ids.join(", ")))
        .collect();
    Finding {
        status: PRESENT,
        evidence: format!(
            "{} boundaries: {}; numbers are compared only within one",
            groups.len(),
            list.join(" ")
        ),
    }
}

fn energy(p: &ProgramData<'_>) -> Finding {
    let with: Vec<String> = p
        .members
        .iter()
        .filter(|m| m.claims("energy/").next().is_some())
        .map(|m| m.p.id.clone())
        .collect();
    if with.is_empty() {
        return Finding {
            status: UNOBSERVED,
            evidence: "no member reports an energy figure (no sensor, or every window gated out)"
                .into(),
        };
    }
    Finding {
        status: ABSENT,
        evidence: format!(
            "energy figures in {} passed per-window gating; shorter windows are no_data",
            with.join(", ")
        ),
    }
}

/// Fit rows of each member matching `pred`, each count a claim on them.
fn fits(
    p: &ProgramData<'_>,
    out: &mut ProgramOut,
    what: &str,
    pred: impl Fn(&Member<'_>, usize) -> bool,
) -> Finding {
    let mut parts = Vec::new();
    let mut any_fits = false;
    for m in &p.members {
        let Some(fit_in) = m.fit_in else { continue };
        any_fits |= !m.fit.is_empty();
        let rows: Vec<u32> = (0..m.fit.len())
            .filter(|&i| pred(m, i))
            .map(|i| i as u32)
            .collect();
        if rows.is_empty() {
            continue;
        }
        parts.push(format!(
            "{} of {} fits in {}",
            rows.len(),
            m.fit.len(),
            m.p.id
        ));
        out.count(
            format!("program/risk/{what}/{}", m.p.id),
            format!("{} fits of {} show the signal {what}", rows.len(), m.p.id),
            rows.len(),
            "fits",
            &m.report.evidence,
            source(fit_in, rows),
        );
    }
    if !any_fits {
        return Finding {
            status: UNOBSERVED,
            evidence: "no member fits a scaling law".into(),
        };
    }
    finding(
        parts,
        "every fit is identifiable with a one-signed slope interval",
    )
}

fn cost(p: &ProgramData<'_>) -> Finding {
    let with: Vec<String> = p
        .members
        .iter()
        .filter(|m| m.claims("cost/").next().is_some())
        .map(|m| m.p.id.clone())
        .collect();
    if with.is_empty() {
        return Finding {
            status: UNOBSERVED,
            evidence: "no member prices its throughput".into(),
        };
    }
    Finding {
        status: ABSENT,
        evidence: format!(
            "cost figures of {} are labelled shadow prices (hourly price over measured throughput), not TCO",
            with.join(", ")
        ),
    }
}
