//! `prepare/<model>` and `export/<model>/<format>`: the nodes every cell
//! reads its model from.

use std::sync::Arc;

use assay_measure::ModelDecl;
use assay_model::prepare::{self, ExportFormat, ExportStage, PrepareStage};
use petgraph::graph::NodeIndex;

use super::{PlanError, Planning, StagePlanner};

pub(super) struct Models;

impl StagePlanner for Models {
    /// Prepare nodes, only where a cell reads a prepared model (the
    /// simulated backend runs on the declared architecture alone, and a
    /// model that exists only on a server has nothing to prepare), and the
    /// GGUF exports a model declares.
    fn plan(&self, p: &mut Planning<'_>) -> Result<(), PlanError> {
        let loaded = p.loaded;
        for model in &loaded.spec.models {
            let read = p
                .cells
                .iter()
                .any(|c| c.model.name == model.name && c.reads_prepared_model());
            if read {
                let stage = PrepareStage {
                    model: model.clone(),
                    base_dir: loaded.dir.clone(),
                };
                p.add(prepare_id(&model.name), Arc::new(stage));
            }
        }
        for model in &loaded.spec.models {
            if p.node(&prepare_id(&model.name)).is_some() {
                for ty in &model.gguf {
                    export(p, model, ExportFormat::Gguf(*ty))?;
                }
            }
        }
        Ok(())
    }
}

pub(super) fn prepare_id(model: &str) -> String {
    format!("prepare/{model}")
}

/// The export node of `model` in `format`, planned once (a model's
/// declared exports and every cell reading one share it).
pub(super) fn export(
    p: &mut Planning<'_>,
    model: &ModelDecl,
    format: ExportFormat,
) -> Result<NodeIndex, PlanError> {
    let id = format!("export/{}/{}", model.name, format.id());
    if let Some(node) = p.node(&id) {
        return Ok(node);
    }
    let prep = p.require(&prepare_id(&model.name))?;
    let stage = ExportStage {
        model: model.name.clone(),
        format,
    };
    let node = p.add(id, Arc::new(stage));
    p.connect(prep, node, prepare::output::MODEL)?;
    if model.synthetic.is_some() {
        p.connect(prep, node, prepare::output::WEIGHTS)?;
    }
    Ok(node)
}
