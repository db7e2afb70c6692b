//! optimum-benchmark's `benchmark.json`: `config` (the run's `backend`,
//! `scenario`, `launcher` and `environment`, where
//! `optimum_benchmark_version` is) and `report`, one entry per target of
//! the inference scenario (`load_model`, `first_generate`, `generate`,
//! `prefill`, `decode`, `per_token`), each with `latency` (`unit` "s",
//! per-call `values`, and their mean and percentiles), `throughput`,
//! `memory`, `energy`, `efficiency`. Read as optimum-benchmark 0.6.0
//! writes it (the fixture's version; `Benchmark.save_json`, or the CLI's
//! `benchmark.json`): the report alone (`benchmark_report.json`) records
//! no model, shapes or version, and is refused with a pointer to
//! `benchmark.json`.

use serde_json::{Map, Value};

use super::{Import, ImportError, Loc, Obj, Record, Timings, json_error, not_this_tool};
use assay_core::config::imported::ImportFormat;

const TOOL: &str = "optimum-benchmark";

/// The `major.minor` versions whose layout assay reads.
const VERSIONS: &[&str] = &["0.6"];

/// optimum-benchmark's own default for `max_new_tokens` (and
/// `min_new_tokens`), used when `generate_kwargs` leaves them out
/// (`TEXT_GENERATION_DEFAULT_KWARGS` in scenarios/inference/scenario.py).
const DEFAULT_NEW_TOKENS: u32 = 100;

/// The report's targets of text generation that become events.
const TIMED: [&str; 3] = ["prefill", "decode", "generate"];

pub fn parse(text: &str) -> Result<Import, ImportError> {
    let v: Value = serde_json::from_str(text).map_err(|e| json_error(&e, 0))?;
    let top = Obj::new(Loc::File, &v).map_err(|e| not_this_tool(&v, TOOL, e))?;
    if top.get("config").is_none() && (top.get("prefill").is_some() || top.get("decode").is_some())
    {
        return Err(top.err(
            "config",
            "missing: this is optimum-benchmark's report alone (benchmark_report.json), which records no model, input shapes or version; give benchmark.json, which holds the configuration and the report",
        ));
    }
    if top.get("config").is_none() || top.get("report").is_none() {
        let field = if top.get("report").is_none() {
            "report"
        } else {
            "config"
        };
        return Err(not_this_tool(
            &v,
            TOOL,
            top.err(field, "missing: not optimum-benchmark's benchmark.json"),
        ));
    }
    let config = top.object("config")?;
    let env = config.object("environment")?;
    let version = env.string("optimum_benchmark_version")?;
    let minor: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
    if !VERSIONS.contains(&minor.as_str()) {
        return Err(env.err(
            "optimum_benchmark_version",
            format!(
                "{version} is an unknown version of optimum-benchmark's report (assay reads 0.6.x)"
            ),
        ));
    }
    let backend = config.object("backend")?;
    let model = name_only(&backend.string("model")?);
    let scenario = config.object("scenario")?;
    let kind = scenario.string("name")?;
    if kind != "inference" {
        return Err(scenario.err(
            "name",
            format!("is {kind:?}: only the inference scenario's reports are read"),
        ));
    }
    let shapes = scenario.object("input_shapes")?;
    let batch = shapes.u32("batch_size")?;
    let prompt_tokens = shapes.u32("sequence_length")?;
    let kwargs = scenario.opt_object("generate_kwargs")?;
    let kwarg = |field: &str, default: u32| -> Result<u32, ImportError> {
        match &kwargs {
            Some(g) => Ok(g.opt_u32(field)?.unwrap_or(default)),
            None => Ok(default),
        }
    };
    let gen_tokens = kwarg("max_new_tokens", DEFAULT_NEW_TOKENS)?;
    let min_tokens = kwarg("min_new_tokens", DEFAULT_NEW_TOKENS)?;
    let beams = kwarg("num_beams", 1)?;
    if gen_tokens == 0 {
        return Err(match &kwargs {
            Some(g) => g.err("max_new_tokens", "is 0: no token generated"),
            None => scenario.err("generate_kwargs", "sets no tokens to generate"),
        });
    }
    let report = top.object("report")?;
    let mut lists: Vec<Vec<u64>> = Vec::with_capacity(TIMED.len());
    for target in TIMED {
        if report.get(target).is_none() {
            return Err(report.err(
                target,
                format!(
                    "missing: only text-generation reports (prefill, decode, generate) are read (task {:?})",
                    backend.opt_string("task")?.unwrap_or_default()
                ),
            ));
        }
        let latency = report.object(target)?.object("latency")?;
        let unit = latency.string("unit")?;
        if unit != "s" {
            return Err(latency.err(
                "unit",
                format!("is {unit:?}: latencies are in seconds (\"s\")"),
            ));
        }
        let values = latency
            .numbers("values")?
            .iter()
            .enumerate()
            .map(|(i, s)| super::to_ns(&latency, &format!("values[{i}]"), *s, 1e9))
            .collect::<Result<Vec<u64>, _>>()?;
        if values.is_empty() {
            return Err(latency.err("values", "is empty: no call was timed"));
        }
        lists.push(values);
    }
    let (prefill, decode, generate) = (lists.remove(0), lists.remove(0), lists.remove(0));
    // decode is generate less prefill, value by value (Latency.__sub__):
    // one list per call, of the same length.
    if decode.len() != generate.len() {
        return Err(report.err(
            "decode.latency.values",
            format!(
                "has {} values, `generate.latency.values` {}: one per call",
                decode.len(),
                generate.len()
            ),
        ));
    }
    // Greedy single sequences of a fixed length match a scenario (batch
    // 1, one request at a time); a batch, beams or a variable length
    // match none (concurrency 0), and are still read and reported.
    let concurrency = u32::from(batch == 1 && beams == 1 && min_tokens >= gen_tokens);
    Ok(Import {
        format: ImportFormat::OptimumBenchmark,
        tool: TOOL,
        tool_version: version,
        machine: env.map.clone().into(),
        records: vec![Record {
            loc: Loc::File,
            model,
            prompt_tokens,
            gen_tokens,
            concurrency,
            depth: 0,
            config: configuration(&config, &report),
            timings: Timings::Iterations {
                prefill,
                decode,
                generate,
                // The first token comes with prefill (the tool's decode
                // volume is max_new_tokens - 1 per sequence).
                decode_steps: gen_tokens - 1,
            },
        }],
    })
}

/// A model named by a local path is its last component (no host path in
/// the manifest); a hub id (`org/name`) stays.
fn name_only(model: &str) -> String {
    let pathy = model.starts_with(['/', '\\', '~', '.']) || model.get(1..3) == Some(":\\");
    if !pathy {
        return model.to_string();
    }
    model
        .trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(model)
        .to_string()
}

/// What the manifest keeps: the backend (its model and processor reduced
/// to names), scenario and launcher as recorded, and the report's
/// aggregates under `aggregates`: every target's latency statistics
/// (count, total, mean, p50, p90, p95, p99, stdev) without the per-call
/// values, its throughput, memory, energy and efficiency, as the tool
/// computed them.
fn configuration(config: &Obj<'_>, report: &Obj<'_>) -> Value {
    let mut out = Map::new();
    if let Some(Value::Object(b)) = config.get("backend") {
        let mut b = b.clone();
        for k in ["model", "processor"] {
            if let Some(Value::String(s)) = b.get(k) {
                let named = name_only(s);
                b.insert(k.into(), Value::String(named));
            }
        }
        out.insert("backend".into(), Value::Object(b));
    }
    for k in ["scenario", "launcher", "name"] {
        if let Some(v) = config.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    let mut agg = Map::new();
    for (target, m) in report.map {
        let Value::Object(m) = m else {
            continue;
        };
        let mut t = Map::new();
        for (k, v) in m {
            match (k.as_str(), v) {
                (_, Value::Null) => {}
                ("latency", Value::Object(l)) => {
                    let stats: Map<String, Value> = l
                        .iter()
                        .filter(|(k, _)| k.as_str() != "values")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    t.insert(k.clone(), Value::Object(stats));
                }
                _ => {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
        agg.insert(target.clone(), Value::Object(t));
    }
    out.insert(
        "aggregates".into(),
        serde_json::json!({ "over": "the tool's timed calls", "targets": agg }),
    );
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str =
        include_str!("../../../../tests/fixtures/imported/optimum-benchmark/benchmark.json");
    const REPORT: &str =
        include_str!("../../../../tests/fixtures/imported/optimum-benchmark/benchmark_report.json");

    #[test]
    fn the_real_report_parses_per_call() {
        let import = parse(FIXTURE).unwrap();
        assert_eq!(import.tool_version, "0.6.0");
        assert_eq!(
            import.machine["cpu_count"].as_u64().map(|n| n > 0),
            Some(true)
        );
        let r = &import.records[0];
        assert_eq!(
            (
                r.model.as_str(),
                r.prompt_tokens,
                r.gen_tokens,
                r.concurrency
            ),
            ("assay-tiny", 16, 8, 1)
        );
        let Timings::Iterations {
            prefill,
            decode,
            generate,
            decode_steps,
        } = &r.timings
        else {
            panic!("iterations expected");
        };
        assert_eq!(*decode_steps, 7);
        assert_eq!((prefill.len(), decode.len(), generate.len()), (3, 3, 3));
        for i in 0..3 {
            assert!(prefill[i] < generate[i] && decode[i] < generate[i]);
        }
        // The aggregates are kept, without the per-call values; no host path.
        let config = r.config.to_string();
        assert!(
            config.contains("\"p99\"") && config.contains("tokens/s"),
            "{config}"
        );
        assert!(!config.contains("\"values\""), "{config}");
        assert!(
            FIXTURE.contains("/tmp/") && !config.contains("/tmp/"),
            "{config}"
        );
    }

    #[test]
    fn the_report_alone_is_refused_with_a_pointer() {
        let e = parse(REPORT).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("config"), "{e}");
        assert!(e.message.contains("benchmark.json"), "{e}");
    }

    #[test]
    fn faults_are_located() {
        let e = parse(&FIXTURE[..FIXTURE.len() / 2]).unwrap_err();
        assert!(e.message.contains("truncated"), "{e}");
        let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
        v["config"]["environment"]["optimum_benchmark_version"] = serde_json::json!("0.2.1");
        let e = parse(&v.to_string()).unwrap_err();
        assert_eq!(
            e.field.as_deref(),
            Some("config.environment.optimum_benchmark_version"),
            "{e}"
        );
        assert!(e.message.contains("unknown version"), "{e}");
        let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
        v["report"]["prefill"]["latency"]["values"][1] = serde_json::json!(-1.0);
        let e = parse(&v.to_string()).unwrap_err();
        assert_eq!(
            e.field.as_deref(),
            Some("report.prefill.latency.values[1]"),
            "{e}"
        );
        let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
        v["report"]["decode"]["latency"]["values"]
            .as_array_mut()
            .unwrap()
            .pop();
        let e = parse(&v.to_string()).unwrap_err();
        assert_eq!(
            e.field.as_deref(),
            Some("report.decode.latency.values"),
            "{e}"
        );
        let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
        v["report"].as_object_mut().unwrap().remove("decode");
        let e = parse(&v.to_string()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("report.decode"), "{e}");
    }

    #[test]
    fn a_batch_matches_no_scenario_and_paths_become_names() {
        let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
        v["config"]["scenario"]["input_shapes"]["batch_size"] = serde_json::json!(4);
        assert_eq!(parse(&v.to_string()).unwrap().records[0].concurrency, 0);
        assert_eq!(name_only("/home/me/models/tiny/"), "tiny");
        assert_eq!(name_only("C:\\models\\tiny"), "tiny");
        assert_eq!(name_only("org/name"), "org/name");
        assert_eq!(name_only("gpt2"), "gpt2");
    }

    #[test]
    fn other_tools_files_are_named() {
        let e = parse(r#"{"request_throughput": 1, "completed": 2}"#).unwrap_err();
        assert!(e.message.contains("vLLM"), "{e}");
        let e = parse(r#"{"metadata": {}, "benchmarks": []}"#).unwrap_err();
        assert!(e.message.contains("GuideLLM"), "{e}");
    }
}
