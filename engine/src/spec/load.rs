//! Loading a spec: read, parse, validate against the schema, decode, then
//! the semantic checks (`checks/`).

use std::path::{Path, PathBuf};

use assay_measure::Scenario;
use assay_store::{Digest, canonical};
use serde_json::{Map, Value};

pub use super::checks::Purpose;
use super::checks::{read_prompts_file, read_quality_file, semantic_checks};
use super::diagnostic::{Diagnostic, Diags};
use super::locate::LocationMap;
use super::types::Spec;

/// A spec that parsed, validated and passed every semantic check.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    pub path: PathBuf,
    /// The spec's folder: relative paths resolve against it.
    pub dir: PathBuf,
    pub text: String,
    pub spec: Spec,
    /// blake3 of the spec's canonical JSON form: formatting and key order do
    /// not change it.
    pub digest: Digest,
    pub scenarios: Vec<Scenario>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} has {} error(s)", path.display(), diagnostics.len())]
    Invalid {
        path: PathBuf,
        text: String,
        diagnostics: Vec<Diagnostic>,
    },
}

/// The JSON Schema of a spec, generated from the Rust types; a backend's
/// `kind` is one of this assay's registered kinds.
pub fn spec_schema() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(Spec)).unwrap_or(Value::Null);
    simplify(&mut schema);
    schema["$defs"]["BackendKind"] = backend_kinds(assay_measure::registry());
    schema
}

/// The registered kinds as one documented `enum`, in the form
/// [`fold_one_of_constants`] gives a unit enum.
fn backend_kinds(registry: &assay_measure::Registry) -> Value {
    let (names, docs): (Vec<_>, Vec<_>) = registry
        .entries()
        .map(|k| (k.name(), format!("`{}`: {}", k.name(), k.summary())))
        .unzip();
    serde_json::json!({
        "description": docs.join("\n"),
        "enum": names,
        "type": "string",
    })
}

/// Rewrite two schemars idioms whose validation errors are unreadable
/// ("not valid under any of the schemas listed in 'oneOf'"):
/// - a `oneOf` of documented constants (a unit enum) becomes one `enum`,
///   with the variants' docs folded into the description;
/// - `anyOf: [X, {type: null}]` (an optional field) becomes X: an optional
///   field is omitted, not written as null.
pub(super) fn simplify(v: &mut Value) {
    match v {
        Value::Object(map) => {
            fold_one_of_constants(map);
            unwrap_optional(map);
            for (_, child) in map.iter_mut() {
                simplify(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(simplify),
        _ => {}
    }
}

/// A `oneOf` whose every item is a variant becomes one `enum`.
fn fold_one_of_constants(map: &mut Map<String, Value>) {
    // A variant is `{const: v}` (documented) or `{enum: [v, ...]}`
    // (undocumented variants, grouped).
    let variant_values = |i: &Value| -> Option<Vec<Value>> {
        match (i.get("const"), i.get("enum")) {
            (Some(c), _) => Some(vec![c.clone()]),
            (None, Some(Value::Array(e))) => Some(e.clone()),
            _ => None,
        }
    };
    let Some(Value::Array(items)) = map.get("oneOf") else {
        return;
    };
    if items.is_empty() || !items.iter().all(|i| variant_values(i).is_some()) {
        return;
    }
    let values: Vec<Value> = items.iter().filter_map(variant_values).flatten().collect();
    let docs: Vec<String> = items
        .iter()
        .filter_map(|i| {
            Some(format!(
                "`{}`: {}",
                i.get("const")?.as_str()?,
                i.get("description")?.as_str()?
            ))
        })
        .collect();
    map.remove("oneOf");
    map.insert("enum".into(), Value::Array(values));
    map.insert("type".into(), Value::String("string".into()));
    if !docs.is_empty() {
        let base = map
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string);
        let text = match base {
            Some(b) => format!("{b}\n{}", docs.join("\n")),
            None => docs.join("\n"),
        };
        map.insert("description".into(), Value::String(text));
    }
}

/// `anyOf: [X, {type: null}]` becomes X, and `type: [T, "null"]` becomes T:
/// an optional field is omitted instead.
fn unwrap_optional(map: &mut Map<String, Value>) {
    let null = Value::String("null".into());
    if let Some(Value::Array(items)) = map.get("anyOf")
        && items.len() == 2
        && items.iter().any(|i| i.get("type") == Some(&null))
    {
        let other = items.iter().find(|i| i.get("type") != Some(&null)).cloned();
        if let Some(Value::Object(other)) = other {
            map.remove("anyOf");
            for (k, val) in other {
                map.entry(k).or_insert(val);
            }
        }
    }
    if let Some(Value::Array(types)) = map.get("type")
        && types.len() == 2
        && types.contains(&null)
        && let Some(other) = types.iter().find(|t| **t != null).cloned()
    {
        map.insert("type".into(), other);
    }
}

/// Load and check a spec for measuring. All errors are collected and
/// returned together.
pub fn load_spec(path: &Path) -> Result<LoadedSpec, SpecError> {
    load_spec_for(path, Purpose::Measure)
}

/// Load and check a spec; the checks that read this machine's runtimes and
/// cores only for [`Purpose::Measure`].
pub fn load_spec_for(path: &Path, purpose: Purpose) -> Result<LoadedSpec, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file = path.display().to_string();
    let invalid = |diagnostics: Vec<Diagnostic>| SpecError::Invalid {
        path: path.to_path_buf(),
        text: text.clone(),
        diagnostics,
    };

    // 1. YAML syntax.
    let value = parse_yaml(&text, &file).map_err(|d| invalid(vec![d]))?;
    let locations = LocationMap::build(&text);
    let mut diags = Diags {
        file,
        locations: &locations,
        out: Vec::new(),
    };

    // 2. Schema: types, required fields, unknown fields, ranges.
    if let Err(internal) = check_schema(&spec_schema(), &value, &mut diags) {
        return Err(invalid(vec![internal]));
    }
    if !diags.out.is_empty() {
        diags.out.sort_by_key(|d| (d.line, d.col));
        return Err(invalid(diags.out));
    }

    // 3. Typed decode (the schema mirrors the types, so this rarely fails).
    let Some(mut spec): Option<Spec> = decode(&value, &mut diags) else {
        return Err(invalid(diags.out));
    };

    // 4. Semantics.
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let scenarios = spec.all_scenarios();
    read_prompts_file(&mut spec.boundary, &dir, &mut diags);
    read_quality_file(&mut spec, &dir, &mut diags);
    // Imported backends' results files: read, digested and checked here,
    // located at their `file` (docs/importers.md).
    for (pointer, message) in assay_measure::imported::read_files(&mut spec.backends, &dir) {
        diags.at_value(&pointer, message);
    }
    // A private endpoint's CA (`server.ca_file`), read here so that a
    // missing or empty file is located before anything runs.
    for (pointer, message) in assay_measure::server::tls::read_ca_files(&mut spec.backends, &dir) {
        diags.at_value(&pointer, message);
    }
    semantic_checks(&spec, &scenarios, &dir, purpose, &mut diags);
    if !diags.out.is_empty() {
        diags.out.sort_by_key(|d| (d.line, d.col));
        return Err(invalid(diags.out));
    }

    let digest = canonical::keyed_hash("assay/spec", &value);
    Ok(LoadedSpec {
        path: path.to_path_buf(),
        dir,
        text,
        spec,
        digest,
        scenarios,
    })
}

/// The YAML document as JSON, or the syntax error, located.
pub(super) fn parse_yaml(text: &str, file: &str) -> Result<Value, Diagnostic> {
    let e = match serde_saphyr::from_str::<Value>(text) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let (line, col) = e
        .location()
        .map(|l| (l.line() as usize, l.column() as usize))
        .unwrap_or((1, 1));
    let message = e.without_snippet().to_string();
    let message = message.lines().next().unwrap_or("invalid YAML");
    // The position is already in the prefix.
    let message = match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    // Drop advice addressed to programmers using the YAML library.
    let message = match message.find(", set ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    };
    Err(Diagnostic {
        file: file.to_string(),
        line: line.max(1),
        col: col.max(1),
        message: format!("invalid YAML: {message}"),
    })
}

/// Validate against `schema` (a spec's or a program's), adding one
/// diagnostic per distinct error; `Err` only when the schema itself does
/// not compile.
pub(super) fn check_schema(
    schema: &Value,
    value: &Value,
    diags: &mut Diags<'_>,
) -> Result<(), Diagnostic> {
    let validator = jsonschema::validator_for(schema).map_err(|e| Diagnostic {
        file: diags.file.clone(),
        line: 1,
        col: 1,
        message: format!("internal error: spec schema does not compile: {e}"),
    })?;
    let mut schema_errors: Vec<(String, bool, String)> = Vec::new();
    for err in validator.iter_errors(value) {
        let pointer = err.instance_path().as_str().to_string();
        match err.kind() {
            jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                for name in unexpected {
                    schema_errors.push((
                        format!("{pointer}/{}", name.replace('~', "~0").replace('/', "~1")),
                        true,
                        "unknown field (not in the spec schema)".to_string(),
                    ));
                }
            }
            jsonschema::error::ValidationErrorKind::Enum { options } => {
                // List every choice (the library abbreviates long lists).
                let choices: Vec<String> = options
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|o| o.as_str().map_or_else(|| o.to_string(), str::to_string))
                    .collect();
                schema_errors.push((
                    pointer,
                    false,
                    format!("{} is not one of: {}", err.instance(), choices.join(", ")),
                ));
            }
            _ => schema_errors.push((pointer, false, err.to_string())),
        }
    }
    schema_errors.sort();
    schema_errors.dedup();
    for (pointer, at_key, message) in schema_errors {
        if at_key {
            diags.at_key(&pointer, message);
        } else {
            diags.at_value(&pointer, message);
        }
    }
    Ok(())
}

/// The typed spec, or `None` with the decode error added to `diags`.
pub(super) fn decode<T: serde::de::DeserializeOwned>(
    value: &Value,
    diags: &mut Diags<'_>,
) -> Option<T> {
    match serde_path_to_error::deserialize(value) {
        Ok(s) => Some(s),
        Err(e) => {
            let pointer: String = e
                .path()
                .iter()
                .map(|seg| format!("/{seg}"))
                .collect::<String>()
                .replace("/[", "/")
                .replace(']', "");
            diags.at_value(&pointer, e.inner().to_string());
            None
        }
    }
}

#[cfg(test)]
mod fuzz {
    //! No input may panic the loader, and every error must point inside the
    //! file it names.
    use proptest::prelude::*;

    const VALID: &str = include_str!("../../../tests/e2e/specs/sim.yaml");

    fn check(text: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spec.yaml");
        std::fs::write(&path, text).unwrap();
        match super::load_spec(&path) {
            Ok(_) => {}
            Err(super::SpecError::Io { .. }) => {}
            Err(super::SpecError::Invalid { diagnostics, .. }) => {
                assert!(!diagnostics.is_empty());
                let lines = text.lines().count().max(1);
                for d in diagnostics {
                    assert!(
                        d.line >= 1 && d.line <= lines + 1,
                        "{d:?} outside {lines} lines"
                    );
                    assert!(d.col >= 1);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            check(&text);
        }

        #[test]
        fn mutated_valid_specs_never_panic(
            cut in 0usize..VALID.len(),
            insert in "[ a-z0-9:\\[\\]{},\\-#&*!|>'\"\\n]{0,12}",
        ) {
            let mut cut = cut;
            while !VALID.is_char_boundary(cut) {
                cut -= 1;
            }
            let text = format!("{}{}{}", &VALID[..cut], insert, &VALID[cut..]);
            check(&text);
        }

        #[test]
        fn truncated_valid_specs_never_panic(len in 0usize..VALID.len()) {
            let mut len = len;
            while !VALID.is_char_boundary(len) {
                len -= 1;
            }
            check(&VALID[..len]);
        }
    }
}
