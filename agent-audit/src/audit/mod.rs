//! `agent-audit audit`: the whole audit of one workload in one command. Records it several
//! times (each run of a command in a fresh working directory), stops when the runs have
//! converged if asked to, merges them into a profile and its rationale, re-runs the command
//! under the profile with the dangerous-syscall probes, and writes the report — all into one
//! directory:
//!
//! `allowlist-K.json` (one per run), `profile.json`, `rationale.md`, `verify.json`,
//! `report.html`, `report.md`, `report.json`.

mod container;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use crate::allowlist::Allowlist;
use crate::bpf::CounterOptions;
use crate::convergence::Convergence;
use crate::engine::EngineSocket;
use crate::exit::ExitCode;
use crate::fsutil::{self, OutputError};
use crate::policy;
use crate::profile::{self, oci, rationale, ExplicitAllow, Merged, ProfileOptions};
use crate::report::{self, Report, ReportInputs};
use crate::run::{self, RunOptions};
use crate::seccomp::container::{CapabilityLists, ContainerContext};
use crate::shell::status;
use crate::verify::{
    self, ContainerVerifyOptions, SourceContainer, VerifyError, VerifyOptions, VerifyReport,
};
use crate::Error;

pub use container::ContainerError;

/// What is audited.
#[derive(Clone, Debug)]
pub enum Workload {
    /// A command, run by agent-audit.
    Command {
        /// The command and its arguments.
        argv: Vec<String>,
        /// Its working directory; `None`: a fresh temporary directory per run.
        cwd: Option<PathBuf>,
    },
    /// A stopped container, started through its engine's API for each run.
    Container {
        /// Its name or id.
        name: String,
        /// Its engine (Docker or Podman).
        engine: EngineSocket,
    },
}

/// How many runs to record: at least one, by its types; an `UntilStable` only from
/// [`RunCount::until_stable`], which leaves room for the stable runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunCount {
    /// Exactly this many.
    Fixed(NonZeroUsize),
    /// Until `stable` consecutive runs added nothing, at most `max` runs.
    UntilStable {
        /// Consecutive runs that must add nothing.
        stable: NonZeroUsize,
        /// The most runs recorded.
        max: usize,
    },
}

impl RunCount {
    /// Until `stable` consecutive runs add nothing, at most `max` runs; `None` when `max`
    /// leaves no room for the first run and `stable` more after it.
    pub fn until_stable(stable: NonZeroUsize, max: usize) -> Option<Self> {
        (max > stable.get()).then_some(RunCount::UntilStable { stable, max })
    }

    fn enough(self, done: usize, convergence: &Convergence) -> bool {
        match self {
            RunCount::Fixed(n) => done >= n.get(),
            RunCount::UntilStable { stable, max } => {
                done >= max || convergence.stable_runs >= stable.get()
            }
        }
    }
}

/// Options of `audit`.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    /// The workload.
    pub workload: Workload,
    /// How many runs.
    pub runs: RunCount,
    /// Where every file goes.
    pub out_dir: PathBuf,
    /// How the kernel program is loaded for recording.
    pub counter: CounterOptions,
    /// Allow the timing-dependent syscalls of `data/timing-dependent.json` whose trigger was
    /// recorded.
    pub timing_allowances: bool,
    /// `verify --timeout` of the verify step.
    pub verify_timeout: std::time::Duration,
}

/// What the audit found.
#[derive(Debug)]
pub struct AuditOutcome {
    /// The report written.
    pub report: Report,
    /// The verify run's result.
    pub verify: Option<VerifyReport>,
    /// Per-run additions.
    pub convergence: Convergence,
}

impl AuditOutcome {
    /// 0 when verify passed (or there was none) and the report has no finding, else 1.
    pub fn exit_code(&self) -> ExitCode {
        let verified = self.verify.as_ref().is_none_or(|v| v.passed);
        if verified && self.report.finding_count() == 0 {
            ExitCode::OK
        } else {
            ExitCode::FINDINGS
        }
    }
}

/// Files of one audit directory.
struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn allowlist(&self, run: usize) -> PathBuf {
        self.dir.join(format!("allowlist-{run}.json"))
    }
    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Creates the directory, checks it is writable, and removes the files of an earlier
    /// audit there, so that none of them is mistaken for this one's.
    fn prepare(&self) -> Result<(), OutputError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| OutputError::NotWritable {
            dir: self.dir.clone(),
            source,
        })?;
        fsutil::ensure_dir_writable(&self.dir)?;
        let entries = std::fs::read_dir(&self.dir).map_err(|source| OutputError::NotWritable {
            dir: self.dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            if is_audit_output(&name.to_string_lossy()) {
                std::fs::remove_file(entry.path()).map_err(|source| OutputError::Write {
                    path: entry.path(),
                    source,
                })?;
            }
        }
        Ok(())
    }
}

/// The names `audit` writes.
fn is_audit_output(name: &str) -> bool {
    const FIXED: [&str; 7] = [
        "profile.json",
        "capabilities.json",
        "rationale.md",
        "verify.json",
        "report.html",
        "report.md",
        "report.json",
    ];
    let numbered = name
        .strip_prefix("allowlist-")
        .and_then(|rest| rest.strip_suffix(".json"))
        .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()));
    numbered || FIXED.contains(&name)
}

/// Runs the whole audit.
pub fn audit(opts: &AuditOptions) -> Result<AuditOutcome, Error> {
    let layout = Layout {
        dir: opts.out_dir.clone(),
    };
    layout.prepare()?;
    if let Workload::Container { name, engine } = &opts.workload {
        container::ensure_stopped(name, engine)?;
        // Refused before any run is recorded: a profile the engine would not apply to it.
        SourceContainer::inspect(name, engine).map_err(VerifyError::from)?;
    }
    let (paths, convergence) = record_runs(opts, &layout)?;
    step(&format!("convergence: {}", convergence.line));

    let profile_path = layout.file("profile.json");
    let capability_set = write_profile(
        &paths,
        &profile_path,
        &layout.file("rationale.md"),
        opts.timing_allowances,
    )?;

    let verify = match &opts.workload {
        Workload::Command { argv, cwd } => Some(verify_command(
            opts,
            &layout,
            &paths,
            argv,
            cwd.as_deref(),
            capability_set,
        )?),
        Workload::Container { name, engine } => Some(verify_container(
            opts,
            &layout,
            &paths,
            name,
            engine,
            capability_set,
        )?),
    };
    let report = write_reports(&layout, paths, verify.is_some())?;
    Ok(AuditOutcome {
        report,
        verify,
        convergence,
    })
}

/// Records runs until there are enough; returns their files in recording order.
fn record_runs(opts: &AuditOptions, layout: &Layout) -> Result<(Vec<PathBuf>, Convergence), Error> {
    let mut paths = Vec::new();
    let mut lists: Vec<Allowlist> = Vec::new();
    loop {
        let run = paths.len() + 1;
        let out = layout.allowlist(run);
        let list = record_one(opts, run, &out)?;
        paths.push(out);
        lists.push(list);
        let labels: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        let convergence = Convergence::of(labels.iter().map(String::as_str).zip(&lists));
        if let Some(added) = convergence.runs.last().filter(|r| r.run > 1) {
            step(&format!(
                "run {run} added {}",
                if added.added.is_empty() {
                    "nothing".to_string()
                } else {
                    added.added.join(", ")
                }
            ));
        }
        if opts.runs.enough(run, &convergence) {
            return Ok((paths, convergence));
        }
    }
}

fn record_one(opts: &AuditOptions, run: usize, out: &Path) -> Result<Allowlist, Error> {
    match &opts.workload {
        Workload::Command { argv, cwd } => {
            step(&format!("run {run}: recording {}", argv.join(" ")));
            let scratch = scratch_dir(cwd.as_deref())?;
            let outcome = run::run(RunOptions {
                command: argv.clone(),
                out: out.to_path_buf(),
                counter: opts.counter,
                cwd: Some(scratch.path().to_path_buf()),
            })?;
            if outcome.exit_status != 0 {
                step(&format!(
                    "run {run}: the command exited {}: the recording shows a failing run",
                    outcome.exit_status
                ));
            }
            Ok(outcome.allowlist)
        }
        Workload::Container { name, engine } => {
            step(&format!(
                "run {run}: recording container {name} from its start"
            ));
            container::record_start(name, engine, out)?;
            Ok(Allowlist::read(out)?)
        }
    }
}

/// The working directory of one run: the one given, or a fresh temporary directory removed
/// afterwards, so that a command writing relative paths finds them absent every time.
enum Scratch {
    Given(PathBuf),
    Fresh(tempfile::TempDir),
}

impl Scratch {
    fn path(&self) -> &Path {
        match self {
            Scratch::Given(p) => p,
            Scratch::Fresh(t) => t.path(),
        }
    }
}

fn scratch_dir(cwd: Option<&Path>) -> Result<Scratch, Error> {
    match cwd {
        Some(dir) => Ok(Scratch::Given(dir.to_path_buf())),
        None => tempfile::Builder::new()
            .prefix("agent-audit-run-")
            .tempdir()
            .map(Scratch::Fresh)
            .map_err(Error::Io),
    }
}

fn write_profile(
    allowlists: &[PathBuf],
    profile: &Path,
    rationale_md: &Path,
    timing_allowances: bool,
) -> Result<Option<CapabilityLists>, Error> {
    step("generating the seccomp profile and its rationale");
    let merged: Merged = profile::read_and_merge(allowlists)?;
    let options = ProfileOptions {
        baseline: true,
        timing_allows: if timing_allowances {
            timing_allows(&merged)
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    let plan = profile::build::plan(&merged, &options)?;
    for line in rationale::notice_lines(&plan) {
        status!("agent-audit: note: {}", line.replace('`', ""));
    }
    let json = oci::to_seccomp_profile(&plan).to_json();
    fsutil::write_output(profile, json.as_bytes()).map_err(profile::ProfileError::from)?;
    let md = rationale::render(&plan, &profile.display().to_string());
    fsutil::write_output(rationale_md, md.as_bytes()).map_err(profile::ProfileError::from)?;
    plan.capabilities
        .write(crate::capabilities::minimal::path_beside(profile).as_deref())
        .map_err(profile::ProfileError::from)?;
    Ok(plan
        .capabilities
        .is_known()
        .then(|| plan.capabilities.lists()))
}

/// The timing-dependent syscalls to allow for what was recorded, each with its reason and
/// what triggered it (a recorded call, or a language runtime that ran).
fn timing_allows(merged: &Merged) -> Vec<ExplicitAllow> {
    let observed = merged.names();
    policy::timing_dependent()
        .to_allow(&observed, &merged.runtimes)
        .into_iter()
        .map(|a| {
            let because = a
                .triggers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            step(&format!(
                "allowing {} although no run made it: timing-dependent, and {because} \
                 (--no-timing-allowances leaves it out)",
                a.entry.name,
            ));
            ExplicitAllow {
                name: a.entry.name.clone(),
                reason: format!(
                    "timing-dependent, allowed by `audit` because {because}: {}",
                    a.entry.reason
                ),
            }
        })
        .collect()
}

fn verify_command(
    opts: &AuditOptions,
    layout: &Layout,
    recordings: &[PathBuf],
    argv: &[String],
    cwd: Option<&Path>,
    capabilities: Option<CapabilityLists>,
) -> Result<VerifyReport, Error> {
    let set = capabilities.map(|lists| {
        lists
            .resolve()
            .expect("the minimal set names only capabilities agent-audit knows")
    });
    step(&format!(
        "verify: running the command under the profile{}, with the dangerous-syscall probes",
        set.as_ref()
            .map(|caps| format!(" and with {caps}"))
            .unwrap_or_default()
    ));
    let scratch = scratch_dir(cwd)?;
    let container = set
        .clone()
        .map(ContainerContext::on_this_host)
        .unwrap_or_default();
    let result = verify::verify(&VerifyOptions {
        profile: layout.file("profile.json"),
        allowlist: None,
        probe_dangerous: true,
        recordings: recordings.to_vec(),
        out: Some(layout.file("verify.json")),
        command: argv.to_vec(),
        attach: opts.counter.attach,
        cwd: Some(scratch.path().to_path_buf()),
        container,
        timeout: opts.verify_timeout,
        capability_set: set,
    })?;
    status!("{}", result.to_text().trim_end_matches('\n'));
    Ok(result)
}

fn verify_container(
    opts: &AuditOptions,
    layout: &Layout,
    recordings: &[PathBuf],
    name: &str,
    engine: &EngineSocket,
    capabilities: Option<CapabilityLists>,
) -> Result<VerifyReport, Error> {
    step(&format!(
        "verify: running a copy of container {name} under the profile{} (the \
         dangerous-syscall probes run on the host with its capabilities)",
        match &capabilities {
            Some(lists) => format!(
                " and --cap-drop ALL{}",
                lists
                    .add
                    .iter()
                    .map(|c| format!(" --cap-add {c}"))
                    .collect::<String>()
            ),
            None => String::new(),
        }
    ));
    let result = verify::verify_container(&ContainerVerifyOptions {
        profile: layout.file("profile.json"),
        out: Some(layout.file("verify.json")),
        name: name.to_string(),
        attach: opts.counter.attach,
        timeout: opts.verify_timeout,
        engine: engine.clone(),
        recordings: recordings.to_vec(),
        capabilities,
    })?;
    status!("{}", result.to_text().trim_end_matches('\n'));
    Ok(result)
}

fn write_reports(
    layout: &Layout,
    allowlists: Vec<PathBuf>,
    verified: bool,
) -> Result<Report, Error> {
    step("writing the report");
    let report = report::build(&ReportInputs {
        allowlists,
        profile: Some(layout.file("profile.json")),
        base: None,
        verify: verified.then(|| layout.file("verify.json")),
    })?;
    for (name, text) in [
        ("report.html", report::html::render(&report)),
        ("report.md", report::markdown::render(&report)),
        ("report.json", report::json::render(&report)),
    ] {
        fsutil::write_output(&layout.file(name), text.as_bytes())?;
    }
    Ok(report)
}

/// Progress on stderr, one line per step.
fn step(what: &str) {
    status!("agent-audit: {what}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_audits_own_files_are_cleared() {
        for name in [
            "allowlist-1.json",
            "allowlist-12.json",
            "report.md",
            "verify.json",
        ] {
            assert!(is_audit_output(name), "{name}");
        }
        for name in [
            "allowlist-.json",
            "allowlist-1a.json",
            "allowlist.json",
            "notes.md",
        ] {
            assert!(!is_audit_output(name), "{name}");
        }
    }

    #[test]
    fn until_stable_stops_at_the_maximum() {
        let c = Convergence::of(std::iter::empty());
        let two = NonZeroUsize::new(2).unwrap();
        let runs = RunCount::until_stable(two, 4).unwrap();
        assert!(!runs.enough(3, &c));
        assert!(runs.enough(4, &c));
        assert!(RunCount::Fixed(NonZeroUsize::new(3).unwrap()).enough(3, &c));
        // The first run, then two that add nothing: 3 runs at the least.
        assert_eq!(RunCount::until_stable(two, 2), None);
        assert!(RunCount::until_stable(two, 3).is_some());
    }
}
