//! Results: per-phase distributions, the roofline, the phase split and the TR117 paradox check, warmup and cold start, and the decode ranking.

use crate::document::{Block, f, header};
use crate::{Out, Report, source};
use assay_core::domain::Evidence;
use assay_core::stage::StageError;
use assay_core::tables::{Phase, SummaryRow};

pub fn results(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    latency_table(rep, out);
    roofline(rep, out);
    phase_split(rep, out);
    mean_median_paradox(rep, out);
    warmup_and_cold_start(rep, out);
    decode_ranking(rep, out);
    aggregate(rep, out);
    Ok(())
}

/// The boundary of the numbers of the next table, when it includes more
/// than the model's work.
fn state_boundary(rep: &Report<'_>, out: &mut Out) {
    if let Some(statement) = crate::intro::boundary_statement(&rep.p.boundary) {
        out.doc.push(Block::Para(statement));
    }
}

/// The per-cell latency and throughput table, with its figures.
fn latency_table(rep: &Report<'_>, out: &mut Out) {
    // Results.
    out.doc.push(Block::Heading(
        2,
        "Results (steady state, validated runs)".into(),
    ));
    out.doc.push(Block::Para("Medians with tails; milliseconds per event (decode: per step, one token per sequence). Tokens/s divides the tokens of an event by its median time.".into()));
    state_boundary(rep, out);
    let mut result_rows = Vec::new();
    for (i, s) in rep.summary.iter().enumerate() {
        result_rows.push(vec![
            s.backend.clone(),
            s.model.clone(),
            s.scenario.clone(),
            s.phase.clone(),
            s.n.to_string(),
            f(s.median_ms, 3),
            format!(
                "[{}, {}]",
                f(s.median_ci_low_ms, 3),
                f(s.median_ci_high_ms, 3)
            ),
            f(s.p95_ms, 3),
            f(s.p99_ms, 3),
            f(s.mean_ms, 3),
            // Load and TTFT are latencies, not rates.
            if s.tokens_per_s > 0.0 {
                f(s.tokens_per_s, 1)
            } else {
                "-".into()
            },
        ]);
        let rows = vec![i as u32];
        let what = format!("{} on {}, scenario {}", s.model, s.backend, s.scenario);
        out.claim(
            format!("latency/{}/{}/median_ms", s.cell, s.phase),
            format!(
                "Median {} latency of {what}: {} ms (p95 {}, p99 {}, n={})",
                s.phase,
                f(s.median_ms, 3),
                f(s.p95_ms, 3),
                f(s.p99_ms, 3),
                s.n
            ),
            s.median_ms,
            "ms",
            &s.evidence,
            source(rep.summary_in, rows.clone()),
        );
        if s.tokens_per_s > 0.0 {
            out.claim(
                format!("throughput/{}/{}/tokens_per_s", s.cell, s.phase),
                format!(
                    "{} throughput of {what}: {} tokens/s",
                    s.phase,
                    f(s.tokens_per_s, 1)
                ),
                s.tokens_per_s,
                "tokens/s",
                &s.evidence,
                source(rep.summary_in, rows),
            );
        }
    }
    out.doc.push(Block::Table(
        header(&[
            "backend",
            "model",
            "scenario",
            "phase",
            "n",
            "median ms",
            "median 95% CI",
            "p95 ms",
            "p99 ms",
            "mean ms",
            "tokens/s",
        ]),
        result_rows,
    ));
    for (phase, title) in [
        (Phase::Prefill, "Prefill latency per cell"),
        (Phase::Decode, "Decode step latency per cell"),
        (Phase::E2e, "End-to-end latency per cell"),
    ] {
        out.doc
            .extend(crate::figures::latency(&rep.summary, phase, title));
    }
}

/// Decode throughput against the memory-bandwidth bound.
fn roofline(rep: &Report<'_>, out: &mut Out) {
    // Roofline: decode is memory-bound, so the machine's bandwidth over
    // the bytes a step must read bounds decode throughput from above.
    let roof: Vec<(usize, &SummaryRow)> = rep
        .summary
        .iter()
        .enumerate()
        .filter(|(_, s)| s.phase() == Phase::Decode && s.roofline_fraction.is_finite())
        .collect();
    if !roof.is_empty() {
        out.doc.push(Block::Heading(
            2,
            "Roofline (decode vs memory bandwidth)".into(),
        ));
        out.doc.push(Block::Para(
            "Bytes per step: streamed weights once plus each sequence's KV cache at the mean decode context. Bandwidth: STREAM-style copy on this machine at the cell's thread count. Bound = batch x bandwidth / bytes."
                .into(),
        ));
        let mut rows = Vec::new();
        for (i, s) in roof {
            rows.push(vec![
                s.backend.clone(),
                s.model.clone(),
                s.scenario.clone(),
                f(s.tokens_per_s, 1),
                f(s.roofline_bytes_per_step / 1e6, 2),
                f(s.bandwidth_gbps, 2),
                f(s.roofline_tokens_per_s, 1),
                f(s.roofline_fraction, 3),
            ]);
            out.claim(
                format!("roofline/{}/fraction", s.cell),
                format!(
                    "Decode of {} on {}, scenario {}, runs at {} of the memory-bandwidth bound ({} of {} tokens/s)",
                    s.model,
                    s.backend,
                    s.scenario,
                    f(s.roofline_fraction, 3),
                    f(s.tokens_per_s, 1),
                    f(s.roofline_tokens_per_s, 1)
                ),
                s.roofline_fraction,
                "fraction",
                &s.evidence,
                source(rep.summary_in, vec![i as u32]),
            );
        }
        out.doc.push(Block::Table(
            header(&[
                "backend",
                "model",
                "scenario",
                "decode tokens/s",
                "MB per step",
                "bandwidth GB/s",
                "bound tokens/s",
                "fraction of bound",
            ]),
            rows,
        ));
    }
}

/// The decode fraction of end-to-end time per cell.
fn phase_split(rep: &Report<'_>, out: &mut Out) {
    // Phase split (AA.3).
    out.doc.push(Block::Heading(2, "Phase split".into()));
    out.doc.extend(crate::figures::phase_split(&rep.summary));
    out.doc
        .extend(crate::figures::decode_fraction(&rep.summary));
    out.doc.push(Block::Para(
        "Decode fraction = decode time / end-to-end time per run (median over runs). Close to one, decode dominates \
         and decode throughput is the metric to optimise (Appendix AM rule 1)."
            .into(),
    ));
    state_boundary(rep, out);
    let mut split_rows = Vec::new();
    for (i, s) in rep
        .summary
        .iter()
        .enumerate()
        .filter(|(_, s)| s.phase() == Phase::E2e && s.decode_fraction.is_finite())
    {
        split_rows.push(vec![
            s.backend.clone(),
            s.model.clone(),
            s.scenario.clone(),
            f(s.decode_fraction, 3),
            if s.decode_fraction > 0.9 {
                "decode-dominant".into()
            } else {
                String::new()
            },
        ]);
        out.claim(
            format!("phase_split/{}/decode_fraction", s.cell),
            format!(
                "Decode fraction of {} on {}, scenario {}: {}",
                s.model,
                s.backend,
                s.scenario,
                f(s.decode_fraction, 3)
            ),
            s.decode_fraction,
            "fraction",
            &s.evidence,
            source(rep.summary_in, vec![i as u32]),
        );
    }
    out.doc.push(Block::Table(
        header(&["backend", "model", "scenario", "decode fraction", ""]),
        split_rows,
    ));
}

/// The TR117 paradox check, under the phase split: rankings by mean and by
/// median that disagree mean the distribution, not one number, decides.
fn mean_median_paradox(rep: &Report<'_>, out: &mut Out) {
    let mut paradox_rows = Vec::new();
    for scenario in &rep.p.scenarios {
        for kind in [Phase::Decode, Phase::E2e] {
            let phase = kind.name();
            let rows: Vec<(usize, &SummaryRow)> = rep
                .summary
                .iter()
                .enumerate()
                .filter(|(_, s)| s.scenario == scenario.name && s.phase() == kind)
                .collect();
            if rows.len() < 2 {
                continue;
            }
            let order = |key: fn(&SummaryRow) -> f64| {
                let mut v = rows.clone();
                v.sort_by(|a, b| key(a.1).total_cmp(&key(b.1)).then(a.1.cell.cmp(&b.1.cell)));
                v.iter()
                    .map(|(_, s)| format!("{}/{}", s.backend, s.model))
                    .collect::<Vec<_>>()
            };
            let by_median = order(|s| s.median_ms);
            let by_mean = order(|s| s.mean_ms);
            let disagree = by_median != by_mean;
            if disagree {
                paradox_rows.push(vec![
                    scenario.name.clone(),
                    phase.to_string(),
                    by_median.join(" < "),
                    by_mean.join(" < "),
                ]);
            }
            out.claim(
                format!("paradox/{}/{phase}", scenario.name),
                format!(
                    "Rankings by mean and by median {} in scenario {}, phase {phase}",
                    if disagree { "disagree" } else { "agree" },
                    scenario.name
                ),
                if disagree { 1.0 } else { 0.0 },
                "bool",
                &rep.evidence,
                source(
                    rep.summary_in,
                    rows.iter().map(|(i, _)| *i as u32).collect(),
                ),
            );
        }
    }
    if paradox_rows.is_empty() {
        out.doc.push(Block::Para(
            "Rankings by mean and by median agree in every scenario (no TR117 paradox).".into(),
        ));
    } else {
        out.doc.push(Block::Para(
            "TR117 paradox: rankings by mean and by median disagree below; tails, not a single number, decide."
                .into(),
        ));
        state_boundary(rep, out);
        out.doc.push(Block::Table(
            header(&["scenario", "phase", "by median (fastest first)", "by mean"]),
            paradox_rows,
        ));
    }
}

/// Warmup ratios and cold-start deltas per cell and phase.
fn warmup_and_cold_start(rep: &Report<'_>, out: &mut Out) {
    // Warmup and cold start (seed AA.4; AM rule 5: above 10x, cold start
    // must be managed explicitly).
    out.doc
        .push(Block::Heading(2, "Warmup and cold start".into()));
    out.doc.push(Block::Para(
        "Warmup ratio = warmup median / steady median (warmup runs are measured and kept, never averaged into \
         steady state). Cold = the first run after model load; cold delta = cold median - steady median. A ratio > 10x means cold start must be \
         managed explicitly (warm pools, pre-routing warmup)."
            .into(),
    ));
    state_boundary(rep, out);
    let mut warm_rows = Vec::new();
    for (i, s) in rep.summary.iter().enumerate() {
        if !matches!(s.phase(), Phase::Prefill | Phase::Decode | Phase::Ttft)
            || !s.warmup_ratio.is_finite()
        {
            continue;
        }
        let flag = if s.warmup_ratio > 10.0 {
            "manage cold start"
        } else {
            ""
        };
        warm_rows.push(vec![
            s.backend.clone(),
            s.model.clone(),
            s.scenario.clone(),
            s.phase.clone(),
            f(s.median_ms, 3),
            f(s.warmup_median_ms, 3),
            f(s.cold_median_ms, 3),
            // Cold-start delta: what the first run after load costs over
            // steady state.
            f(s.cold_median_ms - s.median_ms, 3),
            format!("{}x", f(s.warmup_ratio, 2)),
            flag.into(),
        ]);
        warmup_claims(rep, i, s, out);
    }
    if warm_rows.is_empty() {
        out.doc.push(Block::Para(
            "No warmup runs in the boundary: no warmup ratios.".into(),
        ));
    } else {
        out.doc.push(Block::Table(
            header(&[
                "backend",
                "model",
                "scenario",
                "phase",
                "steady median ms",
                "warmup median ms",
                "cold median ms",
                "cold delta ms",
                "warmup ratio",
                "",
            ]),
            warm_rows,
        ));
    }
}

/// The warmup ratio and cold-start delta claims of summary row `i`.
fn warmup_claims(rep: &Report<'_>, i: usize, s: &SummaryRow, out: &mut Out) {
    out.claim(
        format!("warmup/{}/{}/ratio", s.cell, s.phase),
        format!(
            "Warmup ratio of {} for {} on {}, scenario {}: {}x (warmup median {} ms over steady median {} ms)",
            s.phase,
            s.model,
            s.backend,
            s.scenario,
            f(s.warmup_ratio, 2),
            f(s.warmup_median_ms, 3),
            f(s.median_ms, 3)
        ),
        s.warmup_ratio,
        "ratio",
        &s.evidence,
        source(rep.summary_in, vec![i as u32]),
    );
    let delta = s.cold_median_ms - s.median_ms;
    if delta.is_finite() {
        out.claim(
            format!("warmup/{}/{}/cold_delta_ms", s.cell, s.phase),
            format!(
                "Cold-start delta of {} for {} on {}, scenario {}: {} ms (first run after load {} ms, steady median {} ms)",
                s.phase,
                s.model,
                s.backend,
                s.scenario,
                f(delta, 3),
                f(s.cold_median_ms, 3),
                f(s.median_ms, 3)
            ),
            delta,
            "ms",
            &s.evidence,
            source(rep.summary_in, vec![i as u32]),
        );
    }
}

/// The best decode throughput per scenario.
fn decode_ranking(rep: &Report<'_>, out: &mut Out) {
    // Ranking by decode throughput per scenario.
    out.doc
        .push(Block::Heading(2, "Decode throughput ranking".into()));
    let mut ranking_rows = Vec::new();
    for scenario in &rep.p.scenarios {
        let best = rep
            .summary
            .iter()
            .enumerate()
            .filter(|(_, s)| s.scenario == scenario.name && s.phase() == Phase::Decode)
            .max_by(|a, b| {
                a.1.tokens_per_s
                    .total_cmp(&b.1.tokens_per_s)
                    .then(b.1.cell.cmp(&a.1.cell))
            });
        if let Some((i, s)) = best {
            ranking_rows.push(vec![
                scenario.name.clone(),
                s.backend.clone(),
                s.model.clone(),
                f(s.tokens_per_s, 1),
            ]);
            out.claim(
                format!("ranking/{}/decode/best", scenario.name),
                format!(
                    "Best decode throughput in scenario {}: {} on {} at {} tokens/s",
                    scenario.name,
                    s.model,
                    s.backend,
                    f(s.tokens_per_s, 1)
                ),
                s.tokens_per_s,
                "tokens/s",
                &s.evidence,
                source(rep.summary_in, vec![i as u32]),
            );
        }
    }
    out.doc.push(Block::Table(
        header(&["scenario", "best backend", "model", "decode tokens/s"]),
        ranking_rows,
    ));
}

/// Scenario aggregation by geometric mean (seed TR117/TR119 practice): one
/// figure per backend and model over every scenario it ran, so no single
/// scenario's scale dominates. Configurations missing a scenario are left
/// out rather than compared on a different set.
fn aggregate(rep: &Report<'_>, out: &mut Out) {
    let mut by: std::collections::BTreeMap<(&str, &str), Vec<(usize, &SummaryRow)>> =
        Default::default();
    for (i, s) in rep.summary.iter().enumerate() {
        if s.phase() == Phase::Decode && s.tokens_per_s > 0.0 {
            by.entry((&s.backend, &s.model)).or_default().push((i, s));
        }
    }
    let scenarios = rep.p.scenarios.len();
    let mut rows = Vec::new();
    for ((backend, model), cells) in by {
        if cells.len() != scenarios {
            continue;
        }
        let rates: Vec<f64> = cells.iter().map(|(_, s)| s.tokens_per_s).collect();
        let g = assay_core::stats::geomean(&rates);
        rows.push(vec![
            backend.to_string(),
            model.to_string(),
            cells.len().to_string(),
            f(g, 1),
        ]);
        out.claim(
            format!("aggregate/{backend}/{model}/decode/tokens_per_s_geomean"),
            format!(
                "Geometric mean of decode throughput of {model} on {backend} over {} scenarios: {} tokens/s",
                cells.len(),
                f(g, 1)
            ),
            g,
            "tokens/s",
            Evidence::all_measured(cells.iter().map(|(_, s)| s.is_measured())).as_str(),
            source(rep.summary_in, cells.iter().map(|(i, _)| *i as u32).collect()),
        );
    }
    if !rows.is_empty() {
        out.doc.push(Block::Para(
            "Across scenarios (geometric mean of decode tokens/s over every scenario):".into(),
        ));
        out.doc.push(Block::Table(
            header(&["backend", "model", "scenarios", "decode tokens/s (geomean)"]),
            rows,
        ));
    }
}
