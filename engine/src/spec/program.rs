//! A program: several specs planned into one DAG, with a conclusive report
//! across them (the seed's TR117-TR122 as one program, Appendices AT, J, L,
//! AS, T, AH.6). A program file names its members by relative path; a
//! member may itself be a program, whose member specs then join this one.
//! Loading checks the program file against its schema, loads every member
//! spec with the spec loader, and refuses, located in the program file: a
//! missing member, a cycle of programs, two members with the same id, and
//! two members whose scenarios share a name but not a shape.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use assay_measure::Scenario;
use assay_store::{Digest, canonical};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::diagnostic::{Diagnostic, Diags};
use super::load::{SpecError, check_schema, decode, load_spec_for, parse_yaml, simplify};
use super::locate::LocationMap;
use super::{LoadedSpec, OutputsSpec, Purpose};

/// Program ids are node-id prefixes; this one names the nodes that several
/// members share.
pub const SHARED: &str = "shared";

/// An assay program (format 1): member specs run as one plan, and a
/// conclusive report across them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "assay program")]
pub struct Program {
    /// Program format version. Only 1 exists.
    #[schemars(range(min = 1, max = 1))]
    pub assay_program: u32,
    /// Identifier of the program, used in its conclusive report.
    pub id: String,
    /// Title of the conclusive report.
    pub title: String,
    /// The program's own decision question.
    pub question: String,
    /// The decisions the program feeds.
    pub decision: String,
    /// Member specs (or programs), as paths relative to this file. Each
    /// member spec is known by its `id`, which must be unique.
    #[schemars(length(min = 1))]
    pub members: Vec<String>,
    /// Where the conclusive report goes; each member writes its own report
    /// where its spec says.
    pub outputs: OutputsSpec,
}

/// A program whose every member loaded and passed the cross-member checks.
#[derive(Debug, Clone)]
pub struct LoadedProgram {
    pub path: PathBuf,
    /// The program's folder: its store and report paths resolve against it.
    pub dir: PathBuf,
    pub text: String,
    pub program: Program,
    /// blake3 over the program's canonical form and every member's digest,
    /// so the program's lockfile goes stale when any member changes.
    pub digest: Digest,
    /// The member specs, nested programs flattened, in file order; a spec
    /// reached twice is listed once.
    pub members: Vec<LoadedSpec>,
}

/// What a command was given: one spec, or a program of specs.
#[derive(Debug, Clone)]
pub enum Target {
    /// Both boxed: the two differ in size, and a target is made once.
    Spec(Box<LoadedSpec>),
    Program(Box<LoadedProgram>),
}

impl Target {
    pub fn path(&self) -> &Path {
        match self {
            Target::Spec(s) => &s.path,
            Target::Program(p) => &p.path,
        }
    }

    pub fn dir(&self) -> &Path {
        match self {
            Target::Spec(s) => &s.dir,
            Target::Program(p) => &p.dir,
        }
    }

    pub fn digest(&self) -> Digest {
        match self {
            Target::Spec(s) => s.digest,
            Target::Program(p) => p.digest,
        }
    }
}

/// The JSON Schema of a program file.
pub fn program_schema() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(Program)).unwrap_or(Value::Null);
    simplify(&mut schema);
    schema
}

/// Whether this text is a program (its top level has `assay_program`)
/// rather than a spec. Text that does not parse is left to the spec
/// loader, which locates the syntax error.
pub fn is_program(text: &str) -> bool {
    serde_saphyr::from_str::<Value>(text)
        .ok()
        .is_some_and(|v| v.get("assay_program").is_some())
}

/// Load a spec or a program, whichever the file is.
pub fn load_target(path: &Path, purpose: Purpose) -> Result<Target, SpecError> {
    let text = read(path)?;
    if is_program(&text) {
        load_program(path, purpose).map(|p| Target::Program(Box::new(p)))
    } else {
        load_spec_for(path, purpose).map(|s| Target::Spec(Box::new(s)))
    }
}

fn read(path: &Path) -> Result<String, SpecError> {
    std::fs::read_to_string(path).map_err(|source| SpecError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Load and check a program and all its members.
pub fn load_program(path: &Path, purpose: Purpose) -> Result<LoadedProgram, SpecError> {
    let mut loader = Loader {
        purpose,
        stack: Vec::new(),
    };
    let (file, members) = loader.program(path)?;
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    let members: Vec<LoadedSpec> = members
        .into_iter()
        .filter(|m| seen.insert(canonical_path(&m.spec.path)))
        .map(|m| m.spec)
        .collect();
    let member_digests: Vec<Value> = members
        .iter()
        .map(|m| json!([m.spec.id, m.digest.to_hex()]))
        .collect();
    let digest = canonical::keyed_hash(
        "assay/program",
        &json!({ "program": file.value, "members": member_digests }),
    );
    Ok(LoadedProgram {
        path: path.to_path_buf(),
        dir: file.dir,
        text: file.text,
        program: file.program,
        digest,
        members,
    })
}

fn canonical_path(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// One program file, parsed and decoded.
struct ProgramFile {
    text: String,
    value: Value,
    program: Program,
    dir: PathBuf,
}

/// A member spec and the entry of the top-level program that brought it
/// in (for locating cross-member errors there).
struct Member {
    spec: LoadedSpec,
    entry: usize,
}

/// Walks a program and the programs it includes, keeping the chain of
/// programs being loaded to refuse cycles.
struct Loader {
    purpose: Purpose,
    stack: Vec<PathBuf>,
}

impl Loader {
    fn program(&mut self, path: &Path) -> Result<(ProgramFile, Vec<Member>), SpecError> {
        let text = read(path)?;
        let file_name = path.display().to_string();
        let invalid = |text: &str, diagnostics: Vec<Diagnostic>| SpecError::Invalid {
            path: path.to_path_buf(),
            text: text.to_string(),
            diagnostics,
        };
        let value = parse_yaml(&text, &file_name).map_err(|d| invalid(&text, vec![d]))?;
        let locations = LocationMap::build(&text);
        let mut diags = Diags {
            file: file_name,
            locations: &locations,
            out: Vec::new(),
        };
        if let Err(internal) = check_schema(&program_schema(), &value, &mut diags) {
            return Err(invalid(&text, vec![internal]));
        }
        if !diags.out.is_empty() {
            diags.out.sort_by_key(|d| (d.line, d.col));
            return Err(invalid(&text, diags.out));
        }
        let Some(program) = decode::<Program>(&value, &mut diags) else {
            return Err(invalid(&text, diags.out));
        };
        if let Err(message) = super::checks::output_dir_within(Path::new(&program.outputs.dir)) {
            diags.at_value("/outputs/dir", message);
        }
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        self.stack.push(canonical_path(path));
        let members = self.members(&program, &dir, &mut diags);
        self.stack.pop();
        let members = members?;
        check_members(&members, &mut diags);
        if !diags.out.is_empty() {
            diags.out.sort_by_key(|d| (d.line, d.col));
            return Err(invalid(&text, diags.out));
        }
        let file = ProgramFile {
            text,
            value,
            program,
            dir,
        };
        Ok((file, members))
    }

    /// Every member spec of `program`, loaded. A member that is missing or
    /// closes a cycle is located in this file; a member's own errors are
    /// located in its file (returned at once).
    fn members(
        &mut self,
        program: &Program,
        dir: &Path,
        diags: &mut Diags<'_>,
    ) -> Result<Vec<Member>, SpecError> {
        let mut out = Vec::new();
        for (i, rel) in program.members.iter().enumerate() {
            let pointer = format!("/members/{i}");
            let path = dir.join(rel);
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    diags.at_value(&pointer, format!("member {}: {e}", path.display()));
                    continue;
                }
            };
            if !is_program(&text) {
                let spec = load_spec_for(&path, self.purpose)?;
                out.push(Member { spec, entry: i });
                continue;
            }
            let canonical = canonical_path(&path);
            if let Some(start) = self.stack.iter().position(|p| *p == canonical) {
                let chain: Vec<String> = self.stack[start..]
                    .iter()
                    .chain(std::iter::once(&canonical))
                    .map(|p| p.display().to_string())
                    .collect();
                diags.at_value(
                    &pointer,
                    format!("a cycle of programs: {}", chain.join(" -> ")),
                );
                continue;
            }
            let (_, nested) = self.program(&path)?;
            out.extend(nested.into_iter().map(|m| Member {
                spec: m.spec,
                entry: i,
            }));
        }
        Ok(out)
    }
}

/// Across members: ids are unique (a file reached twice counts once), no
/// id is reserved, and a scenario name means one shape everywhere.
fn check_members(members: &[Member], diags: &mut Diags<'_>) {
    let mut ids: BTreeMap<&str, &Member> = BTreeMap::new();
    let mut scenarios: BTreeMap<&str, (&Scenario, &Member)> = BTreeMap::new();
    for m in members {
        let pointer = format!("/members/{}", m.entry);
        let id = m.spec.spec.id.as_str();
        if id == SHARED {
            diags.at_value(
                &pointer,
                format!(
                    "member {} has the id {SHARED:?}, which a program reserves for nodes its members share",
                    m.spec.path.display()
                ),
            );
        }
        match ids.get(id) {
            Some(first) if canonical_path(&first.spec.path) == canonical_path(&m.spec.path) => {
                continue;
            }
            Some(first) => {
                diags.at_value(
                    &pointer,
                    format!(
                        "two members have the id {id:?}: {} and {} (members[{}])",
                        m.spec.path.display(),
                        first.spec.path.display(),
                        first.entry
                    ),
                );
                continue;
            }
            None => {
                ids.insert(id, m);
            }
        }
        for s in &m.spec.scenarios {
            match scenarios.get(s.name.as_str()) {
                Some((other, first)) if !same_shape(other, s) => diags.at_value(
                    &pointer,
                    format!(
                        "scenario {:?} of {} ({}) has another shape in {} ({}): a name must mean one workload across the program",
                        s.name,
                        m.spec.path.display(),
                        shape(s),
                        first.spec.path.display(),
                        shape(other)
                    ),
                ),
                Some(_) => {}
                None => {
                    scenarios.insert(s.name.as_str(), (s, m));
                }
            }
        }
    }
}

fn same_shape(a: &Scenario, b: &Scenario) -> bool {
    a.prompt_tokens == b.prompt_tokens
        && a.batch == b.batch
        && a.gen_tokens == b.gen_tokens
        && a.load == b.load
}

fn shape(s: &Scenario) -> String {
    let load = if s.load.is_some() {
        ", with a load"
    } else {
        ""
    };
    format!(
        "prompt {}, batch {}, gen {}{load}",
        s.prompt_tokens, s.batch, s.gen_tokens
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VALID: &str = "assay_program: 1\nid: p\ntitle: t\nquestion: q\ndecision: d\nmembers: [a.yaml]\noutputs: { dir: reports/p }\n";

    fn load(text: &str) -> Result<LoadedProgram, SpecError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            include_str!("../../../tests/e2e/specs/sim.yaml"),
        )
        .unwrap();
        let path = dir.path().join("program.yaml");
        std::fs::write(&path, text).unwrap();
        load_program(&path, Purpose::Read)
    }

    #[test]
    fn a_valid_program_loads_its_member() {
        let p = load(VALID).unwrap();
        assert_eq!(p.members.len(), 1);
        assert_eq!(p.members[0].spec.id, "e2e-sim");
        assert!(is_program(VALID));
        assert!(!is_program(include_str!(
            "../../../tests/e2e/specs/sim.yaml"
        )));
    }

    #[test]
    fn an_escaping_output_dir_is_located() {
        let Err(SpecError::Invalid { diagnostics, .. }) =
            load(&VALID.replace("reports/p", "../out"))
        else {
            panic!("accepted an output dir outside the program's folder");
        };
        assert_eq!(diagnostics[0].line, 7, "{diagnostics:?}");
        assert!(
            diagnostics[0].message.contains("escapes"),
            "{diagnostics:?}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// No mutation of a valid program panics the loader, and every
        /// error is located inside the file.
        #[test]
        fn mutated_programs_never_panic(
            cut in 0usize..VALID.len(),
            insert in "[ a-z0-9:\\[\\]{},\\-#.\\n]{0,12}",
        ) {
            let text = format!("{}{}{}", &VALID[..cut], insert, &VALID[cut..]);
            if let Err(SpecError::Invalid { diagnostics, .. }) = load(&text) {
                let lines = text.lines().count().max(1);
                for d in diagnostics.iter().filter(|d| d.file.ends_with("program.yaml")) {
                    prop_assert!(d.line >= 1 && d.line <= lines + 1, "{d:?}");
                }
            }
        }
    }
}
