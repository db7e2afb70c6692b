//! The sensitivity on a crafted summary: two backends, `a` faster on the
//! small model and `b` on the large one, so that the routed policy's
//! backend choice turns on how much traffic the large model gets.

use std::collections::BTreeMap;

use super::*;
use crate::cost::{RequestClass, Route};

/// A cell's prefill and decode rows at the given tokens per second.
fn cell(backend: &str, model: &str, prefill_tps: f64, decode_tps: f64) -> Vec<SummaryRow> {
    ["prefill", "decode"]
        .into_iter()
        .zip([prefill_tps, decode_tps])
        .map(|(phase, tps)| SummaryRow {
            cell: format!("{backend}/{model}/s"),
            backend: backend.into(),
            model: model.into(),
            scenario: "s".into(),
            phase: phase.into(),
            evidence: "measured".into(),
            tokens_per_s: tps,
            ..Default::default()
        })
        .collect()
}

/// Seconds per request of the mix below (0.8 x (100 + 50), 0.2 x (400 +
/// 100)): a/small 0.76, b/small 0.91, a/large 3.8, b/large 3.35. Routed
/// 80/20, `a` costs 1.368 s per request and `b` 1.398 s; the break-even
/// large share is 0.25.
fn summary() -> Vec<SummaryRow> {
    [
        cell("a", "small", 1000.0, 100.0),
        cell("b", "small", 1000.0, 80.0),
        cell("a", "large", 200.0, 20.0),
        cell("b", "large", 200.0, 60.0 / 2.55),
    ]
    .concat()
}

fn params() -> CostParams {
    let class = |name: &str, share, prompt_tokens, gen_tokens| RequestClass {
        name: name.into(),
        share,
        prompt_tokens,
        gen_tokens,
    };
    let route = |share, model: &str| Route {
        share,
        backend: "a".into(),
        model: model.into(),
        scenario: "s".into(),
    };
    CostParams {
        usd_per_hour: BTreeMap::from([("on_demand".into(), 1.0), ("spot".into(), 0.3)]),
        // 220 tokens per request: one request per second.
        tokens_per_month: 220.0 * SECONDS_PER_MONTH,
        burst_factor: 5.0,
        request_mix: vec![class("short", 0.8, 100, 50), class("long", 0.2, 400, 100)],
        routing: vec![route(0.8, "small"), route(0.2, "large")],
        energy: None,
    }
}

fn rows_of<'a>(
    rows: &'a [SensitivityRow],
    decision: &str,
    factor: &str,
) -> Vec<&'a SensitivityRow> {
    rows.iter()
        .filter(|r| r.decision == decision && r.factor == factor)
        .collect()
}

#[test]
fn baseline_picks_the_cheapest_fleet() {
    let rows = sensitivity(&params(), &summary());
    let base = rows_of(&rows, CONFIGURATION, BASELINE)[0];
    assert_eq!(base.winner, "a/small/s @ spot");
    // 1 request/s * 0.76 s * burst 5 = 3.8 -> 4 workers at $0.3 for 720 h.
    assert_eq!(base.workers, 4);
    assert!((base.usd_per_month - 4.0 * 0.3 * 720.0).abs() < 1e-9);
    assert!((base.usd_per_1k_requests - 1000.0 * 0.76 / 3600.0 * 0.3).abs() < 1e-12);
    assert_eq!(base.runner_up.as_deref(), Some("b/small/s @ spot"));
    assert!(!base.flips && base.ordering_kept);
    assert_eq!(base.evidence, "measured");
}

#[test]
fn burst_does_not_flip_but_a_routing_shift_does() {
    let rows = sensitivity(&params(), &summary());
    let routing_base = rows_of(&rows, ROUTING, BASELINE)[0];
    assert_eq!(routing_base.winner, "a @ spot");
    let burst = rows_of(&rows, ROUTING, BURST);
    assert_eq!(burst.len(), BURST_FACTORS.len());
    assert!(burst.iter().all(|r| !r.flips && r.winner == "a @ spot"));
    // The fleet grows with burst: 2 pools of 1 worker at burst 1, 15 at 10.
    let workers: Vec<u64> = burst.iter().map(|r| r.workers).collect();
    assert_eq!(workers, [2, 4, 8, 15]);
    let shifts = rows_of(&rows, ROUTING, ROUTING_SHARES);
    let flipped: Vec<&str> = shifts
        .iter()
        .filter(|r| r.flips)
        .map(|r| r.variation.as_str())
        .collect();
    // Large share 0.4: a needs 3 + 8 workers, b 3 + 7.
    assert_eq!(flipped, ["large/s share +0.2"]);
    let flip = shifts.iter().find(|r| r.flips).unwrap();
    assert_eq!((flip.winner.as_str(), flip.workers), ("b @ spot", 10));
    // Burst never flips the single-configuration decision either.
    assert!(
        rows_of(&rows, CONFIGURATION, BURST)
            .iter()
            .all(|r| !r.flips)
    );
}

#[test]
fn price_scaling_never_reorders_configurations() {
    // Several price pairs, including ones where a scaled on-demand price
    // undercuts spot: the tier may change, the order within a tier not.
    for (on_demand, spot) in [(1.0, 0.3), (0.4, 0.3), (0.1, 0.03), (2.0, 1.5)] {
        let mut p = params();
        p.usd_per_hour = BTreeMap::from([("on_demand".into(), on_demand), ("spot".into(), spot)]);
        let rows = sensitivity(&p, &summary());
        let prices: Vec<_> = rows.iter().filter(|r| r.factor == TIER_PRICE).collect();
        assert_eq!(prices.len(), 2 * 2 * PRICE_SCALES.len());
        assert!(prices.iter().all(|r| r.ordering_kept), "{on_demand} {spot}");
        // The winner's configuration never changes, only its tier.
        for r in prices {
            let config = |w: &str| w.split(" @ ").next().unwrap_or_default().to_string();
            assert_eq!(config(&r.winner), config(&r.baseline_winner));
        }
    }
    // 0.4 x 0.5 = 0.2 < 0.3: the tier flips to on-demand.
    let mut p = params();
    p.usd_per_hour = BTreeMap::from([("on_demand".into(), 0.4), ("spot".into(), 0.3)]);
    let rows = sensitivity(&p, &summary());
    let half = rows
        .iter()
        .find(|r| r.decision == CONFIGURATION && r.variation == "on_demand price x0.5")
        .unwrap();
    assert_eq!(half.winner, "a/small/s @ on_demand");
    assert!(half.flips && half.ordering_kept);
}

#[test]
fn longer_generation_scales_cost_per_request() {
    let rows = sensitivity(&params(), &summary());
    let length = rows_of(&rows, CONFIGURATION, REQUEST_LENGTH);
    let names: Vec<&str> = length.iter().map(|r| r.variation.as_str()).collect();
    assert_eq!(
        names,
        [
            "gen_tokens x0.5",
            "gen_tokens x2",
            "long share -0.2",
            "long share -0.1",
            "long share +0.1",
            "long share +0.2"
        ]
    );
    // a/small, 2x generation: 0.8 x (0.1 + 1.0) + 0.2 x (0.4 + 2.0) = 1.36 s.
    let x2 = length[1];
    assert!((x2.usd_per_1k_requests - 1000.0 * 1.36 / 3600.0 * 0.3).abs() < 1e-12);
}

#[test]
fn simulated_cells_mark_the_rows() {
    let mut rows = summary();
    rows[0].evidence = "simulated".into();
    let out = sensitivity(&params(), &rows);
    assert!(out.iter().all(|r| r.evidence == "simulated"));
}

#[test]
fn no_mix_or_no_cells_gives_no_rows() {
    let mut p = params();
    p.request_mix.clear();
    p.routing.clear();
    assert!(sensitivity(&p, &summary()).is_empty());
    assert!(sensitivity(&params(), &[]).is_empty());
}

#[test]
fn share_shifts_stay_within_the_simplex() {
    let shifted = shift_share(&[0.5, 0.3, 0.2], 2, 0.2).unwrap();
    assert!((shifted.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    assert!((shifted[2] - 0.4).abs() < 1e-12);
    // The others give in proportion: 0.5 and 0.3 scaled by 0.6 / 0.8.
    assert!((shifted[0] - 0.375).abs() < 1e-12);
    assert_eq!(shift_share(&[0.9, 0.1], 1, -0.2), None);
    assert_eq!(shift_share(&[0.0, 1.0], 1, -0.1), None);
    assert_eq!(shift_share(&[1.0], 0, 0.1), None);
}
