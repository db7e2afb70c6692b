//! Across members: what each report adds (Appendix AS), the same cells
//! measured by several reports, and the artifacts they share (AH.6).

use std::collections::{BTreeMap, BTreeSet};

use super::sections::boundary_groups;
use super::{ProgramData, ProgramOut, source};
use crate::document::{Block, f, header};

/// Appendix AS: per report, the evidence it adds; then every cell that
/// several reports measured, side by side where their boundaries agree.
pub(super) fn cross_report(p: &ProgramData<'_>, out: &mut ProgramOut) {
    out.doc.push(Block::Heading(
        2,
        "Cross-report comparison (Appendix AS)".into(),
    ));
    let mut rows = Vec::new();
    for m in &p.members {
        let cells: BTreeSet<&str> = m.validation.iter().map(|v| v.cell.as_str()).collect();
        let first_rows: Vec<u32> = cells
            .iter()
            .filter_map(|c| m.validation.iter().position(|v| v.cell == *c))
            .map(|i| i as u32)
            .collect();
        out.count(
            format!("program/evidence/{}/cells", m.p.id),
            format!("{} measured {} cells", m.p.id, cells.len()),
            cells.len(),
            "cells",
            &m.report.evidence,
            source(m.validation_in, first_rows),
        );
        let decisions: Vec<u32> = m
            .claims("decision/")
            .filter(|(_, c)| c.id.ends_with("/recommendation"))
            .map(|(i, _)| i as u32)
            .collect();
        out.count(
            format!("program/evidence/{}/recommendations", m.p.id),
            format!(
                "{} made {} backend recommendations",
                m.p.id,
                decisions.len()
            ),
            decisions.len(),
            "decisions",
            &m.report.evidence,
            source(m.report_in, decisions.clone()),
        );
        let fits = fit_counts(m, out);
        let energy: Vec<u32> = m.claims("energy/").map(|(i, _)| i as u32).collect();
        out.count(
            format!("program/evidence/{}/energy_figures", m.p.id),
            format!("{} reported {} gated energy figures", m.p.id, energy.len()),
            energy.len(),
            "figures",
            &m.report.evidence,
            source(m.report_in, energy.clone()),
        );
        rows.push(vec![
            m.p.id.clone(),
            m.report.evidence.clone(),
            cells.len().to_string(),
            decisions.len().to_string(),
            fits,
            energy.len().to_string(),
        ]);
    }
    out.doc.push(Block::Table(
        header(&[
            "report",
            "evidence",
            "cells",
            "backend recommendations",
            "identifiable fits / fits",
            "gated energy figures",
        ]),
        rows,
    ));
    same_cells(p, out);
}

/// "identifiable / all" fits of a member, each count a claim on its fit
/// rows.
fn fit_counts(m: &super::Member<'_>, out: &mut ProgramOut) -> String {
    let Some(fit_in) = m.fit_in else {
        return "no fits planned".into();
    };
    let identifiable: Vec<u32> = (0..m.fit.len() as u32)
        .filter(|&i| m.fit[i as usize].identifiable)
        .collect();
    out.count(
        format!("program/evidence/{}/identifiable_fits", m.p.id),
        format!(
            "{} of {} fits of {} are identifiable",
            identifiable.len(),
            m.fit.len(),
            m.p.id
        ),
        identifiable.len(),
        "fits",
        &m.report.evidence,
        source(fit_in, identifiable.clone()),
    );
    format!("{} / {}", identifiable.len(), m.fit.len())
}

/// A cell's median per report, for the phases every report measures.
fn same_cells(p: &ProgramData<'_>, out: &mut ProgramOut) {
    let mut by_cell: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
    for (mi, m) in p.members.iter().enumerate() {
        for (i, c) in m.claims("latency/") {
            let phase_ok = c.id.ends_with("/decode/median_ms") || c.id.ends_with("/e2e/median_ms");
            if phase_ok {
                let key = c.id["latency/".len()..].to_string();
                by_cell.entry(key).or_default().push((mi, i));
            }
        }
    }
    by_cell.retain(|_, v| v.len() > 1);
    out.doc.push(Block::Heading(
        3,
        "Cells measured by several reports".into(),
    ));
    if by_cell.is_empty() {
        out.doc.push(Block::Para(
            "No cell (backend, model, scenario) is measured by more than one report.".into(),
        ));
        return;
    }
    let groups = boundary_groups(p);
    let group_of = |id: &str| groups.iter().position(|(_, ids)| ids.contains(&id));
    let shared: BTreeSet<&str> = p.p.shared.iter().map(|s| s.node.as_str()).collect();
    let mut rows = Vec::new();
    for (key, entries) in &by_cell {
        let (cell, phase) = key
            .strip_suffix("/median_ms")
            .and_then(|k| k.rsplit_once('/'))
            .unwrap_or((key.as_str(), ""));
        let ids: Vec<&str> = entries
            .iter()
            .map(|&(mi, _)| p.members[mi].p.id.as_str())
            .collect();
        let one_boundary = ids.iter().all(|id| group_of(id) == group_of(ids[0]));
        let values = if one_boundary {
            entries
                .iter()
                .map(|&(mi, i)| {
                    let m = &p.members[mi];
                    out.quote(m, i);
                    format!("{} {} ms", m.p.id, f(m.report.claims[i].value, 3))
                })
                .collect::<Vec<_>>()
                .join("; ")
        } else {
            format!(
                "not compared: the boundaries of {} differ (AP.2)",
                ids.join(", ")
            )
        };
        let measured_once = shared.contains(format!("shared/measure/{cell}").as_str());
        rows.push(vec![
            cell.to_string(),
            phase.to_string(),
            values,
            if measured_once {
                "one measurement, shared".into()
            } else {
                "measured separately".into()
            },
        ]);
    }
    out.doc.push(Block::Table(
        header(&["cell", "phase", "median per report", "measurement"]),
        rows,
    ));
}

/// Appendix AH.6: the nodes several reports share, with the digests of
/// what they produced: one model preparation or measurement feeds them all.
pub(super) fn linkage(p: &ProgramData<'_>, out: &mut ProgramOut) {
    out.doc.push(Block::Heading(
        2,
        "Cross-report artifact linkage (Appendix AH.6)".into(),
    ));
    if p.p.shared.is_empty() {
        out.doc.push(Block::Para(
            "The member reports share no node: each prepares and measures its own.".into(),
        ));
        return;
    }
    let mut rows = Vec::new();
    for s in &p.p.shared {
        for i in p.inputs.iter().filter(|i| i.node == s.node) {
            rows.push(vec![
                s.node.clone(),
                s.stage.clone(),
                s.members.join(", "),
                i.name.clone(),
                i.digest.short(),
            ]);
        }
    }
    out.doc.push(Block::Table(
        header(&["node", "stage", "used by", "artifact", "digest"]),
        rows,
    ));
}
