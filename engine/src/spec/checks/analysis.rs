//! The analysis sections: `validate`, `cost` (with `cost.energy`),
//! `energy`, `workloads`, `fit` and `compare`.

use assay_analysis::cost::CostParams;

use super::{Ctx, check_names};
use crate::spec::diagnostic::Diags;

pub(super) fn check_analysis(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    check_validate(cx, diags);
    if let Some(cost) = &cx.spec.cost {
        check_cost_prices(diags, cost);
        check_request_mix(diags, cost);
        check_routing(cx, diags, cost);
        if cost.burst_factor.is_nan() || cost.burst_factor < 1.0 {
            diags.at_value(
                "/cost/burst_factor",
                "burst_factor must be >= 1 (peak over mean)".into(),
            );
        }
    }
    check_energy(cx, diags);
    check_workloads(cx, diags);
    check_compare(cx, diags);
    if let Some(fit) = &cx.spec.fit
        && let assay_analysis::fit::Predictors::Many(list) = &fit.x
        && list.is_empty()
    {
        diags.at_value(
            "/fit/x",
            "list at least one predictor (params, layers, hidden, heads)".into(),
        );
    }
}

/// `compare.thresholds`: the same ranges as `--threshold` on the command
/// line, so that a spec cannot declare a threshold the CLI would refuse.
fn check_compare(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    let Some(c) = &cx.spec.compare else {
        return;
    };
    for (phase, pct) in c.thresholds.given() {
        if let Err(e) = assay_analysis::compare::Thresholds::check_pct(phase, pct) {
            diags.at_value(
                &format!("/compare/thresholds/{}", phase.name()),
                format!("{} threshold {pct}: {e}", phase.name()),
            );
        }
    }
}

fn check_validate(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    let Some(v) = &cx.spec.validate else {
        return;
    };
    if v.output_tolerance.is_nan() || v.output_tolerance < 0.0 {
        diags.at_value(
            "/validate/output_tolerance",
            "output_tolerance must be >= 0".into(),
        );
    }
    if v.max_cv.is_nan() || v.max_cv <= 0.0 {
        diags.at_value("/validate/max_cv", "max_cv must be > 0".into());
    }
    if v.outlier_k.is_nan() || v.outlier_k <= 0.0 {
        diags.at_value("/validate/outlier_k", "outlier_k must be > 0".into());
    }
    if let Some(name) = &v.invariance_reference
        && !cx.spec.backends.iter().any(|b| &b.name == name)
    {
        let names: Vec<&str> = cx.spec.backends.iter().map(|b| b.name.as_str()).collect();
        diags.at_value(
            "/validate/invariance_reference",
            format!(
                "invariance_reference {name:?} is not a backend of this spec (backends: {})",
                names.join(", ")
            ),
        );
    }
}

/// Pricing tiers and the monthly volume.
fn check_cost_prices(diags: &mut Diags<'_>, cost: &CostParams) {
    if cost.usd_per_hour.is_empty() {
        diags.at_value(
            "/cost/usd_per_hour",
            "at least one pricing tier is required".into(),
        );
    }
    for (tier, price) in &cost.usd_per_hour {
        if price.is_nan() || *price < 0.0 {
            diags.at_value(
                &format!("/cost/usd_per_hour/{tier}"),
                "price must be >= 0".into(),
            );
        }
    }
    if cost.tokens_per_month.is_nan() || cost.tokens_per_month <= 0.0 {
        diags.at_value(
            "/cost/tokens_per_month",
            "tokens_per_month must be > 0".into(),
        );
    }
}

/// The request mix's and the routing's shares, the mix's class names, and
/// tokens in every class.
fn check_request_mix(diags: &mut Diags<'_>, cost: &CostParams) {
    check_shares(
        diags,
        "/cost/request_mix",
        cost.request_mix.iter().map(|c| c.share),
    );
    check_shares(diags, "/cost/routing", cost.routing.iter().map(|r| r.share));
    check_names(
        diags,
        "request class",
        "cost/request_mix",
        cost.request_mix
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.name.as_str())),
    );
    for (i, c) in cost.request_mix.iter().enumerate() {
        if c.prompt_tokens == 0 && c.gen_tokens == 0 {
            diags.at_value(
                &format!("/cost/request_mix/{i}"),
                "a request class needs tokens".into(),
            );
        }
    }
}

/// Routing needs a request mix, and names cells of this spec.
fn check_routing(cx: &Ctx<'_>, diags: &mut Diags<'_>, cost: &CostParams) {
    let spec = cx.spec;
    if !cost.routing.is_empty() && cost.request_mix.is_empty() {
        diags.at_key(
            "/cost/routing",
            "routing prices requests: it needs a request_mix".into(),
        );
    }
    for (i, r) in cost.routing.iter().enumerate() {
        let known = [
            (
                "backend",
                spec.backends.iter().any(|b| b.name == r.backend),
                &r.backend,
            ),
            (
                "model",
                spec.models.iter().any(|m| m.name == r.model),
                &r.model,
            ),
            (
                "scenario",
                cx.scenarios.iter().any(|s| s.name == r.scenario),
                &r.scenario,
            ),
        ];
        for (field, ok, name) in known {
            if !ok {
                diags.at_value(
                    &format!("/cost/routing/{i}/{field}"),
                    format!("no {field} named {name:?} in this spec"),
                );
            }
        }
    }
}

/// Shares of a mix or policy: each within [0, 1], together 1.
fn check_shares(diags: &mut Diags<'_>, pointer: &str, shares: impl Iterator<Item = f64>) {
    let shares: Vec<f64> = shares.collect();
    if shares.is_empty() {
        return;
    }
    for (i, s) in shares.iter().enumerate() {
        if !(0.0..=1.0).contains(s) {
            diags.at_value(
                &format!("{pointer}/{i}/share"),
                "share must be within [0, 1]".into(),
            );
        }
    }
    let total: f64 = shares.iter().sum();
    if (total - 1.0).abs() > 1e-9 {
        diags.at_key(pointer, format!("shares sum to {total}, not 1"));
    }
}

/// Energy sampling has baseline samples (the gate's thresholds,
/// `min_samples` and `min_intervals` >= 1, are schema ranges: a 0 is a
/// located error before these checks); electricity and carbon prices are
/// finite and not negative.
fn check_energy(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    let spec = cx.spec;
    if let Some(e) = &spec.energy
        && u64::from(e.idle_ms) < 2 * u64::from(e.poll_ms)
    {
        diags.at_value(
            "/energy/idle_ms",
            format!(
                "idle_ms ({}) must be at least twice poll_ms ({}): energy is reported above idle, which needs baseline samples",
                e.idle_ms, e.poll_ms
            ),
        );
    }
    // A cell on a GPU never gets the CPU package's energy, nor the reverse.
    if let Some(e) = &spec.energy {
        use assay_measure::energy::{SensorChoice, gpu::is_cuda};
        let wrong = |device: &str| match e.sensor {
            SensorChoice::Auto => false,
            SensorChoice::Rapl => is_cuda(device),
            SensorChoice::Nvml => !is_cuda(device),
        };
        // Only backends that run here sample power: a server (elsewhere), a
        // simulated cell (its own trace) or an imported file opens no sensor.
        let samples = |b: &&assay_core::config::BackendConfig| {
            cx.registry.get(b.kind.as_str()).is_some_and(|k| {
                k.execution() == assay_measure::stage::registry::Execution::InProcess
            })
        };
        let named: Vec<String> = spec
            .backends
            .iter()
            .filter(samples)
            .filter(|b| wrong(&b.device))
            .map(|b| format!("{} ({})", b.name, b.device))
            .collect();
        if !named.is_empty() {
            diags.at_value(
                "/energy/sensor",
                format!(
                    "sensor {} measures {}, but backend(s) {} run elsewhere; use `auto` (NVML for cuda cells, RAPL for CPU cells)",
                    e.sensor.as_str(),
                    if e.sensor == SensorChoice::Rapl { "the CPU packages" } else { "an NVIDIA GPU" },
                    named.join(", ")
                ),
            );
        }
    }
    if let Some(price) = spec.cost.as_ref().and_then(|c| c.energy.as_ref()) {
        let bad = |v: f64| !v.is_finite() || v < 0.0;
        if bad(price.usd_per_kwh) {
            diags.at_value(
                "/cost/energy/usd_per_kwh",
                "usd_per_kwh must be a finite price >= 0".into(),
            );
        }
        if price.carbon_g_per_kwh.is_some_and(bad) {
            diags.at_value(
                "/cost/energy/carbon_g_per_kwh",
                "carbon_g_per_kwh must be finite and >= 0".into(),
            );
        }
    }
}

/// Every workload class lists scenarios of this spec.
fn check_workloads(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    for (class, names) in &cx.spec.workloads {
        if names.is_empty() {
            diags.at_value(
                &format!("/workloads/{}", class.name()),
                "list at least one scenario for this workload class".into(),
            );
        }
        for (i, name) in names.iter().enumerate() {
            if !cx.scenarios.iter().any(|s| &s.name == name) {
                diags.at_value(
                    &format!("/workloads/{}/{i}", class.name()),
                    format!("no scenario named {name:?} in this spec"),
                );
            }
        }
    }
}
