//! Results of peer benchmarking tools read as measure nodes (the `imported`
//! backend kind, `kinds/imported.rs`; docs/importers.md). One parser per
//! tool turns its file into [`Import`]: the tool, its version, the machine
//! and configuration it recorded, and records at the finest grain the file
//! holds (per-request timings, or per-repetition totals). Every error names
//! where in the file it is (line or record) and the field at fault.

pub mod aiperf;
pub mod cell;
pub mod guidellm;
pub mod llama_bench;
pub mod optimum;
pub mod vllm;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use assay_core::config::imported::{ImportFormat, ImportedOptions};

/// Where in a results file something is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loc {
    /// The file as a whole (it is empty, not JSON, or of another tool).
    File,
    /// 1-based line of a JSON-lines file.
    Line(usize),
    /// 1-based record of a JSON file (an element of its array, a request of
    /// its lists).
    Record(usize),
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::File => Ok(()),
            Loc::Line(n) => write!(f, "line {n}: "),
            Loc::Record(n) => write!(f, "record {n}: "),
        }
    }
}

/// A results file that is not what its `format` says: displayed as
/// location, field and message, to follow the file's name and a colon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub loc: Loc,
    /// The field at fault (a JSON path inside the record), where one is.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.loc)?;
        match &self.field {
            Some(field) => write!(f, "field `{field}`: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for ImportError {}

impl ImportError {
    pub fn new(loc: Loc, field: Option<&str>, message: impl Into<String>) -> Self {
        ImportError {
            loc,
            field: field.map(str::to_string),
            message: message.into(),
        }
    }
}

/// What a results file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    pub format: ImportFormat,
    /// The tool's name as it calls itself.
    pub tool: &'static str,
    /// The tool's version (or build) as the file records it.
    pub tool_version: String,
    /// The machine the file records, as recorded (the tool's own fields).
    pub machine: Value,
    pub records: Vec<Record>,
}

/// One measured configuration of the file: a model, a workload, and its
/// timings.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Where the record is, for errors and the manifest.
    pub loc: Loc,
    /// The model as the file names it.
    pub model: String,
    /// Prompt tokens per request / sequence (0: a test with no prompt).
    pub prompt_tokens: u32,
    /// Generated tokens per request / sequence (0: a prompt-only test).
    pub gen_tokens: u32,
    /// Requests in flight (1: one at a time).
    pub concurrency: u32,
    /// Tokens already in the context before the test (llama-bench
    /// `n_depth`; 0 elsewhere): only records at depth 0 match a scenario.
    pub depth: u32,
    /// The configuration the tool recorded for this record, as recorded.
    pub config: Value,
    pub timings: Timings,
}

/// The finest grain of timings a record holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Timings {
    /// llama-bench: each repetition's total time of one test (`samples_ns`):
    /// a prompt-processing test times prefill of `prompt_tokens`, a
    /// generation test `gen_tokens` decode steps, a combined test both.
    Repetitions(Vec<u64>),
    /// One entry per request, in the order the file lists them.
    Requests(Vec<Request>),
    /// optimum-benchmark: each timed `generate` call's latencies, in ns,
    /// index by index the same call where the lists are of one length:
    /// `prefill` (the prompt's forward and first token), `decode` (the
    /// call's remaining `decode_steps` tokens, one total) and `generate`
    /// (the whole call).
    Iterations {
        prefill: Vec<u64>,
        decode: Vec<u64>,
        generate: Vec<u64>,
        decode_steps: u32,
    },
}

/// One request as a client-side tool recorded it; times in ns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    pub ttft_ns: Option<u64>,
    /// Each gap between successive streamed tokens (or chunks), where the
    /// file lists them.
    pub itl_ns: Vec<u64>,
    /// The request's mean inter-token latency, where the file holds only
    /// that (an aggregate: its gaps cannot be recovered).
    pub itl_mean_ns: Option<u64>,
    pub e2e_ns: Option<u64>,
    /// Send time relative to the earliest request's, where recorded.
    pub start_ns: Option<u64>,
    pub prompt_tokens: Option<u32>,
    pub output_tokens: Option<u32>,
    /// The tool's error for a failed request.
    pub error: Option<String>,
}

/// Read a results file as `format`; every error is located.
pub fn parse(format: ImportFormat, bytes: &[u8]) -> Result<Import, ImportError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ImportError::new(Loc::File, None, format!("not UTF-8 text ({e})")))?;
    if text.trim().is_empty() {
        return Err(ImportError::new(Loc::File, None, "the file is empty"));
    }
    match format {
        ImportFormat::LlamaBench => llama_bench::parse(text),
        ImportFormat::VllmBenchServe => vllm::parse(text),
        ImportFormat::Guidellm => guidellm::parse(text),
        ImportFormat::OptimumBenchmark => optimum::parse(text),
        ImportFormat::Aiperf => Err(ImportError::new(
            Loc::File,
            None,
            format!("AIPerf's records are read with {AIPERF_AGGREGATE} beside them"),
        )),
    }
}

/// Which tool a JSON value looks like it came from, for the error that
/// says a file is of another tool.
pub fn guess_tool(v: &Value) -> Option<&'static str> {
    let o = match v {
        Value::Array(a) => a.first()?.as_object()?,
        Value::Object(o) => o,
        _ => return None,
    };
    let has = |k: &str| o.contains_key(k);
    if has("build_commit") && has("n_prompt") {
        Some("llama-bench")
    } else if has("request_throughput") && has("completed") {
        Some("vLLM bench serve")
    } else if has("metadata") && has("metrics") {
        Some("AIPerf (profile_export.jsonl)")
    } else if has("benchmarks") {
        Some("GuideLLM")
    } else if has("prefill") || has("decode") || (has("config") && has("report")) {
        Some("optimum-benchmark")
    } else if has("records") || has("input_config") {
        Some("AIPerf (aggregate JSON)")
    } else {
        None
    }
}

/// "a file of another tool" when `v` looks like one, else `fallback`.
pub(crate) fn not_this_tool(v: &Value, this: &str, fallback: ImportError) -> ImportError {
    match guess_tool(v) {
        Some(other) if other != this => ImportError::new(
            fallback.loc,
            fallback.field.as_deref(),
            format!("this is not {this} output: it looks like {other}'s (check `format`)"),
        ),
        _ => fallback,
    }
}

/// A JSON syntax error, located at its line (a truncated file ends inside
/// a value).
pub(crate) fn json_error(e: &serde_json::Error, line_offset: usize) -> ImportError {
    let what = if e.is_eof() {
        "truncated: the file ends inside a JSON value"
    } else {
        "not valid JSON"
    };
    ImportError::new(
        Loc::Line(e.line() + line_offset),
        None,
        format!("{what} ({e})"),
    )
}

/// Typed reads of one JSON object, each error at the record and field.
pub(crate) struct Obj<'a> {
    pub loc: Loc,
    /// JSON path of the object inside the record (`""` at its top).
    pub prefix: String,
    pub map: &'a Map<String, Value>,
}

impl<'a> Obj<'a> {
    pub fn new(loc: Loc, v: &'a Value) -> Result<Self, ImportError> {
        match v {
            Value::Object(map) => Ok(Obj {
                loc,
                prefix: String::new(),
                map,
            }),
            other => Err(ImportError::new(
                loc,
                None,
                format!("must be a JSON object, not {}", kind_of(other)),
            )),
        }
    }

    pub fn path(&self, field: &str) -> String {
        if self.prefix.is_empty() {
            field.to_string()
        } else {
            format!("{}.{field}", self.prefix)
        }
    }

    pub fn err(&self, field: &str, message: impl Into<String>) -> ImportError {
        ImportError::new(self.loc, Some(&self.path(field)), message)
    }

    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    pub fn required(&self, field: &str) -> Result<&'a Value, ImportError> {
        self.get(field).ok_or_else(|| self.err(field, "missing"))
    }

    pub fn object(&self, field: &str) -> Result<Obj<'a>, ImportError> {
        match self.required(field)? {
            Value::Object(map) => Ok(Obj {
                loc: self.loc,
                prefix: self.path(field),
                map,
            }),
            other => Err(self.err(field, format!("must be an object, not {}", kind_of(other)))),
        }
    }

    pub fn opt_object(&self, field: &str) -> Result<Option<Obj<'a>>, ImportError> {
        match self.get(field) {
            None => Ok(None),
            Some(_) => self.object(field).map(Some),
        }
    }

    pub fn string(&self, field: &str) -> Result<String, ImportError> {
        match self.required(field)? {
            Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
            Value::String(_) => Err(self.err(field, "is empty")),
            other => Err(self.err(field, format!("must be a string, not {}", kind_of(other)))),
        }
    }

    pub fn opt_string(&self, field: &str) -> Result<Option<String>, ImportError> {
        match self.get(field) {
            None => Ok(None),
            Some(_) => self.string(field).map(Some),
        }
    }

    pub fn f64(&self, field: &str) -> Result<f64, ImportError> {
        let v = self.required(field)?;
        as_finite(v).ok_or_else(|| {
            self.err(
                field,
                format!("must be a finite number, not {}", kind_of(v)),
            )
        })
    }

    /// A non-negative number that fits `u32` (a token count).
    pub fn u32(&self, field: &str) -> Result<u32, ImportError> {
        let v = self.required(field)?;
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| self.err(field, format!("must be a whole number >= 0, not {v}")))
    }

    pub fn opt_u32(&self, field: &str) -> Result<Option<u32>, ImportError> {
        match self.get(field) {
            None => Ok(None),
            Some(_) => self.u32(field).map(Some),
        }
    }

    pub fn u64(&self, field: &str) -> Result<u64, ImportError> {
        let v = self.required(field)?;
        v.as_u64()
            .ok_or_else(|| self.err(field, format!("must be a whole number >= 0, not {v}")))
    }

    /// A list of numbers.
    pub fn numbers(&self, field: &str) -> Result<Vec<f64>, ImportError> {
        match self.required(field)? {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    as_finite(v).ok_or_else(|| {
                        self.err(
                            &format!("{field}[{i}]"),
                            format!("must be a finite number, not {}", kind_of(v)),
                        )
                    })
                })
                .collect(),
            other => Err(self.err(field, format!("must be a list, not {}", kind_of(other)))),
        }
    }
}

fn as_finite(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

pub(crate) fn kind_of(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// The longest duration a file may record, in nanoseconds (about 11.6
/// days): larger values are corrupt, and sums of them would overflow.
pub(crate) const MAX_NS: f64 = 1e15;

/// A duration in `unit` as whole nanoseconds; errors at the field for a
/// negative, non-finite or absurdly large value (over [`MAX_NS`]).
pub(crate) fn to_ns(
    o: &Obj<'_>,
    field: &str,
    value: f64,
    ns_per_unit: f64,
) -> Result<u64, ImportError> {
    if !value.is_finite() || value < 0.0 {
        return Err(o.err(field, format!("must be a finite number >= 0, not {value}")));
    }
    let ns = (value * ns_per_unit).round();
    if !ns.is_finite() || ns > MAX_NS {
        return Err(o.err(
            field,
            format!("{value} is over the largest duration taken ({MAX_NS:e} ns)"),
        ));
    }
    Ok(ns as u64)
}

/// What the manifest of an imported cell records (`Manifest::imported`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedFacts {
    /// The file as the spec names it.
    pub file: String,
    pub file_blake3: String,
    /// The spec's `format`.
    pub format: String,
    pub tool: String,
    pub tool_version: String,
    /// The model as the file names it.
    pub file_model: String,
    /// Where the records this cell took are (`line 3`, `record 2`).
    pub records: Vec<String>,
    /// `requests` (per-request timings), `repetitions` (per-repetition
    /// totals of a test) or `iterations` (per-call latencies of an
    /// in-process benchmark).
    pub grain: String,
    /// Phases whose events are aggregates rather than single timings, each
    /// with what it aggregates (`decode: mean step of 16 steps per run`).
    pub aggregates: Vec<String>,
    /// What cannot be computed from this file, one line each (the report
    /// prints them rather than invent the numbers).
    pub not_computable: Vec<String>,
    /// The machine the file records, as recorded.
    pub machine: Value,
    /// The configuration each record carries, as recorded.
    pub configuration: Vec<Value>,
}

/// The version of assay's readers: it enters every imported cell's key,
/// so that a change to how a file is read reruns its cells.
pub const READER_VERSION: u32 = 1;

/// AIPerf writes its run's configuration (model, concurrency, lengths,
/// version) beside the per-request records, in this file of the same
/// folder.
pub const AIPERF_AGGREGATE: &str = "profile_export_aiperf.json";

/// The bytes that stand for an imported file: the file, and for AIPerf its
/// aggregate JSON beside it.
fn read_bytes(opts: &ImportedOptions) -> Result<(Vec<u8>, Option<Vec<u8>>), String> {
    let path = opts.path();
    let main = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", opts.file))?;
    let companion = match opts.format {
        ImportFormat::Aiperf => {
            let beside = path.with_file_name(AIPERF_AGGREGATE);
            Some(std::fs::read(&beside).map_err(|e| {
                format!(
                    "cannot read {AIPERF_AGGREGATE} beside {} (AIPerf writes the run's configuration there): {e}",
                    opts.file
                )
            })?)
        }
        _ => None,
    };
    Ok((main, companion))
}

fn digest_of(main: &[u8], companion: Option<&[u8]>) -> String {
    let mut h = blake3::Hasher::new();
    h.update(main);
    if let Some(c) = companion {
        // Length-prefixed, so that moving bytes between the files changes
        // the digest.
        h.update(&(main.len() as u64).to_le_bytes());
        h.update(c);
    }
    h.finalize().to_hex().to_string()
}

type Cache = std::sync::Mutex<std::collections::BTreeMap<(String, ImportFormat), Arc<Import>>>;

/// Parsed files by digest: the planner asks every (model, scenario) pair.
fn cache() -> &'static Cache {
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Read, digest and parse an imported backend's file. The error is one
/// line: the file, where in it, the field, what is wrong.
pub fn load(opts: &ImportedOptions) -> Result<(String, Arc<Import>), String> {
    let (main, companion) = read_bytes(opts)?;
    let digest = digest_of(&main, companion.as_deref());
    let key = (digest.clone(), opts.format);
    if let Some(hit) = cache().lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok((digest, hit));
    }
    let parsed = match (opts.format, &companion) {
        (ImportFormat::Aiperf, Some(agg)) => {
            aiperf::parse_pair(&main, agg).map_err(|(which, e)| {
                let file = if which == aiperf::Which::Aggregate {
                    format!("{AIPERF_AGGREGATE} (beside {})", opts.file)
                } else {
                    opts.file.clone()
                };
                format!("{file}: {e}")
            })
        }
        _ => parse(opts.format, &main).map_err(|e| format!("{}: {e}", opts.file)),
    }?;
    let parsed = Arc::new(parsed);
    if let Ok(mut c) = cache().lock() {
        c.insert(key, parsed.clone());
    }
    Ok((digest, parsed))
}

/// The file as the spec's key knows it (its digest, set at spec load):
/// a file edited since is refused rather than measured under the old key.
pub fn load_checked(opts: &ImportedOptions) -> Result<Arc<Import>, String> {
    let (digest, import) = load(opts)?;
    match &opts.file_blake3 {
        Some(at_load) if *at_load != digest => Err(format!(
            "{} changed since the spec was loaded (blake3 {at_load}, now {digest}): run again",
            opts.file
        )),
        _ => Ok(import),
    }
}

/// At spec load: every imported backend's file read and parsed, its
/// digest and the spec's folder set. Returns (JSON pointer, message) of
/// each file that is not what its `format` says.
pub fn read_files(
    backends: &mut [assay_core::config::BackendConfig],
    dir: &std::path::Path,
) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (i, b) in backends.iter_mut().enumerate() {
        let Some(opts) = b.imported.as_mut() else {
            continue;
        };
        opts.base_dir = Some(dir.to_path_buf());
        match load(opts) {
            Ok((digest, _)) => opts.file_blake3 = Some(digest),
            Err(message) => found.push((format!("/backends/{i}/imported/file"), message)),
        }
    }
    found
}
