//! The fit stage's tests: the original pooled and linear fits, then the
//! within-family, series, multivariate and falsification fits on synthetic
//! summaries with known exponents.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;

#[test]
fn gating_follows_rule_7() {
    assert!(!identifiable(5, 0.1, -0.2, 0.3));
    assert!(!identifiable(5, 0.1, f64::NAN, f64::NAN));
    assert!(!identifiable(2, 1.0, f64::NAN, f64::NAN)); // two points fit any line
    assert!(identifiable(5, 0.1, 0.05, 0.3)); // weak fit, but the CI excludes zero
    assert!(identifiable(5, 0.9, -0.1, 0.4)); // strong fit
}

#[test]
fn bootstrap_brackets_a_clean_slope_and_is_seeded() {
    let x: Vec<f64> = (1..=8).map(|v| f64::from(v).ln()).collect();
    let y: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, v)| 0.5 * v + 0.01 * (i % 3) as f64)
        .collect();
    let a = bootstrap_slope_ci(&x, &y, 500, &mut ChaCha8Rng::seed_from_u64(7));
    let b = bootstrap_slope_ci(&x, &y, 500, &mut ChaCha8Rng::seed_from_u64(7));
    assert_eq!(a.0.to_bits(), b.0.to_bits());
    assert!(a.0 <= 0.5 && 0.5 <= a.1 + 1e-3, "{a:?}");
    assert!(
        bootstrap_slope_ci(&x[..2], &y[..2], 10, &mut ChaCha8Rng::seed_from_u64(1))
            .0
            .is_nan()
    );
}

fn row(backend: &str, model: &str, scenario: &str, phase: &str) -> SummaryRow {
    SummaryRow {
        cell: format!("{backend}/{model}/{scenario}"),
        backend: backend.into(),
        model: model.into(),
        scenario: scenario.into(),
        phase: phase.into(),
        evidence: "measured".into(),
        device: "cpu".into(),
        dtype: "f32".into(),
        arch: "llama".into(),
        batch: 1,
        n: 5,
        ..Default::default()
    }
}

fn params(linear: bool) -> FitParams {
    FitParams {
        y: FitMetric::PrefillMs,
        x: Predictors::One(FitPredictor::Params),
        linear,
        bootstrap: Bootstrap {
            resamples: 200,
            seed: 0,
        },
    }
}

#[test]
fn linear_prefill_fit_recovers_ms_per_token_and_intercept() {
    // prefill = 2 ms + 0.05 ms per prompt token, exactly.
    let summary: Vec<SummaryRow> = [(8, "micro"), (128, "short"), (512, "long")]
        .into_iter()
        .map(|(prompt, sc)| SummaryRow {
            prompt_tokens: prompt,
            median_ms: 2.0 + 0.05 * f64::from(prompt),
            ..row("b", "m", sc, "prefill")
        })
        .collect();
    let rows = fit_all(&params(true), &summary, 1);
    let lin: Vec<&FitRow> = rows
        .iter()
        .filter(|r| r.form() == Some(FitForm::Linear))
        .collect();
    assert_eq!(lin.len(), 1);
    let r = lin[0];
    assert_eq!(
        (r.y.as_str(), r.x.as_str()),
        ("prefill_ms", "prompt_tokens")
    );
    assert_eq!(r.scenario, "long+micro+short");
    assert_eq!(r.boundary, "batch 1");
    assert!((r.slope - 0.05).abs() < 1e-12 && (r.intercept - 2.0).abs() < 1e-9);
    assert!(r.identifiable && r.regime == "increasing", "{r:?}");
}

#[test]
fn two_distinct_lengths_are_never_identifiable() {
    let summary: Vec<SummaryRow> = [(8, "a"), (128, "b"), (128, "c")]
        .into_iter()
        .map(|(prompt, sc)| SummaryRow {
            prompt_tokens: prompt,
            median_ms: 1.0 + f64::from(prompt),
            ..row("b", "m", sc, "prefill")
        })
        .collect();
    let rows = fit_all(&params(true), &summary, 1);
    let r = rows
        .iter()
        .find(|r| r.form() == Some(FitForm::Linear))
        .unwrap();
    assert!(!r.identifiable);
    assert_eq!(r.regime, "unidentifiable");
}

#[test]
fn a_regime_that_flips_across_scenarios_is_flagged_boundary_specific() {
    // Under `small`, latency grows with size; under `big` it falls.
    let mut summary = Vec::new();
    for (i, params) in [1.0e6, 1.0e7, 1.0e8].into_iter().enumerate() {
        for (sc, ms) in [("small", 1.0 + i as f64), ("big", 10.0 - 3.0 * i as f64)] {
            summary.push(SummaryRow {
                parameter_count: params as u64,
                median_ms: ms,
                ..row("b", &format!("m{i}"), sc, "prefill")
            });
        }
    }
    let rows = fit_all(&params(false), &summary, 1);
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert!(r.boundary_flip, "{r:?}");
        assert_eq!(r.boundary_note, "big: decreasing; small: increasing");
    }
    // Agreeing boundaries are not flagged.
    let agree: Vec<SummaryRow> = summary
        .iter()
        .filter(|s| s.scenario == "small")
        .cloned()
        .collect();
    assert!(
        fit_all(&params(false), &agree, 1)
            .iter()
            .all(|r| !r.boundary_flip)
    );
}

#[test]
fn mixed_families_are_heterogeneous_and_structural_predictors_fit_separately() {
    let mut summary = Vec::new();
    for (i, (arch, layers)) in [("llama", 2), ("llama", 4), ("gpt2", 8)]
        .into_iter()
        .enumerate()
    {
        summary.push(SummaryRow {
            parameter_count: 1_000_000 * (i as u64 + 1),
            n_layer: layers,
            n_embd: 64 * (i as u32 + 1),
            arch: arch.into(),
            median_ms: f64::from(layers),
            ..row("b", &format!("m{i}"), "s", "prefill")
        });
    }
    let mut p = params(false);
    p.x = Predictors::Many(vec![
        FitPredictor::Layers,
        FitPredictor::Params,
        FitPredictor::Layers,
    ]);
    let rows = fit_all(&p, &summary, 1);
    let pooled: Vec<&FitRow> = rows.iter().filter(|r| r.family.is_empty()).collect();
    let xs: Vec<&str> = pooled.iter().map(|r| r.x.as_str()).collect();
    assert_eq!(xs, ["layers", "params"]);
    assert!(pooled.iter().all(|r| r.heterogeneous));
    // The llama pair is fitted within its family too (two points: shown,
    // unidentifiable); the lone gpt2 model is no fit.
    let within: Vec<&FitRow> = rows.iter().filter(|r| !r.family.is_empty()).collect();
    assert_eq!(within.len(), 2, "{within:?}");
    assert!(
        within
            .iter()
            .all(|r| r.family == "llama f32" && !r.heterogeneous && !r.identifiable)
    );
    let rows = pooled;
    // latency = layers exactly: slope 1 in log-log.
    assert!((rows[0].slope - 1.0).abs() < 1e-12);
}

#[test]
fn fits_are_independent_of_row_order() {
    let mut summary: Vec<SummaryRow> = (0..4)
        .map(|i| SummaryRow {
            parameter_count: 10u64.pow(i + 5),
            prompt_tokens: 8 << i,
            median_ms: 1.0 + f64::from(i) * 0.7 + f64::from(i % 2) * 0.3,
            ..row("b", &format!("m{i}"), &format!("s{i}"), "prefill")
        })
        .collect();
    let a = fit_all(&params(true), &summary, 9);
    summary.reverse();
    let b = fit_all(&params(true), &summary, 9);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

/// A decode row of a model of the given structure, with latency from
/// `ms`; `i` makes a small deterministic wobble (under 2%) so that fits
/// are not exact.
fn model_row(
    arch: &str,
    layers: u32,
    hidden: u32,
    heads: u32,
    scenario: &str,
    ms: f64,
    i: usize,
) -> SummaryRow {
    let wobble = (i as f64 * 1.7).sin() * 0.015;
    SummaryRow {
        arch: arch.into(),
        n_layer: layers,
        n_embd: hidden,
        n_head: heads,
        // Roughly a transformer's count: 12 L H^2.
        parameter_count: 12 * u64::from(layers) * u64::from(hidden) * u64::from(hidden),
        median_ms: ms * wobble.exp(),
        ..row(
            "b",
            &format!("{arch}-{layers}x{hidden}h{heads}"),
            scenario,
            "decode",
        )
    }
}

fn structural_params(x: &[FitPredictor]) -> FitParams {
    FitParams {
        y: FitMetric::DecodeMsPerToken,
        x: Predictors::Many(x.to_vec()),
        linear: false,
        bootstrap: Bootstrap {
            resamples: 400,
            seed: 0,
        },
    }
}

/// A llama family of 12 models: a depth series (hidden 256, heads 4), a
/// width series (layers 4, head size 64) and a heads series (layers 4,
/// hidden 256), sharing the 4x256 model; latency = layers^1.0 *
/// hidden^0.5 * heads^0.2 (times `scale`).
fn llama_family(scenario: &str, scale: f64) -> Vec<SummaryRow> {
    let mut shapes: Vec<(u32, u32, u32)> = [2, 4, 6, 8, 12].iter().map(|l| (*l, 256, 4)).collect();
    shapes.extend([(4, 128, 2), (4, 192, 3), (4, 384, 6), (4, 512, 8)]);
    shapes.extend([(4, 256, 2), (4, 256, 8), (4, 256, 16)]);
    shapes
        .into_iter()
        .enumerate()
        .map(|(i, (l, h, k))| {
            let ms = scale * f64::from(l) * f64::from(h).sqrt() * f64::from(k).powf(0.2) / 100.0;
            model_row("llama", l, h, k, scenario, ms, i)
        })
        .collect()
}

fn find<'a>(
    rows: &'a [FitRow],
    form: FitForm,
    family: &str,
    series: &str,
    x: &str,
) -> Vec<&'a FitRow> {
    rows.iter()
        .filter(|r| {
            r.form() == Some(form)
                && r.family == family
                && (if series.is_empty() {
                    r.series.is_empty()
                } else {
                    r.series.starts_with(series)
                })
                && r.x == x
        })
        .collect()
}

#[test]
fn within_family_fits_recover_each_familys_exponent() {
    // llama latency ~ params^0.5, gpt2 latency ~ params^1.0: pooled, the
    // exponent is a blend of two families; within each it is exact.
    let mut summary = Vec::new();
    for (i, l) in [2u32, 4, 6, 8, 12].into_iter().enumerate() {
        let mut a = model_row("llama", l, 256, 4, "s", 0.0, i);
        a.median_ms = (a.parameter_count as f64).sqrt() / 1000.0 * (1.0 + 0.01 * (i % 2) as f64);
        let mut g = model_row("gpt2", l, 128, 4, "s", 0.0, i);
        g.median_ms = g.parameter_count as f64 / 1.0e5 * (1.0 + 0.01 * (i % 3) as f64);
        summary.extend([a, g]);
    }
    let rows = fit_all(&structural_params(&[FitPredictor::Params]), &summary, 3);
    let pooled = find(&rows, FitForm::LogLog, "", "", "params");
    assert_eq!(pooled.len(), 1);
    assert!(pooled[0].heterogeneous && pooled[0].n == 10);
    for (family, b) in [("llama f32", 0.5), ("gpt2 f32", 1.0)] {
        let r = find(&rows, FitForm::LogLog, family, "", "params");
        assert_eq!(r.len(), 1, "{family}: {rows:?}");
        let r = r[0];
        assert_eq!(r.n, 5);
        assert!(
            !r.heterogeneous && r.identifiable && r.regime == "increasing",
            "{r:?}"
        );
        assert!(
            (r.slope - b).abs() < 0.02,
            "{family}: slope {} vs {b}",
            r.slope
        );
        assert!(
            r.slope_ci_low <= b + 0.01 && b - 0.01 <= r.slope_ci_high,
            "{r:?}"
        );
    }
}

#[test]
fn series_fits_vary_one_predictor_each() {
    let summary = llama_family("s", 1.0);
    let p = structural_params(&[
        FitPredictor::Layers,
        FitPredictor::Hidden,
        FitPredictor::Heads,
    ]);
    let rows = fit_all(&p, &summary, 5);
    // One family only: no within-family repeat of the pooled fits.
    assert!(
        rows.iter()
            .filter(|r| r.form() == Some(FitForm::LogLog) && r.series.is_empty())
            .all(|r| r.family.is_empty() && !r.heterogeneous)
    );
    let depth = find(&rows, FitForm::LogLog, "llama f32", "depth", "layers");
    assert_eq!(depth.len(), 1, "{rows:?}");
    assert_eq!(depth[0].series, "depth at hidden 256, heads 4");
    assert_eq!(depth[0].n, 5);
    // At a fixed head size heads grow with width: the width series' slope
    // is hidden's exponent plus heads' (0.5 + 0.2).
    let width = find(&rows, FitForm::LogLog, "llama f32", "width", "hidden");
    assert_eq!(width.len(), 1, "{rows:?}");
    assert_eq!(
        (width[0].series.as_str(), width[0].n),
        ("width at layers 4, head size 64", 5)
    );
    let heads = find(&rows, FitForm::LogLog, "llama f32", "heads", "heads");
    assert_eq!(heads.len(), 1, "{rows:?}");
    assert_eq!(heads[0].n, 4);
    for (r, b) in [(depth[0], 1.0), (width[0], 0.7), (heads[0], 0.2)] {
        assert!(r.identifiable && r.regime == "increasing", "{r:?}");
        assert!(
            (r.slope - b).abs() < 0.05,
            "{}: {} vs {b}",
            r.series,
            r.slope
        );
    }
    // The pooled layers fit mixes in width and heads and is no series.
    let pooled = find(&rows, FitForm::LogLog, "", "", "layers");
    assert!(pooled.iter().any(|r| r.series.is_empty() && r.n == 12));
}

#[test]
fn multivariate_fit_recovers_depth_width_and_heads_exponents() {
    let summary = llama_family("s", 1.0);
    let p = structural_params(&[
        FitPredictor::Layers,
        FitPredictor::Hidden,
        FitPredictor::Heads,
    ]);
    let rows = fit_all(&p, &summary, 5);
    let multi: Vec<&FitRow> = rows
        .iter()
        .filter(|r| r.form() == Some(FitForm::Multivariate))
        .collect();
    let xs: Vec<&str> = multi.iter().map(|r| r.x.as_str()).collect();
    assert_eq!(xs, ["heads", "hidden", "layers"]);
    for (r, b) in multi.iter().zip([0.2, 0.5, 1.0]) {
        assert_eq!(
            (r.terms.as_str(), r.family.as_str(), r.n),
            ("heads+hidden+layers", "llama f32", 12)
        );
        assert!(
            r.identifiable && r.regime == "increasing" && r.r_squared > 0.99,
            "{r:?}"
        );
        assert!((r.slope - b).abs() < 0.05, "{}: {} vs {b}", r.x, r.slope);
        assert!(r.slope_ci_low < b && b < r.slope_ci_high, "{r:?}");
    }
    // The intercept is shared: ln(1/100).
    assert!((multi[0].intercept - (0.01f64).ln()).abs() < 0.1);
}

#[test]
fn collinear_predictors_are_gated() {
    // Depth and width grow together (hidden = 64 layers): no design can
    // tell their exponents apart, however clean the latency.
    let summary: Vec<SummaryRow> = [2u32, 3, 4, 6, 8]
        .into_iter()
        .enumerate()
        .map(|(i, l)| model_row("llama", l, 64 * l, 4, "s", f64::from(l).powi(2), i))
        .collect();
    let p = structural_params(&[FitPredictor::Layers, FitPredictor::Hidden]);
    let rows = fit_all(&p, &summary, 5);
    let multi: Vec<&FitRow> = rows
        .iter()
        .filter(|r| r.form() == Some(FitForm::Multivariate))
        .collect();
    assert_eq!(multi.len(), 2);
    assert!(
        multi
            .iter()
            .all(|r| !r.identifiable && r.regime == "unidentifiable"),
        "{multi:?}"
    );
    // Each predictor alone still fits (slope 2 against layers).
    let layers = find(&rows, FitForm::LogLog, "", "", "layers");
    assert!(layers[0].identifiable && (layers[0].slope - 2.0).abs() < 0.05);
}

#[test]
fn noise_without_a_trend_is_unidentifiable() {
    // Latency that does not depend on depth: a low R^2 and a CI across zero.
    let ms = [5.0, 4.1, 5.6, 3.9, 5.2];
    let summary: Vec<SummaryRow> = [2u32, 4, 6, 8, 12]
        .into_iter()
        .zip(ms)
        .enumerate()
        .map(|(i, (l, m))| model_row("llama", l, 256, 4, "s", m, i))
        .collect();
    let rows = fit_all(&structural_params(&[FitPredictor::Layers]), &summary, 5);
    let r = find(&rows, FitForm::LogLog, "", "", "layers");
    assert_eq!(r.len(), 1);
    assert!(
        r[0].r_squared < 0.2 && r[0].slope_ci_low < 0.0 && r[0].slope_ci_high > 0.0,
        "{r:?}"
    );
    assert!(!r[0].identifiable && r[0].regime == "unidentifiable");
}

#[test]
fn multivariate_ols_is_exact_on_a_plane_and_refuses_singular_designs() {
    let a: Vec<f64> = vec![1.0, 2.0, 3.0, 4.0, 5.0];
    let b: Vec<f64> = vec![2.0, 1.0, 4.0, 3.0, 7.0];
    let y: Vec<f64> = a
        .iter()
        .zip(&b)
        .map(|(a, b)| 0.5 + 2.0 * a - 0.75 * b)
        .collect();
    let (i, c, r2) = multi::ols(&[a.clone(), b.clone()], &y).unwrap();
    assert!((i - 0.5).abs() < 1e-9 && (c[0] - 2.0).abs() < 1e-9 && (c[1] + 0.75).abs() < 1e-9);
    assert!((r2 - 1.0).abs() < 1e-12);
    let doubled: Vec<f64> = a.iter().map(|v| 2.0 * v).collect();
    assert!(multi::ols(&[a.clone(), doubled.clone()], &y).is_none());
    assert!(multi::correlation_det(&[a.clone(), doubled]) < multi::COLLINEAR_DET);
    assert!(multi::correlation_det(&[a, b]) > 0.1);
}

#[test]
fn boundary_shifts_are_falsification_tests() {
    // The same family under three boundaries: `base`, `batch` (same
    // exponents, latency scaled: the relationship holds), and `gen` where
    // the depth slope is three times steeper (sign held, magnitude not).
    let mut summary = llama_family("base", 1.0);
    summary.extend(llama_family("batch", 3.0));
    let steep: Vec<SummaryRow> = llama_family("gen", 1.0)
        .into_iter()
        .map(|mut s| {
            s.median_ms *= f64::from(s.n_layer).powi(2);
            s
        })
        .collect();
    summary.extend(steep);
    let p = structural_params(&[
        FitPredictor::Layers,
        FitPredictor::Hidden,
        FitPredictor::Heads,
    ]);
    let rows = fit_all(&p, &summary, 11);
    let depth = find(&rows, FitForm::LogLog, "llama f32", "depth", "layers");
    assert_eq!(depth.len(), 3);
    assert!(
        depth
            .iter()
            .all(|r| r.shift == shift::MAGNITUDE_SHIFTED && !r.boundary_flip),
        "{depth:?}"
    );
    // Width and heads do not depend on the shift: they held.
    for x in ["hidden", "heads"] {
        let series = find(
            &rows,
            FitForm::LogLog,
            "llama f32",
            if x == "hidden" { "width" } else { "heads" },
            x,
        );
        assert!(series.iter().all(|r| r.shift == shift::HELD), "{series:?}");
    }
    // Held between base and batch alone.
    let two: Vec<SummaryRow> = summary
        .iter()
        .filter(|s| s.scenario != "gen")
        .cloned()
        .collect();
    let rows = fit_all(&p, &two, 11);
    assert!(
        find(&rows, FitForm::LogLog, "llama f32", "depth", "layers")
            .iter()
            .all(|r| r.shift == shift::HELD)
    );
    // One boundary only: nothing was tested.
    let one: Vec<SummaryRow> = summary
        .iter()
        .filter(|s| s.scenario == "base")
        .cloned()
        .collect();
    assert!(fit_all(&p, &one, 11).iter().all(|r| r.shift.is_empty()));
}

#[test]
fn a_flip_and_an_untestable_group_are_told_apart() {
    let fit = |regime: &str, identifiable: bool, lo: f64, hi: f64| FitRow {
        regime: regime.into(),
        identifiable,
        slope_ci_low: lo,
        slope_ci_high: hi,
        ..FitRow::default()
    };
    let up = fit("increasing", true, 0.2, 0.6);
    let down = fit("decreasing", true, -0.6, -0.2);
    let none = fit("unidentifiable", false, -1.0, 1.0);
    assert_eq!(shift::verdict(&[&up, &down]), shift::FLIPPED);
    // Identifiable under one boundary only: the relationship did not survive.
    assert_eq!(shift::verdict(&[&up, &none]), shift::FLIPPED);
    assert_eq!(shift::verdict(&[&none, &none]), shift::UNTESTABLE);
    let up2 = fit("increasing", true, 0.5, 0.9);
    assert_eq!(shift::verdict(&[&up, &up2]), shift::HELD);
    let up3 = fit("increasing", true, 0.7, 0.9);
    assert_eq!(shift::verdict(&[&up, &up3]), shift::MAGNITUDE_SHIFTED);
}

#[test]
fn heads_aliased_with_width_leave_depth_and_width_identifiable() {
    // Depth and width series only, at a fixed head size: heads = hidden /
    // 64 in every model. The fit keeps depth and width and drops heads.
    let summary: Vec<SummaryRow> = llama_family("s", 1.0)
        .into_iter()
        .filter(|s| s.n_embd / s.n_head == 64)
        .collect();
    assert_eq!(summary.len(), 9);
    let p = structural_params(&[
        FitPredictor::Layers,
        FitPredictor::Hidden,
        FitPredictor::Heads,
    ]);
    let rows = fit_all(&p, &summary, 5);
    let multi: Vec<&FitRow> = rows
        .iter()
        .filter(|r| r.form() == Some(FitForm::Multivariate))
        .collect();
    let xs: Vec<&str> = multi.iter().map(|r| r.x.as_str()).collect();
    assert_eq!(xs, ["hidden", "layers"]);
    // Width's coefficient carries heads' exponent too (0.5 + 0.2).
    for (r, b) in multi.iter().zip([0.7, 1.0]) {
        assert_eq!(r.terms, "hidden+layers");
        assert!(r.identifiable && (r.slope - b).abs() < 0.05, "{r:?}");
    }
}
