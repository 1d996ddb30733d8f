//! Merging allowlists: the union of (arch, name) over any number of recordings, counts summed,
//! and for each syscall which recordings saw it. The result does not depend on input order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::allowlist::Allowlist;
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

/// The union of several allowlists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// The inputs, sorted by label so that the merge is independent of their order.
    pub inputs: Vec<MergedInput>,
    /// Every named syscall seen, by (arch, name).
    pub syscalls: BTreeMap<(Arch, String), MergedSyscall>,
    /// Calls with no name, by (arch, number).
    pub unnamed: Vec<UnnamedSyscall>,
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
                label,
            });
            for s in &list.syscalls {
                match &s.name {
                    Some(name) => {
                        let entry = merged.syscalls.entry((s.arch, name.clone())).or_default();
                        entry.count += s.count;
                        entry.seen_in.insert(index);
                    }
                    None => *unnamed.entry((s.arch, s.nr)).or_default() += s.count,
                }
            }
        }
        merged.unnamed = unnamed
            .into_iter()
            .map(|((arch, nr), count)| UnnamedSyscall { arch, nr, count })
            .collect();
        merged
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
        self.by_arch(name).map(|(_, s)| s.count).sum()
    }

    /// Indices of the inputs that saw `name` on any arch.
    pub fn seen_in(&self, name: &str) -> BTreeSet<usize> {
        self.by_arch(name)
            .flat_map(|(_, s)| s.seen_in.iter().copied())
            .collect()
    }
}

fn describe_target(list: &Allowlist) -> String {
    match &list.target.command {
        Some(command) => format!("{}: {}", list.target.kind, command.join(" ")),
        None => format!("{}: {}", list.target.kind, list.target.spec),
    }
}

/// The label of an input file: its path as given.
pub fn label_of(path: &Path) -> String {
    path.display().to_string()
}
