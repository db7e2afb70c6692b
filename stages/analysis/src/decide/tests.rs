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

/// A measured summary row with median `median` ms and CI
/// [median - half, median + half]; tokens_per_s as summarise computes
/// it (prefill P*B, decode B, e2e G*B tokens per median).
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
        prompt_tokens: s.prompt_tokens,
        batch: s.batch,
        gen_tokens: s.gen_tokens,
        n,
        median_ms: median,
        median_ci_low_ms: median - half,
        median_ci_high_ms: median + half,
        p95_ms: median + 2.0 * half,
        warmup_ratio: f64::NAN,
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
    decide(
        summary,
        cost,
        scenarios,
        workloads,
        &BTreeSet::new(),
        &BTreeMap::new(),
    )
}

fn class(d: &Decisions, c: WorkloadClass) -> &Decision {
    d.per_class.iter().find(|x| x.class == c).unwrap()
}

fn recommended(d: &Decision) -> (&str, &str) {
    match &d.outcome {
        Outcome::Recommend { backend, model, .. } => (backend, model),
        o => panic!("expected a recommendation, got {o:?}"),
    }
}

fn no_decision(d: &Decision) -> (&str, Option<(String, String)>) {
    match &d.outcome {
        Outcome::NoDecision { reason, leading } => (reason, leading.clone()),
        o => panic!("expected no decision, got {o:?}"),
    }
}

fn pair(b: &str, m: &str) -> Option<(String, String)> {
    Some((b.into(), m.into()))
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
    let (reason, leading) = no_decision(rag);
    assert!(reason.contains("no scenario in the class"), "{reason}");
    assert!(reason.contains(WorkloadClass::Rag.shape()), "{reason}");
    assert!(reason.contains("W.5"), "{reason}");
    assert_eq!(leading, None);
    assert!(rag.scenarios.is_empty() && rag.candidates.is_empty());
    // The chat class itself is answered.
    assert_eq!(
        recommended(class(&d, WorkloadClass::InteractiveChat)),
        ("a", "m")
    );
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
    match &chat.outcome {
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
            let (rb, rm, rv) = runner_up.clone().unwrap();
            assert_eq!((rb.as_str(), rm.as_str()), ("b", "m"));
            assert!((rv - 50.0).abs() < 1e-9);
        }
        o => panic!("{o:?}"),
    }
    let b = &chat.candidates[1];
    let v = &b.per_scenario[0];
    assert!((v.ci_low.unwrap() - 50.0 * 20.0 / 21.0).abs() < 1e-9);
    assert!((v.ci_high.unwrap() - 50.0 * 20.0 / 19.0).abs() < 1e-9);
    // Only the decode rows are evidence (no warmup, gen >= 64).
    assert_eq!(chat.evidence_rows, [0, 1]);
}

#[test]
fn decode_fraction_decides_between_decode_and_prefill_latency() {
    // Short generation: decode-heavy only through the decode fraction.
    let sc = [scen("agent", 64, 1, 32)];
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
    let agents = class(&heavy, WorkloadClass::Agents);
    assert!(
        agents.branch.starts_with("decode-heavy"),
        "{}",
        agents.branch
    );
    assert!(
        agents.branch.contains("decode fraction 0.9400"),
        "{}",
        agents.branch
    );
    assert_eq!(recommended(agents), ("a", "m"));
    // The e2e rows that decided the branch are evidence.
    assert!(agents.evidence_rows.contains(&4) && agents.evidence_rows.contains(&5));

    // Median exactly 0.9 is not above it: single-prompt prefill latency.
    let light = with(0.95, 0.85);
    let agents = class(&light, WorkloadClass::Agents);
    assert!(
        agents.branch.starts_with("single-prompt prefill latency"),
        "{}",
        agents.branch
    );
    assert!(agents.branch.contains("0.9000 <= 0.9"), "{}", agents.branch);
    assert_eq!(agents.metric, "prefill median latency");
    assert_eq!(agents.unit, "ms");
    assert!(!agents.higher_is_better);
    assert_eq!(recommended(agents), ("b", "m"));
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
    assert_eq!(recommended(bp), ("b", "m"));
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
    assert_eq!(recommended(bp), ("a", "m"));
    assert_eq!(bp.cost_rows, [2, 3]);
    let v = &bp.candidates[0].per_scenario[0];
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
    let g: Vec<_> = chat
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
    assert!(
        reason.contains("b/m leads on the geometric mean"),
        "{reason}"
    );
    assert!(reason.contains("a/m is better in scenario s2"), "{reason}");
    assert_eq!(leading, pair("b", "m"));

    // Better in both scenarios: recommended at the geomean.
    let rows = [
        row(&sc[0], "a", "m", "decode", 5.0, 0.01, 5),
        row(&sc[1], "a", "m", "decode", 2.5, 0.01, 5),
        row(&sc[0], "b", "m", "decode", 10.0, 0.01, 5),
        row(&sc[1], "b", "m", "decode", 10.0, 0.01, 5),
    ];
    let d = run(&rows, &[], &sc);
    match &class(&d, WorkloadClass::InteractiveChat).outcome {
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
        reason.contains("the 95% CIs of fast/m and slow/m overlap in scenario chat"),
        "{reason}"
    );
    assert_eq!(leading, pair("fast", "m"));

    // Disjoint: recommended, with the runner-up.
    let rows = [
        row(&sc[0], "fast", "m", "decode", 10.0, 0.2, 5),
        row(&sc[0], "slow", "m", "decode", 10.5, 0.2, 5),
    ];
    let d = run(&rows, &[], &sc);
    let chat = class(&d, WorkloadClass::InteractiveChat);
    assert_eq!(recommended(chat), ("fast", "m"));
    match &chat.outcome {
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
    assert!(reason.contains("would favour a/m"), "{reason}");
    assert_eq!(leading, pair("a", "m"));
    // A single simulated candidate is no decision either.
    let d = run(&rows[1..], &[], &sc);
    let (_, leading) = no_decision(class(&d, WorkloadClass::InteractiveChat));
    assert_eq!(leading, pair("b", "m"));
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
    assert_eq!(recommended(rag), ("a", "m"));
    assert_eq!(class(&d, WorkloadClass::Agents).scenarios, ["chat"]);
    // Chat now means tiny: not decode-heavy, so prefill latency (b).
    let chat = class(&d, WorkloadClass::InteractiveChat);
    assert_eq!(chat.scenarios, ["tiny"]);
    assert_eq!(chat.metric, "prefill median latency");
    assert_eq!(recommended(chat), ("b", "m"));
    // Unknown names and empty lists are reported, not guessed.
    let workloads = BTreeMap::from([
        (WorkloadClass::Rag, vec!["nope".to_string()]),
        (WorkloadClass::Agents, vec![]),
    ]);
    let d = run_with(&rows, &[], &sc, &workloads);
    let (reason, _) = no_decision(class(&d, WorkloadClass::Rag));
    assert!(
        reason.contains("unknown scenario(s) for rag: nope"),
        "{reason}"
    );
    let (reason, _) = no_decision(class(&d, WorkloadClass::Agents));
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
    assert_eq!(recommended(chat), ("a", "m"));
    match &chat.outcome {
        Outcome::Recommend {
            runner_up, note, ..
        } => {
            assert_eq!(*runner_up, None);
            assert!(note.starts_with("no alternative was measured"), "{note}");
            assert!(note.contains("b/m (n = 2 < 3 in chat)"), "{note}");
        }
        o => panic!("{o:?}"),
    }
    let b = chat.candidates.iter().find(|c| c.backend == "b").unwrap();
    assert_eq!(b.excluded.as_deref(), Some("n = 2 < 3 in chat"));
    assert_eq!(b.geomean, None);
    let c = chat.candidates.iter().find(|c| c.backend == "c").unwrap();
    assert_eq!(c.excluded.as_deref(), Some("no finite 95% CI in chat"));
    // Ranked first, excluded after; excluded rows are not evidence.
    assert_eq!(chat.candidates[0].backend, "a");
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
    let b = chat.candidates.iter().find(|c| c.backend == "b").unwrap();
    assert_eq!(b.excluded.as_deref(), Some("no decode row in chat2"));
    assert_eq!(recommended(chat), ("a", "m"));

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
        class(&d, WorkloadClass::InteractiveChat).cold_start.clone()
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
    let cs = &class(&d, WorkloadClass::InteractiveChat).cold_start;
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
    let d = decide(&[], &[], &[], &BTreeMap::new(), &BTreeSet::new(), &dtypes);
    assert_eq!(d.scaling, scaling_advice(&dtypes));
}

#[test]
fn compiler_tree_per_backend() {
    let sc = scen("chat", 128, 1, 128);
    let rows = [
        row(&sc, "eager", "m", "decode", 10.0, 0.1, 5),
        row(&sc, "compiled", "m", "decode", 10.0, 0.1, 5),
        row(&sc, "compiled", "m", "prefill", 10.0, 0.1, 5),
    ];
    let real = BTreeSet::from(["compiled".to_string(), "absent".to_string()]);
    let d = decide(&rows, &[], &[sc], &BTreeMap::new(), &real, &BTreeMap::new());
    let backends: Vec<_> = d.compiler.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(backends, ["compiled", "eager"]);
    assert!(
        d.compiler[0]
            .1
            .starts_with("compile prefill; keep decode eager")
    );
    assert_eq!(
        d.compiler[1].1,
        "disable compile: no compiler-real evidence"
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
        for c in &mut dec.candidates {
            for v in &mut c.per_scenario {
                assert_eq!(summary[v.row as usize].scenario, v.scenario);
                assert_eq!(summary[v.row as usize].backend, c.backend);
                v.row = 0;
                v.cost_row = v.cost_row.map(|_| 0);
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
                    rows.push(r);
                }
                rows.push(e2e(s, b, m, 0.5 + 0.01 * j as f64));
            }
        }
    }
    // Ties: z/m1 and z/m2 are identical; broken by name.
    let cost: Vec<CostRow> = rows
        .iter()
        .filter(|r| r.phase == "prefill")
        .flat_map(|r| {
            [
                cost_row(r, "spot", r.median_ms / 100.0),
                cost_row(r, "base", r.median_ms / 10.0),
            ]
        })
        .collect();
    let models = BTreeMap::from([("m1".to_string(), ModelTraits::default())]);
    let go = |rows: &[SummaryRow], cost: &[CostRow], sc: &[Scenario]| {
        decide(rows, cost, sc, &BTreeMap::new(), &BTreeSet::new(), &models)
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
    let first: Vec<_> = chat
        .candidates
        .iter()
        .map(|c| format!("{}/{}", c.backend, c.model))
        .collect();
    assert_eq!(first, ["x/m1", "x/m2", "y/m1", "y/m2", "z/m1", "z/m2"]);
}
