//! The report's document model and its two text renderings. Sections build
//! blocks; Markdown and HTML render the same blocks, so they never disagree.

pub enum Block {
    Heading(u8, String),
    Para(String),
    Warning(String),
    Table(Vec<String>, Vec<Vec<String>>),
    List(Vec<String>),
    /// A plot: inline SVG in HTML; in Markdown, its caption and a pointer
    /// to report.html (Markdown has no self-contained way to embed it).
    Figure {
        caption: String,
        svg: String,
    },
}

/// A table header from string literals.
pub fn header(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// A float with `significant` significant digits (fixed notation), for
/// values whose magnitude varies (costs, rates); `n/a` when not finite.
pub fn sig(x: f64, significant: usize) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    if x == 0.0 {
        return "0".into();
    }
    // Digits after the point so the leading digit plus `significant - 1`
    // more show; libm keeps the exponent machine-independent.
    let magnitude = libm::floor(libm::log10(x.abs())) as i64;
    let digits = (significant as i64 - 1 - magnitude).clamp(0, 12) as usize;
    format!("{x:.digits$}")
}

/// Fixed-precision float, `n/a` when not finite: report bytes depend on the
/// inputs only.
pub fn f(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "n/a".into()
    }
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

pub fn render_markdown(doc: &[Block]) -> String {
    let mut out = String::new();
    for block in doc {
        match block {
            Block::Heading(level, text) => {
                out.push_str(&"#".repeat(usize::from(*level)));
                out.push(' ');
                out.push_str(text);
                out.push_str("\n\n");
            }
            Block::Para(text) => {
                out.push_str(text);
                out.push_str("\n\n");
            }
            Block::Warning(text) => {
                out.push_str("> **");
                out.push_str(text);
                out.push_str("**\n\n");
            }
            Block::List(items) => {
                for item in items {
                    out.push_str("- ");
                    out.push_str(item);
                    out.push('\n');
                }
                out.push('\n');
            }
            Block::Figure { caption, .. } => {
                out.push_str(&format!(
                    "*Figure: {caption} (plotted in report.html).*\n\n"
                ));
            }
            Block::Table(header, rows) => {
                out.push_str(&format!(
                    "| {} |\n",
                    header
                        .iter()
                        .map(|h| md_cell(h))
                        .collect::<Vec<_>>()
                        .join(" | ")
                ));
                out.push_str(&format!("|{}\n", " --- |".repeat(header.len())));
                for row in rows {
                    out.push_str(&format!(
                        "| {} |\n",
                        row.iter()
                            .map(|c| md_cell(c))
                            .collect::<Vec<_>>()
                            .join(" | ")
                    ));
                }
                out.push('\n');
            }
        }
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn render_html(title: &str, doc: &[Block]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n\
         body{{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}}\n\
         table{{border-collapse:collapse;margin:1rem 0;font-size:.9rem}}\n\
         th,td{{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}}\nth{{background:#f3f3f3}}\n\
         .warning{{background:#fff3cd;border:1px solid #e0c060;padding:.75rem;font-weight:bold}}\n\
         figure{{margin:1rem 0}}\nfigure svg{{max-width:100%;height:auto}}\nfigcaption{{font-size:.85rem;color:#555}}\n\
         </style>\n</head>\n<body>\n",
        html_escape(title)
    );
    for block in doc {
        match block {
            Block::Heading(level, text) => {
                out.push_str(&format!("<h{level}>{}</h{level}>\n", html_escape(text)))
            }
            Block::Para(text) => out.push_str(&format!("<p>{}</p>\n", html_escape(text))),
            Block::Warning(text) => {
                out.push_str(&format!("<p class=\"warning\">{}</p>\n", html_escape(text)))
            }
            Block::List(items) => {
                out.push_str("<ul>\n");
                for item in items {
                    out.push_str(&format!("<li>{}</li>\n", html_escape(item)));
                }
                out.push_str("</ul>\n");
            }
            Block::Figure { caption, svg } => {
                // The SVG comes from our own plotting code, not user text.
                out.push_str(&format!(
                    "<figure>\n{svg}\n<figcaption>{}</figcaption>\n</figure>\n",
                    html_escape(caption)
                ));
            }
            Block::Table(header, rows) => {
                out.push_str("<table>\n<tr>");
                for h in header {
                    out.push_str(&format!("<th>{}</th>", html_escape(h)));
                }
                out.push_str("</tr>\n");
                for row in rows {
                    out.push_str("<tr>");
                    for c in row {
                        out.push_str(&format!("<td>{}</td>", html_escape(c)));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</table>\n");
            }
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_digits_follow_the_magnitude() {
        assert_eq!(sig(5171.176, 4), "5171");
        assert_eq!(sig(12.1674, 4), "12.17");
        assert_eq!(sig(0.0011234, 4), "0.001123");
        assert_eq!(sig(-0.5, 2), "-0.50");
        assert_eq!(sig(0.0, 4), "0");
        assert_eq!(sig(f64::NAN, 4), "n/a");
    }
}
