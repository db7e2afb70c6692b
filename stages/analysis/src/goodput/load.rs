//! The `load` row of one server cell: throughput, latency tails and SLO
//! attainment over its steady window.

use assay_core::config::{Arrival, LoadProfile, Slo};
use assay_core::domain::TokensSource;
use assay_core::tables::{LoadRow, RequestRow};
use assay_measure::Manifest;

use super::request::{limits, meets, ms, output_tokens, quantiles, tpot_ms};

/// The `load` row of one cell.
pub fn load_row(manifest: &Manifest, family: Option<String>, requests: &[RequestRow]) -> LoadRow {
    let scenario = &manifest.scenario;
    let load = scenario.load.as_ref();
    let steady: Vec<&RequestRow> = requests.iter().filter(|r| r.is_steady()).collect();
    let ok: Vec<&RequestRow> = steady.iter().copied().filter(|r| r.is_ok()).collect();
    let window = Window::of(&steady, &ok, load);
    let (output_tokens_total, tokens_source) = output_totals(&ok);
    let tails = Tails::of(&steady, &ok);
    let slo = limits(scenario);
    let verdict = SloVerdict::of(slo, &steady, &ok, &tails);

    LoadRow {
        cell: manifest.cell.clone(),
        backend: manifest.backend.clone(),
        model: manifest.model.clone(),
        scenario: scenario.name.clone(),
        family,
        evidence: manifest.evidence.clone(),
        arrival: load.map_or("none", |l| l.arrival.as_str()).into(),
        concurrency: load
            .filter(|l| l.arrival == Arrival::Closed)
            .map(|l| l.concurrency),
        offered_rps: load
            .filter(|l| l.arrival != Arrival::Closed)
            .and_then(|l| l.rates.first().copied()),
        realised_rps: window.realised_rps,
        completion_rps: window.completion_rps,
        requests: steady.len() as u32,
        completed: ok.len() as u32,
        failed: verdict.failed,
        short: steady.iter().filter(|r| r.short).count() as u32,
        window_s: window.seconds,
        achieved_rps: window.per_s(ok.len() as f64),
        output_tokens: output_tokens_total,
        output_tps: window.per_s(output_tokens_total as f64),
        tokens_source: tokens_source.as_str().into(),
        ttft_p50_ms: tails.ttft[0],
        ttft_p90_ms: tails.ttft[1],
        ttft_p99_ms: tails.ttft[2],
        tpot_p50_ms: tails.tpot[0],
        tpot_p90_ms: tails.tpot[1],
        tpot_p99_ms: tails.tpot[2],
        itl_p50_ms: tails.itl[0],
        itl_p99_ms: tails.itl[1],
        e2e_p50_ms: tails.e2e[0],
        e2e_p99_ms: tails.e2e[1],
        queue_p99_ms: tails.queue_p99,
        slo_ttft_ms: slo.and_then(|s| s.ttft_ms),
        slo_tpot_ms: slo.and_then(|s| s.tpot_ms),
        slo_attainment: slo.map(|s| s.attainment),
        good: verdict.good,
        attainment: verdict.attainment,
        goodput_rps: verdict.good.and_then(|g| window.per_s(f64::from(g))),
        mlperf_pass: verdict.mlperf_pass,
        sustainable: slo.zip(verdict.attainment).map(|(s, a)| a >= s.attainment),
    }
}

/// The steady window and the rates measured over it.
struct Window {
    /// First steady send to the last steady end, s; 0 without steady
    /// requests.
    seconds: f64,
    realised_rps: Option<f64>,
    completion_rps: Option<f64>,
}

impl Window {
    fn of(steady: &[&RequestRow], ok: &[&RequestRow], load: Option<&LoadProfile>) -> Window {
        let start = steady.iter().map(|r| r.sent_ns).min();
        let end = steady
            .iter()
            .map(|r| {
                r.sent_ns
                    .saturating_add(r.e2e_ns.or(r.ttft_ns).unwrap_or(0))
            })
            .max();
        let seconds = match (start, end) {
            (Some(s), Some(e)) => e.saturating_sub(s) as f64 / 1e9,
            _ => 0.0,
        };
        let open_loop = load.is_some_and(|l| l.arrival != Arrival::Closed);
        let realised_rps = if open_loop {
            spacing_rate(steady.iter().map(|r| r.scheduled_ns).collect())
        } else {
            None
        };
        let completion_rps = spacing_rate(
            ok.iter()
                .map(|r| r.sent_ns.saturating_add(r.e2e_ns.unwrap_or(0)))
                .collect(),
        );
        Window {
            seconds,
            realised_rps,
            completion_rps,
        }
    }

    /// `n` per second of the window; null when the window is empty.
    fn per_s(&self, n: f64) -> Option<f64> {
        (self.seconds > 0.0).then(|| n / self.seconds)
    }
}

/// The spacing rate of instants (sorted here): (n - 1) / span.
fn spacing_rate(mut t: Vec<u64>) -> Option<f64> {
    t.sort_unstable();
    let span = t.last()?.saturating_sub(*t.first()?) as f64 / 1e9;
    (t.len() >= 2 && span > 0.0).then(|| (t.len() - 1) as f64 / span)
}

/// Output tokens of the completed requests, and where their counts came
/// from (`server`, `chunks` or `mixed`).
fn output_totals(ok: &[&RequestRow]) -> (u64, TokensSource) {
    let total: u64 = ok.iter().map(|r| u64::from(output_tokens(r))).sum();
    let from_server = ok.iter().filter(|r| r.completion_tokens.is_some()).count();
    let source = if from_server == ok.len() {
        TokensSource::Server
    } else if from_server == 0 {
        TokensSource::Chunks
    } else {
        TokensSource::Mixed
    };
    (total, source)
}

/// The latency quantiles of a cell, ms.
struct Tails {
    /// p50, p90, p99 of completed requests.
    ttft: [Option<f64>; 3],
    tpot: [Option<f64>; 3],
    /// p50, p99 over every inter-chunk gap of completed requests.
    itl: [Option<f64>; 2],
    /// p50, p99 of completed requests.
    e2e: [Option<f64>; 2],
    /// Of every steady request.
    queue_p99: Option<f64>,
}

impl Tails {
    fn of(steady: &[&RequestRow], ok: &[&RequestRow]) -> Tails {
        let ttft = quantiles(
            ok.iter().filter_map(|r| r.ttft_ns.map(ms)).collect(),
            [0.5, 0.9, 0.99],
        );
        let tpot = quantiles(
            ok.iter().filter_map(|r| tpot_ms(r)).collect(),
            [0.5, 0.9, 0.99],
        );
        let itl = quantiles(
            ok.iter()
                .flat_map(|r| r.itl_ns.iter().copied().map(ms))
                .collect(),
            [0.5, 0.99],
        );
        let e2e = quantiles(
            ok.iter().filter_map(|r| r.e2e_ns.map(ms)).collect(),
            [0.5, 0.99],
        );
        let [queue_p99] = quantiles(steady.iter().map(|r| ms(r.queue_ns)).collect(), [0.99]);
        Tails {
            ttft,
            tpot,
            itl,
            e2e,
            queue_p99,
        }
    }
}

/// The SLO verdict of a cell's steady window.
struct SloVerdict {
    /// Steady requests that did not complete.
    failed: u32,
    /// Steady requests meeting every limit; null without an SLO.
    good: Option<u32>,
    attainment: Option<f64>,
    mlperf_pass: Option<bool>,
}

impl SloVerdict {
    fn of(
        slo: Option<&Slo>,
        steady: &[&RequestRow],
        ok: &[&RequestRow],
        tails: &Tails,
    ) -> SloVerdict {
        let good = slo.map(|s| steady.iter().filter(|r| meets(r, s)).count() as u32);
        let attainment = good
            .filter(|_| !steady.is_empty())
            .map(|g| f64::from(g) / steady.len() as f64);
        let failed = (steady.len() - ok.len()) as u32;
        let (ttft_p99, tpot_p99) = (tails.ttft[2], tails.tpot[2]);
        // A TTFT limit needs a p99 to pass; a TPOT limit passes vacuously
        // when every output had one token (no TPOT), as in `meets`. A request
        // without visible text has neither and fails the pass, as a miss.
        let mlperf_pass = slo.map(|s| {
            failed == 0
                && !ok.is_empty()
                && ok.iter().all(|r| r.ttft_ns.is_some())
                && s.ttft_ms.is_none_or(|l| ttft_p99.is_some_and(|p| p <= l))
                && s.tpot_ms.is_none_or(|l| tpot_p99.is_none_or(|p| p <= l))
        });
        SloVerdict {
            failed,
            good,
            attainment,
            mlperf_pass,
        }
    }
}
