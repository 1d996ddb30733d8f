//! The daemon loop of `record`: signals, the deadline, cgroup events, snapshots at each
//! interval, targets going away, progress, and every final file at the end.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::outputs::container_named;
use super::recording::{Recording, RecordingError};
use super::waiting::{report_unrecorded, Waiting};
use super::{RecordOptions, StopReason};
use crate::allowlist::Allowlist;
use crate::bpf::SyscallCounter;
use crate::progress::ProgressLine;
use crate::shell::status;
use crate::signals::StopSignals;
use crate::watch::{RemovalEvents, Watched};
use crate::Error;

/// How often target cgroups are checked for removal and the progress line redrawn.
const POLL: Duration = Duration::from_millis(200);

pub(super) async fn watch(
    counter: &mut SyscallCounter,
    active: Vec<Recording>,
    mut waiting: Option<Waiting>,
    mut signals: StopSignals,
    snapshots: Option<Duration>,
    opts: &RecordOptions,
    metrics: Option<&crate::metrics::Metrics>,
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
                if let Some(m) = metrics {
                    recordings.publish(counter, m)?;
                }
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
        w.report_awaiting_engine();
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
        let recorder = super::recording::recorder_info(counter);
        for r in self.active.iter_mut().filter(|r| due(r)) {
            let result = r.write_synced(&recorder, false, &uses);
            report_write(r, result)?;
        }
        let mut written = Vec::new();
        let mut still_unwritten = Vec::new();
        for mut r in std::mem::take(&mut self.unwritten) {
            self.take_earlier(&mut r);
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
        // In the order they were picked up: a container's start that ended at once gets the
        // final allowlist of its previous start, retired just before it.
        for mut r in gone {
            self.take_earlier(&mut r);
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
    /// hand and none to come starts a file of its own.
    fn link_earlier_starts(&mut self) {
        for i in 0..self.active.len() {
            if !self.active[i].earlier_pending {
                continue;
            }
            if let Some(list) = self.finished.remove(&self.active[i].out) {
                self.active[i].add_earlier_starts(list);
                continue;
            }
            let out = &self.active[i].out;
            let before = |r: &Recording| &r.out == out && !r.earlier_pending;
            let to_come = self.active.iter().any(before) || self.unwritten.iter().any(before);
            self.active[i].earlier_pending = to_come;
        }
    }

    /// Gives `r` its earlier starts' final allowlist if it waits for one that is at hand.
    fn take_earlier(&mut self, r: &mut Recording) {
        if r.earlier_pending {
            if let Some(list) = self.finished.remove(&r.out) {
                r.add_earlier_starts(list);
            }
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

    /// Brings the metrics up to the kernel's counts (`--metrics`).
    fn publish(
        &mut self,
        counter: &SyscallCounter,
        metrics: &crate::metrics::Metrics,
    ) -> Result<(), Error> {
        for r in &mut self.active {
            r.sync(counter)?;
        }
        let targets: Vec<crate::metrics::MetricsTarget<'_>> = self
            .active
            .iter()
            .map(|r| crate::metrics::MetricsTarget {
                slot: r.slot,
                cgroup: &r.target.cgroup.rel,
                container: r
                    .target
                    .info
                    .container
                    .as_ref()
                    .map_or("", |c| c.name.as_str()),
                calls: r.last.total().saturating_add(r.last_init.total()),
            })
            .collect();
        metrics.update(&targets, &counter.read_refusals()?);
        Ok(())
    }

    /// On exit: every target's final file, each tried again even if it failed before. Every
    /// target is tried; the first failure is returned after that.
    fn finish_all(&mut self, counter: &mut SyscallCounter) -> Result<(), Error> {
        let uses = counter.read_details()?;
        counter.warn_if_refusals_inexact();
        let mut failed = None;
        for r in self.active.iter_mut().chain(self.unwritten.iter_mut()) {
            if let Err(e) = r
                .write(counter, true, &uses)
                .map(|list| summarize(r, &list))
            {
                status!(
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
                status!(
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
                status!(
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
    status!(
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
