//! The OCI / Docker seccomp profile format (`linux.seccomp` in an OCI config, the file given
//! to `docker run --security-opt seccomp=FILE`, Podman's `seccomp.json`): a faithful model for
//! reading any profile and writing ours. Generation lives in `profile`, linting in `check`;
//! this module only knows the format.
//!
//! The reader accepts what runc, Docker and Podman accept: Go's encoder writes `null` for an
//! empty list and `{}` for an empty filter, old Docker profiles use a single `name`, Podman adds
//! fields of its own (kept in `extra`, reported by `check`). What runc would refuse (an unknown
//! action, comparison or flag, an argument index above 5, an empty syscall name) is an error
//! naming the field.

pub mod arches;
pub mod compile;
pub mod container;
pub mod cost;
pub mod enosys;
pub mod evaluate;
mod includes;
pub mod interpret;
mod program;
pub mod spo;
mod validate;

pub use includes::{KernelVersion, RuleFilter};
pub use program::{ProgramError, SeccompProgram, MAX_FILTER_INSTRUCTIONS};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::fsutil::{self, InputError, OutputError};

/// Fields this model does not interpret, kept verbatim.
pub type ExtraFields = serde_json::Map<String, serde_json::Value>;

/// A seccomp profile as runc, crun, Docker and Podman read it. Unknown fields are kept so that
/// rewriting someone's profile loses nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompProfile {
    /// Action for every syscall no rule matches.
    pub default_action: Action,
    /// errno returned by the default action when it is `SCMP_ACT_ERRNO`/`SCMP_ACT_TRACE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// Architectures the filter accepts; a task on any other arch is killed/refused.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub architectures: Vec<String>,
    /// Docker's form of `architectures`: a main arch with its sub-architectures.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arch_map: Vec<ArchMapEntry>,
    /// Filter flags passed to seccomp(2).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub flags: Vec<FilterFlag>,
    /// Unix socket of a seccomp agent receiving `SCMP_ACT_NOTIFY` file descriptors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    /// Opaque data runc passes to that agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
    /// Rules, evaluated by libseccomp (most specific wins, not first match).
    #[serde(default, deserialize_with = "null_as_default")]
    pub syscalls: Vec<SyscallRule>,
    /// Fields this model does not interpret (Podman's `defaultErrno`, …), kept verbatim.
    #[serde(flatten)]
    pub extra: ExtraFields,
}

/// One entry of Docker's `archMap`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMapEntry {
    /// Main architecture, e.g. `SCMP_ARCH_X86_64`.
    pub architecture: String,
    /// Also accepted, e.g. `SCMP_ARCH_X86`, `SCMP_ARCH_X32`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub sub_architectures: Vec<String>,
}

/// A seccomp(2) filter flag, as the OCI runtime spec names it; runc refuses any other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FilterFlag {
    /// Apply the filter to every thread (runc always does).
    #[serde(rename = "SECCOMP_FILTER_FLAG_TSYNC")]
    Tsync,
    /// Log every action but allow.
    #[serde(rename = "SECCOMP_FILTER_FLAG_LOG")]
    Log,
    /// Leave the Speculative Store Bypass mitigation off.
    #[serde(rename = "SECCOMP_FILTER_FLAG_SPEC_ALLOW")]
    SpecAllow,
    /// Notified tasks wait killably.
    #[serde(rename = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")]
    WaitKillableRecv,
}

/// One rule: an action for a set of syscall names, optionally conditional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    /// Syscall names the rule applies to.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub names: Vec<String>,
    /// Old Docker form: a single name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What happens on a match.
    pub action: Action,
    /// errno for `SCMP_ACT_ERRNO`/`SCMP_ACT_TRACE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Argument conditions; all must hold (but see [`SyscallRule::repeated_indexes`]).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub args: Vec<ArgCondition>,
    /// Why the rule exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Docker/Podman: the rule applies only when all of these hold.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "RuleFilter::is_empty"
    )]
    pub includes: RuleFilter,
    /// Docker/Podman: the rule does not apply when any of these holds.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "RuleFilter::is_empty"
    )]
    pub excludes: RuleFilter,
    /// Fields this model does not interpret (Podman's `errno`, …), kept verbatim.
    #[serde(flatten)]
    pub extra: ExtraFields,
}

impl SyscallRule {
    /// Every name the rule covers (`names` plus the old single `name`).
    pub fn all_names(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .map(String::as_str)
            .chain(self.name.as_deref())
    }

    /// Argument indexes compared more than once. runc then adds each condition as a rule of
    /// its own, so the conditions are ORed, not ANDed (libcontainer/seccomp `matchCall`).
    pub fn repeated_indexes(&self) -> Vec<u32> {
        let mut seen = std::collections::BTreeMap::<u32, usize>::new();
        for arg in &self.args {
            *seen.entry(arg.index).or_default() += 1;
        }
        seen.into_iter()
            .filter(|&(_, n)| n > 1)
            .map(|(i, _)| i)
            .collect()
    }

    /// Whether both rules have conditions and one's conditions include all of the other's
    /// (then libseccomp cannot keep both when their actions differ: the first added wins).
    pub fn conditions_nest(&self, other: &SyscallRule) -> bool {
        !self.args.is_empty()
            && !other.args.is_empty()
            && (self.args.iter().all(|c| other.args.contains(c))
                || other.args.iter().all(|c| self.args.contains(c)))
    }

    /// Whether the rule is conditional on the container or host (`includes`/`excludes`).
    pub fn is_filtered(&self) -> bool {
        !self.includes.is_empty() || !self.excludes.is_empty()
    }
}

/// A condition on one syscall argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgCondition {
    /// Argument index, 0..=5 (checked when a profile is read).
    pub index: u32,
    /// Value compared against; the mask for [`CompareOp::MaskedEqual`].
    pub value: u64,
    /// The datum for [`CompareOp::MaskedEqual`], unused otherwise.
    #[serde(default)]
    pub value_two: u64,
    /// Comparison.
    pub op: CompareOp,
}

impl ArgCondition {
    /// `arg[index] op value`.
    pub fn new(index: u32, op: CompareOp, value: u64) -> Self {
        Self {
            index,
            value,
            value_two: 0,
            op,
        }
    }

    /// `(arg[index] & mask) == datum`.
    pub fn masked_eq(index: u32, mask: u64, datum: u64) -> Self {
        Self {
            index,
            value: mask,
            value_two: datum,
            op: CompareOp::MaskedEqual,
        }
    }

    /// `arg0 == 2`, `(arg0 & 0x7e020000) == 0`.
    pub fn describe(&self) -> String {
        let sign = match self.op {
            CompareOp::MaskedEqual => {
                return format!(
                    "(arg{} & {:#x}) == {:#x}",
                    self.index, self.value, self.value_two
                )
            }
            CompareOp::NotEqual => "!=",
            CompareOp::Less => "<",
            CompareOp::LessOrEqual => "<=",
            CompareOp::Equal => "==",
            CompareOp::GreaterOrEqual => ">=",
            CompareOp::Greater => ">",
        };
        format!("arg{} {sign} {}", self.index, self.value)
    }

    /// Conditions ANDed, described: `arg0 == 2 && arg2 == 0`.
    pub fn describe_all(conditions: &[ArgCondition]) -> String {
        conditions
            .iter()
            .map(ArgCondition::describe)
            .collect::<Vec<_>>()
            .join(" && ")
    }

    /// Whether an argument value satisfies the condition (64-bit, as on a 64-bit arch).
    pub fn matches(&self, arg: u64) -> bool {
        match self.op {
            CompareOp::NotEqual => arg != self.value,
            CompareOp::Less => arg < self.value,
            CompareOp::LessOrEqual => arg <= self.value,
            CompareOp::Equal => arg == self.value,
            CompareOp::GreaterOrEqual => arg >= self.value,
            CompareOp::Greater => arg > self.value,
            CompareOp::MaskedEqual => arg & self.value == self.value_two,
        }
    }
}

/// How an argument is compared, as libseccomp names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CompareOp {
    /// `!=`
    #[serde(rename = "SCMP_CMP_NE")]
    NotEqual,
    /// `<`
    #[serde(rename = "SCMP_CMP_LT")]
    Less,
    /// `<=`
    #[serde(rename = "SCMP_CMP_LE")]
    LessOrEqual,
    /// `==`
    #[serde(rename = "SCMP_CMP_EQ")]
    Equal,
    /// `>=`
    #[serde(rename = "SCMP_CMP_GE")]
    GreaterOrEqual,
    /// `>`
    #[serde(rename = "SCMP_CMP_GT")]
    Greater,
    /// `(arg & value) == valueTwo`
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEqual,
}

impl CompareOp {
    /// The profile spelling (`SCMP_CMP_EQ`).
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::NotEqual => "SCMP_CMP_NE",
            CompareOp::Less => "SCMP_CMP_LT",
            CompareOp::LessOrEqual => "SCMP_CMP_LE",
            CompareOp::Equal => "SCMP_CMP_EQ",
            CompareOp::GreaterOrEqual => "SCMP_CMP_GE",
            CompareOp::Greater => "SCMP_CMP_GT",
            CompareOp::MaskedEqual => "SCMP_CMP_MASKED_EQ",
        }
    }
}

/// Reads `null` as the empty value: Go's JSON encoder writes `null` for a nil slice or map,
/// and runc, Docker and Podman read it back as empty.
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A seccomp action, as named in profiles.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum Action {
    /// Kill the thread (`SCMP_ACT_KILL` is the same as `SCMP_ACT_KILL_THREAD`).
    #[serde(rename = "SCMP_ACT_KILL", alias = "SCMP_ACT_KILL_THREAD")]
    KillThread,
    /// Kill the whole process.
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    /// Send SIGSYS.
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    /// Fail with an errno.
    #[default]
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    /// Notify a user-space supervisor.
    #[serde(rename = "SCMP_ACT_NOTIFY")]
    Notify,
    /// Notify a ptrace tracer.
    #[serde(rename = "SCMP_ACT_TRACE")]
    Trace,
    /// Allow, and log.
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
    /// Allow.
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
}

impl Action {
    /// Whether the syscall is refused (not run) under this action.
    pub fn denies(self) -> bool {
        !matches!(
            self,
            Action::Allow | Action::Log | Action::Notify | Action::Trace
        )
    }
}

/// Whether libseccomp knows `name` as an architecture (`SCMP_ARCH_X86_64`, `SCMP_ARCH_PPC64LE`,
/// …); profiles name architectures this way only.
pub fn is_known_arch(name: &str) -> bool {
    name.starts_with("SCMP_ARCH_") && name.parse::<libseccomp::ScmpArch>().is_ok()
}

/// A profile file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileFileError {
    /// The file could not be read, or is not a bounded UTF-8 regular file.
    #[error("seccomp profile: {0}")]
    Read(#[from] InputError),
    /// Not JSON, or not of the profile's shape (an unknown action, comparison or flag is
    /// reported here, with the field, line and column).
    #[error("{path} is not a valid seccomp profile: {field}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// JSON path of the offending field (`syscalls[3].args[0].op`; `.` for the document).
        field: String,
        /// What and where.
        source: serde_json::Error,
    },
    /// An architecture name libseccomp does not know: runc would refuse the profile.
    #[error(
        "{path}: unknown architecture {name:?} (expected SCMP_ARCH_X86_64, SCMP_ARCH_AARCH64, …)"
    )]
    UnknownArch {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// Well-formed, but runc, Docker or Podman would refuse it.
    #[error("{path}: {field}: {detail}")]
    Refused {
        /// The file.
        path: PathBuf,
        /// JSON path of the field.
        field: String,
        /// Why a runtime refuses it.
        detail: String,
    },
    /// More distinct rules than agent-audit compiles ([`compile::MAX_DISTINCT_RULES`]).
    #[error(
        "{path}: syscalls: {distinct} distinct rules (name, action, errno, arguments; repeats \
         count once), more than the {limit} agent-audit reads: no seccomp filter the kernel loads \
         (4096 instructions at most) keeps that many, so the profile is unloadable or made of \
         rules that change nothing (merge or drop rules)"
    )]
    TooManyRules {
        /// The file.
        path: PathBuf,
        /// Its distinct rules.
        distinct: usize,
        /// The bound.
        limit: usize,
    },
    /// A Kubernetes `SeccompProfile` object (JSON or YAML) that cannot be read.
    #[error("{path}: {source}")]
    Spo {
        /// The file.
        path: PathBuf,
        /// What is wrong with the object.
        source: spo::SpoError,
    },
    /// Writing failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl ProfileFileError {
    /// The documented exit code: the read error's, 65 for a malformed profile, 73 for an
    /// unwritable output.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        match self {
            ProfileFileError::Read(e) => e.exit_code(),
            ProfileFileError::Parse { .. }
            | ProfileFileError::UnknownArch { .. }
            | ProfileFileError::Refused { .. }
            | ProfileFileError::TooManyRules { .. }
            | ProfileFileError::Spo { .. } => crate::exit::ExitCode::DATA,
            ProfileFileError::Output(e) => e.exit_code(),
        }
    }
}

impl SeccompProfile {
    /// Reads a profile file.
    pub fn read(path: &Path) -> Result<Self, ProfileFileError> {
        let text = fsutil::read_input(path)?;
        Self::parse(&text, path)
    }

    /// Parses profile JSON, or a Kubernetes `SeccompProfile` object (JSON or YAML), and
    /// refuses what a runtime would refuse, architecture names libseccomp does not know
    /// included, so that every command refuses the same profiles; `path` only names the
    /// source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ProfileFileError> {
        let profile: Self = if spo::SpoObject::sniff(text) {
            spo::parse_profile(text, path)?
        } else {
            Self::parse_oci(text, path)?
        };
        if let Some(name) = profile.arch_names().find(|name| !is_known_arch(name)) {
            return Err(ProfileFileError::UnknownArch {
                path: path.to_path_buf(),
                name: name.to_string(),
            });
        }
        let distinct = compile::distinct_rules(&profile);
        if distinct > compile::MAX_DISTINCT_RULES {
            return Err(ProfileFileError::TooManyRules {
                path: path.to_path_buf(),
                distinct,
                limit: compile::MAX_DISTINCT_RULES,
            });
        }
        Ok(profile)
    }

    /// Parses OCI/Docker profile JSON, refusing what a runtime would refuse.
    fn parse_oci(text: &str, path: &Path) -> Result<Self, ProfileFileError> {
        let parse_error = |field: String, source| ProfileFileError::Parse {
            path: path.to_path_buf(),
            field,
            source,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        let profile: Self = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| parse_error(e.path().to_string(), e.into_inner()))?;
        de.end().map_err(|e| parse_error(".".into(), e))?;
        if let Some(refusal) = validate::refusal(&profile) {
            return Err(ProfileFileError::Refused {
                path: path.to_path_buf(),
                field: refusal.field,
                detail: refusal.detail,
            });
        }
        Ok(profile)
    }

    /// Every architecture name listed, in `architectures` and Docker's `archMap`.
    pub fn arch_names(&self) -> impl Iterator<Item = &str> {
        self.architectures
            .iter()
            .map(String::as_str)
            .chain(self.arch_map.iter().flat_map(|entry| {
                std::iter::once(entry.architecture.as_str())
                    .chain(entry.sub_architectures.iter().map(String::as_str))
            }))
    }

    /// Pretty JSON with a trailing newline; stable for identical profiles.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("profile serializes");
        s.push('\n');
        s
    }

    /// Writes the profile (atomically for a file: see [`fsutil::write_output`]).
    pub fn write(&self, path: &Path) -> Result<(), ProfileFileError> {
        fsutil::write_output(path, self.to_json().as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const FIXTURE: &str =
        include_str!("../../../tests/data/profiles/gh-aw-firewall-agent-seccomp.json");

    #[test]
    fn reads_a_real_profile_and_round_trips_it() {
        let p = SeccompProfile::parse(FIXTURE, Path::new("fixture")).unwrap();
        assert_eq!(p.default_action, Action::Errno);
        assert_eq!(p.architectures.len(), 3);
        let allowed: usize = p
            .syscalls
            .iter()
            .filter(|r| r.action == Action::Allow)
            .map(|r| r.all_names().count())
            .sum();
        assert_eq!(allowed, 341);
        let again = SeccompProfile::parse(&p.to_json(), Path::new("again")).unwrap();
        assert_eq!(again, p);
    }

    /// Every real profile of the corpus (tests/data/profiles, see its README).
    pub(crate) const CORPUS: &[(&str, &str)] = &[
        (
            "docker-default.json",
            include_str!("../../../tests/data/profiles/docker-default.json"),
        ),
        (
            "docker-default-old-format.json",
            include_str!("../../../tests/data/profiles/docker-default-old-format.json"),
        ),
        (
            "docker-conditional-include.json",
            include_str!("../../../tests/data/profiles/docker-conditional-include.json"),
        ),
        (
            "docker-example.json",
            include_str!("../../../tests/data/profiles/docker-example.json"),
        ),
        (
            "podman-default.json",
            include_str!("../../../tests/data/profiles/podman-default.json"),
        ),
        (
            "spo-bpf-recorder.json",
            include_str!("../../../tests/data/profiles/spo-bpf-recorder.json"),
        ),
        (
            "spo-operator.json",
            include_str!("../../../tests/data/profiles/spo-operator.json"),
        ),
        ("gh-aw-firewall-agent-seccomp.json", FIXTURE),
        (
            "gh-aw-firewall-enclave-seccomp.json",
            include_str!("../../../tests/data/profiles/gh-aw-firewall-enclave-seccomp.json"),
        ),
    ];

    #[test]
    fn every_profile_of_the_corpus_reads_and_round_trips() {
        for (name, text) in CORPUS {
            let p = SeccompProfile::parse(text, Path::new(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!p.syscalls.is_empty(), "{name}");
            let again = SeccompProfile::parse(&p.to_json(), Path::new(name)).unwrap();
            assert_eq!(again, p, "{name}");
        }
    }

    #[test]
    fn docker_and_podman_nulls_filters_and_extra_fields() {
        let docker = SeccompProfile::parse(CORPUS[0].1, Path::new("docker")).unwrap();
        let chroot = docker
            .syscalls
            .iter()
            .find(|r| r.names == ["chroot"])
            .unwrap();
        assert_eq!(chroot.includes.caps, ["CAP_SYS_CHROOT"]);
        let ptrace = docker
            .syscalls
            .iter()
            .find(|r| r.includes.min_kernel.is_some())
            .unwrap();
        assert_eq!(ptrace.includes.min_kernel.unwrap().to_string(), "4.8");
        let clone = docker
            .syscalls
            .iter()
            .find(|r| r.names == ["clone"] && r.includes.arches.is_empty())
            .unwrap();
        assert_eq!(clone.excludes.caps, ["CAP_SYS_ADMIN"]);
        assert_eq!(
            clone.args,
            [ArgCondition::masked_eq(0, 0x7E02_0000, 0)],
            "Docker's clone rule: no namespace flag"
        );
        let podman = SeccompProfile::parse(CORPUS[4].1, Path::new("podman")).unwrap();
        assert_eq!(podman.default_errno_ret, Some(38));
        assert!(
            podman.extra.contains_key("defaultErrno"),
            "{:?}",
            podman.extra
        );
        let audit = podman
            .syscalls
            .iter()
            .find(|r| r.names == ["socket"] && r.args.len() == 2)
            .unwrap();
        assert_eq!(audit.errno_ret, Some(22));
        assert!(audit.extra.contains_key("errno"));
        let old = SeccompProfile::parse(CORPUS[1].1, Path::new("old")).unwrap();
        assert!(old
            .syscalls
            .iter()
            .all(|r| r.name.is_some() && r.names.is_empty()));
    }

    #[test]
    fn what_runtimes_refuse_is_an_error_naming_the_field() {
        for (json, field) in [
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
                "syscalls[0].args[0].index",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read",""],"action":"SCMP_ACT_ALLOW"}]}"#,
                "syscalls[0].names",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"read","names":["write"],"action":"SCMP_ACT_ALLOW"}]}"#,
                "syscalls[0].name",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}],"syscalls":[]}"#,
                "archMap",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_NOTIFY","syscalls":[]}"#,
                "defaultAction",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOTIFY"}]}"#,
                "listenerPath",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","flags":["SECCOMP_FILTER_FLAG_FAST"],"syscalls":[]}"#,
                "flags[0]",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4"}}]}"#,
                "syscalls[0].includes.minKernel",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":-1,"op":"SCMP_CMP_EQ"}]}]}"#,
                "syscalls[0].args[0].value",
            ),
        ] {
            let err = SeccompProfile::parse(json, Path::new("p.json")).unwrap_err();
            assert_eq!(err.exit_code(), crate::exit::ExitCode::DATA, "{err}");
            let text = err.to_string();
            assert!(
                text.contains(field) && text.contains("p.json"),
                "{field}: {text}"
            );
        }
    }

    #[test]
    fn nulls_everywhere_read_as_empty() {
        let p = SeccompProfile::parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":null,"archMap":null,"flags":null,
                "syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":null,
                             "includes":null,"excludes":{},"comment":null,"errnoRet":null}]}"#,
            Path::new("p"),
        )
        .unwrap();
        assert!(p.architectures.is_empty() && p.flags.is_empty());
        let rule = &p.syscalls[0];
        assert!(rule.args.is_empty() && !rule.is_filtered());
        let p = SeccompProfile::parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":null}"#,
            Path::new("p"),
        )
        .unwrap();
        assert!(p.syscalls.is_empty());
    }

    #[test]
    fn repeated_indexes_are_found() {
        let rule = SyscallRule {
            args: vec![
                ArgCondition::new(0, CompareOp::NotEqual, 38),
                ArgCondition::new(0, CompareOp::NotEqual, 40),
                ArgCondition::new(1, CompareOp::Equal, 1),
            ],
            ..SyscallRule::default()
        };
        assert_eq!(rule.repeated_indexes(), [0]);
    }

    #[test]
    fn unknown_actions_are_errors_that_name_the_file() {
        let err = SeccompProfile::parse(
            r#"{"defaultAction":"SCMP_ACT_MAYBE","syscalls":[]}"#,
            Path::new("bad.json"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("bad.json") && text.contains("SCMP_ACT_MAYBE"),
            "{text}"
        );
    }

    #[test]
    fn kill_is_kill_thread() {
        let p = SeccompProfile::parse(
            r#"{"defaultAction":"SCMP_ACT_KILL_THREAD","syscalls":[{"name":"read","action":"SCMP_ACT_ALLOW"}]}"#,
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(p.default_action, Action::KillThread);
        assert_eq!(p.syscalls[0].all_names().collect::<Vec<_>>(), vec!["read"]);
    }
}
