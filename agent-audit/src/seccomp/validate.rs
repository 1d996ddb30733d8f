//! What runc, Docker or Podman refuse in a profile that parses: checked when a profile is read,
//! so that every command fails the same way, naming the field, before anything is written.
//!
//! Sources: runc `libcontainer/seccomp/seccomp_linux.go` (`InitSeccomp`, `matchCall`,
//! libseccomp's argument index limit), `libcontainer/process_linux.go` (notify needs a
//! listener), moby/profiles `seccomp/seccomp_linux.go` (`name` with `names`, `architectures`
//! with `archMap`).

use super::{Action, SeccompProfile};

/// Highest argument index a syscall has (libseccomp refuses higher ones).
const MAX_ARG_INDEX: u32 = 5;

/// A field runc or Docker would refuse, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// JSON path of the field, e.g. `syscalls[3].args[0].index`.
    pub field: String,
    /// What is wrong with it.
    pub detail: String,
}

/// The first field of `profile` a runtime would refuse, if any.
pub fn refusal(profile: &SeccompProfile) -> Option<Refusal> {
    let refuse = |field: String, detail: &str| {
        Some(Refusal {
            field,
            detail: detail.to_string(),
        })
    };
    if !profile.architectures.is_empty() && !profile.arch_map.is_empty() {
        return refuse(
            "archMap".into(),
            "both \"architectures\" and \"archMap\" are given; Docker refuses the profile (use one)",
        );
    }
    if profile.default_action == Action::Notify {
        return refuse(
            "defaultAction".into(),
            "SCMP_ACT_NOTIFY cannot be the default action (runc refuses it)",
        );
    }
    let notifies = profile.syscalls.iter().any(|r| r.action == Action::Notify);
    if notifies && profile.listener_path.as_deref().is_none_or(str::is_empty) {
        return refuse(
            "listenerPath".into(),
            "a rule uses SCMP_ACT_NOTIFY but no listenerPath is set (runc refuses it)",
        );
    }
    for (i, rule) in profile.syscalls.iter().enumerate() {
        if rule.name.is_some() && !rule.names.is_empty() {
            return refuse(
                format!("syscalls[{i}].name"),
                "both \"name\" and \"names\" are given; Docker refuses the rule (use \"names\")",
            );
        }
        if rule.all_names().any(str::is_empty) {
            return refuse(
                format!("syscalls[{i}].names"),
                "an empty syscall name (runc refuses it)",
            );
        }
        if rule.action == Action::Notify && rule.all_names().any(|n| n == "write") {
            return refuse(
                format!("syscalls[{i}].action"),
                "SCMP_ACT_NOTIFY on write would hang the runtime (runc refuses it)",
            );
        }
        for (j, arg) in rule.args.iter().enumerate() {
            if arg.index > MAX_ARG_INDEX {
                return Some(Refusal {
                    field: format!("syscalls[{i}].args[{j}].index"),
                    detail: format!(
                        "{} is not an argument index (0..={MAX_ARG_INDEX}); libseccomp refuses it",
                        arg.index
                    ),
                });
            }
        }
    }
    None
}
