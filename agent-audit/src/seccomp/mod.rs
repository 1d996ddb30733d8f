//! The OCI / Docker seccomp profile format (`linux.seccomp` in an OCI config, the file given
//! to `docker run --security-opt seccomp=FILE`): a faithful model for reading any profile and
//! writing ours. Generation lives in `profile`, linting in `check`; this module only knows the
//! format.

pub mod compile;
mod program;
pub mod spo;

pub use program::{ProgramError, SeccompProgram, MAX_FILTER_INSTRUCTIONS};

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{self, OutputError};

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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// Docker's form of `architectures`: a main arch with its sub-architectures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arch_map: Vec<ArchMapEntry>,
    /// Filter flags (`SECCOMP_FILTER_FLAG_*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// Rules, evaluated by libseccomp (most specific wins, not first match).
    #[serde(default)]
    pub syscalls: Vec<SyscallRule>,
    /// Fields this model does not interpret (`listenerPath`, …), kept verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One entry of Docker's `archMap`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMapEntry {
    /// Main architecture, e.g. `SCMP_ARCH_X86_64`.
    pub architecture: String,
    /// Also accepted, e.g. `SCMP_ARCH_X86`, `SCMP_ARCH_X32`.
    #[serde(default)]
    pub sub_architectures: Vec<String>,
}

/// One rule: an action for a set of syscall names, optionally conditional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    /// Syscall names the rule applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Old Docker form: a single name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What happens on a match.
    pub action: Action,
    /// errno for `SCMP_ACT_ERRNO`/`SCMP_ACT_TRACE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Argument conditions; all must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgCondition>,
    /// Why the rule exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Docker/Podman: the rule applies only when these hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<serde_json::Value>,
    /// Docker/Podman: the rule does not apply when these hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excludes: Option<serde_json::Value>,
}

impl SyscallRule {
    /// Every name the rule covers (`names` plus the old single `name`).
    pub fn all_names(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .map(String::as_str)
            .chain(self.name.as_deref())
    }
}

/// A condition on one syscall argument.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgCondition {
    /// Argument index, 0..=5.
    pub index: u32,
    /// Value compared against.
    pub value: u64,
    /// Second value (mask for `SCMP_CMP_MASKED_EQ`).
    #[serde(default)]
    pub value_two: u64,
    /// Comparison, e.g. `SCMP_CMP_EQ`.
    pub op: String,
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

/// A profile file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileFileError {
    /// The file could not be read.
    #[error("cannot read seccomp profile {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// Not JSON, or not of the profile's shape (an unknown action is reported here, with its
    /// line and column).
    #[error("{path} is not a valid seccomp profile: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and what.
        source: serde_json::Error,
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
            ProfileFileError::Read { source, .. } => crate::exit::ExitCode::for_read_error(source),
            ProfileFileError::Parse { .. } | ProfileFileError::Spo { .. } => {
                crate::exit::ExitCode::DATA
            }
            ProfileFileError::Output(e) => e.exit_code(),
        }
    }
}

impl SeccompProfile {
    /// Reads a profile file.
    pub fn read(path: &Path) -> Result<Self, ProfileFileError> {
        let text = fs::read_to_string(path).map_err(|source| ProfileFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses profile JSON, or a Kubernetes `SeccompProfile` object (JSON or YAML); `path`
    /// only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ProfileFileError> {
        if spo::SpoObject::sniff(text) {
            return spo::parse_profile(text, path);
        }
        serde_json::from_str(text).map_err(|source| ProfileFileError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Pretty JSON with a trailing newline; stable for identical profiles.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("profile serializes");
        s.push('\n');
        s
    }

    /// Writes the profile atomically.
    pub fn write(&self, path: &Path) -> Result<(), ProfileFileError> {
        fsutil::write_atomic(path, self.to_json().as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
