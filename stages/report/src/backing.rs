//! Which numbers of a rendered `report.md` are backed: the rule an auditor
//! (and the e2e test `report_numbers::every_number_in_the_report_is_backed`)
//! applies so that every number the report prints is a claim in
//! report.json or a row of a table.
//!
//! **Tables.** A number in a table row (a line starting with `|`, header
//! included) is backed by its table: every table renders the rows of an
//! artifact named in the artifact chain, or the spec's own entries
//! (boundary, scenarios, request mix).
//!
//! **Prose** (paragraphs, list items, warnings, headings and figure
//! captions). First the spec's own words are set aside: the title, the
//! question and the decision, quoted verbatim; then code spans
//! (`` `...` ``), which hold formulas, field names and the method's
//! literals, never results. What is left is split into words at white
//! space, and each word loses its surrounding punctuation. A number in a
//! word is backed when the word or its neighbour makes it one of:
//!
//! 1. **Part of a name**: the word has a letter that is not a value's
//!    affix, e.g. `llama-4x256`, `sim/tiny/micro`, `p95`, `f32`, `AN.1`,
//!    `V.5`, `TR122`, `R^2`, `1M`, `30-day`. The affixes `x` (`1.18x`,
//!    `x0.5`), `$` and `%`, and a unit written onto the number (`61.6s`,
//!    `12ms`, `3.5GB`), keep a word a value; so does a name before `=`
//!    (`n=5` is the value 5).
//! 2. **A reference**: the previous word is `Appendix`, `rule`, `risk`,
//!    `step`, `section` or `item` (`AM rule 7`, `Appendix T risk 10`).
//! 3. **A threshold**: the previous word is a comparison (`<`, `<=`, `>`,
//!    `>=`, `≤`, `≥`, or `than`, `least`, `most`, `below`, `above` as in
//!    "fewer than 3", "at least 2", "a determinant below 0.01"): the limit a
//!    rule compares against, a constant of the method (the seed's) or of
//!    the spec, not a result.
//! 4. **A unit or a configuration label**: the previous word is `per`
//!    (`$ per 1,000 requests`), or a configuration dimension (`batch`,
//!    `prompt`, `gen`, `prompt_tokens`, `gen_tokens`, `threads`, `burst`),
//!    whose values the spec's tables and the sensitivity table list, or
//!    the shift of a sensitivity variation (`long share -0.2`,
//!    `spot price x0.5`): the what-ifs the sensitivity table names.
//! 5. **The interval level** `95%`, the level of every interval the
//!    report prints (its definition is in docs/formulas.md).
//! 6. **A claim's value as rendered**: a claim in report.json has a value
//!    that rounds to the printed number at the printed number of decimals
//!    (`385.8` is backed by 385.802...; a percentage also by its fraction).
//!
//! Anything else is unbacked. Rule 6 checks that some claim carries the
//! value; that it is the right claim is what the claim's id and statement
//! say, and what `assay trace` follows.

use crate::ReportJson;

/// A number in prose that nothing backs.
#[derive(Debug, Clone, PartialEq)]
pub struct Unbacked {
    /// 1-based line in report.md.
    pub line: usize,
    /// The number as printed.
    pub number: String,
    /// The line it is on.
    pub text: String,
}

impl std::fmt::Display for Unbacked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {} in {:?}", self.line, self.number, self.text)
    }
}

/// Every number of `md`'s prose that no claim of `report` and no rule above
/// backs, in line order.
pub fn unbacked_numbers(md: &str, report: &ReportJson) -> Vec<Unbacked> {
    let values: Vec<f64> = report
        .claims
        .iter()
        .map(|c| c.value)
        .filter(|v| v.is_finite())
        .collect();
    let spec_text: Vec<&str> = [
        report.title.as_str(),
        report.question.as_str(),
        report.decision.as_str(),
    ]
    .into_iter()
    .filter(|t| !t.trim().is_empty())
    .collect();
    let mut out = Vec::new();
    for (i, line) in md.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('|') {
            continue;
        }
        let mut text = trimmed.to_string();
        for quoted in &spec_text {
            text = text.replace(quoted, " ");
        }
        let text = without_code_spans(&text);
        for number in prose_numbers(&text) {
            if !number.structural && !backed_by_claim(&number, &values) {
                out.push(Unbacked {
                    line: i + 1,
                    number: number.printed,
                    text: line.to_string(),
                });
            }
        }
    }
    out
}

/// `s` with every paired code span blanked.
fn without_code_spans(s: &str) -> String {
    let parts: Vec<&str> = s.split('`').collect();
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 1 && i + 1 < parts.len() {
            out.push(' ');
        } else {
            out.push_str(part);
        }
    }
    out
}

/// One number found in prose.
#[derive(Debug, Clone, PartialEq)]
struct Number {
    printed: String,
    value: f64,
    /// Digits after the decimal point, as printed.
    decimals: i32,
    percent: bool,
    /// Backed by rules 1 to 5 (no claim needed).
    structural: bool,
}

const REFERENCE: [&str; 6] = ["appendix", "rule", "risk", "step", "section", "item"];
const COMPARISON: [&str; 11] = [
    "<", "<=", ">", ">=", "≤", "≥", "than", "least", "most", "below", "above",
];
const LABEL: [&str; 10] = [
    "per",
    "batch",
    "burst",
    "prompt",
    "gen",
    "prompt_tokens",
    "gen_tokens",
    "threads",
    "share",
    "price",
];

fn strip(word: &str) -> &str {
    word.trim_start_matches(['(', '[', '{', '"', '\'', '*', '>'])
        .trim_end_matches([')', ']', '}', '"', '\'', '*', ',', ';', ':', '.', '!', '?'])
}

fn prose_numbers(text: &str) -> Vec<Number> {
    let mut out = Vec::new();
    let mut prev = String::new();
    for raw in text.split_whitespace() {
        let word = strip(raw);
        let context = REFERENCE.contains(&prev.as_str())
            || COMPARISON.contains(&prev.as_str())
            || LABEL.contains(&prev.as_str());
        // A name before `=` names the value after it.
        let value_part = word.rsplit_once('=').map_or(word, |(_, v)| v);
        // A unit written onto the number (`61.6s`, `12ms`) keeps it a value.
        let bare = &value_part[..value_part.len() - unit_suffix_len(value_part)];
        let has_name_letter = bare
            .char_indices()
            .any(|(i, c)| c.is_alphabetic() && !is_affix(bare, i, c));
        if value_part.chars().any(|c| c.is_ascii_digit()) {
            for mut n in numbers_in(value_part) {
                n.structural = has_name_letter || context || n.printed == "95%";
                out.push(n);
            }
        }
        prev = raw
            .trim_matches(|c: char| matches!(c, '(' | ')' | ',' | ';' | ':' | '"'))
            .to_lowercase();
    }
    out
}

/// Units a number may carry without a space; a word that is a number and
/// one of these is a value, not a name.
const UNITS: [&str; 21] = [
    "ms", "s", "us", "µs", "ns", "h", "W", "kW", "J", "kJ", "Wh", "kWh", "GB", "MB", "kB", "GiB",
    "MiB", "KiB", "Hz", "MHz", "GHz",
];

/// Bytes of a unit from `UNITS` that ends `word` right after a digit.
fn unit_suffix_len(word: &str) -> usize {
    UNITS
        .iter()
        .filter(|u| {
            word.strip_suffix(**u)
                .is_some_and(|head| head.ends_with(|c: char| c.is_ascii_digit()))
        })
        .map(|u| u.len())
        .max()
        .unwrap_or(0)
}

/// Whether the letter `c` at byte `i` of `word` is a value's affix: an `x`
/// right before or after the number (`x0.5`, `1.18x`).
fn is_affix(word: &str, i: usize, c: char) -> bool {
    if c != 'x' {
        return false;
    }
    let before = word[..i].chars().next_back();
    let after = word[i + 1..].chars().next();
    let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
    let edge = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
    (digit(before) && edge(after)) || (digit(after) && edge(before))
}

/// The numbers of a word: runs of digits with `,` thousands separators and
/// one decimal point; a sign counts at the start of the word or after `x`.
fn numbers_in(word: &str) -> Vec<Number> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut seen_point = false;
        while i < chars.len() {
            let c = chars[i];
            let next_digit = chars.get(i + 1).is_some_and(|d| d.is_ascii_digit());
            if c.is_ascii_digit() || (c == ',' && next_digit && !seen_point) {
                i += 1;
            } else if c == '.' && next_digit && !seen_point {
                seen_point = true;
                i += 1;
            } else {
                break;
            }
        }
        let digits: String = chars[start..i].iter().filter(|c| **c != ',').collect();
        let negative = start > 0
            && chars[start - 1] == '-'
            && (start == 1 || chars[start - 2] == 'x' || chars[start - 2] == '$');
        let percent = chars.get(i) == Some(&'%');
        let decimals = digits.split_once('.').map_or(0, |(_, d)| d.len() as i32);
        let Ok(value) = digits.parse::<f64>() else {
            continue;
        };
        let printed: String = chars[start..i].iter().collect();
        out.push(Number {
            printed: if percent {
                format!("{printed}%")
            } else {
                printed
            },
            value: if negative { -value } else { value },
            decimals,
            percent,
            structural: false,
        });
    }
    out
}

fn backed_by_claim(n: &Number, values: &[f64]) -> bool {
    let near = |target: f64, decimals: i32| {
        let tolerance = 0.5 * libm::pow(10.0, f64::from(-decimals)) * (1.0 + 1e-9) + 1e-12;
        values.iter().any(|v| (v - target).abs() <= tolerance)
    };
    near(n.value, n.decimals) || (n.percent && near(n.value / 100.0, n.decimals + 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Claim, ClaimSource};

    fn report(values: &[f64]) -> ReportJson {
        ReportJson {
            assay_report: 1,
            spec: "s".into(),
            title: "Title with 2 numbers 7".into(),
            question: "Which of 3 backends?".into(),
            decision: "Route 80% of chat.".into(),
            evidence: "measured".into(),
            artifacts: Vec::new(),
            claims: values
                .iter()
                .enumerate()
                .map(|(i, v)| Claim {
                    id: format!("c{i}"),
                    statement: String::new(),
                    value: *v,
                    unit: String::new(),
                    evidence: "measured".into(),
                    source: ClaimSource {
                        node: "n".into(),
                        key: String::new(),
                        artifact: "a".into(),
                        digest: String::new(),
                        rows: Vec::new(),
                        field: None,
                    },
                })
                .collect(),
        }
    }

    fn unbacked(md: &str, values: &[f64]) -> Vec<String> {
        unbacked_numbers(md, &report(values))
            .into_iter()
            .map(|u| u.number)
            .collect()
    }

    #[test]
    fn claims_back_numbers_at_their_printed_precision() {
        let md = "Mean load 385.8 tokens/s, 1000000000 tokens, burst 5 and ratio 1.176x.\n";
        assert_eq!(
            unbacked(md, &[385.80246, 1e9, 5.0, 1.17649]),
            Vec::<String>::new()
        );
        // 385.9 is not 385.80246 at one decimal; nothing backs 1.176x.
        let md = "Mean load 385.9 tokens/s and ratio 1.176x.\n";
        assert_eq!(unbacked(md, &[385.80246]), ["385.9", "1.176"]);
        // A percentage is backed by its fraction.
        assert_eq!(
            unbacked("Attainment 97.5%.\n", &[0.975]),
            Vec::<String>::new()
        );
        // x-prefixed factors and negative values are values.
        assert_eq!(unbacked("grows x3.33 and -0.2\n", &[]), ["3.33", "0.2"]);
        assert_eq!(
            unbacked("grows x3.33 and -0.2\n", &[3.3301, -0.2]),
            Vec::<String>::new()
        );
        assert_eq!(unbacked("a fit of n=5 points\n", &[]), ["5"]);
        assert_eq!(
            unbacked("in 61.6s, 12ms or 3.5GB\n", &[]),
            ["61.6", "12", "3.5"]
        );
    }

    #[test]
    fn tables_names_references_thresholds_and_spec_text_are_structural() {
        let md = "# Title with 2 numbers 7\n\
                  \n\
                  Which of 3 backends?\n\
                  \n\
                  | a | b |\n| --- | --- |\n| 12.5 | 99 |\n\
                  \n\
                  - Use llama-4x256 on sim/tiny/micro (p95, f32, TR122, AN.1, V.5, R^2, 1M).\n\
                  - See Appendix AM rule 7 and Appendix T risk 10, AN.1 step 2.\n\
                  - Decode-heavy: gen >= 64 or decode fraction > 0.9; fewer than 3 points; at least 2.\n\
                  - $ per 1,000 requests; (batch 1, prompt 128); disjoint 95% intervals.\n\
                  - flips under (long share -0.2 -> a; spot price x0.5 -> b; chat/s share +0.1 -> c).\n\
                  - Formula `usd_per_1M = 1e6 / tokens_per_s / 3600`.\n\
                  \n\
                  *Figure: Fit sim: y vs x (batch 4), with the 95% slope band (plotted in report.html).*\n";
        assert_eq!(unbacked(md, &[]), Vec::<String>::new());
        // The same numbers outside those contexts are not.
        let md = "Of 3 fits, 2 held; 64 tokens; 0.9 of the time; 90% of runs.\n";
        assert_eq!(unbacked(md, &[]), ["3", "2", "64", "0.9", "90%"]);
        let found = unbacked_numbers("ok\n\nbad 12 here\n", &report(&[]));
        assert_eq!(found[0].line, 3);
        assert_eq!(found[0].text, "bad 12 here");
    }
}
