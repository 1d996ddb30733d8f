//! `agent-audit record`: the daemon that watches one or more existing cgroups and keeps each
//! one's allowlist file current until the target goes away, a signal arrives, or time is up.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_audit_ebpf::MAX_TARGETS;
use time::OffsetDateTime;

use crate::allowlist::{Allowlist, MissedStart};
use crate::attribution;
use crate::bpf::{CounterOptions, SyscallCounter};
use crate::cgroup::Cgroup;
use crate::cgroup::CgroupV2Mount;
use crate::container;
use crate::fsutil;
use crate::privileges;
use crate::progress::ProgressLine;
use crate::ready::ReadyFile;
use crate::recording::{Recording, RecordingError};
use crate::signals::StopSignals;
use crate::target::{CgroupTarget, TargetError, TargetSpec};
use crate::watch::{CgroupGlob, MkdirEvents, RemovalEvents, Watched};
use crate::Error;

/// How often target cgroups are checked for removal and the progress line redrawn.
const POLL: Duration = Duration::from_millis(200);

/// How often the allowlist files are rewritten when `--interval` is not given.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

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
    /// With `wait`: keep waiting for new cgroups after every one picked up is gone (a
    /// node-wide daemon); only a signal or `duration` ends it.
    pub keep_waiting: bool,
    /// Written once armed, removed at the end (`--ready-file`).
    pub ready_file: Option<PathBuf>,
    /// Where to write.
    pub output: OutputSpec,
    /// Snapshot period as given (`--interval`); [`DEFAULT_INTERVAL`] when `None`, or no
    /// snapshots at all when the output is a stream (standard output, a FIFO).
    pub interval: Option<Duration>,
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
    /// A signal that asks the process to end (see [`crate::signals`]).
    Signal,
    /// `--duration` elapsed.
    Duration,
}

/// Runs the daemon to completion; every target's final file is written before it returns.
pub fn record(opts: RecordOptions) -> Result<StopReason, Error> {
    // Everything that can be checked without the kernel is checked first, so a typo never
    // costs a half-started recording.
    let plan = plan_outputs(&opts)?;
    if let Some(path) = &opts.ready_file {
        ReadyFile::check_writable(path)?;
    }
    privileges::check_bpf_privileges()?;
    // Signal handlers go in before anything is attached, so that a SIGTERM arriving at any
    // point after this still ends with the final files written.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Io)?;
    let _enter = runtime.enter();
    let signals = StopSignals::install().map_err(Error::Io)?;
    crate::signals::ignore_file_size_signal();
    let mount = CgroupV2Mount::discover()?;
    let mut targets = Vec::new();
    let mut watches = Vec::new();
    for spec in &opts.targets {
        let resolved = CgroupTarget::resolve(&mount, spec);
        match (resolved, spec) {
            (Ok(t), TargetSpec::Container(name)) if opts.wait && opts.keep_waiting => {
                // Running now; its later starts are recorded too.
                targets.push(t);
                watches.push(container_watch(&mount, name)?);
            }
            (Ok(t), _) => targets.push(t),
            // A container that does not run yet is exactly what --wait is for.
            (Err(TargetError::Container(_)), TargetSpec::Container(name)) if opts.wait => {
                watches.push(container_watch(&mount, name)?);
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
    let snapshots = plan.snapshots;
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
            starved: HashMap::new(),
            vanished: Vec::new(),
            picked_up: 0,
        })
    } else {
        None
    };
    // Scripts wait for this line (or the first snapshot) before starting the workload.
    let ready_line = format!(
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
    eprintln!("{ready_line}");
    let _ready = opts
        .ready_file
        .as_deref()
        .map(|path| ReadyFile::create(path, &ready_line))
        .transpose()?;
    runtime.block_on(watch(
        &mut counter,
        active,
        waiting,
        signals,
        snapshots,
        &opts,
    ))
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

/// The watch for the cgroups of container `name`'s starts.
fn container_watch(mount: &CgroupV2Mount, name: &str) -> Result<Watch, Error> {
    let pattern = container::docker_cgroup_pattern().map_err(TargetError::from)?;
    Ok(Watch {
        glob: CgroupGlob::parse_runtime_layout(mount, &pattern)?,
        container: Some(name.to_string()),
    })
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
    /// Children that matched nothing: (cgroup id, directory), forgotten once gone.
    excluded: Vec<(u64, PathBuf)>,
    /// Wanted children that found every slot in use, by cgroup id, until they get one.
    starved: HashMap<u64, Starved>,
    /// The latest children created and removed before their creation was read (at most
    /// [`MAX_VANISHED`]): named in the warning about a claimed cgroup that cannot be named.
    vanished: Vec<String>,
    picked_up: usize,
}

/// How many names of vanished children are kept for that warning.
const MAX_VANISHED: usize = 8;

/// A wanted child of a watched parent that is not counted yet: every slot was in use.
struct Starved {
    /// When its first call found no slot.
    since: OffsetDateTime,
    /// Its path below the cgroup2 mount, for messages.
    rel: String,
    /// Its directory, to notice when it is gone.
    dir: PathBuf,
}

impl Waiting {
    /// Deals with everything that happened below the watched parents since the last call:
    /// new children nobody wants are excluded before they can take a slot, children that
    /// found no slot are reported, children that got one become recordings.
    fn update(
        &mut self,
        counter: &mut SyscallCounter,
        active: &mut Vec<Recording>,
    ) -> Result<(), Error> {
        // A cgroup's mkdir event is queued before any of its tasks can make a syscall, but
        // may not have been read yet.
        self.events.read_pending().map_err(Error::Io)?;
        self.note_vanished();
        self.exclude_unwanted(counter)?;
        // Before adopting: a starved child may get a slot at once.
        self.note_starved(counter)?;
        self.adopt_claimed(counter, active)?;
        self.forget_gone(counter)
    }

    /// New children whose name no pattern matches: excluded at once, so that a burst of
    /// them never holds the slots wanted ones need.
    fn exclude_unwanted(&mut self, counter: &mut SyscallCounter) -> Result<(), Error> {
        for id in self.events.take_new() {
            let Some((parent, name)) = self.events.name_of(id) else {
                continue;
            };
            let wanted = self
                .watches
                .iter()
                .any(|w| w.glob.parent.dir == parent && w.glob.matches_child(&name));
            if !wanted && counter.exclude_unclaimed(id)? {
                self.excluded.push((id, parent.join(name)));
            }
        }
        Ok(())
    }

    /// The (parent, name) of a child of a watched parent. It may already be gone (a
    /// short-lived container): its name is known from the moment its event was read. If the
    /// event was read too late to see the directory, the directory itself may still be there.
    fn name_of(&mut self, id: u64) -> Option<(PathBuf, String)> {
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
        self.events.name_of(id)
    }

    /// The target child `id` is, if a watch wants it.
    fn target_of(&self, id: u64, parent: &std::path::Path, name: &str) -> Option<CgroupTarget> {
        self.watches
            .iter()
            .find_map(|w| w.target_for(parent, name, id))
    }

    /// Turns the cgroups the kernel program claimed into recordings or exclusions.
    fn adopt_claimed(
        &mut self,
        counter: &mut SyscallCounter,
        active: &mut Vec<Recording>,
    ) -> Result<(), Error> {
        for (id, slot) in counter.claimed_targets()? {
            let named = self.name_of(id);
            tracing::debug!(id, ?slot, name = ?named, "kernel program claimed a cgroup");
            let target = named
                .as_ref()
                .and_then(|(parent, name)| self.target_of(id, parent, name));
            let Some(target) = target else {
                match named {
                    Some((parent, name)) => self.excluded.push((id, parent.join(name))),
                    None => match self.mount.resolve_id(id) {
                        Ok(c) => self.excluded.push((id, c.dir)),
                        Err(_) => self.report_unnamed(counter, id, slot)?,
                    },
                }
                counter.exclude_claimed(slot)?;
                continue;
            };
            let continued = self.outputs.continued_path(&target);
            match continued
                .clone()
                .map_or_else(|| self.outputs.next_path(&target), Ok)
            {
                Ok(out) => {
                    tracing::info!(cgroup = %target.cgroup.rel, "picked up new cgroup");
                    if continued.is_some() {
                        eprintln!(
                            "agent-audit: {}: started again ({}): this start is added to {}",
                            target.label(),
                            target.cgroup.rel,
                            out.display()
                        );
                    }
                    let mut recording = Recording::adopt(target, slot, out);
                    recording.earlier_pending = continued.is_some();
                    if let Some(starved) = self.starved.remove(&id) {
                        recording.missed_start = Some(MissedStart {
                            since: starved.since,
                            recorded_from: recording.started_at,
                        });
                        eprintln!(
                            "agent-audit: {}: got a target slot; recording from {} (calls since \
                             {} were not recorded; its allowlist says missed_start)",
                            starved.rel,
                            rfc3339(recording.started_at),
                            rfc3339(starved.since)
                        );
                    }
                    active.push(recording);
                    self.picked_up += 1;
                }
                Err(e) => {
                    tracing::warn!("{e}; not recording {}", target.cgroup.rel);
                    self.excluded.push((id, target.cgroup.dir.clone()));
                    counter.exclude_claimed(slot)?;
                }
            }
        }
        Ok(())
    }

    /// Keeps the names of the latest children that were gone before they could be looked up.
    fn note_vanished(&mut self) {
        for (parent, name) in self.events.take_vanished() {
            self.vanished.push(parent.join(name).display().to_string());
        }
        let excess = self.vanished.len().saturating_sub(MAX_VANISHED);
        self.vanished.drain(..excess);
    }

    /// A cgroup the kernel program counted from its first call, but which was removed before
    /// its creation event was read: its id leads to no name, so neither whether a pattern
    /// wants it nor a file name for it is known. Its calls are dropped with the slot; say so
    /// rather than lose them silently.
    fn report_unnamed(
        &mut self,
        counter: &SyscallCounter,
        id: u64,
        slot: crate::bpf::TargetSlot,
    ) -> Result<(), Error> {
        let calls: u64 = counter.read(slot)?.syscalls.iter().map(|s| s.2).sum();
        let candidates = if self.vanished.is_empty() {
            String::new()
        } else {
            format!(
                " (created and removed before they could be looked up: {})",
                std::mem::take(&mut self.vanished).join(", ")
            )
        };
        eprintln!(
            "agent-audit: warning: a new cgroup (id {id}) made {calls} syscalls but was removed \
             before its name could be read{candidates}: its calls are in no allowlist"
        );
        Ok(())
    }

    /// Reports the children that found every slot in use. Wanted ones get the next slots
    /// that free, first come first served; the rest are excluded.
    fn note_starved(&mut self, counter: &mut SyscallCounter) -> Result<(), Error> {
        for (id, first_ns) in counter.drain_starved()? {
            if self.starved.contains_key(&id) {
                continue;
            }
            let Some((parent, name)) = self.name_of(id) else {
                continue; // gone before it could be named: nothing of it can be recorded
            };
            let Some(target) = self.target_of(id, &parent, &name) else {
                if counter.exclude_unclaimed(id)? {
                    self.excluded.push((id, parent.join(name)));
                }
                continue;
            };
            let since = attribution::wall_clock(first_ns);
            eprintln!(
                "agent-audit: warning: {}: new cgroup {} found all {MAX_TARGETS} target slots in \
                 use: its calls are not recorded until a slot frees (its allowlist will say \
                 missed_start)",
                rfc3339(since),
                target.cgroup.rel
            );
            counter.wait_for_slot(id)?;
            self.starved.insert(
                id,
                Starved {
                    since,
                    rel: target.cgroup.rel,
                    dir: target.cgroup.dir,
                },
            );
        }
        Ok(())
    }

    /// Drops the kernel's entries for excluded children that are gone, and reports the
    /// starved ones that ended before a slot freed.
    fn forget_gone(&mut self, counter: &mut SyscallCounter) -> Result<(), Error> {
        let (gone, kept): (Vec<_>, Vec<_>) =
            self.excluded.drain(..).partition(|(_, dir)| !dir.exists());
        self.excluded = kept;
        for (id, _) in gone {
            counter.forget_cgroup(id)?;
        }
        let gone: Vec<u64> = self
            .starved
            .iter()
            .filter(|(_, s)| !s.dir.exists())
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            counter.stop_waiting(id);
            if let Some(s) = self.starved.remove(&id) {
                report_unrecorded(&s, "ended");
            }
        }
        Ok(())
    }
}

/// Says that a wanted cgroup was never recorded.
fn report_unrecorded(s: &Starved, how: &str) {
    eprintln!(
        "agent-audit: warning: {}: {how} before a target slot freed: none of its calls (since {}) \
         were recorded; no allowlist written",
        s.rel,
        rfc3339(s.since)
    );
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

async fn watch(
    counter: &mut SyscallCounter,
    active: Vec<Recording>,
    mut waiting: Option<Waiting>,
    mut signals: StopSignals,
    snapshots: Option<Duration>,
    opts: &RecordOptions,
) -> Result<StopReason, Error> {
    let mut recordings = Recordings {
        active,
        unwritten: Vec::new(),
        removals: RemovalEvents::new(),
        finished: HashMap::new(),
    };
    let mut poll = tokio::time::interval(POLL);
    let mut flush = snapshots.map(tokio::time::interval);
    if let Some(flush) = &mut flush {
        flush.tick().await; // the first tick is immediate
    }
    let deadline = opts.duration.map(|d| tokio::time::Instant::now() + d);
    let deadline_sleep = tokio::time::sleep_until(deadline.unwrap_or_else(far_future));
    tokio::pin!(deadline_sleep);
    let mut progress = ProgressLine::new();
    let changed = waiting.as_ref().map(|w| w.events.changed());
    let cgroups_changed = || async {
        match &changed {
            Some(n) => n.notified().await,
            None => std::future::pending().await,
        }
    };

    let reason = loop {
        tokio::select! {
            number = signals.recv() => {
                tracing::info!(signal = number, "stopping: writing the final files");
                break StopReason::Signal;
            }
            _ = &mut deadline_sleep, if deadline.is_some() => break StopReason::Duration,
            _ = cgroups_changed() => {
                if let Some(w) = &mut waiting {
                    w.update(counter, &mut recordings.active)?;
                }
                distribute_execs(counter, &mut recordings.active);
                recordings.retire_gone(counter, &mut progress)?;
                recordings.link_earlier_starts();
            }
            _ = next_tick(&mut flush) => recordings.snapshot(counter)?,
            _ = poll.tick() => {
                counter.flush_logs();
                if let Some(w) = &mut waiting {
                    w.update(counter, &mut recordings.active)?;
                }
                distribute_execs(counter, &mut recordings.active);
                recordings.retire_gone(counter, &mut progress)?;
                recordings.link_earlier_starts();
                // With --wait, only stop once something was recorded and is gone, and no
                // wanted cgroup still waits for a slot.
                let waiting_for_more = waiting
                    .as_ref()
                    .is_some_and(|w| w.picked_up == 0 || !w.starved.is_empty());
                if recordings.is_empty() && !waiting_for_more && !opts.keep_waiting {
                    break StopReason::TargetsGone;
                }
                recordings.show_progress(counter, &mut progress)?;
            }
        }
    };
    progress.clear();
    // Cgroups the kernel program claimed since the last poll (a job that ran and ended just
    // before the signal) are recorded too.
    if let Some(w) = &mut waiting {
        w.update(counter, &mut recordings.active)?;
        for s in w.starved.values() {
            report_unrecorded(s, "recording stopped");
        }
    }
    distribute_execs(counter, &mut recordings.active);
    recordings.retire_gone(counter, &mut progress)?;
    recordings.link_earlier_starts();
    recordings.finish_all(counter)?;
    Ok(reason)
}

/// Every recording of a `record` run.
struct Recordings {
    /// Targets whose cgroup exists.
    active: Vec<Recording>,
    /// Targets that are gone but whose final file could not be written yet: they keep their
    /// slot, so their counts stay in the kernel, and the write is retried every interval.
    unwritten: Vec<Recording>,
    /// Tells when an active target's directory may be gone.
    removals: RemovalEvents,
    /// The final allowlist of each container target that ended, by file: a later start of
    /// the same container is added to it.
    finished: HashMap<PathBuf, Allowlist>,
}

impl Recordings {
    fn is_empty(&self) -> bool {
        self.active.is_empty() && self.unwritten.is_empty()
    }

    /// Every interval: a snapshot of each active target whose counts changed since its last
    /// file (an idle target costs no read and no write), another try for the unwritten.
    /// A write that fails is that target's trouble alone: reported, retried, never fatal.
    fn snapshot(&mut self, counter: &mut SyscallCounter) -> Result<(), Error> {
        for r in &mut self.active {
            r.sync(counter)?;
        }
        let due = |r: &Recording| (r.unwritten || r.write_failing) && !r.earlier_pending;
        if !self.active.iter().any(due) && self.unwritten.is_empty() {
            return Ok(());
        }
        // A target that counted nothing has no programs and no argument values: the shared
        // tables (about 1.5 MB to copy on a 2-CPU host) are read only when a file needs them.
        let counted = |r: &Recording| r.last.total() + r.last_init.total() > 0;
        let uses = if self.unwritten.is_empty() && !self.active.iter().any(|r| due(r) && counted(r))
        {
            crate::bpf::CallDetails::default()
        } else {
            counter.read_details()?
        };
        for r in self.active.iter_mut().filter(|r| due(r)) {
            let result = r.write_synced(counter.attach_kind(), false, &uses);
            report_write(r, result)?;
        }
        let mut written = Vec::new();
        let mut still_unwritten = Vec::new();
        for mut r in std::mem::take(&mut self.unwritten) {
            if let Some(list) = finish(counter, &mut r, &uses)? {
                written.push(r.slot);
                self.keep_final(&r, list);
            } else {
                still_unwritten.push(r);
            }
        }
        self.unwritten = still_unwritten;
        Ok(counter.remove_targets(&written)?)
    }

    /// A container's cgroup disappears when it stops: its final file is written now, and its
    /// slot released once that worked.
    fn retire_gone(
        &mut self,
        counter: &mut SyscallCounter,
        progress: &mut ProgressLine,
    ) -> Result<(), Error> {
        if !self.may_have_gone() {
            return Ok(());
        }
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.active)
            .into_iter()
            .partition(|r| !r.target.cgroup.exists());
        self.active = kept;
        if gone.is_empty() {
            return Ok(());
        }
        progress.clear();
        let uses = counter.read_details()?;
        let mut written = Vec::new();
        for mut r in gone {
            if let Some(list) = finish(counter, &mut r, &uses)? {
                written.push(r.slot);
                self.keep_final(&r, list);
            } else {
                self.unwritten.push(r);
            }
        }
        // In one go: the slots of a burst of ended targets are made ready in one pass.
        Ok(counter.remove_targets(&written)?)
    }

    /// Keeps the final allowlist of a container target: it may start again.
    fn keep_final(&mut self, r: &Recording, list: Allowlist) {
        if container_named(&r.target).is_some() {
            self.finished.insert(r.out.clone(), list);
        }
    }

    /// Hands each later start of a container the final allowlist of its earlier starts, once
    /// the last of them has ended and its file is written; a start with no earlier file at
    /// hand and none to come (that start's recording is gone) starts a file of its own.
    fn link_earlier_starts(&mut self) {
        let pending: Vec<usize> = (0..self.active.len())
            .filter(|&i| self.active[i].earlier_pending)
            .collect();
        for i in pending {
            let out = self.active[i].out.clone();
            if let Some(list) = self.finished.remove(&out) {
                let r = &mut self.active[i];
                r.earlier = Some(list);
                r.earlier_pending = false;
                r.unwritten = true;
                continue;
            }
            let before = |r: &Recording| r.out == out && !r.earlier_pending;
            let to_come = self.active.iter().any(before) || self.unwritten.iter().any(before);
            self.active[i].earlier_pending = to_come;
        }
    }

    /// Whether an active target's directory may be gone: its parent reported a removal or
    /// rename, or is watched only from now (a removal just before is not reported), or cannot
    /// be watched (gone already, or no inotify).
    fn may_have_gone(&mut self) -> bool {
        let mut unknown = false;
        for r in &self.active {
            let cgroup = &r.target.cgroup;
            unknown |= self.removals.watch(cgroup.id, &cgroup.dir) != Watched::Before;
        }
        // Watched first, then the queue read: a removal is either queued or looked at.
        self.removals.take_any() || unknown
    }

    fn show_progress(
        &mut self,
        counter: &SyscallCounter,
        progress: &mut ProgressLine,
    ) -> Result<(), Error> {
        // Only a line drawn on a terminal needs the counts between writes.
        if !progress.is_shown() {
            return Ok(());
        }
        for r in &mut self.active {
            r.sync(counter)?;
        }
        let distinct: u64 = self
            .active
            .iter()
            .map(|r| r.last.syscalls.len() as u64)
            .sum();
        let calls: u64 = self.active.iter().map(|r| r.last.total()).sum();
        progress.update(self.active.len(), distinct, calls);
        Ok(())
    }

    /// On exit: every target's final file, each tried again even if it failed before. Every
    /// target is tried; the first failure is returned after that.
    fn finish_all(&mut self, counter: &mut SyscallCounter) -> Result<(), Error> {
        let uses = counter.read_details()?;
        let mut failed = None;
        for r in self.active.iter_mut().chain(self.unwritten.iter_mut()) {
            if let Err(e) = r
                .write(counter, true, &uses)
                .map(|list| summarize(r, &list))
            {
                eprintln!(
                    "agent-audit: error: the final allowlist of {} was not written: {e}",
                    r.target.cgroup.rel
                );
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), |e| Err(e.into()))
    }
}

/// Hands the execs reported so far to every recording: the ring buffer is shared by all
/// targets, so it is drained in one place.
fn distribute_execs(counter: &mut SyscallCounter, recordings: &mut [Recording]) {
    let execs = counter.drain_execs();
    for r in recordings {
        r.note_execs(&execs);
    }
}

/// Reports how a target's write went: a failure once when it starts failing and once when it
/// works again. Returns the allowlist written, if it was. Only a failure to read the kernel's
/// counters is an error.
fn report_write(
    r: &mut Recording,
    result: Result<Allowlist, RecordingError>,
) -> Result<Option<Allowlist>, Error> {
    match result {
        Ok(list) => {
            if r.write_failing {
                r.write_failing = false;
                eprintln!(
                    "agent-audit: {}: written again ({})",
                    r.target.cgroup.rel,
                    r.out.display()
                );
            }
            Ok(Some(list))
        }
        Err(RecordingError::Allowlist(e)) => {
            if !r.write_failing {
                r.write_failing = true;
                eprintln!(
                    "agent-audit: warning: {}: {e}; still recording, retrying every interval and \
                     on exit (the counts are kept in the kernel until agent-audit exits)",
                    r.target.cgroup.rel
                );
            }
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes a target's final file; `uses` is the attribution table read once for all targets.
/// Returns the allowlist written, if it was.
fn finish(
    counter: &SyscallCounter,
    r: &mut Recording,
    uses: &crate::bpf::CallDetails,
) -> Result<Option<Allowlist>, Error> {
    let result = r.write(counter, true, uses);
    let Some(list) = report_write(r, result)? else {
        return Ok(None);
    };
    summarize(r, &list);
    Ok(Some(list))
}

/// Logs and prints what a target's final file holds.
fn summarize(r: &Recording, list: &Allowlist) {
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
}

/// The next tick of `interval`; never without one.
async fn next_tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

/// Output paths, checked for writability before anything is attached.
struct OutputPlan {
    spec: OutputSpec,
    /// Paths handed out, each with the container (as named on the command line) whose file
    /// it is, for a container target.
    used: HashMap<PathBuf, Option<String>>,
    /// How often snapshots are written; `None`: only the final files.
    snapshots: Option<Duration>,
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
    let snapshots = match &opts.output {
        OutputSpec::File(path) => {
            if opts.targets.len() > 1 || (!opts.globs.is_empty() && !opts.wait) {
                return Err(Error::Usage(
                    "several targets but one --out file: use --out-dir DIR".into(),
                ));
            }
            fsutil::check_output(path)?;
            snapshot_interval(path, opts.interval)?
        }
        OutputSpec::Dir(dir) => {
            fsutil::ensure_dir_writable(dir)?;
            Some(opts.interval.unwrap_or(DEFAULT_INTERVAL))
        }
    };
    Ok(OutputPlan {
        spec: opts.output.clone(),
        used: HashMap::new(),
        snapshots,
    })
}

/// Snapshots replace the file each time. A stream (`--out -`, a FIFO) cannot be rewritten:
/// each snapshot would follow the last as one more JSON document, so it only gets the final
/// allowlist, and asking for snapshots there is a usage error.
fn snapshot_interval(path: &Path, given: Option<Duration>) -> Result<Option<Duration>, Error> {
    if !fsutil::is_stream_output(path)? {
        return Ok(Some(given.unwrap_or(DEFAULT_INTERVAL)));
    }
    match given {
        None => Ok(None),
        Some(_) => Err(Error::Usage(format!(
            "--interval with --out {}: a stream (standard output, a FIFO, a device) cannot be \
             rewritten, so every snapshot would be appended as one more JSON document; without \
             --interval only the final allowlist is written there, or give --out FILE for \
             snapshots",
            path.display()
        ))),
    }
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
                let name = file_stem(&target.label());
                let plain = dir.join(format!("{name}.allowlist.json"));
                if self.used.contains_key(&plain) {
                    dir.join(format!("{name}-{}.allowlist.json", target.cgroup.id))
                } else {
                    plain
                }
            }
        };
        self.used.insert(path.clone(), container_named(target));
        Ok(path)
    }

    /// The file of an earlier start of the same container, for a container target that
    /// started again: the same target, recorded into the same file.
    fn continued_path(&self, target: &CgroupTarget) -> Option<PathBuf> {
        let name = container_named(target)?;
        self.used
            .iter()
            .find(|(_, owner)| owner.as_deref() == Some(name.as_str()))
            .map(|(path, _)| path.clone())
    }
}

/// The container a target is, as named on the command line (`--container NAME`).
fn container_named(target: &CgroupTarget) -> Option<String> {
    target
        .info
        .container
        .as_ref()
        .map(|_| target.info.spec.clone())
}

/// Longest file-name stem used for a target's label: with `.allowlist.json`, a `-<cgroup id>`
/// for a name taken twice, and a writer's temporary-file affixes, it stays well below the 255
/// bytes a file name can have.
const MAX_STEM: usize = 160;

/// The file-name stem for a target's label: the label kept to `[A-Za-z0-9._-]`; one longer than
/// [`MAX_STEM`] bytes (a cgroup name can be 255) is cut and ends in a hash of the whole label,
/// so the name is the same on every run and two long labels with one prefix stay apart.
fn file_stem(label: &str) -> String {
    let safe = sanitize(label);
    let safe = if safe.is_empty() {
        "cgroup".into()
    } else {
        safe
    };
    if safe.len() <= MAX_STEM {
        return safe;
    }
    let mut hasher = fnv::FnvHasher::default();
    std::hash::Hasher::write(&mut hasher, label.as_bytes());
    let hash = std::hash::Hasher::finish(&hasher);
    // `sanitize` keeps ASCII only: any byte index is a character boundary.
    format!("{}-{hash:016x}", &safe[..MAX_STEM - 17])
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
    fn long_labels_are_cut_and_hashed_the_same_way_every_time() {
        let long = "x".repeat(240);
        let stem = file_stem(&long);
        assert_eq!(stem.len(), MAX_STEM);
        assert_eq!(stem, file_stem(&long));
        assert!(stem.starts_with(&"x".repeat(MAX_STEM - 17)), "{stem}");
        // One character apart at the end: the same prefix, different names.
        let other = format!("{}y", "x".repeat(239));
        assert_ne!(file_stem(&other), stem);
        assert_eq!(file_stem("short"), "short");
        assert_eq!(file_stem(&"x".repeat(MAX_STEM)), "x".repeat(MAX_STEM));
        assert_eq!(file_stem("..."), "cgroup");
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(sanitize("docker-abc.scope"), "docker-abc.scope");
        assert_eq!(sanitize("../etc/x y"), "_etc_x_y");
    }

    #[test]
    fn a_stream_gets_only_the_final_allowlist_and_refuses_interval() {
        let stdout = Path::new("-");
        assert_eq!(snapshot_interval(stdout, None).unwrap(), None);
        assert_eq!(
            snapshot_interval(Path::new("/dev/stdout"), None).unwrap(),
            None
        );
        let err = snapshot_interval(stdout, Some(Duration::from_secs(1))).unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::ExitCode::USAGE);
        assert!(err.to_string().contains("--interval with --out -"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(snapshot_interval(&fifo, Some(Duration::from_secs(1))).is_err());
        // A file is replaced at each snapshot: the default period, or the one given.
        let file = dir.path().join("a.json");
        assert_eq!(
            snapshot_interval(&file, None).unwrap(),
            Some(DEFAULT_INTERVAL)
        );
        assert_eq!(
            snapshot_interval(&file, Some(Duration::from_secs(1))).unwrap(),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn one_file_for_several_targets_is_a_usage_error() {
        let opts = RecordOptions {
            targets: vec![TargetSpec::Pid(1), TargetSpec::Pid(2)],
            globs: Vec::new(),
            wait: false,
            keep_waiting: false,
            ready_file: None,
            output: OutputSpec::File(PathBuf::from("x.json")),
            interval: None,
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
