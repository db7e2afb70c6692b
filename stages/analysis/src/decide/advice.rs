//! AN.4 scaling advice.

use std::collections::{BTreeMap, BTreeSet};

use super::types::ModelTraits;

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
            "params usable as a proxy with fit gating (R^2 and CI checks): every model is {} {}",
            list(&families),
            list(&dtypes)
        )
    }
}
