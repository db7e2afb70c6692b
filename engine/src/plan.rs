//! The planner: a spec becomes a DAG of stage nodes. One measure node per
//! (backend, model, scenario) cell, then validate, summarise, cost, fit and
//! report. Adding a node type means adding nodes and edges here; the
//! executor knows only the `Stage` trait.

use std::sync::Arc;

use assay_analysis::cost::CostStage;
use assay_analysis::fit::FitStage;
use assay_analysis::goodput::{self, GoodputParams, GoodputStage};
use assay_analysis::summarise::SummariseStage;
use assay_analysis::validate::ValidateStage;
use assay_core::Stage;
use assay_measure::bandwidth::BandwidthStage;
use assay_measure::{BackendKind, MeasureStage, cell_runs};
use assay_model::prepare::{ExportFormat, ExportStage, PrepareStage};
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

pub fn build_plan(loaded: &LoadedSpec) -> Plan {
    let spec = &loaded.spec;
    let mut g: DiGraph<PlanNode, Edge> = DiGraph::new();
    let add = |g: &mut DiGraph<PlanNode, Edge>, id: String, stage: Arc<dyn Stage>| {
        g.add_node(PlanNode { id, stage })
    };

    // Model preparation, only where a cell reads a prepared model: the
    // simulated backend runs on the declared architecture alone, and a
    // model that exists only on a server has nothing to prepare.
    let cells: Vec<MeasureStage> = spec
        .backends
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
        .collect();
    let mut prepared = std::collections::BTreeMap::new();
    for model in &spec.models {
        if cells
            .iter()
            .any(|c| c.model.name == model.name && c.reads_prepared_model())
        {
            let stage = PrepareStage {
                model: model.clone(),
                base_dir: loaded.dir.clone(),
            };
            let node = add(&mut g, format!("prepare/{}", model.name), Arc::new(stage));
            prepared.insert(model.name.as_str(), node);
        }
    }
    let mut exports = std::collections::BTreeMap::new();
    let mut export = |g: &mut DiGraph<PlanNode, Edge>,
                      model: &assay_measure::ModelDecl,
                      format: ExportFormat| {
        *exports
            .entry((model.name.clone(), format))
            .or_insert_with(|| {
                let stage = ExportStage {
                    model: model.name.clone(),
                    format,
                };
                let node = add(
                    g,
                    format!("export/{}/{}", model.name, format.id()),
                    Arc::new(stage),
                );
                let prep = prepared[model.name.as_str()];
                g.add_edge(prep, node, "model");
                if model.synthetic.is_some() {
                    g.add_edge(prep, node, "weights");
                }
                node
            })
    };
    for model in &spec.models {
        if prepared.contains_key(model.name.as_str()) {
            for ty in &model.gguf {
                export(&mut g, model, ExportFormat::Gguf(*ty));
            }
        }
    }
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
            let prep = prepared[model.name.as_str()];
            g.add_edge(prep, node, "model");
            if let Some(format) = needs_export {
                let exp = export(&mut g, &model, format);
                g.add_edge(exp, node, format.output());
            } else if synthetic && in_process {
                g.add_edge(prep, node, "weights");
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
        for name in ["events", "runs", "outputs", "manifest"] {
            g.add_edge(m, validate, name);
        }
        for name in ["events", "manifest"] {
            g.add_edge(m, summarise, name);
        }
        if spec.energy.is_some() {
            g.add_edge(m, validate, "power");
        }
    }
    g.add_edge(validate, summarise, "validation");
    if spec.energy.is_some() {
        g.add_edge(validate, summarise, "energy");
    }
    if let Some(bw) = bandwidth {
        g.add_edge(bw, summarise, "bandwidth");
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
        g.add_edge(m, report, "manifest");
    }
    g.add_edge(validate, report, "validation");
    g.add_edge(validate, report, "checks");
    g.add_edge(summarise, report, "summary");
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
            g.add_edge(m, goodput, goodput::REQUESTS);
            g.add_edge(m, goodput, goodput::MANIFEST);
        }
        g.add_edge(goodput, report, goodput::LOAD);
        g.add_edge(goodput, report, goodput::KNEES);
    }

    if let Some(params) = &spec.cost {
        let cost = add(
            &mut g,
            "cost".into(),
            Arc::new(CostStage {
                params: params.clone(),
            }),
        );
        g.add_edge(summarise, cost, "summary");
        g.add_edge(cost, report, "cost");
        if !params.request_mix.is_empty() {
            g.add_edge(cost, report, "requests");
        }
        if !params.routing.is_empty() {
            g.add_edge(cost, report, "routing");
        }
    }
    if let Some(params) = &spec.fit {
        let fit = add(
            &mut g,
            "fit".into(),
            Arc::new(FitStage {
                params: params.clone(),
            }),
        );
        g.add_edge(summarise, fit, "summary");
        g.add_edge(fit, report, "fit");
    }

    let order = topo_order(&g);
    Plan { graph: g, order }
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
