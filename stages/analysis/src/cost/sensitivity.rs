//! Sensitivity of the cost decision (seed Appendix AV): how the cheapest way
//! to serve the request mix moves when the request lengths, the burst
//! factor, the tier prices or the routing shares move.
//!
//! The decision is the one the cost section makes: the candidate with the
//! smallest monthly fleet cost for the planned traffic, ties broken by the
//! shadow price per 1,000 requests, then by name. Two decisions are ranked:
//!
//! - `configuration`: every cell (backend/model/scenario) at every tier
//!   serving the whole mix on one pool of workers;
//! - `routing` (with `cost.routing`): the routed policy (V.5) on every
//!   backend that measured all its branches, at every tier, one pool per
//!   branch. The models are the policy's (a quality choice, Z.4), so the
//!   cost decision left is the backend and the tier.
//!
//! The traffic is held fixed at the spec's requests per second (the spec's
//! `tokens_per_month` over its mix's tokens per request): a product change
//! that lengthens requests buys more tokens, as AV.1 reads it, rather than
//! fewer requests. The ranges are fixed (`GEN_SCALES`, `SHARE_SHIFTS`,
//! `BURST_FACTORS`, `PRICE_SCALES`) so that every report of the program
//! asks the same what-ifs; formulas in docs/formulas.md#sensitivity.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use assay_core::domain::Evidence;
use assay_core::tables::{Phase, SummaryRow};

use super::{CostParams, HOURS_PER_MONTH, SECONDS_PER_MONTH, usd_per_1k_requests};

/// Scales of every class's generated tokens (AV.1: "2x generation length").
pub const GEN_SCALES: [f64; 2] = [0.5, 2.0];
/// Shifts of the long class's share and of the premium route's share,
/// taken from (or given to) the other classes or routes in proportion.
pub const SHARE_SHIFTS: [f64; 4] = [-0.2, -0.1, 0.1, 0.2];
/// Burst factors (AV.2; V.2 uses 5).
pub const BURST_FACTORS: [f64; 4] = [1.0, 2.0, 5.0, 10.0];
/// Scales of each tier's price, one tier at a time (AV.3).
pub const PRICE_SCALES: [f64; 2] = [0.5, 2.0];

/// Decision names.
pub const CONFIGURATION: &str = "configuration";
pub const ROUTING: &str = "routing";
/// Factor names.
pub const BASELINE: &str = "baseline";
pub const REQUEST_LENGTH: &str = "request_length";
pub const BURST: &str = "burst";
pub const TIER_PRICE: &str = "tier_price";
pub const ROUTING_SHARES: &str = "routing_shares";

/// One variation of one factor and the decision it leads to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SensitivityRow {
    /// `configuration` or `routing`.
    pub decision: String,
    /// `baseline`, `request_length`, `burst`, `tier_price` or `routing_shares`.
    pub factor: String,
    /// What changed, e.g. `gen_tokens x2`, `burst 10`, `spot price x0.5`.
    pub variation: String,
    /// The cheapest candidate, e.g. `candle/small/chat @ spot`.
    pub winner: String,
    /// The spec's own winner.
    pub baseline_winner: String,
    /// The winner differs from the baseline winner.
    pub flips: bool,
    /// Within every tier the candidates rank as at the baseline.
    pub ordering_kept: bool,
    /// The winner's shadow price of 1,000 requests of the (varied) mix.
    pub usd_per_1k_requests: f64,
    /// The winner's workers at burst for the planned traffic.
    pub workers: u64,
    /// The winner's fleet: workers * usd_per_hour * 720.
    pub usd_per_month: f64,
    /// The second cheapest candidate, if any.
    pub runner_up: Option<String>,
    pub runner_up_usd_per_month: Option<f64>,
    /// `measured` only when every ranked cell is.
    pub evidence: String,
}

/// A cell's throughput by phase, as the requests table prices it.
#[derive(Debug, Clone)]
struct Rate {
    backend: String,
    model: String,
    scenario: String,
    measured: bool,
    prefill_tps: f64,
    decode_tps: f64,
}

impl Rate {
    fn cell(&self) -> String {
        format!("{}/{}/{}", self.backend, self.model, self.scenario)
    }

    fn seconds(&self, mix: &[Class]) -> f64 {
        mix.iter()
            .map(|c| c.share * (c.prompt / self.prefill_tps + c.generated / self.decode_tps))
            .sum()
    }
}

/// A request class as a variation sees it: shares and lengths may be scaled.
#[derive(Debug, Clone)]
struct Class {
    share: f64,
    prompt: f64,
    generated: f64,
}

/// Everything a variation may change.
#[derive(Debug, Clone)]
struct Assumptions {
    mix: Vec<Class>,
    burst: f64,
    prices: BTreeMap<String, f64>,
    /// Share per route, in spec order.
    routes: Vec<f64>,
}

/// One ranked candidate.
#[derive(Debug, Clone)]
struct Candidate {
    /// What the tier-free ordering compares: the cell, or the backend.
    name: String,
    tier: String,
    usd_per_1k: f64,
    workers: u64,
    usd_per_month: f64,
}

impl Candidate {
    fn label(&self) -> String {
        format!("{} @ {}", self.name, self.tier)
    }
}

/// The sensitivity table; empty without a request mix or measurable cells.
pub fn sensitivity(p: &CostParams, summary: &[SummaryRow]) -> Vec<SensitivityRow> {
    let rates = rates(summary);
    let base = Assumptions {
        mix: p
            .request_mix
            .iter()
            .map(|c| Class {
                share: c.share,
                prompt: f64::from(c.prompt_tokens),
                generated: f64::from(c.gen_tokens),
            })
            .collect(),
        burst: p.burst_factor,
        prices: p.usd_per_hour.clone(),
        routes: p.routing.iter().map(|r| r.share).collect(),
    };
    let tokens_per_request: f64 = base
        .mix
        .iter()
        .map(|c| c.share * (c.prompt + c.generated))
        .sum();
    let requests_per_s = p.tokens_per_month / tokens_per_request / SECONDS_PER_MONTH;
    if rates.is_empty() || !requests_per_s.is_finite() || requests_per_s <= 0.0 {
        return Vec::new();
    }
    let ranker = Ranker {
        p,
        rates: &rates,
        requests_per_s,
    };
    let mut rows = ranker.decision(CONFIGURATION, &base, &variations(&base, p, &rates, false));
    if !p.routing.is_empty() {
        rows.extend(ranker.decision(ROUTING, &base, &variations(&base, p, &rates, true)));
    }
    rows
}

/// Cells with prefill and decode throughput, by cell id.
fn rates(summary: &[SummaryRow]) -> Vec<Rate> {
    let mut cells: BTreeMap<&str, (Option<&SummaryRow>, Option<&SummaryRow>)> = BTreeMap::new();
    for s in summary {
        let entry = cells.entry(s.cell.as_str()).or_default();
        match s.phase() {
            Phase::Prefill => entry.0 = Some(s),
            Phase::Decode => entry.1 = Some(s),
            _ => {}
        }
    }
    cells
        .into_values()
        .filter_map(|(prefill, decode)| {
            let (prefill, decode) = (prefill?, decode?);
            (prefill.tokens_per_s > 0.0 && decode.tokens_per_s > 0.0).then(|| Rate {
                backend: decode.backend.clone(),
                model: decode.model.clone(),
                scenario: decode.scenario.clone(),
                measured: Evidence::is_measured(&decode.evidence)
                    && Evidence::is_measured(&prefill.evidence),
                prefill_tps: prefill.tokens_per_s,
                decode_tps: decode.tokens_per_s,
            })
        })
        .collect()
}

/// A factor, the name of its variation and the assumptions it leads to.
type Variation = (&'static str, String, Assumptions);

/// The fixed what-ifs, in table order. Routing shifts only for `routing`.
fn variations(base: &Assumptions, p: &CostParams, rates: &[Rate], routing: bool) -> Vec<Variation> {
    let mut out = vec![(BASELINE, "spec".to_string(), base.clone())];
    for scale in GEN_SCALES {
        let mut a = base.clone();
        a.mix.iter_mut().for_each(|c| c.generated *= scale);
        out.push((REQUEST_LENGTH, format!("gen_tokens x{scale}"), a));
    }
    // The long class: the most tokens per request, the first on a tie.
    let shares: Vec<f64> = base.mix.iter().map(|c| c.share).collect();
    if let Some(long) = argmax(base.mix.iter().map(|c| c.prompt + c.generated)) {
        for shift in SHARE_SHIFTS {
            if let Some(shifted) = shift_share(&shares, long, shift) {
                let mut a = base.clone();
                a.mix.iter_mut().zip(shifted).for_each(|(c, s)| c.share = s);
                let name = &p.request_mix[long].name;
                out.push((REQUEST_LENGTH, format!("{name} share {shift:+}"), a));
            }
        }
    }
    for burst in BURST_FACTORS {
        let mut a = base.clone();
        a.burst = burst;
        out.push((BURST, format!("burst {burst}"), a));
    }
    for tier in base.prices.keys() {
        for scale in PRICE_SCALES {
            let mut a = base.clone();
            a.prices.entry(tier.clone()).and_modify(|v| *v *= scale);
            out.push((TIER_PRICE, format!("{tier} price x{scale}"), a));
        }
    }
    if routing {
        // The premium route: the most seconds per request (the expensive
        // capacity Z.4 reserves for the requests that need it), the largest
        // over the backends that measured it, so that which route is
        // premium does not depend on which backend wins.
        let premium = argmax(p.routing.iter().map(|r| route_seconds(base, rates, r)));
        for (i, shift) in premium
            .into_iter()
            .flat_map(|i| SHARE_SHIFTS.map(|s| (i, s)))
        {
            if let Some(shares) = shift_share(&base.routes, i, shift) {
                let r = &p.routing[i];
                let mut a = base.clone();
                a.routes = shares;
                out.push((
                    ROUTING_SHARES,
                    format!("{}/{} share {shift:+}", r.model, r.scenario),
                    a,
                ));
            }
        }
    }
    out
}

/// The seconds of one spec-mix request on a route's model and scenario,
/// the largest over the backends that measured it (-inf where none did).
fn route_seconds(base: &Assumptions, rates: &[Rate], route: &super::Route) -> f64 {
    rates
        .iter()
        .filter(|r| r.model == route.model && r.scenario == route.scenario)
        .map(|r| r.seconds(&base.mix))
        .fold(f64::NEG_INFINITY, f64::max)
}

/// Index of the largest finite value, the first on a tie.
fn argmax(values: impl Iterator<Item = f64>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, v) in values.enumerate() {
        if v.is_finite() && best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// Moves `shift` of share to item `i` from the others in proportion to
/// their shares. `None` when item `i` would leave [0, 1] or the others hold
/// nothing to give or take.
pub fn shift_share(shares: &[f64], i: usize, shift: f64) -> Option<Vec<f64>> {
    const EPS: f64 = 1e-9;
    let target = shares.get(i)? + shift;
    let others: f64 = shares
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, s)| s)
        .sum();
    if !(-EPS..=1.0 + EPS).contains(&target) || others <= EPS {
        return None;
    }
    let target = target.clamp(0.0, 1.0);
    let scale = (others - shift) / others;
    if scale < -EPS {
        return None;
    }
    Some(
        shares
            .iter()
            .enumerate()
            .map(|(j, s)| if j == i { target } else { (s * scale).max(0.0) })
            .collect(),
    )
}

struct Ranker<'a> {
    p: &'a CostParams,
    rates: &'a [Rate],
    requests_per_s: f64,
}

impl Ranker<'_> {
    /// One row per variation of one decision.
    fn decision(
        &self,
        decision: &str,
        base: &Assumptions,
        vars: &[Variation],
    ) -> Vec<SensitivityRow> {
        let (baseline, measured) = self.rank(decision, base);
        let Some(base_winner) = baseline.first().map(Candidate::label) else {
            return Vec::new();
        };
        let evidence = Evidence::all_measured(measured).as_str().to_string();
        vars.iter()
            .filter_map(|(factor, variation, a)| {
                let (ranked, _) = self.rank(decision, a);
                let winner = ranked.first()?;
                let runner_up = ranked.get(1);
                Some(SensitivityRow {
                    decision: decision.into(),
                    factor: (*factor).into(),
                    variation: variation.clone(),
                    winner: winner.label(),
                    baseline_winner: base_winner.clone(),
                    flips: winner.label() != base_winner,
                    ordering_kept: tier_orders(&ranked) == tier_orders(&baseline),
                    usd_per_1k_requests: winner.usd_per_1k,
                    workers: winner.workers,
                    usd_per_month: winner.usd_per_month,
                    runner_up: runner_up.map(Candidate::label),
                    runner_up_usd_per_month: runner_up.map(|c| c.usd_per_month),
                    evidence: evidence.clone(),
                })
            })
            .collect()
    }

    /// Candidates cheapest first, and whether each ranked cell is measured.
    fn rank(&self, decision: &str, a: &Assumptions) -> (Vec<Candidate>, Vec<bool>) {
        let mut out = Vec::new();
        let mut measured = Vec::new();
        for (tier, price) in &a.prices {
            let branches = if decision == ROUTING {
                self.routed(a)
            } else {
                self.rates
                    .iter()
                    .map(|r| (r.cell(), vec![(1.0, r)]))
                    .collect()
            };
            for (name, parts) in branches {
                measured.extend(parts.iter().map(|(_, r)| r.measured));
                out.push(self.candidate(name, tier, *price, a, &parts));
            }
        }
        out.sort_by(|x, y| {
            x.usd_per_month
                .total_cmp(&y.usd_per_month)
                .then(x.usd_per_1k.total_cmp(&y.usd_per_1k))
                .then_with(|| x.label().cmp(&y.label()))
        });
        (out, measured)
    }

    /// Per backend that measured every route's (model, scenario): the
    /// routes' shares and rates.
    fn routed<'r>(&'r self, a: &Assumptions) -> Vec<(String, Vec<(f64, &'r Rate)>)> {
        let mut backends: Vec<&str> = self.rates.iter().map(|r| r.backend.as_str()).collect();
        backends.sort_unstable();
        backends.dedup();
        backends
            .into_iter()
            .filter_map(|b| {
                let parts = self
                    .p
                    .routing
                    .iter()
                    .zip(&a.routes)
                    .map(|(route, share)| {
                        self.rates
                            .iter()
                            .find(|r| {
                                r.backend == b
                                    && r.model == route.model
                                    && r.scenario == route.scenario
                            })
                            .map(|r| (*share, r))
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some((b.to_string(), parts))
            })
            .collect()
    }

    /// One pool of workers per branch (a worker holds one model); a branch
    /// with no traffic needs none.
    fn candidate(
        &self,
        name: String,
        tier: &str,
        price: f64,
        a: &Assumptions,
        parts: &[(f64, &Rate)],
    ) -> Candidate {
        let mut seconds = 0.0;
        let mut workers = 0u64;
        for (share, rate) in parts {
            let s = rate.seconds(&a.mix);
            seconds += share * s;
            if *share > 0.0 {
                workers += pool(self.requests_per_s * share * s, a.burst);
            }
        }
        Candidate {
            name,
            tier: tier.to_string(),
            usd_per_1k: usd_per_1k_requests(seconds, price),
            workers,
            usd_per_month: workers as f64 * price * HOURS_PER_MONTH,
        }
    }
}

/// Workers for `busy` worker-seconds per second at `burst`: at least one.
pub fn pool(busy: f64, burst: f64) -> u64 {
    (busy * burst).ceil().max(1.0) as u64
}

/// The order of candidate names within each tier: what price scaling must
/// keep (AV.3).
fn tier_orders(ranked: &[Candidate]) -> BTreeMap<&str, Vec<&str>> {
    let mut orders: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in ranked {
        orders
            .entry(c.tier.as_str())
            .or_default()
            .push(c.name.as_str());
    }
    orders
}

#[cfg(test)]
mod tests;
