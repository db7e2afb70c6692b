use assay_analysis::cost::CostParams;
use std::collections::BTreeMap;

use assay_analysis::decide::WorkloadClass;
use assay_analysis::fit::FitParams;
use assay_analysis::validate::ValidateParams;
use assay_measure::energy::EnergyParams;
use assay_measure::{BackendConfig, Boundary, ModelDecl, Scenario};
use assay_report::Format;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An assay experiment spec (format 1). Start the file with
/// `# yaml-language-server: $schema=<path to schemas/spec.schema.json>` so
/// editors complete and check it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "assay experiment spec")]
pub struct Spec {
    /// Spec format version. Only 1 exists.
    #[schemars(range(min = 1, max = 1))]
    pub assay: u32,
    /// Identifier of the experiment, used in reports.
    pub id: String,
    /// Human title of the report.
    pub title: String,
    /// The decision question (X.1): a decision, not a metric.
    pub question: String,
    /// The decision or policy this experiment feeds (X.5).
    pub decision: String,
    /// The measurement boundary (X.2).
    pub boundary: Boundary,
    /// Explicit scenarios (X.3).
    #[serde(default)]
    pub scenarios: Vec<Scenario>,
    /// Cartesian scenario sweeps; each combination becomes a scenario named
    /// `<prefix>p<prompt>-b<batch>-g<gen>`.
    #[serde(default)]
    pub sweeps: Vec<Sweep>,
    pub models: Vec<ModelDecl>,
    pub backends: Vec<BackendConfig>,
    /// Validation thresholds (optional; defaults: max_cv 0.25, outlier_k 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<ValidateParams>,
    /// In-process service-level objectives (optional; Appendix Q.1): TTFT,
    /// TPOT and end-to-end limits every steady ok run is judged against,
    /// with per-scenario overrides. Validate's parameters only: no
    /// measurement depends on them. Scenarios with a load profile use their
    /// own `load.slo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<assay_analysis::validate::slo::SloParams>,
    /// Shadow-price cost and capacity parameters (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostParams>,
    /// Scenarios per workload class (interactive_chat, agents,
    /// long_context_summarisation, batch_prefill, rag) for the report's
    /// decision trees; classes not listed use their default shape.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workloads: BTreeMap<WorkloadClass, Vec<String>>,
    /// Energy sampling and gating (optional; TR122). Without it no power is
    /// sampled and the report says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<EnergyParams>,
    /// Scaling-fit parameters (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<FitParams>,
    /// Success counts per model from an external evaluation (optional;
    /// Appendices Z.2, BE): success rates, cost per successful outcome and
    /// the model tier decision. Needs `cost.request_mix`. Without it the
    /// report does not choose between models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<assay_analysis::quality::QualitySpec>,
    /// Regression thresholds `assay compare` applies when a side is this
    /// spec (optional; Appendix Y.3's default: decode throughput down by
    /// more than 10%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<assay_analysis::compare::CompareParams>,
    /// Where measure cells run with `assay run --executor slurm`: the Slurm
    /// resources of each cell's job (docs/cluster.md). Optional; it enters
    /// no node key and the local executor ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<ExecutionSpec>,
    /// Where the report goes (X.4).
    pub outputs: OutputsSpec,
}

/// The Slurm resources of each measure cell's job (`sbatch` options). Every
/// field is optional: what is absent is left to the cluster's defaults.
/// None of it enters a node key: where a cell runs is not what it measures
/// (the manifest of a real cell records the job and node that measured).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionSpec {
    /// Slurm partition (`--partition`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Slurm account to charge (`--account`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Time limit of each cell's job in minutes (`--time`); a job over it
    /// becomes a failed cell with Slurm's state `TIMEOUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub time_limit_min: Option<u32>,
    /// CPUs per cell (`--cpus-per-task`; default 1; with `exclusive` the
    /// job has the whole node anyway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub cpus: Option<u32>,
    /// Memory per cell in MiB (`--mem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub memory_mb: Option<u64>,
    /// GPUs per cell as a generic resource (`--gres=gpu:<n>`, or
    /// `gpu:<type>:<n>` with `gpu_type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// GPU type in the gres request (e.g. `a100`); needs `gpus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_type: Option<String>,
    /// Each cell has its node to itself (`--exclusive`), so no other job
    /// disturbs its timings. Default true.
    #[serde(default = "default_true")]
    pub exclusive: bool,
    /// Where the jobs read a cell's inputs and record the cell: `shared`
    /// (the run's store, on a filesystem the compute nodes share) or
    /// `remote` (each job keeps a store on its own node and exchanges nodes
    /// through the run's remote cache, `--remote-url`). Default `shared`.
    #[serde(default)]
    pub store: JobStore,
    /// With `store: remote`, the store's folder on each compute node, an
    /// absolute path (default `$TMPDIR/assay-store`, else
    /// `/tmp/assay-store`). The jobs of one node share it, so a prepared
    /// model is pulled once per node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_store: Option<String>,
}

/// Where a Slurm job reads its cell's inputs and records the cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStore {
    /// The run's own store, shared with the compute nodes.
    #[default]
    Shared,
    /// A store on the compute node, filled from and pushed to the remote
    /// cache.
    Remote,
}

fn default_true() -> bool {
    true
}

impl Default for ExecutionSpec {
    /// What a spec without `execution:` gets: one CPU, the node to itself,
    /// everything else the cluster's defaults.
    fn default() -> Self {
        ExecutionSpec {
            partition: None,
            account: None,
            time_limit_min: None,
            cpus: None,
            memory_mb: None,
            gpus: None,
            gpu_type: None,
            exclusive: true,
            store: JobStore::Shared,
            node_store: None,
        }
    }
}

/// A cartesian product of scenario dimensions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    /// Prefix of the generated scenario names.
    #[serde(default)]
    pub prefix: String,
    #[schemars(length(min = 1))]
    pub prompt_tokens: Vec<u32>,
    #[schemars(length(min = 1))]
    pub batch: Vec<u32>,
    #[schemars(length(min = 1))]
    pub gen_tokens: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputsSpec {
    /// Report directory, relative to the spec's folder; it cannot escape it.
    pub dir: String,
    /// Report formats to write there.
    #[serde(default = "default_formats")]
    pub formats: Vec<Format>,
}

fn default_formats() -> Vec<Format> {
    vec![Format::Md, Format::Html, Format::Json]
}

impl Sweep {
    pub fn expand(&self) -> Vec<Scenario> {
        let mut out = Vec::new();
        for &p in &self.prompt_tokens {
            for &b in &self.batch {
                for &g in &self.gen_tokens {
                    out.push(Scenario {
                        name: format!("{}p{p}-b{b}-g{g}", self.prefix),
                        prompt_tokens: p,
                        batch: b,
                        gen_tokens: g,
                        load: None,
                    });
                }
            }
        }
        out
    }
}

impl Spec {
    /// Explicit scenarios then every sweep's, in spec order.
    pub fn all_scenarios(&self) -> Vec<Scenario> {
        let mut out = Vec::new();
        for s in &self.scenarios {
            out.extend(expand_rates(s));
        }
        for sweep in &self.sweeps {
            out.extend(sweep.expand());
        }
        out
    }

    /// The rate-sweep family of each open-loop scenario (expanded name to
    /// the spec's scenario name), for the knee.
    pub fn rate_families(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for s in &self.scenarios {
            if s.load.as_ref().is_some_and(|l| !l.rates.is_empty()) {
                for e in expand_rates(s) {
                    out.insert(e.name, s.name.clone());
                }
            }
        }
        out
    }
}

/// A scenario with several open-loop rates is one scenario per rate, named
/// `<name>-r<rate>`; with one rate it keeps its name.
fn expand_rates(s: &Scenario) -> Vec<Scenario> {
    match &s.load {
        Some(load) if load.rates.len() > 1 => load
            .rates
            .iter()
            .map(|r| {
                let mut one = s.clone();
                one.name = format!("{}-r{r}", s.name);
                if let Some(l) = one.load.as_mut() {
                    l.rates = vec![*r];
                }
                one
            })
            .collect(),
        _ => vec![s.clone()],
    }
}
