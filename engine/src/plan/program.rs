//! A program's plan: every member spec planned as if alone, merged into one
//! DAG, plus the conclusive report. A member node keeps its spec-local id
//! for its key (so a member run alone and the program share every store
//! record) and gets the program id `<member>/<local id>`. Nodes that are
//! the same in several members (same local id, stage, version, params,
//! environment and inputs, hence the same key) are one node, with the id
//! `shared/<local id>`: a model prepared or a cell measured for two
//! reports is prepared or measured once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use assay_analysis::{fit, validate};
use assay_report::program::{MemberParams, ProgramReportParams, ProgramReportStage, SharedNode};
use assay_store::canonical;
use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::json;

use super::analysis::{FIT, VALIDATE};
use super::{Edge, Plan, PlanError, PlanNode, build_plan, connect, topo_order};
use crate::spec::program::SHARED;
use crate::spec::{LoadedProgram, LoadedSpec};

/// The program id of the conclusive report node.
pub const CONCLUSIVE: &str = "conclusive";
/// A member's report node, by its id inside the member spec.
const REPORT: &str = "report";

/// A program's plan, and where each member's nodes went in it.
pub struct ProgramPlan {
    pub plan: Plan,
    pub members: Vec<MemberNodes>,
}

/// One member's nodes: its local ids and their nodes in the program plan.
pub struct MemberNodes {
    pub id: String,
    pub nodes: BTreeMap<String, NodeIndex>,
}

impl MemberNodes {
    /// The program id of this member's node `local`.
    pub fn program_id<'p>(&self, plan: &'p Plan, local: &str) -> Option<&'p str> {
        self.nodes.get(local).map(|&n| plan.node(n).id.as_str())
    }
}

/// A node being merged: its stage, local id, and the members using it.
struct Merged {
    local: String,
    members: BTreeSet<usize>,
}

pub fn build_program_plan(program: &LoadedProgram) -> Result<ProgramPlan, PlanError> {
    let mut graph: DiGraph<PlanNode, Edge> = DiGraph::new();
    let mut merged: Vec<Merged> = Vec::new();
    let mut by_signature: BTreeMap<String, NodeIndex> = BTreeMap::new();
    let mut members = Vec::new();
    for (mi, member) in program.members.iter().enumerate() {
        let plan = build_plan(member)?;
        let mut into = vec![NodeIndex::end(); plan.len()];
        for &idx in &plan.order {
            let node = plan.node(idx);
            let inputs: Vec<(NodeIndex, Edge)> = plan
                .inputs(idx)
                .into_iter()
                .map(|(src, name)| (into[src.index()], name))
                .collect();
            let signature = signature(node, &inputs, mi, idx);
            let target = match by_signature.get(&signature) {
                Some(&n) => n,
                None => {
                    let n = graph.add_node(PlanNode {
                        id: String::new(),
                        local_id: Some(node.id.clone()),
                        stage: node.stage.clone(),
                    });
                    for &(src, name) in &inputs {
                        connect(&mut graph, src, n, name)?;
                    }
                    merged.push(Merged {
                        local: node.id.clone(),
                        members: BTreeSet::new(),
                    });
                    by_signature.insert(signature, n);
                    n
                }
            };
            merged[target.index()].members.insert(mi);
            into[idx.index()] = target;
        }
        members.push(MemberNodes {
            id: member.spec.id.clone(),
            nodes: plan
                .order
                .iter()
                .map(|&i| (plan.node(i).id.clone(), into[i.index()]))
                .collect(),
        });
    }
    for (i, m) in merged.iter().enumerate() {
        graph[NodeIndex::new(i)].id = if m.members.len() > 1 {
            format!("{SHARED}/{}", m.local)
        } else {
            let only = m.members.first().copied().unwrap_or_default();
            format!("{}/{}", program.members[only].spec.id, m.local)
        };
    }
    let shared = shared_nodes(&graph, &merged, program);
    plan_conclusive(&mut graph, program, &members, shared)?;
    let order = topo_order(&graph);
    Ok(ProgramPlan {
        plan: Plan { graph, order },
        members,
    })
}

/// What makes two member nodes one: everything their keys are computed
/// from, with inputs named by their merged node. A node whose params do
/// not serialise is never merged (it gets a signature of its own).
fn signature(
    node: &PlanNode,
    inputs: &[(NodeIndex, Edge)],
    member: usize,
    idx: NodeIndex,
) -> String {
    let stage = node.stage.as_ref();
    let Ok(params) = stage.params() else {
        return format!("unkeyed {member} {}", idx.index());
    };
    let mut inputs: Vec<(usize, &str)> = inputs.iter().map(|(n, e)| (n.index(), *e)).collect();
    inputs.sort();
    canonical::encode(&json!({
        "id": node.id,
        "stage": stage.kind(),
        "version": stage.version(),
        "params": params,
        "env": stage.environment(),
        "producers": stage.keyed_on_producers(),
        "inputs": inputs,
    }))
}

/// The nodes several members use, with the members that use them.
fn shared_nodes(
    graph: &DiGraph<PlanNode, Edge>,
    merged: &[Merged],
    program: &LoadedProgram,
) -> Vec<(NodeIndex, SharedNode)> {
    merged
        .iter()
        .enumerate()
        .filter(|(_, m)| m.members.len() > 1)
        .map(|(i, m)| {
            let n = NodeIndex::new(i);
            let shared = SharedNode {
                node: graph[n].id.clone(),
                stage: graph[n].stage.kind().to_string(),
                members: m
                    .members
                    .iter()
                    .map(|&mi| program.members[mi].spec.id.clone())
                    .collect(),
            };
            (n, shared)
        })
        .collect()
}

/// The conclusive report: every member's report.json, validation verdicts
/// and fits, and every shared node's outputs (for the linkage table).
fn plan_conclusive(
    graph: &mut DiGraph<PlanNode, Edge>,
    program: &LoadedProgram,
    members: &[MemberNodes],
    shared: Vec<(NodeIndex, SharedNode)>,
) -> Result<(), PlanError> {
    let mut params = Vec::new();
    let mut wiring: Vec<(NodeIndex, Edge)> = Vec::new();
    for (spec, nodes) in program.members.iter().zip(members) {
        let require = |local: &str| {
            nodes
                .nodes
                .get(local)
                .copied()
                .ok_or_else(|| PlanError::MissingNode(format!("{}/{local}", nodes.id)))
        };
        let report = require(REPORT)?;
        let validate = require(VALIDATE)?;
        let fit = nodes.nodes.get(FIT).copied();
        wiring.push((report, assay_report::Format::Json.file_name()));
        wiring.push((validate, validate::output::VALIDATION));
        if let Some(f) = fit {
            wiring.push((f, fit::OUTPUT));
        }
        params.push(member_params(program, spec, graph, report, validate, fit));
    }
    for (n, _) in &shared {
        for name in graph[*n].stage.outputs() {
            wiring.push((*n, name));
        }
    }
    let p = &program.program;
    let conclusive = graph.add_node(PlanNode {
        id: CONCLUSIVE.into(),
        local_id: None,
        stage: Arc::new(ProgramReportStage {
            params: ProgramReportParams {
                program_id: p.id.clone(),
                title: p.title.clone(),
                question: p.question.clone(),
                decision: p.decision.clone(),
                members: params,
                shared: shared.into_iter().map(|(_, s)| s).collect(),
            },
        }),
    });
    for (src, name) in wiring {
        connect(graph, src, conclusive, name)?;
    }
    Ok(())
}

fn member_params(
    program: &LoadedProgram,
    spec: &LoadedSpec,
    graph: &DiGraph<PlanNode, Edge>,
    report: NodeIndex,
    validate: NodeIndex,
    fit: Option<NodeIndex>,
) -> MemberParams {
    let s = &spec.spec;
    let relative = pathdiff(&spec.path, &program.dir);
    MemberParams {
        id: s.id.clone(),
        spec: relative,
        title: s.title.clone(),
        question: s.question.clone(),
        decision: s.decision.clone(),
        boundary: s.boundary.clone(),
        scenarios: spec.scenarios.clone(),
        report_node: graph[report].id.clone(),
        validate_node: graph[validate].id.clone(),
        fit_node: fit.map(|f| graph[f].id.clone()),
    }
}

/// The member's spec path as the program file names it (relative to the
/// program's folder where it lies below it), with `/` separators so the
/// report's bytes do not depend on the platform.
fn pathdiff(path: &std::path::Path, base: &std::path::Path) -> String {
    let rel = path.strip_prefix(base).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}
