//! What a Docker/Podman profile's conditional rules would open: for every dangerous syscall a
//! rule allows only under `includes`/`excludes` that this container does not meet, the
//! capabilities (or kernel, or arch) under which it becomes reachable.

use super::LintCode;
use std::collections::BTreeMap;

use super::{Finding, Severity};
use crate::policy;
use crate::seccomp::container::ContainerContext;
use crate::seccomp::{RuleFilter, SeccompProfile, SyscallRule};

/// One note per set of conditions, naming the dangerous syscalls they open.
pub(super) fn dangerous_by_condition(
    profile: &SeccompProfile,
    context: &ContainerContext,
) -> Vec<Finding> {
    let dangerous = policy::dangerous();
    let mut by_condition: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rule in profile
        .syscalls
        .iter()
        .filter(|r| !r.action.denies() && r.is_filtered() && !context.keeps(r))
    {
        for name in rule.all_names().filter(|n| dangerous.contains(n)) {
            by_condition
                .entry(describe(rule))
                .or_default()
                .push(name.to_string());
        }
    }
    by_condition
        .into_iter()
        .map(|(condition, mut names)| {
            names.sort();
            names.dedup();
            Finding {
                severity: Severity::Note,
                code: LintCode::DangerousWithCapability,
                message: format!(
                    "dangerous syscalls allowed only {condition}: not counted as allowed for \
                     this container, but reachable if it runs that way"
                ),
                arch: None,
                names,
            }
        })
        .collect()
}

/// `with CAP_SYS_ADMIN`, `on kernel ≥ 4.8 without CAP_SYS_PTRACE`, …
fn describe(rule: &SyscallRule) -> String {
    let mut parts = Vec::new();
    describe_filter(&rule.includes, "with", "on kernel ≥", "on", &mut parts);
    describe_filter(
        &rule.excludes,
        "without",
        "on kernel <",
        "not on",
        &mut parts,
    );
    parts.join(" ")
}

fn describe_filter(
    filter: &RuleFilter,
    caps_word: &str,
    kernel_word: &str,
    arch_word: &str,
    parts: &mut Vec<String>,
) {
    if !filter.caps.is_empty() {
        parts.push(format!("{caps_word} {}", filter.caps.join(" and ")));
    }
    if let Some(kernel) = filter.min_kernel {
        parts.push(format!("{kernel_word} {kernel}"));
    }
    if !filter.arches.is_empty() {
        parts.push(format!("{arch_word} {}", filter.arches.join("/")));
    }
}
