//! What the report shows as information: entries that ask for no change, in the form a
//! reviewer reads them. A daemon that starts as root and drops to its user does so in every
//! run: one entry naming the runs, not one per run.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::PrivilegeDropFinding;

/// Information that needs no change.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Information {
    /// Privilege drops, merged over the runs whose same executables ran as root and as
    /// another user (`findings.privilege_drops` keeps one entry per run).
    pub privilege_drops: Vec<MergedPrivilegeDrop>,
}

/// One privilege drop, as the runs that made it made it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MergedPrivilegeDrop {
    /// The recordings that made this drop, sorted.
    pub runs: Vec<String>,
    /// Syscalls (arch-qualified) only made as root, in any of them.
    pub root_only: Vec<String>,
    /// Executables run as root.
    pub root_executables: Vec<String>,
    /// Executables run as another user (`path (uid N)`).
    pub unprivileged_executables: Vec<String>,
}

impl Information {
    /// The information of these findings.
    pub(super) fn of(drops: &[PrivilegeDropFinding]) -> Self {
        Information {
            privilege_drops: merge_drops(drops),
        }
    }
}

/// One entry per set of (root executables, unprivileged executables), whatever order each run
/// started them in: the runs named, the root-only calls united.
fn merge_drops(drops: &[PrivilegeDropFinding]) -> Vec<MergedPrivilegeDrop> {
    fn set(list: &[String]) -> BTreeSet<&str> {
        list.iter().map(String::as_str).collect()
    }
    type Key<'a> = (BTreeSet<&'a str>, BTreeSet<&'a str>);
    let mut groups: BTreeMap<Key, (BTreeSet<&str>, BTreeSet<&str>)> = BTreeMap::new();
    for d in drops {
        let key: Key = (set(&d.root_executables), set(&d.unprivileged_executables));
        let (runs, root_only) = groups.entry(key).or_default();
        runs.insert(&d.file);
        root_only.extend(d.root_only.iter().map(String::as_str));
    }
    let owned = |set: BTreeSet<&str>| set.into_iter().map(str::to_owned).collect();
    let mut merged: Vec<MergedPrivilegeDrop> = groups
        .into_iter()
        .map(|((root, other), (runs, root_only))| MergedPrivilegeDrop {
            runs: owned(runs),
            root_only: owned(root_only),
            root_executables: owned(root),
            unprivileged_executables: owned(other),
        })
        .collect();
    merged.sort_by(|a, b| a.runs.cmp(&b.runs));
    merged
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

    #[test]
    fn the_same_drop_in_every_run_is_one_entry_naming_the_runs() {
        let drops = [
            drop("a-3.json", &["x:setgroups"], &["/usr/sbin/squid"]),
            drop(
                "a-1.json",
                &["x:setuid", "x:setgroups"],
                &["/usr/sbin/squid"],
            ),
            drop("a-2.json", &["x:setgroups"], &["/usr/sbin/squid"]),
            drop("b.json", &["x:chown"], &["/usr/sbin/squid", "/bin/sh"]),
            drop("c.json", &["x:chown"], &["/bin/sh", "/usr/sbin/squid"]),
        ];
        let merged = Information::of(&drops).privilege_drops;
        assert_eq!(merged.len(), 2, "{merged:#?}");
        assert_eq!(merged[0].runs, ["a-1.json", "a-2.json", "a-3.json"]);
        assert_eq!(merged[0].root_only, ["x:setgroups", "x:setuid"]);
        assert_eq!(
            merged[1].runs,
            ["b.json", "c.json"],
            "the order of execs is not a difference"
        );
        assert_eq!(merged[1].root_executables, ["/bin/sh", "/usr/sbin/squid"]);
    }
}
