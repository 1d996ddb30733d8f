//! One target being recorded: its slot in the kernel program, where its file goes, and how
//! its counters become an [`Allowlist`].

use std::path::PathBuf;

use time::OffsetDateTime;

use crate::allowlist::{
    Allowlist, AllowlistError, ArgRecord, HostInfo, LeftCgroup, MissedStart, MultiplexedCount,
    RecorderInfo, SyscallCount, TargetStart, SCHEMA_V1,
};
use crate::attribution;
use crate::bpf::{
    ArgUse, BpfError, CallDetails, Departures, ExecRecord, ProgramUse, SyscallCounter,
    TargetCounts, TargetSlot,
};
use crate::capabilities::CapabilityChecks;
use crate::runtimes::ExecPaths;
use crate::starts;
use crate::syscalls::Arch;
use crate::target::CgroupTarget;

/// A target with an active slot.
pub struct Recording {
    /// What is watched.
    pub target: CgroupTarget,
    /// Its counters in the kernel program.
    pub slot: TargetSlot,
    /// Where its allowlist is written.
    pub out: PathBuf,
    /// When counting began.
    pub started_at: OffsetDateTime,
    /// The last counts read, for progress and the final file.
    pub last: TargetCounts,
    /// The last runtime-init counts read (targets picked up at creation only).
    pub last_init: TargetCounts,
    /// The capability checks last read; `None` when they are not counted.
    pub last_capabilities: Option<CapabilityChecks>,
    /// Execs seen in the target so far, by (path, uid).
    pub execs: attribution::ExecTally,
    /// Set when the target's first calls went uncounted (no free slot at its start).
    pub missed_start: Option<MissedStart>,
    /// Processes that left the target's cgroup (read with the counters).
    pub left_cgroup: Vec<LeftCgroup>,
    /// The last write of its file failed (reported once until one works again).
    pub write_failing: bool,
    /// Whose calls the ones before the target's first completed exec are.
    pub before_first_exec: BeforeFirstExec,
    /// `last`, `last_init` or `execs` hold something its file does not (true until the first
    /// write).
    pub unwritten: bool,
    /// The slot was marked changed when last synced: read it once more at the next sync (a
    /// call whose mark was seen may not have had its count visible yet).
    recheck: bool,
    /// Counted from its cgroup's first call (claimed below a watched parent), not picked up
    /// while running.
    pub from_first_call: bool,
    /// The same target's earlier starts (a restarted container), added to every file.
    pub earlier: Option<Allowlist>,
    /// A start of a target recorded before whose final file is not yet at hand: its file is
    /// not written until it is (it would drop the earlier starts' counts).
    pub earlier_pending: bool,
}

/// Whose calls a target makes before its first completed exec (the kernel program counts them
/// apart only for targets that start empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeforeFirstExec {
    /// A container runtime's init: kept in the allowlist's `runtime_init`.
    RuntimeInit,
    /// agent-audit's own launcher between fork and exec (`run`, `verify`): not the command's
    /// calls, so left out of the allowlist.
    Launcher,
}

impl Recording {
    /// Adds the target to the kernel program; counting starts now.
    pub fn start(
        counter: &mut SyscallCounter,
        target: CgroupTarget,
        out: PathBuf,
    ) -> Result<Self, BpfError> {
        let slot = counter.add_target(target.cgroup.id)?;
        tracing::info!(
            cgroup = %target.cgroup.rel,
            id = target.cgroup.id,
            out = %out.display(),
            "recording target"
        );
        Ok(Self {
            from_first_call: false,
            ..Self::adopt(target, slot, out)
        })
    }

    /// Adds an empty cgroup that agent-audit is about to launch a command in: what the
    /// launcher does there before the command's exec completes is counted apart and dropped.
    pub fn start_command(
        counter: &mut SyscallCounter,
        target: CgroupTarget,
        out: PathBuf,
    ) -> Result<Self, BpfError> {
        let slot = counter.add_target_before_exec(target.cgroup.id)?;
        Ok(Self {
            before_first_exec: BeforeFirstExec::Launcher,
            // Launched by us, in our mount namespace: its exec paths name our files.
            execs: attribution::ExecTally::new(ExecPaths::Host),
            ..Self::adopt(target, slot, out)
        })
    }

    /// A target the kernel program already counts (claimed below a watched parent).
    pub fn adopt(target: CgroupTarget, slot: TargetSlot, out: PathBuf) -> Self {
        Self {
            target,
            slot,
            out,
            started_at: OffsetDateTime::now_utc(),
            last: TargetCounts::default(),
            last_init: TargetCounts::default(),
            last_capabilities: None,
            execs: attribution::ExecTally::default(),
            missed_start: None,
            left_cgroup: Vec::new(),
            write_failing: false,
            before_first_exec: BeforeFirstExec::RuntimeInit,
            unwritten: true,
            recheck: false,
            from_first_call: true,
            earlier: None,
            earlier_pending: false,
        }
    }

    /// Reads the counters into `last`.
    pub fn refresh(&mut self, counter: &SyscallCounter) -> Result<(), BpfError> {
        let (last, init) = (
            counter.read(self.slot)?,
            counter.read_runtime_init(self.slot)?,
        );
        let left = left_cgroup(counter.departures(self.slot)?);
        for p in left.iter().filter(|p| !self.left_cgroup.contains(p)) {
            tracing::warn!(
                pid = p.pid,
                program = %p.program,
                cgroup = %self.target.cgroup.rel,
                "a process left the target's cgroup: its calls from now on are not recorded \
                 (the allowlist is marked left_cgroup)"
            );
        }
        let capabilities = counter
            .read_capability_checks(self.slot)?
            .map(|counts| CapabilityChecks::from_counts(&counts));
        if (&last, &init, &left, &capabilities)
            != (
                &self.last,
                &self.last_init,
                &self.left_cgroup,
                &self.last_capabilities,
            )
        {
            self.unwritten = true;
        }
        (self.last, self.last_init, self.left_cgroup) = (last, init, left);
        self.last_capabilities = capabilities;
        Ok(())
    }

    /// Brings `last` up to date, reading the counters only if the kernel program marked the
    /// slot changed since the last sync (or at the one before): an idle target costs no read.
    pub fn sync(&mut self, counter: &SyscallCounter) -> Result<(), BpfError> {
        let changed = counter.take_changed(self.slot);
        if changed || self.recheck {
            self.refresh(counter)?;
        }
        self.recheck = changed;
        Ok(())
    }

    /// Keeps the execs that happened in this target.
    pub fn note_execs(&mut self, execs: &[ExecRecord]) {
        for e in execs.iter().filter(|e| e.slot == self.slot) {
            self.execs.add(e);
            self.unwritten = true;
        }
    }

    /// The allowlist for the counts in `last`, with each syscall's programs and argument
    /// values from `details` (every target's; this one's are picked out).
    pub fn allowlist(
        &self,
        recorder: &RecorderInfo,
        complete: bool,
        details: &CallDetails,
    ) -> Allowlist {
        // The workload's rows get the workload's programs and values; the runtime's init its
        // own.
        let (init_uses, mine): (Vec<&ProgramUse>, Vec<&ProgramUse>) = details
            .programs
            .iter()
            .filter(|u| u.slot == self.slot)
            .partition(|u| u.runtime_init);
        let (init_args, my_args): (Vec<&ArgUse>, Vec<&ArgUse>) = details
            .args
            .iter()
            .filter(|a| a.slot == self.slot)
            .partition(|a| a.runtime_init);
        let mut counts = self.last.syscalls.clone();
        let mut mine: Vec<ProgramUse> = mine.into_iter().cloned().collect();
        if let Some((arch, nr, program)) = self.launching_exec(&init_uses) {
            match counts.iter_mut().find(|c| c.0 == arch && c.1 == nr) {
                Some(c) => c.2 += 1,
                None => counts.push((arch, nr, 1)),
            }
            if let Some(program) = program {
                add_use(&mut mine, program);
            }
        }
        let mine: Vec<&ProgramUse> = mine.iter().collect();
        let (mut syscalls, totals) =
            Allowlist::syscalls_from_counts(counts, self.last.out_of_range);
        attribution::attach_programs(&mut syscalls, &mine);
        attach_args(&mut syscalls, &my_args);
        let runtime_init = match self.before_first_exec {
            BeforeFirstExec::RuntimeInit => {
                let mut rows =
                    Allowlist::syscalls_from_counts(self.last_init.syscalls.iter().copied(), 0).0;
                attribution::attach_programs(&mut rows, &init_uses);
                attach_args(&mut rows, &init_args);
                rows
            }
            BeforeFirstExec::Launcher => Vec::new(),
        };
        let name_of = |u: &ProgramUse| {
            let name = u.arch.syscall_name(u.nr).map(str::to_owned);
            match u.arch {
                a if Some(a) == Arch::native() => name.unwrap_or_else(|| format!("#{}", u.nr)),
                a => format!(
                    "{}:{}",
                    a.short_name(),
                    name.unwrap_or_else(|| u.nr.to_string())
                ),
            }
        };
        let list = Allowlist {
            schema: SCHEMA_V1.to_string(),
            target: self.target.info.clone(),
            started_at: self.started_at,
            ended_at: OffsetDateTime::now_utc(),
            complete,
            host: HostInfo::current(),
            recorder: recorder.clone(),
            totals,
            syscalls,
            multiplexed: self.multiplexed(),
            runtime_init,
            executables: self.execs.runs(),
            privilege_drop: attribution::privilege_drop(&mine, name_of),
            missed_start: self.missed_start,
            refused: crate::refusals::rows(&details.refusals, self.slot),
            refused_unnamed: details
                .refusals_unnamed
                .get(self.slot.index())
                .copied()
                .unwrap_or(0),
            left_cgroup: self.left_cgroup.clone(),
            capabilities: self.last_capabilities.clone(),
            starts: Vec::new(),
        };
        self.with_earlier_starts(list)
    }

    /// Adds the earlier starts of the same target (their final allowlist) to this one's files.
    pub fn add_earlier_starts(&mut self, earlier: Allowlist) {
        self.earlier = Some(earlier);
        self.earlier_pending = false;
        self.unwritten = true;
    }

    /// For a `record` target: this start's entry in `starts`, after the earlier starts' (whose
    /// counts are added in).
    fn with_earlier_starts(&self, mut list: Allowlist) -> Allowlist {
        if self.before_first_exec == BeforeFirstExec::Launcher {
            return list; // a command agent-audit ran: one start by definition
        }
        list.starts = vec![TargetStart {
            started_at: list.started_at,
            ended_at: list.ended_at,
            cgroup_id: self.target.cgroup.id,
            calls: list.totals.calls,
            from_first_call: self.from_first_call && self.missed_start.is_none(),
        }];
        match &self.earlier {
            Some(earlier) => starts::combine(earlier.clone(), list),
            None => list,
        }
    }

    /// For a command agent-audit launched: the exec that started it, as one call made by the
    /// program it started. Its entry was counted before the exec completed, with the
    /// launcher's calls, but it belongs to the command: a filter installed before it (by runc,
    /// by `verify`) must allow it.
    fn launching_exec(&self, init_uses: &[&ProgramUse]) -> Option<(Arch, u32, Option<ProgramUse>)> {
        if self.before_first_exec != BeforeFirstExec::Launcher {
            return None;
        }
        let started = self.execs.runs().into_iter().min_by_key(|r| r.first_seen)?;
        let &(arch, nr, _) =
            self.last_init.syscalls.iter().find(|&&(arch, nr, _)| {
                matches!(arch.syscall_name(nr), Some("execve" | "execveat"))
            })?;
        let program = init_uses
            .iter()
            .find(|u| u.arch == arch && u.nr == nr)
            .map(|u| ProgramUse {
                comm: started.comm.clone(),
                runtime_init: false,
                count: 1,
                first_ns: u.last_ns,
                ..(*u).clone()
            });
        Some((arch, nr, program))
    }

    fn multiplexed(&self) -> Vec<MultiplexedCount> {
        let Some(arch) = Arch::native().and_then(Arch::compat32_of) else {
            return Vec::new();
        };
        let mut rows = MultiplexedCount::rows(arch, "ipc", &self.last.ipc_ops);
        rows.extend(MultiplexedCount::rows(
            arch,
            "socketcall",
            &self.last.socketcall_ops,
        ));
        rows
    }

    /// Reads the counters and writes the file atomically; `details` were read for all targets
    /// at once (each is one table).
    pub fn write(
        &mut self,
        counter: &SyscallCounter,
        complete: bool,
        details: &CallDetails,
    ) -> Result<Allowlist, RecordingError> {
        self.refresh(counter)?;
        self.write_synced(&recorder_info(counter), complete, details)
    }

    /// Writes the file from the counts already read (see [`Self::sync`]).
    pub fn write_synced(
        &mut self,
        recorder: &RecorderInfo,
        complete: bool,
        details: &CallDetails,
    ) -> Result<Allowlist, RecordingError> {
        let list = self.allowlist(recorder, complete, details);
        list.write(&self.out)?;
        self.unwritten = false;
        Ok(list)
    }
}

/// How `counter` records: the allowlist's `recorder` section.
pub fn recorder_info(counter: &SyscallCounter) -> RecorderInfo {
    RecorderInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        attach: counter.attach_kind().name().to_string(),
        refusals: counter.counts_refusals(),
    }
}

impl RecordingError {
    /// The documented exit code of the side that failed.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        match self {
            RecordingError::Bpf(e) => e.exit_code(),
            RecordingError::Allowlist(e) => e.exit_code(),
        }
    }
}

/// The departures read from the kernel program as the allowlist lists them; a list that may
/// be cut (the kernel's table was full) is said so in the log.
fn left_cgroup(departures: Departures) -> Vec<LeftCgroup> {
    if departures.maybe_more {
        tracing::warn!(
            "the kernel's table of processes that left their cgroup is full: more may have left"
        );
    }
    departures
        .tasks
        .into_iter()
        .map(|t| LeftCgroup {
            pid: t.pid,
            program: t.comm,
            to_cgroup_id: t.to_cgroup,
            born_outside: t.born_outside,
        })
        .collect()
}

/// Adds `new` to the use of the same program (name and root-ness) and syscall, if listed.
fn add_use(uses: &mut Vec<ProgramUse>, new: ProgramUse) {
    let same = |u: &&mut ProgramUse| {
        (u.arch, u.nr, &u.comm, u.root) == (new.arch, new.nr, &new.comm, new.root)
    };
    match uses.iter_mut().find(same) {
        Some(u) => {
            u.count += new.count;
            u.first_ns = u.first_ns.min(new.first_ns);
            u.last_ns = u.last_ns.max(new.last_ns);
        }
        None => uses.push(new),
    }
}

/// Gives each counted syscall its tracked arguments, in the file's order (index, then field).
/// Only counted rows get them: a zero bit union is also what an unused syscall shows.
fn attach_args(rows: &mut [SyscallCount], args: &[&ArgUse]) {
    for row in rows {
        let mut mine: Vec<ArgRecord> = args
            .iter()
            .filter(|a| a.arch == row.arch && a.nr == row.nr)
            .map(|a| a.record.clone())
            .collect();
        mine.sort_by_key(ArgRecord::sort_key);
        row.args = mine;
    }
}

/// Reading or writing a recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// Reading the counters failed.
    #[error(transparent)]
    Bpf(#[from] BpfError),
    /// Writing the file failed.
    #[error(transparent)]
    Allowlist(#[from] AllowlistError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg_use(slot: u32, runtime_init: bool, nr: u32, record: ArgRecord) -> ArgUse {
        ArgUse {
            slot: TargetSlot::for_tests(slot),
            runtime_init,
            arch: Arch::X86_64,
            nr,
            record,
        }
    }

    #[test]
    fn counted_rows_get_their_args_sorted_by_index() {
        let socket = Arch::X86_64.syscall_nr("socket").unwrap();
        let ioctl = Arch::X86_64.syscall_nr("ioctl").unwrap();
        let (mut rows, _) = Allowlist::syscalls_from_counts([(Arch::X86_64, socket, 3)], 0);
        let family = ArgRecord::values(0, None, [(2, 3)], false);
        let kind = ArgRecord::values(1, None, [(1, 3)], false);
        let uses = [
            arg_use(0, false, socket, kind.clone()),
            arg_use(0, false, socket, family.clone()),
            // A syscall this target never counted (a zero union of another phase, say).
            arg_use(
                0,
                false,
                ioctl,
                ArgRecord::values(1, None, [(0x5401, 1)], false),
            ),
        ];
        let mine: Vec<&ArgUse> = uses.iter().collect();
        attach_args(&mut rows, &mine);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].args, vec![family, kind]);
    }
}
