//! The semantic checks: what a spec must satisfy beyond its schema, one
//! module per section of the spec. [`semantic_checks`] runs them in a fixed
//! order. The loader then sorts the diagnostics by position with a stable
//! sort, so this order decides between errors at the same place: keep it.

mod analysis;
mod backends;
mod boundary;
mod cells;
mod execution;
mod load;
mod models;
mod quality;
mod scenarios;
mod slo;

use std::collections::BTreeMap;
use std::path::{Component, Path};

use assay_measure::{Execution, Registry, Scenario};

use super::diagnostic::Diags;
use super::types::Spec;

pub(super) use boundary::read_prompts_file;
pub(super) use quality::read_quality_file;

/// What a command will do with a spec. Only commands that may measure
/// (`check`, `run`) need this machine to have the backends' runtimes (the
/// ONNX Runtime library, a llama-server binary) and enough cores for the
/// in-process backends' threads; reading what is stored (`plan`, `verify`,
/// `trace`, `show`, `gc`) works anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Measure,
    Read,
}

/// What every check may read: the spec, its expanded scenarios, and the
/// facts about this machine that some checks compare with.
struct Ctx<'a> {
    spec: &'a Spec,
    /// The backend kinds this assay has.
    registry: &'static Registry,
    /// Explicit scenarios first (a rate sweep expanded to one per rate),
    /// then the sweeps'.
    scenarios: &'a [Scenario],
    /// The spec's folder: relative paths resolve against it.
    dir: &'a Path,
    purpose: Purpose,
    /// `origin[j]` is the entry of `spec.scenarios` that the `j`-th
    /// explicit scenario comes from; its length is the number of explicit
    /// scenarios.
    origin: Vec<usize>,
    /// Every backend is `simulated`.
    simulated_only: bool,
    /// Some backend is `simulated`.
    any_simulated: bool,
    /// Some backend is not `simulated`: it materialises weights.
    real_backend: bool,
    machine: Machine,
}

/// This machine, read only when a check needs it.
struct Machine {
    /// Total memory in bytes; 0 when unknown or not read (then no memory
    /// check). Read when the spec has a real backend.
    memory: u64,
    /// Logical cores available to this process; `None` when unknown or not
    /// read (then no thread check). Read only for [`Purpose::Measure`] and
    /// a spec with an in-process backend.
    cores: Option<u32>,
}

impl<'a> Ctx<'a> {
    fn new(spec: &'a Spec, scenarios: &'a [Scenario], dir: &'a Path, purpose: Purpose) -> Self {
        let origin: Vec<usize> = spec
            .scenarios
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                let n = s.load.as_ref().map_or(1, |l| l.rates.len().max(1));
                std::iter::repeat_n(i, n)
            })
            .collect();
        let registry = assay_measure::registry();
        // Where each backend runs; an unregistered kind (the schema refused
        // it) counts as nothing.
        let executions = || {
            spec.backends
                .iter()
                .filter_map(|b| registry.get(b.kind.as_str()).map(|k| k.execution()))
        };
        let real_backend = executions().any(|e| e != Execution::Simulated);
        let in_process = executions().any(|e| e == Execution::InProcess);
        Ctx {
            spec,
            registry,
            scenarios,
            dir,
            purpose,
            origin,
            simulated_only: executions().all(|e| e == Execution::Simulated),
            any_simulated: executions().any(|e| e == Execution::Simulated),
            real_backend,
            machine: Machine {
                // Read once: only real backends allocate what it bounds.
                memory: if real_backend {
                    assay_measure::environment::total_memory_bytes()
                } else {
                    0
                },
                cores: if in_process && purpose == Purpose::Measure {
                    std::thread::available_parallelism()
                        .ok()
                        .and_then(|n| u32::try_from(n.get()).ok())
                } else {
                    None
                },
            },
        }
    }

    /// How many of `scenarios` are explicit (the rest are sweeps').
    fn explicit(&self) -> usize {
        self.origin.len()
    }

    /// Where the `j`-th scenario of `scenarios` is written: its entry in
    /// `scenarios`, or the sweep that generates it.
    fn scenario_at(&self, j: usize) -> String {
        if j < self.explicit() {
            format!("/scenarios/{}", self.origin[j])
        } else {
            format!("/sweeps/{}", self.sweep_of(j - self.explicit()))
        }
    }

    /// Which sweep produced the `k`-th sweep-generated scenario.
    fn sweep_of(&self, mut k: usize) -> usize {
        for (i, s) in self.spec.sweeps.iter().enumerate() {
            let n = s.prompt_tokens.len() * s.batch.len() * s.gen_tokens.len();
            if k < n {
                return i;
            }
            k -= n;
        }
        0
    }
}

/// Every semantic check, in the order their diagnostics are collected.
pub(super) fn semantic_checks(
    spec: &Spec,
    scenarios: &[Scenario],
    dir: &Path,
    purpose: Purpose,
    diags: &mut Diags<'_>,
) {
    let cx = Ctx::new(spec, scenarios, dir, purpose);
    check_top_level(&cx, diags);
    scenarios::check_generated_names(&cx, diags);
    models::check_models(&cx, diags);
    backends::check_backends(&cx, diags);
    boundary::check_boundary(&cx, diags);
    load::check_load_profiles(&cx, diags);
    cells::check_cells(&cx, diags);
    analysis::check_analysis(&cx, diags);
    slo::check_slo(&cx, diags);
    quality::check_quality(&cx, diags);
    execution::check_execution(&cx, diags);
    check_outputs(&cx, diags);
}

/// The id, the required lists, and the names in them.
fn check_top_level(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    let spec = cx.spec;
    if !valid_name(&spec.id) {
        diags.at_value(
            "/id",
            format!(
                "id {:?} must be 1-64 letters, digits, '-', '_' or '.', not starting with '.'",
                spec.id
            ),
        );
    }
    for (list, empty) in [
        ("models", spec.models.is_empty()),
        ("backends", spec.backends.is_empty()),
    ] {
        if empty {
            diags.at_key(
                &format!("/{list}"),
                format!("at least one entry is required in {list}"),
            );
        }
    }
    if cx.scenarios.is_empty() {
        diags.at_key(
            "/scenarios",
            "at least one scenario (or sweep) is required".into(),
        );
    }
    check_names(
        diags,
        "model",
        "models",
        spec.models
            .iter()
            .enumerate()
            .map(|(i, m)| (i, m.name.as_str())),
    );
    check_names(
        diags,
        "backend",
        "backends",
        spec.backends
            .iter()
            .enumerate()
            .map(|(i, b)| (i, b.name.as_str())),
    );
    check_names(
        diags,
        "scenario",
        "scenarios",
        spec.scenarios
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.name.as_str())),
    );
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.')
}

/// Names in `list` (a pointer without its leading `/`) are valid and unique.
fn check_names<'a>(
    diags: &mut Diags<'_>,
    what: &str,
    list: &str,
    names: impl Iterator<Item = (usize, &'a str)>,
) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, name) in names {
        let pointer = format!("/{list}/{i}/name");
        if !valid_name(name) {
            diags.at_value(
                &pointer,
                format!("{what} name {name:?} must be 1-64 letters, digits, '-', '_' or '.', not starting with '.'"),
            );
        }
        if let Some(first) = seen.insert(name, i) {
            diags.at_value(
                &pointer,
                format!("duplicate {what} name {name:?} (first used by {list}[{first}])"),
            );
        }
    }
}

/// `outputs`: a folder inside the spec's, and at least one format.
fn check_outputs(cx: &Ctx<'_>, diags: &mut Diags<'_>) {
    let spec = cx.spec;
    if let Err(message) = output_dir_within(Path::new(&spec.outputs.dir)) {
        diags.at_value("/outputs/dir", message);
    }
    if spec.outputs.formats.is_empty() {
        diags.at_value(
            "/outputs/formats",
            "at least one report format is required".into(),
        );
    }
}

/// An output directory must be relative and stay inside the spec's folder.
pub(crate) fn output_dir_within(dir: &Path) -> Result<(), String> {
    if dir.as_os_str().is_empty() {
        return Err("output dir must not be empty".into());
    }
    let mut depth: i32 = 0;
    for c in dir.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!(
                        "output dir {:?} escapes the spec's folder",
                        dir.display().to_string()
                    ));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "output dir {:?} must be relative to the spec's folder",
                    dir.display().to_string()
                ));
            }
        }
    }
    if depth == 0 {
        return Err("output dir must be a subfolder of the spec's folder".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_dirs() {
        assert!(output_dir_within(Path::new("reports/x")).is_ok());
        assert!(output_dir_within(Path::new("a/../b")).is_ok());
        assert!(output_dir_within(Path::new("../x")).is_err());
        assert!(output_dir_within(Path::new("a/../../x")).is_err());
        assert!(output_dir_within(Path::new("/tmp/x")).is_err());
        assert!(output_dir_within(Path::new(".")).is_err());
    }
}
