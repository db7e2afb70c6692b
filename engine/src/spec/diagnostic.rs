use std::fmt::Write;
use std::io::IsTerminal;

use super::locate::LocationMap;

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

/// Pointer `/backends/0/kind` as `backends[0].kind`, for messages.
pub(super) fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    if out.is_empty() {
        "(document)".into()
    } else {
        out
    }
}

/// Diagnostics being collected for one file: each is placed by a JSON
/// pointer, on the value or on its key, and prefixed with the dotted path.
pub(super) struct Diags<'a> {
    pub(super) file: String,
    pub(super) locations: &'a LocationMap,
    pub(super) out: Vec<Diagnostic>,
}

impl Diags<'_> {
    pub(super) fn at_value(&mut self, pointer: &str, message: String) {
        let pos = self.locations.value(pointer);
        self.push(pos.line, pos.col, pointer, message);
    }

    pub(super) fn at_key(&mut self, pointer: &str, message: String) {
        let pos = self.locations.key(pointer);
        self.push(pos.line, pos.col, pointer, message);
    }

    fn push(&mut self, line: usize, col: usize, pointer: &str, message: String) {
        let message = if pointer.is_empty() {
            message
        } else {
            format!("{}: {message}", dotted(pointer))
        };
        self.out.push(Diagnostic {
            file: self.file.clone(),
            line,
            col,
            message,
        });
    }
}

/// The registry's backend checks report through the same locator.
impl assay_measure::Findings for Diags<'_> {
    fn at_value(&mut self, pointer: &str, message: String) {
        Diags::at_value(self, pointer, message);
    }

    fn at_key(&mut self, pointer: &str, message: String) {
        Diags::at_key(self, pointer, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths() {
        assert_eq!(dotted("/backends/0/kind"), "backends[0].kind");
        assert_eq!(dotted(""), "(document)");
    }
}
