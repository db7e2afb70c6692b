use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::candle::{CANDLE_VERSION, WeightFiles};
use crate::energy::{self, EnergySource, PowerOutcome, Sampling};
use crate::environment::{self, Environment};
use crate::harness::{self, Attribution, CellMeasurement};
use crate::simulated::{SIM_MODEL_VERSION, SimulatedBackend};
use crate::worker::{self, Engine, WorkerRequest};
use assay_core::config::Dtype;
use assay_core::config::{BackendConfig, BackendKind, Boundary, Scenario};
use assay_core::inputs::find_input;
use assay_core::stage::{Input, MachineUse, Outputs, Stage, StageContext, StageError};
use assay_core::tables::{self, to_json};
use assay_model::decl::{ModelDecl, ModelInfo};
use assay_model::prepare::gguf::GgufType;
use assay_model::prepare::{ExportFormat, ModelRecord};

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
}

/// One (backend, model, scenario) cell.
#[derive(Debug, Clone)]
pub struct MeasureStage {
    pub cell: String,
    pub backend: BackendConfig,
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
    /// machine-independent by construction.
    pub environment: Option<Environment>,
    pub assay_version: String,
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
/// the pairs that can run. In-process backends run prepared models on
/// scenarios without a load profile; server backends run scenarios of
/// batch 1 (the server batches), and a llama-server assay launches needs a
/// prepared model to serve.
pub fn cell_runs(backend: &BackendConfig, model: &ModelDecl, scenario: &Scenario) -> bool {
    if backend.kind.is_server() {
        let launches = backend.kind == BackendKind::OpenAi
            && backend.server.as_ref().is_none_or(|s| s.url.is_none());
        scenario.batch == 1 && !(launches && model.server_only())
    } else {
        scenario.load.is_none() && !model.server_only()
    }
}

impl MeasureStage {
    /// The export this cell reads besides the registry record and the
    /// safetensors weights: GGUF q8_0 for candle's quantised path (unless
    /// the model already is a GGUF file), ONNX for ONNX Runtime.
    pub fn needs_export(&self) -> Option<ExportFormat> {
        match self.backend.kind {
            BackendKind::Candle
                if self.backend.dtype == Dtype::Q8_0
                    && !self
                        .model
                        .path
                        .as_deref()
                        .is_some_and(|p| p.ends_with(".gguf")) =>
            {
                Some(ExportFormat::Gguf(GgufType::Q8_0))
            }
            BackendKind::Ort => Some(ExportFormat::Onnx),
            // assay launches llama-server on the GGUF export of the dtype
            // (a local GGUF model is served as it is).
            BackendKind::OpenAi if self.launches_server() && !self.local_gguf() => {
                Some(ExportFormat::Gguf(if self.backend.dtype == Dtype::F16 {
                    GgufType::F16
                } else {
                    GgufType::Q8_0
                }))
            }
            _ => None,
        }
    }

    fn local_gguf(&self) -> bool {
        self.model
            .path
            .as_deref()
            .is_some_and(|p| p.ends_with(".gguf"))
    }

    /// assay starts llama-server for this cell (an `openai` backend without
    /// `server.url`).
    pub fn launches_server(&self) -> bool {
        self.backend.kind == BackendKind::OpenAi
            && self.backend.server.as_ref().is_none_or(|s| s.url.is_none())
    }

    /// The cell reads a prepared model (a registry record): in-process
    /// backends, and servers given a model assay prepared.
    pub fn reads_prepared_model(&self) -> bool {
        match self.backend.kind {
            BackendKind::Simulated => false,
            k if k.is_server() => self.launches_server() || !self.model.server_only(),
            _ => true,
        }
    }

    fn simulated(&self) -> bool {
        self.backend.kind == BackendKind::Simulated
    }

    /// The backend with kind options made explicit: `simulated: {}` and no
    /// `simulated` section are the same machine, so the same key.
    fn resolved_backend(&self) -> BackendConfig {
        let mut b = self.backend.clone();
        match b.kind {
            BackendKind::Simulated => b.simulated = Some(b.simulated.unwrap_or_default()),
            BackendKind::Ort => b.ort = Some(b.ort.unwrap_or_default()),
            BackendKind::Tch => b.tch = Some(b.tch.unwrap_or_default()),
            BackendKind::OpenAi | BackendKind::Ollama => {
                let mut o = b.server.clone().unwrap_or_default();
                o.length_knobs = Some(o.knobs(b.kind));
                if self.launches_server() {
                    o.launch = Some(o.launch.unwrap_or_default());
                }
                b.server = Some(o);
            }
            BackendKind::Candle => {}
        }
        b
    }

    fn requested(&self) -> Requested {
        Requested {
            kind: self.backend.kind,
            device: self.backend.device.clone(),
            dtype: self.backend.dtype.as_str().to_string(),
            threads: self.backend.threads,
            compiled: self.compiled(),
        }
    }

    /// The compiled path requested, if any. ONNX Runtime at `disabled` runs
    /// the graph as exported: not compiled.
    fn compiled(&self) -> Option<String> {
        match self.backend.kind {
            BackendKind::Ort => {
                let level = self
                    .backend
                    .ort
                    .clone()
                    .unwrap_or_default()
                    .graph_optimization;
                (level != assay_core::config::GraphOptimization::Disabled)
                    .then(|| format!("onnxruntime:{}", level.as_str()))
            }
            BackendKind::Tch => (self.backend.tch.clone().unwrap_or_default().mode
                == assay_core::config::TchMode::Torchscript)
                .then(|| "torchscript".to_string()),
            _ => None,
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
            "backend": self.resolved_backend(),
            // Real backends get the model's identity from their inputs' digests.
            "model": match (&self.model.synthetic, self.simulated()) {
                (Some(a), true) => json!({ "name": self.model.name, "synthetic": a.resolved() }),
                _ => match &self.model.served {
                    // A served model's identity is its name on the server
                    // (in-process backends never send it).
                    Some(served) if self.backend.kind.is_server() => {
                        json!({ "name": self.model.name, "served": served })
                    }
                    _ => json!({ "name": self.model.name }),
                },
            },
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
        if self.simulated() {
            return Some(json!({ "simulated_model_version": SIM_MODEL_VERSION }));
        }
        environment::key_facts(&self.environment_facts())
    }

    fn outputs(&self) -> Vec<&'static str> {
        let mut names = vec![
            output::EVENTS,
            output::MANIFEST,
            output::OUTPUTS,
            output::RUNS,
        ];
        if self.backend.kind.is_server() {
            names.push(output::REQUESTS);
        }
        if self.energy.is_some() {
            names.push(output::POWER);
        }
        names
    }

    fn machine(&self) -> MachineUse {
        MachineUse::Measures {
            device: self.backend.device.clone(),
        }
    }

    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError> {
        let mut server_requests = None;
        let (measured, model_info, model, started) = match self.backend.kind {
            BackendKind::Simulated => {
                let mut m = self.run_simulated(ctx)?;
                if let Some(sampling) = self.energy {
                    let trace = energy::simulated_trace(&m.events, sampling, self.stream_seed());
                    m.power = Some(PowerOutcome::Trace(trace));
                }
                let arch = self.model.synthetic.as_ref().ok_or_else(|| {
                    StageError::Failed("the simulated backend needs a synthetic model".into())
                })?;
                (m, Some(arch.info(&self.model.name)), None, None)
            }
            BackendKind::Candle | BackendKind::Ort | BackendKind::Tch => {
                let started = unix_ms();
                let (m, info, identity) = self.run_real(ctx, inputs)?;
                (m, Some(info), Some(identity), Some(started))
            }
            BackendKind::OpenAi | BackendKind::Ollama => {
                let started = unix_ms();
                let (m, requests, info, identity) = self.run_server(ctx, inputs)?;
                server_requests = Some(requests);
                (m, info, identity, Some(started))
            }
        };
        let manifest = Manifest {
            cell: self.cell.clone(),
            backend: self.backend.name.clone(),
            model: self.model.name.clone(),
            scenario: self.scenario.clone(),
            evidence: if self.simulated() {
                "simulated"
            } else {
                "measured"
            }
            .into(),
            clock: if self.simulated() {
                "virtual"
            } else {
                "monotonic"
            }
            .into(),
            boundary: self.boundary.clone(),
            requested: self.requested(),
            actual: measured.attribution,
            model_info,
            weights: model,
            started_unix_ms: started,
            energy: match (&measured.power, self.energy) {
                (Some(p), Some(sampling)) => Some(p.source(sampling)),
                _ => None,
            },
            environment: if self.simulated() {
                None
            } else {
                Some(self.environment_facts())
            },
            assay_version: env!("CARGO_PKG_VERSION").into(),
        };
        let mut out = Outputs::new();
        out.insert(output::EVENTS.into(), tables::to_parquet(&measured.events)?);
        out.insert(output::RUNS.into(), tables::to_parquet(&measured.runs)?);
        out.insert(
            output::OUTPUTS.into(),
            tables::to_parquet(&measured.outputs)?,
        );
        out.insert(output::MANIFEST.into(), to_json(&manifest)?);
        if let Some(requests) = server_requests {
            out.insert(output::REQUESTS.into(), tables::to_parquet(&requests)?);
        }
        if self.energy.is_some() {
            let rows = measured
                .power
                .as_ref()
                .map_or_else(Vec::new, |p| p.rows(&self.cell));
            out.insert(output::POWER.into(), tables::to_parquet(&rows)?);
        }
        Ok(out)
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl MeasureStage {
    fn environment_facts(&self) -> Environment {
        let mut env = environment::detect();
        // The library versions this build was made for; what actually
        // loaded is in the attribution.
        match self.backend.kind {
            BackendKind::Candle => {
                env.libraries
                    .insert(crate::candle::LIBRARY.into(), CANDLE_VERSION.into());
            }
            BackendKind::Ort => {
                env.libraries
                    .insert("onnxruntime".into(), crate::versions::ORT_EXPECTED.into());
            }
            BackendKind::Tch => {
                env.libraries
                    .insert("libtorch".into(), crate::versions::TORCH_EXPECTED.into());
            }
            BackendKind::OpenAi if self.launches_server() => {
                if let Some(version) = crate::server::launch::binary()
                    .and_then(|b| crate::server::launch::version(&b).ok())
                {
                    env.libraries.insert("llama-server".into(), version);
                }
            }
            _ => {}
        }
        env
    }

    /// Each cell's own seed stream, independent of the order cells run in.
    fn stream_seed(&self) -> u64 {
        u64::from_le_bytes(
            blake3::hash(self.cell.as_bytes()).as_bytes()[..8]
                .try_into()
                .unwrap_or([0; 8]),
        )
    }

    fn run_simulated(&self, ctx: &StageContext<'_>) -> Result<CellMeasurement, StageError> {
        let arch = self.model.synthetic.as_ref().ok_or_else(|| {
            StageError::Failed("the simulated backend needs a synthetic model".into())
        })?;
        let prompts = harness::prompt_ids(&self.scenario, arch.vocab, arch.seed);
        let opts = self.backend.simulated.clone().unwrap_or_default();
        // Each cell gets its own noise stream, independent of the order
        // cells run in.
        let stream = self.stream_seed();
        let (mut backend, clock) = SimulatedBackend::new(
            opts,
            arch.clone(),
            self.backend.dtype,
            &self.backend.device,
            self.backend.threads,
            stream,
        );
        let on_run = |rep: u32, total: u32| {
            ctx.progress(&format!("run {}/{}", rep + 1, total));
            !ctx.cancelled()
        };
        harness::measure_cell(
            &mut backend,
            &clock,
            &self.cell,
            &self.scenario,
            &self.boundary,
            &prompts,
            on_run,
        )
        .map_err(|e| StageError::Failed(e.to_string()))?
        .ok_or(StageError::Cancelled)
    }

    /// A real backend, measured in a worker process.
    fn run_real(
        &self,
        ctx: &StageContext<'_>,
        inputs: &[Input],
    ) -> Result<(CellMeasurement, ModelInfo, ModelIdentity), StageError> {
        if self.backend.kind != BackendKind::Ort && self.backend.device != "cpu" {
            return Err(StageError::Failed(format!(
                "backend {}: {} runs on the CPU only here; device {:?} is not available",
                self.backend.name,
                self.backend.kind.as_str(),
                self.backend.device
            )));
        }
        let record_input = find_input(inputs, "model")?;
        let record: ModelRecord = tables::read_json(ctx, record_input)?;
        let object = |name: &str| -> Result<(std::path::PathBuf, String), StageError> {
            let input = find_input(inputs, name)?;
            Ok((ctx.store.object_path(&input.digest), input.digest.to_hex()))
        };
        let local_weights = || -> (Vec<std::path::PathBuf>, String) {
            let files: Vec<_> = record
                .files
                .iter()
                .filter(|f| f.role == "weights")
                .collect();
            let paths = files
                .iter()
                .filter_map(|f| f.path.as_ref().map(Into::into))
                .collect();
            let hash = if files.len() == 1 {
                files[0].blake3.clone()
            } else {
                record.model_digest.clone()
            };
            (paths, hash)
        };
        let stored = record.stored_dtype.clone();
        let (files, format, weights_blake3, stored_dtype) = if self.backend.kind == BackendKind::Ort
        {
            let (path, hash) = object("onnx")?;
            (WeightFiles::Onnx(path), "onnx", hash, stored)
        } else if record.format == "gguf" {
            let (paths, hash) = local_weights();
            let path = paths.into_iter().next().ok_or_else(|| {
                StageError::bad_input(record_input, "GGUF model record without a file")
            })?;
            (WeightFiles::Gguf(path), "gguf", hash, stored)
        } else if self.backend.dtype == Dtype::Q8_0 {
            let (path, hash) = object("gguf")?;
            (WeightFiles::Gguf(path), "gguf", hash, "q8_0".to_string())
        } else if record.source == "synthetic" {
            let (path, hash) = object("weights")?;
            (
                WeightFiles::Safetensors(vec![path]),
                "safetensors",
                hash,
                stored,
            )
        } else {
            let (paths, hash) = local_weights();
            (WeightFiles::Safetensors(paths), "safetensors", hash, stored)
        };
        let seed = record.declaration.as_ref().map_or(0, |d| d.seed);
        let engine = match self.backend.kind {
            BackendKind::Ort => Engine::Ort(self.backend.ort.clone().unwrap_or_default()),
            BackendKind::Tch => Engine::Tch(self.backend.tch.clone().unwrap_or_default()),
            _ => Engine::Candle,
        };
        let request = WorkerRequest {
            cell: self.cell.clone(),
            info: record.info.clone(),
            engine,
            files,
            dtype: self.backend.dtype,
            threads: self.backend.threads,
            scenario: self.scenario.clone(),
            boundary: self.boundary.clone(),
            prompts: harness::prompt_ids(&self.scenario, record.info.vocab, seed),
            energy: self.energy,
        };
        let measured = worker::measure_isolated(&request, ctx)?;
        let identity = ModelIdentity {
            source: record.source.clone(),
            model_digest: record.model_digest.clone(),
            weights_format: format.into(),
            weights_blake3,
            stored_dtype,
        };
        Ok((measured, record.info, identity))
    }

    /// A server backend: measured over HTTP in this process (the server is
    /// the other process).
    #[allow(clippy::type_complexity)]
    fn run_server(
        &self,
        ctx: &StageContext<'_>,
        inputs: &[Input],
    ) -> Result<
        (
            CellMeasurement,
            Vec<assay_core::tables::RequestRow>,
            Option<ModelInfo>,
            Option<ModelIdentity>,
        ),
        StageError,
    > {
        use crate::server::cell::{self, ServerCell};
        let record: Option<ModelRecord> = match inputs.iter().find(|i| i.name == "model") {
            Some(input) => Some(tables::read_json(ctx, input)?),
            None => None,
        };
        // The GGUF a launched llama-server serves: the export, or a local
        // GGUF model's own file; and the dtype it holds.
        let gguf = match (self.needs_export(), &record) {
            (Some(format), _) => {
                let input = find_input(inputs, format.output())?;
                Some((
                    ctx.store.object_path(&input.digest),
                    input.digest.to_hex(),
                    self.backend.dtype.as_str().to_string(),
                ))
            }
            (None, Some(r)) if self.launches_server() && r.format == "gguf" => {
                r.files.iter().find(|f| f.role == "weights").and_then(|f| {
                    let path = f.path.as_ref()?;
                    Some((path.into(), f.blake3.clone(), r.stored_dtype.clone()))
                })
            }
            _ => None,
        };
        let server_cell = ServerCell {
            cell: &self.cell,
            backend: &self.backend,
            served_model: self.model.served_name(),
            scenario: &self.scenario,
            boundary: &self.boundary,
            vocab: record.as_ref().map(|r| r.info.vocab),
            seed: record
                .as_ref()
                .and_then(|r| r.declaration.as_ref())
                .map_or(0, |d| d.seed),
            nonce: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            gguf: gguf.as_ref().map(|(p, _, _)| p.clone()),
            served_dtype: gguf.as_ref().map(|(_, _, d)| d.clone()),
        };
        let measured = cell::measure(&server_cell, ctx).map_err(|f| {
            if ctx.cancelled() {
                StageError::Cancelled
            } else if f.record.is_null() {
                StageError::Failed(f.message)
            } else {
                StageError::FailedWithRecord {
                    message: f.message,
                    record: serde_json::to_vec_pretty(&f.record).unwrap_or_default(),
                }
            }
        })?;
        let server = measured
            .measured
            .attribution
            .server
            .clone()
            .unwrap_or_default();
        let identity = match (&record, &gguf) {
            (Some(r), Some((_, hash, dtype))) => Some(ModelIdentity {
                source: r.source.clone(),
                model_digest: r.model_digest.clone(),
                weights_format: "gguf".into(),
                weights_blake3: hash.clone(),
                stored_dtype: dtype.clone(),
            }),
            _ => server.digest.as_ref().map(|digest| ModelIdentity {
                source: self.backend.kind.as_str().into(),
                model_digest: digest.clone(),
                weights_format: server.format.clone().unwrap_or_else(|| "unknown".into()),
                weights_blake3: String::new(),
                stored_dtype: server.quantization.clone().unwrap_or_default(),
            }),
        };
        Ok((
            measured.measured,
            measured.requests,
            record.map(|r| r.info),
            identity,
        ))
    }
}
