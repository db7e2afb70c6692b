use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use assay_store::{Digest, Store, StoreError};
use serde_json::Value;

/// One input artifact handed to a stage: which node produced it (its id and
/// key), under which output name, and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub node: String,
    /// Key of the producing node. Not part of a consumer's key unless the
    /// consumer writes it into its output (see `Stage::keyed_on_producers`).
    pub key: Digest,
    pub name: String,
    pub digest: Digest,
}

/// Named output artifacts as bytes; the engine stores them by digest.
pub type Outputs = BTreeMap<String, Vec<u8>>;

/// What a running stage may touch: the store (read-only use), its own key
/// (the seed for any randomness), the cancel flag and a progress sink.
pub struct StageContext<'a> {
    pub store: &'a Store,
    pub key: Digest,
    cancel: &'a AtomicBool,
    progress: &'a (dyn Fn(&str) + Sync),
}

impl<'a> StageContext<'a> {
    pub fn new(
        store: &'a Store,
        key: Digest,
        cancel: &'a AtomicBool,
        progress: &'a (dyn Fn(&str) + Sync),
    ) -> Self {
        StageContext {
            store,
            key,
            cancel,
            progress,
        }
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    pub fn check_cancel(&self) -> Result<(), StageError> {
        if self.cancelled() {
            Err(StageError::Cancelled)
        } else {
            Ok(())
        }
    }

    pub fn progress(&self, message: &str) {
        (self.progress)(message)
    }

    /// Read an input artifact (digest-checked).
    pub fn read(&self, input: &Input) -> Result<Vec<u8>, StageError> {
        Ok(self.store.get(&input.digest)?)
    }

    /// A 64-bit seed derived from the node key: randomness in a stage is a
    /// pure function of what the stage computes.
    pub fn seed(&self) -> u64 {
        let b = self.key.as_bytes();
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("input {name} from {node} is malformed: {message}")]
    BadInput {
        node: String,
        name: String,
        message: String,
    },
    #[error("{0}")]
    Failed(String),
    /// A failure with a record of what was received (e.g. the raw bytes of
    /// a malformed stream), which the engine stores beside the error.
    #[error("{message}")]
    FailedWithRecord { message: String, record: Vec<u8> },
    #[error("cancelled")]
    Cancelled,
}

impl StageError {
    /// A stage's params that do not serialise (see `Stage::params`).
    pub fn params(kind: &str, e: impl std::fmt::Display) -> Self {
        StageError::Failed(format!("{kind}: its parameters do not serialise: {e}"))
    }

    pub fn bad_input(input: &Input, message: impl std::fmt::Display) -> Self {
        StageError::BadInput {
            node: input.node.clone(),
            name: input.name.clone(),
            message: message.to_string(),
        }
    }
}

/// How a node uses the machine that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineUse {
    /// A light, pure function of its inputs: it runs beside other such
    /// nodes, and `verify` recomputes it and compares the bytes.
    Pure,
    /// A pure but heavy function (model preparation, export) that occupies
    /// this device: it runs alone, so it never disturbs a measurement, and
    /// `verify` checks its objects without running it again.
    Exclusive { device: String },
    /// It reads the machine (a measurement, the machine's bandwidth): it
    /// runs alone on this device, `--remeasure` repeats it, and `verify`
    /// checks its objects (a measurement cannot be recomputed).
    Measures { device: String },
}

impl MachineUse {
    /// The device the node occupies, for those that run alone.
    pub fn device(&self) -> Option<&str> {
        match self {
            MachineUse::Pure => None,
            MachineUse::Exclusive { device } | MachineUse::Measures { device } => Some(device),
        }
    }

    pub fn measures(&self) -> bool {
        matches!(self, MachineUse::Measures { .. })
    }
}

/// A stage kind. Implementations are plain data (their params) plus a pure
/// function from input artifacts to output artifacts.
pub trait Stage: Send + Sync {
    /// Stage kind name: `measure`, `validate`, ...
    fn kind(&self) -> &'static str;

    /// Bump when the stage's output bytes change for the same inputs; it is
    /// part of the key, so every cached node of this kind reruns.
    fn version(&self) -> u32;

    /// The parameters that determine the output, as JSON. Hashed canonically.
    /// A failure is an error, never a fallback value: two configurations
    /// must not share a key.
    fn params(&self) -> Result<Value, StageError>;

    /// Environment facts that make a node's output machine-specific (measure
    /// only). Part of the key; `None` for pure stages.
    fn environment(&self) -> Option<Value> {
        None
    }

    /// True for stages that write their producers' node keys into their
    /// outputs (the report's claims). Their own key then covers those keys,
    /// so a producer rerun with a new key but byte-identical output reruns
    /// this stage (no early cutoff here) and the written keys are never
    /// stale. Every other stage keys on input digests only.
    fn keyed_on_producers(&self) -> bool {
        false
    }

    /// The names of the outputs a node of this stage may write, as the
    /// stage's own constants. The planner refuses an edge that names any
    /// other output, and the executor refuses a run that writes one.
    fn outputs(&self) -> Vec<&'static str>;

    /// How the node uses the machine that runs it: the one declaration the
    /// executor (who runs alone), `--remeasure` (what is repeated) and
    /// `verify` (what is recomputed) read.
    fn machine(&self) -> MachineUse {
        MachineUse::Pure
    }

    /// Produce the outputs from the inputs.
    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError>;
}
