//! One target being recorded: its slot in the kernel program, where its file goes, and how
//! its counters become an [`Allowlist`].

use std::path::PathBuf;

use time::OffsetDateTime;

use crate::allowlist::{
    Allowlist, AllowlistError, HostInfo, MultiplexedCount, RecorderInfo, SCHEMA_V1,
};
use crate::attribution;
use crate::bpf::{BpfError, ExecRecord, ProgramUse, SyscallCounter, TargetCounts, TargetSlot};
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
    /// The counts (`last`, `last_init`) of the last file written; `None` before the first
    /// write and after a failed one.
    written: Option<(TargetCounts, TargetCounts)>,
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
            written: None,
        }
    }

    /// Reads the counters; true if they differ from those of the last file written (every
    /// exec is a counted call too, so equal counts mean nothing new to write).
    pub fn refresh_changed(&mut self, counter: &SyscallCounter) -> Result<bool, BpfError> {
        self.refresh(counter)?;
        Ok(self
            .written
            .as_ref()
            .is_none_or(|(last, init)| *last != self.last || *init != self.last_init))
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

    /// The allowlist for the counts in `last`, with each syscall's programs from `uses`
    /// (every target's; this one's are picked out).
    pub fn allowlist(&self, attach: &str, complete: bool, uses: &[ProgramUse]) -> Allowlist {
        let (mut syscalls, totals) = Allowlist::syscalls_from_counts(
            self.last.syscalls.iter().copied(),
            self.last.out_of_range,
        );
        // The workload's rows get the workload's programs; the runtime's init its own.
        let (init_uses, mine): (Vec<&ProgramUse>, Vec<&ProgramUse>) = uses
            .iter()
            .filter(|u| u.slot == self.slot)
            .partition(|u| u.runtime_init);
        attribution::attach_programs(&mut syscalls, &mine);
        let mut runtime_init =
            Allowlist::syscalls_from_counts(self.last_init.syscalls.iter().copied(), 0).0;
        attribution::attach_programs(&mut runtime_init, &init_uses);
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

    /// Reads the counters and writes the file atomically; `uses` is the attribution read for
    /// all targets at once (it is one table).
    pub fn write(
        &mut self,
        counter: &SyscallCounter,
        complete: bool,
        uses: &[ProgramUse],
    ) -> Result<Allowlist, RecordingError> {
        self.refresh(counter)?;
        let list = self.allowlist(counter.attach_kind(), complete, uses);
        self.written = None;
        list.write(&self.out)?;
        self.written = Some((self.last.clone(), self.last_init.clone()));
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
