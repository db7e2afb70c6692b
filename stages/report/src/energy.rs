//! Energy, gated (TR122): numbers only for windows the sensor could resolve,
//! `no_data` elsewhere, and a plain statement of why when there is none.
//! In the order of the seed's template (Appendix S.3): the idle baseline's
//! mean and variance, the per-event windows, then the cells' macro windows
//! reported apart from them.

use std::collections::BTreeSet;

use crate::document::{Block, f, header};
use crate::{Out, Report, source};
use assay_analysis::validate;
use assay_core::stage::{Input, StageError};
use assay_core::tables::{self, CostRow, EnergyRow, SummaryRow};
use assay_measure::Manifest;
use assay_measure::energy::CELL_WINDOW;

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
    // The spec's inputs the paragraph states, as claims citing the spec.
    let min_window_ms = u64::from(params.min_intervals) * u64::from(params.poll_ms);
    for (id, field, value, stated, what) in [
        (
            "poll_ms",
            "energy.poll_ms",
            f64::from(params.poll_ms),
            params.poll_ms,
            "Power polling interval",
        ),
        (
            "idle_ms",
            "energy.idle_ms",
            f64::from(params.idle_ms),
            params.idle_ms,
            "Idle baseline before the cell",
        ),
        (
            "min_window_ms",
            "energy.min_intervals",
            min_window_ms as f64,
            params.min_intervals,
            "Shortest attributable window (energy.min_intervals x energy.poll_ms)",
        ),
    ] {
        out.claim(
            format!("spec/energy/{id}"),
            format!("{what}: {value} ms (the spec's {field})"),
            value,
            "ms",
            &rep.evidence,
            crate::spec_source(field, &stated),
        );
    }
    out.doc.push(Block::Para(format!(
        "Power polled every {} ms after a {} ms idle baseline. The gate, as the seed states it (TR122; \
         Appendices BA.1, AI.3, AM rule 6): a window is attributable only if it lasts at least {} polling \
         interval(s) ({} ms) and holds at least {} power reading(s); a shorter or emptier window is no_data, \
         never a number, and so is one the sensor stopped covering or a cell whose idle baseline has fewer \
         than 2 samples. Energy = (time-weighted mean power in the window - idle power) x duration (AA.5), \
         with a 95% interval from the idle baseline's variance. Single decode steps are far shorter than \
         the polling interval and never get a figure of their own; each cell's macro window over all its \
         steady runs gives it an energy per token even where single events are too short (S.3, AQ.4).",
        params.poll_ms,
        params.idle_ms,
        params.min_intervals,
        u64::from(params.min_intervals) * u64::from(params.poll_ms),
        params.min_samples
    )));
    sensors(rep, out);
    let windows = match energy_input(rep) {
        Some(input) => Some((input, tables::read_rows::<EnergyRow>(rep.ctx, input)?)),
        None => None,
    };
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
    if let Some((input, windows)) = &windows {
        idle_baselines(rep, input, windows, out);
    }
    energy_per_window(rep, &rows, windows.as_ref(), out);
    if let Some((input, windows)) = &windows {
        macro_windows(rep, input, windows, out);
    }
    energy_cost(rep, out);
    Ok(())
}

/// Validate's gated windows, wired to the report when the spec has energy.
fn energy_input<'a>(rep: &Report<'a>) -> Option<&'a Input> {
    rep.inputs
        .iter()
        .find(|i| i.name == validate::output::ENERGY)
}

fn manifest_of<'a>(rep: &'a Report<'_>, cell: &str) -> Option<&'a Manifest> {
    rep.manifests.iter().find(|m| m.cell == cell)
}

/// The cells of the energy table in its order (node-id order), each with
/// the index of its first row and of its macro window.
fn cells(windows: &[EnergyRow]) -> Vec<(&str, usize, Option<usize>)> {
    let mut out: Vec<(&str, usize, Option<usize>)> = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        if out.last().is_none_or(|c| c.0 != w.cell) {
            out.push((w.cell.as_str(), i, None));
        }
        if w.phase == CELL_WINDOW
            && let Some(last) = out.last_mut()
        {
            last.2 = Some(i);
        }
    }
    out
}

/// Appendix S.3, step 1: each cell's idle baseline, mean and variance.
fn idle_baselines(rep: &Report<'_>, input: &Input, windows: &[EnergyRow], out: &mut Out) {
    let mut table = Vec::new();
    for (cell, first, _) in cells(windows) {
        let w = &windows[first];
        let Some(m) = manifest_of(rep, cell) else {
            continue;
        };
        table.push(vec![
            m.backend.clone(),
            m.model.clone(),
            m.scenario.name.clone(),
            w.idle_samples.to_string(),
            w.idle_power_w.map_or_else(|| "none".into(), |x| f(x, 2)),
            w.idle_sd_w.map_or_else(|| "-".into(), |x| f(x, 3)),
        ]);
        if let (Some(mean), Some(sd)) = (w.idle_power_w, w.idle_sd_w) {
            let about = format!(
                "Idle baseline of {} on {}, scenario {}, over {} samples",
                m.model, m.backend, m.scenario.name, w.idle_samples
            );
            out.claim(
                format!("energy_idle/{cell}/w"),
                format!("{about}: mean {} W", f(mean, 2)),
                mean,
                "W",
                &m.evidence,
                source(input, vec![first as u32]),
            );
            out.claim(
                format!("energy_idle/{cell}/sd_w"),
                format!("{about}: standard deviation {} W", f(sd, 3)),
                sd,
                "W",
                &m.evidence,
                source(input, vec![first as u32]),
            );
        }
    }
    out.doc.push(Block::Para(
        "Idle baseline per cell (S.3: mean and variance), from the samples before model load. Its \
         variance widens every figure below: sd(energy) = duration x idle sd x sqrt(1/n + sum of the \
         window's squared overlap weights), interval +- t(0.975, n-1) x sd (formulas.md). Each window's \
         interval is in the `energy` table."
            .into(),
    ));
    out.doc.push(Block::Table(
        header(&["backend", "model", "scenario", "samples", "idle W", "sd W"]),
        table,
    ));
}

/// Appendix S.3, step 3 and AQ.4: each cell's macro window, from its
/// first steady run's start to its last steady run's end, reported apart
/// from the per-event windows.
fn macro_windows(rep: &Report<'_>, input: &Input, windows: &[EnergyRow], out: &mut Out) {
    let mut table = Vec::new();
    for (cell, _, macro_row) in cells(windows) {
        let (Some(i), Some(m)) = (macro_row, manifest_of(rep, cell)) else {
            continue;
        };
        let w = &windows[i];
        let tokens = f64::from(w.tokens);
        let per_token = |j: Option<f64>| j.filter(|_| w.tokens > 0).map(|j| j / tokens);
        let interval = |lo: Option<f64>, hi: Option<f64>, digits: usize| match (lo, hi) {
            (Some(lo), Some(hi)) => format!("{} to {}", f(lo, digits), f(hi, digits)),
            _ => "-".into(),
        };
        let no_data = || format!("no_data ({})", w.reason.as_deref().unwrap_or("no sample"));
        table.push(vec![
            m.backend.clone(),
            m.model.clone(),
            m.scenario.name.clone(),
            w.runs.to_string(),
            f(w.duration_ns as f64 / 1e9, 3),
            w.samples.to_string(),
            w.energy_j.map_or_else(no_data, |j| f(j, 3)),
            interval(w.energy_j_low, w.energy_j_high, 3),
            per_token(w.energy_j).map_or_else(|| "-".into(), |j| f(j, 5)),
            interval(per_token(w.energy_j_low), per_token(w.energy_j_high), 5),
        ]);
        let about = format!(
            "of {} on {}, scenario {}, over its {} steady runs ({} s)",
            m.model,
            m.backend,
            m.scenario.name,
            w.runs,
            f(w.duration_ns as f64 / 1e9, 3)
        );
        let src = || source(input, vec![i as u32]);
        if let (Some(j), Some(lo), Some(hi)) = (w.energy_j, w.energy_j_low, w.energy_j_high) {
            let statement = format!(
                "Energy above idle {about}: {} J (95% interval {} to {} J)",
                f(j, 3),
                f(lo, 3),
                f(hi, 3)
            );
            for (id, value) in [
                (format!("energy/{cell}/{CELL_WINDOW}/j"), j),
                (format!("energy_interval/{cell}/{CELL_WINDOW}/j_low"), lo),
                (format!("energy_interval/{cell}/{CELL_WINDOW}/j_high"), hi),
            ] {
                out.claim(id, statement.clone(), value, "J", &m.evidence, src());
            }
            if let (Some(pt), Some(lo), Some(hi)) =
                (per_token(Some(j)), per_token(Some(lo)), per_token(Some(hi)))
            {
                let statement = format!(
                    "Energy above idle per generated token {about}: {} J per token (95% interval {} to {})",
                    f(pt, 5),
                    f(lo, 5),
                    f(hi, 5)
                );
                // The figure under `energy/`, its bounds apart, so that
                // counts of energy figures (the program report's) count it
                // once.
                for (id, value) in [
                    (format!("energy/{cell}/{CELL_WINDOW}/j_per_token"), pt),
                    (
                        format!("energy_interval/{cell}/{CELL_WINDOW}/j_per_token_low"),
                        lo,
                    ),
                    (
                        format!("energy_interval/{cell}/{CELL_WINDOW}/j_per_token_high"),
                        hi,
                    ),
                ] {
                    out.claim(id, statement.clone(), value, "J/token", &m.evidence, src());
                }
            }
        }
    }
    out.doc.push(Block::Para(
        "Macro windows (S.3, AQ.4): one per cell, from its first steady run's start to its last steady \
         run's end, gated like any window; energy per token divides by the tokens its runs generated \
         (the prefills' energy included). Intervals: 95%, from the idle baseline's variance."
            .into(),
    ));
    out.doc.push(Block::Table(
        header(&[
            "backend",
            "model",
            "scenario",
            "runs",
            "s",
            "readings",
            "J above idle",
            "J 95%",
            "J/token",
            "J/token 95%",
        ]),
        table,
    ));
}

/// The sensor each cell sampled, or why it had none: which instrument
/// measured each figure (a GPU cell's NVML, a CPU cell's RAPL). One
/// sensor for every cell is said once; beside a GPU's, each names its
/// cells.
fn sensors(rep: &Report<'_>, out: &mut Out) {
    let mut by_sensor: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for m in &rep.manifests {
        if let Some(e) = &m.energy {
            // A GPU's name holds digits that are no figures (`H100
            // 80GB`): as a code span it reads as the identifier it is.
            let sensor = match &e.no_sensor {
                Some(reason) => format!("none ({reason})"),
                None if e.sensor.starts_with("nvml:") => format!("`{}`", e.sensor),
                None => e.sensor.clone(),
            };
            by_sensor.entry(sensor).or_default().push(m.cell.as_str());
        }
    }
    // Without a GPU sensor the line is what it always was (the sensors,
    // `; `-joined), so stored CPU measurements render the same bytes.
    let gpu = by_sensor
        .keys()
        .any(|s| s.starts_with("`nvml:") || s.contains("no NVML power sensor"));
    let text = if by_sensor.len() == 1 || !gpu {
        by_sensor.into_keys().collect::<Vec<_>>().join("; ")
    } else {
        by_sensor
            .into_iter()
            .map(|(sensor, cells)| format!("{sensor} for {}", cells.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    };
    out.doc.push(Block::Para(format!("Sensor: {text}.")));
}

/// Windows, attributable windows and energy per token of each summary row
/// (numbered `i` in the summary) that has energy windows, with the idle
/// baseline's uncertainty of a window's energy per token: the median, over
/// the same windows, of `energy_j_sd / tokens` (a stated uncertainty, not
/// an interval of the median).
fn energy_per_window(
    rep: &Report<'_>,
    rows: &[(usize, &SummaryRow)],
    windows: Option<&(&Input, Vec<EnergyRow>)>,
    out: &mut Out,
) {
    let ok: BTreeSet<(&str, u32)> = rep
        .validation
        .iter()
        .filter(|v| v.is_ok())
        .map(|v| (v.cell.as_str(), v.repetition))
        .collect();
    let mut table = Vec::new();
    for (i, s) in rows {
        let no_data = || "no_data".to_string();
        // The valid windows the summary's median came from, and the idle
        // uncertainty of each one's energy per token.
        let sd = windows.and_then(|(input, w)| {
            let (idx, sds): (Vec<u32>, Vec<f64>) = w
                .iter()
                .enumerate()
                .filter(|(_, e)| {
                    e.cell == s.cell
                        && e.phase == s.phase
                        && !e.warmup
                        && e.tokens > 0
                        && ok.contains(&(e.cell.as_str(), e.repetition))
                })
                .filter_map(|(k, e)| Some((k as u32, e.energy_j_sd? / f64::from(e.tokens))))
                .unzip();
            (!sds.is_empty()).then(|| (*input, idx, assay_core::stats::median(&sds)))
        });
        table.push(vec![
            s.backend.clone(),
            s.model.clone(),
            s.scenario.clone(),
            s.phase.clone(),
            s.energy_windows.to_string(),
            s.energy_valid.to_string(),
            s.energy_j_median.map_or_else(no_data, |j| f(j, 3)),
            s.energy_j_per_token.map_or_else(no_data, |j| f(j, 5)),
            sd.as_ref().map_or_else(|| "-".into(), |(_, _, x)| f(*x, 5)),
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
        if let Some((input, idx, x)) = sd {
            out.claim(
                format!("energy_interval/{}/{}/j_per_token_sd", s.cell, s.phase),
                format!(
                    "Idle-baseline uncertainty of one {} window's energy per token for {} on {}, scenario {}: \
                     {} J per token (median standard uncertainty over {} windows)",
                    s.phase,
                    s.model,
                    s.backend,
                    s.scenario,
                    f(x, 5),
                    idx.len()
                ),
                x,
                "J/token",
                &s.evidence,
                source(input, idx),
            );
        }
    }
    out.doc.push(Block::Para(
        "Per-event windows (the prefill, the decode span, e2e) of steady runs that validated ok: medians \
         over the attributable ones, and the median idle-baseline standard uncertainty of one window's \
         energy per token (sd J/token)."
            .into(),
    ));
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
            "sd J/token",
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
