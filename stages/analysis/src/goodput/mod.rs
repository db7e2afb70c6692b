//! goodput: serving under load. From each server cell's `requests` table
//! and manifest, one `load` row (throughput, latency tails, SLO attainment
//! and goodput over the steady window), and from the open-loop rate sweeps
//! one `knees` row per (backend, model, family): the highest rate that
//! still meets the SLO, and the highest the server still keeps up with.
//!
//! ```text
//! window_s     = (last steady end - first steady send) / 1e9       end = send + e2e
//! achieved_rps = completed steady requests / window_s
//! output_tps   = output tokens of completed steady requests / window_s
//! TPOT         = (e2e - ttft) / (output tokens - 1)                 outputs of one token excluded
//! attainment   = steady requests meeting every limit / steady requests   (failed = miss)
//! goodput_rps  = steady requests meeting every limit / window_s          (vLLM --goodput)
//! mlperf_pass  = no failure, p99 TTFT <= limit and p99 TPOT <= limit     (MLPerf server)
//! sustainable  = attainment >= slo.attainment
//! knee         = highest rate sustainable, with every lower rate too  (DistServe)
//! realised     = (steady - 1) / (last - first steady scheduled)           (open loop)
//! completion   = (completed - 1) / (last - first steady end)
//! saturation   = highest rate with completion >= 0.95 x realised, with every lower rate too
//! ```
//!
//! Quantiles are type 7 ([`assay_core::stats::quantile_sorted`]), as in
//! summarise. Every sum runs in request order and every grouping is a
//! BTreeMap, so the bytes do not depend on input or thread order.
//!
//! Layout: `request` (one request's TPOT and SLO verdict), `load` (the
//! `load` row of a cell) and `knee` (the `knees` row of a rate sweep).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use assay_core::config::Slo;
use assay_core::inputs::inputs_by_node;
use assay_core::stage::{Input, Outputs, Stage, StageContext, StageError};
use assay_core::tables::{self, RequestRow};
use assay_measure::Manifest;

mod knee;
mod load;
mod request;
#[cfg(test)]
mod tests;

pub use knee::knees;
pub use load::load_row;
pub use request::{meets, tpot_ms};

pub const GOODPUT_VERSION: u32 = 1;

/// The node id the planner gives the goodput stage; the report looks for
/// its outputs there.
pub const NODE: &str = "goodput";
/// Inputs, one of each per server cell, from node `measure/<cell>`.
pub use assay_measure::stage::output::{MANIFEST, REQUESTS};
/// Outputs.
pub const LOAD: &str = "load";
pub const KNEES: &str = "knees";

/// A rate is saturated when the server completes less than this fraction
/// of the offered rate.
pub const SATURATION_FRACTION: f64 = 0.95;

/// What the goodput stage needs from the spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoodputParams {
    /// Expanded scenario name (`chat-r2`) to the rate sweep it came from
    /// (`chat`). A scenario not listed has no family; an open-loop one is
    /// then a sweep of one rate of its own.
    #[serde(default)]
    pub families: BTreeMap<String, String>,
    /// The SLO of each load scenario, from the spec. SLOs are analysis, not
    /// measurement: they are kept out of the measure nodes' keys and
    /// manifests, so changing one re-runs this stage and the report only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slos: BTreeMap<String, Slo>,
}

#[derive(Debug, Clone, Default)]
pub struct GoodputStage {
    pub params: GoodputParams,
}

impl Stage for GoodputStage {
    fn kind(&self) -> &'static str {
        "goodput"
    }

    fn version(&self) -> u32 {
        GOODPUT_VERSION
    }

    fn outputs(&self) -> Vec<&'static str> {
        vec![KNEES, LOAD]
    }

    fn params(&self) -> Result<Value, StageError> {
        serde_json::to_value(&self.params).map_err(|e| StageError::params("goodput", e))
    }

    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError> {
        let mut rows = Vec::new();
        for (node, named) in inputs_by_node(inputs, &[REQUESTS, MANIFEST]) {
            ctx.check_cancel()?;
            let get = |name: &str| {
                named.get(name).copied().ok_or_else(|| {
                    StageError::Failed(format!("measure node {node} has no {name} output"))
                })
            };
            let mut manifest: Manifest = tables::read_json(ctx, get(MANIFEST)?)?;
            if let Some(load) = manifest.scenario.load.as_mut() {
                load.slo = self.params.slos.get(&manifest.scenario.name).cloned();
            }
            let requests: Vec<RequestRow> = tables::read_rows(ctx, get(REQUESTS)?)?;
            let family = self.params.families.get(&manifest.scenario.name).cloned();
            rows.push(load_row(&manifest, family, &requests));
        }
        rows.sort_by(|a, b| a.cell.cmp(&b.cell));
        let knees = knees(&rows);
        let mut out = Outputs::new();
        out.insert(LOAD.into(), tables::to_parquet(&rows)?);
        out.insert(KNEES.into(), tables::to_parquet(&knees)?);
        Ok(out)
    }
}
