//! cost: throughput to shadow-price dollars and capacity, with the seed's
//! Appendix AA formulas:
//!
//! ```text
//! seconds_per_1M = 1e6 / tokens_per_s
//! usd_per_1M     = (seconds_per_1M / 3600) * usd_per_hour
//! mean load      = tokens_per_month / (30 * 86400)        (30-day month)
//! workers        = max(1, ceil(mean_load / tokens_per_s * burst_factor))
//! ```
//!
//! With a request mix, `sensitivity` ranks the cheapest way to serve it
//! again under varied request lengths, bursts, prices and routing shares
//! (Appendix AV).

pub mod checks;
pub mod sensitivity;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use assay_core::domain::Evidence;
use assay_core::inputs::find_input;
use assay_core::stage::{Input, Outputs, Stage, StageContext, StageError};
use assay_core::tables::{self, CostRow, Phase, SummaryRow};

// 3: the `sensitivity` output (Appendix AV). 4: the `cost_checks` output
// (Appendix AI.4).
pub const COST_VERSION: u32 = 4;
pub const SECONDS_PER_MONTH: f64 = 30.0 * 86_400.0;
pub const HOURS_PER_MONTH: f64 = 30.0 * 24.0;

/// Phases whose throughput is priced.
pub const PRICED_PHASES: [Phase; 3] = [Phase::Prefill, Phase::Decode, Phase::E2e];

/// Pricing and volume assumptions. Every result is a shadow price: compute
/// time priced by the hour, not a total cost of ownership.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CostParams {
    /// Price of one worker-hour per pricing tier, e.g. `{on_demand: 1.0, spot: 0.3}`.
    pub usd_per_hour: BTreeMap<String, f64>,
    /// Planned volume, tokens per (30-day) month.
    pub tokens_per_month: f64,
    /// Ratio of peak (p95) load to mean load used for capacity planning.
    #[serde(default = "default_burst")]
    pub burst_factor: f64,
    /// Workload classes of the request mix (seed V.4). Each cell's prefill
    /// and decode throughput prices one request of each class; the mix is
    /// their share-weighted expectation. Shares sum to 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_mix: Vec<RequestClass>,
    /// A tiered routing policy (seed V.5): shares of requests sent to
    /// measured configurations. Needs `request_mix`. Shares sum to 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routing: Vec<Route>,
    /// Electricity price and carbon intensity (Appendix BA.2): a secondary
    /// term, computed only where energy passed its gating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<EnergyPrice>,
}

/// Parameters of the energy term.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnergyPrice {
    /// Electricity price, $ per kWh.
    pub usd_per_kwh: f64,
    /// Carbon intensity of that electricity, g CO2e per kWh (region- and
    /// time-dependent: a parameter, never assumed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carbon_g_per_kwh: Option<f64>,
}

/// kWh that 1M tokens take at `j_per_token` joules each.
pub fn kwh_per_1m(j_per_token: f64) -> f64 {
    j_per_token * 1e6 / 3.6e6
}

/// One workload class of the request mix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestClass {
    pub name: String,
    /// Fraction of requests in this class.
    pub share: f64,
    /// Prompt tokens per request.
    pub prompt_tokens: u32,
    /// Generated tokens per request.
    pub gen_tokens: u32,
}

/// One branch of a routing policy: a share of requests served by the
/// configuration measured in cell (backend, model, scenario).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub share: f64,
    pub backend: String,
    pub model: String,
    /// The scenario whose measurements price this branch.
    pub scenario: String,
}

/// Seconds one request takes on a worker: its prompt at the prefill rate,
/// its generation at the decode rate (phases measured apart, priced apart).
pub fn request_seconds(
    prompt_tokens: f64,
    gen_tokens: f64,
    prefill_tps: f64,
    decode_tps: f64,
) -> f64 {
    prompt_tokens / prefill_tps + gen_tokens / decode_tps
}

/// Dollars per 1,000 requests that take `seconds` each at `usd_per_hour`.
pub fn usd_per_1k_requests(seconds: f64, usd_per_hour: f64) -> f64 {
    1000.0 * seconds / 3600.0 * usd_per_hour
}

/// Share-weighted expectation (V.4 tokens per request, V.5 routed cost).
pub fn weighted(items: &[(f64, f64)]) -> f64 {
    items.iter().map(|(share, v)| share * v).sum()
}

fn default_burst() -> f64 {
    1.0
}

pub fn seconds_per_1m(tokens_per_s: f64) -> f64 {
    1e6 / tokens_per_s
}

pub fn usd_per_1m(tokens_per_s: f64, usd_per_hour: f64) -> f64 {
    seconds_per_1m(tokens_per_s) / 3600.0 * usd_per_hour
}

pub fn mean_load_tokens_per_s(tokens_per_month: f64) -> f64 {
    tokens_per_month / SECONDS_PER_MONTH
}

/// (utilisation-perfect workers, workers required at burst).
pub fn workers(tokens_per_month: f64, tokens_per_s: f64, burst_factor: f64) -> (f64, u64) {
    let perfect = mean_load_tokens_per_s(tokens_per_month) / tokens_per_s;
    let required = (perfect * burst_factor).ceil().max(1.0) as u64;
    (perfect, required)
}

/// Cost of one request class (or of the whole mix, class `mix`) on one cell
/// at one pricing tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RequestCostRow {
    pub cell: String,
    pub backend: String,
    pub model: String,
    pub scenario: String,
    pub evidence: String,
    pub tier: String,
    /// A class name, or `mix` for the share-weighted expectation.
    pub class: String,
    pub tokens_per_request: f64,
    pub seconds_per_request: f64,
    pub usd_per_1k_requests: f64,
}

/// Cost of the routing policy at one tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RoutingRow {
    pub tier: String,
    /// `measured` only when every routed cell is.
    pub evidence: String,
    /// The policy as written, e.g. `0.8 sim/small/short + 0.2 sim/big/short`.
    pub policy: String,
    pub usd_per_1k_requests: f64,
}

#[derive(Debug, Clone)]
pub struct CostStage {
    pub params: CostParams,
}

/// The outputs of cost.
pub mod output {
    /// Cost per tier and measured cell (`tables::CostRow`).
    pub const COST: &str = "cost";
    /// With a request mix: cost per request class.
    pub const REQUESTS: &str = "requests";
    /// With routing shares: the blended cost.
    pub const ROUTING: &str = "routing";
    /// With a request mix: the decision under varied assumptions
    /// (`sensitivity::SensitivityRow`, Appendix AV).
    pub const SENSITIVITY: &str = "sensitivity";
    /// Cost monotonicity and pricing tier validation per cell
    /// (`validate::Checks`, Appendix AI.4; see `checks`).
    pub const CHECKS: &str = "cost_checks";
}

impl Stage for CostStage {
    fn kind(&self) -> &'static str {
        "cost"
    }

    fn version(&self) -> u32 {
        COST_VERSION
    }

    fn outputs(&self) -> Vec<&'static str> {
        let mut names = vec![output::COST, output::CHECKS];
        if !self.params.request_mix.is_empty() {
            names.push(output::REQUESTS);
            names.push(output::SENSITIVITY);
            if !self.params.routing.is_empty() {
                names.push(output::ROUTING);
            }
        }
        names
    }

    fn params(&self) -> Result<Value, StageError> {
        serde_json::to_value(&self.params).map_err(|e| StageError::params("cost", e))
    }

    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError> {
        let summary: Vec<SummaryRow> =
            tables::read_rows(ctx, find_input(inputs, crate::summarise::OUTPUT)?)?;
        let p = &self.params;
        let mut rows = Vec::new();
        for s in summary
            .iter()
            .filter(|s| PRICED_PHASES.contains(&s.phase()) && s.tokens_per_s > 0.0)
        {
            for (tier, usd_per_hour) in &p.usd_per_hour {
                let (perfect, required) =
                    workers(p.tokens_per_month, s.tokens_per_s, p.burst_factor);
                rows.push(CostRow {
                    cell: s.cell.clone(),
                    backend: s.backend.clone(),
                    model: s.model.clone(),
                    scenario: s.scenario.clone(),
                    phase: s.phase.clone(),
                    evidence: s.evidence.clone(),
                    tier: tier.clone(),
                    usd_per_hour: *usd_per_hour,
                    tokens_per_s: s.tokens_per_s,
                    seconds_per_1m: seconds_per_1m(s.tokens_per_s),
                    usd_per_1m: usd_per_1m(s.tokens_per_s, *usd_per_hour),
                    mean_load_tokens_per_s: mean_load_tokens_per_s(p.tokens_per_month),
                    workers_utilization_perfect: perfect,
                    workers_required: required,
                    usd_per_month: required as f64 * usd_per_hour * HOURS_PER_MONTH,
                    energy_usd_per_1m: p
                        .energy
                        .as_ref()
                        .zip(s.energy_j_per_token)
                        .map(|(e, j)| kwh_per_1m(j) * e.usd_per_kwh),
                    carbon_g_per_1m: p
                        .energy
                        .as_ref()
                        .and_then(|e| e.carbon_g_per_kwh)
                        .zip(s.energy_j_per_token)
                        .map(|(g, j)| kwh_per_1m(j) * g),
                });
            }
        }
        let mut out = Outputs::new();
        let checks = crate::validate::Checks {
            checks: checks::cost_checks(&rows, &summary),
        };
        out.insert(output::CHECKS.into(), tables::to_json(&checks)?);
        out.insert(output::COST.into(), tables::to_parquet(&rows)?);
        if !p.request_mix.is_empty() {
            let (requests, routing) = request_costs(p, &summary);
            out.insert(output::REQUESTS.into(), tables::to_parquet(&requests)?);
            let sensitivity = sensitivity::sensitivity(p, &summary);
            out.insert(
                output::SENSITIVITY.into(),
                tables::to_parquet(&sensitivity)?,
            );
            if !p.routing.is_empty() {
                out.insert(output::ROUTING.into(), tables::to_parquet(&routing)?);
            }
        }
        Ok(out)
    }
}

/// Per cell and tier: each class's and the mix's cost per 1k requests; then
/// the routing policy's weighted cost per tier.
fn request_costs(p: &CostParams, summary: &[SummaryRow]) -> (Vec<RequestCostRow>, Vec<RoutingRow>) {
    let mut cells: BTreeMap<&str, (Option<&SummaryRow>, Option<&SummaryRow>)> = BTreeMap::new();
    for s in summary {
        let entry = cells.entry(s.cell.as_str()).or_default();
        match s.phase() {
            Phase::Prefill => entry.0 = Some(s),
            Phase::Decode => entry.1 = Some(s),
            _ => {}
        }
    }
    let mut rows = Vec::new();
    // (cell, tier) -> mix usd per 1k requests and whether it is measured,
    // for routing.
    let mut mix_cost: BTreeMap<(String, String), (f64, bool)> = BTreeMap::new();
    for (cell, (prefill, decode)) in cells {
        let (Some(prefill), Some(decode)) = (prefill, decode) else {
            continue;
        };
        if prefill.tokens_per_s <= 0.0 || decode.tokens_per_s <= 0.0 {
            continue;
        }
        for (tier, usd_per_hour) in &p.usd_per_hour {
            let row = |class: &str, tokens: f64, seconds: f64| RequestCostRow {
                cell: cell.to_string(),
                backend: decode.backend.clone(),
                model: decode.model.clone(),
                scenario: decode.scenario.clone(),
                evidence: decode.evidence.clone(),
                tier: tier.clone(),
                class: class.to_string(),
                tokens_per_request: tokens,
                seconds_per_request: seconds,
                usd_per_1k_requests: usd_per_1k_requests(seconds, *usd_per_hour),
            };
            let mut tokens = Vec::new();
            let mut seconds = Vec::new();
            for c in &p.request_mix {
                let t = f64::from(c.prompt_tokens) + f64::from(c.gen_tokens);
                let s = request_seconds(
                    f64::from(c.prompt_tokens),
                    f64::from(c.gen_tokens),
                    prefill.tokens_per_s,
                    decode.tokens_per_s,
                );
                rows.push(row(&c.name, t, s));
                tokens.push((c.share, t));
                seconds.push((c.share, s));
            }
            let mix = row("mix", weighted(&tokens), weighted(&seconds));
            mix_cost.insert(
                (cell.to_string(), tier.clone()),
                (
                    mix.usd_per_1k_requests,
                    Evidence::is_measured(&mix.evidence),
                ),
            );
            rows.push(mix);
        }
    }
    let mut routing = Vec::new();
    if !p.routing.is_empty() {
        for tier in p.usd_per_hour.keys() {
            let mut parts = Vec::new();
            let mut evidence = Evidence::Measured;
            let mut complete = true;
            for r in &p.routing {
                let cell = format!("{}/{}/{}", r.backend, r.model, r.scenario);
                match mix_cost.get(&(cell, tier.clone())) {
                    Some((usd, measured)) => {
                        if !measured {
                            evidence = Evidence::Simulated;
                        }
                        parts.push((r.share, *usd));
                    }
                    None => complete = false,
                }
            }
            if complete {
                routing.push(RoutingRow {
                    tier: tier.clone(),
                    evidence: evidence.as_str().into(),
                    policy: p
                        .routing
                        .iter()
                        .map(|r| format!("{} {}/{}/{}", r.share, r.backend, r.model, r.scenario))
                        .collect::<Vec<_>>()
                        .join(" + "),
                    usd_per_1k_requests: weighted(&parts),
                });
            }
        }
    }
    (rows, routing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(x: f64, digits: i32) -> f64 {
        let f = 10f64.powi(digits);
        (x * f).round() / f
    }

    #[test]
    fn appendix_v1_100m_tokens_per_month() {
        // 38.6 tokens/s mean; a 200 tok/s backend needs 0.19 workers, min 1.
        assert_eq!(round(mean_load_tokens_per_s(100e6), 1), 38.6);
        let (perfect, required) = workers(100e6, 200.0, 1.0);
        assert_eq!(round(perfect, 2), 0.19);
        assert_eq!(required, 1);
    }

    #[test]
    fn appendix_v2_1b_tokens_per_month_with_burst() {
        // 385.8 tokens/s; 100 tok/s -> 3.86 workers; 5x burst -> ~20 workers.
        assert_eq!(round(mean_load_tokens_per_s(1e9), 1), 385.8);
        let (perfect, required) = workers(1e9, 100.0, 5.0);
        assert_eq!(round(perfect, 2), 3.86);
        assert_eq!(required, 20);
    }

    #[test]
    fn appendix_v3_10b_tokens_per_month() {
        assert_eq!(mean_load_tokens_per_s(10e9).round(), 3858.0);
    }

    #[test]
    fn appendix_v4_request_mix_expected_tokens() {
        // 80% short (384 tokens), 20% long (2304): 768 tokens per request.
        assert_eq!(weighted(&[(0.8, 384.0), (0.2, 2304.0)]), 768.0);
    }

    #[test]
    fn appendix_v5_tier_routing() {
        // 80% small at $0.76/1k requests, 20% large at $2.05: $1.018 -> 1.02;
        // inverted policy: $1.792 -> 1.79.
        assert_eq!(round(weighted(&[(0.8, 0.76), (0.2, 2.05)]), 2), 1.02);
        assert_eq!(round(weighted(&[(0.2, 0.76), (0.8, 2.05)]), 2), 1.79);
    }

    #[test]
    fn request_cost_prices_phases_apart() {
        // 1000 prompt tokens at 1000 tok/s + 100 generated at 10 tok/s = 11 s;
        // at $3.60/h one request costs $0.011, so $11 per 1k requests.
        let s = request_seconds(1000.0, 100.0, 1000.0, 10.0);
        assert_eq!(s, 11.0);
        assert!((usd_per_1k_requests(s, 3.6) - 11.0).abs() < 1e-12);
    }

    #[test]
    fn shadow_price_formula() {
        // 1000 tok/s: 1000 s per 1M tokens = 0.2778 h; at $3.60/h = $1.00.
        assert!((usd_per_1m(1000.0, 3.6) - 1.0).abs() < 1e-12);
        assert_eq!(seconds_per_1m(500.0), 2000.0);
    }

    #[test]
    fn energy_term_is_joules_per_token_to_kwh_per_1m() {
        // 0.36 J/token: 1M tokens take 360 kJ = 0.1 kWh; at $0.15/kWh that
        // is $0.015, at 400 g/kWh 40 g CO2e.
        assert!((kwh_per_1m(0.36) - 0.1).abs() < 1e-15);
        assert!((kwh_per_1m(0.36) * 0.15 - 0.015).abs() < 1e-15);
        assert!((kwh_per_1m(0.36) * 400.0 - 40.0).abs() < 1e-12);
    }
}
