//! Machine-readable outputs and the smaller commands.

use crate::support::{Workspace, assay};

#[test]
fn plan_json_has_the_documented_fields() {
    let ws = Workspace::new();
    let out = assay(&["plan", ws.spec.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = plan.as_array().unwrap();
    assert_eq!(nodes.len(), 11);
    for n in nodes {
        for field in ["node", "stage", "key", "status", "reason"] {
            assert!(n.get(field).is_some(), "{field} missing in {n}");
        }
        assert_eq!(n["status"], "run");
    }
    assert_eq!(nodes[0]["reason"], "new node (not in the lockfile)");
    ws.run(&[]);
    let out = assay(&["plan", ws.spec.to_str().unwrap(), "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        plan.as_array()
            .unwrap()
            .iter()
            .all(|n| n["status"] == "cached" && n["key"].as_str().unwrap().len() == 64)
    );
}

#[test]
fn run_json_has_the_documented_fields() {
    let ws = Workspace::new();
    let r = ws.run(&[]);
    for field in ["ran", "cached", "failed", "report_dir", "nodes"] {
        assert!(r.get(field).is_some(), "{field} missing");
    }
}

#[test]
fn report_claims_trace_to_raw_rows_and_manifest() {
    let ws = Workspace::new();
    ws.run(&[]);
    let report: serde_json::Value = serde_json::from_slice(&ws.report("report.json")).unwrap();
    let claims = report["claims"].as_array().unwrap();
    assert!(claims.len() > 20);
    for c in claims {
        for field in ["id", "statement", "value", "unit", "source"] {
            assert!(c.get(field).is_some(), "{field} missing in {c}");
        }
        assert_eq!(c["source"]["digest"].as_str().unwrap().len(), 64);
        assert!(c["source"]["rows"].is_array());
        assert_eq!(c["evidence"], "simulated");
    }
    let id = "cost/sim/mid/batch/decode/spot/usd_per_1m";
    let out = assay(&["trace", id, "--spec", ws.spec.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hops: Vec<&str> = t["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hop"].as_str().unwrap())
        .collect();
    assert_eq!(hops, ["cost", "summary", "raw", "manifest"]);
    let raw = &t["chain"][2];
    assert_eq!(raw["node"], "measure/sim/mid/batch");
    // 4 steady runs x 7 decode steps
    assert!(
        raw["detail"]
            .as_str()
            .unwrap()
            .starts_with("28 raw events of phase decode")
    );
    // Every digest on the chain is a stored object that `show` can print.
    for hop in t["chain"].as_array().unwrap() {
        let d = hop["digest"].as_str().unwrap();
        let shown = assay(&["show", d, "--spec", ws.spec.to_str().unwrap()]);
        assert!(shown.status.success(), "show {d}");
    }
    let missing = assay(&["trace", "cost/nope", "--spec", ws.spec.to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("did you mean"));
}

#[test]
fn show_prints_parquet_as_a_table_and_json_rows() {
    let ws = Workspace::new();
    ws.run(&[]);
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.lock_path()).unwrap()).unwrap();
    let d = lock["nodes"]["summarise"]["outputs"]["summary"]
        .as_str()
        .unwrap();
    let spec = ws.spec.to_str().unwrap();
    let table = assay(&["show", &d[..10], "--spec", spec]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("| median_ms"));
    let rows = assay(&["show", d, "--spec", spec, "--json"]);
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&rows.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(first["median_ms"].is_number());
    let bad = assay(&["show", "zz", "--spec", spec]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn checked_in_schemas_are_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let out = assay(&["schema", "--write", dir.path().to_str().unwrap()]);
    assert!(out.status.success());
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    for entry in walk(dir.path()) {
        let rel = entry.strip_prefix(dir.path()).unwrap();
        let checked_in = std::fs::read(repo.join(rel)).unwrap_or_default();
        assert!(
            checked_in == std::fs::read(&entry).unwrap(),
            "schemas/{} is stale: run `just schemas` (assay schema --write schemas)",
            rel.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out.sort();
    out
}

/// A spec's text, or for a program (`assay_program:`) its members' texts
/// (one level of members: the shipped programs list specs).
fn with_members(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    if !text.contains("assay_program:") {
        return text;
    }
    let dir = path.parent().unwrap();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter(|m| m.ends_with(".yaml"))
        .map(|m| std::fs::read_to_string(dir.join(m)).unwrap())
        .collect()
}

#[test]
fn shipped_specs_check_clean() {
    let specs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs");
    for spec in walk(&specs)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    {
        let out = assay(&["check", spec.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // What the spec asks for: its own text, or a program's members'.
        let text = with_members(&spec);
        // A spec of the optional backends checks clean only in a build with
        // them; without, the one error it may get names the missing feature.
        let needs = ["ort", "tch"]
            .into_iter()
            .filter(|f| text.contains(&format!("kind: {f}")));
        let mut missing: Vec<String> = needs
            .filter(|f| match *f {
                "ort" => !cfg!(feature = "ort"),
                _ => !cfg!(feature = "tch"),
            })
            .map(|f| format!("built without the `{f}` backend"))
            .collect();
        // A spec that launches llama-server checks clean only where one is
        // (CI builds it: scripts/install-llama-cpp.sh).
        if text.contains("kind: openai") && !llama_server_found() {
            missing.push("so assay launches llama-server, which is not found".into());
        }
        // A spec of the python kind checks clean only where its Python
        // environment is (CI builds it: scripts/install-python-harness.sh).
        if text.contains("kind: python")
            && std::env::var_os("ASSAY_PYTHON").is_none_or(|p| p.is_empty())
        {
            missing.push("or the environment variable ASSAY_PYTHON".into());
        }
        if missing.is_empty() {
            assert!(out.status.success(), "{}: {stderr}", spec.display());
        } else {
            assert_eq!(out.status.code(), Some(2), "{}: {stderr}", spec.display());
            for line in stderr.lines().filter(|l| l.contains(": error: ")) {
                assert!(
                    missing.iter().any(|m| line.contains(m.as_str())),
                    "{}: {line}",
                    spec.display()
                );
            }
        }
    }
}

/// `$ASSAY_LLAMA_SERVER` is a file, or `llama-server` is on the PATH (the
/// rule `assay check` applies).
fn llama_server_found() -> bool {
    match std::env::var_os("ASSAY_LLAMA_SERVER").filter(|v| !v.is_empty()) {
        Some(p) => std::path::Path::new(&p).is_file(),
        None => std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|d| d.join("llama-server").is_file())
        }),
    }
}

#[test]
fn help_version_env_and_usage_errors() {
    let help = assay(&["--help"]);
    assert!(help.status.success());
    // Every exit code the binary can return is documented in --help.
    let help = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for code in [
        "0 ok",
        "1 run failed",
        "2 bad usage",
        "3 verification",
        "130 interrupted",
        "141 stdout",
    ] {
        assert!(
            help.contains(code),
            "--help does not document {code:?}:\n{help}"
        );
    }
    assert!(String::from_utf8_lossy(&assay(&["--version"]).stdout).starts_with("assay "));
    let env: serde_json::Value = serde_json::from_slice(&assay(&["env"]).stdout).unwrap();
    assert!(env["logical_cores"].as_u64().unwrap() >= 1);
    assert_eq!(assay(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        assay(&["run", "/nonexistent/spec.yaml"]).status.code(),
        Some(2)
    );
}
