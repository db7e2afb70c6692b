use super::*;
use assay_core::config::{Arrival, LoadProfile};
use assay_core::tables::{KneeRow, LoadRow};

fn profile(arrival: Arrival, rates: Vec<f64>, slo: Option<Slo>) -> LoadProfile {
    LoadProfile {
        arrival,
        concurrency: 4,
        rates,
        seed: 0,
        requests: Some(10),
        duration_s: None,
        warmup_requests: 0,
        cooldown_requests: 0,
        max_in_flight: 256,
        slo,
    }
}

fn slo(ttft_ms: Option<f64>, tpot_ms: Option<f64>, attainment: f64) -> Option<Slo> {
    Some(Slo {
        ttft_ms,
        tpot_ms,
        attainment,
    })
}

fn manifest(cell: &str, scenario: &str, load: LoadProfile) -> Manifest {
    let mut m = crate::validate::tests::manifest(0, 1);
    m.cell = cell.into();
    m.scenario.name = scenario.into();
    m.scenario.load = Some(load);
    m
}

const MS: u64 = 1_000_000;

/// A completed steady request sent at `sent_ms`: TTFT, e2e and tokens
/// as given, one ITL per token after the first.
fn ok(request: u32, sent_ms: u64, ttft_ms: u64, e2e_ms: u64, tokens: u32) -> RequestRow {
    RequestRow {
        cell: "c".into(),
        request,
        window: "steady".into(),
        scheduled_ns: sent_ms * MS,
        sent_ns: sent_ms * MS,
        ttft_ns: Some(ttft_ms * MS),
        itl_ns: vec![
            (e2e_ms - ttft_ms) * MS / u64::from(tokens.max(2) - 1);
            tokens.saturating_sub(1) as usize
        ],
        e2e_ns: Some(e2e_ms * MS),
        completion_tokens: Some(tokens),
        chunks: tokens,
        gen_tokens_requested: tokens,
        status: "ok".into(),
        ..Default::default()
    }
}

fn failed(request: u32, sent_ms: u64) -> RequestRow {
    RequestRow {
        cell: "c".into(),
        request,
        window: "steady".into(),
        scheduled_ns: sent_ms * MS,
        sent_ns: sent_ms * MS,
        status: "timeout".into(),
        ..Default::default()
    }
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn client_queueing_counts_against_the_ttft_limit() {
    let slo = slo(Some(100.0), None, 0.9).unwrap();
    let on_time = ok(0, 0, 60, 200, 4);
    assert!(meets(&on_time, &slo));
    // The same server latency after 50 ms waiting for a free slot: the
    // user waited 110 ms for the first token.
    let late = RequestRow {
        queue_ns: 50 * MS,
        ..on_time
    };
    assert!(!meets(&late, &slo));
}

#[test]
fn a_request_without_visible_text_is_a_miss_but_its_tokens_count() {
    // The server generated the tokens; no event carried text.
    let silent = |request: u32, tokens: u32| RequestRow {
        ttft_ns: None,
        itl_ns: Vec::new(),
        chunks: 0,
        ..ok(request, 100, 60, 200, tokens)
    };
    let both = slo(Some(100.0), Some(1000.0), 0.5).unwrap();
    assert!(!meets(&silent(1, 4), &both));
    assert_eq!(tpot_ms(&silent(1, 4)), None);
    // A one-token output passes a TPOT limit vacuously, but not
    // without visible text.
    let tpot_only = slo(None, Some(1000.0), 0.5).unwrap();
    assert!(meets(&ok(0, 0, 60, 60, 1), &tpot_only));
    assert!(!meets(&silent(1, 1), &tpot_only));

    let rows = [ok(0, 0, 60, 200, 4), silent(1, 4)];
    let m = manifest(
        "c",
        "s",
        profile(Arrival::Closed, vec![], Some(both.clone())),
    );
    let r = load_row(&m, None, &rows);
    assert_eq!((r.completed, r.failed), (2, 0));
    assert_eq!(r.output_tokens, 8);
    // Only the request with a TTFT is in the TTFT quantiles.
    assert!(close(r.ttft_p50_ms, 60.0), "{:?}", r.ttft_p50_ms);
    assert!(close(r.ttft_p99_ms, 60.0), "{:?}", r.ttft_p99_ms);
    assert_eq!(r.good, Some(1));
    assert!(close(r.attainment, 0.5));
    assert_eq!(r.mlperf_pass, Some(false));

    // Every output one token, none visible: no TPOT anywhere, and still
    // no pass.
    let rows = [silent(0, 1), silent(1, 1)];
    let m = manifest(
        "c",
        "s",
        profile(Arrival::Closed, vec![], Some(tpot_only.clone())),
    );
    let r = load_row(&m, None, &rows);
    assert_eq!((r.good, r.mlperf_pass), (Some(0), Some(false)));
}

#[test]
fn quantiles_are_type_7_over_completed_steady_requests() {
    let mut rows: Vec<RequestRow> = (0..5)
        .map(|i| ok(i, 1000 * u64::from(i), 10 * (u64::from(i) + 1), 200, 11))
        .collect();
    // Warmup, cooldown and failed requests never enter a latency.
    let mut warm = ok(5, 0, 1000, 5000, 11);
    warm.window = "warmup".into();
    let mut cool = ok(6, 9000, 1000, 5000, 11);
    cool.window = "cooldown".into();
    rows.extend([warm, cool, failed(7, 100)]);
    let m = manifest("c", "s", profile(Arrival::Closed, vec![], None));
    let r = load_row(&m, None, &rows);
    // TTFT 10, 20, 30, 40, 50 ms: p50 30, p90 40 + 0.6 * 10, p99 40 + 0.96 * 10.
    assert!(close(r.ttft_p50_ms, 30.0), "{:?}", r.ttft_p50_ms);
    assert!(close(r.ttft_p90_ms, 46.0), "{:?}", r.ttft_p90_ms);
    assert!(close(r.ttft_p99_ms, 49.6), "{:?}", r.ttft_p99_ms);
    assert!(close(r.e2e_p99_ms, 200.0));
    assert_eq!((r.requests, r.completed, r.failed), (6, 5, 1));
    assert_eq!(r.arrival, "closed");
    assert_eq!((r.concurrency, r.offered_rps), (Some(4), None));
    // Queue p99 over all six steady requests, all zero.
    assert!(close(r.queue_p99_ms, 0.0));
    // ITL over every gap: 10 gaps per request.
    assert!(r.itl_p50_ms.is_some());
    assert_eq!(r.tokens_source, "server");
    assert_eq!(r.output_tokens, 55);
    // No SLO: every SLO column is null.
    assert_eq!(
        (
            r.good,
            r.attainment,
            r.goodput_rps,
            r.mlperf_pass,
            r.sustainable
        ),
        (None, None, None, None, None)
    );
    assert_eq!(
        (r.slo_ttft_ms, r.slo_tpot_ms, r.slo_attainment),
        (None, None, None)
    );
}

#[test]
fn tpot_excludes_one_token_outputs() {
    let rows = vec![
        // (110 - 10) / (11 - 1) = 10 ms.
        ok(0, 0, 10, 110, 11),
        // One token: no TPOT, whatever its e2e.
        ok(1, 0, 10, 5000, 1),
        // (60 - 20) / (3 - 1) = 20 ms.
        ok(2, 0, 20, 60, 3),
    ];
    assert_eq!(tpot_ms(&rows[1]), None);
    let m = manifest(
        "c",
        "s",
        profile(Arrival::Closed, vec![], slo(None, Some(15.0), 0.5)),
    );
    let r = load_row(&m, None, &rows);
    assert!(close(r.tpot_p50_ms, 15.0), "{:?}", r.tpot_p50_ms);
    assert!(close(r.tpot_p99_ms, 10.0 + 0.99 * 10.0));
    // The one-token request meets the TPOT limit (vLLM counts it as 0);
    // the 20 ms one misses.
    assert_eq!(r.good, Some(2));
    assert_eq!(r.mlperf_pass, Some(false));
}

#[test]
fn window_goodput_and_failures_as_misses() {
    let rows = vec![
        // Sent at 1 s, ends at 1.1 s.
        ok(0, 1000, 50, 100, 5),
        // Misses TTFT (300 > 200).
        ok(1, 1500, 300, 400, 5),
        failed(2, 2000),
        // Sent at 3 s, ends at 3.5 s: the last steady end.
        ok(3, 3000, 100, 500, 5),
    ];
    let m = manifest(
        "c",
        "s-r2",
        profile(Arrival::Poisson, vec![2.0], slo(Some(200.0), None, 0.5)),
    );
    let r = load_row(&m, Some("s".into()), &rows);
    assert_eq!(r.window_s, 2.5);
    assert_eq!(r.offered_rps, Some(2.0));
    assert_eq!(r.concurrency, None);
    assert_eq!(r.arrival, "poisson");
    assert_eq!(r.family.as_deref(), Some("s"));
    assert!(close(r.achieved_rps, 3.0 / 2.5));
    assert!(close(r.output_tps, 15.0 / 2.5));
    // Two of four steady requests meet TTFT <= 200: the failed one is a miss.
    assert_eq!(r.good, Some(2));
    assert!(close(r.attainment, 0.5));
    assert!(close(r.goodput_rps, 2.0 / 2.5));
    assert_eq!(r.sustainable, Some(true));
    // A failure fails MLPerf's test whatever the tails.
    assert_eq!(r.mlperf_pass, Some(false));
    assert_eq!(r.slo_attainment, Some(0.5));
}

#[test]
fn mlperf_judges_p99_tails() {
    let rows: Vec<RequestRow> = (0..10)
        .map(|i| ok(i, 100 * u64::from(i), 100, 190, 10))
        .collect();
    let pass = manifest(
        "c",
        "s",
        profile(
            Arrival::Constant,
            vec![10.0],
            slo(Some(100.0), Some(10.0), 0.9),
        ),
    );
    let r = load_row(&pass, None, &rows);
    assert_eq!(r.mlperf_pass, Some(true));
    assert_eq!(r.sustainable, Some(true));
    let fail = manifest(
        "c",
        "s",
        profile(Arrival::Constant, vec![10.0], slo(Some(99.0), None, 0.9)),
    );
    let r = load_row(&fail, None, &rows);
    assert_eq!(r.mlperf_pass, Some(false));
    assert_eq!(r.attainment, Some(0.0));
    assert_eq!(r.sustainable, Some(false));
}

#[test]
fn chunks_stand_in_for_missing_server_counts() {
    let mut a = ok(0, 0, 10, 50, 5);
    a.completion_tokens = None;
    a.chunks = 3;
    let b = ok(1, 0, 10, 50, 5);
    let m = manifest("c", "s", profile(Arrival::Closed, vec![], None));
    let r = load_row(&m, None, &[a.clone()]);
    assert_eq!((r.tokens_source.as_str(), r.output_tokens), ("chunks", 3));
    let r = load_row(&m, None, &[a, b]);
    assert_eq!((r.tokens_source.as_str(), r.output_tokens), ("mixed", 8));
}

#[test]
fn an_empty_window_has_no_rates() {
    let m = manifest(
        "c",
        "s",
        profile(Arrival::Constant, vec![1.0], slo(Some(1.0), None, 0.9)),
    );
    let r = load_row(&m, None, &[]);
    assert_eq!(r.window_s, 0.0);
    assert_eq!(
        (r.achieved_rps, r.output_tps, r.goodput_rps),
        (None, None, None)
    );
    assert_eq!((r.attainment, r.sustainable), (None, None));
    assert_eq!(r.ttft_p99_ms, None);
}

/// A sweep row: offered `rate`, achieved `achieved`, attainment `met`
/// (null: no SLO) against 0.9.
fn rate_row(scenario: &str, rate: f64, achieved: f64, met: Option<f64>) -> LoadRow {
    LoadRow {
        cell: format!("b/m/{scenario}"),
        backend: "b".into(),
        model: "m".into(),
        scenario: scenario.into(),
        family: Some("chat".into()),
        evidence: "measured".into(),
        offered_rps: Some(rate),
        achieved_rps: Some(achieved),
        slo_attainment: met.map(|_| 0.9),
        attainment: met,
        sustainable: met.map(|a| a >= 0.9),
        ..Default::default()
    }
}

#[test]
fn the_knee_is_the_highest_rate_with_every_lower_rate_sustainable() {
    // r=4 passes again above the failing r=2: it does not count.
    let rows = vec![
        rate_row("chat-r4", 4.0, 3.9, Some(0.95)),
        rate_row("chat-r1", 1.0, 1.0, Some(1.0)),
        rate_row("chat-r2", 2.0, 2.0, Some(0.5)),
        rate_row("chat-r8", 8.0, 5.0, Some(0.2)),
    ];
    let k = knees(&rows);
    assert_eq!(k.len(), 1);
    let k = &k[0];
    assert_eq!(k.rates, vec![1.0, 2.0, 4.0, 8.0]);
    assert_eq!(k.cells[0], "b/m/chat-r1");
    assert_eq!(k.knee_rps, Some(1.0));
    assert_eq!(k.slo_attainment, Some(0.9));
    // 1.0 >= 0.95, 2.0 >= 1.9, 3.9 >= 3.8, 5.0 < 7.6.
    assert_eq!(k.saturation_rps, Some(4.0));
    assert_eq!(
        k.reason,
        "r=1 met 1.000 >= 0.9, achieved 1.000; r=2 met 0.500 < 0.9, achieved 2.000; \
         r=4 met 0.950 >= 0.9, achieved 3.900; r=8 met 0.200 < 0.9, achieved 5.000"
    );
    assert_eq!(k.evidence, "measured");
}

#[test]
fn saturation_compares_completions_with_the_arrivals_really_made() {
    // Nominal 4 rps, but the sample arrived at 5: completing at 4.6
    // is falling behind, though 4.6 >= 0.95 x 4.
    let mut behind = rate_row("chat-r4", 4.0, 4.6, Some(1.0));
    behind.realised_rps = Some(5.0);
    behind.completion_rps = Some(4.6);
    let mut fine = rate_row("chat-r2", 2.0, 1.8, Some(1.0));
    fine.realised_rps = Some(2.5);
    fine.completion_rps = Some(2.45);
    let k = &knees(&[fine, behind])[0];
    assert_eq!(k.saturation_rps, Some(2.0));
    assert!(
        k.reason
            .contains("(arrivals at 5.000, completions at 4.600)"),
        "{}",
        k.reason
    );
}

#[test]
fn spacing_rates_of_a_cell() {
    // Scheduled 0, 100, 200, 300 ms: 3 gaps in 0.3 s = 10 rps; ends
    // 50 ms after each send, so completions at 10 rps too.
    let rows: Vec<RequestRow> = (0..4)
        .map(|i| ok(i, u64::from(i) * 100, 10, 50, 3))
        .collect();
    let m = manifest("b/m/c", "c", profile(Arrival::Constant, vec![10.0], None));
    let r = load_row(&m, None, &rows);
    assert!((r.realised_rps.unwrap() - 10.0).abs() < 1e-9);
    assert!((r.completion_rps.unwrap() - 10.0).abs() < 1e-9);
    let closed = manifest("b/m/c", "c", profile(Arrival::Closed, vec![], None));
    assert_eq!(load_row(&closed, None, &rows).realised_rps, None);
}

#[test]
fn saturation_stops_at_the_first_rate_that_falls_behind() {
    let rows = vec![
        rate_row("chat-r1", 1.0, 0.9, Some(1.0)),
        rate_row("chat-r2", 2.0, 2.0, Some(1.0)),
    ];
    let k = &knees(&rows)[0];
    assert_eq!(k.saturation_rps, None);
    assert_eq!(k.knee_rps, Some(2.0));
}

#[test]
fn no_slo_no_knee_and_closed_loop_cells_are_no_sweep() {
    let mut closed = rate_row("closed", 1.0, 1.0, None);
    closed.offered_rps = None;
    let mut other = rate_row("solo-r3", 3.0, 3.0, Some(0.1));
    other.family = None;
    let rows = vec![
        rate_row("chat-r1", 1.0, 1.0, None),
        rate_row("chat-r2", 2.0, 1.0, None),
        closed,
        other,
    ];
    let k = knees(&rows);
    assert_eq!(k.len(), 2);
    assert_eq!(k[0].family, "chat");
    assert_eq!(k[0].knee_rps, None);
    assert_eq!(k[0].slo_attainment, None);
    assert_eq!(k[0].saturation_rps, Some(1.0));
    assert!(
        k[0].reason
            .starts_with("no SLO, no knee; r=1 achieved 1.000"),
        "{}",
        k[0].reason
    );
    // A rate cell without a family is a sweep of its own.
    assert_eq!(k[1].family, "solo-r3");
    assert_eq!(k[1].knee_rps, None);
}

#[test]
fn the_stage_reads_every_cell_and_sorts_by_cell() {
    use assay_store::{Digest, Store};
    use std::sync::atomic::AtomicBool;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut inputs = Vec::new();
    let slo = slo(Some(100.0), None, 0.9);
    for (cell, scenario, rate) in [
        ("b/m/chat-r2", "chat-r2", 2.0),
        ("b/m/chat-r1", "chat-r1", 1.0),
    ] {
        let m = manifest(cell, scenario, profile(Arrival::Constant, vec![rate], None));
        // Two requests 1/rate apart; at 2 rps the server takes 2 s each.
        let (gap_ms, e2e_ms) = if rate == 1.0 {
            (1000, 100)
        } else {
            (500, 2000)
        };
        let rows = vec![ok(0, 0, 50, e2e_ms, 3), ok(1, gap_ms, 50, e2e_ms, 3)];
        let node = format!("measure/{cell}");
        for (name, bytes) in [
            (MANIFEST, tables::to_json(&m).unwrap()),
            (REQUESTS, tables::to_parquet(&rows).unwrap()),
        ] {
            inputs.push(Input {
                node: node.clone(),
                key: Digest::of(node.as_bytes()),
                name: name.into(),
                digest: store.put(&bytes).unwrap(),
            });
        }
    }
    let stage = GoodputStage {
        params: GoodputParams {
            families: [("chat-r1", "chat"), ("chat-r2", "chat")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .into(),
            // The SLO comes from the params (the spec), whatever the
            // manifests say.
            slos: ["chat-r1", "chat-r2"]
                .map(|c| (c.to_string(), slo.clone().unwrap()))
                .into(),
        },
    };
    let cancel = AtomicBool::new(false);
    let progress = |_: &str| {};
    let ctx = StageContext::new(&store, Digest::of(b"goodput"), &cancel, &progress);
    let out = stage.run(&ctx, &inputs).unwrap();
    inputs.reverse();
    assert_eq!(out, stage.run(&ctx, &inputs).unwrap());
    let load: Vec<LoadRow> = tables::from_parquet(&out[LOAD]).unwrap();
    assert_eq!(
        load.iter().map(|r| r.cell.as_str()).collect::<Vec<_>>(),
        ["b/m/chat-r1", "b/m/chat-r2"]
    );
    // r=1: sends at 0 and 1 s, the last ends at 1.1 s.
    assert_eq!(load[0].window_s, 1.1);
    assert_eq!(load[0].family.as_deref(), Some("chat"));
    assert_eq!(load[1].window_s, 2.5);
    let knees: Vec<KneeRow> = tables::from_parquet(&out[KNEES]).unwrap();
    assert_eq!(knees.len(), 1);
    assert_eq!(knees[0].rates, vec![1.0, 2.0]);
    // Both rates meet the TTFT limit. At r=2 the two requests take 2 s
    // each but overlap: they complete 0.5 s apart, as they arrived, so
    // the server keeps up (saturation compares spacing, not the window).
    assert_eq!(
        (knees[0].knee_rps, knees[0].saturation_rps),
        (Some(2.0), Some(2.0))
    );
    assert_eq!(load[1].completion_rps, Some(2.0));
    let missing: Vec<Input> = inputs.into_iter().filter(|i| i.name != MANIFEST).collect();
    let err = stage.run(&ctx, &missing).unwrap_err().to_string();
    assert!(err.contains("has no manifest output"), "{err}");
}
