//! Title, question, decision, boundary and scenarios: what the report answers and under which measurement boundary.

use crate::document::{Block, header};
use crate::{Out, Report};
use assay_core::domain::Evidence;
use assay_core::stage::StageError;

pub fn intro(rep: &Report<'_>, out: &mut Out) -> Result<(), StageError> {
    out.doc.push(Block::Heading(1, rep.p.title.clone()));
    if !Evidence::is_measured(&rep.evidence) {
        out.doc.push(Block::Warning(
            "SIMULATED DATA: some or all numbers below come from the `simulated` backend, \
             a latency model. They exercise the pipeline and support what-ifs; they are \
             not evidence and must not feed a decision."
                .into(),
        ));
    }
    out.doc.push(Block::Heading(2, "Decision question".into()));
    out.doc.push(Block::Para(rep.p.question.clone()));
    out.doc
        .push(Block::Heading(2, "Decision this feeds".into()));
    out.doc.push(Block::Para(rep.p.decision.clone()));

    out.doc
        .push(Block::Heading(2, "Measurement boundary".into()));
    let b = &rep.p.boundary;
    out.doc.push(Block::Table(
        header(&["aspect", "setting"]),
        vec![
            vec![
                "timed phases".into(),
                "load (separate), prefill, ttft, decode (per token, KV cache), e2e".into(),
            ],
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
