//! The workload classes of the seed's taxonomy and their default shapes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use assay_core::config::Scenario;

/// A workload class of the seed's taxonomy (Appendix W, Appendix F.1). Each
/// class gets its own decision; one scenario may belong to several classes.
/// Without an explicit `workloads` entry a class uses every scenario of its
/// default shape.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadClass {
    /// Interactive (consumer) chat, seed W.1: one request at a time, a
    /// moderate prompt and a generation long enough for decode to dominate.
    /// Default scenarios: batch 1, gen_tokens >= 64, prompt_tokens < 1024.
    InteractiveChat,
    /// Tool-augmented agent steps, seed W.2: short prompts and short
    /// generations, where overhead and cold start dominate. Default
    /// scenarios: batch 1, prompt_tokens <= 512, gen_tokens < 64.
    Agents,
    /// Long-context summarisation, seed W.3: large prefill, moderate decode.
    /// Default scenarios: prompt_tokens >= 1024 (any batch and generation).
    LongContextSummarisation,
    /// Batch analytics and prefill pipelines, seed W.4: batched prompts with
    /// minimal decode. Default scenarios: batch > 1, gen_tokens <= 32.
    BatchPrefill,
    /// Retrieval-augmented generation, seed W.5: a large retrieved context
    /// and a moderate generation. Default scenarios: batch 1,
    /// prompt_tokens >= 512, 32 <= gen_tokens <= 512.
    Rag,
}

impl WorkloadClass {
    /// Every class, in the fixed order decisions are reported in.
    pub const ALL: [WorkloadClass; 5] = [
        WorkloadClass::InteractiveChat,
        WorkloadClass::Agents,
        WorkloadClass::LongContextSummarisation,
        WorkloadClass::BatchPrefill,
        WorkloadClass::Rag,
    ];

    /// The spec spelling (`interactive_chat`, ...).
    pub fn name(self) -> &'static str {
        match self {
            WorkloadClass::InteractiveChat => "interactive_chat",
            WorkloadClass::Agents => "agents",
            WorkloadClass::LongContextSummarisation => "long_context_summarisation",
            WorkloadClass::BatchPrefill => "batch_prefill",
            WorkloadClass::Rag => "rag",
        }
    }

    /// A human title for the report.
    pub fn title(self) -> &'static str {
        match self {
            WorkloadClass::InteractiveChat => "Interactive chat",
            WorkloadClass::Agents => "Tool-augmented agents",
            WorkloadClass::LongContextSummarisation => "Long-context summarisation",
            WorkloadClass::BatchPrefill => "Batch prefill",
            WorkloadClass::Rag => "Retrieval-augmented generation (RAG)",
        }
    }

    /// The seed section that describes the class.
    pub fn seed_section(self) -> &'static str {
        match self {
            WorkloadClass::InteractiveChat => "W.1",
            WorkloadClass::Agents => "W.2",
            WorkloadClass::LongContextSummarisation => "W.3",
            WorkloadClass::BatchPrefill => "W.4",
            WorkloadClass::Rag => "W.5",
        }
    }

    /// The default shape rule, in words.
    pub fn shape(self) -> &'static str {
        match self {
            WorkloadClass::InteractiveChat => "batch 1, gen_tokens >= 64, prompt_tokens < 1024",
            WorkloadClass::Agents => "batch 1, prompt_tokens <= 512, gen_tokens < 64",
            WorkloadClass::LongContextSummarisation => "prompt_tokens >= 1024",
            WorkloadClass::BatchPrefill => "batch > 1, gen_tokens <= 32",
            WorkloadClass::Rag => "batch 1, prompt_tokens >= 512, 32 <= gen_tokens <= 512",
        }
    }

    /// Whether a scenario has the class's default shape.
    pub fn matches(self, s: &Scenario) -> bool {
        let (p, b, g) = (s.prompt_tokens, s.batch, s.gen_tokens);
        match self {
            WorkloadClass::InteractiveChat => b == 1 && g >= 64 && p < 1024,
            WorkloadClass::Agents => b == 1 && p <= 512 && g < 64,
            WorkloadClass::LongContextSummarisation => p >= 1024,
            WorkloadClass::BatchPrefill => b > 1 && g <= 32,
            WorkloadClass::Rag => b == 1 && p >= 512 && (32..=512).contains(&g),
        }
    }
}

/// The scenarios (names, in spec order) that have the class's default shape.
pub fn default_scenarios(class: WorkloadClass, scenarios: &[Scenario]) -> Vec<String> {
    scenarios
        .iter()
        .filter(|s| class.matches(s))
        .map(|s| s.name.clone())
        .collect()
}
