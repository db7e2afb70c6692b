//! With the `tch` feature, record libtorch's library directory as an rpath
//! of the `assay` binary and the end-to-end tests, so they start without
//! LD_LIBRARY_PATH. torch-sys links libtorch but sets no rpath.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_TCH").is_none() {
        return;
    }
    if let Some(root) = std::env::var_os("LIBTORCH") {
        let lib = std::path::Path::new(&root).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
