//! Command-line interface: one module per subcommand, each owning its arguments and the call
//! into the library.

mod audit;
mod check;
mod diff;
mod profile;
mod ready;
mod record;
mod report;
mod run;
mod seconds;
mod unpin;
mod verify;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::capabilities::file::CapsFile;
use crate::engine::EngineSocket;
use crate::exit::{ExitCode, EXIT_CODES_HELP};
use crate::fsutil;
use crate::logging::LogFormat;
use crate::seccomp::container::{Capabilities, ContainerContext};
use crate::seccomp::KernelVersion;
use crate::Error;

/// Which container engine `--container` names are asked (shared by `audit`, `record` and
/// `verify`).
#[derive(Debug, clap::Args)]
pub struct EngineArgs {
    /// The container engine's API socket: Docker's, or Podman's (`podman system service
    /// --time 0 unix:///run/podman/podman.sock`). Default: DOCKER_HOST when it is
    /// unix://PATH, else the first that answers of /var/run/docker.sock, /run/docker.sock and
    /// /run/podman/podman.sock.
    #[arg(long, value_name = "PATH")]
    engine_socket: Option<std::path::PathBuf>,
}

impl EngineArgs {
    /// The socket choice, `DOCKER_HOST` read here.
    pub fn socket(self) -> EngineSocket {
        EngineSocket::from_flag_or_env(self.engine_socket)
    }
}

/// The container a Docker/Podman profile's `includes`/`excludes` are evaluated for, as Docker
/// evaluates them (shared by `check`, `diff` and `verify`).
#[derive(Debug, clap::Args)]
pub struct ContainerArgs {
    /// The container's capabilities: `default` (Docker's 14), `all` (--privileged), `none`,
    /// or a list (`default,+SYS_PTRACE,-NET_RAW`, `CAP_SYS_ADMIN,CAP_CHOWN`). A rule that
    /// applies only with a capability the container lacks does not count.
    #[arg(long, value_name = "CAPS", default_value = "default")]
    caps: Capabilities,
    /// The container's capabilities as a `capabilities.json` gives them (its `drop` and `add`,
    /// as `profile` writes them beside the profile): the profile is checked for that set.
    #[arg(long, value_name = "FILE", conflicts_with = "caps")]
    caps_file: Option<PathBuf>,
    /// Kernel version for `minKernel` conditions, `X.Y` (default: this host's).
    #[arg(long, value_name = "X.Y")]
    kernel: Option<KernelVersion>,
}

impl ContainerArgs {
    /// The context to evaluate profiles in.
    pub fn context(&self) -> Result<ContainerContext, Error> {
        let caps = match self.caps_file()? {
            Some(file) => file.caps,
            None => self.caps.clone(),
        };
        let mut context = ContainerContext::on_this_host(caps);
        if self.kernel.is_some() {
            context.kernel = self.kernel;
        }
        Ok(context)
    }

    /// `--caps-file` read, when given.
    pub fn caps_file(&self) -> Result<Option<CapsFile>, Error> {
        Ok(self.caps_file.as_deref().map(CapsFile::read).transpose()?)
    }
}

/// Record the syscalls a container really makes, and turn them into a deny-by-default
/// seccomp profile.
#[derive(Debug, Parser)]
#[command(name = "agent-audit", version, after_long_help = EXIT_CODES_HELP, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// More log output (-v: info, -vv: debug, -vvv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// How log lines are written to stderr: `text` (coloured only on a terminal, never with
    /// NO_COLOR set) or `json` (one object per line, for log collectors).
    #[arg(
        long,
        value_enum,
        default_value_t,
        global = true,
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch existing cgroups (containers, pids) and write one allowlist per target.
    Record(record::RecordArgs),
    /// Run a command in a fresh cgroup, record it from its first execve, write its allowlist.
    Run(run::RunArgs),
    /// Audit a command or container end to end: record several runs, profile, verify, report.
    Audit(audit::AuditArgs),
    /// Run a command under a seccomp profile and report every syscall the profile denied.
    Verify(verify::VerifyArgs),
    /// Compare two profiles or allowlists: syscalls added, removed, changed in action/errno.
    Diff(diff::DiffArgs),
    /// Merge allowlists into a deny-by-default seccomp profile that explains itself.
    Profile(profile::ProfileArgs),
    /// Lint a seccomp profile (ours or hand-written); exits 1 on errors.
    Check(check::CheckArgs),
    /// Audit report for reviewers and CI: findings, summary, every allowed syscall (md, html,
    /// json).
    Report(report::ReportArgs),
    /// Health check: exit 0 while a `record --ready-file FILE` recorder is armed, 1 otherwise.
    Ready(ready::ReadyArgs),
    /// Detach and remove the kernel programs and maps `record --pin-dir DIR` left pinned.
    Unpin(unpin::UnpinArgs),
}

impl Cli {
    /// Runs the chosen subcommand and returns the exit code to end with.
    pub fn execute(self) -> Result<ExitCode, Error> {
        match self.command {
            Command::Record(args) => args.execute(),
            Command::Run(args) => args.execute(),
            Command::Audit(args) => args.execute(),
            Command::Diff(args) => args.execute(),
            Command::Verify(args) => args.execute(),
            Command::Profile(args) => args.execute(),
            Command::Check(args) => args.execute(),
            Command::Report(args) => args.execute(),
            Command::Ready(args) => args.execute(),
            Command::Unpin(args) => args.execute(),
        }
    }
}

/// Writes a command's output to standard output: a closed one is an error (73), a reader that
/// goes away early (`| head -1`) is not (see [`fsutil::write_stdout`]), and the command ends
/// with the exit code its verdict gives. Any other write error is an I/O error (74).
pub(crate) fn print_stdout(text: &str) -> Result<(), Error> {
    fsutil::check_stdout()?;
    fsutil::write_stdout(text.as_bytes()).map_err(Error::Io)
}
