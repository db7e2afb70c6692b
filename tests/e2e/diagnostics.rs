//! The malformed-spec corpus: every file gets located errors and exit 2,
//! never a panic. The exact text is snapshotted.

use crate::support::assay;

#[test]
fn malformed_specs_get_located_errors_and_exit_2() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/specs/bad");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    for file in files {
        let name = file.file_name().unwrap().to_str().unwrap().to_string();
        let out = assay(&["check", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr).replace(dir.to_str().unwrap(), "bad");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        let first = stderr.lines().next().unwrap_or("");
        assert!(
            first.starts_with(&format!("bad/{name}:")),
            "{name}: {first}"
        );
        insta::assert_snapshot!(name, stderr);
    }
}

#[test]
fn check_json_lists_every_diagnostic_with_its_position() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/specs/bad");
    let out = assay(&[
        "check",
        dir.join("semantic.yaml").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let diags = v["diagnostics"].as_array().unwrap();
    assert!(diags.len() >= 10, "{v}");
    assert!(
        diags
            .iter()
            .all(|d| d["line"].as_u64().unwrap() >= 1 && d["col"].as_u64().unwrap() >= 1)
    );
    assert!(diags.iter().any(|d| {
        d["message"]
            .as_str()
            .unwrap()
            .contains("escapes the spec's folder")
    }));
}

#[test]
fn a_bad_spec_never_touches_the_store() {
    let ws = crate::support::Workspace::new();
    ws.run(&[]);
    let before = std::fs::read(ws.lock_path()).unwrap();
    ws.edit("repetitions: 4", "repetitions: 0");
    let out = assay(&["run", ws.spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read(ws.lock_path()).unwrap(), before);
    ws.edit("repetitions: 0", "repetitions: 4");
    assert_eq!(ws.run(&[])["ran"], 0);
}

#[test]
fn a_synthetic_model_larger_than_memory_is_refused_before_prepare() {
    // 4096 layers of hidden 65536: about 170 trillion parameters, far more
    // f32 bytes than any machine this runs on has.
    let ws = crate::support::Workspace::with_spec(
        "assay: 1
id: big
title: t
question: q
decision: d
boundary: { warmup_runs: 0, repetitions: 1 }
scenarios:
  - { name: s, prompt_tokens: 4, batch: 1, gen_tokens: 4 }
models:
  - { name: big, synthetic: { arch: llama, layers: 4096, hidden: 65536, heads: 512, vocab: 4194304 } }
backends:
  - { name: c, kind: candle, device: cpu }
outputs: { dir: reports }
",
    );
    let out = assay(&["check", ws.spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spec.yaml:10:"), "{err}");
    assert!(
        err.contains("GiB of f32 weights, more than this machine's"),
        "{err}"
    );
    assert!(!ws.store().exists());

    // A small model, but a batch whose KV cache cannot fit.
    ws.edit(
        "{ name: big, synthetic: { arch: llama, layers: 4096, hidden: 65536, heads: 512, vocab: 4194304 } }",
        "{ name: big, synthetic: { arch: llama, layers: 64, hidden: 8192, heads: 64, vocab: 1000, max_positions: 65536 } }",
    );
    ws.edit(
        "{ name: s, prompt_tokens: 4, batch: 1, gen_tokens: 4 }",
        "{ name: s, prompt_tokens: 60000, batch: 100000, gen_tokens: 4 }",
    );
    let out = assay(&["check", ws.spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("GiB KV cache for model \"big\""), "{err}");
}

#[test]
fn in_process_threads_beyond_the_cores_are_refused_when_measuring() {
    // No machine this runs on has 100000 logical cores.
    let ws = crate::support::Workspace::with_spec(
        "assay: 1
id: threads
title: t
question: q
decision: d
boundary: { warmup_runs: 0, repetitions: 1 }
scenarios:
  - { name: s, prompt_tokens: 4, batch: 1, gen_tokens: 4 }
models:
  - { name: tiny, synthetic: { arch: llama, layers: 1, hidden: 16, heads: 2, vocab: 64 } }
backends:
  - { name: c, kind: candle, device: cpu, threads: 100000 }
outputs: { dir: reports }
",
    );
    let spec = ws.spec.to_str().unwrap();
    // The child inherits this process's CPU affinity and quota.
    let cores = std::thread::available_parallelism().unwrap().get();
    let out = assay(&["check", spec]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "spec.yaml:12:52: error: backends[0].threads: 100000 threads requested, more than the {cores} logical cores available on this machine (candle runs in process, on this machine's cores)"
        )),
        "{err}"
    );
    assert!(!ws.store().exists());

    // Commands that only read the store do not read the machine.
    let out = assay(&["plan", spec]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("logical cores"), "{err}");

    // A simulated backend only records its threads.
    ws.edit("kind: candle, device: cpu", "kind: simulated");
    let out = assay(&["check", spec]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_invariance_reference_must_name_a_backend_of_the_spec() {
    let spec = "assay: 1
id: reference
title: t
question: q
decision: d
boundary: { warmup_runs: 0, repetitions: 1 }
scenarios:
  - { name: s, prompt_tokens: 4, batch: 1, gen_tokens: 4 }
models:
  - { name: tiny, synthetic: { arch: llama, layers: 1, hidden: 16, heads: 2, vocab: 64 } }
backends:
  - { name: a, kind: simulated }
  - { name: b, kind: simulated }
validate: { invariance_reference: c }
outputs: { dir: reports }
";
    let ws = crate::support::Workspace::with_spec(spec);
    let out = assay(&["check", ws.spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "spec.yaml:14:35: error: validate.invariance_reference: invariance_reference \"c\" is not a backend of this spec (backends: a, b)"
        ),
        "{err}"
    );
    ws.edit("invariance_reference: c", "invariance_reference: b");
    let out = assay(&["check", ws.spec.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
