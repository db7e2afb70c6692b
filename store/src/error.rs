use std::path::PathBuf;

use crate::Digest;

/// Everything that can go wrong inside the store. Paths are always named so
/// that a user can find the file in question.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("object {digest} is missing from the store ({path})")]
    MissingObject { digest: Digest, path: PathBuf },
    #[error("object {expected} is corrupt: its bytes hash to {actual} ({path})")]
    CorruptObject {
        expected: Digest,
        actual: Digest,
        path: PathBuf,
    },
    #[error("{path}: not a valid {what}: {message}")]
    Malformed {
        path: PathBuf,
        what: &'static str,
        message: String,
    },
    #[error("not a digest: {0:?} (expected 64 lowercase hex characters, or a unique prefix)")]
    BadDigest(String),
    #[error("no object in the store starts with {prefix:?}")]
    NoMatch { prefix: String },
    #[error("digest prefix {prefix:?} is ambiguous: {count} objects match")]
    AmbiguousDigest { prefix: String, count: usize },
    #[error("table encoding failed: {0}")]
    Table(String),
}

impl StoreError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}
