//! Node keys: blake3 over the canonical encoding of everything a node's
//! output depends on. Because keys chain on input *digests*, an upstream
//! rerun that yields identical bytes leaves every dependent's key unchanged
//! (early cutoff).

use assay_core::{Input, Stage, StageError};
use assay_store::{Digest, canonical};
use serde_json::{Value, json};

/// The fields a key is computed from, kept so `plan` can explain changes.
/// A stage whose params do not serialise has no key (an error, never a
/// key shared with another configuration).
pub fn key_material(stage: &dyn Stage, inputs: &[Input]) -> Result<Value, StageError> {
    Ok(json!({
        "stage": stage.kind(),
        "version": stage.version(),
        "params": stage.params()?,
        "env": stage.environment(),
        "inputs": inputs
            .iter()
            .map(|i| {
                if stage.keyed_on_producers() {
                    json!([i.node, i.name, i.digest.to_hex(), i.key.to_hex()])
                } else {
                    json!([i.node, i.name, i.digest.to_hex()])
                }
            })
            .collect::<Vec<_>>(),
    }))
}

pub fn node_key(stage: &dyn Stage, inputs: &[Input]) -> Result<Digest, StageError> {
    Ok(canonical::keyed_hash(
        "assay/node-key/v1",
        &key_material(stage, inputs)?,
    ))
}

/// Flatten JSON into `dotted.path -> canonical value` pairs, to diff params.
pub fn flatten(prefix: &str, v: &Value, out: &mut std::collections::BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        Value::Array(a) if a.iter().any(|x| x.is_object() || x.is_array()) => {
            for (i, v) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// Human-readable differences between two param sets, e.g.
/// `cost.usd_per_hour.spot: 0.03 -> 0.05`.
pub fn diff_params(old: &Value, new: &Value) -> Vec<String> {
    let mut a = std::collections::BTreeMap::new();
    let mut b = std::collections::BTreeMap::new();
    flatten("", old, &mut a);
    flatten("", new, &mut b);
    let mut out = Vec::new();
    for (k, v) in &b {
        match a.get(k) {
            // Compare canonically (1e9 == 1000000000), show as written.
            Some(old) if canonical::encode(old) == canonical::encode(v) => {}
            Some(old) => out.push(format!("{k}: {old} -> {v}")),
            None => out.push(format!("{k}: added ({v})")),
        }
    }
    for k in a.keys() {
        if !b.contains_key(k) {
            out.push(format!("{k}: removed"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_name_the_field() {
        let old = json!({"usd_per_hour": {"spot": 0.03, "on_demand": 0.1}, "burst_factor": 5});
        let new = json!({"usd_per_hour": {"spot": 0.05, "on_demand": 0.1}, "burst_factor": 5.0});
        assert_eq!(
            diff_params(&old, &new),
            vec!["usd_per_hour.spot: 0.03 -> 0.05"]
        );
    }
}
