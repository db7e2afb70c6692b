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

/// Text with its Markdown code spans (`` `...` ``) as `<code>`, the rest
/// escaped; an unpaired backtick stays a backtick.
fn inline_html(s: &str) -> String {
    let parts: Vec<&str> = s.split('`').collect();
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        let is_code = i % 2 == 1 && i + 1 < parts.len();
        if is_code {
            out.push_str("<code>");
            out.push_str(&html_escape(part));
            out.push_str("</code>");
        } else {
            if i % 2 == 1 {
                // The last part after an unpaired backtick.
                out.push('`');
            }
            out.push_str(&html_escape(part));
        }
    }
    out
}

/// Anchor ids for the headings, in document order: a slug of the text,
/// `-2`, `-3`, ... on repeats, so the sidebar's links are unique and the
/// bytes depend on the document only.
fn heading_ids(doc: &[Block]) -> Vec<Option<String>> {
    let mut seen: std::collections::BTreeMap<String, u32> = std::collections::BTreeMap::new();
    doc.iter()
        .map(|b| match b {
            Block::Heading(level, text) if *level >= 2 => {
                let mut slug = String::from("s-");
                let mut dash = false;
                for c in text.chars() {
                    if c.is_ascii_alphanumeric() {
                        slug.push(c.to_ascii_lowercase());
                        dash = false;
                    } else if !dash && slug.len() > 2 {
                        slug.push('-');
                        dash = true;
                    }
                }
                let slug = slug.trim_end_matches('-').to_string();
                let n = seen.entry(slug.clone()).or_insert(0);
                *n += 1;
                Some(if *n == 1 { slug } else { format!("{slug}-{n}") })
            }
            _ => None,
        })
        .collect()
}

/// The sidebar: a link to every section (h2) and subsection (h3).
fn nav(doc: &[Block], ids: &[Option<String>]) -> String {
    let mut out = String::from(
        "<nav class=\"toc\" aria-label=\"Sections\">\n<p class=\"toc-title\">Contents</p>\n<ul>\n",
    );
    let mut in_sub = false;
    let mut open_item = false;
    for (b, id) in doc.iter().zip(ids) {
        let (Block::Heading(level, text), Some(id)) = (b, id) else {
            continue;
        };
        let link = format!("<a href=\"#{id}\">{}</a>", inline_html(text));
        if *level == 2 {
            if in_sub {
                out.push_str("</ul>");
                in_sub = false;
            }
            if open_item {
                out.push_str("</li>\n");
            }
            out.push_str(&format!("<li>{link}"));
            open_item = true;
        } else if *level == 3 {
            if !in_sub {
                out.push_str("<ul>");
                in_sub = true;
            }
            out.push_str(&format!("<li>{link}</li>"));
        }
    }
    if in_sub {
        out.push_str("</ul>");
    }
    if open_item {
        out.push_str("</li>\n");
    }
    out.push_str("</ul>\n</nav>\n");
    out
}

const STYLE: &str = "\
*{box-sizing:border-box}\n\
body{font-family:system-ui,sans-serif;margin:0;color:#222;display:flex;align-items:flex-start}\n\
nav.toc{position:sticky;top:0;flex:none;width:17rem;height:100vh;overflow-y:auto;padding:1rem;border-right:1px solid #ddd;background:#fafafa;font-size:.85rem}\n\
nav.toc ul{list-style:none;margin:0;padding-left:0}\nnav.toc ul ul{padding-left:1rem}\n\
nav.toc li{margin:.2rem 0}\nnav.toc a{color:#234;text-decoration:none}\nnav.toc a:hover{text-decoration:underline}\n\
.toc-title{font-weight:bold;margin:0 0 .5rem}\n\
main{flex:1;min-width:0;max-width:72rem;padding:1rem 2rem 3rem}\n\
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}\n\
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}\nth{background:#f3f3f3}\n\
table.sortable th{cursor:pointer;user-select:none}\n\
table.sortable th[aria-sort=ascending]::after{content:\" \\25B2\"}\n\
table.sortable th[aria-sort=descending]::after{content:\" \\25BC\"}\n\
.warning{background:#fff3cd;border:1px solid #e0c060;padding:.75rem;font-weight:bold}\n\
figure{margin:1rem 0}\nfigure svg{max-width:100%;height:auto}\nfigcaption{font-size:.85rem;color:#555}\n\
svg .hot{fill:#000;fill-opacity:0}\nsvg .hot:hover{fill-opacity:.12}\n\
code{font-size:.9em;background:#f3f3f3;padding:0 .2em}\n\
@media (max-width:60rem){body{display:block}nav.toc{position:static;width:auto;height:auto;border-right:0;border-bottom:1px solid #ddd}}\n\
@media print{nav.toc{display:none}}\n";

/// Click a header to sort its table (again to reverse). A column whose
/// cells all start with a number (after `[`, `(`, `$`; `n/a` and `-`
/// aside) sorts numerically, those two last; any other sorts as text.
/// Ties keep the report's order. No network, no storage, no globals.
const SCRIPT: &str = r#"(function () {
  "use strict";
  function num(text) {
    var m = /^[\[(]?\$?([-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?)/i.exec(text.trim());
    return m ? parseFloat(m[1].replace(/,/g, "")) : NaN;
  }
  function blank(text) {
    var t = text.trim();
    return t === "" || t === "-" || t === "n/a";
  }
  function sortBy(table, th, col) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var numeric = rows.every(function (r) {
      var t = r.cells[col] ? r.cells[col].textContent : "";
      return blank(t) || !isNaN(num(t));
    });
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    var keyed = rows.map(function (r, i) {
      var t = r.cells[col] ? r.cells[col].textContent : "";
      return { row: r, i: i, t: t, n: blank(t) ? NaN : num(t) };
    });
    keyed.sort(function (a, b) {
      var c = 0;
      if (numeric) {
        var an = isNaN(a.n), bn = isNaN(b.n);
        if (an || bn) {
          return an === bn ? a.i - b.i : (an ? 1 : -1);
        }
        c = a.n - b.n;
      } else {
        c = a.t < b.t ? -1 : (a.t > b.t ? 1 : 0);
      }
      return c !== 0 ? c * dir : a.i - b.i;
    });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
      h.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    keyed.forEach(function (k) { body.appendChild(k.row); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.addEventListener("click", function () { sortBy(table, th, col); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, th, col); }
      });
    });
  });
})();
"#;

/// One self-contained page: a sidebar with a link to every section, the
/// blocks, sortable tables and figures whose marks name their values on
/// hover (`<title>` in the SVG). No external resource of any kind.
pub fn render_html(title: &str, doc: &[Block]) -> String {
    let ids = heading_ids(doc);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n",
        html_escape(title)
    );
    out.push_str(&nav(doc, &ids));
    out.push_str("<main>\n");
    for (block, id) in doc.iter().zip(&ids) {
        match block {
            Block::Heading(level, text) => {
                let id = id
                    .as_ref()
                    .map_or_else(String::new, |id| format!(" id=\"{id}\""));
                out.push_str(&format!("<h{level}{id}>{}</h{level}>\n", inline_html(text)))
            }
            Block::Para(text) => out.push_str(&format!("<p>{}</p>\n", inline_html(text))),
            Block::Warning(text) => {
                out.push_str(&format!("<p class=\"warning\">{}</p>\n", inline_html(text)))
            }
            Block::List(items) => {
                out.push_str("<ul>\n");
                for item in items {
                    out.push_str(&format!("<li>{}</li>\n", inline_html(item)));
                }
                out.push_str("</ul>\n");
            }
            Block::Figure { caption, svg } => {
                // The SVG comes from our own plotting code, not user text.
                out.push_str(&format!(
                    "<figure>\n{svg}\n<figcaption>{}</figcaption>\n</figure>\n",
                    inline_html(caption)
                ));
            }
            Block::Table(header, rows) => {
                out.push_str("<table class=\"sortable\">\n<thead><tr>");
                for h in header {
                    out.push_str(&format!(
                        "<th scope=\"col\" tabindex=\"0\">{}</th>",
                        inline_html(h)
                    ));
                }
                out.push_str("</tr></thead>\n<tbody>\n");
                for row in rows {
                    out.push_str("<tr>");
                    for c in row {
                        out.push_str(&format!("<td>{}</td>", inline_html(c)));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody>\n</table>\n");
            }
        }
    }
    out.push_str("</main>\n<script>\n");
    out.push_str(SCRIPT);
    out.push_str("</script>\n</body>\n</html>\n");
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

    fn doc() -> Vec<Block> {
        vec![
            Block::Heading(1, "T".into()),
            Block::Heading(2, "Summary".into()),
            Block::Para("see `a < b` & more".into()),
            Block::Heading(3, "Cost per request (request mix)".into()),
            Block::Heading(2, "Summary".into()),
            Block::Table(header(&["x", "y"]), vec![vec!["1".into(), "`q`".into()]]),
        ]
    }

    #[test]
    fn html_has_a_sidebar_of_unique_section_links() {
        let html = render_html("T", &doc());
        assert!(html.contains("<h2 id=\"s-summary\">Summary</h2>"));
        assert!(html.contains("<h2 id=\"s-summary-2\">Summary</h2>"));
        assert!(html.contains(
            "<h3 id=\"s-cost-per-request-request-mix\">Cost per request (request mix)</h3>"
        ));
        let nav = &html[html.find("<nav").unwrap()..html.find("</nav>").unwrap()];
        for id in ["s-summary", "s-summary-2", "s-cost-per-request-request-mix"] {
            assert!(nav.contains(&format!("href=\"#{id}\"")), "{nav}");
        }
        // The title (h1) is not a section.
        assert!(!nav.contains(">T<"));
        assert_eq!(html, render_html("T", &doc()), "deterministic");
    }

    #[test]
    fn html_tables_sort_and_code_spans_render() {
        let html = render_html("T", &doc());
        assert!(html.contains("<table class=\"sortable\">\n<thead><tr><th"));
        assert!(html.contains("<tbody>\n<tr><td>1</td><td><code>q</code></td></tr>"));
        assert!(html.contains("<p>see <code>a &lt; b</code> &amp; more</p>"));
        assert!(html.contains("<script>") && html.contains("table.sortable"));
        // Self-contained: nothing is fetched.
        for needle in ["src=", "<link", "url(", "http://", "https://", "@import"] {
            assert!(!html.contains(needle), "{needle}");
        }
        assert_eq!(inline_html("a ` b"), "a ` b");
        assert_eq!(inline_html("`x` and `y"), "<code>x</code> and `y");
    }
}
