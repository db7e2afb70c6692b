//! AN.2 compiler enablement from the measurements: per compiled backend
//! configuration, its eager pair, and per phase whether compiling wins.
//!
//! Pairing rule: a compiled configuration (the spec asked for a compiled
//! path: `ort` with graph optimisation on, `tch` in TorchScript mode) is
//! compared with every eager configuration (no compiled path) of the same
//! kind, device and thread count, on every model that both measured at the
//! same dtype. Other backend settings are not compared: a spec that varies
//! them between the two configurations measures that difference too.
//!
//! A phase (prefill, decode) is recommended for compilation only where the
//! compiled configuration is compiler-real (AN.2 step 1; AM rule 3) and,
//! in every scenario both measured, its median is faster with disjoint 95%
//! intervals and its p99 is no higher than eager's. The p99 test is how
//! the measurements answer AN.2 step 2 ("are shapes stable?"): shape
//! instability shows as recompiles and heavy tails (TR120; Appendix T
//! risk 3), so a compiled path whose tail is worse than eager's across the
//! measured shapes has not had its tails validated. Recompile counters are
//! reported where a backend records them.

use std::collections::{BTreeMap, BTreeSet};

use assay_core::config::Scenario;
use assay_core::stats::geomean;
use assay_core::tables::{Phase, SummaryRow};

use super::types::{
    BackendTraits, CompilePair, CompilerAdvice, PhaseComparison, PhaseScenario, PhaseVerdict,
};
use super::{MIN_N, num};

/// AN.2 for every backend of the summary and every eager-vs-compiled pair.
pub fn compiler_advice(
    summary: &[SummaryRow],
    scenarios: &[Scenario],
    backends: &BTreeMap<String, BackendTraits>,
) -> (Vec<CompilerAdvice>, Vec<CompilePair>) {
    let measured: BTreeSet<&str> = summary.iter().map(|r| r.backend.as_str()).collect();
    let plain = BackendTraits::default();
    let traits = |b: &str| backends.get(b).unwrap_or(&plain);
    // (backend, model, dtype, scenario, phase) -> rows.
    let mut rows: BTreeMap<(&str, &str, &str, &str, Phase), Vec<usize>> = BTreeMap::new();
    for (i, r) in summary.iter().enumerate() {
        rows.entry((
            r.backend.as_str(),
            r.model.as_str(),
            r.dtype.as_str(),
            r.scenario.as_str(),
            r.phase(),
        ))
        .or_default()
        .push(i);
    }
    let configs = |b: &str| {
        summary
            .iter()
            .filter(|r| r.backend == b)
            .map(|r| (r.model.as_str(), r.dtype.as_str()))
            .collect::<BTreeSet<(&str, &str)>>()
    };
    // Scenario order: the spec's, then any the spec does not list by name.
    let mut order: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    let extra: BTreeSet<&str> = summary
        .iter()
        .map(|r| r.scenario.as_str())
        .filter(|s| !order.contains(s))
        .collect();
    order.extend(extra);

    let mut pairs = Vec::new();
    for &c in &measured {
        let ct = traits(c);
        let Some(path) = &ct.compiled else { continue };
        for &e in &measured {
            let et = traits(e);
            if e == c
                || et.compiled.is_some()
                || et.kind != ct.kind
                || et.device != ct.device
                || et.threads != ct.threads
            {
                continue;
            }
            let common: Vec<(&str, &str)> = configs(c).intersection(&configs(e)).copied().collect();
            for (model, dtype) in common {
                let one = |b: &str, s: &str, p: Phase| match rows
                    .get(&(b, model, dtype, s, p))
                    .map(Vec::as_slice)
                {
                    Some([i]) => Some(*i),
                    _ => None,
                };
                let phases: Vec<PhaseComparison> = [Phase::Prefill, Phase::Decode]
                    .into_iter()
                    .map(|p| {
                        let both: Vec<(usize, usize)> = order
                            .iter()
                            .filter_map(|&s| Some((one(c, s, p)?, one(e, s, p)?)))
                            .collect();
                        compare_phase(summary, p, &both)
                    })
                    .collect();
                let shapes = shape_reading(summary, &phases, ct);
                let advice = pair_advice(ct.compiler_real, path, &phases);
                pairs.push(CompilePair {
                    compiled: c.into(),
                    path: path.clone(),
                    compiler_real: ct.compiler_real,
                    eager: e.into(),
                    model: model.into(),
                    dtype: dtype.into(),
                    phases,
                    shapes,
                    advice,
                });
            }
        }
    }

    let advice = measured
        .iter()
        .map(|&b| {
            let t = traits(b);
            CompilerAdvice {
                backend: b.into(),
                compiled: t.compiled.clone(),
                compiler_real: t.compiler_real,
                advice: backend_advice(b, t, &pairs),
            }
        })
        .collect();
    (advice, pairs)
}

/// One backend's AN.2 line, without figures (they are in its pairs).
fn backend_advice(backend: &str, t: &BackendTraits, pairs: &[CompilePair]) -> String {
    let Some(path) = &t.compiled else {
        let compiled: BTreeSet<&str> = pairs
            .iter()
            .filter(|p| p.eager == backend)
            .map(|p| p.compiled.as_str())
            .collect();
        return if compiled.is_empty() {
            "eager: no compiled path requested".into()
        } else {
            format!(
                "eager: no compiled path requested; the eager baseline of {}",
                compiled.into_iter().collect::<Vec<_>>().join(", ")
            )
        };
    };
    if !t.compiler_real {
        return format!(
            "disable compile: no compiler-real evidence for {path} (AN.2 step 1; AM rule 3: treat \
             it as eager and claim no compile win)"
        );
    }
    let mine: Vec<String> = pairs
        .iter()
        .filter(|p| p.compiled == backend)
        .map(|p| format!("{} {} against {}: {}", p.model, p.dtype, p.eager, p.advice))
        .collect();
    if mine.is_empty() {
        format!(
            "no decision: {path} is compiler-real, but no eager configuration of the same kind, \
             device and threads measured the same model, so no compile win can be demonstrated"
        )
    } else {
        mine.join("; ")
    }
}

/// One phase of a pair over the scenarios both measured (row indices,
/// compiled then eager).
fn compare_phase(summary: &[SummaryRow], phase: Phase, both: &[(usize, usize)]) -> PhaseComparison {
    let usable = |r: &SummaryRow| {
        r.n >= MIN_N
            && [r.median_ms, r.median_ci_low_ms, r.median_ci_high_ms]
                .iter()
                .all(|x| x.is_finite() && *x > 0.0)
    };
    let per_scenario: Vec<PhaseScenario> = both
        .iter()
        .filter(|(c, e)| usable(&summary[*c]) && usable(&summary[*e]))
        .map(|&(ci, ei)| {
            let (c, e) = (&summary[ci], &summary[ei]);
            PhaseScenario {
                scenario: c.scenario.clone(),
                compiled_ms: c.median_ms,
                compiled_ci: (c.median_ci_low_ms, c.median_ci_high_ms),
                compiled_p99_ms: c.p99_ms,
                eager_ms: e.median_ms,
                eager_ci: (e.median_ci_low_ms, e.median_ci_high_ms),
                eager_p99_ms: e.p99_ms,
                rows: (ci as u32, ei as u32),
            }
        })
        .collect();
    let (verdict, reason) = phase_verdict(summary, &per_scenario);
    let speedup = (!per_scenario.is_empty()).then(|| {
        geomean(
            &per_scenario
                .iter()
                .map(|s| s.eager_ms / s.compiled_ms)
                .collect::<Vec<_>>(),
        )
    });
    PhaseComparison {
        phase: phase.name().into(),
        verdict,
        speedup,
        reason,
        per_scenario,
    }
}

fn figures(s: &PhaseScenario) -> String {
    format!(
        "compiled {} [{}, {}] ms, p99 {} ms; eager {} [{}, {}] ms, p99 {} ms",
        num(s.compiled_ms),
        num(s.compiled_ci.0),
        num(s.compiled_ci.1),
        num(s.compiled_p99_ms),
        num(s.eager_ms),
        num(s.eager_ci.0),
        num(s.eager_ci.1),
        num(s.eager_p99_ms)
    )
}

/// The verdict of one phase and why, naming the deciding scenario.
fn phase_verdict(summary: &[SummaryRow], per: &[PhaseScenario]) -> (PhaseVerdict, String) {
    if per.is_empty() {
        return (
            PhaseVerdict::NoData,
            format!("no scenario where both have n >= {MIN_N} and a finite 95% CI"),
        );
    }
    if per.iter().any(|s| {
        !summary[s.rows.0 as usize].is_measured() || !summary[s.rows.1 as usize].is_measured()
    }) {
        return (
            PhaseVerdict::Simulated,
            "simulated data is not evidence".into(),
        );
    }
    let faster = |s: &PhaseScenario| s.compiled_ci.1 < s.eager_ci.0;
    let slower = |s: &PhaseScenario| s.compiled_ci.0 > s.eager_ci.1;
    if let Some(s) = per.iter().find(|&s| !faster(s)) {
        if per.iter().all(slower) {
            return (
                PhaseVerdict::Loses,
                format!(
                    "compiled is slower with disjoint 95% CIs in every scenario ({}: {})",
                    s.scenario,
                    figures(s)
                ),
            );
        }
        let why = if slower(s) {
            "compiled is slower with disjoint 95% CIs"
        } else {
            "the 95% CIs overlap"
        };
        return (
            PhaseVerdict::Inconclusive,
            format!("{why} in {} ({})", s.scenario, figures(s)),
        );
    }
    // A p99 that is not finite validates nothing.
    if let Some(s) = per.iter().find(|s| {
        s.compiled_p99_ms
            .partial_cmp(&s.eager_p99_ms)
            .is_none_or(|o| o.is_gt())
    }) {
        return (
            PhaseVerdict::TailsNotValidated,
            format!(
                "median faster with disjoint 95% CIs in every scenario, but the compiled p99 is \
                 above eager's in {} ({})",
                s.scenario,
                figures(s)
            ),
        );
    }
    let s = &per[0];
    (
        PhaseVerdict::Wins,
        format!(
            "faster with disjoint 95% CIs and a p99 no higher than eager's in every scenario \
             ({} of them; {}: {})",
            per.len(),
            s.scenario,
            figures(s)
        ),
    )
}

/// AN.2 step 2 read from the data: which shapes were compared, and the
/// recompile counters where the backend reports them.
fn shape_reading(summary: &[SummaryRow], phases: &[PhaseComparison], t: &BackendTraits) -> String {
    let shapes: BTreeSet<(u32, u32)> = phases
        .iter()
        .flat_map(|p| &p.per_scenario)
        .map(|s| {
            let r = &summary[s.rows.0 as usize];
            (r.prompt_tokens, r.batch)
        })
        .collect();
    let list = shapes
        .iter()
        .map(|(p, b)| format!("{p}x{b}"))
        .collect::<Vec<_>>()
        .join(", ");
    let tails = match shapes.len() {
        0 => "no shape compared".to_string(),
        1 => format!(
            "one shape (prompt x batch {list}): tails checked there; shape variation not observable"
        ),
        n => format!("{n} shapes (prompt x batch {list}): tails checked in each"),
    };
    let counters = if t.counters.is_empty() {
        "recompile counters not observable (the backend reports none)".to_string()
    } else {
        format!(
            "recompile counters: {}",
            t.counters
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!("{tails}; {counters}")
}

fn verdict_words(p: &PhaseComparison) -> String {
    let what = match p.verdict {
        PhaseVerdict::Wins => "wins",
        PhaseVerdict::TailsNotValidated => "wins on the median but its tails are not validated",
        PhaseVerdict::Loses => "loses",
        PhaseVerdict::Inconclusive => "shows no demonstrated win",
        PhaseVerdict::Simulated => "is simulated",
        PhaseVerdict::NoData => "was not measured by both",
    };
    format!("{} {what}", p.phase)
}

/// The pair's advice (the figures are in its phases).
fn pair_advice(real: bool, path: &str, phases: &[PhaseComparison]) -> String {
    if !real {
        return format!("disable compile: no compiler-real evidence for {path}");
    }
    if phases.iter().any(|p| p.verdict == PhaseVerdict::Simulated) {
        return "no decision: simulated data is not evidence".into();
    }
    let wins = |name: &str| {
        phases
            .iter()
            .any(|p| p.phase == name && p.verdict == PhaseVerdict::Wins)
    };
    let other = |name: &str| {
        phases
            .iter()
            .filter(|p| p.phase != name)
            .map(verdict_words)
            .collect::<Vec<_>>()
            .join("; ")
    };
    match (wins("prefill"), wins("decode")) {
        (true, true) => "compile prefill and decode: both phases win with disjoint 95% CIs and \
                         validated tails"
            .into(),
        (true, false) => format!(
            "compile prefill only, keep decode eager (F.2): prefill wins with disjoint 95% CIs \
             and validated tails; {}",
            other("prefill")
        ),
        (false, true) => format!(
            "compile decode only, keep prefill eager: decode wins with disjoint 95% CIs and \
             validated tails; {}",
            other("decode")
        ),
        (false, false) => format!(
            "keep eager: the compiled path wins neither phase ({})",
            phases
                .iter()
                .map(verdict_words)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}
