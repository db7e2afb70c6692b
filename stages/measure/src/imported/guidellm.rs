//! GuideLLM's benchmark report: the JSON `guidellm run ... --output
//! kind=json,path=x.json` (formerly `guidellm benchmark --output-path`)
//! writes. `metadata` holds the report's format `version` (2) and
//! `guidellm_version`; `benchmarks[]` one benchmark per strategy run, each
//! with its `config` (`strategy`, `backend`, `constraints`), its `metrics`
//! (GuideLLM's own aggregates: distributions over requests) and its
//! `requests`: `successful`, `errored` and `incomplete` lists of per-request
//! stats (`request_start_time` and `request_latency` in seconds,
//! `time_to_first_token_ms`, the request's mean `inter_token_latency_ms`,
//! `prompt_tokens`, `output_tokens`, `info.error`). Read as GuideLLM 0.8.1
//! writes it (the fixture's version).

use serde_json::{Map, Value};

use super::{Import, ImportError, Loc, Obj, Record, Request, Timings, json_error, not_this_tool};
use assay_core::config::imported::ImportFormat;

const TOOL: &str = "GuideLLM";

/// The report format versions (`metadata.version`) assay reads.
const VERSIONS: &[u64] = &[2];

/// The per-request lists of a benchmark's `requests`, in the order they
/// are read; errored and incomplete requests carry their error.
const LISTS: [&str; 3] = ["successful", "errored", "incomplete"];

pub fn parse(text: &str) -> Result<Import, ImportError> {
    let v: Value = serde_json::from_str(text).map_err(|e| json_error(&e, 0))?;
    let top = Obj::new(Loc::File, &v).map_err(|e| not_this_tool(&v, TOOL, e))?;
    if top.get("benchmarks").is_none() || top.get("metadata").is_none() {
        let field = if top.get("benchmarks").is_none() {
            "benchmarks"
        } else {
            "metadata"
        };
        return Err(not_this_tool(
            &v,
            TOOL,
            top.err(field, "missing: not a GuideLLM benchmark report"),
        ));
    }
    let meta = top.object("metadata")?;
    let version = meta.u64("version")?;
    if !VERSIONS.contains(&version) {
        return Err(meta.err(
            "version",
            format!("{version} is an unknown version of GuideLLM's report (assay reads version 2)"),
        ));
    }
    let tool_version = meta.string("guidellm_version")?;
    // The client's machine: GuideLLM records where it ran, not the server.
    let machine = Value::Object(
        ["python_version", "platform"]
            .iter()
            .filter_map(|k| Some(((*k).to_string(), meta.get(k)?.clone())))
            .collect(),
    );
    let benchmarks = match top.required("benchmarks")? {
        Value::Array(list) if !list.is_empty() => list,
        Value::Array(_) => return Err(top.err("benchmarks", "is empty: no benchmark ran")),
        other => {
            return Err(top.err(
                "benchmarks",
                format!("must be a list, not {}", super::kind_of(other)),
            ));
        }
    };
    let records = benchmarks
        .iter()
        .enumerate()
        .map(|(i, b)| benchmark(Loc::Record(i + 1), b))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Import {
        format: ImportFormat::Guidellm,
        tool: TOOL,
        tool_version,
        machine,
        records,
    })
}

/// One benchmark (one strategy's run) as a record.
fn benchmark(loc: Loc, v: &Value) -> Result<Record, ImportError> {
    let b = Obj::new(loc, v)?;
    let config = b.object("config")?;
    let strategy = config.object("strategy")?;
    // One request at a time is concurrency 1; a fixed number of streams is
    // a closed loop of that many; rate-driven strategies (constant,
    // poisson, throughput, async) match no closed-loop scenario (0).
    let concurrency = match strategy.string("type_")?.as_str() {
        "synchronous" => 1,
        "concurrent" => strategy.u32("streams")?,
        _ => 0,
    };
    let backend = config.object("backend")?;
    let model = backend.string("model")?;
    let requests_obj = b.object("requests")?;
    let mut raw: Vec<(Obj<'_>, Option<String>)> = Vec::new();
    for list in LISTS {
        let items = match requests_obj.get(list) {
            None => continue,
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(requests_obj.err(
                    list,
                    format!("must be a list, not {}", super::kind_of(other)),
                ));
            }
        };
        for (k, item) in items.iter().enumerate() {
            let map = item
                .as_object()
                .ok_or_else(|| requests_obj.err(&format!("{list}[{k}]"), "must be an object"))?;
            let o = Obj {
                loc,
                prefix: requests_obj.path(&format!("{list}[{k}]")),
                map,
            };
            let error = if list == "successful" {
                None
            } else {
                Some(request_error(&o, list))
            };
            raw.push((o, error));
        }
    }
    if raw.is_empty() {
        return Err(b.err("requests", "holds no requests (GuideLLM sampled none)"));
    }
    let mut requests = raw
        .iter()
        .map(|(o, error)| request(o, error.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    // Send times are Unix seconds: counted from the earliest request of
    // the benchmark, in seconds before the conversion (in ns they would
    // pass the bound on durations).
    let starts = raw
        .iter()
        .map(|(o, _)| match o.get("request_start_time") {
            None => Ok(None),
            Some(_) => o.f64("request_start_time").map(Some),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(first) = starts.iter().flatten().copied().reduce(f64::min) {
        for ((r, s), (o, _)) in requests.iter_mut().zip(&starts).zip(&raw) {
            if let Some(s) = s {
                r.start_ns = Some(super::to_ns(o, "request_start_time", s - first, 1e9)?);
            }
        }
    }
    // In send order, whatever list a request is in: the first sent is the
    // cell's cold run.
    requests.sort_by_key(|r| r.start_ns.unwrap_or(u64::MAX));
    let ok = || requests.iter().filter(|r| r.error.is_none());
    let prompt_tokens = super::vllm::typical(ok().filter_map(|r| r.prompt_tokens));
    let gen_tokens = super::vllm::typical(ok().filter_map(|r| r.output_tokens));
    Ok(Record {
        loc,
        model,
        prompt_tokens,
        gen_tokens,
        concurrency,
        depth: 0,
        config: configuration(&config, b.get("metrics")),
        timings: Timings::Requests(requests),
    })
}

/// A failed request's error: GuideLLM's `info.error`, else the list it is in.
fn request_error(o: &Obj<'_>, list: &str) -> String {
    o.get("info")
        .and_then(|i| i.get("error"))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map_or_else(|| format!("{list} (no error recorded)"), str::to_string)
}

/// One request's stats. A failed request's timings are read where present
/// (an incomplete request may have none).
fn request(o: &Obj<'_>, error: Option<String>) -> Result<Request, ImportError> {
    let secs = |field: &str| -> Result<Option<u64>, ImportError> {
        match o.get(field) {
            None => Ok(None),
            Some(_) => super::to_ns(o, field, o.f64(field)?, 1e9).map(Some),
        }
    };
    let ms = |field: &str| -> Result<Option<u64>, ImportError> {
        match o.get(field) {
            None => Ok(None),
            Some(_) => super::to_ns(o, field, o.f64(field)?, 1e6).map(Some),
        }
    };
    let ok = error.is_none();
    let e2e_ns = secs("request_latency")?;
    if ok && e2e_ns.is_none() {
        return Err(o.err("request_latency", "missing for a successful request"));
    }
    Ok(Request {
        ttft_ns: ms("time_to_first_token_ms")?,
        // GuideLLM keeps each request's mean gap only: an aggregate.
        itl_ns: Vec::new(),
        itl_mean_ns: ms("inter_token_latency_ms")?,
        e2e_ns,
        // Set from `request_start_time` relative to the earliest request
        // (`benchmark`).
        start_ns: None,
        prompt_tokens: o.opt_u32("prompt_tokens")?,
        output_tokens: o.opt_u32("output_tokens")?,
        error,
    })
}

/// What of a benchmark the manifest keeps: the strategy, constraints,
/// warmup and cooldown, the backend's kind, model, request format and
/// streaming (never its target URL, API key or routes), and GuideLLM's
/// own aggregates over successful requests, under `aggregates`, each
/// metric's count, mean, median, min, max and percentiles.
fn configuration(config: &Obj<'_>, metrics: Option<&Value>) -> Value {
    let mut out = Map::new();
    for k in ["strategy", "constraints", "warmup", "cooldown", "profile"] {
        if let Some(v) = config.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(Value::Object(b)) = config.get("backend") {
        let kept: Map<String, Value> = ["kind", "model", "request_format", "stream"]
            .iter()
            .filter_map(|k| Some(((*k).to_string(), b.get(*k)?.clone())))
            .collect();
        out.insert("backend".into(), Value::Object(kept));
    }
    if let Some(Value::Object(m)) = metrics {
        let mut agg = Map::new();
        for (name, v) in m {
            let Some(Value::Object(d)) = v.get("successful") else {
                continue;
            };
            let kept: Map<String, Value> = ["count", "mean", "median", "min", "max", "percentiles"]
                .iter()
                .filter_map(|k| Some(((*k).to_string(), d.get(*k)?.clone())))
                .collect();
            if !kept.is_empty() {
                agg.insert(name.clone(), Value::Object(kept));
            }
        }
        out.insert(
            "aggregates".into(),
            serde_json::json!({ "over": "successful requests", "metrics": agg }),
        );
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str =
        include_str!("../../../../tests/fixtures/imported/guidellm-benchmarks.json");

    #[test]
    fn the_real_report_parses_per_request() {
        let import = parse(FIXTURE).unwrap();
        assert_eq!(import.tool_version, "0.8.1");
        assert_eq!(import.records.len(), 1);
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
        assert_eq!(reqs.len(), 6);
        for q in reqs {
            assert!(q.ttft_ns.is_some() && q.e2e_ns.is_some() && q.error.is_none());
            // Only the request's mean gap: an aggregate.
            assert!(q.itl_ns.is_empty() && q.itl_mean_ns.is_some());
            assert!(q.ttft_ns <= q.e2e_ns);
        }
        let mut starts: Vec<u64> = reqs.iter().filter_map(|q| q.start_ns).collect();
        starts.sort_unstable();
        assert_eq!(starts[0], 0);
        assert!(starts[1] > 0);
    }

    #[test]
    fn no_url_or_host_path_reaches_the_configuration() {
        assert!(FIXTURE.contains("http://127.0.0.1") && FIXTURE.contains("/tmp/"));
        let import = parse(FIXTURE).unwrap();
        let config = import.records[0].config.to_string();
        for gone in ["http://", "/tmp/", "api_key", "api_routes"] {
            assert!(!config.contains(gone), "{gone} in {config}");
        }
        for kept in [
            "synchronous",
            "max_requests",
            "time_to_first_token_ms",
            "/v1/completions",
        ] {
            assert!(config.contains(kept), "{kept} missing from {config}");
        }
    }

    #[test]
    fn faults_are_located() {
        let e = parse(&FIXTURE[..FIXTURE.len() / 2]).unwrap_err();
        assert!(e.message.contains("truncated"), "{e}");
        let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
        v["metadata"]["version"] = serde_json::json!(9);
        let e = parse(&v.to_string()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("metadata.version"), "{e}");
        assert!(e.message.contains("unknown version"), "{e}");
        let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
        v["benchmarks"][0]["requests"]["successful"][2]["time_to_first_token_ms"] =
            serde_json::json!("x");
        let e = parse(&v.to_string()).unwrap_err();
        assert_eq!(e.loc, Loc::Record(1), "{e}");
        assert_eq!(
            e.field.as_deref(),
            Some("requests.successful[2].time_to_first_token_ms"),
            "{e}"
        );
        let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
        v["benchmarks"][0]["config"]["strategy"]["type_"] = serde_json::json!("concurrent");
        let e = parse(&v.to_string()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("config.strategy.streams"), "{e}");
    }

    #[test]
    fn errored_requests_are_kept_with_their_error() {
        let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
        let reqs = &mut v["benchmarks"][0]["requests"];
        let mut failed = reqs["successful"][0].clone();
        failed["info"]["error"] = serde_json::json!("HTTP 500");
        failed["request_latency"] = Value::Null;
        reqs["errored"] = serde_json::json!([failed]);
        let import = parse(&v.to_string()).unwrap();
        let Timings::Requests(reqs) = &import.records[0].timings else {
            panic!("requests expected");
        };
        assert_eq!(reqs.len(), 7);
        let failed: Vec<_> = reqs.iter().filter_map(|q| q.error.as_deref()).collect();
        assert_eq!(failed, ["HTTP 500"]);
        // In send order across the lists.
        assert!(reqs.windows(2).all(|w| w[0].start_ns <= w[1].start_ns));
    }

    #[test]
    fn other_tools_files_are_named() {
        let e = parse(r#"[{"build_commit": "x", "n_prompt": 1}]"#).unwrap_err();
        assert!(e.message.contains("llama-bench"), "{e}");
        let e = parse(r#"{"request_throughput": 1, "completed": 2}"#).unwrap_err();
        assert!(e.message.contains("vLLM"), "{e}");
    }
}
