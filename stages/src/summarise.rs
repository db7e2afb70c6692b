//! summarise: per cell x phase distribution statistics over steady-state runs
//! that validated ok. Warmup runs and degraded runs never enter a summary.

use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use serde_json::{Value, json};

use crate::measure::Manifest;
use crate::stage::{Input, Outputs, Stage, StageContext, StageError};
use crate::stats;
use crate::tables::{self, EventRow, SummaryRow, ValidationRow};
use crate::validate::{cell_inputs, find_input};

pub const SUMMARISE_VERSION: u32 = 1;

/// Resamples of the bootstrap CI of each median.
pub const MEDIAN_CI_RESAMPLES: u32 = 1000;

/// Phases summarised, in report order.
pub const PHASES: [&str; 5] = ["load", "prefill", "ttft", "decode", "e2e"];

#[derive(Debug, Clone, Default)]
pub struct SummariseStage;

impl Stage for SummariseStage {
    fn kind(&self) -> &'static str {
        "summarise"
    }

    fn version(&self) -> u32 {
        SUMMARISE_VERSION
    }

    fn params(&self) -> Value {
        json!({
            "phases": PHASES,
            "quantile_method": "type7",
            "median_ci": { "method": "percentile_bootstrap", "resamples": MEDIAN_CI_RESAMPLES, "level": 0.95 },
        })
    }

    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError> {
        let validation: Vec<ValidationRow> =
            tables::read_rows(ctx, find_input(inputs, "validation")?)?;
        let ok: BTreeSet<(&str, u32)> = validation
            .iter()
            .filter(|v| v.status == "ok")
            .map(|v| (v.cell.as_str(), v.repetition))
            .collect();
        let mut rows = Vec::new();
        for cell in cell_inputs(inputs)? {
            ctx.check_cancel()?;
            let manifest: Manifest = tables::read_json(ctx, cell.manifest)?;
            let events: Vec<EventRow> = tables::read_rows(ctx, cell.events)?;
            rows.extend(summarise_cell(&manifest, &events, &ok, ctx.seed()));
        }
        let mut out = Outputs::new();
        out.insert("summary".into(), tables::to_parquet(&rows)?);
        Ok(out)
    }
}

/// Summary rows of one cell: one per phase that has data.
pub fn summarise_cell(
    manifest: &Manifest,
    events: &[EventRow],
    ok_runs: &BTreeSet<(&str, u32)>,
    seed: u64,
) -> Vec<SummaryRow> {
    let mut by_phase: BTreeMap<&str, (Vec<f64>, Vec<u32>)> = BTreeMap::new();
    let mut warmup: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut cold: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.phase != "load") {
        if e.warmup {
            warmup
                .entry(e.phase.as_str())
                .or_default()
                .push(e.ns as f64 / 1e6);
        }
        if e.cold {
            cold.entry(e.phase.as_str())
                .or_default()
                .push(e.ns as f64 / 1e6);
        }
    }
    for e in events {
        // Model load happens once, before any run: it is summarised on its
        // own and never mixed into steady state.
        let steady = e.phase == "load"
            || (!e.warmup && ok_runs.contains(&(manifest.cell.as_str(), e.repetition)));
        if steady {
            let entry = by_phase.entry(e.phase.as_str()).or_default();
            entry.0.push(e.ns as f64 / 1e6);
            entry.1.push(e.tokens);
        }
    }
    let info = &manifest.model_info;
    PHASES
        .iter()
        .filter_map(|phase| {
            let (ms, tokens) = by_phase.get(phase)?;
            let sorted = stats::sorted(ms);
            let median = stats::quantile_sorted(&sorted, 0.5);
            // One RNG stream per (cell, phase): independent of row order.
            let stream = blake3::hash(format!("{}\0{phase}", manifest.cell).as_bytes());
            let stream = u64::from_le_bytes(stream.as_bytes()[..8].try_into().unwrap_or([0; 8]));
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ stream);
            let (ci_low, ci_high) = stats::bootstrap_median_ci(ms, MEDIAN_CI_RESAMPLES, &mut rng);
            let warm = warmup.get(phase).map(Vec::as_slice).unwrap_or(&[]);
            let warmup_median = if warm.is_empty() {
                f64::NAN
            } else {
                stats::median(warm)
            };
            let cold_median = cold.get(phase).map_or(f64::NAN, |c| stats::median(c));
            let tokens_per_event =
                stats::median(&tokens.iter().map(|t| f64::from(*t)).collect::<Vec<_>>());
            // Throughput is defined for work phases only: load processes no
            // tokens and TTFT is a latency, not a rate.
            let is_rate = matches!(*phase, "prefill" | "decode" | "e2e");
            let tokens_per_s = if is_rate && median > 0.0 && tokens_per_event > 0.0 {
                tokens_per_event / (median / 1000.0)
            } else {
                0.0
            };
            Some(SummaryRow {
                cell: manifest.cell.clone(),
                backend: manifest.backend.clone(),
                model: manifest.model.clone(),
                scenario: manifest.scenario.name.clone(),
                phase: phase.to_string(),
                evidence: manifest.evidence.clone(),
                parameter_count: info.parameter_count,
                n_layer: info.n_layer,
                n_embd: info.n_embd,
                prompt_tokens: manifest.scenario.prompt_tokens,
                batch: manifest.scenario.batch,
                gen_tokens: manifest.scenario.gen_tokens,
                n: ms.len() as u32,
                mean_ms: stats::mean(ms),
                median_ms: median,
                median_ci_low_ms: ci_low,
                median_ci_high_ms: ci_high,
                p90_ms: stats::quantile_sorted(&sorted, 0.90),
                p95_ms: stats::quantile_sorted(&sorted, 0.95),
                p99_ms: stats::quantile_sorted(&sorted, 0.99),
                min_ms: sorted[0],
                max_ms: sorted[sorted.len() - 1],
                std_ms: if ms.len() > 1 {
                    stats::std_dev(ms)
                } else {
                    0.0
                },
                mad_ms: stats::mad(ms),
                warmup_n: warm.len() as u32,
                warmup_median_ms: warmup_median,
                warmup_ratio: if median > 0.0 {
                    warmup_median / median
                } else {
                    f64::NAN
                },
                cold_median_ms: cold_median,
                tokens_per_s,
            })
        })
        .collect()
}
