//! Which architectures a profile covers: the one answer `check`, `verify` and the -ENOSYS stub
//! read, resolved the way the runtime does.
//!
//! moby (`setupSeccomp`) hands runc `architectures` as listed or, when the profile has an
//! `archMap` instead, the host's entry and its sub-architectures (the reader refuses a profile
//! with both, as Docker does). runc gives libseccomp that list, whose filter always holds the
//! host's own arch as well (`seccomp_init`), and computes its -ENOSYS stub from the list alone
//! (`findLastSyscalls`): no arch listed, no stub. `check` reads a file that may be used on any
//! host, so it looks at every arch the file names, on every `archMap` entry.

use std::str::FromStr;

use libseccomp::ScmpArch;

use super::{is_known_arch, SeccompProfile};
use crate::syscalls::Arch;

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;

/// The architectures of one profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileArches {
    /// Every arch the file names (`architectures`, each `archMap` entry and its
    /// sub-architectures) that agent-audit has a table for: first mention first, once each.
    pub named: Vec<Arch>,
    /// What the runtime hands runc on this host: `architectures`, or the host's `archMap` entry
    /// and its sub-architectures; those agent-audit has a table for.
    pub runtime: Vec<Arch>,
    /// The first name of the runtime's list, with a table or not (`None`: the list is empty).
    pub first_runtime_name: Option<String>,
    /// Names no libseccomp architecture has (`SCMP_ARCH_` and a name libseccomp knows).
    pub unknown: Vec<String>,
}

impl ProfileArches {
    /// Resolves `profile`'s arches for this host.
    pub fn resolve(profile: &SeccompProfile) -> Self {
        let names: Vec<&str> = profile.arch_names().collect();
        let runtime_names = runtime_names(profile);
        Self {
            named: with_tables(&names),
            runtime: with_tables(&runtime_names),
            first_runtime_name: runtime_names.first().map(|n| (*n).to_string()),
            unknown: names
                .into_iter()
                .filter(|n| !is_known_arch(n))
                .map(str::to_string)
                .collect(),
        }
    }

    /// The arches `check` lints against: every one the file names, the host's if it names none.
    pub fn linted(&self, profile: &SeccompProfile) -> Vec<Arch> {
        if self.named.is_empty() && profile.arch_names().next().is_none() {
            return Arch::native().into_iter().collect();
        }
        self.named.clone()
    }

    /// The arches of the filter runc installs on this host: the runtime's list, the host's own
    /// arch when that list is empty (libseccomp's filter always holds it). `None` when the list
    /// names only arches agent-audit has no table for: none of them can be filtered here.
    pub fn filtered(&self) -> Option<Vec<Arch>> {
        match &self.first_runtime_name {
            None => Some(Arch::native().into_iter().collect()),
            Some(_) if self.runtime.is_empty() => None,
            Some(_) => Some(self.runtime.clone()),
        }
    }
}

/// moby's choice: `architectures` if given, else the host's `archMap` entry.
fn runtime_names(profile: &SeccompProfile) -> Vec<&str> {
    if !profile.architectures.is_empty() {
        return profile.architectures.iter().map(String::as_str).collect();
    }
    let native = Arch::native().map(Arch::scmp_name);
    profile
        .arch_map
        .iter()
        .find(|e| Some(e.architecture.as_str()) == native)
        .map(|e| {
            std::iter::once(e.architecture.as_str())
                .chain(e.sub_architectures.iter().map(String::as_str))
                .collect()
        })
        .unwrap_or_default()
}

/// The names of `names` agent-audit has a syscall table for, once each, in order.
fn with_tables(names: &[&str]) -> Vec<Arch> {
    let mut arches = Vec::new();
    for name in names.iter().filter(|n| n.starts_with("SCMP_ARCH_")) {
        if let Ok(arch) = Arch::from_str(name) {
            if !arches.contains(&arch) {
                arches.push(arch);
            }
        }
    }
    arches
}

/// libseccomp's value for `arch`.
pub fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::X86_64 => ScmpArch::X8664,
        Arch::X86 => ScmpArch::X86,
        Arch::X32 => ScmpArch::X32,
        Arch::Aarch64 => ScmpArch::Aarch64,
        Arch::Arm => ScmpArch::Arm,
    }
}

/// The `AUDIT_ARCH_*` the kernel puts in `seccomp_data.arch` for a task of `arch`.
pub fn audit_arch(arch: Arch) -> u32 {
    match arch {
        Arch::X86_64 | Arch::X32 => AUDIT_ARCH_X86_64,
        Arch::X86 => AUDIT_ARCH_I386,
        Arch::Aarch64 => AUDIT_ARCH_AARCH64,
        Arch::Arm => AUDIT_ARCH_ARM,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn profile(arches: &str) -> SeccompProfile {
        SeccompProfile::parse(
            &format!(r#"{{"defaultAction":"SCMP_ACT_ERRNO",{arches}"syscalls":[]}}"#),
            Path::new("p"),
        )
        .unwrap()
    }

    #[test]
    fn listed_architectures_are_what_runc_gets_and_what_check_lints() {
        let p =
            profile(r#""architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_S390X","SCMP_ARCH_X86"],"#);
        let arches = ProfileArches::resolve(&p);
        assert_eq!(arches.runtime, vec![Arch::X86_64, Arch::X86]);
        assert_eq!(arches.filtered(), Some(vec![Arch::X86_64, Arch::X86]));
        assert_eq!(arches.linted(&p), vec![Arch::X86_64, Arch::X86]);
        assert!(arches.unknown.is_empty());
    }

    #[test]
    fn an_arch_map_gives_runc_the_host_entry_and_check_every_entry() {
        let p = profile(
            r#""archMap":[{"architecture":"SCMP_ARCH_AARCH64","subArchitectures":["SCMP_ARCH_ARM"]},
                {"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"]}],"#,
        );
        let arches = ProfileArches::resolve(&p);
        let host = match Arch::native() {
            Some(Arch::X86_64) => vec![Arch::X86_64, Arch::X86, Arch::X32],
            Some(Arch::Aarch64) => vec![Arch::Aarch64, Arch::Arm],
            _ => Vec::new(),
        };
        assert_eq!(arches.runtime, host);
        assert_eq!(arches.filtered(), Some(host));
        assert_eq!(
            arches.linted(&p),
            vec![Arch::Aarch64, Arch::Arm, Arch::X86_64, Arch::X86, Arch::X32]
        );
    }

    #[test]
    fn an_arch_map_without_the_host_leaves_libseccomp_the_host_alone() {
        // runc gets no arch: its filter holds only the host's, and no -ENOSYS stub is made.
        let p = profile(r#""archMap":[{"architecture":"SCMP_ARCH_S390X","subArchitectures":[]}],"#);
        let arches = ProfileArches::resolve(&p);
        assert!(arches.runtime.is_empty());
        assert_eq!(arches.first_runtime_name, None);
        assert_eq!(
            arches.filtered(),
            Some(Arch::native().into_iter().collect())
        );
        // check sees a file that names arches, none of which it has a table for.
        assert!(arches.linted(&p).is_empty());
    }

    #[test]
    fn nothing_listed_is_the_host_for_filters_and_lints_but_no_stub() {
        let p = profile("");
        let arches = ProfileArches::resolve(&p);
        let native: Vec<Arch> = Arch::native().into_iter().collect();
        assert!(arches.runtime.is_empty());
        assert_eq!(arches.filtered(), Some(native.clone()));
        assert_eq!(arches.linted(&p), native);
    }

    #[test]
    fn only_foreign_arches_listed_cannot_be_filtered_here() {
        let p = profile(r#""architectures":["SCMP_ARCH_PPC64LE"],"#);
        assert_eq!(ProfileArches::resolve(&p).filtered(), None);
    }
}
