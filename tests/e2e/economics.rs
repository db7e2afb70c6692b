//! The cost stage's sensitivity (Appendix AV) through the real binary: the
//! `sensitivity` table, its report subsection and its claims.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::{Workspace, assay};

/// The simulated fixture with a second backend, `wide`, that pays more
/// overhead per forward pass but reads memory ten times faster: slower on
/// the tiny model, faster on the mid one. Routing more traffic to the mid
/// model can therefore change which backend serves the policy cheapest.
/// The volume is raised so that the fleets hold several workers and burst
/// moves them.
fn two_backends() -> Workspace {
    let ws = Workspace::new();
    ws.edit(
        "  - { name: sim, kind: simulated, simulated: { seed: 7, noise_cv: 0.05, outlier_rate: 0.02 } }",
        "  - { name: sim, kind: simulated, simulated: { seed: 7, noise_cv: 0.05, outlier_rate: 0.02 } }\n  \
         - { name: wide, kind: simulated, simulated: { seed: 7, noise_cv: 0.05, outlier_rate: 0.02, overhead_us: 300, memory_gbps: 200 } }",
    );
    ws.edit("tokens_per_month: 1.0e9", "tokens_per_month: 5.0e10");
    ws
}

fn claims(ws: &Workspace) -> BTreeMap<String, Value> {
    let json: Value = serde_json::from_slice(&ws.report("report.json")).unwrap();
    json["claims"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"].as_str().unwrap().starts_with("sensitivity/"))
        .map(|c| (c["id"].as_str().unwrap().to_string(), c.clone()))
        .collect()
}

fn value(claims: &BTreeMap<String, Value>, id: &str) -> f64 {
    claims.get(id).unwrap_or_else(|| panic!("no claim {id}"))["value"]
        .as_f64()
        .unwrap()
}

/// The rows of the Markdown sensitivity table, as cells.
fn table_rows(md: &str) -> Vec<Vec<String>> {
    let section = md
        .split("### Sensitivity (Appendix AV)")
        .nth(1)
        .expect("no sensitivity subsection");
    section
        .lines()
        .skip_while(|l| !l.starts_with("| decision |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn sensitivity_table_and_claims() {
    let ws = two_backends();
    ws.run(&[]);
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    let claims = claims(&ws);
    let rows = table_rows(&md);
    // configuration: baseline, 2 generation scales, 4 long-share shifts,
    // 4 burst factors, 2 tiers x 2 price scales = 15; routing: the same
    // plus 4 routing-share shifts = 19.
    let count = |d: &str| rows.iter().filter(|r| r[0] == d).count();
    assert_eq!((count("configuration"), count("routing")), (15, 19));
    // Every row's numbers are claims citing the cost node's sensitivity
    // table at that row, labelled simulated.
    for (i, r) in rows.iter().enumerate() {
        let id = format!("sensitivity/{}/{}/{}", r[0], r[1], r[2].replace(' ', "_"));
        for (field, col) in [("usd_per_1k", 4), ("workers", 5), ("usd_per_month", 6)] {
            let c = &claims[&format!("{id}/{field}")];
            assert_eq!(c["source"]["node"], "cost");
            assert_eq!(c["source"]["artifact"], "sensitivity");
            assert_eq!(c["source"]["rows"], serde_json::json!([i]));
            assert_eq!(c["evidence"], "simulated");
            let shown: f64 = r[col].parse().unwrap();
            let v = c["value"].as_f64().unwrap();
            assert!(
                (shown - v).abs() <= 1e-3 * v.abs().max(1e-3),
                "{id}/{field}: {shown} vs {v}"
            );
        }
    }
    assert!(md.contains("Simulated cells take part in these rankings"));
    // Price scaling never reorders the candidates within a tier (AV.3).
    for d in ["configuration", "routing"] {
        assert_eq!(
            value(&claims, &format!("sensitivity/{d}/tier_price/reorders")),
            0.0
        );
        assert!(
            rows.iter()
                .filter(|r| r[0] == d && r[1] == "tier_price")
                .all(|r| r[8] == "yes")
        );
        // Each factor's flip count is the table's count of "yes".
        for factor in ["request_length", "burst", "tier_price", "routing_shares"] {
            let yes = rows
                .iter()
                .filter(|r| r[0] == d && r[1] == factor && r[7] == "yes")
                .count();
            let id = format!("sensitivity/{d}/{factor}/flips");
            if let Some(c) = claims.get(&id) {
                assert_eq!(c["value"].as_f64().unwrap(), yes as f64, "{id}");
            }
        }
    }
    // Burst grows the routed fleet and never flips it on this data; the
    // multiplier claimed is the ratio of the two rows' fleet costs.
    let workers: Vec<f64> = [1, 2, 5, 10]
        .map(|b| {
            value(
                &claims,
                &format!("sensitivity/routing/burst/burst_{b}/workers"),
            )
        })
        .to_vec();
    assert!(
        workers.windows(2).all(|w| w[0] <= w[1]) && workers[3] > workers[0],
        "{workers:?}"
    );
    assert_eq!(value(&claims, "sensitivity/routing/burst/flips"), 0.0);
    let ratio = value(&claims, "sensitivity/routing/burst/burst_10/usd_per_month")
        / value(&claims, "sensitivity/routing/burst/burst_1/usd_per_month");
    assert!((value(&claims, "sensitivity/routing/burst/fleet_multiplier") - ratio).abs() < 1e-9);
    // Shifting traffic to the mid model hands the policy to `wide`.
    let flipped: Vec<&Vec<String>> = rows
        .iter()
        .filter(|r| r[1] == "routing_shares" && r[7] == "yes")
        .collect();
    assert!(!flipped.is_empty(), "no routing shift flips:\n{md}");
    assert!(
        flipped
            .iter()
            .all(|r| r[2].contains("share +") && r[3].starts_with("wide @"))
    );
    assert!(md.contains("Routing shares (AV.4) (routing): not robust on this simulated data"));
    // `assay trace` follows a sensitivity claim to its row.
    let out = assay(&[
        "trace",
        "sensitivity/routing/burst/burst_10/workers",
        "--spec",
        ws.spec.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"variation\":\"burst 10\""), "{text}");
}

#[test]
fn no_request_mix_no_sensitivity() {
    let ws = Workspace::new();
    let text = std::fs::read_to_string(&ws.spec).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !(l.contains("request_mix:") || l.contains("routing:") || l.contains("share:")))
        .collect();
    std::fs::write(&ws.spec, kept.join("\n")).unwrap();
    let result = ws.run(&[]);
    let cost = result["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "cost")
        .unwrap();
    assert!(cost["outputs"].get("sensitivity").is_none(), "{cost}");
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(!md.contains("Sensitivity (Appendix AV)"));
    assert!(claims(&ws).is_empty());
}
