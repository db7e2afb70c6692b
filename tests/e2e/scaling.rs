//! TR121's scaling report through the real binary on the simulated backend:
//! two architecture families of nine models each (a depth and a width
//! series of five sizes sharing their middle model), three boundaries. The
//! report must fit within each family and series, fit depth and width
//! together, and state the falsification test of every fit across the
//! boundary shifts; the pooled parameter-count fit across families backs
//! no claim (AN.4).

use serde_json::Value;

use crate::support::Workspace;

const SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/e2e/specs/scaling.yaml"
);

fn claims(report: &Value) -> Vec<&Value> {
    report["claims"].as_array().unwrap().iter().collect()
}

fn claim<'a>(report: &'a Value, id: &str) -> &'a Value {
    claims(report)
        .into_iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no claim {id}"))
}

#[test]
fn scaling_report_fits_within_families_series_and_across_boundary_shifts() {
    let ws = Workspace::with_spec(&std::fs::read_to_string(SPEC).unwrap());
    let r = ws.run(&[]);
    assert_eq!(r["failed"], 0, "{r}");
    let json: Value = serde_json::from_slice(&ws.report("report.json")).unwrap();
    let md = String::from_utf8(ws.report("report.md")).unwrap();

    // Pooled across llama and gpt2, parameter count is a regime descriptor:
    // no claim. Within each family it is a fitted, claimed exponent.
    assert!(
        claims(&json)
            .iter()
            .all(|c| c["id"] != "fit/sim/base/decode_ms_per_token~params/slope")
    );
    for family in ["llama-f32", "gpt2-f32"] {
        for scenario in ["base", "batch4", "gen32"] {
            let c = claim(
                &json,
                &format!("fit/sim/{scenario}/{family}/decode_ms_per_token~params/slope"),
            );
            let slope = c["value"].as_f64().unwrap();
            // The simulated latency is memory-bound on the weights: close to
            // proportional to parameters.
            assert!(slope > 0.5 && slope < 1.5, "{c}");
            assert_eq!(c["evidence"], "simulated");
        }
        // The depth series (5 sizes) and the width series (5 sizes).
        let depth = claim(
            &json,
            &format!(
                "fit/sim/base/{family}/depth-at-hidden-256/heads-4/decode_ms_per_token~layers/slope"
            ),
        );
        assert!(
            depth["statement"].as_str().unwrap().contains("n=5"),
            "{depth}"
        );
        assert!(depth["value"].as_f64().unwrap() > 0.0);
        let width = claim(
            &json,
            &format!(
                "fit/sim/base/{family}/width-at-layers-4/head-size-64/decode_ms_per_token~hidden/slope"
            ),
        );
        assert!(
            width["statement"].as_str().unwrap().contains("n=5"),
            "{width}"
        );
        // Width grows parameters quadratically, depth linearly.
        assert!(width["value"].as_f64().unwrap() > depth["value"].as_f64().unwrap());
        // Depth and width together: heads are aliased with width at a fixed
        // head size and left out, both coefficients identifiable.
        for x in ["hidden", "layers"] {
            let m = claim(
                &json,
                &format!(
                    "fit/sim/base/{family}/multivariate/decode_ms_per_token~hidden+layers/{x}/slope"
                ),
            );
            assert!(m["value"].as_f64().unwrap() > 0.0, "{m}");
            assert!(m["statement"].as_str().unwrap().contains("n=9"), "{m}");
        }
        // The falsification test of the within-family fits across the three
        // boundaries: the simulated relationship is the same under each.
        let t = claim(
            &json,
            &format!("fit/sim/{family}/decode_ms_per_token~params/shift"),
        );
        assert_eq!(t["value"], 3.0, "{t}");
        assert!(
            t["statement"].as_str().unwrap().ends_with(": held (AD.4)"),
            "{t}"
        );
    }
    let tested = claim(&json, "fit/shift/tested")["value"].as_f64().unwrap();
    let held = claim(&json, "fit/shift/held")["value"].as_f64().unwrap();
    assert!(
        tested >= 10.0 && held >= 1.0 && held <= tested,
        "{tested} {held}"
    );
    for heading in [
        "### Against model size (log-log)",
        "### Depth, width and heads series within a family (log-log)",
        "### Depth and width together (multivariate, log-log)",
        "### Boundary shifts as falsification tests",
    ] {
        assert!(md.contains(heading), "no {heading:?} in the report");
    }
    assert!(md.contains(&format!(
        "Of {tested} fits put to the test, {held} held under every boundary shift"
    )));
    // Every number of the scaling tables that backs a claim is in report.json
    // with the fit artifact as its source.
    let fit_claims: Vec<&Value> = claims(&json)
        .into_iter()
        .filter(|c| c["id"].as_str().unwrap().starts_with("fit/"))
        .collect();
    assert!(fit_claims.iter().all(|c| c["source"]["node"] == "fit"));
    // Within-family, series and multivariate fits get ids of their own.
    let mut ids: Vec<&str> = claims(&json)
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "claim ids repeat");
}
