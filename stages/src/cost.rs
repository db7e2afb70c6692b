//! cost: throughput to shadow-price dollars and capacity, with the seed's
//! Appendix AA formulas:
//!
//! ```text
//! seconds_per_1M = 1e6 / tokens_per_s
//! usd_per_1M     = (seconds_per_1M / 3600) * usd_per_hour
//! mean load      = tokens_per_month / (30 * 86400)        (30-day month)
//! workers        = max(1, ceil(mean_load / tokens_per_s * burst_factor))
//! ```

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::stage::{Input, Outputs, Stage, StageContext, StageError};
use crate::tables::{self, CostRow, SummaryRow};
use crate::validate::find_input;

pub const COST_VERSION: u32 = 1;
pub const SECONDS_PER_MONTH: f64 = 30.0 * 86_400.0;
pub const HOURS_PER_MONTH: f64 = 30.0 * 24.0;

/// Phases whose throughput is priced.
pub const PRICED_PHASES: [&str; 3] = ["prefill", "decode", "e2e"];

/// Pricing and volume assumptions. Every result is a shadow price: compute
/// time priced by the hour, not a total cost of ownership.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CostParams {
    /// Price of one worker-hour per pricing tier, e.g. `{on_demand: 1.0, spot: 0.3}`.
    pub usd_per_hour: BTreeMap<String, f64>,
    /// Planned volume, tokens per (30-day) month.
    pub tokens_per_month: f64,
    /// Ratio of peak (p95) load to mean load used for capacity planning.
    #[serde(default = "default_burst")]
    pub burst_factor: f64,
}

fn default_burst() -> f64 {
    1.0
}

pub fn seconds_per_1m(tokens_per_s: f64) -> f64 {
    1e6 / tokens_per_s
}

pub fn usd_per_1m(tokens_per_s: f64, usd_per_hour: f64) -> f64 {
    seconds_per_1m(tokens_per_s) / 3600.0 * usd_per_hour
}

pub fn mean_load_tokens_per_s(tokens_per_month: f64) -> f64 {
    tokens_per_month / SECONDS_PER_MONTH
}

/// (utilisation-perfect workers, workers required at burst).
pub fn workers(tokens_per_month: f64, tokens_per_s: f64, burst_factor: f64) -> (f64, u64) {
    let perfect = mean_load_tokens_per_s(tokens_per_month) / tokens_per_s;
    let required = (perfect * burst_factor).ceil().max(1.0) as u64;
    (perfect, required)
}

#[derive(Debug, Clone)]
pub struct CostStage {
    pub params: CostParams,
}

impl Stage for CostStage {
    fn kind(&self) -> &'static str {
        "cost"
    }

    fn version(&self) -> u32 {
        COST_VERSION
    }

    fn params(&self) -> Value {
        serde_json::to_value(&self.params).unwrap_or(Value::Null)
    }

    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError> {
        let summary: Vec<SummaryRow> = tables::read_rows(ctx, find_input(inputs, "summary")?)?;
        let p = &self.params;
        let mut rows = Vec::new();
        for s in summary
            .iter()
            .filter(|s| PRICED_PHASES.contains(&s.phase.as_str()) && s.tokens_per_s > 0.0)
        {
            for (tier, usd_per_hour) in &p.usd_per_hour {
                let (perfect, required) =
                    workers(p.tokens_per_month, s.tokens_per_s, p.burst_factor);
                rows.push(CostRow {
                    cell: s.cell.clone(),
                    backend: s.backend.clone(),
                    model: s.model.clone(),
                    scenario: s.scenario.clone(),
                    phase: s.phase.clone(),
                    evidence: s.evidence.clone(),
                    tier: tier.clone(),
                    usd_per_hour: *usd_per_hour,
                    tokens_per_s: s.tokens_per_s,
                    seconds_per_1m: seconds_per_1m(s.tokens_per_s),
                    usd_per_1m: usd_per_1m(s.tokens_per_s, *usd_per_hour),
                    mean_load_tokens_per_s: mean_load_tokens_per_s(p.tokens_per_month),
                    workers_utilization_perfect: perfect,
                    workers_required: required,
                    usd_per_month: required as f64 * usd_per_hour * HOURS_PER_MONTH,
                });
            }
        }
        let mut out = Outputs::new();
        out.insert("cost".into(), tables::to_parquet(&rows)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(x: f64, digits: i32) -> f64 {
        let f = 10f64.powi(digits);
        (x * f).round() / f
    }

    #[test]
    fn appendix_v1_100m_tokens_per_month() {
        // 38.6 tokens/s mean; a 200 tok/s backend needs 0.19 workers, min 1.
        assert_eq!(round(mean_load_tokens_per_s(100e6), 1), 38.6);
        let (perfect, required) = workers(100e6, 200.0, 1.0);
        assert_eq!(round(perfect, 2), 0.19);
        assert_eq!(required, 1);
    }

    #[test]
    fn appendix_v2_1b_tokens_per_month_with_burst() {
        // 385.8 tokens/s; 100 tok/s -> 3.86 workers; 5x burst -> ~20 workers.
        assert_eq!(round(mean_load_tokens_per_s(1e9), 1), 385.8);
        let (perfect, required) = workers(1e9, 100.0, 5.0);
        assert_eq!(round(perfect, 2), 3.86);
        assert_eq!(required, 20);
    }

    #[test]
    fn appendix_v3_10b_tokens_per_month() {
        assert_eq!(mean_load_tokens_per_s(10e9).round(), 3858.0);
    }

    #[test]
    fn shadow_price_formula() {
        // 1000 tok/s: 1000 s per 1M tokens = 0.2778 h; at $3.60/h = $1.00.
        assert!((usd_per_1m(1000.0, 3.6) - 1.0).abs() < 1e-12);
        assert_eq!(seconds_per_1m(500.0), 2000.0);
    }
}
