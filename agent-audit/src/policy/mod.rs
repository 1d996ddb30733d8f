//! Security-relevant syscall lists, shipped as data with a reason for every entry:
//! the dangerous set ([`dangerous`]), the runtime baseline ([`baseline`]), a one-line
//! description of every syscall on the supported arches ([`descriptions`]), the category of
//! every syscall ([`categories`]), the cross-arch translation tables ([`translations`]) and
//! the syscall arguments the recorder keeps ([`tracked_args`]).
//!
//! The files live in `agent-audit/data/` and are compiled in with `include_str!`, so the binary
//! needs nothing at run time. They are parsed once, on first use; the unit tests below parse and
//! validate every file, so a malformed edit fails `cargo test`, never a user's run.

mod arguments;
mod baseline;
mod categories;
mod dangerous;
mod descriptions;
mod timing;
mod tracked_args;
mod translations;

use std::sync::OnceLock;

pub use arguments::{
    ArgumentRules, IoctlRequests, NamedErrno, NamedValue, NamedValues, SocketFamilies,
};
pub use baseline::{Baseline, BaselineEntry, BaselineGroup};
pub use categories::{Categories, Category};
pub use dangerous::{DangerousCategory, DangerousEntry, DangerousSet};
pub use descriptions::Descriptions;
pub use timing::{Allowance, RuntimeSignature, TimingDependent, TimingEntry, Trigger};
pub use tracked_args::{TrackedArg, TrackedArgs};
pub use translations::{Family, FamilyEntry, NoneNeeded, Time64Twin, Translations};

const DANGEROUS_JSON: &str = include_str!("../../data/dangerous.json");
const ARGUMENT_RULES_JSON: &str = include_str!("../../data/argument-rules.json");
const BASELINE_JSON: &str = include_str!("../../data/baseline.json");
const DESCRIPTIONS_JSON: &str = include_str!("../../data/syscall-descriptions.json");
const CATEGORIES_JSON: &str = include_str!("../../data/syscall-categories.json");
const TRANSLATIONS_JSON: &str = include_str!("../../data/translations.json");
const TIMING_JSON: &str = include_str!("../../data/timing-dependent.json");
const TRACKED_ARGS_JSON: &str = include_str!("../../data/tracked-args.json");

/// The dangerous set: denied explicitly, reported when allowed or observed.
pub fn dangerous() -> &'static DangerousSet {
    static SET: OnceLock<DangerousSet> = OnceLock::new();
    SET.get_or_init(|| parse_embedded("dangerous.json", DANGEROUS_JSON))
}

/// Argument values the profile refuses or allows by itself.
pub fn argument_rules() -> &'static ArgumentRules {
    static SET: OnceLock<ArgumentRules> = OnceLock::new();
    SET.get_or_init(|| parse_embedded("argument-rules.json", ARGUMENT_RULES_JSON))
}

/// What the container runtime and the vDSO fallbacks need beyond what a recording shows.
pub fn baseline() -> &'static Baseline {
    static SET: OnceLock<Baseline> = OnceLock::new();
    SET.get_or_init(|| parse_embedded("baseline.json", BASELINE_JSON))
}

/// One line per syscall name.
pub fn descriptions() -> &'static Descriptions {
    static SET: OnceLock<Descriptions> = OnceLock::new();
    SET.get_or_init(|| parse_embedded("syscall-descriptions.json", DESCRIPTIONS_JSON))
}

/// The category of every syscall name.
pub fn categories() -> &'static Categories {
    static SET: OnceLock<Categories> = OnceLock::new();
    SET.get_or_init(|| parse_embedded("syscall-categories.json", CATEGORIES_JSON))
}

/// Cross-arch translation tables.
pub fn translations() -> &'static Translations {
    static SET: OnceLock<Translations> = OnceLock::new();
    SET.get_or_init(|| parse_embedded("translations.json", TRANSLATIONS_JSON))
}

/// Timing-dependent syscalls `audit` allows when their trigger was recorded.
pub fn timing_dependent() -> &'static TimingDependent {
    static SET: OnceLock<TimingDependent> = OnceLock::new();
    SET.get_or_init(|| parse_embedded("timing-dependent.json", TIMING_JSON))
}

/// The syscall arguments whose values the recorder keeps.
pub fn tracked_args() -> &'static TrackedArgs {
    static SET: OnceLock<TrackedArgs> = OnceLock::new();
    SET.get_or_init(|| parse_embedded("tracked-args.json", TRACKED_ARGS_JSON))
}

/// The embedded files are validated by this module's tests; a parse failure here is a build
/// of a broken data file, i.e. a bug.
fn parse_embedded<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> T {
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("embedded agent-audit/data/{file} is invalid: {e}"))
}

/// Whether `name` is a syscall on at least one supported architecture.
pub fn is_known_syscall(name: &str) -> bool {
    crate::syscalls::Arch::ALL
        .iter()
        .any(|arch| arch.has_syscall(name))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::syscalls::Arch;

    fn assert_known(what: &str, name: &str) {
        assert!(
            is_known_syscall(name),
            "{what}: {name:?} is on no supported arch"
        );
    }

    fn assert_reason(what: &str, name: &str, reason: &str) {
        assert!(
            reason.trim().len() >= 10 && reason.trim_end().ends_with('.'),
            "{what}: {name}: reason must be a sentence, got {reason:?}"
        );
    }

    #[test]
    fn argument_rules_are_valid_and_at_least_dockers() {
        let rules = argument_rules();
        let families = &rules.socket_families;
        assert_reason("socket families", "comment", &families.comment);
        let mut seen = BTreeSet::new();
        for f in &families.dangerous {
            assert_reason("socket family", &f.name, &f.reason);
            assert!(
                f.value < families.known_below && seen.insert(f.value),
                "{}",
                f.name
            );
        }
        // Docker's default refuses AF_ALG (38) and AF_VSOCK (40): so must we.
        assert!(families.dangerous(38).is_some() && families.dangerous(40).is_some());
        // Docker's clone mask.
        assert_eq!(rules.clone_namespace_flags.mask(), 0x7E02_0000);
        let personality: Vec<u64> = rules
            .personality_safe
            .values
            .iter()
            .map(|v| v.value)
            .collect();
        assert_eq!(
            personality,
            [0, 8, 0x20000, 0x20008, 0xffff_ffff],
            "Docker's list"
        );
        let ioctl: Vec<u64> = rules
            .ioctl_dangerous
            .values
            .iter()
            .map(|v| v.value)
            .collect();
        assert_eq!(ioctl, [0x5412, 0x541C], "TIOCSTI, TIOCLINUX");
        // The profile's ioctl refusals are tested before its two allows (low bit 1, low bit 0)
        // because libseccomp orders them by datum, largest first: a refused request of 0 or 1
        // would sort among the allows.
        assert!(ioctl.iter().all(|&v| v > 1));
        let lists = [
            (
                &rules.clone_namespace_flags.comment,
                &rules.clone_namespace_flags.values,
            ),
            (
                &rules.personality_safe.comment,
                &rules.personality_safe.values,
            ),
            (
                &rules.ioctl_dangerous.comment,
                &rules.ioctl_dangerous.values,
            ),
        ];
        for (comment, values) in lists {
            assert_reason("argument list", "comment", comment);
            for v in values {
                assert_reason("argument value", &v.name, &v.reason);
            }
        }
        // A refusal rule whose errno were the default action's (EPERM) would be skipped by
        // runc, and the value it refuses would then be allowed.
        for errno in [
            &families.refused_errno,
            &rules.ioctl_dangerous.refused_errno,
        ] {
            assert_reason("refusal errno", &errno.name, &errno.reason);
            assert_ne!(
                errno.value, 1,
                "{}: EPERM is the default action's",
                errno.name
            );
            assert!((1..4096).contains(&errno.value), "{}", errno.name);
        }
    }

    #[test]
    fn dangerous_set_is_valid() {
        let set = dangerous();
        assert!(set.categories.len() >= 6);
        let mut seen = BTreeSet::new();
        for category in &set.categories {
            assert!(!category.id.is_empty() && !category.title.is_empty());
            assert_reason("category", &category.id, &category.comment);
            assert!(!category.syscalls.is_empty(), "{} is empty", category.id);
            for entry in &category.syscalls {
                assert_known("dangerous", &entry.name);
                assert_reason("dangerous", &entry.name, &entry.reason);
                assert!(
                    seen.insert(entry.name.clone()),
                    "{} listed twice",
                    entry.name
                );
            }
        }
        // The calls the project's plan and issue name explicitly.
        for name in [
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "reboot",
            "mount",
            "umount2",
            "pivot_root",
            "name_to_handle_at",
            "open_by_handle_at",
            "add_key",
            "request_key",
            "keyctl",
            "bpf",
            "perf_event_open",
            "userfaultfd",
        ] {
            assert!(set.contains(name), "{name} missing from the dangerous set");
        }
        assert_eq!(set.category_of("ptrace").unwrap().id, "process-inspection");
        assert!(set.entry("read").is_none());
    }

    #[test]
    fn baseline_is_valid_and_never_dangerous() {
        let base = baseline();
        let mut seen = BTreeSet::new();
        for group in &base.groups {
            assert_reason("baseline group", &group.id, &group.comment);
            for entry in &group.syscalls {
                assert_known("baseline", &entry.name);
                assert_reason("baseline", &entry.name, &entry.reason);
                assert!(
                    seen.insert(entry.name.clone()),
                    "{} listed twice",
                    entry.name
                );
                assert!(
                    !dangerous().contains(&entry.name),
                    "baseline entry {} is in the dangerous set",
                    entry.name
                );
            }
        }
        for vdso in ["clock_gettime", "gettimeofday", "time", "getcpu"] {
            assert!(seen.contains(vdso), "vDSO fallback {vdso} missing");
        }
        assert!(seen.contains("execve"));
    }

    #[test]
    fn every_syscall_on_every_supported_arch_has_a_description() {
        let descriptions = descriptions();
        let mut missing = Vec::new();
        for arch in Arch::ALL {
            for name in arch.syscall_names() {
                match descriptions.get(name) {
                    Some(text) => assert_reason("description", name, text),
                    None => missing.push(format!("{arch}:{name}")),
                }
            }
        }
        assert!(missing.is_empty(), "no description for {missing:?}");
        for name in descriptions.names() {
            assert_known("description", name);
        }
    }

    #[test]
    fn every_syscall_on_every_supported_arch_has_a_listed_category() {
        let table = categories();
        let mut ids = BTreeSet::new();
        for category in &table.categories {
            assert!(!category.title.is_empty(), "{} has no title", category.id);
            assert_reason("category", &category.id, &category.description);
            assert!(
                ids.insert(category.id.as_str()),
                "{} listed twice",
                category.id
            );
        }
        let mut missing = Vec::new();
        for arch in Arch::ALL {
            for name in arch.syscall_names() {
                match table.of(name) {
                    Some(id) => assert!(ids.contains(id), "{name}: unlisted category {id:?}"),
                    None => missing.push(format!("{arch}:{name}")),
                }
            }
        }
        assert!(missing.is_empty(), "no category for {missing:?}");
        let mut used = BTreeSet::new();
        for (name, id) in table.entries() {
            assert_known("category", name);
            used.insert(id);
        }
        assert_eq!(used, ids, "every listed category is used");
        // Spot checks that the table says what a reviewer expects.
        assert_eq!(table.of("openat"), Some("file"));
        assert_eq!(table.of("connect"), Some("network"));
        assert_eq!(table.of("clock_gettime"), Some("time"));
        assert_eq!(
            table.get("memory").map(|c| c.title.as_str()),
            Some("Memory")
        );
    }

    #[test]
    fn translation_tables_name_real_syscalls() {
        let tr = translations();
        for twin in &tr.time64 {
            assert_known("time64", &twin.name);
            assert_known("time64 twin", &twin.twin);
            // A twin only exists on 32-bit ABIs.
            assert!(!Arch::X86_64.has_syscall(&twin.twin), "{}", twin.twin);
            assert!(Arch::X86.has_syscall(&twin.twin), "{}", twin.twin);
        }
        for family in &tr.families {
            assert!(!family.comment.is_empty());
            for entry in &family.entries {
                assert_known(&family.id, &entry.name);
                assert!(
                    !entry.also.is_empty(),
                    "{}: {} has no alternative",
                    family.id,
                    entry.name
                );
                assert!(!entry.reason.is_empty());
                for alt in &entry.also {
                    assert_known(&family.id, alt);
                }
            }
        }
        for none in &tr.none_needed {
            assert_known("none_needed", &none.name);
        }
        assert_eq!(tr.time64_twin("clock_gettime"), Some("clock_gettime64"));
        assert_eq!(tr.time64_twin("read"), None);
    }

    #[test]
    fn tracked_args_are_valid_and_fit_the_kernel_tables() {
        use crate::allowlist::{ArgField, ArgKind};
        use agent_audit_ebpf::{MAX_ARGS_PER_SYSCALL, MAX_TRACKED_ARGS};
        let set = tracked_args();
        assert_reason("tracked args", "about", &set.about);
        let mut seen = BTreeSet::new();
        for arg in &set.args {
            let what = format!("{}[{}]", arg.syscall, arg.index);
            assert_known("tracked args", &arg.syscall);
            assert_reason("tracked args", &what, &arg.reason);
            assert!(arg.index <= 5, "{what}: seccomp sees arguments 0..=5");
            assert!(arg.mask != 0, "{what}: a zero mask records nothing");
            assert!(
                seen.insert((arg.syscall.as_str(), arg.index, arg.field)),
                "{what} listed twice"
            );
            if arg.field == Some(ArgField::CloneArgsFlags) {
                assert_eq!((arg.syscall.as_str(), arg.index), ("clone3", 0), "{what}");
                assert_eq!(arg.kind, ArgKind::Flags, "{what}");
            }
            assert!(
                set.of(&arg.syscall).count() <= MAX_ARGS_PER_SYSCALL,
                "{}: at most {MAX_ARGS_PER_SYSCALL} arguments per syscall",
                arg.syscall
            );
        }
        // Every arch's resolved entries fit the kernel program's spec table (the host has at
        // most three ABIs: x86_64 + i386 + x32, or aarch64 + arm).
        let resolved = |arch: Arch| {
            set.args
                .iter()
                .filter(|a| arch.has_syscall(&a.syscall))
                .count()
        };
        let x86_host = resolved(Arch::X86_64) + resolved(Arch::X86) + resolved(Arch::X32);
        let arm_host = resolved(Arch::Aarch64) + resolved(Arch::Arm);
        assert!(x86_host <= MAX_TRACKED_ARGS && arm_host <= MAX_TRACKED_ARGS);
        // What the issue asks for, as the kernel reads it.
        let mask = |name: &str, index: u8| {
            set.of(name)
                .find(|a| a.index == index)
                .map(|a| (a.kind, a.mask))
                .unwrap_or_else(|| panic!("{name}[{index}] not tracked"))
        };
        assert_eq!(mask("clone", 0), (ArgKind::Flags, !0xff));
        assert_eq!(mask("clone3", 0), (ArgKind::Flags, u64::MAX));
        assert_eq!(mask("unshare", 0).0, ArgKind::Flags);
        assert_eq!(mask("socket", 0), (ArgKind::Values, 0xffff_ffff));
        // SOCK_NONBLOCK (0o4000) and SOCK_CLOEXEC (0o2000000) are not part of the type.
        assert_eq!(
            mask("socket", 1),
            (ArgKind::Values, 0xffff_ffff & !0o4000 & !0o2000000)
        );
        assert_eq!(mask("socketpair", 0).0, ArgKind::Values);
        assert_eq!(mask("personality", 0).0, ArgKind::Values);
        assert_eq!(mask("ioctl", 1), (ArgKind::Values, 0xffff_ffff));
        assert_eq!(mask("prctl", 0).0, ArgKind::Values);
        assert_eq!(mask("fcntl", 1).0, ArgKind::Values);
        assert_eq!(mask("fcntl64", 1).0, ArgKind::Values);
        assert!(set.tracks("ioctl") && !set.tracks("read"));
    }

    #[test]
    fn tracked_arg_masks_are_hex_strings() {
        let parse = |mask: &str| {
            serde_json::from_str::<TrackedArg>(&format!(
                r#"{{"syscall":"ioctl","index":1,"kind":"values","mask":{mask},"reason":"r."}}"#
            ))
        };
        assert_eq!(parse(r#""0xff""#).unwrap().mask, 0xff);
        assert!(
            parse("255").is_err(),
            "numbers are refused: masks are written in hex"
        );
        assert!(parse(r#""ff""#).is_err());
        assert!(
            parse(r#""0x1ffffffffffffffff""#).is_err(),
            "more than 64 bits"
        );
    }
}
