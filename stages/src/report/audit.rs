//! Attribution (what was requested vs what ran, with the weights) and the artifact chain every claim points into.

use super::document::Block;
use super::{Out, Report};
use crate::stage::StageError;

pub fn audit(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    // Attribution and artifact chain.
    out.doc.push(Block::Heading(2, "Attribution".into()));
    out.doc.push(Block::Table(
        ["cell", "evidence", "requested", "ran", "library", "weights"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
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
    let artifacts = rep.artifacts();
    out.doc.push(Block::Heading(2, "Artifact chain".into()));
    out.doc.push(Block::Para(format!(
        "{} claims in report.json, each with the digest and rows of its source artifact. \
         `assay trace CLAIM_ID` follows one to the raw events and the measuring manifest.",
        out.claims.len()
    )));
    out.doc.push(Block::Table(
        vec!["node".into(), "artifact".into(), "digest".into()],
        artifacts
            .iter()
            .map(|a| vec![a.node.clone(), a.name.clone(), a.digest[..16].to_string()])
            .collect(),
    ));

    Ok(())
}
