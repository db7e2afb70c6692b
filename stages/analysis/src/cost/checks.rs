//! Cost monotonicity and pricing tier validation (seed Appendix AI.4: the
//! cost-per-token claim is "derived from throughput and power. Validation:
//! cost monotonicity checks and pricing tier validation"). They run in the
//! cost stage because they read its rows: validate runs before cost.
//!
//! - `cost_monotonic`, per cell: at one tier and phase, a cell with more
//!   throughput than another never costs more per token nor needs more
//!   workers (the derivation is monotone in throughput); and on decode, the
//!   cost per token does not fall as the context grows, prompt or
//!   generation, for one backend, model and batch (a decode step reads the
//!   whole KV cache, so a longer context cannot make a token cheaper). The
//!   latter compares the cost implied by the summary's 95% interval of the
//!   decode median and counts only a longer context whose interval lies
//!   wholly below the shorter's (Appendix AH.3's rule), so noise alone never
//!   fails it.
//! - `pricing_tier`, per cell: for each phase, a dearer tier never gives a
//!   cheaper token, and cost per token over price per hour is the same at
//!   every tier (seconds per 1M tokens / 3600).
//!
//! A failure's detail starts with `non_monotonic_cost:throughput`,
//! `non_monotonic_cost:prompt`, `non_monotonic_cost:gen` or
//! `pricing_tier`. Checks inform the report; no row changes.

use std::collections::BTreeMap;

use assay_core::domain::ValidationCheck;
use assay_core::tables::{CostRow, Phase, SummaryRow};

use crate::validate::CheckResult;
use crate::validate::monotonic::{Point, inversions, neighbours};

/// Relative slack for comparing two derived floats that should be equal.
const EPS: f64 = 1e-9;

fn above(a: f64, b: f64) -> bool {
    a > b * (1.0 + EPS) + f64::MIN_POSITIVE
}

/// Every check, in cell order of `rows` (first appearance), each cell's
/// `cost_monotonic` then `pricing_tier`.
pub fn cost_checks(rows: &[CostRow], summary: &[SummaryRow]) -> Vec<CheckResult> {
    let mut cells: Vec<&str> = Vec::new();
    for r in rows {
        if !cells.contains(&r.cell.as_str()) {
            cells.push(&r.cell);
        }
    }
    let mut monotone: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    throughput_order(rows, &mut monotone);
    let compared = decode_context(rows, summary, &mut monotone);
    let tiers = tier_order(rows);
    let mut out = Vec::new();
    for cell in cells {
        let problems = monotone.get(cell).cloned().unwrap_or_default();
        out.push(CheckResult {
            cell: cell.to_string(),
            check: ValidationCheck::CostMonotonic.as_str().into(),
            passed: problems.is_empty(),
            detail: if problems.is_empty() {
                format!(
                    "cost per token falls with throughput at every tier and phase; decode cost per token does not fall as the context grows ({} cells compared)",
                    compared.get(cell).copied().unwrap_or(0)
                )
            } else {
                problems.join("; ")
            },
        });
        let problems = tiers.get(cell).cloned().unwrap_or_default();
        out.push(CheckResult {
            cell: cell.to_string(),
            check: ValidationCheck::PricingTier.as_str().into(),
            passed: problems.is_empty(),
            detail: if problems.is_empty() {
                "a dearer tier never gives a cheaper token; cost over price is one constant per phase"
                    .into()
            } else {
                problems.join("; ")
            },
        });
    }
    out
}

/// At one (tier, phase): more throughput, no higher cost per token and no
/// more workers.
fn throughput_order<'a>(rows: &'a [CostRow], out: &mut BTreeMap<&'a str, Vec<String>>) {
    for a in rows {
        for b in rows
            .iter()
            .filter(|b| b.tier == a.tier && b.phase == a.phase && b.tokens_per_s > a.tokens_per_s)
        {
            if above(b.usd_per_1m, a.usd_per_1m) || b.workers_required > a.workers_required {
                let detail = format!(
                    "non_monotonic_cost:throughput: at tier {} on {}, {} ({:.4} tokens/s) costs {:.6} $/1M and needs {} workers, more than {} ({:.4} tokens/s): {:.6} $/1M, {} workers",
                    a.tier,
                    a.phase,
                    b.cell,
                    b.tokens_per_s,
                    b.usd_per_1m,
                    b.workers_required,
                    a.cell,
                    a.tokens_per_s,
                    a.usd_per_1m,
                    a.workers_required
                );
                for cell in [a.cell.as_str(), b.cell.as_str()] {
                    out.entry(cell).or_default().push(detail.clone());
                }
            }
        }
    }
}

/// Decode cost per token along prompt and generation length, on the cost
/// implied by the decode median's interval. Returns how many cells each
/// cell was compared with.
fn decode_context<'a>(
    rows: &'a [CostRow],
    summary: &[SummaryRow],
    out: &mut BTreeMap<&'a str, Vec<String>>,
) -> BTreeMap<&'a str, usize> {
    let decode: BTreeMap<&str, &SummaryRow> = summary
        .iter()
        .filter(|s| s.phase() == Phase::Decode)
        .map(|s| (s.cell.as_str(), s))
        .collect();
    let priced: Vec<(&CostRow, &SummaryRow)> = rows
        .iter()
        .filter(|r| r.phase == Phase::Decode.name())
        .filter_map(|r| decode.get(r.cell.as_str()).map(|s| (r, *s)))
        .collect();
    let mut compared: BTreeMap<&str, usize> = BTreeMap::new();
    type Axis = (&'static str, fn(&SummaryRow) -> u32, fn(&SummaryRow) -> u32);
    let axes: [Axis; 2] = [
        ("prompt", |s| s.prompt_tokens, |s| s.gen_tokens),
        ("gen", |s| s.gen_tokens, |s| s.prompt_tokens),
    ];
    for (word, x, held) in axes {
        let points: Vec<Point> = priced
            .iter()
            .map(|(r, s)| {
                // usd_per_1m is proportional to the step time it was
                // priced from, so the interval scales with the median's.
                let scale = |ms: f64| r.usd_per_1m * ms / s.median_ms;
                Point {
                    cell: r.cell.clone(),
                    group: format!(
                        "{}\0{}\0{}\0{}\0{}",
                        r.tier,
                        r.backend,
                        r.model,
                        s.batch,
                        held(s)
                    ),
                    x: x(s),
                    median: r.usd_per_1m,
                    low: scale(s.median_ci_low_ms),
                    high: scale(s.median_ci_high_ms),
                }
            })
            .collect();
        for (i, n) in neighbours(&points).into_iter().enumerate() {
            let entry = compared.entry(priced[i].0.cell.as_str()).or_default();
            *entry = (*entry).max(n);
        }
        for (s, l) in inversions(&points) {
            let (short, long) = (&points[s], &points[l]);
            let detail = format!(
                "non_monotonic_cost:{word}: at tier {}, decode on {} ({} {word} tokens) costs {:.6} $/1M [{:.6}, {:.6}], wholly below {} ({}): {:.6} $/1M [{:.6}, {:.6}]",
                priced[s].0.tier,
                long.cell,
                long.x,
                long.median,
                long.low,
                long.high,
                short.cell,
                short.x,
                short.median,
                short.low,
                short.high
            );
            for k in [s, l] {
                out.entry(priced[k].0.cell.as_str())
                    .or_default()
                    .push(detail.clone());
            }
        }
    }
    compared
}

/// Per cell and phase: tiers in price order give costs in the same order,
/// and cost / price is one constant.
fn tier_order(rows: &[CostRow]) -> BTreeMap<&str, Vec<String>> {
    let mut by: BTreeMap<(&str, &str), Vec<&CostRow>> = BTreeMap::new();
    for r in rows {
        by.entry((r.cell.as_str(), r.phase.as_str()))
            .or_default()
            .push(r);
    }
    let mut out: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ((cell, phase), tiers) in by {
        for a in &tiers {
            for b in tiers.iter().filter(|b| b.usd_per_hour > a.usd_per_hour) {
                if above(a.usd_per_1m, b.usd_per_1m) {
                    out.entry(cell).or_default().push(format!(
                        "pricing_tier: on {phase}, tier {} ({} $/h) costs {:.6} $/1M, more than tier {} ({} $/h): {:.6} $/1M",
                        a.tier, a.usd_per_hour, a.usd_per_1m, b.tier, b.usd_per_hour, b.usd_per_1m
                    ));
                }
            }
            // seconds_per_1m / 3600 = usd_per_1m / usd_per_hour.
            if a.usd_per_hour > 0.0 {
                let hours = a.usd_per_1m / a.usd_per_hour;
                let expected = a.seconds_per_1m / 3600.0;
                if above(hours, expected) || above(expected, hours) {
                    out.entry(cell).or_default().push(format!(
                        "pricing_tier: on {phase}, tier {} prices {:.6} h per 1M tokens, not the {:.6} h its throughput gives",
                        a.tier, hours, expected
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cell: &str, tier: &str, price: f64, tps: f64) -> CostRow {
        CostRow {
            cell: cell.into(),
            backend: "b".into(),
            model: "m".into(),
            scenario: cell.into(),
            phase: "decode".into(),
            evidence: "measured".into(),
            tier: tier.into(),
            usd_per_hour: price,
            tokens_per_s: tps,
            seconds_per_1m: crate::cost::seconds_per_1m(tps),
            usd_per_1m: crate::cost::usd_per_1m(tps, price),
            mean_load_tokens_per_s: 100.0,
            workers_utilization_perfect: 100.0 / tps,
            workers_required: crate::cost::workers(8.64e9, tps, 1.0).1,
            ..Default::default()
        }
    }

    fn decode(
        cell: &str,
        prompt: u32,
        gen_tokens: u32,
        median: f64,
        lo: f64,
        hi: f64,
    ) -> SummaryRow {
        SummaryRow {
            cell: cell.into(),
            backend: "b".into(),
            model: "m".into(),
            scenario: cell.into(),
            phase: "decode".into(),
            prompt_tokens: prompt,
            batch: 1,
            gen_tokens,
            median_ms: median,
            median_ci_low_ms: lo,
            median_ci_high_ms: hi,
            ..Default::default()
        }
    }

    fn check<'a>(checks: &'a [CheckResult], cell: &str, name: &str) -> &'a CheckResult {
        checks
            .iter()
            .find(|c| c.cell == cell && c.check == name)
            .unwrap()
    }

    #[test]
    fn a_derivation_from_throughput_and_price_passes() {
        // Decode step 10 ms at 16 prompt tokens, 12 ms at 64: 100 and 83.3
        // tokens/s; both tiers priced by the formula.
        let rows = vec![
            row("p16", "on_demand", 1.0, 100.0),
            row("p16", "spot", 0.3, 100.0),
            row("p64", "on_demand", 1.0, 1000.0 / 12.0),
            row("p64", "spot", 0.3, 1000.0 / 12.0),
        ];
        let summary = vec![
            decode("p16", 16, 8, 10.0, 9.8, 10.2),
            decode("p64", 64, 8, 12.0, 11.8, 12.2),
        ];
        let checks = cost_checks(&rows, &summary);
        assert_eq!(checks.len(), 4);
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
        assert!(
            check(&checks, "p16", "cost_monotonic")
                .detail
                .ends_with("(1 cells compared)")
        );
    }

    #[test]
    fn a_cheaper_token_at_a_longer_context_fails_only_when_the_intervals_are_disjoint() {
        // AI.4 on decode: 64 prompt tokens at 8 ms per step is cheaper per
        // token than 16 at 10 ms; disjoint intervals fail it.
        let rows = vec![
            row("p16", "on_demand", 1.0, 100.0),
            row("p64", "on_demand", 1.0, 125.0),
        ];
        let disjoint = vec![
            decode("p16", 16, 8, 10.0, 9.8, 10.2),
            decode("p64", 64, 8, 8.0, 7.9, 8.1),
        ];
        let checks = cost_checks(&rows, &disjoint);
        for cell in ["p16", "p64"] {
            let c = check(&checks, cell, "cost_monotonic");
            assert!(!c.passed);
            assert!(
                c.detail.starts_with(
                    "non_monotonic_cost:prompt: at tier on_demand, decode on p64 (64 prompt tokens)"
                ),
                "{}",
                c.detail
            );
        }
        // Overlapping intervals: noise, not an exception.
        let overlapping = vec![
            decode("p16", 16, 8, 10.0, 8.0, 12.0),
            decode("p64", 64, 8, 8.0, 7.0, 9.0),
        ];
        let checks = cost_checks(&rows, &overlapping);
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
        // Another batch is another configuration: not compared.
        let mut other = disjoint.clone();
        other[1].batch = 2;
        assert!(cost_checks(&rows, &other).iter().all(|c| c.passed));
    }

    #[test]
    fn a_cost_out_of_step_with_throughput_or_price_fails() {
        // A faster cell priced dearer (a row priced from stale throughput).
        let mut rows = vec![
            row("a", "on_demand", 1.0, 100.0),
            row("b", "on_demand", 1.0, 200.0),
        ];
        rows[1].usd_per_1m = rows[0].usd_per_1m * 2.0;
        let checks = cost_checks(&rows, &[]);
        let a = check(&checks, "a", "cost_monotonic");
        assert!(!a.passed);
        assert!(
            a.detail
                .starts_with("non_monotonic_cost:throughput: at tier on_demand on decode, b"),
            "{}",
            a.detail
        );
        // The stale row is also off its own price: pricing_tier fails.
        assert!(!check(&checks, "b", "pricing_tier").passed);
        // A dearer tier that gives a cheaper token.
        let mut rows = vec![
            row("a", "on_demand", 1.0, 100.0),
            row("a", "spot", 0.3, 100.0),
        ];
        rows[0].usd_per_1m = rows[1].usd_per_1m / 2.0;
        let checks = cost_checks(&rows, &[]);
        let t = check(&checks, "a", "pricing_tier");
        assert!(!t.passed);
        assert!(t.detail.contains("tier spot (0.3 $/h)"), "{}", t.detail);
    }
}
