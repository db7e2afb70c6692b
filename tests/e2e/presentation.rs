//! How the report presents its evidence: the answer first (the summary),
//! every printed number backed by a claim or a table row
//! (`assay_report::backing`), spec inputs traceable to their field, and an
//! HTML page that renders in a real browser without errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use assay_report::ReportJson;
use assay_report::backing::unbacked_numbers;
use serde_json::Value;

use crate::support::{FIXTURE, Workspace, assay};

const SCALING: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/e2e/specs/scaling.yaml"
);
const TR118: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../specs/program/tr118-validation.yaml"
);
const QUICKSTART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/quickstart.yaml");

fn report_json(ws: &Workspace) -> ReportJson {
    serde_json::from_slice(&ws.report("report.json")).unwrap()
}

fn report_md(ws: &Workspace) -> String {
    String::from_utf8(ws.report("report.md")).unwrap()
}

/// A shipped or fixture spec, writing its report where `Workspace::report`
/// reads.
fn workspace_for(path: &str) -> Workspace {
    let text = std::fs::read_to_string(path).unwrap();
    let dir = text
        .lines()
        .find_map(|l| {
            let at = l.find("dir: ")? + "dir: ".len();
            Some(l[at..].split([',', ' ', '}']).next()?.to_string())
        })
        .unwrap();
    Workspace::with_spec(&text.replacen(&format!("dir: {dir}"), "dir: reports/e2e", 1))
}

/// The e2e fixture with energy sampled (1 ms polling resolves the longer
/// simulated windows only).
fn with_energy() -> Workspace {
    let text = std::fs::read_to_string(FIXTURE).unwrap().replace(
        "fit:",
        "energy: { poll_ms: 1, min_samples: 2, idle_ms: 20 }\nfit:",
    );
    Workspace::with_spec(&text)
}

/// The e2e fixture with success counts per model (an external
/// evaluation): the model is chosen by cost per successful outcome.
fn with_quality() -> Workspace {
    let ws = Workspace::new();
    std::fs::write(
        ws.path().join("quality.jsonl"),
        "{\"model\": \"tiny\", \"successes\": 52, \"trials\": 100}\n\
         {\"model\": \"small\", \"successes\": 61, \"trials\": 100}\n\
         {\"model\": \"mid\", \"successes\": 97, \"trials\": 100}\n",
    )
    .unwrap();
    ws.edit(
        "outputs: { dir: reports/e2e",
        "quality: { file: quality.jsonl }\noutputs: { dir: reports/e2e",
    );
    ws
}

/// The quickstart with its two models shrunk and 3 repetitions: measured
/// data (candle), so its decisions are real ones.
fn tiny_quickstart() -> Workspace {
    let text = std::fs::read_to_string(QUICKSTART).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = if line.starts_with("  - { name: llama-4x256,") {
            "  - { name: llama-4x256, synthetic: { arch: llama, layers: 2, hidden: 64, heads: 4, kv_heads: 2, vocab: 300, max_positions: 1024, seed: 1 } }".to_string()
        } else if line.starts_with("  - { name: llama-8x512,") {
            "  - { name: llama-8x512, synthetic: { arch: llama, layers: 3, hidden: 96, heads: 4, kv_heads: 4, vocab: 300, max_positions: 1024, seed: 1 } }".to_string()
        } else if line.trim_start().starts_with("repetitions:") {
            "  repetitions: 3".to_string()
        } else if line.trim_start().starts_with("dir: reports/quickstart") {
            "  dir: reports/e2e".to_string()
        } else {
            line.to_string()
        };
        out.push(line);
    }
    Workspace::with_spec(&(out.join("\n") + "\n"))
}

fn assert_backed(name: &str, ws: &Workspace) {
    let md = report_md(ws);
    let unbacked = unbacked_numbers(&md, &report_json(ws));
    assert!(
        unbacked.is_empty(),
        "{name}: {} number(s) in the report's prose that no claim backs \
         (the rule: assay_report::backing):\n{}",
        unbacked.len(),
        unbacked
            .iter()
            .map(|u| format!("  {u}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn every_number_in_the_report_is_backed() {
    // The simulated fixtures: the e2e fixture, with energy, with quality
    // counts, the scaling report and the trust report (injected faults,
    // excluded runs).
    for (name, ws) in [
        ("sim.yaml", Workspace::new()),
        ("sim.yaml with energy", with_energy()),
        ("sim.yaml with quality", with_quality()),
        ("scaling.yaml", workspace_for(SCALING)),
        ("tr118-validation.yaml", workspace_for(TR118)),
    ] {
        ws.run(&[]);
        assert_backed(name, &ws);
    }
}

#[test]
fn the_summary_comes_first_and_its_figures_are_the_decision_claims() {
    // Measured data (candle, tiny models): the decisions are real.
    let ws = tiny_quickstart();
    ws.run(&[]);
    let md = report_md(&ws);
    let report = report_json(&ws);
    assert_eq!(report.evidence, "measured");
    let headings: Vec<&str> = md.lines().filter(|l| l.starts_with('#')).collect();
    // Title, then the summary and its parts, then the evidence.
    assert_eq!(headings[0], format!("# {}", report.title));
    assert_eq!(headings[1], "## Summary");
    assert_eq!(headings[2], "### Decisions");
    assert_eq!(headings[3], "### Not decided");
    assert_eq!(headings[4], "### Top risks");
    assert_eq!(headings[5], "## Measurement boundary");
    let summary = &md[md.find("## Summary").unwrap()..md.find("## Measurement boundary").unwrap()];
    assert!(summary.contains(&format!("Question: {}", report.question)));
    assert!(summary.contains(&format!("Decision it feeds: {}", report.decision)));
    // One backend measured per model: each class with a scenario gets a
    // backend per model; the choice between the models needs quality data.
    let decided: Vec<&str> = summary
        .lines()
        .filter(|l| l.starts_with("- ") && l.contains("serve on candle-cpu"))
        .collect();
    assert!(!decided.is_empty(), "{summary}");
    let claim = |id: &str| {
        report
            .claims
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no claim {id}"))
    };
    for line in &decided {
        // `... (95% CI lo to hi); no other backend was measured in every scenario of the class. Claim `ID`.`
        let id = line.split('`').nth(1).unwrap();
        assert!(id.starts_with("decision/") && id.ends_with("/recommendation"));
        let value = claim(id).value;
        let stem = id
            .trim_start_matches("decision/")
            .trim_end_matches("/recommendation");
        let low = claim(&format!("summary/{stem}/ci_low")).value;
        let high = claim(&format!("summary/{stem}/ci_high")).value;
        assert!(low <= value && value <= high, "{line}");
        // The value is the last number before the interval (the unit
        // follows it and may have words of its own).
        let (head, ci) = line.split_once(" (95% CI ").unwrap();
        let shown: f64 = head
            .split(' ')
            .filter_map(|w| w.parse::<f64>().ok())
            .next_back()
            .unwrap();
        assert!(
            (shown - value).abs() <= 5e-4 * value.abs(),
            "{line}: {value}"
        );
        let (lo, hi) = ci.split_once(')').unwrap().0.split_once(" to ").unwrap();
        assert!((lo.parse::<f64>().unwrap() - low).abs() <= 5e-4 * low.abs());
        assert!((hi.parse::<f64>().unwrap() - high).abs() <= 5e-4 * high.abs());
    }
    assert!(
        summary.contains("| Interactive chat, which model | chat, chat_long |"),
        "{summary}"
    );
    // The long-context class has no scenario in the quickstart.
    assert!(
        summary.contains("| Long-context summarisation | none |"),
        "{summary}"
    );
    // The top risks are Risks and limits' items, not a second section.
    let limits = &md[md.find("## Risks and limits").unwrap()..];
    let top = &summary[summary.find("### Top risks").unwrap()..];
    let risks: Vec<&str> = top.lines().filter(|l| l.starts_with("- ")).collect();
    assert!(!risks.is_empty() && risks.len() <= 3);
    assert!(risks.iter().all(|r| limits.contains(r)), "{top}");
    assert_eq!(md.matches("## Risks and limits").count(), 1);
    // A quickstart-like report: every number backed.
    assert_backed("tiny quickstart", &ws);
}

#[test]
fn a_spec_input_traces_to_the_spec_field() {
    let ws = Workspace::new();
    ws.run(&[]);
    let md = report_md(&ws);
    assert!(md.contains("mean load 385.8 tokens/s"), "{md}");
    let report = report_json(&ws);
    let c = report
        .claims
        .iter()
        .find(|c| c.id == "capacity/mean_load_tokens_per_s")
        .unwrap();
    assert_eq!(c.source.node, "spec");
    // The digest of the value the spec states (`1.0e9`, canonical form).
    assert_eq!(
        c.source.digest,
        assay_report::spec_field_digest(&serde_json::json!(1_000_000_000))
    );
    assert_eq!(c.source.key, c.source.digest);
    assert_eq!(c.source.field.as_deref(), Some("cost.tokens_per_month"));
    assert!((c.value - 1e9 / 2_592_000.0).abs() < 1e-9);
    let out = assay(&[
        "trace",
        "capacity/mean_load_tokens_per_s",
        "--spec",
        ws.spec.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hop = &t["chain"][0];
    assert_eq!(t["chain"].as_array().unwrap().len(), 1, "{t}");
    assert_eq!(hop["hop"], "field");
    assert_eq!(hop["field"], "cost.tokens_per_month");
    assert_eq!(hop["value"].as_f64(), Some(1e9));
    // The readable form names the field and its value.
    let text = assay(&[
        "trace",
        "spec/cost/burst_factor",
        "--spec",
        ws.spec.to_str().unwrap(),
    ]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("cost.burst_factor = 5"), "{text}");
    // Once the spec states another value, the trace says so.
    ws.edit("burst_factor: 5", "burst_factor: 4");
    let stale = assay(&[
        "trace",
        "spec/cost/burst_factor",
        "--spec",
        ws.spec.to_str().unwrap(),
        "--json",
    ]);
    let t: Value = serde_json::from_slice(&stale.stdout).unwrap();
    assert!(
        t["chain"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("the spec changed since the report was written"),
        "{t}"
    );
}

/// Chromium on PATH: Debian's `chromium` (installed by .ci/run), or
/// another build under its usual names.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// Headless Chromium on `page` with `extra` arguments, no network (every
/// host name fails to resolve), a throwaway profile, killed after 120 s.
fn headless(chrome: &Path, profile: &Path, page: &Path, extra: &[String]) -> std::process::Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("120").arg(chrome).args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        &format!("--user-data-dir={}", profile.display()),
    ]);
    cmd.args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap()
}

/// The console messages Chromium logged (`--enable-logging=stderr`):
/// lines such as `[...:INFO:CONSOLE(12)] "Uncaught ...", source: ...`.
fn console_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.contains("CONSOLE"))
        .map(str::to_string)
        .collect()
}

/// The value of `data-NAME="..."` on the page's body in a dumped DOM.
fn data_attr<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("data-{name}=\"");
    let at = dom.find(&key)? + key.len();
    Some(&dom[at..at + dom[at..].find('"')?])
}

/// What the page's script and a probe see after clicking a column header
/// of the results table twice: errors, the column's cells after each click
/// and the header's `aria-sort`.
const PROBE: &str = r#"<script>
(function () {
  var table = Array.prototype.find.call(document.querySelectorAll("table.sortable"), function (t) {
    return Array.prototype.some.call(t.tHead.rows[0].cells, function (h) { return h.textContent === "median ms"; });
  });
  var col = Array.prototype.findIndex.call(table.tHead.rows[0].cells, function (h) { return h.textContent === "median ms"; });
  var th = table.tHead.rows[0].cells[col];
  function column() {
    return Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[col].textContent; }).join(";");
  }
  var before = column();
  th.click();
  var asc = column(), ascAria = th.getAttribute("aria-sort");
  th.click();
  var desc = column(), descAria = th.getAttribute("aria-sort");
  var b = document.body;
  b.setAttribute("data-errors", String(window.__errors.length) + ":" + window.__errors.join(";"));
  b.setAttribute("data-before", before);
  b.setAttribute("data-asc", asc + "|" + ascAria);
  b.setAttribute("data-desc", desc + "|" + descAria);
  b.setAttribute("data-hover", String(document.querySelectorAll("svg rect.hot > title").length));
  b.setAttribute("data-nav", String(document.querySelectorAll("nav.toc a[href^='#']").length));
})();
</script>
"#;

const ERRORS: &str = "<script>window.__errors = []; window.addEventListener(\"error\", function (e) { window.__errors.push(String(e.message)); });</script>\n";

#[test]
fn html_report_renders_in_headless_chromium() {
    let ws = Workspace::new();
    ws.run(&[]);
    let page = ws.path().join("reports/e2e/report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    // One self-contained file: nothing to fetch (the SVG namespace is a
    // name, not a request).
    let without_ns = html
        .replace("xmlns=\"http://www.w3.org/2000/svg\"", "")
        .replace("xmlns:xlink=\"http://www.w3.org/1999/xlink\"", "");
    for needle in ["src=", "<link", "url(", "@import", "http:", "https:"] {
        assert!(!without_ns.contains(needle), "report.html has {needle}");
    }
    assert!(html.contains("<nav class=\"toc\""));
    assert!(html.contains("<rect class=\"hot\""));

    let Some(chrome) = chromium() else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true but no chromium on PATH (.ci/run installs Debian's chromium)"
        );
        eprintln!(
            "skipped: no chromium on PATH, so report.html was not rendered in a browser \
             (install Debian's `chromium`; under CI=true this test fails instead)"
        );
        return;
    };
    // 1. The page as written: a screenshot, and a console free of messages
    // (the page logs nothing, so any console line is an error or warning).
    let shot = ws.path().join("shot.png");
    let out = headless(
        &chrome,
        &ws.path().join("profile-1"),
        &page,
        &[
            "--enable-logging=stderr".into(),
            "--v=0".into(),
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000".into(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(console_lines(&out.stderr), Vec::<String>::new());
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let dim = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((dim(16), dim(20)), (1280, 2000), "IHDR width, height");
    // A blank 1280x2000 page compresses to a few kB; text, tables and the
    // sidebar do not.
    assert!(png.len() > 40_000, "screenshot of {} bytes", png.len());

    // 2. The script at work: a copy of the page with an error recorder
    // first and a probe last, which clicks the results table's `median ms`
    // header twice; --dump-dom prints the DOM after the scripts ran.
    let probed = ws.path().join("probed.html");
    let text = html
        .replacen("<head>\n", &format!("<head>\n{ERRORS}"), 1)
        .replacen("</body>", &format!("{PROBE}</body>"), 1);
    std::fs::write(&probed, text).unwrap();
    let out = headless(
        &chrome,
        &ws.path().join("profile-2"),
        &probed,
        &["--dump-dom".into()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8(out.stdout).unwrap();
    assert_eq!(data_attr(&dom, "errors"), Some("0:"), "script errors");
    let numbers =
        |cells: &str| -> Vec<f64> { cells.split(';').map(|c| c.parse().unwrap()).collect() };
    let before = numbers(data_attr(&dom, "before").unwrap());
    let (asc, aria) = data_attr(&dom, "asc").unwrap().split_once('|').unwrap();
    assert_eq!(aria, "ascending");
    let asc = numbers(asc);
    let mut sorted = before.clone();
    sorted.sort_by(f64::total_cmp);
    assert_ne!(before, sorted, "the fixture's column starts unsorted");
    assert_eq!(asc, sorted, "numeric ascending sort");
    let (desc, aria) = data_attr(&dom, "desc").unwrap().split_once('|').unwrap();
    assert_eq!(aria, "descending");
    sorted.reverse();
    assert_eq!(numbers(desc), sorted);
    // Hover values on the figures, and a sidebar link per section.
    let hover: usize = data_attr(&dom, "hover").unwrap().parse().unwrap();
    assert_eq!(hover, html.matches("<rect class=\"hot\"").count());
    assert!(hover > 0);
    let sections = html.matches("<h2 id=").count() + html.matches("<h3 id=").count();
    assert_eq!(
        data_attr(&dom, "nav").unwrap().parse::<usize>().unwrap(),
        sections
    );
}
