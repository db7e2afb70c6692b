//! `assay trace CLAIM_ID`: claim -> source artifact rows -> summary rows ->
//! raw event rows -> measuring manifest -> spec. Every hop names a digest.

use std::collections::BTreeSet;
use std::path::Path;

use assay_report::{Claim, ReportJson, SPEC_SOURCE};
use assay_store::{Digest, LockEntry, Lockfile, Store, table};
use serde_json::{Value, json};

use super::print_json;
use super::target::{Planned, load_planned};
use crate::cli::{CliError, CmdResult, EXIT_OK, StoreArg};
use crate::spec::{LoadedSpec, Purpose, Target};

fn rows_of(store: &Store, digest: &Digest) -> Result<Vec<Value>, CliError> {
    let bytes = store.get(digest)?;
    let batch = table::from_parquet(&bytes)?;
    Ok(table::to_json_rows(&batch)?)
}

fn field<'a>(row: &'a Value, name: &str) -> Option<&'a str> {
    row.get(name).and_then(Value::as_str)
}

/// Compress sorted indices into `a-b` ranges for display.
fn ranges(idx: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < idx.len() {
        let start = idx[i];
        let mut end = start;
        while i + 1 < idx.len() && idx[i + 1] == end + 1 {
            i += 1;
            end = idx[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

pub fn trace(claim_id: &str, spec_path: &Path, store_arg: &StoreArg, json_out: bool) -> CmdResult {
    let planned = load_planned(spec_path, Purpose::Read)?;
    let lock_path = planned.lock_path();
    let lock = Lockfile::read(&lock_path)?.ok_or_else(|| {
        CliError::usage(format!(
            "{}: no lockfile; run the spec first",
            lock_path.display()
        ))
    })?;
    let store = Store::open_existing(planned.store_dir(store_arg))?;
    let report_node = planned.report_node();
    let (report_entry, report_digest, report) = read_report(&store, &lock, report_node)?;
    let claim = find_claim(&report, claim_id, &report_digest, spec_path)?;

    if lock.spec_digest != planned.target.digest() {
        eprintln!(
            "assay: warning: {} changed since {} was written; this traces the last run, not the current spec",
            spec_path.display(),
            lock_path.display()
        );
    }
    let (member, chain) = match &planned.target {
        Target::Spec(s) => (Value::Null, chain_for(claim, &store, &lock, &[s.as_ref()])?),
        Target::Program(_) => program_chain(&planned, claim, &store, &lock)?,
    };
    let out = json!({
        "claim": claim,
        "report": { "node": report_node, "key": report_entry.key, "artifact": "report.json", "digest": report_digest },
        "member": member,
        "chain": chain,
        "spec": { "path": spec_path.display().to_string(), "digest": planned.target.digest(), "lockfile": lock_path.display().to_string() },
    });
    if json_out {
        print_json(&out);
        return Ok(EXIT_OK);
    }
    print_trace(claim, report_node, report_entry, &report_digest, &out);
    crate::outln!(
        "spec      {}  digest {}",
        spec_path.display(),
        planned.target.digest()
    );
    Ok(EXIT_OK)
}

/// The lockfile entry, digest and content of a report node's report.json.
fn read_report<'l>(
    store: &Store,
    lock: &'l Lockfile,
    node: &str,
) -> Result<(&'l LockEntry, Digest, ReportJson), CliError> {
    let entry = lock
        .nodes
        .get(node)
        .ok_or_else(|| CliError::usage(format!("the lockfile has no {node} node")))?;
    let digest = *entry
        .outputs
        .get("report.json")
        .ok_or_else(|| CliError::usage(format!("the {node} node has no report.json")))?;
    let report: ReportJson = serde_json::from_slice(&store.get(&digest)?)
        .map_err(|e| CliError::failed(format!("report.json {}: {e}", digest.short())))?;
    Ok((entry, digest, report))
}

/// A conclusive-report claim: the member report claim it quotes, traced
/// in the member's own lockfile view down to raw rows and manifests; a
/// count over member artifact rows ends at those rows.
fn program_chain(
    planned: &Planned,
    claim: &Claim,
    store: &Store,
    lock: &Lockfile,
) -> Result<(Value, Vec<Value>), CliError> {
    let src = &claim.source;
    let member = planned
        .members
        .iter()
        .find(|m| m.program_id(&planned.plan, "report") == Some(src.node.as_str()));
    let (Some(member), "report.json") = (member, src.artifact.as_str()) else {
        let hop = json!({
            "hop": "source", "node": src.node, "key": src.key,
            "artifact": src.artifact, "digest": src.digest, "rows": ranges(&src.rows.iter().map(|&r| r as usize).collect::<Vec<_>>()),
        });
        return Ok((Value::Null, vec![hop]));
    };
    let view = Lockfile {
        nodes: planned.member_view(member, &lock.nodes),
        ..lock.clone()
    };
    let (_, digest, report) = read_report(store, &view, "report")?;
    let index = src.rows.first().copied().unwrap_or(0) as usize;
    let member_claim = report.claims.get(index).ok_or_else(|| {
        CliError::failed(format!(
            "{}: report.json {} has no claim {index}",
            member.id,
            digest.short()
        ))
    })?;
    let specs: Vec<&LoadedSpec> = match &planned.target {
        Target::Program(p) => p.members.iter().collect(),
        Target::Spec(s) => vec![s.as_ref()],
    };
    let chain = chain_for(member_claim, store, &view, &specs)?;
    let about =
        json!({ "id": member.id, "report": src.node, "digest": digest, "claim": member_claim });
    Ok((about, chain))
}

/// The claim named `claim_id`, or a usage error that suggests its
/// nearest neighbours.
fn find_claim<'a>(
    report: &'a ReportJson,
    claim_id: &str,
    report_digest: &Digest,
    spec_path: &Path,
) -> Result<&'a Claim, CliError> {
    if let Some(claim) = report.claims.iter().find(|c| c.id == claim_id) {
        return Ok(claim);
    }
    // Suggest the claims that share the longest leading run of path
    // segments with what was asked for.
    let shared = |id: &str| {
        id.split('/')
            .zip(claim_id.split('/'))
            .take_while(|(a, b)| a == b)
            .count()
    };
    let best = report
        .claims
        .iter()
        .map(|c| shared(&c.id))
        .max()
        .unwrap_or(0);
    let similar: Vec<&str> = report
        .claims
        .iter()
        .filter(|c| best > 0 && shared(&c.id) == best)
        .take(8)
        .map(|c| c.id.as_str())
        .collect();
    let hint = if similar.is_empty() {
        format!(
            "report.json has {} claims; list them with `assay show {} --spec {}`",
            report.claims.len(),
            report_digest.short(),
            spec_path.display()
        )
    } else {
        format!("did you mean:\n  {}", similar.join("\n  "))
    };
    Err(CliError::usage(format!(
        "no claim {claim_id:?} in the report; {hint}"
    )))
}

/// The human-readable trace: the claim, its report, then one block per hop.
fn print_trace(
    claim: &Claim,
    report_node: &str,
    report_entry: &LockEntry,
    report_digest: &Digest,
    out: &Value,
) {
    crate::outln!("claim     {}", claim.id);
    crate::outln!("          {}", claim.statement);
    crate::outln!(
        "          value {} {} ({})",
        claim.value,
        claim.unit,
        claim.evidence
    );
    crate::outln!(
        "report    node {report_node}  key {}  report.json {}",
        report_entry.key.short(),
        report_digest
    );
    let member = &out["member"];
    if let Some(id) = member["id"].as_str() {
        crate::outln!(
            "member    {id}  node {}  report.json {}",
            member["report"].as_str().unwrap_or(""),
            member["digest"].as_str().unwrap_or("")
        );
        crate::outln!(
            "          claim {}",
            member["claim"]["id"].as_str().unwrap_or("")
        );
    }
    for hop in out["chain"].as_array().into_iter().flatten() {
        let label = hop["hop"].as_str().unwrap_or("");
        crate::outln!(
            "{:<9} node {}  key {}  {} {}",
            label,
            hop["node"].as_str().unwrap_or(""),
            hop["key"].as_str().map_or("?", |k| &k[..12.min(k.len())]),
            hop["artifact"].as_str().unwrap_or(""),
            hop["digest"].as_str().unwrap_or("")
        );
        if let Some(rows) = hop["rows"].as_str() {
            crate::outln!("          rows {rows}");
        }
        if let Some(detail) = hop["detail"].as_str() {
            crate::outln!("          {detail}");
        }
        for row in hop["row_values"].as_array().into_iter().flatten() {
            crate::outln!(
                "          {}",
                serde_json::to_string(row).unwrap_or_default()
            );
        }
    }
}

/// What every hop past the source needs: where to read rows, the run's
/// nodes, and the claim the chain is for.
struct ChainCtx<'a> {
    claim: &'a Claim,
    store: &'a Store,
    lock: &'a Lockfile,
}

impl ChainCtx<'_> {
    fn key_of(&self, node: &str) -> Option<String> {
        self.lock.nodes.get(node).map(|e| e.key.to_hex())
    }
}

/// The hops of a claim: the spec field it states, or the artifact rows
/// down to raw events and manifests.
fn chain_for(
    claim: &Claim,
    store: &Store,
    lock: &Lockfile,
    specs: &[&LoadedSpec],
) -> Result<Vec<Value>, CliError> {
    if claim.source.node == SPEC_SOURCE {
        return Ok(vec![spec_hop(claim, specs)]);
    }
    build_chain(claim, store, lock)
}

/// A number the spec states (or derives from one field): the field and
/// its value in the spec now. The claim cites the digest of the value the
/// report read (`assay_report::spec_field_digest`); a spec that states
/// another value now has changed since the report was written.
fn spec_hop(claim: &Claim, specs: &[&LoadedSpec]) -> Value {
    let src = &claim.source;
    let path = src.field.as_deref().unwrap_or("");
    let stated: Vec<(&LoadedSpec, Value)> = specs
        .iter()
        .filter_map(|s| Some((*s, spec_field(&s.text, path)?)))
        .collect();
    // The spec whose value matches the cited digest, else the first that
    // states the field at all.
    let found = stated
        .iter()
        .find(|(_, v)| assay_report::spec_field_digest(v) == src.digest)
        .map(|(s, v)| (s, v, true))
        .or_else(|| stated.first().map(|(s, v)| (s, v, false)));
    let detail = match found {
        Some((s, v, true)) => format!("{}: {path} = {v}", s.path.display()),
        Some((s, v, false)) => format!(
            "{}: {path} = {v} now, not the value the claim cites (digest {}): the spec changed since the report was written",
            s.path.display(),
            &src.digest[..12.min(src.digest.len())]
        ),
        None => format!("{path} is not set in the spec: its default applies"),
    };
    json!({
        "hop": "field",
        "node": src.node,
        "key": src.key,
        "artifact": src.artifact,
        "digest": src.digest,
        "field": path,
        "value": found.map(|(_, v, _)| v.clone()),
        "detail": detail,
    })
}

/// The value at a dotted path (`cost.request_mix.0.share`) of a spec's
/// YAML text; None where the path does not lead to a value.
fn spec_field(text: &str, path: &str) -> Option<Value> {
    let mut v: Value = serde_saphyr::from_str(text).ok()?;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        v = match part.parse::<usize>() {
            Ok(i) if v.is_array() => v.get(i)?.clone(),
            _ => v.get(part)?.clone(),
        };
    }
    Some(v)
}

fn build_chain(claim: &Claim, store: &Store, lock: &Lockfile) -> Result<Vec<Value>, CliError> {
    let cx = ChainCtx { claim, store, lock };
    let (source, picked) = source_hop(&cx)?;
    let mut chain = vec![source];

    // Which (cell, phase) pairs the claim rests on.
    let summary_digest = lock
        .nodes
        .get("summarise")
        .and_then(|e| e.outputs.get("summary"))
        .copied();
    let cells = claimed_cells(&cx, &picked, summary_digest)?;

    if claim.source.artifact != "summary"
        && let Some(sd) = summary_digest
        && let Some(hop) = summary_hop(&cx, &sd, &cells)?
    {
        chain.push(hop);
    }

    let ok_runs = validated_ok_runs(&cx)?;
    // A fit of summed decode time rests on the e2e summary rows (where that
    // sum lives) but on the decode steps among the raw events.
    let summed_decode = claim.id.contains("decode_total_ms");
    // `energy/` figures, and the `energy_idle/` and `energy_interval/`
    // claims beside them.
    let energy_claim = claim.id.starts_with("energy");
    let energy_rows = match lock
        .nodes
        .get("validate")
        .and_then(|e| e.outputs.get("energy"))
    {
        Some(d) if energy_claim => Some(EnergyRows {
            validate_key: lock.nodes["validate"].key,
            digest: *d,
            rows: rows_of(store, d)?,
        }),
        _ => None,
    };
    for (cell, phase) in &cells {
        let node = format!("measure/{cell}");
        let Some(entry) = lock.nodes.get(&node) else {
            continue;
        };
        let phase = &match phase.as_deref() {
            Some("e2e") if summed_decode => Some("decode".to_string()),
            _ => phase.clone(),
        };
        let run = CellRun {
            cell,
            node: &node,
            entry,
            phase: phase.as_deref(),
            ok_runs: &ok_runs,
        };
        // Energy claims: the gated windows, then the samples they came from.
        if let (Some(energy), Some(p)) = (&energy_rows, run.phase) {
            energy_hops(&cx, &run, energy, p, &mut chain)?;
        }
        if let Some(events) = entry.outputs.get("events") {
            chain.push(raw_hop(&cx, &run, events)?);
        }
        if let Some(manifest) = entry.outputs.get("manifest") {
            manifest_hops(&cx, &run, manifest, &mut chain)?;
        }
    }
    // A roofline claim also rests on the machine's measured bandwidth.
    if claim.id.starts_with("roofline/")
        && let Some(entry) = lock.nodes.get("bandwidth/cpu")
        && let Some(digest) = entry.outputs.get("bandwidth")
    {
        chain.push(json!({
            "hop": "bandwidth",
            "node": "bandwidth/cpu",
            "key": entry.key,
            "artifact": "bandwidth",
            "digest": digest,
            "detail": "STREAM-style copy of this machine, the roofline's denominator",
        }));
    }
    Ok(chain)
}

/// The first hop: the rows of the artifact the claim cites, and those rows.
fn source_hop(cx: &ChainCtx) -> Result<(Value, Vec<Value>), CliError> {
    let src = &cx.claim.source;
    let src_digest: Digest = src.digest.parse().map_err(CliError::from)?;
    // A claim on a whole JSON artifact (a manifest) cites no rows.
    let src_rows = if src.rows.is_empty() {
        Vec::new()
    } else {
        rows_of(cx.store, &src_digest)?
    };
    let picked: Vec<Value> = src
        .rows
        .iter()
        .filter_map(|r| src_rows.get(*r as usize).cloned())
        .collect();
    let hop = json!({
        "hop": src.artifact,
        "node": src.node,
        // The key the report recorded; the report's own key covers it, so
        // it matches the lockfile whenever the report is current.
        "key": src.key,
        "artifact": src.artifact,
        "digest": src.digest,
        "rows": ranges(&src.rows.iter().map(|r| *r as usize).collect::<Vec<_>>()),
        "row_values": picked,
    });
    Ok((hop, picked))
}

/// The (cell, phase) pairs the picked source rows rest on, sorted and
/// deduplicated.
fn claimed_cells(
    cx: &ChainCtx,
    picked: &[Value],
    summary_digest: Option<Digest>,
) -> Result<Vec<(String, Option<String>)>, CliError> {
    let mut cells: Vec<(String, Option<String>)> = Vec::new();
    for row in picked {
        if let Some(cell) = field(row, "cell") {
            cells.push((cell.to_string(), field(row, "phase").map(str::to_string)));
        } else if let (Some(backend), Some(scenario), Some(sd)) = (
            field(row, "backend"),
            field(row, "scenario"),
            summary_digest,
        ) {
            // A fit row: every summary row it fitted: that backend, its
            // scenario(s) (`+`-joined for linear fits), its model if it has
            // one, at the fitted phase.
            let phase = match field(row, "y") {
                Some("prefill_ms") => "prefill",
                Some("ttft_ms") => "ttft",
                Some("e2e_ms") | Some("decode_total_ms") => "e2e",
                _ => "decode",
            };
            let scenarios: Vec<&str> = scenario.split('+').collect();
            let model = field(row, "model").filter(|m| !m.is_empty());
            for s in rows_of(cx.store, &sd)? {
                if field(&s, "backend") == Some(backend)
                    && field(&s, "scenario").is_some_and(|sc| scenarios.contains(&sc))
                    && (model.is_none() || field(&s, "model") == model)
                    && field(&s, "phase") == Some(phase)
                    && let Some(c) = field(&s, "cell")
                {
                    cells.push((c.to_string(), Some(phase.to_string())));
                }
            }
        }
    }
    cells.sort();
    cells.dedup();
    Ok(cells)
}

/// The summary rows of the claimed cells, if any match.
fn summary_hop(
    cx: &ChainCtx,
    sd: &Digest,
    cells: &[(String, Option<String>)],
) -> Result<Option<Value>, CliError> {
    let rows = rows_of(cx.store, sd)?;
    let idx: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            cells.iter().any(|(c, p)| {
                field(r, "cell") == Some(c) && (p.is_none() || field(r, "phase") == p.as_deref())
            })
        })
        .map(|(i, _)| i)
        .collect();
    if idx.is_empty() {
        return Ok(None);
    }
    Ok(Some(json!({
        "hop": "summary",
        "node": "summarise",
        "key": cx.key_of("summarise"),
        "artifact": "summary",
        "digest": sd,
        "rows": ranges(&idx),
        "row_values": idx.iter().map(|i| rows[*i].clone()).collect::<Vec<_>>(),
    })))
}

/// Steady-state runs that validated ok: the rows the summary really used.
fn validated_ok_runs(cx: &ChainCtx) -> Result<BTreeSet<(String, u64)>, CliError> {
    Ok(
        match cx
            .lock
            .nodes
            .get("validate")
            .and_then(|e| e.outputs.get("validation"))
        {
            Some(d) => rows_of(cx.store, d)?
                .iter()
                .filter(|r| field(r, "status") == Some("ok"))
                .filter_map(|r| Some((field(r, "cell")?.to_string(), r["repetition"].as_u64()?)))
                .collect(),
            None => Default::default(),
        },
    )
}

/// The phase of a cell's macro energy window (`assay_measure::energy`).
const MACRO_WINDOW: &str = assay_measure::energy::CELL_WINDOW;

/// The validate node's energy windows, read once for every cell.
struct EnergyRows {
    validate_key: Digest,
    digest: Digest,
    rows: Vec<Value>,
}

/// One measured cell the claim rests on, at the phase it is traced at.
struct CellRun<'a> {
    cell: &'a str,
    node: &'a str,
    entry: &'a LockEntry,
    phase: Option<&'a str>,
    ok_runs: &'a BTreeSet<(String, u64)>,
}

impl CellRun<'_> {
    /// A timed (not warm-up) row of a steady-state run that validated ok.
    fn steady_ok(&self, r: &Value) -> bool {
        r["warmup"] == Value::Bool(false)
            && r["repetition"]
                .as_u64()
                .is_some_and(|rep| self.ok_runs.contains(&(self.cell.to_string(), rep)))
    }
}

fn energy_hops(
    cx: &ChainCtx,
    run: &CellRun,
    energy: &EnergyRows,
    p: &str,
    chain: &mut Vec<Value>,
) -> Result<(), CliError> {
    let rows = &energy.rows;
    let idx: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            // A cell's macro window spans every steady run, whatever its
            // verdict.
            field(r, "cell") == Some(run.cell)
                && field(r, "phase") == Some(p)
                && (run.steady_ok(r) || p == MACRO_WINDOW)
        })
        .map(|(i, _)| i)
        .collect();
    let valid = idx
        .iter()
        .filter(|i| field(&rows[**i], "status") == Some("valid"))
        .count();
    chain.push(json!({
        "hop": "energy",
        "node": "validate",
        "key": energy.validate_key,
        "artifact": "energy",
        "digest": energy.digest,
        "rows": ranges(&idx),
        "detail": format!("{} {p} windows of steady ok runs, {valid} attributable, the rest no_data", idx.len()),
    }));
    if let Some(power) = run.entry.outputs.get("power") {
        let samples = rows_of(cx.store, power)?.len();
        chain.push(json!({
            "hop": "power",
            "node": run.node,
            "key": run.entry.key,
            "artifact": "power",
            "digest": power,
            "detail": format!("{samples} power samples of the cell (idle baseline included)"),
        }));
    }
    Ok(())
}

/// The cell's raw events at the traced phase.
fn raw_hop(cx: &ChainCtx, run: &CellRun, events: &Digest) -> Result<Value, CliError> {
    let rows = rows_of(cx.store, events)?;
    let idx: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| match run.phase {
            Some("load") => field(r, "phase") == Some("load"),
            // The macro window: every steady run's e2e event.
            Some(MACRO_WINDOW) => {
                field(r, "phase") == Some("e2e") && r["warmup"] == Value::Bool(false)
            }
            Some(p) => field(r, "phase") == Some(p) && run.steady_ok(r),
            None => true,
        })
        .map(|(i, _)| i)
        .collect();
    Ok(json!({
        "hop": "raw",
        "node": run.node,
        "key": run.entry.key,
        "artifact": "events",
        "digest": events,
        "rows": ranges(&idx),
        "detail": match run.phase {
            Some("load") => "the model-load event (timed once per cell, before any run)".to_string(),
            Some(MACRO_WINDOW) => format!("{} raw e2e events of the steady runs the cell's macro window spans", idx.len()),
            Some(p) => format!("{} raw events of phase {p}, steady-state runs that validated ok", idx.len()),
            None => format!("{} raw events", idx.len()),
        },
    }))
}

/// The cell's manifest (what was asked for, what ran, on which machine),
/// then the weights that ran.
fn manifest_hops(
    cx: &ChainCtx,
    run: &CellRun,
    manifest: &Digest,
    chain: &mut Vec<Value>,
) -> Result<(), CliError> {
    let m: Value = serde_json::from_slice(&cx.store.get(manifest)?).unwrap_or(Value::Null);
    let env = &m["environment"];
    let machine = if env.is_null() {
        "no machine: simulated (virtual clock)".to_string()
    } else {
        format!(
            "{} x{} cores, {} {}",
            env["cpu_model"].as_str().unwrap_or("?"),
            env["logical_cores"],
            env["os"].as_str().unwrap_or("?"),
            env["kernel"].as_str().unwrap_or("")
        )
    };
    chain.push(json!({
        "hop": "manifest",
        "node": run.node,
        "key": run.entry.key,
        "artifact": "manifest",
        "digest": manifest,
        "detail": format!(
            "evidence {}; requested {} {} x{}; ran {} {} x{} ({} {}); {}",
            m["evidence"].as_str().unwrap_or("?"),
            m["requested"]["device"].as_str().unwrap_or("?"), m["requested"]["dtype"].as_str().unwrap_or("?"), m["requested"]["threads"],
            m["actual"]["device"].as_str().unwrap_or("?"), m["actual"]["dtype"].as_str().unwrap_or("?"), m["actual"]["threads"],
            m["actual"]["library"].as_str().unwrap_or("?"), m["actual"]["library_version"].as_str().unwrap_or("?"),
            machine
        ),
    }));
    // The weights that ran: the prepare (or GGUF export) node that made them.
    let w = &m["weights"];
    if !w.is_null() {
        let model = m["model"].as_str().unwrap_or("?");
        // The node whose stored output is the file that ran (a
        // prepare or export node); a local model's own file was
        // hashed by its prepare node.
        let blake = w["weights_blake3"].as_str().unwrap_or("");
        let producer = cx
            .lock
            .nodes
            .iter()
            .find(|(id, e)| {
                (id.starts_with("prepare/") || id.starts_with("export/"))
                    && e.outputs.values().any(|d| d.to_hex() == blake)
            })
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| format!("prepare/{model}"));
        chain.push(json!({
            "hop": "weights",
            "node": producer,
            "key": cx.key_of(&producer),
            "artifact": w["weights_format"],
            "digest": w["weights_blake3"],
            "detail": format!(
                "{} model, {} {}, model digest {}",
                w["source"].as_str().unwrap_or("?"),
                w["weights_format"].as_str().unwrap_or("?"),
                w["stored_dtype"].as_str().unwrap_or("?"),
                w["model_digest"].as_str().unwrap_or("?")
            ),
        }));
    }
    Ok(())
}
