//! Energy gating end to end (TR122): power sampled beside the measurement,
//! windows gated in validate, numbers only where the sensor resolves them.

use crate::support::*;

/// The simulated fixture with energy on. Simulated events last a few ms, so
/// 1 ms polling resolves long windows and leaves short ones without data.
fn energy_workspace(min_samples: u32) -> Workspace {
    let text = std::fs::read_to_string(FIXTURE).unwrap().replace(
        "fit:",
        &format!("energy: {{ poll_ms: 1, min_samples: {min_samples}, idle_ms: 20 }}\nfit:"),
    );
    let text = text.replace(
        "  burst_factor: 5\n",
        "  burst_factor: 5\n  energy: { usd_per_kwh: 0.15, carbon_g_per_kwh: 400 }\n",
    );
    Workspace::with_spec(&text)
}

fn claims(ws: &Workspace) -> Vec<serde_json::Value> {
    let json: serde_json::Value = serde_json::from_slice(&ws.report("report.json")).unwrap();
    json["claims"].as_array().unwrap().clone()
}

#[test]
fn short_windows_are_no_data_and_only_valid_windows_become_claims() {
    let ws = energy_workspace(3);
    ws.run(&[]);
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(md.contains("## Energy"), "{md}");
    assert!(md.contains("Sensor: simulated."));
    // Prefill lasts about a millisecond in the simulated model: never three
    // samples inside, so never a number.
    let all = claims(&ws);
    let energy_claims: Vec<&serde_json::Value> = all
        .iter()
        .filter(|c| c["id"].as_str().unwrap().starts_with("energy/"))
        .collect();
    assert!(!energy_claims.is_empty());
    assert!(
        energy_claims
            .iter()
            .all(|c| !c["id"].as_str().unwrap().contains("/prefill/")),
        "{energy_claims:?}"
    );
    assert!(md.contains("| prefill | 4 | 0 | no_data | no_data |"));
    for c in &energy_claims {
        assert!(c["value"].as_f64().unwrap() > 0.0, "{c}");
        assert_eq!(c["evidence"], "simulated");
    }
    // An energy claim traces through its gated windows to the samples.
    let id = energy_claims
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .find(|id| id.ends_with("/j_per_token"))
        .unwrap();
    let out = assay(&["trace", "--spec", ws.spec.to_str().unwrap(), "--json", id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hops: Vec<&str> = trace["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hop"].as_str().unwrap())
        .collect();
    for hop in ["summary", "energy", "power", "raw", "manifest"] {
        assert!(hops.contains(&hop), "no {hop} hop in {hops:?}");
    }
}

#[test]
fn changing_the_gate_regates_stored_samples_without_remeasuring() {
    let ws = energy_workspace(3);
    ws.run(&[]);
    let before = claims(&ws)
        .iter()
        .filter(|c| c["id"].as_str().unwrap().starts_with("energy/"))
        .count();
    ws.edit("min_samples: 3", "min_samples: 1000");
    let again = ws.run(&[]);
    let ran = Workspace::nodes_with(&again, "ran");
    assert!(ran.iter().all(|n| !n.starts_with("measure/")), "{ran:?}");
    assert_eq!(ran[0], "validate");
    let after = claims(&ws)
        .iter()
        .filter(|c| c["id"].as_str().unwrap().starts_with("energy/"))
        .count();
    assert!(before > 0);
    assert_eq!(
        after, 0,
        "no window has 1000 samples: no energy number at all"
    );
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(
        md.contains("Energy: 0 of 72 steady windows were attributable"),
        "{md}"
    );
}

#[test]
fn without_an_energy_section_the_report_says_why_there_is_none() {
    let ws = Workspace::new();
    ws.run(&[]);
    let md = String::from_utf8(ws.report("report.md")).unwrap();
    assert!(md.contains("No energy: the spec has no `energy` section"));
    assert!(
        claims(&ws)
            .iter()
            .all(|c| !c["id"].as_str().unwrap().starts_with("energy/"))
    );
}
