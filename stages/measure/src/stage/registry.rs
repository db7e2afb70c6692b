//! The backend registry: one [`Backend`] entry per kind, owning everything
//! assay knows about that kind — its spec checks, which cells it runs, its
//! plan wiring (an export to read? the bandwidth probe?), the options that
//! enter its key, its compiled label, the library versions it was built
//! for, and how it measures a cell. The planner, the spec checks and the
//! worker ask the entry; nothing outside `kinds/` matches on a kind's name.
//!
//! The built-in entries are in `kinds/` (`kinds::builtin`); a build of
//! assay may register more with one line, `Registry::builtin().with(&X)`,
//! and hand the registry to `assay_engine::main_with`
//! (docs/architecture.md, "Adding a backend").

use serde_json::Value;

use super::{MeasureStage, ModelIdentity};
use crate::environment::Environment;
use crate::harness::{Attribution, CellMeasurement, InferenceBackend};
use assay_core::config::{BackendConfig, Scenario};
use assay_core::stage::{Input, StageContext, StageError};
use assay_core::tables::RequestRow;
use assay_model::decl::{ModelDecl, ModelInfo};
use assay_model::prepare::ExportFormat;

/// Where a kind does its work, which decides what the spec checks and the
/// planner expect of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// A library run in a worker process on this machine's cores (threads
    /// are checked against them; prepared weights are read).
    InProcess,
    /// A server measured over HTTP; the server batches, so cells are of
    /// batch 1, and load profiles run here.
    Server,
    /// A latency model on a virtual clock: machine-independent, never
    /// evidence.
    Simulated,
    /// Results another tool measured, read from its file: nothing runs
    /// here; evidence `imported`, the recorded machine in the manifest.
    Imported,
}

/// What the spec checks of one backend entry may read, besides the entry.
pub struct CheckContext<'a> {
    /// The backend's index in the spec's `backends` (its pointer is
    /// `/backends/{index}`).
    pub index: usize,
    pub models: &'a [ModelDecl],
    /// Every scenario of the spec, sweeps expanded.
    pub scenarios: &'a [Scenario],
    /// The command may measure (`check`, `run`): this machine must then
    /// have the kind's runtime (a library, a server binary).
    pub measuring: bool,
    /// Logical cores available to this process, when known and measuring.
    pub cores: Option<u32>,
}

impl CheckContext<'_> {
    /// The JSON pointer of a field of this backend, e.g. `at("/device")`.
    pub fn at(&self, field: &str) -> String {
        format!("/backends/{}{field}", self.index)
    }
}

/// Where spec checks report what they find: a JSON pointer into the spec
/// and a message. The engine locates the pointer in the YAML (line and
/// column) and sorts the diagnostics by position.
pub trait Findings {
    /// A problem with the field's value (reported at the value).
    fn at_value(&mut self, pointer: &str, message: String);
    /// A problem with the field itself: given where it should not be, or
    /// missing something beside it (reported at the key).
    fn at_key(&mut self, pointer: &str, message: String);
}

/// What an entry's `open` gets in the worker: the backend as the spec
/// gave it, the model and its weight files, and the context to hold.
pub struct Open<'a> {
    pub backend: &'a BackendConfig,
    pub info: &'a ModelInfo,
    pub files: &'a crate::candle::WeightFiles,
    /// Prompt plus generated tokens: the KV cache a run needs.
    pub capacity: usize,
}

/// What an evaluation asks of a kind (`evaluate/<backend>/<model>`): the
/// backend and model, the prompts as text and each one's generation
/// length.
pub struct Evaluation<'a> {
    pub backend: &'a BackendConfig,
    pub model: &'a ModelDecl,
    pub prompts: &'a [String],
    pub max_tokens: &'a [u32],
}

/// What a kind's generation produced: per prompt, in order, the tokens
/// the model's tokenizer gave it and the greedy output; what ran.
pub struct Generated {
    pub outputs: Vec<GeneratedText>,
    pub attribution: Attribution,
    /// The weights that ran.
    pub weights: ModelIdentity,
}

/// One prompt's greedy output.
pub struct GeneratedText {
    pub prompt_tokens: u32,
    pub output_tokens: u32,
    /// The output ids, detokenised by the model's tokenizer (special
    /// tokens kept, as in a measure node's `texts`).
    pub output: String,
}

/// What one measured cell produced, for the manifest and the outputs.
pub struct Measured {
    pub measurement: CellMeasurement,
    pub model_info: Option<ModelInfo>,
    /// The weights that ran (absent when simulated, or for a server model
    /// whose server does not say).
    pub weights: Option<ModelIdentity>,
    /// Wall-clock start, ms since the Unix epoch (absent when simulated).
    pub started_unix_ms: Option<u64>,
    /// Server cells: one row per request.
    pub requests: Option<Vec<RequestRow>>,
}

/// Everything assay knows about one backend kind. Only `name`, `summary`,
/// `execution` and `measure` are required; the rest default to what a
/// plain in-process library needs nothing for.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// The `kind:` a spec writes; unique in a registry.
    fn name(&self) -> &'static str;

    /// One paragraph: what runs and how (the spec schema's description).
    fn summary(&self) -> &'static str;

    fn execution(&self) -> Execution;

    /// The options section of a backend entry this kind reads (`ort`,
    /// `server`, ...); a section given to a backend of a kind that does
    /// not read it is refused.
    fn options_section(&self) -> Option<&'static str> {
        None
    }

    /// The cargo feature an optional kind needs, and whether this build
    /// has it. An unbuilt kind is still registered, so that a spec naming
    /// it gets the line that says how to build it rather than "unknown".
    fn feature(&self) -> Option<(&'static str, bool)> {
        None
    }

    /// The kind's own spec checks (the schema and the checks every kind
    /// shares have run). Report at pointers under `cx.at(...)` or at the
    /// models the backend cannot run.
    fn check(&self, _cx: &CheckContext<'_>, _b: &BackendConfig, _findings: &mut dyn Findings) {}

    /// Whether the backend runs this (model, scenario) pair: the spec's
    /// cells are the pairs that run. By default, in-process and simulated
    /// kinds run models with weights on scenarios without a load profile,
    /// and servers run scenarios of batch 1.
    fn runs(&self, _b: &BackendConfig, model: &ModelDecl, scenario: &Scenario) -> bool {
        match self.execution() {
            Execution::Server => scenario.batch == 1,
            Execution::InProcess | Execution::Simulated => {
                scenario.load.is_none() && !model.server_only()
            }
            // An imported kind says from its file.
            Execution::Imported => false,
        }
    }

    /// The export a cell reads besides the prepared model (GGUF, ONNX).
    fn needs_export(&self, _b: &BackendConfig, _model: &ModelDecl) -> Option<ExportFormat> {
        None
    }

    /// The cell reads a prepared model (a registry record and weights).
    fn reads_prepared_model(&self, _b: &BackendConfig, _model: &ModelDecl) -> bool {
        self.execution() == Execution::InProcess
    }

    /// The plan measures this machine's memory bandwidth beside the kind's
    /// cells (candle's roofline attribution reads it).
    fn wants_bandwidth(&self) -> bool {
        false
    }

    /// The backend with the kind's options made explicit, for the key: no
    /// section and an empty one are the same machine.
    fn resolve(&self, b: &BackendConfig, _stage: &MeasureStage) -> BackendConfig {
        b.clone()
    }

    /// The compiled path the spec asks for (`onnxruntime:all`,
    /// `torchscript`), whose evidence validate demands.
    fn compiled(&self, _b: &BackendConfig) -> Option<String> {
        None
    }

    /// The library versions this build was made for, into the environment
    /// (what actually loaded is in the attribution).
    fn libraries(&self, _stage: &MeasureStage) -> Vec<(String, String)> {
        Vec::new()
    }

    /// The machine facts that enter the measure key (the simulated kind,
    /// machine-independent, gives its model's version instead).
    fn key_environment(&self, stage: &MeasureStage) -> Option<Value> {
        crate::environment::key_facts(&stage.environment_facts())
    }

    /// The machine recorded in the manifest; `None` where the numbers do
    /// not depend on it (simulated).
    fn manifest_environment(&self, stage: &MeasureStage) -> Option<Environment> {
        Some(stage.environment_facts())
    }

    /// Imported kinds: what the results file says about the cell (the
    /// tool, its version, the recorded machine and configuration, which
    /// phases are aggregates), for the manifest's `imported`.
    fn imported(
        &self,
        _stage: &MeasureStage,
    ) -> Result<Option<crate::imported::ImportedFacts>, StageError> {
        Ok(None)
    }

    /// Measure one cell.
    fn measure(
        &self,
        stage: &MeasureStage,
        ctx: &StageContext<'_>,
        inputs: &[Input],
    ) -> Result<Measured, StageError>;

    /// In-process kinds: the backend over the cell's weights, built in the
    /// worker process.
    fn open(&self, _open: &Open<'_>) -> Result<Box<dyn InferenceBackend>, String> {
        Err(format!("{} does not run in a worker process", self.name()))
    }

    /// The kind can run an evaluation's prompts (`generate`): the spec
    /// checks refuse `quality.evaluate.backends` naming one that cannot.
    fn evaluates(&self) -> bool {
        false
    }

    /// Greedy outputs of an evaluation's prompts, with real tokenisation,
    /// on the weights a cell of this backend and model reads (the same
    /// inputs: `needs_export`, `reads_prepared_model`).
    fn generate(
        &self,
        _job: &Evaluation<'_>,
        _ctx: &StageContext<'_>,
        _inputs: &[Input],
    ) -> Result<Generated, StageError> {
        Err(StageError::Failed(format!(
            "backend kind {} cannot run an evaluation",
            self.name()
        )))
    }
}

/// The registered kinds, in the order the schema and `--help` list them.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: Vec<&'static dyn Backend>,
}

impl Registry {
    /// Register one more kind. A second entry of the same name replaces
    /// the first (a build may swap a built-in kind for its own).
    pub fn with(mut self, entry: &'static dyn Backend) -> Self {
        self.entries.retain(|e| e.name() != entry.name());
        self.entries.push(entry);
        self
    }

    pub fn get(&self, kind: &str) -> Option<&'static dyn Backend> {
        self.entries.iter().copied().find(|e| e.name() == kind)
    }

    pub fn entries(&self) -> impl Iterator<Item = &'static dyn Backend> + '_ {
        self.entries.iter().copied()
    }
}
