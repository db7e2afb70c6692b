//! The server kinds' spec checks: the `server:` section, and for an
//! `openai` backend without a `url`, the llama-server assay launches.

use crate::server::{LengthKnob, PromptFormat, ServerApi, ServerOptions};
use crate::stage::registry::{Backend, CheckContext, Findings};
use assay_core::config::{BackendConfig, Dtype, MAX_SECONDS, MAX_SLOTS};

/// `openai`: a server at `server.url`, or without one, the llama-server
/// assay launches.
pub(super) fn check_openai(
    entry: &dyn Backend,
    cx: &CheckContext<'_>,
    b: &BackendConfig,
    diags: &mut dyn Findings,
) {
    let i = cx.index;
    let at = format!("/backends/{i}/server");
    let o = b.server.clone().unwrap_or_default();
    match &o.url {
        Some(url) => check_url(diags, &at, url, &o),
        None => check_launched(cx, diags, i, b, &o),
    }
    check_limits(diags, &at, &o);
    check_token_prompt(entry, cx, diags, &at, b, &o, o.api == ServerApi::Chat);
    check_eos_bias(diags, &at, &o);
}

/// `ollama`: always at a `server.url`; text prompts and no length knobs.
pub(super) fn check_ollama(
    entry: &dyn Backend,
    cx: &CheckContext<'_>,
    b: &BackendConfig,
    diags: &mut dyn Findings,
) {
    let i = cx.index;
    let at = format!("/backends/{i}/server");
    let o = b.server.clone().unwrap_or_default();
    match &o.url {
        Some(url) => check_url(diags, &at, url, &o),
        None => diags.at_key(
            &format!("/backends/{i}"),
            "an ollama backend needs `server.url` (e.g. http://127.0.0.1:11434)".into(),
        ),
    }
    check_limits(diags, &at, &o);
    check_token_prompt(entry, cx, diags, &at, b, &o, true);
    if o.length_knobs.as_ref().is_some_and(|k| !k.is_empty()) {
        diags.at_value(
            &format!("{at}/length_knobs"),
            "Ollama has no ignore-EOS, min-tokens or logit-bias option; its short outputs are detected from eval_count".into(),
        );
    }
    check_eos_bias(diags, &at, &o);
}

/// `server.url` is `http://host:port[/path]` or `https://...`, and
/// `launch` is not given with it.
fn check_url(diags: &mut dyn Findings, at: &str, url: &str, o: &ServerOptions) {
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    if rest.contains('@') || rest.contains('?') || rest.contains('#') {
        // The URL is part of the measure key and of messages:
        // credentials belong in api_key_env, not here.
        diags.at_value(
            &format!("{at}/url"),
            "the url must be http(s)://host:port[/path], without user info, query or fragment (credentials go in api_key_env)".into(),
        );
    }
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    if host.is_none_or(str::is_empty) {
        diags.at_value(
            &format!("{at}/url"),
            format!("url {url:?} must be http://host:port or https://host[:port]"),
        );
    }
    if o.launch.is_some() {
        diags.at_key(
            &format!("{at}/launch"),
            "`launch` is for the llama-server assay starts; this backend has a `url`".into(),
        );
    }
}

/// The llama-server assay launches on the model's GGUF export: found on
/// this machine (when measuring), a GGUF dtype, the CPU, and sane `launch`
/// options.
fn check_launched(
    cx: &CheckContext<'_>,
    diags: &mut dyn Findings,
    i: usize,
    b: &BackendConfig,
    o: &ServerOptions,
) {
    let at = format!("/backends/{i}/server");
    if cx.measuring && crate::server::launch::binary().is_none() {
        diags.at_value(
            &format!("/backends/{i}/kind"),
            format!(
                "backend {:?} has no server.url, so assay launches llama-server, which is not found: set {} to its path or put it on the PATH (scripts/install-llama-cpp.sh builds it)",
                b.name,
                crate::server::launch::SERVER_ENV
            ),
        );
    }
    let all_local_gguf = cx
        .models
        .iter()
        .all(|m| m.path.as_deref().is_some_and(|p| p.ends_with(".gguf")));
    if !all_local_gguf && !matches!(b.dtype, Dtype::Q8_0 | Dtype::F16) {
        diags.at_value(
            &format!("/backends/{i}/dtype"),
            format!(
                "the llama-server assay launches serves the model's GGUF export, q8_0 or f16; dtype {} has no export",
                b.dtype.as_str()
            ),
        );
    }
    if b.device != "cpu" {
        diags.at_value(
            &format!("/backends/{i}/device"),
            format!(
                "the llama-server assay launches is a CPU build; device {:?} is not available (point `server.url` at a GPU server instead)",
                b.device
            ),
        );
    }
    if let Some(l) = &o.launch {
        if !(1..=MAX_SLOTS).contains(&l.parallel) {
            diags.at_value(
                &format!("{at}/launch/parallel"),
                format!("parallel must be within [1, {MAX_SLOTS}]"),
            );
        }
        if !(l.ready_timeout_s > 0.0 && l.ready_timeout_s <= MAX_SECONDS) {
            diags.at_value(
                &format!("{at}/launch/ready_timeout_s"),
                format!("ready_timeout_s must be > 0 and <= {MAX_SECONDS}"),
            );
        }
    }
}

/// Timeouts, the error budget, the API key's variable name, and a CA file
/// only where there is TLS to verify.
fn check_limits(diags: &mut dyn Findings, at: &str, o: &ServerOptions) {
    if o.ca_file.is_some() && !o.url.as_deref().is_some_and(|u| u.starts_with("https://")) {
        diags.at_value(
            &format!("{at}/ca_file"),
            "ca_file verifies an https:// server; this backend's url is not one".into(),
        );
    }
    for (field, v) in [
        ("request_timeout_s", o.request_timeout_s),
        ("stall_timeout_s", o.stall_timeout_s),
    ] {
        if !(v > 0.0 && v <= MAX_SECONDS) {
            diags.at_value(
                &format!("{at}/{field}"),
                format!("{field} must be > 0 and <= {MAX_SECONDS}"),
            );
        }
    }
    if !(0.0..=1.0).contains(&o.max_error_rate) {
        diags.at_value(
            &format!("{at}/max_error_rate"),
            "max_error_rate must be within [0, 1]".into(),
        );
    }
    if let Some(var) = &o.api_key_env
        && (var.is_empty()
            || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || var.starts_with(|c: char| c.is_ascii_digit()))
    {
        diags.at_value(
            &format!("{at}/api_key_env"),
            // The value is not repeated: it may be a key pasted by mistake.
            "this is not an environment variable name (letters, digits, '_'); give the variable's name, never the key".into(),
        );
    }
}

/// `prompt: tokens` needs an endpoint that takes token ids (`text_only`:
/// this one does not) and the vocabulary of every model the backend runs.
fn check_token_prompt(
    entry: &dyn Backend,
    cx: &CheckContext<'_>,
    diags: &mut dyn Findings,
    at: &str,
    b: &BackendConfig,
    o: &ServerOptions,
    text_only: bool,
) {
    if o.prompt != Some(PromptFormat::Tokens) {
        return;
    }
    if text_only {
        diags.at_value(
            &format!("{at}/prompt"),
            "token-id prompts go to /v1/completions only; chat and Ollama take text".into(),
        );
    }
    if let Some(m) = cx
        .models
        .iter()
        .find(|m| m.server_only() && cx.scenarios.iter().any(|s| entry.runs(b, m, s)))
    {
        diags.at_value(
            &format!("{at}/prompt"),
            format!(
                "token-id prompts need the model's vocabulary; model {:?} exists only on the server (use `prompt: text`)",
                m.name
            ),
        );
    }
}

/// `eos_logit_bias` needs the token it biases.
fn check_eos_bias(diags: &mut dyn Findings, at: &str, o: &ServerOptions) {
    let knobs = o.length_knobs.as_deref().unwrap_or_default();
    if knobs.contains(&LengthKnob::EosLogitBias) && o.eos_token_id.is_none() {
        diags.at_key(
            &format!("{at}/length_knobs"),
            "eos_logit_bias needs `eos_token_id`".into(),
        );
    }
}
