//! `verify` of a Docker container (the last step of `audit --container NAME`): the container
//! runs once more under the profile and every syscall the profile refused is reported, as for
//! a command.
//!
//! The named container is not started itself (its own configuration has no profile, or
//! another): a new container is created from its configuration, as the engine's inspect output
//! gives it (the image it was created from, command, entrypoint, environment, user, working
//! directory, mounts, capabilities added and dropped, network mode, resource limits, …), with
//! `seccomp=<profile>` among its security options and no restart policy. Its cgroup is counted
//! from its first syscall, exactly as `record --wait` counts a container's, with the exit
//! counter on: a call the filter refused exits without entering. The verify container is
//! removed afterwards, with its anonymous volumes.
//!
//! The dangerous-syscall probes are a program of ours; they cannot run inside the user's image.
//! They run on the host, as for a command, under the same profile as Docker evaluates it for
//! the container's capability set; the result says so.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::capabilities;
use super::source::{create_body, SeccompOption, SourceContainer};
use super::{
    denied_calls, mark_fallbacks, probes, Denied, Filter, StartFailure, VerifyError, VerifyReport,
    VERIFY_SCHEMA_V1,
};
use crate::bpf::{AttachMode, CounterOptions, SyscallCounter, TargetSlot};
use crate::capabilities::CapabilityChecks;
use crate::cgroup::CgroupV2Mount;
use crate::engine::{Engine, EngineError, EngineKind, EngineSocket};
use crate::exit::ExitCode;
use crate::fsutil;
use crate::refusals::RecordedRefusals;
use crate::run::StartStage;
use crate::seccomp::container::{CapabilityLists, ContainerContext};
use crate::seccomp::spo::SpoObject;
use crate::seccomp::{ProfileFileError, SeccompProfile};
use crate::shell::status;
use crate::syscalls::Arch;
use crate::watch::{CgroupGlob, MkdirEvents};
use crate::Error;

/// Exit status recorded when the container did not start: `docker run`'s for a container
/// the engine could not start (and [`crate::run::SpawnError`]'s for that stage).
const NOT_STARTED: i32 = 125;
/// Lines of the verify container's output shown when it failed.
const LOG_LINES_ON_FAILURE: usize = 20;

/// Options of a container's verify run.
#[derive(Clone, Debug)]
pub struct ContainerVerifyOptions {
    /// The profile to enforce.
    pub profile: PathBuf,
    /// Where to write the JSON result.
    pub out: Option<PathBuf>,
    /// The container whose configuration is run again.
    pub name: String,
    /// Attach type.
    pub attach: AttachMode,
    /// How long the copy may run before it is killed and the verification fails as timed out.
    pub timeout: Duration,
    /// The engine that runs the container.
    pub engine: EngineSocket,
    /// Recordings of the container: the must-work probes ask only for what they show.
    pub recordings: Vec<PathBuf>,
    /// Run the copy with these `CapDrop`/`CapAdd` (`capabilities.json`'s: every capability
    /// dropped but the minimal set); `None`: with the container's own.
    pub capabilities: Option<CapabilityLists>,
}

/// What was run, in the JSON result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRun {
    /// The container audited.
    pub container: String,
    /// The container created from its configuration for this run (removed since).
    pub verify_container: String,
    /// Its image, as the audited container names it.
    pub image: String,
    /// Its capability set, which decides the profile's conditional rules.
    pub capabilities: String,
    /// Where the dangerous-syscall probes ran.
    pub probes: ProbeSite,
    /// When the profile refused calls and the recordings did not count refusals: the copy
    /// run once more under the container's own seccomp configuration, to tell which of them
    /// it refuses too (removed since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_container: Option<String>,
    /// When the profile refused calls: which of them the container's own seccomp
    /// configuration refused too was read from the recordings' refusal counts (every
    /// recording counted them), without another run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused_before_from_recordings: bool,
}

/// Where the dangerous-syscall probes ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeSite {
    /// On the host, under the profile as Docker evaluates it for the container's
    /// capabilities: the probe program is not in the container's image.
    HostWithContainerCapabilities,
}

impl ContainerRun {
    /// One sentence for the text output and the report.
    pub fn describe(&self) -> String {
        let site = match self.probes {
            ProbeSite::HostWithContainerCapabilities => format!(
                "container {} ran once more as {} (image {}) under the profile; the \
                 dangerous-syscall probes ran on the host under the same profile with the \
                 container's capabilities ({}), not inside the container",
                self.container, self.verify_container, self.image, self.capabilities
            ),
        };
        match &self.baseline_container {
            Some(name) => format!(
                "{site}; {name}, a copy under the container's own seccomp configuration, showed \
                 which refusals the recorded runs had too"
            ),
            None if self.refused_before_from_recordings => format!(
                "{site}; the recordings' counts of what the container's own seccomp \
                 configuration refused showed which refusals the recorded runs had too"
            ),
            None => site,
        }
    }
}

/// Why a container cannot be verified.
#[derive(Debug, thiserror::Error)]
pub enum ContainerVerifyError {
    /// The engine API failed a request.
    #[error("engine API: {0}")]
    Engine(#[source] io::Error),
    /// No engine answers, or it cannot say where its containers' cgroups appear.
    #[error(transparent)]
    Connect(#[from] EngineError),
    /// The engine does not know the container.
    #[error("no container named {name:?} ({engine} at {socket})")]
    NotFound {
        /// The name given.
        name: String,
        /// The engine asked.
        engine: EngineKind,
        /// Its socket.
        socket: PathBuf,
    },
    /// The profile could not be handed to Podman, which reads it from a file.
    #[error("cannot write the profile for Podman to read: {0}")]
    ProfileFile(#[source] io::Error),
    /// Docker runs a privileged container without any seccomp filter.
    #[error(
        "container {0:?} is privileged: Docker applies no seccomp profile to a privileged \
         container, so the profile could be neither enforced on it nor verified; audit a \
         container created without --privileged"
    )]
    Privileged(String),
    /// The container's capability lists are not capability names.
    #[error("container {name:?}: {detail}")]
    Capabilities {
        /// The container.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// The engine refused to create the verify container from the configuration.
    #[error(
        "the engine refused to create {name:?} from {source_name:?}'s configuration: {source}"
    )]
    Create {
        /// The verify container's name.
        name: String,
        /// The container audited.
        source_name: String,
        /// The engine's answer.
        source: io::Error,
    },
    /// Watching the engine's cgroups for the new container failed.
    #[error("cannot watch {dir} for the verify container's cgroup: {source}")]
    Watch {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl ContainerVerifyError {
    /// The documented exit code: 66 for an unknown container, 2 for a privileged one, 65 for
    /// capability lists that are not names, 69 when the engine or the host cannot do its part.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::NotFound { .. } => ExitCode::NO_INPUT,
            Self::Privileged(_) => ExitCode::USAGE,
            Self::Capabilities { .. } => ExitCode::DATA,
            Self::Connect(e) => e.exit_code(),
            Self::Engine(_) | Self::Create { .. } | Self::Watch { .. } | Self::ProfileFile(_) => {
                ExitCode::UNAVAILABLE
            }
        }
    }
}

impl From<ContainerVerifyError> for Error {
    fn from(e: ContainerVerifyError) -> Self {
        Error::Verify(e.into())
    }
}

/// The verify container, removed (with its anonymous volumes) when dropped.
struct VerifyContainer<'a> {
    engine: &'a Engine,
    name: String,
    id: String,
}

impl Drop for VerifyContainer<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.engine.remove(&self.id) {
            status!(
                "agent-audit: warning: could not remove the verify container {}: {e} (remove it \
                 with `{} rm -f {}`)",
                self.name,
                self.engine.kind(),
                self.name
            );
        }
    }
}

/// New cgroups below the verify container's cgroup parent (asked of its engine), counted from
/// their first syscall; all but the verify container's own are excluded as they appear.
struct CgroupWatch {
    counter: SyscallCounter,
    mount: CgroupV2Mount,
    glob: CgroupGlob,
    events: MkdirEvents,
    ours: Option<TargetSlot>,
}

impl CgroupWatch {
    fn arm(attach: AttachMode, engine: &Engine, container_id: &str) -> Result<Self, Error> {
        crate::privileges::check_bpf_privileges()?;
        let mount = CgroupV2Mount::discover()?;
        // The copy exists: its cgroup's exact path, and so its parent, is known.
        let place = engine
            .container_cgroup(container_id)
            .map_err(ContainerVerifyError::from)?;
        let glob = CgroupGlob::parse_runtime_layout(&mount, &place.pattern)?;
        // Which call was refused is the verdict; who made it, and its arguments, are not.
        let mut counter = SyscallCounter::load_counting_exits(CounterOptions {
            attach,
            attribution: false,
            args: false,
            // Refusals are the exit counters' job here.
            refusals: false,
        })?;
        counter.attach_exit_counter()?;
        crate::record::count_capability_checks(&mut counter);
        // Names are collected from before the parent is armed, so that every cgroup the
        // kernel program may claim has been seen created.
        let events = MkdirEvents::new(&[glob.parent.dir.as_path()]).map_err(|source| {
            ContainerVerifyError::Watch {
                dir: glob.parent.dir.clone(),
                source,
            }
        })?;
        for child in glob.existing_children(&mount) {
            counter.exclude_cgroup(child.id)?;
        }
        counter.watch_parent(glob.parent.id)?;
        Ok(Self {
            counter,
            mount,
            glob,
            events,
            ours: None,
        })
    }

    fn name_of(&mut self, id: u64) -> Option<String> {
        if let Some((_, name)) = self.events.name_of(id) {
            return Some(name);
        }
        let child = self.glob.child_by_id(&self.mount, id)?;
        Some(child.dir.file_name()?.to_string_lossy().into_owned())
    }

    /// Takes up what the kernel program claimed since the last call: the verify container's
    /// cgroup (the glob names it exactly) is kept, any other is excluded.
    fn update(&mut self) -> Result<(), Error> {
        self.events
            .read_pending()
            .map_err(|source| ContainerVerifyError::Watch {
                dir: self.glob.parent.dir.clone(),
                source,
            })?;
        for id in self.events.take_new() {
            let theirs = self
                .name_of(id)
                .is_some_and(|n| !self.glob.matches_child(&n));
            if theirs {
                self.counter.exclude_unclaimed(id)?;
            }
        }
        for (id, slot) in self.counter.claimed_targets()? {
            let ours = self.ours.is_none()
                && self
                    .name_of(id)
                    .is_some_and(|n| self.glob.matches_child(&n));
            if ours {
                self.ours = Some(slot);
            } else {
                self.counter.exclude_claimed(slot)?;
            }
        }
        Ok(())
    }

    /// The verify container's capability checks after the runtime's init.
    fn capability_checks(&self) -> Result<Option<CapabilityChecks>, Error> {
        let Some(slot) = self.ours else {
            return Ok(None);
        };
        Ok(self
            .counter
            .read_capability_checks(slot)?
            .map(|counts| CapabilityChecks::from_counts(&counts)))
    }

    /// The verify container's entries and exits after the runtime's init: see
    /// [`workload_counts`].
    fn counts(&self) -> Result<Counts, Error> {
        let Some(slot) = self.ours else {
            return Ok(Counts::default());
        };
        Ok(workload_counts(
            self.counter.read(slot)?.syscalls,
            self.counter.read_exits(slot)?.syscalls,
            &self.counter.read_runtime_init(slot)?.syscalls,
            &self.counter.read_init_exits(slot)?.syscalls,
        ))
    }
}

/// Entries and exits of the workload phase, where a refusal is the profile's verdict on the
/// workload. The runtime's init is left out: the runtime moves its init into the cgroup while
/// that init is inside a syscall (a `read` on its sync pipe, at times a lazy `umount2`), which
/// then exits there without having entered; and a refusal during the init fails the start,
/// which is reported as such. The calls that enter during the init and exit in the workload
/// phase are those under way when the init phase ended (the exec that ended it): per call,
/// the init's entries without an init exit; they count as workload entries.
fn workload_counts(
    mut entries: Vec<(Arch, u32, u64)>,
    exits: Vec<(Arch, u32, u64)>,
    init_entries: &[(Arch, u32, u64)],
    init_exits: &[(Arch, u32, u64)],
) -> Counts {
    // `denied_calls` gives, per call, how many more exits than entries it saw; with the
    // arguments swapped, how many more entries than exits.
    let mut execs_under_way = 0;
    for under_way in denied_calls(init_exits, init_entries, None) {
        if is_exec(under_way.arch, under_way.nr) {
            execs_under_way += under_way.count;
        }
        entries.push((under_way.arch, under_way.nr, under_way.count));
    }
    // The exec that ended the init entered during it and exits in the workload phase, always.
    // Per-call sums can hide it: when the runtime moved its init into the cgroup while that
    // init was inside an earlier exec (its own re-exec, slow on a loaded host), that exec's
    // exit without an entry cancels the last exec's entry without an exit.
    let exec_exits_after = exits.iter().any(|&(arch, nr, _)| is_exec(arch, nr));
    if execs_under_way == 0 && exec_exits_after {
        if let Some(&(arch, nr, _)) = init_entries.iter().find(|&&(a, n, _)| is_exec(a, n)) {
            entries.push((arch, nr, 1));
        }
    }
    for joined in denied_calls(init_entries, init_exits, None) {
        tracing::info!(
            arch = ?joined.arch,
            nr = joined.nr,
            count = joined.count,
            "runtime init: exits without entries (under way at the cgroup join)"
        );
    }
    Counts { entries, exits }
}

/// Whether `nr` is an exec on `arch` (the calls that end the runtime's init).
fn is_exec(arch: Arch, nr: u32) -> bool {
    matches!(arch.syscall_name(nr), Some("execve" | "execveat"))
}

#[derive(Default)]
struct Counts {
    entries: Vec<(Arch, u32, u64)>,
    exits: Vec<(Arch, u32, u64)>,
}

/// How long a killed copy may take to be reported exited.
const KILL_GRACE: Duration = Duration::from_secs(30);

/// How the verify container's one run went.
struct Ran {
    exit_status: i32,
    start_failure: Option<StartFailure>,
    /// It ran past the timeout and was killed.
    timed_out: bool,
    counts: Counts,
    /// Its capability checks after the runtime's init; `None` when they are not counted.
    capabilities: Option<CapabilityChecks>,
}

/// Runs the audited container's configuration once more under the profile and returns the
/// verdict, written to `opts.out` as `verify` writes it.
pub fn verify_container(opts: &ContainerVerifyOptions) -> Result<VerifyReport, Error> {
    if let Some(out) = &opts.out {
        fsutil::check_distinct(&[opts.profile.as_path()], &[out])?;
        fsutil::check_output(out)?;
    }
    let source = SourceContainer::inspect(&opts.name, &opts.engine)?;
    let source = match &opts.capabilities {
        Some(lists) => source.with_capabilities(lists)?,
        None => source,
    };
    let text = fsutil::read_input(&opts.profile)
        .map_err(|e| VerifyError::from(ProfileFileError::from(e)))?;
    let declared = SeccompProfile::parse(&text, &opts.profile).map_err(VerifyError::from)?;
    // The engines take the OCI form; a Kubernetes SeccompProfile object is handed over as such.
    let profile_json = if SpoObject::sniff(&text) {
        serde_json::to_string(&declared).expect("a profile serializes")
    } else {
        text
    };
    let seccomp = SeccompOption::for_engine(source.engine.kind(), profile_json)?;
    let context = ContainerContext::on_this_host(source.caps.clone());
    let profile = context.effective(&declared);
    let filter = Filter::build(&profile, &opts.profile)?;

    let run_name = format!("{}-agent-audit-verify-{}", source.name, std::process::id());
    let ran = run_once(
        &source,
        &run_name,
        Some(&seccomp.value()),
        opts.attach,
        opts.timeout,
    )?;

    let mut denied = denied_calls(&ran.counts.entries, &ran.counts.exits, None);
    mark_fallbacks(&mut denied, &profile);
    let lists = super::read_recordings(&opts.recordings)?;
    let mut baseline = None;
    let mut from_recordings = false;
    if !denied.iter().all(Denied::expected) {
        match RecordedRefusals::from_recordings(&lists) {
            Some(recorded) => {
                for d in denied.iter_mut().filter(|d| !d.expected()) {
                    d.refused_before = recorded.contains(d.arch, d.nr);
                }
                from_recordings = true;
            }
            None => {
                baseline = Some(mark_refused_before(
                    &source,
                    &mut denied,
                    opts.attach,
                    opts.timeout,
                )?)
            }
        }
    }
    let evidence = probes::Evidence::from_allowlists(&lists);
    let plan = probes::plan(&profile, evidence.as_ref());
    let probes = probes::run(&filter.program, &profile, &plan).map_err(VerifyError::Probes)?;
    let capabilities = ran
        .capabilities
        .as_ref()
        .map(|checks| capabilities::compare(checks, &capabilities::recorded_sections(&lists)))
        .unwrap_or_default();
    let passed = ran.start_failure.is_none()
        && !capabilities::any_fails(&capabilities)
        && !ran.timed_out
        && ran.exit_status == 0
        && denied.iter().all(Denied::expected)
        && probes::all_answered_right(&probes);
    let report = VerifyReport {
        schema: VERIFY_SCHEMA_V1,
        profile: opts.profile.clone(),
        command: source.argv(),
        exit_status: ran.exit_status,
        start_failure: ran.start_failure,
        timeout_seconds: Some(opts.timeout.as_secs_f64()),
        timed_out: ran.timed_out,
        survivors: Vec::new(),
        left_cgroup: Vec::new(),
        denied,
        probes,
        probes_skipped: plan.skipped,
        not_in_filter: filter.not_in_filter,
        passed,
        capability_set: None,
        capabilities,
        container: Some(ContainerRun {
            container: source.name.clone(),
            verify_container: run_name,
            image: source.image(),
            capabilities: source.caps.to_string(),
            probes: ProbeSite::HostWithContainerCapabilities,
            baseline_container: baseline,
            refused_before_from_recordings: from_recordings,
        }),
    };
    if let Some(out) = &opts.out {
        report.write(out)?;
    }
    Ok(report)
}

/// Calls the container's own seccomp configuration (Docker's default profile unless it names
/// another) refuses never reach `sys_enter` when it is recorded, so no profile made from the
/// recordings allows them; the profile refusing them as well changes nothing the recorded runs
/// saw. A run of the copy under that configuration tells them apart from calls only the
/// profile refuses. Returns the name of that run's container.
fn mark_refused_before(
    source: &SourceContainer,
    denied: &mut [Denied],
    attach: AttachMode,
    timeout: Duration,
) -> Result<String, Error> {
    let name = format!(
        "{}-agent-audit-baseline-{}",
        source.name,
        std::process::id()
    );
    status!(
        "agent-audit: the profile refused calls: running {name}, a copy under the container's \
         own seccomp configuration, to see which of them it refuses too"
    );
    let ran = run_once(source, &name, None, attach, timeout)?;
    let before = denied_calls(&ran.counts.entries, &ran.counts.exits, None);
    for d in denied.iter_mut().filter(|d| !d.expected()) {
        d.refused_before = before.iter().any(|b| b.arch == d.arch && b.nr == d.nr);
    }
    Ok(name)
}

/// Creates a copy of the container (under the `seccomp` option, or its own seccomp configuration
/// when `None`), counts it from its first syscall to its exit, removes it.
fn run_once(
    source: &SourceContainer,
    run_name: &str,
    seccomp: Option<&str>,
    attach: AttachMode,
    timeout: Duration,
) -> Result<Ran, Error> {
    let body = create_body(source, seccomp);
    let id = source
        .engine
        .create(run_name, &body)
        .map_err(|e| ContainerVerifyError::Create {
            name: run_name.to_string(),
            source_name: source.name.clone(),
            source: e,
        })?;
    let container = VerifyContainer {
        engine: &source.engine,
        name: run_name.to_string(),
        id,
    };
    let mut watch = CgroupWatch::arm(attach, &source.engine, &container.id)?;
    let mut timed_out = false;
    let (exit_status, start_failure) = match source.engine.start(&container.id) {
        Ok(()) => {
            watch.update()?;
            let status = match source.engine.wait(&container.id, Some(timeout)) {
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    timed_out = true;
                    status!(
                        "agent-audit: {run_name} still ran after {:.1} s: killing it",
                        timeout.as_secs_f64()
                    );
                    let engine = &source.engine;
                    engine
                        .kill(&container.id)
                        .and_then(|()| engine.wait(&container.id, Some(KILL_GRACE)))
                }
                other => other,
            }
            .map_err(ContainerVerifyError::Engine)?;
            (i32::try_from(status).unwrap_or(i32::MAX), None)
        }
        Err(e) => (
            NOT_STARTED,
            Some(StartFailure {
                stage: StartStage::ContainerStart,
                errno: None,
                error: e.to_string(),
            }),
        ),
    };
    watch.update()?;
    let counts = watch.counts()?;
    let capabilities = watch.capability_checks()?;
    if exit_status != 0 {
        show_output(source, &container);
    }
    Ok(Ran {
        exit_status,
        start_failure,
        timed_out,
        counts,
        capabilities,
    })
}

/// The end of a failed verify container's output, on stderr: why it failed is often there.
fn show_output(source: &SourceContainer, container: &VerifyContainer<'_>) {
    match source.engine.logs_tail(&container.id, LOG_LINES_ON_FAILURE) {
        Ok(text) if !text.trim().is_empty() => {
            status!(
                "agent-audit: the last lines {} wrote under the profile:",
                container.name
            );
            for line in text.lines() {
                status!("  | {line}");
            }
        }
        Ok(_) => {}
        Err(e) => status!("agent-audit: cannot read {}'s output: {e}", container.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_phase_is_left_out_but_the_exec_that_ends_it_is_balanced() {
        let x = Arch::X86_64;
        let counts = workload_counts(
            vec![(x, 0, 5), (x, 59, 2)],
            // execve: the one that ended the init and a later one; openat: one refusal.
            vec![(x, 0, 5), (x, 59, 3), (x, 257, 1)],
            // The init: reads, a lazy umount2, the exec that ended it.
            &[(x, 0, 3), (x, 166, 1), (x, 59, 1)],
            // A read and a umount2 under way at the cgroup join exit without entries there.
            &[(x, 0, 4), (x, 166, 2)],
        );
        let denied = denied_calls(&counts.entries, &counts.exits, None);
        let refused: Vec<(u32, u64)> = denied.iter().map(|d| (d.nr, d.count)).collect();
        assert_eq!(refused, [(257, 1)]);
    }

    #[test]
    fn the_exec_that_ends_the_init_is_under_way_even_when_a_joined_exec_cancels_it() {
        let x = Arch::X86_64;
        let counts = workload_counts(
            vec![(x, 0, 5)],
            // execve: the exit of the exec that ended the init.
            vec![(x, 0, 5), (x, 59, 1)],
            // The init: reads and the exec that ended it.
            &[(x, 0, 3), (x, 59, 1)],
            // An earlier exec, under way when the runtime moved the init into the cgroup, exits
            // there without an entry: per call, execve's entries and exits in the init are even.
            &[(x, 0, 3), (x, 59, 1)],
        );
        let denied = denied_calls(&counts.entries, &counts.exits, None);
        assert!(denied.is_empty(), "{denied:?}");
        // A refused exec in the workload is still a denial.
        let counts = workload_counts(
            vec![(x, 0, 5)],
            vec![(x, 0, 5), (x, 59, 2)],
            &[(x, 0, 3), (x, 59, 1)],
            &[(x, 0, 3), (x, 59, 1)],
        );
        let denied = denied_calls(&counts.entries, &counts.exits, None);
        let refused: Vec<(u32, u64)> = denied.iter().map(|d| (d.nr, d.count)).collect();
        assert_eq!(refused, [(59, 1)]);
    }
}
