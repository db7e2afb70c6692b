//! The summary, right under the title: the answer first (issue 15; seed
//! X.1 and X.5: the question, and how the outcome feeds the decision). It
//! states the question and the decision it feeds, the decision per
//! workload class with its headline figure and 95% interval, what could
//! not be decided and why, and the top risks; the evidence follows in the
//! template's order.
//!
//! It is built after every other section, from the same decision records
//! (`decisions::compute`), claims and risks, so it cannot disagree with
//! them. Its figures are claims: a recommendation's value is the decision
//! section's claim (cited by id), its interval ends and runner-up are
//! `summary/...` claims on the same rows. `answers` is the one place that
//! reads the decision records' shape.

use crate::document::{Block, header, sig};
use crate::{ClaimSource, Out, Report, source};
use assay_analysis::decide::{CandidateScore, Decisions, ModelChoice, Outcome};

/// How many risks the summary repeats from Risks and limits.
const TOP_RISKS: usize = 3;

/// One line of the answer, independent of how the decision records are
/// shaped.
struct Answer {
    /// Claim id stem: class, and model and dtype for a per-model answer.
    key: String,
    /// The workload class's title.
    class: String,
    /// What in the class it answers for, e.g. `llama-8x512 (f32)` or
    /// `which model`; none for the class as a whole.
    part: Option<String>,
    scenarios: Vec<String>,
    verdict: Verdict,
}

impl Answer {
    /// `Interactive chat, llama-8x512 (f32)`, or the class alone.
    fn subject(&self) -> String {
        match &self.part {
            Some(part) => format!("{}, {part}", self.class),
            None => self.class.clone(),
        }
    }
}

enum Verdict {
    Decided(Box<Decided>),
    /// A model chosen by cost per successful outcome (AM rule 8): quoted
    /// from the quality stage's `tiers` rows, whose claims carry the figures.
    ModelChosen {
        scenario: String,
        tier: String,
        model: String,
        backend: Option<String>,
        reason: String,
    },
    Undecided {
        reason: String,
    },
}

struct Decided {
    /// What to do, e.g. `serve on candle-cpu`.
    choice: String,
    metric: String,
    unit: String,
    value: f64,
    ci: (f64, f64),
    /// The decision section's claim of `value`.
    decision_claim: String,
    rows: Rows,
    /// The runner-up, its value and rows.
    runner_up: Option<(String, f64, Rows)>,
}

/// The rows a figure was computed from: one per scenario of the class, in
/// the cost table for a cost-ranked decision, else in the summary.
#[derive(Clone, Default)]
struct Rows {
    summary: Vec<u32>,
    /// Set when every scenario has a cost row.
    cost: Option<Vec<u32>>,
}

impl Rows {
    fn of(candidate: Option<&CandidateScore>) -> Rows {
        let per = candidate.map_or(&[][..], |c| c.per_scenario.as_slice());
        let cost: Vec<u32> = per.iter().filter_map(|v| v.cost_row).collect();
        Rows {
            summary: per.iter().map(|v| v.row).collect(),
            cost: (!cost.is_empty() && cost.len() == per.len()).then_some(cost),
        }
    }

    fn source(&self, rep: &Report<'_>) -> ClaimSource {
        match (&self.cost, rep.cost_in) {
            (Some(rows), Some(cost_in)) => source(cost_in, rows.clone()),
            _ => source(rep.summary_in, self.summary.clone()),
        }
    }
}

/// The adapter: every answer of the decision records, class by class, in
/// their order. A class without a measured model is one undecided answer;
/// otherwise each model configuration's backend decision is one answer,
/// and a choice between models that needs quality data is one more.
fn answers(d: &Decisions) -> Vec<Answer> {
    let mut out = Vec::new();
    for dec in &d.per_class {
        let class = dec.class.title();
        if dec.backends.is_empty() {
            out.push(Answer {
                key: dec.class.name().to_string(),
                class: class.to_string(),
                part: None,
                scenarios: dec.scenarios.clone(),
                verdict: Verdict::Undecided {
                    reason: dec
                        .unevaluated
                        .clone()
                        .unwrap_or_else(|| "no measurements in the class's scenarios".to_string()),
                },
            });
            continue;
        }
        for b in &dec.backends {
            let key = format!("{}/{}/{}", dec.class.name(), b.model, b.dtype);
            let verdict = match &b.outcome {
                Outcome::Recommend {
                    backend,
                    value,
                    ci_low,
                    ci_high,
                    runner_up,
                    ..
                } => {
                    let candidate = |name: &str| b.candidates.iter().find(|c| c.backend == name);
                    Verdict::Decided(Box::new(Decided {
                        choice: format!("serve on {backend}"),
                        metric: dec.metric.clone(),
                        unit: dec.unit.clone(),
                        value: *value,
                        ci: (*ci_low, *ci_high),
                        decision_claim: format!("decision/{key}/recommendation"),
                        rows: Rows::of(candidate(backend.as_str())),
                        runner_up: runner_up
                            .as_ref()
                            .map(|(rb, rv)| (rb.clone(), *rv, Rows::of(candidate(rb.as_str())))),
                    }))
                }
                Outcome::NoDecision { reason, .. } => Verdict::Undecided {
                    reason: reason.clone(),
                },
            };
            out.push(Answer {
                key,
                class: class.to_string(),
                part: Some(format!("{} ({})", b.model, b.dtype)),
                scenarios: dec.scenarios.clone(),
                verdict,
            });
        }
        match &dec.models.choice {
            ModelChoice::NeedsQuality { reason } => out.push(Answer {
                key: format!("{}/model", dec.class.name()),
                class: class.to_string(),
                part: Some("which model".into()),
                scenarios: dec.scenarios.clone(),
                verdict: Verdict::Undecided {
                    reason: reason.clone(),
                },
            }),
            ModelChoice::ByCostPerSuccess { tiers } => {
                for t in tiers {
                    let verdict = match (&t.model, t.chooses()) {
                        (Some(model), true) => Verdict::ModelChosen {
                            scenario: t.scenario.clone(),
                            tier: t.tier.clone(),
                            model: model.clone(),
                            backend: t.backend.clone(),
                            reason: t.reason.clone(),
                        },
                        // The rule chose, on simulated costs: its result,
                        // not a decision.
                        _ if t.verdict == "choose" && !t.decides => Verdict::Undecided {
                            reason: format!(
                                "simulated data is not evidence; the rule's result: {}",
                                t.reason
                            ),
                        },
                        _ => Verdict::Undecided {
                            reason: t.reason.clone(),
                        },
                    };
                    out.push(Answer {
                        key: format!("{}/model/{}/{}", dec.class.name(), t.scenario, t.tier),
                        class: class.to_string(),
                        part: Some(format!("which model ({}, tier {})", t.scenario, t.tier)),
                        scenarios: vec![t.scenario.clone()],
                        verdict,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// The summary's blocks; its claims go to `out`. Call after every other
/// section (it reads their claims and the risks).
pub fn summary(rep: &Report<'_>, out: &mut Out) -> Vec<Block> {
    let mut doc = vec![
        Block::Heading(2, "Summary".into()),
        Block::Para(format!("Question: {}", rep.p.question)),
        Block::Para(format!("Decision it feeds: {}", rep.p.decision)),
    ];
    let answers = answers(&crate::decisions::compute(rep));
    let mut decided = Vec::new();
    let mut chosen = Vec::new();
    let mut undecided = Vec::new();
    for a in &answers {
        match &a.verdict {
            Verdict::Decided(d) => decided.push(decided_line(rep, out, a, d)),
            Verdict::ModelChosen {
                scenario,
                tier,
                model,
                backend,
                reason,
            } => chosen.push(vec![
                a.class.clone(),
                scenario.clone(),
                tier.clone(),
                match backend {
                    Some(b) => format!("{model} on {b}"),
                    None => model.clone(),
                },
                reason.clone(),
            ]),
            Verdict::Undecided { reason } => undecided.push(vec![
                a.subject(),
                if a.scenarios.is_empty() {
                    "none".to_string()
                } else {
                    a.scenarios.join(", ")
                },
                reason.clone(),
            ]),
        }
    }
    doc.push(Block::Heading(3, "Decisions".into()));
    if decided.is_empty() && chosen.is_empty() {
        doc.push(Block::Para(
            "Nothing is decided on this data: no workload class has a backend ahead of the \
             runner-up with disjoint 95% intervals on measured data (why, below)."
                .into(),
        ));
    } else {
        doc.push(Block::Para(
            "Each recommendation beats the runner-up with disjoint 95% intervals in every scenario \
             of its class, on measured data; the claim named traces it (`assay trace ID`)."
                .into(),
        ));
        if !decided.is_empty() {
            doc.push(Block::List(decided));
        }
        if !chosen.is_empty() {
            doc.push(Block::Para(
                "The model, chosen by cost per successful outcome, not by speed (AM rule 8; the \
                 quality section's `tiers` rows and their claims):"
                    .into(),
            ));
            doc.push(Block::Table(
                header(&["workload class", "scenario", "tier", "model", "why"]),
                chosen,
            ));
        }
    }
    if !undecided.is_empty() {
        doc.push(Block::Heading(3, "Not decided".into()));
        doc.push(Block::Table(
            header(&["for", "scenarios", "why not"]),
            undecided,
        ));
    }
    let risks: Vec<String> = out.risks.iter().take(TOP_RISKS).cloned().collect();
    if !risks.is_empty() {
        doc.push(Block::Heading(3, "Top risks".into()));
        doc.push(Block::List(risks));
        if out.risks.len() > TOP_RISKS {
            doc.push(Block::Para(
                "The others are under Risks and limits, at the end.".into(),
            ));
        }
    }
    doc
}

/// One recommendation: what to do, the figure with its interval, the
/// runner-up, and the claim that traces it.
fn decided_line(rep: &Report<'_>, out: &mut Out, a: &Answer, d: &Decided) -> String {
    let stem = format!("summary/{}", a.key);
    let on = match &a.part {
        Some(part) => format!("{} ({}), {part}", a.class, a.scenarios.join(", ")),
        None => format!("{} ({})", a.class, a.scenarios.join(", ")),
    };
    // Without the decision section's claim the value gets its own.
    let cited = if out.claims.iter().any(|c| c.id == d.decision_claim) {
        d.decision_claim.clone()
    } else {
        format!("{stem}/value")
    };
    let mut claim = |what: &str, value: f64, statement: String, rows: &Rows| {
        out.claim(
            format!("{stem}/{what}"),
            statement,
            value,
            &d.unit,
            "measured",
            rows.source(rep),
        );
    };
    claim(
        "ci_low",
        d.ci.0,
        format!(
            "{on}: lower end of the 95% interval of the recommended {}, {} {}",
            d.metric,
            sig(d.ci.0, 4),
            d.unit
        ),
        &d.rows,
    );
    claim(
        "ci_high",
        d.ci.1,
        format!(
            "{on}: upper end of the 95% interval of the recommended {}, {} {}",
            d.metric,
            sig(d.ci.1, 4),
            d.unit
        ),
        &d.rows,
    );
    let vs = match &d.runner_up {
        Some((backend, value, rows)) => {
            claim(
                "runner_up",
                *value,
                format!(
                    "{on}: {} of the runner-up {backend}, {} {}",
                    d.metric,
                    sig(*value, 4),
                    d.unit
                ),
                rows,
            );
            format!("; runner-up {backend} {}", sig(*value, 4))
        }
        None => "; no other backend was measured in every scenario of the class".to_string(),
    };
    if cited != d.decision_claim {
        claim(
            "value",
            d.value,
            format!(
                "{on}: {} of the recommended configuration, {} {}",
                d.metric,
                sig(d.value, 4),
                d.unit
            ),
            &d.rows,
        );
    }
    format!(
        "{on}: {}; {} = {} {} (95% CI {} to {}){vs}. Claim `{cited}`.",
        d.choice,
        d.metric,
        sig(d.value, 4),
        d.unit,
        sig(d.ci.0, 4),
        sig(d.ci.1, 4),
    )
}
