//! `agent-audit record`: the daemon that watches one or more existing cgroups and keeps each
//! one's allowlist file current until the target goes away, a signal arrives, or time is up.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use crate::bpf::{CounterOptions, SyscallCounter};
use crate::cgroup::Cgroup;
use crate::cgroup::CgroupV2Mount;
use crate::container;
use crate::fsutil;
use crate::privileges;
use crate::progress::ProgressLine;
use crate::recording::Recording;
use crate::target::{CgroupTarget, TargetError, TargetSpec};
use crate::watch::{CgroupGlob, MkdirEvents};
use crate::Error;

/// How often target cgroups are checked for removal and the progress line redrawn.
const POLL: Duration = Duration::from_millis(200);

/// Where allowlists go.
#[derive(Clone, Debug)]
pub enum OutputSpec {
    /// One file (only with one target).
    File(PathBuf),
    /// A directory: one `<label>.allowlist.json` per target.
    Dir(PathBuf),
}

/// Options of `record`.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    /// What to watch.
    pub targets: Vec<TargetSpec>,
    /// `--cgroup-glob` patterns: matching cgroups that exist now are targets.
    pub globs: Vec<String>,
    /// Also pick up cgroups matching `globs` as they are created, from their first syscall;
    /// stop once every target picked up is gone.
    pub wait: bool,
    /// Where to write.
    pub output: OutputSpec,
    /// Snapshot period.
    pub interval: Duration,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// How the kernel program is loaded.
    pub counter: CounterOptions,
}

/// Why recording stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Every target cgroup was removed.
    TargetsGone,
    /// SIGINT or SIGTERM.
    Signal,
    /// `--duration` elapsed.
    Duration,
}

/// Runs the daemon to completion; every target's final file is written before it returns.
pub fn record(opts: RecordOptions) -> Result<StopReason, Error> {
    // Everything that can be checked without the kernel is checked first, so a typo never
    // costs a half-started recording.
    let plan = plan_outputs(&opts)?;
    privileges::check_bpf_privileges()?;
    // Signal handlers go in before anything is attached, so that a SIGTERM arriving at any
    // point after this still ends with the final files written.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Io)?;
    let _enter = runtime.enter();
    let signals = StopSignals::install()?;
    let mount = CgroupV2Mount::discover()?;
    let mut targets = Vec::new();
    let mut watches = Vec::new();
    for spec in &opts.targets {
        match (CgroupTarget::resolve(&mount, spec), spec) {
            (Ok(t), _) => targets.push(t),
            // A container that does not run yet is exactly what --wait is for.
            (Err(TargetError::Container(_)), TargetSpec::Container(name)) if opts.wait => {
                let pattern = container::docker_cgroup_pattern().map_err(TargetError::from)?;
                watches.push(Watch {
                    glob: CgroupGlob::parse(&mount, &pattern)?,
                    container: Some(name.clone()),
                });
            }
            (Err(e), _) => return Err(e.into()),
        }
    }
    for pattern in &opts.globs {
        let glob = CgroupGlob::parse(&mount, pattern)?;
        targets.extend(
            glob.existing(&mount)
                .into_iter()
                .map(|c| CgroupTarget::for_glob(c, &glob.pattern)),
        );
        watches.push(Watch {
            glob,
            container: None,
        });
    }
    warn_if_recording_self(&mount, &targets);
    if targets.is_empty() && !opts.wait {
        return Err(Error::Usage(format!(
            "no cgroup matches {}; add --wait to record the next ones created",
            opts.globs.join(", ")
        )));
    }

    let mut counter = SyscallCounter::load(opts.counter)?;
    let mut outputs = plan;
    let mut active = Vec::new();
    for target in targets {
        let out = outputs.next_path(&target)?;
        active.push(Recording::start(&mut counter, target, out)?);
    }
    let waiting = if opts.wait {
        // Names are collected from before the parents are armed, so that every cgroup the
        // kernel program may claim has been seen created.
        let parents: Vec<&std::path::Path> = watches
            .iter()
            .map(|w| w.glob.parent.dir.as_path())
            .collect();
        let events = MkdirEvents::new(&parents).map_err(Error::Io)?;
        let mut excluded = Vec::new();
        for glob in watches.iter().map(|w| &w.glob) {
            // Existing siblings that are not targets must not be claimed when their tasks
            // next resolve their cgroup; exclude them before arming the parent.
            for child in glob.existing_children(&mount) {
                if !active.iter().any(|r| r.target.cgroup.id == child.id) {
                    counter.exclude_cgroup(child.id)?;
                    excluded.push((child.id, child.dir));
                }
            }
            counter.watch_parent(glob.parent.id)?;
        }
        Some(Waiting {
            mount,
            watches,
            outputs,
            events,
            excluded,
            picked_up: 0,
        })
    } else {
        None
    };
    // Scripts wait for this line (or the first snapshot) before starting the workload.
    eprintln!(
        "agent-audit: recording {} target(s) via {}{}",
        active.len(),
        counter.attach_kind(),
        match &waiting {
            Some(w) => format!(
                "; armed for new cgroups matching {}",
                w.watches
                    .iter()
                    .map(|x| match &x.container {
                        Some(name) => format!("container {name} ({})", x.glob.pattern),
                        None => x.glob.pattern.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => String::new(),
        }
    );
    runtime.block_on(watch(&mut counter, active, waiting, signals, &opts))
}

/// SIGINT and SIGTERM, caught from the start.
struct StopSignals {
    sigint: tokio::signal::unix::Signal,
    sigterm: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Must run inside the runtime.
    fn install() -> Result<Self, Error> {
        Ok(Self {
            sigint: signal(SignalKind::interrupt()).map_err(Error::Io)?,
            sigterm: signal(SignalKind::terminate()).map_err(Error::Io)?,
        })
    }
}

/// A target at or above agent-audit's own cgroup (for example `--pid` of a process in the root
/// cgroup) counts agent-audit's own syscalls too: say so rather than refuse, since recording
/// a whole host is sometimes what is wanted.
fn warn_if_recording_self(mount: &CgroupV2Mount, targets: &[CgroupTarget]) {
    let Ok(own) = mount.resolve_pid(std::process::id()) else {
        return;
    };
    for t in targets {
        let rel = t.cgroup.rel.trim_end_matches('/');
        if own.rel == t.cgroup.rel || own.rel.starts_with(&format!("{rel}/")) {
            eprintln!(
                "agent-audit: warning: target {} ({}) contains agent-audit itself: its own \
                 syscalls will be counted too",
                t.info.spec, t.cgroup.rel
            );
        }
    }
}

/// A parent cgroup armed by `--wait`, and which of its new children to keep.
struct Watch {
    /// The parent and the children's name pattern.
    glob: CgroupGlob,
    /// Only the child that is this Docker container (by name), when set.
    container: Option<String>,
}

impl Watch {
    /// The target for child `name` of `parent`, if this watch wants it.
    fn target_for(&self, parent: &std::path::Path, name: &str, id: u64) -> Option<CgroupTarget> {
        let g = &self.glob;
        if g.parent.dir != parent || !g.matches_child(name) {
            return None;
        }
        let cgroup = Cgroup {
            dir: parent.join(name),
            rel: format!("{}/{name}", g.parent.rel.trim_end_matches('/')),
            id,
        };
        match &self.container {
            None => Some(CgroupTarget::for_glob(cgroup, &g.pattern)),
            Some(wanted) => {
                // The container exists (created, maybe not started) once its cgroup does.
                let info = container::docker_container(wanted)?;
                (!info.id.is_empty() && name.contains(&info.id))
                    .then(|| CgroupTarget::for_container(cgroup, wanted, info))
            }
        }
    }
}

/// State of `--wait`: what to match new cgroups against and where their files go.
struct Waiting {
    mount: CgroupV2Mount,
    watches: Vec<Watch>,
    outputs: OutputPlan,
    /// Names of the children created since arming, by id.
    events: MkdirEvents,
    /// Claimed children that matched nothing: (cgroup id, directory), forgotten once gone.
    excluded: Vec<(u64, PathBuf)>,
    picked_up: usize,
}

impl Waiting {
    /// Turns the cgroups the kernel program claimed into recordings or exclusions.
    fn adopt_claimed(
        &mut self,
        counter: &mut SyscallCounter,
        active: &mut Vec<Recording>,
    ) -> Result<(), Error> {
        counter.refill_pool()?;
        let claimed = counter.claimed_targets()?;
        if !claimed.is_empty() {
            // A cgroup's mkdir event is queued before any of its tasks can make the syscall
            // that claimed it, but may not have been read yet.
            self.events.read_pending().map_err(Error::Io)?;
        }
        for (id, slot) in claimed {
            // The cgroup may already be gone (a short-lived container): its name is known
            // from the moment its event was read. If the event was read too late to see the
            // directory, the directory itself may still be there.
            if self.events.name_of(id).is_none() {
                let found = self.watches.iter().find_map(|w| {
                    let child = w.glob.child_by_id(&self.mount, id)?;
                    let name = child.dir.file_name()?.to_string_lossy().into_owned();
                    Some((w.glob.parent.dir.clone(), name))
                });
                if let Some((parent, name)) = found {
                    self.events.remember(id, parent, name);
                }
            }
            tracing::debug!(id, ?slot, name = ?self.events.name_of(id), "kernel program claimed a cgroup");
            let target = self.events.name_of(id).and_then(|(parent, name)| {
                self.watches
                    .iter()
                    .find_map(|w| w.target_for(&parent, &name, id))
            });
            let Some(target) = target else {
                match self.events.name_of(id) {
                    Some((parent, name)) => self.excluded.push((id, parent.join(name))),
                    None => {
                        if let Ok(c) = self.mount.resolve_id(id) {
                            self.excluded.push((id, c.dir));
                        }
                    }
                }
                counter.exclude_claimed(slot)?;
                continue;
            };
            match self.outputs.next_path(&target) {
                Ok(out) => {
                    tracing::info!(cgroup = %target.cgroup.rel, "picked up new cgroup");
                    active.push(Recording::adopt(target, slot, out));
                    self.picked_up += 1;
                }
                Err(e) => {
                    tracing::warn!("{e}; not recording {}", target.cgroup.rel);
                    self.excluded.push((id, target.cgroup.dir.clone()));
                    counter.exclude_claimed(slot)?;
                }
            }
        }
        let (gone, kept): (Vec<_>, Vec<_>) =
            self.excluded.drain(..).partition(|(_, dir)| !dir.exists());
        self.excluded = kept;
        for (id, _) in gone {
            counter.forget_cgroup(id)?;
        }
        Ok(())
    }
}

async fn watch(
    counter: &mut SyscallCounter,
    mut active: Vec<Recording>,
    mut waiting: Option<Waiting>,
    signals: StopSignals,
    opts: &RecordOptions,
) -> Result<StopReason, Error> {
    let StopSignals {
        mut sigint,
        mut sigterm,
    } = signals;
    let mut poll = tokio::time::interval(POLL);
    let mut flush = tokio::time::interval(opts.interval);
    flush.tick().await; // the first tick is immediate
    let deadline = opts.duration.map(|d| tokio::time::Instant::now() + d);
    let deadline_sleep = tokio::time::sleep_until(deadline.unwrap_or_else(far_future));
    tokio::pin!(deadline_sleep);
    let mut progress = ProgressLine::new();

    let reason = loop {
        tokio::select! {
            _ = sigint.recv() => break StopReason::Signal,
            _ = sigterm.recv() => break StopReason::Signal,
            _ = &mut deadline_sleep, if deadline.is_some() => break StopReason::Duration,
            _ = flush.tick() => {
                // Only targets whose counts moved are written; with none, the attribution
                // table (8 192 per-CPU entries) is not read either.
                let mut changed = Vec::new();
                for (i, r) in active.iter_mut().enumerate() {
                    if r.refresh_changed(counter)? {
                        changed.push(i);
                    }
                }
                if !changed.is_empty() {
                    let uses = counter.read_attribution()?;
                    for i in changed {
                        active[i].write(counter, false, &uses)?;
                    }
                }
            }
            _ = poll.tick() => {
                counter.flush_logs();
                if let Some(w) = &mut waiting {
                    w.adopt_claimed(counter, &mut active)?;
                }
                distribute_execs(counter, &mut active);
                // A container's cgroup disappears when it stops: finish its file now.
                let (gone, kept): (Vec<_>, Vec<_>) =
                    active.drain(..).partition(|r| !r.target.cgroup.exists());
                active = kept;
                if !gone.is_empty() {
                    progress.clear();
                    let uses = counter.read_attribution()?;
                    for mut r in gone {
                        finish(counter, &mut r, &uses)?;
                        counter.remove_target(r.slot)?;
                    }
                }
                // With --wait, only stop once something was recorded and is gone.
                let waiting_for_first = waiting.as_ref().is_some_and(|w| w.picked_up == 0);
                if active.is_empty() && !waiting_for_first {
                    break StopReason::TargetsGone;
                }
                // Reading a target's counters copies ~25 KiB per CPU and map: only a progress
                // line on a terminal needs them between writes (an idle recorder of 256
                // targets spent 7.5 % of a CPU on it).
                if progress.is_shown() {
                    for r in &mut active {
                        r.refresh(counter)?;
                    }
                    let distinct: u64 =
                        active.iter().map(|r| r.last.syscalls.len() as u64).sum();
                    let calls: u64 = active.iter().map(|r| r.last.total()).sum();
                    progress.update(active.len(), distinct, calls);
                }
            }
        }
    };
    progress.clear();
    distribute_execs(counter, &mut active);
    let uses = counter.read_attribution()?;
    for r in &mut active {
        finish(counter, r, &uses)?;
    }
    Ok(reason)
}

/// Hands the execs reported so far to every recording: the ring buffer is shared by all
/// targets, so it is drained in one place.
fn distribute_execs(counter: &mut SyscallCounter, recordings: &mut [Recording]) {
    let execs = counter.drain_execs();
    for r in recordings {
        r.note_execs(&execs);
    }
}

/// Writes a target's final file; `uses` is the attribution table read once for all targets.
fn finish(
    counter: &SyscallCounter,
    r: &mut Recording,
    uses: &[crate::bpf::ProgramUse],
) -> Result<(), Error> {
    let list = r.write(counter, true, uses)?;
    tracing::info!(
        target = %r.target.cgroup.rel,
        distinct = list.totals.distinct,
        calls = list.totals.calls,
        out = %r.out.display(),
        "wrote final allowlist"
    );
    eprintln!(
        "agent-audit: {}: {} distinct syscalls, {} calls -> {}",
        r.target.label(),
        list.totals.distinct,
        list.totals.calls,
        r.out.display()
    );
    Ok(())
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

/// Output paths, checked for writability before anything is attached.
struct OutputPlan {
    spec: OutputSpec,
    used: HashSet<PathBuf>,
}

fn plan_outputs(opts: &RecordOptions) -> Result<OutputPlan, Error> {
    if opts.targets.is_empty() && opts.globs.is_empty() {
        return Err(Error::Usage(
            "no target: give --cgroup, --cgroup-id, --pid, --container or --cgroup-glob".into(),
        ));
    }
    let waits_for_container = opts
        .targets
        .iter()
        .any(|t| matches!(t, TargetSpec::Container(_)));
    if opts.wait && opts.globs.is_empty() && !waits_for_container {
        return Err(Error::Usage(
            "--wait needs --cgroup-glob PATTERN (e.g. 'docker/*') or --container NAME".into(),
        ));
    }
    match &opts.output {
        OutputSpec::File(path) => {
            if opts.targets.len() > 1 || (!opts.globs.is_empty() && !opts.wait) {
                return Err(Error::Usage(
                    "several targets but one --out file: use --out-dir DIR".into(),
                ));
            }
            fsutil::ensure_dir_writable(fsutil::parent_dir(path))?;
        }
        OutputSpec::Dir(dir) => fsutil::ensure_dir_writable(dir)?,
    }
    Ok(OutputPlan {
        spec: opts.output.clone(),
        used: HashSet::new(),
    })
}

impl OutputPlan {
    /// The file for the next target: `--out` for the first one only; in `--out-dir`,
    /// `<label>.allowlist.json`, disambiguated by cgroup id on collision.
    fn next_path(&mut self, target: &CgroupTarget) -> Result<PathBuf, Error> {
        let path = match &self.spec {
            OutputSpec::File(path) if self.used.is_empty() => path.clone(),
            OutputSpec::File(path) => {
                return Err(Error::Usage(format!(
                    "{} is already used by another target: use --out-dir DIR",
                    path.display()
                )))
            }
            OutputSpec::Dir(dir) => {
                let name = sanitize(&target.label());
                let plain = dir.join(format!("{name}.allowlist.json"));
                if self.used.contains(&plain) {
                    dir.join(format!("{name}-{}.allowlist.json", target.cgroup.id))
                } else {
                    plain
                }
            }
        };
        self.used.insert(path.clone());
        Ok(path)
    }
}

/// Keeps file names to `[A-Za-z0-9._-]`.
fn sanitize(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_start_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::AttachMode;

    #[test]
    fn file_names_are_safe() {
        assert_eq!(sanitize("docker-abc.scope"), "docker-abc.scope");
        assert_eq!(sanitize("../etc/x y"), "_etc_x_y");
    }

    #[test]
    fn one_file_for_several_targets_is_a_usage_error() {
        let opts = RecordOptions {
            targets: vec![TargetSpec::Pid(1), TargetSpec::Pid(2)],
            globs: Vec::new(),
            wait: false,
            output: OutputSpec::File(PathBuf::from("x.json")),
            interval: Duration::from_secs(5),
            duration: None,
            counter: CounterOptions::new(AttachMode::Auto),
        };
        let err = plan_outputs(&opts).err().expect("must fail");
        assert!(err.to_string().contains("--out-dir"), "{err}");
        assert_eq!(err.exit_code(), crate::exit::ExitCode::USAGE);

        let opts = RecordOptions {
            targets: Vec::new(),
            wait: true,
            ..opts
        };
        let err = plan_outputs(&opts).err().expect("must fail");
        assert!(err.to_string().contains("--cgroup-glob"), "{err}");
    }
}
