//! AIPerf's profile export: `profile_export.jsonl`, one line per request
//! (`metadata`: phase, timestamps; `metrics`: each a `{value, unit}`, e.g.
//! `time_to_first_token`, `inter_chunk_latency` (a list), `request_latency`,
//! `input_sequence_length`, `output_sequence_length`; `error`), and
//! `profile_export_aiperf.json` beside it, the run's aggregates and its
//! `input_config` (model names, concurrency, requested lengths), whose
//! `schema_version` 1.x and `aiperf_version` assay reads. Read as AIPerf
//! 0.13.0 writes them (the fixture's version).

use serde_json::Value;

use super::{Import, ImportError, Loc, Obj, Record, Request, Timings, json_error, not_this_tool};
use assay_core::config::imported::ImportFormat;

const TOOL: &str = "aiperf";

/// Which of the two files an error is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Records,
    Aggregate,
}

/// ns per unit of a metric's `unit`.
fn unit_ns(unit: &str) -> Option<f64> {
    match unit {
        "ns" => Some(1.0),
        "us" => Some(1e3),
        "ms" => Some(1e6),
        "s" | "sec" => Some(1e9),
        _ => None,
    }
}

/// A metric `{value, unit}` of a record's `metrics`, when present.
fn metric<'a>(m: &Obj<'a>, name: &str) -> Result<Option<(Obj<'a>, &'a Value, f64)>, ImportError> {
    let Some(o) = m.opt_object(name)? else {
        return Ok(None);
    };
    let unit = o.string("unit")?;
    let value = o.required("value")?;
    Ok(Some((o, value, unit_ns(&unit).unwrap_or(f64::NAN))))
}

/// A duration metric in ns.
fn duration(m: &Obj<'_>, name: &str) -> Result<Option<u64>, ImportError> {
    let Some((o, _, per)) = metric(m, name)? else {
        return Ok(None);
    };
    if per.is_nan() {
        return Err(o.err("unit", "must be a time unit (ns, us, ms, s)"));
    }
    let v = o.f64("value")?;
    super::to_ns(&o, "value", v, per).map(Some)
}

/// A list-of-durations metric in ns.
fn durations(m: &Obj<'_>, name: &str) -> Result<Vec<u64>, ImportError> {
    let Some((o, _, per)) = metric(m, name)? else {
        return Ok(Vec::new());
    };
    if per.is_nan() {
        return Err(o.err("unit", "must be a time unit (ns, us, ms, s)"));
    }
    o.numbers("value")?
        .iter()
        .enumerate()
        .map(|(i, v)| super::to_ns(&o, &format!("value[{i}]"), *v, per))
        .collect()
}

/// A token-count metric.
fn count(m: &Obj<'_>, name: &str) -> Result<Option<u32>, ImportError> {
    match metric(m, name)? {
        None => Ok(None),
        Some((o, _, _)) => o.u32("value").map(Some),
    }
}

/// Both files: the records, and the aggregate JSON with the run's
/// configuration. The error says which file.
pub fn parse_pair(records: &[u8], aggregate: &[u8]) -> Result<Import, (Which, ImportError)> {
    let text = |b: &[u8]| -> Result<String, ImportError> {
        String::from_utf8(b.to_vec())
            .map_err(|e| ImportError::new(Loc::File, None, format!("not UTF-8 text ({e})")))
    };
    let agg_text = text(aggregate).map_err(|e| (Which::Aggregate, e))?;
    let (model, prompt_tokens, gen_tokens, concurrency, version, config) =
        parse_aggregate(&agg_text).map_err(|e| (Which::Aggregate, e))?;
    let rec_text = text(records).map_err(|e| (Which::Records, e))?;
    let requests = parse_records(&rec_text).map_err(|e| (Which::Records, e))?;
    Ok(Import {
        format: ImportFormat::Aiperf,
        tool: TOOL,
        tool_version: version,
        machine: Value::Null,
        records: vec![Record {
            loc: Loc::File,
            model,
            prompt_tokens,
            gen_tokens,
            concurrency,
            depth: 0,
            config,
            timings: Timings::Requests(requests),
        }],
    })
}

type Setup = (String, u32, u32, u32, String, Value);

/// The aggregate JSON's `schema_version` majors assay reads.
const SCHEMA_MAJORS: &[&str] = &["1"];

/// The run's model, requested lengths, concurrency, AIPerf version and
/// configuration, from `profile_export_aiperf.json` (schema 1.x, as AIPerf
/// 0.13 writes it: `input_config.models.items[].name`,
/// `input_config.datasets[].prompts.{isl,osl}.mean`, and the profiling
/// entry of `input_config.phases`).
fn parse_aggregate(text: &str) -> Result<Setup, ImportError> {
    if text.trim().is_empty() {
        return Err(ImportError::new(Loc::File, None, "the file is empty"));
    }
    let v: Value = serde_json::from_str(text).map_err(|e| json_error(&e, 0))?;
    let top = Obj::new(Loc::File, &v)?;
    if top.get("input_config").is_none() || top.get("schema_version").is_none() {
        let field = if top.get("schema_version").is_none() {
            "schema_version"
        } else {
            "input_config"
        };
        return Err(not_this_tool(
            &v,
            "AIPerf (aggregate JSON)",
            top.err(field, "missing: not AIPerf's profile_export_aiperf.json"),
        ));
    }
    let schema = top.string("schema_version")?;
    let major = schema.split('.').next().unwrap_or("");
    if !SCHEMA_MAJORS.contains(&major) {
        return Err(top.err(
            "schema_version",
            format!("{schema} is an unknown version of AIPerf's export (assay reads 1.x)"),
        ));
    }
    let version = top.string("aiperf_version")?;
    let cfg = top.object("input_config")?;
    let models = cfg.object("models")?;
    let items = match models.required("items")? {
        Value::Array(items) => items,
        _ => return Err(models.err("items", "must be a list")),
    };
    let model = match &items[..] {
        [one] => Obj::new(Loc::File, one)
            .map_err(|e| models.err("items[0]", e.message))?
            .string("name")
            .map_err(|e| models.err("items[0].name", e.message))?,
        _ => {
            return Err(models.err(
                "items",
                format!("has {} models: one run, one model", items.len()),
            ));
        }
    };
    let first = |field: &str| -> Result<Obj<'_>, ImportError> {
        match cfg.required(field)? {
            Value::Array(list) if !list.is_empty() => Ok(Obj {
                loc: Loc::File,
                prefix: cfg.path(&format!("{field}[0]")),
                map: list[0]
                    .as_object()
                    .ok_or_else(|| cfg.err(&format!("{field}[0]"), "must be an object"))?,
            }),
            _ => Err(cfg.err(field, "must be a non-empty list")),
        }
    };
    let dataset = first("datasets")?;
    let prompts = dataset.object("prompts")?;
    let length = |field: &str| -> Result<u32, ImportError> {
        let o = prompts.object(field)?;
        let mean = o.f64("mean")?;
        if mean < 0.0 || mean.fract() != 0.0 || mean > f64::from(u32::MAX) {
            return Err(o.err(
                "mean",
                format!("must be a whole number of tokens, not {mean}"),
            ));
        }
        Ok(mean as u32)
    };
    let prompt_tokens = length("isl")?;
    let gen_tokens = length("osl")?;
    let phases = match cfg.required("phases")? {
        Value::Array(list) => list,
        _ => return Err(cfg.err("phases", "must be a list")),
    };
    let profiling = phases
        .iter()
        .find(|p| p.get("kind").and_then(Value::as_str) == Some("profiling"))
        .ok_or_else(|| cfg.err("phases", "has no phase of kind `profiling`"))?;
    let profiling = Obj {
        loc: Loc::File,
        prefix: cfg.path("phases[profiling]"),
        map: profiling
            .as_object()
            .ok_or_else(|| cfg.err("phases", "must hold objects"))?,
    };
    // A closed loop is a `concurrency` phase; a rate-driven one matches no
    // closed-loop scenario (0).
    let concurrency = match profiling.string("type")?.as_str() {
        "concurrency" => profiling.u32("concurrency")?,
        _ => 0,
    };
    Ok((
        model,
        prompt_tokens,
        gen_tokens,
        concurrency,
        version,
        workload_configuration(cfg.map),
    ))
}

/// What of AIPerf's `input_config` the manifest keeps: the fields that
/// describe the workload (models, endpoint type and streaming, dataset
/// lengths, phases' load). Everything else, which holds host paths,
/// endpoint URLs, headers, API keys and exporter settings (`artifacts`,
/// `endpoint.urls`, `otel`, `mlflow`, `wandb`, ...), is dropped; a name
/// that is an absolute path is reduced to its file name.
fn workload_configuration(cfg: &serde_json::Map<String, Value>) -> Value {
    fn keep(v: Option<&Value>, keys: &[&str]) -> Option<Value> {
        let map = v?.as_object()?;
        let kept: serde_json::Map<String, Value> = keys
            .iter()
            .filter_map(|k| Some(((*k).to_string(), name_only(map.get(*k)?.clone()))))
            .collect();
        Some(Value::Object(kept))
    }
    fn each(v: Option<&Value>, keys: &[&str]) -> Option<Value> {
        let list = v?.as_array()?;
        Some(list.iter().filter_map(|x| keep(Some(x), keys)).collect())
    }
    fn name_only(v: Value) -> Value {
        match v {
            Value::String(s) if s.starts_with(['/', '\\', '~']) || s.get(1..3) == Some(":\\") => {
                Value::String(s.rsplit(['/', '\\']).next().unwrap_or_default().to_string())
            }
            other => other,
        }
    }
    let mut out = serde_json::Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            out.insert(k.into(), v);
        }
    };
    put(
        "models",
        cfg.get("models")
            .and_then(|m| each(m.get("items"), &["name"]))
            .map(|items| serde_json::json!({ "items": items })),
    );
    put(
        "endpoint",
        keep(cfg.get("endpoint"), &["type", "streaming"]),
    );
    put(
        "datasets",
        cfg.get("datasets").and_then(Value::as_array).map(|list| {
            list.iter()
                .filter_map(|d| {
                    let mut o = keep(Some(d), &["name", "type", "entries"])?;
                    if let Some(p) = keep(d.get("prompts"), &["isl", "osl"]) {
                        o["prompts"] = p;
                    }
                    Some(o)
                })
                .collect()
        }),
    );
    put(
        "phases",
        each(
            cfg.get("phases"),
            &[
                "name",
                "kind",
                "type",
                "requests",
                "concurrency",
                "request_rate",
                "rate",
                "duration",
                "exclude_from_results",
            ],
        ),
    );
    put("tokenizer", keep(cfg.get("tokenizer"), &["name"]));
    Value::Object(out)
}

/// The per-request lines of `profile_export.jsonl`.
fn parse_records(text: &str) -> Result<Vec<Request>, ImportError> {
    let mut out: Vec<Request> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| json_error(&e, i))?;
        let o = Obj::new(Loc::Line(i + 1), &v)?;
        if o.get("metrics").is_none() && o.get("metadata").is_none() {
            return Err(not_this_tool(
                &v,
                "AIPerf (profile_export.jsonl)",
                o.err("metrics", "missing: not an AIPerf per-request record"),
            ));
        }
        let meta = o.object("metadata")?;
        // Warmup lines are checked like the others, then left out.
        let warmup = meta.opt_string("benchmark_phase")?.as_deref() == Some("warmup");
        let start = meta
            .get("request_start_ns")
            .map(|_| meta.u64("request_start_ns"))
            .transpose()?;
        let error = match o.get("error") {
            None => None,
            Some(Value::Object(e)) => Some(
                e.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("error")
                    .to_string(),
            ),
            Some(other) => Some(other.to_string()),
        };
        let m = match o.get("metrics") {
            Some(_) => o.object("metrics")?,
            None if error.is_some() => {
                if !warmup {
                    out.push(Request {
                        error,
                        ..Request::default()
                    });
                }
                continue;
            }
            None => return Err(o.err("metrics", "missing")),
        };
        let itl_ns = durations(&m, "inter_chunk_latency")?;
        let request = Request {
            ttft_ns: duration(&m, "time_to_first_token")?,
            itl_mean_ns: if itl_ns.is_empty() {
                duration(&m, "inter_token_latency")?
            } else {
                None
            },
            itl_ns,
            e2e_ns: duration(&m, "request_latency")?,
            // Absolute here; made relative to the earliest profiling
            // request below (lines need not be in send order).
            start_ns: start,
            prompt_tokens: count(&m, "input_sequence_length")?,
            output_tokens: count(&m, "output_sequence_length")?,
            error,
        };
        if !warmup {
            out.push(request);
        }
    }
    if out.is_empty() {
        return Err(ImportError::new(Loc::File, None, "no profiling records"));
    }
    if let Some(first) = out.iter().filter_map(|r| r.start_ns).min() {
        for r in &mut out {
            r.start_ns = r.start_ns.map(|s| s - first);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORDS: &str =
        include_str!("../../../../tests/fixtures/imported/aiperf/profile_export.jsonl");
    const AGGREGATE: &str =
        include_str!("../../../../tests/fixtures/imported/aiperf/profile_export_aiperf.json");

    #[test]
    fn the_real_export_parses_per_request() {
        let import = parse_pair(RECORDS.as_bytes(), AGGREGATE.as_bytes()).unwrap();
        assert_eq!(import.tool_version, "0.13.0");
        let r = &import.records[0];
        assert_eq!(
            (
                r.model.as_str(),
                r.prompt_tokens,
                r.gen_tokens,
                r.concurrency
            ),
            ("assay/tiny", 16, 8, 1)
        );
        let Timings::Requests(reqs) = &r.timings else {
            panic!("requests expected");
        };
        // The warmup request is left out.
        assert_eq!(reqs.len(), 6);
        for q in reqs {
            assert!(q.ttft_ns.is_some() && q.e2e_ns.is_some());
            assert_eq!(q.itl_ns.len(), 7);
        }
    }

    fn starts(records: &str) -> Vec<u64> {
        let import = parse_pair(records.as_bytes(), AGGREGATE.as_bytes()).unwrap();
        let Timings::Requests(reqs) = &import.records[0].timings else {
            panic!("requests expected");
        };
        let mut s: Vec<u64> = reqs.iter().filter_map(|q| q.start_ns).collect();
        s.sort_unstable();
        s
    }

    #[test]
    fn send_times_count_from_the_earliest_profiling_request() {
        let want = starts(RECORDS);
        assert_eq!(want[0], 0);
        assert!(want[1] > 0, "{want:?}");
        // Lines out of send order: the first profiling line is not the
        // earliest; the times are the same, none clipped to 0.
        let mut lines: Vec<&str> = RECORDS.lines().filter(|l| !l.trim().is_empty()).collect();
        lines.swap(1, 2);
        assert_eq!(starts(&lines.join("\n")), want);
    }

    #[test]
    fn no_host_path_url_or_exporter_reaches_the_configuration() {
        let import = parse_pair(RECORDS.as_bytes(), AGGREGATE.as_bytes()).unwrap();
        let config = import.records[0].config.to_string();
        assert!(AGGREGATE.contains("/tmp/tmp.") && AGGREGATE.contains("http://127.0.0.1"));
        for gone in [
            "/tmp/",
            "http://",
            "artifacts",
            "otel",
            "mlflow",
            "wandb",
            "urls",
        ] {
            assert!(!config.contains(gone), "{gone} in {config}");
        }
        // The workload stays.
        for kept in [
            "assay/tiny",
            "concurrency",
            "isl",
            "osl",
            "streaming",
            "completions",
        ] {
            assert!(config.contains(kept), "{kept} missing from {config}");
        }
        // Names that are absolute paths are reduced to file names.
        let pathy = AGGREGATE.replacen(
            "\"tokenizer\": {\n      \"name\": \"assay/tiny\"",
            "\"tokenizer\": {\n      \"name\": \"/home/me/models/tok.json\"",
            1,
        );
        let import = parse_pair(RECORDS.as_bytes(), pathy.as_bytes()).unwrap();
        let config = &import.records[0].config;
        assert_ne!(pathy, AGGREGATE);
        assert_eq!(config["tokenizer"]["name"], "tok.json", "{config}");
    }

    #[test]
    fn faults_are_located_in_their_file() {
        let cut = &RECORDS[..RECORDS.len() / 2];
        let (which, e) = parse_pair(cut.as_bytes(), AGGREGATE.as_bytes()).unwrap_err();
        assert_eq!(which, Which::Records);
        assert!(e.message.contains("truncated"), "{e}");
        let newer = AGGREGATE.replacen("\"schema_version\": \"1.", "\"schema_version\": \"9.", 1);
        let newer = if newer == AGGREGATE {
            AGGREGATE.replacen("\"schema_version\":\"1.", "\"schema_version\":\"9.", 1)
        } else {
            newer
        };
        let (which, e) = parse_pair(RECORDS.as_bytes(), newer.as_bytes()).unwrap_err();
        assert_eq!(which, Which::Aggregate);
        assert_eq!(e.field.as_deref(), Some("schema_version"), "{e}");
        let bad = RECORDS.replacen(
            "\"time_to_first_token\":{\"value\":",
            "\"time_to_first_token\":{\"value\":\"x\",\"was\":",
            1,
        );
        let (_, e) = parse_pair(bad.as_bytes(), AGGREGATE.as_bytes()).unwrap_err();
        assert_eq!(e.loc, Loc::Line(1), "{e}");
        assert_eq!(
            e.field.as_deref(),
            Some("metrics.time_to_first_token.value"),
            "{e}"
        );
    }
}
