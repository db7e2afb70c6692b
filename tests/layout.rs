//! The layout is the architecture (docs/architecture.md), so the compiler
//! and these tests enforce it:
//! - the crate graph: every workspace crate has a layer, and a crate depends
//!   only on crates of lower layers (testkit only as a dev-dependency);
//! - no module cycles: within every crate, sibling modules never import each
//!   other in a circle (test modules excluded).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

/// The layers, lowest first. A crate may depend on crates of lower layers
/// only. `assay-testkit` is a dev-dependency only.
const LAYERS: &[(&str, u32)] = &[
    ("assay-store", 0),
    ("assay-core", 1),
    ("assay-model", 2),
    ("assay-measure", 3),
    ("assay-analysis", 4),
    ("assay-report", 5),
    ("assay-engine", 6),
];
const TEST_ONLY: &str = "assay-testkit";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("engine/ has a parent")
        .to_path_buf()
}

fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

#[test]
fn crate_graph_follows_the_layers() {
    let layers: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let meta = metadata();
    let packages = meta["packages"].as_array().expect("packages");
    let members: BTreeSet<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    let mut wrong = Vec::new();
    for p in packages {
        let name = p["name"].as_str().expect("name");
        if name == TEST_ONLY {
            continue;
        }
        let Some(&layer) = layers.get(name) else {
            wrong.push(format!(
                "{name} has no layer: add it to LAYERS here and to docs/architecture.md"
            ));
            continue;
        };
        for dep in p["dependencies"].as_array().expect("dependencies") {
            let dep_name = dep["name"].as_str().expect("dependency name");
            if !members.contains(dep_name) {
                continue;
            }
            let dev = dep["kind"].as_str() == Some("dev");
            let ok = match layers.get(dep_name) {
                Some(&l) => l < layer || (dev && l <= layer),
                None => dep_name == TEST_ONLY && dev,
            };
            if !ok {
                let kind = if dev { "dev-dependency" } else { "dependency" };
                wrong.push(format!(
                    "{name} (layer {layer}) has the {kind} {dep_name}, which is not below it"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "crate graph:\n{}", wrong.join("\n"));
}

/// A module path inside its crate: `[]` for lib.rs, `["a", "b"]` for
/// a/b.rs or a/b/mod.rs.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text without `//` comments and without `#[cfg(test)]` items (found
/// by brace matching), so that test helpers do not count as dependencies.
fn production_code(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "#[cfg(test)]" {
            // Skip the gated item: up to its matching closing brace, or to
            // the end of a one-line item.
            let mut depth = 0i32;
            let mut opened = false;
            i += 1;
            while i < lines.len() {
                for c in lines[i].chars() {
                    match c {
                        '{' => {
                            depth += 1;
                            opened = true;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                let line_ends_item = lines[i].trim_end().ends_with(';') && !opened;
                i += 1;
                if (opened && depth == 0) || line_ends_item {
                    break;
                }
            }
            continue;
        }
        out.push_str(lines[i]);
        out.push('\n');
        i += 1;
    }
    out
}

/// Every path that starts with `crate::` or `super::` in `code`, as its
/// segments after the root and the root (`None` for crate, the number of
/// `super`s otherwise). Grouped imports (`crate::{a, b::c}`) give one path
/// per member.
fn paths(code: &str) -> Vec<(Option<usize>, Vec<String>)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != b':';
        let (root, mut j) = if starts_word && bytes[i..].starts_with(b"crate::") {
            (None, i + 7)
        } else if starts_word && bytes[i..].starts_with(b"super::") {
            let mut n = 1;
            let mut j = i + 7;
            while bytes[j..].starts_with(b"super::") {
                n += 1;
                j += 7;
            }
            (Some(n), j)
        } else {
            i += 1;
            continue;
        };
        let mut prefix = Vec::new();
        loop {
            if bytes[j..].starts_with(b"{") {
                // A group: split its members at depth 0.
                let body_start = j + 1;
                let mut depth = 1;
                let mut k = body_start;
                while k < bytes.len() && depth > 0 {
                    match bytes[k] {
                        b'{' => depth += 1,
                        b'}' => depth -= 1,
                        _ => {}
                    }
                    k += 1;
                }
                let body = &code[body_start..k.saturating_sub(1)];
                let mut d = 0;
                let mut member = String::new();
                for c in body.chars().chain(std::iter::once(',')) {
                    match c {
                        '{' => d += 1,
                        '}' => d -= 1,
                        ',' if d == 0 => {
                            let first: Vec<String> = member
                                .trim()
                                .split("::")
                                .map(|s| s.trim().to_string())
                                .take_while(|s| !s.is_empty() && s.bytes().all(is_ident))
                                .collect();
                            let mut p = prefix.clone();
                            p.extend(first);
                            found.push((root, p));
                            member.clear();
                            continue;
                        }
                        _ => {}
                    }
                    member.push(c);
                }
                j = k;
                break;
            }
            let start = j;
            while j < bytes.len() && is_ident(bytes[j]) {
                j += 1;
            }
            if j > start {
                prefix.push(code[start..j].to_string());
            }
            if bytes[j..].starts_with(b"::") && j > start {
                j += 2;
            } else {
                found.push((root, prefix));
                break;
            }
        }
        i = j.max(i + 1);
    }
    found
}

struct Crate {
    name: String,
    src: PathBuf,
}

fn crates() -> Vec<Crate> {
    let meta = metadata();
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let manifest = PathBuf::from(p["manifest_path"].as_str().expect("manifest path"));
            Crate {
                name: p["name"].as_str().expect("name").to_string(),
                src: manifest.parent().expect("crate dir").join("src"),
            }
        })
        .collect()
}

/// Sibling-level module edges of one crate: for a reference from module `m`
/// to module `t`, the edge between the children of their common parent that
/// contain them (references to an ancestor or descendant are structure, not
/// a dependency between siblings). Each edge keeps where it was seen.
fn sibling_edges(src: &Path) -> BTreeMap<(String, String), Vec<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let mut edges: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for file in &files {
        let here = module_of(src, file);
        let text = std::fs::read_to_string(file).expect("readable source");
        for (root, segments) in paths(&production_code(&text)) {
            let mut full = match root {
                None => Vec::new(),
                Some(n) => here[..here.len().saturating_sub(n)].to_vec(),
            };
            full.extend(segments);
            // The longest prefix that is a module of this crate.
            let target = (0..=full.len())
                .rev()
                .map(|n| full[..n].to_vec())
                .find(|p| modules.contains(p))
                .unwrap_or_default();
            let common = here.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common == here.len() || common == target.len() {
                continue;
            }
            let name = |m: &[String]| m[..=common].join("::");
            let shown = file.strip_prefix(workspace_root()).unwrap_or(file);
            edges
                .entry((name(&here), name(&target)))
                .or_default()
                .push(format!("{} -> {}", shown.display(), full.join("::")));
        }
    }
    edges
}

#[test]
fn no_module_cycles_in_any_crate() {
    let mut cycles = Vec::new();
    for krate in crates() {
        let edges = sibling_edges(&krate.src);
        let mut graph: DiGraph<&str, ()> = DiGraph::new();
        let mut index: BTreeMap<&str, NodeIndex> = BTreeMap::new();
        for (a, b) in edges.keys() {
            let (a, b) = (a.as_str(), b.as_str());
            let ia = *index.entry(a).or_insert_with(|| graph.add_node(a));
            let ib = *index.entry(b).or_insert_with(|| graph.add_node(b));
            graph.add_edge(ia, ib, ());
        }
        for scc in tarjan_scc(&graph) {
            if scc.len() < 2 {
                continue;
            }
            let members: BTreeSet<&str> = scc.iter().map(|&n| graph[n]).collect();
            let mut why = Vec::new();
            for ((a, b), seen) in &edges {
                if members.contains(a.as_str()) && members.contains(b.as_str()) {
                    why.push(format!("  {a} -> {b}: {}", seen[0]));
                }
            }
            cycles.push(format!(
                "{}: {}\n{}",
                krate.name,
                members.iter().copied().collect::<Vec<_>>().join(", "),
                why.join("\n")
            ));
        }
    }
    assert!(
        cycles.is_empty(),
        "module cycles (sibling modules that import each other):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_cycle_finder_sees_a_cycle() {
    // The finder itself must be able to fail: two sibling modules that use
    // each other form a cycle; a child using its parent does not.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\n").unwrap();
    std::fs::write(
        src.join("a/mod.rs"),
        "pub mod x;\nuse crate::b::thing;\npub fn f() {}\n",
    )
    .unwrap();
    std::fs::write(src.join("a/x.rs"), "use super::f;\n").unwrap();
    std::fs::write(
        src.join("b.rs"),
        "use crate::{a::{self, f}, b as _};\npub fn thing() {}\n#[cfg(test)]\nmod tests {\n    use crate::a::x;\n}\n",
    )
    .unwrap();
    let edges = sibling_edges(src);
    let pairs: BTreeSet<(&str, &str)> = edges
        .keys()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(pairs, BTreeSet::from([("a", "b"), ("b", "a")]));
}
