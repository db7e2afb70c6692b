//! report: `report.md`, `report.html` and `report.json`. Every number in
//! report.json is a claim with an id and the digest and rows of the artifact
//! it came from. The three formats render one document model, so they never
//! disagree. All floats are formatted with fixed precision: the bytes depend
//! on the inputs only.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cost::CostParams;
use crate::measure::{Boundary, Manifest, Scenario};
use crate::stage::{Input, Outputs, Stage, StageContext, StageError};
use crate::tables::{self, CostRow, FitRow, SummaryRow, ValidationRow};
use crate::validate::{Checks, find_input};

pub const REPORT_VERSION: u32 = 1;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Md,
    Html,
    Json,
}

impl Format {
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Md => "report.md",
            Format::Html => "report.html",
            Format::Json => "report.json",
        }
    }
}

/// What the report stage needs from the spec besides its inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportParams {
    pub spec_id: String,
    pub title: String,
    pub question: String,
    pub decision: String,
    pub boundary: Boundary,
    pub scenarios: Vec<Scenario>,
    pub cost: Option<CostParams>,
}

#[derive(Debug, Clone)]
pub struct ReportStage {
    pub params: ReportParams,
}

/// Where a claim's number came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClaimSource {
    /// Plan node that produced the artifact.
    pub node: String,
    /// Output name of the artifact at that node.
    pub artifact: String,
    pub digest: String,
    /// 0-based row indices in the artifact table.
    pub rows: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Claim {
    pub id: String,
    pub statement: String,
    pub value: f64,
    pub unit: String,
    /// `measured` or `simulated` (never evidence).
    pub evidence: String,
    pub source: ClaimSource,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactRef {
    pub node: String,
    pub name: String,
    pub digest: String,
}

/// `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReportJson {
    pub assay_report: u32,
    pub spec: String,
    pub title: String,
    pub question: String,
    pub decision: String,
    /// `measured`, `simulated` or `mixed`.
    pub evidence: String,
    pub artifacts: Vec<ArtifactRef>,
    pub claims: Vec<Claim>,
}

enum Block {
    Heading(u8, String),
    Para(String),
    Warning(String),
    Table(Vec<String>, Vec<Vec<String>>),
}

fn f(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "n/a".into()
    }
}

impl Stage for ReportStage {
    fn kind(&self) -> &'static str {
        "report"
    }

    fn version(&self) -> u32 {
        REPORT_VERSION
    }

    fn params(&self) -> Value {
        serde_json::to_value(&self.params).unwrap_or(Value::Null)
    }

    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError> {
        let summary_in = find_input(inputs, "summary")?;
        let validation_in = find_input(inputs, "validation")?;
        let cost_in = inputs.iter().find(|i| i.name == "cost");
        let fit_in = inputs.iter().find(|i| i.name == "fit");
        let summary: Vec<SummaryRow> = tables::read_rows(ctx, summary_in)?;
        let validation: Vec<ValidationRow> = tables::read_rows(ctx, validation_in)?;
        let checks: Checks = tables::read_json(ctx, find_input(inputs, "checks")?)?;
        let cost: Vec<CostRow> = match cost_in {
            Some(i) => tables::read_rows(ctx, i)?,
            None => Vec::new(),
        };
        let fit: Vec<FitRow> = match fit_in {
            Some(i) => tables::read_rows(ctx, i)?,
            None => Vec::new(),
        };
        let mut manifests = Vec::new();
        for i in inputs.iter().filter(|i| i.name == "manifest") {
            manifests.push(tables::read_json::<Manifest>(ctx, i)?);
        }

        let mut doc = Vec::new();
        let mut claims = Vec::new();
        let p = &self.params;
        let evidence = overall_evidence(&manifests);

        doc.push(Block::Heading(1, p.title.clone()));
        if evidence != "measured" {
            doc.push(Block::Warning(
                "SIMULATED DATA: some or all numbers below come from the `simulated` backend, \
                 a latency model. They exercise the pipeline and support what-ifs; they are \
                 not evidence and must not feed a decision."
                    .into(),
            ));
        }
        doc.push(Block::Heading(2, "Decision question".into()));
        doc.push(Block::Para(p.question.clone()));
        doc.push(Block::Heading(2, "Decision this feeds".into()));
        doc.push(Block::Para(p.decision.clone()));

        doc.push(Block::Heading(2, "Measurement boundary".into()));
        let b = &p.boundary;
        doc.push(Block::Table(
            vec!["aspect".into(), "setting".into()],
            vec![
                vec![
                    "timed phases".into(),
                    "load (separate), prefill, ttft, decode (per token, KV cache), e2e".into(),
                ],
                vec![
                    "tokenization".into(),
                    format!("{:?}", b.tokenization).to_lowercase(),
                ],
                vec![
                    "model load".into(),
                    format!("{:?}", b.model_load).to_lowercase(),
                ],
                vec![
                    "warmup runs (kept, excluded from steady state)".into(),
                    b.warmup_runs.to_string(),
                ],
                vec!["steady-state repetitions".into(), b.repetitions.to_string()],
                vec![
                    "decode".into(),
                    "fixed length, EOS ignored; short runs degraded".into(),
                ],
            ],
        ));

        doc.push(Block::Heading(2, "Scenarios".into()));
        doc.push(Block::Table(
            vec![
                "scenario".into(),
                "prompt tokens".into(),
                "batch".into(),
                "gen tokens".into(),
            ],
            p.scenarios
                .iter()
                .map(|s| {
                    vec![
                        s.name.clone(),
                        s.prompt_tokens.to_string(),
                        s.batch.to_string(),
                        s.gen_tokens.to_string(),
                    ]
                })
                .collect(),
        ));

        // Validation.
        doc.push(Block::Heading(2, "Validation".into()));
        let mut by_status: BTreeMap<&str, u32> = BTreeMap::new();
        for v in &validation {
            *by_status.entry(v.status.as_str()).or_default() += 1;
        }
        for status in ["ok", "degraded", "failed"] {
            let rows: Vec<u32> = (0..validation.len() as u32)
                .filter(|i| validation[*i as usize].status == status)
                .collect();
            claims.push(Claim {
                id: format!("validation/{status}_runs"),
                statement: format!("{} runs validated {status}", rows.len()),
                value: rows.len() as f64,
                unit: "runs".into(),
                evidence: evidence.clone(),
                source: source(validation_in, rows),
            });
        }
        doc.push(Block::Para(format!(
            "{} runs: {} ok, {} degraded, {} failed. Warmup, degraded and failed runs are excluded from every steady-state aggregate below; model load is reported on its own.",
            validation.len(),
            by_status.get("ok").unwrap_or(&0),
            by_status.get("degraded").unwrap_or(&0),
            by_status.get("failed").unwrap_or(&0)
        )));
        let failed_checks: Vec<Vec<String>> = checks
            .checks
            .iter()
            .filter(|c| !c.passed && c.check != "evidence")
            .map(|c| vec![c.cell.clone(), c.check.clone(), c.detail.clone()])
            .collect();
        if failed_checks.is_empty() {
            doc.push(Block::Para("All checks passed (phases complete and ordered, fixed-length decode, repetitions, warmup labelling, attribution).".into()));
        } else {
            doc.push(Block::Table(
                vec!["cell".into(), "check".into(), "detail".into()],
                failed_checks,
            ));
        }
        let flagged: Vec<u32> = (0..validation.len() as u32)
            .filter(|i| !validation[*i as usize].flags.is_empty())
            .collect();
        claims.push(Claim {
            id: "validation/outlier_runs".into(),
            statement: format!(
                "{} steady runs flagged as outliers (kept, not dropped)",
                flagged.len()
            ),
            value: flagged.len() as f64,
            unit: "runs".into(),
            evidence: evidence.clone(),
            source: source(validation_in, flagged.clone()),
        });
        if !flagged.is_empty() {
            doc.push(Block::Para(format!(
                "{} runs flagged as outliers (end-to-end latency beyond k scaled MADs of their cell's median): \
                 flagged, kept in the aggregates; the tails below include them.",
                flagged.len()
            )));
            doc.push(Block::Table(
                vec!["cell".into(), "run".into(), "flags".into()],
                flagged
                    .iter()
                    .map(|i| {
                        let v = &validation[*i as usize];
                        vec![v.cell.clone(), v.repetition.to_string(), v.flags.clone()]
                    })
                    .collect(),
            ));
        }
        let degraded: Vec<Vec<String>> = validation
            .iter()
            .filter(|v| v.status != "ok")
            .map(|v| {
                vec![
                    v.cell.clone(),
                    v.repetition.to_string(),
                    v.status.clone(),
                    v.reasons.clone(),
                ]
            })
            .collect();
        if !degraded.is_empty() {
            doc.push(Block::Table(
                vec![
                    "cell".into(),
                    "run".into(),
                    "status".into(),
                    "reasons".into(),
                ],
                degraded,
            ));
        }

        // Results.
        doc.push(Block::Heading(
            2,
            "Results (steady state, validated runs)".into(),
        ));
        doc.push(Block::Para("Medians with tails; milliseconds per event (decode: per step, one token per sequence). Tokens/s divides the tokens of an event by its median time.".into()));
        let mut result_rows = Vec::new();
        for (i, s) in summary.iter().enumerate() {
            result_rows.push(vec![
                s.backend.clone(),
                s.model.clone(),
                s.scenario.clone(),
                s.phase.clone(),
                s.n.to_string(),
                f(s.median_ms, 3),
                format!(
                    "[{}, {}]",
                    f(s.median_ci_low_ms, 3),
                    f(s.median_ci_high_ms, 3)
                ),
                f(s.p95_ms, 3),
                f(s.p99_ms, 3),
                f(s.mean_ms, 3),
                // Load and TTFT are latencies, not rates.
                if s.tokens_per_s > 0.0 {
                    f(s.tokens_per_s, 1)
                } else {
                    "-".into()
                },
            ]);
            let rows = vec![i as u32];
            let what = format!("{} on {}, scenario {}", s.model, s.backend, s.scenario);
            claims.push(Claim {
                id: format!("latency/{}/{}/median_ms", s.cell, s.phase),
                statement: format!(
                    "Median {} latency of {what}: {} ms (p95 {}, p99 {}, n={})",
                    s.phase,
                    f(s.median_ms, 3),
                    f(s.p95_ms, 3),
                    f(s.p99_ms, 3),
                    s.n
                ),
                value: s.median_ms,
                unit: "ms".into(),
                evidence: s.evidence.clone(),
                source: source(summary_in, rows.clone()),
            });
            if s.tokens_per_s > 0.0 {
                claims.push(Claim {
                    id: format!("throughput/{}/{}/tokens_per_s", s.cell, s.phase),
                    statement: format!(
                        "{} throughput of {what}: {} tokens/s",
                        s.phase,
                        f(s.tokens_per_s, 1)
                    ),
                    value: s.tokens_per_s,
                    unit: "tokens/s".into(),
                    evidence: s.evidence.clone(),
                    source: source(summary_in, rows),
                });
            }
        }
        doc.push(Block::Table(
            [
                "backend",
                "model",
                "scenario",
                "phase",
                "n",
                "median ms",
                "median 95% CI",
                "p95 ms",
                "p99 ms",
                "mean ms",
                "tokens/s",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            result_rows,
        ));

        // Roofline: decode is memory-bound, so the machine's bandwidth over
        // the bytes a step must read bounds decode throughput from above.
        let roof: Vec<(usize, &SummaryRow)> = summary
            .iter()
            .enumerate()
            .filter(|(_, s)| s.phase == "decode" && s.roofline_fraction.is_finite())
            .collect();
        if !roof.is_empty() {
            doc.push(Block::Heading(
                2,
                "Roofline (decode vs memory bandwidth)".into(),
            ));
            doc.push(Block::Para(
                "Bytes per step: streamed weights once plus each sequence's KV cache at the mean decode context. Bandwidth: STREAM-style copy on this machine at the cell's thread count. Bound = batch x bandwidth / bytes."
                    .into(),
            ));
            let mut rows = Vec::new();
            for (i, s) in roof {
                rows.push(vec![
                    s.backend.clone(),
                    s.model.clone(),
                    s.scenario.clone(),
                    f(s.tokens_per_s, 1),
                    f(s.roofline_bytes_per_step / 1e6, 2),
                    f(s.bandwidth_gbps, 2),
                    f(s.roofline_tokens_per_s, 1),
                    f(s.roofline_fraction, 3),
                ]);
                claims.push(Claim {
                    id: format!("roofline/{}/fraction", s.cell),
                    statement: format!(
                        "Decode of {} on {}, scenario {}, runs at {} of the memory-bandwidth bound ({} of {} tokens/s)",
                        s.model,
                        s.backend,
                        s.scenario,
                        f(s.roofline_fraction, 3),
                        f(s.tokens_per_s, 1),
                        f(s.roofline_tokens_per_s, 1)
                    ),
                    value: s.roofline_fraction,
                    unit: "fraction".into(),
                    evidence: s.evidence.clone(),
                    source: source(summary_in, vec![i as u32]),
                });
            }
            doc.push(Block::Table(
                [
                    "backend",
                    "model",
                    "scenario",
                    "decode tokens/s",
                    "MB per step",
                    "bandwidth GB/s",
                    "bound tokens/s",
                    "fraction of bound",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
                rows,
            ));
        }

        // Phase split (AA.3) and the TR117 paradox: rankings by mean and by
        // median that disagree mean the distribution, not one number, decides.
        doc.push(Block::Heading(2, "Phase split".into()));
        doc.push(Block::Para(
            "Decode fraction = decode time / end-to-end time per run (median over runs). Near 1, decode dominates \
             and decode throughput is the metric to optimise (Appendix AM rule 1)."
                .into(),
        ));
        let mut split_rows = Vec::new();
        for (i, s) in summary
            .iter()
            .enumerate()
            .filter(|(_, s)| s.phase == "e2e" && s.decode_fraction.is_finite())
        {
            split_rows.push(vec![
                s.backend.clone(),
                s.model.clone(),
                s.scenario.clone(),
                f(s.decode_fraction, 3),
                if s.decode_fraction > 0.9 {
                    "decode-dominant".into()
                } else {
                    String::new()
                },
            ]);
            claims.push(Claim {
                id: format!("phase_split/{}/decode_fraction", s.cell),
                statement: format!(
                    "Decode fraction of {} on {}, scenario {}: {}",
                    s.model,
                    s.backend,
                    s.scenario,
                    f(s.decode_fraction, 3)
                ),
                value: s.decode_fraction,
                unit: "fraction".into(),
                evidence: s.evidence.clone(),
                source: source(summary_in, vec![i as u32]),
            });
        }
        doc.push(Block::Table(
            ["backend", "model", "scenario", "decode fraction", ""]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            split_rows,
        ));
        let mut paradox_rows = Vec::new();
        for scenario in &p.scenarios {
            for phase in ["decode", "e2e"] {
                let rows: Vec<(usize, &SummaryRow)> = summary
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.scenario == scenario.name && s.phase == phase)
                    .collect();
                if rows.len() < 2 {
                    continue;
                }
                let order = |key: fn(&SummaryRow) -> f64| {
                    let mut v = rows.clone();
                    v.sort_by(|a, b| key(a.1).total_cmp(&key(b.1)).then(a.1.cell.cmp(&b.1.cell)));
                    v.iter()
                        .map(|(_, s)| format!("{}/{}", s.backend, s.model))
                        .collect::<Vec<_>>()
                };
                let by_median = order(|s| s.median_ms);
                let by_mean = order(|s| s.mean_ms);
                let disagree = by_median != by_mean;
                if disagree {
                    paradox_rows.push(vec![
                        scenario.name.clone(),
                        phase.to_string(),
                        by_median.join(" < "),
                        by_mean.join(" < "),
                    ]);
                }
                claims.push(Claim {
                    id: format!("paradox/{}/{phase}", scenario.name),
                    statement: format!(
                        "Rankings by mean and by median {} in scenario {}, phase {phase}",
                        if disagree { "disagree" } else { "agree" },
                        scenario.name
                    ),
                    value: if disagree { 1.0 } else { 0.0 },
                    unit: "bool".into(),
                    evidence: evidence.clone(),
                    source: source(summary_in, rows.iter().map(|(i, _)| *i as u32).collect()),
                });
            }
        }
        if paradox_rows.is_empty() {
            doc.push(Block::Para(
                "Rankings by mean and by median agree in every scenario (no TR117 paradox).".into(),
            ));
        } else {
            doc.push(Block::Para(
                "TR117 paradox: rankings by mean and by median disagree below; tails, not a single number, decide."
                    .into(),
            ));
            doc.push(Block::Table(
                ["scenario", "phase", "by median (fastest first)", "by mean"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                paradox_rows,
            ));
        }

        // Warmup and cold start (seed AA.4; AM rule 5: above 10x, cold start
        // must be managed explicitly).
        doc.push(Block::Heading(2, "Warmup and cold start".into()));
        doc.push(Block::Para(
            "Warmup ratio = warmup median / steady median (warmup runs are measured and kept, never averaged into \
             steady state). Cold = the first run after model load. A ratio above 10x means cold start must be \
             managed explicitly (warm pools, pre-routing warmup)."
                .into(),
        ));
        let mut warm_rows = Vec::new();
        for (i, s) in summary.iter().enumerate() {
            if !matches!(s.phase.as_str(), "prefill" | "decode" | "ttft")
                || !s.warmup_ratio.is_finite()
            {
                continue;
            }
            let flag = if s.warmup_ratio > 10.0 {
                "manage cold start"
            } else {
                ""
            };
            warm_rows.push(vec![
                s.backend.clone(),
                s.model.clone(),
                s.scenario.clone(),
                s.phase.clone(),
                f(s.median_ms, 3),
                f(s.warmup_median_ms, 3),
                f(s.cold_median_ms, 3),
                format!("{}x", f(s.warmup_ratio, 2)),
                flag.into(),
            ]);
            claims.push(Claim {
                id: format!("warmup/{}/{}/ratio", s.cell, s.phase),
                statement: format!(
                    "Warmup ratio of {} for {} on {}, scenario {}: {}x (warmup median {} ms over steady median {} ms)",
                    s.phase,
                    s.model,
                    s.backend,
                    s.scenario,
                    f(s.warmup_ratio, 2),
                    f(s.warmup_median_ms, 3),
                    f(s.median_ms, 3)
                ),
                value: s.warmup_ratio,
                unit: "ratio".into(),
                evidence: s.evidence.clone(),
                source: source(summary_in, vec![i as u32]),
            });
        }
        if warm_rows.is_empty() {
            doc.push(Block::Para(
                "No warmup runs in the boundary: no warmup ratios.".into(),
            ));
        } else {
            doc.push(Block::Table(
                [
                    "backend",
                    "model",
                    "scenario",
                    "phase",
                    "steady median ms",
                    "warmup median ms",
                    "cold median ms",
                    "warmup ratio",
                    "",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
                warm_rows,
            ));
        }

        // Ranking by decode throughput per scenario.
        doc.push(Block::Heading(2, "Decode throughput ranking".into()));
        let mut ranking_rows = Vec::new();
        for scenario in &p.scenarios {
            let best = summary
                .iter()
                .enumerate()
                .filter(|(_, s)| s.scenario == scenario.name && s.phase == "decode")
                .max_by(|a, b| {
                    a.1.tokens_per_s
                        .total_cmp(&b.1.tokens_per_s)
                        .then(b.1.cell.cmp(&a.1.cell))
                });
            if let Some((i, s)) = best {
                ranking_rows.push(vec![
                    scenario.name.clone(),
                    s.backend.clone(),
                    s.model.clone(),
                    f(s.tokens_per_s, 1),
                ]);
                claims.push(Claim {
                    id: format!("ranking/{}/decode/best", scenario.name),
                    statement: format!(
                        "Best decode throughput in scenario {}: {} on {} at {} tokens/s",
                        scenario.name,
                        s.model,
                        s.backend,
                        f(s.tokens_per_s, 1)
                    ),
                    value: s.tokens_per_s,
                    unit: "tokens/s".into(),
                    evidence: s.evidence.clone(),
                    source: source(summary_in, vec![i as u32]),
                });
            }
        }
        doc.push(Block::Table(
            vec![
                "scenario".into(),
                "best backend".into(),
                "model".into(),
                "decode tokens/s".into(),
            ],
            ranking_rows,
        ));

        // Cost.
        doc.push(Block::Heading(
            2,
            "Cost and capacity (shadow prices)".into(),
        ));
        if let (Some(cost_in), Some(params)) = (cost_in, &p.cost) {
            doc.push(Block::Para(format!(
                "Shadow prices: compute time priced per worker-hour (usd_per_1M = 1e6 / tokens_per_s / 3600 * usd_per_hour), \
                 not total cost of ownership. Capacity for {} tokens/month (30-day month, mean load {} tokens/s) at burst factor {}.",
                params.tokens_per_month,
                f(crate::cost::mean_load_tokens_per_s(params.tokens_per_month), 1),
                params.burst_factor
            )));
            let mut rows = Vec::new();
            for (i, c) in cost.iter().enumerate() {
                rows.push(vec![
                    c.backend.clone(),
                    c.model.clone(),
                    c.scenario.clone(),
                    c.phase.clone(),
                    c.tier.clone(),
                    f(c.usd_per_1m, 4),
                    f(c.workers_utilization_perfect, 2),
                    c.workers_required.to_string(),
                    f(c.usd_per_month, 2),
                ]);
                claims.push(Claim {
                    id: format!("cost/{}/{}/{}/usd_per_1m", c.cell, c.phase, c.tier),
                    statement: format!(
                        "Shadow price of {} tokens for {} on {}, scenario {}, {} tier: ${} per 1M tokens",
                        c.phase,
                        c.model,
                        c.backend,
                        c.scenario,
                        c.tier,
                        f(c.usd_per_1m, 4)
                    ),
                    value: c.usd_per_1m,
                    unit: "USD/1M tokens".into(),
                    evidence: c.evidence.clone(),
                    source: source(cost_in, vec![i as u32]),
                });
                claims.push(Claim {
                    id: format!("capacity/{}/{}/{}/workers", c.cell, c.phase, c.tier),
                    statement: format!(
                        "Workers needed for the planned volume at burst, {} of {} on {}, scenario {}: {}",
                        c.phase, c.model, c.backend, c.scenario, c.workers_required
                    ),
                    value: c.workers_required as f64,
                    unit: "workers".into(),
                    evidence: c.evidence.clone(),
                    source: source(cost_in, vec![i as u32]),
                });
            }
            doc.push(Block::Table(
                [
                    "backend",
                    "model",
                    "scenario",
                    "phase",
                    "tier",
                    "$/1M tokens",
                    "workers (perfect)",
                    "workers (burst)",
                    "$/month",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
                rows,
            ));
            if let Some(requests_in) = inputs.iter().find(|i| i.name == "requests") {
                let requests: Vec<crate::cost::RequestCostRow> =
                    tables::read_rows(ctx, requests_in)?;
                let classes: Vec<String> = params
                    .request_mix
                    .iter()
                    .map(|c| {
                        format!(
                            "{} {} ({}+{} tokens)",
                            c.share, c.name, c.prompt_tokens, c.gen_tokens
                        )
                    })
                    .collect();
                doc.push(Block::Heading(3, "Cost per request (request mix)".into()));
                doc.push(Block::Para(format!(
                    "Request mix: {}. A request takes prompt / prefill tokens/s + generation / decode tokens/s \
                     seconds of one worker; the mix is the share-weighted expectation (Appendix V.4).",
                    classes.join(", ")
                )));
                let mut rows = Vec::new();
                for (i, r) in requests.iter().enumerate() {
                    rows.push(vec![
                        r.backend.clone(),
                        r.model.clone(),
                        r.scenario.clone(),
                        r.tier.clone(),
                        r.class.clone(),
                        f(r.tokens_per_request, 1),
                        f(r.seconds_per_request, 4),
                        f(r.usd_per_1k_requests, 4),
                    ]);
                    claims.push(Claim {
                        id: format!("requests/{}/{}/{}/usd_per_1k", r.cell, r.tier, r.class),
                        statement: format!(
                            "Shadow price of 1,000 {} requests on {} ({}), {} tier, measured in scenario {}: ${}",
                            r.class,
                            r.model,
                            r.backend,
                            r.tier,
                            r.scenario,
                            f(r.usd_per_1k_requests, 4)
                        ),
                        value: r.usd_per_1k_requests,
                        unit: "USD/1k requests".into(),
                        evidence: r.evidence.clone(),
                        source: source(requests_in, vec![i as u32]),
                    });
                }
                doc.push(Block::Table(
                    [
                        "backend",
                        "model",
                        "scenario",
                        "tier",
                        "class",
                        "tokens/request",
                        "s/request",
                        "$/1k requests",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                    rows,
                ));
            }
            if let Some(routing_in) = inputs.iter().find(|i| i.name == "routing") {
                let routing: Vec<crate::cost::RoutingRow> = tables::read_rows(ctx, routing_in)?;
                doc.push(Block::Heading(3, "Tiered routing (Appendix V.5)".into()));
                let mut rows = Vec::new();
                for (i, r) in routing.iter().enumerate() {
                    rows.push(vec![
                        r.tier.clone(),
                        r.policy.clone(),
                        f(r.usd_per_1k_requests, 4),
                    ]);
                    claims.push(Claim {
                        id: format!("routing/{}/usd_per_1k", r.tier),
                        statement: format!(
                            "Shadow price of 1,000 mixed requests under the routing policy {}, {} tier: ${}",
                            r.policy,
                            r.tier,
                            f(r.usd_per_1k_requests, 4)
                        ),
                        value: r.usd_per_1k_requests,
                        unit: "USD/1k requests".into(),
                        evidence: r.evidence.clone(),
                        source: source(routing_in, vec![i as u32]),
                    });
                }
                doc.push(Block::Table(
                    vec![
                        "tier".into(),
                        "policy (share backend/model/scenario)".into(),
                        "$/1k requests".into(),
                    ],
                    rows,
                ));
            }
        } else {
            doc.push(Block::Para(
                "No cost parameters in the spec: no cost claims.".into(),
            ));
        }

        // Scaling.
        doc.push(Block::Heading(2, "Scaling".into()));
        if let Some(fit_in) = fit_in {
            let mut rows = Vec::new();
            for (i, r) in fit.iter().enumerate() {
                rows.push(vec![
                    r.backend.clone(),
                    r.scenario.clone(),
                    format!("log {} ~ log {}", r.y, r.x),
                    r.n.to_string(),
                    f(r.slope, 3),
                    format!("[{}, {}]", f(r.slope_ci_low, 3), f(r.slope_ci_high, 3)),
                    f(r.r_squared, 3),
                    f(r.spearman, 3),
                    if r.identifiable {
                        "yes".into()
                    } else {
                        "unidentifiable".into()
                    },
                ]);
                // Rule 7: an unidentifiable exponent feeds no claim.
                if !r.identifiable {
                    continue;
                }
                claims.push(Claim {
                    id: format!("fit/{}/{}/{}~{}/slope", r.backend, r.scenario, r.y, r.x),
                    statement: format!(
                        "Log-log slope of {} against {} on {}, scenario {}: {} (95% CI [{}, {}], R^2 {}, n={})",
                        r.y, r.x, r.backend, r.scenario, f(r.slope, 3), f(r.slope_ci_low, 3), f(r.slope_ci_high, 3), f(r.r_squared, 3), r.n
                    ),
                    value: r.slope,
                    unit: "1".into(),
                    evidence: r.evidence.clone(),
                    source: source(fit_in, vec![i as u32]),
                });
            }
            doc.push(Block::Para(
                "Log-log OLS with a 95% percentile-bootstrap CI of the slope (n/a below 3 models) and Spearman rank \
                 correlation. A fit with R^2 < 0.2 whose slope CI crosses zero (or is unknown) is unidentifiable \
                 (Appendix AM rule 7), and so is any fit of fewer than 3 models: shown, never claimed."
                    .into(),
            ));
            doc.push(Block::Table(
                [
                    "backend",
                    "scenario",
                    "fit",
                    "n",
                    "slope",
                    "95% CI",
                    "R^2",
                    "Spearman",
                    "identifiable",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
                rows,
            ));
        } else {
            doc.push(Block::Para(
                "No fit parameters in the spec: no scaling claims.".into(),
            ));
        }

        // Attribution and artifact chain.
        doc.push(Block::Heading(2, "Attribution".into()));
        doc.push(Block::Table(
            ["cell", "evidence", "requested", "ran", "library", "weights"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            manifests
                .iter()
                .map(|m| {
                    vec![
                        m.cell.clone(),
                        m.evidence.clone(),
                        format!(
                            "{} {} x{}",
                            m.requested.device, m.requested.dtype, m.requested.threads
                        ),
                        format!(
                            "{} {} x{}",
                            m.actual.device, m.actual.dtype, m.actual.threads
                        ),
                        format!("{} {}", m.actual.library, m.actual.library_version),
                        m.weights.as_ref().map_or_else(
                            || "-".to_string(),
                            |id| {
                                format!(
                                    "{} {} {}",
                                    id.weights_format,
                                    id.stored_dtype,
                                    &id.weights_blake3[..16.min(id.weights_blake3.len())]
                                )
                            },
                        ),
                    ]
                })
                .collect(),
        ));
        let artifacts: Vec<ArtifactRef> = inputs
            .iter()
            .map(|i| ArtifactRef {
                node: i.node.clone(),
                name: i.name.clone(),
                digest: i.digest.to_hex(),
            })
            .collect();
        doc.push(Block::Heading(2, "Artifact chain".into()));
        doc.push(Block::Para(format!(
            "{} claims in report.json, each with the digest and rows of its source artifact. \
             `assay trace CLAIM_ID` follows one to the raw events and the measuring manifest.",
            claims.len()
        )));
        doc.push(Block::Table(
            vec!["node".into(), "artifact".into(), "digest".into()],
            artifacts
                .iter()
                .map(|a| vec![a.node.clone(), a.name.clone(), a.digest[..16].to_string()])
                .collect(),
        ));

        let report = ReportJson {
            assay_report: 1,
            spec: p.spec_id.clone(),
            title: p.title.clone(),
            question: p.question.clone(),
            decision: p.decision.clone(),
            evidence,
            artifacts,
            claims,
        };
        let mut out = Outputs::new();
        out.insert("report.md".into(), render_markdown(&doc).into_bytes());
        out.insert(
            "report.html".into(),
            render_html(&p.title, &doc).into_bytes(),
        );
        out.insert("report.json".into(), tables::to_json(&report)?);
        Ok(out)
    }
}

fn source(input: &Input, rows: Vec<u32>) -> ClaimSource {
    ClaimSource {
        node: input.node.clone(),
        artifact: input.name.clone(),
        digest: input.digest.to_hex(),
        rows,
    }
}

fn overall_evidence(manifests: &[Manifest]) -> String {
    let measured = manifests
        .iter()
        .filter(|m| m.evidence == "measured")
        .count();
    if measured == manifests.len() && measured > 0 {
        "measured".into()
    } else if measured == 0 {
        "simulated".into()
    } else {
        "mixed".into()
    }
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn render_markdown(doc: &[Block]) -> String {
    let mut out = String::new();
    for block in doc {
        match block {
            Block::Heading(level, text) => {
                out.push_str(&"#".repeat(usize::from(*level)));
                out.push(' ');
                out.push_str(text);
                out.push_str("\n\n");
            }
            Block::Para(text) => {
                out.push_str(text);
                out.push_str("\n\n");
            }
            Block::Warning(text) => {
                out.push_str("> **");
                out.push_str(text);
                out.push_str("**\n\n");
            }
            Block::Table(header, rows) => {
                out.push_str(&format!(
                    "| {} |\n",
                    header
                        .iter()
                        .map(|h| md_cell(h))
                        .collect::<Vec<_>>()
                        .join(" | ")
                ));
                out.push_str(&format!("|{}\n", " --- |".repeat(header.len())));
                for row in rows {
                    out.push_str(&format!(
                        "| {} |\n",
                        row.iter()
                            .map(|c| md_cell(c))
                            .collect::<Vec<_>>()
                            .join(" | ")
                    ));
                }
                out.push('\n');
            }
        }
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn render_html(title: &str, doc: &[Block]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n\
         body{{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}}\n\
         table{{border-collapse:collapse;margin:1rem 0;font-size:.9rem}}\n\
         th,td{{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}}\nth{{background:#f3f3f3}}\n\
         .warning{{background:#fff3cd;border:1px solid #e0c060;padding:.75rem;font-weight:bold}}\n\
         </style>\n</head>\n<body>\n",
        html_escape(title)
    );
    for block in doc {
        match block {
            Block::Heading(level, text) => {
                out.push_str(&format!("<h{level}>{}</h{level}>\n", html_escape(text)))
            }
            Block::Para(text) => out.push_str(&format!("<p>{}</p>\n", html_escape(text))),
            Block::Warning(text) => {
                out.push_str(&format!("<p class=\"warning\">{}</p>\n", html_escape(text)))
            }
            Block::Table(header, rows) => {
                out.push_str("<table>\n<tr>");
                for h in header {
                    out.push_str(&format!("<th>{}</th>", html_escape(h)));
                }
                out.push_str("</tr>\n");
                for row in rows {
                    out.push_str("<tr>");
                    for c in row {
                        out.push_str(&format!("<td>{}</td>", html_escape(c)));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</table>\n");
            }
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}
