//! Title, boundary and scenarios: what the report is about and under which
//! measurement boundary. The question and the decision it feeds open the
//! summary (`summary.rs`), right under the title.

use crate::document::{Block, header};
use crate::{Out, Report};
use assay_core::config::{Boundary, ModelLoad};
use assay_core::domain::Evidence;
use assay_core::stage::StageError;

/// The title, and the simulated-data warning where it applies: the only
/// blocks above the summary.
pub fn title(rep: &Report<'_>, out: &mut Out) {
    out.doc.push(Block::Heading(1, rep.p.title.clone()));
    if !Evidence::is_measured(&rep.evidence) {
        out.doc.push(Block::Warning(
            "SIMULATED DATA: some or all numbers below come from the `simulated` backend, \
             a latency model. They exercise the pipeline and support what-ifs; they are \
             not evidence and must not feed a decision."
                .into(),
        ));
    }
}

/// The measurement boundary and the scenarios (seed X.2, X.3).
pub fn intro(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    out.doc
        .push(Block::Heading(2, "Measurement boundary".into()));
    let b = &rep.p.boundary;
    out.doc.push(Block::Table(
        header(&["aspect", "setting"]),
        vec![
            vec!["timed phases".into(), timed_phases(b)],
            vec![
                "tokenization".into(),
                format!("{:?}", b.tokenization).to_lowercase(),
            ],
            vec![
                "model load".into(),
                format!("{:?}", b.model_load).to_lowercase(),
            ],
            vec![
                "warmup runs (kept, excluded from steady state)".into(),
                b.warmup_runs.to_string(),
            ],
            vec!["steady-state repetitions".into(), b.repetitions.to_string()],
            vec![
                "decode".into(),
                "fixed length, EOS ignored; short runs degraded".into(),
            ],
        ],
    ));

    out.doc.push(Block::Heading(2, "Scenarios".into()));
    out.doc.push(Block::Table(
        header(&["scenario", "prompt tokens", "batch", "gen tokens"]),
        rep.p
            .scenarios
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    s.prompt_tokens.to_string(),
                    s.batch.to_string(),
                    s.gen_tokens.to_string(),
                ]
            })
            .collect(),
    ));

    Ok(())
}

/// The phases a run times, in order, as the boundary sets them.
fn timed_phases(b: &Boundary) -> String {
    let load = match b.model_load {
        ModelLoad::Separate => "load (separate)",
        ModelLoad::Included => "load (also inside the first run's ttft and e2e)",
    };
    if b.tokenizes() {
        format!("{load}, tokenize, prefill, ttft, decode (per token, KV cache), detokenize, e2e")
    } else {
        format!("{load}, prefill, ttft, decode (per token, KV cache), e2e")
    }
}

/// What the ttft and e2e numbers include beyond the model's work, stated
/// beside every table of them (Appendix AP.2: a number without its
/// boundary is a claim without context). `None` for the default boundary
/// (tokenisation excluded, load separate), whose tables say nothing more.
pub(crate) fn boundary_statement(b: &Boundary) -> Option<String> {
    let mut parts = Vec::new();
    if b.tokenizes() {
        parts.push(
            "tokenization included: every run's ttft includes tokenising its text prompts and its e2e also detokenising the outputs (each timed on its own as `tokenize` and `detokenize`); prefill and decode are the model's work alone",
        );
    }
    if b.model_load == ModelLoad::Included {
        parts.push(if b.warmup_runs > 0 {
            "model load included: the first run's ttft and e2e include the model load (that run is warmup and stays out of steady state; it is the cold start below)"
        } else {
            "model load included: the first run's ttft and e2e include the model load, and with no warmup runs that run is a steady-state run"
        });
    }
    (!parts.is_empty()).then(|| format!("Boundary: {}.", parts.join("; ")))
}
