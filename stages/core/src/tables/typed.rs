//! Typed views of the string columns the stages compare: each parses the
//! stored string into its [`crate::domain`] enum (or [`Phase`]), so a
//! stage compares enums, never strings. The stored fields stay strings.

use super::events::Phase;
use super::rows::{
    CostRow, EnergyRow, EventRow, FitRow, KneeRow, LoadRow, RequestRow, SummaryRow, ValidationRow,
};
use crate::domain::{
    EnergyStatus, Evidence, FitForm, FitX, FitY, RequestStatus, RequestWindow, RunStatus,
    TokensSource,
};

/// `phase()`: the row's phase as a [`Phase`] (`Other` for an unknown name).
macro_rules! phase_of {
    ($($row:ty),+) => {$(
        impl $row {
            /// The stored `phase` as a [`Phase`].
            pub fn phase(&self) -> Phase {
                Phase::from_name(&self.phase)
            }
        }
    )+};
}

/// `evidence()` and `is_measured()` of a row with an `evidence` column.
macro_rules! evidence_of {
    ($($row:ty),+) => {$(
        impl $row {
            /// The stored `evidence`; None for an unknown string.
            pub fn evidence(&self) -> Option<Evidence> {
                Evidence::parse(&self.evidence)
            }

            /// Whether the row is a real measurement, here or imported
            /// from a peer tool (not simulated, nor unknown).
            pub fn is_measured(&self) -> bool {
                self.evidence().is_some_and(Evidence::is_real)
            }
        }
    )+};
}

phase_of!(EventRow, EnergyRow, SummaryRow, CostRow);
evidence_of!(LoadRow, KneeRow, ValidationRow, SummaryRow, CostRow, FitRow);

impl EnergyRow {
    /// The stored `status`; None for an unknown string.
    pub fn status(&self) -> Option<EnergyStatus> {
        EnergyStatus::parse(&self.status)
    }
}

impl RequestRow {
    /// The stored `window`; None for an unknown string.
    pub fn window(&self) -> Option<RequestWindow> {
        RequestWindow::parse(&self.window)
    }

    /// The stored `status`; None for an unknown string.
    pub fn status(&self) -> Option<RequestStatus> {
        RequestStatus::parse(&self.status)
    }

    /// The request completed (`ok`).
    pub fn is_ok(&self) -> bool {
        self.status() == Some(RequestStatus::Ok)
    }

    /// The request is in the steady window.
    pub fn is_steady(&self) -> bool {
        self.window() == Some(RequestWindow::Steady)
    }
}

impl LoadRow {
    /// The stored `tokens_source`; None for an unknown string.
    pub fn tokens_source(&self) -> Option<TokensSource> {
        TokensSource::parse(&self.tokens_source)
    }
}

impl ValidationRow {
    /// The stored `status`; None for an unknown string.
    pub fn status(&self) -> Option<RunStatus> {
        RunStatus::parse(&self.status)
    }

    /// The run's verdict is `ok`.
    pub fn is_ok(&self) -> bool {
        self.status() == Some(RunStatus::Ok)
    }
}

impl FitRow {
    /// The stored `form`; None for an unknown string.
    pub fn form(&self) -> Option<FitForm> {
        FitForm::parse(&self.form)
    }

    /// The stored `x`; None for an unknown string.
    pub fn x(&self) -> Option<FitX> {
        FitX::parse(&self.x)
    }

    /// The stored `y`; None for an unknown string.
    pub fn y(&self) -> Option<FitY> {
        FitY::parse(&self.y)
    }
}
