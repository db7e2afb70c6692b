//! `report`: reads every cell's manifest, the verdicts, the summary, and
//! whatever optional analysis the spec planned.

use std::sync::Arc;

use assay_analysis::{cost, fit, goodput, quality, summarise, validate};
use assay_measure::evaluate;
use assay_measure::stage::output as measured;
use assay_report::{ReportParams, ReportStage};

use super::analysis::{COST, FIT, SUMMARISE, VALIDATE};
use super::evaluate::evaluate_nodes;
use super::{PlanError, Planning, StagePlanner};

pub(super) struct Report;

impl StagePlanner for Report {
    fn plan(&self, p: &mut Planning<'_>) -> Result<(), PlanError> {
        let loaded = p.loaded;
        let spec = &loaded.spec;
        let report = p.add(
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
                    slo: spec.slo.clone(),
                },
            }),
        );
        for m in p.cell_nodes.clone() {
            p.connect(m, report, measured::MANIFEST)?;
        }
        let validate = p.require(VALIDATE)?;
        p.connect(validate, report, validate::output::VALIDATION)?;
        p.connect(validate, report, validate::output::CHECKS)?;
        // The SLO table exists only with the spec's `slo`.
        if p.graph[validate]
            .stage
            .outputs()
            .contains(&validate::output::SLO)
        {
            p.connect(validate, report, validate::output::SLO)?;
        }
        // The gated energy windows (with `energy`): the report prints each
        // cell's macro window and idle baseline from them.
        if p.graph[validate]
            .stage
            .outputs()
            .contains(&validate::output::ENERGY)
        {
            p.connect(validate, report, validate::output::ENERGY)?;
        }
        let summarise = p.require(SUMMARISE)?;
        p.connect(summarise, report, summarise::OUTPUT)?;
        // The optional analysis nodes, when planned: each of these outputs
        // that the node declares (cost's requests and sensitivity exist only
        // with a request mix, routing only with routing).
        let optional: [(&str, &[&'static str]); 4] = [
            (goodput::NODE, &[goodput::LOAD, goodput::KNEES]),
            (
                COST,
                &[
                    cost::output::COST,
                    cost::output::REQUESTS,
                    cost::output::ROUTING,
                    cost::output::SENSITIVITY,
                    cost::output::CHECKS,
                ],
            ),
            (FIT, &[fit::OUTPUT]),
            (
                quality::NODE,
                &[
                    quality::output::QUALITY,
                    quality::output::TIERS,
                    quality::output::ROUTED,
                ],
            ),
        ];
        // A built-in evaluation's items and counts: the report lists what
        // each backend got right and cites the rows.
        for e in evaluate_nodes(p) {
            p.connect(e, report, evaluate::output::COUNTS)?;
            p.connect(e, report, evaluate::output::EVALUATION)?;
        }
        for (id, names) in optional {
            if let Some(node) = p.node(id) {
                let declared = p.graph[node].stage.outputs();
                for &name in names.iter().filter(|n| declared.contains(n)) {
                    p.connect(node, report, name)?;
                }
            }
        }
        Ok(())
    }
}
