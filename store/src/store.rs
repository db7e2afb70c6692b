//! The on-disk store:
//!
//! ```text
//! <root>/objects/ab/<digest>   immutable artifacts, named by blake3 of their bytes
//! <root>/nodes/<key>.json      one record per finished node
//! <root>/tmp/                  staging for atomic writes
//! <root>/lock                  held (flock) by the one process writing the store
//! ```

use std::collections::BTreeSet;
use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};

use crate::atomic::write_atomic;
use crate::{Digest, NodeRecord, StoreError};

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Holds the store's write lock until dropped.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

/// What `gc` removed (or would remove, in a dry run).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct GcReport {
    pub nodes_removed: usize,
    pub objects_removed: usize,
    pub bytes_freed: u64,
    pub nodes_kept: usize,
    pub objects_kept: usize,
}

impl Store {
    /// Open (and create if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for sub in ["objects", "nodes", "tmp"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        }
        Ok(Store { root })
    }

    /// Open an existing store without creating anything.
    pub fn open_existing(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        if !root.join("objects").is_dir() {
            return Err(StoreError::io(
                &root,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no assay store here"),
            ));
        }
        Ok(Store { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Take the store's exclusive lock. `on_wait` is called once if another
    /// process holds it and we have to block.
    pub fn lock(&self, on_wait: impl FnOnce()) -> Result<StoreLock, StoreError> {
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                on_wait();
                file.lock().map_err(|e| StoreError::io(&path, e))?;
            }
            Err(TryLockError::Error(e)) => return Err(StoreError::io(&path, e)),
        }
        Ok(StoreLock { _file: file })
    }

    pub fn object_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.root.join("objects").join(&hex[..2]).join(&hex)
    }

    pub fn has_object(&self, digest: &Digest) -> bool {
        self.object_path(digest).is_file()
    }

    /// Store `bytes` and return their digest. Writing an object that already
    /// exists is a no-op: objects are immutable.
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        let path = self.object_path(&digest);
        if !path.is_file() {
            write_atomic(&path, bytes, &self.tmp_dir())?;
        }
        Ok(digest)
    }

    /// Read an object and check that its bytes still hash to its name.
    pub fn get(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.object_path(digest);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::MissingObject {
                    digest: *digest,
                    path,
                });
            }
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(StoreError::CorruptObject {
                expected: *digest,
                actual,
                path,
            });
        }
        Ok(bytes)
    }

    /// Check an object without keeping its bytes.
    pub fn check_object(&self, digest: &Digest) -> Result<(), StoreError> {
        self.get(digest).map(|_| ())
    }

    /// All object digests in the store, sorted.
    pub fn objects(&self) -> Result<BTreeSet<Digest>, StoreError> {
        let mut out = BTreeSet::new();
        let dir = self.root.join("objects");
        for shard in read_dir_sorted(&dir)? {
            if !shard.is_dir() {
                continue;
            }
            for file in read_dir_sorted(&shard)? {
                if let Some(d) = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.parse::<Digest>().ok())
                {
                    out.insert(d);
                }
            }
        }
        Ok(out)
    }

    /// Resolve a full digest or a unique prefix of one.
    pub fn resolve(&self, text: &str) -> Result<Digest, StoreError> {
        let text = text.trim();
        if let Ok(d) = text.parse::<Digest>() {
            return Ok(d);
        }
        if !Digest::is_hex_prefix(text) || text.len() < 4 {
            return Err(StoreError::BadDigest(text.to_string()));
        }
        let matches: Vec<Digest> = self
            .objects()?
            .into_iter()
            .filter(|d| d.to_hex().starts_with(text))
            .collect();
        match matches.len() {
            1 => Ok(matches[0]),
            0 => Err(StoreError::NoMatch {
                prefix: text.to_string(),
            }),
            count => Err(StoreError::AmbiguousDigest {
                prefix: text.to_string(),
                count,
            }),
        }
    }

    fn node_path(&self, key: &Digest) -> PathBuf {
        self.root
            .join("nodes")
            .join(format!("{}.json", key.to_hex()))
    }

    pub fn put_node(&self, record: &NodeRecord) -> Result<(), StoreError> {
        let path = self.node_path(&record.key);
        let mut bytes = serde_json::to_vec_pretty(record).map_err(|e| StoreError::Malformed {
            path: path.clone(),
            what: "node record",
            message: e.to_string(),
        })?;
        bytes.push(b'\n');
        write_atomic(&path, &bytes, &self.tmp_dir())
    }

    /// The record of a finished node, if there is one.
    pub fn get_node(&self, key: &Digest) -> Result<Option<NodeRecord>, StoreError> {
        let path = self.node_path(key);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Malformed {
                path,
                what: "node record",
                message: e.to_string(),
            })
    }

    /// A node counts as cached only when its record exists and every output
    /// object is present (a half-deleted store reruns, it never lies).
    pub fn cached_node(&self, key: &Digest) -> Result<Option<NodeRecord>, StoreError> {
        Ok(self
            .get_node(key)?
            .filter(|rec| rec.outputs.values().all(|d| self.has_object(d))))
    }

    /// Every node record, sorted by key. Unreadable records are reported.
    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let mut out = Vec::new();
        for path in read_dir_sorted(&self.root.join("nodes"))? {
            let Some(key) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<Digest>().ok())
            else {
                continue;
            };
            if let Some(rec) = self.get_node(&key)? {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Delete every node record whose key is not in `keep`, then every object
    /// that no remaining node references. Leftover temp files go too.
    pub fn gc(&self, keep: &BTreeSet<Digest>, dry_run: bool) -> Result<GcReport, StoreError> {
        let mut report = GcReport::default();
        let mut live_objects = BTreeSet::new();
        for node in self.nodes()? {
            if keep.contains(&node.key) {
                report.nodes_kept += 1;
                live_objects.extend(node.outputs.values().copied());
                live_objects.extend(node.inputs.iter().map(|i| i.digest));
            } else {
                report.nodes_removed += 1;
                if !dry_run {
                    let p = self.node_path(&node.key);
                    fs::remove_file(&p).map_err(|e| StoreError::io(&p, e))?;
                }
            }
        }
        for digest in self.objects()? {
            if live_objects.contains(&digest) {
                report.objects_kept += 1;
                continue;
            }
            let p = self.object_path(&digest);
            report.objects_removed += 1;
            report.bytes_freed += fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            if !dry_run {
                fs::remove_file(&p).map_err(|e| StoreError::io(&p, e))?;
            }
        }
        if !dry_run {
            for tmp in read_dir_sorted(&self.tmp_dir())? {
                let _ = fs::remove_file(tmp);
            }
        }
        Ok(report)
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut out: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_detect_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.put(b"hello").unwrap();
        assert_eq!(store.get(&d).unwrap(), b"hello");
        assert_eq!(store.resolve(&d.to_hex()[..8]).unwrap(), d);
        fs::write(store.object_path(&d), b"tampered").unwrap();
        match store.get(&d) {
            Err(StoreError::CorruptObject { expected, .. }) => assert_eq!(expected, d),
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn missing_object_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = Digest::of(b"never stored");
        assert!(matches!(
            store.get(&d),
            Err(StoreError::MissingObject { .. })
        ));
    }

    #[test]
    fn gc_keeps_only_reachable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.put(b"a").unwrap();
        let _b = store.put(b"b").unwrap();
        let rec = NodeRecord::new_for_test(Digest::of(b"key"), [("out".to_string(), a)]);
        store.put_node(&rec).unwrap();
        let keep = BTreeSet::from([rec.key]);
        let dry = store.gc(&keep, true).unwrap();
        assert_eq!(dry.objects_removed, 1);
        assert_eq!(store.objects().unwrap().len(), 2);
        store.gc(&keep, false).unwrap();
        assert_eq!(store.objects().unwrap(), BTreeSet::from([a]));
    }

    #[test]
    fn second_lock_in_same_process_waits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let held = store.lock(|| panic!("first lock must not wait")).unwrap();
        let s2 = store.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let _l = s2.lock(|| tx.send(()).unwrap()).unwrap();
        });
        // The second locker reports that it is waiting before it gets the lock.
        rx.recv().unwrap();
        drop(held);
        t.join().unwrap();
    }
}
