//! Planning at scale: a spec of 100,000 measure cells (10 backends x 100
//! models x 100 scenarios). Times, in this process, `load_spec` and
//! `build_plan` and reports the peak memory they took (VmHWM); then times the
//! CLI `assay plan SPEC --json` on the same spec, which also computes every
//! node's key, and reports its peak RSS.
//!
//! `cargo bench -p assay-engine --bench plan_scale`
//!
//! Environment: `ASSAY_BENCH_PLAN_CELLS` (default 100000) shrinks it for a
//! quick try.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assay_engine::plan::build_plan;
use assay_engine::spec::load_spec;

mod support;

use support::env_usize;

/// Split `n` into 10 backends (fewer if `n` is not a multiple of 10) and
/// models x scenarios as square as divisibility allows: 100,000 becomes
/// 10 x 100 x 100.
fn factor3(n: usize) -> (usize, usize, usize) {
    let backends = (1..=10).rev().find(|d| n.is_multiple_of(*d)).unwrap_or(1);
    let rest = n / backends;
    let models = (1..=rest)
        .filter(|d| rest.is_multiple_of(*d) && d * d <= rest)
        .max()
        .unwrap_or(1);
    (backends, models, rest / models)
}

fn spec_yaml(backends: usize, models: usize, scenarios: usize) -> String {
    let mut s = String::from(
        "assay: 1\n\
         id: bench-plan-scale\n\
         title: Planning at scale\n\
         question: How long does planning a large spec take?\n\
         decision: None; this spec exists to time the planner.\n\
         boundary: { warmup_runs: 0, repetitions: 1 }\n\
         scenarios:\n",
    );
    for i in 0..scenarios {
        let _ = writeln!(
            s,
            "  - {{ name: s{i:05}, prompt_tokens: {}, batch: {}, gen_tokens: {} }}",
            1 + i % 32,
            1 + i % 4,
            1 + i % 16
        );
    }
    s.push_str("models:\n");
    for i in 0..models {
        let _ = writeln!(
            s,
            "  - {{ name: m{i:05}, synthetic: {{ arch: llama, layers: {}, hidden: 64, heads: 4, vocab: 1000, \
             seed: {i} }} }}",
            1 + i % 8
        );
    }
    s.push_str("backends:\n");
    for i in 0..backends {
        let _ = writeln!(
            s,
            "  - {{ name: b{i:02}, kind: simulated, simulated: {{ seed: {i} }} }}"
        );
    }
    s.push_str(
        "cost: { usd_per_hour: { on_demand: 1.0 }, tokens_per_month: 1.0e9, burst_factor: 2 }\n\
         fit: { y: decode_ms_per_token, x: params, bootstrap: { resamples: 100, seed: 1 } }\n\
         outputs: { dir: report, formats: [json] }\n",
    );
    s
}

/// A `kB` field of /proc/self/status (or another process's), in bytes.
fn proc_status_kb(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

fn self_hwm() -> Option<u64> {
    proc_status_kb(&std::fs::read_to_string("/proc/self/status").ok()?, "VmHWM")
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// Wall time and peak RSS of `assay plan SPEC --json`, plus the number of
/// plan entries it printed. The peak comes from GNU time's "Maximum resident
/// set size" when /usr/bin/time exists (exact: the kernel's own accounting);
/// otherwise from polling the child's VmHWM, a lower bound that misses only
/// growth in its last few milliseconds.
fn cli_plan(spec: &Path, out_dir: &Path) -> (Duration, Option<(u64, &'static str)>, usize) {
    let assay = env!("CARGO_BIN_EXE_assay");
    let gnu_time = Path::new("/usr/bin/time");
    let time_file = out_dir.join("time.txt");
    let json_file = out_dir.join("plan.json");
    let stdout = std::fs::File::create(&json_file).expect("plan output file");
    let mut cmd = if gnu_time.is_file() {
        let mut c = Command::new(gnu_time);
        c.arg("-v").arg("-o").arg(&time_file).arg(assay);
        c
    } else {
        Command::new(assay)
    };
    cmd.arg("plan")
        .arg(spec)
        .arg("--json")
        .stdout(stdout)
        .stderr(Stdio::inherit());

    let start = Instant::now();
    let mut child = cmd.spawn().expect("start assay plan");
    // With GNU time the child is `time` itself, so polling would measure the
    // wrong process; it is only the fallback.
    let mut polled_hwm = 0;
    let status = if gnu_time.is_file() {
        child.wait().expect("wait for assay plan")
    } else {
        let path = format!("/proc/{}/status", child.id());
        loop {
            if let Some(status) = child.try_wait().expect("wait for assay plan") {
                break status;
            }
            if let Some(hwm) = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| proc_status_kb(&s, "VmHWM"))
            {
                polled_hwm = polled_hwm.max(hwm);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let took = start.elapsed();
    assert!(status.success(), "assay plan failed: {status}");

    let peak = if gnu_time.is_file() {
        std::fs::read_to_string(&time_file).ok().and_then(|t| {
            t.lines()
                .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|kb| (kb * 1024, "GNU time"))
        })
    } else {
        (polled_hwm > 0).then_some((polled_hwm, "polled VmHWM, lower bound"))
    };
    let entries: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_file).expect("read plan output"))
            .expect("plan --json is JSON");
    let n = entries.as_array().map_or(0, Vec::len);
    (took, peak, n)
}

fn main() {
    let cells = env_usize("ASSAY_BENCH_PLAN_CELLS", 100_000);
    assert!(cells > 0, "ASSAY_BENCH_PLAN_CELLS must be > 0");
    let (backends, models, scenarios) = factor3(cells);
    // validate, summarise, cost, fit and report come on top of the cells.
    let nodes = cells + 5;
    println!(
        "plan_scale: {cells} measure cells ({backends} backends x {models} models x {scenarios} scenarios), {nodes} nodes"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let spec = dir.path().join("bench.yaml");
    let text = spec_yaml(backends, models, scenarios);
    std::fs::write(&spec, &text).expect("write spec");
    println!(
        "  spec: {} lines, {} bytes",
        text.lines().count(),
        text.len()
    );

    // Everything this process allocated so far (the spec text, the runtime)
    // is in the baseline; the difference is what loading and planning add.
    let before = self_hwm();
    let start = Instant::now();
    let loaded = load_spec(&spec).unwrap_or_else(|e| panic!("generated spec does not load: {e}"));
    let load_time = start.elapsed();
    let start = Instant::now();
    let plan = build_plan(&loaded).expect("the bench spec plans");
    let plan_time = start.elapsed();
    let after = self_hwm();
    assert_eq!(plan.len(), nodes, "plan size");
    assert_eq!(
        plan.order.len(),
        nodes,
        "every node is in the topological order"
    );

    println!("  in process:");
    println!("    load_spec                 {:>10}", secs(load_time));
    println!("    build_plan                {:>10}", secs(plan_time));
    println!(
        "    total                     {:>10}",
        secs(load_time + plan_time)
    );
    println!(
        "    per node (total)          {:>7.2} us",
        (load_time + plan_time).as_secs_f64() * 1e6 / nodes as f64
    );
    match (before, after) {
        (Some(b), Some(a)) => {
            println!("    peak RSS (VmHWM) before   {:>10}", mib(b));
            println!("    peak RSS (VmHWM) after    {:>10}", mib(a));
            println!(
                "    added by load + plan      {:>10}  ({:.0} bytes/node)",
                mib(a.saturating_sub(b)),
                a.saturating_sub(b) as f64 / nodes as f64
            );
        }
        _ => println!("    peak RSS: /proc/self/status not readable here"),
    }
    // Free the plan before the CLI run, so this process does not crowd it.
    drop(plan);
    drop(loaded);

    let (took, peak, printed) = cli_plan(&spec, dir.path());
    assert_eq!(printed, nodes, "assay plan --json lists every node");
    println!("  CLI `assay plan SPEC --json` (no store: every node is new):");
    println!("    wall time                 {:>10}", secs(took));
    match peak {
        Some((bytes, how)) => println!("    peak RSS                  {:>10}  ({how})", mib(bytes)),
        None => println!(
            "    peak RSS: not measured (no /usr/bin/time and the process ended too fast to poll)"
        ),
    }
    println!(
        "    ratio CLI / in-process load+plan: {:.1}x wall time",
        took.as_secs_f64() / (load_time + plan_time).as_secs_f64()
    );
}
