//! The environment fingerprint: the facts about this machine and build that
//! make a measurement what it is. Part of real measure keys (a different
//! machine measures again) and of every manifest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Environment {
    pub cpu_model: String,
    pub cpu_vendor: String,
    pub cpu_flags: Vec<String>,
    pub logical_cores: u32,
    pub physical_cores: Option<u32>,
    pub memory_bytes: u64,
    pub os: String,
    pub os_version: String,
    pub kernel: String,
    pub arch: String,
    pub rustc: String,
    pub assay_version: String,
    pub assay_git_revision: String,
    /// Backend library name -> version.
    pub libraries: BTreeMap<String, String>,
    /// The Slurm job and node that measured, when the cell ran as a Slurm
    /// job (`assay run --executor slurm`). In the manifest only, never in a
    /// key: which job measured is not what was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmJob>,
}

/// A Slurm job as its environment names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SlurmJob {
    /// `<array job>_<task>` for a task of a job array, else the job id.
    pub job_id: String,
    /// The node it ran on (`SLURMD_NODENAME`).
    pub node: String,
}

/// The Slurm job this process runs in, from the variables Slurm sets.
pub fn slurm_job() -> Option<SlurmJob> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let job_id = match (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        (Some(array), Some(task)) => format!("{array}_{task}"),
        _ => var("SLURM_JOB_ID")?,
    };
    Some(SlurmJob {
        job_id,
        node: var("SLURMD_NODENAME").unwrap_or_default(),
    })
}

/// The CPU feature flags that matter for inference kernels.
const INTERESTING_FLAGS: &[&str] = &[
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "amx_bf16",
    "amx_int8",
    "neon",
    "asimd",
    "sve",
];

/// Total memory of this machine in bytes, 0 when unknown.
pub fn total_memory_bytes() -> u64 {
    sysinfo::System::new().ok().map_or(0, |mut sys| {
        sys.refresh_memory();
        sys.total_memory()
    })
}

pub fn detect() -> Environment {
    // sysinfo cannot read this platform's facts: record them as unknown
    // rather than fail a measurement over its manifest.
    let mut sys = sysinfo::System::new().ok();
    if let Some(sys) = sys.as_mut() {
        sys.refresh_cpu_all();
        sys.refresh_memory();
    }
    let cpus = sys.as_ref().map(|s| s.cpus()).unwrap_or(&[]);
    let cpu_model = cpus
        .first()
        .map(|c| c.brand().trim().to_string())
        .unwrap_or_default();
    let cpu_vendor = cpus
        .first()
        .map(|c| c.vendor_id().trim().to_string())
        .unwrap_or_default();
    Environment {
        cpu_model,
        cpu_vendor,
        cpu_flags: cpu_flags(),
        logical_cores: cpus.len() as u32,
        physical_cores: sysinfo::System::physical_core_count()
            .ok()
            .map(|n| n as u32),
        memory_bytes: sys.as_ref().map_or(0, |s| s.total_memory()),
        os: sysinfo::System::name().unwrap_or_default(),
        os_version: sysinfo::System::os_version().unwrap_or_default(),
        kernel: sysinfo::System::kernel_version().unwrap_or_default(),
        arch: std::env::consts::ARCH.to_string(),
        rustc: env!("ASSAY_RUSTC_VERSION").to_string(),
        assay_version: env!("CARGO_PKG_VERSION").to_string(),
        assay_git_revision: env!("ASSAY_GIT_REVISION").to_string(),
        libraries: BTreeMap::new(),
        slurm: slurm_job(),
    }
}

/// The environment as it enters node keys: everything but the assay build
/// itself, so a new commit of assay does not invalidate measurements while
/// a new machine or library does, and but the Slurm job that measured.
pub fn key_facts(env: &Environment) -> Option<serde_json::Value> {
    let mut v = serde_json::to_value(env).ok()?;
    if let Some(map) = v.as_object_mut() {
        map.remove("assay_version");
        map.remove("assay_git_revision");
        map.remove("slurm");
    }
    Some(v)
}

fn cpu_flags() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let line = text
        .lines()
        .find(|l| l.starts_with("flags") || l.starts_with("Features"))
        .unwrap_or("");
    let present: std::collections::BTreeSet<&str> = line
        .split(':')
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    INTERESTING_FLAGS
        .iter()
        .filter(|f| present.contains(**f))
        .map(|f| f.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slurm_job_is_in_the_manifest_but_not_in_the_key() {
        let mut env = detect();
        let key = key_facts(&env);
        env.slurm = Some(SlurmJob {
            job_id: "41_3".into(),
            node: "node7".into(),
        });
        assert_eq!(key_facts(&env), key, "the job entered the key");
        let manifest = serde_json::to_value(&env).unwrap();
        assert_eq!(manifest["slurm"]["job_id"], "41_3");
        assert_eq!(manifest["slurm"]["node"], "node7");
    }
}
