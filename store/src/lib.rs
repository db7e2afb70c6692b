//! Content-addressed storage for assay: objects by blake3 digest, node records,
//! lockfiles, deterministic Parquet/JSON encodings and the canonical encoding
//! that node keys hash.

pub mod atomic;
pub mod canonical;
pub mod digest;
pub mod error;
pub mod lockfile;
pub mod node;
pub mod store;
pub mod table;

pub use digest::Digest;
pub use error::StoreError;
pub use lockfile::{LockEntry, Lockfile};
pub use node::{InputRef, NodeRecord};
pub use store::{Store, StoreLock};
