//! The audit trail: the artifact chain every claim points into, and
//! attribution (what was requested vs what ran, with the weights, the
//! execution providers and compiler evidence), and output invariance.

use crate::document::{Block, header};
use crate::{Out, Report, source};
use assay_core::domain::ValidationCheck;
use assay_core::stage::StageError;

pub fn attribution(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    out.doc.push(Block::Heading(2, "Attribution".into()));
    out.doc.push(Block::Table(
        header(&["cell", "evidence", "requested", "ran", "library", "weights"]),
        rep.manifests
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
    compiled_paths(rep, out);
    gpus(rep, out);
    output_invariance(rep, out)?;
    Ok(())
}

/// The GPU each GPU cell ran on, as NVML saw it before and after the cell
/// (energy/gpu.rs in assay-measure): what an auditor compares across
/// machines, and whether another process shared the GPU (validate's
/// `gpu_exclusive`, which degrades the cell's runs).
fn gpus(rep: &Report<'_>, out: &mut Out) {
    let rows: Vec<Vec<String>> = rep
        .manifests
        .iter()
        .filter_map(|m| m.gpu.as_ref().map(|g| (m, g)))
        .map(|(m, g)| {
            let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
            let clocks = |s: &assay_measure::energy::gpu::GpuState| {
                format!(
                    "{}/{}",
                    opt(s.sm_clock_mhz.map(u64::from)),
                    opt(s.mem_clock_mhz.map(u64::from))
                )
            };
            vec![
                m.cell.clone(),
                format!("{} ({})", g.identity.name, g.identity.uuid),
                format!(
                    "{} / CUDA {}",
                    g.identity.driver_version, g.identity.cuda_version
                ),
                g.identity.memory_total_mib.to_string(),
                g.identity
                    .power_limit_w
                    .map_or_else(|| "-".to_string(), |w| format!("{w:.0}")),
                format!("{} -> {}", clocks(&g.before), clocks(&g.after)),
                opt(g.own_memory_mib),
                match &g.processes_unreadable {
                    Some(why) => format!("unknown ({why})"),
                    None => {
                        let list = |ps: &[assay_measure::energy::gpu::GpuProcess]| {
                            ps.iter()
                                .map(|p| format!("pid {} ({} MiB)", p.pid, opt(p.used_mib)))
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        let mut text = if g.other_processes.is_empty() {
                            "none".to_string()
                        } else {
                            list(&g.other_processes)
                        };
                        if !g.unresolved_processes.is_empty() {
                            text += &format!(
                                "; outside this PID namespace: {}",
                                list(&g.unresolved_processes)
                            );
                        }
                        text
                    }
                },
            ]
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    out.doc.push(Block::Heading(3, "GPUs".into()));
    out.doc.push(Block::Para(
        "Each GPU cell's GPU as NVML reported it: SM/memory clocks in MHz before and after the \
         cell, the most GPU memory the measuring process and its harness held (MiB), and any \
         other process with a compute context on the GPU while the cell ran, which degrades the \
         cell's runs (`gpu_shared`)."
            .into(),
    ));
    out.doc.push(Block::Table(
        header(&[
            "cell",
            "GPU",
            "driver / CUDA",
            "memory MiB",
            "power limit W",
            "clocks before -> after",
            "own memory MiB",
            "other processes",
        ]),
        rows,
    ));
}

/// Execution providers and compiler evidence (TR120's "compiler-real"):
/// a compiled label counts only with a graph that demonstrably changed.
fn compiled_paths(rep: &Report<'_>, out: &mut Out) {
    let with_evidence: Vec<&assay_measure::Manifest> = rep
        .manifests
        .iter()
        .filter(|m| m.actual.compiler.is_some() || m.actual.providers.is_some())
        .collect();
    if with_evidence.is_empty() {
        return;
    }
    out.doc.push(Block::Heading(
        3,
        "Compiled paths and execution providers".into(),
    ));
    out.doc.push(Block::Para(
        "What each backend did to the graph after loading it. ONNX Runtime writes its optimised \
         graph; its node count against the exported graph's is the evidence that optimisation ran \
         (fusions replace several nodes by one). A TorchScript trace is a graph of its own, run by \
         libtorch's graph executor. A compiled label without such evidence is label drift \
         (validate's `attribution_drift:compiler`); so is an execution provider that was \
         requested first but did not run."
            .into(),
    ));
    let mut rows = Vec::new();
    for m in &with_evidence {
        let manifest_in = rep
            .inputs
            .iter()
            .find(|i| i.name == "manifest" && i.node == format!("measure/{}", m.cell));
        let providers = m.actual.providers.as_ref().map_or_else(
            || "-".to_string(),
            |p| {
                format!(
                    "requested {}; registered {}; ran on {}",
                    p.requested.join(", "),
                    p.registered.join(", "),
                    p.ran_on
                )
            },
        );
        let (kind, nodes, changes, real) = match &m.actual.compiler {
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
            Some(c) => {
                if let Some(input) = manifest_in {
                    out.claim(
                        format!("compiler/{}/nodes_before", m.cell),
                        format!(
                            "{}: the graph had {} nodes before {} ({})",
                            m.cell, c.nodes_before, c.kind, c.mode
                        ),
                        c.nodes_before as f64,
                        "nodes",
                        &m.evidence,
                        source(input, Vec::new()),
                    );
                    if let Some(after) = c.nodes_after {
                        out.claim(
                            format!("compiler/{}/nodes_after", m.cell),
                            format!("{}: {} nodes after {} ({})", m.cell, after, c.kind, c.mode),
                            after as f64,
                            "nodes",
                            &m.evidence,
                            source(input, Vec::new()),
                        );
                    }
                }
                (
                    format!("{} ({})", c.kind, c.mode),
                    match c.nodes_after {
                        Some(after) => format!("{} -> {after}", c.nodes_before),
                        None => format!("{} traced", c.nodes_before),
                    },
                    op_changes(&c.ops_before, &c.ops_after),
                    if c.real { "yes" } else { "no" }.to_string(),
                )
            }
        };
        rows.push(vec![
            m.cell.clone(),
            m.requested.compiled.clone().unwrap_or_else(|| "-".into()),
            kind,
            nodes,
            changes,
            real,
            providers,
        ]);
    }
    out.doc.push(Block::Table(
        header(&[
            "cell",
            "compiled path requested",
            "evidence",
            "nodes",
            "op changes",
            "compiler-real",
            "execution providers",
        ]),
        rows,
    ));
}

/// The operator types whose counts changed, largest change first (at most
/// six), e.g. `+SkipSimplifiedLayerNormalization 8, -Pow 9`.
fn op_changes(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
) -> String {
    if after.is_empty() {
        return "-".into();
    }
    let mut changes: Vec<(i64, &str)> = before
        .keys()
        .chain(after.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|op| {
            let b = before.get(op).copied().unwrap_or(0) as i64;
            let a = after.get(op).copied().unwrap_or(0) as i64;
            (a - b, op.as_str())
        })
        .filter(|(d, _)| *d != 0)
        .collect();
    changes.sort_by(|x, y| y.0.abs().cmp(&x.0.abs()).then(x.1.cmp(y.1)));
    if changes.is_empty() {
        return "none".into();
    }
    let shown: Vec<String> = changes
        .iter()
        .take(6)
        .map(|(d, op)| format!("{}{op} {}", if *d > 0 { "+" } else { "-" }, d.abs()))
        .collect();
    let more = changes.len().saturating_sub(6);
    if more > 0 {
        format!("{} (+{more} more)", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Same greedy tokens on every backend before any timing across backends
/// is compared (validate's `output_invariance` checks).
fn output_invariance(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    let check_at = |i: &u32| &rep.checks.checks[*i as usize];
    let indices: Vec<u32> = (0..rep.checks.checks.len() as u32)
        .filter(|i| check_at(i).check() == Some(ValidationCheck::OutputInvariance))
        .collect();
    if indices.is_empty() {
        return Ok(());
    }
    let references: Vec<u32> = (0..rep.checks.checks.len() as u32)
        .filter(|i| check_at(i).check() == Some(ValidationCheck::OutputReference))
        .collect();
    let checks_in =
        assay_core::inputs::find_input(rep.inputs, assay_analysis::validate::output::CHECKS)?;
    out.doc.push(Block::Heading(3, "Output invariance".into()));
    let diverged: Vec<u32> = indices
        .iter()
        .copied()
        .filter(|i| !rep.checks.checks[*i as usize].passed)
        .collect();
    out.claim(
        "validation/output_divergent_cells".into(),
        format!(
            "{} of {} cells compared across backends produced other greedy tokens than the reference",
            diverged.len(),
            indices.len()
        ),
        diverged.len() as f64,
        "cells",
        &rep.evidence,
        source(checks_in, if diverged.is_empty() { indices.clone() } else { diverged.clone() }),
    );
    out.claim(
        "validation/output_compared_cells".into(),
        format!(
            "{} cells compared across backends with the reference's greedy tokens",
            indices.len()
        ),
        indices.len() as f64,
        "cells",
        &rep.evidence,
        source(checks_in, indices.clone()),
    );
    out.doc.push(Block::Para(format!(
        "The same model and prompts must give the same greedy tokens on every backend before their \
         timings are compared (MLPerf TEST06's spirit). Each cell's first steady run is compared with \
         the reference backend's (candle where present) for the same model, scenario and dtype; a \
         difference at a step where either backend's winning logit led by no more than the tolerance \
         is a near-tie, not a divergence. {} of {} compared cells diverged{}.",
        diverged.len(),
        indices.len(),
        if diverged.is_empty() {
            ""
        } else {
            " and are degraded: their timings back no claim"
        }
    )));
    out.doc.push(Block::Table(
        header(&["cell", "verdict", "detail"]),
        references
            .iter()
            .chain(&indices)
            .map(|i| {
                let c = check_at(i);
                let verdict = match (c.check(), c.passed) {
                    (Some(ValidationCheck::OutputReference), _) => "reference",
                    (_, true) => "same",
                    (_, false) => "diverged",
                };
                vec![c.cell.clone(), verdict.to_string(), c.detail.clone()]
            })
            .collect(),
    ));
    Ok(())
}

pub fn artifact_chain(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    let artifacts = rep.artifacts();
    out.doc.push(Block::Heading(2, "Artifact chain".into()));
    out.doc.push(Block::Para(
        "Every claim in report.json names the node that produced its number, that node's key, the \
         artifact's blake3 digest and the rows it used. `assay trace CLAIM_ID` follows a claim to the \
         summary rows, the raw events, the measuring manifest and the weights; `assay verify` re-hashes \
         every object and recomputes every derived node."
            .into(),
    ));
    out.doc.push(Block::Table(
        header(&["node", "key", "artifact", "digest"]),
        artifacts
            .iter()
            .map(|a| {
                vec![
                    a.node.clone(),
                    a.key[..16].to_string(),
                    a.name.clone(),
                    a.digest[..16].to_string(),
                ]
            })
            .collect(),
    ));
    Ok(())
}
