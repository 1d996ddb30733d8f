//! agent-audit: records the syscalls a container (or any cgroup) really makes, with an eBPF
//! program on `sys_enter`, and turns the recordings into a deny-by-default seccomp profile.
//!
//! Data flows one way: [`bpf`] (kernel counters) → [`recording`] → [`allowlist`] files →
//! later steps. See ARCHITECTURE.md for the map of modules.

pub mod allowlist;
pub mod attribution;
pub mod bpf;
pub mod cgroup;
pub mod check;
pub mod cli;
pub mod container;
pub mod diff;
pub mod exit;
pub mod fsutil;
pub mod policy;
pub mod privileges;
pub mod profile;
pub mod progress;
pub mod recorder;
pub mod recording;
pub mod report;
pub mod run;
pub mod seccomp;
pub mod syscalls;
pub mod target;
pub mod verify;
pub mod watch;

use exit::ExitCode;
use seccomp::ProfileFileError;

/// Every error a subcommand can end with; each maps to a documented exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad combination of arguments.
    #[error("{0}")]
    Usage(String),
    /// Privileges missing.
    #[error(transparent)]
    Privileges(#[from] privileges::PrivilegeError),
    /// cgroup side.
    #[error(transparent)]
    Cgroup(#[from] cgroup::CgroupError),
    /// Target resolution.
    #[error(transparent)]
    Target(#[from] target::TargetError),
    /// `--cgroup-glob`.
    #[error(transparent)]
    Glob(#[from] watch::GlobError),
    /// Kernel program.
    #[error(transparent)]
    Bpf(#[from] bpf::BpfError),
    /// Output files.
    #[error(transparent)]
    Output(#[from] fsutil::OutputError),
    /// Allowlist files.
    #[error(transparent)]
    Allowlist(#[from] allowlist::AllowlistError),
    /// `verify`.
    #[error(transparent)]
    Verify(#[from] verify::VerifyError),
    /// `diff` inputs.
    #[error(transparent)]
    Diff(#[from] diff::DiffError),
    /// `profile`.
    #[error(transparent)]
    Profile(#[from] profile::ProfileError),
    /// `check`.
    #[error(transparent)]
    Check(#[from] check::CheckError),
    /// `report`.
    #[error(transparent)]
    Report(#[from] report::ReportError),
    /// The command given to `run` could not be started.
    #[error("cannot run {command:?}: {source}")]
    Spawn {
        /// argv[0].
        command: String,
        /// What exec said.
        source: std::io::Error,
    },
    /// Other I/O.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<recording::RecordingError> for Error {
    fn from(e: recording::RecordingError) -> Self {
        match e {
            recording::RecordingError::Bpf(e) => e.into(),
            recording::RecordingError::Allowlist(e) => e.into(),
        }
    }
}

impl Error {
    fn exit_code_of_allowlist(e: &allowlist::AllowlistError) -> ExitCode {
        use allowlist::AllowlistError as A;
        match e {
            A::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ExitCode::NO_INPUT
            }
            A::Read { .. } => ExitCode::IO,
            A::Output(_) => ExitCode::CANT_CREATE,
            _ => ExitCode::DATA,
        }
    }

    /// The documented exit code for this error (see [`exit::EXIT_CODES_HELP`]).
    pub fn exit_code(&self) -> ExitCode {
        use cgroup::CgroupError as C;
        match self {
            Error::Usage(_) => ExitCode::USAGE,
            Error::Privileges(_) => ExitCode::NO_PERM,
            Error::Cgroup(e) | Error::Target(target::TargetError::Cgroup(e)) => match e {
                e if e.is_not_found() => ExitCode::NO_INPUT,
                C::NoV2Mount | C::NotV2 { .. } | C::PidNotInV2 { .. } => ExitCode::UNAVAILABLE,
                C::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                    ExitCode::NO_PERM
                }
                _ => ExitCode::IO,
            },
            Error::Target(target::TargetError::Container(_)) => ExitCode::NO_INPUT,
            Error::Glob(watch::GlobError::Unsupported(_)) => ExitCode::USAGE,
            Error::Glob(watch::GlobError::Parent { source, .. }) if source.is_not_found() => {
                ExitCode::NO_INPUT
            }
            Error::Glob(_) => ExitCode::UNAVAILABLE,
            Error::Bpf(e) if e.is_permission_denied() => ExitCode::NO_PERM,
            Error::Bpf(bpf::BpfError::Map { .. } | bpf::BpfError::Missing(_)) => ExitCode::SOFTWARE,
            Error::Bpf(bpf::BpfError::TooManyTargets) => ExitCode::USAGE,
            Error::Bpf(_) => ExitCode::UNAVAILABLE,
            Error::Output(_) => ExitCode::CANT_CREATE,
            Error::Allowlist(e) => Error::exit_code_of_allowlist(e),
            Error::Diff(diff::DiffError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                ExitCode::NO_INPUT
            }
            Error::Diff(diff::DiffError::Read { .. }) => ExitCode::IO,
            Error::Diff(diff::DiffError::Allowlist(e)) => Error::exit_code_of_allowlist(e),
            Error::Diff(diff::DiffError::Profile(seccomp::ProfileFileError::Read {
                source,
                ..
            })) if source.kind() == std::io::ErrorKind::NotFound => ExitCode::NO_INPUT,
            Error::Diff(_) => ExitCode::DATA,
            Error::Profile(e) if e.is_not_found() => ExitCode::NO_INPUT,
            Error::Profile(profile::ProfileError::Allowlist(e)) => Error::exit_code_of_allowlist(e),
            Error::Profile(profile::ProfileError::Base(ProfileFileError::Read { .. })) => {
                ExitCode::IO
            }
            Error::Profile(profile::ProfileError::Base(ProfileFileError::Output(_)))
            | Error::Profile(profile::ProfileError::Output(_)) => ExitCode::CANT_CREATE,
            Error::Profile(
                profile::ProfileError::DuplicateInput { .. }
                | profile::ProfileError::DuplicateAllow { .. }
                | profile::ProfileError::EmptyReason { .. },
            ) => ExitCode::USAGE,
            Error::Profile(_) => ExitCode::DATA,
            Error::Check(e) if e.is_not_found() => ExitCode::NO_INPUT,
            Error::Check(check::CheckError::Profile(ProfileFileError::Read { .. })) => ExitCode::IO,
            Error::Check(check::CheckError::Profile(ProfileFileError::Output(_))) => {
                ExitCode::CANT_CREATE
            }
            Error::Check(_) => ExitCode::DATA,
            Error::Verify(verify::VerifyError::Profile(ProfileFileError::Read {
                source, ..
            })) if source.kind() == std::io::ErrorKind::NotFound => ExitCode::NO_INPUT,
            Error::Verify(verify::VerifyError::Allowlist(e)) => Error::exit_code_of_allowlist(e),
            Error::Verify(verify::VerifyError::Output(_)) => ExitCode::CANT_CREATE,
            Error::Verify(verify::VerifyError::Filter(_) | verify::VerifyError::Probes(_)) => {
                ExitCode::SOFTWARE
            }
            Error::Verify(_) => ExitCode::DATA,
            Error::Report(e) => e.exit_code(),
            Error::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ExitCode(127)
            }
            Error::Spawn { .. } => ExitCode(126),
            Error::Io(_) => ExitCode::IO,
        }
    }
}
