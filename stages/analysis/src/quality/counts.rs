//! The external evaluation's counts file (Appendix BE.1: success is the
//! product's acceptance criteria, counted by an evaluation outside assay):
//! JSON lines, one model per line,
//!
//! ```text
//! {"model": "tiny", "successes": 61, "trials": 100, "evaluator": "exact-match", "evaluator_version": "2"}
//! ```
//!
//! `model`, `successes` and `trials` are required; `evaluator` and
//! `evaluator_version` name what counted them (shown in the report). Blank
//! lines are skipped. The file is read once, when the spec is loaded; its
//! blake3 enters the quality node's key and the report's claims.

use assay_core::jsonl::{LineError, objects};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One model's success count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelCounts {
    pub model: String,
    /// Trials whose output met the acceptance criteria.
    pub successes: u64,
    /// Trials evaluated (>= 1, >= successes).
    pub trials: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluator_version: Option<String>,
}

/// A line of a counts file that is not a model's counts; displayed as
/// line, field and message, to follow the file's name and a colon.
pub type CountsError = LineError;

const FIELDS: [&str; 5] = [
    "model",
    "successes",
    "trials",
    "evaluator",
    "evaluator_version",
];

/// The counts of a JSONL counts file, in file order; at least one line,
/// and each model at most once.
pub fn parse_counts(bytes: &[u8]) -> Result<Vec<ModelCounts>, CountsError> {
    Ok(parse_counts_lines(bytes)?
        .into_iter()
        .map(|(_, c)| c)
        .collect())
}

/// [`parse_counts`] with each entry's 1-based line, so that a later check
/// (a model the spec does not declare) can say where it is.
pub fn parse_counts_lines(bytes: &[u8]) -> Result<Vec<(usize, ModelCounts)>, CountsError> {
    let lines = objects(
        bytes,
        r#"{"model": ..., "successes": ..., "trials": ...}"#,
        &FIELDS,
    )?;
    let mut out: Vec<(usize, ModelCounts)> = Vec::new();
    for l in lines {
        let count = |field: &'static str| -> Result<u64, CountsError> {
            match l.fields.get(field) {
                None => Err(l.error(Some(field), "missing")),
                Some(v) => v.as_u64().ok_or_else(|| {
                    l.error(Some(field), format!("must be a whole number >= 0, not {v}"))
                }),
            }
        };
        let model = l.required_string("model")?;
        let successes = count("successes")?;
        let trials = count("trials")?;
        if trials == 0 {
            return Err(l.error(Some("trials"), "must be at least 1 (a rate needs trials)"));
        }
        if successes > trials {
            return Err(l.error(
                Some("successes"),
                format!("{successes} exceeds trials {trials}"),
            ));
        }
        if out.iter().any(|(_, c)| c.model == model) {
            return Err(l.error(
                Some("model"),
                format!("model {model:?} is counted on an earlier line"),
            ));
        }
        let evaluator = l.string("evaluator")?;
        let evaluator_version = l.string("evaluator_version")?;
        out.push((
            l.line,
            ModelCounts {
                model,
                successes,
                trials,
                evaluator,
                evaluator_version,
            },
        ));
    }
    if out.is_empty() {
        return Err(LineError::at(
            1,
            None,
            "no counts: one JSON object per model is required",
        ));
    }
    Ok(out)
}
