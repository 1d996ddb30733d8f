//! What a profile does with one call (name and argument values), decided the way the filter
//! runc builds decides it, without building it: used to know what `verify`'s probes should get.
//!
//! libseccomp keeps one unconditional rule per syscall over any conditional one
//! (`db_col_rule_add` in its `src/db.c`: an existing unconditional entry drops later conditional
//! rules, a later unconditional rule clears earlier conditions); of two nested conditional rules
//! with different actions the first added is kept; conditional rules are ORed, the
//! conditions of one rule ANDed, except that runc splits a rule comparing one index twice into
//! one rule per condition. Comparisons are on 64-bit values, as on a 64-bit arch. A syscall
//! newer than every name of the profile gets ENOSYS from runc's stub ([`super::enosys`]).

use super::enosys::EnosysStub;
use super::{Action, SeccompProfile, SyscallRule};
use crate::syscalls::Arch;

/// What a call gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The action taken.
    pub action: Action,
    /// The errno, for `SCMP_ACT_ERRNO` (runc's EPERM when none is given).
    pub errno: Option<u32>,
}

impl Outcome {
    /// Whether the call runs.
    pub fn allows(&self) -> bool {
        !self.action.denies()
    }
}

/// The outcome of `name(args…)` under `profile`. `includes`/`excludes` are not evaluated: every
/// rule counts, as in the filter `check` and `verify` compile.
pub fn outcome(profile: &SeccompProfile, name: &str, args: &[u64; 6]) -> Outcome {
    if newer_than_profile(profile, name) {
        return of(Action::Errno, Some(libc::ENOSYS as u32));
    }
    let rules: Vec<&SyscallRule> = profile
        .syscalls
        .iter()
        .filter(|r| r.all_names().any(|n| n == name))
        .filter(|r| !same_as_default(profile, r))
        .collect();
    // Of two nested conditional rules with different actions, libseccomp keeps the first
    // added (tested in the kernel in `compile`).
    let mut kept: Vec<&SyscallRule> = Vec::new();
    for rule in rules.iter().filter(|r| !r.args.is_empty()) {
        let clashes = kept.iter().any(|k| {
            (k.action, k.errno_ret) != (rule.action, rule.errno_ret) && k.conditions_nest(rule)
        });
        if !clashes {
            kept.push(rule);
        }
    }
    let chosen = rules
        .iter()
        .find(|r| r.args.is_empty())
        .or_else(|| kept.iter().find(|r| matches(r, args)));
    match chosen {
        Some(rule) => of(rule.action, rule.errno_ret),
        None => of(profile.default_action, profile.default_errno_ret),
    }
}

/// Whether runc's stub answers `name` with ENOSYS on this host's arch.
fn newer_than_profile(profile: &SeccompProfile, name: &str) -> bool {
    let Some(arch) = Arch::native() else {
        return false;
    };
    let Ok(nr) = libseccomp::ScmpSyscall::from_name_by_arch(name, super::arches::scmp_arch(arch))
    else {
        return false;
    };
    // A negative pseudo-number: the arch lacks the call, no stub answers it.
    let Ok(nr) = u32::try_from(i32::from(nr)) else {
        return false;
    };
    EnosysStub::for_profile(profile).answers_enosys(arch, nr)
}

fn of(action: Action, errno: Option<u32>) -> Outcome {
    Outcome {
        action,
        errno: matches!(action, Action::Errno).then(|| errno.unwrap_or(1)),
    }
}

/// runc skips a rule whose action (and errno) equals the default.
fn same_as_default(profile: &SeccompProfile, rule: &SyscallRule) -> bool {
    of(rule.action, rule.errno_ret) == of(profile.default_action, profile.default_errno_ret)
}

fn matches(rule: &SyscallRule, args: &[u64; 6]) -> bool {
    let value = |index: u32| args.get(index as usize).copied().unwrap_or(0);
    if rule.repeated_indexes().is_empty() {
        rule.args.iter().all(|c| c.matches(value(c.index)))
    } else {
        rule.args.iter().any(|c| c.matches(value(c.index)))
    }
}

/// The profile as Docker or Podman hands it to runc for a container without the capabilities
/// rules are gated on (`includes.caps`), on this host's arch, whatever the kernel: rules that
/// need a capability or another arch are left out, rules a capability would exclude are kept.
pub fn without_capability_rules(profile: &SeccompProfile) -> SeccompProfile {
    let context = super::container::ContainerContext {
        caps: super::container::Capabilities::Set(Default::default()),
        kernel: None,
        go_arch: super::container::go_arch(Arch::native()),
    };
    context.effective(profile)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn docker_default_socket_and_clone_rules() {
        let docker = SeccompProfile::parse(
            include_str!("../../../tests/data/profiles/docker-default.json"),
            Path::new("docker"),
        )
        .unwrap();
        let call = |name: &str, a0: u64| outcome(&docker, name, &[a0, 0, 0, 0, 0, 0]);
        assert!(call("socket", 2).allows());
        assert!(!call("socket", 38).allows() && !call("socket", 40).allows());
        // Docker's `GT 40` rule: the kernel reads the family as an int, so this is AF_VSOCK.
        assert!(call("socket", 0x1_0000_0028).allows());
        assert!(!call("personality", 0x40_0000).allows());
        // Without evaluating capabilities, Docker's CAP_SYS_ADMIN rule allows clone and clone3
        // unconditionally, and libseccomp lets it win over the masked and ENOSYS rules.
        assert!(call("clone", 0x1000_0011).allows());
        assert!(call("clone3", 0).allows());
    }

    #[test]
    fn of_two_nested_rules_with_different_actions_the_first_wins() {
        let allow = r#"{"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":16,"op":"SCMP_CMP_EQ"}]}"#;
        let deny = r#"{"names":["socket"],"action":"SCMP_ACT_ERRNO","errnoRet":22,"args":[{"index":0,"value":16,"op":"SCMP_CMP_EQ"},{"index":2,"value":9,"op":"SCMP_CMP_EQ"}]}"#;
        let profile = |rules: String| {
            SeccompProfile::parse(
                &format!(r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{rules}]}}"#),
                Path::new("p"),
            )
            .unwrap()
        };
        // The same answers the kernel gives (`compile`'s kernel test).
        let p = profile(format!("{allow},{deny}"));
        assert!(outcome(&p, "socket", &[16, 3, 9, 0, 0, 0]).allows());
        let p = profile(format!("{deny},{allow}"));
        assert_eq!(outcome(&p, "socket", &[16, 3, 9, 0, 0, 0]).errno, Some(22));
        assert_eq!(outcome(&p, "socket", &[16, 3, 0, 0, 0, 0]).errno, Some(1));
    }

    #[test]
    fn a_repeated_index_is_ored_as_runc_does() {
        let p = SeccompProfile::parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["socket"],"action":"SCMP_ACT_ALLOW",
                "args":[{"index":0,"value":38,"op":"SCMP_CMP_NE"},{"index":0,"value":40,"op":"SCMP_CMP_NE"}]}]}"#,
            Path::new("p"),
        )
        .unwrap();
        // Meant as "neither 38 nor 40", but runc makes it "not 38 OR not 40": everything.
        assert!(outcome(&p, "socket", &[38, 0, 0, 0, 0, 0]).allows());
        assert!(outcome(&p, "socket", &[40, 0, 0, 0, 0, 0]).allows());
    }
}
