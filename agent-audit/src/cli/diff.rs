use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::diff::{self, Side};
use crate::exit::ExitCode;
use crate::Error;

/// Output format.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// diff-style lines.
    Text,
    /// Stable JSON (`added`, `removed`, `changed`).
    Json,
}

/// Which differences make `diff` exit 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FailOn {
    /// Any difference.
    Any,
    /// Only syscalls allowed in B but not in A, and calls B's recording saw refused only
    /// because A never recorded them (a CI gate against new syscalls).
    Added,
    /// Never: report only.
    Never,
}

/// Arguments of `diff`.
#[derive(Debug, Args)]
#[command(
    after_help = "A and B may each be a seccomp profile or an allowlist. Exit 0 when nothing \
                  --fail-on counts differs, 1 otherwise (so `agent-audit diff --fail-on added \
                  committed-profile.json new.allowlist.json` fails a pipeline when the workload \
                  starts using a syscall the committed profile does not allow)."
)]
pub struct DiffArgs {
    /// The old side.
    a: PathBuf,
    /// The new side.
    b: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Which differences make the exit status 1.
    #[arg(long, value_enum, default_value_t = FailOn::Any)]
    fail_on: FailOn,
    /// The container Docker/Podman profiles are evaluated for.
    #[command(flatten)]
    container: super::ContainerArgs,
}

impl DiffArgs {
    pub(super) fn execute(self) -> Result<ExitCode, Error> {
        crate::fsutil::check_stdout()?;
        let context = self.container.context()?;
        let a = Side::read(&self.a, &context)?;
        let b = Side::read(&self.b, &context)?;
        let d = diff::diff(&a, &b);
        match self.format {
            Format::Text => super::print_stdout(&d.to_text())?,
            Format::Json => super::print_stdout(&d.to_json())?,
        }
        let failed = match self.fail_on {
            FailOn::Any => !d.is_empty(),
            FailOn::Added => d.adds(),
            FailOn::Never => false,
        };
        Ok(if failed {
            ExitCode::FINDINGS
        } else {
            ExitCode::OK
        })
    }
}
