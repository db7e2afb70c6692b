//! The top-level `execution` (Slurm resources of each measure cell's job,
//! docs/cluster.md): names that can go into an `sbatch` option as they are,
//! and a GPU type only beside a GPU count. Nothing here enters a key.

use super::Ctx;
use crate::spec::JobStore;
use crate::spec::diagnostic::Diags;

pub(super) fn check_execution(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    let Some(ex) = &cx.spec.execution else {
        return;
    };
    for (field, value) in [
        ("partition", &ex.partition),
        ("account", &ex.account),
        ("gpu_type", &ex.gpu_type),
    ] {
        if let Some(v) = value
            && !slurm_name(v)
        {
            diags.at_value(
                &format!("/execution/{field}"),
                format!(
                    "{field} {v:?} is not a Slurm name: use letters, digits, `-`, `_` and `.` only"
                ),
            );
        }
    }
    if ex.gpus == Some(0) {
        diags.at_value(
            "/execution/gpus",
            "gpus must be at least 1 (leave it out for no GPU)".into(),
        );
    }
    match (&ex.node_store, ex.store) {
        (Some(_), JobStore::Shared) => diags.at_key(
            "/execution/node_store",
            "node_store is the store on each compute node of `store: remote`; with the shared \
             store the jobs use the run's own"
                .into(),
        ),
        (Some(dir), JobStore::Remote) if !dir.starts_with('/') || dir.contains(['\n', '\0']) => {
            diags.at_value(
                "/execution/node_store",
                format!("node_store {dir:?} is not an absolute path on the compute nodes"),
            );
        }
        _ => {}
    }
    if ex.gpu_type.is_some() && ex.gpus.is_none() {
        diags.at_key(
            "/execution/gpu_type",
            "gpu_type needs `gpus`, the number of GPUs per cell".into(),
        );
    }
}

/// A partition, account or gres type as Slurm spells them: non-empty,
/// nothing a shell or an `#SBATCH` line would read differently.
fn slurm_name(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
