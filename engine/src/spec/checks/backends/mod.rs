//! `backends`: one function per kind, called from [`check_backend`]'s
//! dispatch, in a module per kind (`ort` and `tch`, which share most of
//! their checks, in `native`; `openai` and `ollama` in `server`), and the
//! checks every kind shares.

mod candle;
mod native;
mod server;
mod simulated;

use assay_measure::{BackendConfig, BackendKind, Dtype};

use super::Ctx;
use crate::spec::diagnostic::Diags;

pub(super) fn check_backends(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    for (i, b) in cx.spec.backends.iter().enumerate() {
        check_backend(cx, diags, i, b);
    }
}

/// A kind run in this process, on this machine's cores (not simulated,
/// not a server).
pub(super) fn in_process(kind: BackendKind) -> bool {
    match kind {
        BackendKind::Candle | BackendKind::Ort | BackendKind::Tch => true,
        BackendKind::OpenAi | BackendKind::Ollama | BackendKind::Simulated => false,
    }
}

/// One backend: its kind's checks, each of which runs [`check_shared`].
fn check_backend(cx: &Ctx<'_>, diags: &mut Diags<'_>, i: usize, b: &BackendConfig) {
    match b.kind {
        BackendKind::Candle => candle::check_candle(cx, diags, i, b),
        BackendKind::Ort => native::check_ort(cx, diags, i, b),
        BackendKind::Tch => native::check_tch(cx, diags, i, b),
        BackendKind::OpenAi => server::check_openai(cx, diags, i, b),
        BackendKind::Ollama => server::check_ollama(cx, diags, i, b),
        BackendKind::Simulated => simulated::check_simulated(diags, i, b),
    }
    // A `simulated` section on another kind, reported above, also has its
    // values checked (as it always has).
    if b.kind != BackendKind::Simulated {
        simulated::check_simulated_section(diags, i, b);
    }
}

/// The checks every kind shares: its options sections and its dtype. Each
/// kind's function runs them (candle's after its device check, the order
/// its diagnostics have always had).
fn check_shared(diags: &mut Diags<'_>, i: usize, b: &BackendConfig) {
    check_options_sections(diags, i, b);
    check_server_quantisation(diags, i, b);
}

/// An options section is given only for a backend of its kind.
fn check_options_sections(diags: &mut Diags<'_>, i: usize, b: &BackendConfig) {
    for (section, given, kind) in [
        ("simulated", b.simulated.is_some(), BackendKind::Simulated),
        ("ort", b.ort.is_some(), BackendKind::Ort),
        ("tch", b.tch.is_some(), BackendKind::Tch),
        ("server", b.server.is_some(), BackendKind::OpenAi),
    ] {
        let matches = if section == "server" {
            b.kind.is_server()
        } else {
            b.kind == kind
        };
        if given && !matches {
            diags.at_key(
                &format!("/backends/{i}/{section}"),
                format!(
                    "`{section}` options given for a backend of kind {}",
                    b.kind.as_str()
                ),
            );
        }
    }
}

/// The GGUF 4- to 6-bit quantisations exist only on servers.
fn check_server_quantisation(diags: &mut Diags<'_>, i: usize, b: &BackendConfig) {
    if !b.kind.is_server()
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
                b.kind.as_str()
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
                b.threads,
                b.kind.as_str()
            ),
        );
    }
}
