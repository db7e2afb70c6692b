//! The ONNX Runtime session and its forward pass: the library-specific part
//! of [`OrtBackend`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ort::ep::ExecutionProvider as _;
use ort::logging::LogLevel;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor};

use super::{Runtime, failed, one_line, runtime};
use crate::harness::{Attribution, BackendError, CompilerEvidence, Providers};
use crate::step::{Chunk, Context, StepModel, Stepped};
use assay_core::config::{ExecutionProvider, GraphOptimization, OrtOptions};
use assay_model::decl::ModelInfo;
use assay_model::prepare::onnx;

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

/// ONNX Runtime on the model's ONNX export, as the harness drives it:
/// [`OrtModel`] under the shared step bookkeeping.
pub type OrtBackend = Stepped<OrtModel>;

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
        Stepped::wrap(OrtModel {
            info,
            onnx,
            options,
            threads,
            capacity,
            cache: Vec::new(),
            names,
            session: None,
        })
    }
}

/// Node counts of a graph: in all, and per operator type.
type GraphStats = (u64, BTreeMap<String, u64>);

/// ONNX Runtime's part of a backend: the session and its forward pass.
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
pub struct OrtModel {
    info: ModelInfo,
    onnx: PathBuf,
    options: OrtOptions,
    threads: u32,
    capacity: usize,
    /// The cache ONNX Runtime returned, in `Names::past` order; empty before
    /// prefill. Declared before `session` so it is dropped first (ONNX
    /// Runtime allocated it).
    cache: Vec<DynValue>,
    names: Names,
    session: Option<Session>,
}

impl OrtModel {
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

    /// The past of the next pass, in `Names::past` order, taken out of the
    /// cache (ONNX Runtime hands back the new one).
    fn take_past(&mut self, batch: usize) -> Result<Vec<DynValue>, BackendError> {
        if !self.cache.is_empty() {
            return Ok(std::mem::take(&mut self.cache));
        }
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
            .collect()
    }

    /// The attribution of a loaded session: the providers that registered
    /// and the graph before and after optimisation.
    fn attribution(
        &self,
        runtime: &Runtime,
        built: (Vec<String>, BTreeMap<String, String>),
        (nodes_before, ops_before): GraphStats,
        (nodes_after, ops_after): GraphStats,
        optimized: &[u8],
    ) -> Attribution {
        let (registered, refused) = built;
        let inter = self.options.inter_op_threads.max(1);
        let mut detail = BTreeMap::new();
        detail.insert(
            "optimized_model_blake3".to_string(),
            blake3::hash(optimized).to_hex().to_string(),
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
        Attribution {
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
            tokenizer: None,
        }
    }
}

impl StepModel for OrtModel {
    fn load(&mut self) -> Result<Attribution, BackendError> {
        let runtime = runtime().map_err(BackendError::Library)?;
        let model = std::fs::read(&self.onnx)
            .map_err(|e| BackendError::Weights(format!("reading {}: {e}", self.onnx.display())))?;
        let before = onnx::graph_stats(&model)
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
        let after = onnx::graph_stats(&optimized)
            .map_err(|e| BackendError::Library(format!("optimised model: {e}")))?;
        drop(scratch);

        self.session = Some(session);
        self.cache.clear();
        Ok(self.attribution(runtime, (registered, refused), before, after, &optimized))
    }

    fn reset(&mut self) {
        self.cache.clear();
    }

    /// One forward pass; keeps the returned cache and copies out the
    /// logits into the rows of the previous pass.
    fn forward(
        &mut self,
        chunk: Chunk<'_>,
        logits: &mut Vec<Vec<f32>>,
    ) -> Result<(), BackendError> {
        if self.session.is_none() {
            return Err(BackendError::NotLoaded);
        }
        let ids: Vec<i64> = chunk.ids.iter().map(|&t| i64::from(t)).collect();
        let ids = Tensor::from_array(([chunk.batch, chunk.len], ids))
            .map_err(|e| failed("input ids", e))?;
        let past = self.take_past(chunk.batch)?;
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            Vec::with_capacity(1 + past.len());
        inputs.push((onnx::INPUT_IDS.into(), ids.into()));
        for (name, value) in self.names.past.iter().zip(past) {
            inputs.push((Cow::Borrowed(name.as_str()), value.into()));
        }
        let session = self.session.as_mut().ok_or(BackendError::NotLoaded)?;
        // On failure the past went into the call and the cache is empty:
        // the step bookkeeping then starts again from position 0.
        let mut outputs = session.run(inputs).map_err(|e| failed("run", e))?;
        {
            let (shape, data) = outputs
                .get(onnx::LOGITS)
                .ok_or_else(|| BackendError::Library("onnxruntime: no output logits".into()))?
                .try_extract_tensor::<f32>()
                .map_err(|e| failed("reading logits", e))?;
            let batch = chunk.batch;
            let vocab = shape.get(1).copied().unwrap_or(0).max(0) as usize;
            if shape.len() != 2 || shape[0] as usize != batch || vocab == 0 {
                return Err(BackendError::Library(format!(
                    "onnxruntime: logits of shape {shape:?}, expected [{batch}, vocab]"
                )));
            }
            logits.resize_with(batch, Vec::new);
            for (row, values) in logits.iter_mut().zip(data.chunks_exact(vocab)) {
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
        Ok(())
    }

    fn context(&self) -> Context {
        Context {
            max_positions: self.info.max_positions,
            capacity: self.capacity,
        }
    }
}
