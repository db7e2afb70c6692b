//! Crash-safe file writes: a temp file in the same filesystem, fsync, rename,
//! fsync of the directory. A crash leaves either the old file or the new one,
//! never a torn one.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::StoreError;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Write `bytes` to `dest` atomically, staging the temp file in `tmp_dir`
/// (which must be on the same filesystem as `dest`).
pub fn write_atomic(dest: &Path, bytes: &[u8], tmp_dir: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(tmp_dir).map_err(|e| StoreError::io(tmp_dir, e))?;
    let name = format!(
        "{}-{}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        dest.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    );
    let tmp = tmp_dir.join(name);
    let result = (|| {
        let mut f = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| StoreError::io(&tmp, e))?;
        f.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
        drop(f);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
        }
        fs::rename(&tmp, dest).map_err(|e| StoreError::io(dest, e))?;
        if let Some(parent) = dest.parent() {
            // Persist the rename itself; not all platforms allow opening a dir.
            if let Ok(dir) = File::open(parent) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a/b.txt");
        let tmp = dir.path().join("tmp");
        write_atomic(&dest, b"one", &tmp).unwrap();
        write_atomic(&dest, b"two", &tmp).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"two");
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    }
}
