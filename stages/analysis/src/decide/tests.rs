use std::collections::BTreeMap;

use assay_core::config::Scenario;
use assay_core::tables::{CostRow, SummaryRow};

use super::rank::{SloCheck, slo_check};
use super::*;

fn scen(name: &str, prompt: u32, batch: u32, gen_tokens: u32) -> Scenario {
    Scenario {
        name: name.into(),
        prompt_tokens: prompt,
        batch,
        gen_tokens,
        load: None,
    }
}

/// A measured f32 summary row with median `median` ms and CI
/// [median - half, median + half], p99 median + 3 half; tokens_per_s as
/// summarise computes it (prefill P*B, decode B, e2e G*B tokens per
/// median). No warmup and no cold run.
fn row(
    s: &Scenario,
    backend: &str,
    model: &str,
    phase: &str,
    median: f64,
    half: f64,
    n: u32,
) -> SummaryRow {
    let tokens = match phase {
        "prefill" => s.prompt_tokens * s.batch,
        "decode" => s.batch,
        "e2e" => s.gen_tokens * s.batch,
        _ => 0,
    };
    SummaryRow {
        cell: format!("{backend}/{model}/{}", s.name),
        backend: backend.into(),
        model: model.into(),
        scenario: s.name.clone(),
        phase: phase.into(),
        evidence: "measured".into(),
        dtype: "f32".into(),
        prompt_tokens: s.prompt_tokens,
        batch: s.batch,
        gen_tokens: s.gen_tokens,
        n,
        median_ms: median,
        median_ci_low_ms: median - half,
        median_ci_high_ms: median + half,
        p95_ms: median + 2.0 * half,
        p99_ms: median + 3.0 * half,
        warmup_ratio: f64::NAN,
        cold_median_ms: f64::NAN,
        decode_fraction: f64::NAN,
        tokens_per_s: f64::from(tokens) / (median / 1000.0),
        ..Default::default()
    }
}

fn e2e(s: &Scenario, backend: &str, model: &str, fraction: f64) -> SummaryRow {
    SummaryRow {
        decode_fraction: fraction,
        ..row(s, backend, model, "e2e", 100.0, 1.0, 5)
    }
}

fn run(summary: &[SummaryRow], cost: &[CostRow], scenarios: &[Scenario]) -> Decisions {
    run_with(summary, cost, scenarios, &BTreeMap::new())
}

fn run_with(
    summary: &[SummaryRow],
    cost: &[CostRow],
    scenarios: &[Scenario],
    workloads: &BTreeMap<WorkloadClass, Vec<String>>,
) -> Decisions {
    decide(&Inputs {
        summary,
        cost,
        scenarios,
        workloads,
        backends: &BTreeMap::new(),
        models: &BTreeMap::new(),
        slo: &BTreeMap::new(),
        tiers: &[],
    })
}

fn class(d: &Decisions, c: WorkloadClass) -> &Decision {
    d.per_class.iter().find(|x| x.class == c).unwrap()
}

/// The only model configuration of a class.
fn only(d: &Decision) -> &BackendDecision {
    assert_eq!(d.backends.len(), 1, "{:?}", d.backends);
    &d.backends[0]
}

fn model<'d>(d: &'d Decision, m: &str, dtype: &str) -> &'d BackendDecision {
    d.backends
        .iter()
        .find(|b| b.model == m && b.dtype == dtype)
        .unwrap_or_else(|| panic!("no {m} {dtype} in {:?}", d.backends))
}

fn backend_of(b: &BackendDecision) -> &str {
    match &b.outcome {
        Outcome::Recommend { backend, .. } => backend,
        o => panic!("expected a recommendation, got {o:?}"),
    }
}

/// The recommended backend of a class with one model configuration.
fn recommended(d: &Decision) -> &str {
    backend_of(only(d))
}

fn undecided(b: &BackendDecision) -> (&str, Option<String>) {
    match &b.outcome {
        Outcome::NoDecision { reason, leading } => (reason, leading.clone()),
        o => panic!("expected no decision, got {o:?}"),
    }
}

fn no_decision(d: &Decision) -> (&str, Option<String>) {
    undecided(only(d))
}

fn lead(b: &str) -> Option<String> {
    Some(b.into())
}

#[test]
fn default_shapes_sort_scenarios_into_classes() {
    let sc = [
        scen("chat", 256, 1, 128),
        scen("agent", 128, 1, 16),
        scen("long", 4096, 1, 256),
        scen("batch", 256, 8, 1),
        scen("rag", 768, 1, 64),
        scen("micro", 8, 1, 32),
    ];
    let names = |c| default_scenarios(c, &sc);
    assert_eq!(names(WorkloadClass::InteractiveChat), ["chat", "rag"]);
    assert_eq!(names(WorkloadClass::Agents), ["agent", "micro"]);
    assert_eq!(names(WorkloadClass::LongContextSummarisation), ["long"]);
    assert_eq!(names(WorkloadClass::BatchPrefill), ["batch"]);
    assert_eq!(names(WorkloadClass::Rag), ["long", "rag"]);
    // Boundaries: prompt 1024 leaves chat; gen 64 leaves agents.
    assert!(!WorkloadClass::InteractiveChat.matches(&scen("x", 1024, 1, 64)));
    assert!(!WorkloadClass::Agents.matches(&scen("x", 512, 1, 64)));
    assert!(WorkloadClass::Agents.matches(&scen("x", 512, 1, 63)));
    assert!(!WorkloadClass::BatchPrefill.matches(&scen("x", 64, 2, 33)));
}

#[test]
fn every_class_is_answered_in_fixed_order() {
    let d = run(&[], &[], &[]);
    let order: Vec<_> = d.per_class.iter().map(|x| x.class).collect();
    assert_eq!(order, WorkloadClass::ALL);
    let names: Vec<_> = order.iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "interactive_chat",
            "agents",
            "long_context_summarisation",
            "batch_prefill",
            "rag"
        ]
    );
    // The serde spelling is the name.
    for c in WorkloadClass::ALL {
        assert_eq!(serde_json::to_value(c).unwrap(), c.name());
    }
}

#[test]
fn missing_class_is_no_decision_naming_the_shape() {
    let sc = [scen("chat", 128, 1, 128)];
    let rows = [
        row(&sc[0], "a", "m", "decode", 10.0, 0.1, 5),
        row(&sc[0], "b", "m", "decode", 20.0, 0.1, 5),
    ];
    let d = run(&rows, &[], &sc);
    let rag = class(&d, WorkloadClass::Rag);
    let reason = rag.unevaluated.as_deref().unwrap();
    assert!(reason.contains("no scenario in the class"), "{reason}");
    assert!(reason.contains(WorkloadClass::Rag.shape()), "{reason}");
    assert!(reason.contains("W.5"), "{reason}");
    assert!(rag.scenarios.is_empty() && rag.backends.is_empty());
    assert!(!rag.fully_decided());
    assert_eq!(rag.models.choice, ModelChoice::NoModel);
    // The chat class itself is answered.
    let chat = class(&d, WorkloadClass::InteractiveChat);
    assert_eq!(chat.unevaluated, None);
    assert_eq!(recommended(chat), "a");
    assert!(chat.fully_decided());
}

#[test]
fn decode_heavy_by_gen_ranks_decode_throughput_with_rate_ci() {
    let sc = [scen("chat", 128, 1, 128)];
    // a: 10 ms steps, CI [8, 12.5] -> 100 tokens/s, CI [80, 125].
    let mut a = row(&sc[0], "a", "m", "decode", 10.0, 0.0, 5);
    a.median_ci_low_ms = 8.0;
    a.median_ci_high_ms = 12.5;
    // b: 20 ms -> 50 tokens/s, CI [50*20/21, 50*20/19].
    let b = row(&sc[0], "b", "m", "decode", 20.0, 1.0, 5);
    // b's prefill is far faster: a wrong branch would pick b.
    let rows = [
        a,
        b,
        row(&sc[0], "a", "m", "prefill", 50.0, 1.0, 5),
        row(&sc[0], "b", "m", "prefill", 5.0, 1.0, 5),
    ];
    let d = run(&rows, &[], &sc);
    let chat = class(&d, WorkloadClass::InteractiveChat);
    assert!(
        chat.branch.starts_with("decode-heavy") && chat.branch.contains("gen_tokens >= 64"),
        "{}",
        chat.branch
    );
    assert_eq!(chat.metric, "decode tokens/s");
    assert!(chat.higher_is_better);
    match &only(chat).outcome {
        Outcome::Recommend {
            backend,
            value,
            ci_low,
            ci_high,
            runner_up,
            ..
        } => {
            assert_eq!(backend, "a");
            assert!((value - 100.0).abs() < 1e-9);
            assert!((ci_low - 80.0).abs() < 1e-9);
            assert!((ci_high - 125.0).abs() < 1e-9);
            let (rb, rv) = runner_up.clone().unwrap();
            assert_eq!(rb, "b");
            assert!((rv - 50.0).abs() < 1e-9);
        }
        o => panic!("{o:?}"),
    }
    let b = &only(chat).candidates[1];
    let v = &b.per_scenario[0];
    assert!((v.ci_low.unwrap() - 50.0 * 20.0 / 21.0).abs() < 1e-9);
    assert!((v.ci_high.unwrap() - 50.0 * 20.0 / 19.0).abs() < 1e-9);
    // Only the decode rows are evidence (no warmup, gen >= 64).
    assert_eq!(chat.evidence_rows, [0, 1]);
}

#[test]
fn decode_fraction_decides_between_decode_and_prefill_latency_for_medium_prompts() {
    // A medium prompt (AL.1: prompt >= 512) and a short generation:
    // decode-heavy only through the decode fraction (AN.1 step 1).
    let sc = [scen("doc", 512, 1, 32)];
    let base = vec![
        // a decodes faster, b prefills faster.
        row(&sc[0], "a", "m", "decode", 10.0, 0.1, 5),
        row(&sc[0], "b", "m", "decode", 20.0, 0.1, 5),
        row(&sc[0], "a", "m", "prefill", 30.0, 0.1, 5),
        row(&sc[0], "b", "m", "prefill", 10.0, 0.1, 5),
    ];
    let with = |fa: f64, fb: f64| {
        let mut rows = base.clone();
        rows.push(e2e(&sc[0], "a", "m", fa));
        rows.push(e2e(&sc[0], "b", "m", fb));
        run(&rows, &[], &sc)
    };
    let heavy = with(0.95, 0.93);
    let rag = class(&heavy, WorkloadClass::Rag);
    assert_eq!(rag.scenario_types[0].kind, ScenarioKind::Medium);
    assert!(rag.branch.starts_with("decode-heavy"), "{}", rag.branch);
    assert!(
        rag.branch.contains("decode fraction 0.9400"),
        "{}",
        rag.branch
    );
    assert_eq!(recommended(rag), "a");
    // The e2e rows that decided the branch are evidence.
    assert!(rag.evidence_rows.contains(&4) && rag.evidence_rows.contains(&5));

    // Median exactly 0.9 is not above it: single-prompt prefill latency
    // (not TTFT: no micro or short scenario in the class).
    let light = with(0.95, 0.85);
    let rag = class(&light, WorkloadClass::Rag);
    assert!(
        rag.branch.starts_with("single-prompt prefill latency"),
        "{}",
        rag.branch
    );
    assert!(rag.branch.contains("0.9000 <= 0.9"), "{}", rag.branch);
    assert_eq!(rag.metric, "prefill median latency");
    assert_eq!(rag.unit, "ms");
    assert!(!rag.higher_is_better);
    assert_eq!(recommended(rag), "b");
}

#[test]
fn al1_types_follow_the_shape() {
    let kind = |p, b| ScenarioKind::of(&scen("x", p, b, 16));
    assert_eq!(kind(1, 1), ScenarioKind::Micro);
    assert_eq!(kind(MICRO_MAX_PROMPT, 1), ScenarioKind::Micro);
    assert_eq!(kind(MICRO_MAX_PROMPT + 1, 1), ScenarioKind::Short);
    assert_eq!(kind(MEDIUM_MIN_PROMPT - 1, 1), ScenarioKind::Short);
    assert_eq!(kind(MEDIUM_MIN_PROMPT, 1), ScenarioKind::Medium);
    assert_eq!(kind(8, 2), ScenarioKind::BatchShort);
    assert_eq!(kind(MEDIUM_MIN_PROMPT, 4), ScenarioKind::BatchMedium);
    assert!(ScenarioKind::Micro.ttft_primary() && ScenarioKind::Short.ttft_primary());
    assert!(!ScenarioKind::Medium.ttft_primary() && !ScenarioKind::BatchShort.ttft_primary());
    // AL.2's wording: TTFT primary for micro/short, decode only if gen is high.
    let short = scen("s", 128, 1, 32);
    assert!(ScenarioKind::of(&short).primary(&short).starts_with("TTFT"));
    let long_gen = scen("c", 128, 1, 64);
    assert!(
        ScenarioKind::of(&long_gen)
            .primary(&long_gen)
            .starts_with("decode throughput")
    );
}

#[test]
fn al2_micro_and_short_rank_by_ttft_whatever_the_decode_fraction() {
    // backends-cpu's micro (16/1/32) and the quickstart's short (128/1/32):
    // decode fractions above 0.9 made them decode-heavy before AL.2.
    let sc = [scen("micro", 16, 1, 32), scen("short", 128, 1, 32)];
    let mut rows = Vec::new();
    for s in &sc {
        // a decodes and prefills faster; b reaches the first token sooner.
        rows.push(row(s, "a", "m", "decode", 10.0, 0.1, 5));
        rows.push(row(s, "b", "m", "decode", 20.0, 0.1, 5));
        rows.push(row(s, "a", "m", "prefill", 5.0, 0.1, 5));
        rows.push(row(s, "b", "m", "prefill", 8.0, 0.1, 5));
        rows.push(row(s, "a", "m", "ttft", 30.0, 0.5, 5));
        rows.push(row(s, "b", "m", "ttft", 12.0, 0.5, 5));
        rows.push(e2e(s, "a", "m", 0.95));
        rows.push(e2e(s, "b", "m", 0.95));
    }
    let d = run(&rows, &[], &sc);
    let agents = class(&d, WorkloadClass::Agents);
    let kinds: Vec<_> = agents.scenario_types.iter().map(|t| t.kind).collect();
    assert_eq!(kinds, [ScenarioKind::Micro, ScenarioKind::Short]);
    assert!(agents.scenario_types[0].primary.contains("AL.2"));
    assert_eq!(agents.metric, "TTFT median latency");
    assert_eq!(agents.unit, "ms");
    assert!(!agents.higher_is_better);
    assert!(
        agents.branch.starts_with("single-prompt latency as TTFT"),
        "{}",
        agents.branch
    );
    assert!(
        agents
            .branch
            .contains("micro is micro (AL.1) with gen_tokens 32 < 64, so TTFT is primary (AL.2)"),
        "{}",
        agents.branch
    );
    assert_eq!(recommended(agents), "b");
    // The decode fractions were not consulted: no e2e row is evidence.
    for &i in &agents.evidence_rows {
        assert_ne!(rows[i as usize].phase, "e2e");
    }
    // gen >= 64 keeps a short prompt decode-heavy (AM rule 1).
    let chat = [scen("chat", 128, 1, 64)];
    let rows = [
        row(&chat[0], "a", "m", "decode", 10.0, 0.1, 5),
        row(&chat[0], "b", "m", "decode", 20.0, 0.1, 5),
    ];
    let d = run(&rows, &[], &chat);
    assert_eq!(
        class(&d, WorkloadClass::InteractiveChat).metric,
        "decode tokens/s"
    );
}

fn cost_row(s: &SummaryRow, tier: &str, usd: f64) -> CostRow {
    CostRow {
        cell: s.cell.clone(),
        backend: s.backend.clone(),
        model: s.model.clone(),
        scenario: s.scenario.clone(),
        phase: s.phase.clone(),
        evidence: s.evidence.clone(),
        tier: tier.into(),
        usd_per_1m: usd,
        ..Default::default()
    }
}

#[test]
fn batched_prefill_uses_cost_of_the_first_tier_else_throughput() {
    let sc = [scen("batch", 128, 4, 16)];
    let pa = row(&sc[0], "a", "m", "prefill", 40.0, 1.0, 5);
    let pb = row(&sc[0], "b", "m", "prefill", 20.0, 1.0, 5);
    let rows = vec![
        pa.clone(),
        pb.clone(),
        e2e(&sc[0], "a", "m", 0.5),
        e2e(&sc[0], "b", "m", 0.5),
        // a decodes faster: the decode branch would pick a.
        row(&sc[0], "a", "m", "decode", 5.0, 0.1, 5),
        row(&sc[0], "b", "m", "decode", 50.0, 0.1, 5),
    ];

    // Without cost rows: prefill tokens/s, b (20 ms for 512 tokens).
    let d = run(&rows, &[], &sc);
    let bp = class(&d, WorkloadClass::BatchPrefill);
    assert!(bp.branch.starts_with("batched prefill"), "{}", bp.branch);
    assert_eq!(bp.metric, "prefill tokens/s");
    assert!(bp.higher_is_better);
    assert_eq!(recommended(bp), "b");
    assert!(bp.cost_rows.is_empty());

    // With cost rows: cheapest usd_per_1m in tier on_demand (before
    // spot in name order), lower is better, CI scaled by the latency CI.
    let cost = vec![
        cost_row(&pa, "spot", 0.3),
        cost_row(&pb, "spot", 0.9),
        cost_row(&pa, "on_demand", 1.0),
        cost_row(&pb, "on_demand", 3.0),
    ];
    let d = run(&rows, &cost, &sc);
    let bp = class(&d, WorkloadClass::BatchPrefill);
    assert_eq!(bp.metric, "prefill usd_per_1m (tier on_demand)");
    assert!(bp.branch.contains("tier on_demand"), "{}", bp.branch);
    assert!(!bp.higher_is_better);
    assert_eq!(recommended(bp), "a");
    assert_eq!(bp.cost_rows, [2, 3]);
    let v = &only(bp).candidates[0].per_scenario[0];
    assert_eq!(v.cost_row, Some(2));
    assert!((v.ci_low.unwrap() - 39.0 / 40.0).abs() < 1e-12);
    assert!((v.ci_high.unwrap() - 41.0 / 40.0).abs() < 1e-12);
}

#[test]
fn geometric_mean_aggregates_scenarios() {
    let sc = [scen("s1", 128, 1, 128), scen("s2", 256, 1, 128)];
    // Decode step medians: a 10 ms and 2.5 ms (100 and 400 tokens/s),
    // b 4 ms and 5 ms (250 and 200 tokens/s). Geomeans: a 200, b
    // sqrt(50000) = 223.6; an arithmetic mean would rank a first.
    let rows = [
        row(&sc[0], "a", "m", "decode", 10.0, 0.01, 5),
        row(&sc[1], "a", "m", "decode", 2.5, 0.01, 5),
        row(&sc[0], "b", "m", "decode", 4.0, 0.01, 5),
        row(&sc[1], "b", "m", "decode", 5.0, 0.01, 5),
    ];
    let d = run(&rows, &[], &sc);
    let chat = class(&d, WorkloadClass::InteractiveChat);
    assert_eq!(chat.scenarios, ["s1", "s2"]);
    let g: Vec<_> = only(chat)
        .candidates
        .iter()
        .map(|c| (c.backend.as_str(), c.geomean.unwrap()))
        .collect();
    assert_eq!(g[0].0, "b");
    assert!((g[0].1 - 50_000f64.sqrt()).abs() < 1e-9);
    assert_eq!(g[1].0, "a");
    assert!((g[1].1 - 200.0).abs() < 1e-9);
    // b leads on the geomean but a is better in s2: no decision.
    let (reason, leading) = no_decision(chat);
    assert!(reason.contains("b leads on the geometric mean"), "{reason}");
    assert!(reason.contains("a is better in scenario s2"), "{reason}");
    assert_eq!(leading, lead("b"));

    // Better in both scenarios: recommended at the geomean.
    let rows = [
        row(&sc[0], "a", "m", "decode", 5.0, 0.01, 5),
        row(&sc[1], "a", "m", "decode", 2.5, 0.01, 5),
        row(&sc[0], "b", "m", "decode", 10.0, 0.01, 5),
        row(&sc[1], "b", "m", "decode", 10.0, 0.01, 5),
    ];
    let d = run(&rows, &[], &sc);
    match &only(class(&d, WorkloadClass::InteractiveChat)).outcome {
        Outcome::Recommend { backend, value, .. } => {
            assert_eq!(backend, "a");
            assert!((value - (200.0f64 * 400.0).sqrt()).abs() < 1e-9);
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn overlapping_cis_give_no_decision_naming_both() {
    let sc = [scen("chat", 128, 1, 128)];
    let rows = [
        row(&sc[0], "fast", "m", "decode", 10.0, 1.0, 5),
        row(&sc[0], "slow", "m", "decode", 10.5, 1.0, 5),
    ];
    let d = run(&rows, &[], &sc);
    let chat = class(&d, WorkloadClass::InteractiveChat);
    let (reason, leading) = no_decision(chat);
    assert!(
        reason.contains("the 95% CIs of fast and slow overlap in scenario chat"),
        "{reason}"
    );
    assert_eq!(leading, lead("fast"));

    // Disjoint: recommended, with the runner-up.
    let rows = [
        row(&sc[0], "fast", "m", "decode", 10.0, 0.2, 5),
        row(&sc[0], "slow", "m", "decode", 10.5, 0.2, 5),
    ];
    let d = run(&rows, &[], &sc);
    let chat = class(&d, WorkloadClass::InteractiveChat);
    assert_eq!(recommended(chat), "fast");
    match &only(chat).outcome {
        Outcome::Recommend {
            runner_up, note, ..
        } => {
            assert_eq!(runner_up.as_ref().unwrap().0, "slow");
            assert!(note.contains("disjoint 95% CIs"), "{note}");
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn simulated_data_is_no_decision_but_names_the_leader() {
    let sc = [scen("chat", 128, 1, 128)];
    let mut rows = vec![
        row(&sc[0], "a", "m", "decode", 10.0, 0.1, 5),
        row(&sc[0], "b", "m", "decode", 20.0, 0.1, 5),
    ];
    rows[1].evidence = "simulated".into();
    let d = run(&rows, &[], &sc);
    let chat = class(&d, WorkloadClass::InteractiveChat);
    let (reason, leading) = no_decision(chat);
    assert!(
        reason.contains("simulated data is not evidence"),
        "{reason}"
    );
    assert!(reason.contains("would favour a"), "{reason}");
    assert_eq!(leading, lead("a"));
    // A single simulated candidate is no decision either.
    let d = run(&rows[1..], &[], &sc);
    let (_, leading) = no_decision(class(&d, WorkloadClass::InteractiveChat));
    assert_eq!(leading, lead("b"));
}

#[test]
fn explicit_workloads_override_the_shape_rules() {
    let sc = [scen("chat", 128, 1, 128), scen("tiny", 8, 1, 8)];
    let rows = [
        row(&sc[0], "a", "m", "decode", 10.0, 0.1, 5),
        row(&sc[0], "b", "m", "decode", 20.0, 0.1, 5),
        row(&sc[1], "a", "m", "decode", 10.0, 0.1, 5),
        row(&sc[1], "b", "m", "decode", 20.0, 0.1, 5),
        row(&sc[1], "a", "m", "prefill", 9.0, 0.1, 5),
        row(&sc[1], "b", "m", "prefill", 3.0, 0.1, 5),
        row(&sc[1], "a", "m", "ttft", 4.0, 0.1, 5),
        row(&sc[1], "b", "m", "ttft", 12.0, 0.1, 5),
    ];
    // By default tiny is an agents scenario and rag has none.
    let d = run(&rows, &[], &sc);
    assert_eq!(class(&d, WorkloadClass::Agents).scenarios, ["tiny"]);
    assert!(class(&d, WorkloadClass::Rag).scenarios.is_empty());
    let workloads = BTreeMap::from([
        (WorkloadClass::Rag, vec!["chat".to_string()]),
        (WorkloadClass::Agents, vec!["chat".into(), "chat".into()]),
        (WorkloadClass::InteractiveChat, vec!["tiny".into()]),
    ]);
    let d = run_with(&rows, &[], &sc, &workloads);
    let rag = class(&d, WorkloadClass::Rag);
    assert_eq!(rag.scenarios, ["chat"]);
    assert_eq!(recommended(rag), "a");
    assert_eq!(class(&d, WorkloadClass::Agents).scenarios, ["chat"]);
    // Chat now means tiny, a micro scenario with gen 8: TTFT (AL.2), where
    // a is ahead although b prefills faster.
    let chat = class(&d, WorkloadClass::InteractiveChat);
    assert_eq!(chat.scenarios, ["tiny"]);
    assert_eq!(chat.metric, "TTFT median latency");
    assert_eq!(recommended(chat), "a");
    // Unknown names and empty lists are reported, not guessed.
    let workloads = BTreeMap::from([
        (WorkloadClass::Rag, vec!["nope".to_string()]),
        (WorkloadClass::Agents, vec![]),
    ]);
    let d = run_with(&rows, &[], &sc, &workloads);
    let reason = class(&d, WorkloadClass::Rag).unevaluated.clone().unwrap();
    assert!(
        reason.contains("unknown scenario(s) for rag: nope"),
        "{reason}"
    );
    let reason = class(&d, WorkloadClass::Agents)
        .unevaluated
        .clone()
        .unwrap();
    assert!(reason.contains("gives agents no scenario"), "{reason}");
}

#[test]
fn candidates_need_three_events_and_a_finite_ci() {
    let sc = [scen("chat", 128, 1, 128)];
    let mut nan_ci = row(&sc[0], "c", "m", "decode", 5.0, 0.1, 5);
    nan_ci.median_ci_low_ms = f64::NAN;
    let rows = [
        row(&sc[0], "a", "m", "decode", 10.0, 0.1, 3),
        // b would win, but has only two events.
        row(&sc[0], "b", "m", "decode", 1.0, 0.1, 2),
        nan_ci,
    ];
    let d = run(&rows, &[], &sc);
    let chat = class(&d, WorkloadClass::InteractiveChat);
    assert_eq!(recommended(chat), "a");
    match &only(chat).outcome {
        Outcome::Recommend {
            runner_up, note, ..
        } => {
            assert_eq!(*runner_up, None);
            assert!(
                note.starts_with("no other backend was measured for the model"),
                "{note}"
            );
            assert!(note.contains("b (n = 2 < 3 in chat)"), "{note}");
        }
        o => panic!("{o:?}"),
    }
    let candidates = &only(chat).candidates;
    let b = candidates.iter().find(|c| c.backend == "b").unwrap();
    assert_eq!(b.excluded.as_deref(), Some("n = 2 < 3 in chat"));
    assert_eq!(b.geomean, None);
    let c = candidates.iter().find(|c| c.backend == "c").unwrap();
    assert_eq!(c.excluded.as_deref(), Some("no finite 95% CI in chat"));
    // Ranked first, excluded after; excluded rows are not evidence.
    assert_eq!(candidates[0].backend, "a");
    assert_eq!(chat.evidence_rows, [0]);

    // A candidate missing a scenario is excluded too.
    let sc2 = [scen("chat", 128, 1, 128), scen("chat2", 256, 1, 128)];
    let rows = [
        row(&sc2[0], "a", "m", "decode", 10.0, 0.1, 5),
        row(&sc2[1], "a", "m", "decode", 10.0, 0.1, 5),
        row(&sc2[0], "b", "m", "decode", 1.0, 0.1, 5),
    ];
    let d = run(&rows, &[], &sc2);
    let chat = class(&d, WorkloadClass::InteractiveChat);
    let b = only(chat)
        .candidates
        .iter()
        .find(|c| c.backend == "b")
        .unwrap();
    assert_eq!(b.excluded.as_deref(), Some("no decode row in chat2"));
    assert_eq!(recommended(chat), "a");

    // Nobody eligible: no decision, no leader.
    let rows = [row(&sc[0], "b", "m", "decode", 1.0, 0.1, 2)];
    let d = run(&rows, &[], &sc);
    let (reason, leading) = no_decision(class(&d, WorkloadClass::InteractiveChat));
    assert!(
        reason.contains("no candidate has decode tokens/s with n >= 3"),
        "{reason}"
    );
    assert_eq!(leading, None);
}

#[test]
fn cold_start_threshold_is_ten_x() {
    let sc = [scen("chat", 128, 1, 128)];
    let advice = |ratio: f64| {
        let mut p = row(&sc[0], "a", "m", "prefill", 10.0, 0.1, 5);
        p.warmup_ratio = ratio;
        let mut dec = row(&sc[0], "a", "m", "decode", 10.0, 0.1, 5);
        dec.warmup_ratio = 2.0f64.min(ratio);
        // Load is not a warmup phase: a huge ratio there is ignored.
        let mut load = row(&sc[0], "a", "m", "load", 10.0, 0.1, 1);
        load.warmup_ratio = 1000.0;
        let d = run(&[p, dec, load], &[], &sc);
        only(class(&d, WorkloadClass::InteractiveChat))
            .cold_start
            .clone()
    };
    assert!(
        advice(10.0).starts_with("monitor cold-start trends"),
        "{}",
        advice(10.0)
    );
    let high = advice(10.5);
    assert!(
        high.starts_with("enforce warm pools and pre-routing warmup"),
        "{high}"
    );
    assert!(high.contains("(prefill, chat)"), "{high}");
    let nan = advice(f64::NAN);
    // Decode still has a finite ratio of 2 when prefill has none.
    assert!(nan.starts_with("monitor"), "{nan}");

    let mut dec = row(&sc[0], "a", "m", "decode", 10.0, 0.1, 5);
    dec.warmup_ratio = f64::NAN;
    let d = run(&[dec], &[], &sc);
    let cs = &only(class(&d, WorkloadClass::InteractiveChat)).cold_start;
    assert!(cs.starts_with("no warmup measured"), "{cs}");
}

#[test]
fn scaling_tree_checks_heterogeneity() {
    let m = |f: &str, d: &str| ModelTraits {
        family: f.into(),
        dtype: d.into(),
    };
    let same = BTreeMap::from([
        ("x".to_string(), m("llama", "f32")),
        ("y".to_string(), m("llama", "f32")),
    ]);
    assert!(scaling_advice(&same).starts_with("params usable as a proxy with fit gating"));
    let families = BTreeMap::from([
        ("x".to_string(), m("llama", "f32")),
        ("y".to_string(), m("gpt2", "f32")),
    ]);
    let s = scaling_advice(&families);
    assert!(s.starts_with("params are a regime descriptor only"), "{s}");
    assert!(s.contains("families gpt2, llama"), "{s}");
    let dtypes = BTreeMap::from([
        ("x".to_string(), m("llama", "f32")),
        ("y".to_string(), m("llama", "q8_0")),
    ]);
    assert!(scaling_advice(&dtypes).starts_with("params are a regime descriptor only"));
    let d = decide(&Inputs {
        summary: &[],
        cost: &[],
        scenarios: &[],
        workloads: &BTreeMap::new(),
        backends: &BTreeMap::new(),
        models: &dtypes,
        slo: &BTreeMap::new(),
        tiers: &[],
    });
    assert_eq!(d.scaling, scaling_advice(&dtypes));
}

/// AN.2 fixture: the backends of specs/backends-cpu.yaml (ort off/all,
/// tch eager/script, candle) plus an ort-all at two threads.
fn an2_backends() -> BTreeMap<String, BackendTraits> {
    let t = |kind: &str, threads: u32, compiled: Option<&str>, real: bool| BackendTraits {
        kind: kind.into(),
        device: "cpu".into(),
        threads,
        compiled: compiled.map(str::to_string),
        compiler_real: real,
        counters: BTreeMap::new(),
    };
    BTreeMap::from([
        ("candle".to_string(), t("candle", 1, None, false)),
        ("ort-noopt".to_string(), t("ort", 1, None, false)),
        (
            "ort-all".to_string(),
            t("ort", 1, Some("onnxruntime:all"), true),
        ),
        (
            "ort-all-t2".to_string(),
            t("ort", 2, Some("onnxruntime:all"), true),
        ),
        ("tch-eager".to_string(), t("tch", 1, None, false)),
        // The label says compiled, but the graph that ran is the exported one.
        (
            "tch-script".to_string(),
            t("tch", 1, Some("torchscript"), false),
        ),
    ])
}

fn an2_scenarios() -> Vec<Scenario> {
    vec![scen("micro", 16, 1, 32), scen("chat", 128, 1, 64)]
}

/// Prefill and decode rows of one backend for model m in every scenario.
fn phases(backend: &str, prefill: (f64, f64), decode: (f64, f64)) -> Vec<SummaryRow> {
    an2_scenarios()
        .iter()
        .flat_map(|s| {
            [
                row(s, backend, "m", "prefill", prefill.0, prefill.1, 5),
                row(s, backend, "m", "decode", decode.0, decode.1, 5),
            ]
        })
        .collect()
}

fn an2(rows: &[SummaryRow], backends: &BTreeMap<String, BackendTraits>) -> Decisions {
    decide(&Inputs {
        summary: rows,
        cost: &[],
        scenarios: &an2_scenarios(),
        workloads: &BTreeMap::new(),
        backends,
        models: &BTreeMap::new(),
        slo: &BTreeMap::new(),
        tiers: &[],
    })
}

fn pair<'d>(d: &'d Decisions, compiled: &str) -> &'d CompilePair {
    d.compile_pairs
        .iter()
        .find(|p| p.compiled == compiled)
        .unwrap_or_else(|| panic!("no pair for {compiled}: {:?}", d.compile_pairs))
}

fn verdict(p: &CompilePair, phase: &str) -> PhaseVerdict {
    p.phases.iter().find(|x| x.phase == phase).unwrap().verdict
}

fn advice_of<'d>(d: &'d Decisions, backend: &str) -> &'d str {
    &d.compiler
        .iter()
        .find(|c| c.backend == backend)
        .unwrap()
        .advice
}

#[test]
fn an2_compiles_prefill_only_when_only_prefill_wins_f2() {
    let backends = an2_backends();
    let mut rows = phases("ort-noopt", (10.0, 0.1), (10.5, 1.0));
    // Prefill twice as fast, disjoint; decode within the eager interval.
    rows.extend(phases("ort-all", (5.0, 0.1), (10.0, 1.0)));
    rows.extend(phases("ort-all-t2", (5.0, 0.1), (5.0, 0.1)));
    rows.extend(phases("tch-eager", (10.0, 0.1), (10.0, 0.1)));
    rows.extend(phases("tch-script", (2.0, 0.1), (2.0, 0.1)));
    rows.extend(phases("candle", (1.0, 0.1), (1.0, 0.1)));
    let d = an2(&rows, &backends);

    // Pairing: same kind, device and threads; ort-all-t2 has no eager
    // partner at two threads, candle no compiled configuration.
    let pairs: Vec<_> = d
        .compile_pairs
        .iter()
        .map(|p| {
            (
                p.compiled.as_str(),
                p.eager.as_str(),
                p.model.as_str(),
                p.dtype.as_str(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            ("ort-all", "ort-noopt", "m", "f32"),
            ("tch-script", "tch-eager", "m", "f32")
        ]
    );
    let ort = pair(&d, "ort-all");
    assert_eq!(verdict(ort, "prefill"), PhaseVerdict::Wins);
    assert_eq!(verdict(ort, "decode"), PhaseVerdict::Inconclusive);
    let prefill = &ort.phases[0];
    assert_eq!(prefill.phase, "prefill");
    assert!((prefill.speedup.unwrap() - 2.0).abs() < 1e-12);
    assert_eq!(prefill.per_scenario.len(), 2);
    assert!(
        ort.advice
            .starts_with("compile prefill only, keep decode eager (F.2)"),
        "{}",
        ort.advice
    );
    assert!(
        ort.advice.contains("decode shows no demonstrated win"),
        "{}",
        ort.advice
    );
    assert!(
        ort.phases[1]
            .reason
            .contains("the 95% CIs overlap in micro"),
        "{}",
        ort.phases[1].reason
    );
    // Shapes read from the measurements; no backend reports counters.
    assert_eq!(
        ort.shapes,
        "2 shapes (prompt x batch 16x1, 128x1): tails checked in each; recompile counters not \
         observable (the backend reports none)"
    );
    assert!(advice_of(&d, "ort-all").contains("m f32 against ort-noopt: compile prefill only"));
    assert_eq!(
        advice_of(&d, "ort-noopt"),
        "eager: no compiled path requested; the eager baseline of ort-all"
    );
    assert_eq!(advice_of(&d, "candle"), "eager: no compiled path requested");
    assert!(
        advice_of(&d, "ort-all-t2").starts_with("no decision: onnxruntime:all is compiler-real"),
        "{}",
        advice_of(&d, "ort-all-t2")
    );

    // A compiled label without compiler-real evidence never compiles, even
    // five times faster (AN.2 step 1, AM rule 3).
    let tch = pair(&d, "tch-script");
    assert!(!tch.compiler_real);
    assert_eq!(verdict(tch, "prefill"), PhaseVerdict::Wins);
    assert_eq!(
        tch.advice,
        "disable compile: no compiler-real evidence for torchscript"
    );
    assert!(
        advice_of(&d, "tch-script")
            .starts_with("disable compile: no compiler-real evidence for torchscript"),
        "{}",
        advice_of(&d, "tch-script")
    );
}

#[test]
fn an2_needs_disjoint_intervals_and_validated_tails_per_phase() {
    let backends = an2_backends();
    let eager = phases("ort-noopt", (10.0, 0.1), (10.0, 0.1));
    let with = |compiled: Vec<SummaryRow>| {
        let mut rows = eager.clone();
        rows.extend(compiled);
        an2(&rows, &backends)
    };
    // Both phases win: compile both.
    let d = with(phases("ort-all", (5.0, 0.1), (5.0, 0.1)));
    let p = pair(&d, "ort-all");
    assert_eq!(verdict(p, "decode"), PhaseVerdict::Wins);
    assert!(
        p.advice.starts_with("compile prefill and decode"),
        "{}",
        p.advice
    );

    // Decode slower with disjoint intervals: prefill only, decode loses.
    let d = with(phases("ort-all", (5.0, 0.1), (20.0, 0.1)));
    let p = pair(&d, "ort-all");
    assert_eq!(verdict(p, "decode"), PhaseVerdict::Loses);
    assert!(p.advice.contains("decode loses"), "{}", p.advice);
    assert!(p.advice.starts_with("compile prefill only"), "{}", p.advice);

    // Decode wins, prefill overlaps: decode only.
    let d = with(phases("ort-all", (10.0, 0.5), (5.0, 0.1)));
    assert!(
        pair(&d, "ort-all")
            .advice
            .starts_with("compile decode only, keep prefill eager"),
        "{}",
        pair(&d, "ort-all").advice
    );

    // Overlapping everywhere: keep eager.
    let d = with(phases("ort-all", (9.95, 0.1), (10.05, 0.1)));
    let p = pair(&d, "ort-all");
    assert_eq!(verdict(p, "prefill"), PhaseVerdict::Inconclusive);
    assert!(
        p.advice
            .starts_with("keep eager: the compiled path wins neither phase")
    );

    // Faster medians, but a heavy compiled tail in one shape (recompiles):
    // the tails are not validated, so prefill is not compiled.
    let mut rows = phases("ort-all", (5.0, 0.1), (10.0, 0.1));
    rows[2].p99_ms = 50.0; // chat prefill, eager p99 10.3
    let d = with(rows);
    let p = pair(&d, "ort-all");
    assert_eq!(verdict(p, "prefill"), PhaseVerdict::TailsNotValidated);
    assert!(
        p.phases[0]
            .reason
            .contains("compiled p99 is above eager's in chat"),
        "{}",
        p.phases[0].reason
    );
    assert!(p.advice.starts_with("keep eager"), "{}", p.advice);

    // Simulated rows decide nothing.
    let mut rows = phases("ort-all", (5.0, 0.1), (5.0, 0.1));
    rows[0].evidence = "simulated".into();
    let d = with(rows);
    let p = pair(&d, "ort-all");
    assert_eq!(verdict(p, "prefill"), PhaseVerdict::Simulated);
    assert_eq!(p.advice, "no decision: simulated data is not evidence");

    // Too few events: no data for the phase.
    let mut rows = phases("ort-all", (5.0, 0.1), (5.0, 0.1));
    for r in &mut rows {
        r.n = 2;
    }
    let d = with(rows);
    assert_eq!(
        verdict(pair(&d, "ort-all"), "prefill"),
        PhaseVerdict::NoData
    );

    // Another dtype is another configuration: no pair, so no compile win.
    let mut rows = phases("ort-all", (5.0, 0.1), (5.0, 0.1));
    for r in &mut rows {
        r.dtype = "f16".into();
    }
    let d = with(rows);
    assert!(d.compile_pairs.is_empty());
    assert!(advice_of(&d, "ort-all").starts_with("no decision"));

    // One shape only, and counters where the backend reports them.
    let mut backends = an2_backends();
    backends
        .get_mut("ort-all")
        .unwrap()
        .counters
        .insert("unique_graphs".into(), "3".into());
    let mut rows: Vec<SummaryRow> = eager
        .iter()
        .filter(|r| r.scenario == "chat")
        .cloned()
        .collect();
    rows.extend(
        phases("ort-all", (5.0, 0.1), (5.0, 0.1))
            .into_iter()
            .filter(|r| r.scenario == "chat"),
    );
    let d = an2(&rows, &backends);
    assert_eq!(
        pair(&d, "ort-all").shapes,
        "one shape (prompt x batch 128x1): tails checked there; shape variation not observable; \
         recompile counters: unique_graphs 3"
    );
}

#[test]
fn backends_compete_per_model_and_models_are_not_chosen_on_speed() {
    // The quickstart's mistake: the smaller model is faster on every
    // backend, so a (backend, model) ranking "decides" the smaller model.
    let sc = [scen("chat", 128, 1, 128)];
    let mut rows = vec![
        row(&sc[0], "a", "llama-4x256", "decode", 5.0, 0.1, 5),
        row(&sc[0], "b", "llama-4x256", "decode", 8.0, 0.1, 5),
        row(&sc[0], "a", "llama-8x512", "decode", 30.0, 0.1, 5),
        row(&sc[0], "b", "llama-8x512", "decode", 20.0, 0.1, 5),
    ];
    // The large model at another dtype is another configuration.
    let mut q8 = row(&sc[0], "c", "llama-8x512", "decode", 12.0, 0.1, 5);
    q8.dtype = "q8_0".into();
    rows.push(q8);
    let d = run(&rows, &[], &sc);
    let chat = class(&d, WorkloadClass::InteractiveChat);
    let configs: Vec<_> = chat
        .backends
        .iter()
        .map(|b| (b.model.as_str(), b.dtype.as_str(), backend_of(b)))
        .collect();
    assert_eq!(
        configs,
        [
            ("llama-4x256", "f32", "a"),
            ("llama-8x512", "f32", "b"),
            ("llama-8x512", "q8_0", "c")
        ]
    );
    // Candidates are only the model's own backends at its dtype.
    for b in &chat.backends {
        for c in &b.candidates {
            assert_eq!(
                (c.model.as_str(), c.dtype.as_str()),
                (b.model.as_str(), b.dtype.as_str())
            );
        }
    }
    let big = model(chat, "llama-8x512", "f32");
    match &big.outcome {
        Outcome::Recommend { runner_up, .. } => {
            let (rb, rv) = runner_up.clone().unwrap();
            assert_eq!(rb, "a");
            assert!((rv - 1000.0 / 30.0).abs() < 1e-9);
        }
        o => panic!("{o:?}"),
    }
    assert!(chat.fully_decided());
    // Side by side, no choice: every model has its backend's figures.
    let entries: Vec<_> = chat
        .models
        .entries
        .iter()
        .map(|e| {
            (
                e.model.as_str(),
                e.backend.as_deref(),
                e.backend_decided,
                e.value.unwrap(),
            )
        })
        .collect();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].0, "llama-4x256");
    assert_eq!((entries[0].1, entries[0].2), (Some("a"), true));
    assert!((entries[0].3 - 200.0).abs() < 1e-9);
    assert!((entries[1].3 - 50.0).abs() < 1e-9);
    match &chat.models.choice {
        ModelChoice::NeedsQuality { reason } => {
            assert!(reason.contains("not chosen between"), "{reason}");
            assert!(
                reason.contains("llama-4x256 f32, llama-8x512 f32, llama-8x512 q8_0"),
                "{reason}"
            );
            assert!(reason.contains("cost per successful outcome"), "{reason}");
            assert!(
                reason.contains("Z.2") && reason.contains("AM rule 8"),
                "{reason}"
            );
        }
        o => panic!("{o:?}"),
    }

    // One model: nothing to choose between.
    let d = run(&rows[..2], &[], &sc);
    assert_eq!(
        class(&d, WorkloadClass::InteractiveChat).models.choice,
        ModelChoice::Single {
            model: "llama-4x256".into(),
            dtype: "f32".into()
        }
    );
}

#[test]
fn model_entries_carry_the_leading_backend_and_cost_per_request() {
    let sc = [scen("chat", 128, 1, 128)];
    let ea = e2e(&sc[0], "a", "m", 0.95);
    let rows = vec![
        row(&sc[0], "a", "m", "decode", 10.0, 1.0, 5),
        row(&sc[0], "b", "m", "decode", 10.5, 1.0, 5),
        ea.clone(),
    ];
    let cost = vec![cost_row(&ea, "spot", 0.5), cost_row(&ea, "on_demand", 2.0)];
    let d = run(&rows, &cost, &sc);
    let chat = class(&d, WorkloadClass::InteractiveChat);
    // Overlapping intervals: no backend decision, the leader's figures.
    let e = &chat.models.entries[0];
    assert_eq!(e.backend.as_deref(), Some("a"));
    assert!(!e.backend_decided);
    assert!(!chat.fully_decided());
    assert_eq!(e.evidence, "measured");
    // One request is one sequence: usd_per_1m x gen_tokens / 1e6, at the
    // first tier in name order, its interval from the e2e median's.
    let c = e.cost.as_ref().unwrap();
    assert_eq!(c.tier, "on_demand");
    let usd = 2.0 * 128.0 / 1e6;
    assert!((c.usd_per_request - usd).abs() < 1e-15);
    assert!((c.ci_low - usd * 99.0 / 100.0).abs() < 1e-15);
    assert!((c.ci_high - usd * 101.0 / 100.0).abs() < 1e-15);
    assert!((c.usd_per_1m_tokens - 2.0).abs() < 1e-12);
    assert_eq!(c.cost_rows, [1]);
    assert_eq!(chat.cost_rows, [1]);
    // Without a cost table there is no cost.
    let d = run(&rows, &[], &sc);
    assert_eq!(
        class(&d, WorkloadClass::InteractiveChat).models.entries[0].cost,
        None
    );
}

#[test]
fn an3_slo_check_follows_the_budget() {
    // AN.3: "warmup deltas > SLO budget"; T.2: "absolute deltas above SLO".
    assert_eq!(slo_check(150.0, 80.0, 100.0), SloCheck::Breaks);
    assert_eq!(slo_check(100.0, 80.0, 100.0), SloCheck::Within);
    assert_eq!(slo_check(95.0, 80.0, 100.0), SloCheck::Within);
    assert_eq!(slo_check(150.0, 120.0, 100.0), SloCheck::SteadyOver);
}

#[test]
fn an3_cold_start_delta_breaking_the_slo_triggers_warm_pools() {
    let sc = [scen("chat", 128, 1, 128)];
    let advice = |cold: f64, steady: f64, slo: Option<SloLimits>| {
        let mut ttft = row(&sc[0], "a", "m", "ttft", steady, 1.0, 5);
        ttft.cold_median_ms = cold;
        // Well below the 10x ratio: only the SLO can trigger.
        ttft.warmup_ratio = 1.5;
        let mut e2e_row = e2e(&sc[0], "a", "m", 0.95);
        e2e_row.cold_median_ms = 300.0;
        let rows = [row(&sc[0], "a", "m", "decode", 10.0, 0.1, 5), ttft, e2e_row];
        let slo: BTreeMap<String, SloLimits> =
            slo.into_iter().map(|l| ("chat".to_string(), l)).collect();
        let d = decide(&Inputs {
            summary: &rows,
            cost: &[],
            scenarios: &sc,
            workloads: &BTreeMap::new(),
            backends: &BTreeMap::new(),
            models: &BTreeMap::new(),
            slo: &slo,
            tiers: &[],
        });
        let chat = class(&d, WorkloadClass::InteractiveChat);
        (only(chat).cold_start.clone(), chat.evidence_rows.clone())
    };
    let ttft = |ms: f64| SloLimits {
        ttft_ms: Some(ms),
        ..Default::default()
    };
    // No SLO: the ratio rule alone.
    let (none, _) = advice(150.0, 80.0, None);
    assert!(none.starts_with("monitor cold-start trends"), "{none}");
    // Cold 150 ms against a 100 ms TTFT SLO, steady 80: the 70 ms delta
    // exceeds the 20 ms budget.
    let (breaks, rows) = advice(150.0, 80.0, Some(ttft(100.0)));
    assert_eq!(
        breaks,
        "enforce warm pools and pre-routing warmup: a/m has cold-start TTFT delta 70.00 ms in \
         chat > its SLO budget 20.00 ms (steady median 80.00 ms, SLO 100.0 ms)"
    );
    // The TTFT row is evidence.
    assert!(rows.contains(&1), "{rows:?}");
    let (within, _) = advice(95.0, 80.0, Some(ttft(100.0)));
    assert!(within.starts_with("monitor cold-start trends"), "{within}");
    assert!(
        within.contains(
            "every cold-start delta within its SLO budget (tightest: TTFT in chat: \
                         delta 15.00 ms of a 20.00 ms budget)"
        ),
        "{within}"
    );
    let (over, _) = advice(150.0, 120.0, Some(ttft(100.0)));
    assert!(over.starts_with("monitor cold-start trends"), "{over}");
    assert!(over.contains("already above its 100.0 ms SLO"), "{over}");
    // An e2e SLO: the e2e row's cold run (300 ms, steady 100) breaks 200 ms.
    let e2e_slo = SloLimits {
        e2e_ms: Some(200.0),
        ..Default::default()
    };
    let (e2e_breaks, _) = advice(90.0, 80.0, Some(e2e_slo));
    assert!(
        e2e_breaks.contains("cold-start e2e delta 200.0 ms in chat > its SLO budget 100.0 ms"),
        "{e2e_breaks}"
    );
}

fn approx_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value::{Array, Number, Object};
    match (a, b) {
        (Number(x), Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
        }
        (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| approx_eq(x, y)),
        (Object(x), Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| approx_eq(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn decisions_round_trip_through_json_and_have_a_schema() {
    let sc = [scen("chat", 128, 1, 128), scen("tiny", 8, 1, 8)];
    let rows = [
        row(&sc[0], "a", "m", "decode", 10.0, 0.1, 5),
        row(&sc[0], "b", "m", "decode", 20.0, 0.1, 5),
        row(&sc[1], "a", "m", "prefill", 10.0, 5.0, 5),
        row(&sc[1], "b", "m", "prefill", 11.0, 5.0, 2),
    ];
    let d = run(&rows, &[], &sc);
    let json = serde_json::to_string(&d).unwrap();
    assert!(json.contains(r#""kind":"recommend""#), "{json}");
    assert!(json.contains(r#""kind":"no_decision""#), "{json}");
    assert!(json.contains(r#""class":"interactive_chat""#), "{json}");
    // serde_json (without float_roundtrip) may parse a float 1 ulp off.
    let back: Decisions = serde_json::from_str(&json).unwrap();
    assert_eq!(back.per_class.len(), 5);
    assert!(approx_eq(
        &serde_json::to_value(&back).unwrap(),
        &serde_json::to_value(&d).unwrap()
    ));
    let schema = serde_json::to_value(schemars::schema_for!(Decisions)).unwrap();
    let text = schema.to_string();
    assert!(text.contains("long_context_summarisation"), "{text}");
    assert!(text.contains("Default scenarios: batch 1, gen_tokens >= 64"));
}

/// The decisions with every row index replaced by the row's identity,
/// so outputs over permuted inputs compare equal.
fn canonical(d: &Decisions, summary: &[SummaryRow], cost: &[CostRow]) -> String {
    let mut d = d.clone();
    let mut ids = Vec::new();
    for dec in &mut d.per_class {
        let mut rows: Vec<String> = dec
            .evidence_rows
            .iter()
            .map(|&i| format!("{}|{}", summary[i as usize].cell, summary[i as usize].phase))
            .collect();
        rows.sort();
        let mut costs: Vec<String> = dec
            .cost_rows
            .iter()
            .map(|&i| format!("{}|{}", cost[i as usize].cell, cost[i as usize].tier))
            .collect();
        costs.sort();
        ids.push((rows, costs));
        dec.evidence_rows.clear();
        dec.cost_rows.clear();
        for b in &mut dec.backends {
            for c in &mut b.candidates {
                for v in &mut c.per_scenario {
                    assert_eq!(summary[v.row as usize].scenario, v.scenario);
                    assert_eq!(summary[v.row as usize].backend, c.backend);
                    v.row = 0;
                    v.cost_row = v.cost_row.map(|_| 0);
                }
            }
        }
        for e in &mut dec.models.entries {
            if let Some(c) = &mut e.cost {
                for i in &mut c.cost_rows {
                    assert_eq!(cost[*i as usize].model, e.model);
                    *i = 0;
                }
            }
        }
    }
    for p in &mut d.compile_pairs {
        for phase in &mut p.phases {
            for s in &mut phase.per_scenario {
                let (c, e) = s.rows;
                assert_eq!(summary[c as usize].backend, p.compiled);
                assert_eq!(summary[e as usize].backend, p.eager);
                s.rows = (0, 0);
            }
        }
    }
    format!("{}\n{ids:?}", serde_json::to_string(&d).unwrap())
}

#[test]
fn shuffled_inputs_give_the_same_decisions() {
    let sc = vec![
        scen("chat", 128, 1, 128),
        scen("agent", 64, 1, 16),
        scen("batch", 128, 4, 8),
        scen("long", 2048, 1, 128),
    ];
    let mut rows = Vec::new();
    for (k, s) in sc.iter().enumerate() {
        for (j, b) in ["x", "y", "z"].iter().enumerate() {
            for m in ["m1", "m2"] {
                let base = 10.0 + (k * 3 + j) as f64;
                for phase in ["prefill", "ttft", "decode"] {
                    let mut r = row(s, b, m, phase, base, 0.5, 5);
                    r.warmup_ratio = base / 2.0;
                    r.cold_median_ms = base * 2.0;
                    rows.push(r);
                }
                rows.push(e2e(s, b, m, 0.5 + 0.01 * j as f64));
            }
        }
    }
    let cost: Vec<CostRow> = rows
        .iter()
        .filter(|r| r.phase == "prefill" || r.phase == "e2e")
        .flat_map(|r| {
            [
                cost_row(r, "spot", r.median_ms / 100.0),
                cost_row(r, "base", r.median_ms / 10.0),
            ]
        })
        .collect();
    let models = BTreeMap::from([("m1".to_string(), ModelTraits::default())]);
    // x is a compiled configuration of y's kind: one AN.2 pair per model.
    let backends = BTreeMap::from([
        (
            "x".to_string(),
            BackendTraits {
                kind: "k".into(),
                compiled: Some("graph".into()),
                compiler_real: true,
                ..Default::default()
            },
        ),
        (
            "y".to_string(),
            BackendTraits {
                kind: "k".into(),
                ..Default::default()
            },
        ),
    ]);
    let slo = BTreeMap::from([(
        "agent".to_string(),
        SloLimits {
            ttft_ms: Some(15.0),
            ..Default::default()
        },
    )]);
    let go = |rows: &[SummaryRow], cost: &[CostRow], sc: &[Scenario]| {
        decide(&Inputs {
            summary: rows,
            cost,
            scenarios: sc,
            workloads: &BTreeMap::new(),
            backends: &backends,
            models: &models,
            slo: &slo,
            tiers: &[],
        })
    };
    let a = go(&rows, &cost, &sc);
    assert_eq!(a, go(&rows, &cost, &sc));

    let mut rows2 = rows.clone();
    rows2.reverse();
    rows2.rotate_left(7);
    let mut cost2 = cost.clone();
    cost2.rotate_left(5);
    cost2.reverse();
    let b = go(&rows2, &cost2, &sc);
    assert_eq!(canonical(&a, &rows, &cost), canonical(&b, &rows2, &cost2));
    // The fixture exercises ties and several branches.
    let bp = class(&a, WorkloadClass::BatchPrefill);
    assert_eq!(bp.metric, "prefill usd_per_1m (tier base)");
    let chat = class(&a, WorkloadClass::InteractiveChat);
    let order: Vec<_> = chat
        .backends
        .iter()
        .flat_map(|b| &b.candidates)
        .map(|c| format!("{}/{}", c.backend, c.model))
        .collect();
    assert_eq!(order, ["x/m1", "y/m1", "z/m1", "x/m2", "y/m2", "z/m2"]);
    assert!(matches!(
        chat.models.choice,
        ModelChoice::NeedsQuality { .. }
    ));
    assert!(chat.models.entries.iter().all(|e| e.cost.is_some()));
    let agents = class(&a, WorkloadClass::Agents);
    assert_eq!(agents.metric, "TTFT median latency");
    assert!(
        agents.backends[0]
            .cold_start
            .contains("cold-start TTFT delta"),
        "{}",
        agents.backends[0].cold_start
    );
    assert_eq!(a.compile_pairs.len(), 2);
}
