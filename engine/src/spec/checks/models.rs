//! `models`: where each model comes from, a synthetic architecture's shape
//! and sizes, and whether it fits this machine and the scenarios.

use assay_measure::ModelDecl;
use assay_model::decl::{Arch, SyntheticArch};

use super::Ctx;
use crate::spec::diagnostic::Diags;

/// Largest synthetic model dimensions a spec may declare.
const MAX_LAYERS: u32 = 4096;
const MAX_HIDDEN: u32 = 65_536;
const MAX_INTERMEDIATE: u32 = 1 << 20;
const MAX_VOCAB: u32 = 1 << 22;
const MAX_POSITIONS: u32 = 1 << 20;

/// Bytes in a GiB, for messages.
const GIB: f64 = 1_073_741_824.0;

pub(super) fn check_models(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    for (i, m) in cx.spec.models.iter().enumerate() {
        if let Some(a) = check_source(cx, diags, i, m) {
            let sizes_ok = check_architecture(diags, i, a);
            check_fit(cx, diags, i, m, a, sizes_ok);
        }
    }
}

/// Exactly one of `synthetic`, `path`, or `served` alone. Returns the
/// synthetic architecture, the one source with more to check.
fn check_source<'m>(
    cx: &Ctx<'_>,
    diags: &mut Diags<'_>,
    i: usize,
    m: &'m ModelDecl,
) -> Option<&'m SyntheticArch> {
    match (&m.synthetic, &m.path) {
        (Some(a), None) => return Some(a),
        (None, Some(path)) => {
            if cx.any_simulated {
                diags.at_value(
                    &format!("/models/{i}/path"),
                    format!(
                        "model {:?} is a local model, but the simulated backend needs a synthetic architecture",
                        m.name
                    ),
                );
            }
            let full = cx.dir.join(path);
            if !cx.simulated_only && !full.exists() {
                diags.at_value(
                    &format!("/models/{i}/path"),
                    format!("model path {} does not exist", full.display()),
                );
            }
        }
        (Some(_), Some(_)) => {
            diags.at_key(
                &format!("/models/{i}/path"),
                format!(
                    "model {:?} gives both `synthetic` and `path`; choose one",
                    m.name
                ),
            );
        }
        (None, None) => {
            if m.served.is_none() {
                diags.at_value(
                    &format!("/models/{i}"),
                    format!(
                        "model {:?} needs `synthetic` (an architecture), `path` (a local model) or `served` (a model on a server)",
                        m.name
                    ),
                );
            } else if !m.gguf.is_empty() {
                diags.at_key(
                    &format!("/models/{i}/gguf"),
                    format!(
                        "model {:?} exists only on a server; there is nothing to export",
                        m.name
                    ),
                );
            }
        }
    }
    None
}

/// A synthetic architecture's shape, then its sizes. Returns whether the
/// sizes are within assay's limits (past them the size arithmetic below
/// would overflow).
fn check_architecture(diags: &mut Diags<'_>, i: usize, a: &SyntheticArch) -> bool {
    let p = format!("/models/{i}/synthetic");
    if a.arch == Arch::Llama && !a.head_dim().is_multiple_of(2) {
        diags.at_value(
            &format!("{p}/hidden"),
            format!(
                "llama head size {} (hidden / heads) must be even for rotary positions",
                a.head_dim()
            ),
        );
    }
    if !a.hidden.is_multiple_of(a.heads.max(1)) {
        diags.at_value(
            &format!("{p}/hidden"),
            format!(
                "hidden size {} is not divisible by heads {}",
                a.hidden, a.heads
            ),
        );
    }
    if a.intermediate == Some(0) {
        diags.at_value(
            &format!("{p}/intermediate"),
            "intermediate size must be >= 1".into(),
        );
    }
    if let Some(kv) = a.kv_heads
        && (kv == 0 || !a.heads.is_multiple_of(kv))
    {
        diags.at_value(
            &format!("{p}/kv_heads"),
            format!("kv_heads {kv} must divide heads {}", a.heads),
        );
    }
    // Sizes: beyond these the arithmetic of a declared model stops
    // being meaningful (and would overflow), long before any machine
    // could hold its weights.
    let limits = [
        ("layers", Some(a.layers), MAX_LAYERS),
        ("hidden", Some(a.hidden), MAX_HIDDEN),
        ("intermediate", a.intermediate, MAX_INTERMEDIATE),
        ("vocab", Some(a.vocab), MAX_VOCAB),
        ("max_positions", Some(a.max_positions), MAX_POSITIONS),
    ];
    let mut sizes_ok = true;
    for (field, value, limit) in limits {
        if let Some(v) = value
            && v > limit
        {
            sizes_ok = false;
            diags.at_value(
                &format!("{p}/{field}"),
                format!("{field} {v} is larger than assay supports ({limit})"),
            );
        }
    }
    sizes_ok
}

/// The weights fit this machine's memory, and every scenario fits the
/// model's positions and (its KV cache) this machine's memory.
fn check_fit(
    cx: &Ctx<'_>,
    diags: &mut Diags<'_>,
    i: usize,
    m: &ModelDecl,
    a: &SyntheticArch,
    sizes_ok: bool,
) {
    let memory = cx.machine.memory;
    // Real backends materialise the weights: refuse a model whose f32
    // checkpoint cannot fit in this machine's memory before a long
    // prepare ends in an out-of-memory kill.
    if sizes_ok && cx.real_backend {
        let bytes = a.parameter_count().saturating_mul(4);
        if memory > 0 && bytes > memory {
            diags.at_value(
                &format!("/models/{i}/synthetic"),
                format!(
                    "model {:?} has {} parameters: {:.1} GiB of f32 weights, more than this machine's {:.1} GiB of memory",
                    m.name,
                    a.parameter_count(),
                    bytes as f64 / GIB,
                    memory as f64 / GIB
                ),
            );
        }
    }
    for (j, s) in cx.scenarios.iter().enumerate() {
        let needed = u64::from(s.prompt_tokens) + u64::from(s.gen_tokens);
        // The KV cache a real backend preallocates for the cell (sizes
        // checked first: past the limits the product overflows).
        let kv_bytes = || {
            u64::from(s.batch)
                .saturating_mul(needed)
                .saturating_mul(a.kv_values_per_token())
                .saturating_mul(4)
        };
        if sizes_ok && cx.real_backend && memory > 0 && kv_bytes() > memory {
            diags.at_value(
                &cx.scenario_at(j),
                format!(
                    "scenario {:?} needs a {:.1} GiB KV cache for model {:?} (batch x positions x layers x KV width, f32), more than this machine's {:.1} GiB of memory",
                    s.name,
                    kv_bytes() as f64 / GIB,
                    m.name,
                    memory as f64 / GIB
                ),
            );
        }
        if needed > u64::from(a.max_positions) {
            diags.at_value(
                &cx.scenario_at(j),
                format!(
                    "scenario {:?} needs {} positions but model {:?} has max_positions {}",
                    s.name, needed, m.name, a.max_positions
                ),
            );
        }
    }
}
