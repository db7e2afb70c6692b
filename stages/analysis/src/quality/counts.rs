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

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountsError {
    /// 1-based line of the file.
    pub line: usize,
    /// The field at fault, where one is.
    pub field: Option<&'static str>,
    pub message: String,
}

impl std::fmt::Display for CountsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.field {
            Some(field) => write!(f, "{}: field `{field}`: {}", self.line, self.message),
            None => write!(f, "{}: {}", self.line, self.message),
        }
    }
}

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
    let text = std::str::from_utf8(bytes).map_err(|e| CountsError {
        line: 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count(),
        field: None,
        message: "not UTF-8 text".into(),
    })?;
    let mut out: Vec<(usize, ModelCounts)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line_no = i + 1;
        let bad = |field: Option<&'static str>, message: String| CountsError {
            line: line_no,
            field,
            message,
        };
        let value: Value =
            serde_json::from_str(line).map_err(|e| bad(None, format!("not JSON: {e}")))?;
        let Value::Object(map) = &value else {
            return Err(bad(
                None,
                r#"expected an object {"model": ..., "successes": ..., "trials": ...}"#.into(),
            ));
        };
        if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(bad(
                None,
                format!("unknown field `{unknown}` (fields: {})", FIELDS.join(", ")),
            ));
        }
        let string = |field: &'static str, required: bool| -> Result<Option<String>, CountsError> {
            match map.get(field) {
                None if required => Err(bad(Some(field), "missing".into())),
                None => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => {
                    Err(bad(Some(field), "is empty".into()))
                }
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(bad(Some(field), format!("must be a string, not {other}"))),
            }
        };
        let count = |field: &'static str| -> Result<u64, CountsError> {
            match map.get(field) {
                None => Err(bad(Some(field), "missing".into())),
                Some(v) => v.as_u64().ok_or_else(|| {
                    bad(Some(field), format!("must be a whole number >= 0, not {v}"))
                }),
            }
        };
        let model = string("model", true)?.unwrap_or_default();
        let successes = count("successes")?;
        let trials = count("trials")?;
        if trials == 0 {
            return Err(bad(
                Some("trials"),
                "must be at least 1 (a rate needs trials)".into(),
            ));
        }
        if successes > trials {
            return Err(bad(
                Some("successes"),
                format!("{successes} exceeds trials {trials}"),
            ));
        }
        if out.iter().any(|(_, c)| c.model == model) {
            return Err(bad(
                Some("model"),
                format!("model {model:?} is counted on an earlier line"),
            ));
        }
        let evaluator = string("evaluator", false)?;
        let evaluator_version = string("evaluator_version", false)?;
        out.push((
            line_no,
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
        return Err(CountsError {
            line: 1,
            field: None,
            message: "no counts: one JSON object per model is required".into(),
        });
    }
    Ok(out)
}
