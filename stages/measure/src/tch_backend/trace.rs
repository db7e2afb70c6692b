//! TorchScript: tracing the forward function into the prefill and decode
//! modules, and the compiler evidence read back from the saved modules.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use tch::{CModule, Device, Kind, Tensor};

use super::forward::forward;
use super::tch_err;
use super::weights::Model;
use crate::harness::{BackendError, CompilerEvidence};

/// Trace [`forward`] into a TorchScript module: the prefill function (with
/// the causal mask) or the one-token decode function (without, as candle).
/// The example inputs are deliberately small and unlike any real call (batch
/// 1, a 4-slot cache, past length 0 or 2), which is harmless because nothing
/// in the forward function reads a size into Rust.
pub(super) fn trace(model: &Model, prefill: bool) -> Result<CModule, BackendError> {
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

/// What the torchscript path records: the traced graphs' op calls (counted
/// in the TorchScript code of the saved modules), the executor settings in
/// effect, and a digest of the saved programs.
pub(super) fn evidence(
    prefill: &CModule,
    decode: &CModule,
) -> Result<CompilerEvidence, BackendError> {
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
pub(super) fn count_ops(code: &str) -> BTreeMap<String, u64> {
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
