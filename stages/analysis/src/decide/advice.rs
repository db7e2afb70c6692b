//! AN.2 compiler enablement per backend and AN.4 scaling advice.

use std::collections::{BTreeMap, BTreeSet};

use assay_core::tables::SummaryRow;

use super::types::ModelTraits;

/// AN.2 per backend of the summary. assay's scenarios are fixed shapes
/// (fixed prompt, batch and fixed-length decode), so the "shapes stable or
/// bucketed" question is always yes.
pub fn compiler_advice(
    summary: &[SummaryRow],
    compiler_real: &BTreeSet<String>,
) -> Vec<(String, String)> {
    let backends: BTreeSet<&str> = summary.iter().map(|r| r.backend.as_str()).collect();
    backends
        .into_iter()
        .map(|b| {
            let advice = if compiler_real.contains(b) {
                "compile prefill; keep decode eager unless decode wins are demonstrated \
                 (compiler-real evidence, fixed scenario shapes)"
            } else {
                "disable compile: no compiler-real evidence"
            };
            (b.to_string(), advice.to_string())
        })
        .collect()
}

/// AN.4: parameter count is a usable predictor only across homogeneous
/// models (one family, one dtype).
pub fn scaling_advice(models: &BTreeMap<String, ModelTraits>) -> String {
    if models.is_empty() {
        return "no models described: scaling not assessed".into();
    }
    let families: BTreeSet<&str> = models.values().map(|m| m.family.as_str()).collect();
    let dtypes: BTreeSet<&str> = models.values().map(|m| m.dtype.as_str()).collect();
    let list = |s: &BTreeSet<&str>| s.iter().copied().collect::<Vec<_>>().join(", ");
    if families.len() > 1 || dtypes.len() > 1 {
        format!(
            "params are a regime descriptor only: models are heterogeneous (families {}; dtypes {})",
            list(&families),
            list(&dtypes)
        )
    } else {
        format!(
            "params usable as a proxy with fit gating (R^2 and CI checks): {} model(s), all {} {}",
            models.len(),
            list(&families),
            list(&dtypes)
        )
    }
}
