//! The native library versions assay is built and tested against. The
//! install script (scripts/install-native-libs.sh) pins the same versions
//! (checked by a test in worker.rs); the ort and tch backends refuse others.

/// The ONNX Runtime and libtorch versions this build expects
/// (scripts/install-native-libs.sh installs exactly these).
pub const ORT_EXPECTED: &str = "1.28.0";
pub const TORCH_EXPECTED: &str = "2.13.0";

/// The `tokenizers` crate this build links (Cargo.lock pins it), recorded
/// beside the digest of the tokenizer a cell ran.
pub const TOKENIZERS: &str = "0.23.2";
