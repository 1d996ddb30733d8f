//! `agent-audit diff A B`: what changes, syscall by syscall, between two profiles or
//! allowlists (or one of each): allowed in B only, allowed in A only, and a different action
//! or errno for the same name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::allowlist::{Allowlist, AllowlistError, SCHEMA_V1};
use crate::fsutil::{self, InputError};
use crate::seccomp::container::ContainerContext;
use crate::seccomp::{Action, ArgCondition, ProfileFileError, SeccompProfile};

/// The effect a side gives one syscall name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Effect {
    /// The action.
    pub action: Action,
    /// errno, for actions that return one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<u32>,
    /// Whether the rule has argument conditions (the action applies only to some calls).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub conditional: bool,
    /// Whether this is the profile's default action (no rule names the syscall).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub by_default: bool,
}

impl Effect {
    fn allows(&self) -> bool {
        !self.action.denies()
    }

    fn describe(&self) -> String {
        // The profile spelling, e.g. SCMP_ACT_ERRNO.
        let mut s = serde_json::to_value(self.action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{:?}", self.action));
        if let Some(e) = self.errno {
            let _ = write!(s, "({e})");
        }
        if self.conditional {
            s.push_str(" if args match");
        }
        if self.by_default {
            s.push_str(" (default)");
        }
        s
    }
}

/// One side of a diff, reduced to name → effect.
#[derive(Clone, Debug)]
pub struct Side {
    /// The file.
    pub path: PathBuf,
    /// Named syscalls.
    pub effects: BTreeMap<String, Effect>,
    /// For names not in `effects`.
    pub default: Effect,
    /// An allowlist only says what is allowed: actions and errnos are compared only between
    /// two profiles.
    pub is_allowlist: bool,
    /// The argument rules of each name with conditional rules, described (`SCMP_ACT_ALLOW if
    /// arg0 == 2`).
    pub arguments: BTreeMap<String, BTreeSet<String>>,
    /// An allowlist's refused calls by name: (by the profile in force, by a filter the
    /// workload installed itself).
    pub refused: BTreeMap<String, (u64, u64)>,
}

/// Why a call the new side's recording saw refused was refused, judged by the old side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusedBecause {
    /// A does not name it: denied by default because no recording saw it. Fails
    /// `--fail-on added`: the profile needs it.
    NeverRecorded,
    /// A denies it with a rule of its own (dangerous, clone3's ENOSYS, a base deny).
    OnPurpose,
    /// A allows it only for some argument values; these calls had others.
    ArgumentRules,
    /// Only a seccomp filter the workload installed itself refused it.
    OwnFilter,
    /// A allows it: another profile was in force when it was recorded.
    AllowedByA,
}

/// A call the new side's recording saw refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// Syscall name.
    pub name: String,
    /// Refused calls.
    pub count: u64,
    /// Why, judged by A.
    pub because: RefusedBecause,
}

/// A name whose argument rules differ between two profiles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArgumentChange {
    /// Syscall name.
    pub name: String,
    /// Rules only A has.
    pub only_in_a: Vec<String>,
    /// Rules only B has.
    pub only_in_b: Vec<String>,
}

/// A syscall whose effect differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Syscall name.
    pub name: String,
    /// Effect in A.
    pub from: Effect,
    /// Effect in B.
    pub to: Effect,
}

/// The differences between A and B.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// File A.
    pub a: PathBuf,
    /// File B.
    pub b: PathBuf,
    /// Allowed in B, not in A.
    pub added: Vec<String>,
    /// Allowed in A, not in B.
    pub removed: Vec<String>,
    /// Same allowed-ness, different action, errno or condition.
    pub changed: Vec<Change>,
    /// Names whose argument rules differ (both profiles).
    pub arguments: Vec<ArgumentChange>,
    /// Calls B's recording saw refused, each with why (B an allowlist with `refused`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Refusal>,
}

/// A file that is neither a readable profile nor an allowlist.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// Cannot read, or not a bounded UTF-8 regular file.
    #[error(transparent)]
    Read(#[from] InputError),
    /// Neither kind.
    #[error("{path} is neither a seccomp profile (no \"defaultAction\") nor an agent-audit allowlist (no \"schema\": \"{SCHEMA_V1}\")")]
    UnknownKind {
        /// The file.
        path: PathBuf,
    },
    /// A malformed allowlist.
    #[error(transparent)]
    Allowlist(#[from] AllowlistError),
    /// A malformed profile.
    #[error(transparent)]
    Profile(#[from] ProfileFileError),
}

impl DiffError {
    /// The documented exit code: the read error's, 65 for a malformed input.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        match self {
            DiffError::Read(e) => e.exit_code(),
            DiffError::UnknownKind { .. } => crate::exit::ExitCode::DATA,
            DiffError::Allowlist(e) => e.exit_code(),
            DiffError::Profile(e) => e.exit_code(),
        }
    }
}

impl Side {
    /// Reads a profile or an allowlist, telling them apart by their keys.
    /// A Docker/Podman profile is taken as Docker hands it to runc for `context`: rules for
    /// capabilities the container lacks do not count.
    pub fn read(path: &Path, context: &ContainerContext) -> Result<Self, DiffError> {
        let text = fsutil::read_input(path)?;
        Self::parse(&text, path, context)
    }

    /// Parses a profile or an allowlist as [`Side::read`] does; `path` names the side and the
    /// source in errors.
    pub fn parse(text: &str, path: &Path, context: &ContainerContext) -> Result<Self, DiffError> {
        if crate::seccomp::spo::SpoObject::sniff(text) {
            let profile = SeccompProfile::parse(text, path)?;
            return Ok(Self::from_profile(path, &context.effective(&profile)));
        }
        let value: serde_json::Value = serde_json::from_str(text).map_err(|source| {
            DiffError::Profile(ProfileFileError::Parse {
                path: path.to_path_buf(),
                field: ".".into(),
                source,
            })
        })?;
        if value.get("schema").is_some() {
            Ok(Self::from_allowlist(path, &Allowlist::parse(text, path)?))
        } else if value.get("defaultAction").is_some() {
            let profile = SeccompProfile::parse(text, path)?;
            Ok(Self::from_profile(path, &context.effective(&profile)))
        } else {
            Err(DiffError::UnknownKind {
                path: path.to_path_buf(),
            })
        }
    }

    /// An allowlist allows what it saw; everything else falls to a deny.
    pub fn from_allowlist(path: &Path, list: &Allowlist) -> Self {
        let allow = Effect {
            action: Action::Allow,
            errno: None,
            conditional: false,
            by_default: false,
        };
        Self {
            path: path.to_path_buf(),
            effects: list
                .syscalls
                .iter()
                .filter_map(|s| s.name.clone())
                .map(|n| (n, allow))
                .collect(),
            default: Effect {
                action: Action::Errno,
                errno: None,
                conditional: false,
                by_default: true,
            },
            is_allowlist: true,
            arguments: BTreeMap::new(),
            refused: refused_by_name(list),
        }
    }

    /// A profile: the first unconditional rule naming a syscall decides it; a name only in
    /// conditional rules is marked conditional, with the first allowing rule's action if any
    /// allows (a refusal of some values beside an allow of the others is a conditional allow).
    pub fn from_profile(path: &Path, profile: &SeccompProfile) -> Self {
        let mut effects: BTreeMap<String, Effect> = BTreeMap::new();
        for unconditional in [true, false] {
            for rule in &profile.syscalls {
                if rule.args.is_empty() != unconditional {
                    continue;
                }
                let effect = Effect {
                    action: rule.action,
                    errno: errno_of(rule.action, rule.errno_ret),
                    conditional: !unconditional,
                    by_default: false,
                };
                for name in rule.all_names() {
                    let known = effects.entry(name.to_string()).or_insert(effect);
                    if known.conditional && known.action.denies() && !rule.action.denies() {
                        *known = effect;
                    }
                }
            }
        }
        Self {
            path: path.to_path_buf(),
            effects,
            default: Effect {
                action: profile.default_action,
                errno: errno_of(profile.default_action, profile.default_errno_ret),
                conditional: false,
                by_default: true,
            },
            is_allowlist: false,
            arguments: argument_rules(profile),
            refused: BTreeMap::new(),
        }
    }

    /// Why A (`self`) would refuse `name`, recorded refused `by_profile` times by the profile
    /// in force.
    fn refusal_reason(&self, name: &str, by_profile: u64) -> RefusedBecause {
        match self.effects.get(name) {
            _ if by_profile == 0 => RefusedBecause::OwnFilter,
            Some(e) if e.conditional => RefusedBecause::ArgumentRules,
            Some(e) if e.allows() => RefusedBecause::AllowedByA,
            Some(e) if !self.is_allowlist && !e.by_default => RefusedBecause::OnPurpose,
            _ => RefusedBecause::NeverRecorded,
        }
    }

    fn effect(&self, name: &str) -> Effect {
        self.effects.get(name).copied().unwrap_or(self.default)
    }
}

/// The conditional rules of each name, described with their action.
fn argument_rules(profile: &SeccompProfile) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for rule in profile.syscalls.iter().filter(|r| !r.args.is_empty()) {
        let effect = Effect {
            action: rule.action,
            errno: errno_of(rule.action, rule.errno_ret),
            conditional: false,
            by_default: false,
        };
        let text = format!(
            "{} if {}",
            effect.describe(),
            ArgCondition::describe_all(&rule.args)
        );
        for name in rule.all_names() {
            out.entry(name.to_string())
                .or_default()
                .insert(text.clone());
        }
    }
    out
}

/// Named refusals of an allowlist: (by the profile in force, by the workload's own filter).
fn refused_by_name(list: &Allowlist) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for r in &list.refused {
        let Some(name) = &r.name else { continue };
        let e = out.entry(name.clone()).or_default();
        if r.by_profile() {
            e.0 = e.0.saturating_add(r.count);
        } else {
            e.1 = e.1.saturating_add(r.count);
        }
    }
    out
}

fn errno_of(action: Action, errno: Option<u32>) -> Option<u32> {
    matches!(action, Action::Errno | Action::Trace).then(|| errno.unwrap_or(1))
}

/// Compares two sides.
pub fn diff(a: &Side, b: &Side) -> Diff {
    let names: BTreeSet<&String> = a.effects.keys().chain(b.effects.keys()).collect();
    let mut out = Diff {
        a: a.path.clone(),
        b: b.path.clone(),
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
        arguments: Vec::new(),
        refused: b
            .refused
            .iter()
            .map(|(name, &(by_profile, own))| Refusal {
                name: name.clone(),
                count: if by_profile > 0 { by_profile } else { own },
                because: a.refusal_reason(name, by_profile),
            })
            .collect(),
    };
    for name in names {
        let (ea, eb) = (a.effect(name), b.effect(name));
        match (ea.allows(), eb.allows()) {
            (false, true) => out.added.push(name.clone()),
            (true, false) => out.removed.push(name.clone()),
            _ if a.is_allowlist || b.is_allowlist => {}
            _ if (ea.action, ea.errno, ea.conditional) != (eb.action, eb.errno, eb.conditional) => {
                out.changed.push(Change {
                    name: name.clone(),
                    from: ea,
                    to: eb,
                })
            }
            _ => {}
        }
        let empty = BTreeSet::new();
        let (ra, rb) = (
            a.arguments.get(name).unwrap_or(&empty),
            b.arguments.get(name).unwrap_or(&empty),
        );
        if ra != rb && !a.is_allowlist && !b.is_allowlist {
            out.arguments.push(ArgumentChange {
                name: name.clone(),
                only_in_a: ra.difference(rb).cloned().collect(),
                only_in_b: rb.difference(ra).cloned().collect(),
            });
        }
    }
    out
}

impl Diff {
    /// Whether anything differs (a call refused only because it was never recorded counts).
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.arguments.is_empty()
            && self.never_recorded().next().is_none()
    }

    /// Whether B needs something A does not allow: a syscall B allows that A does not, or a
    /// call B's recording saw refused only because A's recordings never saw it.
    pub fn adds(&self) -> bool {
        !self.added.is_empty() || self.never_recorded().next().is_some()
    }

    /// The refusals that fail `--fail-on added`.
    pub fn never_recorded(&self) -> impl Iterator<Item = &Refusal> {
        self.refused
            .iter()
            .filter(|r| r.because == RefusedBecause::NeverRecorded)
    }

    /// Human-readable lines, `diff`-style.
    pub fn to_text(&self) -> String {
        let mut s = format!("--- {}\n+++ {}\n", self.a.display(), self.b.display());
        for n in &self.added {
            let _ = writeln!(s, "+ {n}");
        }
        for n in &self.removed {
            let _ = writeln!(s, "- {n}");
        }
        for c in &self.changed {
            let _ = writeln!(
                s,
                "~ {}: {} -> {}",
                c.name,
                c.from.describe(),
                c.to.describe()
            );
        }
        for c in &self.arguments {
            let _ = writeln!(s, "~ {}: argument rules", c.name);
            for rule in &c.only_in_a {
                let _ = writeln!(s, "    - {rule}");
            }
            for rule in &c.only_in_b {
                let _ = writeln!(s, "    + {rule}");
            }
        }
        for r in &self.refused {
            let why = match r.because {
                RefusedBecause::NeverRecorded => "never recorded: the profile needs it",
                RefusedBecause::OnPurpose => "denied on purpose by A",
                RefusedBecause::ArgumentRules => "A allows it only for other argument values",
                RefusedBecause::OwnFilter => "by a seccomp filter the workload installed itself",
                RefusedBecause::AllowedByA => "A allows it (another profile was in force)",
            };
            let mark = if r.because == RefusedBecause::NeverRecorded {
                '!'
            } else {
                ' '
            };
            let _ = writeln!(s, "{mark} {}: refused {} time(s), {why}", r.name, r.count);
        }
        let _ = writeln!(
            s,
            "{} allowed only in B, {} allowed only in A, {} changed, {} with other argument rules",
            self.added.len(),
            self.removed.len(),
            self.changed.len(),
            self.arguments.len()
        );
        if !self.refused.is_empty() {
            let _ = writeln!(
                s,
                "{} refused under the profile in force, {} of them only because never recorded",
                self.refused.len(),
                self.never_recorded().count()
            );
        }
        s
    }

    /// Stable JSON.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("diff serializes");
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> Side {
        Side::from_profile(
            Path::new("p"),
            &SeccompProfile::parse(json, Path::new("p")).unwrap(),
        )
    }

    /// Against the committed profile, a call refused only because no recording saw
    /// it fails `--fail-on added`; one the profile refuses on purpose is listed only.
    #[test]
    fn refusals_fail_only_when_never_recorded() {
        use crate::allowlist::{RefusalAction, RefusedCall, RefusingFilter};
        use crate::syscalls::Arch;
        let a = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["read"],"action":"SCMP_ACT_ALLOW"},
            {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[
              {"index":0,"value":2,"op":"SCMP_CMP_EQ"}]},
            {"names":["ptrace"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
            {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
        );
        let mut list = Allowlist::for_tests_of_command("w", &[(Arch::X86_64, "read", 3)]);
        let refused = |name: &str, count, filter| RefusedCall {
            name: Some(name.into()),
            arch: Arch::X86_64,
            nr: Arch::X86_64.syscall_nr(name).unwrap(),
            count,
            action: RefusalAction::Errno,
            filter,
            runtime_init: false,
            programs: Vec::new(),
        };
        list.refused = vec![
            refused("mkdir", 4, RefusingFilter::Runtime),
            refused("ptrace", 1, RefusingFilter::Runtime),
            refused("clone3", 2, RefusingFilter::Unknown),
            refused("socket", 5, RefusingFilter::Runtime),
            refused("chmod", 6, RefusingFilter::WithOwn),
            refused("read", 7, RefusingFilter::Runtime),
        ];
        let b = Side::from_allowlist(Path::new("new.json"), &list);
        let d = diff(&a, &b);
        let because: Vec<(&str, u64, RefusedBecause)> = d
            .refused
            .iter()
            .map(|r| (r.name.as_str(), r.count, r.because))
            .collect();
        assert_eq!(
            because,
            vec![
                ("chmod", 6, RefusedBecause::OwnFilter),
                ("clone3", 2, RefusedBecause::OnPurpose),
                ("mkdir", 4, RefusedBecause::NeverRecorded),
                ("ptrace", 1, RefusedBecause::OnPurpose),
                ("read", 7, RefusedBecause::AllowedByA),
                ("socket", 5, RefusedBecause::ArgumentRules),
            ]
        );
        assert!(d.added.is_empty());
        assert!(d.adds());
        let text = d.to_text();
        assert!(
            text.contains("! mkdir: refused 4 time(s), never recorded"),
            "{text}"
        );
        assert!(
            text.contains("  ptrace: refused 1 time(s), denied on purpose"),
            "{text}"
        );
        assert!(d.to_json().contains("\"because\": \"never_recorded\""));
        // Recorded at last: nothing is refused only for want of a recording.
        list.refused.retain(|r| r.name.as_deref() != Some("mkdir"));
        let d = diff(&a, &Side::from_allowlist(Path::new("new.json"), &list));
        assert!(!d.adds(), "{}", d.to_text());
    }

    #[test]
    fn added_removed_and_changed() {
        let a = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["read","ptrace"],"action":"SCMP_ACT_ALLOW"},
            {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
        );
        let b = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"syscalls":[
            {"names":["read","openat"],"action":"SCMP_ACT_ALLOW"},
            {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
        );
        let d = diff(&a, &b);
        assert_eq!(d.added, vec!["openat"]);
        assert_eq!(d.removed, vec!["ptrace"]);
        assert_eq!(d.changed.len(), 1);
        assert_eq!(d.changed[0].name, "clone3");
        assert_eq!(
            (d.changed[0].from.errno, d.changed[0].to.errno),
            (Some(1), Some(38))
        );
        let text = d.to_text();
        assert!(
            text.contains("+ openat") && text.contains("- ptrace"),
            "{text}"
        );
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn explicit_deny_versus_default_deny_is_not_a_change_in_allowedness() {
        let a = profile(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[]}"#);
        let b = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["mount"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        let d = diff(&a, &b);
        assert!(d.added.is_empty() && d.removed.is_empty());
        assert!(
            d.changed.is_empty(),
            "same action and errno: {:?}",
            d.changed
        );
    }

    #[test]
    fn conditional_rules_are_marked() {
        let a = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["personality"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let b = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let d = diff(&a, &b);
        assert_eq!(d.changed.len(), 1);
        assert!(d.changed[0].to.conditional);
    }

    #[test]
    fn refusals_beside_conditional_allows_are_a_conditional_allow() {
        let a = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["ioctl"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let b = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["ioctl"],"action":"SCMP_ACT_ERRNO","errnoRet":13,"args":[{"index":1,"value":4294967295,"valueTwo":21522,"op":"SCMP_CMP_MASKED_EQ"}]},
            {"names":["ioctl"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":1,"valueTwo":1,"op":"SCMP_CMP_MASKED_EQ"}]},
            {"names":["ioctl"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":1,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#,
        );
        let d = diff(&a, &b);
        assert!(d.removed.is_empty(), "ioctl is still allowed: {d:?}");
        assert_eq!(d.changed.len(), 1);
        assert!(d.changed[0].to.conditional && !d.changed[0].to.action.denies());
    }

    #[test]
    fn argument_rule_changes_are_listed() {
        let a = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]},
            {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let b = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]},
            {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":40,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let d = diff(&a, &b);
        assert!(d.added.is_empty() && d.removed.is_empty() && d.changed.is_empty());
        assert_eq!(d.arguments.len(), 1);
        assert_eq!(d.arguments[0].only_in_a, ["SCMP_ACT_ALLOW if arg0 == 2"]);
        assert_eq!(d.arguments[0].only_in_b, ["SCMP_ACT_ALLOW if arg0 == 40"]);
        let text = d.to_text();
        assert!(text.contains("+ SCMP_ACT_ALLOW if arg0 == 40"), "{text}");
        assert!(!d.is_empty() && diff(&a, &a).is_empty());
    }

    #[test]
    fn an_allowlist_compares_by_allowedness_only() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["read"],"action":"SCMP_ACT_ALLOW"},
            {"names":["ptrace"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
        );
        let (syscalls, totals) = crate::allowlist::Allowlist::syscalls_from_counts(
            [
                (crate::syscalls::Arch::X86_64, 0, 3),
                (crate::syscalls::Arch::X86_64, 257, 1),
            ],
            0,
        );
        let list = Allowlist::for_tests(Default::default(), syscalls, totals);
        let d = diff(&p, &Side::from_allowlist(Path::new("a"), &list));
        assert_eq!(d.added, vec!["openat"]);
        assert!(d.removed.is_empty() && d.changed.is_empty(), "{d:?}");
    }

    #[test]
    fn files_of_neither_kind_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        std::fs::write(&p, "{\"hello\": 1}").unwrap();
        let err = Side::read(&p, &ContainerContext::default()).unwrap_err();
        assert!(matches!(err, DiffError::UnknownKind { .. }), "{err}");
        std::fs::write(&p, "{broken").unwrap();
        assert!(Side::read(&p, &ContainerContext::default()).is_err());
    }
}
