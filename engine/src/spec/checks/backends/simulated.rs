//! `simulated`: the latency model's options.

use assay_core::config::SimulatedOptions;
use assay_measure::BackendConfig;

use super::check_shared;
use crate::spec::diagnostic::Diags;

/// `simulated`: the shared checks and the latency model's parameters.
pub(super) fn check_simulated(diags: &mut Diags<'_>, i: usize, b: &BackendConfig) {
    check_shared(diags, i, b);
    check_simulated_section(diags, i, b);
}

/// The `simulated` section's values, when given.
pub(super) fn check_simulated_section(diags: &mut Diags<'_>, i: usize, b: &BackendConfig) {
    if let Some(o) = &b.simulated {
        check_simulated_options(diags, &format!("/backends/{i}/simulated"), o);
    }
}

fn check_simulated_options(diags: &mut Diags<'_>, at: &str, o: &SimulatedOptions) {
    for (field, v) in [
        ("peak_gflops", o.peak_gflops),
        ("memory_gbps", o.memory_gbps),
    ] {
        if v.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            diags.at_value(&format!("{at}/{field}"), format!("{field} must be > 0"));
        }
    }
    for (field, v, min) in [
        ("overhead_us", o.overhead_us, 0.0),
        ("cold_start_factor", o.cold_start_factor, 1.0),
        ("outlier_factor", o.outlier_factor, 1.0),
    ] {
        if v.is_nan() || v < min {
            diags.at_value(
                &format!("{at}/{field}"),
                format!("{field} must be >= {min}"),
            );
        }
    }
    if !(0.0..=1.0).contains(&o.outlier_rate) {
        diags.at_value(
            &format!("{at}/outlier_rate"),
            "outlier_rate must be within [0, 1]".into(),
        );
    }
    if o.noise_cv.is_nan() || o.noise_cv < 0.0 {
        diags.at_value(&format!("{at}/noise_cv"), "noise_cv must be >= 0".into());
    }
}
