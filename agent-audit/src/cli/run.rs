use std::path::PathBuf;

use clap::Args;

use crate::bpf::{AttachMode, CounterOptions};
use crate::exit::ExitCode;
use crate::run::{self, RunOptions};
use crate::Error;

/// Arguments of `run`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exits with the command's own exit status (128+N if signal N ended it). \
                  The command and everything it starts are recorded, from its first execve \
                  until the last of them exits."
)]
pub struct RunArgs {
    /// Allowlist file to write.
    #[arg(
        long,
        short = 'o',
        value_name = "FILE",
        default_value = "allowlist.json"
    )]
    out: PathBuf,
    /// How to attach to sys_enter.
    #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
    attach: AttachMode,
    /// Count syscalls only, without attributing each to the program that made it (the
    /// cheapest path inside a target; the allowlist then has no `programs`).
    #[arg(long)]
    no_attribution: bool,
    /// Do not record the values of the tracked syscall arguments (socket families, clone
    /// flags, ioctl requests, …): the allowlist then has no `args`, and profiles fall back to
    /// argument rules at least as strict as Docker's default.
    #[arg(long)]
    no_args: bool,
    /// Do not count the calls the command's seccomp filters refused (see `record`).
    #[arg(long)]
    no_refusals: bool,
    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

impl RunArgs {
    pub(super) fn execute(self) -> Result<ExitCode, Error> {
        let outcome = run::run(RunOptions {
            command: self.command,
            out: self.out,
            counter: CounterOptions {
                attach: self.attach,
                attribution: !self.no_attribution,
                args: !self.no_args,
                refusals: !self.no_refusals,
            },
            cwd: None,
        })?;
        let code = u8::try_from(outcome.exit_status.clamp(0, 255)).unwrap_or(u8::MAX);
        Ok(ExitCode(code))
    }
}
