//! The measure stage: one node per (backend, model, scenario) cell. What
//! is common to every kind is here (the key, the outputs, the manifest);
//! what differs is asked of the kind's registry entry (`registry`).

pub mod registry;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::energy::{EnergySource, PowerOutcome, Sampling};
use crate::environment::{self, Environment};
use crate::harness::Attribution;
use assay_core::config::{BackendConfig, BackendKind, Boundary, Scenario};
use assay_core::domain::{Clock, Evidence};
use assay_core::stage::{Input, MachineUse, Outputs, Stage, StageContext, StageError};
use assay_core::tables::{self, to_json};
use assay_model::decl::{ModelDecl, ModelInfo};
use assay_model::prepare::ExportFormat;
use registry::{Backend, Execution, Registry};

pub const MEASURE_VERSION: u32 = 4;

/// The outputs of a measure node (docs/store.md).
pub mod output {
    /// One row per timed phase event (`tables::EventRow`).
    pub const EVENTS: &str = "events";
    /// One row per run (`tables::RunRow`).
    pub const RUNS: &str = "runs";
    /// Greedy output tokens per run (`tables::OutputRow`).
    pub const OUTPUTS: &str = "outputs";
    /// What was measured, how, where and what actually ran (`Manifest`).
    pub const MANIFEST: &str = "manifest";
    /// Server cells only: one row per request (`tables::RequestRow`).
    pub const REQUESTS: &str = "requests";
    /// Only when the spec asks for energy: power samples.
    pub const POWER: &str = "power";
    /// In-process cells whose boundary includes tokenisation: each run's
    /// prompts and outputs as text (`text::TextRow`).
    pub const TEXTS: &str = "texts";
}

/// One (backend, model, scenario) cell.
#[derive(Debug, Clone)]
pub struct MeasureStage {
    pub cell: String,
    pub backend: BackendConfig,
    /// The registry entry of `backend.kind`: everything that differs
    /// between kinds is asked of it.
    pub entry: &'static dyn Backend,
    pub model: ModelDecl,
    pub scenario: Scenario,
    pub boundary: Boundary,
    /// Sample power beside the measurement (the spec's `energy:`).
    pub energy: Option<Sampling>,
}

/// What the spec asked of the backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Requested {
    pub kind: BackendKind,
    pub device: String,
    pub dtype: String,
    pub threads: u32,
    /// The compiled path the spec asks for (`onnxruntime:all`,
    /// `torchscript`), whose evidence validate demands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compiled: Option<String>,
    /// Faults the spec injected on purpose (simulated `inject`), one line
    /// each: a degraded cell says that its fault is not a real one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub injected: Vec<String>,
}

/// The manifest of one measure node: what was measured, how, where, and what
/// actually ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub cell: String,
    pub backend: String,
    pub model: String,
    pub scenario: Scenario,
    /// `measured` or `simulated`. Simulated numbers are never evidence.
    pub evidence: String,
    /// `monotonic` (real time) or `virtual` (simulated time).
    pub clock: String,
    pub boundary: Boundary,
    pub requested: Requested,
    pub actual: Attribution,
    /// The model's architecture; absent for a model that exists only on a
    /// server (`served` alone), whose facts are in `actual.server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_info: Option<ModelInfo>,
    /// The weights that ran: digest of the weight files (absent when
    /// simulated), their format and storage dtype.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<ModelIdentity>,
    /// Wall-clock start of the measurement, milliseconds since the Unix
    /// epoch (absent when simulated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_unix_ms: Option<u64>,
    /// Energy sensor and sampling, when the spec asks for energy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<EnergySource>,
    /// The measuring machine; absent for simulated cells, which are
    /// machine-independent by construction, and for imported ones, whose
    /// recorded machine is in `imported`.
    pub environment: Option<Environment>,
    pub assay_version: String,
    /// Cells of kind `imported`: the file, the tool that wrote it, the
    /// machine and configuration it recorded, and which phases hold
    /// aggregates rather than single timings (docs/importers.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported: Option<crate::imported::ImportedFacts>,
    /// A cell on an NVIDIA GPU: the GPU as NVML saw it before and after the
    /// cell, and any other process that used it meanwhile
    /// (energy/gpu.rs). Absent where no GPU was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<crate::energy::gpu::GpuAttribution>,
}

/// Which weights a real measurement ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelIdentity {
    pub source: String,
    pub model_digest: String,
    /// `safetensors`, `gguf` or `onnx`.
    pub weights_format: String,
    /// blake3 of the weight file that was loaded.
    pub weights_blake3: String,
    pub stored_dtype: String,
}

/// Whether a backend runs a (model, scenario) pair: the spec's cells are
/// the pairs its kind's registry entry says run (`Backend::runs`). A kind
/// that is not registered runs nothing (the spec checks refuse it first).
pub fn cell_runs(
    registry: &Registry,
    backend: &BackendConfig,
    model: &ModelDecl,
    scenario: &Scenario,
) -> bool {
    registry
        .get(backend.kind.as_str())
        .is_some_and(|k| k.runs(backend, model, scenario))
}

impl MeasureStage {
    /// The export this cell reads besides the prepared model, if its kind
    /// needs one (GGUF for candle's q8_0 and a launched llama-server, ONNX
    /// for ONNX Runtime).
    pub fn needs_export(&self) -> Option<ExportFormat> {
        self.entry.needs_export(&self.backend, &self.model)
    }

    /// The cell reads a prepared model (a registry record).
    pub fn reads_prepared_model(&self) -> bool {
        self.entry.reads_prepared_model(&self.backend, &self.model)
    }

    pub fn execution(&self) -> Execution {
        self.entry.execution()
    }

    /// The cell tokenises in process, so it keeps what the text was
    /// (only then: other specs keep their outputs and keys).
    fn writes_texts(&self) -> bool {
        self.boundary.tokenizes() && self.execution() == Execution::InProcess
    }

    fn simulated(&self) -> bool {
        self.execution() == Execution::Simulated
    }

    fn requested(&self) -> Requested {
        Requested {
            kind: self.backend.kind.clone(),
            device: self.backend.device.clone(),
            dtype: self.backend.dtype.as_str().to_string(),
            threads: self.backend.threads,
            compiled: self.entry.compiled(&self.backend),
            injected: self
                .backend
                .simulated
                .as_ref()
                .and_then(|o| o.inject.as_ref())
                .map(|i| i.describe())
                .unwrap_or_default(),
        }
    }

    /// The model as it enters the key. Real backends get the model's
    /// identity from their inputs' digests; the simulated one from its
    /// declared architecture; a server from the model's name on it.
    fn model_params(&self) -> Value {
        match (&self.model.synthetic, self.execution()) {
            (Some(a), Execution::Simulated) => {
                json!({ "name": self.model.name, "synthetic": a.resolved() })
            }
            (_, execution) => match &self.model.served {
                // In-process backends never send the served name.
                Some(served) if execution == Execution::Server => {
                    json!({ "name": self.model.name, "served": served })
                }
                _ => json!({ "name": self.model.name }),
            },
        }
    }
}

impl Stage for MeasureStage {
    fn kind(&self) -> &'static str {
        "measure"
    }

    fn version(&self) -> u32 {
        MEASURE_VERSION
    }

    fn params(&self) -> Result<Value, StageError> {
        let mut params = json!({
            "cell": self.cell,
            "backend": self.entry.resolve(&self.backend, self),
            "model": self.model_params(),
            "scenario": self.scenario,
            "boundary": self.boundary,
        });
        // Only when asked for, so specs without energy keep their keys.
        if let Some(e) = self.energy {
            params["energy"] = json!(e);
        }
        Ok(params)
    }

    fn environment(&self) -> Option<Value> {
        self.entry.key_environment(self)
    }

    fn outputs(&self) -> Vec<&'static str> {
        let mut names = vec![
            output::EVENTS,
            output::MANIFEST,
            output::OUTPUTS,
            output::RUNS,
        ];
        if matches!(self.execution(), Execution::Server | Execution::Imported) {
            names.push(output::REQUESTS);
        }
        if self.energy.is_some() {
            names.push(output::POWER);
        }
        if self.writes_texts() {
            names.push(output::TEXTS);
        }
        names
    }

    fn machine(&self) -> MachineUse {
        MachineUse::Measures {
            device: self.backend.device.clone(),
        }
    }

    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError> {
        let measured = self.entry.measure(self, ctx, inputs)?;
        let m = measured.measurement;
        let manifest = Manifest {
            cell: self.cell.clone(),
            backend: self.backend.name.clone(),
            model: self.model.name.clone(),
            scenario: self.scenario.clone(),
            evidence: match self.execution() {
                Execution::Simulated => Evidence::Simulated,
                Execution::Imported => Evidence::Imported,
                Execution::InProcess | Execution::Server => Evidence::Measured,
            }
            .as_str()
            .into(),
            clock: if self.simulated() {
                Clock::Virtual
            } else {
                Clock::Monotonic
            }
            .as_str()
            .into(),
            boundary: self.boundary.clone(),
            requested: self.requested(),
            actual: m.attribution,
            model_info: measured.model_info,
            weights: measured.weights,
            started_unix_ms: measured.started_unix_ms,
            energy: match (&m.power, self.energy) {
                (Some(p), Some(sampling)) => Some(p.source(sampling)),
                _ => None,
            },
            environment: self.entry.manifest_environment(self),
            assay_version: env!("CARGO_PKG_VERSION").into(),
            imported: self.entry.imported(self)?,
            gpu: m.power.as_ref().and_then(PowerOutcome::gpu),
        };
        let mut out = Outputs::new();
        out.insert(output::EVENTS.into(), tables::to_parquet(&m.events)?);
        out.insert(output::RUNS.into(), tables::to_parquet(&m.runs)?);
        out.insert(output::OUTPUTS.into(), tables::to_parquet(&m.outputs)?);
        out.insert(output::MANIFEST.into(), to_json(&manifest)?);
        if matches!(self.execution(), Execution::Server | Execution::Imported) {
            let requests = measured.requests.unwrap_or_default();
            out.insert(output::REQUESTS.into(), tables::to_parquet(&requests)?);
        }
        if self.energy.is_some() {
            let rows = m
                .power
                .as_ref()
                .map_or_else(Vec::new, |p| p.rows(&self.cell));
            out.insert(output::POWER.into(), tables::to_parquet(&rows)?);
        }
        if self.writes_texts() {
            out.insert(output::TEXTS.into(), tables::to_parquet(&m.texts)?);
        }
        Ok(out)
    }
}

/// Now, in ms since the Unix epoch: when a real measurement started.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl MeasureStage {
    /// This machine, with the library versions the kind was built for.
    pub fn environment_facts(&self) -> Environment {
        let mut env = environment::detect();
        env.libraries.extend(self.entry.libraries(self));
        env
    }

    /// Each cell's own seed stream, independent of the order cells run in.
    pub fn stream_seed(&self) -> u64 {
        u64::from_le_bytes(
            blake3::hash(self.cell.as_bytes()).as_bytes()[..8]
                .try_into()
                .unwrap_or([0; 8]),
        )
    }
}
