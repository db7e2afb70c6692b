//! The audit trail: the artifact chain every claim points into, and
//! attribution (what was requested vs what ran, with the weights).

use super::document::{Block, header};
use super::{Out, Report};
use crate::stage::StageError;

pub fn attribution(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    out.doc.push(Block::Heading(2, "Attribution".into()));
    out.doc.push(Block::Table(
        header(&["cell", "evidence", "requested", "ran", "library", "weights"]),
        rep.manifests
            .iter()
            .map(|m| {
                vec![
                    m.cell.clone(),
                    m.evidence.clone(),
                    format!(
                        "{} {} x{}",
                        m.requested.device, m.requested.dtype, m.requested.threads
                    ),
                    format!(
                        "{} {} x{}",
                        m.actual.device, m.actual.dtype, m.actual.threads
                    ),
                    format!("{} {}", m.actual.library, m.actual.library_version),
                    m.weights.as_ref().map_or_else(
                        || "-".to_string(),
                        |id| {
                            format!(
                                "{} {} {}",
                                id.weights_format,
                                id.stored_dtype,
                                &id.weights_blake3[..16.min(id.weights_blake3.len())]
                            )
                        },
                    ),
                ]
            })
            .collect(),
    ));
    Ok(())
}

pub fn artifact_chain(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    let artifacts = rep.artifacts();
    out.doc.push(Block::Heading(2, "Artifact chain".into()));
    out.doc.push(Block::Para(
        "Every claim in report.json names the node that produced its number, that node's key, the \
         artifact's blake3 digest and the rows it used. `assay trace CLAIM_ID` follows a claim to the \
         summary rows, the raw events, the measuring manifest and the weights; `assay verify` re-hashes \
         every object and recomputes every derived node."
            .into(),
    ));
    out.doc.push(Block::Table(
        header(&["node", "key", "artifact", "digest"]),
        artifacts
            .iter()
            .map(|a| {
                vec![
                    a.node.clone(),
                    a.key[..16].to_string(),
                    a.name.clone(),
                    a.digest[..16].to_string(),
                ]
            })
            .collect(),
    ));
    Ok(())
}
