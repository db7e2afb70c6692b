//! Which remote a command uses: `--remote-url`, else `ASSAY_REMOTE_URL`,
//! else the `remote:` section of `assay.yaml` in the spec's folder
//! (docs/cluster.md). No credential is ever read from these: only from the
//! environment or the AWS configuration files.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::RemoteError;

/// The remote options of `run`, `verify`, `push` and `pull`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RemoteArgs {
    /// Use the remote cache: fetch a node's outputs from it instead of
    /// running the node when it holds them (`run`), or fetch what the
    /// lockfile names before verifying (`verify`). Which remote: below.
    #[arg(long)]
    pub remote: bool,
    /// The remote: `s3://BUCKET/PREFIX` or a directory (a shared
    /// filesystem). Implies --remote. Default: ASSAY_REMOTE_URL, else the
    /// `remote.url` of `assay.yaml` beside the spec.
    #[arg(long, value_name = "URL", env = "ASSAY_REMOTE_URL")]
    pub remote_url: Option<String>,
    /// An S3-compatible endpoint, e.g. `http://127.0.0.1:9000` (plain
    /// HTTP only where given so). Default: the `remote.endpoint` of
    /// `assay.yaml`, else AWS_ENDPOINT_URL, else AWS's own.
    #[arg(long, value_name = "URL", env = "ASSAY_REMOTE_ENDPOINT")]
    pub remote_endpoint: Option<String>,
}

/// Where a remote keeps its copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    S3 { bucket: String, prefix: String },
    Dir(PathBuf),
}

/// A resolved remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    pub location: Location,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// The URL as written (shown in messages; it holds no credentials).
    pub shown: String,
}

/// `assay.yaml`: the folder's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FolderConfig {
    remote: Option<FolderRemote>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FolderRemote {
    url: String,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    region: Option<String>,
}

/// The folder configuration's file name.
pub const FOLDER_CONFIG: &str = "assay.yaml";

/// The remote to use, where one is asked for (`--remote`, a URL, or
/// `required` for push and pull); none where none is. A relative
/// directory is relative to the working directory on the command line and
/// to the config file's folder in `assay.yaml`.
pub fn resolve(
    args: &RemoteArgs,
    spec_dir: &Path,
    required: bool,
) -> Result<Option<RemoteConfig>, RemoteError> {
    if !(args.remote || args.remote_url.is_some() || required) {
        return Ok(None);
    }
    let folder = read_folder_config(spec_dir)?;
    let (url, base, endpoint, region) = match (&args.remote_url, folder) {
        (Some(url), folder) => (
            url.clone(),
            PathBuf::from("."),
            folder.as_ref().and_then(|f| f.endpoint.clone()),
            folder.and_then(|f| f.region),
        ),
        (None, Some(f)) => (f.url, spec_dir.to_path_buf(), f.endpoint, f.region),
        (None, None) => {
            return Err(RemoteError::Config(format!(
                "no remote: give --remote-url URL, set ASSAY_REMOTE_URL, or write `remote: {{ url: s3://BUCKET/PREFIX }}` in {}",
                spec_dir.join(FOLDER_CONFIG).display()
            )));
        }
    };
    let endpoint = args.remote_endpoint.clone().or(endpoint);
    Ok(Some(RemoteConfig {
        location: location(&url, &base)?,
        endpoint,
        region,
        shown: url,
    }))
}

impl RemoteConfig {
    /// The `assay run-node` options that name this remote to a Slurm job
    /// (`execution.store: remote`): the location with its folder made
    /// absolute, the endpoint and the region. Never credentials: a job
    /// reads them from its own environment, which `sbatch` passes on.
    pub fn job_args(&self) -> Vec<String> {
        let url = match &self.location {
            Location::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            Location::Dir(dir) => dir.display().to_string(),
        };
        let mut args = vec!["--remote-url".to_string(), url];
        if let Some(e) = &self.endpoint {
            args.extend(["--remote-endpoint".to_string(), e.clone()]);
        }
        if let Some(r) = &self.region {
            args.extend(["--remote-region".to_string(), r.clone()]);
        }
        args
    }
}

fn read_folder_config(dir: &Path) -> Result<Option<FolderRemote>, RemoteError> {
    let path = dir.join(FOLDER_CONFIG);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(RemoteError::Config(format!("{}: {e}", path.display())));
        }
    };
    let config: FolderConfig = serde_saphyr::from_str(&text)
        .map_err(|e| RemoteError::Config(format!("{}: {e}", path.display())))?;
    Ok(config.remote)
}

/// `s3://bucket/prefix`, `file:///dir`, or a directory path.
fn location(url: &str, base: &Path) -> Result<Location, RemoteError> {
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(RemoteError::Config(format!(
                "remote {url}: no bucket: write s3://BUCKET/PREFIX"
            )));
        }
        return Ok(Location::S3 {
            bucket: bucket.into(),
            prefix: prefix.trim_matches('/').into(),
        });
    }
    if let Some((scheme, _)) = url.split_once("://")
        && scheme != "file"
    {
        return Err(RemoteError::Config(format!(
            "remote {url}: unknown scheme {scheme}://: a remote is s3://BUCKET/PREFIX or a directory"
        )));
    }
    let path = PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
    let path = if path.is_absolute() {
        path
    } else {
        base.join(path)
    };
    // The directory store needs an absolute root.
    let path = std::path::absolute(&path)
        .map_err(|e| RemoteError::Config(format!("remote {url}: {e}")))?;
    Ok(Location::Dir(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: Option<&str>) -> RemoteArgs {
        RemoteArgs {
            remote: true,
            remote_url: url.map(Into::into),
            remote_endpoint: None,
        }
    }

    #[test]
    fn urls_name_a_bucket_and_prefix_or_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let s3 = resolve(&args(Some("s3://cache/team/a/")), dir.path(), false)
            .unwrap()
            .unwrap();
        assert_eq!(
            s3.location,
            Location::S3 {
                bucket: "cache".into(),
                prefix: "team/a".into()
            }
        );
        let err = resolve(&args(Some("gs://x")), dir.path(), false).unwrap_err();
        assert!(err.to_string().contains("unknown scheme gs://"), "{err}");
        assert!(resolve(&args(Some("s3:///p")), dir.path(), false).is_err());
        // Not asked for: none, even with a folder config.
        let off = RemoteArgs::default();
        assert!(resolve(&off, dir.path(), false).unwrap().is_none());
    }

    #[test]
    fn a_jobs_arguments_name_the_same_remote_without_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(Some("s3://cache/team/"));
        a.remote_endpoint = Some("http://127.0.0.1:9000".into());
        let cfg = resolve(&a, dir.path(), true).unwrap().unwrap();
        assert_eq!(
            cfg.job_args(),
            [
                "--remote-url",
                "s3://cache/team",
                "--remote-endpoint",
                "http://127.0.0.1:9000"
            ]
        );
        // What the job resolves from them is the same remote.
        let job = RemoteArgs {
            remote: true,
            remote_url: Some(cfg.job_args()[1].clone()),
            remote_endpoint: cfg.endpoint.clone(),
        };
        let again = resolve(&job, dir.path(), true).unwrap().unwrap();
        assert_eq!(
            (again.location, again.endpoint, again.region),
            (cfg.location, cfg.endpoint, cfg.region)
        );
        // A relative folder becomes absolute: the job starts elsewhere.
        let rel = resolve(&args(Some("cache")), dir.path(), true)
            .unwrap()
            .unwrap();
        assert!(
            Path::new(&rel.job_args()[1]).is_absolute(),
            "{:?}",
            rel.job_args()
        );
    }

    #[test]
    fn the_folder_config_names_the_remote_relative_to_itself() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            resolve(&args(None), dir.path(), true)
                .unwrap_err()
                .to_string()
                .contains("no remote: give --remote-url URL")
        );
        std::fs::write(
            dir.path().join(FOLDER_CONFIG),
            "remote: { url: shared/cache, region: eu-west-1 }\n",
        )
        .unwrap();
        let cfg = resolve(&args(None), dir.path(), true).unwrap().unwrap();
        assert_eq!(
            cfg.location,
            Location::Dir(std::path::absolute(dir.path().join("shared/cache")).unwrap())
        );
        assert_eq!(cfg.region.as_deref(), Some("eu-west-1"));
        std::fs::write(dir.path().join(FOLDER_CONFIG), "remote: { uri: x }\n").unwrap();
        let err = resolve(&args(None), dir.path(), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("assay.yaml") && err.contains("uri"), "{err}");
    }
}
