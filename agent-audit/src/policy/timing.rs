//! Timing-dependent syscalls: made in some runs of a workload and not in others, harmless
//! enough to allow when the calls that make them possible were recorded
//! (`data/timing-dependent.json`).

use std::collections::BTreeSet;

use serde::Deserialize;

/// The list, with how it was measured.
#[derive(Debug, Deserialize)]
pub struct TimingDependent {
    /// How the entries were chosen and measured.
    pub about: String,
    /// The entries.
    pub syscalls: Vec<TimingEntry>,
}

/// One timing-dependent syscall.
#[derive(Debug, Deserialize)]
pub struct TimingEntry {
    /// Syscall name.
    pub name: String,
    /// Allowed only when one of these was recorded.
    pub when_any_of: Vec<String>,
    /// Why it is harmless and how often it was seen.
    pub reason: String,
}

impl TimingDependent {
    /// The entries to allow for a workload that made `observed`: those not observed
    /// themselves whose trigger was.
    pub fn to_allow<'a>(&'a self, observed: &BTreeSet<&str>) -> Vec<&'a TimingEntry> {
        self.syscalls
            .iter()
            .filter(|e| !observed.contains(e.name.as_str()))
            .filter(|e| e.when_any_of.iter().any(|t| observed.contains(t.as_str())))
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
            assert!(!e.when_any_of.is_empty(), "{}: no trigger", e.name);
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
            list.to_allow(&observed)
                .iter()
                .map(|e| e.name.as_str())
                .collect()
        };
        assert_eq!(names(&["futex", "read"]), ["sched_yield"]);
        assert_eq!(names(&["futex", "sched_yield"]), Vec::<&str>::new());
        assert_eq!(names(&["read", "write"]), Vec::<&str>::new());
        assert_eq!(names(&["wait4", "futex"]), ["sched_yield", "kill"]);
    }
}
