use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/e2e/specs/sim.yaml");

/// A scratch folder holding a copy of a fixture spec.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub spec: PathBuf,
}

impl Workspace {
    pub fn new() -> Self {
        Self::with_spec(&std::fs::read_to_string(FIXTURE).unwrap())
    }

    pub fn with_spec(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("spec.yaml");
        std::fs::write(&spec, text).unwrap();
        Workspace { dir, spec }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn store(&self) -> PathBuf {
        self.path().join(".assay")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.path().join("spec.yaml.lock")
    }

    pub fn edit(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.spec).unwrap();
        assert!(text.contains(from), "fixture has no {from:?}");
        std::fs::write(&self.spec, text.replacen(from, to, 1)).unwrap();
    }

    pub fn report(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path().join("reports/e2e").join(name)).unwrap()
    }

    /// `assay run --json` in this workspace; returns the final JSON object.
    pub fn run(&self, extra: &[&str]) -> Value {
        let out = assay(&[&["run", self.spec.to_str().unwrap(), "--json"], extra].concat());
        assert!(
            out.status.success(),
            "run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Node ids with the given status in a `run --json` result.
    pub fn nodes_with(result: &Value, status: &str) -> Vec<String> {
        result["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["status"] == status)
            .map(|n| n["node"].as_str().unwrap().to_string())
            .collect()
    }
}

pub fn assay_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_assay"));
    c.env("NO_COLOR", "1");
    c
}

pub fn assay(args: &[&str]) -> Output {
    assay_cmd().args(args).output().unwrap()
}
