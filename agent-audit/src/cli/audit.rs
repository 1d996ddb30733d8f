use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::audit::{self, AuditOptions, RunCount, Workload};
use crate::bpf::{AttachMode, CounterOptions};
use crate::exit::ExitCode;
use crate::Error;

use super::seconds::TIMEOUT;

/// Arguments of `audit`.
#[derive(Debug, Args)]
#[command(
    after_help = "Writes into --out-dir: allowlist-K.json (one per run), profile.json, \
                  rationale.md, verify.json, report.html, report.md, report.json; files of \
                  an earlier audit there are replaced. With --container, verify runs a new \
                  container created from the named one's configuration with the profile as \
                  its seccomp option (removed afterwards); the dangerous-syscall probes then \
                  run on the host with the container's capabilities. Exit 0 when verify \
                  passed and the report has no finding; 1 when verify failed or the report \
                  has findings (read report.md)."
)]
pub struct AuditArgs {
    /// Runs to record and merge.
    #[arg(
        long,
        value_name = "N",
        default_value = "3",
        value_parser = at_least_one,
        conflicts_with = "until_stable"
    )]
    runs: NonZeroUsize,
    /// Keep recording until K consecutive runs added nothing new (at most --max-runs).
    /// Stable is not complete: N runs that all missed a call rule out, at 95 %, only a call
    /// made in more than about 3/N of runs (10 runs: 30 %); rarer calls need more runs.
    #[arg(long, value_name = "K", value_parser = at_least_one)]
    until_stable: Option<NonZeroUsize>,
    /// The most runs --until-stable records.
    #[arg(
        long,
        value_name = "M",
        default_value_t = 10,
        requires = "until_stable"
    )]
    max_runs: usize,
    /// Directory for every file of the audit.
    #[arg(long, value_name = "DIR", default_value = "audit")]
    out_dir: PathBuf,
    /// Working directory of every run of the command (default: a fresh temporary directory
    /// per run, so that a command writing relative paths can run again).
    #[arg(long, value_name = "DIR", conflicts_with = "container")]
    cwd: Option<PathBuf>,
    /// Audit a stopped container (Docker or Podman) instead of a command: each run is one
    /// start of it through the engine's API, recorded from its first syscall; verify runs a
    /// copy of it under the profile.
    #[arg(long, value_name = "NAME", conflicts_with = "command")]
    container: Option<String>,
    /// The engine of --container.
    #[command(flatten)]
    engine: super::EngineArgs,
    /// Do not allow the timing-dependent syscalls (agent-audit/data/timing-dependent.json:
    /// sched_yield when futex was recorded, kill when wait4/waitid was, Go's preemption calls
    /// tgkill/getpid/rt_sigreturn when a Go binary ran) that no run made.
    #[arg(long)]
    no_timing_allowances: bool,
    /// Seconds the verify step's run of the command may take, with whatever it leaves
    /// running (0.1 to 31536000; `verify --timeout`): then it is killed and verify fails as
    /// timed out. Processes still running 5 seconds after the command exited are killed and
    /// fail it too. With --container, the bound of the verify copy's run.
    #[arg(
        long,
        value_name = "SECS",
        default_value = "600",
        value_parser = TIMEOUT.parser()
    )]
    verify_timeout: Duration,
    /// How to attach to sys_enter.
    #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
    attach: AttachMode,
    /// The command to audit, after `--`.
    #[arg(last = true, required_unless_present = "container", value_name = "CMD")]
    command: Vec<String>,
}

impl AuditArgs {
    pub(super) fn execute(self) -> Result<ExitCode, Error> {
        let workload = match self.container {
            Some(name) => Workload::Container {
                name,
                engine: self.engine.socket(),
            },
            None => Workload::Command {
                argv: self.command,
                cwd: self.cwd,
            },
        };
        let runs = match self.until_stable {
            Some(stable) => RunCount::until_stable(stable, self.max_runs).ok_or_else(|| {
                Error::Usage(format!(
                    "--max-runs {} leaves no room for {stable} run(s) after the first to add \
                     nothing: give at least {}",
                    self.max_runs,
                    stable.get() + 1
                ))
            })?,
            None => RunCount::Fixed(self.runs),
        };
        let outcome = audit::audit(&AuditOptions {
            workload,
            runs,
            out_dir: self.out_dir.clone(),
            counter: CounterOptions {
                attach: self.attach,
                attribution: true,
                args: true,
                refusals: true,
            },
            timing_allowances: !self.no_timing_allowances,
            verify_timeout: self.verify_timeout,
        })?;
        let verdict = match &outcome.verify {
            Some(v) if v.passed => "verify PASSED",
            Some(_) => "verify FAILED",
            None => "no verify step",
        };
        let line = format!(
            "{}: {} run(s); {}; {verdict}; {} finding(s); report: {}\n",
            self.out_dir.display(),
            outcome.convergence.runs.len(),
            outcome.convergence.line,
            outcome.report.finding_count(),
            self.out_dir.join("report.md").display()
        );
        // Not println!, which panics (101) when the reader has gone: the documents are the
        // files, this line only sums them up.
        crate::fsutil::write_stdout(line.as_bytes()).map_err(Error::Io)?;
        Ok(outcome.exit_code())
    }
}

/// A count of runs: a whole number, at least 1 (clap names the flag in its error).
fn at_least_one(text: &str) -> Result<NonZeroUsize, String> {
    let n: usize = text.parse().map_err(|e| format!("{e}"))?;
    NonZeroUsize::new(n).ok_or_else(|| "must be at least 1".into())
}
