use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use crate::exit::ExitCode;
use crate::fsutil;
use crate::report::{self, ReportInputs};
use crate::shell::status;
use crate::Error;

/// Output format of `report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Markdown for a pull-request comment (at most 65 536 characters, long tables folded).
    Md,
    /// One self-contained HTML page: charts, sortable tables, print style.
    Html,
    /// Stable JSON (`agent-audit/report/v1`) for CI tools.
    Json,
}

/// Arguments of `report`.
#[derive(Debug, Args)]
#[command(
    after_help = "Findings first: dangerous syscalls observed and what the profile does with \
                  them; calls the workload made that the profile denies (from the allowlists, \
                  and from a verify result); names a listed architecture needs that the profile \
                  lacks; syscalls only the runtime's init made; what ran only as root. Then the \
                  summary, calls by category, and every allowed syscall with its category, \
                  calls, share, programs, description and why it is allowed. Same inputs give \
                  byte-identical output. Exit 0 when the report was written, whatever it finds \
                  (gate CI on the JSON, or on `agent-audit diff --fail-on added`)."
)]
pub struct ReportArgs {
    /// Allowlist files (merged like `profile` merges them).
    #[arg(required = true, value_name = "ALLOWLIST")]
    allowlists: Vec<PathBuf>,
    /// The profile under review (default: the profile `agent-audit profile` would generate
    /// from these allowlists).
    #[arg(long, value_name = "PROFILE")]
    profile: Option<PathBuf>,
    /// An older profile: the summary says what the profile adds and removes against it.
    #[arg(long, value_name = "OLD_PROFILE")]
    base: Option<PathBuf>,
    /// A `verify` result (JSON with `denied: [{arch, name, nr, count}]`): its denials are
    /// findings.
    #[arg(long, value_name = "VERIFY.json")]
    verify: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum)]
    format: ReportFormat,
    /// File to write (default: standard output).
    #[arg(long, short = 'o', value_name = "FILE")]
    out: Option<PathBuf>,
}

impl ReportArgs {
    pub(super) fn execute(self) -> Result<ExitCode, Error> {
        // Fail before any work if the output would destroy an input or cannot be written.
        if let Some(out) = &self.out {
            let inputs: Vec<&Path> = self
                .allowlists
                .iter()
                .map(PathBuf::as_path)
                .chain(self.profile.as_deref())
                .chain(self.base.as_deref())
                .chain(self.verify.as_deref())
                .collect();
            fsutil::check_distinct(&inputs, &[out])?;
            fsutil::check_output(out)?;
        } else {
            fsutil::check_stdout()?;
        }
        let report = report::build(&ReportInputs {
            allowlists: self.allowlists,
            profile: self.profile,
            base: self.base,
            verify: self.verify,
        })?;
        let text = match self.format {
            ReportFormat::Md => report::markdown::render(&report),
            ReportFormat::Html => report::html::render(&report),
            ReportFormat::Json => report::json::render(&report),
        };
        match &self.out {
            Some(out) => {
                fsutil::write_output(out, text.as_bytes())?;
                status!(
                    "agent-audit: wrote {} ({} finding(s), {} allowed syscalls)",
                    out.display(),
                    report.finding_count(),
                    report.syscalls.len()
                );
            }
            None => super::print_stdout(&text)?,
        }
        Ok(ExitCode::OK)
    }
}
