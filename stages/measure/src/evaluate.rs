//! evaluate: the built-in evaluation of a model's quality (Appendices Z.2,
//! BE.1-BE.2). One node per (backend, model), `evaluate/<backend>/<model>`:
//! the spec's acceptance set (`set.rs`) runs through the backend on the
//! weights its cells read, with the model's own tokenizer, greedily; each
//! output is judged by its item's criterion, and the successes are
//! counted. The quality node prices a success from these counts exactly
//! as from an external evaluation's.
//!
//! The node reads the backend like a measurement (it runs alone, in a
//! worker with the backend's threads, and its key holds the machine) but
//! times nothing: a different output on another machine is a new node,
//! never a silent change.

pub mod set;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::environment::Environment;
use crate::harness::Attribution;
use crate::stage::registry::Evaluation;
use crate::stage::{MeasureStage, ModelIdentity};
use assay_core::stage::{Input, MachineUse, Outputs, Stage, StageContext, StageError};
use assay_core::tables::{self, to_json};
pub use set::{AcceptanceItem, Criterion, SetError, parse_set};

pub const EVALUATE_VERSION: u32 = 1;

/// What the counts name as their evaluator.
pub const EVALUATOR: &str = "assay evaluate";

/// The outputs of an evaluate node.
pub mod output {
    /// One row per item: prompt, output, criterion and verdict
    /// (`EvaluationRow`).
    pub const EVALUATION: &str = "evaluation";
    /// Successes and trials, with what ran (`EvaluationCounts`).
    pub const COUNTS: &str = "counts";
}

/// The node id of the evaluation of `model` through `backend`.
pub fn node_id(backend: &str, model: &str) -> String {
    format!("evaluate/{backend}/{model}")
}

/// One (backend, model) evaluation.
#[derive(Debug, Clone)]
pub struct EvaluateStage {
    /// The backend and model as one of their cells would run them (its
    /// scenario unused): the registry entry answers for the inputs, the
    /// key's machine facts and the manifest exactly as for a cell.
    pub cell: MeasureStage,
    /// The items of the set that apply to this model, in file order.
    pub items: Vec<AcceptanceItem>,
    /// Generation length of an item without its own `max_tokens`.
    pub max_tokens: u32,
}

/// One item's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EvaluationRow {
    pub model: String,
    pub backend: String,
    /// The item's id and its line in the acceptance set.
    pub id: String,
    pub line: u32,
    /// `exact`, `contains` or `regex`, and its text or pattern.
    pub criterion: String,
    pub pattern: String,
    pub prompt: String,
    /// Tokens the model's tokenizer gave the prompt.
    pub prompt_tokens: u32,
    pub max_tokens: u32,
    /// Tokens generated (fewer than `max_tokens` only where the backend
    /// could not go on).
    pub output_tokens: u32,
    pub output: String,
    pub passed: bool,
}

/// The evaluation's counts, in the shape of an external counts line, with
/// what ran them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationCounts {
    pub model: String,
    pub backend: String,
    pub successes: u64,
    pub trials: u64,
    /// [`EVALUATOR`] and this stage's version.
    pub evaluator: String,
    pub evaluator_version: String,
    /// What actually ran (library, device, dtype, threads).
    pub actual: Attribution,
    /// The weights that ran.
    pub weights: ModelIdentity,
    pub environment: Option<Environment>,
    pub assay_version: String,
}

impl EvaluateStage {
    fn max_tokens_of(&self, item: &AcceptanceItem) -> u32 {
        item.max_tokens.unwrap_or(self.max_tokens)
    }
}

impl Stage for EvaluateStage {
    fn kind(&self) -> &'static str {
        "evaluate"
    }

    fn version(&self) -> u32 {
        EVALUATE_VERSION
    }

    /// Only the items that apply to this model, so that editing another
    /// model's items reruns nothing here.
    fn params(&self) -> Result<Value, StageError> {
        let cell = &self.cell;
        Ok(json!({
            "backend": cell.entry.resolve(&cell.backend, cell),
            "model": cell.model.name,
            "items": self.items,
            "max_tokens": self.max_tokens,
        }))
    }

    fn environment(&self) -> Option<Value> {
        self.cell.entry.key_environment(&self.cell)
    }

    fn outputs(&self) -> Vec<&'static str> {
        vec![output::COUNTS, output::EVALUATION]
    }

    /// Heavy, and it uses the cores a measurement needs: it runs alone.
    /// `verify` checks its objects; a rerun on another machine is a new key.
    fn machine(&self) -> MachineUse {
        MachineUse::Exclusive {
            device: self.cell.backend.device.clone(),
        }
    }

    fn run(&self, ctx: &StageContext<'_>, inputs: &[Input]) -> Result<Outputs, StageError> {
        let cell = &self.cell;
        let prompts: Vec<String> = self.items.iter().map(|i| i.prompt.clone()).collect();
        let max_tokens: Vec<u32> = self.items.iter().map(|i| self.max_tokens_of(i)).collect();
        let generated = cell.entry.generate(
            &Evaluation {
                backend: &cell.backend,
                model: &cell.model,
                prompts: &prompts,
                max_tokens: &max_tokens,
            },
            ctx,
            inputs,
        )?;
        if generated.outputs.len() != self.items.len() {
            return Err(StageError::Failed(format!(
                "the backend answered {} of {} prompts",
                generated.outputs.len(),
                self.items.len()
            )));
        }
        let mut rows = Vec::with_capacity(self.items.len());
        for (item, out) in self.items.iter().zip(generated.outputs) {
            let matcher = item
                .accept
                .matcher()
                .map_err(|e| StageError::Failed(format!("item {}: {e}", item.id)))?;
            rows.push(EvaluationRow {
                model: cell.model.name.clone(),
                backend: cell.backend.name.clone(),
                id: item.id.clone(),
                line: item.line as u32,
                criterion: item.accept.kind().into(),
                pattern: item.accept.pattern().into(),
                prompt: item.prompt.clone(),
                prompt_tokens: out.prompt_tokens,
                max_tokens: self.max_tokens_of(item),
                output_tokens: out.output_tokens,
                passed: matcher.accepts(&out.output),
                output: out.output,
            });
        }
        let counts = EvaluationCounts {
            model: cell.model.name.clone(),
            backend: cell.backend.name.clone(),
            successes: rows.iter().filter(|r| r.passed).count() as u64,
            trials: rows.len() as u64,
            evaluator: EVALUATOR.into(),
            evaluator_version: EVALUATE_VERSION.to_string(),
            actual: generated.attribution,
            weights: generated.weights,
            environment: cell.entry.manifest_environment(cell),
            assay_version: env!("CARGO_PKG_VERSION").into(),
        };
        let mut out = Outputs::new();
        out.insert(output::EVALUATION.into(), tables::to_parquet(&rows)?);
        out.insert(output::COUNTS.into(), to_json(&counts)?);
        Ok(out)
    }
}
