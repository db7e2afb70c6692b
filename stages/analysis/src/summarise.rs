//! summarise: per cell x phase distribution statistics over steady-state runs
//! that validated ok. Warmup runs and degraded runs never enter a summary.

use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use serde_json::{Value, json};

use assay_core::domain::{Evidence, WeightsFormat};
use assay_core::inputs::{cell_inputs, find_input};
use assay_core::stage::{Input, Outputs, Stage, StageContext, StageError};
use assay_core::stats;
use assay_core::tables::{self, EnergyRow, EventColumns, Phase, SummaryRow, ValidationRow};
use assay_measure::bandwidth::Bandwidth;
use assay_measure::{Dtype, Manifest};

pub const SUMMARISE_VERSION: u32 = 4;

/// Resamples of the bootstrap CI of each median (in core's stats, so that
/// validate's monotonicity check uses the same count without importing
/// summarise).
pub use assay_core::stats::MEDIAN_CI_RESAMPLES;

/// Phases summarised, in report order (they enter the key).
pub const PHASES: [&str; 5] = ["load", "prefill", "ttft", "decode", "e2e"];

/// Phases only a boundary that includes tokenisation records, summarised
/// after [`PHASES`] where they occur. They stay out of the key's list: no
/// events stored before they existed carry them, so every summary that
/// has their rows reads measure digests of its own, and the keys of
/// existing specs stay as they were.
pub const TEXT_PHASES: [&str; 2] = ["tokenize", "detokenize"];

/// A compiler's phase (torch.compile, the `python` kind), summarised last
/// where it occurs and, like [`TEXT_PHASES`], out of the key's list.
pub const COMPILE_PHASES: [&str; 1] = ["compile"];

#[derive(Debug, Clone, Default)]
pub struct SummariseStage;

/// The one output of summarise: per cell and phase statistics
/// (`tables::SummaryRow`).
pub const OUTPUT: &str = "summary";

impl Stage for SummariseStage {
    fn kind(&self) -> &'static str {
        "summarise"
    }

    fn version(&self) -> u32 {
        SUMMARISE_VERSION
    }

    fn outputs(&self) -> Vec<&'static str> {
        vec![OUTPUT]
    }

    fn params(&self) -> Result<Value, StageError> {
        Ok(json!({
            "phases": PHASES,
            "quantile_method": "type7",
            "median_ci": { "method": "percentile_bootstrap", "resamples": MEDIAN_CI_RESAMPLES, "level": 0.95 },
        }))
    }

    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError> {
        let validation: Vec<ValidationRow> = tables::read_rows(
            ctx,
            find_input(inputs, crate::validate::output::VALIDATION)?,
        )?;
        let ok: BTreeSet<(&str, u32)> = validation
            .iter()
            .filter(|v| v.is_ok())
            .map(|v| (v.cell.as_str(), v.repetition))
            .collect();
        let bandwidth: Option<Bandwidth> = match inputs
            .iter()
            .find(|i| i.name == assay_measure::bandwidth::OUTPUT)
        {
            Some(input) => Some(tables::read_json(ctx, input)?),
            None => None,
        };
        let energy: Option<Vec<EnergyRow>> = match inputs
            .iter()
            .find(|i| i.name == crate::validate::output::ENERGY)
        {
            Some(input) => Some(tables::read_rows(ctx, input)?),
            None => None,
        };
        let mut rows = Vec::new();
        for cell in cell_inputs(inputs)? {
            ctx.check_cancel()?;
            let manifest: Manifest = tables::read_json(ctx, cell.manifest)?;
            let events = tables::read_event_columns(ctx, cell.events)?;
            let mut cell_rows = summarise_cell(&manifest, &events, &ok, ctx.seed());
            if let Some(bw) = &bandwidth {
                apply_roofline(&manifest, bw, &mut cell_rows);
            }
            if let Some(energy) = &energy {
                apply_energy(energy, &ok, &mut cell_rows);
            }
            rows.extend(cell_rows);
        }
        let mut out = Outputs::new();
        out.insert(OUTPUT.into(), tables::to_parquet(&rows)?);
        Ok(out)
    }
}

/// Summary rows of one cell: one per phase that has data.
pub fn summarise_cell(
    manifest: &Manifest,
    events: &EventColumns,
    ok_runs: &BTreeSet<(&str, u32)>,
    seed: u64,
) -> Vec<SummaryRow> {
    let cell = manifest.cell.as_str();
    let mut samples = CellSamples::gather(events, |rep| ok_runs.contains(&(cell, rep)));
    let (decode_fraction, decode_total_ms) = samples.run_medians();
    let template = row_template(manifest);
    let mut scratch = Vec::new();
    Phase::KNOWN
        .iter()
        .filter_map(|phase| {
            let mut row = phase_row(&mut samples, *phase, &template, &mut scratch)?;
            // One RNG stream per (cell, phase): independent of row order.
            let stream = blake3::hash(format!("{cell}\0{}", phase.name()).as_bytes());
            let stream = u64::from_le_bytes(stream.as_bytes()[..8].try_into().unwrap_or([0; 8]));
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ stream);
            let ms = &samples.steady[*phase as usize];
            (row.median_ci_low_ms, row.median_ci_high_ms) =
                stats::bootstrap_median_ci(ms, MEDIAN_CI_RESAMPLES, &mut rng);
            // An imported cell whose decode events are aggregates (one
            // per run holding the mean step) has no per-run decode total:
            // summing its events would undercount by the steps they stand
            // for, so both stay NaN ("cannot be computed").
            if *phase == Phase::E2e && !imported_aggregate(manifest, Phase::Decode) {
                row.decode_fraction = decode_fraction;
                row.decode_total_ms = decode_total_ms;
            }
            if imported_aggregate(manifest, *phase) {
                blank_step_quantiles(&mut row);
            }
            Some(row)
        })
        .collect()
}

/// The phase's events in an imported cell are aggregates (each one a
/// run's mean over steps, `Manifest::imported.aggregates` names them as
/// `<phase>: ...`).
fn imported_aggregate(manifest: &Manifest, phase: Phase) -> bool {
    manifest.imported.as_ref().is_some_and(|i| {
        i.aggregates
            .iter()
            .any(|a| a.split(':').next() == Some(phase.name()))
    })
}

/// The tail quantiles of single steps cannot be had from per-run means:
/// NaN (the report's "cannot be computed") rather than quantiles of means
/// passed off as those of steps. The median, its interval and the spread
/// are over runs and stay.
fn blank_step_quantiles(row: &mut SummaryRow) {
    row.p90_ms = f64::NAN;
    row.p95_ms = f64::NAN;
    row.p99_ms = f64::NAN;
}

/// The samples a cell's summary rows are computed from, gathered in one
/// pass over the event columns. Indexed by `Phase as usize`; values are ms
/// in event order.
#[derive(Debug, Default)]
pub struct CellSamples {
    /// Load: every load event (model load happens once, before any run, and
    /// is summarised on its own). Other phases: the events of steady
    /// (non-warmup) runs that validated ok.
    pub steady: [Vec<f64>; Phase::KNOWN.len()],
    /// The token counts of the `steady` events.
    pub tokens: [Vec<f64>; Phase::KNOWN.len()],
    /// Events of warmup runs, and of the cold run (the first after load);
    /// load itself is in neither.
    pub warmup: [Vec<f64>; Phase::KNOWN.len()],
    pub cold: [Vec<f64>; Phase::KNOWN.len()],
    /// Per steady ok run (AA.3): summed decode ns and e2e ns, added in
    /// event order.
    runs: BTreeMap<u32, (f64, f64)>,
}

impl CellSamples {
    /// `ok(repetition)` says whether a run validated ok; it is asked again
    /// only where the run changes, not per event.
    pub fn gather(events: &EventColumns, mut ok: impl FnMut(u32) -> bool) -> CellSamples {
        let mut s = CellSamples::default();
        // The current run, whether it counts, and its decode and e2e sums,
        // stored to `runs` when the run changes. A run that comes back picks
        // its sums up again, so each is the same additions in event order
        // as summing straight into a map entry per event.
        let mut current: Option<(u32, bool, f64, f64)> = None;
        for i in 0..events.len() {
            let phase = events.phase(i);
            let ms = events.ns[i] as f64 / 1e6;
            match phase {
                // Once per cell, before every run: its one sample is its
                // steady statistic.
                Phase::Load | Phase::Compile => {
                    s.steady[phase as usize].push(ms);
                    s.tokens[phase as usize].push(f64::from(events.tokens[i]));
                    continue;
                }
                // Known to no summary row.
                Phase::Other => continue,
                _ => {}
            }
            let p = phase as usize;
            if events.warmup.value(i) {
                s.warmup[p].push(ms);
            }
            if events.cold.value(i) {
                s.cold[p].push(ms);
            }
            if events.warmup.value(i) {
                continue;
            }
            let rep = events.repetition[i];
            let run = match &mut current {
                Some(run) if run.0 == rep => run,
                slot => {
                    s.flush(slot.take());
                    let (decode, e2e) = s.runs.get(&rep).copied().unwrap_or_default();
                    slot.insert((rep, ok(rep), decode, e2e))
                }
            };
            if !run.1 {
                continue;
            }
            s.steady[p].push(ms);
            s.tokens[p].push(f64::from(events.tokens[i]));
            match phase {
                Phase::Decode => run.2 += events.ns[i] as f64,
                Phase::E2e => run.3 += events.ns[i] as f64,
                _ => {}
            }
        }
        s.flush(current);
        s
    }

    fn flush(&mut self, run: Option<(u32, bool, f64, f64)>) {
        if let Some((rep, true, decode, e2e)) = run {
            self.runs.insert(rep, (decode, e2e));
        }
    }

    /// The e2e row's decode fraction and summed decode time (AA.3): medians
    /// over the steady ok runs (NaN without any).
    fn run_medians(&self) -> (f64, f64) {
        let fractions: Vec<f64> = self
            .runs
            .values()
            .filter(|(_, e2e)| *e2e > 0.0)
            .map(|(d, e2e)| d / e2e)
            .collect();
        let totals: Vec<f64> = self
            .runs
            .values()
            .filter(|(d, _)| *d > 0.0)
            .map(|(d, _)| d / 1e6)
            .collect();
        (median_or_nan(fractions), median_or_nan(totals))
    }
}

/// The type-7 median, by selection (bit-identical to `stats::median`); NaN
/// for no values.
fn median_or_nan(mut xs: Vec<f64>) -> f64 {
    let [m] = stats::quantiles_in_place(&mut xs, [0.5]);
    m
}

/// One phase's row without its median CI, decode fraction and decode
/// total; None when the phase has no steady data. Takes the phase's warmup,
/// cold and token samples.
fn phase_row(
    samples: &mut CellSamples,
    phase: Phase,
    template: &SummaryRow,
    scratch: &mut Vec<f64>,
) -> Option<SummaryRow> {
    let p = phase as usize;
    let d = stats::distribution(&samples.steady[p], scratch)?;
    let warmup_n = samples.warmup[p].len() as u32;
    let warmup_median = median_or_nan(std::mem::take(&mut samples.warmup[p]));
    let cold_median = median_or_nan(std::mem::take(&mut samples.cold[p]));
    let tokens_per_event = median_or_nan(std::mem::take(&mut samples.tokens[p]));
    // Throughput is defined for work phases only: load processes no tokens
    // and TTFT is a latency, not a rate.
    let is_rate = matches!(phase, Phase::Prefill | Phase::Decode | Phase::E2e);
    let tokens_per_s = if is_rate && d.median > 0.0 && tokens_per_event > 0.0 {
        tokens_per_event / (d.median / 1000.0)
    } else {
        0.0
    };
    Some(SummaryRow {
        phase: phase.name().to_string(),
        n: d.n as u32,
        mean_ms: d.mean,
        median_ms: d.median,
        median_ci_low_ms: f64::NAN,
        median_ci_high_ms: f64::NAN,
        p90_ms: d.p90,
        p95_ms: d.p95,
        p99_ms: d.p99,
        min_ms: d.min,
        max_ms: d.max,
        std_ms: d.std,
        mad_ms: d.mad,
        warmup_n,
        warmup_median_ms: warmup_median,
        warmup_ratio: if d.median > 0.0 {
            warmup_median / d.median
        } else {
            f64::NAN
        },
        cold_median_ms: cold_median,
        decode_fraction: f64::NAN,
        decode_total_ms: f64::NAN,
        tokens_per_s,
        roofline_bytes_per_step: f64::NAN,
        bandwidth_gbps: f64::NAN,
        roofline_tokens_per_s: f64::NAN,
        roofline_fraction: f64::NAN,
        ..template.clone()
    })
}

/// The columns every row of a cell shares, from its manifest (the rest are
/// filled per phase).
fn row_template(manifest: &Manifest) -> SummaryRow {
    // A model that exists only on a server has no declared architecture:
    // the server's family and parameter count stand in where it gives them.
    let server = manifest.actual.server.as_ref();
    let (arch, parameter_count, n_layer, n_embd, n_head) = match &manifest.model_info {
        Some(info) => (
            info.arch.name().to_string(),
            info.parameter_count,
            info.n_layer,
            info.n_embd,
            info.n_head,
        ),
        // Depth, width and heads from the server's model info (Ollama's
        // `/api/show`), so a served family can be fitted structurally too.
        None => (
            server
                .and_then(|s| s.family.clone())
                .unwrap_or_else(|| "unknown".into()),
            server.and_then(|s| s.parameter_count).unwrap_or(0),
            server.and_then(|s| s.n_layer).unwrap_or(0),
            server.and_then(|s| s.n_embd).unwrap_or(0),
            server.and_then(|s| s.n_head).unwrap_or(0),
        ),
    };
    SummaryRow {
        cell: manifest.cell.clone(),
        backend: manifest.backend.clone(),
        model: manifest.model.clone(),
        scenario: manifest.scenario.name.clone(),
        evidence: manifest.evidence.clone(),
        device: manifest.actual.device.clone(),
        dtype: manifest.actual.dtype.clone(),
        arch,
        parameter_count,
        n_layer,
        n_embd,
        n_head,
        prompt_tokens: manifest.scenario.prompt_tokens,
        batch: manifest.scenario.batch,
        gen_tokens: manifest.scenario.gen_tokens,
        ..SummaryRow::default()
    }
}

/// Energy columns from the gated windows of steady ok runs (TR122): counts
/// always, numbers only from `valid` windows, and none when no window is.
pub fn apply_energy(
    energy: &[EnergyRow],
    ok_runs: &BTreeSet<(&str, u32)>,
    rows: &mut [SummaryRow],
) {
    // Index the steady ok windows once by (cell, phase).
    let mut by: BTreeMap<(&str, &str), Vec<&EnergyRow>> = BTreeMap::new();
    for e in energy
        .iter()
        .filter(|e| !e.warmup && ok_runs.contains(&(e.cell.as_str(), e.repetition)))
    {
        by.entry((e.cell.as_str(), e.phase.as_str()))
            .or_default()
            .push(e);
    }
    for row in rows.iter_mut() {
        let Some(windows) = by.get(&(row.cell.as_str(), row.phase.as_str())) else {
            continue;
        };
        let valid: Vec<(f64, f64)> = windows
            .iter()
            .filter_map(|e| Some((e.energy_j?, f64::from(e.tokens))))
            .collect();
        row.energy_windows = windows.len() as u32;
        row.energy_valid = valid.len() as u32;
        if !valid.is_empty() {
            let joules: Vec<f64> = valid.iter().map(|(j, _)| *j).collect();
            row.energy_j_median = Some(stats::median(&joules));
            let per_token: Vec<f64> = valid
                .iter()
                .filter(|(_, t)| *t > 0.0)
                .map(|(j, t)| j / t)
                .collect();
            row.energy_j_per_token = (!per_token.is_empty()).then(|| stats::median(&per_token));
        }
    }
}

/// Bytes one decode step reads: the streamed weights once for the whole
/// batch, and each sequence's K and V at the mean context length of the
/// decode steps (prompt + gen/2).
pub fn decode_bytes_per_step(manifest: &Manifest) -> Option<f64> {
    let info = manifest.model_info.as_ref()?;
    let weight_bytes = dtype_bytes(&manifest.actual.dtype)?;
    // The KV cache is in the compute dtype: f16/bf16 for a safetensors
    // checkpoint cast to it, f32 on the GGUF path (weights dequantised or
    // quantised matmuls over f32 activations).
    let gguf = manifest
        .weights
        .as_ref()
        .is_some_and(|w| WeightsFormat::parse(&w.weights_format) == Some(WeightsFormat::Gguf));
    let kv_bytes = match manifest.actual.dtype.as_str() {
        "f16" | "bf16" if !gguf => 2.0,
        _ => 4.0,
    };
    let s = &manifest.scenario;
    let context = f64::from(s.prompt_tokens) + f64::from(s.gen_tokens) / 2.0;
    Some(
        info.streamed_parameters as f64 * weight_bytes
            + f64::from(s.batch) * info.kv_values_per_token() as f64 * context * kv_bytes,
    )
}

fn dtype_bytes(name: &str) -> Option<f64> {
    let d = match name {
        "f32" => Dtype::F32,
        "f16" => Dtype::F16,
        "bf16" => Dtype::Bf16,
        "q8_0" => Dtype::Q8_0,
        "q4_0" => Dtype::Q4_0,
        "q4_k_m" => Dtype::Q4KM,
        "q5_k_m" => Dtype::Q5KM,
        "q6_k" => Dtype::Q6K,
        _ => return None,
    };
    Some(d.bytes_per_value())
}

/// Fill the roofline columns of a measured cell's decode row.
fn apply_roofline(manifest: &Manifest, bw: &Bandwidth, rows: &mut [SummaryRow]) {
    if !Evidence::is_measured(&manifest.evidence) {
        return;
    }
    let (Some(bytes), Some(gbps)) = (
        decode_bytes_per_step(manifest),
        bw.at_threads(manifest.actual.threads),
    ) else {
        return;
    };
    for row in rows.iter_mut().filter(|r| r.phase() == Phase::Decode) {
        let bound = f64::from(row.batch) * gbps * 1e9 / bytes;
        row.roofline_bytes_per_step = bytes;
        row.bandwidth_gbps = gbps;
        row.roofline_tokens_per_s = bound;
        row.roofline_fraction = row.tokens_per_s / bound;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::tests::{manifest, run_events};
    use assay_core::tables::EventRow;
    use rand::RngExt;

    /// The row-based `summarise_cell` as it was before the columnar path,
    /// kept verbatim as the oracle the columnar path must match byte for byte.
    fn reference_summarise_cell(
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
        // Per steady ok run: total decode time and e2e time, for AA.3.
        let mut per_run: BTreeMap<u32, (f64, f64)> = BTreeMap::new();
        for e in events
            .iter()
            .filter(|e| !e.warmup && ok_runs.contains(&(manifest.cell.as_str(), e.repetition)))
        {
            let entry = per_run.entry(e.repetition).or_default();
            match e.phase.as_str() {
                "decode" => entry.0 += e.ns as f64,
                "e2e" => entry.1 += e.ns as f64,
                _ => {}
            }
        }
        let fractions: Vec<f64> = per_run
            .values()
            .filter(|(_, e2e)| *e2e > 0.0)
            .map(|(d, e2e)| d / e2e)
            .collect();
        let decode_fraction = if fractions.is_empty() {
            f64::NAN
        } else {
            stats::median(&fractions)
        };
        let decode_totals: Vec<f64> = per_run
            .values()
            .filter(|(d, _)| *d > 0.0)
            .map(|(d, _)| d / 1e6)
            .collect();
        let decode_total_ms = if decode_totals.is_empty() {
            f64::NAN
        } else {
            stats::median(&decode_totals)
        };
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
        // A model that exists only on a server has no declared architecture:
        // the server's family and parameter count stand in where it gives them.
        let server = manifest.actual.server.as_ref();
        let (arch, parameter_count, n_layer, n_embd, n_head) = match &manifest.model_info {
            Some(info) => (
                info.arch.name().to_string(),
                info.parameter_count,
                info.n_layer,
                info.n_embd,
                info.n_head,
            ),
            None => (
                server
                    .and_then(|s| s.family.clone())
                    .unwrap_or_else(|| "unknown".into()),
                server.and_then(|s| s.parameter_count).unwrap_or(0),
                server.and_then(|s| s.n_layer).unwrap_or(0),
                server.and_then(|s| s.n_embd).unwrap_or(0),
                server.and_then(|s| s.n_head).unwrap_or(0),
            ),
        };
        PHASES
            .iter()
            .filter_map(|phase| {
                let (ms, tokens) = by_phase.get(phase)?;
                let sorted = stats::sorted(ms);
                let median = stats::quantile_sorted(&sorted, 0.5);
                // One RNG stream per (cell, phase): independent of row order.
                let stream = blake3::hash(format!("{}\0{phase}", manifest.cell).as_bytes());
                let stream =
                    u64::from_le_bytes(stream.as_bytes()[..8].try_into().unwrap_or([0; 8]));
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ stream);
                let (ci_low, ci_high) =
                    stats::bootstrap_median_ci(ms, MEDIAN_CI_RESAMPLES, &mut rng);
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
                    device: manifest.actual.device.clone(),
                    dtype: manifest.actual.dtype.clone(),
                    arch: arch.clone(),
                    parameter_count,
                    n_layer,
                    n_embd,
                    n_head,
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
                    decode_fraction: if *phase == "e2e" {
                        decode_fraction
                    } else {
                        f64::NAN
                    },
                    decode_total_ms: if *phase == "e2e" {
                        decode_total_ms
                    } else {
                        f64::NAN
                    },
                    tokens_per_s,
                    roofline_bytes_per_step: f64::NAN,
                    bandwidth_gbps: f64::NAN,
                    roofline_tokens_per_s: f64::NAN,
                    roofline_fraction: f64::NAN,
                    energy_windows: 0,
                    energy_valid: 0,
                    energy_j_median: None,
                    energy_j_per_token: None,
                })
            })
            .collect()
    }

    /// Random cells: interleaved and repeated runs, warmup and cold flags
    /// in any combination, load and unknown phases, zero durations, random
    /// ok sets. The columnar path (through Parquet, as the stage reads it)
    /// must write the same summary bytes as the row-based one.
    #[test]
    fn columnar_summaries_match_the_row_based_ones_byte_for_byte() {
        let phases = ["load", "prefill", "ttft", "decode", "e2e", "warm-up?"];
        for seed in 0..40u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let n = rng.random_range(0..400usize);
            let events: Vec<EventRow> = (0..n)
                .map(|i| EventRow {
                    cell: "b/m/s".into(),
                    // Mostly runs in order, sometimes a jump back.
                    repetition: if rng.random_range(0..20) == 0 {
                        rng.random_range(0..8)
                    } else {
                        (i / 40) as u32
                    },
                    warmup: rng.random_range(0..5) == 0,
                    cold: rng.random_range(0..6) == 0,
                    phase: phases[rng.random_range(0..phases.len())].into(),
                    token_index: None,
                    tokens: rng.random_range(0..4),
                    start_ns: 0,
                    ns: if rng.random_range(0..30) == 0 {
                        0
                    } else {
                        rng.random_range(1..50_000_000)
                    },
                })
                .collect();
            let ok: BTreeSet<(&str, u32)> = (0..12)
                .filter(|_| rng.random_range(0..3) > 0)
                .map(|rep| ("b/m/s", rep))
                .collect();
            let bytes = tables::to_parquet(&events).unwrap();
            let columns = EventColumns::from_parquet(bytes, false).unwrap();
            let got = summarise_cell(&manifest(1, 3), &columns, &ok, seed);
            let want = reference_summarise_cell(&manifest(1, 3), &events, &ok, seed);
            assert_eq!(
                tables::to_parquet(&got).unwrap(),
                tables::to_parquet(&want).unwrap(),
                "seed {seed}: {got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn rows_come_in_the_declared_phase_order() {
        let known = Phase::KNOWN.map(Phase::name);
        assert_eq!(known[..PHASES.len()], PHASES);
        let text_end = PHASES.len() + TEXT_PHASES.len();
        assert_eq!(known[PHASES.len()..text_end], TEXT_PHASES);
        assert_eq!(known[text_end..], COMPILE_PHASES);
    }

    #[test]
    fn aggregate_decode_events_give_no_decode_fraction() {
        // llama-bench's tg: one decode event per run holding the mean
        // step. Summing them would undercount the decode total by the
        // steps each stands for; both columns are "cannot be computed".
        let mut events = Vec::new();
        for rep in 1..=2 {
            events.extend(run_events(rep, false, f64::from(rep)));
        }
        let ok: BTreeSet<(&str, u32)> = [("b/m/s", 1), ("b/m/s", 2)].into_iter().collect();
        let events = EventColumns::from_rows(&events);
        let mut m = manifest(0, 2);
        m.imported = Some(assay_measure::imported::ImportedFacts {
            file: "bench.json".into(),
            file_blake3: String::new(),
            format: "llama-bench".into(),
            tool: "llama-bench".into(),
            tool_version: String::new(),
            file_model: "m".into(),
            records: Vec::new(),
            grain: "repetitions".into(),
            aggregates: vec!["decode: mean step of 2 steps per run".into()],
            not_computable: Vec::new(),
            machine: Value::Null,
            configuration: Vec::new(),
        });
        let rows = summarise_cell(&m, &events, &ok, 7);
        let e2e = rows.iter().find(|r| r.phase == "e2e").unwrap();
        assert!(e2e.decode_fraction.is_nan(), "{e2e:?}");
        assert!(e2e.decode_total_ms.is_nan(), "{e2e:?}");
        // Without the aggregate the same events give both.
        let rows = summarise_cell(&manifest(0, 2), &events, &ok, 7);
        let e2e = rows.iter().find(|r| r.phase == "e2e").unwrap();
        assert!(e2e.decode_fraction.is_finite() && e2e.decode_total_ms.is_finite());
    }

    #[test]
    fn steady_stats_warmup_ratio_and_decode_fraction_by_hand() {
        // Run 0 is warmup with 4 ms decode steps; runs 1-3 are steady with
        // 1, 2, 3 ms steps. Run 3 did not validate ok and must be ignored.
        let mut events = run_events(0, true, 4.0);
        for rep in 1..=3 {
            events.extend(run_events(rep, false, f64::from(rep)));
        }
        let ok: BTreeSet<(&str, u32)> = [("b/m/s", 1), ("b/m/s", 2)].into_iter().collect();
        let events = EventColumns::from_rows(&events);
        let rows = summarise_cell(&manifest(1, 3), &events, &ok, 7);
        let decode = rows.iter().find(|r| r.phase == "decode").unwrap();
        assert_eq!(decode.n, 4); // two steps x runs 1 and 2
        assert_eq!(decode.median_ms, 1.5);
        assert_eq!(decode.warmup_median_ms, 4.0);
        assert!((decode.warmup_ratio - 4.0 / 1.5).abs() < 1e-12);
        assert_eq!(decode.cold_median_ms, 4.0);
        assert!((decode.tokens_per_s - 1.0 / 0.0015).abs() < 1e-9);
        assert!(decode.median_ci_low_ms <= 1.5 && 1.5 <= decode.median_ci_high_ms);
        let e2e = rows.iter().find(|r| r.phase == "e2e").unwrap();
        // per run: 2/5 and 4/7; median of two = mean
        assert!((e2e.decode_fraction - (2.0 / 5.0 + 4.0 / 7.0) / 2.0).abs() < 1e-12);
        assert!(decode.decode_fraction.is_nan());
        // Same inputs and seed, same bytes.
        // (Debug, since NaN != NaN.)
        assert_eq!(
            format!("{rows:?}"),
            format!("{:?}", summarise_cell(&manifest(1, 3), &events, &ok, 7))
        );
    }
}
