//! Applying the translation tables ([`crate::policy::translations`]) to observed names: what to
//! allow on each listed architecture so that the same workload works there.
//!
//! One OCI profile holds one set of names for all its architectures (libseccomp resolves each
//! name per arch and skips names an arch lacks), so translating means adding the names another
//! arch's libc would call instead. Arches that were observed only get the `*_time64` twins;
//! arches added with `--arch` get every family.

use std::collections::{BTreeMap, BTreeSet};

use crate::policy;
use crate::syscalls::Arch;

/// A name added for one arch, with what it stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Added {
    /// Observed names it stands for.
    pub from: BTreeSet<String>,
    /// Why (from the translation table).
    pub why: String,
}

/// What translation adds for one arch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchTranslation {
    /// Names to allow on this arch that were not observed, with their sources.
    pub added: BTreeMap<String, Added>,
    /// Observed names this arch lacks with no equivalent, and why that is harmless if known.
    pub missing: BTreeMap<String, Option<String>>,
}

/// Translates `observed` names for `arch`; `observed_arch` says whether the recordings saw it.
pub fn translate(observed: &BTreeSet<&str>, arch: Arch, observed_arch: bool) -> ArchTranslation {
    let tables = policy::translations();
    let mut out = ArchTranslation::default();
    let add = |out: &mut ArchTranslation, name: &str, from: &str, why: &str| {
        if observed.contains(name) {
            return;
        }
        let entry = out.added.entry(name.to_string()).or_insert_with(|| Added {
            from: BTreeSet::new(),
            why: why.to_string(),
        });
        entry.from.insert(from.to_string());
    };
    if !observed_arch {
        for &name in observed {
            let mut has_equivalent = arch.has_syscall(name);
            for (_, entry) in tables.entries_for(name) {
                for alt in entry.also.iter().filter(|alt| arch.has_syscall(alt)) {
                    has_equivalent = true;
                    add(&mut out, alt, name, &entry.reason);
                }
            }
            if !has_equivalent {
                out.missing.insert(
                    name.to_string(),
                    tables.none_needed(name).map(str::to_owned),
                );
            }
        }
    }
    // Twins of observed names and of names just added.
    let mut sources: BTreeSet<String> = observed.iter().map(|s| s.to_string()).collect();
    sources.extend(out.added.keys().cloned());
    for name in &sources {
        if let Some(twin) = tables.time64_twin(name) {
            if arch.has_syscall(twin) {
                add(
                    &mut out,
                    twin,
                    name,
                    "32-bit libcs built with a 64-bit time_t call the *_time64 twin instead",
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&'static str]) -> BTreeSet<&'static str> {
        list.iter().copied().collect()
    }

    #[test]
    fn x86_gets_time64_llseek_and_socketcall() {
        let observed = names(&["clock_gettime", "lseek", "socket", "connect", "semop"]);
        let t = translate(&observed, Arch::X86, false);
        for (name, from) in [
            ("clock_gettime64", "clock_gettime"),
            ("_llseek", "lseek"),
            ("socketcall", "socket"),
            ("ipc", "semop"),
        ] {
            let added = t.added.get(name).unwrap_or_else(|| panic!("{name}: {t:?}"));
            assert!(added.from.contains(from), "{name}: {added:?}");
        }
        assert!(t.added["socketcall"].from.contains("connect"));
        assert!(t.missing.is_empty(), "{:?}", t.missing);
    }

    #[test]
    fn aarch64_gets_at_forms_and_reports_what_has_no_equivalent() {
        let observed = names(&["open", "stat", "arch_prctl", "epoll_wait", "read"]);
        let t = translate(&observed, Arch::Aarch64, false);
        assert!(t.added.contains_key("openat"));
        assert!(t.added.contains_key("newfstatat"));
        assert!(t.added.contains_key("epoll_pwait"));
        assert!(
            !t.added.contains_key("read"),
            "read was observed, not added"
        );
        // Names that do not exist on aarch64 are never added.
        assert!(t.added.keys().all(|n| Arch::Aarch64.has_syscall(n)));
        assert!(t.missing.contains_key("arch_prctl"), "{:?}", t.missing);
        assert!(
            t.missing["arch_prctl"].is_some(),
            "harmless reason expected"
        );
    }

    #[test]
    fn observed_arches_only_get_time64_twins() {
        let observed = names(&["clock_gettime", "lseek", "open"]);
        let t = translate(&observed, Arch::X86, true);
        assert_eq!(t.added.keys().collect::<Vec<_>>(), vec!["clock_gettime64"]);
        let t = translate(&observed, Arch::X86_64, true);
        assert!(t.added.is_empty(), "x86_64 has no twins: {:?}", t.added);
    }

    #[test]
    fn unknown_name_without_family_is_missing() {
        let observed = names(&["iopl", "vm86"]);
        let t = translate(&observed, Arch::Aarch64, false);
        assert!(t.missing.contains_key("vm86"));
        assert_eq!(t.missing["vm86"], None);
    }
}
