//! `validate`, `summarise`, `goodput`, `cost`, `quality` and `fit`: pure
//! functions of stored measurements.

use std::sync::Arc;

use assay_analysis::cost::CostStage;
use assay_analysis::fit::FitStage;
use assay_analysis::goodput::{self, GoodputParams, GoodputStage};
use assay_analysis::quality::{self, QualityParams, QualityStage};
use assay_analysis::summarise::{self, SummariseStage};
use assay_analysis::validate::{self, ValidateStage};
use assay_measure::Execution;
use assay_measure::bandwidth;
use assay_measure::evaluate;
use assay_measure::stage::output as measured;

use super::evaluate::evaluate_nodes;
use super::measure::BANDWIDTH;
use super::{PlanError, Planning, StagePlanner};

pub(super) const VALIDATE: &str = "validate";
pub(super) const SUMMARISE: &str = "summarise";
pub(super) const COST: &str = "cost";
pub(super) const FIT: &str = "fit";

pub(super) struct Validate;

impl StagePlanner for Validate {
    /// One node over every cell's events, runs, outputs and manifest (and
    /// power samples, when the spec asks for energy).
    fn plan(&self, p: &mut Planning<'_>) -> Result<(), PlanError> {
        let spec = &p.loaded.spec;
        let energy = spec.energy.is_some();
        let validate = p.add(
            VALIDATE.into(),
            Arc::new(ValidateStage {
                params: spec.validate.clone().unwrap_or_default(),
                energy: spec.energy.map(|e| e.gate()),
                slo: spec.slo.clone(),
            }),
        );
        for m in p.cell_nodes.clone() {
            for name in [
                measured::EVENTS,
                measured::RUNS,
                measured::OUTPUTS,
                measured::MANIFEST,
            ] {
                p.connect(m, validate, name)?;
            }
            if energy {
                p.connect(m, validate, measured::POWER)?;
            }
        }
        Ok(())
    }
}

pub(super) struct Summarise;

impl StagePlanner for Summarise {
    /// Every cell's events and manifest, validate's verdicts (and energy),
    /// and the bandwidth probe where there is one.
    fn plan(&self, p: &mut Planning<'_>) -> Result<(), PlanError> {
        let energy = p.loaded.spec.energy.is_some();
        let summarise = p.add(SUMMARISE.into(), Arc::new(SummariseStage));
        for m in p.cell_nodes.clone() {
            for name in [measured::EVENTS, measured::MANIFEST] {
                p.connect(m, summarise, name)?;
            }
        }
        let validate = p.require(VALIDATE)?;
        p.connect(validate, summarise, validate::output::VALIDATION)?;
        if energy {
            p.connect(validate, summarise, validate::output::ENERGY)?;
        }
        if let Some(bw) = p.node(BANDWIDTH) {
            p.connect(bw, summarise, bandwidth::OUTPUT)?;
        }
        Ok(())
    }
}

pub(super) struct Goodput;

impl StagePlanner for Goodput {
    /// Serving under load: only specs with load profiles have the node, so
    /// other specs keep their plans and keys.
    fn plan(&self, p: &mut Planning<'_>) -> Result<(), PlanError> {
        let load_cells: Vec<_> = p
            .cells
            .iter()
            .zip(&p.cell_nodes)
            .filter(|(c, _)| c.execution() == Execution::Server && c.scenario.load.is_some())
            .map(|(_, &node)| node)
            .collect();
        if load_cells.is_empty() {
            return Ok(());
        }
        let loaded = p.loaded;
        let goodput = p.add(
            goodput::NODE.into(),
            Arc::new(GoodputStage {
                params: GoodputParams {
                    families: loaded.spec.rate_families(),
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
        for m in load_cells {
            p.connect(m, goodput, measured::REQUESTS)?;
            p.connect(m, goodput, measured::MANIFEST)?;
        }
        Ok(())
    }
}

pub(super) struct Cost;

impl StagePlanner for Cost {
    /// With the spec's `cost:`, over the summary.
    fn plan(&self, p: &mut Planning<'_>) -> Result<(), PlanError> {
        let Some(params) = p.loaded.spec.cost.clone() else {
            return Ok(());
        };
        let cost = p.add(COST.into(), Arc::new(CostStage { params }));
        let summarise = p.require(SUMMARISE)?;
        p.connect(summarise, cost, summarise::OUTPUT)
    }
}

pub(super) struct Fit;

impl StagePlanner for Fit {
    /// With the spec's `fit:`, over the summary.
    fn plan(&self, p: &mut Planning<'_>) -> Result<(), PlanError> {
        let Some(params) = p.loaded.spec.fit.clone() else {
            return Ok(());
        };
        let fit = p.add(FIT.into(), Arc::new(FitStage { params }));
        let summarise = p.require(SUMMARISE)?;
        p.connect(summarise, fit, summarise::OUTPUT)
    }
}

pub(super) struct Quality;

impl StagePlanner for Quality {
    /// With the spec's `quality:` (and `cost.request_mix`, which the spec
    /// checks require), over the summary. Its params carry the counts and
    /// their file's digest, so an edited counts file reruns this node and
    /// the report, never a measurement; a built-in evaluation's counts are
    /// its evaluate nodes' outputs.
    fn plan(&self, p: &mut Planning<'_>) -> Result<(), PlanError> {
        let spec = &p.loaded.spec;
        let (Some(q), Some(mut cost)) = (spec.quality.clone(), spec.cost.clone()) else {
            return Ok(());
        };
        // The energy price does not enter a request's compute price.
        cost.energy = None;
        let node = p.add(
            quality::NODE.into(),
            Arc::new(QualityStage {
                params: QualityParams {
                    counts_file: q.source_file().to_string(),
                    counts_blake3: q.file_blake3.clone().unwrap_or_default(),
                    counts: q.counts,
                    cost,
                    evaluated: q.evaluate.map(|e| e.backends).unwrap_or_default(),
                },
            }),
        );
        let summarise = p.require(SUMMARISE)?;
        p.connect(summarise, node, summarise::OUTPUT)?;
        for e in evaluate_nodes(p) {
            p.connect(e, node, evaluate::output::COUNTS)?;
        }
        Ok(())
    }
}
