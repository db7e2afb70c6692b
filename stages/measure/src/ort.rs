//! ONNX Runtime as a backend (cargo feature `ort`): the model's ONNX export
//! (`prepare::onnx`) run through the `ort` crate, with the KV cache as graph
//! inputs and outputs.
//!
//! The library is loaded at run time (`ort`'s `load-dynamic`), from
//! `ORT_DYLIB_PATH` or from where `scripts/install-native-libs.sh` puts it,
//! so that assay builds without ONNX Runtime and a missing library is one
//! clear error at load, not a link failure or a panic.
//!
//! What this backend reports is what ONNX Runtime did, not what the spec
//! asked for: the execution providers that registered (a CUDA request on a
//! CPU-only library is not reported as a GPU run), the library version
//! read from the loaded file, and the graph before and after optimisation
//! (node counts from the export and from the optimised model ONNX Runtime
//! writes), so "compiled" is evidence rather than a label.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use ort::ep::ExecutionProvider as _;
use ort::logging::LogLevel;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor};

use crate::harness::{
    Attribution, BackendError, CompilerEvidence, InferenceBackend, Pick, Providers, greedy,
};
use assay_core::config::{ExecutionProvider, GraphOptimization, OrtOptions};
use assay_model::decl::ModelInfo;
use assay_model::prepare::onnx;

/// The ONNX Runtime version `scripts/install-native-libs.sh` installs and
/// `ort` 2.0.0-rc.13 is built against (its API level 24 needs 1.24 or
/// newer; `ort` refuses older libraries at load).
pub const ORT_VERSION_EXPECTED: &str = crate::versions::ORT_EXPECTED;

/// The shared library's file name as the install script lays it out.
fn library_file() -> String {
    format!("libonnxruntime.so.{ORT_VERSION_EXPECTED}")
}

/// Where the ONNX Runtime shared library is: `ORT_DYLIB_PATH` if set (it
/// must exist), else
/// `${ASSAY_NATIVE_DIR:-$HOME/.cache/assay/native}/onnxruntime-1.28.0/lib/libonnxruntime.so.1.28.0`.
/// A missing library is one line saying what to run.
pub fn library_path() -> Result<PathBuf, String> {
    resolve_library_path(
        std::env::var_os("ORT_DYLIB_PATH"),
        std::env::var_os("ASSAY_NATIVE_DIR"),
        std::env::var_os("HOME"),
    )
}

/// [`library_path`] on given environment values (environment variables are
/// process-global, so tests call this instead). Empty values count as unset,
/// as they do for `ort` itself.
pub fn resolve_library_path(
    ort_dylib_path: Option<OsString>,
    native_dir: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf, String> {
    let set = |v: Option<OsString>| v.filter(|s| !s.is_empty()).map(PathBuf::from);
    const FIX: &str = "run scripts/install-native-libs.sh onnxruntime";
    if let Some(path) = set(ort_dylib_path) {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "ONNX Runtime library not found (ORT_DYLIB_PATH={} missing): {FIX}, or point ORT_DYLIB_PATH at libonnxruntime.so",
                path.display()
            ))
        };
    }
    let native = match (set(native_dir), set(home)) {
        (Some(dir), _) => dir,
        (None, Some(home)) => home.join(".cache/assay/native"),
        (None, None) => {
            return Err(format!(
                "ONNX Runtime library not found (ORT_DYLIB_PATH, ASSAY_NATIVE_DIR and HOME unset): {FIX}"
            ));
        }
    };
    let path = native
        .join(format!("onnxruntime-{ORT_VERSION_EXPECTED}"))
        .join("lib")
        .join(library_file());
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "ONNX Runtime library not found (ORT_DYLIB_PATH unset and {} missing): {FIX}",
            path.display()
        ))
    }
}

/// The library this process loaded.
#[derive(Debug, Clone)]
struct Runtime {
    path: PathBuf,
    version: String,
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// Load ONNX Runtime once per process. `ort` keeps the first library it
/// loads for the life of the process, so the outcome, success or the
/// error line, is kept too.
fn runtime() -> Result<&'static Runtime, String> {
    RUNTIME
        .get_or_init(load_runtime)
        .as_ref()
        .map_err(Clone::clone)
}

fn load_runtime() -> Result<Runtime, String> {
    let path = library_path()?;
    // `init_from` reports a failed dlopen or a too-old library as an error;
    // its internals still `expect` and `assert` on the odd library (no
    // `OrtGetApiBase`, a null API base), so a panic is caught and turned
    // into the same one-line error: a bad library must fail the cell, not
    // abort the worker with a backtrace.
    let loaded = std::panic::catch_unwind(|| ort::init_from(&path).map(|env| env.commit()));
    match loaded {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(one_line(&format!("loading ONNX Runtime: {e}"))),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            return Err(one_line(&format!(
                "loading ONNX Runtime from {} failed: {what}",
                path.display()
            )));
        }
    }
    let version = library_version(&path)?;
    Ok(Runtime { path, version })
}

/// The version of the ONNX Runtime library file, from the ELF symbol
/// version its linker script gives every exported symbol (`VERS_1.28.0`):
/// the version the dynamic linker bound, so it is the library's own word.
///
/// Why not `OrtApiBase::GetVersionString`: `ort` rc.13 calls it while
/// loading but does not expose the result, and calling the C entry point
/// ourselves would need `unsafe`, which the workspace forbids.
/// `ort::info()` (the build string) names a git commit but no version.
fn library_version(path: &Path) -> Result<String, String> {
    const MARK: &[u8] = b"VERS_";
    const CHUNK: usize = 1 << 20;
    let mut file = std::fs::File::open(path)
        .map_err(|e| format!("reading ONNX Runtime library {}: {e}", path.display()))?;
    // The version definitions sit in .dynstr near the start of the file;
    // scan in chunks (keeping a tail across chunk borders), not 24 MB at once.
    let mut window: Vec<u8> = Vec::with_capacity(CHUNK + 64);
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = file
            .read(&mut chunk)
            .map_err(|e| format!("reading ONNX Runtime library {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        window.extend_from_slice(&chunk[..n]);
        let mut from = 0;
        while let Some(i) = find(&window[from..], MARK) {
            let start = from + i + MARK.len();
            let len = window[start..]
                .iter()
                .take_while(|b| b.is_ascii_digit() || **b == b'.')
                .count();
            let complete = start + len < window.len();
            if complete && len > 0 {
                let v = String::from_utf8_lossy(&window[start..start + len]).into_owned();
                if v.split('.').count() == 3 && v.split('.').all(|p| !p.is_empty()) {
                    return Ok(v);
                }
            }
            if !complete {
                break;
            }
            from = start;
        }
        let keep = window.len().saturating_sub(64);
        window.drain(..keep);
    }
    Err(format!(
        "{}: no ONNX Runtime version (VERS_x.y.z) found in the library",
        path.display()
    ))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The first line of an error, trimmed: ONNX Runtime's messages can carry
/// a stack trace after it.
fn one_line(text: &str) -> String {
    text.lines().next().unwrap_or("").trim().to_string()
}

fn failed(what: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::Library(one_line(&format!("onnxruntime: {what}: {e}")))
}

fn level(g: GraphOptimization) -> GraphOptimizationLevel {
    match g {
        GraphOptimization::Disabled => GraphOptimizationLevel::Disable,
        GraphOptimization::Basic => GraphOptimizationLevel::Level1,
        GraphOptimization::Extended => GraphOptimizationLevel::Level2,
        GraphOptimization::All => GraphOptimizationLevel::All,
    }
}

/// A directory removed when dropped, for the optimised model ONNX Runtime
/// writes at session creation (`tempfile` is only a dev-dependency).
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Result<Self, String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        for _ in 0..100 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = base.join(format!("assay-ort-{}-{n}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(ScratchDir(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("creating {}: {e}", dir.display())),
            }
        }
        Err(format!("no free scratch directory in {}", base.display()))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Graph input and output names, made once at load rather than formatted
/// every step.
struct Names {
    /// `past_key.0, past_value.0, past_key.1, ...`
    past: Vec<String>,
    /// `present_key.0, present_value.0, ...`, in the same order.
    present: Vec<String>,
}

impl Names {
    fn new(layers: u32) -> Self {
        let mut past = Vec::new();
        let mut present = Vec::new();
        for i in 0..layers {
            past.extend([onnx::past_key(i), onnx::past_value(i)]);
            present.extend([onnx::present_key(i), onnx::present_value(i)]);
        }
        Names { past, present }
    }
}

/// A session and how its execution providers fared.
struct Built {
    session: Session,
    /// Providers that registered, in priority order, `cpu` last.
    registered: Vec<String>,
    /// Requested providers that did not register, with ONNX Runtime's
    /// reason.
    refused: BTreeMap<String, String>,
}

/// ONNX Runtime on the model's ONNX export, as the harness drives it.
/// `Session::run` returns after the outputs are computed and the logits are
/// then copied to host memory, which is the synchronisation point.
///
/// The KV cache lives in the tensors ONNX Runtime returns: the graph
/// concatenates each layer's past with the new keys and values and returns
/// the result (`present_*`), and those very values (reference-counted, not
/// copied) are the next call's `past_*`. What is copied per call is thus
/// (1) inside the graph, each layer's whole cache once into the new,
/// longer `present` tensor (the `Concat`: O(position) per step, the price
/// of a stateless graph with the cache as input and output, which an
/// in-place cache like candle's avoids), and (2) on the host, the ids in
/// and the `[batch, vocab]` logits out. No cache bytes cross the host
/// boundary.
pub struct OrtBackend {
    info: ModelInfo,
    onnx: PathBuf,
    options: OrtOptions,
    threads: u32,
    capacity: usize,
    /// The cache ONNX Runtime returned, in `Names::past` order; empty before
    /// prefill. Declared before `session` so it is dropped first (ONNX
    /// Runtime allocated it).
    cache: Vec<DynValue>,
    logits: Vec<Vec<f32>>,
    pos: usize,
    names: Names,
    session: Option<Session>,
}

impl OrtBackend {
    /// `onnx`: the model's export (`prepare::onnx::export_onnx`).
    /// `threads`: intra-op threads. `capacity`: the most tokens one
    /// sequence will hold (prompt plus generation), as for candle.
    pub fn new(
        info: ModelInfo,
        onnx: PathBuf,
        options: OrtOptions,
        threads: u32,
        capacity: usize,
    ) -> Self {
        let names = Names::new(info.n_layer);
        OrtBackend {
            info,
            onnx,
            options,
            threads,
            capacity,
            cache: Vec::new(),
            logits: Vec::new(),
            pos: 0,
            names,
            session: None,
        }
    }

    /// Last logits of every sequence (for numerical checks).
    pub fn logits(&self) -> &[Vec<f32>] {
        &self.logits
    }

    /// Positions a sequence may use: the cell's capacity within the model's.
    fn positions(&self) -> usize {
        self.capacity.min(self.info.max_positions as usize)
    }

    /// The session with the cell's options and providers.
    fn build_session(&self, model: &[u8], optimized: &Path) -> Result<Built, BackendError> {
        let inter = self.options.inter_op_threads.max(1);
        let mut builder: SessionBuilder = Session::builder()
            .map_err(|e| failed("creating session options", e))?
            // Warnings would go to the worker's stderr (for instance that
            // an optimised model written at level `all` is specific to this
            // machine, which is why it is only counted, never reused);
            // errors still come back as errors.
            .with_log_level(LogLevel::Error)
            .map_err(|e| failed("setting the log level", e))?
            .with_intra_threads(self.threads.max(1) as usize)
            .map_err(|e| failed("setting intra-op threads", e))?
            .with_inter_threads(inter as usize)
            .map_err(|e| failed("setting inter-op threads", e))?
            .with_parallel_execution(inter > 1)
            .map_err(|e| failed("setting the execution mode", e))?
            .with_optimization_level(level(self.options.graph_optimization))
            .map_err(|e| failed("setting the optimisation level", e))?
            .with_optimized_model_path(optimized)
            .map_err(|e| failed("setting the optimised model path", e))?;
        let mut registered = Vec::new();
        let mut refused = BTreeMap::new();
        for p in &self.options.providers {
            match p {
                ExecutionProvider::Cuda => {
                    // Registered by hand, not through `with_execution_providers`,
                    // which logs a failure and carries on: the outcome is what
                    // attribution reports.
                    match ort::ep::CUDA::default().register(&mut builder) {
                        Ok(()) => registered.push("cuda".to_string()),
                        Err(e) => {
                            refused.insert("cuda".to_string(), one_line(&e.to_string()));
                        }
                    }
                }
                // The CPU provider is always there: ONNX Runtime appends it
                // after every registered provider as the fallback, so there
                // is nothing to register (and `ort`'s `CPU` would only turn
                // the memory arena off).
                ExecutionProvider::Cpu => {}
            }
        }
        registered.push("cpu".to_string());
        let session = builder
            .commit_from_memory(model)
            .map_err(|e| failed("creating the session", e))?;
        Ok(Built {
            session,
            registered,
            refused,
        })
    }

    /// One forward pass of `t` tokens per sequence; keeps the returned
    /// cache and copies out the logits.
    fn run(&mut self, ids: Vec<i64>, batch: usize) -> Result<(), BackendError> {
        let t = ids.len() / batch.max(1);
        if t == 0 || ids.len() != batch * t {
            return Err(BackendError::BadInput(format!(
                "onnxruntime: {} token ids do not form {batch} equal sequences",
                ids.len()
            )));
        }
        if self.pos + t > self.positions() {
            return Err(BackendError::context_full(
                self.pos + t,
                self.positions(),
                self.info.max_positions,
                self.capacity,
            ));
        }
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            Vec::with_capacity(1 + self.names.past.len());
        let ids = Tensor::from_array(([batch, t], ids)).map_err(|e| failed("input ids", e))?;
        inputs.push((onnx::INPUT_IDS.into(), ids.into()));
        let past = if self.cache.is_empty() {
            // Prefill: a past of length zero. ONNX Runtime takes zero-size
            // tensors, and `Concat` with an empty past is the new keys.
            let shape = [
                batch,
                self.info.n_kv_head as usize,
                0,
                self.info.head_dim() as usize,
            ];
            (0..self.names.past.len())
                .map(|_| {
                    Tensor::<f32>::from_array((shape, Vec::new()))
                        .map(Tensor::into_dyn)
                        .map_err(|e| failed("empty past", e))
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            std::mem::take(&mut self.cache)
        };
        for (name, value) in self.names.past.iter().zip(past) {
            inputs.push((Cow::Borrowed(name.as_str()), value.into()));
        }
        let session = self.session.as_mut().ok_or(BackendError::NotLoaded)?;
        let mut outputs = match session.run(inputs) {
            Ok(outputs) => outputs,
            Err(e) => {
                // The past went into the failed call: start again from an
                // empty cache rather than decode at a stale position.
                self.pos = 0;
                self.logits.clear();
                return Err(failed("run", e));
            }
        };
        {
            let (shape, data) = outputs
                .get(onnx::LOGITS)
                .ok_or_else(|| BackendError::Library("onnxruntime: no output logits".into()))?
                .try_extract_tensor::<f32>()
                .map_err(|e| failed("reading logits", e))?;
            let vocab = shape.get(1).copied().unwrap_or(0).max(0) as usize;
            if shape.len() != 2 || shape[0] as usize != batch || vocab == 0 {
                return Err(BackendError::Library(format!(
                    "onnxruntime: logits of shape {shape:?}, expected [{batch}, vocab]"
                )));
            }
            self.logits.resize_with(batch, Vec::new);
            for (row, values) in self.logits.iter_mut().zip(data.chunks_exact(vocab)) {
                row.clear();
                row.extend_from_slice(values);
            }
        }
        for name in &self.names.present {
            let value = outputs
                .remove(name.as_str())
                .ok_or_else(|| BackendError::Library(format!("onnxruntime: no output {name}")))?;
            self.cache.push(value);
        }
        self.pos += t;
        Ok(())
    }
}

impl InferenceBackend for OrtBackend {
    fn load(&mut self) -> Result<Attribution, BackendError> {
        let runtime = runtime().map_err(BackendError::Library)?;
        let model = std::fs::read(&self.onnx)
            .map_err(|e| BackendError::Weights(format!("reading {}: {e}", self.onnx.display())))?;
        let (nodes_before, ops_before) = onnx::graph_stats(&model)
            .map_err(|e| BackendError::Weights(format!("{}: {e}", self.onnx.display())))?;
        // ONNX Runtime writes the graph it will run when the session is
        // created; its node counts are the "after" of the evidence. This
        // writes a copy of the weights too, so the timed load includes that
        // write (to the temporary directory, usually memory-backed).
        let scratch = ScratchDir::new().map_err(BackendError::Library)?;
        let optimized_path = scratch.0.join("optimized.onnx");
        let Built {
            session,
            registered,
            refused,
        } = self.build_session(&model, &optimized_path)?;
        let optimized = std::fs::read(&optimized_path).map_err(|e| {
            BackendError::Library(format!(
                "onnxruntime wrote no optimised model ({}): {e}",
                optimized_path.display()
            ))
        })?;
        let (nodes_after, ops_after) = onnx::graph_stats(&optimized)
            .map_err(|e| BackendError::Library(format!("optimised model: {e}")))?;
        drop(scratch);

        self.session = Some(session);
        self.cache.clear();
        self.logits.clear();
        self.pos = 0;

        let inter = self.options.inter_op_threads.max(1);
        let mut detail = BTreeMap::new();
        detail.insert(
            "optimized_model_blake3".to_string(),
            blake3::hash(&optimized).to_hex().to_string(),
        );
        detail.insert(
            "execution_mode".to_string(),
            if inter > 1 { "parallel" } else { "sequential" }.to_string(),
        );
        detail.insert("inter_op_threads".to_string(), inter.to_string());
        detail.insert(
            "library_path".to_string(),
            runtime.path.display().to_string(),
        );
        detail.insert("build_info".to_string(), one_line(ort::info()));
        for (provider, why) in &refused {
            detail.insert(format!("{provider}_not_registered"), why.clone());
        }
        let real = nodes_after != nodes_before || ops_after != ops_before;
        let ran_on = registered[0].clone();
        let device = if ran_on == "cuda" { "cuda:0" } else { "cpu" };
        Ok(Attribution {
            device: device.to_string(),
            dtype: "f32".to_string(),
            threads: self.threads.max(1),
            library: "onnxruntime".to_string(),
            library_version: runtime.version.clone(),
            providers: Some(Providers {
                requested: self
                    .options
                    .providers
                    .iter()
                    .map(|p| p.as_str().to_string())
                    .collect(),
                registered,
                ran_on,
            }),
            compiler: Some(CompilerEvidence {
                kind: "onnxruntime-graph-optimization".to_string(),
                mode: self.options.graph_optimization.as_str().to_string(),
                nodes_before,
                nodes_after: Some(nodes_after),
                ops_before,
                ops_after,
                detail,
                real,
            }),
            server: None,
        })
    }

    fn reset(&mut self) {
        self.cache.clear();
        self.logits.clear();
        self.pos = 0;
    }

    fn prefill(&mut self, prompts: &[Vec<u32>]) -> Result<(), BackendError> {
        let ids: Vec<i64> = prompts.iter().flatten().map(|&t| i64::from(t)).collect();
        self.run(ids, prompts.len())
    }

    fn sample(&mut self) -> Result<Vec<Pick>, BackendError> {
        Ok(self.logits.iter().map(|row| greedy(row)).collect())
    }

    fn decode_step(&mut self, tokens: &[u32]) -> Result<bool, BackendError> {
        if self.pos + 1 > self.positions() {
            return Ok(false);
        }
        self.run(tokens.iter().map(|&t| i64::from(t)).collect(), tokens.len())?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candle::{CandleBackend, WeightFiles};
    use crate::harness::prompt_ids;
    use assay_core::config::{Dtype, Scenario};
    use assay_model::decl::Arch;
    use assay_model::prepare::synthetic::tiny;

    struct Fixture {
        _dir: tempfile::TempDir,
        info: ModelInfo,
        safetensors: PathBuf,
        onnx: PathBuf,
    }

    fn fixture(arch: Arch) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let a = tiny(arch);
        let info = a.info("tiny");
        let st = assay_model::prepare::synthetic::safetensors(&a).unwrap();
        let model = onnx::export_onnx(&info, &[&st]).unwrap();
        let safetensors = dir.path().join("model.safetensors");
        let onnx = dir.path().join("model.onnx");
        std::fs::write(&safetensors, st).unwrap();
        std::fs::write(&onnx, model).unwrap();
        Fixture {
            _dir: dir,
            info,
            safetensors,
            onnx,
        }
    }

    fn options(level: GraphOptimization) -> OrtOptions {
        OrtOptions {
            graph_optimization: level,
            ..OrtOptions::default()
        }
    }

    fn loaded(f: &Fixture, options: OrtOptions, capacity: usize) -> (OrtBackend, Attribution) {
        let mut b = OrtBackend::new(f.info.clone(), f.onnx.clone(), options, 1, capacity);
        // No skipping: without the library this fails with its one line.
        let attribution = b.load().unwrap_or_else(|e| panic!("{e}"));
        (b, attribution)
    }

    fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .flat_map(|(x, y)| {
                assert_eq!(x.len(), y.len());
                x.iter().zip(y).map(|(p, q)| (p - q).abs())
            })
            .fold(0.0, f32::max)
    }

    /// Batch 2, prompt 5, 4 decode steps: ONNX Runtime's logits agree with
    /// candle's within 1e-4 and the greedy tokens are the same, at every
    /// step, twice (the second run after `reset`).
    fn agrees_with_candle(arch: Arch, level: GraphOptimization) {
        let f = fixture(arch);
        let capacity = 16;
        let mut candle = CandleBackend::new(
            f.info.clone(),
            WeightFiles::Safetensors(vec![f.safetensors.clone()]),
            Dtype::F32,
            capacity,
        );
        candle.load().unwrap();
        let (mut ort, _) = loaded(&f, options(level), capacity);
        let scenario = Scenario {
            name: "s".into(),
            prompt_tokens: 5,
            batch: 2,
            gen_tokens: 5,
            load: None,
        };
        let prompts = prompt_ids(&scenario, f.info.vocab, 3);
        let mut first_run = Vec::new();
        let mut worst = 0.0f32;
        for run in 0..2 {
            candle.reset();
            ort.reset();
            candle.prefill(&prompts).unwrap();
            ort.prefill(&prompts).unwrap();
            let mut step_logits = Vec::new();
            for step in 0..5 {
                let d = max_diff(candle.logits(), ort.logits());
                assert!(d <= 1e-4, "{arch:?} {level:?} run {run} step {step}: {d}");
                worst = worst.max(d);
                let c: Vec<u32> = candle.sample().unwrap().iter().map(|p| p.token).collect();
                let o: Vec<u32> = ort.sample().unwrap().iter().map(|p| p.token).collect();
                assert_eq!(c, o, "{arch:?} {level:?} run {run} step {step}");
                step_logits.push(ort.logits().to_vec());
                if step < 4 {
                    assert!(candle.decode_step(&c).unwrap());
                    assert!(ort.decode_step(&o).unwrap());
                }
            }
            if run == 0 {
                first_run = step_logits;
            } else {
                assert_eq!(first_run, step_logits, "reset must start afresh");
            }
        }
        eprintln!("{arch:?} {level:?}: largest logit difference from candle {worst:e}");
    }

    #[test]
    fn llama_matches_candle() {
        agrees_with_candle(Arch::Llama, GraphOptimization::All);
        agrees_with_candle(Arch::Llama, GraphOptimization::Disabled);
    }

    #[test]
    fn gpt2_matches_candle() {
        agrees_with_candle(Arch::Gpt2, GraphOptimization::All);
        agrees_with_candle(Arch::Gpt2, GraphOptimization::Disabled);
    }

    #[test]
    fn optimisation_is_evidenced_by_node_counts() {
        for arch in [Arch::Llama, Arch::Gpt2] {
            let f = fixture(arch);
            let (_, all) = loaded(&f, options(GraphOptimization::All), 8);
            let all = all.compiler.unwrap();
            let (_, off) = loaded(&f, options(GraphOptimization::Disabled), 8);
            let off = off.compiler.unwrap();
            eprintln!(
                "{arch:?}: all {} -> {:?}, disabled {} -> {:?}\n  after all: {:?}",
                all.nodes_before, all.nodes_after, off.nodes_before, off.nodes_after, all.ops_after
            );
            assert_eq!(all.nodes_before, off.nodes_before);
            assert!(all.nodes_after.unwrap() < all.nodes_before, "{arch:?}");
            assert!(all.real);
            assert_eq!(all.mode, "all");
            // Fusion into ONNX Runtime's contrib operators, not only
            // constant folding.
            assert!(
                all.ops_after
                    .keys()
                    .any(|k| k.starts_with("com.microsoft.")),
                "{arch:?}: {:?}",
                all.ops_after
            );
            assert_eq!(off.nodes_after, Some(off.nodes_before), "{arch:?}");
            assert_eq!(off.ops_after, off.ops_before);
            assert!(!off.real);
            assert_eq!(off.mode, "disabled");
        }
    }

    #[test]
    fn attribution_reports_what_ran() {
        let f = fixture(Arch::Llama);
        let (_, a) = loaded(&f, OrtOptions::default(), 8);
        assert_eq!(a.device, "cpu");
        assert_eq!(a.dtype, "f32");
        assert_eq!(a.threads, 1);
        assert_eq!(a.library, "onnxruntime");
        assert_eq!(a.library_version, ORT_VERSION_EXPECTED);
        let p = a.providers.unwrap();
        assert_eq!(p.requested, ["cpu"]);
        assert_eq!(p.registered, ["cpu"]);
        assert_eq!(p.ran_on, "cpu");
        let c = a.compiler.unwrap();
        assert_eq!(c.kind, "onnxruntime-graph-optimization");
        assert_eq!(c.detail["execution_mode"], "sequential");
        assert_eq!(c.detail["optimized_model_blake3"].len(), 64);
        assert_eq!(c.ops_before.values().sum::<u64>(), c.nodes_before);

        let parallel = OrtOptions {
            inter_op_threads: 2,
            ..OrtOptions::default()
        };
        let (mut b, a) = loaded(&f, parallel, 8);
        assert_eq!(a.compiler.unwrap().detail["execution_mode"], "parallel");
        b.prefill(&[vec![1, 2, 3]]).unwrap();
        assert_eq!(b.sample().unwrap().len(), 1);
    }

    #[test]
    fn a_cuda_request_on_a_cpu_library_reports_the_cpu() {
        let f = fixture(Arch::Gpt2);
        let options = OrtOptions {
            providers: vec![ExecutionProvider::Cuda, ExecutionProvider::Cpu],
            ..OrtOptions::default()
        };
        let (mut b, a) = loaded(&f, options, 8);
        let p = a.providers.unwrap();
        assert_eq!(p.requested, ["cuda", "cpu"]);
        assert_eq!(p.registered, ["cpu"], "the installed library is CPU-only");
        assert_eq!(p.ran_on, "cpu");
        assert_eq!(a.device, "cpu");
        let c = a.compiler.unwrap();
        assert!(
            c.detail.contains_key("cuda_not_registered"),
            "{:?}",
            c.detail
        );
        // And it still runs, on the CPU.
        b.prefill(&[vec![1, 2, 3], vec![4, 5, 6]]).unwrap();
        assert_eq!(b.sample().unwrap().len(), 2);
    }

    #[test]
    fn a_full_context_stops_decode_and_fails_prefill() {
        let f = fixture(Arch::Llama);
        let (mut b, _) = loaded(&f, OrtOptions::default(), 6);
        b.prefill(&[vec![1, 2, 3, 4, 5]]).unwrap();
        assert!(b.decode_step(&[1]).unwrap());
        assert!(!b.decode_step(&[1]).unwrap());
        b.reset();
        let e = b.prefill(&[vec![1; 7]]).unwrap_err().to_string();
        assert!(e.starts_with("context full"), "{e}");
        // Ragged prompts are refused, not silently misread.
        assert!(b.prefill(&[vec![1, 2], vec![3]]).is_err());
    }

    #[test]
    fn a_missing_library_is_one_line() {
        let bogus = Some(OsString::from("/nonexistent/libonnxruntime.so"));
        let e = resolve_library_path(bogus, None, Some("/root".into())).unwrap_err();
        assert!(!e.contains('\n'));
        assert!(
            e.starts_with(
                "ONNX Runtime library not found (ORT_DYLIB_PATH=/nonexistent/libonnxruntime.so missing)"
            ),
            "{e}"
        );
        assert!(
            e.contains("run scripts/install-native-libs.sh onnxruntime"),
            "{e}"
        );

        let e =
            resolve_library_path(None, Some("/nowhere".into()), Some("/root".into())).unwrap_err();
        assert_eq!(
            e,
            "ONNX Runtime library not found (ORT_DYLIB_PATH unset and /nowhere/onnxruntime-1.28.0/lib/libonnxruntime.so.1.28.0 missing): run scripts/install-native-libs.sh onnxruntime"
        );
        // Empty counts as unset; HOME is the fallback.
        let e = resolve_library_path(Some("".into()), Some("".into()), Some("/home/x".into()))
            .unwrap_err();
        assert!(
            e.contains("/home/x/.cache/assay/native/onnxruntime-1.28.0/lib/"),
            "{e}"
        );
        assert!(resolve_library_path(None, None, None).is_err());

        // An existing file is taken as is; the install layout is found.
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libonnxruntime.so");
        std::fs::write(&lib, b"").unwrap();
        assert_eq!(
            resolve_library_path(Some(lib.clone().into()), None, None).unwrap(),
            lib
        );
        let installed = dir.path().join("onnxruntime-1.28.0/lib");
        std::fs::create_dir_all(&installed).unwrap();
        std::fs::write(installed.join("libonnxruntime.so.1.28.0"), b"").unwrap();
        assert_eq!(
            resolve_library_path(None, Some(dir.path().into()), None).unwrap(),
            installed.join("libonnxruntime.so.1.28.0")
        );
    }

    #[test]
    fn the_version_is_read_from_the_library_file() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib.so");
        // The mark straddles a chunk border.
        let mut bytes = vec![0u8; (1 << 20) - 3];
        bytes.extend_from_slice(b"VERS_1.28.0\0libc.so.6\0");
        std::fs::write(&lib, &bytes).unwrap();
        assert_eq!(library_version(&lib).unwrap(), "1.28.0");
        std::fs::write(&lib, b"no version here").unwrap();
        assert!(library_version(&lib).is_err());
        // And the installed library is the version the script installs.
        let installed = library_path().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(library_version(&installed).unwrap(), ORT_VERSION_EXPECTED);
    }
}
