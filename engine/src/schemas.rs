//! Every JSON Schema assay checks in under `schemas/`, generated from the
//! Rust types. A test fails when the checked-in files are stale.

use assay_analysis::cost::sensitivity::SensitivityRow;
use assay_analysis::cost::{RequestCostRow, RoutingRow};
use assay_analysis::quality::{QualityRow, RoutedRow, TierRow};
use assay_analysis::validate::slo::SloRow;
use assay_core::tables::{
    CostRow, EnergyRow, EventRow, FitRow, KneeRow, LoadRow, OutputRow, PowerRow, RequestRow,
    RunRow, SummaryRow, ValidationRow,
};
use assay_report::ReportJson;
use assay_store::{Lockfile, NodeRecord};
use serde_json::Value;

fn to_value(schema: schemars::Schema) -> Value {
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

/// (relative path under `schemas/`, schema).
pub fn all_schemas() -> Vec<(&'static str, Value)> {
    vec![
        ("spec.schema.json", crate::spec::spec_schema()),
        (
            "program.schema.json",
            crate::spec::program::program_schema(),
        ),
        (
            "lockfile.schema.json",
            to_value(schemars::schema_for!(Lockfile)),
        ),
        (
            "node-record.schema.json",
            to_value(schemars::schema_for!(NodeRecord)),
        ),
        (
            "report.schema.json",
            to_value(schemars::schema_for!(ReportJson)),
        ),
        (
            "tables/events.schema.json",
            to_value(schemars::schema_for!(EventRow)),
        ),
        (
            "tables/runs.schema.json",
            to_value(schemars::schema_for!(RunRow)),
        ),
        (
            "tables/outputs.schema.json",
            to_value(schemars::schema_for!(OutputRow)),
        ),
        (
            "tables/texts.schema.json",
            to_value(schemars::schema_for!(assay_measure::text::TextRow)),
        ),
        (
            "tables/evaluation.schema.json",
            to_value(schemars::schema_for!(
                assay_measure::evaluate::EvaluationRow
            )),
        ),
        (
            "tables/server-requests.schema.json",
            to_value(schemars::schema_for!(RequestRow)),
        ),
        (
            "tables/power.schema.json",
            to_value(schemars::schema_for!(PowerRow)),
        ),
        (
            "tables/energy.schema.json",
            to_value(schemars::schema_for!(EnergyRow)),
        ),
        (
            "tables/validation.schema.json",
            to_value(schemars::schema_for!(ValidationRow)),
        ),
        (
            "tables/slo.schema.json",
            to_value(schemars::schema_for!(SloRow)),
        ),
        (
            "tables/summary.schema.json",
            to_value(schemars::schema_for!(SummaryRow)),
        ),
        (
            "tables/cost.schema.json",
            to_value(schemars::schema_for!(CostRow)),
        ),
        (
            "tables/fit.schema.json",
            to_value(schemars::schema_for!(FitRow)),
        ),
        (
            "tables/requests.schema.json",
            to_value(schemars::schema_for!(RequestCostRow)),
        ),
        (
            "tables/routing.schema.json",
            to_value(schemars::schema_for!(RoutingRow)),
        ),
        (
            "tables/sensitivity.schema.json",
            to_value(schemars::schema_for!(SensitivityRow)),
        ),
        (
            "tables/load.schema.json",
            to_value(schemars::schema_for!(LoadRow)),
        ),
        (
            "tables/knees.schema.json",
            to_value(schemars::schema_for!(KneeRow)),
        ),
        (
            "tables/quality.schema.json",
            to_value(schemars::schema_for!(QualityRow)),
        ),
        (
            "tables/tiers.schema.json",
            to_value(schemars::schema_for!(TierRow)),
        ),
        (
            "tables/routed.schema.json",
            to_value(schemars::schema_for!(RoutedRow)),
        ),
    ]
}

/// Bytes of a schema file as checked in.
pub fn schema_bytes(value: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
