//! agent-audit: records the syscalls a container (or any cgroup) really makes, with an eBPF
//! program on `sys_enter`, and turns the recordings into a deny-by-default seccomp profile.
//!
//! Data flows one way: [`bpf`] (kernel counters) → [`record::recording`] → [`allowlist`] files →
//! later steps. See ARCHITECTURE.md for the map of modules.

pub mod allowlist;
pub mod attribution;
pub mod audit;
pub mod bpf;
pub mod capabilities;
pub mod cgroup;
pub mod check;
pub mod cli;
pub mod container;
pub mod convergence;
pub mod diff;
pub mod engine;
pub mod exit;
pub mod fsutil;
pub mod kube;
pub mod launch;
pub mod logging;
pub mod markdown;
pub mod metrics;
pub mod policy;
pub mod privileges;
pub mod profile;
pub mod progress;
pub mod ready;
pub mod record;
pub mod refusals;
pub mod report;
pub mod run;
pub mod runtimes;
pub mod seccomp;
pub mod shell;
pub mod sidecar;
pub mod signals;
pub mod starts;
pub mod syscalls;
pub mod target;
pub mod verify;
pub mod watch;

use exit::ExitCode;

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
    /// `record`'s outputs: options that cannot work together, or an output not writable.
    #[error(transparent)]
    OutputPlan(#[from] record::OutputPlanError),
    /// An output that is an input or another output.
    #[error(transparent)]
    Clash(#[from] fsutil::PathClash),
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
    /// Kubernetes pods.
    #[error(transparent)]
    Kube(#[from] kube::KubeError),
    /// `ready`: the recorder is not armed.
    #[error(transparent)]
    NotReady(#[from] ready::NotReady),
    /// `audit --container`.
    #[error(transparent)]
    Container(#[from] audit::ContainerError),
    /// The command given to `run` could not be started.
    #[error(transparent)]
    Spawn(#[from] run::SpawnError),
    /// `record --metrics`: the address cannot be listened on.
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
    /// `--caps-file`.
    #[error(transparent)]
    CapsFile(#[from] capabilities::file::CapsFileError),
    /// Other I/O.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<record::recording::RecordingError> for Error {
    fn from(e: record::recording::RecordingError) -> Self {
        match e {
            record::recording::RecordingError::Bpf(e) => e.into(),
            record::recording::RecordingError::Allowlist(e) => e.into(),
        }
    }
}

impl Error {
    /// The documented exit code for this error (see [`exit::EXIT_CODES_HELP`]): each
    /// module's error knows its own.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_) => ExitCode::USAGE,
            Error::Privileges(_) => ExitCode::NO_PERM,
            Error::Cgroup(e) => e.exit_code(),
            Error::Target(e) => e.exit_code(),
            Error::Glob(e) => e.exit_code(),
            Error::Bpf(e) => e.exit_code(),
            Error::Output(e) => e.exit_code(),
            Error::OutputPlan(e) => e.exit_code(),
            Error::Clash(e) => e.exit_code(),
            Error::Allowlist(e) => e.exit_code(),
            Error::Verify(e) => e.exit_code(),
            Error::Diff(e) => e.exit_code(),
            Error::Profile(e) => e.exit_code(),
            Error::Check(e) => e.exit_code(),
            Error::Report(e) => e.exit_code(),
            Error::NotReady(e) => e.exit_code(),
            Error::Kube(e) => e.exit_code(),
            Error::Container(e) => e.exit_code(),
            Error::Spawn(e) => e.exit_code(),
            Error::Metrics(e) => e.exit_code(),
            Error::CapsFile(e) => e.exit_code(),
            Error::Io(_) => ExitCode::IO,
        }
    }
}
