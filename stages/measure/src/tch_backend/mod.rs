//! libtorch through `tch`, on the CPU in f32: the same llama and GPT-2 models
//! as the candle backend, run op by op (`eager`) or as a TorchScript trace of
//! that very code (`torchscript`).
//!
//! Why it is built the way it is:
//!
//! - The weights come through candle's [`SafetensorsSource`], which maps a
//!   Hugging Face checkpoint onto GGUF names and undoes GPT-2's `Conv1D`
//!   transpose. libtorch therefore runs exactly the weights, in exactly the
//!   layout, that candle runs, and a difference between the two backends is a
//!   difference of kernels, never of loading.
//! - One forward function (`forward`) serves both modes: eager calls it,
//!   and the TorchScript graphs are traces of it. So eager against torchscript
//!   compares executors (op-by-op dispatch against libtorch's graph executor),
//!   not two implementations.
//! - Tracing records ops on tensors and bakes every Rust value into the graph
//!   as a constant. The forward function therefore never computes a size, a
//!   position or a length in Rust: positions come in as a tensor (rotary rows
//!   and learned positions by `index_select`, the KV write by `index_copy_`),
//!   the cached length is the last position plus one, as a tensor, and the
//!   causal mask compares key slots with query positions, tensor against
//!   tensor. Shapes are only split and merged with `unflatten`/`flatten`, never
//!   `reshape` to computed sizes, so one trace serves every batch size, prompt
//!   length and past length.
//! - The KV cache is preallocated per layer (`[batch, kv_heads, capacity,
//!   head_dim]`) and written in place, as candle's is: appending by
//!   concatenation would copy the whole cache at every step, an O(length)
//!   cost per token that candle does not pay and that would confound the
//!   comparison. The buffers are graph inputs that the traced graph updates in
//!   place, so the trace has one output, the last logits, and no "presents":
//!   tch registers a traced function's outputs one by one rather than as a
//!   tuple, and libtorch refuses to call a method with more than one output.
//! - The weights are graph inputs too, not traced constants. The saved trace
//!   (for evidence: op counts and a digest) is then the program alone, a few
//!   kilobytes, instead of two extra copies of the weights written to disk
//!   inside the timed load; and the digest names the traced program
//!   independently of the weights, whose own digest the manifest records.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tch::{CModule, Device, Kind, TchError, Tensor};

use crate::harness::{Attribution, BackendError};
use crate::step::{Chunk, Context, StepModel, Stepped};
use assay_core::config::{TchMode, TchOptions};
use assay_model::decl::ModelInfo;

mod forward;
#[cfg(test)]
mod tests;
mod trace;
mod weights;

use weights::{Model, load_model};

/// The libtorch version tch 0.26 (torch-sys) is built for. torch-sys's build
/// script refuses any other libtorch (it reads `$LIBTORCH/build-version`)
/// unless `LIBTORCH_BYPASS_VERSION_CHECK` is set; the version actually mapped
/// into the process is looked up at load ([`linked_libtorch_version`]) and
/// this is the fallback.
pub const TORCH_VERSION: &str = crate::versions::TORCH_EXPECTED;

/// libtorch on the CPU as the harness drives it: [`TchModel`] under the
/// shared step bookkeeping.
pub type TchBackend = Stepped<TchModel>;

impl TchBackend {
    /// `weights`: the safetensors shards of a Hugging Face checkpoint.
    /// `threads`: libtorch's intra-op threads. `capacity`: the most tokens one
    /// sequence will hold (prompt plus generation), so the KV cache and the
    /// rotary tables are sized once.
    pub fn new(
        info: ModelInfo,
        weights: Vec<PathBuf>,
        options: TchOptions,
        threads: u32,
        capacity: usize,
    ) -> Self {
        Stepped::wrap(TchModel {
            info,
            weights,
            options,
            threads,
            capacity,
            loaded: None,
        })
    }
}

/// libtorch's part of a backend: loading (and tracing) and the forward
/// pass. Every pass returns after the logits are copied to host memory,
/// which is the synchronisation.
pub struct TchModel {
    info: ModelInfo,
    weights: Vec<PathBuf>,
    options: TchOptions,
    threads: u32,
    capacity: usize,
    loaded: Option<Loaded>,
}

/// What `load` builds.
struct Loaded {
    model: Model,
    /// `0..capacity` as int64: the key slots the causal mask compares with
    /// query positions (an input, so the trace does not bake a length).
    slots: Tensor,
    /// Per layer, keys then values, `[batch, kv_heads, capacity, head_dim]`;
    /// allocated at the first prefill (the batch is not known at load) and
    /// kept across runs of the same batch, like candle's.
    cache: Vec<Tensor>,
    cache_batch: Option<i64>,
    traced: Option<Traced>,
}

/// The TorchScript modules that run in `torchscript` mode.
struct Traced {
    prefill: CModule,
    decode: CModule,
}

impl TchModel {
    /// Key slots to allocate: the cell's capacity within the model's, and
    /// at least one, so the rotary tables and the cache are never empty.
    fn slots(&self) -> usize {
        self.capacity
            .clamp(1, self.info.max_positions.max(1) as usize)
    }
}

impl Loaded {
    /// The KV buffers for `batch` sequences of `slots` positions, kept while
    /// the batch stays the same (zeros: slots past the position are never
    /// read, so a rewind needs no clearing).
    fn ensure_cache(&mut self, batch: i64, slots: i64) -> Result<(), BackendError> {
        if self.cache_batch == Some(batch) {
            return Ok(());
        }
        let layout = &self.model.layout;
        let shape = [batch, layout.kv_heads, slots, layout.head_dim];
        self.cache = (0..2 * layout.layers)
            .map(|_| Tensor::f_zeros(shape, (Kind::Float, Device::Cpu)))
            .collect::<Result<_, _>>()
            .map_err(tch_err("allocating the KV cache"))?;
        self.cache_batch = Some(batch);
        Ok(())
    }

    /// The last position's logits of `ids` at `positions`, op by op or
    /// through the traced module for the chunk's kind.
    fn logits(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        prefill: bool,
    ) -> Result<Tensor, BackendError> {
        let params = &self.model.params;
        let Some(traced) = &self.traced else {
            return forward::forward(
                &self.model.layout,
                params,
                ids,
                positions,
                &self.slots,
                &self.cache,
                prefill,
            )
            .map_err(tch_err("eager forward"));
        };
        let module = if prefill {
            &traced.prefill
        } else {
            &traced.decode
        };
        let inputs = forward::graph_inputs(ids, positions, &self.slots, &self.cache, params);
        module
            .forward_ts(&inputs)
            .map_err(tch_err("torchscript forward"))
    }
}

impl StepModel for TchModel {
    fn load(&mut self) -> Result<Attribution, BackendError> {
        let _no_grad = tch::no_grad_guard();
        set_threads(self.threads, self.options.inter_op_threads)?;
        self.info
            .check_shape()
            .map_err(|e| BackendError::Weights(format!("model shape: {e}")))?;
        let capacity = self.slots();
        let model = load_model(&self.info, &self.weights, capacity)?;
        let slots = Tensor::f_arange(capacity as i64, (Kind::Int64, Device::Cpu))
            .map_err(tch_err("key slots"))?;
        let (traced, compiler) = match self.options.mode {
            TchMode::Eager => (None, None),
            TchMode::Torchscript => {
                // Thread-local in libtorch, on by default: set it on the
                // thread that loads (and runs) so that what is recorded is
                // what runs, whatever touched it before.
                tch::jit::f_set_graph_executor_optimize(true)
                    .map_err(tch_err("graph executor optimisation"))?;
                let prefill = trace::trace(&model, true)?;
                let decode = trace::trace(&model, false)?;
                let evidence = trace::evidence(&prefill, &decode)?;
                (Some(Traced { prefill, decode }), Some(evidence))
            }
        };
        self.loaded = Some(Loaded {
            model,
            slots,
            cache: Vec::new(),
            cache_batch: None,
            traced,
        });
        let mut attribution = Attribution::plain(
            "cpu",
            "f32",
            tch::get_num_threads().max(0) as u32,
            "libtorch",
            &linked_libtorch_version(),
        );
        attribution.compiler = compiler;
        Ok(attribution)
    }

    fn reset(&mut self) {
        // Nothing to free: the cache is only rewound (the next chunk starts
        // at position 0), and slots past the position are never read.
    }

    fn forward(
        &mut self,
        chunk: Chunk<'_>,
        logits: &mut Vec<Vec<f32>>,
    ) -> Result<(), BackendError> {
        let _no_grad = tch::no_grad_guard();
        let slots = self.slots() as i64;
        let loaded = self.loaded.as_mut().ok_or(BackendError::NotLoaded)?;
        loaded.ensure_cache(chunk.batch as i64, slots)?;
        let ids: Vec<i64> = chunk.ids.iter().map(|&t| i64::from(t)).collect();
        let ids = Tensor::from_slice(&ids)
            .f_view([chunk.batch as i64, chunk.len as i64])
            .map_err(tch_err("token ids"))?;
        let start = chunk.start as i64;
        let positions: Vec<i64> = (start..start + chunk.len as i64).collect();
        let positions = Tensor::from_slice(&positions);
        let out = loaded.logits(&ids, &positions, chunk.len > 1)?;
        *logits = Vec::<Vec<f32>>::try_from(&out).map_err(tch_err("reading logits"))?;
        Ok(())
    }

    fn context(&self) -> Context {
        Context {
            max_positions: self.info.max_positions,
            capacity: self.capacity,
        }
    }
}

/// Intra-op threads are set on every load (libtorch allows it any time).
/// Inter-op threads can be set once per process, before any inter-op work,
/// and libtorch throws on a second call; so the first load sets them, later
/// loads asking for the same number pass, and a different number is an
/// error rather than a measurement labelled with a setting that did not
/// apply. (assay runs every cell in its own worker process, so a real run
/// sets them once.)
fn set_threads(threads: u32, inter_op: u32) -> Result<(), BackendError> {
    static INTER_OP: Mutex<Option<i32>> = Mutex::new(None);
    let threads = i32::try_from(threads.max(1)).unwrap_or(i32::MAX);
    let inter_op = i32::try_from(inter_op.max(1)).unwrap_or(i32::MAX);
    tch::set_num_threads(threads);
    let mut set = INTER_OP.lock().unwrap_or_else(|e| e.into_inner());
    match *set {
        Some(n) if n == inter_op => Ok(()),
        Some(n) => Err(BackendError::Library(format!(
            "libtorch's inter-op threads were set to {n} in this process and cannot change to {inter_op}"
        ))),
        None => {
            // tch panics when libtorch throws (parallel work already started
            // in this process); catch it and see what is in effect instead.
            let result = std::panic::catch_unwind(|| tch::set_num_interop_threads(inter_op));
            let now = tch::get_num_interop_threads();
            if result.is_ok() || now == inter_op {
                *set = Some(inter_op);
                Ok(())
            } else {
                Err(BackendError::Library(format!(
                    "libtorch's inter-op threads could not be set to {inter_op} (already in use with {now})"
                )))
            }
        }
    }
}

fn tch_err(what: &'static str) -> impl Fn(TchError) -> BackendError {
    move |e| {
        let text = e.to_string();
        // libtorch appends the C++ throw site and a stack trace.
        let text = text
            .split("\nException raised from")
            .next()
            .unwrap_or(&text)
            .trim();
        BackendError::Library(format!("libtorch: {what}: {text}"))
    }
}

/// The version of the libtorch mapped into this process: found through
/// `/proc/self/maps` (the `libtorch_cpu` that is actually loaded, which
/// `LD_LIBRARY_PATH` may have swapped since the build) and read from the
/// `build-version` file of a libtorch distribution, or `version.py` of a
/// PyTorch wheel, beside its `lib` folder. Falls back to [`TORCH_VERSION`].
pub fn linked_libtorch_version() -> String {
    let root = std::fs::read_to_string("/proc/self/maps")
        .ok()
        .and_then(|maps| {
            maps.lines()
                .filter_map(|line| line.split_whitespace().nth(5))
                .find(|path| {
                    Path::new(path)
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("libtorch_cpu."))
                })
                .map(PathBuf::from)
        })
        .and_then(|lib| lib.parent()?.parent().map(Path::to_path_buf));
    let Some(root) = root else {
        return TORCH_VERSION.to_string();
    };
    let from_build_version = std::fs::read_to_string(root.join("build-version"))
        .ok()
        .map(|v| v.trim().to_string());
    let from_version_py = || {
        std::fs::read_to_string(root.join("version.py"))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("__version__ = "))
            .map(|v| v.trim().trim_matches(['\'', '"']).to_string())
    };
    from_build_version
        .or_else(from_version_py)
        .filter(|v| !v.is_empty())
        // "2.13.0+cpu": the local part names the build flavour, not the API.
        .map(|v| v.split('+').next().unwrap_or(&v).to_string())
        .unwrap_or_else(|| TORCH_VERSION.to_string())
}
