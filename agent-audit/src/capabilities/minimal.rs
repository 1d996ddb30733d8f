//! The minimal capability set of merged recordings: every capability whose *audited* checks
//! the workload made after its runtime's init and that were granted. A refused check needed
//! nothing the workload had (it coped without); a no-audit check only probes (the kernel
//! itself asks that way when it does not need the answer), so neither alone adds one.
//! Written beside the profile as `capabilities.json`, and shown as `docker run`, compose and
//! Kubernetes settings in the rationale.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{CapabilityChecks, Outcomes, NAMES};
use crate::allowlist::Allowlist;
use crate::fsutil::{self, OutputError};
use crate::seccomp::container::CapabilityLists;
use crate::shell::status;

/// The file name written beside a profile.
pub const FILE_NAME: &str = "capabilities.json";

/// Where `capabilities.json` goes for a profile written to `profile`: beside it; `None` when
/// the profile goes to standard output.
pub fn path_beside(profile: &Path) -> Option<PathBuf> {
    (!fsutil::is_stdio(profile)).then(|| fsutil::parent_dir(profile).join(FILE_NAME))
}

/// The set and why, over every merged recording.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MinimalSet {
    /// Labels of recordings without a `capabilities` section: no set can be given then.
    pub unrecorded: Vec<String>,
    /// Whether any program of the workload ran as root (capabilities matter only for root,
    /// or for files with capabilities).
    pub root_seen: bool,
    /// Every capability checked, by number, with what the checks did and who made them.
    pub checked: BTreeMap<usize, Checked>,
    /// Some recording told no-audit probes from audited checks only by their callers (the
    /// tracepoint): a probe from another caller counts as a need, so the set may be larger
    /// than needed, never smaller.
    pub audit_unknown: bool,
}

/// One capability's checks over the recordings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Summed outcomes.
    pub outcomes: Outcomes,
    /// Granted audited checks per program.
    pub needed_by: BTreeMap<String, u64>,
}

impl MinimalSet {
    /// Adds one recording.
    pub fn add_recording(&mut self, label: &str, list: &Allowlist) {
        let ran_as_root = list
            .syscalls
            .iter()
            .flat_map(|s| &s.programs)
            .any(|p| p.as_root)
            || list.executables.iter().any(|e| e.uid == 0);
        self.root_seen |= ran_as_root;
        let Some(section) = &list.capabilities else {
            self.unrecorded.push(label.to_string());
            return;
        };
        self.audit_unknown |= !section.hook.sees_audit_option();
        self.add_checks(section);
    }

    fn add_checks(&mut self, section: &CapabilityChecks) {
        for check in &section.checks {
            let Some(cap) = NAMES.iter().position(|n| *n == check.capability) else {
                continue; // refused by the allowlist reader
            };
            let entry = self.checked.entry(cap).or_default();
            entry.outcomes.merge(&check.outcomes);
            for p in check.programs.iter().filter(|p| p.outcomes.granted > 0) {
                let n = entry.needed_by.entry(p.comm.clone()).or_default();
                *n = n.saturating_add(p.outcomes.granted);
            }
        }
    }

    /// Whether every recording counted capability checks (a set can be given).
    pub fn is_known(&self) -> bool {
        self.unrecorded.is_empty()
    }

    /// The capabilities to add, by number: granted audited checks.
    pub fn add(&self) -> Vec<&'static str> {
        self.checked
            .iter()
            .filter(|(_, c)| c.outcomes.granted > 0)
            .map(|(&cap, _)| NAMES[cap])
            .collect()
    }

    /// `capabilities.json`'s `drop` and `add`: every capability dropped but the set.
    pub fn lists(&self) -> CapabilityLists {
        CapabilityLists::only(self.add().into_iter().map(str::to_owned).collect())
    }

    /// Writes `capabilities.json` to `path` when the set is known, and says on stderr what
    /// was written or why nothing was.
    pub fn write(&self, path: Option<&Path>) -> Result<(), OutputError> {
        let Some(path) = path else {
            status!(
                "agent-audit: note: {FILE_NAME} is not written when the profile goes to stdout"
            );
            return Ok(());
        };
        if !self.is_known() {
            status!(
                "agent-audit: note: no capability set: {} recorded no capability checks",
                self.unrecorded.join(", ")
            );
            return Ok(());
        }
        fsutil::write_output(path, self.to_json().as_bytes())?;
        status!(
            "agent-audit: wrote {} ({})",
            path.display(),
            self.docker_flags().trim_start_matches("docker run ")
        );
        Ok(())
    }

    /// `capabilities.json`: `{"drop": ["ALL"], "add": [...], "reasons": {...}}`.
    pub fn to_json(&self) -> String {
        let reasons = self
            .checked
            .iter()
            .filter(|(_, c)| c.outcomes.granted > 0)
            .map(|(&cap, c)| {
                let why = AddReason {
                    reason: format!(
                        "{} granted audited check(s) after the runtime's init",
                        c.outcomes.granted
                    ),
                    checks: c.outcomes.granted,
                    programs: c.needed_by.clone(),
                };
                (NAMES[cap], why)
            })
            .collect();
        let left_out = self
            .checked
            .iter()
            .filter(|(_, c)| c.outcomes.granted == 0)
            .map(|(&cap, c)| (NAMES[cap], left_out_reason(&c.outcomes)))
            .collect();
        let file = CapabilitiesFile {
            lists: self.lists(),
            reasons,
            not_added: left_out,
            note: (!self.root_seen).then_some(NON_ROOT_NOTE),
            audit_note: self.audit_unknown.then_some(AUDIT_UNKNOWN_NOTE),
        };
        let mut s = serde_json::to_string_pretty(&file).expect("capabilities serialize");
        s.push('\n');
        s
    }

    /// The rationale's section (Markdown).
    pub fn render(&self, md: &mut String) {
        let _ = writeln!(md, "\n## Capabilities\n");
        if !self.is_known() {
            let _ = writeln!(
                md,
                "Not known: {} recorded no capability checks (recorded by an older \
                 agent-audit, by `verify`, or on a kernel without BPF trampolines), so no \
                 minimal set is given.",
                self.unrecorded.join(", ")
            );
            return;
        }
        if !self.root_seen {
            let _ = writeln!(md, "{NON_ROOT_NOTE}\n");
        }
        if self.audit_unknown {
            let _ = writeln!(md, "{AUDIT_UNKNOWN_NOTE}\n");
        }
        let add = self.add();
        let _ = writeln!(
            md,
            "Run with every capability dropped{}:\n",
            if add.is_empty() {
                String::new()
            } else {
                format!(" but {}", add.join(", "))
            }
        );
        let _ = writeln!(md, "```sh\n{}\n```\n", self.docker_flags());
        let _ = writeln!(md, "Compose:\n\n```yaml\n{}```\n", self.compose());
        let _ = writeln!(md, "Kubernetes:\n\n```yaml\n{}```\n", self.kubernetes());
        for (&cap, c) in &self.checked {
            let line = match c.outcomes.granted {
                0 => format!("not added: {}", left_out_reason(&c.outcomes)),
                n => format!(
                    "added: {n} granted audited check(s) by {}",
                    c.needed_by
                        .iter()
                        .map(|(comm, k)| format!("`{comm}` ({k})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            let _ = writeln!(md, "- `CAP_{}`: {line}", NAMES[cap]);
        }
    }

    /// `docker run --cap-drop ALL --cap-add …`.
    pub fn docker_flags(&self) -> String {
        let mut s = String::from("docker run --cap-drop ALL");
        for cap in self.add() {
            let _ = write!(s, " --cap-add {cap}");
        }
        s
    }

    fn compose(&self) -> String {
        let mut s = String::from("cap_drop:\n  - ALL\n");
        let add = self.add();
        if !add.is_empty() {
            s.push_str("cap_add:\n");
            for cap in add {
                let _ = writeln!(s, "  - {cap}");
            }
        }
        s
    }

    fn kubernetes(&self) -> String {
        let add = self.add();
        format!(
            "securityContext:\n  capabilities:\n    drop: [\"ALL\"]\n    add: [{}]\n",
            add.iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

const NON_ROOT_NOTE: &str = "The workload ran no program as root: capabilities only matter \
                             for root or for files with capabilities, so the set is usually \
                             empty and dropping them all costs nothing.";

const AUDIT_UNKNOWN_NOTE: &str = "Recorded through the capability:cap_capable tracepoint, \
                                  which does not say whether a check was a no-audit probe: \
                                  probes are recognised by the kernel function that made \
                                  them, and one from any other counts as a need, so the set \
                                  may be larger than needed, never smaller.";

fn left_out_reason(o: &Outcomes) -> String {
    match (o.refused, o.noaudit_granted + o.noaudit_refused) {
        (0, probes) => format!("only {probes} no-audit probe(s), which never need it"),
        (refused, 0) => format!("{refused} audited check(s), all refused: the workload coped"),
        (refused, probes) => format!(
            "{refused} refused audited check(s) and {probes} no-audit probe(s): never granted \
             when needed"
        ),
    }
}

#[derive(Serialize)]
struct CapabilitiesFile {
    #[serde(flatten)]
    lists: CapabilityLists,
    reasons: BTreeMap<&'static str, AddReason>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    not_added: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audit_note: Option<&'static str>,
}

#[derive(Serialize)]
struct AddReason {
    reason: String,
    checks: u64,
    programs: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::super::{CapabilityCheck, ProgramChecks};
    use super::*;

    fn check(cap: &str, comm: &str, outcomes: Outcomes) -> CapabilityCheck {
        CapabilityCheck {
            capability: cap.into(),
            outcomes,
            programs: vec![ProgramChecks {
                comm: comm.into(),
                outcomes,
            }],
        }
    }

    #[test]
    fn only_granted_audited_checks_add_a_capability() {
        let mut set = MinimalSet {
            root_seen: true,
            ..MinimalSet::default()
        };
        set.add_checks(&CapabilityChecks {
            hook: super::super::CheckHook::FExit,
            checks: vec![
                check(
                    "CHOWN",
                    "chown",
                    Outcomes {
                        granted: 2,
                        ..Outcomes::default()
                    },
                ),
                check(
                    "SYS_RESOURCE",
                    "squid",
                    Outcomes {
                        noaudit_granted: 4,
                        ..Outcomes::default()
                    },
                ),
                check(
                    "SYS_ADMIN",
                    "app",
                    Outcomes {
                        refused: 1,
                        ..Outcomes::default()
                    },
                ),
            ],
        });
        assert_eq!(set.add(), vec!["CHOWN"]);
        assert_eq!(
            set.docker_flags(),
            "docker run --cap-drop ALL --cap-add CHOWN"
        );
        let json: serde_json::Value = serde_json::from_str(&set.to_json()).unwrap();
        assert_eq!(json["drop"], serde_json::json!(["ALL"]));
        assert_eq!(json["add"], serde_json::json!(["CHOWN"]));
        assert_eq!(json["reasons"]["CHOWN"]["checks"], 2);
        assert_eq!(json["reasons"]["CHOWN"]["programs"]["chown"], 2);
        assert!(json["not_added"]["SYS_RESOURCE"]
            .as_str()
            .unwrap()
            .contains("no-audit"));
        assert!(json["not_added"]["SYS_ADMIN"]
            .as_str()
            .unwrap()
            .contains("refused"));
        assert!(json.get("note").is_none());
    }

    #[test]
    fn a_recording_without_the_section_leaves_the_set_unknown() {
        let mut set = MinimalSet::default();
        set.unrecorded.push("old.json".into());
        assert!(!set.is_known());
        let mut md = String::new();
        set.render(&mut md);
        assert!(md.contains("Not known: old.json"), "{md}");
    }

    #[test]
    fn a_non_root_workload_gets_the_empty_set_and_is_told_why() {
        let set = MinimalSet::default();
        let json: serde_json::Value = serde_json::from_str(&set.to_json()).unwrap();
        assert_eq!(json["add"], serde_json::json!([]));
        assert!(json["note"]
            .as_str()
            .unwrap()
            .contains("no program as root"));
        let mut md = String::new();
        set.render(&mut md);
        assert!(md.contains("docker run --cap-drop ALL\n"), "{md}");
        assert!(md.contains("add: []"), "{md}");
    }
}
