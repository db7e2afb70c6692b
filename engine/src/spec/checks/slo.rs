//! The top-level `slo` (in-process service levels, Appendix Q.1): limits
//! that are positive numbers, an attainment that is a share, at least one
//! limit, and overrides that name scenarios this section can judge.

use super::Ctx;
use crate::spec::diagnostic::Diags;

pub(super) fn check_slo(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    let Some(slo) = &cx.spec.slo else {
        return;
    };
    limits("/slo", slo.ttft_ms, slo.tpot_ms, slo.e2e_ms, diags);
    if !share(slo.attainment) {
        diags.at_value("/slo/attainment", "attainment must be within (0, 1]".into());
    }
    let any_override = slo
        .scenarios
        .values()
        .any(|o| o.ttft_ms.is_some() || o.tpot_ms.is_some() || o.e2e_ms.is_some());
    if slo.ttft_ms.is_none() && slo.tpot_ms.is_none() && slo.e2e_ms.is_none() && !any_override {
        diags.at_key(
            "/slo",
            "an SLO needs at least one of `ttft_ms`, `tpot_ms`, `e2e_ms` (here or in a scenario's override)".into(),
        );
    }
    for (name, o) in &slo.scenarios {
        let at = format!("/slo/scenarios/{name}");
        limits(&at, o.ttft_ms, o.tpot_ms, o.e2e_ms, diags);
        if let Some(a) = o.attainment
            && !share(a)
        {
            diags.at_value(
                &format!("{at}/attainment"),
                "attainment must be within (0, 1]".into(),
            );
        }
        match cx.scenarios.iter().find(|s| &s.name == name) {
            None => {
                let names: Vec<&str> = cx.scenarios.iter().map(|s| s.name.as_str()).collect();
                diags.at_key(
                    &at,
                    format!("no scenario named {name:?} in this spec (scenarios: {})", names.join(", ")),
                );
            }
            Some(s) if s.load.is_some() => diags.at_key(
                &at,
                format!(
                    "scenario {name:?} has a load profile: its service levels are `load.slo` on the scenario, judged by goodput"
                ),
            ),
            Some(_) => {}
        }
    }
}

/// Each limit given is a positive, finite number of milliseconds.
fn limits(at: &str, ttft: Option<f64>, tpot: Option<f64>, e2e: Option<f64>, diags: &mut Diags<'_>) {
    for (field, v) in [("ttft_ms", ttft), ("tpot_ms", tpot), ("e2e_ms", e2e)] {
        if let Some(v) = v
            && !(v.is_finite() && v > 0.0)
        {
            diags.at_value(
                &format!("{at}/{field}"),
                format!("{field} must be a finite number of ms > 0"),
            );
        }
    }
}

fn share(a: f64) -> bool {
    a > 0.0 && a <= 1.0
}
