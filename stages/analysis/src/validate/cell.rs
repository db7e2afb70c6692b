//! The verdicts and checks of one cell: model load, attribution,
//! repetitions, warmup labels, dispersion, and each run's phases.

use std::collections::BTreeMap;

use assay_core::domain::{Evidence, RunStatus, ValidationCheck};
use assay_core::tables::{EventColumns, Phase, RunRow, ValidationRow};
use assay_measure::Manifest;

use super::phases::run_phase_reasons;
use super::{CheckResult, ValidateParams};

/// Verdicts for every run of one cell, and the cell's checks.
pub fn validate_cell(
    manifest: &Manifest,
    events: &EventColumns,
    runs: &[RunRow],
    params: &ValidateParams,
) -> (Vec<ValidationRow>, Vec<CheckResult>) {
    let cell = manifest.cell.as_str();
    let mut checks = Vec::new();
    let mut check = |name: ValidationCheck, passed: bool, detail: String| {
        checks.push(CheckResult {
            cell: cell.to_string(),
            check: name.as_str().to_string(),
            passed,
            detail,
        });
    };

    // Cell-level reasons apply to every run of the cell.
    let mut cell_reasons = cell_level(manifest, events, runs, &mut check);
    let server = manifest.actual.server.as_ref();
    let under_load = server.is_some() && manifest.scenario.load.is_some();
    let outliers = dispersion(events, params, under_load, &mut check, &mut cell_reasons);

    // Each run's events by row index, in table order.
    let mut by_run: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    // Load and compile happen once per cell, before and outside every run.
    for i in (0..events.len()).filter(|i| !matches!(events.phase(*i), Phase::Load | Phase::Compile))
    {
        by_run.entry(events.repetition[i]).or_default().push(i);
    }
    let mut rows = Vec::new();
    let mut short_runs = 0;
    let mut incomplete_runs = 0;
    for run in runs {
        let mut reasons = cell_reasons.clone();
        let evs = by_run
            .get(&run.repetition)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        // An imported run holds the phases its file holds (a llama-bench
        // run has no ttft; a client's has no prefill): what is missing is
        // said once, in the manifest's `imported.not_computable`, not as a
        // failed run.
        let phase_reasons = if manifest.imported.is_some() {
            if evs.is_empty() {
                vec!["missing_phase:any".to_string()]
            } else {
                Vec::new()
            }
        } else {
            run_phase_reasons(events, evs, run, server.is_some(), &mut reasons)
        };
        if !phase_reasons.is_empty() {
            incomplete_runs += 1;
        }
        let failed = !phase_reasons.is_empty();
        reasons.extend(phase_reasons);
        if run.short {
            short_runs += 1;
            reasons.push("short_generation".into());
        }
        let status = if failed {
            RunStatus::Failed
        } else if reasons.is_empty() {
            RunStatus::Ok
        } else {
            RunStatus::Degraded
        };
        rows.push(ValidationRow {
            cell: cell.to_string(),
            repetition: run.repetition,
            warmup: run.warmup,
            status: status.as_str().into(),
            reasons: reasons.join(";"),
            flags: if outliers.contains(&run.repetition) {
                "outlier".into()
            } else {
                String::new()
            },
            evidence: manifest.evidence.clone(),
        });
    }
    check(
        ValidationCheck::PhasesComplete,
        incomplete_runs == 0,
        format!("{incomplete_runs} runs with missing or misordered phases"),
    );
    check(
        ValidationCheck::FixedLengthDecode,
        short_runs == 0,
        format!("{short_runs} runs generated fewer tokens than requested"),
    );
    check(
        ValidationCheck::Evidence,
        Evidence::is_measured(&manifest.evidence),
        match &manifest.imported {
            Some(i) => format!(
                "imported data ({} {}, {}); aggregates: {}; cannot be computed: {}",
                i.tool,
                i.tool_version,
                i.file,
                if i.aggregates.is_empty() {
                    "none".to_string()
                } else {
                    i.aggregates.join("; ")
                },
                i.not_computable.join("; ")
            ),
            None => format!("{} data", manifest.evidence),
        },
    );
    (rows, checks)
}

/// The checks every run of the cell shares (model load, attribution,
/// repetitions, warmup labels), and the reasons they give every run.
fn cell_level(
    manifest: &Manifest,
    events: &EventColumns,
    runs: &[RunRow],
    check: &mut impl FnMut(ValidationCheck, bool, String),
) -> Vec<String> {
    let mut cell_reasons: Vec<String> = Vec::new();
    let loads = (0..events.len())
        .filter(|i| events.phase(*i) == Phase::Load)
        .count();
    let server = manifest.actual.server.as_ref();
    // A server assay did not start (an OpenAI-compatible URL) loads its
    // model out of sight: there is no load phase to time.
    // Nor does a peer tool's results file hold one.
    let load_unobservable = loads == 0
        && (manifest.imported.is_some()
            || server.is_some_and(|s| !s.launched && s.protocol != "ollama"));
    check(
        ValidationCheck::ModelLoadTimed,
        loads == 1 || load_unobservable,
        if manifest.imported.is_some() && load_unobservable {
            "imported: the results file holds no model load".into()
        } else if load_unobservable {
            "server already running: its model load is not observable".into()
        } else {
            format!("{loads} load events")
        },
    );
    if loads != 1 && !load_unobservable {
        cell_reasons.push("missing_load".into());
    }
    let drift = attribution_drift(manifest);
    check(
        ValidationCheck::Attribution,
        drift.is_empty(),
        if drift.is_empty() {
            "requested configuration ran".into()
        } else {
            format!("label drift in {}", drift.join(", "))
        },
    );
    cell_reasons.extend(drift.iter().map(|f| format!("attribution_drift:{f}")));
    let steady = runs.iter().filter(|r| !r.warmup).count();
    // Under a load profile the windows are counted in requests (a
    // duration-bound window has no count to reach).
    // An imported cell has the runs its file recorded; the spec's
    // boundary did not run it.
    let (wanted, warmup_declared) = match (&manifest.scenario.load, server) {
        _ if manifest.imported.is_some() => (1, runs.iter().filter(|r| r.warmup).count()),
        (Some(load), Some(_)) => (
            load.requests.unwrap_or(0) as usize,
            load.warmup_requests as usize,
        ),
        _ => (
            manifest.boundary.repetitions as usize,
            manifest.boundary.warmup_runs as usize,
        ),
    };
    check(
        ValidationCheck::Repetitions,
        steady >= wanted,
        format!("{steady} steady runs of {wanted} declared"),
    );
    if steady < wanted {
        cell_reasons.push("too_few_repetitions".into());
    }
    let warm = runs.iter().filter(|r| r.warmup).count();
    check(
        ValidationCheck::WarmupLabelled,
        warm == warmup_declared,
        format!("{warm} warmup runs of {warmup_declared} declared"),
    );
    if let Some(gpu) = &manifest.gpu {
        gpu_exclusive(gpu, check, &mut cell_reasons);
    }
    cell_reasons
}

/// A GPU cell's `gpu_exclusive`: another process on the GPU (TR122, S.3)
/// degrades every run; a process list that could not be read, or PIDs this
/// namespace cannot see, are said, not guessed at.
fn gpu_exclusive(
    gpu: &assay_measure::energy::gpu::GpuAttribution,
    check: &mut impl FnMut(ValidationCheck, bool, String),
    cell_reasons: &mut Vec<String>,
) {
    let pids = |ps: &[assay_measure::energy::gpu::GpuProcess]| {
        ps.iter()
            .map(|p| p.pid.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let name = &gpu.identity.name;
    if let Some(why) = &gpu.processes_unreadable {
        check(
            ValidationCheck::GpuExclusive,
            false,
            format!("unknown: {name}'s process list could not be read ({why})"),
        );
        return;
    }
    let unseen = if gpu.unresolved_processes.is_empty() {
        String::new()
    } else {
        format!(
            "; process(es) {} are outside this PID namespace and could not be told apart",
            pids(&gpu.unresolved_processes)
        )
    };
    if gpu.other_processes.is_empty() {
        check(
            ValidationCheck::GpuExclusive,
            true,
            format!(
                "no other process used {name} ({}){unseen}",
                gpu.identity.uuid
            ),
        );
    } else {
        let others = pids(&gpu.other_processes);
        check(
            ValidationCheck::GpuExclusive,
            false,
            format!("{name} shared with process(es) {others} while the cell ran{unseen}"),
        );
        cell_reasons.push(format!("gpu_shared:{}", others.replace(", ", ",")));
    }
}

/// Dispersion of the steady end-to-end latency: a cell too noisy to support
/// a claim is degraded as a whole (`high_cv` into `cell_reasons`); single
/// wild runs are flagged. Returns the flagged runs.
fn dispersion(
    events: &EventColumns,
    params: &ValidateParams,
    under_load: bool,
    check: &mut impl FnMut(ValidationCheck, bool, String),
    cell_reasons: &mut Vec<String>,
) -> std::collections::BTreeSet<u32> {
    let steady_e2e: Vec<(u32, f64)> = (0..events.len())
        .filter(|i| events.phase(*i) == Phase::E2e && !events.warmup.value(*i))
        .map(|i| (events.repetition[i], events.ns[i] as f64))
        .collect();
    let values: Vec<f64> = steady_e2e.iter().map(|(_, v)| *v).collect();
    let mut outliers: std::collections::BTreeSet<u32> = std::collections::BTreeSet::new();
    if under_load {
        // Queueing spreads latencies by design: the spread is what a load
        // profile measures, not noise that would void a claim.
        check(
            ValidationCheck::Dispersion,
            true,
            "not applied under a load profile: the latency spread is the measurement".into(),
        );
    } else if values.len() >= 2 {
        let cv = assay_core::stats::std_dev(&values) / assay_core::stats::mean(&values);
        check(
            ValidationCheck::Dispersion,
            cv <= params.max_cv,
            format!(
                "steady e2e coefficient of variation {cv:.3} (max {})",
                params.max_cv
            ),
        );
        if cv > params.max_cv {
            cell_reasons.push("high_cv".into());
        }
        let median = assay_core::stats::median(&values);
        let spread = 1.4826 * assay_core::stats::mad(&values);
        for (rep, v) in &steady_e2e {
            if spread > 0.0 && (v - median).abs() > params.outlier_k * spread {
                outliers.insert(*rep);
            }
        }
        check(
            ValidationCheck::Outliers,
            outliers.is_empty(),
            format!(
                "{} steady runs beyond {} scaled MADs (flagged, kept)",
                outliers.len(),
                params.outlier_k
            ),
        );
    }
    outliers
}

/// Fields where what ran differs from what was requested.
fn attribution_drift(m: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    // A provider list that fell back (CUDA requested, CPU ran) is drift even
    // where the device label happens to agree.
    if let Some(p) = &m.actual.providers
        && p.requested.first() != Some(&p.ran_on)
    {
        out.push("execution_provider".to_string());
    }
    // A compiled path must show that it compiled (the seed's
    // "compiler-real"): no evidence, or a graph that ran as exported, is a
    // compiled label on an uncompiled run.
    if m.requested.compiled.is_some() && !m.actual.compiler.as_ref().is_some_and(|c| c.real) {
        out.push("compiler".to_string());
    }
    if m.requested.device != m.actual.device {
        out.push("device".to_string());
    }
    if m.requested.dtype != m.actual.dtype {
        out.push("dtype".to_string());
    }
    if m.requested.threads != m.actual.threads {
        out.push("threads".to_string());
    }
    out
}
