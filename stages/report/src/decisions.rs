//! The decision trees of Appendix AN applied to the measured data: per
//! workload class and per model configuration, the recommended backend with
//! its evidence and uncertainty, or "no decision" with the reason; the
//! models side by side (no choice between them on speed); compiler advice
//! from eager-vs-compiled pairs (see `assay_analysis::decide`).

use std::collections::{BTreeMap, BTreeSet};

use crate::document::{Block, header, sig};
use crate::{Out, Report, source};
use assay_analysis::decide::{
    self, BackendTraits, Decision, Decisions, Inputs, ModelChoice, ModelTraits, Outcome,
    PhaseComparison, SloLimits,
};
use assay_core::domain::Evidence;
use assay_core::stage::StageError;

/// Compile counters a backend may record in its compiler evidence
/// (`detail`), reported as AN.2's shape-stability signal (Appendix T risk
/// 3: unique_graphs growth, recompile_limit warnings).
const COUNTERS: [&str; 3] = ["recompile_limit", "recompiles", "unique_graphs"];

/// The decisions for this report's data; also read by the limits section.
pub fn compute(rep: &Report<'_>) -> Decisions {
    let models: BTreeMap<String, ModelTraits> = rep
        .manifests
        .iter()
        .map(|m| {
            // One entry per (model, dtype that ran): a model measured at two
            // dtypes is two configurations for AN.4.
            (
                format!("{} ({})", m.model, m.actual.dtype),
                ModelTraits {
                    family: m.model_info.as_ref().map_or_else(
                        || {
                            m.actual
                                .server
                                .as_ref()
                                .and_then(|s| s.family.clone())
                                .unwrap_or_else(|| "unknown".into())
                        },
                        |i| i.arch.name().to_string(),
                    ),
                    dtype: m.actual.dtype.clone(),
                },
            )
        })
        .collect();
    // AN.2: a backend is compiler-real when every one of its measured
    // cells recorded evidence that the compiled graph ran (ONNX Runtime's
    // optimiser changed the graph, a TorchScript trace executed). Eager
    // backends and simulated data never are. Kind, device and threads (of
    // the first manifest, in input order) pair it with its eager baseline.
    let mut backends: BTreeMap<String, BackendTraits> = BTreeMap::new();
    let mut not_real = BTreeSet::new();
    for m in &rep.manifests {
        let real = Evidence::is_measured(&m.evidence)
            && m.actual.compiler.as_ref().is_some_and(|c| c.real);
        if !real {
            not_real.insert(m.backend.clone());
        }
        let t = backends
            .entry(m.backend.clone())
            .or_insert_with(|| BackendTraits {
                kind: m.requested.kind.as_str().to_string(),
                device: m.actual.device.clone(),
                threads: m.actual.threads,
                compiled: m.requested.compiled.clone(),
                compiler_real: true,
                counters: BTreeMap::new(),
            });
        if let Some(c) = &m.actual.compiler {
            for key in COUNTERS {
                if let Some(v) = c.detail.get(key) {
                    t.counters
                        .entry(key.to_string())
                        .or_insert_with(|| v.clone());
                }
            }
        }
    }
    for (name, t) in &mut backends {
        t.compiler_real = !not_real.contains(name);
    }
    decide::decide(&Inputs {
        summary: &rep.summary,
        cost: &rep.cost,
        scenarios: &rep.p.scenarios,
        workloads: &rep.p.workloads,
        backends: &backends,
        models: &models,
        slo: &slo_limits(rep),
        tiers: &rep.tiers,
    })
}

/// Per-scenario SLO limits for AN.3: the spec's in-process `slo` (each
/// scenario's override over the spec-wide limits) for scenarios without a
/// load profile, and each load profile's own `slo` (TTFT and TPOT) for
/// those with one, as validate judges them.
fn slo_limits(rep: &Report<'_>) -> BTreeMap<String, SloLimits> {
    rep.p
        .scenarios
        .iter()
        .filter_map(|s| {
            let limits = match &s.load {
                Some(load) => {
                    let slo = load.slo.as_ref()?;
                    SloLimits {
                        ttft_ms: slo.ttft_ms,
                        tpot_ms: slo.tpot_ms,
                        e2e_ms: None,
                    }
                }
                None => {
                    let l = rep.p.slo.as_ref()?.limits_for(&s.name);
                    SloLimits {
                        ttft_ms: l.ttft_ms,
                        tpot_ms: l.tpot_ms,
                        e2e_ms: l.e2e_ms,
                    }
                }
            };
            let any =
                limits.ttft_ms.is_some() || limits.tpot_ms.is_some() || limits.e2e_ms.is_some();
            any.then(|| (s.name.clone(), limits))
        })
        .collect()
}

pub fn decisions(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    let d = compute(rep);
    out.doc.push(Block::Heading(
        2,
        "Decisions by workload class (Appendix AN)".into(),
    ));
    out.doc.push(Block::Para(
        "AN.1 chooses a backend for each model (and dtype), per workload class, on the class's \
         scenarios: decode-heavy classes rank by decode tokens/s, batched prefill by prefill cost, \
         the rest by single-prompt latency, measured as TTFT where a micro or short scenario makes \
         TTFT the primary metric (AL.2). Several scenarios rank by the geometric mean. A \
         recommendation needs the winner ahead of the runner-up backend with disjoint 95% \
         intervals in every scenario of the class; otherwise there is no decision. Simulated data \
         never decides. Models are not chosen between on speed: a faster model is not a better \
         one if it succeeds less often, so their figures stand side by side. Class shapes and \
         the rules: docs/decisions.md."
            .into(),
    ));
    backend_table(rep, &d, out);
    model_table(rep, &d, out);
    compiler(&d, out);
    out.doc
        .push(Block::Para(format!("Scaling (AN.4): {}", d.scaling)));
    Ok(())
}

fn scenarios_cell(dec: &Decision) -> String {
    if dec.scenarios.is_empty() {
        return format!("none ({})", dec.class.shape());
    }
    if dec.scenario_types.is_empty() {
        return dec.scenarios.join(", ");
    }
    dec.scenario_types
        .iter()
        .map(|t| format!("{} ({})", t.scenario, t.kind.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// AN.1 and AN.3: one row per class and model configuration.
fn backend_table(rep: &Report<'_>, d: &Decisions, out: &mut Out) {
    out.doc.push(Block::Heading(
        3,
        "Backend per model (AN.1) and cold start (AN.3)".into(),
    ));
    let mut rows = Vec::new();
    for dec in &d.per_class {
        let scenarios = scenarios_cell(dec);
        if dec.backends.is_empty() {
            let reason = dec.unevaluated.clone().unwrap_or_else(|| {
                format!(
                    "no measurements in the class's scenarios ({})",
                    dec.scenarios.join(", ")
                )
            });
            rows.push(vec![
                dec.class.title().to_string(),
                scenarios,
                dec.branch.clone(),
                "none".into(),
                format!("no decision: evidence insufficient; {reason}"),
                if dec.unevaluated.is_some() {
                    "not assessed: no scenario".into()
                } else {
                    "not assessed: no measurement".into()
                },
            ]);
            continue;
        }
        for b in &dec.backends {
            let outcome = match &b.outcome {
                Outcome::Recommend {
                    backend,
                    value,
                    ci_low,
                    ci_high,
                    runner_up,
                    note,
                } => {
                    let vs = runner_up.as_ref().map_or_else(
                        || {
                            "; no other backend was measured for it in every scenario of the class"
                                .to_string()
                        },
                        |(rb, rv)| format!("; runner-up {rb}: {}", sig(*rv, 4)),
                    );
                    out.claim(
                        format!(
                            "decision/{}/{}/{}/recommendation",
                            dec.class.name(),
                            b.model,
                            b.dtype
                        ),
                        format!(
                            "For {} ({}), serve {} ({}) on {backend}: {} = {} {} (95% CI [{}, {}]){vs}",
                            dec.class.title().to_lowercase(),
                            dec.scenarios.join(", "),
                            b.model,
                            b.dtype,
                            dec.metric,
                            sig(*value, 4),
                            dec.unit,
                            sig(*ci_low, 4),
                            sig(*ci_high, 4)
                        ),
                        *value,
                        &dec.unit,
                        "measured",
                        winner_source(rep, b, backend),
                    );
                    // Without a runner-up the note says why.
                    let vs = if runner_up.is_some() {
                        vs
                    } else {
                        String::new()
                    };
                    format!(
                        "serve on {backend}: {} {} [{}, {}]{vs} ({note})",
                        sig(*value, 4),
                        dec.unit,
                        sig(*ci_low, 4),
                        sig(*ci_high, 4)
                    )
                }
                // The reason already names the backend the numbers lean to.
                Outcome::NoDecision { reason, .. } => {
                    format!("no decision: evidence insufficient; {reason}")
                }
            };
            rows.push(vec![
                dec.class.title().to_string(),
                scenarios.clone(),
                dec.branch.clone(),
                format!("{} ({})", b.model, b.dtype),
                outcome,
                b.cold_start.clone(),
            ]);
        }
    }
    out.doc.push(Block::Table(
        header(&[
            "workload class",
            "scenarios (AL.1 type)",
            "AN.1 branch",
            "model (dtype)",
            "backend decision",
            "cold start (AN.3)",
        ]),
        rows,
    ));
}

/// The models of each class side by side: speed on the class metric and
/// cost per request, and why no model is chosen on them.
fn model_table(rep: &Report<'_>, d: &Decisions, out: &mut Out) {
    out.doc.push(Block::Heading(
        3,
        "Models side by side (no choice on speed)".into(),
    ));
    let mut rows = Vec::new();
    let mut choices = Vec::new();
    for dec in &d.per_class {
        for e in &dec.models.entries {
            let speed = match (e.value, e.ci_low, e.ci_high) {
                (Some(v), Some(lo), Some(hi)) => format!(
                    "{} {} [{}, {}]",
                    sig(v, 4),
                    dec.unit,
                    sig(lo, 4),
                    sig(hi, 4)
                ),
                _ => "n/a".into(),
            };
            let backend = match (&e.backend, e.backend_decided) {
                (Some(b), true) => b.clone(),
                (Some(b), false) => format!("{b} (leading; not decided)"),
                (None, _) => "none ranked".into(),
            };
            let (per_request, per_1m) = match (&e.cost, &e.backend) {
                (Some(c), Some(b)) => {
                    // Per 1k requests, as the cost section prices requests.
                    let k = |usd: f64| usd * 1000.0;
                    if let Some(cost_in) = rep.cost_in {
                        out.claim(
                            format!(
                                "model/{}/{}/{}/usd_per_1k_requests",
                                dec.class.name(),
                                e.model,
                                e.dtype
                            ),
                            format!(
                                "For {} ({}), 1,000 requests to {} ({}) on {b} cost {} USD \
                                 (95% CI [{}, {}]) at tier {} (geometric mean over the scenarios)",
                                dec.class.title().to_lowercase(),
                                dec.scenarios.join(", "),
                                e.model,
                                e.dtype,
                                sig(k(c.usd_per_request), 4),
                                sig(k(c.ci_low), 4),
                                sig(k(c.ci_high), 4),
                                c.tier
                            ),
                            k(c.usd_per_request),
                            "USD per 1k requests",
                            &c.evidence,
                            source(cost_in, c.cost_rows.clone()),
                        );
                    }
                    (
                        format!(
                            "{} [{}, {}] ({})",
                            sig(k(c.usd_per_request), 4),
                            sig(k(c.ci_low), 4),
                            sig(k(c.ci_high), 4),
                            c.tier
                        ),
                        sig(c.usd_per_1m_tokens, 4),
                    )
                }
                _ => ("n/a".into(), "n/a".into()),
            };
            rows.push(vec![
                dec.class.title().to_string(),
                format!("{} ({})", e.model, e.dtype),
                backend,
                format!("{}: {speed}", dec.metric),
                per_request,
                per_1m,
                e.evidence.clone(),
            ]);
        }
        match &dec.models.choice {
            ModelChoice::NoModel => {}
            ModelChoice::Single { model, dtype } => choices.push(format!(
                "{}: one model configuration ({model} {dtype}), nothing to choose between.",
                dec.class.title()
            )),
            ModelChoice::NeedsQuality { reason } => {
                choices.push(format!("{}: {reason}.", dec.class.title()))
            }
            ModelChoice::ByCostPerSuccess { tiers } => choices.push(format!(
                "{}: chosen by cost per successful outcome, not by speed (AM rule 8; the quality \
                 section's `tiers` rows): {}.",
                dec.class.title(),
                tiers
                    .iter()
                    .map(tier_choice_text)
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }
    if rows.is_empty() {
        out.doc.push(Block::Para(
            "No model was ranked in any class: nothing to set side by side.".into(),
        ));
        return;
    }
    out.doc.push(Block::Table(
        header(&[
            "workload class",
            "model (dtype)",
            "backend",
            "speed [95% CI]",
            "USD per 1k requests [95% CI] (tier)",
            "USD per 1M generated tokens",
            "evidence",
        ]),
        rows,
    ));
    out.doc.push(Block::List(choices));
}

fn phase_cell(p: &PhaseComparison) -> String {
    let speedup = p
        .speedup
        .map_or_else(String::new, |s| format!(", eager/compiled {}x", sig(s, 4)));
    format!("{}{speedup}: {}", p.verdict.name(), p.reason)
}

/// AN.2: one line per backend, and the eager-vs-compiled pairs with their
/// figures.
fn compiler(d: &Decisions, out: &mut Out) {
    if d.compiler.is_empty() {
        return;
    }
    out.doc
        .push(Block::Heading(3, "Compiler enablement (AN.2)".into()));
    out.doc.push(Block::Para(
        "A compiled configuration is compared with each eager configuration of the same kind, \
         device and threads, on every model both measured at the same dtype. A phase is compiled \
         only where the compiled path is compiler-real and, in every scenario both measured, \
         faster with disjoint 95% intervals and with a p99 no higher than eager's (the tails \
         validated across the measured shapes)."
            .into(),
    ));
    out.doc.push(Block::List(
        d.compiler
            .iter()
            .map(|c| format!("{}: {}", c.backend, c.advice))
            .collect(),
    ));
    if d.compile_pairs.is_empty() {
        return;
    }
    let rows = d
        .compile_pairs
        .iter()
        .map(|p| {
            let phase = |name: &str| {
                p.phases
                    .iter()
                    .find(|x| x.phase == name)
                    .map_or_else(|| "n/a".to_string(), phase_cell)
            };
            vec![
                format!(
                    "{} ({}{})",
                    p.compiled,
                    p.path,
                    if p.compiler_real {
                        ", compiler-real"
                    } else {
                        ", not compiler-real"
                    }
                ),
                p.eager.clone(),
                format!("{} ({})", p.model, p.dtype),
                phase("prefill"),
                phase("decode"),
                p.shapes.clone(),
                p.advice.clone(),
            ]
        })
        .collect();
    out.doc.push(Block::Table(
        header(&[
            "compiled",
            "eager",
            "model (dtype)",
            "prefill",
            "decode",
            "shapes (AN.2 step 2)",
            "advice",
        ]),
        rows,
    ));
}

/// The rows the recommended value was computed from: the winner's own rows,
/// one per scenario of the class, in the cost table for a cost-ranked
/// decision (batched prefill) and in the summary otherwise. The rows that
/// only informed the branch or the comparison stay in the table above.
fn winner_source(
    rep: &Report<'_>,
    dec: &decide::BackendDecision,
    backend: &str,
) -> crate::ClaimSource {
    let winner = dec.candidates.iter().find(|c| c.backend == backend);
    let per_scenario = winner.map_or(&[][..], |c| c.per_scenario.as_slice());
    let cost_rows: Vec<u32> = per_scenario.iter().filter_map(|v| v.cost_row).collect();
    match rep.cost_in {
        Some(cost_in) if !cost_rows.is_empty() && cost_rows.len() == per_scenario.len() => {
            source(cost_in, cost_rows)
        }
        _ => source(rep.summary_in, per_scenario.iter().map(|v| v.row).collect()),
    }
}

/// One tier row as a class's model choice quotes it.
pub(crate) fn tier_choice_text(t: &assay_analysis::decide::TierChoice) -> String {
    let what = match (&t.model, &t.backend) {
        (Some(model), Some(backend)) if t.chooses() => format!("use {model} on {backend}"),
        (Some(model), Some(backend)) if t.verdict == "choose" => {
            format!("{model} on {backend} leads on simulated costs, which decide nothing")
        }
        _ => format!("no model chosen ({})", t.verdict),
    };
    format!("{} at {} tier: {what} ({})", t.scenario, t.tier, t.reason)
}
