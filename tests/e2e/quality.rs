//! Quality and cost per successful outcome (Appendices Z.2, BE, AM rule 8)
//! through the real binary on the simulated fixture: an external counts
//! file read at load time, the `quality` node and its tables, the report's
//! section and claims, located errors for a bad counts file, and what an
//! edited counts file reruns.

use std::collections::BTreeMap;

use assay_analysis::quality::{QualityRow, RoutedRow, TierRow};
use assay_core::tables;
use serde_json::Value;

use crate::support::{Workspace, assay};

/// The counts: tiny succeeds least often, mid most.
const COUNTS: &str = "\
{\"model\": \"tiny\", \"successes\": 52, \"trials\": 100, \"evaluator\": \"exact-match\", \"evaluator_version\": \"3\"}
{\"model\": \"small\", \"successes\": 61, \"trials\": 100, \"evaluator\": \"exact-match\", \"evaluator_version\": \"3\"}

{\"model\": \"mid\", \"successes\": 97, \"trials\": 100, \"evaluator\": \"exact-match\", \"evaluator_version\": \"3\"}
";

const OUTPUTS: &str = "outputs: { dir: reports/e2e";

/// The fixture with a `quality` section reading `quality.jsonl`, written
/// with `counts`.
fn with_quality(counts: &str) -> Workspace {
    let ws = Workspace::new();
    add_quality(&ws, counts);
    ws
}

fn add_quality(ws: &Workspace, counts: &str) {
    std::fs::write(ws.path().join("quality.jsonl"), counts).unwrap();
    ws.edit(
        OUTPUTS,
        &format!("quality: {{ file: quality.jsonl }}\n{OUTPUTS}"),
    );
}

fn object(ws: &Workspace, digest: &str) -> Vec<u8> {
    std::fs::read(ws.store().join("objects").join(&digest[..2]).join(digest)).unwrap()
}

/// The digest of an output of a node, from the lockfile.
fn output(ws: &Workspace, node: &str, name: &str) -> String {
    let lock: Value = serde_json::from_slice(&std::fs::read(ws.lock_path()).unwrap()).unwrap();
    lock["nodes"][node]["outputs"][name]
        .as_str()
        .unwrap_or_else(|| panic!("{node} has no output {name}"))
        .to_string()
}

fn rows<T: serde::de::DeserializeOwned>(ws: &Workspace, name: &str) -> Vec<T> {
    tables::from_parquet(&object(ws, &output(ws, "quality", name))).unwrap()
}

fn claims(ws: &Workspace) -> BTreeMap<String, Value> {
    let json: Value = serde_json::from_slice(&ws.report("report.json")).unwrap();
    json["claims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_string(), c.clone()))
        .collect()
}

fn claim<'a>(claims: &'a BTreeMap<String, Value>, id: &str) -> &'a Value {
    claims.get(id).unwrap_or_else(|| panic!("no claim {id}"))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn cost_per_success_decides_between_models_with_claims_and_reruns_only_quality() {
    // Without quality data the report chooses no model, and says why. The
    // volume is raised so that the cheapest model needs several workers
    // (AM rule 8's large volume).
    let ws = Workspace::new();
    ws.edit("tokens_per_month: 1.0e9", "tokens_per_month: 1.0e12");
    ws.run(&[]);
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(
        md.contains("No `quality` section in the spec: this report does not choose between models"),
        "{md}"
    );

    // Adding the section plans the quality node over the stored summary:
    // no measurement reruns.
    add_quality(&ws, COUNTS);
    let result = ws.run(&[]);
    assert_eq!(
        sorted(Workspace::nodes_with(&result, "ran")),
        ["quality", "report"],
        "{result}"
    );
    let blake3 = blake3::hash(COUNTS.as_bytes()).to_hex().to_string();
    let quality: Vec<QualityRow> = rows(&ws, "quality");
    let tiers: Vec<TierRow> = rows(&ws, "tiers");
    let routed: Vec<RoutedRow> = rows(&ws, "routed");
    // 3 models x 2 scenarios x 2 pricing tiers, each cell with counts.
    assert_eq!(quality.len(), 12);
    assert!(quality.iter().all(|r| r.counts_blake3 == blake3));
    let claims = claims(&ws);
    let quality_digest = output(&ws, "quality", "quality");
    for (i, r) in quality.iter().enumerate() {
        // The price of a request is the cost stage's mix price.
        let mix = claim(
            &claims,
            &format!("requests/{}/{}/mix/usd_per_1k", r.cell, r.tier),
        )["value"]
            .as_f64()
            .unwrap();
        assert!(
            (mix - r.usd_per_1k_requests).abs() <= 1e-9 * mix,
            "{mix} vs {}",
            r.usd_per_1k_requests
        );
        let per = r.usd_per_1k_successes.unwrap();
        assert!((per - r.usd_per_1k_requests / r.success_rate).abs() <= 1e-9 * per);
        assert!(r.usd_per_1k_successes_low <= per && per <= r.usd_per_1k_successes_high.unwrap());
        // Every number is a claim citing this row of the quality table and
        // the counts file's digest.
        let c = claim(
            &claims,
            &format!("quality/{}/{}/usd_per_1k_successes", r.cell, r.tier),
        );
        assert_eq!(c["value"].as_f64().unwrap(), per);
        assert_eq!(c["source"]["node"], "quality");
        assert_eq!(c["source"]["artifact"], "quality");
        assert_eq!(c["source"]["digest"], quality_digest.as_str());
        assert_eq!(c["source"]["rows"], serde_json::json!([i]));
        assert_eq!(c["evidence"], "simulated");
        assert!(c["statement"].as_str().unwrap().contains(&blake3), "{c}");
    }
    let rate = claim(&claims, "quality/mid/success_rate");
    assert_eq!(rate["value"].as_f64().unwrap(), 0.97);
    assert!(rate["statement"].as_str().unwrap().contains(&blake3));

    // One decision per scenario and pricing tier, by the rule: the leader
    // is the cheapest per success, chosen only with its interval wholly
    // below every other's; simulated costs never decide.
    assert_eq!(tiers.len(), 4);
    for t in &tiers {
        assert!(!t.decides, "{t:?}");
        let cands: Vec<&QualityRow> = t
            .candidate_rows
            .iter()
            .map(|&j| &quality[j as usize])
            .collect();
        assert_eq!(cands.len(), 3);
        assert!(
            cands
                .iter()
                .all(|c| c.scenario == t.scenario && c.tier == t.tier)
        );
        assert!(
            cands.windows(2).all(|w| {
                w[0].usd_per_1k_successes.unwrap() <= w[1].usd_per_1k_successes.unwrap()
            })
        );
        let lead = cands[0];
        let disjoint = cands[1..]
            .iter()
            .all(|o| lead.usd_per_1k_successes_high.unwrap() < o.usd_per_1k_successes_low);
        assert_eq!(t.verdict == "choose", disjoint, "{t:?}");
        if disjoint {
            assert_eq!(t.model.as_deref(), Some(lead.model.as_str()));
            let better = cands[1..].iter().any(|o| o.success_low > lead.success_high);
            let tier = better && lead.workers_required > 1;
            assert_eq!(t.routing == "tier", tier, "{t:?}");
            let c = claim(
                &claims,
                &format!("tiers/{}/{}/workers_required", t.scenario, t.tier),
            );
            assert_eq!(c["value"].as_f64().unwrap(), lead.workers_required as f64);
        } else {
            assert_eq!((t.model.as_ref(), t.routing.as_str()), (None, "none"));
        }
        let c = claim(
            &claims,
            &format!(
                "tiers/{}/{}/leader_usd_per_1k_successes",
                t.scenario, t.tier
            ),
        );
        assert_eq!(
            c["value"].as_f64().unwrap(),
            lead.usd_per_1k_successes.unwrap()
        );
    }
    // On these simulated numbers the batch scenario's leader, tiny, is
    // chosen at both pricing tiers and needs several workers, and mid
    // succeeds more often with disjoint intervals: a tier.
    for t in tiers.iter().filter(|t| t.scenario == "batch") {
        assert_eq!(
            (t.verdict.as_str(), t.model.as_deref(), t.routing.as_str()),
            ("choose", Some("tiny"), "tier"),
            "{t:?}"
        );
        assert_eq!(t.escalate_model.as_deref(), Some("mid"));
        assert!(t.workers_required > 1);
    }
    // The fixture's V.5 policy (0.8 tiny + 0.2 mid) priced per success.
    assert_eq!(routed.len(), 2);
    for r in &routed {
        assert!((r.success_rate - (0.8 * 0.52 + 0.2 * 0.97)).abs() < 1e-12);
        let c = claim(&claims, &format!("routed/{}/usd_per_1k_successes", r.tier));
        assert_eq!(
            c["value"].as_f64().unwrap(),
            r.usd_per_1k_successes.unwrap()
        );
    }
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    // Every number of the section's prose is backed (the rule of
    // `assay_report::backing`); its tables are quality rows.
    let report: assay_report::ReportJson =
        serde_json::from_slice(&ws.report("report.json")).unwrap();
    let unbacked = assay_report::backing::unbacked_numbers(&md, &report);
    assert!(unbacked.is_empty(), "{unbacked:?}");
    for text in [
        "## Quality and cost per successful outcome (Appendices Z.2, BE)",
        "### Model tier decision and routing (AM rule 8, Appendices Z.4, N.4)",
        "(simulated: not a decision)",
        &blake3,
    ] {
        assert!(md.contains(text), "no {text:?} in the report");
    }

    // An edited counts file reruns the quality node and the report only.
    std::fs::write(
        ws.path().join("quality.jsonl"),
        COUNTS.replace("\"successes\": 52", "\"successes\": 48"),
    )
    .unwrap();
    let result = ws.run(&[]);
    assert_eq!(
        sorted(Workspace::nodes_with(&result, "ran")),
        ["quality", "report"],
        "{result}"
    );
    let rate = claim(&self::claims(&ws), "quality/tiny/success_rate")["value"]
        .as_f64()
        .unwrap();
    assert_eq!(rate, 0.48);
}

/// `assay check`'s stderr, with exit 2.
fn check_fails(ws: &Workspace) -> String {
    let out = assay(&["check", ws.spec.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

/// The spec's line of `quality:` (1-based).
fn quality_line(ws: &Workspace) -> usize {
    let text = std::fs::read_to_string(&ws.spec).unwrap();
    1 + text
        .lines()
        .position(|l| l.starts_with("quality:"))
        .unwrap()
}

#[test]
fn a_malformed_counts_file_is_a_located_error() {
    let cases = [
        (
            COUNTS.replace("\"successes\": 61", "\"successes\": 161"),
            "quality.jsonl:2: field `successes`: 161 exceeds trials 100",
        ),
        (
            COUNTS.replace("\"trials\": 100, \"evaluator\": \"exact-match\", \"evaluator_version\": \"3\"}\n{\"model\": \"small\"", "\"trials\": \"all\"}\n{\"model\": \"small\""),
            "quality.jsonl:1: field `trials`: must be a whole number >= 0, not \"all\"",
        ),
        (
            COUNTS.replace("\"mid\"", "\"huge\""),
            "quality.jsonl:4: field `model`: \"huge\" is not a model of this spec (models: tiny, small, mid)",
        ),
        (
            COUNTS.replace("{\"model\": \"mid\"", "{\"model\": \"mid\", \"score\": 3"),
            "quality.jsonl:4: unknown field `score`",
        ),
    ];
    for (counts, message) in cases {
        let ws = with_quality(&counts);
        let stderr = check_fails(&ws);
        // At the spec's `file` field, naming the counts file, its line and
        // the field.
        let at = format!("spec.yaml:{}:", quality_line(&ws));
        assert!(
            stderr.contains(&at) && stderr.contains(message),
            "{at} {message}: {stderr}"
        );
    }
    // A file that is not there.
    let ws = with_quality(COUNTS);
    std::fs::remove_file(ws.path().join("quality.jsonl")).unwrap();
    assert!(check_fails(&ws).contains("cannot read the quality counts file quality.jsonl"));
}

#[test]
fn quality_needs_a_request_mix_to_price_a_success() {
    let ws = with_quality(COUNTS);
    let text = std::fs::read_to_string(&ws.spec).unwrap();
    let (from, to) = (
        text.find("  request_mix:").unwrap(),
        text.find("fit:").unwrap(),
    );
    std::fs::write(&ws.spec, format!("{}{}", &text[..from], &text[to..])).unwrap();
    let stderr = check_fails(&ws);
    assert!(
        stderr.contains(&format!("spec.yaml:{}:", quality_line(&ws)))
            && stderr.contains("quality needs `cost` with a `request_mix`"),
        "{stderr}"
    );
}
