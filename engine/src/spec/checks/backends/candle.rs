//! `candle`, in process on this machine's CPU.

use assay_measure::BackendConfig;

use super::{check_shared, check_threads};
use crate::spec::checks::Ctx;
use crate::spec::diagnostic::Diags;

/// `candle`: the CPU only, and its threads on this machine's cores.
pub(super) fn check_candle(cx: &Ctx<'_>, diags: &mut Diags<'_>, i: usize, b: &BackendConfig) {
    if b.device != "cpu" {
        diags.at_value(
            &format!("/backends/{i}/device"),
            format!(
                "candle runs on the CPU only in this build; device {:?} is not available",
                b.device
            ),
        );
    }
    check_shared(diags, i, b);
    check_threads(cx, diags, i, b);
}
