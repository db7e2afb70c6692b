//! JSON-lines input files a spec names (quality counts, acceptance sets):
//! one object per line, blank lines skipped, unknown fields refused, and
//! every error located at its line and field.

use serde_json::{Map, Value};

/// A line of a JSON-lines file that is not what the file holds: displayed
/// as line, field and message, to follow the file's name and a colon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line of the file.
    pub line: usize,
    /// The field at fault, where one is.
    pub field: Option<&'static str>,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.field {
            Some(field) => write!(f, "{}: field `{field}`: {}", self.line, self.message),
            None => write!(f, "{}: {}", self.line, self.message),
        }
    }
}

impl LineError {
    pub fn at(line: usize, field: Option<&'static str>, message: impl Into<String>) -> Self {
        LineError {
            line,
            field,
            message: message.into(),
        }
    }
}

/// One object of the file, with its line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// 1-based.
    pub line: usize,
    pub fields: Map<String, Value>,
}

impl Line {
    pub fn error(&self, field: Option<&'static str>, message: impl Into<String>) -> LineError {
        LineError::at(self.line, field, message)
    }

    /// A string field: none where absent; an error where empty or not a
    /// string.
    pub fn string(&self, field: &'static str) -> Result<Option<String>, LineError> {
        match self.fields.get(field) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => {
                Err(self.error(Some(field), "is empty"))
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.error(Some(field), format!("must be a string, not {other}"))),
        }
    }

    /// A string field that must be there.
    pub fn required_string(&self, field: &'static str) -> Result<String, LineError> {
        self.string(field)?
            .ok_or_else(|| self.error(Some(field), "missing"))
    }
}

/// The objects of a JSON-lines file, in order: UTF-8, one JSON object per
/// non-blank line (`shape` says what one looks like, for the error), no
/// field outside `fields`. Empty files give an empty list: whether that is
/// an error is the caller's to say.
pub fn objects(bytes: &[u8], shape: &str, fields: &[&str]) -> Result<Vec<Line>, LineError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        LineError::at(line, None, "not UTF-8 text")
    })?;
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let line = i + 1;
        let value: Value = serde_json::from_str(raw)
            .map_err(|e| LineError::at(line, None, format!("not JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(LineError::at(
                line,
                None,
                format!("expected an object {shape}"),
            ));
        };
        if let Some(unknown) = map.keys().find(|k| !fields.contains(&k.as_str())) {
            return Err(LineError::at(
                line,
                None,
                format!("unknown field `{unknown}` (fields: {})", fields.join(", ")),
            ));
        }
        lines.push(Line { line, fields: map });
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_located_and_checked() {
        let lines = objects(b"{\"a\": \"x\"}\n\n{\"a\": 3}\n", "{\"a\": ...}", &["a"]).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].line, 3);
        assert_eq!(lines[0].string("a").unwrap().as_deref(), Some("x"));
        assert_eq!(
            lines[1].string("a").unwrap_err().to_string(),
            "3: field `a`: must be a string, not 3"
        );
        assert_eq!(
            lines[0].required_string("b").unwrap_err().to_string(),
            "1: field `b`: missing"
        );
        let err = |bytes: &[u8]| {
            objects(bytes, "{\"a\": ...}", &["a"])
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(b"{\"a\": 1}\n{\"b\": 1}"),
            "2: unknown field `b` (fields: a)"
        );
        assert_eq!(err(b"\n[1]"), "2: expected an object {\"a\": ...}");
        assert!(err(b"{").starts_with("1: not JSON"));
        assert_eq!(err(b"{}\n\xff"), "2: not UTF-8 text");
    }
}
