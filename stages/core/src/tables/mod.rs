//! The artifact tables: one row type per table, stored as Parquet. The row
//! structs are the contract; their JSON Schemas are checked in under
//! `schemas/tables/`.
//!
//! - `rows`: the row type of every stored table;
//! - `codec`: rows to and from Parquet and JSON, and reading inputs as rows;
//! - `events`: the event phase as a code and the columnar event reader.

mod codec;
mod events;
mod rows;
#[cfg(test)]
mod tests;
mod typed;

pub use codec::{
    events_from_batch, events_from_parquet, from_parquet, read_events, read_json, read_rows,
    to_json, to_parquet,
};
pub use events::{EventColumns, Phase, read_event_columns};
pub use rows::{
    CostRow, EnergyRow, EventRow, FitRow, KneeRow, LoadRow, OutputRow, PowerRow, RequestRow,
    RunRow, SummaryRow, TextRow, ValidationRow,
};
