//! Rows to and from deterministic Parquet and canonical JSON, and reading
//! input artifacts as rows.

use assay_store::table;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_arrow::schema::{SchemaLike, TracingOptions};

use super::rows::EventRow;
use crate::stage::{Input, StageError};

fn tracing() -> TracingOptions {
    TracingOptions::default()
        .strings_as_large_utf8(false)
        .allow_null_fields(true)
}

/// Rows to deterministic Parquet bytes.
pub fn to_parquet<T: Serialize + DeserializeOwned>(rows: &[T]) -> Result<Vec<u8>, StageError> {
    let fields = Vec::<arrow::datatypes::FieldRef>::from_type::<T>(tracing())
        .map_err(|e| StageError::Failed(format!("table schema: {e}")))?;
    let batch = serde_arrow::to_record_batch(&fields, &rows)
        .map_err(|e| StageError::Failed(format!("table encoding: {e}")))?;
    Ok(table::to_parquet(&batch)?)
}

/// Parquet bytes to rows.
pub fn from_parquet<T: DeserializeOwned>(bytes: &[u8]) -> Result<Vec<T>, String> {
    let batch = table::from_parquet(bytes).map_err(|e| e.to_string())?;
    serde_arrow::from_record_batch(&batch).map_err(|e| e.to_string())
}

/// Raw events decoded column by column. Event tables are the largest
/// artifacts by far (one row per decode step), and the generic serde path
/// costs several times the Parquet read itself at millions of rows (see the
/// `summarise_scale` bench); this reads the same schema directly. A test
/// checks it against the serde path.
pub fn events_from_parquet(bytes: &[u8]) -> Result<Vec<EventRow>, String> {
    let batch = table::from_parquet(bytes).map_err(|e| e.to_string())?;
    events_from_batch(&batch)
}

/// The decoding half of [`events_from_parquet`].
pub fn events_from_batch(batch: &arrow::array::RecordBatch) -> Result<Vec<EventRow>, String> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{UInt32Type, UInt64Type};
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| format!("events table has no column {name}"))
    };
    let strings = |name: &str| -> Result<_, String> {
        column(name)?
            .as_string_opt::<i32>()
            .ok_or_else(|| format!("events column {name} is not a string column"))
    };
    let u32s = |name: &str| -> Result<_, String> {
        column(name)?
            .as_primitive_opt::<UInt32Type>()
            .ok_or_else(|| format!("events column {name} is not a u32 column"))
    };
    let u64s = |name: &str| -> Result<_, String> {
        column(name)?
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| format!("events column {name} is not a u64 column"))
    };
    let bools = |name: &str| -> Result<_, String> {
        column(name)?
            .as_boolean_opt()
            .ok_or_else(|| format!("events column {name} is not a boolean column"))
    };
    let (cell, phase) = (strings("cell")?, strings("phase")?);
    let (repetition, token_index, tokens) =
        (u32s("repetition")?, u32s("token_index")?, u32s("tokens")?);
    let (warmup, cold) = (bools("warmup")?, bools("cold")?);
    let (start_ns, ns) = (u64s("start_ns")?, u64s("ns")?);
    for (name, array) in [
        ("cell", cell as &dyn Array),
        ("phase", phase),
        ("repetition", repetition),
        ("tokens", tokens),
        ("warmup", warmup),
        ("cold", cold),
        ("start_ns", start_ns),
        ("ns", ns),
    ] {
        if array.null_count() > 0 {
            return Err(format!("events column {name} has nulls"));
        }
    }
    let mut rows = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        rows.push(EventRow {
            cell: cell.value(i).to_string(),
            repetition: repetition.value(i),
            warmup: warmup.value(i),
            cold: cold.value(i),
            phase: phase.value(i).to_string(),
            token_index: token_index.is_valid(i).then(|| token_index.value(i)),
            tokens: tokens.value(i),
            start_ns: start_ns.value(i),
            ns: ns.value(i),
        });
    }
    Ok(rows)
}

/// Read a measure node's events, naming the input on failure.
pub fn read_events(
    ctx: &crate::StageContext<'_>,
    input: &Input,
) -> Result<Vec<EventRow>, StageError> {
    let bytes = ctx.read(input)?;
    events_from_parquet(&bytes).map_err(|e| StageError::bad_input(input, e))
}
/// Read an input artifact as rows of `T`, naming the input on failure.
pub fn read_rows<T: DeserializeOwned>(
    ctx: &crate::StageContext<'_>,
    input: &Input,
) -> Result<Vec<T>, StageError> {
    let bytes = ctx.read(input)?;
    from_parquet(&bytes).map_err(|e| StageError::bad_input(input, e))
}

/// Read a JSON input artifact.
pub fn read_json<T: DeserializeOwned>(
    ctx: &crate::StageContext<'_>,
    input: &Input,
) -> Result<T, StageError> {
    let bytes = ctx.read(input)?;
    serde_json::from_slice(&bytes).map_err(|e| StageError::bad_input(input, e))
}

/// Canonical JSON bytes of an artifact: pretty, sorted keys (BTreeMap and
/// declaration order), trailing newline.
pub fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StageError> {
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|e| StageError::Failed(e.to_string()))?;
    bytes.push(b'\n');
    Ok(bytes)
}
