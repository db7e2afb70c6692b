//! From a parsed results file to one cell: which records a (model,
//! scenario) pair takes, and the events, runs and request rows they make
//! (the same tables a measured cell writes, at the grain the file holds).

use assay_core::config::imported::ImportedOptions;
use assay_core::config::{Arrival, Scenario};
use assay_core::domain::RequestWindow;
use assay_core::tables::{EventRow, RequestRow, RunRow};

use super::{Import, ImportedFacts, Loc, Record, Timings};
use crate::harness::RunEvents;

/// The model's name in the file: the spec's `models` map, else its own.
pub fn file_model<'a>(opts: &'a ImportedOptions, model: &'a str) -> &'a str {
    opts.models.get(model).map_or(model, String::as_str)
}

/// Requests in flight a scenario asks for: 1 without a load profile, the
/// closed loop's concurrency; open-loop scenarios have no counterpart in
/// the files (their records are by concurrency) and match nothing.
pub fn concurrency(s: &Scenario) -> Option<u32> {
    match &s.load {
        None => Some(1),
        Some(l) if l.arrival == Arrival::Closed => Some(l.concurrency),
        Some(_) => None,
    }
}

/// The records one cell takes, or why the pair has none / too many.
#[derive(Debug, PartialEq)]
pub enum Selection<'a> {
    /// llama-bench: a combined test (`-pg`), or a prompt test with a
    /// generation test.
    Tests {
        prompt: Option<&'a Record>,
        generate: Option<&'a Record>,
        combined: Option<&'a Record>,
    },
    /// A run of requests, or an in-process benchmark's timed calls
    /// (optimum-benchmark): one record.
    Requests(&'a Record),
    None,
    /// More than one record fits: which ones.
    Ambiguous(Vec<&'a Record>),
}

impl Selection<'_> {
    pub fn runs(&self) -> bool {
        matches!(self, Selection::Tests { .. } | Selection::Requests(_))
    }
}

/// The records of `file_model` that `scenario` takes. Matching (docs/
/// importers.md): the model by name; batch 1; the scenario's
/// concurrency; a request record by its prompt and generation lengths; a
/// llama-bench cell by a combined test of both lengths, else a prompt test
/// of `prompt_tokens` (n_gen 0) together with a generation test of
/// `gen_tokens` (n_prompt 0), all at depth 0.
pub fn select<'a>(import: &'a Import, file_model: &str, s: &Scenario) -> Selection<'a> {
    let Some(conc) = concurrency(s) else {
        return Selection::None;
    };
    if s.batch != 1 {
        return Selection::None;
    }
    let of_model = |r: &&Record| r.model == file_model && r.depth == 0 && r.concurrency == conc;
    let pick = |want: &dyn Fn(&Record) -> bool| -> Result<Option<&'a Record>, Vec<&'a Record>> {
        let all: Vec<&Record> = import
            .records
            .iter()
            .filter(of_model)
            .filter(|r| want(r))
            .collect();
        match all.len() {
            0 => Ok(None),
            1 => Ok(Some(all[0])),
            _ => Err(all),
        }
    };
    let (p, g) = (s.prompt_tokens, s.gen_tokens);
    let tests = import
        .records
        .iter()
        .any(|r| matches!(r.timings, Timings::Repetitions(_)));
    if !tests {
        return match pick(&|r| r.prompt_tokens == p && r.gen_tokens == g) {
            Ok(Some(r)) => Selection::Requests(r),
            Ok(None) => Selection::None,
            Err(all) => Selection::Ambiguous(all),
        };
    }
    let combined = pick(&|r| r.prompt_tokens == p && r.gen_tokens == g);
    let prompt = pick(&|r| r.prompt_tokens == p && r.gen_tokens == 0);
    let generate = pick(&|r| r.prompt_tokens == 0 && r.gen_tokens == g);
    match (combined, prompt, generate) {
        (Err(all), _, _) | (_, Err(all), _) | (_, _, Err(all)) => Selection::Ambiguous(all),
        (Ok(Some(c)), Ok(prompt), Ok(generate)) => Selection::Tests {
            prompt,
            generate,
            combined: Some(c),
        },
        (Ok(None), Ok(Some(pp)), Ok(Some(tg))) => Selection::Tests {
            prompt: Some(pp),
            generate: Some(tg),
            combined: None,
        },
        _ => Selection::None,
    }
}

/// What one cell writes.
pub struct Built {
    pub events: Vec<EventRow>,
    pub runs: Vec<RunRow>,
    pub requests: Vec<RequestRow>,
    pub facts: ImportedFacts,
}

/// The cell's tables and manifest facts from its selection.
pub fn build(
    cell: &str,
    opts: &ImportedOptions,
    import: &Import,
    file_model: &str,
    scenario: &Scenario,
    selection: &Selection<'_>,
) -> Result<Built, String> {
    let mut facts = ImportedFacts {
        file: opts.file.clone(),
        file_blake3: opts.file_blake3.clone().unwrap_or_default(),
        format: import.format.as_str().into(),
        tool: import.tool.into(),
        tool_version: import.tool_version.clone(),
        file_model: file_model.into(),
        records: Vec::new(),
        grain: String::new(),
        aggregates: Vec::new(),
        not_computable: Vec::new(),
        machine: import.machine.clone(),
        configuration: Vec::new(),
    };
    let take = |r: &Record, facts: &mut ImportedFacts| {
        facts.records.push(match r.loc {
            // A record that is the whole file (an AIPerf run).
            Loc::File => "the whole file".into(),
            loc => loc.to_string().trim_end_matches(": ").to_string(),
        });
        facts.configuration.push(r.config.clone());
    };
    let built = match selection {
        Selection::Tests {
            prompt,
            generate,
            combined,
        } => {
            for r in [prompt, generate, combined].into_iter().flatten() {
                take(r, &mut facts);
            }
            facts.grain = "repetitions".into();
            tests(cell, scenario, *prompt, *generate, *combined, &mut facts)
        }
        Selection::Requests(r) => {
            take(r, &mut facts);
            match &r.timings {
                Timings::Iterations { .. } => {
                    facts.grain = "iterations".into();
                    iterations(cell, scenario, r, &mut facts)
                }
                _ => {
                    facts.grain = "requests".into();
                    requests(cell, scenario, r, &mut facts)
                }
            }
        }
        Selection::None | Selection::Ambiguous(_) => {
            return Err(format!(
                "{}: no single record for model {file_model:?} in scenario {:?}",
                opts.file, scenario.name
            ));
        }
    };
    let (events, runs, requests) = built;
    Ok(Built {
        events,
        runs,
        requests,
        facts,
    })
}

fn samples(r: Option<&Record>) -> &[u64] {
    match r.map(|r| &r.timings) {
        Some(Timings::Repetitions(s)) => s,
        _ => &[],
    }
}

type Tables = (Vec<EventRow>, Vec<RunRow>, Vec<RequestRow>);

/// llama-bench: one run per repetition. A prompt test's sample is the
/// run's `prefill`; a generation test's is `gen_tokens` decode steps,
/// written as one `decode` event of their mean (an aggregate: the steps'
/// own times are not in the file); a combined test's is the run's `e2e`.
/// llama-bench times no first token apart, so there is no `ttft`.
fn tests(
    cell: &str,
    s: &Scenario,
    prompt: Option<&Record>,
    generate: Option<&Record>,
    combined: Option<&Record>,
    facts: &mut ImportedFacts,
) -> Tables {
    let (pp, tg, pg) = (samples(prompt), samples(generate), samples(combined));
    let n = [pp.len(), tg.len(), pg.len()]
        .into_iter()
        .filter(|n| *n > 0)
        .min()
        .unwrap_or(0);
    if !tg.is_empty() {
        facts.aggregates.push(format!(
            "decode: each run's mean step over {} steps generated from an empty context (llama-bench tg{})",
            s.gen_tokens, s.gen_tokens
        ));
        facts
            .not_computable
            .push("decode step percentiles (p90, p95, p99) and the spread of single steps".into());
        facts.not_computable.push(
            "decode_total and decode_fraction: a run's decode event is its mean step, not every step"
                .into(),
        );
    }
    facts
        .not_computable
        .push("ttft: llama-bench does not time the first token apart".into());
    if pg.is_empty() {
        facts.not_computable.push(
            "e2e and the decode fraction: the prompt and generation tests ran apart (no -pg test)"
                .into(),
        );
    }
    let mut events = Vec::new();
    let mut runs = Vec::new();
    for rep in 0..n {
        let run = RunEvents {
            cell,
            repetition: rep as u32,
            warmup: false,
            cold: false,
        };
        let mut at = 0u64;
        if let Some(ns) = pp.get(rep) {
            events.push(run.event("prefill", None, s.prompt_tokens, at, *ns));
            at = at.saturating_add(*ns);
        }
        if let Some(ns) = tg.get(rep) {
            let mean = ns / u64::from(s.gen_tokens.max(1));
            events.push(run.event("decode", None, 1, at, mean));
            at = at.saturating_add(*ns);
        }
        if let Some(ns) = pg.get(rep) {
            events.push(run.event("e2e", None, s.gen_tokens, at, *ns));
        }
        runs.push(imported_run(
            cell,
            rep as u32,
            s.prompt_tokens,
            s,
            s.gen_tokens,
        ));
    }
    (events, runs, Vec::new())
}

/// An in-process benchmark's timed calls (optimum-benchmark): one run per
/// `generate` call, its `prefill` (the prompt's forward and first token)
/// where the lists pair call by call, one `decode` event of the call's
/// mean step (an aggregate: the tool times the decode as one total), and
/// the call as `e2e`.
fn iterations(cell: &str, s: &Scenario, r: &Record, facts: &mut ImportedFacts) -> Tables {
    let Timings::Iterations {
        prefill,
        decode,
        generate,
        decode_steps,
    } = &r.timings
    else {
        return (Vec::new(), Vec::new(), Vec::new());
    };
    let n = generate.len();
    let paired = prefill.len() == n;
    if *decode_steps > 0 {
        facts.aggregates.push(format!(
            "decode: each call's mean step over its {decode_steps} decode steps (optimum-benchmark's decode latency / (max_new_tokens - 1))"
        ));
        facts
            .not_computable
            .push("decode step percentiles (p90, p95, p99) and the spread of single steps".into());
        facts.not_computable.push(
            "decode_total and decode_fraction: a run's decode event is its mean step, not every step"
                .into(),
        );
    }
    facts.not_computable.push(
        "ttft: an in-process benchmark sends no request; its prefill (the prompt's forward and first token) is the prefill event"
            .into(),
    );
    if !paired {
        facts.not_computable.push(format!(
            "prefill per run: the file's {} prefill calls ran apart from its {n} generate calls",
            prefill.len()
        ));
    }
    let mut events = Vec::new();
    let mut runs = Vec::new();
    for i in 0..n {
        let run = RunEvents {
            cell,
            repetition: i as u32,
            warmup: false,
            cold: false,
        };
        let mut at = 0u64;
        if paired {
            events.push(run.event("prefill", None, s.prompt_tokens, 0, prefill[i]));
            at = prefill[i];
        }
        if *decode_steps > 0 {
            let mean = decode[i] / u64::from(*decode_steps);
            events.push(run.event("decode", None, 1, at, mean));
        }
        events.push(run.event("e2e", None, s.gen_tokens, 0, generate[i]));
        runs.push(imported_run(
            cell,
            i as u32,
            s.prompt_tokens,
            s,
            s.gen_tokens,
        ));
    }
    (events, runs, Vec::new())
}

/// A client's requests: one run per successful request, events as a
/// server cell writes them (ttft, one decode per gap, e2e), and every
/// request, failed ones too, as a request row.
fn requests(cell: &str, s: &Scenario, r: &Record, facts: &mut ImportedFacts) -> Tables {
    let Timings::Requests(reqs) = &r.timings else {
        return (Vec::new(), Vec::new(), Vec::new());
    };
    if reqs
        .iter()
        .any(|q| q.itl_ns.is_empty() && q.itl_mean_ns.is_some())
    {
        facts.aggregates.push(
            "decode: a request's mean inter-token latency, where the file lists no gaps".into(),
        );
        facts
            .not_computable
            .push("inter-token latency percentiles over single gaps".into());
        facts.not_computable.push(
            "decode_total and decode_fraction: a request's decode event is its mean gap, not every gap"
                .into(),
        );
    }
    if reqs.iter().all(|q| q.ttft_ns.is_none()) {
        facts
            .not_computable
            .push("ttft: the file records no time to first token".into());
    }
    facts
        .not_computable
        .push("prefill: a client sees no server prefill time".into());
    let mut events = Vec::new();
    let mut runs = Vec::new();
    let mut rows = Vec::new();
    for (i, q) in reqs.iter().enumerate() {
        let i = i as u32;
        let sent = q.start_ns.unwrap_or(0);
        let produced = q.output_tokens.unwrap_or(q.itl_ns.len() as u32 + 1);
        let ok = q.error.is_none();
        rows.push(RequestRow {
            cell: cell.into(),
            request: i,
            window: RequestWindow::Steady.as_str().into(),
            scheduled_ns: sent,
            sent_ns: sent,
            queue_ns: 0,
            ttft_ns: q.ttft_ns,
            itl_ns: q.itl_ns.clone(),
            e2e_ns: q.e2e_ns,
            prompt_tokens: q.prompt_tokens,
            completion_tokens: q.output_tokens,
            chunks: q.itl_ns.len() as u32 + u32::from(q.ttft_ns.is_some()),
            gen_tokens_requested: s.gen_tokens,
            short: produced < s.gen_tokens,
            status: if ok { "ok" } else { "http" }.into(),
            error: q.error.clone(),
            ..RequestRow::default()
        });
        let (true, Some(e2e)) = (ok, q.e2e_ns) else {
            continue;
        };
        let run = RunEvents {
            cell,
            repetition: i,
            warmup: false,
            cold: i == 0,
        };
        if let Some(ttft) = q.ttft_ns {
            events.push(run.event("ttft", Some(0), 1, sent, ttft));
            let mut at = sent.saturating_add(ttft);
            for (k, gap) in q.itl_ns.iter().enumerate() {
                events.push(run.event("decode", Some(k as u32 + 1), 1, at, *gap));
                at = at.saturating_add(*gap);
            }
            if q.itl_ns.is_empty()
                && let Some(mean) = q.itl_mean_ns
            {
                events.push(run.event("decode", None, 1, at, mean));
            }
        }
        events.push(run.event("e2e", None, produced, sent, e2e));
        let prompt = q.prompt_tokens.unwrap_or(s.prompt_tokens);
        runs.push(RunRow {
            // A client's first request meets a cold server.
            cold: i == 0,
            ..imported_run(cell, i, prompt, s, produced)
        });
    }
    (events, runs, rows)
}

/// One imported run of batch 1: steady (the file's runs are what the tool
/// kept), `short` when it produced fewer tokens than the scenario asks.
fn imported_run(
    cell: &str,
    repetition: u32,
    prompt_tokens: u32,
    s: &Scenario,
    produced: u32,
) -> RunRow {
    RunRow {
        cell: cell.into(),
        repetition,
        warmup: false,
        cold: false,
        prompt_tokens,
        batch: 1,
        gen_tokens_requested: s.gen_tokens,
        gen_tokens_produced: produced,
        short: produced < s.gen_tokens,
        output_digest: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use assay_core::config::imported::ImportFormat;

    const JSONL: &str = include_str!("../../../../tests/fixtures/imported/llama-bench.jsonl");
    const VLLM: &str = include_str!("../../../../tests/fixtures/imported/vllm-bench-serve.json");
    const OPTIMUM: &str =
        include_str!("../../../../tests/fixtures/imported/optimum-benchmark/benchmark.json");
    const GUIDELLM: &str =
        include_str!("../../../../tests/fixtures/imported/guidellm-benchmarks.json");

    fn scenario(p: u32, g: u32, load: Option<serde_json::Value>) -> Scenario {
        let mut v =
            serde_json::json!({ "name": "s", "prompt_tokens": p, "batch": 1, "gen_tokens": g });
        if let Some(l) = load {
            v["load"] = l;
        }
        serde_json::from_value(v).unwrap()
    }

    fn options(file: &str, format: ImportFormat) -> ImportedOptions {
        ImportedOptions {
            file: file.into(),
            format,
            models: Default::default(),
            file_blake3: Some("d".into()),
            base_dir: None,
        }
    }

    #[test]
    fn a_llama_bench_cell_takes_its_prompt_and_generation_tests() {
        let import = super::super::parse(ImportFormat::LlamaBench, JSONL.as_bytes()).unwrap();
        let m = "tiny-q8_0.gguf";
        let sel = select(&import, m, &scenario(16, 8, None));
        let Selection::Tests {
            prompt: Some(pp),
            generate: Some(tg),
            combined: None,
        } = sel
        else {
            panic!("pp16 and tg8 expected, got {sel:?}");
        };
        assert_eq!(
            (
                pp.prompt_tokens,
                pp.gen_tokens,
                tg.prompt_tokens,
                tg.gen_tokens
            ),
            (16, 0, 0, 8)
        );
        // Another length, another model, a closed loop of 2: nothing.
        assert_eq!(select(&import, m, &scenario(16, 9, None)), Selection::None);
        assert_eq!(
            select(&import, "other.gguf", &scenario(16, 8, None)),
            Selection::None
        );
        let closed = serde_json::json!({ "arrival": "closed", "concurrency": 2, "requests": 4 });
        assert_eq!(
            select(&import, m, &scenario(16, 8, Some(closed))),
            Selection::None
        );

        let s = scenario(16, 8, None);
        let built = build(
            "c",
            &options("lb.jsonl", ImportFormat::LlamaBench),
            &import,
            m,
            &s,
            &sel,
        )
        .unwrap();
        assert_eq!(built.runs.len(), 3);
        // Per run: prefill, then one aggregate decode event (the mean step).
        assert_eq!(built.events.len(), 6);
        let decode: Vec<_> = built
            .events
            .iter()
            .filter(|e| e.phase == "decode")
            .collect();
        assert!(
            decode
                .iter()
                .all(|e| e.token_index.is_none() && e.tokens == 1)
        );
        assert_eq!(built.facts.records, ["line 1", "line 2"]);
        assert!(built.facts.aggregates[0].starts_with("decode:"));
        // The report says the decode total and fraction cannot be had
        // (summarise leaves them NaN for an aggregate decode).
        assert!(
            built
                .facts
                .not_computable
                .iter()
                .any(|n| n.starts_with("decode_total and decode_fraction")),
            "{:?}",
            built.facts.not_computable
        );
        assert!(built.requests.is_empty());
    }

    #[test]
    fn a_request_cell_has_events_and_request_rows() {
        let import = super::super::parse(ImportFormat::VllmBenchServe, VLLM.as_bytes()).unwrap();
        let s = scenario(16, 8, None);
        let sel = select(&import, "assay/tiny", &s);
        assert!(matches!(sel, Selection::Requests(_)));
        let built = build(
            "c",
            &options("v.json", ImportFormat::VllmBenchServe),
            &import,
            "assay/tiny",
            &s,
            &sel,
        )
        .unwrap();
        assert_eq!(built.requests.len(), 4);
        assert_eq!(built.runs.len(), 4);
        // ttft, 7 gaps, e2e per request.
        assert_eq!(built.events.len(), 4 * 9);
        assert!(built.facts.aggregates.is_empty());
    }

    #[test]
    fn huge_send_times_saturate_rather_than_overflow() {
        let mut import =
            super::super::parse(ImportFormat::VllmBenchServe, VLLM.as_bytes()).unwrap();
        let Timings::Requests(reqs) = &mut import.records[0].timings else {
            panic!("requests expected");
        };
        reqs[1].start_ns = Some(u64::MAX - 1);
        let s = scenario(16, 8, None);
        let sel = select(&import, "assay/tiny", &s);
        let built = build(
            "c",
            &options("v.json", ImportFormat::VllmBenchServe),
            &import,
            "assay/tiny",
            &s,
            &sel,
        )
        .unwrap();
        assert!(
            built
                .events
                .iter()
                .any(|e| e.repetition == 1 && e.start_ns == u64::MAX)
        );
    }

    #[test]
    fn an_optimum_benchmark_cell_has_one_run_per_call_and_an_aggregate_decode() {
        let import =
            super::super::parse(ImportFormat::OptimumBenchmark, OPTIMUM.as_bytes()).unwrap();
        let s = scenario(16, 8, None);
        let sel = select(&import, "assay-tiny", &s);
        assert!(matches!(sel, Selection::Requests(_)), "{sel:?}");
        assert_eq!(
            select(&import, "assay-tiny", &scenario(16, 9, None)),
            Selection::None
        );
        let built = build(
            "c",
            &options("benchmark.json", ImportFormat::OptimumBenchmark),
            &import,
            "assay-tiny",
            &s,
            &sel,
        )
        .unwrap();
        assert_eq!(built.facts.grain, "iterations");
        assert_eq!(built.runs.len(), 3);
        // prefill, one mean decode step, e2e per call.
        assert_eq!(built.events.len(), 9);
        let decode: Vec<_> = built
            .events
            .iter()
            .filter(|e| e.phase == "decode")
            .collect();
        assert!(
            decode
                .iter()
                .all(|e| e.token_index.is_none() && e.tokens == 1)
        );
        assert!(built.facts.aggregates[0].starts_with("decode:"));
        assert!(built.requests.is_empty());
    }

    #[test]
    fn a_guidellm_cell_has_request_rows_and_an_aggregate_decode_per_request() {
        let import = super::super::parse(ImportFormat::Guidellm, GUIDELLM.as_bytes()).unwrap();
        let s = scenario(16, 8, None);
        let sel = select(&import, "assay/tiny", &s);
        let built = build(
            "c",
            &options("g.json", ImportFormat::Guidellm),
            &import,
            "assay/tiny",
            &s,
            &sel,
        )
        .unwrap();
        assert_eq!((built.requests.len(), built.runs.len()), (6, 6));
        // ttft, the request's mean gap, e2e.
        assert_eq!(built.events.len(), 6 * 3);
        assert!(built.facts.aggregates[0].starts_with("decode:"));
    }
}
