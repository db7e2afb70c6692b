//! llama.cpp's `llama-bench` output: `-o json` (one array of test
//! records) or `-o jsonl` (one record per line). Each record is one test
//! of one model: `pp<n_prompt>` (prompt processing, n_gen 0),
//! `tg<n_gen>` (generation from an empty context, n_prompt 0) or both
//! (`-pg`), with every repetition's total time in `samples_ns`
//! (tools/llama-bench/llama-bench.cpp, `test::get_fields` and the JSON
//! printer). There is no format version in the file: assay reads builds
//! that write `samples_ns` and `build_number`, and refuses older output
//! that holds only averages.

use serde_json::{Map, Value};

use super::{Import, ImportError, Loc, Obj, Record, Timings, json_error, not_this_tool};
use assay_core::config::imported::ImportFormat;

const TOOL: &str = "llama-bench";

/// Fields that are timings, kept out of a record's recorded configuration.
const TIMING_FIELDS: &[&str] = &[
    "samples_ns",
    "samples_ts",
    "avg_ns",
    "stddev_ns",
    "avg_ts",
    "stddev_ts",
];

/// Fields describing the machine rather than the test.
const MACHINE_FIELDS: &[&str] = &["cpu_info", "gpu_info", "backends"];

pub fn parse(text: &str) -> Result<Import, ImportError> {
    // `-o json` is one array; `-o jsonl` one object per line. A text that
    // is one JSON object (a one-line JSONL, or another tool's JSON) is read
    // whole, so that a pretty-printed object is not mistaken for a
    // truncated line.
    let values: Vec<(Loc, Value)> = if let Ok(v @ Value::Object(_)) = serde_json::from_str(text) {
        vec![(Loc::Line(1), v)]
    } else if text.trim_start().starts_with('[') {
        let v: Value = serde_json::from_str(text).map_err(|e| json_error(&e, 0))?;
        match v {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Loc::Record(i + 1), v))
                .collect(),
            other => {
                return Err(ImportError::new(
                    Loc::File,
                    None,
                    format!(
                        "must be a JSON list of test records, not {}",
                        super::kind_of(&other)
                    ),
                ));
            }
        }
    } else {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line).map_err(|e| json_error(&e, i))?;
            out.push((Loc::Line(i + 1), v));
        }
        out
    };
    if values.is_empty() {
        return Err(ImportError::new(Loc::File, None, "no test records"));
    }
    let mut records = Vec::new();
    let mut tool_version: Option<String> = None;
    let mut machine = Value::Null;
    for (loc, v) in &values {
        let o = Obj::new(*loc, v)?;
        if o.get("build_commit").is_none() {
            return Err(not_this_tool(
                v,
                TOOL,
                o.err("build_commit", "missing: not a llama-bench test record"),
            ));
        }
        let version = format!(
            "b{} ({})",
            o.u64("build_number")?,
            o.string("build_commit")?
        );
        match &tool_version {
            None => tool_version = Some(version),
            Some(first) if *first != version => {
                return Err(o.err(
                    "build_number",
                    format!("{version} differs from the file's first record ({first}): one file, one build"),
                ));
            }
            Some(_) => {}
        }
        if o.get("samples_ns").is_none() && o.get("avg_ns").is_some() {
            return Err(o.err(
                "samples_ns",
                "missing: an unknown (older) version of llama-bench's output, with averages only; assay reads output with per-repetition `samples_ns`",
            ));
        }
        let samples = o.numbers("samples_ns")?;
        if samples.is_empty() {
            return Err(o.err("samples_ns", "is empty: the test has no repetitions"));
        }
        let mut timings = Vec::with_capacity(samples.len());
        for (i, s) in samples.iter().enumerate() {
            if *s <= 0.0 || s.fract() != 0.0 {
                return Err(o.err(
                    &format!("samples_ns[{i}]"),
                    format!("must be a whole number of ns > 0, not {s}"),
                ));
            }
            timings.push(super::to_ns(&o, &format!("samples_ns[{i}]"), *s, 1.0)?);
        }
        let prompt_tokens = o.u32("n_prompt")?;
        let gen_tokens = o.u32("n_gen")?;
        if prompt_tokens == 0 && gen_tokens == 0 {
            return Err(o.err(
                "n_gen",
                "n_prompt and n_gen are both 0: the test times nothing",
            ));
        }
        o.u32("n_threads")?;
        let model = o.string("model_filename")?;
        let depth = o.opt_u32("n_depth")?.unwrap_or(0);
        if machine.is_null() {
            machine = Value::Object(pick(o.map, |k| MACHINE_FIELDS.contains(&k)));
        }
        records.push(Record {
            loc: *loc,
            model: file_name(&model).to_string(),
            prompt_tokens,
            gen_tokens,
            concurrency: 1,
            depth,
            config: {
                let mut config = pick(o.map, |k| {
                    !TIMING_FIELDS.contains(&k) && !MACHINE_FIELDS.contains(&k)
                });
                // The path as given names a host's directories: keep the
                // file name only.
                config.insert("model_filename".into(), file_name(&model).into());
                Value::Object(config)
            },
            timings: Timings::Repetitions(timings),
        });
    }
    Ok(Import {
        format: ImportFormat::LlamaBench,
        tool: TOOL,
        tool_version: tool_version.unwrap_or_default(),
        machine,
        records,
    })
}

fn pick(map: &Map<String, Value>, keep: impl Fn(&str) -> bool) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| keep(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// llama-bench records the model path as given; the spec names the file.
fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = include_str!("../../../../tests/fixtures/imported/llama-bench.json");
    const JSONL: &str = include_str!("../../../../tests/fixtures/imported/llama-bench.jsonl");

    #[test]
    fn the_real_outputs_parse() {
        for text in [JSON, JSONL] {
            let import = parse(text).unwrap();
            assert_eq!(import.tool, "llama-bench");
            assert!(
                import.tool_version.starts_with('b'),
                "{}",
                import.tool_version
            );
            assert!(import.machine.get("cpu_info").is_some());
            assert!(
                import
                    .records
                    .iter()
                    .any(|r| r.gen_tokens == 0 && r.prompt_tokens > 0)
            );
            assert!(
                import
                    .records
                    .iter()
                    .any(|r| r.prompt_tokens == 0 && r.gen_tokens > 0)
            );
            for r in &import.records {
                assert!(matches!(&r.timings, Timings::Repetitions(s) if !s.is_empty()));
                assert!(r.model.ends_with(".gguf"), "{}", r.model);
            }
        }
        let (a, b) = (parse(JSON).unwrap(), parse(JSONL).unwrap());
        assert_eq!(a.records.len(), b.records.len());
    }

    #[test]
    fn a_truncated_file_is_located() {
        let cut = &JSON[..JSON.len() / 2];
        let e = parse(cut).unwrap_err();
        assert!(matches!(e.loc, Loc::Line(_)), "{e}");
        assert!(e.message.contains("truncated"), "{e}");
        // JSONL: the last line cut.
        let cut = JSONL.trim_end();
        let cut = &cut[..cut.len() - 10];
        let e = parse(cut).unwrap_err();
        assert_eq!(e.loc, Loc::Line(cut.lines().count()), "{e}");
    }

    #[test]
    fn a_bad_field_is_named() {
        let bad = JSONL.replacen("\"n_gen\": 0", "\"n_gen\": -1", 1);
        let bad = if bad == JSONL {
            JSONL.replacen("\"n_gen\":0", "\"n_gen\":-1", 1)
        } else {
            bad
        };
        let e = parse(&bad).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("n_gen"), "{e}");
        assert_eq!(e.loc, Loc::Line(1), "{e}");
    }

    #[test]
    fn a_huge_sample_is_a_located_error() {
        let huge = r#"{"build_commit": "abc", "build_number": 1, "model_filename": "m.gguf", "n_prompt": 8, "n_gen": 0, "n_threads": 1, "samples_ns": [5, 1e300]}"#;
        let e = parse(huge).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("samples_ns[1]"), "{e}");
        assert!(e.message.contains("largest duration"), "{e}");
    }

    #[test]
    fn an_older_version_is_refused() {
        let old = r#"{"build_commit": "abc", "build_number": 1, "model_filename": "m.gguf", "n_prompt": 8, "n_gen": 0, "n_threads": 1, "avg_ns": 5}"#;
        let e = parse(old).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("samples_ns"));
        assert!(e.message.contains("unknown"), "{e}");
    }

    #[test]
    fn another_tool_is_named() {
        let vllm = r#"{"date": "x", "completed": 3, "request_throughput": 1.0}"#;
        let e = parse(vllm).unwrap_err();
        assert!(e.message.contains("vLLM"), "{e}");
        assert_eq!(e.field.as_deref(), Some("build_commit"));
    }
}
