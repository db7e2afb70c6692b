use super::*;
use crate::cost::{RequestClass, Route};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn wilson_matches_known_intervals() {
    // Wilson (1927) score interval at z = 1.96 (two-sided 95%); values
    // from the closed form, cross-checked independently.
    let cases = [
        (0, 10, 0.0, 0.277_533),
        (5, 10, 0.236_593, 0.763_407),
        (10, 10, 0.722_467, 1.0),
        (81, 263, 0.255_289, 0.366_210),
        (61, 100, 0.512_030, 0.699_831),
        (90, 100, 0.825_634, 0.944_771),
    ];
    for (x, n, lo, hi) in cases {
        let (l, h) = wilson(x, n, Z95);
        assert!(close(l, lo, 1e-6), "{x}/{n}: low {l} vs {lo}");
        assert!(close(h, hi, 1e-6), "{x}/{n}: high {h} vs {hi}");
    }
    // Exact at the edges, never outside [0, 1].
    assert_eq!(wilson(0, 7, Z95).0, 0.0);
    assert_eq!(wilson(7, 7, Z95).1, 1.0);
}

#[test]
fn wilson_narrows_with_trials() {
    let (l1, h1) = wilson(6, 10, Z95);
    let (l2, h2) = wilson(600, 1000, Z95);
    assert!(h2 - l2 < (h1 - l1) / 5.0);
    assert!(l2 < 0.6 && 0.6 < h2);
}

#[test]
fn cost_per_success_divides_by_the_rate_and_crosses_the_bounds() {
    // $2 per 1k requests at 80% success: $2.50 per 1k successes; the
    // interval pairs the cheap bound with the high rate and the dear bound
    // with the low rate.
    let (p, lo, hi) = cost_per_success(2.0, 1.8, 2.2, 0.8, 0.5, 0.9);
    assert_eq!(p, Some(2.5));
    assert!(close(lo, 2.0, 1e-12));
    assert_eq!(hi, Some(2.2 / 0.5));
    // No success: no point and no upper bound; the lower bound stays.
    let (p, lo, hi) = cost_per_success(2.0, 1.8, 2.2, 0.0, 0.0, 0.3);
    assert_eq!((p, hi), (None, None));
    assert!(close(lo, 6.0, 1e-12));
}

fn cand(model: &str, per: (f64, f64, f64), success: (f64, f64), workers: u64) -> Candidate {
    Candidate {
        model: model.into(),
        backend: "b".into(),
        per_success: Some(per.0),
        per_success_low: per.1,
        per_success_high: Some(per.2),
        success_low: success.0,
        success_high: success.1,
        workers_required: workers,
    }
}

#[test]
fn the_cheaper_model_is_chosen_only_with_disjoint_intervals() {
    let small = cand("small", (1.0, 0.9, 1.1), (0.5, 0.6), 4);
    let big = cand("big", (2.0, 1.2, 2.8), (0.85, 0.95), 10);
    let (v, i, _) = tier_verdict(&[small.clone(), big.clone()]);
    assert_eq!((v, i), ("choose", Some(0)));
    // Overlap by a hair: undecided, and the reason names the other model.
    let close_big = cand("big", (2.0, 1.09, 2.8), (0.85, 0.95), 10);
    let (v, i, why) = tier_verdict(&[small.clone(), close_big]);
    assert_eq!((v, i), ("undecided", None));
    assert!(why.contains("big"), "{why}");
    // An unbounded upper bound (no success at the Wilson lower bound)
    // never lies below anything.
    let mut unbounded = small.clone();
    unbounded.per_success_high = None;
    assert_eq!(tier_verdict(&[unbounded, big.clone()]).0, "undecided");
    // A bound that is NaN (a median without an interval) never decides.
    let mut nan = big.clone();
    nan.per_success_low = f64::NAN;
    assert_eq!(tier_verdict(&[small.clone(), nan]).0, "undecided");
    assert_eq!(tier_verdict(&[small]).0, "single_model");
}

#[test]
fn a_tier_needs_a_more_successful_model_and_large_volume() {
    // AM rule 8: tiering is the default once volume is large; Z.4: the
    // cheap model takes most traffic, the more successful one the rest.
    let small = cand("small", (1.0, 0.9, 1.1), (0.5, 0.6), 4);
    let big = cand("big", (2.0, 1.2, 2.8), (0.85, 0.95), 10);
    let (r, e, why) = routing_advice(&[small.clone(), big.clone()], Some(0));
    assert_eq!((r, e), ("tier", Some(1)));
    assert!(
        why.contains("AM rule 8") && why.contains("4 workers"),
        "{why}"
    );
    // One worker serves the volume: single tier, the reason says why.
    let mut one = small.clone();
    one.workers_required = 1;
    let (r, _, why) = routing_advice(&[one, big.clone()], Some(0));
    assert_eq!(r, "single");
    assert!(why.contains("one worker"), "{why}");
    // Overlapping success intervals: nothing to escalate to.
    let similar = cand("big", (2.0, 1.2, 2.8), (0.55, 0.7), 10);
    let (r, e, _) = routing_advice(&[small.clone(), similar], Some(0));
    assert_eq!((r, e), ("single", None));
    // No chosen model: no tier.
    assert_eq!(routing_advice(&[small, big], None).0, "none");
}

fn summary_row(model: &str, backend: &str, phase: &str, tps: f64, med: f64) -> SummaryRow {
    SummaryRow {
        cell: format!("{backend}/{model}/s"),
        backend: backend.into(),
        model: model.into(),
        scenario: "s".into(),
        phase: phase.into(),
        evidence: "simulated".into(),
        n: 4,
        median_ms: med,
        median_ci_low_ms: med * 0.9,
        median_ci_high_ms: med * 1.1,
        tokens_per_s: tps,
        ..Default::default()
    }
}

fn params(counts: Vec<ModelCounts>) -> QualityParams {
    QualityParams {
        counts_file: "quality.jsonl".into(),
        counts_blake3: "ab".into(),
        counts,
        cost: CostParams {
            usd_per_hour: [("on_demand".to_string(), 3.6)].into(),
            tokens_per_month: 1e9,
            burst_factor: 1.0,
            request_mix: vec![RequestClass {
                name: "chat".into(),
                share: 1.0,
                prompt_tokens: 100,
                gen_tokens: 10,
            }],
            routing: vec![
                Route {
                    share: 0.8,
                    backend: "b".into(),
                    model: "small".into(),
                    scenario: "s".into(),
                },
                Route {
                    share: 0.2,
                    backend: "b".into(),
                    model: "big".into(),
                    scenario: "s".into(),
                },
            ],
            energy: None,
        },
        evaluated: Vec::new(),
    }
}

fn counts(model: &str, successes: u64, trials: u64) -> ModelCounts {
    ModelCounts {
        model: model.into(),
        successes,
        trials,
        evaluator: None,
        evaluator_version: None,
    }
}

#[test]
fn rows_price_the_mix_as_the_cost_stage_does_and_divide_by_the_rate() {
    // small: prefill 1000 tok/s, decode 10 tok/s: 100/1000 + 10/10 = 1.1 s
    // a request, $1.10 per 1k requests at $3.60/h; 5/10 successes.
    // big: 100/500 + 10/2.5 = 4.2 s, $4.20; 9/10 successes.
    let summary = vec![
        summary_row("small", "b", "prefill", 1000.0, 100.0),
        summary_row("small", "b", "decode", 10.0, 100.0),
        summary_row("big", "b", "prefill", 500.0, 200.0),
        summary_row("big", "b", "decode", 2.5, 400.0),
        // A model without counts is left out.
        summary_row("other", "b", "prefill", 500.0, 200.0),
        summary_row("other", "b", "decode", 5.0, 200.0),
    ];
    let p = params(vec![counts("small", 5, 10), counts("big", 9, 10)]);
    let rows = quality_rows(&p, &CountsTable::from_file(&p.counts), &summary);
    assert_eq!(rows.len(), 2);
    let small = rows.iter().find(|r| r.model == "small").unwrap();
    assert!(close(small.usd_per_1k_requests, 1.1, 1e-12));
    assert!(close(small.usd_per_1k_successes.unwrap(), 2.2, 1e-12));
    // The cost bounds are the price at the medians' interval bounds.
    assert!(close(small.usd_per_1k_requests_low, 1.1 * 0.9, 1e-12));
    assert!(close(small.usd_per_1k_requests_high, 1.1 * 1.1, 1e-12));
    let (lo, hi) = wilson(5, 10, Z95);
    assert!(close(small.usd_per_1k_successes_low, 0.99 / hi, 1e-12));
    assert!(close(
        small.usd_per_1k_successes_high.unwrap(),
        1.21 / lo,
        1e-12
    ));
    // The cost stage's formula for the same request.
    let seconds = crate::cost::request_seconds(100.0, 10.0, 1000.0, 10.0);
    assert_eq!(
        crate::cost::usd_per_1k_requests(seconds, 3.6),
        small.usd_per_1k_requests
    );
    // 1e9 tokens a month over 110 tokens / 1.1 s = 100 tok/s: 4 workers.
    assert_eq!(small.workers_required, 4);

    let tiers = tier_rows(&rows);
    assert_eq!(tiers.len(), 1);
    let t = &tiers[0];
    // small: $2.20 per 1k successes [0.99 / 0.763, 1.21 / 0.237] = [1.30,
    // 5.11]; big: 4.2 / 0.9 = $4.67 [3.78 / 0.982, 4.62 / 0.596] = [3.85,
    // 7.75]: the intervals overlap, so no model is chosen.
    assert_eq!(t.candidates, "small@b, big@b");
    assert_eq!(t.verdict, "undecided");
    assert_eq!(t.routing, "none");

    // With a hundred times the trials and tighter medians the intervals
    // part: small [1.089 / 0.531, 1.111 / 0.469] = [2.05, 2.37]; big
    // [4.158 / 0.917, 4.242 / 0.880] = [4.53, 4.82].
    let p = params(vec![counts("small", 500, 1000), counts("big", 900, 1000)]);
    let mut summary_tight = summary.clone();
    for s in &mut summary_tight {
        s.median_ci_low_ms = s.median_ms * 0.99;
        s.median_ci_high_ms = s.median_ms * 1.01;
    }
    let rows = quality_rows(&p, &CountsTable::from_file(&p.counts), &summary_tight);
    let t = &tier_rows(&rows)[0];
    assert_eq!(t.verdict, "choose", "{}", t.reason);
    assert_eq!(t.model.as_deref(), Some("small"));
    // big succeeds more often (disjoint), and small needs 4 workers.
    assert_eq!(t.routing, "tier", "{}", t.routing_reason);
    assert_eq!(t.escalate_model.as_deref(), Some("big"));
    assert_eq!(t.workers_required, 4);
    // Simulated costs show the rule; they never decide.
    assert!(!t.decides);
    for s in &mut summary_tight {
        s.evidence = "measured".into();
    }
    assert!(
        tier_rows(&quality_rows(
            &p,
            &CountsTable::from_file(&p.counts),
            &summary_tight
        ))[0]
            .decides
    );

    // V.5: 0.8 small + 0.2 big.
    let routed = routed_rows(&p.cost, &rows);
    assert_eq!(routed.len(), 1);
    let r = &routed[0];
    assert!(close(r.usd_per_1k_requests, 0.8 * 1.1 + 0.2 * 4.2, 1e-12));
    assert!(close(r.success_rate, 0.8 * 0.5 + 0.2 * 0.9, 1e-12));
    assert!(close(
        r.usd_per_1k_successes.unwrap(),
        r.usd_per_1k_requests / r.success_rate,
        1e-12
    ));
    assert_eq!(r.policy, "0.8 b/small/s + 0.2 b/big/s");
}

#[test]
fn a_routed_model_without_counts_leaves_the_policy_out() {
    let summary = vec![
        summary_row("small", "b", "prefill", 1000.0, 100.0),
        summary_row("small", "b", "decode", 10.0, 100.0),
        summary_row("big", "b", "prefill", 500.0, 200.0),
        summary_row("big", "b", "decode", 2.5, 400.0),
    ];
    let p = params(vec![counts("small", 50, 100)]);
    let rows = quality_rows(&p, &CountsTable::from_file(&p.counts), &summary);
    assert!(routed_rows(&p.cost, &rows).is_empty());
    assert_eq!(tier_rows(&rows)[0].verdict, "single_model");
}

#[test]
fn tier_rows_price_a_model_at_its_cheapest_backend_whatever_the_order() {
    let mut summary = vec![
        summary_row("small", "slow", "prefill", 100.0, 100.0),
        summary_row("small", "slow", "decode", 1.0, 100.0),
        summary_row("small", "fast", "prefill", 1000.0, 100.0),
        summary_row("small", "fast", "decode", 10.0, 100.0),
    ];
    let p = params(vec![counts("small", 50, 100)]);
    let a = tier_rows(&quality_rows(
        &p,
        &CountsTable::from_file(&p.counts),
        &summary,
    ));
    summary.reverse();
    let b = tier_rows(&quality_rows(
        &p,
        &CountsTable::from_file(&p.counts),
        &summary,
    ));
    assert_eq!(a[0].backend.as_deref(), Some("fast"));
    assert_eq!(a[0].candidates, b[0].candidates);
    assert_eq!(a[0].backend, b[0].backend);
}

#[test]
fn counts_files_are_parsed_and_located() {
    let ok = b"{\"model\": \"a\", \"successes\": 3, \"trials\": 4, \"evaluator\": \"exact\"}\n\n{\"model\": \"b\", \"successes\": 0, \"trials\": 1}\n";
    let c = parse_counts(ok).unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].evaluator.as_deref(), Some("exact"));
    let err = |text: &str| parse_counts(text.as_bytes()).unwrap_err();
    let e = err(
        "{\"model\": \"a\", \"successes\": 3, \"trials\": 4}\n{\"model\": \"b\", \"successes\": 5, \"trials\": 4}\n",
    );
    assert_eq!((e.line, e.field), (2, Some("successes")));
    assert!(e.message.contains("exceeds trials 4"), "{e}");
    let e = err("\n{\"model\": \"a\", \"successes\": 3}\n");
    assert_eq!((e.line, e.field), (2, Some("trials")));
    let e = err("{\"model\": \"a\", \"successes\": -1, \"trials\": 4}");
    assert_eq!(e.field, Some("successes"));
    let e = err("{\"model\": \"a\", \"successes\": 1.5, \"trials\": 4}");
    assert_eq!(e.field, Some("successes"));
    let e = err("{\"model\": \"a\", \"successes\": 0, \"trials\": 0}");
    assert_eq!(e.field, Some("trials"));
    let e = err("{\"model\": 3, \"successes\": 0, \"trials\": 1}");
    assert_eq!(e.field, Some("model"));
    let e = err("{\"model\": \"a\", \"successes\": 0, \"trials\": 1, \"score\": 1}");
    assert!(e.message.contains("unknown field `score`"), "{e}");
    let e = err(
        "{\"model\": \"a\", \"successes\": 0, \"trials\": 1}\n{\"model\": \"a\", \"successes\": 0, \"trials\": 1}",
    );
    assert_eq!((e.line, e.field), (2, Some("model")));
    assert_eq!(err("model,successes\n").line, 1);
    assert_eq!(err("").line, 1);
    assert_eq!(err("[1]").line, 1);
    assert_eq!(e.to_string(), format!("2: field `model`: {}", e.message));
}

#[test]
fn a_cell_takes_its_own_backends_evaluation_else_the_reference() {
    // Evaluated on "fast" (the reference, pushed first) and "exact";
    // "other" was not evaluated and takes the reference's counts.
    let mut table = CountsTable::default();
    table.push_evaluated("fast", counts("small", 3, 10));
    table.push_evaluated("exact", counts("small", 9, 10));
    let (by, c) = table.get("exact", "small").unwrap();
    assert_eq!((by, c.successes), (Some("exact"), 9));
    let (by, c) = table.get("other", "small").unwrap();
    assert_eq!((by, c.successes), (Some("fast"), 3));
    assert!(table.get("fast", "big").is_none());
    // A counts file's line holds for every backend.
    let file = CountsTable::from_file(&[counts("big", 4, 8)]);
    assert_eq!(file.get("any", "big").unwrap().0, None);
}

#[test]
fn a_model_is_priced_at_its_cheapest_backend_per_success_not_per_request() {
    // "cheap" serves small at 1.1 s a request but succeeds 2 in 10; "dear"
    // at 2.1 s with 9 in 10: per success, dear is cheaper (2.33 vs 5.5).
    let summary = vec![
        summary_row("small", "cheap", "prefill", 1000.0, 100.0),
        summary_row("small", "cheap", "decode", 10.0, 100.0),
        summary_row("small", "dear", "prefill", 500.0, 200.0),
        summary_row("small", "dear", "decode", 5.0, 200.0),
    ];
    let p = params(Vec::new());
    let mut table = CountsTable::default();
    table.push_evaluated("cheap", counts("small", 2, 10));
    table.push_evaluated("dear", counts("small", 9, 10));
    let rows = quality_rows(&p, &table, &summary);
    let tiers = tier_rows(&rows);
    assert_eq!(tiers[0].candidates, "small@dear", "{tiers:?}");
    let dear = rows.iter().find(|r| r.backend == "dear").unwrap();
    assert_eq!((dear.successes, dear.evaluated_by.as_str()), (9, "dear"));
}
