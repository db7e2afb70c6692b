//! What `run`, `plan`, `verify`, `trace` and `gc` act on: a spec, or a
//! program of specs, with its plan. A program's lockfile lists every node
//! by program id; each member also gets its own lockfile, its nodes under
//! the ids of its spec, as if it had run alone, so that `trace` and
//! `verify` work on a member spec after the program ran.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assay_report::Format;
use assay_store::{LockEntry, Lockfile};

use super::load_target_for;
use crate::cli::{CliError, StoreArg};
use crate::plan::program::{CONCLUSIVE, MemberNodes, build_program_plan};
use crate::plan::{Plan, build_plan};
use crate::spec::{Purpose, Target};

pub struct Planned {
    pub target: Target,
    pub plan: Plan,
    /// A program's members and their nodes; empty for a spec.
    pub members: Vec<MemberNodes>,
}

/// Where one report's files go.
pub struct ReportOutput {
    /// The report node's id in the plan.
    pub node: String,
    pub dir: PathBuf,
    pub formats: Vec<Format>,
}

pub fn load_planned(path: &Path, purpose: Purpose) -> Result<Planned, CliError> {
    let target = load_target_for(path, purpose)?;
    let (plan, members) = match &target {
        Target::Spec(s) => (build_plan(s), Vec::new()),
        Target::Program(p) => match build_program_plan(p) {
            Ok(pp) => (Ok(pp.plan), pp.members),
            Err(e) => (Err(e), Vec::new()),
        },
    };
    let plan = plan.map_err(|e| CliError::failed(e.to_string()))?;
    Ok(Planned {
        target,
        plan,
        members,
    })
}

impl Planned {
    /// `--store`, else `.assay/` beside the spec or program.
    pub fn store_dir(&self, arg: &StoreArg) -> PathBuf {
        arg.store
            .clone()
            .unwrap_or_else(|| self.target.dir().join(".assay"))
    }

    pub fn lock_path(&self) -> PathBuf {
        Lockfile::path_for(self.target.path())
    }

    /// The id of the report node whose report.json `trace` starts from.
    pub fn report_node(&self) -> &'static str {
        match self.target {
            Target::Spec(_) => "report",
            Target::Program(_) => CONCLUSIVE,
        }
    }

    /// Every report this target writes: a spec's, or each member's and the
    /// conclusive one.
    pub fn reports(&self) -> Vec<ReportOutput> {
        match &self.target {
            Target::Spec(s) => vec![ReportOutput {
                node: "report".into(),
                dir: s.dir.join(&s.spec.outputs.dir),
                formats: s.spec.outputs.formats.clone(),
            }],
            Target::Program(p) => {
                let mut out: Vec<ReportOutput> = p
                    .members
                    .iter()
                    .zip(&self.members)
                    .filter_map(|(spec, nodes)| {
                        Some(ReportOutput {
                            node: nodes.program_id(&self.plan, "report")?.to_string(),
                            dir: spec.dir.join(&spec.spec.outputs.dir),
                            formats: spec.spec.outputs.formats.clone(),
                        })
                    })
                    .collect();
                out.push(ReportOutput {
                    node: CONCLUSIVE.into(),
                    dir: p.dir.join(&p.program.outputs.dir),
                    formats: p.program.outputs.formats.clone(),
                });
                out
            }
        }
    }

    /// The lockfiles to write for these node entries (by plan id): the
    /// target's own, then for a program each member's.
    pub fn lockfiles(&self, nodes: &BTreeMap<String, LockEntry>) -> Vec<(PathBuf, Lockfile)> {
        let mut out = vec![(
            self.lock_path(),
            lockfile(self.target.path(), self.target.digest(), nodes.clone()),
        )];
        if let Target::Program(p) = &self.target {
            for (spec, member) in p.members.iter().zip(&self.members) {
                let view = self.member_view(member, nodes);
                out.push((
                    Lockfile::path_for(&spec.path),
                    lockfile(&spec.path, spec.digest, view),
                ));
            }
        }
        out
    }

    /// A member's entries under the ids of its own spec.
    pub fn member_view(
        &self,
        member: &MemberNodes,
        nodes: &BTreeMap<String, LockEntry>,
    ) -> BTreeMap<String, LockEntry> {
        member
            .nodes
            .iter()
            .filter_map(|(local, &idx)| {
                let entry = nodes.get(&self.plan.node(idx).id)?;
                Some((local.clone(), entry.clone()))
            })
            .collect()
    }
}

fn lockfile(
    path: &Path,
    digest: assay_store::Digest,
    nodes: BTreeMap<String, LockEntry>,
) -> Lockfile {
    Lockfile {
        assay_lock: assay_store::lockfile::LOCKFILE_FORMAT,
        spec: path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("spec")
            .to_string(),
        spec_digest: digest,
        nodes,
    }
}
