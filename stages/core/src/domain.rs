//! Typed values of the string columns the stages compare: evidence, clock,
//! a model's source, weights format and file roles, run and request status, request window, energy status, fit form and variables,
//! validate's check names and the source of token counts. The tables store
//! the strings (`as_str` gives exactly the stored spelling, so no stored
//! byte changes); the stages parse a column where they read a row and
//! compare enums, never strings. The event phase is
//! [`crate::tables::Phase`].

use std::fmt;
use std::str::FromStr;

/// A string that names no variant of the enum it was parsed as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    /// The enum, e.g. `Evidence`.
    pub kind: &'static str,
    pub value: String,
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}", self.kind, self.value)
    }
}

impl std::error::Error for UnknownValue {}

/// A unit enum stored as one fixed string per variant.
macro_rules! stored_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// The variant stored as `text`; None for any other string.
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(text: &str) -> Result<$name, UnknownValue> {
                $name::parse(text).ok_or_else(|| UnknownValue {
                    kind: stringify!($name),
                    value: text.to_string(),
                })
            }
        }
    };
}

stored_enum! {
    /// Where numbers came from (`evidence` of manifests and of every derived
    /// row): only real measurements are evidence for a claim. `imported`:
    /// measured by another tool and read from its results file (a measure
    /// node of kind `imported`, docs/importers.md); real, so evidence, but
    /// labelled by where it came from.
    pub enum Evidence {
        Measured => "measured",
        Simulated => "simulated",
        Imported => "imported",
    }
}

impl Evidence {
    /// Whether a stored evidence string is a real measurement: `measured`,
    /// or `imported` from a peer tool's results (anything else, unknown
    /// strings included, is not).
    pub fn is_measured(text: &str) -> bool {
        Evidence::parse(text).is_some_and(Evidence::is_real)
    }

    /// Measured here or by a peer tool: not simulated.
    pub fn is_real(self) -> bool {
        matches!(self, Evidence::Measured | Evidence::Imported)
    }

    /// `measured` when every one of `all` is, else `simulated`.
    pub fn all_measured(all: impl IntoIterator<Item = bool>) -> Evidence {
        if all.into_iter().all(|m| m) {
            Evidence::Measured
        } else {
            Evidence::Simulated
        }
    }
}

stored_enum! {
    /// Which clock timed a measurement (`clock` of manifests): real time,
    /// or the simulated backend's virtual time.
    pub enum Clock {
        Monotonic => "monotonic",
        Virtual => "virtual",
    }
}

stored_enum! {
    /// Where a prepared model came from (`source` of a model record).
    pub enum ModelSource {
        Synthetic => "synthetic",
        Local => "local",
    }
}

stored_enum! {
    /// The file format of weights (`format` of a model record,
    /// `weights_format` of a manifest).
    pub enum WeightsFormat {
        Safetensors => "safetensors",
        Gguf => "gguf",
        Onnx => "onnx",
    }
}

stored_enum! {
    /// What one file of a prepared model is (`role` of a model file).
    pub enum FileRole {
        Weights => "weights",
        Config => "config",
        Tokenizer => "tokenizer",
    }
}

stored_enum! {
    /// The verdict of one run (`status` of `ValidationRow`).
    pub enum RunStatus {
        Ok => "ok",
        Degraded => "degraded",
        Failed => "failed",
    }
}

stored_enum! {
    /// How one request to a server ended (`status` of `RequestRow`).
    pub enum RequestStatus {
        Ok => "ok",
        Timeout => "timeout",
        Stall => "stall",
        Connect => "connect",
        Http => "http",
        Malformed => "malformed",
        Truncated => "truncated",
    }
}

stored_enum! {
    /// Which part of a load run a request belongs to (`window` of
    /// `RequestRow`); only `steady` enters statistics.
    pub enum RequestWindow {
        Warmup => "warmup",
        Steady => "steady",
        Cooldown => "cooldown",
    }
}

stored_enum! {
    /// Whether a window's energy could be attributed (`status` of
    /// `EnergyRow`, TR122 gating).
    pub enum EnergyStatus {
        Valid => "valid",
        NoData => "no_data",
    }
}

stored_enum! {
    /// The form of a scaling fit (`form` of `FitRow`).
    pub enum FitForm {
        /// ln y = a + b ln x; b is the scaling exponent.
        LogLog => "log-log",
        /// y = a + b x.
        Linear => "linear",
        /// ln y = a + sum_k b_k ln x_k over several structural predictors
        /// (Appendix T risk 6); one row per coefficient b_k.
        Multivariate => "multivariate",
    }
}

stored_enum! {
    /// The predictor of a scaling fit (`x` of `FitRow`).
    pub enum FitX {
        /// Exact parameter count (log-log).
        Params => "params",
        /// Number of layers (log-log).
        Layers => "layers",
        /// Hidden size (log-log).
        Hidden => "hidden",
        /// Attention heads (log-log; Appendix AX.2).
        Heads => "heads",
        /// Prompt length (linear, against prefill).
        PromptTokens => "prompt_tokens",
        /// Decode steps, generation length - 1 (linear, against summed decode).
        DecodeSteps => "decode_steps",
    }
}

stored_enum! {
    /// The fitted metric of a scaling fit (`y` of `FitRow`).
    pub enum FitY {
        /// Median decode step latency (log-log).
        DecodeMsPerToken => "decode_ms_per_token",
        /// Median prefill latency (log-log and linear).
        PrefillMs => "prefill_ms",
        /// Median time to first token (log-log).
        TtftMs => "ttft_ms",
        /// Median end-to-end latency (log-log).
        E2eMs => "e2e_ms",
        /// Median summed decode steps of a run (linear).
        DecodeTotalMs => "decode_total_ms",
    }
}

stored_enum! {
    /// One check of validate (`check` of its `checks` output).
    pub enum ValidationCheck {
        ModelLoadTimed => "model_load_timed",
        Attribution => "attribution",
        Repetitions => "repetitions",
        WarmupLabelled => "warmup_labelled",
        Dispersion => "dispersion",
        Outliers => "outliers",
        PhasesComplete => "phases_complete",
        FixedLengthDecode => "fixed_length_decode",
        Evidence => "evidence",
        EnergyCoverage => "energy_coverage",
        Boundary => "boundary",
        OutputStable => "output_stable",
        OutputInvariance => "output_invariance",
        OutputReference => "output_reference",
        /// Appendix AH.3: prefill and TTFT do not fall as the prompt grows
        /// (same backend, model, batch and generation length); a failure's
        /// detail starts with `non_monotonic:prompt`.
        MonotonicPrompt => "monotonic_prompt",
        /// Appendix AH.3: end-to-end latency and summed decode do not fall
        /// as the generation grows (same backend, model, batch and prompt
        /// length); a failure's detail starts with `non_monotonic:gen`.
        MonotonicGen => "monotonic_gen",
        /// Appendix Q.1: the share of a cell's steady ok runs meeting every
        /// in-process SLO limit (spec `slo`) reaches the required attainment.
        Slo => "slo",
        /// Appendix AI.4 (cost stage, `cost_checks`): cost per token does
        /// not fall as throughput falls, nor as the context grows on decode;
        /// a failure's detail starts with `non_monotonic_cost:`.
        CostMonotonic => "cost_monotonic",
        /// Appendix AI.4 pricing tier validation (cost stage): a dearer tier
        /// never gives a cheaper token for the same cell and phase.
        PricingTier => "pricing_tier",
        /// TR122, Appendix S.3: no other process held a compute context on
        /// the cell's GPU while it ran (NVML's process list, polled with
        /// the power); a shared GPU's energy and latency are not the
        /// cell's alone, so its runs are degraded (`gpu_shared:<pids>`).
        /// Only for cells whose GPU was read.
        GpuExclusive => "gpu_exclusive",
    }
}

stored_enum! {
    /// Where a load row's output token counts came from (`tokens_source` of
    /// `LoadRow`).
    pub enum TokensSource {
        /// The server's count for every completed request.
        Server => "server",
        /// Stream chunks carrying text for every one.
        Chunks => "chunks",
        Mixed => "mixed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(all: &[T], as_str: fn(T) -> &'static str, parse: fn(&str) -> Option<T>)
    where
        T: Copy + PartialEq + fmt::Debug,
    {
        for &v in all {
            assert_eq!(parse(as_str(v)), Some(v));
        }
        assert_eq!(parse("no such value"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn every_variant_round_trips_through_its_stored_string() {
        round_trips(Evidence::ALL, Evidence::as_str, Evidence::parse);
        round_trips(RunStatus::ALL, RunStatus::as_str, RunStatus::parse);
        round_trips(
            RequestStatus::ALL,
            RequestStatus::as_str,
            RequestStatus::parse,
        );
        round_trips(
            RequestWindow::ALL,
            RequestWindow::as_str,
            RequestWindow::parse,
        );
        round_trips(EnergyStatus::ALL, EnergyStatus::as_str, EnergyStatus::parse);
        round_trips(Clock::ALL, Clock::as_str, Clock::parse);
        round_trips(ModelSource::ALL, ModelSource::as_str, ModelSource::parse);
        round_trips(
            WeightsFormat::ALL,
            WeightsFormat::as_str,
            WeightsFormat::parse,
        );
        round_trips(FileRole::ALL, FileRole::as_str, FileRole::parse);
        round_trips(FitForm::ALL, FitForm::as_str, FitForm::parse);
        round_trips(TokensSource::ALL, TokensSource::as_str, TokensSource::parse);
        round_trips(FitX::ALL, FitX::as_str, FitX::parse);
        round_trips(FitY::ALL, FitY::as_str, FitY::parse);
        round_trips(
            ValidationCheck::ALL,
            ValidationCheck::as_str,
            ValidationCheck::parse,
        );
    }

    #[test]
    fn the_stored_spellings_are_the_tables_strings() {
        assert_eq!(
            Evidence::ALL.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
            ["measured", "simulated", "imported"]
        );
        assert_eq!(
            RunStatus::ALL
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>(),
            ["ok", "degraded", "failed"]
        );
        assert_eq!(
            RequestStatus::ALL
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>(),
            [
                "ok",
                "timeout",
                "stall",
                "connect",
                "http",
                "malformed",
                "truncated"
            ]
        );
        assert_eq!(
            RequestWindow::ALL
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>(),
            ["warmup", "steady", "cooldown"]
        );
        assert_eq!(EnergyStatus::NoData.as_str(), "no_data");
        assert_eq!(FitForm::LogLog.as_str(), "log-log");
        assert_eq!(
            TokensSource::ALL
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>(),
            ["server", "chunks", "mixed"]
        );
    }

    #[test]
    fn parsing_is_exact_and_errors_name_the_value() {
        assert_eq!(Evidence::parse("Measured"), None);
        assert!(Evidence::is_measured("measured"));
        assert!(!Evidence::is_measured("simulated"));
        assert!(Evidence::is_measured("imported"));
        assert!(!Evidence::is_measured("measured "));
        assert_eq!("no_data".parse::<EnergyStatus>(), Ok(EnergyStatus::NoData));
        let err = "gone".parse::<RunStatus>().unwrap_err();
        assert_eq!(err.to_string(), "unknown RunStatus \"gone\"");
        assert_eq!(FitForm::Linear.to_string(), "linear");
        assert_eq!(Evidence::all_measured([true, true]), Evidence::Measured);
        assert_eq!(Evidence::all_measured([true, false]), Evidence::Simulated);
    }
}
