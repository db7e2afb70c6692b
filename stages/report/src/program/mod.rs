//! The conclusive report of a program (seed Appendices AT, J, L, AS, T,
//! AH.6): what each member report decides, which report informs which
//! decision and what would be unknown without it, the boundary of every
//! member, how the members compare, the risk register read from the data,
//! and the artifacts the members share. Every number in it is a claim that
//! cites the member report claim (or the member artifact rows) it came
//! from, so `assay trace` follows it down to raw rows and manifests.

mod areas;
mod compare;
mod risks;
mod sections;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use assay_analysis::{fit as fit_stage, validate};
use assay_core::domain::Evidence;
use assay_core::stage::{Input, Outputs, Stage, StageContext, StageError};
use assay_core::tables::{self, FitRow, ValidationRow};
use assay_measure::{Boundary, Scenario};

use crate::document::{Block, render_html, render_markdown};
use crate::{ArtifactRef, Claim, ClaimSource, Format, ReportJson};

// 2: the HTML's sidebar, sortable tables and hover values (issue 15).
pub const PROGRAM_REPORT_VERSION: u32 = 2;

/// What the conclusive report needs from the program file and its members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgramReportParams {
    pub program_id: String,
    pub title: String,
    pub question: String,
    pub decision: String,
    pub members: Vec<MemberParams>,
    /// Nodes several members share (planned and run once).
    pub shared: Vec<SharedNode>,
}

/// One member spec, as the conclusive report describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberParams {
    pub id: String,
    /// The member's spec file, relative to the program's folder.
    pub spec: String,
    pub title: String,
    pub question: String,
    pub decision: String,
    pub boundary: Boundary,
    pub scenarios: Vec<Scenario>,
    /// Program ids of the member nodes this report reads.
    pub report_node: String,
    pub validate_node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit_node: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SharedNode {
    pub node: String,
    pub stage: String,
    /// Ids of the members that use it.
    pub members: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ProgramReportStage {
    pub params: ProgramReportParams,
}

impl Stage for ProgramReportStage {
    fn kind(&self) -> &'static str {
        "conclusive"
    }

    fn version(&self) -> u32 {
        PROGRAM_REPORT_VERSION
    }

    fn outputs(&self) -> Vec<&'static str> {
        vec![
            Format::Html.file_name(),
            Format::Json.file_name(),
            Format::Md.file_name(),
        ]
    }

    fn params(&self) -> Result<Value, StageError> {
        serde_json::to_value(&self.params).map_err(|e| StageError::params("conclusive", e))
    }

    /// Claims carry the member reports' node keys.
    fn keyed_on_producers(&self) -> bool {
        true
    }

    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError> {
        let members = self
            .params
            .members
            .iter()
            .map(|m| Member::load(m, ctx, inputs))
            .collect::<Result<Vec<_>, _>>()?;
        let program = ProgramData {
            p: &self.params,
            members,
            inputs,
        };
        let mut out = ProgramOut::default();
        sections::intro(&program, &mut out);
        sections::answer(&program, &mut out);
        sections::impact_matrix(&program, &mut out);
        sections::traceability(&program, &mut out);
        sections::boundary_catalog(&program, &mut out);
        compare::cross_report(&program, &mut out);
        risks::register(&program, &mut out);
        compare::linkage(&program, &mut out);
        sections::members(&program, &mut out);

        let p = &self.params;
        let report = ReportJson {
            assay_report: 1,
            spec: p.program_id.clone(),
            title: p.title.clone(),
            question: p.question.clone(),
            decision: p.decision.clone(),
            evidence: program.evidence(),
            artifacts: inputs
                .iter()
                .map(|i| ArtifactRef {
                    node: i.node.clone(),
                    key: i.key.to_hex(),
                    name: i.name.clone(),
                    digest: i.digest.to_hex(),
                })
                .collect(),
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

/// One member's artifacts, loaded.
pub(crate) struct Member<'a> {
    pub p: &'a MemberParams,
    pub report_in: &'a Input,
    pub report: ReportJson,
    pub validation_in: &'a Input,
    pub validation: Vec<ValidationRow>,
    pub fit_in: Option<&'a Input>,
    pub fit: Vec<FitRow>,
}

impl<'a> Member<'a> {
    fn load(
        p: &'a MemberParams,
        ctx: &StageContext<'_>,
        inputs: &'a [Input],
    ) -> Result<Self, StageError> {
        let find = |node: &str, name: &str| {
            inputs
                .iter()
                .find(|i| i.node == node && i.name == name)
                .ok_or_else(|| {
                    StageError::Failed(format!(
                        "internal error: the conclusive report has no input {name} from {node}"
                    ))
                })
        };
        let report_in = find(&p.report_node, Format::Json.file_name())?;
        let validation_in = find(&p.validate_node, validate::output::VALIDATION)?;
        let fit_in = match &p.fit_node {
            Some(node) => Some(find(node, fit_stage::OUTPUT)?),
            None => None,
        };
        Ok(Member {
            p,
            report_in,
            report: tables::read_json(ctx, report_in)?,
            validation_in,
            validation: tables::read_rows(ctx, validation_in)?,
            fit_in,
            fit: match fit_in {
                Some(i) => tables::read_rows(ctx, i)?,
                None => Vec::new(),
            },
        })
    }

    /// The member's claims whose id starts with `prefix`, with their index
    /// in its report.json.
    pub fn claims<'s>(&'s self, prefix: &'s str) -> impl Iterator<Item = (usize, &'s Claim)> + 's {
        self.report
            .claims
            .iter()
            .enumerate()
            .filter(move |(_, c)| c.id.starts_with(prefix))
    }

    pub fn claim(&self, id: &str) -> Option<(usize, &Claim)> {
        self.report
            .claims
            .iter()
            .enumerate()
            .find(|(_, c)| c.id == id)
    }

    /// The source of a number taken from this member's claim `index`: its
    /// report.json, row = the claim's index.
    pub fn cite(&self, index: usize) -> ClaimSource {
        source(self.report_in, vec![index as u32])
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

/// Everything the sections read.
pub(crate) struct ProgramData<'a> {
    pub p: &'a ProgramReportParams,
    pub members: Vec<Member<'a>>,
    pub inputs: &'a [Input],
}

impl ProgramData<'_> {
    /// `measured` when every member's report is, `simulated` when none is.
    fn evidence(&self) -> String {
        let measured = self
            .members
            .iter()
            .filter(|m| m.report.evidence == Evidence::Measured.as_str())
            .count();
        if measured == self.members.len() && measured > 0 {
            Evidence::Measured.as_str().into()
        } else if measured == 0 {
            Evidence::Simulated.as_str().into()
        } else {
            "mixed".into()
        }
    }
}

#[derive(Default)]
pub(crate) struct ProgramOut {
    pub doc: Vec<Block>,
    pub claims: Vec<Claim>,
}

impl ProgramOut {
    /// A claim of the conclusive report quoting member `m`'s claim `index`:
    /// its id is `program/<member>/<member claim id>`, and its source is
    /// that claim.
    pub fn quote(&mut self, m: &Member<'_>, index: usize) -> String {
        let c = &m.report.claims[index];
        let id = format!("program/{}/{}", m.p.id, c.id);
        if !self.claims.iter().any(|x| x.id == id) {
            self.claims.push(Claim {
                id,
                statement: c.statement.clone(),
                value: c.value,
                unit: c.unit.clone(),
                evidence: c.evidence.clone(),
                source: m.cite(index),
            });
        }
        c.statement.clone()
    }

    /// A number the conclusive report derives itself (a count), with the
    /// member artifact rows it counted.
    pub fn count(
        &mut self,
        id: String,
        statement: String,
        value: usize,
        unit: &str,
        evidence: &str,
        source: ClaimSource,
    ) {
        self.claims.push(Claim {
            id,
            statement,
            value: value as f64,
            unit: unit.into(),
            evidence: evidence.into(),
            source,
        });
    }
}

/// The snake_case name of a spec enum (as the spec spells it).
pub(crate) fn spelled<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}
