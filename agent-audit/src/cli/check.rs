use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::check;
use crate::exit::ExitCode;
use crate::Error;

/// Output format of `check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// Errors, warnings and notes for people.
    Text,
    /// The report as JSON, for CI.
    Json,
}

/// Arguments of `check`.
#[derive(Debug, Args)]
#[command(
    after_help = "Errors (exit 1): default action allows; dangerous syscalls allowed; \
                  unknown syscall names; a name both allowed and denied; clone3 denied with \
                  anything but ENOSYS; a rule libseccomp refuses; a filter longer than the \
                  kernel's 4096 instructions. Warnings: dangerous syscalls \
                  only denied by default; names on none of the listed arches; a name in two \
                  rules; rules without comment; missing *_time64 twins on x86/arm; names this \
                  libseccomp does not know. Notes: per-arch unknown names, rules equal to the \
                  default action, filter size per arch."
)]
pub struct CheckArgs {
    /// The seccomp profile (OCI/Docker JSON) to lint.
    #[arg(value_name = "PROFILE")]
    profile: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
    format: CheckFormat,
    /// The container the profile is for.
    #[command(flatten)]
    container: super::ContainerArgs,
}

impl CheckArgs {
    pub(super) fn execute(self) -> Result<ExitCode, Error> {
        crate::fsutil::check_stdout()?;
        let report = check::check_file(&self.profile, &self.container.context()?)?;
        match self.format {
            CheckFormat::Text => super::print_stdout(&report.to_text())?,
            CheckFormat::Json => super::print_stdout(&report.to_json())?,
        }
        Ok(if report.has_errors() {
            ExitCode::FINDINGS
        } else {
            ExitCode::OK
        })
    }
}
