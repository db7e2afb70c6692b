//! Hover targets: an invisible rectangle over each drawn value, with an SVG
//! `<title>` naming the value, so a browser shows it on hover (and a screen
//! reader reads it). Added after plotters has drawn the plot, in drawing
//! order, with integer pixel coordinates and fixed number formats: the
//! bytes stay a pure function of the inputs.

use super::style::truncate;

/// One hover target, in the SVG's pixels.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Hotspot {
    x: i32,
    y: i32,
    w: i32,
    h: i32,
    title: String,
}

/// Targets smaller than this (px) are grown around their centre, so that a
/// thin bar or a point can still be pointed at.
const MIN_PX: i32 = 8;

impl Hotspot {
    /// The rectangle spanned by two corners, in any order.
    pub(super) fn new(a: (i32, i32), b: (i32, i32), title: String) -> Self {
        let grow = |lo: i32, hi: i32| {
            if hi - lo >= MIN_PX {
                (lo, hi - lo)
            } else {
                let mid = lo + (hi - lo) / 2;
                (mid - MIN_PX / 2, MIN_PX)
            }
        };
        let (x, w) = grow(a.0.min(b.0), a.0.max(b.0));
        let (y, h) = grow(a.1.min(b.1), a.1.max(b.1));
        Hotspot {
            x,
            y,
            w,
            h,
            title: truncate(&title, 200),
        }
    }

    /// A square of `MIN_PX` around a point.
    pub(super) fn point(p: (i32, i32), title: String) -> Self {
        Self::new(p, p, title)
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `svg` with the targets drawn last (on top), in one `<g>`. The fill is
/// transparent but painted, so the rectangle receives the pointer.
pub(super) fn attach(svg: String, spots: &[Hotspot]) -> String {
    if spots.is_empty() {
        return svg;
    }
    let Some(end) = svg.rfind("</svg>") else {
        return svg;
    };
    let mut g = String::from("<g class=\"hover\">\n");
    for s in spots {
        g.push_str(&format!(
            "<rect class=\"hot\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#000\" fill-opacity=\"0\"><title>{}</title></rect>\n",
            s.x,
            s.y,
            s.w,
            s.h,
            xml_escape(&s.title)
        ));
    }
    g.push_str("</g>\n");
    let mut out = svg;
    out.insert_str(end, &g);
    out
}

/// Four significant digits, plain for 1e-3 <= |v| < 1e6, else scientific:
/// one more digit than the axis labels, since the hover is for reading.
pub(super) fn value(v: f64) -> String {
    super::style::sig_digits(v, 4)
}

/// `value` with its unit, when there is one.
pub(super) fn with_unit(v: f64, unit: &str) -> String {
    if unit.is_empty() {
        value(v)
    } else {
        format!("{} {unit}", value(v))
    }
}
