use super::*;

use super::axis::{linear_axis, log_axis, pow10_label};
use super::clip::{Rect, clip_polygon, clip_segment};
use super::style::{FONT, MAX_LABEL_CHARS, fmt_sig, truncate};

fn dist(label: &str, scale: f64) -> Distribution {
    Distribution {
        label: label.into(),
        min: 1.0 * scale,
        p50: 2.0 * scale,
        p90: 3.0 * scale,
        p95: 3.5 * scale,
        p99: 4.5 * scale,
        max: 6.0 * scale,
        ci_low: 1.9 * scale,
        ci_high: 2.1 * scale,
    }
}

fn sample_distributions() -> Vec<Distribution> {
    vec![
        dist("tiny-llama f32 batch=1", 10.0),
        dist("tiny-llama f16 batch=8", 14.0),
        dist("gpt2 q8_0 batch=1", 9.0),
    ]
}

fn sample_stacks() -> Vec<Stack> {
    (1..=4)
        .map(|b| Stack {
            label: format!("batch={b}"),
            segments: vec![
                ("prefill".into(), 12.0 * f64::from(b)),
                ("decode".into(), 80.0 + 5.0 * f64::from(b)),
            ],
        })
        .collect()
}

fn sample_bars() -> Vec<Bar> {
    vec![
        Bar {
            label: "cell a".into(),
            value: 0.95,
            low: Some(0.93),
            high: Some(0.97),
        },
        Bar {
            label: "cell b".into(),
            value: 0.72,
            low: None,
            high: None,
        },
    ]
}

fn sample_scaling(log_log: bool, identifiable: bool) -> Scaling {
    let law = |b: f64| {
        let noise = 1.0 + 0.05 * libm::sin(b);
        if log_log {
            3.0 * libm::pow(b, 0.9) * noise
        } else {
            (3.0 + 0.9 * b) * noise
        }
    };
    let points = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
        .iter()
        .map(|&b| (b, law(b)))
        .collect();
    Scaling {
        title: "throughput vs batch".into(),
        x_label: "batch".into(),
        y_label: "tokens/s".into(),
        log_log,
        points,
        intercept: if log_log { libm::log(3.0) } else { 3.0 },
        slope: 0.9,
        slope_ci: (0.82, 0.97),
        identifiable,
    }
}

/// Shape only: any label text may appear inside.
fn assert_svg_shape(svg: &str) {
    assert!(svg.starts_with("<svg "), "{}", &svg[..svg.len().min(80)]);
    assert!(svg.ends_with("</svg>"));
    assert_eq!(svg.matches("<svg").count(), 1);
    assert_eq!(svg.matches("</svg>").count(), 1);
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
}

/// For inputs whose labels are known: no prolog, ids or non-finite numbers.
fn assert_svg(svg: &str) {
    assert_svg_shape(svg);
    assert!(!svg.contains("<?xml"));
    assert!(!svg.contains(" id="));
    assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    assert!(svg.contains(r#"font-family="sans-serif""#));
}

#[test]
fn naive_text_measurement_is_in_use() {
    // With plotters' `ttf` feature (font-kit, system fonts) this estimate
    // would differ: the build must keep the fixed-width fallback.
    let font = (FONT, 12.4).into_font();
    let (w, h) = font.box_size("abcd").unwrap();
    let em: f64 = 12.4 / 1.24 / 1.24;
    assert_eq!(w, (em * 0.7 * 4.0).round() as u32);
    assert_eq!(h, (em.round() + (em * 0.24).round()) as u32);
}

#[test]
fn distributions_are_deterministic_and_labelled() {
    let rows = sample_distributions();
    let a = latency_distributions("decode latency", "ms", &rows).unwrap();
    let b = latency_distributions("decode latency", "ms", &rows.clone()).unwrap();
    assert_eq!(a, b);
    assert_svg(&a);
    for r in &rows {
        assert!(a.contains(&r.label), "{}", r.label);
    }
    assert!(a.contains("decode latency"));
    assert!(a.contains(">\nms\n<"), "x axis unit");
    assert!(!a.contains("log scale"));
}

#[test]
fn distributions_use_log_axis_beyond_two_decades() {
    let rows = vec![dist("fast", 0.01), dist("slow", 100.0)];
    let svg = latency_distributions("t", "ms", &rows).unwrap();
    assert_svg(&svg);
    assert!(svg.contains("ms (log scale)"));
    // Decade labels, written exactly.
    assert!(
        svg.contains(">\n0.1\n<") && svg.contains(">\n100\n<"),
        "{svg}"
    );
}

#[test]
fn distributions_degenerate_inputs() {
    assert_eq!(latency_distributions("t", "ms", &[]), None);
    let nan = Distribution {
        label: "nan".into(),
        min: f64::NAN,
        p50: f64::NAN,
        p90: f64::INFINITY,
        p95: f64::NEG_INFINITY,
        p99: f64::NAN,
        max: f64::NAN,
        ci_low: f64::NAN,
        ci_high: f64::NAN,
    };
    assert_eq!(
        latency_distributions("t", "ms", std::slice::from_ref(&nan)),
        None
    );
    // One NaN row among good ones: dropped, the rest drawn.
    let svg = latency_distributions("t", "ms", &[nan, dist("ok", 1.0)]).unwrap();
    assert!(svg.contains(">\nok\n<") && !svg.contains(">\nnan\n<"));
    // Zeros, negatives, partial rows, equal values: a sane plot.
    for r in [
        Distribution {
            label: "zero".into(),
            ..Default::default()
        },
        dist("neg", -3.0),
        Distribution {
            p50: 5.0,
            ..dist("partial", f64::NAN)
        },
        Distribution {
            ci_low: 10.0,
            ci_high: 1.0,
            ..dist("swapped ci", 1.0)
        },
    ] {
        let svg = latency_distributions("t", "", &[r]).unwrap();
        assert_svg(&svg);
    }
}

#[test]
fn stacked_bars_are_deterministic_with_legend() {
    let rows = sample_stacks();
    let a = stacked_bars("phase split", "ms", &rows).unwrap();
    assert_eq!(a, stacked_bars("phase split", "ms", &rows).unwrap());
    assert_svg(&a);
    for l in ["batch=1", "batch=4", "prefill", "decode", "phase split"] {
        assert!(a.contains(l), "{l}");
    }
    // Legend colours follow first appearance.
    let pre = a.find(">\nprefill\n<").unwrap();
    let dec = a.find(">\ndecode\n<").unwrap();
    assert!(pre < dec);
}

#[test]
fn stacked_bars_degenerate_inputs() {
    assert_eq!(stacked_bars("t", "ms", &[]), None);
    let empty = Stack {
        label: "x".into(),
        segments: vec![],
    };
    assert_eq!(stacked_bars("t", "ms", std::slice::from_ref(&empty)), None);
    let bad = Stack {
        label: "bad".into(),
        segments: vec![("a".into(), f64::NAN), ("b".into(), -1.0)],
    };
    assert_eq!(stacked_bars("t", "ms", std::slice::from_ref(&bad)), None);
    let zero = Stack {
        label: "zero".into(),
        segments: vec![("a".into(), 0.0)],
    };
    assert_svg(&stacked_bars("t", "ms", &[zero, bad, empty]).unwrap());
    let huge = Stack {
        label: "huge".into(),
        segments: vec![("a".into(), f64::MAX), ("b".into(), f64::MAX)],
    };
    // Overflowing totals: no panic; None or a plot.
    if let Some(svg) = stacked_bars("t", "ms", &[huge]) {
        assert_svg(&svg);
    }
}

#[test]
fn bars_are_deterministic_with_reference_line() {
    let rows = sample_bars();
    let a = bars(
        "decode fraction",
        "",
        &rows,
        Some((0.9, "decode-bound at 0.9")),
    )
    .unwrap();
    assert_eq!(
        a,
        bars(
            "decode fraction",
            "",
            &rows,
            Some((0.9, "decode-bound at 0.9"))
        )
        .unwrap()
    );
    assert_svg(&a);
    for l in ["cell a", "cell b", "decode-bound at 0.9", "0.950", "0.720"] {
        assert!(a.contains(l), "{l}");
    }
    let none = bars("t", "", &rows, None).unwrap();
    assert!(!none.contains("reference"));
    let unnamed = bars("t", "", &rows, Some((0.9, ""))).unwrap();
    assert!(unnamed.contains("reference 0.900"));
}

#[test]
fn grouped_bars_have_series_legend() {
    let series = vec![
        BarSeries {
            name: "on-demand".into(),
            bars: sample_bars(),
        },
        BarSeries {
            name: String::new(),
            bars: vec![Bar {
                label: "cell c".into(),
                value: 0.3,
                low: Some(0.2),
                high: Some(0.5),
            }],
        },
    ];
    let a = grouped_bars("cost per 1M tokens", "USD", &series, None).unwrap();
    assert_eq!(
        a,
        grouped_bars("cost per 1M tokens", "USD", &series, None).unwrap()
    );
    assert_svg(&a);
    for l in ["on-demand", "series 2", "cell a", "cell b", "cell c", "USD"] {
        assert!(a.contains(l), "{l}");
    }
    assert_eq!(grouped_bars("t", "", &[], None), None);
}

#[test]
fn bars_degenerate_inputs() {
    assert_eq!(bars("t", "", &[], None), None);
    let nan = Bar {
        label: "nan".into(),
        value: f64::NAN,
        low: Some(f64::NAN),
        high: Some(f64::INFINITY),
    };
    assert_eq!(
        bars("t", "", std::slice::from_ref(&nan), Some((0.9, "x"))),
        None
    );
    let odd = vec![
        nan,
        Bar {
            label: "zero".into(),
            value: 0.0,
            low: Some(f64::NAN),
            high: None,
        },
        Bar {
            label: "negative".into(),
            value: -2.0,
            low: Some(-3.0),
            high: Some(-1.0),
        },
        Bar {
            label: "x".repeat(500),
            value: 1e12,
            low: None,
            high: Some(2e12),
        },
    ];
    let svg = bars("t", "", &odd, Some((f64::NAN, "ignored"))).unwrap();
    assert_svg(&svg);
    assert!(!svg.contains("ignored"));
    assert!(
        !svg.contains(&"x".repeat(MAX_LABEL_CHARS)),
        "long labels are cut"
    );
}

#[test]
fn scaling_is_deterministic_and_annotated() {
    for log_log in [true, false] {
        let s = sample_scaling(log_log, false);
        let a = scaling(&s).unwrap();
        assert_eq!(a, scaling(&s.clone()).unwrap());
        assert_svg(&a);
        for l in [
            "throughput vs batch",
            "unidentifiable (AM rule 7)",
            "slope 0.900 (95% CI 0.820 to 0.970), ",
            "tokens/s",
            "<polygon",
        ] {
            assert!(a.contains(l), "{l} (log_log {log_log})");
        }
        // One circle per point, and one in the legend.
        assert_eq!(a.matches("<circle").count(), s.points.len() + 1);
        let ok = scaling(&sample_scaling(log_log, true)).unwrap();
        assert!(!ok.contains("unidentifiable"));
    }
}

#[test]
fn scaling_degenerate_inputs() {
    let base = sample_scaling(true, true);
    let none = Scaling {
        points: vec![],
        ..base.clone()
    };
    assert_eq!(scaling(&none), None);
    let unplottable = Scaling {
        points: vec![
            (0.0, 1.0),
            (-1.0, 2.0),
            (f64::NAN, 1.0),
            (3.0, f64::INFINITY),
        ],
        ..base.clone()
    };
    assert_eq!(scaling(&unplottable), None);
    let cases = [
        Scaling {
            points: vec![(4.0, 10.0)],
            ..base.clone()
        },
        Scaling {
            points: vec![(4.0, 10.0), (4.0, 12.0), (0.0, 3.0)],
            ..base.clone()
        },
        Scaling {
            intercept: f64::NAN,
            slope: f64::INFINITY,
            slope_ci: (f64::NAN, 1.0),
            ..base.clone()
        },
        Scaling {
            slope: 1e300,
            slope_ci: (-1e300, 1e300),
            ..base.clone()
        },
        Scaling {
            log_log: false,
            points: vec![(0.0, 0.0), (0.0, 0.0)],
            ..base.clone()
        },
        Scaling {
            log_log: false,
            points: vec![(-1e300, 1e-300), (1e300, -1e300)],
            ..base.clone()
        },
    ];
    for s in &cases {
        if let Some(svg) = scaling(s) {
            assert_svg(&svg);
        }
    }
    let skipped = scaling(&cases[1]).unwrap();
    assert!(skipped.contains("1 point(s) not drawn"));
}

#[test]
fn axes_and_numbers_are_exact() {
    let a = linear_axis(0.0, 1.0).unwrap();
    let labels: Vec<&str> = a.ticks.iter().map(|t| t.1.as_str()).collect();
    assert_eq!(labels, ["0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
    let a = linear_axis(0.0, 3.2e7).unwrap();
    assert!(a.ticks.iter().any(|t| t.1 == "1e7"), "{:?}", a.ticks);
    let a = log_axis(0.02, 300.0).unwrap();
    let labels: Vec<&str> = a.ticks.iter().map(|t| t.1.as_str()).collect();
    assert_eq!(labels, ["0.1", "1", "10", "100"]);
    let a = log_axis(3.0, 7.0).unwrap();
    assert!(a.ticks.len() >= 3, "{:?}", a.ticks);
    assert_eq!(pow10_label(5, -3), "0.005");
    assert_eq!(pow10_label(2, 9), "2e9");
    assert_eq!(fmt_sig(1234.6), "1235");
    assert_eq!(fmt_sig(0.012345), "0.0123");
    assert_eq!(fmt_sig(-2.5e-7), "-2.5e-7");
    assert_eq!(truncate("a\u{0}b", 10), "a b");
    assert_eq!(truncate("abcdef", 4), "abc…");
}

#[test]
fn extreme_finite_values_do_not_panic() {
    let extremes = [
        f64::MAX,
        -f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
        -5e-324,
        0.0,
        -0.0,
        1e-300,
        1e300,
    ];
    for &a in &extremes {
        for &b in &extremes {
            let d = Distribution {
                label: "d".into(),
                min: a,
                p50: b,
                p90: a,
                p95: b,
                p99: a,
                max: b,
                ci_low: a,
                ci_high: b,
            };
            let stack = Stack {
                label: "s".into(),
                segments: vec![("x".into(), a), ("y".into(), b)],
            };
            let bar = Bar {
                label: "b".into(),
                value: a,
                low: Some(b),
                high: Some(a),
            };
            let outputs = [
                latency_distributions("t", "ms", &[d]),
                stacked_bars("t", "ms", &[stack]),
                bars("t", "", &[bar], Some((b, "ref"))),
                scaling(&Scaling {
                    points: vec![(a, b), (b, a), (1.0, 1.0)],
                    intercept: a,
                    slope: b,
                    slope_ci: (a, b),
                    ..sample_scaling(true, true)
                }),
                scaling(&Scaling {
                    log_log: false,
                    points: vec![(a, b), (b, a)],
                    intercept: a,
                    slope: b,
                    slope_ci: (a, b),
                    ..sample_scaling(false, true)
                }),
            ];
            for svg in outputs.iter().flatten() {
                assert_svg(svg);
            }
        }
    }
}

#[test]
fn hostile_labels_are_escaped() {
    let rows = [Bar {
        label: "<script>&\"'\u{0}\u{FFFF}".into(),
        value: 1.0,
        low: None,
        high: None,
    }];
    let svg = bars("</svg>", "<b>", &rows, None).unwrap();
    assert_svg(&svg);
    assert!(!svg.contains("<script") && !svg.contains("<b>") && !svg.contains('\u{0}'));
    assert!(svg.contains("&lt;script&gt;&amp;&quot;&apos;"));
}

#[test]
fn clipping() {
    let r = Rect {
        x0: 0.0,
        x1: 1.0,
        y0: 0.0,
        y1: 1.0,
    };
    assert_eq!(
        clip_segment((-1.0, 0.5), (2.0, 0.5), &r),
        Some(((0.0, 0.5), (1.0, 0.5)))
    );
    assert_eq!(clip_segment((-1.0, 2.0), (2.0, 2.0), &r), None);
    let tri = clip_polygon(&[(0.5, 0.5), (2.0, -1.0), (2.0, 2.0)], &r);
    assert!(
        tri.iter()
            .all(|p| (0.0..=1.0).contains(&p.0) && (0.0..=1.0).contains(&p.1))
    );
    assert!(tri.len() >= 3);
    assert!(clip_polygon(&[(f64::NAN, 0.0), (1.0, 1.0), (0.0, 1.0)], &r).is_empty());
}

#[test]
#[ignore = "writes samples to /tmp/plots-sample for a visual check"]
fn write_samples() {
    let dir = std::path::Path::new("/tmp/plots-sample");
    std::fs::create_dir_all(dir).unwrap();
    let mut wide = sample_distributions();
    wide.push(dist("a much slower cell with a long label, batch=64", 60.0));
    let files = [
        (
            "distributions.svg",
            latency_distributions("TTFT", "ms", &sample_distributions()),
        ),
        (
            "distributions-log.svg",
            latency_distributions(
                "per-token latency",
                "ms",
                &[dist("fast", 0.05), dist("mid", 2.0), dist("slow", 90.0)],
            ),
        ),
        (
            "distributions-wide.svg",
            latency_distributions("end-to-end latency", "ms", &wide),
        ),
        (
            "stacked.svg",
            stacked_bars("phase split", "ms per request", &sample_stacks()),
        ),
        (
            "bars.svg",
            bars(
                "decode fraction",
                "fraction of wall time",
                &sample_bars(),
                Some((0.9, "decode-bound (0.9)")),
            ),
        ),
        (
            "grouped.svg",
            grouped_bars(
                "cost per 1M tokens",
                "USD",
                &[
                    BarSeries {
                        name: "on-demand".into(),
                        bars: sample_bars(),
                    },
                    BarSeries {
                        name: "spot".into(),
                        bars: sample_bars()
                            .into_iter()
                            .map(|b| Bar {
                                value: b.value * 0.4,
                                low: b.low.map(|v| v * 0.4),
                                high: b.high.map(|v| v * 0.4),
                                ..b
                            })
                            .collect(),
                    },
                ],
                None,
            ),
        ),
        ("scaling-loglog.svg", scaling(&sample_scaling(true, false))),
        ("scaling-linear.svg", scaling(&sample_scaling(false, true))),
    ];
    for (name, svg) in files {
        std::fs::write(dir.join(name), svg.unwrap()).unwrap();
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    #[test]
    fn no_panics_on_finite_inputs(
        v in proptest::collection::vec(-1e9_f64..1e9, 0..24),
        log_log in proptest::bool::ANY,
        label in ".{0,80}",
    ) {
        let d: Vec<Distribution> = v
            .chunks(8)
            .filter(|c| c.len() == 8)
            .map(|c| Distribution {
                label: label.clone(),
                min: c[0], p50: c[1], p90: c[2], p95: c[3],
                p99: c[4], max: c[5], ci_low: c[6], ci_high: c[7],
            })
            .collect();
        if let Some(svg) = latency_distributions(&label, &label, &d) { assert_svg_shape(&svg); }
        let s: Vec<Stack> = v
            .chunks(3)
            .map(|c| Stack { label: label.clone(), segments: c.iter().map(|x| (label.clone(), *x)).collect() })
            .collect();
        if let Some(svg) = stacked_bars(&label, "ms", &s) { assert_svg_shape(&svg); }
        let b: Vec<Bar> = v
            .chunks(3)
            .map(|c| Bar { label: label.clone(), value: c[0], low: c.get(1).copied(), high: c.get(2).copied() })
            .collect();
        let reference = v.first().map(|r| (*r, label.as_str()));
        if let Some(svg) = bars(&label, "", &b, reference) { assert_svg_shape(&svg); }
        let points: Vec<(f64, f64)> = v.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0], c[1])).collect();
        let sc = Scaling {
            title: label.clone(),
            x_label: label.clone(),
            y_label: String::new(),
            log_log,
            points,
            intercept: v.first().copied().unwrap_or(0.0) / 1e8,
            slope: v.get(1).copied().unwrap_or(1.0) / 1e8,
            slope_ci: (v.get(2).copied().unwrap_or(0.0) / 1e8, v.get(3).copied().unwrap_or(2.0) / 1e8),
            identifiable: log_log,
        };
        if let Some(svg) = scaling(&sc) { assert_svg_shape(&svg); }
    }
}

/// The `<title>`s of the hover targets, in order.
fn hover_titles(svg: &str) -> Vec<&str> {
    svg.split("<rect class=\"hot\" ")
        .skip(1)
        .map(|r| {
            let start = r.find("<title>").unwrap() + "<title>".len();
            &r[start..r.find("</title>").unwrap()]
        })
        .collect()
}

#[test]
fn every_drawn_value_has_a_hover_title() {
    let rows = sample_distributions();
    let svg = latency_distributions("d", "ms", &rows).unwrap();
    let titles = hover_titles(&svg);
    assert_eq!(titles.len(), rows.len());
    // 2.0 x 10 with four significant digits.
    assert_eq!(
        titles[0],
        "tiny-llama f32 batch=1: median 20.00 ms (95% CI 19.00 to 21.00); p90 30.00, p95 35.00, p99 45.00; min 10.00, max 60.00"
    );
    // Drawn last, on top of everything plotters drew.
    assert!(svg.ends_with("</title></rect>\n</g>\n</svg>"));

    let bars_svg = bars("b", "fraction", &sample_bars(), Some((0.9, "ref"))).unwrap();
    assert_eq!(
        hover_titles(&bars_svg),
        [
            "cell a: 0.9500 fraction [0.9300, 0.9700]",
            "cell b: 0.7200 fraction"
        ]
    );

    let stacks = sample_stacks();
    let stacked = stacked_bars("s", "ms", &stacks).unwrap();
    let titles = hover_titles(&stacked);
    assert_eq!(titles.len(), 2 * stacks.len());
    assert_eq!(titles[0], "batch=1: prefill 12.00 ms of 97.00 ms");

    let grouped = grouped_bars(
        "g",
        "$",
        &[
            BarSeries {
                name: "on_demand".into(),
                bars: sample_bars(),
            },
            BarSeries {
                name: "spot".into(),
                bars: sample_bars()[..1].to_vec(),
            },
        ],
        None,
    )
    .unwrap();
    assert_eq!(
        hover_titles(&grouped),
        [
            "cell a (on_demand): 0.9500 $ [0.9300, 0.9700]",
            "cell a (spot): 0.9500 $ [0.9300, 0.9700]",
            "cell b (on_demand): 0.7200 $"
        ]
    );

    for log_log in [false, true] {
        let s = sample_scaling(log_log, true);
        let svg = scaling(&s).unwrap();
        let titles = hover_titles(&svg);
        assert_eq!(titles.len(), s.points.len());
        assert!(
            titles[0].starts_with("batch 1.000, tokens/s "),
            "{}",
            titles[0]
        );
        assert_svg(&svg);
    }
    // Hover targets are at least 8 px, whole pixels, and deterministic.
    for svg in [&svg, &bars_svg, &stacked, &grouped] {
        for r in svg.split("<rect class=\"hot\" ").skip(1) {
            let attr = |name: &str| -> i32 {
                let at = r.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                r[at..at + r[at..].find('"').unwrap()].parse().unwrap()
            };
            assert!(attr("width") >= 8 && attr("height") >= 8, "{r}");
        }
    }
    assert_eq!(svg, latency_distributions("d", "ms", &rows).unwrap());
}
