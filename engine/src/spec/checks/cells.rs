//! Every backend, model and explicit scenario takes part in at least one
//! cell (see `cell_runs`: which backend runs which model and scenario).

use assay_measure::{Execution, cell_runs};

use super::Ctx;
use crate::spec::diagnostic::Diags;

pub(super) fn check_cells(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    check_backends_run(cx, diags);
    check_models_run(cx, diags);
    check_scenarios_run(cx, diags);
}

fn check_backends_run(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    let (spec, scenarios) = (cx.spec, cx.scenarios);
    for (i, b) in spec.backends.iter().enumerate() {
        // An imported backend's cells are its file's records: the kind's
        // own checks (or the file's load) say precisely what is missing.
        if cx
            .registry
            .get(b.kind.as_str())
            .is_some_and(|k| k.execution() == Execution::Imported)
        {
            continue;
        }
        let any = spec
            .models
            .iter()
            .any(|m| scenarios.iter().any(|s| cell_runs(cx.registry, b, m, s)));
        if !any && !spec.models.is_empty() && !scenarios.is_empty() {
            diags.at_value(
                &format!("/backends/{i}"),
                format!(
                    "backend {:?} ({}) runs none of the models and scenarios: {}",
                    b.name,
                    b.kind,
                    if cx
                        .registry
                        .get(b.kind.as_str())
                        .is_some_and(|k| k.execution() == Execution::Server)
                    {
                        "servers run scenarios of batch 1, and a llama-server assay launches needs a `synthetic` or `path` model"
                    } else {
                        "in-process backends run `synthetic` or `path` models on scenarios without `load`"
                    }
                ),
            );
        }
    }
}

fn check_models_run(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    let (spec, scenarios) = (cx.spec, cx.scenarios);
    for (i, m) in spec.models.iter().enumerate() {
        if !spec
            .backends
            .iter()
            .any(|b| scenarios.iter().any(|s| cell_runs(cx.registry, b, m, s)))
            && !spec.backends.is_empty()
        {
            diags.at_value(
                &format!("/models/{i}"),
                format!(
                    "no backend runs model {:?}{}",
                    m.name,
                    if m.server_only() {
                        ": a model that exists only on a server needs a server backend with `server.url`"
                    } else {
                        ""
                    }
                ),
            );
        }
    }
}

/// A rate sweep's scenarios count together, as their spec entry.
fn check_scenarios_run(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    let (spec, scenarios) = (cx.spec, cx.scenarios);
    for (j, s) in spec.scenarios.iter().enumerate() {
        let runs = scenarios
            .iter()
            .filter(|e| e.name == s.name || e.name.starts_with(&format!("{}-r", s.name)))
            .any(|e| {
                spec.backends
                    .iter()
                    .any(|b| spec.models.iter().any(|m| cell_runs(cx.registry, b, m, e)))
            });
        if !runs && !spec.backends.is_empty() && !spec.models.is_empty() {
            diags.at_value(
                &format!("/scenarios/{j}"),
                format!(
                    "no backend runs scenario {:?}: {}",
                    s.name,
                    if s.load.is_some() {
                        "a scenario with `load` runs on server backends (openai, ollama) only"
                    } else {
                        "server backends run scenarios of batch 1 only"
                    }
                ),
            );
        }
    }
}
