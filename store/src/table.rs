//! Deterministic Parquet: fixed writer properties, no wall-clock or
//! library-version metadata, so the same rows always give the same bytes.

use std::sync::Arc;

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};

use crate::StoreError;

/// Rows per row group. Fixed: the value shapes the bytes.
const ROW_GROUP_ROWS: usize = 1 << 17;

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_compression(Compression::SNAPPY)
        .set_created_by("assay".to_string())
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build()
}

/// Encode one record batch as Parquet bytes.
pub fn to_parquet(batch: &RecordBatch) -> Result<Vec<u8>, StoreError> {
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(writer_properties()))
        .map_err(|e| StoreError::Table(e.to_string()))?;
    writer
        .write(batch)
        .map_err(|e| StoreError::Table(e.to_string()))?;
    writer
        .close()
        .map_err(|e| StoreError::Table(e.to_string()))?;
    Ok(buf)
}

/// Decode Parquet bytes into one record batch (empty tables keep their schema).
pub fn from_parquet(bytes: &[u8]) -> Result<RecordBatch, StoreError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))
        .map_err(|e| StoreError::Table(e.to_string()))?;
    let schema: Arc<Schema> = builder.schema().clone();
    let reader = builder
        .build()
        .map_err(|e| StoreError::Table(e.to_string()))?;
    let batches: Vec<RecordBatch> = reader
        .collect::<Result<_, _>>()
        .map_err(|e| StoreError::Table(e.to_string()))?;
    arrow::compute::concat_batches(&schema, &batches).map_err(|e| StoreError::Table(e.to_string()))
}

/// Whether `bytes` look like a Parquet file (magic at both ends).
pub fn is_parquet(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1")
}

/// Render a table for a terminal.
pub fn pretty(batch: &RecordBatch) -> Result<String, StoreError> {
    arrow::util::pretty::pretty_format_batches(std::slice::from_ref(batch))
        .map(|d| d.to_string())
        .map_err(|e| StoreError::Table(e.to_string()))
}

/// Rows of a table as JSON objects (column name -> value), in row order.
pub fn to_json_rows(batch: &RecordBatch) -> Result<Vec<serde_json::Value>, StoreError> {
    let mut buf = Vec::new();
    {
        let mut writer = arrow::json::ArrayWriter::new(&mut buf);
        writer
            .write(batch)
            .map_err(|e| StoreError::Table(e.to_string()))?;
        writer
            .finish()
            .map_err(|e| StoreError::Table(e.to_string()))?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buf).map_err(|e| StoreError::Table(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("cell", DataType::Utf8, false),
            Field::new("ms", DataType::Float64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Float64Array::from(vec![1.5, 2.5])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn same_rows_same_bytes_and_round_trip() {
        let a = to_parquet(&batch()).unwrap();
        let b = to_parquet(&batch()).unwrap();
        assert_eq!(a, b);
        assert!(is_parquet(&a));
        assert_eq!(from_parquet(&a).unwrap(), batch());
        assert!(pretty(&batch()).unwrap().contains("2.5"));
    }
}
