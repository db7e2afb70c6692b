//! assay-report: the last stage. Depends on every other stage crate.
//!
//! report: `report.md`, `report.html` and `report.json`. Every number in
//! report.json is a claim with an id and the digest and rows of the artifact
//! it came from. The three formats render one document model, so they never
//! disagree. All floats are formatted with fixed precision: the bytes depend
//! on the inputs only.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::collections::BTreeMap;

use assay_analysis::cost::CostParams;
use assay_analysis::decide::WorkloadClass;
use assay_analysis::validate::{self, Checks};
use assay_analysis::{cost as cost_stage, fit as fit_stage, summarise};
use assay_core::domain::Evidence;
use assay_core::inputs::find_input;
use assay_core::stage::{Input, Outputs, Stage, StageContext, StageError};
use assay_core::tables::{self, CostRow, FitRow, SummaryRow, ValidationRow};
use assay_measure::energy::EnergyParams;
use assay_measure::{Boundary, Manifest, Scenario};

mod audit;
pub mod backing;
mod cost;
mod decisions;
mod document;
mod energy;
mod figures;
mod imported;
mod intro;
mod limits;
pub mod plots;
pub mod program;
mod quality;
mod results;
mod scaling;
mod serving;
mod summary;
mod validation;

use document::{Block, render_html, render_markdown};

// 5 (issue 15): the quality section (cost per successful outcome); the
// summary first; spec-derived claims; the HTML's sidebar, sortable tables
// and hover values; decisions per model (AN.1 with AL.2's TTFT, the models
// side by side), AN.2 from eager-vs-compiled pairs, AN.3 against SLOs.
// 6: the built-in evaluation's success rates per backend and acceptance set
// results; a recommendation without a runner-up says that no other backend
// was measured in every scenario of the class.
pub const REPORT_VERSION: u32 = 6;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Md,
    Html,
    Json,
}

impl Format {
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Md => "report.md",
            Format::Html => "report.html",
            Format::Json => "report.json",
        }
    }
}

/// What the report stage needs from the spec besides its inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportParams {
    pub spec_id: String,
    pub title: String,
    pub question: String,
    pub decision: String,
    pub boundary: Boundary,
    pub scenarios: Vec<Scenario>,
    pub cost: Option<CostParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<EnergyParams>,
    /// Scenarios per workload class for the decision trees, overriding the
    /// default class shapes for the classes listed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workloads: BTreeMap<WorkloadClass, Vec<String>>,
    /// The spec's in-process SLOs: AN.3 compares a cold-start delta with
    /// each scenario's budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<assay_analysis::validate::slo::SloParams>,
}

#[derive(Debug, Clone)]
pub struct ReportStage {
    pub params: ReportParams,
}

/// Where a claim's number came from: an artifact's rows, or a field of the
/// spec (node and artifact `spec`, `field` the field's path, e.g.
/// `cost.tokens_per_month`, and key and digest the digest of that field's
/// value, see `spec_source`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClaimSource {
    /// Plan node that produced the artifact (`spec` for a spec input).
    pub node: String,
    /// That node's key (blake3 of its stage, version, params and inputs);
    /// for a spec input, the digest of the field's value.
    pub key: String,
    /// Output name of the artifact at that node.
    pub artifact: String,
    pub digest: String,
    /// 0-based row indices in the artifact table.
    pub rows: Vec<u32>,
    /// The spec field the number is (or is derived from), for a spec
    /// input; absent for artifact rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `ClaimSource::node` and `artifact` of a number taken from the spec.
pub const SPEC_SOURCE: &str = "spec";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Claim {
    pub id: String,
    pub statement: String,
    pub value: f64,
    pub unit: String,
    /// `measured` or `simulated` (never evidence).
    pub evidence: String,
    pub source: ClaimSource,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactRef {
    pub node: String,
    /// Key of the producing node.
    pub key: String,
    pub name: String,
    pub digest: String,
}

/// `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReportJson {
    pub assay_report: u32,
    pub spec: String,
    pub title: String,
    pub question: String,
    pub decision: String,
    /// `measured`, `simulated` or `mixed`.
    pub evidence: String,
    pub artifacts: Vec<ArtifactRef>,
    pub claims: Vec<Claim>,
}

impl Stage for ReportStage {
    fn kind(&self) -> &'static str {
        "report"
    }

    fn version(&self) -> u32 {
        REPORT_VERSION
    }

    fn outputs(&self) -> Vec<&'static str> {
        vec![
            Format::Html.file_name(),
            Format::Json.file_name(),
            Format::Md.file_name(),
        ]
    }

    fn params(&self) -> Result<Value, StageError> {
        serde_json::to_value(&self.params).map_err(|e| StageError::params("report", e))
    }

    /// Claims carry their producers' node keys, so the report's key covers
    /// them.
    fn keyed_on_producers(&self) -> bool {
        true
    }

    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError> {
        let summary_in = find_input(inputs, summarise::OUTPUT)?;
        let validation_in = find_input(inputs, validate::output::VALIDATION)?;
        let cost_in = inputs.iter().find(|i| i.name == cost_stage::output::COST);
        let fit_in = inputs.iter().find(|i| i.name == fit_stage::OUTPUT);
        let summary: Vec<SummaryRow> = tables::read_rows(ctx, summary_in)?;
        let validation: Vec<ValidationRow> = tables::read_rows(ctx, validation_in)?;
        let checks: Checks = tables::read_json(ctx, find_input(inputs, validate::output::CHECKS)?)?;
        let cost: Vec<CostRow> = match cost_in {
            Some(i) => tables::read_rows(ctx, i)?,
            None => Vec::new(),
        };
        let fit: Vec<FitRow> = match fit_in {
            Some(i) => tables::read_rows(ctx, i)?,
            None => Vec::new(),
        };
        // The quality stage's tier decisions choose between models in the
        // decision trees (cost per success, AM rule 8).
        let tiers_in = inputs
            .iter()
            .find(|i| i.name == assay_analysis::quality::output::TIERS);
        let tiers: Vec<assay_analysis::quality::TierRow> = match tiers_in {
            Some(i) => tables::read_rows(ctx, i)?,
            None => Vec::new(),
        };
        let mut manifests = Vec::new();
        for i in inputs.iter().filter(|i| i.name == "manifest") {
            manifests.push(tables::read_json::<Manifest>(ctx, i)?);
        }

        let rep = Report {
            p: &self.params,
            ctx,
            inputs,
            evidence: overall_evidence(&manifests),
            summary_in,
            validation_in,
            cost_in,
            fit_in,
            summary,
            validation,
            checks,
            cost,
            fit,
            tiers_in,
            tiers,
            manifests,
        };
        let mut out = Out::default();
        // The answer first (issue 15): title, then the summary, built last
        // from the sections' decisions, claims and risks and put here; then
        // the template's order (seed Appendix X), boundary to limits.
        intro::title(&rep, &mut out);
        let summary_at = out.doc.len();
        intro::intro(&rep, &mut out)?;
        audit::artifact_chain(&rep, &mut out)?;
        validation::validation(&rep, &mut out)?;
        results::results(&rep, &mut out)?;
        imported::imported(&rep, &mut out)?;
        // Only with a `load` input from the goodput node.
        serving::serving(&rep, &mut out)?;
        audit::attribution(&rep, &mut out)?;
        energy::energy(&rep, &mut out)?;
        cost::cost(&rep, &mut out)?;
        quality::quality(&rep, &mut out)?;
        scaling::scaling(&rep, &mut out)?;
        decisions::decisions(&rep, &mut out)?;
        limits::limits(&rep, &mut out)?;
        let summary_blocks = summary::summary(&rep, &mut out);
        let evidence_blocks = out.doc.split_off(summary_at);
        out.doc.extend(summary_blocks);
        out.doc.extend(evidence_blocks);

        let p = rep.p;
        let report = ReportJson {
            assay_report: 1,
            spec: p.spec_id.clone(),
            title: p.title.clone(),
            question: p.question.clone(),
            decision: p.decision.clone(),
            evidence: rep.evidence.clone(),
            artifacts: rep.artifacts(),
            claims: out.claims,
        };
        let mut files = Outputs::new();
        files.insert(
            Format::Md.file_name().into(),
            render_markdown(&out.doc).into_bytes(),
        );
        files.insert(
            Format::Html.file_name().into(),
            render_html(&p.title, &out.doc).into_bytes(),
        );
        files.insert(Format::Json.file_name().into(), tables::to_json(&report)?);
        Ok(files)
    }
}

/// Everything the sections read: the spec's report params and the loaded
/// input artifacts.
pub struct Report<'a> {
    pub p: &'a ReportParams,
    pub ctx: &'a StageContext<'a>,
    pub inputs: &'a [Input],
    /// `measured`, `simulated` or `mixed`, over all manifests.
    pub evidence: String,
    pub summary_in: &'a Input,
    pub validation_in: &'a Input,
    pub cost_in: Option<&'a Input>,
    pub fit_in: Option<&'a Input>,
    pub summary: Vec<SummaryRow>,
    pub validation: Vec<ValidationRow>,
    pub checks: Checks,
    pub cost: Vec<CostRow>,
    pub fit: Vec<FitRow>,
    /// The quality stage's `tiers` table, where the spec has `quality`.
    pub tiers_in: Option<&'a Input>,
    pub tiers: Vec<assay_analysis::quality::TierRow>,
    pub manifests: Vec<Manifest>,
}

impl Report<'_> {
    fn artifacts(&self) -> Vec<ArtifactRef> {
        self.inputs
            .iter()
            .map(|i| ArtifactRef {
                node: i.node.clone(),
                key: i.key.to_hex(),
                name: i.name.clone(),
                digest: i.digest.to_hex(),
            })
            .collect()
    }
}

/// What the sections produce: the document and the claims.
#[derive(Default)]
pub struct Out {
    pub doc: Vec<Block>,
    pub claims: Vec<Claim>,
    /// The risks and limits, most severe first (set by `limits`, read by
    /// the summary).
    pub risks: Vec<String>,
}

impl Out {
    /// Records the claim behind a number the report shows: `id` names it in
    /// report.json, `evidence` is `measured` or `simulated`, and `source`
    /// holds the artifact rows the value was computed from.
    fn claim(
        &mut self,
        id: String,
        statement: String,
        value: f64,
        unit: &str,
        evidence: &str,
        source: ClaimSource,
    ) {
        self.claims.push(Claim {
            id,
            statement,
            value,
            unit: unit.into(),
            evidence: evidence.into(),
            source,
        });
    }
}

fn source(input: &Input, rows: Vec<u32>) -> ClaimSource {
    ClaimSource {
        node: input.node.clone(),
        key: input.key.to_hex(),
        artifact: input.name.clone(),
        digest: input.digest.to_hex(),
        rows,
        field: None,
    }
}

/// The digest a spec-input claim cites: blake3 of the field's value in the
/// canonical encoding node keys use (`1.0e9` and `1000000000` alike),
/// under its own domain. `assay trace` recomputes it from the spec to show
/// the spec still states the value.
pub fn spec_field_digest(value: &Value) -> String {
    assay_store::canonical::keyed_hash(SPEC_FIELD_DOMAIN, value).to_hex()
}

/// The domain of `spec_field_digest`.
const SPEC_FIELD_DOMAIN: &str = "assay/spec-field";

/// The source of a number the spec states (or derives from one field):
/// the field's path, e.g. `cost.burst_factor`, and the digest of its value.
/// Not the whole spec's digest: that would make the report's key move with
/// every edit of the spec, related or not.
fn spec_source(field: &str, value: &impl Serialize) -> ClaimSource {
    let digest = spec_field_digest(&serde_json::to_value(value).unwrap_or(Value::Null));
    ClaimSource {
        node: SPEC_SOURCE.into(),
        key: digest.clone(),
        artifact: SPEC_SOURCE.into(),
        digest,
        rows: Vec::new(),
        field: Some(field.into()),
    }
}

fn overall_evidence(manifests: &[Manifest]) -> String {
    let measured = manifests
        .iter()
        .filter(|m| Evidence::is_measured(&m.evidence))
        .count();
    if measured == manifests.len() && measured > 0 {
        Evidence::Measured.as_str().into()
    } else if measured == 0 {
        Evidence::Simulated.as_str().into()
    } else {
        "mixed".into()
    }
}
