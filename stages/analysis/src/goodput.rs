//! goodput: serving under load. From each server cell's `requests` table
//! and manifest, one `load` row (throughput, latency tails, SLO attainment
//! and goodput over the steady window), and from the open-loop rate sweeps
//! one `knees` row per (backend, model, family): the highest rate that
//! still meets the SLO, and the highest the server still keeps up with.
//!
//! ```text
//! window_s     = (last steady end - first steady send) / 1e9       end = send + e2e
//! achieved_rps = completed steady requests / window_s
//! output_tps   = output tokens of completed steady requests / window_s
//! TPOT         = (e2e - ttft) / (output tokens - 1)                 outputs of one token excluded
//! attainment   = steady requests meeting every limit / steady requests   (failed = miss)
//! goodput_rps  = steady requests meeting every limit / window_s          (vLLM --goodput)
//! mlperf_pass  = no failure, p99 TTFT <= limit and p99 TPOT <= limit     (MLPerf server)
//! sustainable  = attainment >= slo.attainment
//! knee         = highest rate sustainable, with every lower rate too  (DistServe)
//! realised     = (steady - 1) / (last - first steady scheduled)           (open loop)
//! completion   = (completed - 1) / (last - first steady end)
//! saturation   = highest rate with completion >= 0.95 x realised, with every lower rate too
//! ```
//!
//! Quantiles are type 7 ([`assay_core::stats::quantile_sorted`]), as in
//! summarise. Every sum runs in request order and every grouping is a
//! BTreeMap, so the bytes do not depend on input or thread order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use assay_core::config::{Arrival, Scenario, Slo};
use assay_core::inputs::inputs_by_node;
use assay_core::stage::{Input, Outputs, Stage, StageContext, StageError};
use assay_core::stats;
use assay_core::tables::{self, KneeRow, LoadRow, RequestRow};
use assay_measure::Manifest;

pub const GOODPUT_VERSION: u32 = 1;

/// The node id the planner gives the goodput stage; the report looks for
/// its outputs there.
pub const NODE: &str = "goodput";
/// Inputs, one of each per server cell, from node `measure/<cell>`.
pub use assay_measure::stage::output::{MANIFEST, REQUESTS};
/// Outputs.
pub const LOAD: &str = "load";
pub const KNEES: &str = "knees";

/// A rate is saturated when the server completes less than this fraction
/// of the offered rate.
pub const SATURATION_FRACTION: f64 = 0.95;

/// What the goodput stage needs from the spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoodputParams {
    /// Expanded scenario name (`chat-r2`) to the rate sweep it came from
    /// (`chat`). A scenario not listed has no family; an open-loop one is
    /// then a sweep of one rate of its own.
    #[serde(default)]
    pub families: BTreeMap<String, String>,
    /// The SLO of each load scenario, from the spec. SLOs are analysis, not
    /// measurement: they are kept out of the measure nodes' keys and
    /// manifests, so changing one re-runs this stage and the report only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slos: BTreeMap<String, Slo>,
}

#[derive(Debug, Clone, Default)]
pub struct GoodputStage {
    pub params: GoodputParams,
}

impl Stage for GoodputStage {
    fn kind(&self) -> &'static str {
        "goodput"
    }

    fn version(&self) -> u32 {
        GOODPUT_VERSION
    }

    fn outputs(&self) -> Vec<&'static str> {
        vec![KNEES, LOAD]
    }

    fn params(&self) -> Result<Value, StageError> {
        serde_json::to_value(&self.params).map_err(|e| StageError::params("goodput", e))
    }

    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError> {
        let mut rows = Vec::new();
        for (node, named) in inputs_by_node(inputs, &[REQUESTS, MANIFEST]) {
            ctx.check_cancel()?;
            let get = |name: &str| {
                named.get(name).copied().ok_or_else(|| {
                    StageError::Failed(format!("measure node {node} has no {name} output"))
                })
            };
            let mut manifest: Manifest = tables::read_json(ctx, get(MANIFEST)?)?;
            if let Some(load) = manifest.scenario.load.as_mut() {
                load.slo = self.params.slos.get(&manifest.scenario.name).cloned();
            }
            let requests: Vec<RequestRow> = tables::read_rows(ctx, get(REQUESTS)?)?;
            let family = self.params.families.get(&manifest.scenario.name).cloned();
            rows.push(load_row(&manifest, family, &requests));
        }
        rows.sort_by(|a, b| a.cell.cmp(&b.cell));
        let knees = knees(&rows);
        let mut out = Outputs::new();
        out.insert(LOAD.into(), tables::to_parquet(&rows)?);
        out.insert(KNEES.into(), tables::to_parquet(&knees)?);
        Ok(out)
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Type-7 quantiles of `xs` (sorted here), null when empty.
fn quantiles<const N: usize>(mut xs: Vec<f64>, qs: [f64; N]) -> [Option<f64>; N] {
    xs.sort_by(f64::total_cmp);
    qs.map(|q| (!xs.is_empty()).then(|| stats::quantile_sorted(&xs, q)))
}

/// Output tokens of a request: the server's count, else stream chunks.
fn output_tokens(r: &RequestRow) -> u32 {
    r.completion_tokens.unwrap_or(r.chunks)
}

/// TPOT of a request, ms: (e2e - ttft) / (output tokens - 1); null below
/// two output tokens or without both times.
pub fn tpot_ms(r: &RequestRow) -> Option<f64> {
    let tokens = output_tokens(r);
    if tokens < 2 {
        return None;
    }
    let (ttft, e2e) = (r.ttft_ns?, r.e2e_ns?);
    Some(ms(e2e.saturating_sub(ttft)) / f64::from(tokens - 1))
}

/// The limits that apply: an SLO with at least one limit.
fn limits(scenario: &Scenario) -> Option<&Slo> {
    scenario
        .load
        .as_ref()
        .and_then(|l| l.slo.as_ref())
        .filter(|s| s.ttft_ms.is_some() || s.tpot_ms.is_some())
}

/// Whether one request meets every limit: it completed with visible text,
/// its TTFT is within the TTFT limit and its TPOT within the TPOT limit. A
/// one-token output has no TPOT and meets that limit (vLLM counts its TPOT
/// as 0). Without a TTFT (no event carried text) neither limit can be
/// shown to hold.
pub fn meets(r: &RequestRow, slo: &Slo) -> bool {
    if r.status != "ok" || r.ttft_ns.is_none() {
        return false;
    }
    // TTFT as the user saw it: from the arrival, so time the request
    // waited on the client for a free slot counts (no coordinated omission).
    if let Some(limit) = slo.ttft_ms
        && !r.ttft_ns.is_some_and(|t| ms(t + r.queue_ns) <= limit)
    {
        return false;
    }
    if let Some(limit) = slo.tpot_ms
        && output_tokens(r) >= 2
        && !tpot_ms(r).is_some_and(|t| t <= limit)
    {
        return false;
    }
    true
}

/// The `load` row of one cell.
pub fn load_row(manifest: &Manifest, family: Option<String>, requests: &[RequestRow]) -> LoadRow {
    let scenario = &manifest.scenario;
    let load = scenario.load.as_ref();
    let steady: Vec<&RequestRow> = requests.iter().filter(|r| r.window == "steady").collect();
    let ok: Vec<&RequestRow> = steady
        .iter()
        .copied()
        .filter(|r| r.status == "ok")
        .collect();

    let start = steady.iter().map(|r| r.sent_ns).min();
    let end = steady
        .iter()
        .map(|r| {
            r.sent_ns
                .saturating_add(r.e2e_ns.or(r.ttft_ns).unwrap_or(0))
        })
        .max();
    let window_s = match (start, end) {
        (Some(s), Some(e)) => e.saturating_sub(s) as f64 / 1e9,
        _ => 0.0,
    };
    let per_s = |n: f64| (window_s > 0.0).then(|| n / window_s);
    // The spacing rate of sorted instants: (n - 1) / span.
    let spacing_rate = |mut t: Vec<u64>| -> Option<f64> {
        t.sort_unstable();
        let span = t.last()?.saturating_sub(*t.first()?) as f64 / 1e9;
        (t.len() >= 2 && span > 0.0).then(|| (t.len() - 1) as f64 / span)
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

    let output_tokens_total: u64 = ok.iter().map(|r| u64::from(output_tokens(r))).sum();
    let from_server = ok.iter().filter(|r| r.completion_tokens.is_some()).count();
    let tokens_source = if from_server == ok.len() {
        "server"
    } else if from_server == 0 {
        "chunks"
    } else {
        "mixed"
    };

    let [ttft_p50, ttft_p90, ttft_p99] = quantiles(
        ok.iter().filter_map(|r| r.ttft_ns.map(ms)).collect(),
        [0.5, 0.9, 0.99],
    );
    let [tpot_p50, tpot_p90, tpot_p99] = quantiles(
        ok.iter().filter_map(|r| tpot_ms(r)).collect(),
        [0.5, 0.9, 0.99],
    );
    let [itl_p50, itl_p99] = quantiles(
        ok.iter()
            .flat_map(|r| r.itl_ns.iter().copied().map(ms))
            .collect(),
        [0.5, 0.99],
    );
    let [e2e_p50, e2e_p99] = quantiles(
        ok.iter().filter_map(|r| r.e2e_ns.map(ms)).collect(),
        [0.5, 0.99],
    );
    let [queue_p99] = quantiles(steady.iter().map(|r| ms(r.queue_ns)).collect(), [0.99]);

    let slo = limits(scenario);
    let good = slo.map(|s| steady.iter().filter(|r| meets(r, s)).count() as u32);
    let attainment = good
        .filter(|_| !steady.is_empty())
        .map(|g| f64::from(g) / steady.len() as f64);
    let failed = (steady.len() - ok.len()) as u32;
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
        realised_rps,
        completion_rps,
        requests: steady.len() as u32,
        completed: ok.len() as u32,
        failed,
        short: steady.iter().filter(|r| r.short).count() as u32,
        window_s,
        achieved_rps: per_s(ok.len() as f64),
        output_tokens: output_tokens_total,
        output_tps: per_s(output_tokens_total as f64),
        tokens_source: tokens_source.into(),
        ttft_p50_ms: ttft_p50,
        ttft_p90_ms: ttft_p90,
        ttft_p99_ms: ttft_p99,
        tpot_p50_ms: tpot_p50,
        tpot_p90_ms: tpot_p90,
        tpot_p99_ms: tpot_p99,
        itl_p50_ms: itl_p50,
        itl_p99_ms: itl_p99,
        e2e_p50_ms: e2e_p50,
        e2e_p99_ms: e2e_p99,
        queue_p99_ms: queue_p99,
        slo_ttft_ms: slo.and_then(|s| s.ttft_ms),
        slo_tpot_ms: slo.and_then(|s| s.tpot_ms),
        slo_attainment: slo.map(|s| s.attainment),
        good,
        attainment,
        goodput_rps: good.and_then(|g| per_s(f64::from(g))),
        mlperf_pass,
        sustainable: slo.zip(attainment).map(|(s, a)| a >= s.attainment),
    }
}

/// One `knees` row per (backend, model, family) with at least one open-loop
/// rate, in that order.
pub fn knees(rows: &[LoadRow]) -> Vec<KneeRow> {
    type Sweep<'a> = Vec<(f64, &'a LoadRow)>;
    let mut sweeps: BTreeMap<(&str, &str, &str), Sweep<'_>> = BTreeMap::new();
    for r in rows {
        let Some(rate) = r.offered_rps else { continue };
        let family = r.family.as_deref().unwrap_or(&r.scenario);
        sweeps
            .entry((&r.backend, &r.model, family))
            .or_default()
            .push((rate, r));
    }
    sweeps
        .into_iter()
        .map(|((backend, model, family), mut sweep)| {
            sweep.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cell.cmp(&b.1.cell)));
            knee_row(backend, model, family, &sweep)
        })
        .collect()
}

fn knee_row(backend: &str, model: &str, family: &str, sweep: &[(f64, &LoadRow)]) -> KneeRow {
    // A rate without an SLO is not sustainable either: the walk stops there.
    let has_slo = sweep.iter().any(|(_, r)| r.slo_attainment.is_some());
    let mut knee = None;
    let mut knee_open = true;
    let mut saturation = None;
    let mut saturation_open = true;
    let mut reasons = Vec::new();
    for (rate, r) in sweep {
        if knee_open && r.sustainable == Some(true) {
            knee = Some(*rate);
        } else {
            knee_open = false;
        }
        // Completions keep pace with the arrivals the schedule really
        // made; without both spacing rates, the window's achieved rate
        // against the nominal one.
        let keeps_up = match (r.completion_rps, r.realised_rps) {
            (Some(done), Some(offered)) => done >= SATURATION_FRACTION * offered,
            _ => r
                .achieved_rps
                .is_some_and(|a| a >= SATURATION_FRACTION * rate),
        };
        if saturation_open && keeps_up {
            saturation = Some(*rate);
        } else {
            saturation_open = false;
        }
        let mut achieved = r.achieved_rps.map_or_else(
            || "no steady window".to_string(),
            |a| format!("achieved {a:.3}"),
        );
        if let (Some(done), Some(offered)) = (r.completion_rps, r.realised_rps) {
            achieved.push_str(&format!(
                " (arrivals at {offered:.3}, completions at {done:.3})"
            ));
        }
        reasons.push(match (r.attainment, r.slo_attainment) {
            (Some(a), Some(target)) => format!(
                "r={rate} met {a:.3} {} {target}, {achieved}",
                if a >= target { ">=" } else { "<" }
            ),
            (None, Some(_)) => format!("r={rate} no steady requests"),
            _ if has_slo => format!("r={rate} no SLO, {achieved}"),
            _ => format!("r={rate} {achieved}"),
        });
    }
    let mut reason = reasons.join("; ");
    if !has_slo {
        reason = format!("no SLO, no knee; {reason}");
    }
    KneeRow {
        backend: backend.into(),
        model: model.into(),
        family: family.into(),
        evidence: if sweep.iter().all(|(_, r)| r.evidence == "measured") {
            "measured"
        } else {
            "simulated"
        }
        .into(),
        rates: sweep.iter().map(|(rate, _)| *rate).collect(),
        cells: sweep.iter().map(|(_, r)| r.cell.clone()).collect(),
        slo_attainment: sweep.iter().find_map(|(_, r)| r.slo_attainment),
        knee_rps: knee,
        saturation_rps: saturation,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use assay_core::config::LoadProfile;

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
}
