//! `boundary`: what each backend kind can put inside the timed region, and
//! the text prompts of `tokenization: included` (whose file is read here,
//! once, when the spec is loaded: its digest enters every measure key).
//!
//! - `tokenization: included`: in-process kinds tokenise text prompts and
//!   detokenise outputs with the model's `tokenizer.json` (so a model
//!   without one is refused); server kinds send text prompts, which the
//!   server tokenises inside the client's timed region (so `server.prompt:
//!   tokens` is refused, and so is `prompts`: a server's requests carry
//!   their own text); the simulated kind has no tokenizer to time and is
//!   refused.
//! - `model_load: included`: the harness's first run starts at the load,
//!   for in-process and simulated kinds; a server loads its model before
//!   it serves, out of the client's sight, so server kinds are refused.

use std::path::Path;

use assay_core::config::server::PromptFormat;
use assay_core::config::{ModelLoad, PromptSource};
use assay_measure::text::prompts::parse_jsonl;
use assay_measure::{Boundary, Execution};

use super::Ctx;
use crate::spec::diagnostic::Diags;

pub(super) fn check_boundary(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    let boundary = &cx.spec.boundary;
    check_prompts_fields(boundary, diags);
    for (i, b) in cx.spec.backends.iter().enumerate() {
        let Some(kind) = cx.registry.get(b.kind.as_str()) else {
            continue;
        };
        let execution = kind.execution();
        if boundary.tokenizes() {
            match execution {
                Execution::Simulated => diags.at_value(
                    "/boundary/tokenization",
                    format!(
                        "backend {:?} is simulated and has no tokenizer to time; tokenization: included needs an in-process or server backend",
                        b.name
                    ),
                ),
                Execution::Server
                    if b.server.as_ref().and_then(|s| s.prompt) == Some(PromptFormat::Tokens) =>
                {
                    diags.at_value(
                        &format!("/backends/{i}/server/prompt"),
                        "tokenization: included sends text prompts for the server to tokenise; `prompt: tokens` sends token ids past its tokenizer".into(),
                    );
                }
                _ => {}
            }
        }
        if boundary.prompts.is_some() && execution == Execution::Server {
            diags.at_key(
                "/boundary/prompts",
                format!(
                    "backend {:?} is a server, whose requests carry prompts of their own (a unique first word each, so no request meets another's cached prefix); `prompts` is read by in-process backends",
                    b.name
                ),
            );
        }
        if boundary.model_load == ModelLoad::Included && b.kind.as_str() == "python" {
            diags.at_value(
                "/boundary/model_load",
                format!(
                    "backend {:?} is of kind python, whose harness times the load apart from the runs; model_load: included is not supported by it (use `excluded`)",
                    b.name
                ),
            );
        }
        if boundary.model_load == ModelLoad::Included && execution == Execution::Server {
            diags.at_value(
                "/boundary/model_load",
                format!(
                    "backend {:?} is a server, which loads its model before it serves, out of the client's timed region; model_load: included is measured by in-process and simulated backends",
                    b.name
                ),
            );
        }
    }
    if boundary.tokenizes() {
        check_model_tokenizers(cx, diags);
    }
}

/// `prompts` is text, read only when tokenisation is inside the boundary,
/// and its fields agree with its source.
fn check_prompts_fields(boundary: &Boundary, diags: &mut Diags<'_>) {
    let Some(p) = &boundary.prompts else {
        return;
    };
    if !boundary.tokenizes() {
        diags.at_key(
            "/boundary/prompts",
            "text prompts need `tokenization: included`; with `excluded`, prompts are seeded token ids and no tokenizer runs".into(),
        );
    }
    match (p.source(), &p.file) {
        (PromptSource::File, None) => diags.at_key(
            "/boundary/prompts",
            "source: file needs `file`, a JSONL file of {\"prompt\": \"...\"} lines".into(),
        ),
        (PromptSource::Generated, Some(_)) => diags.at_key(
            "/boundary/prompts/file",
            "a prompts file is read only with `source: file`".into(),
        ),
        (PromptSource::File, Some(_)) if p.seed.is_some() => diags.at_key(
            "/boundary/prompts/seed",
            "`seed` seeds generated prompts; a file's prompts are used as written".into(),
        ),
        _ => {}
    }
}

/// Every model an in-process backend runs needs its `tokenizer.json`: a
/// synthetic model has one, a local GGUF file has none, a checkpoint
/// folder must hold one.
fn check_model_tokenizers(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    for (j, m) in cx.spec.models.iter().enumerate() {
        let in_process = cx.spec.backends.iter().any(|b| {
            cx.registry.get(b.kind.as_str()).is_some_and(|k| {
                k.execution() == Execution::InProcess
                    && cx.scenarios.iter().any(|s| k.runs(b, m, s))
            })
        });
        let Some(path) = m.path.as_deref().filter(|_| in_process) else {
            continue;
        };
        let missing = if path.ends_with(".gguf") {
            Some("is a GGUF file, which carries no tokenizer.json")
        } else if !cx.dir.join(path).join("tokenizer.json").is_file() {
            Some("has no tokenizer.json")
        } else {
            None
        };
        if let Some(why) = missing {
            diags.at_value(
                &format!("/models/{j}/path"),
                format!(
                    "model {:?} {why}; tokenization: included runs the model's own tokenizer in process",
                    m.name
                ),
            );
        }
    }
}

/// Reads the prompts file of `boundary` (relative to the spec's folder)
/// into it with its digest, or reports where it is not a prompts file:
/// the file and line, at the spec's `file` field. Run before the other
/// checks, while the spec can still be changed.
pub(crate) fn read_prompts_file(boundary: &mut Boundary, dir: &Path, diags: &mut Diags<'_>) {
    let Some(p) = boundary.prompts.as_mut() else {
        return;
    };
    let Some(file) = p.file.clone().filter(|_| p.source() == PromptSource::File) else {
        return;
    };
    let pointer = "/boundary/prompts/file";
    let bytes = match std::fs::read(dir.join(&file)) {
        Ok(b) => b,
        Err(e) => {
            diags.at_value(pointer, format!("cannot read the prompts file {file}: {e}"));
            return;
        }
    };
    match parse_jsonl(&bytes) {
        Ok(texts) => {
            p.file_blake3 = Some(assay_store::Digest::of(&bytes).to_hex());
            p.texts = texts;
        }
        Err(e) => diags.at_value(pointer, format!("{file}:{}: {}", e.line, e.message)),
    }
}
