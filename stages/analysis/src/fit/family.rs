//! Within-family and series fits. Across architecture families parameter
//! count is a regime descriptor only (Appendix AN.4), so where a (backend,
//! scenario) spans several families every size fit is repeated within each
//! (Appendix AC.2). Inside a family, a series varies one structural
//! predictor and holds the others (Appendix AX.1, AX.2):
//!
//! - depth: layers vary at fixed hidden size and heads;
//! - width: hidden size varies at fixed layers and head size (hidden /
//!   heads), the usual way a family widens, so heads grow with width;
//! - heads: heads vary at fixed layers and hidden size.
//!
//! A series is fitted only when it is a proper part of its family (a family
//! that is one series already has that fit) and has at least two distinct
//! values; fewer than three are shown as unidentifiable like any fit.

use std::collections::BTreeMap;

use super::{FitParams, FitPredictor, Group, by_cell, family_of};
use assay_core::domain::FitForm;
use assay_core::tables::SummaryRow;

/// The series of predictor `v` that row `s` belongs to, named by what it
/// holds; none for parameter count, or where the structure is unknown (a
/// server that does not report depth, width or heads).
fn series_of(v: FitPredictor, s: &SummaryRow) -> Option<String> {
    if s.n_layer == 0 || s.n_embd == 0 || s.n_head == 0 {
        return None;
    }
    match v {
        FitPredictor::Params => None,
        FitPredictor::Layers => Some(format!("depth at hidden {}, heads {}", s.n_embd, s.n_head)),
        // A head size that is not whole is no series anyone declares.
        FitPredictor::Hidden => s.n_embd.is_multiple_of(s.n_head).then(|| {
            format!(
                "width at layers {}, head size {}",
                s.n_layer,
                s.n_embd / s.n_head
            )
        }),
        FitPredictor::Heads => Some(format!(
            "heads at layers {}, hidden {}",
            s.n_layer, s.n_embd
        )),
    }
}

/// The within-family fits (when a cell spans several families) and the
/// series fits of every family, per (backend, scenario).
pub(super) fn groups<'a>(p: &FitParams, summary: &'a [SummaryRow]) -> Vec<Group<'a>> {
    let mut out = Vec::new();
    for ((backend, scenario), rows) in by_cell(p, summary) {
        let mut families: BTreeMap<String, Vec<&SummaryRow>> = BTreeMap::new();
        for s in rows {
            families.entry(family_of(s)).or_default().push(s);
        }
        let several = families.len() > 1;
        for (family, members) in &families {
            let group = |series: String, x: FitPredictor, rows: &[&'a SummaryRow]| Group {
                form: FitForm::LogLog,
                backend: backend.into(),
                model: String::new(),
                scenario: scenario.into(),
                family: family.clone(),
                series,
                split: true,
                boundary: scenario.into(),
                y: p.y.name().into(),
                x: x.name().into(),
                points: rows.iter().map(|s| (x.of(s), s.median_ms, *s)).collect(),
            };
            if several && members.len() >= 2 {
                for x in p.x.list() {
                    out.push(group(String::new(), x, members));
                }
            }
            for v in p.x.list().into_iter().filter(|x| x.structural()) {
                let mut series: BTreeMap<String, Vec<&SummaryRow>> = BTreeMap::new();
                for s in members {
                    if let Some(label) = series_of(v, s) {
                        series.entry(label).or_default().push(s);
                    }
                }
                for (label, rows) in series {
                    let xs: Vec<f64> = rows.iter().map(|s| v.of(s)).collect();
                    if rows.len() < members.len() && super::distinct(&xs) >= 2 {
                        out.push(group(label, v, &rows));
                    }
                }
            }
        }
    }
    out
}
