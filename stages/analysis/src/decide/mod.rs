//! decide: the seed's Appendix AN policy decision trees applied to the
//! measured summaries, one decision per workload class (Appendix W).
//!
//! For every class the module answers "use backend/model X (evidence,
//! uncertainty)" or "no decision: evidence insufficient (reason)":
//!
//! - AN.1 backend selection, per class, on the class's scenarios:
//!   decode-heavy -> best decode tokens/s; batched prefill -> cheapest
//!   prefill (or best prefill tokens/s without cost rows); otherwise best
//!   single-prompt prefill latency. Decision-grade only with disjoint 95%
//!   intervals against the runner-up in every scenario, and never on
//!   simulated data.
//! - AN.3 cold start, per class, for the recommended (or leading) candidate.
//! - AN.2 compiler enablement, per backend, and AN.4 scaling, once.
//!
//! Pure and deterministic: plain data in, plain data out; ordered
//! collections only; floats ordered with `total_cmp`; ties broken by name;
//! logarithms from `libm`. The rules are documented in `docs/decisions.md`.
//!
//! Layout: `class` (the workload classes and their default shapes), `types`
//! (the decision records), `advice` (AN.2 and AN.4), `metric` (the AN.1
//! ranking metrics), `rank` (candidates, branch and cold start per class)
//! and `verdict` (the AN.1 outcome of a ranking).

use std::collections::{BTreeMap, BTreeSet};

use assay_core::config::Scenario;
use assay_core::tables::{CostRow, SummaryRow};

mod advice;
mod class;
mod metric;
mod rank;
#[cfg(test)]
mod tests;
mod types;
mod verdict;

pub use advice::{compiler_advice, scaling_advice};
pub use class::{WorkloadClass, default_scenarios};
pub use types::{CandidateScore, Decision, Decisions, ModelTraits, Outcome, ScenarioValue};

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

/// of the classes it lists; `compiler_real` names the backends with
/// compiler-real evidence; `models` describes every model for AN.4.
pub fn decide(
    summary: &[SummaryRow],
    cost: &[CostRow],
    scenarios: &[Scenario],
    workloads: &BTreeMap<WorkloadClass, Vec<String>>,
    compiler_real: &BTreeSet<String>,
    models: &BTreeMap<String, ModelTraits>,
) -> Decisions {
    let ctx = rank::Ctx::new(summary, cost, scenarios);
    let per_class = WorkloadClass::ALL
        .iter()
        .map(|&class| ctx.decide_class(class, workloads.get(&class)))
        .collect();
    Decisions {
        per_class,
        compiler: compiler_advice(summary, compiler_real),
        scaling: scaling_advice(models),
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
