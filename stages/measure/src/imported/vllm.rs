//! vLLM's `vllm bench serve --save-result` JSON: one object per run, the
//! run's setup (`model_id`, `request_rate`, `max_concurrency`,
//! `num_prompts`), its aggregates (`mean_ttft_ms`, `median_ttft_ms`,
//! `p99_ttft_ms`, ... for ttft, tpot, itl, e2el) and, with
//! `--save-detailed`, per-request lists (`input_lens`, `output_lens`,
//! `ttfts`, `itls`, `latencies`, `start_times`, `errors`, in seconds).
//! The format is taken from vllm/benchmarks/serve.py (`main_async`,
//! `benchmark`) at vllm-project/vllm commit
//! 009e6d4a1cd6ba3fb2a9fc00f4ec06f5297232a1; the file records no vLLM
//! version, so the tool version is `unrecorded`.

use serde_json::{Map, Value};

use super::{Import, ImportError, Loc, Obj, Record, Request, Timings, json_error, not_this_tool};
use assay_core::config::imported::ImportFormat;

const TOOL: &str = "vllm bench serve";

/// Per-request lists, dropped from the file without `--save-detailed`.
const DETAILED: &[&str] = &[
    "input_lens",
    "output_lens",
    "start_times",
    "ttfts",
    "itls",
    "latencies",
    "queue_times",
    "generated_texts",
    "errors",
];

pub fn parse(text: &str) -> Result<Import, ImportError> {
    let v: Value = serde_json::from_str(text).map_err(|e| json_error(&e, 0))?;
    let o = Obj::new(Loc::Record(1), &v).map_err(|e| not_this_tool(&v, TOOL, e))?;
    if o.get("completed").is_none() || o.get("model_id").is_none() {
        let field = if o.get("model_id").is_none() {
            "model_id"
        } else {
            "completed"
        };
        return Err(not_this_tool(
            &v,
            TOOL,
            o.err(
                field,
                "missing: not a `vllm bench serve --save-result` file",
            ),
        ));
    }
    let model = o.string("model_id")?;
    let completed = o.u32("completed")?;
    o.f64("duration")?;
    if completed == 0 {
        return Err(o.err("completed", "is 0: no request completed"));
    }
    // Open-loop runs (a finite request rate) and unbounded ones match no
    // closed-loop scenario: concurrency 0.
    let rate_inf = matches!(o.get("request_rate"), Some(Value::String(s)) if s == "inf");
    if !rate_inf {
        o.f64("request_rate")
            .map_err(|_| o.err("request_rate", "must be a number or \"inf\""))?;
    }
    let concurrency = match o.get("max_concurrency") {
        Some(_) if rate_inf => o.u32("max_concurrency")?,
        _ => 0,
    };
    // Without `--save-detailed` the file keeps each request's latency but
    // only aggregates of ttft, tpot and itl.
    let detailed_lists = o.get("ttfts").is_some();
    let requests = if detailed_lists {
        detailed(&o)?
    } else if o.get("latencies").is_some() {
        latencies_only(&o)?
    } else {
        return Err(o.err(
            "latencies",
            "missing, and no per-request lists: an unknown (older) version of the format, with aggregates only",
        ));
    };
    let (prompt_tokens, gen_tokens) = if !detailed_lists {
        (
            mean_per(&o, "total_input_tokens", completed)?,
            mean_per(&o, "total_output_tokens", completed)?,
        )
    } else {
        (
            typical(requests.iter().filter_map(|r| r.prompt_tokens)),
            typical(requests.iter().filter_map(|r| r.output_tokens)),
        )
    };
    let config: Map<String, Value> = o
        .map
        .iter()
        .filter(|(k, _)| !DETAILED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Import {
        format: ImportFormat::VllmBenchServe,
        tool: TOOL,
        tool_version: "unrecorded".into(),
        machine: Value::Null,
        records: vec![Record {
            loc: Loc::Record(1),
            model,
            prompt_tokens,
            gen_tokens,
            concurrency,
            depth: 0,
            config: Value::Object(config),
            timings: Timings::Requests(requests),
        }],
    })
}

/// A whole-run total over completed requests, rounded to a token count.
fn mean_per(o: &Obj<'_>, field: &str, completed: u32) -> Result<u32, ImportError> {
    let total = o.f64(field)?;
    Ok((total / f64::from(completed)).round() as u32)
}

/// The length every request had, or their rounded median where they
/// differ (a dataset of varied prompts).
pub(super) fn typical(values: impl Iterator<Item = u32>) -> u32 {
    let mut v: Vec<u32> = values.collect();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn secs_to_ns(o: &Obj<'_>, field: &str, s: f64) -> Result<u64, ImportError> {
    super::to_ns(o, field, s, 1e9)
}

/// Each request's end-to-end latency, the one per-request list a file
/// saved without `--save-detailed` keeps; ttft and inter-token latency
/// are only in its aggregates.
fn latencies_only(o: &Obj<'_>) -> Result<Vec<Request>, ImportError> {
    o.numbers("latencies")?
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Ok(Request {
                e2e_ns: Some(secs_to_ns(o, &format!("latencies[{i}]"), *s)?),
                ..Request::default()
            })
        })
        .collect()
}

/// The per-request lists, one request per index; every list the same
/// length.
fn detailed(o: &Obj<'_>) -> Result<Vec<Request>, ImportError> {
    let ttfts = o.numbers("ttfts")?;
    let n = ttfts.len();
    let latencies = o.numbers("latencies")?;
    let input = o.numbers("input_lens")?;
    let output = o.numbers("output_lens")?;
    let starts = match o.get("start_times") {
        Some(_) => Some(o.numbers("start_times")?),
        None => None,
    };
    for (field, len) in [
        ("latencies", latencies.len()),
        ("input_lens", input.len()),
        ("output_lens", output.len()),
    ]
    .into_iter()
    .chain(starts.as_ref().map(|s| ("start_times", s.len())))
    {
        if len != n {
            return Err(o.err(
                field,
                format!("has {len} entries, `ttfts` {n}: one per request"),
            ));
        }
    }
    let itls = match o.required("itls")? {
        Value::Array(a) if a.len() == n => a,
        Value::Array(a) => {
            return Err(o.err("itls", format!("has {} entries, `ttfts` {n}", a.len())));
        }
        _ => return Err(o.err("itls", "must be a list of lists")),
    };
    let errors = o.get("errors").and_then(Value::as_array);
    let first_start = starts
        .as_ref()
        .and_then(|s| s.iter().copied().reduce(f64::min))
        .unwrap_or(0.0);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let error = errors
            .and_then(|e| e.get(i))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let gaps = match &itls[i] {
            Value::Array(g) => g
                .iter()
                .enumerate()
                .map(|(k, x)| {
                    let field = format!("itls[{i}][{k}]");
                    let s = x
                        .as_f64()
                        .ok_or_else(|| o.err(&field, format!("must be a number, not {x}")))?;
                    secs_to_ns(o, &field, s)
                })
                .collect::<Result<Vec<u64>, _>>()?,
            other => {
                return Err(o.err(
                    &format!("itls[{i}]"),
                    format!("must be a list, not {}", super::kind_of(other)),
                ));
            }
        };
        let count = |field: &str, x: f64| -> Result<u32, ImportError> {
            if x < 0.0 || x.fract() != 0.0 || x > f64::from(u32::MAX) {
                return Err(o.err(
                    &format!("{field}[{i}]"),
                    format!("must be a whole number >= 0, not {x}"),
                ));
            }
            Ok(x as u32)
        };
        let ok = error.is_none();
        out.push(Request {
            ttft_ns: if ok {
                Some(secs_to_ns(o, &format!("ttfts[{i}]"), ttfts[i])?)
            } else {
                None
            },
            itl_ns: gaps,
            itl_mean_ns: None,
            e2e_ns: if ok {
                Some(secs_to_ns(o, &format!("latencies[{i}]"), latencies[i])?)
            } else {
                None
            },
            start_ns: match &starts {
                Some(s) => Some(secs_to_ns(
                    o,
                    &format!("start_times[{i}]"),
                    s[i] - first_start,
                )?),
                None => None,
            },
            prompt_tokens: Some(count("input_lens", input[i])?),
            output_tokens: Some(count("output_lens", output[i])?),
            error,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DETAILED_FIXTURE: &str =
        include_str!("../../../../tests/fixtures/imported/vllm-bench-serve.json");

    #[test]
    fn the_fixture_parses_per_request() {
        let import = parse(DETAILED_FIXTURE).unwrap();
        let r = &import.records[0];
        let Timings::Requests(reqs) = &r.timings else {
            panic!("per-request lists expected");
        };
        assert!(!reqs.is_empty());
        assert!(
            reqs.iter()
                .all(|q| q.ttft_ns.is_some() && q.e2e_ns.is_some())
        );
        assert_eq!(import.tool_version, "unrecorded");
        assert!(r.concurrency >= 1);
    }

    #[test]
    fn without_details_only_latencies_are_per_request() {
        let mut v: Value = serde_json::from_str(DETAILED_FIXTURE).unwrap();
        for f in [
            "input_lens",
            "output_lens",
            "start_times",
            "ttfts",
            "itls",
            "generated_texts",
            "errors",
        ] {
            v.as_object_mut().unwrap().remove(f);
        }
        let import = parse(&v.to_string()).unwrap();
        let Timings::Requests(reqs) = &import.records[0].timings else {
            panic!("requests expected");
        };
        assert!(
            reqs.iter()
                .all(|q| q.ttft_ns.is_none() && q.e2e_ns.is_some())
        );
        v.as_object_mut().unwrap().remove("latencies");
        let e = parse(&v.to_string()).unwrap_err();
        assert!(e.message.contains("unknown"), "{e}");
    }

    #[test]
    fn a_list_of_the_wrong_length_is_named() {
        let mut v: Value = serde_json::from_str(DETAILED_FIXTURE).unwrap();
        v["latencies"].as_array_mut().unwrap().pop();
        let e = parse(&v.to_string()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("latencies"), "{e}");
    }

    #[test]
    fn short_start_times_and_huge_durations_are_located_errors() {
        let mut v: Value = serde_json::from_str(DETAILED_FIXTURE).unwrap();
        v["start_times"].as_array_mut().unwrap().pop();
        let e = parse(&v.to_string()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("start_times"), "{e}");
        // A duration that would saturate (and overflow sums) is refused
        // at its field rather than read.
        let mut v: Value = serde_json::from_str(DETAILED_FIXTURE).unwrap();
        v["ttfts"][0] = serde_json::json!(1e300);
        let e = parse(&v.to_string()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("ttfts[0]"), "{e}");
        let mut v: Value = serde_json::from_str(DETAILED_FIXTURE).unwrap();
        v["itls"][0][0] = serde_json::json!(2e6);
        let e = parse(&v.to_string()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("itls[0][0]"), "{e}");
    }

    #[test]
    fn truncated_and_foreign_files_are_refused() {
        let e = parse(&DETAILED_FIXTURE[..DETAILED_FIXTURE.len() - 20]).unwrap_err();
        assert!(e.message.contains("truncated"), "{e}");
        let e = parse(r#"[{"build_commit": "x", "n_prompt": 1}]"#).unwrap_err();
        assert!(e.message.contains("llama-bench"), "{e}");
    }
}
