//! The program's decision areas (Appendix J) and which member claims
//! inform each: a claim informs an area by what it is (its id's first
//! segment), so the decision impact matrix is read from the data rather
//! than from the report names.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Area {
    BackendSelection,
    Economics,
    CompilerPolicy,
    ScalingTiering,
    EnergyGating,
    MeasurementValidity,
}

impl Area {
    pub const ALL: [Area; 6] = [
        Area::BackendSelection,
        Area::Economics,
        Area::CompilerPolicy,
        Area::ScalingTiering,
        Area::EnergyGating,
        Area::MeasurementValidity,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Area::BackendSelection => "Backend selection",
            Area::Economics => "Cost, capacity and routing",
            Area::CompilerPolicy => "Compiler policy",
            Area::ScalingTiering => "Scaling and model tiering",
            Area::EnergyGating => "Energy gating",
            Area::MeasurementValidity => "Measurement validity",
        }
    }

    /// The claim-id prefixes that carry evidence for this decision: the
    /// decision claims themselves and the measurements they rank.
    pub fn prefixes(self) -> &'static [&'static str] {
        match self {
            Area::BackendSelection => &["decision/", "ranking/", "paradox/"],
            Area::Economics => &[
                "cost/",
                "capacity/",
                "routing/",
                "requests/",
                "goodput/",
                "knee/",
                "saturation/",
            ],
            Area::CompilerPolicy => &["compiler/"],
            Area::ScalingTiering => &["fit/"],
            Area::EnergyGating => &["energy/"],
            Area::MeasurementValidity => &["validation/", "warmup/"],
        }
    }

    /// What is unknown without any evidence for this area (Appendix AT).
    pub fn without(self) -> &'static str {
        match self {
            Area::BackendSelection => "backend selection would be guesswork",
            Area::Economics => {
                "latency would be optimised without knowing its cost: expensive, marginal wins"
            }
            Area::CompilerPolicy => {
                "compile claims would rest on labels, not on what the runtime did"
            }
            Area::ScalingTiering => "model tiering would rest on anecdote or parameter count alone",
            Area::EnergyGating => "energy would be reported with false precision, or not at all",
            Area::MeasurementValidity => {
                "nothing would show that the measured differences are real and not artifacts"
            }
        }
    }

    pub fn informed_by(self, claim_id: &str) -> bool {
        self.prefixes().iter().any(|p| claim_id.starts_with(p))
    }
}
