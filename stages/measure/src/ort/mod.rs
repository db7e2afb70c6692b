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
//!
//! The library and its version are found here; the session and the forward
//! pass are in `model`, under the step bookkeeping every in-process backend
//! shares ([`crate::step`]).

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::harness::BackendError;

mod model;
#[cfg(test)]
mod tests;

pub use model::{OrtBackend, OrtModel};

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
