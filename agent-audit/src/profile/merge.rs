//! Merging allowlists: the union of (arch, name) over any number of recordings, counts summed
//! (saturating at `u64::MAX`, never wrapping), and for each syscall which recordings and which
//! programs made it. The result does not depend on input order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::allowlist::{saturating_sum, Allowlist, ArgRecord, MAX_PROGRAMS_LISTED};
use crate::runtimes::Runtime;
use crate::syscalls::Arch;

/// One recording that went into a merge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergedInput {
    /// How the input is named in comments and the rationale (its path as given).
    pub label: String,
    /// The recording's target kind and spec (`command: npm install`, `container: my-agent`).
    pub target: String,
    /// Calls counted in this recording.
    pub calls: u64,
    /// `false` for a snapshot taken while recording was still going on.
    pub complete: bool,
}

/// What the recordings saw of one syscall name on one arch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergedSyscall {
    /// Calls summed over every input.
    pub count: u64,
    /// Indices into [`Merged::inputs`] of the inputs that saw it.
    pub seen_in: BTreeSet<usize>,
    /// Calls per program, by (comm, as_root), summed over the inputs.
    pub programs: BTreeMap<(String, bool), u64>,
    /// Programs the inputs only counted ("and N more"), summed over the inputs.
    pub programs_omitted: u64,
    /// The tracked arguments' values, merged over the inputs; `None` when an input did not
    /// record them (then they are unknown, and no rule may be narrowed to them).
    pub args: Option<Vec<ArgRecord>>,
}

/// One program's calls of one syscall, summed over the recordings.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProgramUse {
    /// The task name (`comm`).
    pub comm: String,
    /// Whether it ran as root.
    pub as_root: bool,
    /// Calls.
    pub count: u64,
}

/// The programs that made one syscall: most calls first, at most [`MAX_PROGRAMS_LISTED`],
/// as bounded as in the allowlist.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProgramList {
    /// The programs listed.
    pub listed: Vec<ProgramUse>,
    /// How many more programs made the call. Recordings bound their own lists, so a program
    /// left out of two recordings counts twice: this is an upper bound.
    pub omitted: u64,
}

impl ProgramList {
    /// `sh ×3, ls ×2 and 4 more`, at most `limit` names; `mark_root` adds ` (root)` to the
    /// programs that ran as root (worth saying only when some did not).
    pub fn summary(&self, limit: usize, mark_root: bool) -> String {
        let mut parts: Vec<String> = self
            .listed
            .iter()
            .take(limit)
            .map(|p| {
                let root = if mark_root && p.as_root {
                    " (root)"
                } else {
                    ""
                };
                format!("{} ×{}{root}", p.comm, p.count)
            })
            .collect();
        let more = self
            .omitted
            .saturating_add(self.listed.len().saturating_sub(limit) as u64);
        if more > 0 {
            parts.push(format!("and {more} more"));
        }
        parts.join(", ")
    }
}

/// Calls whose number has no name in its arch's table: they cannot be allowed by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnnamedSyscall {
    /// Arch the call came through.
    pub arch: Arch,
    /// Its number.
    pub nr: u32,
    /// Calls summed over every input.
    pub count: u64,
}

/// What the recordings say a seccomp filter refused of one syscall name on one arch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergedRefusal {
    /// Calls refused with only the runtime's filters in place (or unknown filters): by the
    /// profile in force.
    pub by_profile: u64,
    /// Calls refused while the workload had installed filters of its own.
    pub with_own_filters: u64,
    /// Indices into [`Merged::inputs`] of the inputs that recorded refusals of it.
    pub seen_in: BTreeSet<usize>,
    /// Refused calls per program, by (comm, as_root), summed over the inputs.
    pub programs: BTreeMap<(String, bool), u64>,
}

/// The union of several allowlists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// The inputs, sorted by label so that the merge is independent of their order.
    pub inputs: Vec<MergedInput>,
    /// Every named syscall seen, by (arch, name).
    pub syscalls: BTreeMap<(Arch, String), MergedSyscall>,
    /// Calls with no name, by (arch, number).
    pub unnamed: Vec<UnnamedSyscall>,
    /// Named calls a seccomp filter refused, by (arch, name): kept apart from `syscalls`.
    pub refused: BTreeMap<(Arch, String), MergedRefusal>,
    /// The language runtimes the inputs' executables were recognised as, with those
    /// executables' paths.
    pub runtimes: BTreeMap<Runtime, BTreeSet<String>>,
    /// The minimal capability set of the recordings.
    pub capabilities: crate::capabilities::minimal::MinimalSet,
}

impl Merged {
    /// Merges `(label, allowlist)` pairs. Labels must be distinct (they name the inputs).
    pub fn new(inputs: impl IntoIterator<Item = (String, Allowlist)>) -> Self {
        let mut sorted: Vec<(String, Allowlist)> = inputs.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut merged = Merged::default();
        let mut unnamed = BTreeMap::<(Arch, u32), u64>::new();
        for (index, (label, list)) in sorted.into_iter().enumerate() {
            merged.inputs.push(MergedInput {
                target: describe_target(&list),
                calls: list.totals.calls,
                complete: list.complete,
                label: label.clone(),
            });
            merged.add_refusals(index, &list);
            for e in &list.executables {
                if let Some(runtime) = e.runtime {
                    merged
                        .runtimes
                        .entry(runtime)
                        .or_default()
                        .insert(e.path.clone());
                }
            }
            merged.capabilities.add_recording(&label, &list);
            for s in &list.syscalls {
                match &s.name {
                    Some(name) => {
                        let entry = merged.syscalls.entry((s.arch, name.clone())).or_default();
                        entry.args = if entry.seen_in.is_empty() {
                            (!s.args.is_empty()).then(|| s.args.clone())
                        } else {
                            entry.args.take().and_then(|a| merge_args(a, &s.args))
                        };
                        entry.count = entry.count.saturating_add(s.count);
                        entry.seen_in.insert(index);
                        for p in &s.programs {
                            let calls = entry
                                .programs
                                .entry((p.comm.clone(), p.as_root))
                                .or_default();
                            *calls = calls.saturating_add(p.count);
                        }
                        entry.programs_omitted =
                            entry.programs_omitted.saturating_add(s.programs_omitted);
                    }
                    None => {
                        let calls = unnamed.entry((s.arch, s.nr)).or_default();
                        *calls = calls.saturating_add(s.count);
                    }
                }
            }
        }
        merged.unnamed = unnamed
            .into_iter()
            .map(|((arch, nr), count)| UnnamedSyscall { arch, nr, count })
            .collect();
        merged
    }

    /// The tracked arguments of `name` over every arch, or `None` when some recording of it
    /// has none (unknown) or it was not observed.
    pub fn args(&self, name: &str) -> Option<Vec<ArgRecord>> {
        let mut all: Option<Vec<ArgRecord>> = None;
        for (_, s) in self.by_arch(name) {
            let mine = s.args.as_ref()?;
            all = Some(match all {
                None => mine.clone(),
                Some(so_far) => merge_args(so_far, mine)?,
            });
        }
        all
    }

    /// Arches with at least one named syscall, in [`Arch`] order.
    pub fn arches(&self) -> BTreeSet<Arch> {
        self.syscalls.keys().map(|(arch, _)| *arch).collect()
    }

    /// Every observed name (any arch), sorted.
    pub fn names(&self) -> BTreeSet<&str> {
        self.syscalls
            .keys()
            .map(|(_, name)| name.as_str())
            .collect()
    }

    /// What was seen of `name`, per arch.
    pub fn by_arch<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (Arch, &'a MergedSyscall)> + 'a {
        self.syscalls
            .iter()
            .filter(move |((_, n), _)| n == name)
            .map(|((arch, _), s)| (*arch, s))
    }

    /// Total calls of `name` over every arch and input.
    pub fn count(&self, name: &str) -> u64 {
        saturating_sum(self.by_arch(name).map(|(_, s)| s.count))
    }

    /// Indices of the inputs that saw `name` on any arch.
    pub fn seen_in(&self, name: &str) -> BTreeSet<usize> {
        self.by_arch(name)
            .flat_map(|(_, s)| s.seen_in.iter().copied())
            .collect()
    }
}

impl Merged {
    /// Adds one input's `refused` rows (named ones: a number without a name cannot be
    /// allowed, and it never ran, so it is not an unnamed call either).
    fn add_refusals(&mut self, index: usize, list: &Allowlist) {
        for r in &list.refused {
            let Some(name) = &r.name else { continue };
            let entry = self.refused.entry((r.arch, name.clone())).or_default();
            if r.by_profile() {
                entry.by_profile = entry.by_profile.saturating_add(r.count);
            } else {
                entry.with_own_filters = entry.with_own_filters.saturating_add(r.count);
            }
            entry.seen_in.insert(index);
            for p in &r.programs {
                let calls = entry
                    .programs
                    .entry((p.comm.clone(), p.as_root))
                    .or_default();
                *calls = calls.saturating_add(p.count);
            }
        }
    }

    /// Names the recordings saw refused (any arch, any filter), sorted.
    pub fn refused_names(&self) -> BTreeSet<&str> {
        self.refused.keys().map(|(_, n)| n.as_str()).collect()
    }

    /// Calls of `name` the profile in force refused, over every arch and input.
    pub fn refused_by_profile(&self, name: &str) -> u64 {
        saturating_sum(
            self.refused
                .iter()
                .filter(|((_, n), _)| n == name)
                .map(|(_, r)| r.by_profile),
        )
    }

    /// Calls of `name` refused while the workload had filters of its own.
    pub fn refused_with_own_filters(&self, name: &str) -> u64 {
        saturating_sum(
            self.refused
                .iter()
                .filter(|((_, n), _)| n == name)
                .map(|(_, r)| r.with_own_filters),
        )
    }

    /// Indices of the inputs that recorded refusals of `name`.
    pub fn refused_in(&self, name: &str) -> BTreeSet<usize> {
        self.refused
            .iter()
            .filter(|((_, n), _)| n == name)
            .flat_map(|(_, r)| r.seen_in.iter().copied())
            .collect()
    }

    /// The programs that made `name` on any arch, most calls first (then by name).
    pub fn programs(&self, name: &str) -> ProgramList {
        let mut calls: BTreeMap<(&str, bool), u64> = BTreeMap::new();
        let mut omitted = 0;
        for (_, s) in self.by_arch(name) {
            for ((comm, as_root), count) in &s.programs {
                let sum = calls.entry((comm.as_str(), *as_root)).or_default();
                *sum = sum.saturating_add(*count);
            }
            omitted = saturating_sum([omitted, s.programs_omitted]);
        }
        let mut listed: Vec<ProgramUse> = calls
            .into_iter()
            .map(|((comm, as_root), count)| ProgramUse {
                comm: comm.to_string(),
                as_root,
                count,
            })
            .collect();
        listed.sort_by(|a, b| (b.count, &a.comm, a.as_root).cmp(&(a.count, &b.comm, b.as_root)));
        omitted = omitted.saturating_add(listed.len().saturating_sub(MAX_PROGRAMS_LISTED) as u64);
        listed.truncate(MAX_PROGRAMS_LISTED);
        ProgramList { listed, omitted }
    }

    /// Whether some calls were made as root and some not (then root is worth marking).
    pub fn mixed_privileges(&self) -> bool {
        let mut seen = (false, false);
        for ((_, as_root), _) in self.syscalls.values().flat_map(|s| &s.programs) {
            if *as_root {
                seen.0 = true;
            } else {
                seen.1 = true;
            }
        }
        seen == (true, true)
    }
}

fn describe_target(list: &Allowlist) -> String {
    match &list.target.command {
        Some(command) => format!("{}: {}", list.target.kind, command.join(" ")),
        None => format!("{}: {}", list.target.kind, list.target.spec),
    }
}

/// Unites two recordings' argument records, matched by (index, field); `None` when `more` is
/// empty (that recording did not record arguments: the union is unknown).
fn merge_args(mut base: Vec<ArgRecord>, more: &[ArgRecord]) -> Option<Vec<ArgRecord>> {
    if more.is_empty() {
        return None;
    }
    for record in more {
        match base
            .iter_mut()
            .find(|r| (r.index, r.field) == (record.index, record.field))
        {
            Some(existing) => existing.merge(record),
            None => base.push(record.clone()),
        }
    }
    base.sort_by_key(|r| (r.index, r.field));
    Some(base)
}

/// The label of an input file: its path as given.
pub fn label_of(path: &Path) -> String {
    path.display().to_string()
}
