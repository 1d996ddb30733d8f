//! Reading what was counted: a target's counters (one array element every CPU shares) as
//! plain values, which targets changed since the last look, and the attribution and argument
//! tables.

use agent_audit_ebpf::{
    SyscallCounters, MAP_COUNTERS, MAP_EXIT_COUNTERS, MAP_INIT_COUNTERS, MAP_INIT_EXIT_COUNTERS,
};
use aya::maps::{Array, MapData};

use super::{map_ref, ArgUse, BpfError, ProgramUse, SyscallCounter, TargetSlot};
use crate::syscalls::Arch;

/// Counts read for one target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetCounts {
    /// Non-zero (arch, nr, count) triples.
    pub syscalls: Vec<(Arch, u32, u64)>,
    /// Calls whose number was outside `0..NR_SLOTS`.
    pub out_of_range: u64,
    /// Compat `socketcall` operations: (op, count), non-zero only.
    pub socketcall_ops: Vec<(u32, u64)>,
    /// Compat `ipc` operations: (op, count), non-zero only.
    pub ipc_ops: Vec<(u32, u64)>,
}

impl TargetCounts {
    /// Every call counted.
    pub fn total(&self) -> u64 {
        self.syscalls.iter().map(|s| s.2).sum::<u64>() + self.out_of_range
    }
}

/// What was recorded about each call beyond its count, for every target at once (each is one
/// shared table, read once per batch of allowlists).
#[derive(Clone, Debug, Default)]
pub struct CallDetails {
    /// Which program made which syscall.
    pub programs: Vec<ProgramUse>,
    /// The values of the tracked arguments.
    pub args: Vec<ArgUse>,
}

impl SyscallCounter {
    /// Whether the target counted a call since the last time this was asked for its slot
    /// (always true where that cannot be known). Asked before its counters are read: a call
    /// that races with the read marks the slot again.
    pub fn take_changed(&self, slot: TargetSlot) -> bool {
        self.dirty.as_ref().is_none_or(|d| d.take(slot.0))
    }
    /// Reads a target's syscall-entry counters, as counted (the counters are shared by every CPU).
    pub fn read(&self, slot: TargetSlot) -> Result<TargetCounts, BpfError> {
        self.read_map(MAP_COUNTERS, slot)
    }

    /// Reads the calls a target made during its runtime-init phase (before its first exec);
    /// empty for targets that started in the workload phase.
    pub fn read_runtime_init(&self, slot: TargetSlot) -> Result<TargetCounts, BpfError> {
        self.read_map(MAP_INIT_COUNTERS, slot)
    }

    /// Reads a target's syscall-exit counters (zero unless the exit counter is attached).
    pub fn read_exits(&self, slot: TargetSlot) -> Result<TargetCounts, BpfError> {
        self.read_map(MAP_EXIT_COUNTERS, slot)
    }

    /// Exits counted while the target was in the runtime's init (see [`Self::read_exits`]).
    pub fn read_init_exits(&self, slot: TargetSlot) -> Result<TargetCounts, BpfError> {
        self.read_map(MAP_INIT_EXIT_COUNTERS, slot)
    }

    fn read_map(&self, name: &'static str, slot: TargetSlot) -> Result<TargetCounts, BpfError> {
        let counters: Array<&MapData, SyscallCounters> = map_ref(&self.ebpf, name)?;
        let sums = counters
            .get(&slot.0, 0)
            .map_err(|source| BpfError::Map { name, source })?;
        let mut out = TargetCounts {
            out_of_range: sums.other.iter().sum::<u64>(),
            ..TargetCounts::default()
        };
        for (abi, row) in sums.counts.iter().enumerate() {
            // Numbered in u32 as syscalls are (a row has NR_SLOTS entries).
            for (nr, &count) in (0u32..).zip(row) {
                if count == 0 {
                    continue;
                }
                match self.abi_arch[abi] {
                    Some(arch) => out.syscalls.push((arch, nr, count)),
                    // An ABI this host cannot have: keep the calls in the totals.
                    None => out.out_of_range += count,
                }
            }
        }
        let nonzero = |ops: &[u64]| {
            (0u32..)
                .zip(ops)
                .filter(|(_, &c)| c > 0)
                .map(|(op, &c)| (op, c))
                .collect::<Vec<_>>()
        };
        out.socketcall_ops = nonzero(&sums.socketcall);
        out.ipc_ops = nonzero(&sums.ipc);
        Ok(out)
    }

    /// Reads the attribution and argument tables, for all targets.
    pub fn read_details(&self) -> Result<CallDetails, BpfError> {
        Ok(CallDetails {
            programs: self.read_attribution()?,
            args: self.read_args()?,
        })
    }

    /// Writes pending kernel-side log records to the log.
    pub fn flush_logs(&mut self) {
        if let Some(l) = &mut self.logger {
            l.flush();
        }
    }
}
