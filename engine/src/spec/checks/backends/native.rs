//! The native in-process kinds, `ort` (ONNX Runtime) and `tch` (libtorch):
//! built into this assay, f32 weights from a safetensors checkpoint, the
//! devices they can be asked for, and (ONNX Runtime, loaded at run time) a
//! library to load.

use assay_core::config::{ExecutionProvider, OrtOptions};
use assay_measure::{BackendConfig, Dtype};

use super::{check_shared, check_threads};
use crate::spec::checks::Ctx;
use crate::spec::diagnostic::Diags;

/// `ort`: the shared native checks, its execution providers, and its
/// library.
pub(super) fn check_ort(cx: &Ctx<'_>, diags: &mut Diags<'_>, i: usize, b: &BackendConfig) {
    check_shared(diags, i, b);
    if !check_built(diags, i, b) {
        return;
    }
    check_f32(diags, i, b);
    // ONNX Runtime's CUDA provider runs on device 0 (choose the GPU with
    // CUDA_VISIBLE_DEVICES), so `cuda:0` is the one GPU label that can match
    // what ran.
    let device_ok = check_device(
        diags,
        i,
        b,
        true,
        "`cpu` or `cuda:0` (through the CUDA execution provider; pick the GPU with CUDA_VISIBLE_DEVICES)",
    );
    check_providers(diags, i, b, &b.ort.clone().unwrap_or_default(), device_ok);
    check_safetensors_models(cx, diags, b);
    #[cfg(feature = "ort")]
    if cx.purpose == crate::spec::checks::Purpose::Measure
        && let Err(line) = assay_measure::ort::library_path()
    {
        diags.at_value(&format!("/backends/{i}/kind"), line);
    }
    check_threads(cx, diags, i, b);
}

/// `tch`: the shared native checks; the CPU only.
pub(super) fn check_tch(cx: &Ctx<'_>, diags: &mut Diags<'_>, i: usize, b: &BackendConfig) {
    check_shared(diags, i, b);
    if !check_built(diags, i, b) {
        return;
    }
    check_f32(diags, i, b);
    check_device(diags, i, b, false, "`cpu` only in this build");
    check_safetensors_models(cx, diags, b);
    check_threads(cx, diags, i, b);
}

/// This assay was built with the kind's cargo feature; if not, the kind's
/// other checks are skipped (returns false).
fn check_built(diags: &mut Diags<'_>, i: usize, b: &BackendConfig) -> bool {
    let Some(feature) = b.kind.feature() else {
        return true;
    };
    if !assay_measure::built(b.kind) {
        diags.at_value(
            &format!("/backends/{i}/kind"),
            assay_measure::worker::not_built(feature),
        );
        return false;
    }
    true
}

fn check_f32(diags: &mut Diags<'_>, i: usize, b: &BackendConfig) {
    if b.dtype != Dtype::F32 {
        diags.at_value(
            &format!("/backends/{i}/dtype"),
            format!(
                "{} runs the f32 checkpoint only; dtype {} is not supported",
                b.kind.as_str(),
                b.dtype.as_str()
            ),
        );
    }
}

/// `cpu`, or `cuda:0` where the kind takes it (`choices` says which).
/// Returns whether the device is one of them.
fn check_device(
    diags: &mut Diags<'_>,
    i: usize,
    b: &BackendConfig,
    cuda_ok: bool,
    choices: &str,
) -> bool {
    let device_ok = b.device == "cpu" || (cuda_ok && b.device == "cuda:0");
    if !device_ok {
        diags.at_value(
            &format!("/backends/{i}/device"),
            format!(
                "{} can be asked for {}; device {:?} is not available",
                b.kind.as_str(),
                choices,
                b.device
            ),
        );
    }
    device_ok
}

/// `ort.providers`: each once, the CPU last, and the first one matching
/// the device (checked when the device itself is valid).
fn check_providers(
    diags: &mut Diags<'_>,
    i: usize,
    b: &BackendConfig,
    o: &OrtOptions,
    device_ok: bool,
) {
    let mut seen = std::collections::BTreeSet::new();
    for (j, p) in o.providers.iter().enumerate() {
        if !seen.insert(*p) {
            diags.at_value(
                &format!("/backends/{i}/ort/providers/{j}"),
                format!("execution provider {} is listed twice", p.as_str()),
            );
        }
        // ONNX Runtime always falls back to the CPU last, so a CPU
        // listed before another provider would not take priority.
        if *p == ExecutionProvider::Cpu && j + 1 != o.providers.len() {
            diags.at_value(
                &format!("/backends/{i}/ort/providers/{j}"),
                "cpu can only be the last execution provider (ONNX Runtime's fallback)".into(),
            );
        }
    }
    if o.providers.is_empty() {
        diags.at_value(
            &format!("/backends/{i}/ort/providers"),
            "at least one execution provider is required".into(),
        );
    }
    let cuda = b.device == "cuda:0";
    let first_cuda = o.providers.first() == Some(&ExecutionProvider::Cuda);
    if device_ok && first_cuda != cuda {
        diags.at_value(
            &format!("/backends/{i}/device"),
            format!(
                "device {:?} does not match the execution providers {:?}: `cuda:0` goes with `providers: [cuda, cpu]`, `cpu` with `providers: [cpu]`",
                b.device,
                o.providers.iter().map(|p| p.as_str()).collect::<Vec<_>>()
            ),
        );
    }
}

/// The native kinds run safetensors checkpoints: one error per local GGUF
/// model, at the model.
fn check_safetensors_models(cx: &Ctx<'_>, diags: &mut Diags<'_>, b: &BackendConfig) {
    for (j, m) in cx.spec.models.iter().enumerate() {
        if m.path.as_deref().is_some_and(|p| p.ends_with(".gguf")) {
            diags.at_value(
                &format!("/models/{j}/path"),
                format!(
                    "backend {:?} ({}) runs safetensors checkpoints; model {:?} is a GGUF file",
                    b.name,
                    b.kind.as_str(),
                    m.name
                ),
            );
        }
    }
}
