//! The planner: a spec becomes a DAG of stage nodes. One measure node per
//! (backend, model, scenario) cell, then validate, summarise, cost, fit and
//! report. Adding a node type means adding nodes and edges here; the
//! executor knows only the `Stage` trait. Every edge names an output by the
//! producing stage's own constant, and `connect` refuses a name the
//! producer does not declare (`Stage::outputs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use assay_analysis::cost::{self, CostStage};
use assay_analysis::fit::{self, FitStage};
use assay_analysis::goodput::{self, GoodputParams, GoodputStage};
use assay_analysis::summarise::{self, SummariseStage};
use assay_analysis::validate::{self, ValidateStage};
use assay_core::Stage;
use assay_measure::bandwidth::{self, BandwidthStage};
use assay_measure::stage::output as measured;
use assay_measure::{BackendKind, MeasureStage, cell_runs};
use assay_model::prepare::{self, ExportFormat, ExportStage, PrepareStage};
use assay_report::{ReportParams, ReportStage};
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::spec::LoadedSpec;

pub struct PlanNode {
    /// Stable id, e.g. `measure/cpu/tiny/micro`; the lockfile is keyed by it.
    pub id: String,
    pub stage: Arc<dyn Stage>,
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

    /// Incoming (source node, output name) pairs, sorted by (node id, name)
    /// so that keys never depend on insertion order.
    pub fn inputs(&self, idx: NodeIndex) -> Vec<(NodeIndex, &'static str)> {
        let mut v: Vec<(NodeIndex, &'static str)> = self
            .graph
            .edges_directed(idx, Direction::Incoming)
            .map(|e| (e.source(), *e.weight()))
            .collect();
        v.sort_by(|a, b| (&self.graph[a.0].id, a.1).cmp(&(&self.graph[b.0].id, b.1)));
        v
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

/// A wiring mistake: an edge that names an output its producer does not
/// declare. The plan is refused rather than keyed over a missing input.
#[derive(Debug, thiserror::Error)]
#[error(
    "internal planning error: {from} ({stage}) has no output {name:?} for {to}; it declares {declared:?}"
)]
pub struct PlanError {
    pub from: String,
    pub stage: &'static str,
    pub to: String,
    pub name: &'static str,
    pub declared: Vec<&'static str>,
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
        return Err(PlanError {
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

fn add(g: &mut DiGraph<PlanNode, Edge>, id: String, stage: Arc<dyn Stage>) -> NodeIndex {
    g.add_node(PlanNode { id, stage })
}

/// One measure stage per cell that can run (`cell_runs`).
fn measure_cells(loaded: &LoadedSpec) -> Vec<MeasureStage> {
    let spec = &loaded.spec;
    spec.backends
        .iter()
        .flat_map(|backend| {
            spec.models.iter().flat_map(move |model| {
                loaded
                    .scenarios
                    .iter()
                    .filter(move |scenario| cell_runs(backend, model, scenario))
                    .map(move |scenario| MeasureStage {
                        cell: cell_id(&backend.name, &model.name, &scenario.name),
                        backend: backend.clone(),
                        model: model.clone(),
                        // SLOs judge a measurement; they are not part of it
                        // (the goodput stage takes them from the spec).
                        scenario: without_slo(scenario),
                        boundary: spec.boundary.clone(),
                        energy: spec.energy.map(|e| e.sampling()),
                    })
            })
        })
        .collect()
}

/// Model preparation and exports: the nodes every cell reads its model from.
struct Models {
    prepared: BTreeMap<String, NodeIndex>,
    exports: BTreeMap<(String, ExportFormat), NodeIndex>,
}

impl Models {
    /// Prepare nodes, only where a cell reads a prepared model: the
    /// simulated backend runs on the declared architecture alone, and a
    /// model that exists only on a server has nothing to prepare.
    fn plan(
        g: &mut DiGraph<PlanNode, Edge>,
        loaded: &LoadedSpec,
        cells: &[MeasureStage],
    ) -> Result<Self, PlanError> {
        let mut models = Models {
            prepared: BTreeMap::new(),
            exports: BTreeMap::new(),
        };
        for model in &loaded.spec.models {
            if cells
                .iter()
                .any(|c| c.model.name == model.name && c.reads_prepared_model())
            {
                let stage = PrepareStage {
                    model: model.clone(),
                    base_dir: loaded.dir.clone(),
                };
                let node = add(g, format!("prepare/{}", model.name), Arc::new(stage));
                models.prepared.insert(model.name.clone(), node);
            }
        }
        for model in &loaded.spec.models {
            if models.prepared.contains_key(&model.name) {
                for ty in &model.gguf {
                    models.export(g, model, ExportFormat::Gguf(*ty))?;
                }
            }
        }
        Ok(models)
    }

    /// The export node of `model` in `format`, planned once.
    fn export(
        &mut self,
        g: &mut DiGraph<PlanNode, Edge>,
        model: &assay_measure::ModelDecl,
        format: ExportFormat,
    ) -> Result<NodeIndex, PlanError> {
        if let Some(&node) = self.exports.get(&(model.name.clone(), format)) {
            return Ok(node);
        }
        let stage = ExportStage {
            model: model.name.clone(),
            format,
        };
        let node = add(
            g,
            format!("export/{}/{}", model.name, format.id()),
            Arc::new(stage),
        );
        let prep = self.prepared[&model.name];
        connect(g, prep, node, prepare::output::MODEL)?;
        if model.synthetic.is_some() {
            connect(g, prep, node, prepare::output::WEIGHTS)?;
        }
        self.exports.insert((model.name.clone(), format), node);
        Ok(node)
    }
}

pub fn build_plan(loaded: &LoadedSpec) -> Result<Plan, PlanError> {
    let spec = &loaded.spec;
    let mut g: DiGraph<PlanNode, Edge> = DiGraph::new();
    let cells = measure_cells(loaded);
    let mut models = Models::plan(&mut g, loaded, &cells)?;
    let bandwidth = spec
        .backends
        .iter()
        .any(|b| b.kind == BackendKind::Candle)
        .then(|| add(&mut g, "bandwidth/cpu".into(), Arc::new(BandwidthStage)));

    let mut measures = Vec::new();
    let mut load_cells = Vec::new();
    for stage in cells {
        let needs_export = stage.needs_export();
        let reads_model = stage.reads_prepared_model();
        let in_process = !stage.backend.kind.is_server();
        let synthetic = stage.model.synthetic.is_some();
        let model = stage.model.clone();
        let has_load = stage.backend.kind.is_server() && stage.scenario.load.is_some();
        let node = add(&mut g, format!("measure/{}", stage.cell), Arc::new(stage));
        if reads_model {
            let prep = models.prepared[&model.name];
            connect(&mut g, prep, node, prepare::output::MODEL)?;
            if let Some(format) = needs_export {
                let exp = models.export(&mut g, &model, format)?;
                connect(&mut g, exp, node, format.output())?;
            } else if synthetic && in_process {
                connect(&mut g, prep, node, prepare::output::WEIGHTS)?;
            }
        }
        measures.push(node);
        if has_load {
            load_cells.push(node);
        }
    }

    let validate = add(
        &mut g,
        "validate".into(),
        Arc::new(ValidateStage {
            params: spec.validate.clone().unwrap_or_default(),
            energy_min_samples: spec.energy.map(|e| e.min_samples),
        }),
    );
    let summarise = add(&mut g, "summarise".into(), Arc::new(SummariseStage));
    for &m in &measures {
        for name in [
            measured::EVENTS,
            measured::RUNS,
            measured::OUTPUTS,
            measured::MANIFEST,
        ] {
            connect(&mut g, m, validate, name)?;
        }
        for name in [measured::EVENTS, measured::MANIFEST] {
            connect(&mut g, m, summarise, name)?;
        }
        if spec.energy.is_some() {
            connect(&mut g, m, validate, measured::POWER)?;
        }
    }
    connect(&mut g, validate, summarise, validate::output::VALIDATION)?;
    if spec.energy.is_some() {
        connect(&mut g, validate, summarise, validate::output::ENERGY)?;
    }
    if let Some(bw) = bandwidth {
        connect(&mut g, bw, summarise, bandwidth::OUTPUT)?;
    }

    let report = add(
        &mut g,
        "report".into(),
        Arc::new(ReportStage {
            params: ReportParams {
                spec_id: spec.id.clone(),
                title: spec.title.clone(),
                question: spec.question.clone(),
                decision: spec.decision.clone(),
                boundary: spec.boundary.clone(),
                scenarios: loaded.scenarios.clone(),
                cost: spec.cost.clone(),
                energy: spec.energy,
                workloads: spec.workloads.clone(),
            },
        }),
    );
    for &m in &measures {
        connect(&mut g, m, report, measured::MANIFEST)?;
    }
    connect(&mut g, validate, report, validate::output::VALIDATION)?;
    connect(&mut g, validate, report, validate::output::CHECKS)?;
    connect(&mut g, summarise, report, summarise::OUTPUT)?;
    // Serving under load: only specs with load profiles have the node, so
    // other specs keep their plans and keys.
    if !load_cells.is_empty() {
        let goodput = add(
            &mut g,
            goodput::NODE.into(),
            Arc::new(GoodputStage {
                params: GoodputParams {
                    families: spec.rate_families(),
                    slos: loaded
                        .scenarios
                        .iter()
                        .filter_map(|s| {
                            let slo = s.load.as_ref()?.slo.clone()?;
                            Some((s.name.clone(), slo))
                        })
                        .collect(),
                },
            }),
        );
        for &m in &load_cells {
            connect(&mut g, m, goodput, measured::REQUESTS)?;
            connect(&mut g, m, goodput, measured::MANIFEST)?;
        }
        connect(&mut g, goodput, report, goodput::LOAD)?;
        connect(&mut g, goodput, report, goodput::KNEES)?;
    }

    if let Some(params) = &spec.cost {
        let cost_node = add(
            &mut g,
            "cost".into(),
            Arc::new(CostStage {
                params: params.clone(),
            }),
        );
        connect(&mut g, summarise, cost_node, summarise::OUTPUT)?;
        connect(&mut g, cost_node, report, cost::output::COST)?;
        if !params.request_mix.is_empty() {
            connect(&mut g, cost_node, report, cost::output::REQUESTS)?;
        }
        if !params.routing.is_empty() {
            connect(&mut g, cost_node, report, cost::output::ROUTING)?;
        }
    }
    if let Some(params) = &spec.fit {
        let fit_node = add(
            &mut g,
            "fit".into(),
            Arc::new(FitStage {
                params: params.clone(),
            }),
        );
        connect(&mut g, summarise, fit_node, summarise::OUTPUT)?;
        connect(&mut g, fit_node, report, fit::OUTPUT)?;
    }

    let order = topo_order(&g);
    Ok(Plan { graph: g, order })
}

/// Kahn's algorithm, always taking the ready node with the smallest id, so
/// the order is a pure function of the spec.
fn topo_order(g: &DiGraph<PlanNode, Edge>) -> Vec<NodeIndex> {
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

    fn graph() -> (DiGraph<PlanNode, Edge>, NodeIndex, NodeIndex) {
        let mut g = DiGraph::new();
        let summarise = add(&mut g, "summarise".into(), Arc::new(SummariseStage));
        // Any stage will do as the consumer: only the producer's declared
        // outputs matter.
        let consumer = add(&mut g, "consumer".into(), Arc::new(BandwidthStage));
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
        assert_eq!(e.name, "summaries");
        assert_eq!(e.declared, vec![summarise::OUTPUT]);
        assert!(
            e.to_string()
                .contains("summarise (summarise) has no output \"summaries\" for consumer"),
            "{e}"
        );
        assert_eq!(g.edge_count(), 0, "nothing is wired");
    }
}
