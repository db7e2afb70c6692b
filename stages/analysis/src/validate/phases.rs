//! The phase sequence of one run: which phases are missing, duplicated or
//! out of order.

use assay_core::tables::{EventColumns, Phase, RunRow};

/// The reasons of one run's own events: the phase problems that fail it
/// (returned), and `no_visible_text` (into `reasons`), for a server run
/// whose tokens carried no text.
pub(super) fn run_phase_reasons(
    events: &EventColumns,
    evs: &[usize],
    run: &RunRow,
    server: bool,
    reasons: &mut Vec<String>,
) -> Vec<String> {
    if !server {
        return phase_problems(events, evs, true, run.gen_tokens_produced.saturating_sub(1));
    }
    let chunks = evs
        .iter()
        .filter(|i| events.phase(**i) == Phase::Decode)
        .count() as u32;
    let saw_text = evs.iter().any(|i| events.phase(*i) == Phase::Ttft);
    let e2e_tokens: Vec<u32> = evs
        .iter()
        .filter(|i| events.phase(**i) == Phase::E2e)
        .map(|i| events.tokens[*i])
        .collect();
    if !saw_text && chunks == 0 && matches!(e2e_tokens[..], [t] if t > 0) {
        // The server generated tokens that carried no visible text: end to
        // end and the server's counts stand, the client's TTFT and decode
        // gaps do not exist.
        reasons.push("no_visible_text".into());
        Vec::new()
    } else {
        phase_problems(events, evs, false, chunks)
    }
}

/// The phases of one run: prefill (optional for servers, which may not
/// report it), ttft, decode steps with indices 1..=`decode_steps`, e2e, in
/// that order. In process a run has one decode step per generated token
/// after the first; a server run one per chunk after the first (a chunk may
/// carry more than one token, so there the count is the events').
fn phase_problems(
    events: &EventColumns,
    rows: &[usize],
    prefill_required: bool,
    decode_steps: u32,
) -> Vec<String> {
    let mut reasons = Vec::new();
    let all: Vec<Phase> = rows.iter().map(|i| events.phase(*i)).collect();
    // A boundary that includes tokenisation adds `tokenize` first and
    // `detokenize` just before `e2e`, once each; the model's phases keep
    // their order between them.
    let text_ok = text_phases_in_place(&all);
    let phases: Vec<Phase> = all
        .iter()
        .copied()
        .filter(|p| !matches!(p, Phase::Tokenize | Phase::Detokenize))
        .collect();
    for (required, optional) in [
        (Phase::Prefill, !prefill_required),
        (Phase::Ttft, false),
        (Phase::E2e, false),
    ] {
        match phases.iter().filter(|p| **p == required).count() {
            1 => {}
            0 if optional => {}
            0 => reasons.push(format!("missing_phase:{}", required.name())),
            _ => reasons.push(format!("duplicate_phase:{}", required.name())),
        }
    }
    let decode_indices = rows
        .iter()
        .filter(|i| events.phase(**i) == Phase::Decode)
        .filter_map(|i| events.token_index(*i));
    if !decode_indices.eq(1..=decode_steps) {
        reasons.push("decode_steps_mismatch".into());
    }
    let body: Vec<Phase> = phases
        .iter()
        .copied()
        .filter(|p| *p != Phase::Prefill)
        .collect();
    let order_ok = text_ok
        && (!prefill_required || phases.first() == Some(&Phase::Prefill))
        && body.first() == Some(&Phase::Ttft)
        && body.last() == Some(&Phase::E2e);
    if reasons.is_empty() && !order_ok {
        reasons.push("phase_order".into());
    }
    reasons
}

/// `tokenize` and `detokenize` each at most once, the first as the run's
/// first event, the second just before its last (`e2e`).
fn text_phases_in_place(phases: &[Phase]) -> bool {
    let at = |phase: Phase| -> Vec<usize> {
        phases
            .iter()
            .enumerate()
            .filter(|(_, p)| **p == phase)
            .map(|(i, _)| i)
            .collect()
    };
    let tokenize_ok = matches!(at(Phase::Tokenize)[..], [] | [0]);
    let detokenize_ok = match at(Phase::Detokenize)[..] {
        [] => true,
        [i] => i + 2 == phases.len(),
        _ => false,
    };
    tokenize_ok && detokenize_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use Phase::*;

    #[test]
    fn text_phases_open_and_close_a_run() {
        assert!(text_phases_in_place(&[Prefill, Ttft, Decode, E2e]));
        assert!(text_phases_in_place(&[
            Tokenize, Prefill, Ttft, Decode, Detokenize, E2e
        ]));
        assert!(!text_phases_in_place(&[Prefill, Tokenize, Ttft, E2e]));
        assert!(!text_phases_in_place(&[
            Tokenize, Prefill, Ttft, E2e, Detokenize
        ]));
        assert!(!text_phases_in_place(&[
            Tokenize, Tokenize, Prefill, Ttft, E2e
        ]));
    }
}
