//! The remote cache (docs/cluster.md): a copy of store node records and
//! their objects on S3-compatible storage or in a shared directory, laid
//! out as the local store is (`objects/ab/<digest>`, `nodes/<key>.json`,
//! under the remote's prefix).
//!
//! Two rules keep it safe to share:
//! - **A record is never visible before its objects.** A push writes a
//!   node's objects, then its record; a pull fetches and hashes every
//!   object into the local store, then writes the local record. An
//!   interrupted push or pull leaves only whole objects behind (named by
//!   their digest, so harmless), and the next one resumes.
//! - **Nothing is ever overwritten.** Every write is create-only (a
//!   conditional put, `If-None-Match: *`, on S3; a hard link on a
//!   directory), so two machines pushing at once never replace each
//!   other's bytes: the first record of a key wins, and the second pusher
//!   is told that the remote already holds it.
//!
//! Every pulled object is hashed before it enters the local store; a wrong
//! one is refused and named. Credentials come only from the environment or
//! the AWS configuration files (`credentials.rs`) and are never printed.

mod config;
mod credentials;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt, TryStreamExt};

use assay_store::{Digest, NodeRecord, Store, StoreError};
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::path::Path as RemotePath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, RetryConfig};

pub use config::{RemoteArgs, RemoteConfig, resolve};

/// A remote the commands can push to and pull from.
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: RemotePath,
    /// The remote as people see it: its URL (never credentials).
    pub shown: String,
    runtime: tokio::runtime::Runtime,
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The remote's configuration (URL, folder config) is wrong.
    #[error("{0}")]
    Config(String),
    /// The remote did not answer, or answered with an error.
    #[error("remote {remote}: {message}")]
    Unreachable { remote: String, message: String },
    /// The remote refused the credentials it was given.
    #[error(
        "remote {remote} refused the credentials (from the environment or the AWS configuration files): {message}"
    )]
    Credentials { remote: String, message: String },
    /// A pulled object does not hash to its name: refused, never stored.
    #[error(
        "remote {remote}: object {path} is corrupt: its bytes hash to {actual}, not to the digest {expected} that names it; it was not stored"
    )]
    Corrupt {
        remote: String,
        path: String,
        expected: String,
        actual: String,
    },
    /// A remote record that names an object the remote does not hold.
    #[error(
        "remote {remote}: node record {key} names object {digest}, which the remote does not hold"
    )]
    Incomplete {
        remote: String,
        key: String,
        digest: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a push did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Distinct objects written now, and those the remote held already.
    pub objects_sent: usize,
    pub objects_present: usize,
    pub bytes_sent: u64,
    /// Records written now, and those the remote held already (never
    /// replaced).
    pub records_sent: usize,
    pub records_present: usize,
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq)]
pub struct Pull {
    /// The records pulled, now in the local store.
    pub records: Vec<NodeRecord>,
    /// The keys the remote holds no record of.
    pub missing: Vec<Digest>,
    /// Bytes of the objects fetched.
    pub bytes: u64,
}

/// Objects and records in flight at once: a round trip per request hides
/// behind the others (the AWS CLI's `s3 sync` runs 10).
const TRANSFERS: usize = 16;

/// Objects above this size are asked about (HEAD) before they are sent.
const ASK_FIRST_BYTES: u64 = 1 << 20;

/// Why a transfer stream stopped: a remote error, or Ctrl-C.
enum Step {
    Failed(RemoteError),
    Cancelled,
}

impl From<RemoteError> for Step {
    fn from(e: RemoteError) -> Self {
        Step::Failed(e)
    }
}

impl Step {
    /// A stopped stream as the caller's answer: the error, or `Ok(None)`
    /// for a cancel.
    fn outcome<T>(self) -> Result<Option<T>, RemoteError> {
        match self {
            Step::Failed(e) => Err(e),
            Step::Cancelled => Ok(None),
        }
    }
}

/// How long a remote may take before it counts as unreachable: a few
/// quick retries, never minutes of them.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const RETRIES: usize = 2;
const RETRY_TIMEOUT: Duration = Duration::from_secs(10);

impl Remote {
    /// Connect to the configured remote (no request is made yet).
    pub fn open(cfg: &RemoteConfig) -> Result<Self, RemoteError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Config(format!("cannot start the remote client: {e}")))?;
        let (store, prefix): (Arc<dyn ObjectStore>, &str) = match &cfg.location {
            config::Location::S3 { bucket, prefix } => {
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_conditional_put(S3ConditionalPut::ETagMatch)
                    .with_retry(RetryConfig {
                        max_retries: RETRIES,
                        retry_timeout: RETRY_TIMEOUT,
                        ..RetryConfig::default()
                    })
                    .with_client_options(
                        ClientOptions::new()
                            .with_connect_timeout(CONNECT_TIMEOUT)
                            .with_timeout(REQUEST_TIMEOUT)
                            .with_allow_http(
                                cfg.endpoint
                                    .as_deref()
                                    .is_some_and(|e| e.starts_with("http://")),
                            ),
                    );
                if let Some(endpoint) = &cfg.endpoint {
                    b = b.with_endpoint(endpoint);
                }
                let creds = credentials::from_files();
                let in_env = std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
                    && std::env::var_os("AWS_SECRET_ACCESS_KEY").is_some();
                match (&creds, in_env) {
                    (_, true) => {}
                    (Some(c), false) => {
                        b = b
                            .with_access_key_id(&c.access_key_id)
                            .with_secret_access_key(&c.secret_access_key);
                        if let Some(token) = &c.session_token {
                            b = b.with_token(token);
                        }
                    }
                    // Never the cloud's metadata service: credentials come
                    // from the environment or the files, or not at all.
                    (None, false) => {
                        return Err(RemoteError::Config(format!(
                            "remote {}: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give them in ~/.aws/credentials (profile `default`, or AWS_PROFILE; AWS_SHARED_CREDENTIALS_FILE for another file)",
                            cfg.shown
                        )));
                    }
                }
                let region = cfg
                    .region
                    .clone()
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                    .or_else(|| creds.and_then(|c| c.region))
                    .unwrap_or_else(|| "us-east-1".into());
                b = b.with_region(region);
                let s3 = b.build().map_err(|e| {
                    RemoteError::Config(format!("remote {}: {}", cfg.shown, describe(&e)))
                })?;
                (Arc::new(s3), prefix.as_str())
            }
            config::Location::Dir(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    RemoteError::Config(format!("remote {}: cannot create it: {e}", cfg.shown))
                })?;
                let fs = LocalFileSystem::new_with_prefix(dir).map_err(|e| {
                    RemoteError::Config(format!("remote {}: {}", cfg.shown, describe(&e)))
                })?;
                (Arc::new(fs), "")
            }
        };
        Ok(Remote {
            store,
            prefix: RemotePath::from(prefix),
            shown: cfg.shown.clone(),
            runtime,
        })
    }

    fn object_path(&self, digest: &Digest) -> RemotePath {
        let hex = digest.to_hex();
        self.prefix
            .clone()
            .join("objects")
            .join(&hex[..2])
            .join(hex)
    }

    fn node_path(&self, key: &Digest) -> RemotePath {
        self.prefix
            .clone()
            .join("nodes")
            .join(format!("{}.json", key.to_hex()))
    }

    /// Push local records and their objects: every object first (those the
    /// remote holds are left alone), then the records, each write
    /// create-only, [`TRANSFERS`] at a time. None when `cancelled` said
    /// stop (no record of an object that did not land was written).
    pub fn push_nodes(
        &self,
        local: &Store,
        records: &[NodeRecord],
        cancelled: &(dyn Fn() -> bool + Sync),
        tick: &(dyn Fn() + Sync),
    ) -> Result<Option<Pushed>, RemoteError> {
        // A record on the remote vouches for its objects (they were written
        // first), so a node whose record is there costs one request. It is
        // read, not only asked for: a torn record is no record.
        let Some(held) = self.all(records.iter().map(|record| async move {
            if cancelled() {
                return Err(Step::Cancelled);
            }
            let held = self.record_async(&record.key).await?.is_some();
            tick();
            Ok(held)
        }))?
        else {
            return Ok(None);
        };
        let to_send: Vec<&NodeRecord> = records
            .iter()
            .zip(&held)
            .filter(|(_, held)| !**held)
            .map(|(r, _)| r)
            .collect();
        let digests: BTreeSet<Digest> = to_send
            .iter()
            .flat_map(|r| r.outputs.values().copied())
            .collect();
        let Some(sent) = self.all(digests.iter().map(|digest| async move {
            if cancelled() {
                return Err(Step::Cancelled);
            }
            let path = self.object_path(digest);
            // A large object is asked for first (a resumed push does not
            // send it twice); a small one is simply put: the create-only
            // put answers "there already" for the price of the question.
            let size = std::fs::metadata(local.object_path(digest)).map_or(0, |m| m.len());
            if size > ASK_FIRST_BYTES && self.exists_async(&path).await? {
                tick();
                return Ok(None);
            }
            // Hashed on the way out too: a corrupt local object is never
            // shared (Store::get checks the digest).
            let bytes = local.get(digest).map_err(RemoteError::from)?;
            let len = bytes.len() as u64;
            let sent = self.put_new_async(&path, bytes).await?.then_some(len);
            tick();
            Ok(sent)
        }))?
        else {
            return Ok(None);
        };
        let mut pushed = Pushed {
            objects_sent: sent.iter().flatten().count(),
            objects_present: sent.iter().filter(|s| s.is_none()).count(),
            bytes_sent: sent.iter().flatten().sum(),
            records_present: records.len() - to_send.len(),
            ..Pushed::default()
        };
        let Some(written) = self.all(to_send.iter().map(|record| async move {
            let mut bytes = serde_json::to_vec_pretty(record).map_err(|e| {
                RemoteError::Config(format!(
                    "node record {} does not serialise: {e}",
                    record.key
                ))
            })?;
            bytes.push(b'\n');
            let path = self.node_path(&record.key);
            let mut sent = self.put_new_async(&path, bytes.clone()).await?;
            // There already: another pusher's whole record stays; a torn
            // one (see `record_async`) is replaced.
            if !sent && self.record_async(&record.key).await?.is_none() {
                let opts = PutOptions {
                    mode: PutMode::Overwrite,
                    ..PutOptions::default()
                };
                self.store
                    .put_opts(&path, bytes.into(), opts)
                    .await
                    .map_err(|e| self.error(e))?;
                sent = true;
            }
            tick();
            Ok(sent)
        }))?
        else {
            return Ok(None);
        };
        pushed.records_sent = written.iter().filter(|w| **w).count();
        pushed.records_present += written.len() - pushed.records_sent;
        Ok(Some(pushed))
    }

    /// Pull the records of `keys` that the remote holds, then every object
    /// they name that the local store lacks (each hashed before it is
    /// stored), [`TRANSFERS`] at a time; then write the local records. The
    /// keys the remote holds no record of are returned; none at all when
    /// `cancelled` said stop (then no record was written).
    pub fn pull_nodes(
        &self,
        local: &Store,
        keys: &[Digest],
        cancelled: &(dyn Fn() -> bool + Sync),
        tick: &(dyn Fn() + Sync),
    ) -> Result<Option<Pull>, RemoteError> {
        let Some(found) = self.all(keys.iter().map(|key| async move {
            if cancelled() {
                return Err(Step::Cancelled);
            }
            let record = self.record_async(key).await?;
            tick();
            Ok(record)
        }))?
        else {
            return Ok(None);
        };
        let missing: Vec<Digest> = keys
            .iter()
            .zip(&found)
            .filter(|(_, r)| r.is_none())
            .map(|(k, _)| *k)
            .collect();
        let records: Vec<NodeRecord> = found.into_iter().flatten().collect();
        let wanted: BTreeMap<Digest, Digest> = records
            .iter()
            .flat_map(|r| r.outputs.values().map(move |d| (*d, r.key)))
            .filter(|(d, _)| !local.has_object(d))
            .collect();
        let Some(fetched) = self.all(wanted.iter().map(|(digest, key)| async move {
            if cancelled() {
                return Err(Step::Cancelled);
            }
            let bytes = self.fetch_object_async(local, digest, key).await?;
            tick();
            Ok(bytes)
        }))?
        else {
            return Ok(None);
        };
        if cancelled() {
            return Ok(None);
        }
        for record in &records {
            local.put_node(record)?;
        }
        Ok(Some(Pull {
            records,
            missing,
            bytes: fetched.iter().sum(),
        }))
    }

    /// Pull one node (`run --remote`): its record and objects, or none where
    /// the remote holds no record of `key`.
    pub fn pull_node(
        &self,
        local: &Store,
        key: &Digest,
    ) -> Result<Option<NodeRecord>, RemoteError> {
        Ok(self
            .pull_nodes(local, std::slice::from_ref(key), &|| false, &|| {})?
            .and_then(|p| p.records.into_iter().next()))
    }

    /// Whether the remote holds a record of `key` (which vouches for its
    /// objects): a Slurm job of `execution.store: remote` finds its cell
    /// already there on a resubmission.
    pub fn holds_node(&self, key: &Digest) -> Result<bool, RemoteError> {
        self.runtime
            .block_on(self.record_async(key))
            .map(|r| r.is_some())
    }

    /// Run `jobs`, [`TRANSFERS`] at a time, their answers in order: the
    /// first error stops them all; a cancel gives none.
    fn all<T>(
        &self,
        jobs: impl Iterator<Item = impl std::future::Future<Output = Result<T, Step>>>,
    ) -> Result<Option<Vec<T>>, RemoteError> {
        let done = self.runtime.block_on(
            stream::iter(jobs)
                .buffered(TRANSFERS)
                .try_collect::<Vec<T>>(),
        );
        match done {
            Ok(v) => Ok(Some(v)),
            Err(step) => step.outcome(),
        }
    }

    async fn exists_async(&self, path: &RemotePath) -> Result<bool, RemoteError> {
        match self.store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn get_async(&self, path: &RemotePath) -> Result<Option<Vec<u8>>, RemoteError> {
        let got = match self.store.get(path).await {
            Ok(r) => r.bytes().await.map(|b| Some(b.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        };
        got.map_err(|e| self.error(e))
    }

    async fn put_new_async(&self, path: &RemotePath, bytes: Vec<u8>) -> Result<bool, RemoteError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self.store.put_opts(path, bytes.into(), opts).await {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    /// The remote's record of `key`, checked to be of `key`. A record that
    /// does not parse is torn, not a record: a server that accepted a body
    /// cut off mid-upload stored what arrived (moto stores it empty; S3
    /// refuses a short body). It names nothing, so it counts as absent, and
    /// a push replaces it.
    async fn record_async(&self, key: &Digest) -> Result<Option<NodeRecord>, RemoteError> {
        let path = self.node_path(key);
        let Some(bytes) = self.get_async(&path).await? else {
            return Ok(None);
        };
        let Ok(record) = serde_json::from_slice::<NodeRecord>(&bytes) else {
            return Ok(None);
        };
        if record.key != *key {
            return Err(RemoteError::Unreachable {
                remote: self.shown.clone(),
                message: format!("node record {path} holds the key {}", record.key),
            });
        }
        Ok(Some(record))
    }

    /// Fetch one object named by the record of `key`, hash it, store it.
    async fn fetch_object_async(
        &self,
        local: &Store,
        digest: &Digest,
        key: &Digest,
    ) -> Result<u64, RemoteError> {
        let object = self.object_path(digest);
        let bytes = self
            .get_async(&object)
            .await?
            .ok_or_else(|| RemoteError::Incomplete {
                remote: self.shown.clone(),
                key: key.to_hex(),
                digest: digest.to_hex(),
            })?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(RemoteError::Corrupt {
                remote: self.shown.clone(),
                path: object.to_string(),
                expected: digest.to_hex(),
                actual: actual.to_hex(),
            });
        }
        local.put(&bytes)?;
        Ok(bytes.len() as u64)
    }

    /// An object-store error, as whose fault it is.
    fn error(&self, e: object_store::Error) -> RemoteError {
        let message = describe(&e);
        match e {
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => RemoteError::Credentials {
                remote: self.shown.clone(),
                message,
            },
            _ if message.contains("InvalidAccessKeyId")
                || message.contains("SignatureDoesNotMatch")
                || message.contains("AccessDenied") =>
            {
                RemoteError::Credentials {
                    remote: self.shown.clone(),
                    message,
                }
            }
            _ => RemoteError::Unreachable {
                remote: self.shown.clone(),
                message,
            },
        }
    }
}

/// An object-store error with its causes, on one line (a server's XML
/// error body included, its white space collapsed).
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
