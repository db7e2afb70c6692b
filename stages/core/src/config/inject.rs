//! Fault injection of the `simulated` backend (`simulated.inject`): degraded
//! runs produced on purpose, each with exactly the evidence a real fault
//! leaves, so that a spec can show validation catching them (the TR118
//! trust report). Absent, nothing is injected and nothing enters any key.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Dtype;

/// The faults to inject into every cell of one simulated backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Inject {
    /// One run stops generating early, as a backend whose context filled
    /// or whose stop condition fired would: fewer decode events than the
    /// scenario's `gen_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_run: Option<ShortRun>,
    /// The backend reports that something other than what was requested
    /// ran (label drift, TR120): the attribution's device, dtype or thread
    /// count differs from the spec's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution_drift: Option<AttributionDrift>,
    /// The power sensor answers during the idle baseline, then delivers no
    /// samples from model load on, like a poller whose counter reads
    /// started failing (needs the spec's `energy:`; without it there is no
    /// sensor to fail).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dead_sensor: bool,
    /// Every forward pass (prefill and decode step) of one scenario's
    /// cells takes `factor` times as long, as a shape-specific slow path
    /// would: latency then falls where a longer prompt or generation of
    /// the same configuration should take longer (Appendix AH.3's
    /// monotonicity checks catch it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_scenario: Option<SlowScenario>,
    /// Each cell's model load also waits this many seconds of real
    /// (wall-clock) time, as a backend stuck loading would; the simulated
    /// timings do not include it. For exercising an executor's time limit
    /// and cancellation (`--executor slurm`, docs/cluster.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub stall_s: Option<u32>,
}

/// The scenario whose forward passes are slowed, and by how much.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlowScenario {
    /// A scenario of the spec, by name.
    pub scenario: String,
    /// Latency multiplier of each forward pass (a whole number >= 2).
    pub factor: u32,
}

/// Which run stops early, and after how many generated tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShortRun {
    /// The run (0-based, warmup runs first, like `fail_at_run`).
    pub run: u32,
    /// Tokens the run generates before it stops (the first comes from
    /// prefill, so at least 1); at or above a scenario's `gen_tokens` the
    /// run is not short.
    #[schemars(range(min = 1))]
    pub tokens: u32,
}

/// What the backend reports ran instead of what was requested. Each field
/// given replaces the requested value in the attribution; a drifted dtype
/// also sizes the simulated weights, since that is what "ran".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributionDrift {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<Dtype>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
}

impl Inject {
    /// One line per injected fault, for the manifest: whoever reads a
    /// degraded cell learns that its fault was put there on purpose.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(s) = &self.short_run {
            out.push(format!(
                "short_run: run {} stops after {} generated tokens",
                s.run, s.tokens
            ));
        }
        if let Some(d) = &self.attribution_drift {
            let mut fields = Vec::new();
            if let Some(device) = &d.device {
                fields.push(format!("device {device}"));
            }
            if let Some(dtype) = d.dtype {
                fields.push(format!("dtype {}", dtype.as_str()));
            }
            if let Some(threads) = d.threads {
                fields.push(format!("threads {threads}"));
            }
            out.push(format!("attribution_drift: reports {}", fields.join(", ")));
        }
        if self.dead_sensor {
            out.push("dead_sensor: no power samples from model load on".into());
        }
        if let Some(s) = &self.slow_scenario {
            out.push(format!(
                "slow_scenario: every forward pass of scenario {} takes {}x as long",
                s.scenario, s.factor
            ));
        }
        if let Some(s) = self.stall_s {
            out.push(format!("stall_s: each model load waits {s} s of real time"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_injected_describes_nothing_and_serialises_empty() {
        let none = Inject::default();
        assert!(none.describe().is_empty());
        assert_eq!(serde_json::to_string(&none).unwrap(), "{}");
    }

    #[test]
    fn every_fault_is_described() {
        let inject: Inject = serde_json::from_value(serde_json::json!({
            "short_run": { "run": 2, "tokens": 3 },
            "attribution_drift": { "device": "cuda:0", "dtype": "f16" },
            "dead_sensor": true,
            "slow_scenario": { "scenario": "p16", "factor": 4 },
            "stall_s": 90,
        }))
        .unwrap();
        assert_eq!(
            inject.describe(),
            vec![
                "short_run: run 2 stops after 3 generated tokens",
                "attribution_drift: reports device cuda:0, dtype f16",
                "dead_sensor: no power samples from model load on",
                "slow_scenario: every forward pass of scenario p16 takes 4x as long",
                "stall_s: each model load waits 90 s of real time",
            ]
        );
        let unknown = serde_json::from_value::<Inject>(serde_json::json!({ "slow": true }));
        assert!(unknown.is_err());
    }
}
