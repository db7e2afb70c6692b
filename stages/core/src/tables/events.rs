//! The phase of an event as a one-byte code, and the columnar reader of
//! event tables that validate and summarise use.

use super::rows::EventRow;
use crate::stage::{Input, StageError};

/// The phase of an event as a one-byte code: the hot loops of validate and
/// summarise compare codes, never strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Phase {
    Load = 0,
    Prefill = 1,
    Ttft = 2,
    Decode = 3,
    E2e = 4,
    /// Text prompts to ids inside a run (`tokenization: included`); also
    /// inside the run's `ttft` and `e2e`. After the five older phases, so
    /// that their codes and summary rows are as they were.
    Tokenize = 5,
    /// Generated ids to text at the end of a run; also inside its `e2e`.
    Detokenize = 6,
    /// A compiler's own phase before the runs (torch.compile's first call
    /// on the cell's shapes, the `python` kind): like `load`, once per cell
    /// and in no run. Codes live only in memory (tables store names), so
    /// adding it renumbers nothing stored.
    Compile = 7,
    /// A name no stage knows: counted where every event counts, else
    /// ignored, as an unknown string was before.
    Other = 8,
}

impl Phase {
    /// The known phases, in report order (`Phase as usize` indexes it).
    pub const KNOWN: [Phase; 8] = [
        Phase::Load,
        Phase::Prefill,
        Phase::Ttft,
        Phase::Decode,
        Phase::E2e,
        Phase::Tokenize,
        Phase::Detokenize,
        Phase::Compile,
    ];

    pub fn from_name(name: &str) -> Phase {
        match name {
            "load" => Phase::Load,
            "prefill" => Phase::Prefill,
            "ttft" => Phase::Ttft,
            "decode" => Phase::Decode,
            "e2e" => Phase::E2e,
            "tokenize" => Phase::Tokenize,
            "detokenize" => Phase::Detokenize,
            "compile" => Phase::Compile,
            _ => Phase::Other,
        }
    }

    /// The stored name; `other` stands for any unknown one.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Load => "load",
            Phase::Prefill => "prefill",
            Phase::Ttft => "ttft",
            Phase::Decode => "decode",
            Phase::E2e => "e2e",
            Phase::Tokenize => "tokenize",
            Phase::Detokenize => "detokenize",
            Phase::Compile => "compile",
            Phase::Other => "other",
        }
    }

    fn from_code(code: u8) -> Phase {
        Phase::KNOWN
            .get(usize::from(code))
            .copied()
            .unwrap_or(Phase::Other)
    }
}

/// The columns of an events table that validate and summarise read, as
/// Arrow buffers; row `i` of each is event `i`, in table order. Event tables
/// are the largest artifacts by far (one row per decode step), and these
/// stages need a handful of numbers per event: reading just those columns
/// and grouping rows by index costs a fraction of materialising an
/// `EventRow` with two heap strings per event (see the `summarise_scale`
/// bench). `start_ns` is not read (only energy gating needs it, and that
/// takes rows).
#[derive(Debug, Clone)]
pub struct EventColumns {
    /// `Phase as u8` per event, decoded once from the phase strings.
    phase: arrow::buffer::ScalarBuffer<u8>,
    pub repetition: arrow::buffer::ScalarBuffer<u32>,
    pub warmup: arrow::buffer::BooleanBuffer,
    pub cold: arrow::buffer::BooleanBuffer,
    /// Null for load, prefill and e2e.
    pub token_index: arrow::array::UInt32Array,
    pub tokens: arrow::buffer::ScalarBuffer<u32>,
    pub ns: arrow::buffer::ScalarBuffer<u64>,
    /// Only when asked for: a measure node's table holds one cell, which its
    /// manifest names, so the stages never read this column.
    pub cell: Option<arrow::array::StringViewArray>,
}

/// The columns [`EventColumns`] reads, in its order; `cell` is last.
const EVENT_COLUMNS: [&str; 8] = [
    "phase",
    "repetition",
    "warmup",
    "cold",
    "token_index",
    "tokens",
    "ns",
    "cell",
];

impl EventColumns {
    pub fn len(&self) -> usize {
        self.ns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ns.is_empty()
    }

    pub fn phase(&self, i: usize) -> Phase {
        Phase::from_code(self.phase[i])
    }

    /// Event `i`'s token index (None for load, prefill and e2e).
    pub fn token_index(&self, i: usize) -> Option<u32> {
        use arrow::array::Array;
        self.token_index
            .is_valid(i)
            .then(|| self.token_index.value(i))
    }

    /// Events `offset..offset + len`, sharing the buffers (no copy).
    pub fn slice(&self, offset: usize, len: usize) -> EventColumns {
        EventColumns {
            phase: self.phase.slice(offset, len),
            repetition: self.repetition.slice(offset, len),
            warmup: self.warmup.slice(offset, len),
            cold: self.cold.slice(offset, len),
            token_index: self.token_index.slice(offset, len),
            tokens: self.tokens.slice(offset, len),
            ns: self.ns.slice(offset, len),
            cell: self.cell.as_ref().map(|c| c.slice(offset, len)),
        }
    }

    /// The columns of rows already in memory (tests, small tables).
    pub fn from_rows(rows: &[EventRow]) -> EventColumns {
        let column = |f: &dyn Fn(&EventRow) -> bool| rows.iter().map(f).collect();
        EventColumns {
            phase: rows
                .iter()
                .map(|e| Phase::from_name(&e.phase) as u8)
                .collect(),
            repetition: rows.iter().map(|e| e.repetition).collect(),
            warmup: column(&|e| e.warmup),
            cold: column(&|e| e.cold),
            token_index: rows.iter().map(|e| e.token_index).collect(),
            tokens: rows.iter().map(|e| e.tokens).collect(),
            ns: rows.iter().map(|e| e.ns).collect(),
            cell: Some(rows.iter().map(|e| Some(e.cell.as_str())).collect()),
        }
    }

    /// Read the columns from an events table's Parquet bytes (taken as
    /// `Bytes`, so a `Vec<u8>` from the store is not copied), `cell` only
    /// when `with_cell`. Strings are read as views: a phase or cell name of
    /// up to 12 bytes is decoded into its 16-byte view without touching
    /// the heap.
    pub fn from_parquet(
        bytes: impl Into<bytes::Bytes>,
        with_cell: bool,
    ) -> Result<EventColumns, String> {
        use arrow::datatypes::{DataType, Schema};
        use parquet::arrow::ProjectionMask;
        use parquet::arrow::arrow_reader::{
            ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
        };
        let bytes: bytes::Bytes = bytes.into();
        let err = |e: parquet::errors::ParquetError| e.to_string();
        let plain = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new()).map_err(err)?;
        let file = plain.schema().clone();
        let wanted = &EVENT_COLUMNS[..EVENT_COLUMNS.len() - usize::from(!with_cell)];
        let roots = wanted
            .iter()
            .map(|name| {
                file.index_of(name)
                    .map_err(|_| format!("events table has no column {name}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let fields: Vec<arrow::datatypes::Field> = file
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
                _ => f.as_ref().clone(),
            })
            .collect();
        let hint = Schema::new_with_metadata(fields, file.metadata().clone());
        let options = ArrowReaderOptions::new().with_schema(std::sync::Arc::new(hint));
        let meta = ArrowReaderMetadata::try_new(plain.metadata().clone(), options).map_err(err)?;
        let mask = ProjectionMask::roots(meta.parquet_schema(), roots);
        // One batch for the whole table: no concatenation afterwards.
        let rows = meta.metadata().file_metadata().num_rows().max(1) as usize;
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, meta)
            .with_projection(mask)
            .with_batch_size(rows)
            .build()
            .map_err(err)?;
        let schema = arrow::array::RecordBatchReader::schema(&reader);
        let mut batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let batch = match batches.pop() {
            Some(batch) if batches.is_empty() => batch,
            last => {
                batches.extend(last);
                arrow::compute::concat_batches(&schema, &batches).map_err(|e| e.to_string())?
            }
        };
        Self::from_batch(&batch, with_cell)
    }

    /// The typed columns of a batch read by [`Self::from_parquet`].
    fn from_batch(
        batch: &arrow::array::RecordBatch,
        with_cell: bool,
    ) -> Result<EventColumns, String> {
        use arrow::array::{Array, AsArray};
        use arrow::datatypes::{UInt32Type, UInt64Type};
        let column = |name: &str| -> Result<&dyn Array, String> {
            let array = batch
                .column_by_name(name)
                .ok_or_else(|| format!("events table has no column {name}"))?;
            if name != "token_index" && array.null_count() > 0 {
                return Err(format!("events column {name} has nulls"));
            }
            Ok(array.as_ref())
        };
        let wrong = |name: &str, what: &str| format!("events column {name} is not a {what} column");
        let u32s = |name: &str| {
            column(name)?
                .as_primitive_opt::<UInt32Type>()
                .cloned()
                .ok_or_else(|| wrong(name, "u32"))
        };
        let bools = |name: &str| {
            column(name)?
                .as_boolean_opt()
                .map(|b| b.values().clone())
                .ok_or_else(|| wrong(name, "boolean"))
        };
        let strings = |name: &str| {
            column(name)?
                .as_string_view_opt()
                .cloned()
                .ok_or_else(|| wrong(name, "string"))
        };
        let ns = column("ns")?
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| wrong("ns", "u64"))?;
        Ok(EventColumns {
            phase: phase_codes(&strings("phase")?).into(),
            repetition: u32s("repetition")?.values().clone(),
            warmup: bools("warmup")?,
            cold: bools("cold")?,
            token_index: u32s("token_index")?,
            tokens: u32s("tokens")?.values().clone(),
            ns: ns.values().clone(),
            cell: if with_cell {
                Some(strings("cell")?)
            } else {
                None
            },
        })
    }
}

/// Phase codes of a phase column. Events of a phase come in runs, and equal
/// views are equal strings, so a name is matched only where the view changes.
fn phase_codes(phase: &arrow::array::StringViewArray) -> Vec<u8> {
    let mut codes = Vec::with_capacity(phase.views().len());
    let mut last: Option<(u128, u8)> = None;
    for (i, view) in phase.views().iter().enumerate() {
        let code = match last {
            Some((v, code)) if v == *view => code,
            _ => {
                let code = Phase::from_name(phase.value(i)) as u8;
                last = Some((*view, code));
                code
            }
        };
        codes.push(code);
    }
    codes
}

/// Read a measure node's event columns (not `cell`), naming the input on
/// failure.
pub fn read_event_columns(
    ctx: &crate::StageContext<'_>,
    input: &Input,
) -> Result<EventColumns, StageError> {
    let bytes = ctx.read(input)?;
    EventColumns::from_parquet(bytes, false).map_err(|e| StageError::bad_input(input, e))
}
