//! `bandwidth/cpu` and `measure/<backend>/<model>/<scenario>`: the nodes
//! that read the machine.

use std::sync::Arc;

use assay_measure::bandwidth::BandwidthStage;
use assay_measure::{Execution, MeasureStage};
use assay_model::prepare;
use petgraph::graph::NodeIndex;

use super::models::{self, prepare_id};
use super::{PlanError, Planning, StagePlanner};

/// The id of the bandwidth probe's node.
pub(super) const BANDWIDTH: &str = "bandwidth/cpu";

pub(super) struct Bandwidth;

impl StagePlanner for Bandwidth {
    /// Planned when some cell's kind asks for it (candle's roofline).
    fn plan(&self, p: &mut Planning<'_>) -> Result<(), PlanError> {
        if p.cells.iter().any(|c| c.entry.wants_bandwidth()) {
            p.add(BANDWIDTH.into(), Arc::new(BandwidthStage));
        }
        Ok(())
    }
}

pub(super) struct Measure;

impl StagePlanner for Measure {
    /// One node per cell, reading the prepared model and the weights its
    /// kind runs: an export, a synthetic model's generated weights (in
    /// process), or the model's own files (read where they lie).
    fn plan(&self, p: &mut Planning<'_>) -> Result<(), PlanError> {
        for stage in p.cells.clone() {
            let node = p.add(format!("measure/{}", stage.cell), stage.clone());
            p.cell_nodes.push(node);
            wire_weights(p, &stage, node)?;
        }
        Ok(())
    }
}

/// The edges into `node` of what `cell`'s kind reads: the prepared model
/// and the weights it runs (an export, or a synthetic model's generated
/// weights in process); nothing for a kind that reads no prepared model.
/// An evaluation of the cell's backend and model reads the same.
pub(super) fn wire_weights(
    p: &mut Planning<'_>,
    cell: &MeasureStage,
    node: NodeIndex,
) -> Result<(), PlanError> {
    if !cell.reads_prepared_model() {
        return Ok(());
    }
    let model = &cell.model;
    let prep = p.require(&prepare_id(&model.name))?;
    p.connect(prep, node, prepare::output::MODEL)?;
    if let Some(format) = cell.needs_export() {
        let exp = models::export(p, model, format)?;
        p.connect(exp, node, format.output())?;
    } else if model.synthetic.is_some() && cell.execution() == Execution::InProcess {
        p.connect(prep, node, prepare::output::WEIGHTS)?;
    }
    Ok(())
}
