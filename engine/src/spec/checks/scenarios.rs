//! `scenarios` and `sweeps`: the names a rate sweep or a cartesian sweep
//! generates (explicit names are checked with the other lists' names).

use std::collections::BTreeMap;

use super::{Ctx, valid_name};
use crate::spec::diagnostic::Diags;

/// Generated names are valid, come from non-zero dimensions, and collide
/// with no other scenario's name.
pub(super) fn check_generated_names(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    let mut names: BTreeMap<&str, ()> = BTreeMap::new();
    check_rate_sweep_names(cx, diags, &mut names);
    check_sweep_names(cx, diags, &mut names);
}

/// A name a rate sweep generates must not clash with an explicit one. Two
/// explicit names are `check_names`' to report; a clash with a name a rate
/// sweep generated is reported at the sweep. Fills `names` with the
/// explicit scenarios' names.
fn check_rate_sweep_names<'a>(
    cx: &Ctx<'a>,
    diags: &mut Diags<'_>,
    names: &mut BTreeMap<&'a str, ()>,
) {
    let spec = cx.spec;
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (j, s) in cx.scenarios.iter().enumerate().take(cx.explicit()) {
        names.insert(s.name.as_str(), ());
        let i = cx.origin[j];
        if let Some(&first) = seen.get(s.name.as_str()) {
            let generated = |k: usize| spec.scenarios[k].name != s.name;
            let sweep = [i, first].into_iter().find(|k| generated(*k));
            if let Some(k) = sweep {
                diags.at_value(
                    &format!("/scenarios/{k}/load/rates"),
                    format!(
                        "the rate sweep generates scenario {:?}, which already exists",
                        s.name
                    ),
                );
            }
        } else {
            seen.insert(s.name.as_str(), i);
        }
    }
}

/// The scenarios of `sweeps`, reported at the sweep that generates them.
fn check_sweep_names<'a>(cx: &Ctx<'a>, diags: &mut Diags<'_>, names: &mut BTreeMap<&'a str, ()>) {
    let explicit = cx.explicit();
    for (i, s) in cx.scenarios.iter().enumerate().skip(explicit) {
        let at = format!("/sweeps/{}", cx.sweep_of(i - explicit));
        if !valid_name(&s.name) {
            diags.at_value(&at, format!("sweep generates scenario name {:?}: names must be letters, digits, '-', '_' or '.'", s.name));
        }
        if s.prompt_tokens == 0 || s.batch == 0 || s.gen_tokens == 0 {
            diags.at_value(
                &at,
                format!(
                    "sweep generates scenario {:?} with a zero dimension; every value must be >= 1",
                    s.name
                ),
            );
        }
        if names.insert(&s.name, ()).is_some() {
            let sweep_index = cx.sweep_of(i - explicit);
            diags.at_value(
                &format!("/sweeps/{sweep_index}"),
                format!(
                    "sweep generates scenario {:?}, which already exists",
                    s.name
                ),
            );
        }
    }
}
