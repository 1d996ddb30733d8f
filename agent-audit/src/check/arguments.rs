//! Lints on argument rules: what Docker's current default refuses by argument (`socket`
//! families, `clone` namespace flags, `clone3`), and rule shapes that libseccomp or runc do not
//! read the way they look.
//!
//! Calls are evaluated as the filter decides them ([`crate::seccomp::evaluate`]) on this host's
//! arch for a container without the capabilities some Docker/Podman rules are gated on: rules
//! that need a capability (`includes.caps`) or another arch are left out, rules excluded by a
//! capability are kept.

use super::LintCode;
use super::{finding, sorted};
use super::{Finding, Severity};
use crate::seccomp::evaluate::{self, Outcome};
use crate::seccomp::{Action, CompareOp, SeccompProfile, SyscallRule};
use crate::syscalls::Arch;

const AF_ALG: u64 = 38;
const AF_VSOCK: u64 = 40;
/// An int argument with bit 32 set: the kernel truncates it.
const UPPER_BIT: u64 = 1 << 32;
const SIGCHLD: u64 = 17;
const CLONE_NEWUSER: u64 = 0x1000_0000;
const CLONE_NEWNS: u64 = 0x0002_0000;
/// ioctl's request: the kernel reads an unsigned int.
const LOW_32_BITS: u64 = 0xffff_ffff;

/// Every argument lint.
pub(super) fn run(profile: &SeccompProfile, arches: &[Arch], out: &mut Vec<Finding>) {
    let view = evaluate::without_capability_rules(profile);
    let listed = |name: &str| arches.is_empty() || arches.iter().any(|a| a.has_syscall(name));
    if listed("socket") {
        socket_families(&view, out);
    }
    if listed("clone") {
        clone_namespaces(&view, out);
    }
    if listed("clone3") {
        clone3_allowed(&view, out);
    }
    mixed_conditions(profile, out);
    overlapping_conditions(profile, out);
    repeated_indexes(profile, out);
    ioctl_requests(profile, out);
}

fn call(profile: &SeccompProfile, name: &str, arg0: u64) -> Outcome {
    evaluate::outcome(profile, name, &[arg0, 0, 0, 0, 0, 0])
}

fn socket_families(profile: &SeccompProfile, out: &mut Vec<Finding>) {
    let reachable: Vec<&str> = [(AF_ALG, "AF_ALG"), (AF_VSOCK, "AF_VSOCK")]
        .into_iter()
        .filter(|&(family, _)| call(profile, "socket", family).allows())
        .map(|(_, name)| name)
        .collect();
    if !reachable.is_empty() {
        out.push(finding(
            Severity::Error,
            LintCode::SocketFamilyUnrestricted,
            format!(
                "socket is allowed for {}: AF_ALG exposes the kernel crypto API \
                 (CVE-2026-31431 \"Copy Fail\"), AF_VSOCK the host/guest transport \
                 (CVE-2021-26708, CVE-2024-50264); Docker's default refuses both. Allow only \
                 the families the workload uses (SCMP_CMP_EQ on argument 0)",
                reachable.join(" and ")
            ),
            vec!["socket".into()],
        ));
        return;
    }
    let aliased: Vec<&str> = [(AF_ALG, "AF_ALG"), (AF_VSOCK, "AF_VSOCK")]
        .into_iter()
        .filter(|&(family, _)| call(profile, "socket", family | UPPER_BIT).allows())
        .map(|(_, name)| name)
        .collect();
    if !aliased.is_empty() {
        out.push(finding(
            Severity::Error,
            LintCode::SocketFamilyUpperBits,
            format!(
                "socket refuses {0} but allows {0} with bit 32 set, which the kernel truncates \
                 to {0} (the family is an int): a SCMP_CMP_GT/GE/NE rule on the family lets \
                 it through. Use SCMP_CMP_EQ per family (or SCMP_CMP_LT, which upper bits \
                 cannot pass)",
                aliased.join(" and ")
            ),
            vec!["socket".into()],
        ));
    }
}

fn clone_namespaces(profile: &SeccompProfile, out: &mut Vec<Finding>) {
    let open: Vec<&str> = [
        (CLONE_NEWUSER, "CLONE_NEWUSER"),
        (CLONE_NEWNS, "CLONE_NEWNS"),
    ]
    .into_iter()
    .filter(|&(flag, _)| call(profile, "clone", flag | SIGCHLD).allows())
    .map(|(_, name)| name)
    .collect();
    if open.is_empty() {
        return;
    }
    out.push(finding(
        Severity::Error,
        LintCode::CloneNamespacesAllowed,
        format!(
            "clone is allowed with {}: without a namespace mask (SCMP_CMP_MASKED_EQ 0x7E020000 \
             == 0 on argument 0, as in Docker's default) a process creates namespaces, and a \
             user namespace unlocks kernel code paths behind many container escapes",
            open.join(" and ")
        ),
        vec!["clone".into()],
    ));
}

fn clone3_allowed(profile: &SeccompProfile, out: &mut Vec<Finding>) {
    if !call(profile, "clone3", 0).allows() {
        return;
    }
    out.push(finding(
        Severity::Error,
        LintCode::Clone3Allowed,
        "clone3 is allowed: its flags live in user memory where seccomp cannot compare them, so \
         it creates namespaces whatever the clone rule says. Deny it with SCMP_ACT_ERRNO and \
         errnoRet 38 (ENOSYS): glibc then falls back to clone"
            .into(),
        vec!["clone3".into()],
    ));
}

/// A name in both an unconditional and a conditional rule: libseccomp keeps the unconditional
/// one and drops the conditions (`db_col_rule_add`). Rules gated on capabilities or arches are
/// left out: Docker and Podman pair them so that only one applies.
fn mixed_conditions(profile: &SeccompProfile, out: &mut Vec<Finding>) {
    let plain = || profile.syscalls.iter().filter(|r| !r.is_filtered());
    let mixed: Vec<&str> = plain()
        .filter(|r| !r.args.is_empty())
        .flat_map(|r| r.all_names())
        .filter(|name| plain().any(|r| r.args.is_empty() && r.all_names().any(|n| n == *name)))
        .collect();
    if mixed.is_empty() {
        return;
    }
    out.push(finding(
        Severity::Error,
        LintCode::ConditionalAndUnconditional,
        "names in both an unconditional and a conditional rule: libseccomp keeps the \
         unconditional rule and silently drops the argument conditions"
            .into(),
        sorted(mixed),
    ));
}

/// Two conditional rules for one name with different actions, one's conditions a subset of the
/// other's: libseccomp keeps one of them, and which depends on their order (measured in the
/// kernel with Podman's NETLINK_AUDIT rule beside an allow of AF_NETLINK: deny first, every
/// netlink socket got EPERM; allow first, NETLINK_AUDIT was allowed).
fn overlapping_conditions(profile: &SeccompProfile, out: &mut Vec<Finding>) {
    let rules: Vec<&SyscallRule> = profile
        .syscalls
        .iter()
        .filter(|r| !r.args.is_empty() && !r.is_filtered())
        .collect();
    let mut names = Vec::new();
    for (i, a) in rules.iter().enumerate() {
        for b in &rules[i + 1..] {
            let differ = (a.action, a.errno_ret) != (b.action, b.errno_ret);
            if differ && a.conditions_nest(b) {
                names.extend(a.all_names().filter(|n| b.all_names().any(|m| m == *n)));
            }
        }
    }
    if names.is_empty() {
        return;
    }
    out.push(finding(
        Severity::Error,
        LintCode::ConditionalRulesOverlap,
        "conditional rules with different actions where one's conditions include the other's: \
         libseccomp keeps only one of them, depending on their order, so either the narrower \
         rule or the wider one silently does nothing"
            .into(),
        sorted(names),
    ));
}

fn repeated_indexes(profile: &SeccompProfile, out: &mut Vec<Finding>) {
    let rules: Vec<String> = profile
        .syscalls
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.repeated_indexes().is_empty())
        .map(|(i, r)| describe(i, r))
        .collect();
    if rules.is_empty() {
        return;
    }
    out.push(finding(
        Severity::Error,
        LintCode::IndexComparedTwice,
        "rules that compare one argument twice: runc then adds each condition as a rule of its \
         own, so they are ORed, not ANDed (\"!= 38 and != 40\" allows everything); write one \
         rule per allowed value instead"
            .into(),
        rules,
    ));
}

/// ioctl's request is an unsigned int: a comparison on all 64 bits is bypassed by setting
/// upper bits (CVE-2019-10063 in flatpak's TIOCSTI filter).
fn ioctl_requests(profile: &SeccompProfile, out: &mut Vec<Finding>) {
    let unmasked = |r: &&SyscallRule| {
        r.all_names().any(|n| n == "ioctl")
            && r.args.iter().any(|c| {
                c.index == 1 && (c.op != CompareOp::MaskedEqual || c.value & !LOW_32_BITS != 0)
            })
    };
    for (denies, severity) in [(true, Severity::Error), (false, Severity::Warning)] {
        let rules: Vec<String> = profile
            .syscalls
            .iter()
            .enumerate()
            .filter(|(_, r)| r.action.denies() == denies && r.action != Action::Log)
            .filter(|(_, r)| unmasked(r))
            .map(|(i, r)| describe(i, r))
            .collect();
        if rules.is_empty() {
            continue;
        }
        let what = if denies {
            "a request refused this way is reachable with the same low 32 bits and any upper \
             bit set"
        } else {
            "an allowed request with upper bits set is the same request to the kernel"
        };
        out.push(finding(
            severity,
            LintCode::IoctlRequestUnmasked,
            format!(
                "ioctl rules compare the request (argument 1) on 64 bits, but the kernel reads \
                 32 (CVE-2019-10063): {what}. Compare with SCMP_CMP_MASKED_EQ and mask \
                 0xffffffff"
            ),
            rules,
        ));
    }
}

fn describe(index: usize, rule: &SyscallRule) -> String {
    format!(
        "rule {} ({})",
        index + 1,
        rule.all_names().collect::<Vec<_>>().join(", ")
    )
}
