//! A scenario's `load` profile (server cells): arrivals and rates, the
//! steady window, concurrency, and the SLO.

use assay_core::config::{Arrival, LoadProfile, MAX_SECONDS};
use assay_measure::Scenario;

use super::Ctx;
use crate::spec::diagnostic::Diags;

/// Bounds past which a load profile's rate stops being meaningful (and
/// would overflow a clock): between one request every 1000 s and a
/// million a second.
const MIN_RATE: f64 = 1e-3;
const MAX_RATE: f64 = 1e6;

/// Every explicit scenario's `load`, in spec order.
pub(super) fn check_load_profiles(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    for (j, s) in cx.spec.scenarios.iter().enumerate() {
        if let Some(load) = &s.load {
            check_load(diags, &format!("/scenarios/{j}"), s, load);
        }
    }
}

fn check_load(diags: &mut Diags<'_>, at: &str, s: &Scenario, load: &LoadProfile) {
    if s.batch != 1 {
        diags.at_value(
            &format!("{at}/batch"),
            format!(
                "scenario {:?} has a load profile, so its batch must be 1 (the server batches concurrent requests; use `load.concurrency`)",
                s.name
            ),
        );
    }
    check_rates(diags, at, load);
    check_window(diags, at, load);
    if let Some(slo) = &load.slo {
        for (field, v) in [("ttft_ms", slo.ttft_ms), ("tpot_ms", slo.tpot_ms)] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                diags.at_value(
                    &format!("{at}/load/slo/{field}"),
                    format!("{field} must be > 0"),
                );
            }
        }
        if slo.ttft_ms.is_none() && slo.tpot_ms.is_none() {
            diags.at_key(
                &format!("{at}/load/slo"),
                "an SLO needs `ttft_ms`, `tpot_ms` or both".into(),
            );
        }
        if !(slo.attainment > 0.0 && slo.attainment <= 1.0) {
            diags.at_value(
                &format!("{at}/load/slo/attainment"),
                "attainment must be within (0, 1]".into(),
            );
        }
    }
}

/// Open-loop arrivals take `rates`, closed loop none; each rate in range
/// and listed once.
fn check_rates(diags: &mut Diags<'_>, at: &str, load: &LoadProfile) {
    let open = load.arrival != Arrival::Closed;
    if open && load.rates.is_empty() {
        diags.at_key(
            &format!("{at}/load"),
            format!(
                "{} arrivals need `rates` (requests per second)",
                load.arrival.as_str()
            ),
        );
    }
    if !open && !load.rates.is_empty() {
        diags.at_key(
            &format!("{at}/load/rates"),
            "closed-loop load takes `concurrency`, not `rates`".into(),
        );
    }
    for (k, r) in load.rates.iter().enumerate() {
        if !(MIN_RATE..=MAX_RATE).contains(r) {
            diags.at_value(
                &format!("{at}/load/rates/{k}"),
                format!("rate {r} must be within [{MIN_RATE}, {MAX_RATE}] requests per second"),
            );
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (k, r) in load.rates.iter().enumerate() {
        if !seen.insert(r.to_bits()) {
            diags.at_value(
                &format!("{at}/load/rates/{k}"),
                format!("rate {r} is listed twice"),
            );
        }
    }
}

/// The steady window has exactly one bound; concurrency and the in-flight
/// cap are at least 1.
fn check_window(diags: &mut Diags<'_>, at: &str, load: &LoadProfile) {
    match (load.requests, load.duration_s) {
        (Some(_), Some(_)) => diags.at_key(
            &format!("{at}/load/duration_s"),
            "give `requests` or `duration_s`, not both".into(),
        ),
        (None, None) => diags.at_key(
            &format!("{at}/load"),
            "the steady window needs a bound: `requests` or `duration_s`".into(),
        ),
        (Some(0), None) => diags.at_value(
            &format!("{at}/load/requests"),
            "requests must be >= 1".into(),
        ),
        (None, Some(d)) if !(d > 0.0 && d <= MAX_SECONDS) => diags.at_value(
            &format!("{at}/load/duration_s"),
            format!("duration_s must be > 0 and <= {MAX_SECONDS}"),
        ),
        _ => {}
    }
    for (field, v) in [
        ("concurrency", load.concurrency),
        ("max_in_flight", load.max_in_flight),
    ] {
        if v == 0 {
            diags.at_value(
                &format!("{at}/load/{field}"),
                format!("{field} must be >= 1"),
            );
        }
    }
}
