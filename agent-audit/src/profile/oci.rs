//! The OCI / Docker frontend: a [`ProfilePlan`] as the JSON runc, crun, Docker and Podman read.

use super::model::{PlannedRule, ProfilePlan, Verdict};
use crate::seccomp::{Action, SeccompProfile, SyscallRule};

/// The plan as an OCI seccomp profile.
pub fn to_seccomp_profile(plan: &ProfilePlan) -> SeccompProfile {
    SeccompProfile {
        default_action: Action::Errno,
        default_errno_ret: Some(plan.default_errno),
        architectures: plan
            .architectures
            .iter()
            .map(|a| a.arch.scmp_name().to_string())
            .collect(),
        syscalls: plan.rules.iter().map(to_rule).collect(),
        ..SeccompProfile::default()
    }
}

/// A verdict as a profile action and errno.
pub fn action_of(verdict: Verdict) -> (Action, Option<u32>) {
    match verdict {
        Verdict::Allow => (Action::Allow, None),
        Verdict::Log => (Action::Log, None),
        Verdict::Deny { errno } => (Action::Errno, Some(errno)),
        Verdict::KillThread => (Action::KillThread, None),
        Verdict::KillProcess => (Action::KillProcess, None),
        Verdict::Trap => (Action::Trap, None),
    }
}

fn to_rule(rule: &PlannedRule) -> SyscallRule {
    let (action, errno_ret) = action_of(rule.verdict);
    SyscallRule {
        names: rule.names.clone(),
        action,
        errno_ret,
        args: rule.args.clone(),
        comment: Some(rule.comment.clone()),
        ..SyscallRule::default()
    }
}
