//! A cell on a GPU, without a GPU: a fake Python harness that answers as
//! `cuda:0` and times real sleeps, and a scripted NVML
//! (`ASSAY_NVML_FAKE`, stages/measure/src/energy/gpu.rs) whose power steps
//! from idle to busy at a known moment. What assay does with them is the
//! real path: the sensor chosen by the device, the idle baseline, gating
//! per window, GPU attribution in the manifest and the report, and a GPU
//! shared with another process degrading the cell.

use serde_json::{Value, json};

use crate::python_harness::{HELLO, check, fake_interpreter, manifest, object_json, output, spec};
use crate::support::{Workspace, assay_cmd};
use assay_core::tables::{self, EnergyRow, ValidationRow};

/// Idle power, then busy power from `BUSY_FROM_MS` after the sensor opens:
/// 200 ms after the 500 ms idle baseline (a loaded machine overshoots its
/// sleep), before the harness's first prefill (its load alone sleeps 400 ms
/// after the baseline ends).
const IDLE_W: f64 = 60.0;
const BUSY_W: f64 = 300.0;
const BUSY_FROM_MS: u64 = 700;

/// A harness that sleeps through each phase on `time.perf_counter_ns`, as
/// the real one times the model: load 400 ms, prefill 200 ms, one 10 ms
/// decode step (far under the 50 ms polling: gated `too_short`).
const TIMED_HARNESS: &str = r#"
def send(**m):
    sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
now = time.perf_counter_ns
def timed(phase, secs, **kw):
    t = now(); time.sleep(secs); return dict(phase=phase, start_ns=t, ns=now() - t, **kw)
send(type="loaded", events=[timed("load", 0.4, token_index=None, tokens=0)])
n = cell["gen_tokens"]
for rep in range(cell["warmup_runs"] + cell["repetitions"]):
    start = now()
    ev = [timed("prefill", 0.2, token_index=None, tokens=4)]
    ev.append({"phase": "ttft", "token_index": 0, "tokens": 1, "start_ns": start, "ns": now() - start})
    ev += [timed("decode", 0.01, token_index=i, tokens=1) for i in range(1, n)]
    ev.append({"phase": "e2e", "token_index": None, "tokens": n, "start_ns": start, "ns": now() - start})
    send(type="run", repetition=rep, events=ev, tokens=[[7] * n], margins=[[1.0] * n])
send(type="done", attribution={"device": cell["device"], "dtype": "f32", "threads": 1,
     "library": "transformers", "library_version": "4", "torch_version": "2"})
"#;

/// The fake GPU; `others` are (pid, MiB) of processes that are not
/// assay's.
fn nvml_script(ws: &Workspace, others: &[(u32, u64)]) -> std::path::PathBuf {
    let path = ws.path().join("fake-nvml.json");
    let script = json!({
        "name": "Fake GPU H100",
        "uuid": "GPU-00000000-fake",
        "driver_version": "550.54.15",
        "cuda_version": "12.4",
        "memory_total_mib": 81559,
        "power_limit_w": 700.0,
        "energy_counter": true,
        "power_w": [[0, IDLE_W], [BUSY_FROM_MS, BUSY_W]],
        "sm_clock_mhz": 1980,
        "mem_clock_mhz": 2619,
        "memory_used_mib": 512,
        "processes": others,
    });
    std::fs::write(&path, script.to_string()).unwrap();
    path
}

/// `assay run` of the candle cell and one python cell on `cuda:0` with
/// energy on, through the fake harness and the fake GPU.
fn run_on_fake_gpu(others: &[(u32, u64)]) -> Option<Workspace> {
    let ws = Workspace::with_spec(&spec(
        "{ name: s, prompt_tokens: 4, batch: 1, gen_tokens: 2 }",
        "",
    ));
    let interp = fake_interpreter(ws.path(), HELLO, TIMED_HARNESS)?;
    ws.edit(
        "backends:\n",
        &format!(
            "backends:\n  - {{ name: gpu, kind: python, device: \"cuda:0\", threads: 1, python: {{ interpreter: {:?} }} }}\n",
            interp.to_string_lossy()
        ),
    );
    ws.edit(
        "validate:",
        "energy: { poll_ms: 50, idle_ms: 500, min_intervals: 1 }\nvalidate:",
    );
    let script = nvml_script(&ws, others);
    let out = assay_cmd()
        .env("ASSAY_NVML_FAKE", &script)
        .args(["run", ws.spec.to_str().unwrap(), "--json", "--no-progress"])
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert_eq!(r["failed"], 0, "{r}");
    Some(ws)
}

fn table<T: serde::de::DeserializeOwned>(ws: &Workspace, node: &str, name: &str) -> Vec<T> {
    let digest = output(ws, node, name);
    let path = ws.store().join("objects").join(&digest[..2]).join(&digest);
    tables::from_parquet(&std::fs::read(path).unwrap()).unwrap()
}

/// The python cell on `cuda:0` is measured by NVML (the CPU's RAPL never
/// reaches it): the idle baseline is the GPU's idle power, each prefill
/// window's energy is (busy - idle) x its duration from the exact counter,
/// a 10 ms decode window is gated `too_short` under 50 ms polling, and the
/// GPU is in the manifest and the report.
#[test]
fn a_gpu_cell_gets_the_gpus_energy_per_window_and_its_attribution() {
    let Some(ws) = run_on_fake_gpu(&[]) else {
        return;
    };
    let cell = "gpu/llama/s";
    let m = manifest(&ws, cell);
    assert_eq!(m["energy"]["sensor"], "nvml:Fake GPU H100:energy", "{m}");
    assert!(m["energy"]["idle_samples"].as_u64().unwrap() >= 5, "{m}");
    let gpu = &m["gpu"];
    assert_eq!(gpu["uuid"], "GPU-00000000-fake", "{m}");
    assert_eq!(gpu["driver_version"], "550.54.15");
    assert_eq!(gpu["cuda_version"], "12.4");
    assert_eq!(gpu["power_limit_w"], 700.0);
    assert_eq!(gpu["before"]["sm_clock_mhz"], 1980);
    assert_eq!(gpu["after"]["mem_clock_mhz"], 2619);
    assert_eq!(gpu["other_processes"], json!([]));
    // The CPU cell beside it never gets the GPU's sensor.
    let candle = manifest(&ws, "candle/llama/s");
    assert!(candle.get("gpu").is_none(), "{candle}");
    assert_ne!(candle["energy"]["sensor"], m["energy"]["sensor"]);

    let energy: Vec<EnergyRow> = table(&ws, "validate", "energy");
    let ours: Vec<&EnergyRow> = energy.iter().filter(|e| e.cell == cell).collect();
    let prefills: Vec<&&EnergyRow> = ours.iter().filter(|e| e.phase == "prefill").collect();
    assert_eq!(prefills.len(), 3, "{ours:?}");
    for w in &prefills {
        assert_eq!(w.status, "valid", "{w:?}");
        let idle = w.idle_power_w.unwrap();
        assert!((idle - IDLE_W).abs() < 0.5, "idle {idle}: {w:?}");
        let mean = w.mean_power_w.unwrap();
        assert!((mean - BUSY_W).abs() < 0.5, "mean {mean}: {w:?}");
        // (busy - idle) x the window's own duration, 200 ms slept.
        let j = w.energy_j.unwrap();
        let seconds = j / (mean - idle);
        assert!(
            (0.19..0.35).contains(&seconds),
            "{j} J over {seconds} s: {w:?}"
        );
    }
    for w in ours.iter().filter(|e| e.phase == "decode") {
        assert_eq!(w.status, "no_data", "{w:?}");
        assert_eq!(w.reason.as_deref(), Some("too_short"), "{w:?}");
    }
    let checks = object_json(&ws, &output(&ws, "validate", "checks"));
    let checks = checks["checks"].as_array().unwrap();
    assert_eq!(check(checks, cell, "gpu_exclusive")["passed"], true);
    // (The fake's tokens differ from candle's: its runs are degraded for
    // that, never for the GPU.)
    let validation: Vec<ValidationRow> = table(&ws, "validate", "validation");
    assert!(
        validation
            .iter()
            .filter(|v| v.cell == cell)
            .all(|v| !v.reasons.contains("gpu_shared")),
        "{validation:?}"
    );

    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(
        md.contains("`nvml:Fake GPU H100:energy` for gpu/llama/s"),
        "{md}"
    );
    assert!(md.contains("### GPUs"), "{md}");
    let row = md
        .lines()
        .find(|l| l.starts_with("| gpu/llama/s | Fake GPU H100 (GPU-00000000-fake)"))
        .unwrap_or_else(|| panic!("no GPU row in {md}"));
    assert!(
        row.contains("| 550.54.15 / CUDA 12.4 | 81559 | 700 | 1980/2619 -> 1980/2619 |"),
        "{row}"
    );
    assert!(row.ends_with("| none |"), "{row}");
}

/// Another process with a compute context on the GPU while the cell ran:
/// `gpu_exclusive` fails naming it, and every run of the cell is degraded
/// (`gpu_shared:<pid>`), kept rather than failed.
#[test]
fn a_gpu_shared_with_another_process_degrades_the_cell() {
    // PID 1 is another process of this namespace; 4000000 is in none that
    // /proc shows (a container whose driver reports host PIDs).
    let Some(ws) = run_on_fake_gpu(&[(1, 2048), (4_000_000, 512)]) else {
        return;
    };
    let cell = "gpu/llama/s";
    let m = manifest(&ws, cell);
    assert_eq!(
        m["gpu"]["other_processes"],
        json!([{ "pid": 1, "used_mib": 2048 }])
    );
    assert_eq!(
        m["gpu"]["unresolved_processes"],
        json!([{ "pid": 4_000_000, "used_mib": 512 }])
    );
    let checks = object_json(&ws, &output(&ws, "validate", "checks"));
    let checks = checks["checks"].as_array().unwrap();
    let c = check(checks, cell, "gpu_exclusive");
    assert_eq!(c["passed"], false, "{c}");
    let detail = c["detail"].as_str().unwrap();
    assert!(
        detail.contains("shared with process(es) 1 ") && detail.contains("4000000 are outside"),
        "{c}"
    );
    let validation: Vec<ValidationRow> = table(&ws, "validate", "validation");
    let runs: Vec<&ValidationRow> = validation.iter().filter(|v| v.cell == cell).collect();
    assert_eq!(runs.len(), 3);
    for v in runs {
        assert_eq!(v.status, "degraded", "{v:?}");
        assert!(v.reasons.contains("gpu_shared:1"), "{v:?}");
    }
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(
        md.contains("| pid 1 (2048 MiB); outside this PID namespace: pid 4000000 (512 MiB) |"),
        "{md}"
    );
}

/// A spec that asks RAPL of a GPU cell, or NVML of a CPU cell, is refused
/// at check, at `energy.sensor`.
#[test]
fn a_sensor_of_the_other_device_is_refused() {
    for (sensor, named) in [("rapl", "gpu (cuda:0)"), ("nvml", "candle (cpu)")] {
        let ws = Workspace::with_spec(&spec(
            "{ name: s, prompt_tokens: 4, batch: 1, gen_tokens: 2 }",
            "  - { name: gpu, kind: python, device: \"cuda:0\", threads: 1, python: { interpreter: /bin/false } }",
        ));
        ws.edit(
            "validate:",
            &format!("energy: {{ poll_ms: 50, idle_ms: 500, sensor: {sensor} }}\nvalidate:"),
        );
        let out = crate::support::assay(&["check", ws.spec.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        let line = err
            .lines()
            .find(|l| l.contains(&format!("sensor {sensor} measures")))
            .unwrap_or_else(|| panic!("{sensor}: {err}"));
        assert!(line.contains(named), "{line}");
        let spec_line = std::fs::read_to_string(&ws.spec)
            .unwrap()
            .lines()
            .position(|l| l.starts_with("energy:"))
            .unwrap()
            + 1;
        assert!(line.contains(&format!(":{spec_line}:")), "{line}");
    }
}
