//! `<spec>.lock`: committed beside a spec, it lists every node key and output
//! digest of the last successful run, so CI can `assay verify` a report and a
//! reviewer can see in a diff exactly which artifacts changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::{Digest, StoreError};

pub const LOCKFILE_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    /// Lockfile format version.
    pub assay_lock: u32,
    /// The spec file this lockfile belongs to (file name only).
    pub spec: String,
    /// blake3 of the spec's canonical form (formatting-insensitive).
    pub spec_digest: Digest,
    /// Node id -> key and outputs, sorted by node id.
    pub nodes: BTreeMap<String, LockEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LockEntry {
    pub stage: String,
    pub key: Digest,
    pub outputs: BTreeMap<String, Digest>,
}

impl Lockfile {
    /// `specs/quickstart.yaml` -> `specs/quickstart.yaml.lock`: the whole
    /// file name, so `a.yaml` and `a.yml` never share a lockfile.
    pub fn path_for(spec: &Path) -> PathBuf {
        let mut name = spec.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        spec.with_file_name(name)
    }

    pub fn read(path: &Path) -> Result<Option<Lockfile>, StoreError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(path, e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Malformed {
                path: path.to_path_buf(),
                what: "lockfile",
                message: e.to_string(),
            })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    pub fn write(&self, path: &Path, tmp_dir: &Path) -> Result<(), StoreError> {
        write_atomic(path, &self.to_bytes(), tmp_dir)
    }
}
