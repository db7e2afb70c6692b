//! `backends`: each entry's kind is looked up in the backend registry
//! (`assay_measure::Registry`), which owns the kind's own checks; here are
//! the checks every kind shares and the order they run in.

use assay_measure::{Backend, BackendConfig, CheckContext, Dtype, Execution};

use super::Ctx;
use crate::spec::diagnostic::Diags;

pub(super) fn check_backends(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    for (i, b) in cx.spec.backends.iter().enumerate() {
        // An unregistered kind has its error from the schema (whose enum
        // is the registry's kinds).
        if let Some(kind) = cx.registry.get(b.kind.as_str()) {
            check_backend(cx, diags, i, b, kind);
        }
    }
}

/// One backend: the shared checks, then (when this build has the kind)
/// its own checks and, in process, its threads.
fn check_backend(
    cx: &Ctx<'_>,
    diags: &mut Diags<'_>,
    i: usize,
    b: &BackendConfig,
    kind: &dyn Backend,
) {
    check_options_sections(cx, diags, i, b, kind);
    check_server_quantisation(diags, i, b, kind);
    if let Some((feature, false)) = kind.feature() {
        diags.at_value(
            &format!("/backends/{i}/kind"),
            assay_measure::worker::not_built(feature),
        );
        return;
    }
    let kind_cx = CheckContext {
        index: i,
        models: &cx.spec.models,
        scenarios: cx.scenarios,
        measuring: cx.purpose == super::Purpose::Measure,
        cores: cx.machine.cores,
    };
    kind.check(&kind_cx, b, diags);
    if kind.execution() == Execution::InProcess {
        check_threads(cx, diags, i, b);
    }
}

/// An options section is given only for a backend of a kind that reads
/// it.
fn check_options_sections(
    cx: &Ctx<'_>,
    diags: &mut Diags<'_>,
    i: usize,
    b: &BackendConfig,
    kind: &dyn Backend,
) {
    let given = [
        ("simulated", b.simulated.is_some()),
        ("ort", b.ort.is_some()),
        ("tch", b.tch.is_some()),
        ("server", b.server.is_some()),
        ("python", b.python.is_some()),
        ("imported", b.imported.is_some()),
    ];
    for (section, _) in given.iter().filter(|(_, given)| *given) {
        let known = cx
            .registry
            .entries()
            .any(|e| e.options_section() == Some(section));
        if known && kind.options_section() != Some(section) {
            diags.at_key(
                &format!("/backends/{i}/{section}"),
                format!("`{section}` options given for a backend of kind {}", b.kind),
            );
        }
    }
}

/// The GGUF 4- to 6-bit quantisations exist only on servers.
fn check_server_quantisation(
    diags: &mut Diags<'_>,
    i: usize,
    b: &BackendConfig,
    kind: &dyn Backend,
) {
    if kind.execution() != Execution::Server
        && matches!(
            b.dtype,
            Dtype::Q4_0 | Dtype::Q4KM | Dtype::Q5KM | Dtype::Q6K
        )
    {
        diags.at_value(
            &format!("/backends/{i}/dtype"),
            format!(
                "dtype {} is a server quantisation (Ollama, llama.cpp); {} runs f32, f16, bf16 or q8_0",
                b.dtype.as_str(),
                b.kind
            ),
        );
    }
}

/// An in-process backend's threads run on this machine's cores: refuse
/// more threads than there are (checked only when measuring, see
/// `Machine::cores`).
fn check_threads(cx: &Ctx<'_>, diags: &mut Diags<'_>, i: usize, b: &BackendConfig) {
    if let Some(cores) = cx.machine.cores
        && b.threads > cores
    {
        diags.at_value(
            &format!("/backends/{i}/threads"),
            format!(
                "{} threads requested, more than the {cores} logical cores available on this machine ({} runs in process, on this machine's cores)",
                b.threads, b.kind
            ),
        );
    }
}
