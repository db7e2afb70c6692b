use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use assay_core::config::ExecutionProvider;
use assay_core::config::{Arrival, LoadProfile};
use assay_measure::{BackendConfig, BackendKind, Dtype, Scenario};
use assay_store::{Digest, canonical};
use serde_json::Value;

use super::diagnostic::Diagnostic;
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

/// The JSON Schema of a spec, generated from the Rust types.
pub fn spec_schema() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(Spec)).unwrap_or(Value::Null);
    simplify(&mut schema);
    schema
}

/// Rewrite two schemars idioms whose validation errors are unreadable
/// ("not valid under any of the schemas listed in 'oneOf'"):
/// - a `oneOf` of documented constants (a unit enum) becomes one `enum`,
///   with the variants' docs folded into the description;
/// - `anyOf: [X, {type: null}]` (an optional field) becomes X: an optional
///   field is omitted, not written as null.
fn simplify(v: &mut Value) {
    let null = Value::String("null".into());
    match v {
        Value::Object(map) => {
            // A variant is `{const: v}` (documented) or `{enum: [v, ...]}`
            // (undocumented variants, grouped).
            let variant_values = |i: &Value| -> Option<Vec<Value>> {
                match (i.get("const"), i.get("enum")) {
                    (Some(c), _) => Some(vec![c.clone()]),
                    (None, Some(Value::Array(e))) => Some(e.clone()),
                    _ => None,
                }
            };
            if let Some(Value::Array(items)) = map.get("oneOf")
                && !items.is_empty()
                && items.iter().all(|i| variant_values(i).is_some())
            {
                let values: Vec<Value> =
                    items.iter().filter_map(variant_values).flatten().collect();
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
            // `type: ["integer", "null"]` (an optional scalar): omit it instead.
            if let Some(Value::Array(types)) = map.get("type")
                && types.len() == 2
                && types.contains(&null)
                && let Some(other) = types.iter().find(|t| **t != null).cloned()
            {
                map.insert("type".into(), other);
            }
            for (_, child) in map.iter_mut() {
                simplify(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(simplify),
        _ => {}
    }
}

/// Pointer `/backends/0/kind` as `backends[0].kind`, for messages.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    if out.is_empty() {
        "(document)".into()
    } else {
        out
    }
}

struct Diags<'a> {
    file: String,
    locations: &'a LocationMap,
    out: Vec<Diagnostic>,
}

impl Diags<'_> {
    fn at_value(&mut self, pointer: &str, message: String) {
        let pos = self.locations.value(pointer);
        self.push(pos.line, pos.col, pointer, message);
    }

    fn at_key(&mut self, pointer: &str, message: String) {
        let pos = self.locations.key(pointer);
        self.push(pos.line, pos.col, pointer, message);
    }

    fn push(&mut self, line: usize, col: usize, pointer: &str, message: String) {
        let message = if pointer.is_empty() {
            message
        } else {
            format!("{}: {message}", dotted(pointer))
        };
        self.out.push(Diagnostic {
            file: self.file.clone(),
            line,
            col,
            message,
        });
    }
}

/// What a command will do with a spec. Only commands that may measure
/// (`check`, `run`) need this machine to have the backends' runtimes (the
/// ONNX Runtime library, a llama-server binary); reading what is stored
/// (`plan`, `verify`, `trace`, `show`, `gc`) works anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Measure,
    Read,
}

/// Load and check a spec for measuring. All errors are collected and
/// returned together.
pub fn load_spec(path: &Path) -> Result<LoadedSpec, SpecError> {
    load_spec_for(path, Purpose::Measure)
}

/// Load and check a spec; the runtime checks only for [`Purpose::Measure`].
pub fn load_spec_for(path: &Path, purpose: Purpose) -> Result<LoadedSpec, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file = path.display().to_string();
    let invalid = |diagnostics: Vec<Diagnostic>, text: &str| SpecError::Invalid {
        path: path.to_path_buf(),
        text: text.to_string(),
        diagnostics,
    };

    // 1. YAML syntax.
    let value: Value = match serde_saphyr::from_str::<Value>(&text) {
        Ok(v) => v,
        Err(e) => {
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
            return Err(invalid(
                vec![Diagnostic {
                    file,
                    line: line.max(1),
                    col: col.max(1),
                    message: format!("invalid YAML: {message}"),
                }],
                &text,
            ));
        }
    };
    let locations = LocationMap::build(&text);
    let mut diags = Diags {
        file,
        locations: &locations,
        out: Vec::new(),
    };

    // 2. Schema: types, required fields, unknown fields, ranges.
    let schema = spec_schema();
    let validator = jsonschema::validator_for(&schema).map_err(|e| {
        invalid(
            vec![Diagnostic {
                file: diags.file.clone(),
                line: 1,
                col: 1,
                message: format!("internal error: spec schema does not compile: {e}"),
            }],
            &text,
        )
    })?;
    let mut schema_errors: Vec<(String, bool, String)> = Vec::new();
    for err in validator.iter_errors(&value) {
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
    if !diags.out.is_empty() {
        diags.out.sort_by_key(|d| (d.line, d.col));
        return Err(invalid(diags.out, &text));
    }

    // 3. Typed decode (the schema mirrors the types, so this rarely fails).
    let spec: Spec = match serde_path_to_error::deserialize(&value) {
        Ok(s) => s,
        Err(e) => {
            let pointer: String = e
                .path()
                .iter()
                .map(|seg| format!("/{seg}"))
                .collect::<String>()
                .replace("/[", "/")
                .replace(']', "");
            diags.at_value(&pointer, e.inner().to_string());
            return Err(invalid(diags.out, &text));
        }
    };

    // 4. Semantics.
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let scenarios = spec.all_scenarios();
    semantic_checks(&spec, &scenarios, &dir, purpose, &mut diags);
    if !diags.out.is_empty() {
        diags.out.sort_by_key(|d| (d.line, d.col));
        return Err(invalid(diags.out, &text));
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

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.')
}

fn check_names<'a>(
    diags: &mut Diags<'_>,
    what: &str,
    list: &str,
    names: impl Iterator<Item = (usize, &'a str)>,
) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, name) in names {
        let pointer = format!("/{list}/{i}/name");
        if !valid_name(name) {
            diags.at_value(
                &pointer,
                format!("{what} name {name:?} must be 1-64 letters, digits, '-', '_' or '.', not starting with '.'"),
            );
        }
        if let Some(first) = seen.insert(name, i) {
            diags.at_value(
                &pointer,
                format!("duplicate {what} name {name:?} (first used by {list}[{first}])"),
            );
        }
    }
}

fn semantic_checks(
    spec: &Spec,
    scenarios: &[Scenario],
    dir: &std::path::Path,
    purpose: Purpose,
    diags: &mut Diags<'_>,
) {
    if !valid_name(&spec.id) {
        diags.at_value(
            "/id",
            format!(
                "id {:?} must be 1-64 letters, digits, '-', '_' or '.', not starting with '.'",
                spec.id
            ),
        );
    }
    for (list, empty) in [
        ("models", spec.models.is_empty()),
        ("backends", spec.backends.is_empty()),
    ] {
        if empty {
            diags.at_key(
                &format!("/{list}"),
                format!("at least one entry is required in {list}"),
            );
        }
    }
    if scenarios.is_empty() {
        diags.at_key(
            "/scenarios",
            "at least one scenario (or sweep) is required".into(),
        );
    }
    check_names(
        diags,
        "model",
        "models",
        spec.models
            .iter()
            .enumerate()
            .map(|(i, m)| (i, m.name.as_str())),
    );
    check_names(
        diags,
        "backend",
        "backends",
        spec.backends
            .iter()
            .enumerate()
            .map(|(i, b)| (i, b.name.as_str())),
    );
    check_names(
        diags,
        "scenario",
        "scenarios",
        spec.scenarios
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.name.as_str())),
    );
    // Sweep-generated names must not collide with explicit ones.
    // Explicit scenarios come first in `scenarios`, a rate sweep expanded
    // to one scenario per rate; `origin[j]` is the spec entry of the j-th.
    let origin: Vec<usize> = spec
        .scenarios
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            let n = s.load.as_ref().map_or(1, |l| l.rates.len().max(1));
            std::iter::repeat_n(i, n)
        })
        .collect();
    let explicit = origin.len();
    let mut names: BTreeMap<&str, ()> = BTreeMap::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (j, s) in scenarios.iter().enumerate().take(explicit) {
        names.insert(s.name.as_str(), ());
        let i = origin[j];
        if let Some(&first) = seen.get(s.name.as_str()) {
            // Two explicit names are check_names' to report; a clash with
            // a name a rate sweep generated is reported at the sweep.
            let generated = |k: usize| spec.scenarios[k].name != s.name;
            let sweep = [i, first].into_iter().find(|k| generated(*k));
            if let Some(k) = sweep {
                diags.at_value(
                    &format!("/scenarios/{k}/load/rates"),
                    format!(
                        "the rate sweep generates scenario {:?}, which already exists",
                        s.name
                    ),
                );
            }
        } else {
            seen.insert(s.name.as_str(), i);
        }
    }
    for (i, s) in scenarios.iter().enumerate().skip(explicit) {
        let at = format!("/sweeps/{}", sweep_of(spec, i - explicit));
        if !valid_name(&s.name) {
            diags.at_value(&at, format!("sweep generates scenario name {:?}: names must be letters, digits, '-', '_' or '.'", s.name));
        }
        if s.prompt_tokens == 0 || s.batch == 0 || s.gen_tokens == 0 {
            diags.at_value(
                &at,
                format!(
                    "sweep generates scenario {:?} with a zero dimension; every value must be >= 1",
                    s.name
                ),
            );
        }
        if names.insert(&s.name, ()).is_some() {
            let sweep_index = sweep_of(spec, i - explicit);
            diags.at_value(
                &format!("/sweeps/{sweep_index}"),
                format!(
                    "sweep generates scenario {:?}, which already exists",
                    s.name
                ),
            );
        }
    }

    let simulated_only = spec
        .backends
        .iter()
        .all(|b| b.kind == BackendKind::Simulated);
    let any_simulated = spec
        .backends
        .iter()
        .any(|b| b.kind == BackendKind::Simulated);
    let real_backend = spec
        .backends
        .iter()
        .any(|b| b.kind != BackendKind::Simulated);
    // Read once: only real backends allocate what it bounds.
    let memory = if real_backend {
        machine_memory_bytes()
    } else {
        0
    };
    for (i, m) in spec.models.iter().enumerate() {
        let a = match (&m.synthetic, &m.path) {
            (Some(a), None) => a,
            (None, Some(path)) => {
                if any_simulated {
                    diags.at_value(
                        &format!("/models/{i}/path"),
                        format!(
                            "model {:?} is a local model, but the simulated backend needs a synthetic architecture",
                            m.name
                        ),
                    );
                }
                let full = dir.join(path);
                if !simulated_only && !full.exists() {
                    diags.at_value(
                        &format!("/models/{i}/path"),
                        format!("model path {} does not exist", full.display()),
                    );
                }
                continue;
            }
            (Some(_), Some(_)) => {
                diags.at_key(
                    &format!("/models/{i}/path"),
                    format!(
                        "model {:?} gives both `synthetic` and `path`; choose one",
                        m.name
                    ),
                );
                continue;
            }
            (None, None) => {
                if m.served.is_none() {
                    diags.at_value(
                        &format!("/models/{i}"),
                        format!(
                            "model {:?} needs `synthetic` (an architecture), `path` (a local model) or `served` (a model on a server)",
                            m.name
                        ),
                    );
                } else if !m.gguf.is_empty() {
                    diags.at_key(
                        &format!("/models/{i}/gguf"),
                        format!(
                            "model {:?} exists only on a server; there is nothing to export",
                            m.name
                        ),
                    );
                }
                continue;
            }
        };
        let p = format!("/models/{i}/synthetic");
        if a.arch == assay_model::decl::Arch::Llama && a.head_dim() % 2 != 0 {
            diags.at_value(
                &format!("{p}/hidden"),
                format!(
                    "llama head size {} (hidden / heads) must be even for rotary positions",
                    a.head_dim()
                ),
            );
        }
        if a.hidden % a.heads.max(1) != 0 {
            diags.at_value(
                &format!("{p}/hidden"),
                format!(
                    "hidden size {} is not divisible by heads {}",
                    a.hidden, a.heads
                ),
            );
        }
        if a.intermediate == Some(0) {
            diags.at_value(
                &format!("{p}/intermediate"),
                "intermediate size must be >= 1".into(),
            );
        }
        if let Some(kv) = a.kv_heads
            && (kv == 0 || a.heads % kv != 0)
        {
            diags.at_value(
                &format!("{p}/kv_heads"),
                format!("kv_heads {kv} must divide heads {}", a.heads),
            );
        }
        // Sizes: beyond these the arithmetic of a declared model stops
        // being meaningful (and would overflow), long before any machine
        // could hold its weights.
        let limits = [
            ("layers", Some(a.layers), MAX_LAYERS),
            ("hidden", Some(a.hidden), MAX_HIDDEN),
            ("intermediate", a.intermediate, MAX_INTERMEDIATE),
            ("vocab", Some(a.vocab), MAX_VOCAB),
            ("max_positions", Some(a.max_positions), MAX_POSITIONS),
        ];
        let mut sizes_ok = true;
        for (field, value, limit) in limits {
            if let Some(v) = value
                && v > limit
            {
                sizes_ok = false;
                diags.at_value(
                    &format!("{p}/{field}"),
                    format!("{field} {v} is larger than assay supports ({limit})"),
                );
            }
        }
        // Real backends materialise the weights: refuse a model whose f32
        // checkpoint cannot fit in this machine's memory before a long
        // prepare ends in an out-of-memory kill.
        if sizes_ok && real_backend {
            let bytes = a.parameter_count().saturating_mul(4);
            if memory > 0 && bytes > memory {
                diags.at_value(
                    &p,
                    format!(
                        "model {:?} has {} parameters: {:.1} GiB of f32 weights, more than this machine's {:.1} GiB of memory",
                        m.name,
                        a.parameter_count(),
                        bytes as f64 / f64::from(1u32 << 30),
                        memory as f64 / f64::from(1u32 << 30)
                    ),
                );
            }
        }
        for (j, s) in scenarios.iter().enumerate() {
            let needed = u64::from(s.prompt_tokens) + u64::from(s.gen_tokens);
            // The KV cache a real backend preallocates for the cell (sizes
            // checked first: past the limits the product overflows).
            let kv_bytes = || {
                u64::from(s.batch)
                    .saturating_mul(needed)
                    .saturating_mul(a.kv_values_per_token())
                    .saturating_mul(4)
            };
            if sizes_ok && real_backend && memory > 0 && kv_bytes() > memory {
                diags.at_value(
                    &if j < explicit {
                        format!("/scenarios/{}", origin[j])
                    } else {
                        format!("/sweeps/{}", sweep_of(spec, j - explicit))
                    },
                    format!(
                        "scenario {:?} needs a {:.1} GiB KV cache for model {:?} (batch x positions x layers x KV width, f32), more than this machine's {:.1} GiB of memory",
                        s.name,
                        kv_bytes() as f64 / f64::from(1u32 << 30),
                        m.name,
                        memory as f64 / f64::from(1u32 << 30)
                    ),
                );
            }
            if needed > u64::from(a.max_positions) {
                let at = if j < explicit {
                    format!("/scenarios/{}", origin[j])
                } else {
                    format!("/sweeps/{}", sweep_of(spec, j - explicit))
                };
                diags.at_value(
                    &at,
                    format!(
                        "scenario {:?} needs {} positions but model {:?} has max_positions {}",
                        s.name, needed, m.name, a.max_positions
                    ),
                );
            }
        }
    }

    for (i, b) in spec.backends.iter().enumerate() {
        if b.kind == BackendKind::Candle && b.device != "cpu" {
            diags.at_value(
                &format!("/backends/{i}/device"),
                format!(
                    "candle runs on the CPU only in this build; device {:?} is not available",
                    b.device
                ),
            );
        }
        for (section, given, kind) in [
            ("simulated", b.simulated.is_some(), BackendKind::Simulated),
            ("ort", b.ort.is_some(), BackendKind::Ort),
            ("tch", b.tch.is_some(), BackendKind::Tch),
            ("server", b.server.is_some(), BackendKind::OpenAi),
        ] {
            let matches = if section == "server" {
                b.kind.is_server()
            } else {
                b.kind == kind
            };
            if given && !matches {
                diags.at_key(
                    &format!("/backends/{i}/{section}"),
                    format!(
                        "`{section}` options given for a backend of kind {}",
                        b.kind.as_str()
                    ),
                );
            }
        }
        if !b.kind.is_server()
            && matches!(
                b.dtype,
                Dtype::Q4_0 | Dtype::Q4KM | Dtype::Q5KM | Dtype::Q6K
            )
        {
            diags.at_value(
                &format!("/backends/{i}/dtype"),
                format!(
                    "dtype {} is a server quantisation (Ollama, llama.cpp); {} runs f32, f16, bf16 or q8_0",
                    b.dtype.as_str(),
                    b.kind.as_str()
                ),
            );
        }
        check_native_backend(diags, spec, i, b, purpose);
        check_server_backend(diags, spec, i, b, purpose);
        if let Some(o) = &b.simulated {
            for (field, v) in [
                ("peak_gflops", o.peak_gflops),
                ("memory_gbps", o.memory_gbps),
            ] {
                if v.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                    diags.at_value(
                        &format!("/backends/{i}/simulated/{field}"),
                        format!("{field} must be > 0"),
                    );
                }
            }
            for (field, v, min) in [
                ("overhead_us", o.overhead_us, 0.0),
                ("cold_start_factor", o.cold_start_factor, 1.0),
                ("outlier_factor", o.outlier_factor, 1.0),
            ] {
                if v.is_nan() || v < min {
                    diags.at_value(
                        &format!("/backends/{i}/simulated/{field}"),
                        format!("{field} must be >= {min}"),
                    );
                }
            }
            if !(0.0..=1.0).contains(&o.outlier_rate) {
                diags.at_value(
                    &format!("/backends/{i}/simulated/outlier_rate"),
                    "outlier_rate must be within [0, 1]".into(),
                );
            }
            if o.noise_cv.is_nan() || o.noise_cv < 0.0 {
                diags.at_value(
                    &format!("/backends/{i}/simulated/noise_cv"),
                    "noise_cv must be >= 0".into(),
                );
            }
        }
    }

    for (j, s) in spec.scenarios.iter().enumerate() {
        if let Some(load) = &s.load {
            check_load(diags, &format!("/scenarios/{j}"), s, load);
        }
    }
    check_cells(diags, spec, scenarios);

    if let Some(v) = &spec.validate {
        if v.output_tolerance.is_nan() || v.output_tolerance < 0.0 {
            diags.at_value(
                "/validate/output_tolerance",
                "output_tolerance must be >= 0".into(),
            );
        }
        if v.max_cv.is_nan() || v.max_cv <= 0.0 {
            diags.at_value("/validate/max_cv", "max_cv must be > 0".into());
        }
        if v.outlier_k.is_nan() || v.outlier_k <= 0.0 {
            diags.at_value("/validate/outlier_k", "outlier_k must be > 0".into());
        }
    }
    if let Some(cost) = &spec.cost {
        if cost.usd_per_hour.is_empty() {
            diags.at_value(
                "/cost/usd_per_hour",
                "at least one pricing tier is required".into(),
            );
        }
        for (tier, price) in &cost.usd_per_hour {
            if price.is_nan() || *price < 0.0 {
                diags.at_value(
                    &format!("/cost/usd_per_hour/{tier}"),
                    "price must be >= 0".into(),
                );
            }
        }
        if cost.tokens_per_month.is_nan() || cost.tokens_per_month <= 0.0 {
            diags.at_value(
                "/cost/tokens_per_month",
                "tokens_per_month must be > 0".into(),
            );
        }
        check_shares(
            diags,
            "/cost/request_mix",
            cost.request_mix.iter().map(|c| c.share),
        );
        check_shares(diags, "/cost/routing", cost.routing.iter().map(|r| r.share));
        check_names(
            diags,
            "request class",
            "cost/request_mix",
            cost.request_mix
                .iter()
                .enumerate()
                .map(|(i, c)| (i, c.name.as_str())),
        );
        for (i, c) in cost.request_mix.iter().enumerate() {
            if c.prompt_tokens == 0 && c.gen_tokens == 0 {
                diags.at_value(
                    &format!("/cost/request_mix/{i}"),
                    "a request class needs tokens".into(),
                );
            }
        }
        if !cost.routing.is_empty() && cost.request_mix.is_empty() {
            diags.at_key(
                "/cost/routing",
                "routing prices requests: it needs a request_mix".into(),
            );
        }
        for (i, r) in cost.routing.iter().enumerate() {
            let known = [
                (
                    "backend",
                    spec.backends.iter().any(|b| b.name == r.backend),
                    &r.backend,
                ),
                (
                    "model",
                    spec.models.iter().any(|m| m.name == r.model),
                    &r.model,
                ),
                (
                    "scenario",
                    scenarios.iter().any(|s| s.name == r.scenario),
                    &r.scenario,
                ),
            ];
            for (field, ok, name) in known {
                if !ok {
                    diags.at_value(
                        &format!("/cost/routing/{i}/{field}"),
                        format!("no {field} named {name:?} in this spec"),
                    );
                }
            }
        }
        if cost.burst_factor.is_nan() || cost.burst_factor < 1.0 {
            diags.at_value(
                "/cost/burst_factor",
                "burst_factor must be >= 1 (peak over mean)".into(),
            );
        }
    }

    if let Some(e) = &spec.energy
        && u64::from(e.idle_ms) < 2 * u64::from(e.poll_ms)
    {
        diags.at_value(
            "/energy/idle_ms",
            format!(
                "idle_ms ({}) must be at least twice poll_ms ({}): energy is reported above idle, which needs baseline samples",
                e.idle_ms, e.poll_ms
            ),
        );
    }
    if let Some(price) = spec.cost.as_ref().and_then(|c| c.energy.as_ref()) {
        let bad = |v: f64| !v.is_finite() || v < 0.0;
        if bad(price.usd_per_kwh) {
            diags.at_value(
                "/cost/energy/usd_per_kwh",
                "usd_per_kwh must be a finite price >= 0".into(),
            );
        }
        if price.carbon_g_per_kwh.is_some_and(bad) {
            diags.at_value(
                "/cost/energy/carbon_g_per_kwh",
                "carbon_g_per_kwh must be finite and >= 0".into(),
            );
        }
    }
    for (class, names) in &spec.workloads {
        if names.is_empty() {
            diags.at_value(
                &format!("/workloads/{}", class.name()),
                "list at least one scenario for this workload class".into(),
            );
        }
        for (i, name) in names.iter().enumerate() {
            if !scenarios.iter().any(|s| &s.name == name) {
                diags.at_value(
                    &format!("/workloads/{}/{i}", class.name()),
                    format!("no scenario named {name:?} in this spec"),
                );
            }
        }
    }
    if let Some(fit) = &spec.fit
        && let assay_analysis::fit::Predictors::Many(list) = &fit.x
        && list.is_empty()
    {
        diags.at_value(
            "/fit/x",
            "list at least one predictor (params, layers, hidden)".into(),
        );
    }

    if let Err(message) = output_dir_within(Path::new(&spec.outputs.dir)) {
        diags.at_value("/outputs/dir", message);
    }
    if spec.outputs.formats.is_empty() {
        diags.at_value(
            "/outputs/formats",
            "at least one report format is required".into(),
        );
    }
}

/// Largest synthetic model dimensions a spec may declare.
const MAX_LAYERS: u32 = 4096;
const MAX_HIDDEN: u32 = 65_536;
const MAX_INTERMEDIATE: u32 = 1 << 20;
const MAX_VOCAB: u32 = 1 << 22;
const MAX_POSITIONS: u32 = 1 << 20;

/// Total memory of this machine, 0 when unknown (then no memory check).
fn machine_memory_bytes() -> u64 {
    assay_measure::environment::total_memory_bytes()
}

/// Shares of a mix or policy: each within [0, 1], together 1.
fn check_shares(diags: &mut Diags<'_>, pointer: &str, shares: impl Iterator<Item = f64>) {
    let shares: Vec<f64> = shares.collect();
    if shares.is_empty() {
        return;
    }
    for (i, s) in shares.iter().enumerate() {
        if !(0.0..=1.0).contains(s) {
            diags.at_value(
                &format!("{pointer}/{i}/share"),
                "share must be within [0, 1]".into(),
            );
        }
    }
    let total: f64 = shares.iter().sum();
    if (total - 1.0).abs() > 1e-9 {
        diags.at_key(pointer, format!("shares sum to {total}, not 1"));
    }
}

/// Which sweep produced the `k`-th sweep-generated scenario.
fn sweep_of(spec: &Spec, mut k: usize) -> usize {
    for (i, s) in spec.sweeps.iter().enumerate() {
        let n = s.prompt_tokens.len() * s.batch.len() * s.gen_tokens.len();
        if k < n {
            return i;
        }
        k -= n;
    }
    0
}

/// An output directory must be relative and stay inside the spec's folder.
fn output_dir_within(dir: &Path) -> Result<(), String> {
    if dir.as_os_str().is_empty() {
        return Err("output dir must not be empty".into());
    }
    let mut depth: i32 = 0;
    for c in dir.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!(
                        "output dir {:?} escapes the spec's folder",
                        dir.display().to_string()
                    ));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "output dir {:?} must be relative to the spec's folder",
                    dir.display().to_string()
                ));
            }
        }
    }
    if depth == 0 {
        return Err("output dir must be a subfolder of the spec's folder".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_dirs() {
        assert!(output_dir_within(Path::new("reports/x")).is_ok());
        assert!(output_dir_within(Path::new("a/../b")).is_ok());
        assert!(output_dir_within(Path::new("../x")).is_err());
        assert!(output_dir_within(Path::new("a/../../x")).is_err());
        assert!(output_dir_within(Path::new("/tmp/x")).is_err());
        assert!(output_dir_within(Path::new(".")).is_err());
    }

    #[test]
    fn dotted_paths() {
        assert_eq!(dotted("/backends/0/kind"), "backends[0].kind");
        assert_eq!(dotted(""), "(document)");
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

/// ONNX Runtime and libtorch: built into this assay, f32 weights from a
/// safetensors checkpoint, the devices they can be asked for, and (ONNX
/// Runtime, loaded at run time) a library to load.
fn check_native_backend(
    diags: &mut Diags<'_>,
    spec: &Spec,
    i: usize,
    b: &BackendConfig,
    purpose: Purpose,
) {
    // Only the ort library check reads the machine.
    let _ = purpose;
    let Some(feature) = b.kind.feature() else {
        return;
    };
    if !assay_measure::built(b.kind) {
        diags.at_value(
            &format!("/backends/{i}/kind"),
            assay_measure::worker::not_built(feature),
        );
        return;
    }
    if b.dtype != Dtype::F32 {
        diags.at_value(
            &format!("/backends/{i}/dtype"),
            format!(
                "{} runs the f32 checkpoint only; dtype {} is not supported",
                b.kind.as_str(),
                b.dtype.as_str()
            ),
        );
    }
    // ONNX Runtime's CUDA provider runs on device 0 (choose the GPU with
    // CUDA_VISIBLE_DEVICES), so `cuda:0` is the one GPU label that can match
    // what ran.
    let cuda = b.device == "cuda:0";
    let device_ok = b.device == "cpu" || (b.kind == BackendKind::Ort && cuda);
    if !device_ok {
        diags.at_value(
            &format!("/backends/{i}/device"),
            format!(
                "{} can be asked for {}; device {:?} is not available",
                b.kind.as_str(),
                if b.kind == BackendKind::Ort {
                    "`cpu` or `cuda:0` (through the CUDA execution provider; pick the GPU with CUDA_VISIBLE_DEVICES)"
                } else {
                    "`cpu` only in this build"
                },
                b.device
            ),
        );
    }
    if b.kind == BackendKind::Ort {
        let o = b.ort.clone().unwrap_or_default();
        let mut seen = std::collections::BTreeSet::new();
        for (j, p) in o.providers.iter().enumerate() {
            if !seen.insert(*p) {
                diags.at_value(
                    &format!("/backends/{i}/ort/providers/{j}"),
                    format!("execution provider {} is listed twice", p.as_str()),
                );
            }
            // ONNX Runtime always falls back to the CPU last, so a CPU
            // listed before another provider would not take priority.
            if *p == ExecutionProvider::Cpu && j + 1 != o.providers.len() {
                diags.at_value(
                    &format!("/backends/{i}/ort/providers/{j}"),
                    "cpu can only be the last execution provider (ONNX Runtime's fallback)".into(),
                );
            }
        }
        if o.providers.is_empty() {
            diags.at_value(
                &format!("/backends/{i}/ort/providers"),
                "at least one execution provider is required".into(),
            );
        }
        let first_cuda = o.providers.first() == Some(&ExecutionProvider::Cuda);
        if device_ok && first_cuda != cuda {
            diags.at_value(
                &format!("/backends/{i}/device"),
                format!(
                    "device {:?} does not match the execution providers {:?}: `cuda:0` goes with `providers: [cuda, cpu]`, `cpu` with `providers: [cpu]`",
                    b.device,
                    o.providers.iter().map(|p| p.as_str()).collect::<Vec<_>>()
                ),
            );
        }
    }
    for (j, m) in spec.models.iter().enumerate() {
        if m.path.as_deref().is_some_and(|p| p.ends_with(".gguf")) {
            diags.at_value(
                &format!("/models/{j}/path"),
                format!(
                    "backend {:?} ({}) runs safetensors checkpoints; model {:?} is a GGUF file",
                    b.name,
                    b.kind.as_str(),
                    m.name
                ),
            );
        }
    }
    #[cfg(feature = "ort")]
    if b.kind == BackendKind::Ort
        && purpose == Purpose::Measure
        && let Err(line) = assay_measure::ort::library_path()
    {
        diags.at_value(&format!("/backends/{i}/kind"), line);
    }
}

/// Every backend, model and scenario takes part in at least one cell (see
/// `cell_runs`: which backend runs which model and scenario).
fn check_cells(diags: &mut Diags<'_>, spec: &Spec, scenarios: &[Scenario]) {
    use assay_measure::cell_runs;
    for (i, b) in spec.backends.iter().enumerate() {
        let any = spec
            .models
            .iter()
            .any(|m| scenarios.iter().any(|s| cell_runs(b, m, s)));
        if !any && !spec.models.is_empty() && !scenarios.is_empty() {
            diags.at_value(
                &format!("/backends/{i}"),
                format!(
                    "backend {:?} ({}) runs none of the models and scenarios: {}",
                    b.name,
                    b.kind.as_str(),
                    if b.kind.is_server() {
                        "servers run scenarios of batch 1, and a llama-server assay launches needs a `synthetic` or `path` model"
                    } else {
                        "in-process backends run `synthetic` or `path` models on scenarios without `load`"
                    }
                ),
            );
        }
    }
    for (i, m) in spec.models.iter().enumerate() {
        if !spec
            .backends
            .iter()
            .any(|b| scenarios.iter().any(|s| cell_runs(b, m, s)))
            && !spec.backends.is_empty()
        {
            diags.at_value(
                &format!("/models/{i}"),
                format!(
                    "no backend runs model {:?}{}",
                    m.name,
                    if m.server_only() {
                        ": a model that exists only on a server needs a server backend with `server.url`"
                    } else {
                        ""
                    }
                ),
            );
        }
    }
    for (j, s) in spec.scenarios.iter().enumerate() {
        let runs = scenarios
            .iter()
            .filter(|e| e.name == s.name || e.name.starts_with(&format!("{}-r", s.name)))
            .any(|e| {
                spec.backends
                    .iter()
                    .any(|b| spec.models.iter().any(|m| cell_runs(b, m, e)))
            });
        if !runs && !spec.backends.is_empty() && !spec.models.is_empty() {
            diags.at_value(
                &format!("/scenarios/{j}"),
                format!(
                    "no backend runs scenario {:?}: {}",
                    s.name,
                    if s.load.is_some() {
                        "a scenario with `load` runs on server backends (openai, ollama) only"
                    } else {
                        "server backends run scenarios of batch 1 only"
                    }
                ),
            );
        }
    }
}

fn check_load(diags: &mut Diags<'_>, at: &str, s: &Scenario, load: &LoadProfile) {
    if s.batch != 1 {
        diags.at_value(
            &format!("{at}/batch"),
            format!(
                "scenario {:?} has a load profile, so its batch must be 1 (the server batches concurrent requests; use `load.concurrency`)",
                s.name
            ),
        );
    }
    let open = load.arrival != Arrival::Closed;
    if open && load.rates.is_empty() {
        diags.at_key(
            &format!("{at}/load"),
            format!(
                "{} arrivals need `rates` (requests per second)",
                load.arrival.as_str()
            ),
        );
    }
    if !open && !load.rates.is_empty() {
        diags.at_key(
            &format!("{at}/load/rates"),
            "closed-loop load takes `concurrency`, not `rates`".into(),
        );
    }
    for (k, r) in load.rates.iter().enumerate() {
        if !(MIN_RATE..=MAX_RATE).contains(r) {
            diags.at_value(
                &format!("{at}/load/rates/{k}"),
                format!("rate {r} must be within [{MIN_RATE}, {MAX_RATE}] requests per second"),
            );
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (k, r) in load.rates.iter().enumerate() {
        if !seen.insert(r.to_bits()) {
            diags.at_value(
                &format!("{at}/load/rates/{k}"),
                format!("rate {r} is listed twice"),
            );
        }
    }
    match (load.requests, load.duration_s) {
        (Some(_), Some(_)) => diags.at_key(
            &format!("{at}/load/duration_s"),
            "give `requests` or `duration_s`, not both".into(),
        ),
        (None, None) => diags.at_key(
            &format!("{at}/load"),
            "the steady window needs a bound: `requests` or `duration_s`".into(),
        ),
        (Some(0), None) => diags.at_value(
            &format!("{at}/load/requests"),
            "requests must be >= 1".into(),
        ),
        (None, Some(d)) if !(d > 0.0 && d <= MAX_SECONDS) => diags.at_value(
            &format!("{at}/load/duration_s"),
            format!("duration_s must be > 0 and <= {MAX_SECONDS}"),
        ),
        _ => {}
    }
    for (field, v) in [
        ("concurrency", load.concurrency),
        ("max_in_flight", load.max_in_flight),
    ] {
        if v == 0 {
            diags.at_value(
                &format!("{at}/load/{field}"),
                format!("{field} must be >= 1"),
            );
        }
    }
    if let Some(slo) = &load.slo {
        for (field, v) in [("ttft_ms", slo.ttft_ms), ("tpot_ms", slo.tpot_ms)] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                diags.at_value(
                    &format!("{at}/load/slo/{field}"),
                    format!("{field} must be > 0"),
                );
            }
        }
        if slo.ttft_ms.is_none() && slo.tpot_ms.is_none() {
            diags.at_key(
                &format!("{at}/load/slo"),
                "an SLO needs `ttft_ms`, `tpot_ms` or both".into(),
            );
        }
        if !(slo.attainment > 0.0 && slo.attainment <= 1.0) {
            diags.at_value(
                &format!("{at}/load/slo/attainment"),
                "attainment must be within (0, 1]".into(),
            );
        }
    }
}

/// Bounds past which a server spec's numbers stop being meaningful (and
/// would overflow a clock): at most a day of waiting, between one request
/// every 1000 s and a million a second, at most 4096 server slots.
const MAX_SECONDS: f64 = 86_400.0;
const MIN_RATE: f64 = 1e-3;
const MAX_RATE: f64 = 1e6;
const MAX_SLOTS: u32 = 4096;

fn check_server_backend(
    diags: &mut Diags<'_>,
    spec: &Spec,
    i: usize,
    b: &BackendConfig,
    purpose: Purpose,
) {
    use assay_measure::server::{LengthKnob, PromptFormat, ServerApi};
    if !b.kind.is_server() {
        return;
    }
    let at = format!("/backends/{i}/server");
    let o = b.server.clone().unwrap_or_default();
    match &o.url {
        Some(url) => {
            let rest = url.split_once("://").map_or("", |(_, r)| r);
            if rest.contains('@') || rest.contains('?') || rest.contains('#') {
                // The URL is part of the measure key and of messages:
                // credentials belong in api_key_env, not here.
                diags.at_value(
                    &format!("{at}/url"),
                    "the url must be http://host:port[/path], without user info, query or fragment (credentials go in api_key_env)".into(),
                );
            }
            if url.starts_with("https://") {
                diags.at_value(
                    &format!("{at}/url"),
                    "https is not supported by this build (plain HTTP only; put a TLS-terminating proxy on the measuring machine, or measure on the server's network)".into(),
                );
            } else if !url.starts_with("http://") || url.len() <= "http://".len() {
                diags.at_value(
                    &format!("{at}/url"),
                    format!("url {url:?} must be http://host:port"),
                );
            }
            if o.launch.is_some() {
                diags.at_key(
                    &format!("{at}/launch"),
                    "`launch` is for the llama-server assay starts; this backend has a `url`"
                        .into(),
                );
            }
        }
        None if b.kind == BackendKind::Ollama => {
            diags.at_key(
                &format!("/backends/{i}"),
                "an ollama backend needs `server.url` (e.g. http://127.0.0.1:11434)".into(),
            );
        }
        None => {
            // assay launches llama-server on the model's GGUF export.
            if purpose == Purpose::Measure && assay_measure::server::launch::binary().is_none() {
                diags.at_value(
                    &format!("/backends/{i}/kind"),
                    format!(
                        "backend {:?} has no server.url, so assay launches llama-server, which is not found: set {} to its path or put it on the PATH (scripts/install-llama-cpp.sh builds it)",
                        b.name,
                        assay_measure::server::launch::SERVER_ENV
                    ),
                );
            }
            let all_local_gguf = spec
                .models
                .iter()
                .all(|m| m.path.as_deref().is_some_and(|p| p.ends_with(".gguf")));
            if !all_local_gguf && !matches!(b.dtype, Dtype::Q8_0 | Dtype::F16) {
                diags.at_value(
                    &format!("/backends/{i}/dtype"),
                    format!(
                        "the llama-server assay launches serves the model's GGUF export, q8_0 or f16; dtype {} has no export",
                        b.dtype.as_str()
                    ),
                );
            }
            if b.device != "cpu" {
                diags.at_value(
                    &format!("/backends/{i}/device"),
                    format!(
                        "the llama-server assay launches is a CPU build; device {:?} is not available (point `server.url` at a GPU server instead)",
                        b.device
                    ),
                );
            }
            if let Some(l) = &o.launch {
                if !(1..=MAX_SLOTS).contains(&l.parallel) {
                    diags.at_value(
                        &format!("{at}/launch/parallel"),
                        format!("parallel must be within [1, {MAX_SLOTS}]"),
                    );
                }
                if !(l.ready_timeout_s > 0.0 && l.ready_timeout_s <= MAX_SECONDS) {
                    diags.at_value(
                        &format!("{at}/launch/ready_timeout_s"),
                        format!("ready_timeout_s must be > 0 and <= {MAX_SECONDS}"),
                    );
                }
            }
        }
    }
    for (field, v) in [
        ("request_timeout_s", o.request_timeout_s),
        ("stall_timeout_s", o.stall_timeout_s),
    ] {
        if !(v > 0.0 && v <= MAX_SECONDS) {
            diags.at_value(
                &format!("{at}/{field}"),
                format!("{field} must be > 0 and <= {MAX_SECONDS}"),
            );
        }
    }
    if !(0.0..=1.0).contains(&o.max_error_rate) {
        diags.at_value(
            &format!("{at}/max_error_rate"),
            "max_error_rate must be within [0, 1]".into(),
        );
    }
    if let Some(var) = &o.api_key_env
        && (var.is_empty()
            || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || var.starts_with(|c: char| c.is_ascii_digit()))
    {
        diags.at_value(
            &format!("{at}/api_key_env"),
            // The value is not repeated: it may be a key pasted by mistake.
            "this is not an environment variable name (letters, digits, '_'); give the variable's name, never the key".into(),
        );
    }
    if o.prompt == Some(PromptFormat::Tokens) {
        if b.kind == BackendKind::Ollama || o.api == ServerApi::Chat {
            diags.at_value(
                &format!("{at}/prompt"),
                "token-id prompts go to /v1/completions only; chat and Ollama take text".into(),
            );
        }
        if let Some(m) = spec.models.iter().find(|m| {
            m.server_only()
                && spec
                    .all_scenarios()
                    .iter()
                    .any(|s| assay_measure::cell_runs(b, m, s))
        }) {
            diags.at_value(
                &format!("{at}/prompt"),
                format!(
                    "token-id prompts need the model's vocabulary; model {:?} exists only on the server (use `prompt: text`)",
                    m.name
                ),
            );
        }
    }
    let knobs = o.length_knobs.clone().unwrap_or_default();
    if b.kind == BackendKind::Ollama && !knobs.is_empty() {
        diags.at_value(
            &format!("{at}/length_knobs"),
            "Ollama has no ignore-EOS, min-tokens or logit-bias option; its short outputs are detected from eval_count".into(),
        );
    }
    if knobs.contains(&LengthKnob::EosLogitBias) && o.eos_token_id.is_none() {
        diags.at_key(
            &format!("{at}/length_knobs"),
            "eos_logit_bias needs `eos_token_id`".into(),
        );
    }
}
