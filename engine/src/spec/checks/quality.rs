//! `quality`: the counts file of an external evaluation (read here, once,
//! when the spec is loaded: its digest enters the quality node's key and
//! the report's claims), and what pricing a success needs.

use std::path::Path;

use assay_analysis::quality::parse_counts_lines;

use super::Ctx;
use crate::spec::diagnostic::Diags;
use crate::spec::types::Spec;

const FILE: &str = "/quality/file";

/// Reads the counts file of `spec.quality` (relative to the spec's folder)
/// into it with its digest, or reports where it is not a counts file: the
/// file, line and field, at the spec's `file` field. Every model it counts
/// must be a model of the spec. Run before the other checks, while the
/// spec can still be changed.
pub(crate) fn read_quality_file(spec: &mut Spec, dir: &Path, diags: &mut Diags<'_>) {
    let models: Vec<String> = spec.models.iter().map(|m| m.name.clone()).collect();
    let Some(q) = spec.quality.as_mut() else {
        return;
    };
    let file = q.file.clone();
    let bytes = match std::fs::read(dir.join(&file)) {
        Ok(b) => b,
        Err(e) => {
            diags.at_value(
                FILE,
                format!("cannot read the quality counts file {file}: {e}"),
            );
            return;
        }
    };
    let counted = match parse_counts_lines(&bytes) {
        Ok(c) => c,
        Err(e) => {
            diags.at_value(FILE, format!("{file}:{e}"));
            return;
        }
    };
    let mut ok = true;
    for (line, c) in &counted {
        if !models.contains(&c.model) {
            ok = false;
            diags.at_value(
                FILE,
                format!(
                    "{file}:{line}: field `model`: {:?} is not a model of this spec (models: {})",
                    c.model,
                    models.join(", ")
                ),
            );
        }
    }
    if ok {
        q.file_blake3 = Some(assay_store::Digest::of(&bytes).to_hex());
        q.counts = counted.into_iter().map(|(_, c)| c).collect();
    }
}

/// A success is priced per request, so quality needs the cost section's
/// request mix.
pub(super) fn check_quality(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    if cx.spec.quality.is_none() {
        return;
    }
    if cx
        .spec
        .cost
        .as_ref()
        .is_none_or(|c| c.request_mix.is_empty())
    {
        diags.at_key(
            "/quality",
            "cost per successful outcome divides the cost of a request by the success rate: quality needs `cost` with a `request_mix`".into(),
        );
    }
}
