//! One target being recorded: its slot in the kernel program, where its file goes, and how
//! its counters become an [`Allowlist`].

use std::path::PathBuf;

use time::OffsetDateTime;

use crate::allowlist::{
    Allowlist, AllowlistError, ArgRecord, HostInfo, MissedStart, MultiplexedCount, RecorderInfo,
    SyscallCount, SCHEMA_V1,
};
use crate::attribution;
use crate::bpf::{
    ArgUse, BpfError, CallDetails, ExecRecord, ProgramUse, SyscallCounter, TargetCounts, TargetSlot,
};
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
    /// Execs seen in the target so far, by (path, uid).
    pub execs: attribution::ExecTally,
    /// Set when the target's first calls went uncounted (no free slot at its start).
    pub missed_start: Option<MissedStart>,
    /// The last write of its file failed (reported once until one works again).
    pub write_failing: bool,
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
        Ok(Self::adopt(target, slot, out))
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
            execs: attribution::ExecTally::default(),
            missed_start: None,
            write_failing: false,
        }
    }

    /// Reads the counters into `last`.
    pub fn refresh(&mut self, counter: &SyscallCounter) -> Result<(), BpfError> {
        self.last = counter.read(self.slot)?;
        self.last_init = counter.read_runtime_init(self.slot)?;
        Ok(())
    }

    /// Keeps the execs that happened in this target.
    pub fn note_execs(&mut self, execs: &[ExecRecord]) {
        for e in execs.iter().filter(|e| e.slot == self.slot) {
            self.execs.add(e);
        }
    }

    /// The allowlist for the counts in `last`, with each syscall's programs and argument
    /// values from `details` (every target's; this one's are picked out).
    pub fn allowlist(&self, attach: &str, complete: bool, details: &CallDetails) -> Allowlist {
        let (mut syscalls, totals) = Allowlist::syscalls_from_counts(
            self.last.syscalls.iter().copied(),
            self.last.out_of_range,
        );
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
        attribution::attach_programs(&mut syscalls, &mine);
        attach_args(&mut syscalls, &my_args);
        let mut runtime_init =
            Allowlist::syscalls_from_counts(self.last_init.syscalls.iter().copied(), 0).0;
        attribution::attach_programs(&mut runtime_init, &init_uses);
        attach_args(&mut runtime_init, &init_args);
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
        Allowlist {
            schema: SCHEMA_V1.to_string(),
            target: self.target.info.clone(),
            started_at: self.started_at,
            ended_at: OffsetDateTime::now_utc(),
            complete,
            host: HostInfo::current(),
            recorder: RecorderInfo {
                version: env!("CARGO_PKG_VERSION").to_string(),
                attach: attach.to_string(),
            },
            totals,
            syscalls,
            multiplexed: self.multiplexed(),
            runtime_init,
            executables: self.execs.runs(),
            privilege_drop: attribution::privilege_drop(&mine, name_of),
            missed_start: self.missed_start,
        }
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
        let list = self.allowlist(counter.attach_kind(), complete, details);
        list.write(&self.out)?;
        Ok(list)
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
