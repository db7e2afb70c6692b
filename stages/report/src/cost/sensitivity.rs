//! "Sensitivity (Appendix AV)": the cost decision under varied request
//! lengths, burst factors, tier prices and routing shares, read from the
//! cost node's `sensitivity` table.

use assay_analysis::cost::{self, sensitivity as av};
use assay_core::domain::Evidence;
use assay_core::stage::{Input, StageError};
use assay_core::tables;

use crate::document::{Block, f, header, sig};
use crate::{Out, Report, source};

type Row = av::SensitivityRow;

pub fn sensitivity(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    let Some(input) = rep
        .inputs
        .iter()
        .find(|i| i.name == cost::output::SENSITIVITY)
    else {
        return Ok(());
    };
    let rows: Vec<Row> = tables::read_rows(rep.ctx, input)?;
    out.doc
        .push(Block::Heading(3, "Sensitivity (Appendix AV)".into()));
    out.doc.push(Block::Para(format!(
        "The decision: the cheapest way to serve the planned traffic, that is the candidate with the smallest \
         fleet cost (`workers at burst x $/hour x 720`), ties broken by $ per 1,000 requests. `configuration` \
         ranks every cell at every tier serving the whole mix; `routing` ranks the routing policy on every \
         backend that measured all its routes (one pool of workers per route), the models being the policy's. \
         Each factor moves alone, the traffic held at the spec's requests per second: every class's generated \
         tokens `x{}` and `x{}`, the longest class's share `{}` (the other classes in proportion), burst factors \
         `{}`, each tier's price `x{}` and `x{}`, and the share of the routing policy's costliest route `{}` \
         (the method's fixed variations, Appendix AV). Formulas: docs/formulas.md, Sensitivity.",
        av::GEN_SCALES[0],
        av::GEN_SCALES[1],
        shifts(),
        list(&av::BURST_FACTORS),
        av::PRICE_SCALES[0],
        av::PRICE_SCALES[1],
        shifts(),
    )));
    if rows.is_empty() {
        out.doc.push(Block::Para(
            "No cell has both prefill and decode throughput: nothing to rank.".into(),
        ));
        return Ok(());
    }
    if rows.iter().any(|r| !Evidence::is_measured(&r.evidence)) {
        out.doc.push(Block::Warning(
            "Simulated cells take part in these rankings: they show how the decision reacts to each \
             factor and decide nothing."
                .into(),
        ));
    }
    table(&rows, input, out);
    for decision in [av::CONFIGURATION, av::ROUTING] {
        for factor in [
            av::REQUEST_LENGTH,
            av::BURST,
            av::TIER_PRICE,
            av::ROUTING_SHARES,
        ] {
            let picked: Vec<(usize, &Row)> = rows
                .iter()
                .enumerate()
                .filter(|(_, r)| r.decision == decision && r.factor == factor)
                .collect();
            if !picked.is_empty() {
                verdict(decision, factor, &picked, &rows, input, out);
            }
        }
    }
    Ok(())
}

fn shifts() -> String {
    av::SHARE_SHIFTS
        .iter()
        .map(|s| format!("{s:+}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn list(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The claim id of one row: decision, factor and variation, spaces as `_`.
fn row_id(r: &Row) -> String {
    format!(
        "sensitivity/{}/{}/{}",
        r.decision,
        r.factor,
        r.variation.replace(' ', "_")
    )
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// The table, with a claim for every number in it.
fn table(rows: &[Row], input: &Input, out: &mut Out) {
    let mut cells = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        cells.push(vec![
            r.decision.clone(),
            r.factor.clone(),
            r.variation.clone(),
            r.winner.clone(),
            sig(r.usd_per_1k_requests, 4),
            r.workers.to_string(),
            f(r.usd_per_month, 2),
            yes_no(r.flips),
            yes_no(r.ordering_kept),
        ]);
        let id = row_id(r);
        let what = if r.factor == av::BASELINE {
            format!("{} decision, the spec's assumptions", r.decision)
        } else {
            format!("{} decision, {}", r.decision, r.variation)
        };
        let src = || source(input, vec![i as u32]);
        out.claim(
            format!("{id}/usd_per_1k"),
            format!(
                "Shadow price of 1,000 requests on the winner {} ({what}): ${}",
                r.winner,
                sig(r.usd_per_1k_requests, 4)
            ),
            r.usd_per_1k_requests,
            "USD/1k requests",
            &r.evidence,
            src(),
        );
        out.claim(
            format!("{id}/workers"),
            format!(
                "Workers at burst on the winner {} ({what}): {}",
                r.winner, r.workers
            ),
            r.workers as f64,
            "workers",
            &r.evidence,
            src(),
        );
        out.claim(
            format!("{id}/usd_per_month"),
            format!(
                "Fleet cost of the winner {} ({what}): ${} per month",
                r.winner,
                f(r.usd_per_month, 2)
            ),
            r.usd_per_month,
            "USD/month",
            &r.evidence,
            src(),
        );
    }
    out.doc.push(Block::Table(
        header(&[
            "decision",
            "factor",
            "variation",
            "winner",
            "$/1k requests",
            "workers",
            "$/month",
            "flips?",
            "order within tiers kept?",
        ]),
        cells,
    ));
}

/// One sentence per decision and factor: robust or not, and the factor's
/// own check (AV.2 for burst, AV.3 for prices).
fn verdict(
    decision: &str,
    factor: &str,
    picked: &[(usize, &Row)],
    rows: &[Row],
    input: &Input,
    out: &mut Out,
) {
    let evidence = Evidence::all_measured(
        picked
            .iter()
            .map(|(_, r)| Evidence::is_measured(&r.evidence)),
    );
    let evidence = evidence.as_str();
    let indices: Vec<u32> = picked.iter().map(|(i, _)| *i as u32).collect();
    let flips: Vec<&Row> = picked.iter().map(|(_, r)| *r).filter(|r| r.flips).collect();
    let base = &picked[0].1.baseline_winner;
    let prefix = format!("sensitivity/{decision}/{factor}");
    out.claim(
        format!("{prefix}/flips"),
        format!(
            "Variations of {factor} that change the {decision} decision: {} of {}",
            flips.len(),
            picked.len()
        ),
        flips.len() as f64,
        "variations",
        evidence,
        source(input, indices.clone()),
    );
    out.claim(
        format!("{prefix}/variations"),
        format!(
            "Variations of {factor} asked of the {decision} decision: {}",
            picked.len()
        ),
        picked.len() as f64,
        "variations",
        evidence,
        source(input, indices.clone()),
    );
    // Simulated rankings illustrate; they never decide.
    let on = if evidence == Evidence::Measured.as_str() {
        "this data"
    } else {
        "this simulated data"
    };
    let mut text = if flips.is_empty() {
        format!(
            "{} ({decision}): robust on {on}; the winner {base} holds under all {} variations.",
            title(factor),
            picked.len()
        )
    } else {
        let moved: Vec<String> = flips
            .iter()
            .map(|r| format!("{} -> {}", r.variation, r.winner))
            .collect();
        format!(
            "{} ({decision}): not robust on {on}; the winner {base} flips under {} of {} variations ({}).",
            title(factor),
            flips.len(),
            picked.len(),
            moved.join("; ")
        )
    };
    match factor {
        av::TIER_PRICE => text.push_str(&prices(
            picked,
            (&prefix, on),
            evidence,
            &indices,
            input,
            out,
        )),
        av::BURST => text.push_str(&burst(picked, rows, &prefix, evidence, input, out)),
        _ => {}
    }
    out.doc.push(Block::Para(text));
}

fn title(factor: &str) -> &'static str {
    match factor {
        av::REQUEST_LENGTH => "Request length (AV.1)",
        av::BURST => "Burst factor (AV.2)",
        av::TIER_PRICE => "Tier prices (AV.3)",
        _ => "Routing shares (AV.4)",
    }
}

/// AV.3: price scaling must keep the order within every tier.
fn prices(
    picked: &[(usize, &Row)],
    (prefix, on): (&str, &str),
    evidence: &str,
    indices: &[u32],
    input: &Input,
    out: &mut Out,
) -> String {
    let reordered = picked.iter().filter(|(_, r)| !r.ordering_kept).count();
    out.claim(
        format!("{prefix}/reorders"),
        format!(
            "Price variations that reorder the candidates within a tier: {reordered} of {}",
            picked.len()
        ),
        reordered as f64,
        "variations",
        evidence,
        source(input, indices.to_vec()),
    );
    if reordered == 0 {
        format!(
            " Within every tier the candidates keep their order in all {} price variations: pricing scales \
             cost and changes at most the tier, not the backend ordering (AV.3 holds on {on}).",
            picked.len()
        )
    } else {
        format!(
            " {reordered} of {} price variations reorder the candidates within a tier: AV.3 does not hold \
             on {on}.",
            picked.len()
        )
    }
}

/// AV.2: how much burst moves the fleet, against the gap between the
/// winner and the runner-up at the spec's assumptions.
fn burst(
    picked: &[(usize, &Row)],
    rows: &[Row],
    prefix: &str,
    evidence: &str,
    input: &Input,
    out: &mut Out,
) -> String {
    let (Some((lo_i, lo)), Some((hi_i, hi))) = (picked.first(), picked.last()) else {
        return String::new();
    };
    let multiplier = hi.usd_per_month / lo.usd_per_month;
    out.claim(
        format!("{prefix}/fleet_multiplier"),
        format!(
            "Fleet cost of the winner at {} over {}: x{}",
            hi.variation,
            lo.variation,
            sig(multiplier, 3)
        ),
        multiplier,
        "ratio",
        evidence,
        source(input, vec![*lo_i as u32, *hi_i as u32]),
    );
    let mut text = format!(
        " From {} to {} the winner's fleet cost grows x{}",
        lo.variation,
        hi.variation,
        sig(multiplier, 3)
    );
    let baseline = rows
        .iter()
        .enumerate()
        .find(|(_, r)| r.decision == lo.decision && r.factor == av::BASELINE);
    if let Some((b_i, b)) = baseline
        && let (Some(name), Some(runner)) = (&b.runner_up, b.runner_up_usd_per_month)
    {
        let gap = runner / b.usd_per_month;
        out.claim(
            format!("sensitivity/{}/baseline/runner_up_gap", b.decision),
            format!(
                "Fleet cost of the runner-up {name} over the winner {} at the spec's assumptions: x{}",
                b.winner,
                sig(gap, 3)
            ),
            gap,
            "ratio",
            &b.evidence,
            source(input, vec![b_i as u32]),
        );
        let word = match multiplier.total_cmp(&gap) {
            std::cmp::Ordering::Greater => "more",
            std::cmp::Ordering::Less => "less",
            std::cmp::Ordering::Equal => "as much",
        };
        text.push_str(&format!(
            ", {word} {} the x{} between the winner and the runner-up {name} at the spec's assumptions",
            if word == "as much" { "as" } else { "than" },
            sig(gap, 3)
        ));
    }
    text.push('.');
    text
}
