//! The capability checks of a `verify` run, each set against how the recordings saw that
//! capability. A check the workload was granted when recorded and is refused now is a
//! finding: the set it runs with lacks a capability it needed (the minimal set was too
//! small, or the run went a way no recording did). One the recordings saw refused too is
//! information: daemons probe capabilities they cope without (`CAP_SYS_RESOURCE` to raise a
//! limit, `CAP_NET_ADMIN` for a socket option), whatever they run with.

use serde::{Deserialize, Serialize};

use crate::allowlist::Allowlist;
use crate::capabilities::{CapabilityChecks, Outcomes};

/// How the recordings saw one capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recorded {
    /// An audited check was granted: the minimal set has it.
    Granted,
    /// Audited checks were made, all refused.
    Refused,
    /// Only no-audit probes, which never need it.
    ProbedOnly,
    /// The recordings counted capability checks; this one was never checked.
    NotChecked,
    /// No recording counted capability checks (none given, or made without the hook).
    NoRecording,
}

/// What a refused check under `verify` is, by the recordings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapabilityFindingKind {
    /// Granted in the recordings, never refused there, refused now: the workload lacks a
    /// capability it needed. Fails the verification.
    CapabilityRefused,
    /// Refused now and in the recordings too: the workload copes without it. Information.
    RefusedWhenRecorded,
}

impl CapabilityFindingKind {
    /// Whether it fails the verification.
    pub fn fails(self) -> bool {
        self == CapabilityFindingKind::CapabilityRefused
    }
}

/// One capability checked under `verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CapabilityUnderVerify {
    /// Name without `CAP_`.
    pub capability: String,
    /// The checks under `verify`.
    pub checks: Outcomes,
    /// How the recordings saw it.
    pub recorded: Recorded,
    /// Refused audited checks under `verify`, judged by the recordings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<CapabilityFindingKind>,
}

/// The `capabilities` sections of the recordings that have one.
pub fn recorded_sections(lists: &[Allowlist]) -> Vec<CapabilityChecks> {
    lists
        .iter()
        .filter_map(|l| l.capabilities.clone())
        .collect()
}

/// `capability`'s outcomes over `sections`; `None` when there are none.
fn outcomes_in(sections: &[CapabilityChecks], capability: &str) -> Option<Outcomes> {
    if sections.is_empty() {
        return None;
    }
    let mut sum = Outcomes::default();
    for check in sections
        .iter()
        .flat_map(|s| &s.checks)
        .filter(|c| c.capability == capability)
    {
        sum.merge(&check.outcomes);
    }
    Some(sum)
}

fn recorded(outcomes: Option<Outcomes>) -> Recorded {
    let Some(o) = outcomes else {
        return Recorded::NoRecording;
    };
    if o.granted > 0 {
        Recorded::Granted
    } else if o.refused > 0 {
        Recorded::Refused
    } else if o.total() > 0 {
        Recorded::ProbedOnly
    } else {
        Recorded::NotChecked
    }
}

/// A refused audited check under `verify`, judged by the recordings' outcomes.
fn judge(now: &Outcomes, then: Option<&Outcomes>) -> Option<CapabilityFindingKind> {
    if now.refused == 0 {
        return None;
    }
    let then = then?;
    if then.refused > 0 {
        Some(CapabilityFindingKind::RefusedWhenRecorded)
    } else if then.granted > 0 {
        Some(CapabilityFindingKind::CapabilityRefused)
    } else {
        None
    }
}

/// Every capability checked under `verify` (`checks`), with how the recordings' sections saw
/// it.
pub fn compare(
    checks: &CapabilityChecks,
    sections: &[CapabilityChecks],
) -> Vec<CapabilityUnderVerify> {
    checks
        .checks
        .iter()
        .map(|check| {
            let then = outcomes_in(sections, &check.capability);
            CapabilityUnderVerify {
                capability: check.capability.clone(),
                checks: check.outcomes,
                recorded: recorded(then),
                finding: judge(&check.outcomes, then.as_ref()),
            }
        })
        .collect()
}

/// Whether any refused check fails the verification.
pub fn any_fails(capabilities: &[CapabilityUnderVerify]) -> bool {
    capabilities
        .iter()
        .any(|c| c.finding.is_some_and(CapabilityFindingKind::fails))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::{CapabilityCheck, CheckHook};

    fn section(checks: &[(&str, Outcomes)]) -> CapabilityChecks {
        CapabilityChecks {
            hook: CheckHook::FExit,
            checks: checks
                .iter()
                .map(|(name, outcomes)| CapabilityCheck {
                    capability: (*name).to_string(),
                    outcomes: *outcomes,
                    programs: Vec::new(),
                })
                .collect(),
        }
    }

    fn outcomes(granted: u64, refused: u64, noaudit: u64) -> Outcomes {
        Outcomes {
            granted,
            refused,
            noaudit_granted: noaudit,
            noaudit_refused: 0,
        }
    }

    #[test]
    fn only_a_check_granted_and_never_refused_when_recorded_fails() {
        let recorded = [section(&[
            ("SETUID", outcomes(4, 0, 0)),
            ("SYS_RESOURCE", outcomes(0, 2, 0)),
            ("CHOWN", outcomes(3, 1, 0)),
            ("NET_ADMIN", outcomes(0, 0, 5)),
        ])];
        let now = section(&[
            ("SETUID", outcomes(0, 1, 0)),
            ("SYS_RESOURCE", outcomes(0, 2, 0)),
            ("CHOWN", outcomes(0, 1, 0)),
            ("NET_ADMIN", outcomes(0, 1, 0)),
            ("KILL", outcomes(0, 1, 0)),
            ("SETGID", outcomes(2, 0, 0)),
        ]);
        let seen = compare(&now, &recorded);
        let of = |name: &str| seen.iter().find(|c| c.capability == name).unwrap().clone();
        assert_eq!(of("SETUID").recorded, Recorded::Granted);
        assert_eq!(
            of("SETUID").finding,
            Some(CapabilityFindingKind::CapabilityRefused)
        );
        assert_eq!(of("SYS_RESOURCE").recorded, Recorded::Refused);
        assert_eq!(
            of("SYS_RESOURCE").finding,
            Some(CapabilityFindingKind::RefusedWhenRecorded)
        );
        // Granted and refused when recorded: the workload coped without it then.
        assert_eq!(
            of("CHOWN").finding,
            Some(CapabilityFindingKind::RefusedWhenRecorded)
        );
        assert_eq!(of("NET_ADMIN").recorded, Recorded::ProbedOnly);
        assert_eq!(of("NET_ADMIN").finding, None);
        assert_eq!(of("KILL").recorded, Recorded::NotChecked);
        assert_eq!(of("KILL").finding, None);
        assert_eq!(of("SETGID").finding, None);
        assert!(any_fails(&seen));
        let json = serde_json::to_value(of("SETUID")).unwrap();
        assert_eq!(json["finding"], "capability-refused");
        assert_eq!(json["recorded"], "granted");
    }

    #[test]
    fn without_recordings_nothing_is_judged() {
        let now = section(&[("SETUID", outcomes(0, 1, 0))]);
        let seen = compare(&now, &[]);
        assert_eq!(seen[0].recorded, Recorded::NoRecording);
        assert_eq!(seen[0].finding, None);
        assert!(!any_fails(&seen));
    }
}
