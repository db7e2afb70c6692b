use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::config::{BackendConfig, BackendKind, Boundary, Scenario};
use super::environment::{self, Environment};
use super::harness::{self, Attribution, CellMeasurement};
use super::model::{ModelDecl, ModelInfo};
use super::simulated::{SIM_MODEL_VERSION, SimulatedBackend};
use crate::stage::{Input, Outputs, Stage, StageContext, StageError};
use crate::tables::{self, to_json};

pub const MEASURE_VERSION: u32 = 1;

/// One (backend, model, scenario) cell.
#[derive(Debug, Clone)]
pub struct MeasureStage {
    pub cell: String,
    pub backend: BackendConfig,
    pub model: ModelDecl,
    pub scenario: Scenario,
    pub boundary: Boundary,
}

/// What the spec asked of the backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Requested {
    pub kind: BackendKind,
    pub device: String,
    pub dtype: String,
    pub threads: u32,
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
    pub model_info: ModelInfo,
    /// The measuring machine; absent for simulated cells, which are
    /// machine-independent by construction.
    pub environment: Option<Environment>,
    pub assay_version: String,
}

impl MeasureStage {
    fn simulated(&self) -> bool {
        self.backend.kind == BackendKind::Simulated
    }

    /// The backend with kind options made explicit: `simulated: {}` and no
    /// `simulated` section are the same machine, so the same key.
    fn resolved_backend(&self) -> BackendConfig {
        let mut b = self.backend.clone();
        if b.kind == BackendKind::Simulated {
            b.simulated = Some(b.simulated.unwrap_or_default());
        }
        b
    }

    fn requested(&self) -> Requested {
        Requested {
            kind: self.backend.kind,
            device: self.backend.device.clone(),
            dtype: self.backend.dtype.as_str().to_string(),
            threads: self.backend.threads,
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

    fn params(&self) -> Value {
        json!({
            "cell": self.cell,
            "backend": self.resolved_backend(),
            "model": { "name": self.model.name, "synthetic": self.model.synthetic.resolved() },
            "scenario": self.scenario,
            "boundary": self.boundary,
        })
    }

    fn environment(&self) -> Option<Value> {
        if self.simulated() {
            return Some(json!({ "simulated_model_version": SIM_MODEL_VERSION }));
        }
        // Everything but the assay build itself: a new commit of assay does not
        // invalidate measurements, a new machine or library does.
        let mut env = serde_json::to_value(environment::detect()).ok()?;
        if let Some(map) = env.as_object_mut() {
            map.remove("assay_version");
            map.remove("assay_git_revision");
        }
        Some(env)
    }

    fn device(&self) -> Option<String> {
        Some(self.backend.device.clone())
    }

    fn run(&self, ctx: &StageContext<'_>, _inputs: &[Input]) -> Result<Outputs, StageError> {
        let arch = &self.model.synthetic;
        let prompts = harness::prompt_ids(&self.scenario, arch.vocab, arch.seed);
        let on_run = |rep: u32, total: u32| {
            ctx.progress(&format!("run {}/{}", rep + 1, total));
            !ctx.cancelled()
        };
        let measured: Option<CellMeasurement> = match self.backend.kind {
            BackendKind::Simulated => {
                let opts = self.backend.simulated.clone().unwrap_or_default();
                // Each cell gets its own noise stream, independent of the
                // order cells run in.
                let stream = u64::from_le_bytes(
                    blake3::hash(self.cell.as_bytes()).as_bytes()[..8]
                        .try_into()
                        .unwrap_or([0; 8]),
                );
                let (mut backend, clock) = SimulatedBackend::new(
                    opts,
                    arch.clone(),
                    self.backend.dtype,
                    &self.backend.device,
                    self.backend.threads,
                    stream,
                );
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
            }
        };
        let Some(measured) = measured else {
            return Err(StageError::Cancelled);
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
            model_info: arch.info(&self.model.name),
            environment: if self.simulated() {
                None
            } else {
                Some(environment::detect())
            },
            assay_version: env!("CARGO_PKG_VERSION").into(),
        };
        let mut out = Outputs::new();
        out.insert("events".into(), tables::to_parquet(&measured.events)?);
        out.insert("runs".into(), tables::to_parquet(&measured.runs)?);
        out.insert("manifest".into(), to_json(&manifest)?);
        Ok(out)
    }
}
