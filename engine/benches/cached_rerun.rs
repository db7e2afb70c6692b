//! Fully cached rerun: how long `assay run` takes when every node is already
//! in the store, i.e. the fixed cost a user pays on each `assay run` that has
//! nothing to do. Beside it, when `dvc` is on PATH, the same no-op through
//! `dvc repro` on an equivalent DVC pipeline (one stage per cell plus the
//! aggregate stages), timed in the same process with the runs interleaved, so
//! that the dvc/assay ratio is meaningful on a noisy shared machine even when
//! the absolute times are not.
//!
//! `cargo bench -p assay-engine --bench cached_rerun`
//!
//! Environment (to shrink it for a quick try):
//! - `ASSAY_BENCH_CELLS`: measure cells (default 1000);
//! - `ASSAY_BENCH_RERUNS`: timed no-op reruns of each tool (default 10);
//! - `ASSAY_BENCH_NO_DVC=1`: skip the DVC comparison;
//! - `ASSAY_BENCH_DVC_POPULATE=repro`: bring the DVC pipeline up to date with
//!   a real first `dvc repro` (unfinished after 41 minutes at 1,000 stages
//!   on 2 cores) rather than by committing outputs written directly.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;

use support::env_usize;

/// Split `n` into backends x models x scenarios, each as close to the cube
/// root as divisibility allows, so 1000 becomes 10 x 10 x 10 and the cell
/// count is exactly `n`.
fn factor3(n: usize) -> (usize, usize, usize) {
    let largest_divisor_upto = |n: usize, limit: f64| {
        (1..=n)
            .filter(|d| n.is_multiple_of(*d) && (*d as f64) <= limit + 1e-9)
            .max()
            .unwrap_or(1)
    };
    let a = largest_divisor_upto(n, (n as f64).cbrt());
    let b = largest_divisor_upto(n / a, ((n / a) as f64).sqrt());
    (a, b, n / a / b)
}

/// A simulated spec whose cells are as cheap as a cell can be (one run, no
/// warmup, one-layer models, a handful of tokens): the benchmark is about the
/// engine's overhead, not the measurements.
fn spec_yaml(backends: usize, models: usize, scenarios: usize) -> String {
    let mut s = String::from(
        "assay: 1\n\
         id: bench-cached-rerun\n\
         title: Cached rerun benchmark\n\
         question: How long does a fully cached rerun take?\n\
         decision: None; this spec exists to time the engine.\n\
         boundary: { warmup_runs: 0, repetitions: 1 }\n\
         scenarios:\n",
    );
    for i in 0..scenarios {
        let _ = writeln!(
            s,
            "  - {{ name: s{i:03}, prompt_tokens: {}, batch: 1, gen_tokens: 2 }}",
            1 + i % 4
        );
    }
    s.push_str("models:\n");
    for i in 0..models {
        let _ = writeln!(
            s,
            "  - {{ name: m{i:03}, synthetic: {{ arch: llama, layers: 1, hidden: 8, heads: 1, vocab: 16, \
             max_positions: 16, seed: {i} }} }}"
        );
    }
    s.push_str("backends:\n");
    for i in 0..backends {
        let _ = writeln!(
            s,
            "  - {{ name: b{i:02}, kind: simulated, simulated: {{ seed: {i} }} }}"
        );
    }
    s.push_str("outputs: { dir: report, formats: [json] }\n");
    s
}

fn run_checked(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// `assay run SPEC --json`; returns the wall time and the (ran, cached) counts.
fn assay_run(spec: &Path, store: &Path) -> (Duration, u64, u64) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_assay"));
    cmd.arg("run")
        .arg(spec)
        .arg("--store")
        .arg(store)
        .arg("--json");
    let start = Instant::now();
    let out = run_checked(&mut cmd);
    let took = start.elapsed();
    let v: Value =
        serde_json::from_slice(&out.stdout).expect("assay run --json prints one JSON object");
    let count = |k: &str| {
        v[k].as_u64()
            .unwrap_or_else(|| panic!("no {k:?} in assay's JSON"))
    };
    (took, count("ran"), count("cached"))
}

/// An equivalent DVC project: one stage per cell (a small dependency, one
/// output), then validate (all cells), summarise (all cells and validate)
/// and report (validate and summarise), like assay's plan.
struct Dvc {
    repo: tempfile::TempDir,
    /// Stage names, one per cell.
    names: Vec<String>,
}

/// How the DVC pipeline is brought up to date before the timed reruns.
#[derive(Clone, Copy)]
enum Populate {
    /// Write the outputs and `dvc commit -f` them (fast; the default).
    Commit,
    /// A real first `dvc repro` (slow: quadratic in the number of stages).
    Repro,
}

impl Dvc {
    fn available() -> Result<String, String> {
        let out = Command::new("dvc")
            .arg("--version")
            .output()
            .map_err(|e| format!("`dvc` is not on PATH ({e}); `pip install dvc` to compare"))?;
        if !out.status.success() {
            return Err(format!("`dvc --version` failed ({})", out.status));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(args[0]);
        cmd.args(&args[1..])
            .current_dir(self.repo.path())
            // Analytics would add a network attempt to the timed runs.
            .env("DVC_NO_ANALYTICS", "1");
        cmd
    }

    fn create(cells: usize) -> Dvc {
        let repo = tempfile::tempdir().expect("temp dir");
        let dvc = Dvc {
            repo,
            names: (0..cells).map(|i| format!("c{i:05}")).collect(),
        };
        let root = dvc.repo.path();
        run_checked(&mut dvc.command(&["git", "init", "-q"]));
        run_checked(&mut dvc.command(&["dvc", "init", "-q"]));
        run_checked(&mut dvc.command(&["dvc", "config", "core.analytics", "false"]));
        std::fs::create_dir_all(root.join("deps")).expect("deps dir");
        let mut yaml = String::from("stages:\n");
        for name in &dvc.names {
            std::fs::write(root.join(format!("deps/{name}.txt")), format!("{name}\n"))
                .expect("dep file");
            let _ = write!(
                yaml,
                "  {name}:\n    cmd: mkdir -p out && cp deps/{name}.txt out/{name}.txt\n    \
                 deps: [deps/{name}.txt]\n    outs: [out/{name}.txt]\n"
            );
        }
        let outs: Vec<String> = dvc.names.iter().map(|n| format!("out/{n}.txt")).collect();
        let _ = write!(
            yaml,
            "  validate:\n    cmd: cat out/*.txt > validate.txt\n    deps: [{}]\n    outs: [validate.txt]\n",
            outs.join(", ")
        );
        let _ = write!(
            yaml,
            "  summarise:\n    cmd: cat validate.txt out/*.txt > summary.txt\n    deps: [validate.txt, {}]\n    \
             outs: [summary.txt]\n",
            outs.join(", ")
        );
        yaml.push_str(
            "  report:\n    cmd: cat validate.txt summary.txt > report.txt\n    \
             deps: [validate.txt, summary.txt]\n    outs: [report.txt]\n",
        );
        std::fs::write(root.join("dvc.yaml"), yaml).expect("dvc.yaml");
        dvc
    }

    /// Bring the pipeline to the state a successful `dvc repro` leaves.
    /// By default the outputs are written here, as the stages' commands
    /// would write them, and recorded with one `dvc commit -f`: a first
    /// `dvc repro` of 1,000 stages had not finished after 41 minutes on 2
    /// cores (it grows quadratically: 41 s for 100 stages, 130 s for 200),
    /// which only delays the no-op reruns this benchmark times. The
    /// resulting dvc.lock and cache are the same, so the reruns see the same
    /// state.
    fn populate(&self, mode: Populate) -> Duration {
        let start = Instant::now();
        match mode {
            Populate::Repro => {
                let (_, noop) = self.repro();
                assert!(!noop, "the first dvc repro must run the stages");
            }
            Populate::Commit => {
                let root = self.repo.path();
                std::fs::create_dir_all(root.join("out")).expect("out dir");
                let mut all = String::new();
                for name in &self.names {
                    let text = format!("{name}\n");
                    std::fs::write(root.join(format!("out/{name}.txt")), &text).expect("out file");
                    all.push_str(&text);
                }
                let summary = format!("{all}{all}");
                std::fs::write(root.join("validate.txt"), &all).expect("validate.txt");
                std::fs::write(root.join("summary.txt"), &summary).expect("summary.txt");
                std::fs::write(root.join("report.txt"), format!("{all}{summary}"))
                    .expect("report.txt");
                run_checked(&mut self.command(&["dvc", "commit", "-f", "-q"]));
            }
        }
        start.elapsed()
    }

    /// `dvc repro`; returns the wall time and whether DVC said nothing changed.
    fn repro(&self) -> (Duration, bool) {
        let mut cmd = self.command(&["dvc", "repro"]);
        cmd.stdin(Stdio::null());
        let start = Instant::now();
        let out = run_checked(&mut cmd);
        let took = start.elapsed();
        let text = String::from_utf8_lossy(&out.stdout);
        (took, text.contains("Data and pipelines are up to date"))
    }
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    if !s.len().is_multiple_of(2) {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2
    }
}

fn min(v: &[Duration]) -> Duration {
    v.iter().copied().min().unwrap_or_default()
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn main() {
    let cells = env_usize("ASSAY_BENCH_CELLS", 1000);
    let reruns = env_usize("ASSAY_BENCH_RERUNS", 10);
    assert!(
        cells > 0 && reruns > 0,
        "ASSAY_BENCH_CELLS and ASSAY_BENCH_RERUNS must be > 0"
    );
    let (backends, models, scenarios) = factor3(cells);
    // validate, summarise and report come on top of the measure cells.
    let nodes = cells as u64 + 3;

    println!(
        "cached_rerun: {cells} measure cells ({backends} backends x {models} models x {scenarios} scenarios, simulated), {nodes} nodes"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let spec = dir.path().join("bench.yaml");
    let store = dir.path().join("store");
    std::fs::write(&spec, spec_yaml(backends, models, scenarios)).expect("write spec");

    let (first, ran, _) = assay_run(&spec, &store);
    assert_eq!(ran, nodes, "the first run must run every node");
    println!(
        "  assay: first run (populates the store, {ran} nodes ran): {}",
        secs(first)
    );

    let dvc = match std::env::var_os("ASSAY_BENCH_NO_DVC") {
        Some(_) => Err("ASSAY_BENCH_NO_DVC is set".to_string()),
        None => Dvc::available(),
    }
    .map(|version| {
        let (mode, how) = match std::env::var("ASSAY_BENCH_DVC_POPULATE").as_deref() {
            Ok("repro") => (Populate::Repro, "first `dvc repro`, runs every stage"),
            _ => (
                Populate::Commit,
                "outputs written + `dvc commit -f`; ASSAY_BENCH_DVC_POPULATE=repro times a real first repro",
            ),
        };
        let dvc = Dvc::create(cells);
        let took = dvc.populate(mode);
        println!(
            "  dvc {version}: {} stages populated in {} ({how})",
            cells + 3,
            secs(took)
        );
        dvc
    });
    if let Err(why) = &dvc {
        println!("  dvc comparison SKIPPED: {why}");
    }

    // Interleave the two tools, so that a burst of load from the machine's
    // other users hits both rather than skewing the ratio.
    let mut assay_times = Vec::with_capacity(reruns);
    let mut dvc_times = Vec::with_capacity(reruns);
    for _ in 0..reruns {
        let (t, ran, cached) = assay_run(&spec, &store);
        assert_eq!((ran, cached), (0, nodes), "a rerun must be fully cached");
        assay_times.push(t);
        if let Ok(dvc) = &dvc {
            let (t, noop) = dvc.repro();
            assert!(noop, "a dvc rerun must be a no-op");
            dvc_times.push(t);
        }
    }

    println!("  fully cached rerun, {reruns} times each:");
    println!("    {:<28} {:>10} {:>10}", "", "median", "min");
    println!(
        "    {:<28} {:>10} {:>10}",
        "assay run --json",
        secs(median(&assay_times)),
        secs(min(&assay_times))
    );
    if !dvc_times.is_empty() {
        println!(
            "    {:<28} {:>10} {:>10}",
            "dvc repro",
            secs(median(&dvc_times)),
            secs(min(&dvc_times))
        );
        let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64();
        println!(
            "    ratio dvc/assay: {:.1}x (medians), {:.1}x (mins)",
            ratio(median(&assay_times), median(&dvc_times)),
            ratio(min(&assay_times), min(&dvc_times))
        );
    }
    println!(
        "    assay per node: {:.1} us (median rerun / {nodes} nodes)",
        median(&assay_times).as_secs_f64() * 1e6 / nodes as f64
    );
}
