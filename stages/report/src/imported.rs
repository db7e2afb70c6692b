//! Imported results (the `imported` backend kind, docs/importers.md): which
//! cells came from a peer tool's file, the tool, its version and the
//! machine it recorded, and, per cell, what its file's grain cannot give:
//! the intervals and phases the report leaves out rather than invent.

use crate::document::{Block, header};
use crate::{Out, Report};
use assay_core::stage::StageError;

pub fn imported(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    let cells: Vec<_> = rep
        .manifests
        .iter()
        .filter_map(|m| m.imported.as_ref().map(|i| (m, i)))
        .collect();
    if cells.is_empty() {
        return Ok(());
    }
    out.doc.push(Block::Heading(2, "Imported results".into()));
    out.doc.push(Block::Para(
        "These cells were measured by another tool and read from its results file (evidence \
         `imported`): their numbers are real but were not timed by assay's harness, on the \
         machine the file records, not this one. Their timings are at the grain the file \
         holds; what that grain cannot give is listed per cell and left blank in the tables \
         (n/a), never estimated."
            .into(),
    ));
    let rows = cells
        .iter()
        .map(|(m, i)| {
            vec![
                m.cell.clone(),
                format!("{} {}", i.tool, i.tool_version),
                format!("{} ({})", i.file, i.records.join(", ")),
                i.grain.clone(),
                if i.aggregates.is_empty() {
                    "none".into()
                } else {
                    i.aggregates.join("; ")
                },
            ]
        })
        .collect();
    out.doc.push(Block::Table(
        header(&["cell", "tool", "file (records)", "grain", "aggregates"]),
        rows,
    ));
    out.doc.push(Block::List(
        cells
            .iter()
            .map(|(m, i)| {
                format!(
                    "{}: cannot be computed from the file: {}.",
                    m.cell,
                    i.not_computable.join("; ")
                )
            })
            .collect(),
    ));
    Ok(())
}
