use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Digest;

/// One input artifact of a node: which upstream node produced it, under which
/// output name, and its digest (the part that goes into the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InputRef {
    pub node: String,
    pub name: String,
    pub digest: Digest,
}

/// The record of a finished node, `nodes/<key>.json`. It holds everything the
/// key was computed from, so `assay plan` can explain a rerun field by field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeRecord {
    pub key: Digest,
    /// Node id in the plan, e.g. `measure/cpu/tiny/micro`.
    pub node: String,
    pub stage: String,
    pub stage_version: u32,
    pub params: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Value>,
    pub inputs: Vec<InputRef>,
    pub outputs: BTreeMap<String, Digest>,
    /// Wall time of the node's run. Metadata only: never part of an artifact.
    pub duration_ms: f64,
}

impl NodeRecord {
    #[doc(hidden)]
    pub fn new_for_test(key: Digest, outputs: impl IntoIterator<Item = (String, Digest)>) -> Self {
        NodeRecord {
            key,
            node: "test".into(),
            stage: "test".into(),
            stage_version: 1,
            params: Value::Null,
            env: None,
            inputs: Vec::new(),
            outputs: outputs.into_iter().collect(),
            duration_ms: 0.0,
        }
    }
}
