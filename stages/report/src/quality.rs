//! Quality and cost per successful outcome (Appendices Z.2, Z.4, BE, AM
//! rule 8, V.5): the one place a report chooses between models. Without a
//! `quality` section it says that choosing a model needs quality data.

use std::collections::BTreeMap;

use crate::document::{Block, f, header};
use crate::{Out, Report, source};
use assay_analysis::quality::{self as quality_stage, QualityRow, RoutedRow, TierRow};
use assay_core::stage::{Input, StageError};
use assay_core::tables;
use assay_measure::evaluate::{self, EvaluationCounts, EvaluationRow};

pub fn quality(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    out.doc.push(Block::Heading(
        2,
        "Quality and cost per successful outcome (Appendices Z.2, BE)".into(),
    ));
    let find = |name: &str| rep.inputs.iter().find(|i| i.name == name);
    let (Some(quality_in), Some(tiers_in)) = (
        find(quality_stage::output::QUALITY),
        find(quality_stage::output::TIERS),
    ) else {
        out.doc.push(Block::Para(
            "No `quality` section in the spec: this report does not choose between models. Models differ \
             in quality, and a faster model that succeeds less often is not cheaper per successful outcome \
             (Appendix Z.2). Choosing a model needs success counts from an evaluation against the product's \
             acceptance criteria (Appendix BE.1, BE.4); the sections above show each model's speed and cost \
             side by side."
                .into(),
        ));
        return Ok(());
    };
    let rows: Vec<QualityRow> = tables::read_rows(rep.ctx, quality_in)?;
    let tiers: Vec<TierRow> = tables::read_rows(rep.ctx, tiers_in)?;
    let Some(first) = rows.first() else {
        out.doc.push(Block::Para(
            "The quality counts name no model with a measured cell priced by the request mix: no cost per success."
                .into(),
        ));
        return Ok(());
    };
    let evaluations = evaluations(rep)?;
    let (counts, origin) = if evaluations.is_empty() {
        (
            format!(
                "counts file {} (blake3 {})",
                first.counts_file, first.counts_blake3
            ),
            "an external evaluation",
        )
    } else {
        (
            format!(
                "acceptance set {} (blake3 {})",
                first.counts_file, first.counts_blake3
            ),
            "assay's own evaluation (each backend's greedy outputs judged by the items' criteria; a cell whose backend was not evaluated takes the reference backend's rate)",
        )
    };
    out.doc.push(Block::Para(format!(
        "Success counts from {origin}: {counts}. Success rate with a Wilson 95% interval; cost \
         per successful outcome = cost per request of the request mix (Appendix V.4) / success rate, its \
         interval [cost low / rate high, cost high / rate low], where the cost bounds price the prefill and \
         decode medians at their 95% interval bounds (docs/formulas.md). A model is chosen only where its \
         cost per success interval lies wholly below every other model's; each model is priced at its \
         cheapest backend in the scenario."
    )));
    success_rates(&rows, quality_in, &evaluations, &counts, out);
    if !evaluations.is_empty() {
        acceptance_results(&evaluations, out);
    }
    cost_per_success(&rows, quality_in, &counts, out);
    tier_decisions(&rows, &tiers, quality_in, tiers_in, &counts, out);
    if let Some(routed_in) = find(quality_stage::output::ROUTED) {
        routed(rep, routed_in, &counts, out)?;
    }
    Ok(())
}

/// An interval as text: `[low, high]`, the high bound `unbounded` where
/// there is none.
fn interval(low: f64, high: Option<f64>, digits: usize) -> String {
    format!(
        "[{}, {}]",
        f(low, digits),
        high.map_or_else(|| "unbounded".into(), |h| f(h, digits))
    )
}

/// A built-in evaluation's node: its counts, its item rows and the input
/// that holds them (what the success claims cite).
struct Evaluated<'a> {
    counts: EvaluationCounts,
    rows: Vec<EvaluationRow>,
    input: &'a Input,
}

/// The evaluate nodes' outputs among the report's inputs, by node id.
fn evaluations<'a>(rep: &Report<'a>) -> Result<Vec<Evaluated<'a>>, StageError> {
    let mut found = Vec::new();
    for input in rep
        .inputs
        .iter()
        .filter(|i| i.name == evaluate::output::EVALUATION)
    {
        let counts = rep
            .inputs
            .iter()
            .find(|i| i.node == input.node && i.name == evaluate::output::COUNTS)
            .ok_or_else(|| StageError::bad_input(input, "evaluation without its counts"))?;
        found.push(Evaluated {
            counts: tables::read_json(rep.ctx, counts)?,
            rows: tables::read_rows(rep.ctx, input)?,
            input,
        });
    }
    Ok(found)
}

/// One row per model (per model and evaluated backend with a built-in
/// evaluation): its counts and success rate.
fn success_rates(
    rows: &[QualityRow],
    input: &Input,
    evaluations: &[Evaluated<'_>],
    counts: &str,
    out: &mut Out,
) {
    // The first row of each (model, evaluated backend) carries its counts
    // (every row of it repeats them).
    let mut first: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        first
            .entry((r.model.as_str(), r.evaluated_by.as_str()))
            .or_insert(i);
    }
    out.doc
        .push(Block::Heading(3, "Success rates (Appendix BE.1)".into()));
    let mut table = Vec::new();
    for (&(model, by), &i) in &first {
        let r = &rows[i];
        let evaluator = match (r.evaluator.as_str(), r.evaluator_version.as_str()) {
            ("", _) => "not named".to_string(),
            (e, "") => e.to_string(),
            (e, v) => format!("{e} {v}"),
        };
        let mut line = vec![model.to_string()];
        if !evaluations.is_empty() {
            line.push(by.to_string());
        }
        line.extend([
            evaluator,
            r.successes.to_string(),
            r.trials.to_string(),
            f(r.success_rate, 3),
            interval(r.success_low, Some(r.success_high), 3),
        ]);
        table.push(line);
        // A built-in evaluation's counts are its item rows; a counts
        // file's, the quality row that carries them.
        let evaluated = evaluations
            .iter()
            .find(|e| e.counts.model == model && e.counts.backend == by);
        let src = || match evaluated {
            Some(e) => source(e.input, (0..e.rows.len() as u32).collect()),
            None => source(input, vec![i as u32]),
        };
        let (id, on) = match by {
            "" => (format!("quality/{model}"), String::new()),
            by => (format!("quality/{model}/{by}"), format!(" on {by}")),
        };
        let id = |what: &str| format!("{id}/{what}");
        out.claim(
            id("successes"),
            format!("{model}{on}: {} successes in the {counts}", r.successes),
            r.successes as f64,
            "successes",
            &r.evidence,
            src(),
        );
        out.claim(
            id("trials"),
            format!("{model}{on}: {} trials in the {counts}", r.trials),
            r.trials as f64,
            "trials",
            &r.evidence,
            src(),
        );
        for (what, value) in [
            ("success_rate", r.success_rate),
            ("success_low", r.success_low),
            ("success_high", r.success_high),
        ] {
            out.claim(
                id(what),
                format!(
                    "{model}{on}: {what} {} (Wilson 95%) from the {counts}",
                    f(value, 3)
                ),
                value,
                "fraction",
                &r.evidence,
                source(input, vec![i as u32]),
            );
        }
    }
    let mut head = vec!["model"];
    if !evaluations.is_empty() {
        head.push("evaluated on");
    }
    head.extend([
        "evaluator",
        "successes",
        "trials",
        "success rate",
        "95% interval (Wilson)",
    ]);
    out.doc.push(Block::Table(header(&head), table));
}

/// The longest output or pattern a table cell shows.
const SHOWN_CHARS: usize = 48;

/// Text for a table cell: one line, at most [`SHOWN_CHARS`] characters.
fn shown(text: &str) -> String {
    let one_line = text.replace(['\n', '\r', '|'], " ");
    if one_line.chars().count() <= SHOWN_CHARS {
        format!("`{one_line}`")
    } else {
        let cut: String = one_line.chars().take(SHOWN_CHARS).collect();
        format!("`{cut}`...")
    }
}

/// One row per (model, item): its criterion and each evaluated backend's
/// verdict, with the output where it failed.
fn acceptance_results(evaluations: &[Evaluated<'_>], out: &mut Out) {
    out.doc.push(Block::Heading(
        3,
        "Acceptance set results (built-in evaluation)".into(),
    ));
    let backends: Vec<&str> = {
        let mut seen: Vec<&str> = Vec::new();
        for e in evaluations {
            if !seen.contains(&e.counts.backend.as_str()) {
                seen.push(&e.counts.backend);
            }
        }
        seen
    };
    out.doc.push(Block::Para(
        "Each item's prompt ran greedily through each backend with the model's own tokenizer; an output \
         passes when its criterion holds (`exact`: equal after trimming white space; `contains`; `regex`: \
         matches somewhere). What ran, as each evaluation recorded it:"
            .into(),
    ));
    let ran = evaluations
        .iter()
        .map(|e| {
            let a = &e.counts.actual;
            vec![
                e.counts.model.clone(),
                e.counts.backend.clone(),
                format!("{} {}", a.library, a.library_version),
                a.device.clone(),
                a.dtype.clone(),
                a.threads.to_string(),
                e.counts.weights.weights_format.clone(),
            ]
        })
        .collect();
    out.doc.push(Block::Table(
        header(&[
            "model", "backend", "library", "device", "dtype", "threads", "weights",
        ]),
        ran,
    ));
    // (model, item line) -> (id, criterion, per backend verdict)
    let mut items: BTreeMap<(&str, u32), (String, String, Vec<String>)> = BTreeMap::new();
    for e in evaluations {
        let column = backends
            .iter()
            .position(|b| *b == e.counts.backend)
            .unwrap_or(0);
        for r in &e.rows {
            let entry = items.entry((r.model.as_str(), r.line)).or_insert_with(|| {
                (
                    r.id.clone(),
                    format!("{} {}", r.criterion, shown(&r.pattern)),
                    vec!["-".to_string(); backends.len()],
                )
            });
            entry.2[column] = if r.passed {
                "pass".into()
            } else {
                format!("fail: {}", shown(&r.output))
            };
        }
    }
    let mut head = vec!["model", "item", "line", "criterion"];
    head.extend(backends.iter().copied());
    let table = items
        .into_iter()
        .map(|((model, line), (id, criterion, verdicts))| {
            let mut row = vec![model.to_string(), id, line.to_string(), criterion];
            row.extend(verdicts);
            row
        })
        .collect();
    out.doc.push(Block::Table(header(&head), table));
}

/// One row per cell and pricing tier: cost per request and per success.
fn cost_per_success(rows: &[QualityRow], input: &Input, counts: &str, out: &mut Out) {
    out.doc.push(Block::Heading(
        3,
        "Cost per successful outcome (Appendix Z.2)".into(),
    ));
    let mut table = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        table.push(vec![
            r.backend.clone(),
            r.model.clone(),
            r.scenario.clone(),
            r.tier.clone(),
            f(r.usd_per_1k_requests, 4),
            interval(
                r.usd_per_1k_requests_low,
                Some(r.usd_per_1k_requests_high),
                4,
            ),
            r.usd_per_1k_successes
                .map_or_else(|| "no success".into(), |v| f(v, 4)),
            interval(r.usd_per_1k_successes_low, r.usd_per_1k_successes_high, 4),
        ]);
        let mut claim = |what: &str, value: f64, unit: &str, text: String| {
            out.claim(
                format!("quality/{}/{}/{what}", r.cell, r.tier),
                format!(
                    "{} on {}, scenario {}, {} tier: {text} ({counts})",
                    r.model, r.backend, r.scenario, r.tier
                ),
                value,
                unit,
                &r.evidence,
                source(input, vec![i as u32]),
            );
        };
        for (what, value) in [
            ("usd_per_1k_requests", r.usd_per_1k_requests),
            ("usd_per_1k_requests_low", r.usd_per_1k_requests_low),
            ("usd_per_1k_requests_high", r.usd_per_1k_requests_high),
        ] {
            claim(
                what,
                value,
                "USD/1k requests",
                format!("{what} ${}", f(value, 4)),
            );
        }
        for (what, value) in [
            ("usd_per_1k_successes", r.usd_per_1k_successes),
            ("usd_per_1k_successes_low", Some(r.usd_per_1k_successes_low)),
            ("usd_per_1k_successes_high", r.usd_per_1k_successes_high),
        ] {
            if let Some(value) = value {
                claim(
                    what,
                    value,
                    "USD/1k successes",
                    format!("{what} ${}", f(value, 4)),
                );
            }
        }
    }
    out.doc.push(Block::Table(
        header(&[
            "backend",
            "model",
            "scenario",
            "tier",
            "$/1k requests",
            "95% interval",
            "$/1k successes",
            "95% interval",
        ]),
        table,
    ));
}

/// The model tier decision and the routing recommendation per scenario and
/// pricing tier.
fn tier_decisions(
    rows: &[QualityRow],
    tiers: &[TierRow],
    quality_in: &Input,
    tiers_in: &Input,
    counts: &str,
    out: &mut Out,
) {
    out.doc.push(Block::Heading(
        3,
        "Model tier decision and routing (AM rule 8, Appendices Z.4, N.4)".into(),
    ));
    out.doc.push(Block::Para(
        "Per scenario and pricing tier, the models with counts, cheapest per success first. A tier (a \
         default model for most traffic, a more successful model for high-value or failed requests, \
         Appendix Z.4) is recommended where a model succeeds more often with disjoint Wilson intervals \
         and the planned volume is large: more than one worker at burst (AM rule 8). Rows on simulated \
         costs show what the rule gives; they are not decisions."
            .into(),
    ));
    let mut table = Vec::new();
    for (i, t) in tiers.iter().enumerate() {
        let lead = t.candidate_rows.first().map(|&j| j as usize);
        let verdict = match (t.verdict.as_str(), t.decides) {
            (v, true) => v.to_string(),
            (v, false) => format!("{v} (simulated: not a decision)"),
        };
        let (leader, per_success) = match lead.and_then(|j| rows.get(j).map(|r| (j, r))) {
            Some((j, r)) => {
                if let Some(v) = r.usd_per_1k_successes {
                    out.claim(
                        format!("tiers/{}/{}/leader_usd_per_1k_successes", t.scenario, t.tier),
                        format!(
                            "Scenario {}, {} tier: {} on {} is cheapest per success at ${} per 1k successes ({counts})",
                            t.scenario,
                            t.tier,
                            r.model,
                            r.backend,
                            f(v, 4)
                        ),
                        v,
                        "USD/1k successes",
                        &r.evidence,
                        source(quality_in, vec![j as u32]),
                    );
                }
                (
                    format!("{}@{}", r.model, r.backend),
                    format!(
                        "{} {}",
                        r.usd_per_1k_successes
                            .map_or_else(|| "no success".into(), |v| f(v, 4)),
                        interval(r.usd_per_1k_successes_low, r.usd_per_1k_successes_high, 4)
                    ),
                )
            }
            None => (String::new(), String::new()),
        };
        if t.workers_required > 0 {
            out.claim(
                format!("tiers/{}/{}/workers_required", t.scenario, t.tier),
                format!(
                    "Scenario {}, {} tier: the default model needs {} workers at burst for the planned volume",
                    t.scenario, t.tier, t.workers_required
                ),
                t.workers_required as f64,
                "workers",
                &t.evidence,
                source(tiers_in, vec![i as u32]),
            );
        }
        let routing = match &t.escalate_model {
            Some(e) => format!(
                "{}: default {}, escalate to {e}",
                t.routing,
                t.model.as_deref().unwrap_or("")
            ),
            None => t.routing.clone(),
        };
        table.push(vec![
            t.scenario.clone(),
            t.tier.clone(),
            t.candidates.clone(),
            verdict,
            leader,
            per_success,
            routing,
            format!("{}; {}", t.reason, t.routing_reason),
        ]);
    }
    out.doc.push(Block::Table(
        header(&[
            "scenario",
            "tier",
            "models (cheapest per success first)",
            "verdict",
            "cheapest per success",
            "$/1k successes [95%]",
            "routing",
            "why",
        ]),
        table,
    ));
}

/// The spec's routing policy priced per success (V.5).
fn routed(
    rep: &Report<'_>,
    routed_in: &Input,
    counts: &str,
    out: &mut Out,
) -> Result<(), StageError> {
    let routed: Vec<RoutedRow> = tables::read_rows(rep.ctx, routed_in)?;
    out.doc.push(Block::Heading(
        3,
        "The routing policy per success (Appendix V.5)".into(),
    ));
    if routed.is_empty() {
        out.doc.push(Block::Para(
            "A model the routing policy sends requests to has no quality counts: the policy's success rate is unknown."
                .into(),
        ));
        return Ok(());
    }
    out.doc.push(Block::Para(
        "Requests routed by share, not by difficulty: the policy's success rate is the share-weighted rate, \
         its bounds the share-weighted Wilson bounds."
            .into(),
    ));
    let mut table = Vec::new();
    for (i, r) in routed.iter().enumerate() {
        table.push(vec![
            r.tier.clone(),
            r.policy.clone(),
            f(r.success_rate, 3),
            interval(r.success_low, Some(r.success_high), 3),
            f(r.usd_per_1k_requests, 4),
            r.usd_per_1k_successes
                .map_or_else(|| "no success".into(), |v| f(v, 4)),
            interval(r.usd_per_1k_successes_low, r.usd_per_1k_successes_high, 4),
        ]);
        let values = [
            ("success_rate", Some(r.success_rate), "fraction"),
            ("success_low", Some(r.success_low), "fraction"),
            ("success_high", Some(r.success_high), "fraction"),
            (
                "usd_per_1k_requests",
                Some(r.usd_per_1k_requests),
                "USD/1k requests",
            ),
            (
                "usd_per_1k_successes",
                r.usd_per_1k_successes,
                "USD/1k successes",
            ),
            (
                "usd_per_1k_successes_low",
                Some(r.usd_per_1k_successes_low),
                "USD/1k successes",
            ),
            (
                "usd_per_1k_successes_high",
                r.usd_per_1k_successes_high,
                "USD/1k successes",
            ),
        ];
        for (what, value, unit) in values {
            let Some(value) = value else { continue };
            out.claim(
                format!("routed/{}/{what}", r.tier),
                format!(
                    "Routing policy {}, {} tier: {what} {} ({counts})",
                    r.policy,
                    r.tier,
                    f(value, 4)
                ),
                value,
                unit,
                &r.evidence,
                source(routed_in, vec![i as u32]),
            );
        }
    }
    out.doc.push(Block::Table(
        header(&[
            "tier",
            "policy (share backend/model/scenario)",
            "success rate",
            "95% interval",
            "$/1k requests",
            "$/1k successes",
            "95% interval",
        ]),
        table,
    ));
    Ok(())
}
