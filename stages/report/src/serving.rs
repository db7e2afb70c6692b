//! Serving under load: each server cell's throughput, latency tails, SLO
//! attainment and goodput over its steady window, and the knee of each rate
//! sweep (the `load` and `knees` tables of the goodput node). Absent when
//! the report has no `load` input, so reports without server cells keep
//! their bytes.

use std::collections::BTreeMap;

use crate::document::{Block, f, header, sig};
use crate::{Out, Report, source};
use assay_analysis::goodput;
use assay_core::domain::TokensSource;
use assay_core::stage::{Input, StageError};
use assay_core::tables::{self, KneeRow, LoadRow};

/// The goodput node's output `name`, when the report has it.
fn goodput_input<'a>(rep: &Report<'a>, name: &str) -> Option<&'a Input> {
    rep.inputs
        .iter()
        .find(|i| i.name == name && i.node == goodput::NODE)
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "-".into(), |x| f(x, digits))
}

fn opt_sig(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |x| sig(x, 4))
}

/// The load a cell was driven at, in words.
fn offered(r: &LoadRow) -> String {
    match (r.offered_rps, r.concurrency) {
        (Some(rate), _) => format!("{rate} rps"),
        (None, Some(c)) => format!("{c} in flight"),
        (None, None) => "-".into(),
    }
}

/// The SLO of a row in words; empty without one.
fn slo_text(r: &LoadRow) -> String {
    let mut limits = Vec::new();
    if let Some(t) = r.slo_ttft_ms {
        limits.push(format!("TTFT <= {t} ms"));
    }
    if let Some(t) = r.slo_tpot_ms {
        limits.push(format!("TPOT <= {t} ms"));
    }
    match r.slo_attainment {
        Some(a) if !limits.is_empty() => {
            format!("{}, attainment >= {a}", limits.join(" and "))
        }
        _ => String::new(),
    }
}

pub fn serving(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    let Some(load_in) = goodput_input(rep, goodput::LOAD) else {
        return Ok(());
    };
    let load: Vec<LoadRow> = tables::read_rows(rep.ctx, load_in)?;
    serving_intro(&load, out);
    load_table(&load, load_in, out);
    rate_sweeps(rep, out)
}

/// The section's heading, what its numbers mean, and the SLOs in force.
fn serving_intro(load: &[LoadRow], out: &mut Out) {
    out.doc.push(Block::Heading(2, "Serving under load".into()));
    let chunked: Vec<&str> = load
        .iter()
        .filter(|r| r.tokens_source() != Some(TokensSource::Server))
        .map(|r| r.cell.as_str())
        .collect();
    let tokens = if chunked.is_empty() {
        "the tokens counted are the server's own (its completion token count)".to_string()
    } else {
        format!(
            "the tokens counted are the server's own (its completion token count), except in {}, \
             where the server gave no count for some or all requests and stream chunks carrying text \
             were counted instead",
            chunked.join(", ")
        )
    };
    out.doc.push(Block::Para(format!(
        "Server backends under a load profile, over each cell's steady window only (warmup and cooldown \
         requests are excluded). Latencies are client-side, measured from the request send; {tokens}. \
         The window runs from the first steady send to the last steady end; achieved rps and output tok/s \
         divide completed requests and their output tokens by it. TPOT = (e2e - TTFT) / (output tokens - 1), \
         outputs of one token excluded; ITL is over every gap between chunks. Attainment is the share of \
         steady requests, failed ones counted as misses, that met every SLO limit; goodput is those \
         requests per second of the window (vLLM's --goodput)."
    )));
    let mut slos: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for r in load {
        let text = slo_text(r);
        if !text.is_empty() {
            let scenarios = slos.entry(text).or_default();
            if !scenarios.contains(&r.scenario.as_str()) {
                scenarios.push(&r.scenario);
            }
        }
    }
    if slos.is_empty() {
        out.doc.push(Block::Para(
            "No scenario sets an SLO: no attainment, goodput or knee.".into(),
        ));
    } else {
        out.doc.push(Block::List(
            slos.iter()
                .map(|(text, scenarios)| format!("SLO of {}: {text}", scenarios.join(", ")))
                .collect(),
        ));
    }
}

/// One row per server cell: throughput, latency tails, attainment and
/// goodput, with a claim for each.
fn load_table(load: &[LoadRow], load_in: &Input, out: &mut Out) {
    let mut table = Vec::new();
    for (i, r) in load.iter().enumerate() {
        table.push(vec![
            r.backend.clone(),
            r.model.clone(),
            r.scenario.clone(),
            r.arrival.clone(),
            offered(r),
            format!("{} ({})", r.requests, r.failed),
            opt_sig(r.achieved_rps),
            opt(r.output_tps, 1),
            opt(r.ttft_p50_ms, 1),
            opt(r.ttft_p99_ms, 1),
            opt(r.tpot_p50_ms, 2),
            opt(r.tpot_p99_ms, 2),
            opt(r.itl_p99_ms, 2),
            opt(r.attainment, 3),
            opt_sig(r.goodput_rps),
        ]);
        load_claims(r, i, load_in, out);
    }
    out.doc.push(Block::Table(
        header(&[
            "backend",
            "model",
            "scenario",
            "arrival",
            "offered",
            "requests (failed)",
            "achieved rps",
            "output tok/s",
            "TTFT p50 ms",
            "TTFT p99 ms",
            "TPOT p50 ms",
            "TPOT p99 ms",
            "ITL p99 ms",
            "attainment",
            "goodput rps",
        ]),
        table,
    ));
}

/// The claims of one server cell (row `i` of the load table); a metric the
/// cell has no value for makes no claim.
fn load_claims(r: &LoadRow, i: usize, load_in: &Input, out: &mut Out) {
    let what = format!(
        "{} on {}, scenario {} ({})",
        r.model,
        r.backend,
        r.scenario,
        offered(r)
    );
    let mut claim = |metric: &str, statement: String, value: Option<f64>, unit: &str| {
        if let Some(value) = value {
            out.claim(
                format!("goodput/{}/{metric}", r.cell),
                statement,
                value,
                unit,
                &r.evidence,
                source(load_in, vec![i as u32]),
            );
        }
    };
    claim(
        "achieved_rps",
        format!(
            "Requests completed per second by {what}: {} over a {} s steady window ({} of {} requests completed)",
            opt_sig(r.achieved_rps),
            f(r.window_s, 3),
            r.completed,
            r.requests
        ),
        r.achieved_rps,
        "requests/s",
    );
    claim(
        "output_tps",
        format!(
            "Output tokens per second of {what}: {} ({} tokens counted from {})",
            opt(r.output_tps, 1),
            r.output_tokens,
            r.tokens_source
        ),
        r.output_tps,
        "tokens/s",
    );
    claim(
        "ttft_p99_ms",
        format!(
            "p99 time to first token of {what}: {} ms (p50 {}, client-side from the send)",
            opt(r.ttft_p99_ms, 1),
            opt(r.ttft_p50_ms, 1)
        ),
        r.ttft_p99_ms,
        "ms",
    );
    claim(
        "tpot_p99_ms",
        format!(
            "p99 time per output token of {what}: {} ms (p50 {})",
            opt(r.tpot_p99_ms, 2),
            opt(r.tpot_p50_ms, 2)
        ),
        r.tpot_p99_ms,
        "ms",
    );
    let slo = slo_text(r);
    claim(
        "attainment",
        format!(
            "SLO attainment of {what}: {} of {} steady requests ({}) met {slo}",
            r.good.unwrap_or(0),
            r.requests,
            opt(r.attainment, 3)
        ),
        r.attainment,
        "fraction",
    );
    claim(
        "goodput_rps",
        format!(
            "Goodput of {what}: {} requests/s meeting {slo}",
            opt_sig(r.goodput_rps)
        ),
        r.goodput_rps,
        "requests/s",
    );
}

/// The knee and saturation rate of each rate sweep, when the report has
/// the `knees` table and it has rows.
fn rate_sweeps(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    let Some(knees_in) = goodput_input(rep, goodput::KNEES) else {
        return Ok(());
    };
    let knees: Vec<KneeRow> = tables::read_rows(rep.ctx, knees_in)?;
    if knees.is_empty() {
        return Ok(());
    }
    out.doc
        .push(Block::Heading(3, "Rate sweeps: knee and saturation".into()));
    out.doc.push(Block::Para(format!(
        "The knee is the highest offered rate that is sustainable (attainment at or above the SLO's) with \
         every lower rate sustainable too: the maximum rate under SLO attainment, as DistServe defines \
         goodput; a rate that passes above a failing one does not count. Saturation is the highest offered \
         rate at which completions still come out at {}x or more of the rate requests really arrived at \
         (spacing of completions against spacing of arrivals), with every lower rate so too.",
        goodput::SATURATION_FRACTION
    )));
    let mut table = Vec::new();
    for (i, k) in knees.iter().enumerate() {
        table.push(vec![
            k.backend.clone(),
            k.model.clone(),
            k.family.clone(),
            k.rates
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            opt_sig(k.knee_rps),
            opt_sig(k.saturation_rps),
            k.reason.clone(),
        ]);
        let what = format!("{} on {}, rate sweep {}", k.model, k.backend, k.family);
        if let Some(knee) = k.knee_rps {
            out.claim(
                format!("knee/{}/{}/{}", k.backend, k.model, k.family),
                format!(
                    "Highest sustainable rate of {what}: {} requests/s ({})",
                    sig(knee, 4),
                    k.reason
                ),
                knee,
                "requests/s",
                &k.evidence,
                source(knees_in, vec![i as u32]),
            );
        }
        if let Some(saturation) = k.saturation_rps {
            out.claim(
                format!("saturation/{}/{}/{}", k.backend, k.model, k.family),
                format!(
                    "Highest rate {what} keeps up with: {} requests/s (achieved >= {} x offered)",
                    sig(saturation, 4),
                    goodput::SATURATION_FRACTION
                ),
                saturation,
                "requests/s",
                &k.evidence,
                source(knees_in, vec![i as u32]),
            );
        }
    }
    out.doc.push(Block::Table(
        header(&[
            "backend",
            "model",
            "family",
            "rates (rps)",
            "knee rps",
            "saturation rps",
            "why",
        ]),
        table,
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use assay_store::{Digest, Store};

    use crate::{ReportJson, ReportParams, ReportStage};
    use assay_analysis::validate::Checks;
    use assay_core::stage::{Input, Outputs, Stage, StageContext};
    use assay_core::tables::{self, KneeRow, LoadRow, SummaryRow, ValidationRow};
    use assay_measure::Boundary;

    fn input(store: &Store, node: &str, name: &str, bytes: &[u8]) -> Input {
        Input {
            node: node.into(),
            key: Digest::of(node.as_bytes()),
            name: name.into(),
            digest: store.put(bytes).unwrap(),
        }
    }

    fn run(store: &Store, inputs: &[Input]) -> Outputs {
        let stage = ReportStage {
            params: ReportParams {
                spec_id: "t".into(),
                title: "T".into(),
                question: "Q?".into(),
                decision: "D".into(),
                boundary: Boundary::once(),
                scenarios: Vec::new(),
                cost: None,
                energy: None,
                workloads: Default::default(),
                slo: None,
            },
        };
        let cancel = AtomicBool::new(false);
        let progress = |_: &str| {};
        let ctx = StageContext::new(store, Digest::of(b"report"), &cancel, &progress);
        stage.run(&ctx, inputs).unwrap()
    }

    fn load_row() -> LoadRow {
        LoadRow {
            cell: "srv/m/chat-r2".into(),
            backend: "srv".into(),
            model: "m".into(),
            scenario: "chat-r2".into(),
            family: Some("chat".into()),
            evidence: "measured".into(),
            arrival: "poisson".into(),
            offered_rps: Some(2.0),
            requests: 100,
            completed: 99,
            failed: 1,
            window_s: 50.5,
            achieved_rps: Some(1.96),
            output_tokens: 12672,
            output_tps: Some(250.9),
            tokens_source: "server".into(),
            ttft_p50_ms: Some(80.0),
            ttft_p90_ms: Some(120.0),
            ttft_p99_ms: Some(210.5),
            tpot_p50_ms: Some(21.0),
            tpot_p90_ms: Some(25.0),
            tpot_p99_ms: Some(31.25),
            itl_p50_ms: Some(20.0),
            itl_p99_ms: Some(44.0),
            e2e_p50_ms: Some(2800.0),
            e2e_p99_ms: Some(4100.0),
            queue_p99_ms: Some(0.1),
            slo_ttft_ms: Some(500.0),
            slo_tpot_ms: Some(50.0),
            slo_attainment: Some(0.9),
            good: Some(97),
            attainment: Some(0.97),
            goodput_rps: Some(1.92),
            mlperf_pass: Some(false),
            sustainable: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn the_serving_section_appears_only_with_a_load_input() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let base = vec![
            input(
                &store,
                "summarise",
                "summary",
                &tables::to_parquet::<SummaryRow>(&[]).unwrap(),
            ),
            input(
                &store,
                "validate",
                "validation",
                &tables::to_parquet::<ValidationRow>(&[]).unwrap(),
            ),
            input(
                &store,
                "validate",
                "checks",
                &tables::to_json(&Checks { checks: Vec::new() }).unwrap(),
            ),
        ];
        let without = run(&store, &base);
        let md = String::from_utf8(without["report.md"].clone()).unwrap();
        assert!(!md.contains("Serving under load"), "{md}");

        let knee = KneeRow {
            backend: "srv".into(),
            model: "m".into(),
            family: "chat".into(),
            evidence: "measured".into(),
            rates: vec![1.0, 2.0, 4.0],
            cells: vec![
                "srv/m/chat-r1".into(),
                "srv/m/chat-r2".into(),
                "srv/m/chat-r4".into(),
            ],
            slo_attainment: Some(0.9),
            knee_rps: Some(2.0),
            saturation_rps: Some(2.0),
            reason: "r=1 met 1.000 >= 0.9; r=2 met 0.970 >= 0.9; r=4 met 0.410 < 0.9".into(),
        };
        let mut with = base.clone();
        with.push(input(
            &store,
            "goodput",
            "load",
            &tables::to_parquet(&[load_row()]).unwrap(),
        ));
        with.push(input(
            &store,
            "goodput",
            "knees",
            &tables::to_parquet(&[knee]).unwrap(),
        ));
        let out = run(&store, &with);
        let md = String::from_utf8(out["report.md"].clone()).unwrap();
        assert!(md.contains("## Serving under load"), "{md}");
        assert!(
            md.contains("Latencies are client-side, measured from the request send; the tokens counted are the server's own"),
            "{md}"
        );
        assert!(
            md.contains("| srv | m | chat-r2 | poisson | 2 rps | 100 (1) | 1.960 | 250.9 | 80.0 | 210.5 | 21.00 | 31.25 | 44.00 | 0.970 | 1.920 |"),
            "{md}"
        );
        assert!(
            md.contains("SLO of chat-r2: TTFT <= 500 ms and TPOT <= 50 ms, attainment >= 0.9"),
            "{md}"
        );
        assert!(md.contains("### Rate sweeps: knee and saturation"), "{md}");
        assert!(
            md.contains("| srv | m | chat | 1, 2, 4 | 2.000 | 2.000 |"),
            "{md}"
        );
        // The section sits after the results and before attribution.
        let results = md.find("## Results").unwrap();
        let serving = md.find("## Serving under load").unwrap();
        assert!(results < serving);
        if let Some(attribution) = md.find("## Attribution") {
            assert!(serving < attribution);
        }
        let html = String::from_utf8(out["report.html"].clone()).unwrap();
        assert!(html.contains("<h2 id=\"s-serving-under-load\">Serving under load</h2>"));

        let json: ReportJson = serde_json::from_slice(&out["report.json"]).unwrap();
        let claim = |id: &str| {
            json.claims
                .iter()
                .find(|c| c.id == id)
                .unwrap_or_else(|| panic!("no claim {id}"))
        };
        let goodput = claim("goodput/srv/m/chat-r2/goodput_rps");
        assert_eq!(goodput.value, 1.92);
        assert_eq!(goodput.source.node, "goodput");
        assert_eq!(goodput.source.artifact, "load");
        assert_eq!(goodput.source.rows, vec![0]);
        assert_eq!(goodput.evidence, "measured");
        assert_eq!(claim("goodput/srv/m/chat-r2/ttft_p99_ms").value, 210.5);
        assert_eq!(claim("goodput/srv/m/chat-r2/tpot_p99_ms").value, 31.25);
        assert_eq!(claim("goodput/srv/m/chat-r2/attainment").value, 0.97);
        let knee = claim("knee/srv/m/chat");
        assert_eq!(knee.value, 2.0);
        assert_eq!(knee.source.artifact, "knees");
        assert_eq!(claim("saturation/srv/m/chat").value, 2.0);

        // Without the section and the two new artifacts, the report is the
        // one without them.
        let before = String::from_utf8(without["report.md"].clone()).unwrap();
        let end = serving + md[serving..].find("\n## Attribution").unwrap() + 1;
        let stripped: String = format!("{}{}", &md[..serving], &md[end..])
            .lines()
            .filter(|l| !l.starts_with("| goodput |"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(stripped, before);
        // Same inputs, same bytes.
        assert_eq!(out, run(&store, &with));
    }

    #[test]
    fn chunk_counts_and_missing_slos_are_said() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut row = load_row();
        row.tokens_source = "chunks".into();
        row.slo_ttft_ms = None;
        row.slo_tpot_ms = None;
        row.slo_attainment = None;
        row.good = None;
        row.attainment = None;
        row.goodput_rps = None;
        let inputs = vec![
            input(
                &store,
                "summarise",
                "summary",
                &tables::to_parquet::<SummaryRow>(&[]).unwrap(),
            ),
            input(
                &store,
                "validate",
                "validation",
                &tables::to_parquet::<ValidationRow>(&[]).unwrap(),
            ),
            input(
                &store,
                "validate",
                "checks",
                &tables::to_json(&Checks { checks: Vec::new() }).unwrap(),
            ),
            input(
                &store,
                "goodput",
                "load",
                &tables::to_parquet(&[row]).unwrap(),
            ),
        ];
        let out = run(&store, &inputs);
        let md = String::from_utf8(out["report.md"].clone()).unwrap();
        assert!(
            md.contains("except in srv/m/chat-r2, where the server gave no count"),
            "{md}"
        );
        assert!(md.contains("No scenario sets an SLO"), "{md}");
        assert!(!md.contains("Rate sweeps"), "{md}");
        let json: ReportJson = serde_json::from_slice(&out["report.json"]).unwrap();
        assert!(json.claims.iter().all(|c| !c.id.ends_with("/goodput_rps")));
        assert!(
            json.claims
                .iter()
                .any(|c| c.id == "goodput/srv/m/chat-r2/ttft_p99_ms")
        );
    }
}
