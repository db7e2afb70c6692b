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
    /// Where the report goes (X.4).
    pub outputs: OutputsSpec,
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
