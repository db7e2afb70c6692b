//! `evaluate/<backend>/<model>`: the built-in evaluation of the spec's
//! `quality.evaluate`, one node per listed backend and model it has cells
//! of, reading the same weights as that backend's cells.

use std::sync::Arc;

use assay_measure::evaluate::{self, EvaluateStage};
use petgraph::graph::NodeIndex;

use super::measure::wire_weights;
use super::{PlanError, Planning, StagePlanner};

pub(super) struct Evaluate;

impl StagePlanner for Evaluate {
    /// For each backend of the set (reference first) and each model it
    /// has a cell of, in cell order: a node when some item of the set
    /// applies to the model.
    fn plan(&self, p: &mut Planning<'_>) -> Result<(), PlanError> {
        let Some(e) = p
            .loaded
            .spec
            .quality
            .as_ref()
            .and_then(|q| q.evaluate.clone())
        else {
            return Ok(());
        };
        for backend in &e.backends {
            for cell in p.cells.clone() {
                if &cell.backend.name != backend {
                    continue;
                }
                let id = evaluate::node_id(backend, &cell.model.name);
                if p.node(&id).is_some() {
                    continue;
                }
                let items: Vec<_> = e
                    .items
                    .iter()
                    .filter(|i| i.applies_to(&cell.model.name))
                    .cloned()
                    .collect();
                if items.is_empty() {
                    continue;
                }
                let node = p.add(
                    id,
                    Arc::new(EvaluateStage {
                        cell: (*cell).clone(),
                        items,
                        max_tokens: e.max_tokens,
                    }),
                );
                wire_weights(p, &cell, node)?;
            }
        }
        Ok(())
    }
}

/// The planned evaluate nodes, by id.
pub(super) fn evaluate_nodes(p: &Planning<'_>) -> Vec<NodeIndex> {
    p.ids
        .range("evaluate/".to_string()..)
        .take_while(|(id, _)| id.starts_with("evaluate/"))
        .map(|(_, &n)| n)
        .collect()
}
