//! What the report shows as information: entries that ask for no change, in the form a
//! reviewer reads them. A daemon that starts as root and drops to its user does so in every
//! run: one entry per target naming the runs, not one per run.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{PrivilegeDropFinding, RunSummary};

/// Information that needs no change.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Information {
    /// Privilege drops, merged over the runs of each target (`findings.privilege_drops` keeps
    /// one entry per run).
    pub privilege_drops: Vec<MergedPrivilegeDrop>,
}

/// The privilege drops of one target's runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MergedPrivilegeDrop {
    /// The target (`kind: spec`).
    pub target: String,
    /// The recordings that made a drop, sorted.
    pub runs: Vec<String>,
    /// Syscalls (arch-qualified) only made as root, in any of them.
    pub root_only: Vec<String>,
    /// Executables run as root in any of them, sorted.
    pub root_executables: Vec<String>,
    /// Executables run as another user (`path (uid N)`) in any of them, sorted.
    pub unprivileged_executables: Vec<String>,
}

impl Information {
    /// The information of these findings; `runs` names each recording's target.
    pub(super) fn of(drops: &[PrivilegeDropFinding], runs: &[RunSummary]) -> Self {
        Information {
            privilege_drops: merge_drops(drops, runs),
        }
    }
}

/// One entry per target: its runs named, the root-only calls and executables united.
fn merge_drops(drops: &[PrivilegeDropFinding], runs: &[RunSummary]) -> Vec<MergedPrivilegeDrop> {
    #[derive(Default)]
    struct Union<'a> {
        runs: BTreeSet<&'a str>,
        root_only: BTreeSet<&'a str>,
        root: BTreeSet<&'a str>,
        other: BTreeSet<&'a str>,
    }
    fn target_of<'a>(runs: &'a [RunSummary], file: &'a str) -> &'a str {
        runs.iter()
            .find(|r| r.file == file)
            .map_or(file, |r| r.target.as_str())
    }
    let mut targets: BTreeMap<&str, Union> = BTreeMap::new();
    for d in drops {
        let u = targets.entry(target_of(runs, &d.file)).or_default();
        u.runs.insert(&d.file);
        u.root_only.extend(d.root_only.iter().map(String::as_str));
        u.root.extend(d.root_executables.iter().map(String::as_str));
        u.other
            .extend(d.unprivileged_executables.iter().map(String::as_str));
    }
    let owned = |set: BTreeSet<&str>| set.into_iter().map(str::to_owned).collect();
    targets
        .into_iter()
        .map(|(target, u)| MergedPrivilegeDrop {
            target: target.to_string(),
            runs: owned(u.runs),
            root_only: owned(u.root_only),
            root_executables: owned(u.root),
            unprivileged_executables: owned(u.other),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drop(file: &str, root_only: &[&str], root: &[&str]) -> PrivilegeDropFinding {
        PrivilegeDropFinding {
            file: file.into(),
            first_unprivileged_call: "1970-01-01T00:00:00Z".into(),
            root_only: root_only.iter().map(|s| s.to_string()).collect(),
            unprivileged: 3,
            root_executables: root.iter().map(|s| s.to_string()).collect(),
            unprivileged_executables: vec!["/usr/sbin/squid (uid 13)".into()],
        }
    }

    fn run(file: &str, target: &str) -> RunSummary {
        RunSummary {
            file: file.into(),
            target: target.into(),
            started_at: String::new(),
            ended_at: String::new(),
            duration_seconds: 0.0,
            calls: 0,
            distinct: 0,
            complete: true,
            host: String::new(),
        }
    }

    #[test]
    fn the_drops_of_one_target_are_one_entry_naming_its_runs() {
        let drops = [
            drop("a-3.json", &["x:setgroups"], &["/usr/sbin/squid"]),
            drop(
                "a-1.json",
                &["x:setuid", "x:setgroups"],
                &["/usr/sbin/squid", "/bin/sleep"],
            ),
            drop("a-2.json", &["x:setgroups"], &["/usr/sbin/squid"]),
            drop("b.json", &["x:chown"], &["/bin/sh"]),
        ];
        let runs = [
            run("a-1.json", "container: squid"),
            run("a-2.json", "container: squid"),
            run("a-3.json", "container: squid"),
            run("b.json", "command: sh"),
        ];
        let merged = Information::of(&drops, &runs).privilege_drops;
        assert_eq!(merged.len(), 2, "{merged:#?}");
        assert_eq!(merged[0].target, "command: sh");
        assert_eq!(merged[0].runs, ["b.json"]);
        let squid = &merged[1];
        assert_eq!(squid.runs, ["a-1.json", "a-2.json", "a-3.json"]);
        assert_eq!(squid.root_only, ["x:setgroups", "x:setuid"]);
        assert_eq!(squid.root_executables, ["/bin/sleep", "/usr/sbin/squid"]);
    }
}
