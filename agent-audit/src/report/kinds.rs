//! What kind of thing each entry of the report's findings is, and the one question that decides
//! whether it counts: must a reviewer change something before committing the profile? Only the
//! kinds that say yes count as findings (the count, `audit`'s exit code); every other kind is
//! information, shown apart and folded.

use serde::Serialize;

/// The kinds of entries the findings lists hold, in the order the reports show them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// `verify` ran the workload under the profile and something failed: it did not start,
    /// timed out, left processes running, a probe was not refused, or it exited non-zero.
    VerifyFailed,
    /// The loaded filter denied a call while `verify` ran the workload.
    VerifyDenied,
    /// The last run still saw something no earlier run had: the profile may lack calls.
    NotConverged,
    /// A dangerous syscall the workload made is allowed without an accepted risk.
    DangerousAllowed,
    /// The recordings hold a call the profile denies (a name, an arch it does not list, or a
    /// number with no name).
    DeniedButUsed,
    /// A listed architecture lacks a name the observed calls need there.
    ArchGap,
    /// A call only the runtime's init made is allowed for no reason the recordings, the
    /// baseline or a documented allowance give: the profile is looser than needed.
    RuntimeInitUnneeded,
    /// A dangerous syscall the workload made is allowed as an accepted risk (`--allow` with its
    /// reason): a decision already written down.
    DangerousAcceptedRisk,
    /// A dangerous syscall the workload made is denied by the profile (its use is listed as
    /// [`FindingKind::DeniedButUsed`] or [`FindingKind::VerifyDenied`] when it matters).
    DangerousDenied,
    /// A call only the runtime's init made that the profile denies (made before the filter is
    /// in place) or allows as runtime baseline or by a documented allowance.
    RuntimeInitHandled,
    /// A daemon that starts as root and drops to its user (squid, nginx, postgres): what ran as
    /// root, merged over the runs that did the same.
    PrivilegeDrop,
    /// A caveat about the inputs (snapshots, no `--profile`, ENOSYS fallbacks).
    Note,
}

impl FindingKind {
    /// Every kind, in report order.
    pub const ALL: [FindingKind; 12] = [
        FindingKind::VerifyFailed,
        FindingKind::VerifyDenied,
        FindingKind::NotConverged,
        FindingKind::DangerousAllowed,
        FindingKind::DeniedButUsed,
        FindingKind::ArchGap,
        FindingKind::RuntimeInitUnneeded,
        FindingKind::DangerousAcceptedRisk,
        FindingKind::DangerousDenied,
        FindingKind::RuntimeInitHandled,
        FindingKind::PrivilegeDrop,
        FindingKind::Note,
    ];

    /// Whether a reviewer must change something (the profile, the workload, or the recording)
    /// before committing the profile: only these count as findings.
    pub fn actionable(self) -> bool {
        match self {
            FindingKind::VerifyFailed
            | FindingKind::VerifyDenied
            | FindingKind::NotConverged
            | FindingKind::DangerousAllowed
            | FindingKind::DeniedButUsed
            | FindingKind::ArchGap
            | FindingKind::RuntimeInitUnneeded => true,
            FindingKind::DangerousAcceptedRisk
            | FindingKind::DangerousDenied
            | FindingKind::RuntimeInitHandled
            | FindingKind::PrivilegeDrop
            | FindingKind::Note => false,
        }
    }

    /// How the verdict line counts `n` of them ("2 calls verify saw denied").
    pub fn counted(self, n: usize) -> String {
        let what = match self {
            FindingKind::VerifyFailed => "verify failure(s)",
            FindingKind::VerifyDenied => "call(s) verify saw denied",
            FindingKind::NotConverged => "run still adding calls",
            FindingKind::DangerousAllowed => "dangerous call(s) allowed without an accepted risk",
            FindingKind::DeniedButUsed => "recorded call(s) the profile denies",
            FindingKind::ArchGap => "name(s) missing on a listed architecture",
            FindingKind::RuntimeInitUnneeded => "runtime-init call(s) allowed for no reason",
            FindingKind::DangerousAcceptedRisk => "dangerous call(s) allowed as an accepted risk",
            FindingKind::DangerousDenied => "dangerous call(s) the profile denies",
            FindingKind::RuntimeInitHandled => "runtime-init call(s) the profile handles",
            FindingKind::PrivilegeDrop => "privilege drop(s)",
            FindingKind::Note => "note(s)",
        };
        format!("{n} {what}")
    }

    /// What the reviewer does about one (the findings table of docs/reports.md says the same).
    pub fn what_to_do(self) -> &'static str {
        match self {
            FindingKind::VerifyFailed | FindingKind::VerifyDenied => {
                "record the runs that make the missing calls (or fix the workload), then audit again"
            }
            FindingKind::NotConverged => "record more runs (`audit --until-stable 2`)",
            FindingKind::DangerousAllowed => {
                "deny it, or allow it as an accepted risk with `--allow NAME --reason TEXT`"
            }
            FindingKind::DeniedButUsed => {
                "allow it (`--allow NAME --reason TEXT` for a dangerous one), or change the \
                 workload so that it no longer makes it"
            }
            FindingKind::ArchGap => "regenerate with `profile --arch`, or add the names",
            FindingKind::RuntimeInitUnneeded => "remove the rule that allows it",
            FindingKind::DangerousAcceptedRisk
            | FindingKind::DangerousDenied
            | FindingKind::RuntimeInitHandled
            | FindingKind::PrivilegeDrop
            | FindingKind::Note => "nothing: information",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_kind_once_in_report_order_actionable_first() {
        let mut sorted = FindingKind::ALL;
        sorted.sort();
        assert_eq!(sorted, FindingKind::ALL);
        let first_information = FindingKind::ALL
            .iter()
            .position(|k| !k.actionable())
            .unwrap();
        assert!(FindingKind::ALL[first_information..]
            .iter()
            .all(|k| !k.actionable()));
        for kind in FindingKind::ALL {
            assert_eq!(
                kind.what_to_do() == "nothing: information",
                !kind.actionable(),
                "{kind:?}"
            );
        }
    }
}
