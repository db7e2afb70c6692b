//! `assay compare BASE NEW`: baselines and regression verdicts (seed
//! Appendix Y.3). Each side (a report.json, a spec with its lockfile, or a
//! lockfile) is resolved to the measure nodes it covers and their stored
//! `events` and `manifest`; the comparison itself (matching, bootstrap,
//! verdicts) is `assay_analysis::compare`, and this file only reads the
//! sides and prints the result.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use assay_analysis::compare::{
    self as rule, CellComparison, CellInput, Comparison, PhaseDelta, PhaseThresholds, ReasonKind,
    Thresholds, Verdict,
};
use assay_core::tables::EventColumns;
use assay_core::tables::Phase;
use assay_report::ReportJson;
use assay_store::{Digest, Lockfile, NodeRecord, Store, StoreError};
use serde::Serialize;
use serde_json::Value;

use super::{load_target_for, out, print_json};
use crate::cli::{CliError, CmdResult, CompareArgs, EXIT_OK, EXIT_REGRESSION};
use crate::spec::{Purpose, Target};

/// The measure stage's outputs compare reads (`MeasureStage` names them).
const EVENTS: &str = "events";
const MANIFEST: &str = "manifest";
/// Plan node ids of measure nodes start so (`measure/<backend>/<model>/<scenario>`).
const MEASURE_PREFIX: &str = "measure/";

/// What a side was given as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum InputKind {
    Report,
    Spec,
    Lockfile,
}

/// A side as the output names it.
#[derive(Debug, Clone, Serialize)]
struct SideInfo {
    input: String,
    kind: InputKind,
    store: String,
    /// Measure nodes the side covers.
    nodes: usize,
}

struct Side {
    info: SideInfo,
    cells: Vec<CellInput>,
    /// The spec's `compare.thresholds`, where the side is a spec that
    /// declares them.
    declared: Option<PhaseThresholds>,
}

/// A measure node of a side and where its two artifacts are.
struct MeasureRef {
    node: String,
    events: Option<Digest>,
    manifest: Option<Digest>,
    /// Why an artifact could not even be located (no node record).
    unlocated: Option<String>,
}

#[derive(Serialize)]
struct Output<'a> {
    assay_compare: u32,
    base: &'a SideInfo,
    new: &'a SideInfo,
    /// Where each phase's threshold came from: `default`, `spec <path>`
    /// or `--threshold`.
    threshold_sources: &'a BTreeMap<String, String>,
    #[serde(flatten)]
    comparison: &'a Comparison,
}

pub fn compare(args: &CompareArgs) -> CmdResult {
    let mut cli = Vec::new();
    for text in &args.thresholds {
        cli.push(Thresholds::parse_one(text).map_err(CliError::usage)?);
    }
    let base_store = args.base_store.as_deref().or(args.store.store.as_deref());
    let new_store = args.new_store.as_deref().or(args.store.store.as_deref());
    let base = resolve("BASE", &args.base, base_store)?;
    let new = resolve("NEW", &args.new, new_store)?;
    let (thresholds, sources) = thresholds(&cli, &base, &new);
    let comparison = rule::compare(&base.cells, &new.cells, &thresholds);
    if args.json {
        print_json(&Output {
            assay_compare: rule::COMPARE_VERSION,
            base: &base.info,
            new: &new.info,
            threshold_sources: &sources,
            comparison: &comparison,
        });
    } else if args.markdown {
        out(&markdown(&base.info, &new.info, &comparison, &sources));
    } else {
        out(&table(
            &base.info,
            &new.info,
            &comparison,
            &sources,
            stdout_color(),
        ));
    }
    Ok(if comparison.has_regression() {
        EXIT_REGRESSION
    } else {
        EXIT_OK
    })
}

/// The thresholds in force and where each came from. Later sources win
/// phase by phase: the default (decode 10%, Appendix Y.3), BASE's spec,
/// NEW's spec (the run being judged declares its policy), the command line.
fn thresholds(
    cli: &[(Phase, f64)],
    base: &Side,
    new: &Side,
) -> (Thresholds, BTreeMap<String, String>) {
    let mut given: Vec<(Phase, f64)> = Vec::new();
    let mut sources: BTreeMap<String, String> = Thresholds::default()
        .iter()
        .map(|(phase, _)| (phase.to_string(), "default".to_string()))
        .collect();
    for side in [base, new] {
        if let Some(declared) = &side.declared {
            for (phase, pct) in declared.given() {
                given.push((phase, pct));
                sources.insert(
                    phase.name().to_string(),
                    format!("spec {}", side.info.input),
                );
            }
        }
    }
    for (phase, pct) in cli {
        given.push((*phase, *pct));
        sources.insert(phase.name().to_string(), "--threshold".to_string());
    }
    (Thresholds::with(given), sources)
}

/// Colour on stdout only for a terminal, and never under `NO_COLOR`.
fn stdout_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// Find the side's measure nodes and read their events and manifests.
fn resolve(label: &str, path: &Path, store_arg: Option<&Path>) -> Result<Side, CliError> {
    if !path.exists() {
        return Err(CliError::usage(format!(
            "{label} {}: No such file or directory",
            path.display()
        )));
    }
    let (kind, file) = if path.is_dir() {
        let report = path.join("report.json");
        if !report.is_file() {
            return Err(CliError::usage(format!(
                "{label} {}: a folder without report.json (give a report.json, a spec or a lockfile)",
                path.display()
            )));
        }
        (InputKind::Report, report)
    } else {
        let kind = match path.extension().and_then(|e| e.to_str()) {
            Some("lock") => InputKind::Lockfile,
            Some("json") => InputKind::Report,
            _ => InputKind::Spec,
        };
        (kind, path.to_path_buf())
    };
    // Bad input (a malformed lockfile or report, no lockfile) is reported
    // before the store is looked for: it is the user's file that is wrong.
    let beside = |p: &Path| p.parent().unwrap_or(Path::new("")).join(".assay");
    let (lock_or_report, report, default_store) = match kind {
        InputKind::Lockfile => (file.clone(), None, Some(beside(&file))),
        InputKind::Spec => (Lockfile::path_for(&file), None, Some(beside(&file))),
        InputKind::Report => (file.clone(), Some(read_report(label, &file)?), None),
    };
    // A spec's own regression policy; a program declares none (its
    // members' specs are compared through their lockfiles).
    let declared = match kind {
        InputKind::Spec => match load_target_for(&file, Purpose::Read)? {
            Target::Spec(spec) => spec.spec.compare.map(|c| c.thresholds),
            Target::Program(_) => None,
        },
        _ => None,
    };
    let lock_refs = match kind {
        InputKind::Report => None,
        _ => Some(lockfile_refs(label, path, &lock_or_report)?),
    };
    let store_dir = match (store_arg, default_store) {
        (Some(dir), _) => dir.to_path_buf(),
        (None, Some(dir)) => dir,
        (None, None) => find_store(&file).ok_or_else(|| {
            CliError::failed(format!(
                "{label} {}: no store found (no .assay/ in its folder or above); pass --store or --{}-store",
                file.display(),
                label.to_lowercase()
            ))
        })?,
    };
    let store = open_store(label, path, &store_dir)?;
    let refs = match (lock_refs, &report) {
        (Some(refs), _) => refs,
        (None, Some(report)) => report_refs(report, &store)?,
        (None, None) => Vec::new(),
    };
    if refs.is_empty() {
        return Err(CliError::usage(format!(
            "{label} {}: names no measure node, so there is nothing to compare",
            lock_or_report.display()
        )));
    }
    let cells = read_cells(label, path, &store, &refs)?;
    Ok(Side {
        declared,
        info: SideInfo {
            input: path.display().to_string(),
            kind,
            store: store_dir.display().to_string(),
            nodes: cells.len(),
        },
        cells,
    })
}

/// The nearest `.assay/` store in the report's folder or above it: a
/// report is written into `outputs.dir` below its spec's folder, and the
/// store sits beside the spec.
fn find_store(report: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(report).ok()?;
    absolute
        .ancestors()
        .skip(1)
        .map(|dir| dir.join(".assay"))
        .find(|store| store.join("objects").is_dir())
}

fn open_store(label: &str, input: &Path, dir: &Path) -> Result<Store, CliError> {
    Store::open_existing(dir)
        .map_err(|e| CliError::failed(format!("{label} {}: {e}", input.display())))
}

fn lockfile_refs(label: &str, input: &Path, lock_path: &Path) -> Result<Vec<MeasureRef>, CliError> {
    let lock = match Lockfile::read(lock_path) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            return Err(CliError::usage(format!(
                "{label} {}: no lockfile {}; run the spec first",
                input.display(),
                lock_path.display()
            )));
        }
        // A file that is not a lockfile is bad input, like a bad spec.
        Err(e @ StoreError::Malformed { .. }) => {
            return Err(CliError::usage(format!("{label} {e}")));
        }
        Err(e) => return Err(CliError::failed(format!("{label} {e}"))),
    };
    Ok(lock
        .nodes
        .into_iter()
        .filter(|(id, entry)| entry.stage == "measure" || id.starts_with(MEASURE_PREFIX))
        .map(|(node, entry)| MeasureRef {
            node,
            events: entry.outputs.get(EVENTS).copied(),
            manifest: entry.outputs.get(MANIFEST).copied(),
            unlocated: None,
        })
        .collect())
}

fn read_report(label: &str, path: &Path) -> Result<ReportJson, CliError> {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::usage(format!("{label} {}: {e}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        CliError::usage(format!(
            "{label} {}: not a valid report.json: {e}",
            path.display()
        ))
    })
}

/// A report names its measure nodes in `artifacts` (their manifests are
/// report inputs) with their keys; each node's record holds its `events`.
/// Where a measure node's record is gone, the records of the report's other
/// producers (validate, summarise) still name its events among their inputs.
fn report_refs(report: &ReportJson, store: &Store) -> Result<Vec<MeasureRef>, CliError> {
    let mut keys: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut manifests: BTreeMap<&str, &str> = BTreeMap::new();
    for a in &report.artifacts {
        keys.entry(a.node.as_str())
            .or_default()
            .push(a.key.as_str());
        if a.node.starts_with(MEASURE_PREFIX) && a.name == MANIFEST {
            manifests.insert(a.node.as_str(), a.digest.as_str());
        }
    }
    let parse = |what: &str, hex: &str| {
        hex.parse::<Digest>()
            .map_err(|_| CliError::usage(format!("report.json: {what} {hex:?} is not a digest")))
    };
    // Every producer's record, once, for the fallback.
    let mut records: BTreeMap<String, Option<NodeRecord>> = BTreeMap::new();
    for list in keys.values() {
        for key in list {
            if !records.contains_key(*key) {
                let record = store.get_node(&parse("key", key)?)?;
                records.insert((*key).to_string(), record);
            }
        }
    }
    let mut refs = Vec::new();
    for (node, list) in keys.iter().filter(|(n, _)| n.starts_with(MEASURE_PREFIX)) {
        let own = list
            .iter()
            .find_map(|k| records.get(*k).and_then(Option::as_ref));
        let from_inputs = |name: &str| {
            records
                .values()
                .flatten()
                .flat_map(|r| &r.inputs)
                .find(|i| i.node == *node && i.name == name)
                .map(|i| i.digest)
        };
        let events = own
            .and_then(|r| r.outputs.get(EVENTS).copied())
            .or_else(|| from_inputs(EVENTS));
        let manifest = match manifests.get(node) {
            Some(hex) => Some(parse("manifest digest", hex)?),
            None => own
                .and_then(|r| r.outputs.get(MANIFEST).copied())
                .or_else(|| from_inputs(MANIFEST)),
        };
        let unlocated = (own.is_none() && events.is_none()).then(|| {
            format!(
                "node record {} of {node} (its events cannot be located)",
                list.first().copied().unwrap_or_default()
            )
        });
        refs.push(MeasureRef {
            node: (*node).to_string(),
            events,
            manifest,
            unlocated,
        });
    }
    Ok(refs)
}

/// Read every cell's events and manifest; every missing object is named
/// in one error, not just the first.
fn read_cells(
    label: &str,
    input: &Path,
    store: &Store,
    refs: &[MeasureRef],
) -> Result<Vec<CellInput>, CliError> {
    let mut missing = Vec::new();
    let mut cells = Vec::new();
    for r in refs {
        if let Some(what) = &r.unlocated {
            missing.push(what.clone());
            continue;
        }
        let mut get = |name: &str, digest: Option<Digest>| -> Result<Option<Vec<u8>>, CliError> {
            let Some(digest) = digest else {
                missing.push(format!("{name} of {} (no such output recorded)", r.node));
                return Ok(None);
            };
            match store.get(&digest) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(StoreError::MissingObject { .. }) => {
                    missing.push(format!("{name} of {} ({digest})", r.node));
                    Ok(None)
                }
                Err(e) => Err(e.into()),
            }
        };
        let events = get(EVENTS, r.events)?;
        let manifest = get(MANIFEST, r.manifest)?;
        let (Some(events), Some(manifest), Some(digest)) = (events, manifest, r.events) else {
            continue;
        };
        let manifest: Value = serde_json::from_slice(&manifest)
            .map_err(|e| CliError::failed(format!("{label}: manifest of {}: {e}", r.node)))?;
        let events = EventColumns::from_parquet(events, false)
            .map_err(|e| CliError::failed(format!("{label}: events of {}: {e}", r.node)))?;
        cells.push(CellInput {
            node: r.node.clone(),
            events_digest: digest.to_hex(),
            manifest,
            events,
        });
    }
    if !missing.is_empty() {
        return Err(CliError::failed(format!(
            "{label} {}: {} missing from the store {}:\n  {}",
            input.display(),
            if missing.len() == 1 {
                "1 object is".to_string()
            } else {
                format!("{} objects are", missing.len())
            },
            store.root().display(),
            missing.join("\n  ")
        )));
    }
    Ok(cells)
}

fn ms(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "-".into()
    }
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{x:+.1}%")
    } else {
        "-".into()
    }
}

fn ci(lo: f64, hi: f64) -> String {
    if lo.is_finite() && hi.is_finite() {
        format!("[{lo:.3}, {hi:.3}]")
    } else {
        "[n/a: <2 runs]".into()
    }
}

/// What a phase was judged on and the outcome, e.g. `regression:
/// throughput -20.0% (threshold 10%)`.
fn judged(p: &PhaseDelta) -> String {
    let (Some(t), Some(v)) = (p.threshold_pct, p.verdict) else {
        return "not judged".into();
    };
    let what = match &p.throughput {
        Some(tp) => format!("throughput {}", pct((tp.ratio - 1.0) * 100.0)),
        None => format!("latency {}", pct(p.delta_pct)),
    };
    format!("{}: {what} (threshold {t}%)", v.as_str())
}

fn thresholds_line(c: &Comparison, sources: &BTreeMap<String, String>) -> String {
    c.thresholds
        .iter()
        .map(|(phase, t)| {
            let by = if phase == "decode" {
                "throughput down"
            } else {
                "latency up"
            };
            let from = sources.get(phase).map_or("default", String::as_str);
            format!("{phase} {by} >{t}% ({from})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn summary_line(c: &Comparison) -> String {
    let s = &c.summary;
    format!(
        "{} cells: {} regression, {} improvement, {} no change, {} not comparable",
        s.cells, s.regression, s.improvement, s.no_change, s.not_comparable
    )
}

fn side_line(name: &str, s: &SideInfo) -> String {
    let kind = match s.kind {
        InputKind::Report => "report.json",
        InputKind::Spec => "spec",
        InputKind::Lockfile => "lockfile",
    };
    format!(
        "{name:<4} {} ({kind}, {} measure nodes, store {})",
        s.input, s.nodes, s.store
    )
}

fn paint(verdict: Verdict, color: bool) -> String {
    let code = match verdict {
        Verdict::Regression => "31;1",
        Verdict::Improvement => "32",
        Verdict::NoChange => "",
        Verdict::NotComparable => "33",
    };
    if color && !code.is_empty() {
        format!("\x1b[{code}m{}\x1b[0m", verdict.as_str())
    } else {
        verdict.as_str().to_string()
    }
}

fn cell_heading(c: &CellComparison, color: bool) -> String {
    let mut line = format!("{}: {}", c.cell, paint(c.verdict, color));
    if !c.notes.is_empty() {
        line.push_str(&format!(" ({})", c.notes.join("; ")));
    }
    line
}

/// The readable form: one block per cell, one line per phase.
fn table(
    base: &SideInfo,
    new: &SideInfo,
    c: &Comparison,
    sources: &BTreeMap<String, String>,
    color: bool,
) -> String {
    let mut s = String::new();
    s.push_str(&side_line("BASE", base));
    s.push('\n');
    s.push_str(&side_line("NEW", new));
    s.push('\n');
    s.push_str(&format!(
        "rule: a regression is a slowdown above the threshold with the 95% CI of the ratio (bootstrap over runs, {} resamples) wholly on the slow side of 1; thresholds: {}\n",
        c.resamples,
        thresholds_line(c, sources)
    ));
    for cell in &c.cells {
        s.push('\n');
        s.push_str(&cell_heading(cell, color));
        s.push('\n');
        for r in &cell.reasons {
            s.push_str(&format!("  {}: {}\n", reason_name(r.kind), r.detail));
        }
        if cell.phases.is_empty() {
            continue;
        }
        s.push_str(&format!(
            "  {:<8} {:>10} {:>10} {:>8} {:>7}  {:<18}  {}\n",
            "phase", "base ms", "new ms", "change", "ratio", "95% CI", "verdict"
        ));
        for p in &cell.phases {
            s.push_str(&format!(
                "  {:<8} {:>10} {:>10} {:>8} {:>7.3}  {:<18}  {}\n",
                p.phase,
                ms(p.base_median_ms),
                ms(p.new_median_ms),
                pct(p.delta_pct),
                p.ratio,
                ci(p.ratio_ci_low, p.ratio_ci_high),
                judged(p)
            ));
        }
    }
    s.push_str(&format!("\nsummary: {}\n", summary_line(c)));
    s
}

fn reason_name(kind: ReasonKind) -> &'static str {
    use ReasonKind as K;
    match kind {
        K::OnlyInBase => "only in BASE",
        K::OnlyInNew => "only in NEW",
        K::Boundary => "different boundary",
        K::Scenario => "different scenario",
        K::Model => "different model",
        K::BackendVersion => "different backend version",
        K::Evidence => "different evidence",
    }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Markdown for a CI comment: a headline, one table row per phase of a
/// comparable cell, the reasons of the cells that are not.
fn markdown(
    base: &SideInfo,
    new: &SideInfo,
    c: &Comparison,
    sources: &BTreeMap<String, String>,
) -> String {
    let s = &c.summary;
    let headline = if s.regression > 0 {
        format!(
            "{} regression{}",
            s.regression,
            if s.regression == 1 { "" } else { "s" }
        )
    } else {
        "no regression".into()
    };
    let mut m = format!("## assay compare: {headline}\n\n");
    m.push_str(&format!(
        "BASE `{}` ({} measure nodes) vs NEW `{}` ({} measure nodes). Thresholds: {}; a regression also needs the 95% CI of the ratio wholly on the slow side of 1.\n\n",
        md_escape(&base.input),
        base.nodes,
        md_escape(&new.input),
        new.nodes,
        thresholds_line(c, sources)
    ));
    m.push_str(
        "| cell | verdict | phase | base ms | new ms | change | ratio [95% CI] | judged |\n",
    );
    m.push_str("| --- | --- | --- | ---: | ---: | ---: | --- | --- |\n");
    for cell in c.cells.iter().filter(|c| !c.phases.is_empty()) {
        for (i, p) in cell.phases.iter().enumerate() {
            let (name, verdict) = if i == 0 {
                let v = match cell.verdict {
                    Verdict::Regression => "**regression**".to_string(),
                    v => v.as_str().to_string(),
                };
                (format!("`{}`", md_escape(&cell.cell)), v)
            } else {
                (String::new(), String::new())
            };
            m.push_str(&format!(
                "| {name} | {verdict} | {} | {} | {} | {} | {:.3} {} | {} |\n",
                p.phase,
                ms(p.base_median_ms),
                ms(p.new_median_ms),
                pct(p.delta_pct),
                p.ratio,
                ci(p.ratio_ci_low, p.ratio_ci_high),
                md_escape(&judged(p))
            ));
        }
    }
    let incomparable: Vec<&CellComparison> = c
        .cells
        .iter()
        .filter(|c| c.verdict == Verdict::NotComparable)
        .collect();
    if !incomparable.is_empty() {
        m.push_str("\nNot comparable:\n\n");
        for cell in incomparable {
            let reasons: Vec<String> = cell
                .reasons
                .iter()
                .map(|r| format!("{} ({})", reason_name(r.kind), md_escape(&r.detail)))
                .collect();
            m.push_str(&format!(
                "- `{}`: {}\n",
                md_escape(&cell.cell),
                reasons.join("; ")
            ));
        }
    }
    m.push_str(&format!("\n**Summary:** {}\n", summary_line(c)));
    m
}
