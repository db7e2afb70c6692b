//! Energy, gated (TR122): numbers only for windows the sensor could resolve,
//! `no_data` elsewhere, and a plain statement of why when there is none.

use std::collections::BTreeSet;

use crate::document::{Block, f, header};
use crate::{Out, Report, source};
use assay_core::stage::StageError;
use assay_core::tables::{CostRow, SummaryRow};

pub fn energy(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    out.doc.push(Block::Heading(2, "Energy".into()));
    let Some(params) = rep.p.energy else {
        out.doc.push(Block::Para(
            "No energy: the spec has no `energy` section, so no power was sampled. With one, energy is \
             reported only for windows the sensor resolves (TR122)."
                .into(),
        ));
        return Ok(());
    };
    out.doc.push(Block::Para(format!(
        "Power polled every {} ms after a {} ms idle baseline. A window (prefill, the decode span, e2e) \
         needs at least {} samples inside it; fewer is no_data, never a number (TR122, Appendix AM rule 6). \
         Energy = (mean power in the window - idle power) x duration (AA.5); single decode steps are far \
         shorter than the polling interval and never get a figure of their own.",
        params.poll_ms, params.idle_ms, params.min_samples
    )));
    sensors(rep, out);
    let rows: Vec<(usize, &SummaryRow)> = rep
        .summary
        .iter()
        .enumerate()
        .filter(|(_, s)| s.energy_windows > 0)
        .collect();
    if rows.is_empty() {
        out.doc.push(Block::Para(
            "No energy figures: no power samples were recorded.".into(),
        ));
        return Ok(());
    }
    energy_per_window(rep, &rows, out);
    energy_cost(rep, out);
    Ok(())
}

/// The sensor each cell sampled, or why it had none.
fn sensors(rep: &Report<'_>, out: &mut Out) {
    let sensors: BTreeSet<String> = rep
        .manifests
        .iter()
        .filter_map(|m| m.energy.as_ref())
        .map(|e| match &e.no_sensor {
            Some(reason) => format!("none ({reason})"),
            None => e.sensor.clone(),
        })
        .collect();
    out.doc.push(Block::Para(format!(
        "Sensor: {}.",
        sensors.into_iter().collect::<Vec<_>>().join("; ")
    )));
}

/// Windows, attributable windows and energy per token of each summary row
/// (numbered `i` in the summary) that has energy windows.
fn energy_per_window(rep: &Report<'_>, rows: &[(usize, &SummaryRow)], out: &mut Out) {
    let mut table = Vec::new();
    for (i, s) in rows {
        let no_data = || "no_data".to_string();
        table.push(vec![
            s.backend.clone(),
            s.model.clone(),
            s.scenario.clone(),
            s.phase.clone(),
            s.energy_windows.to_string(),
            s.energy_valid.to_string(),
            s.energy_j_median.map_or_else(no_data, |j| f(j, 3)),
            s.energy_j_per_token.map_or_else(no_data, |j| f(j, 5)),
        ]);
        if let Some(j) = s.energy_j_per_token {
            out.claim(
                format!("energy/{}/{}/j_per_token", s.cell, s.phase),
                format!(
                    "Energy above idle of {} for {} on {}, scenario {}: {} J per token ({} of {} windows attributable)",
                    s.phase,
                    s.model,
                    s.backend,
                    s.scenario,
                    f(j, 5),
                    s.energy_valid,
                    s.energy_windows
                ),
                j,
                "J/token",
                &s.evidence,
                source(rep.summary_in, vec![*i as u32]),
            );
        }
    }
    out.doc.push(Block::Table(
        header(&[
            "backend",
            "model",
            "scenario",
            "phase",
            "windows",
            "attributable",
            "median J",
            "J/token",
        ]),
        table,
    ));
}

/// Electricity and carbon per 1M tokens, from the cost table, where gating
/// passed.
fn energy_cost(rep: &Report<'_>, out: &mut Out) {
    let priced: Vec<(usize, &CostRow)> = rep
        .cost
        .iter()
        .enumerate()
        .filter(|(_, c)| c.energy_usd_per_1m.is_some())
        .collect();
    if let (Some(cost_in), false) = (rep.cost_in, priced.is_empty()) {
        out.doc.push(Block::Para(
            "Energy as a secondary cost term (Appendix BA), only where gating passed; one row per cell and \
             phase (energy does not depend on the pricing tier)."
                .into(),
        ));
        let mut seen = BTreeSet::new();
        let mut table = Vec::new();
        for (i, c) in priced {
            if !seen.insert((c.cell.clone(), c.phase.clone())) {
                continue;
            }
            let usd = c.energy_usd_per_1m.unwrap_or(f64::NAN);
            table.push(vec![
                c.backend.clone(),
                c.model.clone(),
                c.scenario.clone(),
                c.phase.clone(),
                f(usd, 4),
                c.carbon_g_per_1m.map_or_else(|| "-".into(), |g| f(g, 1)),
            ]);
            out.claim(
                format!("energy/{}/{}/usd_per_1m", c.cell, c.phase),
                format!(
                    "Electricity for 1M {} tokens of {} on {}, scenario {}: ${} (shadow price above idle)",
                    c.phase,
                    c.model,
                    c.backend,
                    c.scenario,
                    f(usd, 4)
                ),
                usd,
                "USD/1M tokens",
                &c.evidence,
                source(cost_in, vec![i as u32]),
            );
        }
        out.doc.push(Block::Table(
            header(&[
                "backend",
                "model",
                "scenario",
                "phase",
                "electricity $/1M tokens",
                "g CO2e/1M tokens",
            ]),
            table,
        ));
    }
}
