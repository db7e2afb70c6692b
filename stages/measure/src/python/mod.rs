//! The `python` kind's harness process: assay's Python package
//! (`python/assay_harness` in the repository, embedded here so that an
//! installed binary needs no clone), written to a private directory per cell
//! and run as
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
/// binary, and its digest is the manifest's record of which harness ran.
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

/// The directory to put on PYTHONPATH: the embedded package written into
/// a fresh private directory (see [`ScratchDir`]) under `root` (the
/// system's temporary directory unless given), one per cell. A directory
/// at a predictable shared path could be pre-created by another user with
/// modules beside the package (a `json.py`, a `torch/`) that the harness
/// would import first; a directory this process created itself, mode 0700,
/// cannot. Writing five small files per cell costs nothing measurable.
pub fn install_package(root: Option<&Path>) -> Result<ScratchDir, String> {
    let root = root.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let dir = ScratchDir::new_in(&root, "assay-harness")?;
    let pkg = dir.path().join("assay_harness");
    let write = || -> std::io::Result<()> {
        std::fs::create_dir(&pkg)?;
        for (name, text) in PACKAGE {
            std::fs::write(pkg.join(name), text)?;
        }
        Ok(())
    };
    write().map_err(|e| {
        format!(
            "cannot write the Python harness package under {}: {e}",
            dir.path().display()
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

/// A private directory, removed when dropped (the harness package, the
/// cell's model view and Inductor cache, i.e. generated code). Created
/// with mkdtemp's semantics: a name with a random part, made by a single
/// non-recursive `mkdir` that fails if anything is already there (so a
/// directory or link another user planted is never used), mode 0700 and
/// owned by this user.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Under the system's temporary directory.
    pub fn new(prefix: &str) -> Result<Self, String> {
        Self::new_in(&std::env::temp_dir(), prefix)
    }

    pub fn new_in(root: &Path, prefix: &str) -> Result<Self, String> {
        use std::hash::{BuildHasher, Hasher};
        let mut last = None;
        for _ in 0..100 {
            let path = root.join(format!(
                "{prefix}-{}-{:016x}{:016x}",
                std::process::id(),
                unique(),
                // Seeded from the OS's randomness: the name cannot be
                // guessed in advance (the exclusive mkdir is the safety).
                std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish()
            ));
            let mut builder = std::fs::DirBuilder::new();
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            match builder.create(&path) {
                Ok(()) => return Ok(ScratchDir(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
            }
        }
        Err(format!(
            "cannot create a private directory under {}: {}",
            root.display(),
            last.map_or_else(String::new, |e| e.to_string())
        ))
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
