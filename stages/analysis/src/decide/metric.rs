//! The AN.1 ranking metrics.

use assay_core::tables::{CostRow, Phase, SummaryRow};

/// Which AN.1 branch, with its metric.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Metric {
    DecodeRate,
    PrefillCost {
        tier: String,
    },
    PrefillRate,
    PrefillLatency,
    /// AL.2: TTFT is the primary metric of micro and short scenarios.
    Ttft,
}

impl Metric {
    pub(super) fn phase(&self) -> Phase {
        match self {
            Metric::DecodeRate => Phase::Decode,
            Metric::Ttft => Phase::Ttft,
            _ => Phase::Prefill,
        }
    }

    pub(super) fn name(&self) -> String {
        match self {
            Metric::DecodeRate => "decode tokens/s".into(),
            Metric::PrefillCost { tier } => format!("prefill usd_per_1m (tier {tier})"),
            Metric::PrefillRate => "prefill tokens/s".into(),
            Metric::PrefillLatency => "prefill median latency".into(),
            Metric::Ttft => "TTFT median latency".into(),
        }
    }

    pub(super) fn unit(&self) -> &'static str {
        match self {
            Metric::DecodeRate | Metric::PrefillRate => "tokens/s",
            Metric::PrefillCost { .. } => "USD per 1M prefill tokens",
            Metric::PrefillLatency | Metric::Ttft => "ms",
        }
    }

    pub(super) fn higher_is_better(&self) -> bool {
        matches!(self, Metric::DecodeRate | Metric::PrefillRate)
    }

    /// (value, ci_low, ci_high) in the metric's unit. Rates are inverse to
    /// the median latency, so their bounds come from the opposite latency
    /// bounds; costs are proportional to it.
    pub(super) fn value(&self, s: &SummaryRow, c: Option<&CostRow>) -> (f64, f64, f64) {
        let (m, lo, hi) = (s.median_ms, s.median_ci_low_ms, s.median_ci_high_ms);
        match self {
            Metric::DecodeRate | Metric::PrefillRate => {
                let v = s.tokens_per_s;
                (v, v * m / hi, v * m / lo)
            }
            Metric::PrefillCost { .. } => {
                let v = c.map_or(f64::NAN, |c| c.usd_per_1m);
                (v, v * lo / m, v * hi / m)
            }
            Metric::PrefillLatency | Metric::Ttft => (m, lo, hi),
        }
    }
}
