//! Linux capabilities: the names, the allowlist's `capabilities` section (the checks a
//! target made after its runtime's init, from `fexit/cap_capable`), and the minimal set a
//! profile is shipped with ([`minimal`]).

pub mod file;
pub mod minimal;
pub mod process;

use serde::{Deserialize, Serialize};

use crate::bpf::{CapabilityCounts, CapabilityHook};
use agent_audit_ebpf::{CAP_NOAUDIT, CAP_REFUSED};

/// Capability names by number (include/uapi/linux/capability.h, 6.18), without `CAP_`, as
/// Docker's `--cap-add`, compose and Kubernetes take them.
pub const NAMES: [&str; agent_audit_ebpf::CAP_SLOTS] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The allowlist's `capabilities` section. Absent: the recording did not count capability
/// checks (an older recorder, `verify`, or a kernel without BPF trampolines); present with no
/// `checks`: it did, and the target made none after its init.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityChecks {
    /// How the checks were seen; decides whether no-audit probes are told apart.
    pub hook: CheckHook,
    /// Every capability checked, by number.
    #[serde(default)]
    pub checks: Vec<CapabilityCheck>,
}

/// The kernel hook that saw the checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckHook {
    /// `fexit` on `cap_capable`: no-audit probes are counted apart.
    #[serde(rename = "fexit/cap_capable")]
    FExit,
    /// The `capability:cap_capable` tracepoint: it has no `opts`, so no-audit probes are told
    /// apart by their caller in the kernel (a fixed list of no-audit entry points); a probe
    /// from any other caller counts as an audited check.
    #[serde(rename = "tp_btf/cap_capable")]
    #[default]
    TpBtf,
    /// A hook named by a newer agent-audit: treated like the tracepoint (audit approximate).
    #[serde(other)]
    Other,
}

impl CheckHook {
    /// Whether no-audit probes were told apart from audited checks exactly (from `opts`).
    pub fn sees_audit_option(self) -> bool {
        self == CheckHook::FExit
    }
}

impl From<CapabilityHook> for CheckHook {
    fn from(hook: CapabilityHook) -> Self {
        match hook {
            CapabilityHook::FExit => CheckHook::FExit,
            CapabilityHook::TpBtf => CheckHook::TpBtf,
        }
    }
}

/// The checks of one capability.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityCheck {
    /// Name without `CAP_` (`CHOWN`).
    pub capability: String,
    /// Its outcomes.
    #[serde(flatten)]
    pub outcomes: Outcomes,
    /// Which programs made them (`comm`), by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<ProgramChecks>,
}

/// How many checks ended which way. Audited checks are the ones a caller needs (`capable()`,
/// `ns_capable()`); no-audit ones only probe (`ns_capable_noaudit()`, `has_capability_noaudit()`)
/// and the caller goes on either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcomes {
    /// Audited checks granted.
    pub granted: u64,
    /// Audited checks refused.
    pub refused: u64,
    /// No-audit probes granted.
    #[serde(default)]
    pub noaudit_granted: u64,
    /// No-audit probes refused.
    #[serde(default)]
    pub noaudit_refused: u64,
}

impl Outcomes {
    fn add(&mut self, outcome: usize, checks: u64) {
        let field = match (outcome & CAP_NOAUDIT != 0, outcome & CAP_REFUSED != 0) {
            (false, false) => &mut self.granted,
            (false, true) => &mut self.refused,
            (true, false) => &mut self.noaudit_granted,
            (true, true) => &mut self.noaudit_refused,
        };
        *field = field.saturating_add(checks);
    }

    /// Every check.
    pub fn total(&self) -> u64 {
        self.granted
            .saturating_add(self.refused)
            .saturating_add(self.noaudit_granted)
            .saturating_add(self.noaudit_refused)
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &Outcomes) {
        self.granted = self.granted.saturating_add(other.granted);
        self.refused = self.refused.saturating_add(other.refused);
        self.noaudit_granted = self.noaudit_granted.saturating_add(other.noaudit_granted);
        self.noaudit_refused = self.noaudit_refused.saturating_add(other.noaudit_refused);
    }
}

/// One program's checks of one capability.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramChecks {
    /// The task name (`comm`).
    pub comm: String,
    /// Its outcomes.
    #[serde(flatten)]
    pub outcomes: Outcomes,
}

impl CapabilityChecks {
    /// The section for what the kernel counted.
    pub fn from_counts(counts: &CapabilityCounts) -> Self {
        let mut checks = Vec::new();
        for (cap, per_outcome) in counts.per_cap.iter().enumerate() {
            let mut outcomes = Outcomes::default();
            for (outcome, &n) in per_outcome.iter().enumerate() {
                outcomes.add(outcome, n);
            }
            let Some(name) = NAMES.get(cap).filter(|_| outcomes.total() > 0) else {
                continue;
            };
            let mut programs: Vec<ProgramChecks> = Vec::new();
            for p in counts.programs.iter().filter(|p| usize::from(p.cap) == cap) {
                let at = match programs.iter().position(|q| q.comm == p.comm) {
                    Some(at) => at,
                    None => {
                        programs.push(ProgramChecks {
                            comm: p.comm.clone(),
                            outcomes: Outcomes::default(),
                        });
                        programs.len() - 1
                    }
                };
                programs[at].outcomes.add(usize::from(p.outcome), p.checks);
            }
            programs.sort_by(|a, b| a.comm.cmp(&b.comm));
            checks.push(CapabilityCheck {
                capability: (*name).to_string(),
                outcomes,
                programs,
            });
        }
        Self {
            hook: counts.hook.into(),
            checks,
        }
    }

    /// `earlier`'s checks and `later`'s added up, per capability and per program (a target's
    /// successive starts); the hook is the later one's.
    pub fn combined(earlier: Self, later: Self) -> Self {
        let mut checks = earlier.checks;
        for check in later.checks {
            match checks.iter_mut().find(|c| c.capability == check.capability) {
                None => checks.push(check),
                Some(seen) => {
                    seen.outcomes.merge(&check.outcomes);
                    for program in check.programs {
                        match seen.programs.iter_mut().find(|q| q.comm == program.comm) {
                            None => seen.programs.push(program),
                            Some(q) => q.outcomes.merge(&program.outcomes),
                        }
                    }
                    seen.programs.sort_by(|a, b| a.comm.cmp(&b.comm));
                }
            }
        }
        Self {
            hook: later.hook,
            checks,
        }
    }

    /// Whether every capability named is one this version knows (the reader's check).
    pub fn unknown_name(&self) -> Option<&str> {
        self.checks
            .iter()
            .map(|c| c.capability.as_str())
            .find(|name| !NAMES.contains(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::CapabilityProgramCount;

    #[test]
    fn counts_become_named_checks_with_their_programs() {
        let mut per_cap = vec![[0u64; 4]; NAMES.len()];
        per_cap[0] = [3, 0, 0, 0];
        per_cap[24] = [0, 1, 0, 5];
        let counts = CapabilityCounts {
            per_cap,
            programs: vec![
                CapabilityProgramCount {
                    comm: "chown".into(),
                    cap: 0,
                    outcome: 0,
                    checks: 3,
                },
                CapabilityProgramCount {
                    comm: "squid".into(),
                    cap: 24,
                    outcome: 3,
                    checks: 5,
                },
            ],
            hook: CapabilityHook::FExit,
        };
        let section = CapabilityChecks::from_counts(&counts);
        assert_eq!(section.hook, CheckHook::FExit);
        assert_eq!(section.checks.len(), 2);
        assert_eq!(section.checks[0].capability, "CHOWN");
        assert_eq!(section.checks[0].outcomes.granted, 3);
        assert_eq!(section.checks[0].programs[0].comm, "chown");
        assert_eq!(section.checks[1].capability, "SYS_RESOURCE");
        assert_eq!(section.checks[1].outcomes.refused, 1);
        assert_eq!(section.checks[1].outcomes.noaudit_refused, 5);
        assert_eq!(section.checks[1].programs[0].outcomes.noaudit_refused, 5);
        let json = serde_json::to_string(&section).unwrap();
        let back: CapabilityChecks = serde_json::from_str(&json).unwrap();
        assert_eq!(back, section);
    }
}

#[cfg(test)]
mod hook_tests {
    use super::*;

    #[test]
    fn a_hook_named_by_a_newer_version_still_reads_as_audit_unknown() {
        let section: CapabilityChecks =
            serde_json::from_str(r#"{"hook": "lsm/capable", "checks": []}"#).unwrap();
        assert_eq!(section.hook, CheckHook::Other);
        assert!(!section.hook.sees_audit_option());
    }
}
