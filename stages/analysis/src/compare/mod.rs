//! compare: baselines and regression verdicts (seed Appendix Y.3). Two sets
//! of measure nodes, BASE and NEW, matched by cell (backend name, model,
//! scenario); per phase the delta of the steady-state medians and a
//! bootstrap CI of their ratio; per cell a verdict.
//!
//! Pure: it takes each cell's manifest (as JSON) and event columns and
//! returns a [`Comparison`]. Finding the measure nodes of a lockfile, a
//! spec or a report.json and reading them from a store is the `assay
//! compare` command's business (`engine/src/commands/compare.rs`).
//!
//! The rule (docs/formulas.md, "compare"): a phase with a threshold `t`
//! (percent) has a *slowdown*, decode's `1 - throughput ratio`, every other
//! phase's `latency ratio - 1`. It is a regression when the slowdown
//! exceeds `t` AND the 95% interval of the ratio lies wholly on the slow
//! side of 1 (no change); an improvement when the slowdown is below `-t`
//! and the interval lies wholly on the fast side; else no change. The
//! interval is what keeps noise from being called a regression: two runs of
//! the same spec have medians a few percent apart and intervals that hold 1.

mod bootstrap;

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use assay_core::tables::{EventColumns, Phase};

pub use bootstrap::{PhaseRuns, ratio_of_medians_ci, steady_runs};

/// Version of the rule and the output's shape; part of every seed.
pub const COMPARE_VERSION: u32 = 1;

/// Bootstrap resamples of each ratio's interval.
pub const RESAMPLES: u32 = 2000;

/// The phases compared, in report order. Load is left out: it is one event
/// per cell, timed outside the runs, and no steady state.
pub const PHASES: [Phase; 4] = [Phase::Prefill, Phase::Ttft, Phase::Decode, Phase::E2e];

/// The seed's default (Appendix Y.3): decode throughput down by more than
/// 10% is a regression. Other phases are judged only when a threshold is
/// given for them.
pub const DEFAULT_DECODE_THRESHOLD_PCT: f64 = 10.0;

/// Slowdown thresholds in percent, by phase name (`decode`, `ttft`, ...).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Thresholds(BTreeMap<String, f64>);

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds(BTreeMap::from([(
            Phase::Decode.name().to_string(),
            DEFAULT_DECODE_THRESHOLD_PCT,
        )]))
    }
}

impl Thresholds {
    /// Parse `PHASE=PCT` (`decode=10`, `ttft=20`).
    pub fn parse_one(text: &str) -> Result<(Phase, f64), String> {
        let Some((name, pct)) = text.split_once('=') else {
            return Err(format!(
                "threshold {text:?} is not PHASE=PCT (e.g. decode=10)"
            ));
        };
        let phase = Phase::from_name(name.trim());
        if !PHASES.contains(&phase) {
            return Err(format!(
                "threshold {text:?}: unknown phase {:?} (one of prefill, ttft, decode, e2e)",
                name.trim()
            ));
        }
        let pct: f64 = pct
            .trim()
            .parse()
            .map_err(|_| format!("threshold {text:?}: {:?} is not a number", pct.trim()))?;
        Self::check_pct(phase, pct).map_err(|e| format!("threshold {text:?}: {e}"))?;
        Ok((phase, pct))
    }

    /// A slowdown threshold in percent is above 0; decode's, a fall of
    /// throughput, is also below 100 (any latency can grow).
    pub fn check_pct(phase: Phase, pct: f64) -> Result<(), String> {
        let max = if phase == Phase::Decode {
            100.0
        } else {
            f64::MAX
        };
        if pct.is_finite() && pct > 0.0 && pct < max {
            Ok(())
        } else {
            Err(format!(
                "the percentage must be above 0{}",
                if phase == Phase::Decode {
                    " and below 100"
                } else {
                    ""
                }
            ))
        }
    }

    /// The default thresholds with `overrides` applied in order (a later
    /// one for the same phase wins).
    pub fn with(overrides: impl IntoIterator<Item = (Phase, f64)>) -> Self {
        let mut t = Thresholds::default();
        for (phase, pct) in overrides {
            t.0.insert(phase.name().to_string(), pct);
        }
        t
    }

    pub fn get(&self, phase: Phase) -> Option<f64> {
        self.0.get(phase.name()).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

/// The regression policy a spec declares (spec `compare:`), applied by
/// `assay compare` when a side is that spec; `--threshold` on the command
/// line overrides it phase by phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompareParams {
    /// Slowdown thresholds in percent per phase (decode by throughput, the
    /// others by latency). Phases left out keep the defaults: decode 10
    /// (Appendix Y.3), the others unjudged.
    #[serde(default)]
    pub thresholds: PhaseThresholds,
}

/// A threshold per compared phase, in percent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhaseThresholds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft: Option<f64>,
    /// Decode throughput down by more than this is a regression (0-100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e: Option<f64>,
}

impl PhaseThresholds {
    /// The thresholds given, in [`PHASES`] order.
    pub fn given(&self) -> Vec<(Phase, f64)> {
        PHASES
            .iter()
            .zip([self.prefill, self.ttft, self.decode, self.e2e])
            .filter_map(|(phase, pct)| pct.map(|pct| (*phase, pct)))
            .collect()
    }
}

/// One measure node of a side, as read from the store.
#[derive(Debug, Clone)]
pub struct CellInput {
    /// Plan node id, `measure/<backend>/<model>/<scenario>`.
    pub node: String,
    /// Digest (hex) of its `events` artifact: seeds the bootstrap.
    pub events_digest: String,
    /// Its `manifest` artifact, as JSON: read field by field, so a manifest
    /// written by another assay version with fields added still compares.
    pub manifest: Value,
    pub events: EventColumns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Regression,
    Improvement,
    NoChange,
    NotComparable,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Regression => "regression",
            Verdict::Improvement => "improvement",
            Verdict::NoChange => "no_change",
            Verdict::NotComparable => "not_comparable",
        }
    }
}

/// Why a cell is not comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonKind {
    /// The cell was measured on the BASE side only.
    OnlyInBase,
    /// The cell was measured on the NEW side only.
    OnlyInNew,
    /// Different boundary (warmup runs, repetitions, decode mode, ...):
    /// numbers from different boundaries are never compared (AP.2).
    Boundary,
    /// Same scenario name, different shape (prompt, batch, generation).
    Scenario,
    /// Different weights (model digest) or, where no weights ran
    /// (simulated), a different architecture.
    Model,
    /// A different backend kind, library or library version.
    BackendVersion,
    /// Measured on one side, simulated on the other.
    Evidence,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub kind: ReasonKind,
    /// What differs, `field BASE -> NEW`.
    pub detail: String,
}

/// Decode's throughput beside its latency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Throughput {
    pub base_tokens_per_s: f64,
    pub new_tokens_per_s: f64,
    /// NEW / BASE tokens/s.
    pub ratio: f64,
    pub ratio_ci_low: f64,
    pub ratio_ci_high: f64,
}

/// One phase of a comparable cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseDelta {
    pub phase: &'static str,
    /// Steady runs and events on each side.
    pub base_runs: usize,
    pub new_runs: usize,
    pub base_n: usize,
    pub new_n: usize,
    pub base_median_ms: f64,
    pub new_median_ms: f64,
    /// NEW - BASE median.
    pub delta_ms: f64,
    /// `delta_ms / base_median_ms * 100`.
    pub delta_pct: f64,
    /// NEW / BASE median latency, and its 95% percentile-bootstrap interval
    /// (NaN, shown as null, with fewer than two runs on a side).
    pub ratio: f64,
    pub ratio_ci_low: f64,
    pub ratio_ci_high: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput: Option<Throughput>,
    /// Percent slower (positive) or faster (negative): decode by
    /// throughput, other phases by median latency.
    pub slowdown_pct: f64,
    /// The threshold this phase is judged by; None: reported, not judged.
    pub threshold_pct: Option<f64>,
    pub verdict: Option<Verdict>,
}

/// What a cell was on one side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellRef {
    pub node: String,
    pub events: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellComparison {
    /// `backend/model/scenario`.
    pub cell: String,
    pub backend: String,
    pub model: String,
    pub scenario: String,
    pub verdict: Verdict,
    /// Why the cell is not comparable (empty otherwise).
    pub reasons: Vec<Reason>,
    /// Differences that do not stop the comparison but explain it (threads,
    /// dtype, device, CPU, assay version), `field BASE -> NEW`.
    pub notes: Vec<String>,
    pub base: Option<CellRef>,
    pub new: Option<CellRef>,
    /// Empty for a cell that is not comparable: its numbers are not set
    /// side by side.
    pub phases: Vec<PhaseDelta>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub cells: usize,
    pub regression: usize,
    pub improvement: usize,
    pub no_change: usize,
    pub not_comparable: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub thresholds: Thresholds,
    pub resamples: u32,
    pub level: f64,
    pub cells: Vec<CellComparison>,
    pub summary: Summary,
}

impl Comparison {
    pub fn has_regression(&self) -> bool {
        self.summary.regression > 0
    }
}

/// The (backend, model, scenario) a measure node measured: from its
/// manifest, else from its node id.
fn cell_key(input: &CellInput) -> (String, String, String) {
    let m = &input.manifest;
    let text = |v: &Value| v.as_str().map(str::to_string);
    let mut parts = input.node.splitn(4, '/').skip(1).map(str::to_string);
    let (b, mo, s) = (parts.next(), parts.next(), parts.next());
    (
        text(&m["backend"]).or(b).unwrap_or_default(),
        text(&m["model"]).or(mo).unwrap_or_default(),
        text(&m["scenario"]["name"]).or(s).unwrap_or_default(),
    )
}

/// Compare two sides: every cell of either, sorted by (backend, model,
/// scenario). A cell that appears twice on one side (two nodes measuring
/// the same cell) keeps the first by node id.
pub fn compare(base: &[CellInput], new: &[CellInput], thresholds: &Thresholds) -> Comparison {
    type Pair<'a> = (Option<&'a CellInput>, Option<&'a CellInput>);
    let mut cells: BTreeMap<(String, String, String), Pair<'_>> = BTreeMap::new();
    let mut sorted_base: Vec<&CellInput> = base.iter().collect();
    sorted_base.sort_by(|a, b| a.node.cmp(&b.node));
    let mut sorted_new: Vec<&CellInput> = new.iter().collect();
    sorted_new.sort_by(|a, b| a.node.cmp(&b.node));
    for c in sorted_base {
        let slot = cells.entry(cell_key(c)).or_default();
        slot.0 = slot.0.or(Some(c));
    }
    for c in sorted_new {
        let slot = cells.entry(cell_key(c)).or_default();
        slot.1 = slot.1.or(Some(c));
    }
    let cells: Vec<CellComparison> = cells
        .into_iter()
        .map(|(key, (b, n))| compare_cell(key, b, n, thresholds))
        .collect();
    let mut summary = Summary {
        cells: cells.len(),
        ..Summary::default()
    };
    for c in &cells {
        match c.verdict {
            Verdict::Regression => summary.regression += 1,
            Verdict::Improvement => summary.improvement += 1,
            Verdict::NoChange => summary.no_change += 1,
            Verdict::NotComparable => summary.not_comparable += 1,
        }
    }
    Comparison {
        thresholds: thresholds.clone(),
        resamples: RESAMPLES,
        level: 0.95,
        cells,
        summary,
    }
}

fn compare_cell(
    (backend, model, scenario): (String, String, String),
    base: Option<&CellInput>,
    new: Option<&CellInput>,
    thresholds: &Thresholds,
) -> CellComparison {
    let cell_ref = |c: &CellInput| CellRef {
        node: c.node.clone(),
        events: c.events_digest.clone(),
    };
    let mut out = CellComparison {
        cell: format!("{backend}/{model}/{scenario}"),
        backend,
        model,
        scenario,
        verdict: Verdict::NotComparable,
        reasons: Vec::new(),
        notes: Vec::new(),
        base: base.map(cell_ref),
        new: new.map(cell_ref),
        phases: Vec::new(),
    };
    let (b, n) = match (base, new) {
        (Some(b), Some(n)) => (b, n),
        (Some(_), None) => {
            out.reasons.push(Reason {
                kind: ReasonKind::OnlyInBase,
                detail: "no such cell in NEW".into(),
            });
            return out;
        }
        (None, _) => {
            out.reasons.push(Reason {
                kind: ReasonKind::OnlyInNew,
                detail: "no such cell in BASE".into(),
            });
            return out;
        }
    };
    out.reasons = comparability(&b.manifest, &n.manifest);
    out.notes = notes(&b.manifest, &n.manifest);
    if !out.reasons.is_empty() {
        return out;
    }
    let (base_runs, new_runs) = (steady_runs(&b.events), steady_runs(&n.events));
    for phase in PHASES {
        let (Some(br), Some(nr)) = (base_runs.get(&phase), new_runs.get(&phase)) else {
            continue;
        };
        if br.runs.is_empty() || nr.runs.is_empty() {
            continue;
        }
        let seed = stream_seed(&b.events_digest, &n.events_digest, phase);
        out.phases
            .push(phase_delta(phase, br, nr, thresholds.get(phase), seed));
    }
    let judged: Vec<Verdict> = out.phases.iter().filter_map(|p| p.verdict).collect();
    out.verdict = if judged.contains(&Verdict::Regression) {
        Verdict::Regression
    } else if judged.contains(&Verdict::Improvement) {
        Verdict::Improvement
    } else {
        if judged.is_empty() {
            out.notes
                .push("no phase with a threshold has steady samples on both sides".into());
        }
        Verdict::NoChange
    };
    out
}

/// One RNG stream per (BASE events, NEW events, phase): the interval is a
/// function of the data alone, the same on every run, in any cell order
/// and at any thread count.
fn stream_seed(base: &str, new: &str, phase: Phase) -> u64 {
    let text = format!(
        "assay/compare/v{COMPARE_VERSION}\0{base}\0{new}\0{}",
        phase.name()
    );
    let hash = blake3::hash(text.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(bytes)
}

fn phase_delta(
    phase: Phase,
    base: &PhaseRuns,
    new: &PhaseRuns,
    threshold: Option<f64>,
    seed: u64,
) -> PhaseDelta {
    let (bm, nm) = (base.median(), new.median());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (lo, hi) = ratio_of_medians_ci(&base.runs, &new.runs, RESAMPLES, &mut rng);
    let ratio = nm / bm;
    // Throughput is tokens per event over the median event time, as in
    // summarise; its ratio's interval is the latency interval turned over.
    let throughput = (phase == Phase::Decode
        && bm > 0.0
        && nm > 0.0
        && base.tokens_per_event > 0.0
        && new.tokens_per_event > 0.0)
        .then(|| {
            let per_token = new.tokens_per_event / base.tokens_per_event;
            Throughput {
                base_tokens_per_s: base.tokens_per_event / (bm / 1000.0),
                new_tokens_per_s: new.tokens_per_event / (nm / 1000.0),
                ratio: per_token / ratio,
                ratio_ci_low: per_token / hi,
                ratio_ci_high: per_token / lo,
            }
        });
    // Slowdown and the slow side of the interval, in one direction for all
    // phases: decode judged by throughput (down is slower), the rest by
    // latency (up is slower).
    let (slowdown_pct, slow_lo, slow_hi) = match &throughput {
        Some(t) => (
            (1.0 - t.ratio) * 100.0,
            1.0 - t.ratio_ci_high,
            1.0 - t.ratio_ci_low,
        ),
        None => ((ratio - 1.0) * 100.0, lo - 1.0, hi - 1.0),
    };
    let verdict = threshold.map(|t| judge(slowdown_pct, slow_lo, slow_hi, t));
    PhaseDelta {
        phase: phase.name(),
        base_runs: base.runs.len(),
        new_runs: new.runs.len(),
        base_n: base.n(),
        new_n: new.n(),
        base_median_ms: bm,
        new_median_ms: nm,
        delta_ms: nm - bm,
        delta_pct: (nm - bm) / bm * 100.0,
        ratio,
        ratio_ci_low: lo,
        ratio_ci_high: hi,
        throughput,
        slowdown_pct,
        threshold_pct: threshold,
        verdict,
    }
}

/// The rule. `slowdown_pct` is the point estimate; `[slow_lo, slow_hi]` the
/// interval of the slowdown as a fraction (0 = no change). A NaN interval
/// (fewer than two runs) excludes nothing, so it never gives a verdict
/// other than no change.
pub fn judge(slowdown_pct: f64, slow_lo: f64, slow_hi: f64, threshold_pct: f64) -> Verdict {
    if slowdown_pct > threshold_pct && slow_lo > 0.0 {
        Verdict::Regression
    } else if slowdown_pct < -threshold_pct && slow_hi < 0.0 {
        Verdict::Improvement
    } else {
        Verdict::NoChange
    }
}

/// Why two manifests of one cell cannot be compared; empty when they can.
fn comparability(base: &Value, new: &Value) -> Vec<Reason> {
    let mut reasons = Vec::new();
    let mut add = |kind, diffs: Vec<String>| {
        if !diffs.is_empty() {
            reasons.push(Reason {
                kind,
                detail: diffs.join(", "),
            });
        }
    };
    add(
        ReasonKind::Boundary,
        diff("boundary", &base["boundary"], &new["boundary"]),
    );
    let shape = |m: &Value| {
        let mut s = m["scenario"].clone();
        if let Some(o) = s.as_object_mut() {
            o.remove("name");
        }
        s
    };
    add(
        ReasonKind::Scenario,
        diff("scenario", &shape(base), &shape(new)),
    );
    // Weights by digest where weights ran; a simulated cell has none, and
    // its architecture is what its latency model reads.
    let digest = |m: &Value| m["weights"]["model_digest"].clone();
    let model = if digest(base).is_null() && digest(new).is_null() {
        diff("model_info", &base["model_info"], &new["model_info"])
    } else {
        diff("model digest", &short(&digest(base)), &short(&digest(new)))
    };
    add(ReasonKind::Model, model);
    let mut backend = diff(
        "backend kind",
        &base["requested"]["kind"],
        &new["requested"]["kind"],
    );
    backend.extend(diff(
        "library",
        &base["actual"]["library"],
        &new["actual"]["library"],
    ));
    backend.extend(diff(
        "library_version",
        &base["actual"]["library_version"],
        &new["actual"]["library_version"],
    ));
    backend.extend(diff(
        "libraries",
        &base["environment"]["libraries"],
        &new["environment"]["libraries"],
    ));
    add(ReasonKind::BackendVersion, backend);
    add(
        ReasonKind::Evidence,
        diff("evidence", &base["evidence"], &new["evidence"]),
    );
    reasons
}

/// A digest cut to 12 hex digits for a readable reason.
fn short(v: &Value) -> Value {
    match v.as_str() {
        Some(s) => Value::String(s.chars().take(12).collect()),
        None => v.clone(),
    }
}

/// What changed without making the cell incomparable: the configuration
/// under test (threads, dtype, device) and the machine and build.
fn notes(base: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (name, pointer) in [
        ("threads", "/actual/threads"),
        ("dtype", "/actual/dtype"),
        ("device", "/actual/device"),
        ("cpu", "/environment/cpu_model"),
        ("cores", "/environment/logical_cores"),
        ("assay", "/assay_version"),
    ] {
        let (b, n) = (
            base.pointer(pointer).unwrap_or(&Value::Null),
            new.pointer(pointer).unwrap_or(&Value::Null),
        );
        out.extend(diff(name, b, n));
    }
    out
}

/// Field-by-field differences of two JSON values as `path BASE -> NEW`,
/// recursing into objects (keys sorted, as serde_json keeps them).
fn diff(path: &str, a: &Value, b: &Value) -> Vec<String> {
    if a == b {
        return Vec::new();
    }
    if let (Value::Object(x), Value::Object(y)) = (a, b) {
        let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
        keys.sort();
        keys.dedup();
        return keys
            .into_iter()
            .flat_map(|k| {
                let null = Value::Null;
                diff(
                    &format!("{path}.{k}"),
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                )
            })
            .collect();
    }
    vec![format!("{path} {} -> {}", show(a), show(b))]
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "(none)".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
