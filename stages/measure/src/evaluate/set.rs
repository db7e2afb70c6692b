//! The acceptance set of a built-in evaluation (Appendix BE.1: success is
//! the product's acceptance criteria): JSON lines, one prompt per line,
//!
//! ```text
//! {"id": "capital", "prompt": "The capital of France is", "accept": {"contains": "Paris"}}
//! {"id": "sum", "prompt": "2 + 2 =", "accept": {"regex": "^\\s*4\\b"}, "max_tokens": 4}
//! {"prompt": "Say yes.", "accept": {"exact": "yes"}, "model": "small"}
//! ```
//!
//! `prompt` and `accept` are required; `accept` holds exactly one criterion:
//! `exact` (the output, trimmed of surrounding white space, equals the
//! text, trimmed), `contains` (the output contains the text) or `regex`
//! (the pattern matches somewhere in the output; anchor it with `^`/`$`).
//! `id` names the item in the report (default: its line number),
//! `max_tokens` overrides the spec's generation length for this item, and
//! `model` restricts the item to one model (expected outputs often differ
//! per model). Blank lines are skipped; unknown fields are refused, so a
//! misspelt criterion never silently accepts everything.

use assay_core::jsonl::{Line, LineError, objects};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an output must satisfy to count as a success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// The output, trimmed, equals this text, trimmed.
    Exact(String),
    /// The output contains this text.
    Contains(String),
    /// This pattern (Rust `regex` syntax) matches somewhere in the output.
    Regex(String),
}

impl Criterion {
    /// `exact`, `contains` or `regex`: the stored spelling.
    pub fn kind(&self) -> &'static str {
        match self {
            Criterion::Exact(_) => "exact",
            Criterion::Contains(_) => "contains",
            Criterion::Regex(_) => "regex",
        }
    }

    pub fn pattern(&self) -> &str {
        match self {
            Criterion::Exact(s) | Criterion::Contains(s) | Criterion::Regex(s) => s,
        }
    }

    /// The criterion ready to test outputs (a regex compiled once).
    pub fn matcher(&self) -> Result<Matcher<'_>, String> {
        Ok(match self {
            Criterion::Exact(s) => Matcher::Exact(s.trim()),
            Criterion::Contains(s) => Matcher::Contains(s),
            Criterion::Regex(p) => Matcher::Regex(
                regex::Regex::new(p).map_err(|e| format!("not a regular expression: {e}"))?,
            ),
        })
    }
}

/// A compiled [`Criterion`].
pub enum Matcher<'a> {
    Exact(&'a str),
    Contains(&'a str),
    Regex(regex::Regex),
}

impl Matcher<'_> {
    pub fn accepts(&self, output: &str) -> bool {
        match self {
            Matcher::Exact(want) => output.trim() == *want,
            Matcher::Contains(want) => output.contains(want),
            Matcher::Regex(re) => re.is_match(output),
        }
    }
}

/// One prompt of the set with its criterion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AcceptanceItem {
    /// 1-based line of the file.
    pub line: usize,
    /// The item's name (its `id`, else `line N`).
    pub id: String,
    pub prompt: String,
    pub accept: Criterion,
    /// Generation length for this item; none: the spec's `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The one model this item applies to; none: every model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl AcceptanceItem {
    pub fn applies_to(&self, model: &str) -> bool {
        self.model.as_deref().is_none_or(|m| m == model)
    }
}

/// A line of an acceptance set that is not an item: line, field and
/// message, displayed after the file's name and a colon.
pub type SetError = LineError;

const FIELDS: [&str; 5] = ["id", "prompt", "accept", "max_tokens", "model"];

/// The items of a JSONL acceptance set, in file order: at least one, ids
/// unique, every regex compiled.
pub fn parse_set(bytes: &[u8]) -> Result<Vec<AcceptanceItem>, SetError> {
    let lines = objects(bytes, r#"{"prompt": "...", "accept": {...}}"#, &FIELDS)?;
    let mut items: Vec<AcceptanceItem> = Vec::new();
    for l in &lines {
        let item = parse_line(l)?;
        if let Some(first) = items.iter().find(|o| o.id == item.id) {
            return Err(l.error(
                Some("id"),
                format!("{:?} is already the id of line {}", item.id, first.line),
            ));
        }
        items.push(item);
    }
    if items.is_empty() {
        return Err(LineError::at(
            1,
            None,
            r#"no items: one {"prompt": "...", "accept": {"contains": "..."}} per line"#,
        ));
    }
    Ok(items)
}

fn parse_line(l: &Line) -> Result<AcceptanceItem, SetError> {
    let prompt = l.required_string("prompt")?;
    let id = l
        .string("id")?
        .unwrap_or_else(|| format!("line {}", l.line));
    let model = l.string("model")?;
    let max_tokens = match l.fields.get("max_tokens") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=65_536) => Some(n as u32),
            _ => {
                return Err(l.error(
                    Some("max_tokens"),
                    format!("must be a whole number from 1 to 65536, not {v}"),
                ));
            }
        },
    };
    let accept = criterion(l.fields.get("accept")).map_err(|m| l.error(Some("accept"), m))?;
    accept.matcher().map_err(|m| l.error(Some("accept"), m))?;
    Ok(AcceptanceItem {
        line: l.line,
        id,
        prompt,
        accept,
        max_tokens,
        model,
    })
}

fn criterion(value: Option<&Value>) -> Result<Criterion, String> {
    const KINDS: &str = r#"one of {"exact": "..."}, {"contains": "..."}, {"regex": "..."}"#;
    let Some(Value::Object(map)) = value else {
        return Err(match value {
            None => format!("is required: {KINDS}"),
            Some(v) => format!("must be {KINDS}, not {v}"),
        });
    };
    let mut entries = map.iter();
    let (Some((kind, pattern)), None) = (entries.next(), entries.next()) else {
        return Err(format!("must hold exactly one criterion: {KINDS}"));
    };
    let Value::String(pattern) = pattern else {
        return Err(format!("`{kind}` must be a string, not {pattern}"));
    };
    match kind.as_str() {
        "exact" => Ok(Criterion::Exact(pattern.clone())),
        "contains" if pattern.is_empty() => {
            Err("`contains` of the empty text accepts every output".into())
        }
        "contains" => Ok(Criterion::Contains(pattern.clone())),
        "regex" => Ok(Criterion::Regex(pattern.clone())),
        other => Err(format!("unknown criterion `{other}`: {KINDS}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_criterion_parses_and_judges_as_documented() {
        let set = parse_set(
            br#"{"id": "a", "prompt": "p", "accept": {"exact": " yes "}}

{"prompt": "q", "accept": {"contains": "Paris"}, "max_tokens": 4, "model": "small"}
{"id": "c", "prompt": "r", "accept": {"regex": "^\\s*4\\b"}}
"#,
        )
        .unwrap();
        assert_eq!(set.len(), 3);
        assert_eq!(set[1].id, "line 3");
        assert_eq!(set[1].line, 3);
        assert_eq!(set[1].max_tokens, Some(4));
        assert!(set[1].applies_to("small") && !set[1].applies_to("tiny"));
        assert!(set[0].applies_to("tiny"));
        let m: Vec<Matcher> = set.iter().map(|i| i.accept.matcher().unwrap()).collect();
        assert!(m[0].accepts("yes\n") && !m[0].accepts("yes!"));
        assert!(m[1].accepts("It is Paris.") && !m[1].accepts("paris"));
        assert!(m[2].accepts(" 4 apples") && !m[2].accepts("44") && !m[2].accepts("x 4"));
    }

    #[test]
    fn a_bad_line_names_its_line_and_field() {
        let err = |text: &str| parse_set(text.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            err("{\"prompt\": \"p\", \"accept\": {\"exact\": \"x\"}}\n{\"prompt\": \"p\"}"),
            "2: field `accept`: is required: one of {\"exact\": \"...\"}, {\"contains\": \"...\"}, {\"regex\": \"...\"}"
        );
        assert!(
            err(r#"{"prompt": "p", "accept": {"regex": "("}}"#)
                .starts_with("1: field `accept`: not a regular expression")
        );
        assert!(
            err(r#"{"prompt": "p", "accept": {"exact": "a", "contains": "b"}}"#)
                .contains("exactly one criterion")
        );
        assert!(
            err(r#"{"prompt": "p", "accept": {"equals": "a"}}"#)
                .contains("unknown criterion `equals`")
        );
        assert!(
            err(r#"{"prompt": "p", "accept": {"contains": ""}}"#).contains("accepts every output")
        );
        assert!(
            err(r#"{"prompt": "p", "acept": {"exact": "a"}}"#)
                .starts_with("1: unknown field `acept`")
        );
        assert!(
            err(r#"{"prompt": "", "accept": {"exact": "a"}}"#)
                .starts_with("1: field `prompt`: is empty")
        );
        assert!(
            err(r#"{"prompt": "p", "accept": {"exact": "a"}, "max_tokens": 0}"#)
                .starts_with("1: field `max_tokens`")
        );
        assert!(
            err("{\"id\": \"x\", \"prompt\": \"p\", \"accept\": {\"exact\": \"a\"}}\n{\"id\": \"x\", \"prompt\": \"q\", \"accept\": {\"exact\": \"a\"}}")
                .starts_with("2: field `id`: \"x\" is already the id of line 1")
        );
        assert!(err("\n\n").starts_with("1: no items"));
        assert!(err("not json").starts_with("1: not JSON"));
    }
}
