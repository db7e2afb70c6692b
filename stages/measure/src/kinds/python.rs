//! `python`: assay's Python harness (python/assay_harness) in a Python
//! environment with torch and transformers: Hugging Face transformers eager,
//! or the same model under `torch.compile`. The harness times the phases;
//! this entry prepares the model directory, runs the harness process and
//! turns its messages into the rows every in-process cell has
//! (docs/python-harness.md).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::in_process;

use crate::energy::{PowerOutcome, Sampler, SensorChoice, gpu, monotonic_ns, open_sensor};
use crate::harness;
use crate::python::client::{self, Failure, HarnessCommand};
use crate::python::protocol::{CellRequest, CompileRequest, PROTOCOL};
use crate::python::{ScratchDir, install_package, package_digest};
use crate::stage::registry::{Backend, CheckContext, Execution, Findings, Measured};
use crate::stage::{MeasureStage, unix_ms};
use assay_core::config::python::{CompileMode, PythonOptions};
use assay_core::config::{BackendConfig, Dtype};
use assay_core::domain::{FileRole, ModelSource};
use assay_core::inputs::find_input;
use assay_core::stage::{Input, StageContext, StageError};
use assay_model::prepare::{self, ModelRecord};

/// The environment variable naming the interpreter when the spec does not.
pub const ASSAY_PYTHON: &str = "ASSAY_PYTHON";

#[derive(Debug)]
pub struct Python;

impl Backend for Python {
    fn name(&self) -> &'static str {
        "python"
    }

    fn summary(&self) -> &'static str {
        "assay's Python harness in a Python environment with torch and\ntransformers (scripts/install-python-harness.sh): transformers eager,\nor torch.compile with Dynamo evidence. Options under `python:`."
    }

    fn execution(&self) -> Execution {
        Execution::InProcess
    }

    fn options_section(&self) -> Option<&'static str> {
        Some("python")
    }

    /// Safetensors checkpoints in f32, f16 or bf16 on the CPU or a CUDA
    /// device; a compile mode other than `default` only with Inductor; and,
    /// when measuring, an interpreter.
    fn check(&self, cx: &CheckContext<'_>, b: &BackendConfig, findings: &mut dyn Findings) {
        if !matches!(b.dtype, Dtype::F32 | Dtype::F16 | Dtype::Bf16) {
            findings.at_value(
                &cx.at("/dtype"),
                format!(
                    "python runs the safetensors checkpoint in f32, f16 or bf16; dtype {} is not supported",
                    b.dtype.as_str()
                ),
            );
        }
        let cuda = b.device == "cuda"
            || b.device
                .strip_prefix("cuda:")
                .is_some_and(|n| n.parse::<u32>().is_ok());
        if b.device != "cpu" && !cuda {
            findings.at_value(
                &cx.at("/device"),
                format!(
                    "python can be asked for `cpu`, `cuda` or `cuda:N`; device {:?} is not one",
                    b.device
                ),
            );
        }
        in_process::check_safetensors_models(cx, b, findings);
        let opts = b.python.clone().unwrap_or_default();
        if let Some(c) = &opts.compile {
            if c.backend.trim().is_empty() {
                findings.at_value(
                    &cx.at("/python/compile/backend"),
                    "a torch.compile backend name is needed (`inductor`, `aot_eager`, `eager`)"
                        .into(),
                );
            }
            if c.backend != "inductor" && c.mode != CompileMode::Default {
                findings.at_value(
                    &cx.at("/python/compile/mode"),
                    format!(
                        "mode {} is Inductor's; backend {:?} takes `default` only",
                        c.mode.as_str(),
                        c.backend
                    ),
                );
            }
        }
        if cx.measuring {
            match interpreter(&opts) {
                Ok(path) if !path.is_file() => {
                    let (at, from) = match &opts.interpreter {
                        Some(_) => (cx.at("/python/interpreter"), "python.interpreter"),
                        None => (cx.at("/kind"), ASSAY_PYTHON),
                    };
                    findings.at_value(
                        &at,
                        format!(
                            "{from} names {}, which is not a file: build the environment with `eval \"$(scripts/install-python-harness.sh)\"`",
                            path.display()
                        ),
                    );
                }
                Ok(path) => {
                    if let Err(e) = environment_versions(&path) {
                        let at = match &opts.interpreter {
                            Some(_) => cx.at("/python/interpreter"),
                            None => cx.at("/kind"),
                        };
                        findings.at_value(&at, e);
                    }
                }
                Err(message) => findings.at_value(&cx.at("/kind"), message),
            }
        }
    }

    /// The options made explicit for the key; the interpreter's path and
    /// the message timeout are this machine's business, not the
    /// measurement's (what ran is in the manifest), so they stay out.
    fn resolve(&self, b: &BackendConfig, _stage: &MeasureStage) -> BackendConfig {
        let mut b = b.clone();
        let mut opts = b.python.unwrap_or_default();
        opts.interpreter = None;
        opts.timeout_s = None;
        b.python = Some(opts);
        b
    }

    fn compiled(&self, b: &BackendConfig) -> Option<String> {
        let c = b.python.as_ref()?.compile.as_ref()?;
        Some(format!(
            "torch.compile:{}:{}:{}",
            c.backend,
            c.mode.as_str(),
            c.phases.as_str()
        ))
    }

    /// The harness package, and the Python environment's versions (Python,
    /// torch, transformers): they enter the key, so switching to an
    /// environment with another torch measures again. The interpreter's
    /// path stays out (the same environment elsewhere is the same
    /// measurement).
    fn libraries(&self, stage: &MeasureStage) -> Vec<(String, String)> {
        let mut libs = vec![(
            "assay_harness".into(),
            format!("protocol {PROTOCOL}, package {}", &package_digest()[..16]),
        )];
        let opts = stage.backend.python.clone().unwrap_or_default();
        match interpreter(&opts).and_then(|p| environment_versions(&p)) {
            Ok(versions) => libs.extend(versions),
            // Refused by `check` when measuring; a plan shows why.
            Err(e) => libs.push(("python_environment".into(), format!("unknown: {e}"))),
        }
        libs
    }

    fn measure(
        &self,
        stage: &MeasureStage,
        ctx: &StageContext<'_>,
        inputs: &[Input],
    ) -> Result<Measured, StageError> {
        let started = unix_ms();
        if stage.boundary.tokenizes() {
            return Err(StageError::Failed(
                "the python kind measures token ids; `boundary.tokenization: included` is not supported by its harness".into(),
            ));
        }
        if stage.boundary.model_load == assay_core::config::ModelLoad::Included {
            return Err(StageError::Failed(
                "the python kind times the load apart from the runs; `boundary.model_load: included` is not supported by its harness".into(),
            ));
        }
        let (record, _files, weights) = in_process::weights(None, ctx, inputs)?;
        let opts = stage.backend.python.clone().unwrap_or_default();
        let interpreter = interpreter(&opts).map_err(StageError::Failed)?;
        let scratch = ScratchDir::new("assay-python-cell").map_err(StageError::Failed)?;
        let model_dir = model_dir(ctx, inputs, &record, scratch.path())?;
        let inductor_cache = scratch.path().join("inductor");
        let package = install_package(None).map_err(StageError::Failed)?;
        let seed = record.declaration.as_ref().map_or(0, |d| d.seed);
        let request = CellRequest {
            kind: "cell".into(),
            protocol: PROTOCOL,
            cell: stage.cell.clone(),
            model_dir: model_dir.to_string_lossy().into_owned(),
            dtype: stage.backend.dtype.as_str().into(),
            device: stage.backend.device.clone(),
            threads: stage.backend.threads,
            prompts: harness::prompt_ids(&stage.scenario, record.info.vocab, seed),
            gen_tokens: stage.scenario.gen_tokens,
            warmup_runs: stage.boundary.warmup_runs,
            repetitions: stage.boundary.repetitions,
            compile: opts.compile.as_ref().map(|c| CompileRequest {
                backend: c.backend.clone(),
                mode: c.mode.as_str().into(),
                dynamic: c.dynamic,
                phases: c.phases.as_str().into(),
            }),
        };
        let command = harness_command(
            &interpreter,
            package.path(),
            &inductor_cache,
            &opts,
            stage.backend.threads,
        );
        // Energy: the sensor of the cell's device polled from before the
        // harness starts (the idle baseline) to its last event; samples are
        // placed on the harness's clock afterwards. A GPU cell without
        // `energy:` still has its GPU watched, for the manifest's
        // attribution (clocks, memory, other processes); its samples are
        // not stored.
        let watch = match stage.energy {
            Some(s) => Some((s.sensor, s.poll_ms, s.idle_ms)),
            None if gpu::is_cuda(&stage.backend.device) => {
                Some((SensorChoice::Nvml, GPU_WATCH_POLL_MS, 0))
            }
            None => None,
        };
        let sampling_from = monotonic_ns();
        let sampler = watch.map(|(sensor, poll_ms, idle_ms)| {
            open_sensor(sensor, &stage.backend.device).map(|sensor| {
                let mut sampler = Sampler::start(sensor, Duration::from_millis(poll_ms.into()));
                if idle_ms > 0 {
                    ctx.progress("idle baseline");
                    sampler.idle_baseline(Duration::from_millis(idle_ms.into()), 2);
                }
                sampler
            })
        });
        let transcript =
            client::run_cell(&command, &request, |p| ctx.progress(p), || ctx.cancelled()).map_err(
                |f| match f {
                    Failure::Cancelled => StageError::Cancelled,
                    Failure::Failed(m) => StageError::Failed(m),
                },
            )?;
        let mut measurement = client::measurement(
            &stage.cell,
            &stage.scenario,
            stage.boundary.warmup_runs,
            stage.boundary.repetitions,
            &transcript,
        )
        .map_err(StageError::Failed)?;
        measurement.attribution.library_version = format!(
            "{}; Python {}, {} {} (protocol {PROTOCOL})",
            measurement.attribution.library_version,
            transcript.python,
            transcript.harness,
            transcript.harness_version
        );
        // The harness's zero must fall while assay sampled, as it does when
        // both read CLOCK_MONOTONIC; a harness on another clock would
        // misplace every sample, so its cell gets none.
        let origin = client::origin_ns(&transcript);
        let on_our_clock = (sampling_from..=monotonic_ns()).contains(&origin);
        measurement.power = sampler.map(|s| match s {
            Ok(sampler) if on_our_clock => {
                PowerOutcome::Trace(sampler.finish_at_monotonic_ns(origin))
            }
            Ok(_) => PowerOutcome::NoSensor(format!(
                "the harness's first event ({origin} ns) is not on CLOCK_MONOTONIC while assay \
                 sampled: its clock cannot be aligned with the power samples"
            )),
            Err(reason) => PowerOutcome::NoSensor(reason),
        });
        Ok(Measured {
            measurement,
            model_info: Some(record.info),
            weights: Some(weights),
            started_unix_ms: Some(started),
            requests: None,
        })
    }
}

/// How often a GPU cell without `energy:` has its GPU's processes read.
const GPU_WATCH_POLL_MS: u32 = 100;

/// The interpreter: the spec's `python.interpreter`, else `ASSAY_PYTHON`.
pub fn interpreter(opts: &PythonOptions) -> Result<PathBuf, String> {
    if let Some(p) = &opts.interpreter {
        return Ok(PathBuf::from(p));
    }
    match std::env::var_os(ASSAY_PYTHON) {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Err(format!(
            "the python kind needs a Python interpreter with torch and transformers: set `python.interpreter` in this backend or the environment variable {ASSAY_PYTHON} (`eval \"$(scripts/install-python-harness.sh)\"` builds one and sets it)"
        )),
    }
}

/// What [`environment_versions`] runs: versions from the installed
/// packages' metadata, without importing torch (seconds).
const VERSIONS_SCRIPT: &str = "import json, sys\nfrom importlib import metadata\ndef v(n):\n    try:\n        return metadata.version(n)\n    except Exception:\n        return None\nprint(json.dumps({'python': sys.version.split()[0], 'torch': v('torch'), 'transformers': v('transformers')}))\n";

/// How long the version probe may take.
const VERSIONS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The Python, torch and transformers versions of the environment
/// `interpreter` belongs to, as `(library, version)`; read once per
/// interpreter per process. An interpreter that cannot be run, or that does
/// not answer, is an error naming it.
pub fn environment_versions(interpreter: &Path) -> Result<Vec<(String, String)>, String> {
    use std::collections::BTreeMap;
    use std::sync::{Mutex, OnceLock};
    type Versions = Result<Vec<(String, String)>, String>;
    static CACHE: OnceLock<Mutex<BTreeMap<PathBuf, Versions>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    if let Some(v) = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(interpreter)
    {
        return v.clone();
    }
    let v = probe_versions(interpreter);
    cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(interpreter.to_path_buf(), v.clone());
    v
}

fn probe_versions(interpreter: &Path) -> Result<Vec<(String, String)>, String> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let fail = |why: String| {
        format!(
            "cannot read the Python environment of {} (Python, torch and transformers versions): {why}",
            interpreter.display()
        )
    };
    let mut child = Command::new(interpreter)
        .args(["-c", VERSIONS_SCRIPT])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = stdout.as_mut() {
            let _ = o.take(1 << 16).read_to_string(&mut s);
        }
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.take(1 << 16).read_to_string(&mut s);
        }
        s
    });
    let deadline = std::time::Instant::now() + VERSIONS_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "no answer within {} s",
                    VERSIONS_TIMEOUT.as_secs()
                )));
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    };
    let out = out.join().unwrap_or_default();
    if !status.success() {
        let err = err.join().unwrap_or_default();
        let tail: String = err
            .trim_end()
            .chars()
            .rev()
            .take(1000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(fail(format!("it exited with {status}: {tail}")));
    }
    let line = out
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(line)
        .map_err(|e| fail(format!("its answer {line:?} is not JSON ({e})")))?;
    let get = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    };
    let python = get("python").ok_or_else(|| fail(format!("no Python version in {line:?}")))?;
    Ok(vec![
        ("python".into(), python),
        (
            "torch".into(),
            get("torch").unwrap_or_else(|| "not installed".into()),
        ),
        (
            "transformers".into(),
            get("transformers").unwrap_or_else(|| "not installed".into()),
        ),
    ])
}

/// How the harness is started: the embedded package first on PYTHONPATH,
/// the thread count in the environment (OpenMP reads it at load, before
/// `torch.set_num_threads`), Inductor's cache in the cell's scratch
/// directory (so every cell's compile is cold, and measured as such), and
/// no network for the hub.
pub fn harness_command(
    interpreter: &Path,
    package: &Path,
    inductor_cache: &Path,
    opts: &PythonOptions,
    threads: u32,
) -> HarnessCommand {
    let mut pythonpath = package.to_string_lossy().into_owned();
    if let Some(old) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
        pythonpath = format!("{pythonpath}:{}", old.to_string_lossy());
    }
    let threads = threads.to_string();
    HarnessCommand {
        interpreter: interpreter.to_path_buf(),
        args: vec!["-m".into(), "assay_harness".into()],
        env: vec![
            ("PYTHONPATH".into(), pythonpath),
            ("PYTHONUNBUFFERED".into(), "1".into()),
            ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
            ("OMP_NUM_THREADS".into(), threads.clone()),
            ("MKL_NUM_THREADS".into(), threads),
            (
                "TORCHINDUCTOR_CACHE_DIR".into(),
                inductor_cache.to_string_lossy().into_owned(),
            ),
            ("HF_HUB_OFFLINE".into(), "1".into()),
            ("TRANSFORMERS_OFFLINE".into(), "1".into()),
            ("TOKENIZERS_PARALLELISM".into(), "false".into()),
        ],
        timeout: opts.timeout(),
    }
}

/// A Hugging Face layout directory for transformers: a local checkpoint's
/// own directory, or, for a synthetic model, links in `scratch` to its
/// stored config.json, weights and tokenizer.json (objects in the store
/// are named by digest, not by the names transformers looks for). The
/// stored bytes are used as they are: their digests are the model's
/// identity.
fn model_dir(
    ctx: &StageContext<'_>,
    inputs: &[Input],
    record: &ModelRecord,
    scratch: &Path,
) -> Result<PathBuf, StageError> {
    if record.source() != Some(ModelSource::Synthetic) {
        let config = record.local_path(FileRole::Config);
        return config
            .first()
            .and_then(|c| c.parent())
            .map(Path::to_path_buf)
            .ok_or_else(|| {
                StageError::Failed(format!(
                    "model {}: no config.json in its record (the python kind needs a Hugging Face directory)",
                    record.info.name
                ))
            });
    }
    let dir = scratch.join("model");
    std::fs::create_dir_all(&dir).map_err(|e| StageError::Failed(e.to_string()))?;
    let weights = find_input(inputs, prepare::output::WEIGHTS)?;
    link(
        &ctx.store.object_path(&weights.digest),
        &dir.join("model.safetensors"),
    )?;
    for f in &record.files {
        let name = match f.role() {
            Some(FileRole::Config) => "config.json",
            Some(FileRole::Tokenizer) => "tokenizer.json",
            _ => continue,
        };
        let digest = f.blake3.parse().map_err(|e| {
            StageError::Failed(format!("model {}: {name} digest: {e}", record.info.name))
        })?;
        let object = ctx.store.object_path(&digest);
        if !object.is_file() {
            // config.json is what transformers needs; the tokenizer is not
            // read by a cell of token ids.
            if name == "config.json" {
                return Err(StageError::Failed(format!(
                    "model {}: its config.json ({}) is not in the store; prepare the model again",
                    record.info.name, f.blake3
                )));
            }
            continue;
        }
        link(&object, &dir.join(name))?;
    }
    Ok(dir)
}

fn link(target: &Path, at: &Path) -> Result<(), StageError> {
    // A relative store path (`./.assay`) would resolve against the link's
    // own directory.
    let target = &std::fs::canonicalize(target)
        .map_err(|e| StageError::Failed(format!("{}: {e}", target.display())))?;
    #[cfg(unix)]
    let linked = std::os::unix::fs::symlink(target, at);
    #[cfg(not(unix))]
    let linked = std::fs::copy(target, at).map(|_| ());
    linked.map_err(|e| {
        StageError::Failed(format!(
            "cannot link {} to {}: {e}",
            at.display(),
            target.display()
        ))
    })
}
