//! The workload classes of the seed's taxonomy and their default shapes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use assay_core::config::Scenario;

use super::DECODE_HEAVY_GEN;

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

/// AL.1: the longest prompt of a `micro` scenario ("minimal prompt length,
/// overhead-dominant"), tokens. The seed gives no number; 32 tokens is this
/// module's reading.
pub const MICRO_MAX_PROMPT: u32 = 32;
/// AL.1: the shortest prompt of a `medium` (or `batch_medium`) scenario
/// ("longer prompts where prefill becomes significant"), tokens: the same
/// line as the RAG class's "large retrieved context".
pub const MEDIUM_MIN_PROMPT: u32 = 512;

/// A scenario's type in the seed's scenario taxonomy (Appendix AL.1),
/// read from its shape; AL.2 maps each type to its primary metric.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ScenarioKind {
    /// Minimal prompt, overhead-dominant: batch 1, prompt_tokens <= 32.
    Micro,
    /// Small prompt with modest context: batch 1, 32 < prompt_tokens < 512.
    Short,
    /// Longer prompt where prefill becomes significant: batch 1,
    /// prompt_tokens >= 512.
    Medium,
    /// Batched prompts: batch > 1, prompt_tokens < 512.
    BatchShort,
    /// Batched, longer prompts: batch > 1, prompt_tokens >= 512.
    BatchMedium,
}

impl ScenarioKind {
    /// The AL.1 type of a scenario, from its shape.
    pub fn of(s: &Scenario) -> ScenarioKind {
        match (s.batch > 1, s.prompt_tokens) {
            (true, p) if p >= MEDIUM_MIN_PROMPT => ScenarioKind::BatchMedium,
            (true, _) => ScenarioKind::BatchShort,
            (false, p) if p <= MICRO_MAX_PROMPT => ScenarioKind::Micro,
            (false, p) if p < MEDIUM_MIN_PROMPT => ScenarioKind::Short,
            (false, _) => ScenarioKind::Medium,
        }
    }

    /// The seed's spelling (`micro`, `batch_short`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::Micro => "micro",
            ScenarioKind::Short => "short",
            ScenarioKind::Medium => "medium",
            ScenarioKind::BatchShort => "batch_short",
            ScenarioKind::BatchMedium => "batch_medium",
        }
    }

    /// AL.2: "micro/short: TTFT and overhead metrics are primary; decode
    /// dominates cost only if gen length is high".
    pub fn ttft_primary(self) -> bool {
        matches!(self, ScenarioKind::Micro | ScenarioKind::Short)
    }

    /// The AL.2 primary metric of a scenario of this type, in words. High
    /// generation (gen >= 64, AM rule 1) makes decode primary in any type.
    pub fn primary(self, s: &Scenario) -> String {
        if s.gen_tokens >= DECODE_HEAVY_GEN {
            return format!(
                "decode throughput (AL.2, AM rule 1: gen_tokens {} >= 64)",
                s.gen_tokens
            );
        }
        match self {
            ScenarioKind::Micro | ScenarioKind::Short => {
                "TTFT (AL.2: TTFT and overhead are primary for micro/short)".into()
            }
            ScenarioKind::Medium => {
                "prefill and decode, phase split (AL.2); the decode fraction picks the AN.1 branch"
                    .into()
            }
            ScenarioKind::BatchShort | ScenarioKind::BatchMedium => {
                "tokens/s and cost per token (AL.2 batch scenarios)".into()
            }
        }
    }
}
