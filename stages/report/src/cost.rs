//! Cost and capacity as shadow prices (Appendices AA and V): $ per 1M tokens per tier, workers, request mix and tiered routing.

mod sensitivity;

use crate::document::{Block, f, header};
use crate::{Out, Report, source, spec_source};
use assay_analysis::cost::{self, CostParams};
use assay_core::stage::{Input, StageError};
use assay_core::tables;

pub fn cost(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    // Cost.
    out.doc.push(Block::Heading(
        2,
        "Cost and capacity (shadow prices)".into(),
    ));
    if let (Some(cost_in), Some(params)) = (rep.cost_in, &rep.p.cost) {
        shadow_prices(rep, cost_in, params, out);
        cost_per_request(rep, params, out)?;
        tiered_routing(rep, out)?;
        sensitivity::sensitivity(rep, out)?;
    } else {
        out.doc.push(Block::Para(
            "No cost parameters in the spec: no cost claims.".into(),
        ));
    }

    Ok(())
}

/// $ per 1M tokens and workers per cell, phase and tier, with the figure.
/// The planned volume, its mean load and the burst factor are the spec's
/// inputs: claims whose source is the spec's digest and field.
fn shadow_prices(rep: &Report<'_>, cost_in: &Input, params: &CostParams, out: &mut Out) {
    let mean_load = cost::mean_load_tokens_per_s(params.tokens_per_month);
    let evidence = &rep.evidence;
    out.claim(
        "spec/cost/tokens_per_month".into(),
        format!(
            "Planned volume: {} tokens per 30-day month (the spec's cost.tokens_per_month)",
            params.tokens_per_month
        ),
        params.tokens_per_month,
        "tokens/month",
        evidence,
        spec_source("cost.tokens_per_month", &params.tokens_per_month),
    );
    out.claim(
        "capacity/mean_load_tokens_per_s".into(),
        format!(
            "Mean load of the planned volume: {} tokens/s (cost.tokens_per_month / 2592000 s, a 30-day month)",
            f(mean_load, 1)
        ),
        mean_load,
        "tokens/s",
        evidence,
        spec_source("cost.tokens_per_month", &params.tokens_per_month),
    );
    out.claim(
        "spec/cost/burst_factor".into(),
        format!(
            "Burst factor (peak / mean load) for capacity: {} (the spec's cost.burst_factor)",
            params.burst_factor
        ),
        params.burst_factor,
        "ratio",
        evidence,
        spec_source("cost.burst_factor", &params.burst_factor),
    );
    out.doc.push(Block::Para(format!(
        "Shadow prices: compute time priced per worker-hour (`usd_per_1M = 1e6 / tokens_per_s / 3600 * usd_per_hour`), \
         not total cost of ownership. Capacity for {} tokens/month (30-day month, mean load {} tokens/s) at burst factor {}.",
        params.tokens_per_month,
        f(mean_load, 1),
        params.burst_factor
    )));
    let mut rows = Vec::new();
    for (i, c) in rep.cost.iter().enumerate() {
        rows.push(vec![
            c.backend.clone(),
            c.model.clone(),
            c.scenario.clone(),
            c.phase.clone(),
            c.tier.clone(),
            f(c.usd_per_1m, 4),
            f(c.workers_utilization_perfect, 2),
            c.workers_required.to_string(),
            f(c.usd_per_month, 2),
        ]);
        out.claim(
            format!("cost/{}/{}/{}/usd_per_1m", c.cell, c.phase, c.tier),
            format!(
                "Shadow price of {} tokens for {} on {}, scenario {}, {} tier: ${} per 1M tokens",
                c.phase,
                c.model,
                c.backend,
                c.scenario,
                c.tier,
                f(c.usd_per_1m, 4)
            ),
            c.usd_per_1m,
            "USD/1M tokens",
            &c.evidence,
            source(cost_in, vec![i as u32]),
        );
        out.claim(
            format!("capacity/{}/{}/{}/workers", c.cell, c.phase, c.tier),
            format!(
                "Workers needed for the planned volume at burst, {} of {} on {}, scenario {}: {}",
                c.phase, c.model, c.backend, c.scenario, c.workers_required
            ),
            c.workers_required as f64,
            "workers",
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
            "tier",
            "$/1M tokens",
            "workers (perfect)",
            "workers (burst)",
            "$/month",
        ]),
        rows,
    ));
    out.doc.extend(crate::figures::cost_per_1m(&rep.cost));
}

/// Cost per request of each class of the request mix, when the cost node
/// wrote the `requests` table.
fn cost_per_request(
    rep: &Report<'_>,
    params: &CostParams,
    out: &mut Out,
) -> Result<(), StageError> {
    let Some(requests_in) = rep.inputs.iter().find(|i| i.name == cost::output::REQUESTS) else {
        return Ok(());
    };
    let requests: Vec<assay_analysis::cost::RequestCostRow> =
        tables::read_rows(rep.ctx, requests_in)?;
    out.doc
        .push(Block::Heading(3, "Cost per request (request mix)".into()));
    out.doc.push(Block::Para(
        "A request takes `prompt / prefill tokens/s + generation / decode tokens/s` seconds of one \
         worker; the mix is the share-weighted expectation (Appendix V.4). The request mix, as the \
         spec's cost.request_mix states it:"
            .into(),
    ));
    out.doc.push(Block::Table(
        header(&["class", "share", "prompt tokens", "generated tokens"]),
        params
            .request_mix
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.share.to_string(),
                    c.prompt_tokens.to_string(),
                    c.gen_tokens.to_string(),
                ]
            })
            .collect(),
    ));
    let mut rows = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        rows.push(vec![
            r.backend.clone(),
            r.model.clone(),
            r.scenario.clone(),
            r.tier.clone(),
            r.class.clone(),
            f(r.tokens_per_request, 1),
            f(r.seconds_per_request, 4),
            f(r.usd_per_1k_requests, 4),
        ]);
        out.claim(
            format!("requests/{}/{}/{}/usd_per_1k", r.cell, r.tier, r.class),
            format!(
                "Shadow price of 1,000 {} requests on {} ({}), {} tier, measured in scenario {}: ${}",
                r.class,
                r.model,
                r.backend,
                r.tier,
                r.scenario,
                f(r.usd_per_1k_requests, 4)
            ),
            r.usd_per_1k_requests,
            "USD/1k requests",
            &r.evidence,
            source(requests_in, vec![i as u32]),
        );
    }
    out.doc.push(Block::Table(
        header(&[
            "backend",
            "model",
            "scenario",
            "tier",
            "class",
            "tokens/request",
            "s/request",
            "$/1k requests",
        ]),
        rows,
    ));
    Ok(())
}

/// Cost of the request mix under each routing policy, when the cost node
/// wrote the `routing` table.
fn tiered_routing(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    let Some(routing_in) = rep.inputs.iter().find(|i| i.name == cost::output::ROUTING) else {
        return Ok(());
    };
    let routing: Vec<assay_analysis::cost::RoutingRow> = tables::read_rows(rep.ctx, routing_in)?;
    out.doc
        .push(Block::Heading(3, "Tiered routing (Appendix V.5)".into()));
    let mut rows = Vec::new();
    for (i, r) in routing.iter().enumerate() {
        rows.push(vec![
            r.tier.clone(),
            r.policy.clone(),
            f(r.usd_per_1k_requests, 4),
        ]);
        out.claim(
            format!("routing/{}/usd_per_1k", r.tier),
            format!(
                "Shadow price of 1,000 mixed requests under the routing policy {}, {} tier: ${}",
                r.policy,
                r.tier,
                f(r.usd_per_1k_requests, 4)
            ),
            r.usd_per_1k_requests,
            "USD/1k requests",
            &r.evidence,
            source(routing_in, vec![i as u32]),
        );
    }
    out.doc.push(Block::Table(
        header(&[
            "tier",
            "policy (share backend/model/scenario)",
            "$/1k requests",
        ]),
        rows,
    ));
    Ok(())
}
