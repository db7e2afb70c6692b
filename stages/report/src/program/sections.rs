//! The conclusive report's sections that read the members' claims: the
//! answer, the decision impact matrix (AT), the traceability map (J), the
//! boundary catalog (L) and the member list.

use std::collections::BTreeMap;

use super::areas::Area;
use super::{Member, ProgramData, ProgramOut, source, spelled};
use crate::document::{Block, header};
use assay_core::domain::Evidence;

pub(super) fn intro(p: &ProgramData<'_>, out: &mut ProgramOut) {
    out.doc.push(Block::Heading(1, p.p.title.clone()));
    let simulated: Vec<&str> = p
        .members
        .iter()
        .filter(|m| !measured(m))
        .map(|m| m.p.id.as_str())
        .collect();
    if !simulated.is_empty() {
        out.doc.push(Block::Warning(format!(
            "SIMULATED DATA in {}: those reports rest (wholly or partly) on the `simulated` \
             backend. Their numbers exercise the pipeline; they are not evidence and must not \
             feed a decision.",
            simulated.join(", ")
        )));
    }
    out.doc.push(Block::Heading(2, "Program question".into()));
    out.doc.push(Block::Para(p.p.question.clone()));
    out.doc
        .push(Block::Heading(2, "Decisions this program feeds".into()));
    out.doc.push(Block::Para(p.p.decision.clone()));
}

/// The answer first: every decision a member report made on its data, and
/// what each area rests on.
pub(super) fn answer(p: &ProgramData<'_>, out: &mut ProgramOut) {
    out.doc.push(Block::Heading(2, "The answer".into()));
    out.doc.push(Block::Para(
        "Each line quotes a member report's own claim (report.json ids `program/<member>/<claim>`); \
         `assay trace ID --spec <program>` follows it to the member's raw rows and manifests."
            .into(),
    ));
    let mut items = Vec::new();
    for m in &p.members {
        let decided: Vec<usize> = m
            .claims("decision/")
            .filter(|(_, c)| c.id.ends_with("/recommendation"))
            .map(|(i, _)| i)
            .collect();
        if decided.is_empty() {
            items.push(format!(
                "{}: no backend recommendation on its data (its report's decisions section says why).",
                m.p.id
            ));
        }
        for i in decided {
            let statement = out.quote(m, i);
            items.push(format!("{}: {statement}", m.p.id));
        }
        validity_line(m, out, &mut items);
    }
    out.doc.push(Block::List(items));
}

/// The member's degraded and failed runs, quoted from its validation
/// claims.
fn validity_line(m: &Member<'_>, out: &mut ProgramOut, items: &mut Vec<String>) {
    let mut parts = Vec::new();
    for status in ["degraded", "failed"] {
        if let Some((i, c)) = m.claim(&format!("validation/{status}_runs"))
            && c.value > 0.0
        {
            parts.push(out.quote(m, i));
        }
    }
    if !parts.is_empty() {
        items.push(format!(
            "{}: excluded from its aggregates: {}.",
            m.p.id,
            parts.join("; ")
        ));
    }
}

/// Whether every number of member `m` is measured (not simulated).
fn measured(m: &Member<'_>) -> bool {
    m.report.evidence == Evidence::Measured.as_str()
}

/// A member's column name: its id, marked when its evidence is simulated.
fn column(m: &Member<'_>) -> String {
    if measured(m) {
        m.p.id.clone()
    } else {
        format!("{} ({})", m.p.id, m.report.evidence)
    }
}

/// Claims of member `m` informing `area`, by index.
fn informing(m: &Member<'_>, area: Area) -> Vec<u32> {
    m.report
        .claims
        .iter()
        .enumerate()
        .filter(|(_, c)| area.informed_by(&c.id))
        .map(|(i, _)| i as u32)
        .collect()
}

/// Appendix AT: which member informs which decision (by the count of its
/// claims that are evidence for it), and what would be unknown without it.
pub(super) fn impact_matrix(p: &ProgramData<'_>, out: &mut ProgramOut) {
    out.doc.push(Block::Heading(
        2,
        "Decision impact matrix (Appendix AT)".into(),
    ));
    out.doc.push(Block::Para(
        "Claims of each member report that are evidence for each decision (decision, ranking and \
         paradox claims for backend selection; cost, capacity, routing and goodput for economics; \
         compiler evidence; scaling fits; gated energy; validation and warmup)."
            .into(),
    ));
    let mut head = vec!["decision".to_string()];
    head.extend(p.members.iter().map(column));
    let mut rows = Vec::new();
    let mut informers: BTreeMap<Area, Vec<&str>> = BTreeMap::new();
    for area in Area::ALL {
        let mut row = vec![area.title().to_string()];
        for m in &p.members {
            let rows_of = informing(m, area);
            let n = rows_of.len();
            if n > 0 {
                informers.entry(area).or_default().push(&m.p.id);
            }
            out.count(
                format!("program/impact/{}/{}", area_id(area), m.p.id),
                format!(
                    "{} claims of {} inform {}",
                    n,
                    m.p.id,
                    area.title().to_lowercase()
                ),
                n,
                "claims",
                &m.report.evidence,
                source(m.report_in, rows_of),
            );
            row.push(n.to_string());
        }
        rows.push(row);
    }
    out.doc.push(Block::Table(head, rows));
    out.doc
        .push(Block::Heading(3, "Without each report".into()));
    out.doc.push(Block::List(without_each(p, &informers)));
}

fn area_id(area: Area) -> &'static str {
    match area {
        Area::BackendSelection => "backend_selection",
        Area::Economics => "economics",
        Area::CompilerPolicy => "compiler_policy",
        Area::ScalingTiering => "scaling_tiering",
        Area::EnergyGating => "energy_gating",
        Area::MeasurementValidity => "measurement_validity",
    }
}

/// For each member, the decisions only it informs (unknown without it);
/// then the decisions no member informs.
fn without_each(p: &ProgramData<'_>, informers: &BTreeMap<Area, Vec<&str>>) -> Vec<String> {
    let mut items = Vec::new();
    for m in &p.members {
        let only: Vec<Area> = Area::ALL
            .into_iter()
            .filter(|a| informers.get(a).is_some_and(|v| v == &[m.p.id.as_str()]))
            .collect();
        if only.is_empty() {
            items.push(format!(
                "Without {}: every decision it informs is still informed by another member.",
                m.p.id
            ));
        }
        let caveat = if measured(m) {
            ""
        } else {
            "; its evidence is not measured, so it exercises the pipeline there but decides nothing"
        };
        for a in only {
            items.push(format!(
                "Without {}: {} would be unknown ({}){caveat}.",
                m.p.id,
                a.title().to_lowercase(),
                a.without()
            ));
        }
    }
    for a in Area::ALL.into_iter().filter(|a| !informers.contains_key(a)) {
        items.push(format!(
            "No member informs {}: {}.",
            a.title().to_lowercase(),
            a.without()
        ));
    }
    items
}

/// Appendix J: from each decision to the member claims that carry it.
pub(super) fn traceability(p: &ProgramData<'_>, out: &mut ProgramOut) {
    out.doc
        .push(Block::Heading(2, "Traceability map (Appendix J)".into()));
    let mut rows = Vec::new();
    for area in Area::ALL {
        for m in &p.members {
            let ids: Vec<&str> = m
                .report
                .claims
                .iter()
                .filter(|c| area.informed_by(&c.id))
                .map(|c| c.id.as_str())
                .collect();
            if ids.is_empty() {
                continue;
            }
            let mut shown: Vec<String> = ids.iter().take(3).map(|i| format!("`{i}`")).collect();
            if ids.len() > 3 {
                shown.push(format!("and {} more", ids.len() - 3));
            }
            rows.push(vec![
                area.title().to_string(),
                m.p.id.clone(),
                m.p.spec.clone(),
                shown.join(", "),
            ]);
        }
    }
    out.doc.push(Block::Table(
        header(&["decision", "report", "spec", "claims"]),
        rows,
    ));
}

/// Appendix L: the boundary of every member, and which members' numbers
/// may be compared (AP.2: only under one boundary).
pub(super) fn boundary_catalog(p: &ProgramData<'_>, out: &mut ProgramOut) {
    out.doc.push(Block::Heading(
        2,
        "Measurement boundary catalog (Appendix L)".into(),
    ));
    let mut rows = Vec::new();
    for m in &p.members {
        let b = &m.p.boundary;
        let scenarios: Vec<&str> = m.p.scenarios.iter().map(|s| s.name.as_str()).collect();
        rows.push(vec![
            m.p.id.clone(),
            spelled(&b.tokenization),
            spelled(&b.model_load),
            b.warmup_runs.to_string(),
            b.repetitions.to_string(),
            spelled(&b.decode),
            scenarios.join(", "),
        ]);
    }
    out.doc.push(Block::Table(
        header(&[
            "report",
            "tokenization",
            "model load",
            "warmup runs",
            "repetitions",
            "decode",
            "scenarios",
        ]),
        rows,
    ));
    let groups = boundary_groups(p);
    let items: Vec<String> = groups
        .values()
        .map(|ids| format!("One boundary: {}", ids.join(", ")))
        .collect();
    out.doc.push(Block::Para(
        "Numbers are compared across reports only within one boundary; the cross-report \
         comparison below refuses the rest."
            .into(),
    ));
    out.doc.push(Block::List(items));
}

/// Members grouped by identical boundary (the boundary's canonical JSON).
pub(super) fn boundary_groups<'a>(p: &'a ProgramData<'_>) -> BTreeMap<String, Vec<&'a str>> {
    let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for m in &p.members {
        let key = serde_json::to_string(&m.p.boundary).unwrap_or_default();
        groups.entry(key).or_default().push(&m.p.id);
    }
    groups
}

/// The members, their questions and their reports' digests.
pub(super) fn members(p: &ProgramData<'_>, out: &mut ProgramOut) {
    out.doc.push(Block::Heading(2, "Member reports".into()));
    let rows = p
        .members
        .iter()
        .map(|m| {
            vec![
                m.p.id.clone(),
                m.p.spec.clone(),
                m.p.question.clone(),
                m.report.evidence.clone(),
                m.report_in.digest.short(),
            ]
        })
        .collect();
    out.doc.push(Block::Table(
        header(&["report", "spec", "question", "evidence", "report.json"]),
        rows,
    ));
}
