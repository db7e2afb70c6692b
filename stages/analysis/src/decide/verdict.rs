//! The AN.1 outcome for one model configuration of a class: a backend
//! recommendation only with disjoint 95% intervals against the runner-up
//! backend in every scenario, never on simulated data.

use super::metric::Metric;
use super::types::{CandidateScore, Outcome};
use super::{MIN_N, num};

/// The outcome for one model configuration whose backend candidates are
/// `all`, `ranked` best first. `simulated`: some summary or cost row the
/// decision used is not measured.
pub(super) fn outcome(
    ranked: &[&CandidateScore],
    all: &[CandidateScore],
    names: &[String],
    metric: &Metric,
    simulated: bool,
) -> Outcome {
    let unit = metric.unit();
    let Some(&winner) = ranked.first() else {
        return Outcome::NoDecision {
            reason: no_candidate_reason(all, names, metric),
            leading: None,
        };
    };
    let leading = Some(winner.backend.clone());
    let wname = winner.backend.as_str();
    let (value, ci_low, ci_high) = (
        winner.geomean.unwrap_or(f64::NAN),
        winner.ci_low.unwrap_or(f64::NAN),
        winner.ci_high.unwrap_or(f64::NAN),
    );
    if simulated {
        return Outcome::NoDecision {
            reason: format!(
                "simulated data is not evidence; the simulated numbers would favour {wname} \
                 ({} {unit})",
                num(value)
            ),
            leading,
        };
    }
    let excluded_note = excluded_note(all);
    let Some(&runner) = ranked.get(1) else {
        return Outcome::Recommend {
            backend: winner.backend.clone(),
            value,
            ci_low,
            ci_high,
            runner_up: None,
            note: format!(
                "no other backend was measured for the model in every scenario of the class{excluded_note}"
            ),
        };
    };
    if let Some(reason) = not_disjoint(winner, runner, metric) {
        return Outcome::NoDecision { reason, leading };
    }
    let rname = runner.backend.as_str();
    let rvalue = runner.geomean.unwrap_or(f64::NAN);
    Outcome::Recommend {
        backend: winner.backend.clone(),
        value,
        ci_low,
        ci_high,
        runner_up: Some((runner.backend.clone(), rvalue)),
        note: format!(
            "better than the runner-up {rname} ({} {unit}) with disjoint 95% CIs in every \
             scenario ({}); {}x its {}{excluded_note}",
            num(rvalue),
            names.len(),
            num(value / rvalue),
            metric.name()
        ),
    }
}

/// Why no candidate is ranked.
fn no_candidate_reason(all: &[CandidateScore], names: &[String], metric: &Metric) -> String {
    if all.is_empty() {
        format!(
            "no measurements in the class's scenarios ({})",
            names.join(", ")
        )
    } else {
        format!(
            "no candidate has {} with n >= {MIN_N} and a finite 95% CI in every scenario \
             ({} excluded: {})",
            metric.name(),
            all.len(),
            all.iter()
                .map(|c| format!("{}: {}", c.backend, c.excluded.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("; ")
        )
    }
}

/// `; excluded: ...` naming the excluded candidates, or nothing.
fn excluded_note(all: &[CandidateScore]) -> String {
    let excluded: Vec<String> = all
        .iter()
        .filter_map(|c| c.excluded.as_ref().map(|e| format!("{} ({e})", c.backend)))
        .collect();
    if excluded.is_empty() {
        String::new()
    } else {
        format!("; excluded: {}", excluded.join(", "))
    }
}

/// The reason the winner does not beat the runner-up with disjoint 95%
/// intervals, at the first scenario where it does not; None when it does
/// in every scenario.
fn not_disjoint(
    winner: &CandidateScore,
    runner: &CandidateScore,
    metric: &Metric,
) -> Option<String> {
    let unit = metric.unit();
    let wname = winner.backend.as_str();
    let rname = runner.backend.as_str();
    let hib = metric.higher_is_better();
    for (w, r) in winner.per_scenario.iter().zip(&runner.per_scenario) {
        // Ranked candidates have finite values in every scenario, in
        // class order.
        let (wv, wl, wh) = (
            w.value.unwrap_or(f64::NAN),
            w.ci_low.unwrap_or(f64::NAN),
            w.ci_high.unwrap_or(f64::NAN),
        );
        let (rv, rl, rh) = (
            r.value.unwrap_or(f64::NAN),
            r.ci_low.unwrap_or(f64::NAN),
            r.ci_high.unwrap_or(f64::NAN),
        );
        let (better, worse) = if hib {
            (wl > rh, rl > wh)
        } else {
            (wh < rl, rh < wl)
        };
        if better {
            continue;
        }
        let detail = format!(
            "{wname} {} [{}, {}], {rname} {} [{}, {}] {unit}",
            num(wv),
            num(wl),
            num(wh),
            num(rv),
            num(rl),
            num(rh)
        );
        return Some(if worse {
            format!(
                "{wname} leads on the geometric mean but {rname} is better in scenario {} \
                 with disjoint 95% CIs ({detail})",
                w.scenario
            )
        } else {
            format!(
                "the 95% CIs of {wname} and {rname} overlap in scenario {} ({detail})",
                w.scenario
            )
        });
    }
    None
}
