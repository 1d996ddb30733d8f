use std::path::PathBuf;

use clap::Args;

use crate::bpf::AttachMode;
use crate::exit::ExitCode;
use crate::verify::{self, ContainerVerifyOptions, VerifyOptions};
use crate::Error;

/// Arguments of `verify`.
#[derive(Debug, Args)]
#[command(
    after_help = "The profile is compiled with libseccomp and installed in the command's process \
                  between fork and exec (with no_new_privs, as runc does). Exit 0 when the \
                  command succeeded, nothing was denied and every probe got its errno; 1 \
                  otherwise."
)]
pub struct VerifyArgs {
    /// The seccomp profile to enforce.
    #[arg(long, value_name = "PROFILE")]
    profile: PathBuf,
    /// The allowlist the profile was made from: denied calls it contains are flagged as
    /// dropped from the profile.
    #[arg(long, value_name = "FILE")]
    allowlist: Option<PathBuf>,
    /// Also try ptrace, mount, kexec_load, name_to_handle_at, open_by_handle_at, unshare, bpf
    /// and clone3 under the profile: each must fail with EPERM (clone3 with ENOSYS when the
    /// profile denies it that way).
    #[arg(long)]
    probe_dangerous: bool,
    /// Write the result as JSON (schema agent-audit/verify/v1).
    #[arg(long, short = 'o', value_name = "FILE")]
    out: Option<PathBuf>,
    /// How to attach to sys_enter.
    #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
    attach: AttachMode,
    /// The container a Docker/Podman profile is evaluated for: the filter installed is the
    /// one Docker would give it.
    #[command(flatten)]
    container: super::ContainerArgs,
    /// Verify a stopped Docker container instead of a command: a new container created from
    /// its configuration runs once under the profile (Docker applies it), counted from its
    /// first syscall, then is removed. The probes (with --probe-dangerous, implied) run on
    /// the host with the container's own capabilities.
    #[arg(
        long = "docker-container",
        value_name = "NAME",
        conflicts_with_all = ["command", "allowlist", "caps", "kernel"]
    )]
    docker_container: Option<String>,
    /// The command to run, after `--`.
    #[arg(
        last = true,
        required_unless_present = "docker_container",
        value_name = "CMD"
    )]
    command: Vec<String>,
}

impl VerifyArgs {
    pub(super) fn execute(self) -> Result<ExitCode, Error> {
        let report = match self.docker_container {
            Some(name) => verify::verify_container(&ContainerVerifyOptions {
                profile: self.profile,
                out: self.out,
                name,
                attach: self.attach,
            })?,
            None => self.verify_command()?,
        };
        super::print_stdout(&report.to_text())?;
        Ok(if report.passed {
            ExitCode::OK
        } else {
            ExitCode::FINDINGS
        })
    }

    fn verify_command(self) -> Result<verify::VerifyReport, Error> {
        verify::verify(&VerifyOptions {
            profile: self.profile,
            allowlist: self.allowlist,
            probe_dangerous: self.probe_dangerous,
            out: self.out,
            command: self.command,
            attach: self.attach,
            container: self.container.context(),
            cwd: None,
        })
    }
}
