//! One request's output tokens, TPOT and SLO verdict.

use assay_core::config::{Scenario, Slo};
use assay_core::stats;
use assay_core::tables::RequestRow;

pub(super) fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Type-7 quantiles of `xs` (sorted here), null when empty.
pub(super) fn quantiles<const N: usize>(mut xs: Vec<f64>, qs: [f64; N]) -> [Option<f64>; N] {
    xs.sort_by(f64::total_cmp);
    qs.map(|q| (!xs.is_empty()).then(|| stats::quantile_sorted(&xs, q)))
}

/// Output tokens of a request: the server's count, else stream chunks.
pub(super) fn output_tokens(r: &RequestRow) -> u32 {
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
pub(super) fn limits(scenario: &Scenario) -> Option<&Slo> {
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
    if !r.is_ok() || r.ttft_ns.is_none() {
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
