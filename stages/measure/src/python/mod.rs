//! The `python` kind's harness process: assay's Python package
//! (`python/assay_harness` in the repository, embedded here so that an
//! installed binary needs no clone), written to a cache directory and run as
//! `<interpreter> -m assay_harness`, one process per cell, over the
//! JSON-lines protocol of docs/python-harness.md (`protocol.rs`).
//!
//! The harness times the phases itself, on its own monotonic clock with the
//! device synchronised: the work is in Python, and a clock read across a
//! pipe would time the pipe. Everything that can go wrong with a child
//! process (it speaks another protocol version, prints garbage, crashes,
//! hangs) is a failure of that cell with the harness's stderr tail, never a
//! hang or a panic of assay.

pub mod client;
pub mod protocol;

use std::path::{Path, PathBuf};

/// The package's files, as `(name, text)`: its source is part of the
/// binary, and its digest names the directory it is written to.
pub const PACKAGE: [(&str, &str); 5] = [
    (
        "__init__.py",
        include_str!("../../../../python/assay_harness/__init__.py"),
    ),
    (
        "__main__.py",
        include_str!("../../../../python/assay_harness/__main__.py"),
    ),
    (
        "protocol.py",
        include_str!("../../../../python/assay_harness/protocol.py"),
    ),
    (
        "cell.py",
        include_str!("../../../../python/assay_harness/cell.py"),
    ),
    (
        "evidence.py",
        include_str!("../../../../python/assay_harness/evidence.py"),
    ),
];

/// blake3 of the embedded package (names and texts): which harness ran, in
/// the manifest.
pub fn package_digest() -> String {
    let mut h = blake3::Hasher::new();
    for (name, text) in PACKAGE {
        h.update(name.as_bytes());
        h.update(&[0]);
        h.update(text.as_bytes());
        h.update(&[0]);
    }
    h.finalize().to_hex().to_string()
}

/// The directory to put on PYTHONPATH: the embedded package written under
/// `root` (the system's temporary directory unless given) in a directory
/// named by its digest, so a second cell reuses it and another assay
/// version never sees this one's files. Written to a private directory and
/// renamed into place, so concurrent writers never expose a half-written
/// package.
pub fn install_package(root: Option<&Path>) -> Result<PathBuf, String> {
    let root = root.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let digest = package_digest();
    let dir = root.join(format!("assay-python-harness-{}", &digest[..16]));
    if PACKAGE.iter().all(|(name, text)| {
        std::fs::read_to_string(dir.join("assay_harness").join(name))
            .ok()
            .as_deref()
            == Some(*text)
    }) {
        return Ok(dir);
    }
    let staging = root.join(format!(
        ".assay-python-harness-{}-{}",
        std::process::id(),
        unique()
    ));
    let write = || -> std::io::Result<()> {
        let pkg = staging.join("assay_harness");
        std::fs::create_dir_all(&pkg)?;
        for (name, text) in PACKAGE {
            std::fs::write(pkg.join(name), text)?;
        }
        // A stale or damaged copy is replaced; another writer's complete
        // copy may win the rename, which is as good as ours.
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        match std::fs::rename(&staging, &dir) {
            Ok(()) => Ok(()),
            Err(_) if dir.join("assay_harness").join("__init__.py").exists() => Ok(()),
            Err(e) => Err(e),
        }
    };
    let result = write();
    let _ = std::fs::remove_dir_all(&staging);
    result.map_err(|e| {
        format!(
            "cannot write the Python harness package under {}: {e}",
            root.display()
        )
    })?;
    Ok(dir)
}

/// A number no other call in this process returns (temporary names).
pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (NEXT.fetch_add(1, Ordering::Relaxed) << 32) | u64::from(nanos)
}

/// A directory removed when dropped (the cell's model view and Inductor
/// cache).
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(prefix: &str) -> Result<Self, String> {
        let path =
            std::env::temp_dir().join(format!("{prefix}-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(ScratchDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests;
