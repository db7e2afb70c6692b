//! decide: the seed's Appendix AN policy decision trees applied to the
//! measured summaries, per workload class (Appendix W).
//!
//! For every class, and within it for every model configuration (model and
//! dtype), the module answers "serve model M on backend X (evidence,
//! uncertainty)" or "no decision: evidence insufficient (reason)":
//!
//! - AN.1 backend selection, per class and model configuration, on the
//!   class's scenarios, with AL.2's metric mapping: decode-heavy -> best
//!   decode tokens/s; batched prefill -> cheapest prefill (or best prefill
//!   tokens/s without cost rows); otherwise best single-prompt latency, as
//!   TTFT where a micro/short scenario makes it primary (AL.2), else prefill
//!   latency. Decision-grade only with disjoint 95% intervals against the
//!   runner-up backend in every scenario, and never on simulated data.
//! - Between models no choice is made on speed: each model's figures and
//!   cost are set side by side (`ModelComparison`), and choosing needs
//!   quality data, cost per successful outcome (Z.2, BE.4, AM rule 8).
//! - AN.3 cold start, per model configuration, for the recommended (or
//!   leading) backend: the 10x warmup ratio, and cold-start deltas against
//!   the scenario's SLO where one is known (T.2).
//! - AN.2 compiler enablement from eager-vs-compiled pairs, per phase; AN.4
//!   scaling, once.
//!
//! Pure and deterministic: plain data in, plain data out; ordered
//! collections only; floats ordered with `total_cmp`; ties broken by name;
//! logarithms from `libm`. The rules are documented in `docs/decisions.md`.
//!
//! Layout: `class` (the workload classes, their default shapes, and the
//! AL.1 scenario types), `types` (the inputs and decision records),
//! `advice` (AN.4), `compile` (AN.2), `metric` (the AN.1 ranking metrics),
//! `rank` (branch, candidates, models and cold start per class) and
//! `verdict` (the AN.1 outcome of a ranking).

mod advice;
mod class;
mod compile;
mod metric;
mod rank;
#[cfg(test)]
mod tests;
mod types;
mod verdict;

pub use advice::scaling_advice;
pub use class::{
    MEDIUM_MIN_PROMPT, MICRO_MAX_PROMPT, ScenarioKind, WorkloadClass, default_scenarios,
};
pub use compile::compiler_advice;
pub use types::{
    BackendDecision, BackendTraits, CandidateScore, CompilePair, CompilerAdvice, Decision,
    Decisions, Inputs, ModelChoice, ModelComparison, ModelCost, ModelEntry, ModelTraits, Outcome,
    PhaseComparison, PhaseScenario, PhaseVerdict, ScenarioType, ScenarioValue, SloLimits,
    TierChoice,
};

/// Fewest steady-state events a metric needs to count as evidence.
pub const MIN_N: u32 = 3;
/// AN.1 step 1 and Appendix AM rule 1: decode dominates at this many
/// generated tokens per sequence.
pub const DECODE_HEAVY_GEN: u32 = 64;
/// AN.1 step 1: a median decode fraction (AA.3) above this is decode-heavy.
pub const DECODE_HEAVY_FRACTION: f64 = 0.9;
/// AN.3 and Appendix AM rule 5: a warmup ratio (AA.4) above this means cold
/// start must be managed explicitly.
pub const WARMUP_RATIO_LIMIT: f64 = 10.0;

/// Every decision for one pipeline run: AN.1 and AN.3 for each of the five
/// classes (using the `workloads` map's scenarios for the classes it lists,
/// the default shapes for the others), AN.2 for every backend and
/// eager-vs-compiled pair, AN.4 once.
pub fn decide(inputs: &Inputs<'_>) -> Decisions {
    let ctx = rank::Ctx::new(inputs);
    let per_class = WorkloadClass::ALL
        .iter()
        .map(|&class| ctx.decide_class(class, inputs.workloads.get(&class)))
        .collect();
    let (compiler, compile_pairs) =
        compiler_advice(inputs.summary, inputs.scenarios, inputs.backends);
    Decisions {
        per_class,
        compiler,
        compile_pairs,
        scaling: scaling_advice(inputs.models),
    }
}

fn num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = libm::floor(libm::log10(v.abs())) as i32;
    let digits = (3 - magnitude).clamp(0, 12) as usize;
    format!("{v:.digits$}")
}
