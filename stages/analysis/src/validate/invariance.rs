//! Output invariance across backends (MLPerf's TEST06 spirit): before
//! timings of two backends on one model are compared, both must produce the
//! same greedy tokens for the same prompts. A backend that computes
//! something else is fast at the wrong thing.
//!
//! Cells are grouped by (model, scenario, dtype that ran): a quantised or
//! half-precision configuration computes other numbers by design, so it is
//! compared only with configurations of its own precision. Within a group,
//! the reference is
//! candle, the embedded backend checked against a numpy reference in tests,
//! or else the backend whose name sorts first. Each other cell's first
//! steady run is compared with the reference's, sequence by sequence, step
//! by step. At the first differing step the comparison stops (later tokens
//! depend on earlier ones): when the winning logit led the runner-up by at
//! most the tolerance in either backend the difference is a near-tie that
//! float rounding explains and the cell passes; otherwise the cell diverged
//! and every run of it is degraded (`output_divergence`).
//!
//! Imported cells (kind `imported`, a peer tool's results file) carry
//! timings but no tokens: they are left out of every group, neither
//! compared nor a reference.
//!
//! The reference gets an `output_reference` check naming its group.
//! Within a cell, every steady run must give the same tokens
//! (`output_stable`); a greedy backend that does not is flagged.

use std::collections::BTreeMap;

use super::CheckResult;
use assay_core::domain::{Evidence, RunStatus, ValidationCheck};
use assay_core::tables::{OutputRow, RunRow, ValidationRow};
use assay_measure::Manifest;

/// What one measure cell generated.
pub struct CellOutputs {
    pub cell: String,
    pub backend: String,
    pub library: String,
    /// The dtype that ran (attribution), part of the comparison group.
    pub dtype: String,
    pub model: String,
    pub scenario: String,
    pub measured: bool,
    /// Imported from a peer tool's results file (kind `imported`): real
    /// timings but no tokens, so never part of an invariance group.
    pub imported: bool,
    /// The backend returns token ids. Servers return text (and every
    /// request has its own prompt prefix), so their outputs are neither
    /// compared nor checked for stability.
    pub token_ids: bool,
    /// Tokens of the first steady run: `[sequence][step] -> (token, margin)`.
    pub first_steady: Vec<Vec<(u32, Option<f32>)>>,
    /// Distinct output digests over the steady runs.
    pub steady_digests: usize,
}

impl CellOutputs {
    pub fn new(manifest: &Manifest, runs: &[RunRow], rows: Vec<OutputRow>) -> Self {
        let first = runs
            .iter()
            .filter(|r| !r.warmup)
            .map(|r| r.repetition)
            .min();
        let mut first_steady: Vec<Vec<(u32, Option<f32>)>> = Vec::new();
        let mut picked: Vec<&OutputRow> = rows
            .iter()
            .filter(|r| Some(r.repetition) == first)
            .collect();
        picked.sort_by_key(|r| (r.sequence, r.step));
        for r in picked {
            let seq = r.sequence as usize;
            if first_steady.len() <= seq {
                first_steady.resize(seq + 1, Vec::new());
            }
            first_steady[seq].push((r.token, r.margin));
        }
        let digests: std::collections::BTreeSet<&str> = runs
            .iter()
            .filter(|r| !r.warmup)
            .map(|r| r.output_digest.as_str())
            .collect();
        CellOutputs {
            cell: manifest.cell.clone(),
            backend: manifest.backend.clone(),
            library: manifest.actual.library.clone(),
            dtype: manifest.actual.dtype.clone(),
            model: manifest.model.clone(),
            scenario: manifest.scenario.name.clone(),
            measured: Evidence::is_measured(&manifest.evidence),
            imported: manifest.imported.is_some()
                || manifest.evidence == Evidence::Imported.as_str(),
            token_ids: manifest.actual.server.is_none(),
            first_steady,
            steady_digests: digests.len(),
        }
    }
}

/// How a cell's tokens compare with the reference's.
#[derive(Debug, PartialEq)]
enum Verdict {
    Same {
        tokens: usize,
    },
    NearTie {
        sequence: usize,
        step: usize,
        margin: f32,
    },
    Diverged {
        sequence: usize,
        step: usize,
        ours: u32,
        theirs: u32,
        margin: Option<f32>,
    },
    Missing,
}

fn compare(reference: &CellOutputs, cell: &CellOutputs, tolerance: f64) -> Verdict {
    if cell.first_steady.is_empty()
        || reference.first_steady.is_empty()
        || cell.first_steady.len() != reference.first_steady.len()
    {
        return Verdict::Missing;
    }
    let mut tokens = 0;
    let mut first_tie = None;
    // Sequences are independent: a near-tie ends the comparison of its own
    // sequence only (later tokens of it depend on the flip), never of the
    // others.
    'sequences: for (sequence, (ours, theirs)) in cell
        .first_steady
        .iter()
        .zip(&reference.first_steady)
        .enumerate()
    {
        for (step, (a, b)) in ours.iter().zip(theirs).enumerate() {
            if a.0 == b.0 {
                tokens += 1;
                continue;
            }
            // The smaller lead of the two: if either backend was within
            // the tolerance of choosing another token, rounding explains it.
            let margin = match (a.1, b.1) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (m, None) | (None, m) => m,
            };
            match margin {
                Some(m) if f64::from(m) <= tolerance => {
                    first_tie.get_or_insert(Verdict::NearTie {
                        sequence,
                        step,
                        margin: m,
                    });
                    continue 'sequences;
                }
                _ => {
                    return Verdict::Diverged {
                        sequence,
                        step,
                        ours: a.0,
                        theirs: b.0,
                        margin,
                    };
                }
            }
        }
        if ours.len() != theirs.len() {
            return Verdict::Diverged {
                sequence,
                step: ours.len().min(theirs.len()),
                ours: u32::MAX,
                theirs: u32::MAX,
                margin: None,
            };
        }
    }
    first_tie.unwrap_or(Verdict::Same { tokens })
}

/// Compare every measured cell with its group's reference and within
/// itself; degrade the runs of diverged cells.
/// How output invariance compares (the spec's `validate:`).
pub struct Settings<'a> {
    /// Largest logit lead that still counts as a near-tie.
    pub tolerance: f64,
    /// The reference backend by name; `None`: the embedded default
    /// backend's cell (candle), else the first backend name.
    pub reference: Option<&'a str>,
}

pub fn check_outputs(
    cells: &[CellOutputs],
    settings: &Settings<'_>,
    rows: &mut [ValidationRow],
    checks: &mut Vec<CheckResult>,
) {
    let tolerance = settings.tolerance;
    for c in cells.iter().filter(|c| compared(c)) {
        if c.steady_digests > 1 {
            checks.push(CheckResult {
                cell: c.cell.clone(),
                check: ValidationCheck::OutputStable.as_str().into(),
                passed: false,
                detail: format!(
                    "{} different outputs over the steady runs of one greedy configuration",
                    c.steady_digests
                ),
            });
            flag(rows, &c.cell, "output_unstable");
        }
    }
    // Simulated cells produce stand-in tokens and imported cells none:
    // nothing to compare.
    let mut groups: BTreeMap<(&str, &str, &str), Vec<&CellOutputs>> = BTreeMap::new();
    for c in cells.iter().filter(|c| compared(c)) {
        groups
            .entry((c.model.as_str(), c.scenario.as_str(), c.dtype.as_str()))
            .or_default()
            .push(c);
    }
    for members in groups.values() {
        if members.len() < 2 {
            continue;
        }
        let Some(reference) = pick_reference(members, settings.reference) else {
            continue;
        };
        for c in members.iter().filter(|c| c.cell != reference.cell) {
            let (passed, detail) = describe(compare(reference, c, tolerance), reference, tolerance);
            if !passed {
                degrade(rows, &c.cell, "output_divergence");
            }
            checks.push(CheckResult {
                cell: c.cell.clone(),
                check: ValidationCheck::OutputInvariance.as_str().into(),
                passed,
                detail,
            });
        }
        checks.push(CheckResult {
            cell: reference.cell.clone(),
            check: ValidationCheck::OutputReference.as_str().into(),
            passed: true,
            detail: format!(
                "reference of {} for model {} ({}) in scenario {}",
                members.len() - 1,
                reference.model,
                reference.dtype,
                reference.scenario
            ),
        });
    }
}

/// Whether a cell's outputs take part in the checks: measured in process
/// with token ids; simulated cells make stand-in tokens, servers return
/// text, imported cells carry no tokens at all.
fn compared(c: &CellOutputs) -> bool {
    c.measured && c.token_ids && !c.imported
}

/// The reference of a group: the named backend's cell, else the cell of
/// the embedded default library (candle), else the first backend by name;
/// never a cell without outputs (it would fail every other cell).
fn pick_reference<'a>(members: &[&'a CellOutputs], named: Option<&str>) -> Option<&'a CellOutputs> {
    let candidates = || {
        members
            .iter()
            .copied()
            .filter(|c| !c.first_steady.is_empty())
    };
    let named = named.and_then(|name| candidates().find(|c| c.backend == name));
    named
        .or_else(|| {
            candidates()
                .filter(|c| c.library == assay_measure::candle::LIBRARY)
                .min_by(|a, b| a.backend.cmp(&b.backend))
        })
        .or_else(|| candidates().min_by(|a, b| a.backend.cmp(&b.backend)))
}

/// Whether a verdict against `reference` passes, and its detail.
fn describe(verdict: Verdict, reference: &CellOutputs, tolerance: f64) -> (bool, String) {
    match verdict {
        Verdict::Same { tokens } => (
            true,
            format!("same greedy tokens as {} ({tokens} tokens)", reference.cell),
        ),
        Verdict::NearTie {
            sequence,
            step,
            margin,
        } => (
            true,
            format!(
                "same greedy tokens as {} up to a near-tie at sequence {sequence} step {step} (logit lead {margin:.2e} <= tolerance {tolerance:e})",
                reference.cell
            ),
        ),
        Verdict::Diverged {
            sequence,
            step,
            ours,
            theirs,
            margin,
        } => (
            false,
            if ours == u32::MAX {
                format!(
                    "generated a different number of tokens than {} (sequence {sequence}, from step {step})",
                    reference.cell
                )
            } else {
                format!(
                    "diverges from {} at sequence {sequence} step {step}: token {ours} vs {theirs} (logit lead {}; tolerance {tolerance:e})",
                    reference.cell,
                    margin.map_or("unknown".to_string(), |m| format!("{m:.2e}"))
                )
            },
        ),
        Verdict::Missing => (
            false,
            format!("no steady-run outputs to compare with {}", reference.cell),
        ),
    }
}

fn append(list: &mut String, item: &str) {
    if !list.is_empty() {
        list.push(';');
    }
    list.push_str(item);
}

fn degrade(rows: &mut [ValidationRow], cell: &str, reason: &str) {
    for row in rows.iter_mut().filter(|r| r.cell == cell) {
        append(&mut row.reasons, reason);
        if row.is_ok() {
            row.status = RunStatus::Degraded.as_str().into();
        }
    }
}

fn flag(rows: &mut [ValidationRow], cell: &str, name: &str) {
    for row in rows.iter_mut().filter(|r| r.cell == cell && !r.warmup) {
        append(&mut row.flags, name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(name: &str, library: &str, seqs: Vec<Vec<(u32, Option<f32>)>>) -> CellOutputs {
        CellOutputs {
            cell: format!("{name}/m/s"),
            backend: name.into(),
            library: library.into(),
            dtype: "f32".into(),
            model: "m".into(),
            scenario: "s".into(),
            measured: true,
            imported: false,
            token_ids: true,
            first_steady: seqs,
            steady_digests: 1,
        }
    }

    fn rows(cells: &[&str]) -> Vec<ValidationRow> {
        cells
            .iter()
            .map(|c| ValidationRow {
                cell: format!("{c}/m/s"),
                status: "ok".into(),
                evidence: "measured".into(),
                ..Default::default()
            })
            .collect()
    }

    fn run(cells: &[CellOutputs]) -> (Vec<ValidationRow>, Vec<CheckResult>) {
        run_with(cells, None)
    }

    fn run_with(
        cells: &[CellOutputs],
        reference: Option<&str>,
    ) -> (Vec<ValidationRow>, Vec<CheckResult>) {
        let names: Vec<&str> = cells.iter().map(|c| c.backend.as_str()).collect();
        let mut r = rows(&names);
        let mut checks = Vec::new();
        let settings = Settings {
            tolerance: 1e-3,
            reference,
        };
        check_outputs(cells, &settings, &mut r, &mut checks);
        (r, checks)
    }

    #[test]
    fn the_spec_can_name_the_reference() {
        let toks = vec![vec![(1, Some(0.5)), (2, Some(0.4))]];
        let cells = [
            cell("a-ort", "onnxruntime", toks.clone()),
            cell("z-candle", "candle", toks.clone()),
        ];
        let (_, checks) = run_with(&cells, Some("a-ort"));
        let candle = checks.iter().find(|c| c.cell == "z-candle/m/s").unwrap();
        assert!(candle.detail.contains("a-ort/m/s"), "{}", candle.detail);
        let ort: Vec<&str> = checks
            .iter()
            .filter(|c| c.cell == "a-ort/m/s")
            .map(|c| c.check.as_str())
            .collect();
        assert_eq!(ort, ["output_reference"]);
        // A name with no cell in the group falls back to candle.
        let (_, checks) = run_with(&cells, Some("absent"));
        let ort = checks.iter().find(|c| c.cell == "a-ort/m/s").unwrap();
        assert!(ort.detail.contains("z-candle/m/s"), "{}", ort.detail);
    }

    #[test]
    fn same_tokens_pass_and_candle_is_the_reference() {
        let toks = vec![vec![(1, Some(0.5)), (2, Some(0.4))]];
        let (rows, checks) = run(&[
            cell("a-ort", "onnxruntime", toks.clone()),
            cell("z-candle", "candle", toks.clone()),
        ]);
        assert!(rows.iter().all(|r| r.status == "ok"));
        let ort = checks.iter().find(|c| c.cell == "a-ort/m/s").unwrap();
        assert!(ort.passed);
        assert!(ort.detail.contains("z-candle/m/s"), "{}", ort.detail);
    }

    #[test]
    fn a_confident_difference_degrades_and_a_near_tie_does_not() {
        let reference = vec![vec![(1, Some(0.5)), (2, Some(0.4)), (3, Some(0.3))]];
        let diverged = vec![vec![(1, Some(0.5)), (9, Some(0.2)), (3, Some(0.3))]];
        let near_tie = vec![vec![(1, Some(0.5)), (9, Some(0.0004)), (4, Some(0.3))]];
        let (rows, checks) = run(&[
            cell("candle", "candle", reference),
            cell("bad", "onnxruntime", diverged),
            cell("tie", "libtorch", near_tie),
        ]);
        let status = |c: &str| rows.iter().find(|r| r.cell == c).unwrap().clone();
        assert_eq!(status("bad/m/s").status, "degraded");
        assert_eq!(status("bad/m/s").reasons, "output_divergence");
        assert_eq!(status("tie/m/s").status, "ok");
        let detail = |c: &str| {
            checks
                .iter()
                .find(|x| x.cell == c && x.check == "output_invariance")
                .unwrap()
                .clone()
        };
        assert!(!detail("bad/m/s").passed);
        assert!(detail("bad/m/s").detail.contains("step 1: token 9 vs 2"));
        assert!(detail("tie/m/s").passed);
        assert!(
            detail("tie/m/s")
                .detail
                .contains("near-tie at sequence 0 step 1")
        );
    }

    #[test]
    fn unstable_outputs_are_flagged_and_simulated_cells_are_not_compared() {
        let mut unstable = cell("a", "candle", vec![vec![(1, None)]]);
        unstable.steady_digests = 2;
        let mut simulated = cell("b", "assay-simulated", vec![vec![(7, None)]]);
        simulated.measured = false;
        let (rows, checks) = run(&[unstable, simulated]);
        assert_eq!(rows[0].flags, "output_unstable");
        assert_eq!(rows[0].status, "ok");
        assert!(checks.iter().all(|c| c.check != "output_invariance"));
    }

    #[test]
    fn a_near_tie_in_one_sequence_does_not_hide_a_divergence_in_another() {
        let reference = vec![
            vec![(1, Some(0.5)), (2, Some(0.5))],
            vec![(3, Some(0.5)), (4, Some(0.5))],
        ];
        let tie_then_divergence = vec![
            vec![(9, Some(0.0001)), (7, Some(0.5))],
            vec![(3, Some(0.5)), (8, Some(0.5))],
        ];
        let tie_only = vec![
            vec![(9, Some(0.0001)), (7, Some(0.5))],
            vec![(3, Some(0.5)), (4, Some(0.5))],
        ];
        let (rows, checks) = run(&[
            cell("candle", "candle", reference),
            cell("bad", "onnxruntime", tie_then_divergence),
            cell("tie", "libtorch", tie_only),
        ]);
        let status = |c: &str| rows.iter().find(|r| r.cell == c).unwrap().status.clone();
        assert_eq!(status("bad/m/s"), "degraded");
        assert_eq!(status("tie/m/s"), "ok");
        let bad = checks
            .iter()
            .find(|c| c.cell == "bad/m/s" && c.check == "output_invariance")
            .unwrap();
        assert!(bad.detail.contains("sequence 1 step 1"), "{}", bad.detail);
    }

    #[test]
    fn other_precisions_are_not_compared() {
        let mut q8 = cell("q8", "candle", vec![vec![(9, Some(1.0))]]);
        q8.dtype = "q8_0".into();
        let (rows, checks) = run(&[cell("f32", "candle", vec![vec![(1, Some(1.0))]]), q8]);
        assert!(rows.iter().all(|r| r.status == "ok"));
        assert!(checks.iter().all(|c| c.check != "output_invariance"));
    }

    #[test]
    fn imported_cells_join_no_group() {
        // An imported cell of the same model, scenario and dtype as a
        // measured one: real (evidence) but without tokens, so it is
        // neither compared (no `Missing` divergence) nor a reference.
        let mut imported = cell("llama-bench", "llama.cpp", Vec::new());
        imported.imported = true;
        let (rows, checks) = run(&[
            cell("candle", "candle", vec![vec![(1, Some(1.0))]]),
            imported,
        ]);
        assert!(rows.iter().all(|r| r.status == "ok"), "{rows:?}");
        assert!(rows.iter().all(|r| r.reasons.is_empty()), "{rows:?}");
        assert!(
            checks.is_empty(),
            "{:?}",
            checks.iter().map(|c| &c.detail).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_shorter_generation_diverges() {
        let (rows, _) = run(&[
            cell(
                "candle",
                "candle",
                vec![vec![(1, Some(1.0)), (2, Some(1.0))]],
            ),
            cell("short", "libtorch", vec![vec![(1, Some(1.0))]]),
        ]);
        assert_eq!(rows[1].status, "degraded");
    }
}
