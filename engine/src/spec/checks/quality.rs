//! `quality`: the counts file of an external evaluation or the acceptance
//! set of the built-in one (read here, once, when the spec is loaded: its
//! digest enters the quality node's key and the report's claims), and what
//! pricing a success needs.

use std::path::Path;

use assay_analysis::quality::parse_counts_lines;
use assay_measure::evaluate::parse_set;

use super::Ctx;
use crate::spec::diagnostic::Diags;
use crate::spec::types::Spec;

const FILE: &str = "/quality/file";
const SET: &str = "/quality/evaluate/set";

/// Reads the counts file or the acceptance set of `spec.quality` (relative
/// to the spec's folder) into it with its digest, or reports where it is
/// not one: the file, line and field, at the spec's field. Every model it
/// names must be a model of the spec. Run before the other checks, while
/// the spec can still be changed.
pub(crate) fn read_quality_file(spec: &mut Spec, dir: &Path, diags: &mut Diags<'_>) {
    let models: Vec<String> = spec.models.iter().map(|m| m.name.clone()).collect();
    let Some(q) = spec.quality.as_mut() else {
        return;
    };
    let (file, at) = match (&q.file, &q.evaluate) {
        (Some(_), Some(_)) => {
            diags.at_key(
                "/quality/evaluate",
                "give `file` (an external evaluation's counts) or `evaluate` (assay's own), not both: a model's success rate comes from one evaluation".into(),
            );
            return;
        }
        (None, None) => {
            diags.at_key(
                "/quality",
                "quality needs `file` (an external evaluation's counts) or `evaluate` (an acceptance set assay runs)".into(),
            );
            return;
        }
        (Some(file), None) => (file.clone(), FILE),
        (None, Some(e)) => (e.set.clone(), SET),
    };
    let what = if at == FILE {
        "quality counts file"
    } else {
        "acceptance set"
    };
    let bytes = match std::fs::read(dir.join(&file)) {
        Ok(b) => b,
        Err(e) => {
            diags.at_value(at, format!("cannot read the {what} {file}: {e}"));
            return;
        }
    };
    // (line, model) of every model the file names.
    let named: Vec<(usize, String)> = if at == FILE {
        match parse_counts_lines(&bytes) {
            Ok(counted) => {
                let named = counted.iter().map(|(l, c)| (*l, c.model.clone())).collect();
                q.counts = counted.into_iter().map(|(_, c)| c).collect();
                named
            }
            Err(e) => {
                diags.at_value(at, format!("{file}:{e}"));
                return;
            }
        }
    } else {
        match parse_set(&bytes) {
            Ok(items) => {
                let named = items
                    .iter()
                    .filter_map(|i| Some((i.line, i.model.clone()?)))
                    .collect();
                if let Some(e) = q.evaluate.as_mut() {
                    e.items = items;
                }
                named
            }
            Err(e) => {
                diags.at_value(at, format!("{file}:{e}"));
                return;
            }
        }
    };
    let mut ok = true;
    for (line, model) in &named {
        if !models.contains(model) {
            ok = false;
            diags.at_value(
                at,
                format!(
                    "{file}:{line}: field `model`: {model:?} is not a model of this spec (models: {})",
                    models.join(", ")
                ),
            );
        }
    }
    if ok {
        q.file_blake3 = Some(assay_store::Digest::of(&bytes).to_hex());
    } else {
        q.counts.clear();
        if let Some(e) = q.evaluate.as_mut() {
            e.items.clear();
        }
    }
}

/// A success is priced per request, so quality needs the cost section's
/// request mix; an evaluation's backends must be backends of the spec that
/// can generate, each named once.
pub(super) fn check_quality(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    let Some(q) = &cx.spec.quality else {
        return;
    };
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
    let Some(e) = &q.evaluate else {
        return;
    };
    for (i, name) in e.backends.iter().enumerate() {
        let at = format!("/quality/evaluate/backends/{i}");
        if e.backends[..i].contains(name) {
            diags.at_value(&at, format!("backend {name:?} is listed twice"));
            continue;
        }
        let Some(b) = cx.spec.backends.iter().find(|b| &b.name == name) else {
            let names: Vec<&str> = cx.spec.backends.iter().map(|b| b.name.as_str()).collect();
            diags.at_value(
                &at,
                format!(
                    "{name:?} is not a backend of this spec (backends: {})",
                    names.join(", ")
                ),
            );
            continue;
        };
        let Some(entry) = cx.registry.get(b.kind.as_str()) else {
            continue;
        };
        if !entry.evaluates() {
            diags.at_value(
                &at,
                format!(
                    "backend {name:?} is of kind {}, which cannot run an evaluation: name an in-process backend (candle, ort, tch)",
                    entry.name()
                ),
            );
        }
    }
}
