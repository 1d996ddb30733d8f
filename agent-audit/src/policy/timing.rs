//! Timing-dependent syscalls: made in some runs of a workload and not in others, harmless
//! enough to allow when the calls or the language runtime that make them possible were
//! recorded (`data/timing-dependent.json`), and how each runtime is recognised.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::allowlist::Runtime;

/// The list, with how it was measured.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingDependent {
    /// How the entries were chosen and measured.
    pub about: String,
    /// How each language runtime is recognised from an exec.
    pub runtimes: Vec<RuntimeSignature>,
    /// The entries.
    pub syscalls: Vec<TimingEntry>,
}

/// How one runtime's executables are recognised.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSignature {
    /// The runtime.
    pub runtime: Runtime,
    /// Program names (the exec path's last component), exactly.
    #[serde(default)]
    pub programs: Vec<String>,
    /// Program names starting with one of these (`python3.` for `python3.11`).
    #[serde(default)]
    pub program_prefixes: Vec<String>,
    /// ELF sections only its executables have.
    #[serde(default)]
    pub elf_sections: Vec<String>,
    /// Why these identify it.
    pub reason: String,
}

impl RuntimeSignature {
    /// Whether `program` (a file name, no directory) is one of its programs.
    pub fn matches_program(&self, program: &str) -> bool {
        self.programs.iter().any(|p| p == program)
            || self.program_prefixes.iter().any(|p| {
                program
                    .strip_prefix(p.as_str())
                    .is_some_and(|v| !v.is_empty())
            })
    }
}

/// One timing-dependent syscall.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingEntry {
    /// Syscall name.
    pub name: String,
    /// Allowed when one of these was recorded…
    #[serde(default)]
    pub when_any_of: Vec<String>,
    /// …or when one of these runtimes ran.
    #[serde(default)]
    pub when_runtime: Vec<Runtime>,
    /// Why it is harmless and how often it was seen.
    pub reason: String,
}

/// What made an entry apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// This syscall was recorded.
    Syscall(String),
    /// This runtime ran, as these executables.
    Runtime(Runtime, Vec<String>),
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::Syscall(name) => write!(f, "{name} was recorded"),
            Trigger::Runtime(r, paths) => {
                write!(f, "the {} runtime ran ({})", r.title(), paths.join(", "))
            }
        }
    }
}

/// An entry to allow, and why it applies.
#[derive(Debug)]
pub struct Allowance<'a> {
    /// The entry.
    pub entry: &'a TimingEntry,
    /// Its triggers that were recorded (at least one).
    pub triggers: Vec<Trigger>,
}

impl TimingDependent {
    /// The entries to allow for a workload that made `observed` and ran `runtimes` (each with
    /// the executables it was recognised in): those not observed themselves whose trigger was.
    pub fn to_allow<'a>(
        &'a self,
        observed: &BTreeSet<&str>,
        runtimes: &BTreeMap<Runtime, BTreeSet<String>>,
    ) -> Vec<Allowance<'a>> {
        self.syscalls
            .iter()
            .filter(|e| !observed.contains(e.name.as_str()))
            .filter_map(|entry| {
                let calls = entry
                    .when_any_of
                    .iter()
                    .filter(|t| observed.contains(t.as_str()))
                    .map(|t| Trigger::Syscall(t.clone()));
                let ran = entry.when_runtime.iter().filter_map(|r| {
                    let paths = runtimes.get(r)?;
                    Some(Trigger::Runtime(*r, paths.iter().cloned().collect()))
                });
                let triggers: Vec<Trigger> = ran.chain(calls).collect();
                (!triggers.is_empty()).then_some(Allowance { entry, triggers })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy;

    #[test]
    fn entries_are_known_harmless_and_explained() {
        let list = policy::timing_dependent();
        assert!(list.about.len() > 100);
        for e in &list.syscalls {
            assert!(policy::is_known_syscall(&e.name), "{}", e.name);
            // Docker's default (moby/profiles seccomp/default.json) allows both without
            // conditions; the dangerous set must never be widened this way.
            assert!(!policy::dangerous().contains(&e.name), "{}", e.name);
            assert!(
                !e.when_any_of.is_empty() || !e.when_runtime.is_empty(),
                "{}: no trigger",
                e.name
            );
            for t in &e.when_any_of {
                assert!(policy::is_known_syscall(t), "{}: trigger {t}", e.name);
            }
            assert!(e.reason.trim_end().ends_with('.') && e.reason.contains("Measured"));
        }
    }

    #[test]
    fn allowed_only_when_triggered_and_not_seen() {
        let list = policy::timing_dependent();
        let names = |observed: &[&str]| -> Vec<&str> {
            let observed: BTreeSet<&str> = observed.iter().copied().collect();
            list.to_allow(&observed, &BTreeMap::new())
                .iter()
                .map(|a| a.entry.name.as_str())
                .collect()
        };
        assert_eq!(names(&["futex", "read"]), ["sched_yield"]);
        assert_eq!(names(&["futex", "sched_yield"]), Vec::<&str>::new());
        assert_eq!(names(&["read", "write"]), Vec::<&str>::new());
        assert_eq!(
            names(&["wait4", "futex"]),
            ["sched_yield", "kill", "rt_sigsuspend"]
        );
        // dash's wait builtin suspends only while the child still runs.
        assert_eq!(names(&["wait4", "rt_sigsuspend"]), ["kill"]);
    }

    #[test]
    fn a_runtime_that_ran_triggers_its_entries_and_says_where() {
        let list = policy::timing_dependent();
        let observed: BTreeSet<&str> = ["read", "getpid"].into_iter().collect();
        let go: BTreeMap<Runtime, BTreeSet<String>> =
            [(Runtime::Go, ["/srv/app".to_string()].into())].into();
        let allowed = list.to_allow(&observed, &go);
        let tgkill = allowed.iter().find(|a| a.entry.name == "tgkill").unwrap();
        assert_eq!(
            tgkill.triggers,
            [Trigger::Runtime(Runtime::Go, vec!["/srv/app".into()])]
        );
        assert_eq!(
            tgkill.triggers[0].to_string(),
            "the Go runtime ran (/srv/app)"
        );
        // Recorded calls are never allowed again; no Go, no Go entries.
        assert!(allowed.iter().all(|a| a.entry.name != "getpid"));
        let none = list.to_allow(&observed, &BTreeMap::new());
        assert!(none.iter().all(|a| a.entry.name != "tgkill"));
    }

    #[test]
    fn runtime_signatures_are_explained_and_distinct() {
        let list = policy::timing_dependent();
        let mut names = BTreeSet::new();
        for s in &list.runtimes {
            assert!(s.reason.trim_end().ends_with('.'), "{:?}", s.runtime);
            assert!(
                !(s.programs.is_empty()
                    && s.program_prefixes.is_empty()
                    && s.elf_sections.is_empty()),
                "{:?}: recognised by nothing",
                s.runtime
            );
            for p in s.programs.iter().chain(&s.program_prefixes) {
                assert!(names.insert(p.as_str()), "{p} names two runtimes");
            }
        }
    }
}
