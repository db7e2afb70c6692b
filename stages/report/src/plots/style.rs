//! Colours, text styles and the formats of labels and numbers.

use plotters::prelude::*;

pub(super) const FONT: &str = "sans-serif";
// plotters writes `font-size = size / 1.24`; these give whole pixels.
pub(super) const TITLE_PX: f64 = 14.0;
pub(super) const LABEL_PX: f64 = 11.0;
pub(super) const SMALL_PX: f64 = 10.0;
pub(super) const MAX_LABEL_CHARS: usize = 48;
pub(super) const MAX_TITLE_CHARS: usize = 100;
pub(super) const SCALING_PLOT_PX: u32 = 340;

pub(super) const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);
pub(super) const MUTED: RGBColor = RGBColor(0x80, 0x80, 0x80);
pub(super) const GRID: RGBColor = RGBColor(0xE4, 0xE4, 0xE4);
pub(super) const ALERT: RGBColor = RGBColor(0xB2, 0x22, 0x22);
/// Muted, print-safe categorical colours (seaborn "deep").
pub(super) const PALETTE: [RGBColor; 8] = [
    RGBColor(0x4C, 0x72, 0xB0),
    RGBColor(0xDD, 0x84, 0x52),
    RGBColor(0x55, 0xA8, 0x68),
    RGBColor(0xC4, 0x4E, 0x52),
    RGBColor(0x81, 0x72, 0xB3),
    RGBColor(0x93, 0x78, 0x60),
    RGBColor(0xDA, 0x8B, 0xC3),
    RGBColor(0x8C, 0x8C, 0x8C),
];

pub(super) fn text(px: f64, colour: RGBColor) -> TextStyle<'static> {
    (FONT, px * 1.24).into_font().color(&colour)
}

/// The layout's width estimate for `s` (≈ 0.6 em per character).
pub(super) fn text_width(s: &str, px: f64) -> u32 {
    let chars = u32::try_from(s.chars().count()).unwrap_or(u32::MAX / 8);
    (f64::from(chars) * px * 0.6).ceil() as u32
}

/// Printable, single-line, bounded length.
pub(super) fn clean_label(s: &str) -> String {
    truncate(s, MAX_LABEL_CHARS)
}

pub(super) fn truncate(s: &str, max_chars: usize) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            // Controls and the XML-invalid noncharacters would break the SVG.
            if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' {
                ' '
            } else {
                c
            }
        })
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.chars().count() <= max_chars {
        cleaned.to_string()
    } else {
        let mut out: String = cleaned.chars().take(max_chars.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

pub(super) fn axis_desc(unit: &str, log: bool) -> String {
    let unit = clean_label(unit);
    match (unit.is_empty(), log) {
        (true, false) => String::new(),
        (true, true) => "log scale".to_string(),
        (false, false) => unit,
        (false, true) => format!("{unit} (log scale)"),
    }
}

pub(super) fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let mut it = values.iter().copied().filter(|v| v.is_finite());
    let first = it.next()?;
    Some(it.fold((first, first), |(a, b), v| (a.min(v), b.max(v))))
}

/// Three significant digits, plain for 1e-3 ≤ |v| < 1e6, else scientific.
pub(super) fn fmt_sig(v: f64) -> String {
    sig_digits(v, 3)
}

/// `digits` significant digits, plain for 1e-3 ≤ |v| < 1e6, else
/// scientific with trailing zeros trimmed.
pub(super) fn sig_digits(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let mag = libm::floor(libm::log10(v.abs()));
    if (-3.0..6.0).contains(&mag) {
        let decimals = ((digits as f64 - 1.0) - mag).max(0.0) as usize;
        format!("{v:.decimals$}")
    } else {
        let mantissa = digits - 1;
        trim_sci(&format!("{v:.mantissa$e}"))
    }
}

/// "1.50e6" → "1.5e6", "2.00e-7" → "2e-7".
pub(super) fn trim_sci(s: &str) -> String {
    match s.split_once('e') {
        Some((m, e)) if m.contains('.') => {
            format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
        }
        _ => s.to_string(),
    }
}

// ---------------------------------------------------------------------- axes
