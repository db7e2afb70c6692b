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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::DType;
use tch::{CModule, Device, Kind, TchError, Tensor};

use crate::harness::{Attribution, BackendError, CompilerEvidence, InferenceBackend, Pick, greedy};
use assay_core::config::{TchMode, TchOptions};
use assay_model::decl::{Arch, ModelInfo};
use assay_model::weights::{SafetensorsSource, WeightSource};

/// The libtorch version tch 0.26 (torch-sys) is built for. torch-sys's build
/// script refuses any other libtorch (it reads `$LIBTORCH/build-version`)
/// unless `LIBTORCH_BYPASS_VERSION_CHECK` is set; the version actually mapped
/// into the process is looked up at load ([`linked_libtorch_version`]) and
/// this is the fallback.
pub const TORCH_VERSION: &str = crate::versions::TORCH_EXPECTED;

/// libtorch on the CPU as the harness drives it. Every call returns after
/// the logits are copied to host memory, which is the synchronisation.
pub struct TchBackend {
    info: ModelInfo,
    weights: Vec<PathBuf>,
    options: TchOptions,
    threads: u32,
    capacity: usize,
    loaded: Option<Loaded>,
    logits: Vec<Vec<f32>>,
    pos: usize,
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

/// The structure the forward function needs; everything in it is a model
/// constant, so it may be baked into a trace.
#[derive(Debug, Clone)]
struct Layout {
    arch: Arch,
    layers: usize,
    hidden: i64,
    heads: i64,
    kv_heads: i64,
    head_dim: i64,
    eps: f64,
    /// The output head is the token embedding (no `output.weight`).
    tied: bool,
}

impl Layout {
    /// Global tensors before the per-layer ones: llama `[embed, norm, cos,
    /// sin, head?]`, GPT-2 `[wte, wpe, ln_f.weight, ln_f.bias, head?]`.
    fn globals(&self) -> usize {
        4 + usize::from(!self.tied)
    }

    fn per_layer(&self) -> usize {
        match self.arch {
            Arch::Llama => 9,
            Arch::Gpt2 => 12,
        }
    }

    fn param_count(&self) -> usize {
        self.globals() + self.layers * self.per_layer()
    }

    fn head<'a>(&self, p: &'a [Tensor]) -> &'a Tensor {
        if self.tied { &p[0] } else { &p[4] }
    }

    fn layer<'a>(&self, p: &'a [Tensor], l: usize) -> &'a [Tensor] {
        let start = self.globals() + l * self.per_layer();
        &p[start..start + self.per_layer()]
    }
}

/// The model's tensors in the order [`Layout`] describes, f32 on the CPU.
struct Model {
    layout: Layout,
    params: Vec<Tensor>,
}

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
        TchBackend {
            info,
            weights,
            options,
            threads,
            capacity,
            loaded: None,
            logits: Vec::new(),
            pos: 0,
        }
    }

    /// Last logits of every sequence (for numerical checks).
    pub fn logits(&self) -> &[Vec<f32>] {
        &self.logits
    }

    /// Positions a sequence may use: the cell's capacity within the model's.
    fn positions(&self) -> usize {
        self.capacity
            .clamp(1, self.info.max_positions.max(1) as usize)
    }

    fn run(&mut self, ids: Vec<u32>, batch: usize) -> Result<(), BackendError> {
        let _no_grad = tch::no_grad_guard();
        let batch = batch.max(1);
        let t = ids.len() / batch;
        if t == 0 || t * batch != ids.len() {
            return Err(BackendError::BadInput(format!(
                "{} token ids do not split into {batch} sequences of equal, non-zero length",
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
        let pos = self.pos;
        let capacity = self.positions() as i64;
        let loaded = self.loaded.as_mut().ok_or(BackendError::NotLoaded)?;
        let layout = &loaded.model.layout;
        if loaded.cache_batch != Some(batch as i64) {
            let shape = [batch as i64, layout.kv_heads, capacity, layout.head_dim];
            loaded.cache = (0..2 * layout.layers)
                .map(|_| Tensor::f_zeros(shape, (Kind::Float, Device::Cpu)))
                .collect::<Result<_, _>>()
                .map_err(tch_err("allocating the KV cache"))?;
            loaded.cache_batch = Some(batch as i64);
        }
        let ids: Vec<i64> = ids.into_iter().map(i64::from).collect();
        let ids = Tensor::from_slice(&ids)
            .f_view([batch as i64, t as i64])
            .map_err(tch_err("token ids"))?;
        let positions: Vec<i64> = (pos as i64..(pos + t) as i64).collect();
        let positions = Tensor::from_slice(&positions);
        let logits = match &loaded.traced {
            None => forward(
                layout,
                &loaded.model.params,
                &ids,
                &positions,
                &loaded.slots,
                &loaded.cache,
                t > 1,
            )
            .map_err(tch_err("eager forward"))?,
            Some(traced) => {
                let module = if t > 1 {
                    &traced.prefill
                } else {
                    &traced.decode
                };
                let inputs = graph_inputs(
                    &ids,
                    &positions,
                    &loaded.slots,
                    &loaded.cache,
                    &loaded.model.params,
                );
                module
                    .forward_ts(&inputs)
                    .map_err(tch_err("torchscript forward"))?
            }
        };
        self.logits = Vec::<Vec<f32>>::try_from(&logits).map_err(tch_err("reading logits"))?;
        self.pos += t;
        Ok(())
    }
}

impl InferenceBackend for TchBackend {
    fn load(&mut self) -> Result<Attribution, BackendError> {
        let _no_grad = tch::no_grad_guard();
        set_threads(self.threads, self.options.inter_op_threads)?;
        self.info
            .check_shape()
            .map_err(|e| BackendError::Weights(format!("model shape: {e}")))?;
        let capacity = self.positions();
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
                let prefill = trace(&model, true)?;
                let decode = trace(&model, false)?;
                let evidence = evidence(&prefill, &decode)?;
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
        self.pos = 0;
        self.logits.clear();
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
        // The cache is only rewound: slots past the position are never read.
        self.pos = 0;
        self.logits.clear();
    }

    fn prefill(&mut self, prompts: &[Vec<u32>]) -> Result<(), BackendError> {
        // One positions tensor serves the whole batch: prompts of one length.
        if prompts.windows(2).any(|w| w[0].len() != w[1].len()) {
            return Err(BackendError::BadInput(
                "the prompts of one prefill must have the same length".into(),
            ));
        }
        let ids: Vec<u32> = prompts.iter().flatten().copied().collect();
        self.run(ids, prompts.len())
    }

    fn sample(&mut self) -> Result<Vec<Pick>, BackendError> {
        Ok(self.logits.iter().map(|row| greedy(row)).collect())
    }

    fn decode_step(&mut self, tokens: &[u32]) -> Result<bool, BackendError> {
        if self.pos + 1 > self.positions() {
            return Ok(false);
        }
        self.run(tokens.to_vec(), tokens.len())?;
        Ok(true)
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

/// Reads the shards, maps them onto GGUF names with candle's
/// [`SafetensorsSource`] and copies every tensor into libtorch.
fn load_model(info: &ModelInfo, paths: &[PathBuf], capacity: usize) -> Result<Model, BackendError> {
    let shards = paths
        .iter()
        .map(|p| {
            std::fs::read(p)
                .map_err(|e| BackendError::Weights(format!("reading {}: {e}", p.display())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&[u8]> = shards.iter().map(Vec::as_slice).collect();
    let src = SafetensorsSource::new(info.arch, DType::F32, &refs).map_err(|e| {
        BackendError::Weights(format!(
            "parsing safetensors: {}",
            assay_model::weights::error_text(&e)
        ))
    })?;
    let h = i64::from(info.n_embd);
    let heads = i64::from(info.n_head);
    let kv_heads = i64::from(info.n_kv_head);
    let hd = i64::from(info.head_dim());
    let kv = kv_heads * hd;
    let ff = i64::from(info.intermediate);
    let vocab = i64::from(info.vocab);
    let tied = !src.has("output.weight");
    let layout = Layout {
        arch: info.arch,
        layers: info.n_layer as usize,
        hidden: h,
        heads,
        kv_heads,
        head_dim: hd,
        eps: info.norm_eps,
        tied,
    };
    let take = |name: &str, shape: &[i64]| -> Result<Tensor, BackendError> {
        let t = src.torch_layout(name).map_err(|e| {
            BackendError::Weights(format!(
                "loading {name}: {}",
                assay_model::weights::error_text(&e)
            ))
        })?;
        let dims: Vec<i64> = t.dims().iter().map(|&d| d as i64).collect();
        if dims != shape {
            return Err(BackendError::Weights(format!(
                "{name} has shape {dims:?}, the model needs {shape:?}"
            )));
        }
        let values = t
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| {
                BackendError::Weights(format!(
                    "reading {name}: {}",
                    assay_model::weights::error_text(&e)
                ))
            })?;
        Tensor::from_slice(&values)
            .f_view(shape)
            .map_err(tch_err("building a weight tensor"))
    };
    let mut params = Vec::with_capacity(layout.param_count());
    match info.arch {
        Arch::Llama => {
            params.push(take("token_embd.weight", &[vocab, h])?);
            params.push(take("output_norm.weight", &[h])?);
            let (cos, sin) =
                assay_model::rope::tables(info.head_dim() as usize, capacity, info.rope_theta);
            let half = hd / 2;
            params.push(
                Tensor::from_slice(&cos)
                    .f_view([capacity as i64, half])
                    .map_err(tch_err("rotary table"))?,
            );
            params.push(
                Tensor::from_slice(&sin)
                    .f_view([capacity as i64, half])
                    .map_err(tch_err("rotary table"))?,
            );
            if !tied {
                params.push(take("output.weight", &[vocab, h])?);
            }
            for i in 0..info.n_layer {
                let n = |part: &str| format!("blk.{i}.{part}.weight");
                params.push(take(&n("attn_norm"), &[h])?);
                params.push(take(&n("attn_q"), &[heads * hd, h])?);
                params.push(take(&n("attn_k"), &[kv, h])?);
                params.push(take(&n("attn_v"), &[kv, h])?);
                params.push(take(&n("attn_output"), &[h, heads * hd])?);
                params.push(take(&n("ffn_norm"), &[h])?);
                params.push(take(&n("ffn_gate"), &[ff, h])?);
                params.push(take(&n("ffn_up"), &[ff, h])?);
                params.push(take(&n("ffn_down"), &[h, ff])?);
            }
        }
        Arch::Gpt2 => {
            params.push(take("token_embd.weight", &[vocab, h])?);
            params.push(take(
                "position_embd.weight",
                &[i64::from(info.max_positions), h],
            )?);
            params.push(take("output_norm.weight", &[h])?);
            params.push(take("output_norm.bias", &[h])?);
            if !tied {
                params.push(take("output.weight", &[vocab, h])?);
            }
            for i in 0..info.n_layer {
                let n = |part: &str, what: &str| format!("blk.{i}.{part}.{what}");
                params.push(take(&n("attn_norm", "weight"), &[h])?);
                params.push(take(&n("attn_norm", "bias"), &[h])?);
                params.push(take(&n("attn_qkv", "weight"), &[h + 2 * kv, h])?);
                params.push(take(&n("attn_qkv", "bias"), &[h + 2 * kv])?);
                params.push(take(&n("attn_output", "weight"), &[h, h])?);
                params.push(take(&n("attn_output", "bias"), &[h])?);
                params.push(take(&n("ffn_norm", "weight"), &[h])?);
                params.push(take(&n("ffn_norm", "bias"), &[h])?);
                params.push(take(&n("ffn_up", "weight"), &[ff, h])?);
                params.push(take(&n("ffn_up", "bias"), &[ff])?);
                params.push(take(&n("ffn_down", "weight"), &[h, ff])?);
                params.push(take(&n("ffn_down", "bias"), &[h])?);
            }
        }
    }
    debug_assert_eq!(params.len(), layout.param_count());
    Ok(Model { layout, params })
}

/// The inputs of a forward call in graph order: `ids`, `positions`,
/// `slots`, the KV buffers (per layer keys then values), the parameters.
fn graph_inputs<'a>(
    ids: &'a Tensor,
    positions: &'a Tensor,
    slots: &'a Tensor,
    cache: &'a [Tensor],
    params: &'a [Tensor],
) -> Vec<&'a Tensor> {
    let mut inputs = Vec::with_capacity(3 + cache.len() + params.len());
    inputs.extend([ids, positions, slots]);
    inputs.extend(cache);
    inputs.extend(params);
    inputs
}

/// Trace [`forward`] into a TorchScript module: the prefill function (with
/// the causal mask) or the one-token decode function (without, as candle).
/// The example inputs are deliberately small and unlike any real call (batch
/// 1, a 4-slot cache, past length 0 or 2), which is harmless because nothing
/// in the forward function reads a size into Rust.
fn trace(model: &Model, prefill: bool) -> Result<CModule, BackendError> {
    let layout = &model.layout;
    let (t, past, slots) = if prefill { (2, 0, 4) } else { (1, 2, 4) };
    let shape = [1, layout.kv_heads, slots, layout.head_dim];
    let mut inputs = vec![
        Tensor::f_zeros([1, t], (Kind::Int64, Device::Cpu)).map_err(tch_err("trace inputs"))?,
        Tensor::f_arange_start(past, past + t, (Kind::Int64, Device::Cpu))
            .map_err(tch_err("trace inputs"))?,
        Tensor::f_arange(slots, (Kind::Int64, Device::Cpu)).map_err(tch_err("trace inputs"))?,
    ];
    for _ in 0..2 * layout.layers {
        inputs.push(
            Tensor::f_zeros(shape, (Kind::Float, Device::Cpu)).map_err(tch_err("trace inputs"))?,
        );
    }
    inputs.extend(model.params.iter().map(Tensor::shallow_clone));
    let caches = 2 * layout.layers;
    let mut failure = None;
    let mut closure = |xs: &[Tensor]| -> Vec<Tensor> {
        let (head, rest) = xs.split_at(3);
        let (cache, params) = rest.split_at(caches);
        match forward(layout, params, &head[0], &head[1], &head[2], cache, prefill) {
            Ok(logits) => vec![logits],
            Err(e) => {
                failure = Some(e);
                Vec::new()
            }
        }
    };
    let name = if prefill {
        "AssayPrefill"
    } else {
        "AssayDecode"
    };
    let module = CModule::create_by_tracing(name, "forward", &inputs, &mut closure);
    if let Some(e) = failure {
        return Err(tch_err("tracing")(e));
    }
    let mut module = module.map_err(tch_err("tracing"))?;
    module.f_set_eval().map_err(tch_err("tracing"))?;
    Ok(module)
}

/// The model on `ids` (`[batch, t]`) at `positions` (`[t]`, int64, the
/// same for every sequence), writing this chunk's keys and values into
/// `cache` at those positions and attending over slots `0..=last position`;
/// returns the last position's logits, `[batch, vocab]`.
///
/// Everything position- or length-dependent is a tensor op (see the module
/// docs), so this traces into a graph valid for any batch, chunk length and
/// past length. `masked`: apply the causal mask (chunks of more than one
/// token); a single token sees every cached slot, as in candle.
fn forward(
    layout: &Layout,
    p: &[Tensor],
    ids: &Tensor,
    positions: &Tensor,
    slots: &Tensor,
    cache: &[Tensor],
    masked: bool,
) -> Result<Tensor, TchError> {
    // The cached length, as a one-element tensor: last position + 1.
    let end = positions.f_slice(0, -1, None::<i64>, 1)?.f_add_scalar(1)?;
    let mask = if masked {
        let keys = first_split(slots, &end, 0)?;
        // True where a key lies after the query: masked out.
        Some(
            keys.f_unsqueeze(0)?
                .f_gt_tensor(&positions.f_unsqueeze(1)?)?,
        )
    } else {
        None
    };
    let mut x = match layout.arch {
        Arch::Llama => Tensor::f_embedding(&p[0], ids, -1, false, false)?,
        Arch::Gpt2 => Tensor::f_embedding(&p[0], ids, -1, false, false)?
            .f_add(&p[1].f_index_select(0, positions)?)?,
    };
    // Llama's rotary rows for these positions, gathered once for all layers.
    let rotary = match layout.arch {
        Arch::Llama => Some((
            p[2].f_index_select(0, positions)?,
            p[3].f_index_select(0, positions)?,
        )),
        Arch::Gpt2 => None,
    };
    let heads_of = |y: &Tensor, n: i64| -> Result<Tensor, TchError> {
        y.f_unflatten(-1, [n, layout.head_dim])?.f_transpose(1, 2)
    };
    for l in 0..layout.layers {
        let w = layout.layer(p, l);
        let (q, k, v) = match layout.arch {
            Arch::Llama => {
                let y = rms_norm(&x, &w[0], layout.eps)?;
                let (cos, sin) = rotary
                    .as_ref()
                    .ok_or_else(|| TchError::Kind("llama without rotary tables".into()))?;
                let half = layout.head_dim / 2;
                let q = heads_of(&y.f_linear::<&Tensor>(&w[1], None)?, layout.heads)?;
                let k = heads_of(&y.f_linear::<&Tensor>(&w[2], None)?, layout.kv_heads)?;
                let (q, k) = (rope(&q, cos, sin, half)?, rope(&k, cos, sin, half)?);
                let v = heads_of(&y.f_linear::<&Tensor>(&w[3], None)?, layout.kv_heads)?;
                (q, k, v)
            }
            Arch::Gpt2 => {
                let y =
                    x.f_layer_norm([layout.hidden], Some(&w[0]), Some(&w[1]), layout.eps, false)?;
                let qkv = y.f_linear(&w[2], Some(&w[3]))?;
                let kv = layout.kv_heads * layout.head_dim;
                let q = heads_of(&qkv.f_narrow(-1, 0, layout.hidden)?, layout.heads)?;
                let k = heads_of(&qkv.f_narrow(-1, layout.hidden, kv)?, layout.kv_heads)?;
                let v = heads_of(&qkv.f_narrow(-1, layout.hidden + kv, kv)?, layout.kv_heads)?;
                (q, k, v)
            }
        };
        let k = cache[2 * l]
            .shallow_clone()
            .f_index_copy_(2, positions, &k)?;
        let v = cache[2 * l + 1]
            .shallow_clone()
            .f_index_copy_(2, positions, &v)?;
        let k = first_split(&k, &end, 2)?;
        let v = first_split(&v, &end, 2)?;
        let a = attention(layout, &q, &k, &v, mask.as_ref())?;
        let a = a.f_transpose(1, 2)?.f_flatten(2, 3)?;
        match layout.arch {
            Arch::Llama => {
                x = x.f_add(&a.f_linear::<&Tensor>(&w[4], None)?)?;
                let y = rms_norm(&x, &w[5], layout.eps)?;
                let gated = y
                    .f_linear::<&Tensor>(&w[6], None)?
                    .f_silu()?
                    .f_mul(&y.f_linear::<&Tensor>(&w[7], None)?)?;
                x = x.f_add(&gated.f_linear::<&Tensor>(&w[8], None)?)?;
            }
            Arch::Gpt2 => {
                x = x.f_add(&a.f_linear(&w[4], Some(&w[5]))?)?;
                let y =
                    x.f_layer_norm([layout.hidden], Some(&w[6]), Some(&w[7]), layout.eps, false)?;
                // GPT-2's "gelu_new": the tanh approximation, as candle's gelu.
                let y = y
                    .f_linear(&w[8], Some(&w[9]))?
                    .f_gelu("tanh")?
                    .f_linear(&w[10], Some(&w[11]))?;
                x = x.f_add(&y)?;
            }
        }
    }
    let last = x.f_select(1, -1)?;
    let last = match layout.arch {
        Arch::Llama => rms_norm(&last, &p[1], layout.eps)?,
        Arch::Gpt2 => {
            last.f_layer_norm([layout.hidden], Some(&p[2]), Some(&p[3]), layout.eps, false)?
        }
    };
    last.f_linear::<&Tensor>(layout.head(p), None)
}

/// `x[..:end]` along `dim` as a view, `end` a one-element int64 tensor:
/// `tensor_split` at a tensor index is recorded with the tensor as its
/// argument, where `narrow` would record the length as a constant.
fn first_split(x: &Tensor, end: &Tensor, dim: i64) -> Result<Tensor, TchError> {
    x.f_tensor_split_tensor_indices_or_sections(end, dim)?
        .into_iter()
        .next()
        .ok_or_else(|| TchError::Kind("tensor_split returned nothing".into()))
}

/// RMSNorm as candle's: `x / sqrt(mean(x^2) + eps) * weight`.
fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor, TchError> {
    let rms = x
        .f_square()?
        .f_mean_dim(-1i64, true, Kind::Float)?
        .f_add_scalar(eps)?
        .f_rsqrt()?;
    x.f_mul(&rms)?.f_mul(weight)
}

/// Non-interleaved rotary embedding (Hugging Face layout: rotate halves), as
/// candle_nn's `rope`; `cos`, `sin` are `[t, half]`, `half` is
/// `head_dim / 2` (a model constant, passed in rather than read from a shape).
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, half: i64) -> Result<Tensor, TchError> {
    let x1 = x.f_narrow(-1, 0, half)?;
    let x2 = x.f_narrow(-1, half, half)?;
    let a = x1.f_mul(cos)?.f_sub(&x2.f_mul(sin)?)?;
    let b = x1.f_mul(sin)?.f_add(&x2.f_mul(cos)?)?;
    Tensor::f_cat(&[a, b], -1)
}

/// Scaled dot-product attention with grouped-query heads, as candle's: the
/// query heads of one group are folded into the rows so each KV head is read
/// once without repeating keys. `q` is `[b, heads, t, d]`, `k` and `v`
/// `[b, kv_heads, s, d]`, `mask` `[t, s]` (true: masked).
fn attention(
    layout: &Layout,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor, TchError> {
    let group = layout.heads / layout.kv_heads;
    let scale = 1.0 / (layout.head_dim as f64).sqrt();
    let q = q
        .f_unflatten(1, [layout.kv_heads, group])?
        .f_flatten(2, 3)?;
    let scores = q.f_matmul(&k.f_transpose(-2, -1)?)?.f_mul_scalar(scale)?;
    let scores = match mask {
        Some(m) => scores
            .f_unflatten(2, [group, -1])?
            .f_masked_fill(m, f64::NEG_INFINITY)?
            .f_flatten(2, 3)?,
        None => scores,
    };
    scores
        .f_softmax(-1, Kind::Float)?
        .f_matmul(v)?
        .f_unflatten(2, [group, -1])?
        .f_flatten(1, 2)
}

/// What the torchscript path records: the traced graphs' op calls (counted
/// in the TorchScript code of the saved modules), the executor settings in
/// effect, and a digest of the saved programs.
fn evidence(prefill: &CModule, decode: &CModule) -> Result<CompilerEvidence, BackendError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "assay-tch-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let io = |what: &str, e: &dyn std::fmt::Display| {
        BackendError::Library(format!("saving the traced modules ({what}): {e}"))
    };
    std::fs::create_dir_all(&dir).map_err(|e| io("temp dir", &e))?;
    let saved = (|| {
        let mut out = Vec::new();
        for (name, module) in [("prefill", prefill), ("decode", decode)] {
            // A fixed file name: it becomes the archive's root folder.
            let path = dir.join(format!("{name}.pt"));
            module
                .save(&path)
                .map_err(tch_err("saving a traced module"))?;
            out.push((name, std::fs::read(&path).map_err(|e| io("reading", &e))?));
        }
        Ok::<_, BackendError>(out)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let saved = saved?;

    let mut ops: BTreeMap<String, u64> = BTreeMap::new();
    let mut detail = BTreeMap::new();
    let mut hasher = blake3::Hasher::new();
    let mut total = 0;
    for (name, bytes) in &saved {
        let entries = zip_entries(bytes)
            .map_err(|e| BackendError::Library(format!("reading the saved {name} module: {e}")))?;
        let mut count = 0;
        for (entry, data) in &entries {
            if entry.contains("/code/") && entry.ends_with(".py") {
                for (op, n) in count_ops(&String::from_utf8_lossy(data)) {
                    count += n;
                    *ops.entry(op).or_default() += n;
                }
            }
        }
        if count == 0 {
            return Err(BackendError::Library(format!(
                "the saved {name} module has no op calls in its TorchScript code"
            )));
        }
        detail.insert(format!("nodes_{name}"), count.to_string());
        total += count;
        hasher.update(name.as_bytes());
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    let profiling = tch::jit::f_get_profiling_mode().map_err(tch_err("executor mode"))?;
    let fuser = tch::jit::f_get_tensor_expr_fuser_enabled().map_err(tch_err("fuser"))?;
    detail.insert("traced".into(), "prefill [b x t], decode [b x 1]".into());
    detail.insert(
        "graph_inputs".into(),
        "ids, positions, key slots, KV buffers (updated in place), weights".into(),
    );
    detail.insert("graph_executor_optimize".into(), "true".into());
    detail.insert("tensor_expr_fuser".into(), fuser.to_string());
    detail.insert(
        "torchscript_blake3".into(),
        hasher.finalize().to_hex().to_string(),
    );
    Ok(CompilerEvidence {
        kind: "torchscript-trace".into(),
        mode: if profiling { "profiling" } else { "simple" }.into(),
        nodes_before: total,
        // libtorch optimises inside the graph executor at run time
        // (after profiling runs); tch exposes no handle on that graph.
        nodes_after: None,
        ops_before: ops,
        ops_after: BTreeMap::new(),
        detail,
        // The traced modules are what runs every prefill and decode step.
        real: true,
    })
}

/// The entries of a saved TorchScript module (a zip archive; PyTorch
/// deflates the code records).
fn zip_entries(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    use std::io::Read;
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| e.to_string())?;
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| format!("{}: {e}", entry.name()))?;
        out.push((entry.name().to_string(), data));
    }
    Ok(out)
}

/// Operator calls in TorchScript code: `torch.name(` is `aten::name`,
/// `ops.ns.name(` is `ns::name`. Constants, lists and tuples print as
/// literals, so what is counted are the graph's operator nodes.
fn count_ops(code: &str) -> BTreeMap<String, u64> {
    let mut ops = BTreeMap::new();
    let bytes = code.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !(ident(bytes[i - 1]) || bytes[i - 1] == b'.');
        let rest = &code[i..];
        let (prefix, ns) = if rest.starts_with("torch.") {
            ("torch.", Some("aten"))
        } else if rest.starts_with("ops.") {
            ("ops.", None)
        } else {
            i += 1;
            continue;
        };
        if !boundary {
            i += prefix.len();
            continue;
        }
        let mut j = i + prefix.len();
        let start = j;
        while j < bytes.len() && (ident(bytes[j]) || (ns.is_none() && bytes[j] == b'.')) {
            j += 1;
        }
        if j < bytes.len() && bytes[j] == b'(' && j > start {
            let name = &code[start..j];
            let op = match ns {
                Some(ns) => Some(format!("{ns}::{name}")),
                None => name.split_once('.').map(|(ns, op)| format!("{ns}::{op}")),
            };
            if let Some(op) = op {
                *ops.entry(op).or_default() += 1;
            }
        }
        i = j.max(i + 1);
    }
    ops
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candle::{CandleBackend, WeightFiles};
    use assay_core::config::Dtype;

    use assay_model::prepare::synthetic::tiny;

    /// A checkpoint on disk for one tiny model; the directory lives as long
    /// as the returned guard.
    fn checkpoint(arch: Arch) -> (tempfile::TempDir, PathBuf, ModelInfo) {
        let a = tiny(arch);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        std::fs::write(
            &path,
            assay_model::prepare::synthetic::safetensors(&a).unwrap(),
        )
        .unwrap();
        (dir, path, a.info(&format!("tiny-{}", arch.name())))
    }

    fn backend(info: &ModelInfo, path: &Path, mode: TchMode, capacity: usize) -> TchBackend {
        TchBackend::new(
            info.clone(),
            vec![path.to_path_buf()],
            TchOptions {
                mode,
                inter_op_threads: 1,
            },
            1,
            capacity,
        )
    }

    fn prompts(batch: usize, len: usize, vocab: u32, salt: u32) -> Vec<Vec<u32>> {
        (0..batch)
            .map(|s| {
                (0..len)
                    .map(|i| (salt + 37 * s as u32 + 11 * i as u32 + 3) % vocab)
                    .collect()
            })
            .collect()
    }

    fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
        assert_eq!(a.len(), b.len(), "batch differs");
        a.iter()
            .zip(b)
            .flat_map(|(x, y)| {
                assert_eq!(x.len(), y.len(), "vocab differs");
                x.iter().zip(y).map(|(p, q)| (p - q).abs())
            })
            .fold(0.0, f32::max)
    }

    fn tokens(b: &mut dyn InferenceBackend) -> Vec<u32> {
        b.sample().unwrap().iter().map(|p| p.token).collect()
    }

    /// Batch 2, prompt 5, 4 decode steps: eager and torchscript give candle's
    /// logits (1e-4) and greedy tokens at the prefill and every step.
    fn agrees_with_candle(arch: Arch) {
        let (_dir, path, info) = checkpoint(arch);
        let mut candle = CandleBackend::new(
            info.clone(),
            WeightFiles::Safetensors(vec![path.clone()]),
            Dtype::F32,
            16,
        );
        candle.load().unwrap();
        let mut eager = backend(&info, &path, TchMode::Eager, 16);
        let mut script = backend(&info, &path, TchMode::Torchscript, 16);
        eager.load().unwrap();
        script.load().unwrap();
        let p = prompts(2, 5, info.vocab, 0);
        candle.prefill(&p).unwrap();
        eager.prefill(&p).unwrap();
        script.prefill(&p).unwrap();
        for step in 0..=4 {
            let want = candle.logits().to_vec();
            assert_eq!(want.len(), 2);
            assert_eq!(want[0].len(), info.vocab as usize);
            for (name, got) in [("eager", eager.logits()), ("torchscript", script.logits())] {
                let d = max_diff(&want, got);
                assert!(d <= 1e-4, "{arch:?} {name} step {step}: max |diff| {d}");
            }
            let next = tokens(&mut candle);
            assert_eq!(tokens(&mut eager), next, "{arch:?} eager step {step}");
            assert_eq!(
                tokens(&mut script),
                next,
                "{arch:?} torchscript step {step}"
            );
            if step < 4 {
                assert!(candle.decode_step(&next).unwrap());
                assert!(eager.decode_step(&next).unwrap());
                assert!(script.decode_step(&next).unwrap());
            }
        }
    }

    #[test]
    fn tch_backend_llama_agrees_with_candle() {
        agrees_with_candle(Arch::Llama);
    }

    #[test]
    fn tch_backend_gpt2_agrees_with_candle() {
        agrees_with_candle(Arch::Gpt2);
    }

    /// One trace serves every batch, prompt length and past length (none of
    /// them those of the example inputs): decode up to a full context, in
    /// two runs of different shapes on the same loaded backend, against
    /// candle at every past length; and the context-full contract.
    fn trace_is_shape_generic(arch: Arch) {
        let (_dir, path, info) = checkpoint(arch);
        let capacity = 14;
        let mut candle = CandleBackend::new(
            info.clone(),
            WeightFiles::Safetensors(vec![path.clone()]),
            Dtype::F32,
            capacity,
        );
        candle.load().unwrap();
        let mut script = backend(&info, &path, TchMode::Torchscript, capacity);
        script.load().unwrap();
        for (batch, prompt, salt) in [(3, 1, 5), (1, 9, 11), (2, 3, 17)] {
            candle.reset();
            script.reset();
            let p = prompts(batch, prompt, info.vocab, salt);
            candle.prefill(&p).unwrap();
            script.prefill(&p).unwrap();
            let mut past = prompt;
            loop {
                let d = max_diff(candle.logits(), script.logits());
                assert!(
                    d <= 1e-4,
                    "{arch:?} batch {batch} past {past}: max |diff| {d}"
                );
                let next = tokens(&mut candle);
                assert_eq!(tokens(&mut script), next, "{arch:?} past {past}");
                let more = script.decode_step(&next).unwrap();
                assert_eq!(more, candle.decode_step(&next).unwrap());
                if !more {
                    break;
                }
                past += 1;
            }
            assert_eq!(past, capacity, "decoded up to the full context");
        }
        // A prompt longer than the context is refused, not truncated.
        script.reset();
        assert!(
            script
                .prefill(&prompts(1, capacity + 1, info.vocab, 0))
                .is_err()
        );
    }

    #[test]
    fn tch_backend_llama_trace_is_shape_generic() {
        trace_is_shape_generic(Arch::Llama);
    }

    #[test]
    fn tch_backend_gpt2_trace_is_shape_generic() {
        trace_is_shape_generic(Arch::Gpt2);
    }

    /// A prefill after cached tokens (candle's semantics: it continues at
    /// the current position) masks against the cache, eager and traced.
    #[test]
    fn tch_backend_prefill_continues_after_cached_tokens() {
        for arch in [Arch::Llama, Arch::Gpt2] {
            let (_dir, path, info) = checkpoint(arch);
            let mut candle = CandleBackend::new(
                info.clone(),
                WeightFiles::Safetensors(vec![path.clone()]),
                Dtype::F32,
                16,
            );
            let mut eager = backend(&info, &path, TchMode::Eager, 16);
            let mut script = backend(&info, &path, TchMode::Torchscript, 16);
            candle.load().unwrap();
            eager.load().unwrap();
            script.load().unwrap();
            for chunk in [prompts(2, 5, info.vocab, 1), prompts(2, 3, info.vocab, 2)] {
                candle.prefill(&chunk).unwrap();
                eager.prefill(&chunk).unwrap();
                script.prefill(&chunk).unwrap();
                for (name, got) in [("eager", eager.logits()), ("torchscript", script.logits())] {
                    let d = max_diff(candle.logits(), got);
                    assert!(d <= 1e-4, "{arch:?} {name}: max |diff| {d}");
                }
            }
        }
    }

    #[test]
    fn tch_backend_attribution_and_evidence() {
        for arch in [Arch::Llama, Arch::Gpt2] {
            let (_dir, path, info) = checkpoint(arch);
            let eager = backend(&info, &path, TchMode::Eager, 8).load().unwrap();
            assert_eq!(eager.device, "cpu");
            assert_eq!(eager.dtype, "f32");
            assert_eq!(eager.threads, 1);
            assert_eq!(eager.library, "libtorch");
            assert_eq!(eager.library_version, TORCH_VERSION);
            assert_eq!(eager.providers, None);
            assert_eq!(eager.compiler, None, "eager compiles nothing");

            let script = backend(&info, &path, TchMode::Torchscript, 8)
                .load()
                .unwrap();
            assert_eq!(
                (script.device.as_str(), script.dtype.as_str()),
                ("cpu", "f32")
            );
            assert_eq!(script.library_version, TORCH_VERSION);
            let c = script.compiler.expect("torchscript records evidence");
            assert_eq!(c.kind, "torchscript-trace");
            assert!(
                ["profiling", "simple"].contains(&c.mode.as_str()),
                "{}",
                c.mode
            );
            assert!(c.real);
            assert_eq!(c.nodes_after, None);
            let per: u64 = ["nodes_prefill", "nodes_decode"]
                .iter()
                .map(|k| c.detail[*k].parse::<u64>().unwrap())
                .sum();
            assert_eq!(per, c.nodes_before);
            assert_eq!(c.ops_before.values().sum::<u64>(), c.nodes_before);
            // Per layer and graph: four projections (llama: seven), two
            // attention matmuls, one in-place KV write each for K and V.
            let layers = u64::from(info.n_layer);
            let linears = match arch {
                Arch::Llama => 7 * layers + 1,
                Arch::Gpt2 => 4 * layers + 1,
            };
            assert_eq!(
                c.ops_before["aten::linear"],
                2 * linears,
                "{:?}",
                c.ops_before
            );
            assert_eq!(c.ops_before["aten::matmul"], 2 * 2 * layers);
            assert_eq!(c.ops_before["aten::index_copy_"], 2 * 2 * layers);
            // Only the prefill graph masks.
            assert_eq!(c.ops_before["aten::masked_fill"], layers);
            assert_eq!(c.detail["traced"], "prefill [b x t], decode [b x 1]");
            assert!(["true", "false"].contains(&c.detail["tensor_expr_fuser"].as_str()));
            let digest = &c.detail["torchscript_blake3"];
            assert_eq!(digest.len(), 64);
            // The same model traces to the same program.
            let again = backend(&info, &path, TchMode::Torchscript, 8)
                .load()
                .unwrap();
            assert_eq!(
                &again.compiler.unwrap().detail["torchscript_blake3"],
                digest
            );
            eprintln!(
                "{arch:?}: mode {}, nodes {} (prefill {}, decode {}), {} op kinds, blake3 {digest}",
                c.mode,
                c.nodes_before,
                c.detail["nodes_prefill"],
                c.detail["nodes_decode"],
                c.ops_before.len()
            );
        }
    }

    #[test]
    fn tch_backend_inter_op_threads_cannot_change_once_set() {
        // Whatever order the tests run in, the first load in this process
        // set 1; asking for another number is refused, not mislabelled.
        set_threads(1, 1).unwrap();
        let err = set_threads(1, 2).unwrap_err().to_string();
        assert!(err.contains("cannot change"), "{err}");
        set_threads(1, 1).unwrap();
    }

    #[test]
    fn tch_backend_counts_torchscript_ops() {
        let code = "def forward(self: __torch__.AssayDecode,\n    x: Tensor) -> Tensor:\n  \
                    _0 = torch.linear(x, CONSTANTS.c0)\n  _1 = ops.prim.NumToTensor(torch.size(_0, 0))\n  \
                    return torch.add(_0, _1)\n";
        let ops = count_ops(code);
        assert_eq!(ops["aten::linear"], 1);
        assert_eq!(ops["aten::size"], 1);
        assert_eq!(ops["aten::add"], 1);
        assert_eq!(ops["prim::NumToTensor"], 1);
        assert_eq!(ops.len(), 4, "{ops:?}");
    }
}
