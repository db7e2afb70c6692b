use std::fmt::Write;
use std::io::IsTerminal;

/// A located error in a file the user wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

fn color_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Render in the `FILE:LINE:COL: error: ...` form with the source line and
/// a caret under the column.
pub fn render_diagnostics(diags: &[Diagnostic], source: &str) -> String {
    let color = color_enabled();
    let (red, bold, reset) = if color {
        ("\x1b[31;1m", "\x1b[1m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    let mut out = String::new();
    for d in diags {
        let _ = writeln!(
            out,
            "{bold}{}:{}:{}:{reset} {red}error:{reset} {}",
            d.file, d.line, d.col, d.message
        );
        if let Some(src) = source.lines().nth(d.line.saturating_sub(1)) {
            let gutter = d.line.to_string();
            let pad = " ".repeat(gutter.len());
            let caret_pad: String = src
                .chars()
                .take(d.col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{gutter} | {src}");
            let _ = writeln!(out, "{pad} | {caret_pad}{red}^{reset}");
        }
    }
    if diags.len() > 1 {
        let _ = writeln!(out, "{} errors", diags.len());
    }
    out
}
