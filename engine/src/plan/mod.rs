//! The planner: a spec becomes a DAG of stage nodes. Each stage kind plans
//! its own nodes and the edges into them ([`StagePlanner`], one module per
//! group: `models`, `measure`, `analysis`, `report`), in the order of
//! [`PLANNERS`], producers first. The executor knows only the `Stage`
//! trait. Every edge names an output by the producing stage's own
//! constant, and `connect` refuses a name the producer does not declare
//! (`Stage::outputs`).

mod analysis;
mod evaluate;
mod measure;
mod models;
pub mod program;
mod report;

use std::collections::BTreeMap;
use std::sync::Arc;

use assay_core::Stage;
use assay_measure::{MeasureStage, Registry};
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::spec::LoadedSpec;

pub struct PlanNode {
    /// Stable id, e.g. `measure/cpu/tiny/micro`; the lockfile is keyed by it.
    pub id: String,
    /// The node's id inside its spec when it differs from `id`: a program
    /// plans each member under `<member>/` ids but keys every member node
    /// with the id it has in its own spec, so a member run on its own and
    /// the program share every store record (see [`Plan::input_node`]).
    pub local_id: Option<String>,
    pub stage: Arc<dyn Stage>,
}

impl PlanNode {
    /// The id this node's key and store record use.
    pub fn key_id(&self) -> &str {
        self.local_id.as_deref().unwrap_or(&self.id)
    }
}

/// An edge carries one named output of its source node.
pub type Edge = &'static str;

pub struct Plan {
    pub graph: DiGraph<PlanNode, Edge>,
    /// Nodes in a deterministic topological order.
    pub order: Vec<NodeIndex>,
}

impl Plan {
    pub fn node(&self, idx: NodeIndex) -> &PlanNode {
        &self.graph[idx]
    }

    /// Incoming (source node, output name) pairs, sorted by (the source's
    /// name in this node's key, output name) so that keys never depend on
    /// insertion order, nor on whether the spec runs alone or in a program.
    pub fn inputs(&self, idx: NodeIndex) -> Vec<(NodeIndex, &'static str)> {
        let mut v: Vec<(NodeIndex, &'static str)> = self
            .graph
            .edges_directed(idx, Direction::Incoming)
            .map(|e| (e.source(), *e.weight()))
            .collect();
        v.sort_by(|a, b| (self.input_node(idx, a.0), a.1).cmp(&(self.input_node(idx, b.0), b.1)));
        v
    }

    /// The producer's name in the consumer's key: a member node names its
    /// inputs by their ids inside the member spec (as the spec alone
    /// would), a program-level node by their program ids.
    pub fn input_node(&self, consumer: NodeIndex, producer: NodeIndex) -> &str {
        if self.graph[consumer].local_id.is_some() {
            self.graph[producer].key_id()
        } else {
            &self.graph[producer].id
        }
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }
}

pub fn cell_id(backend: &str, model: &str, scenario: &str) -> String {
    format!("{backend}/{model}/{scenario}")
}

fn without_slo(scenario: &assay_measure::Scenario) -> assay_measure::Scenario {
    let mut s = scenario.clone();
    if let Some(load) = s.load.as_mut() {
        load.slo = None;
    }
    s
}

/// A plan that cannot be built. Both are internal mistakes (the spec
/// checks ran first): the plan is refused rather than keyed over a missing
/// input or run with a kind nobody registered.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// An edge names an output its producer does not declare.
    #[error(
        "internal planning error: {from} ({stage}) has no output {name:?} for {to}; it declares {declared:?}"
    )]
    UndeclaredOutput {
        from: String,
        stage: &'static str,
        to: String,
        name: &'static str,
        declared: Vec<&'static str>,
    },
    #[error("internal planning error: backend kind {0:?} is not registered")]
    UnknownKind(String),
    /// A planner runs before the planner of a node it reads.
    #[error("internal planning error: node {0:?} is read before it is planned")]
    MissingNode(String),
}

/// Adds the edge carrying output `name` of `from` into `to`, if `from`
/// declares that output.
pub fn connect(
    g: &mut DiGraph<PlanNode, Edge>,
    from: NodeIndex,
    to: NodeIndex,
    name: Edge,
) -> Result<(), PlanError> {
    let declared = g[from].stage.outputs();
    if !declared.contains(&name) {
        return Err(PlanError::UndeclaredOutput {
            from: g[from].id.clone(),
            stage: g[from].stage.kind(),
            to: g[to].id.clone(),
            name,
            declared,
        });
    }
    g.add_edge(from, to, name);
    Ok(())
}

/// One stage kind's part of the plan: its nodes, if the spec asks for
/// them, and the edges into them from nodes planned before.
trait StagePlanner: Sync {
    fn plan(&self, p: &mut Planning<'_>) -> Result<(), PlanError>;
}

/// Every stage kind, producers before their consumers. A new stage kind is
/// one `StagePlanner` and one entry here.
const PLANNERS: &[&dyn StagePlanner] = &[
    &models::Models,
    &measure::Bandwidth,
    &measure::Measure,
    &evaluate::Evaluate,
    &analysis::Validate,
    &analysis::Summarise,
    &analysis::Goodput,
    &analysis::Cost,
    &analysis::Quality,
    &analysis::Fit,
    &report::Report,
];

/// A plan being built: the graph, its nodes by id, and the spec's cells.
struct Planning<'a> {
    loaded: &'a LoadedSpec,
    graph: DiGraph<PlanNode, Edge>,
    ids: BTreeMap<String, NodeIndex>,
    /// The spec's cells, in spec order (backend, model, scenario); shared
    /// with their nodes, so planning never copies a cell.
    cells: Vec<Arc<MeasureStage>>,
    /// The measure node of each cell, as `cells` (filled by `Measure`).
    cell_nodes: Vec<NodeIndex>,
}

impl Planning<'_> {
    fn add(&mut self, id: String, stage: Arc<dyn Stage>) -> NodeIndex {
        let node = self.graph.add_node(PlanNode {
            id: id.clone(),
            local_id: None,
            stage,
        });
        self.ids.insert(id, node);
        node
    }

    fn node(&self, id: &str) -> Option<NodeIndex> {
        self.ids.get(id).copied()
    }

    /// A node a planner depends on, planned by an earlier one.
    fn require(&self, id: &str) -> Result<NodeIndex, PlanError> {
        self.node(id)
            .ok_or_else(|| PlanError::MissingNode(id.to_string()))
    }

    fn connect(&mut self, from: NodeIndex, to: NodeIndex, name: Edge) -> Result<(), PlanError> {
        connect(&mut self.graph, from, to, name)
    }
}

pub fn build_plan(loaded: &LoadedSpec) -> Result<Plan, PlanError> {
    let mut p = Planning {
        loaded,
        graph: DiGraph::new(),
        ids: BTreeMap::new(),
        cells: measure_cells(loaded, assay_measure::registry())?,
        cell_nodes: Vec::new(),
    };
    for planner in PLANNERS {
        planner.plan(&mut p)?;
    }
    let order = topo_order(&p.graph);
    Ok(Plan {
        graph: p.graph,
        order,
    })
}

/// One measure stage per cell its kind runs (`Backend::runs`). The spec
/// checks refused unregistered kinds, so every backend has its entry.
fn measure_cells(
    loaded: &LoadedSpec,
    registry: &Registry,
) -> Result<Vec<Arc<MeasureStage>>, PlanError> {
    let spec = &loaded.spec;
    let mut cells = Vec::new();
    for backend in &spec.backends {
        let entry = registry
            .get(backend.kind.as_str())
            .ok_or_else(|| PlanError::UnknownKind(backend.kind.to_string()))?;
        for model in &spec.models {
            for scenario in &loaded.scenarios {
                if entry.runs(backend, model, scenario) {
                    cells.push(Arc::new(MeasureStage {
                        cell: cell_id(&backend.name, &model.name, &scenario.name),
                        backend: backend.clone(),
                        entry,
                        model: model.clone(),
                        // SLOs judge a measurement; they are not part of it
                        // (the goodput stage takes them from the spec).
                        scenario: without_slo(scenario),
                        boundary: spec.boundary.clone(),
                        energy: spec.energy.map(|e| e.sampling()),
                    }));
                }
            }
        }
    }
    Ok(cells)
}

/// Kahn's algorithm, always taking the ready node with the smallest id, so
/// the order is a pure function of the spec.
pub(crate) fn topo_order(g: &DiGraph<PlanNode, Edge>) -> Vec<NodeIndex> {
    let mut indegree: Vec<usize> = g
        .node_indices()
        .map(|n| {
            let mut srcs: Vec<NodeIndex> = g.neighbors_directed(n, Direction::Incoming).collect();
            srcs.sort();
            srcs.dedup();
            srcs.len()
        })
        .collect();
    let mut ready: std::collections::BTreeSet<(String, NodeIndex)> = g
        .node_indices()
        .filter(|n| indegree[n.index()] == 0)
        .map(|n| (g[n].id.clone(), n))
        .collect();
    let mut order = Vec::with_capacity(g.node_count());
    while let Some((id, n)) = ready.pop_first() {
        let _ = id;
        order.push(n);
        let mut outs: Vec<NodeIndex> = g.neighbors_directed(n, Direction::Outgoing).collect();
        outs.sort();
        outs.dedup();
        for m in outs {
            indegree[m.index()] -= 1;
            if indegree[m.index()] == 0 {
                ready.insert((g[m].id.clone(), m));
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use assay_analysis::summarise::{self, SummariseStage};
    use assay_measure::bandwidth::BandwidthStage;

    fn add(g: &mut DiGraph<PlanNode, Edge>, id: &str, stage: Arc<dyn Stage>) -> NodeIndex {
        g.add_node(PlanNode {
            id: id.into(),
            local_id: None,
            stage,
        })
    }

    fn graph() -> (DiGraph<PlanNode, Edge>, NodeIndex, NodeIndex) {
        let mut g = DiGraph::new();
        let summarise = add(&mut g, "summarise", Arc::new(SummariseStage));
        // Any stage will do as the consumer: only the producer's declared
        // outputs matter.
        let consumer = add(&mut g, "consumer", Arc::new(BandwidthStage));
        (g, summarise, consumer)
    }

    #[test]
    fn an_edge_naming_a_declared_output_is_wired() {
        let (mut g, summarise, fit) = graph();
        connect(&mut g, summarise, fit, summarise::OUTPUT).unwrap();
        assert_eq!(g.edge_count(), 1);
    }

    #[test]
    fn an_edge_naming_an_undeclared_output_is_refused() {
        let (mut g, summarise, fit) = graph();
        let e = connect(&mut g, summarise, fit, "summaries").unwrap_err();
        let PlanError::UndeclaredOutput { name, declared, .. } = &e else {
            panic!("expected an undeclared output, got {e}");
        };
        assert_eq!(*name, "summaries");
        assert_eq!(*declared, vec![summarise::OUTPUT]);
        assert!(
            e.to_string()
                .contains("summarise (summarise) has no output \"summaries\" for consumer"),
            "{e}"
        );
        assert_eq!(g.edge_count(), 0, "nothing is wired");
    }
}
