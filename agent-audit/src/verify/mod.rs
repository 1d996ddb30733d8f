//! `agent-audit verify --profile P -- CMD…`: runs a command under a seccomp profile while the
//! recorder watches it, and reports every syscall the profile refused.
//!
//! A call refused by seccomp never reaches `sys_enter` (seccomp runs first) but still passes
//! `sys_exit` with its errno, so per syscall `exits − entries` is what the filter denied.

mod capabilities;
mod container;
mod left;
mod probe_child;
mod probes;
mod source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use crate::run::Survivor;
pub use capabilities::{CapabilityFindingKind, CapabilityUnderVerify, Recorded};
pub use container::{
    verify_container, ContainerRun, ContainerVerifyError, ContainerVerifyOptions, ProbeSite,
};
pub use left::LeftProcess;
pub use probes::{ProbeResult, SkippedProbe};
pub use source::SourceContainer;

use crate::allowlist::{Allowlist, AllowlistError};
use crate::bpf::{AttachMode, CounterOptions};
use crate::capabilities::process::KeptCapabilities;
use crate::capabilities::CapabilityChecks;
use crate::fsutil::{self, OutputError};
use crate::run::{CommandSession, RunLimit, SpawnError, Start, StartStage};
use crate::seccomp::arches::ProfileArches;
use crate::seccomp::compile::{self, CompileError, SkipReason, Skipped};
use crate::seccomp::container::Capabilities;
use crate::seccomp::{
    ProfileFileError, ProgramError, SeccompProfile, SeccompProgram, MAX_FILTER_INSTRUCTIONS,
};
use crate::syscalls::Arch;
use crate::Error;

/// Schema tag of the JSON result.
pub const VERIFY_SCHEMA_V1: &str = "agent-audit/verify/v1";

/// `--timeout` when none is given: long enough for a test suite, short enough that a CI job
/// whose command never ends fails with a reason instead of hitting the job's own limit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// After the command has exited, how long the processes it left may take to exit on their own
/// before `verify` kills them: a shell's background job finishing its last write, a daemon
/// shutting down. A worker that outlives this was left behind (often because the profile
/// denied the call that should have ended it).
pub const DESCENDANT_GRACE: Duration = Duration::from_secs(5);

/// Options of `verify`.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// The profile to enforce.
    pub profile: PathBuf,
    /// An allowlist to mark which denied calls had been observed when recording.
    pub allowlist: Option<PathBuf>,
    /// Also run the dangerous-syscall probes.
    pub probe_dangerous: bool,
    /// Recordings of the workload (besides `allowlist`): the must-work probes ask only for
    /// what they show (see `probes`).
    pub recordings: Vec<PathBuf>,
    /// Where to write the JSON result.
    pub out: Option<PathBuf>,
    /// The command.
    pub command: Vec<String>,
    /// Attach type.
    pub attach: AttachMode,
    /// The container whose capabilities and kernel decide which of a Docker/Podman profile's
    /// conditional rules apply.
    pub container: crate::seccomp::container::ContainerContext,
    /// The command's working directory (default: ours).
    pub cwd: Option<PathBuf>,
    /// How long the command, and what it leaves running, may take from its start.
    pub timeout: Duration,
    /// The command runs with its bounding, effective, permitted, inheritable and ambient
    /// sets reduced to these (a `capabilities.json`'s set); `None`: with ours.
    pub capability_set: Option<Capabilities>,
}

/// A syscall the profile refused while the command ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Denied {
    /// Arch of the call.
    pub arch: Arch,
    /// Name in that arch's table.
    pub name: Option<String>,
    /// Number.
    pub nr: u32,
    /// How many calls were refused.
    pub count: u64,
    /// With `--allowlist`: whether the recording saw this call (then the profile dropped a
    /// syscall the workload was seen to need).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_in_allowlist: Option<bool>,
    /// The profile fails this call with ENOSYS on purpose so that libc falls back to an
    /// equivalent call it can filter (`clone3` → `clone`): expected, not a failure.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fallback: bool,
    /// A container's own seccomp configuration refuses this call too (a run of the copy
    /// under it saw the same refusal): its recorded runs ran with the call refused, which the
    /// recording cannot see. Not a failure.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub refused_before: bool,
    /// The errno the command got, when it is known: for the `execve` refused while starting
    /// the command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
}

impl Denied {
    /// Refused on purpose, or refused under the configuration the workload was recorded in:
    /// not a failure.
    pub fn expected(&self) -> bool {
        self.fallback || self.refused_before
    }
}

/// The command did not start under the profile: the filter was refused, or its exec failed
/// (denied by the filter, or not found / not executable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StartFailure {
    /// The step that failed.
    pub stage: StartStage,
    /// Its errno, when the kernel gave one.
    pub errno: Option<i32>,
    /// The error in words.
    pub error: String,
}

impl From<&SpawnError> for StartFailure {
    fn from(e: &SpawnError) -> Self {
        Self {
            stage: e.stage,
            errno: e.source.raw_os_error(),
            error: e.source.to_string(),
        }
    }
}

impl StartFailure {
    /// The command's exec never completed: signal `signal` ended it there.
    fn killed_at_exec(signal: i32) -> Self {
        Self {
            stage: StartStage::Exec,
            errno: None,
            error: format!(
                "killed by signal {signal} before its exec completed (the profile's action for \
                 the exec)"
            ),
        }
    }

    /// A failed exec that the filter refused shows in the counts as an `execve` (or
    /// `execveat`) that exited without entering: that denial gets the errno the command saw.
    fn mark_refused_exec(&self, denied: &mut [Denied]) {
        if self.stage != StartStage::Exec {
            return;
        }
        for d in denied
            .iter_mut()
            .filter(|d| matches!(d.name.as_deref(), Some("execve" | "execveat")))
        {
            d.errno = self.errno;
        }
    }
}

/// The outcome, also written as JSON with `--out`.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    /// Always [`VERIFY_SCHEMA_V1`].
    pub schema: &'static str,
    /// The profile enforced.
    pub profile: PathBuf,
    /// The command run.
    pub command: Vec<String>,
    /// Its exit status (128+N for signal N; 127 or 126 when it did not start, as a shell
    /// says).
    pub exit_status: i32,
    /// Why the command did not start under the profile, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_failure: Option<StartFailure>,
    /// The `--timeout` in seconds (a container's verification has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// The command, or processes it left, were still running at the timeout and were killed.
    pub timed_out: bool,
    /// Processes the command started that were still running when the run ended (the grace
    /// period after the command's exit had passed, or the timeout): each was killed.
    pub survivors: Vec<Survivor>,
    /// Processes that left the command's cgroup while it ran (moved to a cgroup outside it, or
    /// created outside it): nothing they did afterwards was checked. Each one still running
    /// was killed, with the processes below it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_cgroup: Vec<LeftProcess>,
    /// Refused syscalls, by count, largest first.
    pub denied: Vec<Denied>,
    /// Probe results (`--probe-dangerous`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeResult>,
    /// Must-work probes not run: the recordings show no such call, or, without recordings,
    /// the profile does not allow a call the probe makes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub probes_skipped: Vec<SkippedProbe>,
    /// Names of rules that have no effect in the filter because libseccomp does not know
    /// them (a rule libseccomp refuses makes `verify` fail, as runc does). Rules equal to the default action are not listed: the
    /// default action applies to their names, which is what they ask for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_in_filter: Vec<String>,
    /// The command succeeded within the timeout and left nothing running, nothing was denied
    /// (but ENOSYS fallbacks and, for a container, what its own seccomp configuration refuses
    /// too), every probe got what it must and no capability check granted when recorded was
    /// refused (`capability-refused`).
    pub passed: bool,
    /// The capability set the command ran with, when it was reduced to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capability_set: Option<String>,
    /// Every capability the workload checked under `verify`, with how the recordings saw it
    /// (when capability checks could be counted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<CapabilityUnderVerify>,
    /// When a Docker container was verified (`audit --container`): which, and where the
    /// probes ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerRun>,
}

/// What can stop `verify` before it has a verdict.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The profile file.
    #[error(transparent)]
    Profile(#[from] ProfileFileError),
    /// libseccomp refused the profile.
    #[error("{path} does not compile into a filter: {source}")]
    Compile {
        /// The profile.
        path: PathBuf,
        /// Why.
        source: CompileError,
    },
    /// libseccomp refused a rule: runc stops there (`matchCall` returns the error), so the
    /// container would not start at all.
    #[error(
        "{path}: runc would refuse this profile and not start the container: libseccomp \
         refused rule {rule} ({name}): {reason}"
    )]
    RuleRefused {
        /// The profile.
        path: PathBuf,
        /// The rule, counted from 1.
        rule: usize,
        /// The name being added.
        name: String,
        /// libseccomp's error.
        reason: String,
    },
    /// An architecture name agent-audit has no table for.
    #[error("{path}: architecture {name:?} is not supported by agent-audit")]
    UnknownArch {
        /// The profile.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// Exporting the filter failed.
    #[error("preparing the filter failed: {0}")]
    Filter(#[source] std::io::Error),
    /// The filter is longer than the kernel accepts: it cannot be enforced at all.
    #[error(
        "{path} cannot be enforced: its filter for {arches} is {instructions} BPF \
         instructions, more than the {MAX_FILTER_INSTRUCTIONS} the kernel accepts in one \
         seccomp filter (BPF_MAXINSNS; runc and verify would get EINVAL). Fewer argument \
         conditions or fewer architectures make it shorter; `agent-audit check` shows the size \
         per architecture"
    )]
    FilterTooLarge {
        /// The profile.
        path: PathBuf,
        /// The architectures the filter accepts, comma-separated.
        arches: String,
        /// Its length.
        instructions: usize,
    },
    /// The probe child failed.
    #[error("the dangerous-syscall probes failed to run: {0}")]
    Probes(#[source] std::io::Error),
    /// The `--allowlist` file.
    #[error(transparent)]
    Allowlist(#[from] AllowlistError),
    /// Writing the result.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// A Docker container that cannot be verified.
    #[error(transparent)]
    Container(#[from] ContainerVerifyError),
}

impl VerifyError {
    /// The documented exit code: the inputs' and output's, 65 for a profile that cannot be
    /// compiled or is longer than the kernel accepts, 70 when preparing the filter or the
    /// probes fails (a bug).
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        use crate::exit::ExitCode;
        match self {
            VerifyError::Profile(e) => e.exit_code(),
            VerifyError::Allowlist(e) => e.exit_code(),
            VerifyError::Output(e) => e.exit_code(),
            VerifyError::Container(e) => e.exit_code(),
            VerifyError::Compile { .. }
            | VerifyError::RuleRefused { .. }
            | VerifyError::UnknownArch { .. }
            | VerifyError::FilterTooLarge { .. } => ExitCode::DATA,
            VerifyError::Filter(_) | VerifyError::Probes(_) => ExitCode::SOFTWARE,
        }
    }
}

/// Runs the command under the profile and returns the verdict.
pub fn verify(opts: &VerifyOptions) -> Result<VerifyReport, Error> {
    if let Some(out) = &opts.out {
        let inputs: Vec<&Path> = std::iter::once(opts.profile.as_path())
            .chain(opts.allowlist.as_deref())
            .collect();
        fsutil::check_distinct(&inputs, &[out])?;
        fsutil::check_output(out)?;
    }
    let profile = SeccompProfile::read(&opts.profile).map_err(VerifyError::from)?;
    let profile = opts.container.effective(&profile);
    let allowlist = match &opts.allowlist {
        Some(p) => Some(Allowlist::read(p).map_err(VerifyError::from)?),
        None => None,
    };
    let lists = recordings(allowlist.as_ref(), &opts.recordings)?;
    let evidence = probes::Evidence::from_allowlists(&lists);
    let Filter {
        program,
        not_in_filter,
        ..
    } = Filter::build(&profile, &opts.profile)?;

    let watched = run_watched(opts, &program)?;
    let mut denied = denied_calls(&watched.entries, &watched.exits, allowlist.as_ref());
    mark_fallbacks(&mut denied, &profile);
    if let Some(failure) = &watched.start_failure {
        failure.mark_refused_exec(&mut denied);
    }
    // Probes install the same filter in a child of their own: they still run when the command
    // could not start, unless the kernel refused the filter itself.
    let filter_refused = watched
        .start_failure
        .as_ref()
        .is_some_and(|f| f.stage == StartStage::InstallFilter);
    let plan = probes::plan(&profile, evidence.as_ref());
    let (probes, probes_skipped) = if opts.probe_dangerous && !filter_refused {
        let results = probes::run(&program, &profile, &plan).map_err(VerifyError::Probes)?;
        (results, plan.skipped)
    } else {
        (Vec::new(), Vec::new())
    };
    let left_cgroup = left::end(&watched.left);
    let capabilities = watched
        .capabilities
        .as_ref()
        .map(|checks| capabilities::compare(checks, &capabilities::recorded_sections(&lists)))
        .unwrap_or_default();
    let passed = watched.start_failure.is_none()
        && !capabilities::any_fails(&capabilities)
        && watched.exit_status == 0
        && !watched.timed_out
        && watched.survivors.is_empty()
        && left_cgroup.is_empty()
        && denied.iter().all(|d| d.fallback)
        && probes::all_answered_right(&probes);
    let report = VerifyReport {
        schema: VERIFY_SCHEMA_V1,
        profile: opts.profile.clone(),
        command: opts.command.clone(),
        exit_status: watched.exit_status,
        start_failure: watched.start_failure,
        timeout_seconds: Some(opts.timeout.as_secs_f64()),
        timed_out: watched.timed_out,
        survivors: watched.survivors,
        left_cgroup,
        denied,
        probes,
        probes_skipped,
        not_in_filter,
        passed,
        capability_set: opts.capability_set.as_ref().map(ToString::to_string),
        capabilities,
        container: None,
    };
    if let Some(out) = &opts.out {
        report.write(out)?;
    }
    Ok(report)
}

/// `allowlist` and the `recordings` read: what the must-work probes ask from, and the
/// capability checks are judged by.
fn recordings(
    allowlist: Option<&Allowlist>,
    recordings: &[PathBuf],
) -> Result<Vec<Allowlist>, VerifyError> {
    let mut lists: Vec<Allowlist> = allowlist.into_iter().cloned().collect();
    lists.extend(read_recordings(recordings)?);
    Ok(lists)
}

/// Reads every recording (`--recording`, audit's runs).
pub(crate) fn read_recordings(paths: &[PathBuf]) -> Result<Vec<Allowlist>, VerifyError> {
    paths
        .iter()
        .map(|p| Allowlist::read(p).map_err(VerifyError::from))
        .collect()
}

/// The filter a profile compiles into, as the kernel gets it.
struct Filter {
    program: SeccompProgram,
    /// See [`VerifyReport::not_in_filter`].
    not_in_filter: Vec<String>,
}

impl Filter {
    /// Compiles `profile` (read from `path`, named in errors).
    fn build(profile: &SeccompProfile, path: &Path) -> Result<Self, VerifyError> {
        let arches = profile_arches(profile, path)?;
        let compiled =
            compile::build_filter(profile, &arches).map_err(|source| VerifyError::Compile {
                path: path.to_path_buf(),
                source,
            })?;
        refuse_like_runc(&compiled.skipped, path)?;
        let program = SeccompProgram::export(&compiled).map_err(|e| match e {
            ProgramError::Export(e) => VerifyError::Filter(e),
            ProgramError::TooLarge { instructions } => VerifyError::FilterTooLarge {
                path: path.to_path_buf(),
                arches: arches
                    .iter()
                    .map(|a| a.scmp_name())
                    .collect::<Vec<_>>()
                    .join(","),
                instructions,
            },
        })?;
        Ok(Self {
            program,
            not_in_filter: left_out_of_filter(&compiled.skipped),
        })
    }
}

/// What the kernel program saw while the command ran (or failed to start) under the filter.
struct Watched {
    exit_status: i32,
    start_failure: Option<StartFailure>,
    timed_out: bool,
    survivors: Vec<Survivor>,
    left: Vec<crate::bpf::LeftTask>,
    entries: Vec<(Arch, u32, u64)>,
    exits: Vec<(Arch, u32, u64)>,
    /// The capability checks after the command's exec; `None` when they are not counted.
    capabilities: Option<CapabilityChecks>,
}

/// Runs the command under `program` in a fresh target cgroup, bounded by `--timeout` and the
/// grace period for what it leaves running, and reads its entry and exit counts. A command
/// that cannot start under the filter is a result, not an error: its failure is kept, and the
/// counts say which call the filter refused.
fn run_watched(opts: &VerifyOptions, program: &SeccompProgram) -> Result<Watched, Error> {
    // Who made each call, and with which arguments, is not part of the verdict: count only.
    let counter = CounterOptions {
        attach: opts.attach,
        attribution: false,
        args: false,
        // Refusals are the exit counters' job here.
        refusals: false,
    };
    let kept = opts
        .capability_set
        .as_ref()
        .map(KeptCapabilities::prepare)
        .transpose()
        .map_err(|source| {
            Error::Spawn(SpawnError {
                command: opts.command.first().cloned().unwrap_or_default(),
                stage: StartStage::DropCapabilities,
                source,
            })
        })?
        .flatten();
    let mut session = CommandSession::prepare(&opts.command, PathBuf::new(), counter)?;
    session.counter.attach_exit_counter()?;
    crate::record::count_capability_checks(&mut session.counter);
    let limit = RunLimit {
        timeout: opts.timeout,
        grace: DESCENDANT_GRACE,
    };
    let start = Start {
        filter: Some(program),
        capabilities: kept.as_ref(),
    };
    let run = session.run_limited(&opts.command, start, opts.cwd.as_deref(), Some(limit));
    let (end, start_failure) = match run {
        Ok(end) if session.recording.execs.runs().is_empty() && end.exit_status > 128 => {
            // Killed before any exec completed in its cgroup: by the filter's action for the
            // exec itself (SCMP_ACT_KILL*), which leaves no errno to report.
            let failure = StartFailure::killed_at_exec(end.exit_status - 128);
            (end, Some(failure))
        }
        Ok(end) => (end, None),
        Err(Error::Spawn(e)) if e.stage != StartStage::JoinCgroup => {
            let end = crate::run::RunEnd {
                exit_status: i32::from(e.exit_code().0),
                timed_out: false,
                survivors: Vec::new(),
            };
            (end, Some(StartFailure::from(&e)))
        }
        Err(e) => return Err(e),
    };
    // What the launcher did between fork and exec is counted apart (before the first
    // completed exec). Only its exec is the command's: the filter may refuse it. Whatever
    // else it does there — joining the cgroup, installing the filter, and after a failed exec
    // ending itself, perhaps under a filter that refuses that too — is never the command's.
    let slot = session.recording.slot;
    let mut entries = session.counter.read(slot)?.syscalls;
    entries.extend(exec_rows(session.counter.read_runtime_init(slot)?.syscalls));
    let mut exits = session.counter.read_exits(slot)?.syscalls;
    exits.extend(exec_rows(session.counter.read_init_exits(slot)?.syscalls));
    let left = session.counter.departures(slot)?.tasks;
    let capabilities = session
        .counter
        .read_capability_checks(slot)?
        .map(|counts| CapabilityChecks::from_counts(&counts));
    session.counter.remove_target(slot)?;
    drop(session);
    Ok(Watched {
        exit_status: end.exit_status,
        start_failure,
        timed_out: end.timed_out,
        survivors: end.survivors,
        left,
        entries,
        exits,
        capabilities,
    })
}

/// runc adds rules one by one and gives up on the first one libseccomp refuses (an errno above
/// 4095, conflicting actions…): the container does not start, so `verify` does not run the
/// command either.
fn refuse_like_runc(skipped: &[Skipped], path: &Path) -> Result<(), VerifyError> {
    match skipped.iter().find_map(|s| match &s.reason {
        SkipReason::Refused(reason) => Some((s, reason)),
        _ => None,
    }) {
        Some((s, reason)) => Err(VerifyError::RuleRefused {
            path: path.to_path_buf(),
            rule: s.rule + 1,
            name: s.name.clone(),
            reason: reason.clone(),
        }),
        None => Ok(()),
    }
}

/// Names whose rule is not in the filter and whose calls therefore do not get the rule's
/// action. A rule equal to the default action is left out too (libseccomp refuses it), but its
/// names still get that action from the default, so it is not reported.
fn left_out_of_filter(skipped: &[Skipped]) -> Vec<String> {
    skipped
        .iter()
        .filter(|s| s.reason != SkipReason::SameAsDefault)
        .map(|s| s.name.clone())
        .collect()
}

/// The arches of the filter runc would install on this host (see [`ProfileArches::filtered`]).
fn profile_arches(profile: &SeccompProfile, path: &Path) -> Result<Vec<Arch>, VerifyError> {
    let arches = ProfileArches::resolve(profile);
    let unknown = |name: &str| VerifyError::UnknownArch {
        path: path.to_path_buf(),
        name: name.to_string(),
    };
    if let Some(name) = arches.unknown.first() {
        return Err(unknown(name));
    }
    // Only arches without a table (mips, s390x, …): no call of this host would pass the
    // filter's arch check.
    arches
        .filtered()
        .ok_or_else(|| unknown(arches.first_runtime_name.as_deref().unwrap_or_default()))
}

/// The `execve`/`execveat` rows of counts (of any arch).
fn exec_rows(counts: Vec<(Arch, u32, u64)>) -> impl Iterator<Item = (Arch, u32, u64)> {
    counts
        .into_iter()
        .filter(|&(arch, nr, _)| matches!(arch.syscall_name(nr), Some("execve" | "execveat")))
}

/// Marks `clone3` refusals the profile makes with ENOSYS: libc then uses `clone`.
fn mark_fallbacks(denied: &mut [Denied], profile: &SeccompProfile) {
    for d in denied
        .iter_mut()
        .filter(|d| d.name.as_deref() == Some("clone3"))
    {
        let outcome = crate::seccomp::evaluate::outcome(profile, "clone3", &[0; 6]);
        d.fallback = outcome.errno == u32::try_from(probes::ENOSYS).ok();
    }
}

/// Calls that exited more often than they entered: refused before `sys_enter`.
fn denied_calls(
    entries: &[(Arch, u32, u64)],
    exits: &[(Arch, u32, u64)],
    allowlist: Option<&Allowlist>,
) -> Vec<Denied> {
    let mut entered: BTreeMap<(Arch, u32), u64> = BTreeMap::new();
    for &(arch, nr, count) in entries {
        *entered.entry((arch, nr)).or_default() += count;
    }
    // An exec that switches ABI (a 64-bit shell starting a 32-bit program) enters through one
    // table and exits through the other: balance the exec family by name across arches.
    let is_exec =
        |arch: Arch, nr: u32| matches!(arch.syscall_name(nr), Some("execve" | "execveat"));
    let exec_total = |list: &[(Arch, u32, u64)]| -> u64 {
        list.iter()
            .filter(|&&(a, nr, _)| is_exec(a, nr))
            .map(|&(_, _, c)| c)
            .sum()
    };
    let mut exec_surplus = exec_total(exits).saturating_sub(exec_total(entries));
    let mut denied: Vec<Denied> = exits
        .iter()
        .filter_map(|&(arch, nr, exited)| {
            let mut count = exited.saturating_sub(entered.get(&(arch, nr)).copied().unwrap_or(0));
            if is_exec(arch, nr) {
                count = count.min(exec_surplus);
                exec_surplus -= count;
            }
            (count > 0).then(|| Denied {
                arch,
                name: arch.syscall_name(nr).map(str::to_owned),
                nr,
                count,
                fallback: false,
                refused_before: false,
                observed_in_allowlist: allowlist
                    .map(|l| l.syscalls.iter().any(|s| s.arch == arch && s.nr == nr)),
                errno: None,
            })
        })
        .collect();
    denied.sort_by(|a, b| b.count.cmp(&a.count).then(a.name.cmp(&b.name)));
    denied
}

impl VerifyReport {
    /// Writes the JSON result.
    fn write(&self, out: &Path) -> Result<(), VerifyError> {
        let mut json = serde_json::to_string_pretty(self).expect("report serializes");
        json.push('\n');
        fsutil::write_output(out, json.as_bytes())?;
        Ok(())
    }

    /// Human-readable summary.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = format!(
            "verify: {} under {}: command exited {}\n",
            self.command.join(" "),
            self.profile.display(),
            self.exit_status
        );
        if let Some(c) = &self.container {
            let _ = writeln!(s, "{}", c.describe());
        }
        if let Some(f) = &self.start_failure {
            let _ = writeln!(
                s,
                "the command did not start under the profile: {} failed: {}",
                f.stage, f.error
            );
        }
        self.write_unfinished(&mut s);
        if self.denied.is_empty() {
            s.push_str("no syscall was denied\n");
        } else {
            let _ = writeln!(s, "denied by the profile:");
            for d in &self.denied {
                let name = d.name.clone().unwrap_or_else(|| format!("#{}", d.nr));
                if d.fallback {
                    let _ = writeln!(
                        s,
                        "  {name} [{}] x{} (ENOSYS by design: libc falls back to clone, which \
                         the profile filters)",
                        d.arch, d.count
                    );
                    continue;
                }
                if d.refused_before {
                    let _ = writeln!(
                        s,
                        "  {name} [{}] x{} (the container's own seccomp configuration refuses it \
                         too: its recorded runs ran with it refused)",
                        d.arch, d.count
                    );
                    continue;
                }
                let seen = match d.observed_in_allowlist {
                    Some(true) => " (observed when recording: the profile dropped it)",
                    Some(false) => " (not in the allowlist)",
                    None => "",
                };
                let errno = d.errno.map(|e| format!(" (errno {e})")).unwrap_or_default();
                let _ = writeln!(s, "  {name} [{}] x{}{errno}{seen}", d.arch, d.count);
            }
        }
        self.write_probes(&mut s);
        self.write_capabilities(&mut s);
        if !self.not_in_filter.is_empty() {
            let _ = writeln!(
                s,
                "not in the filter (unknown to this libseccomp): {}",
                self.not_in_filter.join(", ")
            );
        }
        let _ = writeln!(s, "{}", if self.passed { "PASSED" } else { "FAILED" });
        s
    }

    /// The probes that did not get what they must, those that did, and those skipped.
    fn write_probes(&self, s: &mut String) {
        use std::fmt::Write as _;
        let mut working = 0;
        for p in &self.probes {
            if p.expect == probes::Expect::Works && p.ok {
                working += 1;
                continue;
            }
            if let Some(error) = &p.error {
                let _ = writeln!(
                    s,
                    "probe {:<34} ERROR: {error} (a failure of the probe, not the profile's \
                     answer)",
                    p.probe
                );
                continue;
            }
            if let Some(signal) = p.killed_by_signal {
                let _ = writeln!(
                    s,
                    "probe {:<34} {} (killed by signal {signal})",
                    p.probe,
                    if p.ok { "ok  " } else { "FAIL" },
                );
                continue;
            }
            let want = match p.expect {
                probes::Expect::Refused => {
                    format!("want {}; {} if allowed", p.expected_errno, p.if_allowed)
                }
                probes::Expect::Works => "must not be refused".into(),
            };
            let _ = writeln!(
                s,
                "probe {:<34} {} (got errno {}, {want})",
                p.probe,
                if p.ok { "ok  " } else { "FAIL" },
                p.errno,
            );
        }
        if working > 0 {
            let names: Vec<&str> = self
                .probes
                .iter()
                .filter(|p| p.expect == probes::Expect::Works && p.ok)
                .map(|p| p.probe.as_str())
                .collect();
            let _ = writeln!(s, "probes that must work, and do: {}", names.join(", "));
        }
        for p in &self.probes_skipped {
            let _ = writeln!(s, "probe {:<34} skipped: {}", p.probe, p.reason);
        }
    }

    /// The set the workload ran with, and its refused capability checks.
    fn write_capabilities(&self, s: &mut String) {
        use std::fmt::Write as _;
        if let Some(set) = &self.capability_set {
            let _ = writeln!(s, "capabilities: ran with {set}");
        }
        for c in &self.capabilities {
            let line = match c.finding {
                Some(CapabilityFindingKind::CapabilityRefused) => {
                    "REFUSED (capability-refused): granted in the recordings, never refused \
                     there: the set it ran with lacks it"
                }
                Some(CapabilityFindingKind::RefusedWhenRecorded) => {
                    "refused (refused in the recordings too: information)"
                }
                None => continue,
            };
            let _ = writeln!(
                s,
                "capability CAP_{} x{} {line}",
                c.capability, c.checks.refused
            );
        }
    }

    /// The processes that left the command's cgroup.
    fn write_left(&self, s: &mut String) {
        use std::fmt::Write as _;
        if self.left_cgroup.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "LEFT THE CGROUP: {} process(es) left the command's cgroup while it ran; nothing \
             they did afterwards was checked:",
            self.left_cgroup.len()
        );
        for p in &self.left_cgroup {
            let how = if p.born_outside {
                "started outside"
            } else {
                "moved"
            };
            let _ = write!(
                s,
                "  pid {} {} ({how} to cgroup id {})",
                p.pid, p.program, p.to_cgroup_id
            );
            if p.killed.is_empty() {
                let _ = writeln!(s, ", already ended");
                continue;
            }
            let _ = writeln!(s, ", killed:");
            for k in &p.killed {
                let _ = writeln!(s, "    pid {} {}", k.pid, k.command);
            }
        }
    }

    /// The timeout and the processes killed, when the run did not end by itself.
    fn write_unfinished(&self, s: &mut String) {
        use std::fmt::Write as _;
        if self.timed_out {
            let after = self
                .timeout_seconds
                .map(|t| format!(" after {t}s"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "TIMED OUT{after} (--timeout): what was still running was killed"
            );
        }
        if !self.survivors.is_empty() {
            let _ = writeln!(
                s,
                "LEFT RUNNING: {} process(es) the command started were still running {}; killed:",
                self.survivors.len(),
                if self.timed_out {
                    "at the timeout".to_string()
                } else {
                    format!("{}s after it exited", DESCENDANT_GRACE.as_secs_f64())
                }
            );
            for p in &self.survivors {
                let _ = writeln!(s, "  pid {} {}", p.pid, p.command);
            }
        }
        self.write_left(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_are_exits_without_entries() {
        let x = Arch::X86_64;
        let entries = [(x, 0, 10), (x, 231, 1), (x, 59, 1)];
        // read: 10 in, 10 out; exit_group: in, never out; execve: ok; mount: 3 out, 0 in.
        let exits = [(x, 0, 10), (x, 59, 1), (x, 165, 3)];
        let denied = denied_calls(&entries, &exits, None);
        assert_eq!(denied.len(), 1);
        assert_eq!(denied[0].name.as_deref(), Some("mount"));
        assert_eq!(denied[0].count, 3);
        assert_eq!(denied[0].observed_in_allowlist, None);
    }

    #[test]
    fn rules_equal_to_the_default_are_not_reported_as_left_out() {
        let p = SeccompProfile::parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
                "architectures":["SCMP_ARCH_X86_64"],
                "syscalls":[
                  {"names":["read","no_such_call_xyz"],"action":"SCMP_ACT_ALLOW"},
                  {"names":["ptrace","mount"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
                  {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
            Path::new("p"),
        )
        .unwrap();
        let compiled = compile::build_filter(&p, &[Arch::X86_64]).unwrap();
        // ptrace and mount are skipped as rules but denied by the default action.
        assert!(compiled
            .skipped
            .iter()
            .any(|s| s.name == "ptrace" && s.reason == SkipReason::SameAsDefault));
        assert_eq!(left_out_of_filter(&compiled.skipped), ["no_such_call_xyz"]);
    }

    #[test]
    fn a_rule_libseccomp_refuses_refuses_the_profile_as_runc_does() {
        // libseccomp refuses an errno above MAX_ERRNO (4095); runc then does not start the
        // container ("error adding seccomp filter rule for syscall syslog").
        let p = SeccompProfile::parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["read"],"action":"SCMP_ACT_ALLOW"},
                {"names":["syslog"],"action":"SCMP_ACT_ERRNO","errnoRet":12345}]}"#,
            Path::new("p"),
        )
        .unwrap();
        let compiled = compile::build_filter(&p, &[Arch::X86_64]).unwrap();
        let err = refuse_like_runc(&compiled.skipped, Path::new("p.json")).unwrap_err();
        assert!(
            matches!(&err, VerifyError::RuleRefused { rule: 2, name, .. } if name == "syslog"),
            "{err}"
        );
        assert_eq!(err.exit_code(), crate::exit::ExitCode::DATA);
        assert!(err.to_string().contains("runc would refuse"), "{err}");
    }

    #[test]
    fn an_exec_into_a_32_bit_program_is_not_a_denial() {
        // execve entered through the x86_64 table (nr 59) and returned in the i386 image
        // (nr 11): balanced by name, nothing was denied.
        let entries = [(Arch::X86_64, 59, 1), (Arch::X86, 20, 3)];
        let exits = [(Arch::X86, 11, 1), (Arch::X86, 20, 3)];
        assert!(denied_calls(&entries, &exits, None).is_empty());
        // A refused exec is still reported.
        let exits = [
            (Arch::X86, 11, 1),
            (Arch::X86_64, 59, 1),
            (Arch::X86, 20, 3),
        ];
        let denied = denied_calls(&entries, &exits, None);
        assert_eq!(denied.len(), 1);
        assert_eq!(denied[0].name.as_deref(), Some("execve"));
    }

    #[test]
    fn arches_come_from_the_profile() {
        let p = SeccompProfile::parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],"syscalls":[]}"#,
            Path::new("p"),
        )
        .unwrap();
        assert_eq!(
            profile_arches(&p, Path::new("p")).unwrap(),
            vec![Arch::X86_64, Arch::X86]
        );
        let p = SeccompProfile::parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_PPC64LE"],"syscalls":[]}"#,
            Path::new("p"),
        )
        .unwrap();
        assert!(profile_arches(&p, Path::new("p")).is_err());
        // Docker's default lists mips, s390x, …: those are left out, the host's kept.
        let p = SeccompProfile::parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_S390X"],"syscalls":[]}"#,
            Path::new("p"),
        )
        .unwrap();
        assert_eq!(
            profile_arches(&p, Path::new("p")).unwrap(),
            vec![Arch::X86_64]
        );
    }
}
