//! Finding a stage's input artifacts by output name and producing node. A
//! missing input is an error, never an empty list: a wiring mistake must not
//! compute a key over nothing.

use std::collections::BTreeMap;

use crate::stage::{Input, StageError};

/// The three artifacts of one measure node, found among a stage's inputs.
pub struct CellInputs<'a> {
    pub node: &'a str,
    pub events: &'a Input,
    /// Power samples, wired when the spec asks for energy.
    pub power: Option<&'a Input>,
    /// Only wired to stages that need it.
    pub runs: Option<&'a Input>,
    /// Greedy tokens per run (validate only).
    pub outputs: Option<&'a Input>,
    pub manifest: &'a Input,
}

/// The inputs with one of `names`, grouped by producing node: node id to
/// output name to input, both in name order.
pub fn inputs_by_node<'a>(
    inputs: &'a [Input],
    names: &[&str],
) -> BTreeMap<&'a str, BTreeMap<&'a str, &'a Input>> {
    let mut by_node: BTreeMap<&str, BTreeMap<&str, &Input>> = BTreeMap::new();
    for input in inputs {
        if names.contains(&input.name.as_str()) {
            by_node
                .entry(input.node.as_str())
                .or_default()
                .insert(input.name.as_str(), input);
        }
    }
    by_node
}

/// Group measure outputs by producing node, in node-id order.
pub fn cell_inputs(inputs: &[Input]) -> Result<Vec<CellInputs<'_>>, StageError> {
    inputs_by_node(inputs, &["events", "runs", "manifest", "power", "outputs"])
        .into_iter()
        .map(|(node, m)| {
            let get = |name: &str| {
                m.get(name).copied().ok_or_else(|| {
                    StageError::Failed(format!("measure node {node} has no {name} output"))
                })
            };
            Ok(CellInputs {
                node,
                events: get("events")?,
                power: m.get("power").copied(),
                runs: m.get("runs").copied(),
                outputs: m.get("outputs").copied(),
                manifest: get("manifest")?,
            })
        })
        .collect()
}

pub fn find_input<'a>(inputs: &'a [Input], name: &str) -> Result<&'a Input, StageError> {
    inputs
        .iter()
        .find(|i| i.name == name)
        .ok_or_else(|| StageError::Failed(format!("missing input artifact {name}")))
}
