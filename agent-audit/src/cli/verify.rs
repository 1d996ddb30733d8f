use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::bpf::AttachMode;
use crate::capabilities::file::CapsFile;
use crate::exit::ExitCode;
use crate::verify::{self, ContainerVerifyOptions, VerifyOptions};
use crate::Error;

use super::seconds::TIMEOUT;

/// Arguments of `verify`.
#[derive(Debug, Args)]
#[command(
    after_help = "The profile is compiled with libseccomp and installed in the command's process \
                  between fork and exec (with no_new_privs, as runc does). Once the command \
                  has exited, the processes it left running get 5 seconds to exit; then they \
                  are killed and listed, and the verification fails (a worker the profile \
                  kept from being stopped). Exit 0 when the command succeeded within \
                  --timeout, left nothing running, nothing was denied and every probe got its \
                  errno; 1 otherwise."
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
    /// Seconds the command, and whatever it leaves running, may take (0.1 to 31536000): then
    /// everything still running is killed and the verification fails as timed out.
    #[arg(long, value_name = "SECS", default_value = "600", value_parser = TIMEOUT.parser())]
    timeout: Duration,
    /// How to attach to sys_enter.
    #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
    attach: AttachMode,
    /// The container a Docker/Podman profile is evaluated for: the filter installed is the
    /// one Docker would give it.
    #[command(flatten)]
    container: super::ContainerArgs,
    /// Verify a stopped container (Docker or Podman) instead of a command: a new container
    /// created from its configuration through the engine's API runs once under the profile
    /// (the engine applies it), counted from its first syscall, then is removed. The probes (with --probe-dangerous, implied) run on
    /// the host with the container's own capabilities. With --caps-file the copy is created
    /// with the file's `drop` and `add` as its `CapDrop` and `CapAdd`.
    #[arg(
        long = "docker-container",
        value_name = "NAME",
        conflicts_with_all = ["command", "caps", "kernel"]
    )]
    docker_container: Option<String>,
    /// The engine of --docker-container.
    #[command(flatten)]
    engine: super::EngineArgs,
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
        // Its verdict is printed to standard output whatever `-o` says.
        crate::fsutil::check_stdout()?;
        let caps_file = self.container.caps_file()?;
        let report = match self.docker_container {
            Some(name) => verify::verify_container(&ContainerVerifyOptions {
                profile: self.profile,
                out: self.out,
                name,
                attach: self.attach,
                timeout: self.timeout,
                engine: self.engine.socket(),
                recordings: self.allowlist.into_iter().collect(),
                capabilities: caps_file.map(|file| file.lists),
            })?,
            None => self.verify_command(caps_file)?,
        };
        super::print_stdout(&report.to_text())?;
        Ok(if report.passed {
            ExitCode::OK
        } else {
            ExitCode::FINDINGS
        })
    }

    fn verify_command(self, caps_file: Option<CapsFile>) -> Result<verify::VerifyReport, Error> {
        let container = self.container.context()?;
        verify::verify(&VerifyOptions {
            profile: self.profile,
            allowlist: self.allowlist,
            probe_dangerous: self.probe_dangerous,
            recordings: Vec::new(),
            out: self.out,
            command: self.command,
            attach: self.attach,
            container,
            cwd: None,
            timeout: self.timeout,
            capability_set: caps_file.map(|file| file.caps),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use std::time::Duration;

    use super::super::{Cli, Command};
    use crate::verify::DEFAULT_TIMEOUT;

    #[test]
    fn the_default_timeout_is_the_documented_one() {
        let cli =
            Cli::try_parse_from(["agent-audit", "verify", "--profile", "p", "--", "true"]).unwrap();
        let Command::Verify(args) = cli.command else {
            panic!("not verify: {:?}", cli.command);
        };
        assert_eq!(args.timeout, DEFAULT_TIMEOUT);
        let err = Cli::try_parse_from([
            "agent-audit",
            "verify",
            "--profile",
            "p",
            "--timeout",
            "0",
            "--",
            "true",
        ])
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--timeout"), "{err}");
        // A container's copy is bounded the same way.
        let cli = Cli::try_parse_from([
            "agent-audit",
            "verify",
            "--profile",
            "p",
            "--timeout",
            "5",
            "--docker-container",
            "c",
        ])
        .unwrap();
        let Command::Verify(args) = cli.command else {
            panic!("not verify: {:?}", cli.command);
        };
        assert_eq!(args.timeout, Duration::from_secs(5));
        assert_eq!(args.docker_container.as_deref(), Some("c"));
    }
}
