//! The decision trees of Appendix AN applied to the measured data: per
//! workload class, the recommended backend and model with its evidence and
//! uncertainty, or "no decision" with the reason (see `assay_analysis::decide`).

use std::collections::{BTreeMap, BTreeSet};

use crate::document::{Block, header, sig};
use crate::{Out, Report, source};
use assay_analysis::decide::{self, Decisions, ModelTraits, Outcome};
use assay_core::domain::Evidence;
use assay_core::stage::StageError;

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
    // backends and simulated data never are.
    let mut compiler_real = BTreeSet::new();
    let mut not_real = BTreeSet::new();
    for m in &rep.manifests {
        let real = Evidence::is_measured(&m.evidence)
            && m.actual.compiler.as_ref().is_some_and(|c| c.real);
        if real {
            compiler_real.insert(m.backend.clone());
        } else {
            not_real.insert(m.backend.clone());
        }
    }
    let compiler_real: BTreeSet<String> = compiler_real.difference(&not_real).cloned().collect();
    decide::decide(
        &rep.summary,
        &rep.cost,
        &rep.p.scenarios,
        &rep.p.workloads,
        &compiler_real,
        &models,
    )
}

pub fn decisions(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    let d = compute(rep);
    out.doc.push(Block::Heading(
        2,
        "Decisions by workload class (Appendix AN)".into(),
    ));
    out.doc.push(Block::Para(
        "AN.1 per class on its scenarios: decode-heavy (gen >= 64 or decode fraction > 0.9) ranks by decode \
         tokens/s; batched prefill by prefill cost; otherwise by single-prompt prefill latency. Several \
         scenarios rank by the geometric mean. A recommendation needs the winner ahead of the runner-up \
         with disjoint 95% intervals in every scenario of the class; otherwise there is no decision. \
         Simulated data never decides. Class shapes and the rules: docs/decisions.md."
            .into(),
    ));
    let mut rows = Vec::new();
    for dec in &d.per_class {
        let outcome = match &dec.outcome {
            Outcome::Recommend {
                backend,
                model,
                value,
                ci_low,
                ci_high,
                runner_up,
                note,
            } => {
                let vs = runner_up.as_ref().map_or_else(String::new, |(b, m, v)| {
                    format!("; runner-up {m} on {b}: {}", sig(*v, 4))
                });
                let note = if note.is_empty() {
                    String::new()
                } else {
                    format!(" ({note})")
                };
                out.claim(
                    format!("decision/{}/recommendation", dec.class.name()),
                    format!(
                        "For {} ({}), use {model} on {backend}: {} = {} {} (95% CI [{}, {}]){vs}",
                        dec.class.title().to_lowercase(),
                        dec.scenarios.join(", "),
                        dec.metric,
                        sig(*value, 4),
                        dec.unit,
                        sig(*ci_low, 4),
                        sig(*ci_high, 4)
                    ),
                    *value,
                    &dec.unit,
                    "measured",
                    winner_source(rep, dec, backend, model),
                );
                format!(
                    "use {model} on {backend}: {} {} [{}, {}]{vs}{note}",
                    sig(*value, 4),
                    dec.unit,
                    sig(*ci_low, 4),
                    sig(*ci_high, 4)
                )
            }
            // The reason already names the candidate the numbers lean to.
            Outcome::NoDecision { reason, .. } => {
                format!("no decision: evidence insufficient; {reason}")
            }
        };
        rows.push(vec![
            dec.class.title().to_string(),
            if dec.scenarios.is_empty() {
                format!("none ({})", dec.class.shape())
            } else {
                dec.scenarios.join(", ")
            },
            dec.branch.clone(),
            outcome,
            dec.cold_start.clone(),
        ]);
    }
    out.doc.push(Block::Table(
        header(&[
            "workload class",
            "scenarios",
            "AN.1 branch",
            "decision",
            "cold start (AN.3)",
        ]),
        rows,
    ));
    let compiler: Vec<String> = d
        .compiler
        .iter()
        .map(|(backend, advice)| format!("{backend}: {advice}"))
        .collect();
    if !compiler.is_empty() {
        out.doc
            .push(Block::Para("Compiler enablement (AN.2):".into()));
        out.doc.push(Block::List(compiler));
    }
    out.doc
        .push(Block::Para(format!("Scaling (AN.4): {}", d.scaling)));
    Ok(())
}

/// The rows the recommended value was computed from: the winner's own rows,
/// one per scenario of the class, in the cost table for a cost-ranked
/// decision (batched prefill) and in the summary otherwise. The rows that
/// only informed the branch or the comparison stay in the table above.
fn winner_source(
    rep: &Report<'_>,
    dec: &decide::Decision,
    backend: &str,
    model: &str,
) -> crate::ClaimSource {
    let winner = dec
        .candidates
        .iter()
        .find(|c| c.backend == backend && c.model == model);
    let per_scenario = winner.map_or(&[][..], |c| c.per_scenario.as_slice());
    let cost_rows: Vec<u32> = per_scenario.iter().filter_map(|v| v.cost_row).collect();
    match rep.cost_in {
        Some(cost_in) if !cost_rows.is_empty() && cost_rows.len() == per_scenario.len() => {
            source(cost_in, cost_rows)
        }
        _ => source(rep.summary_in, per_scenario.iter().map(|v| v.row).collect()),
    }
}
