//! Calls a target's seccomp filter refused (see `program/refusals.rs` in the kernel crate):
//! attaching the `sys_exit`, `sched_switch` and `sched_process_exit` programs that find them, reading the shared
//! table they count in, and clearing a slot's entries before the slot is reused.

use std::collections::HashMap as StdHashMap;

use agent_audit_ebpf::{
    AttribValue, RefusalKey, ABI_COMPAT32, ABI_COUNT, ABI_NATIVE, ABI_X32, ATTRIB_ROOT,
    ATTRIB_RUNTIME_INIT, MAP_FILTER_BASELINE, MAP_IN_SYSCALL_LOST, MAP_REFUSALS,
    MAP_REFUSALS_UNNAMED, PROG_SCHED_PROCESS_EXIT_REFUSALS, PROG_SCHED_SWITCH_REFUSALS,
    PROG_SYS_EXIT_REFUSALS, REFUSAL_ACTION_SHIFT, REFUSAL_ERRNO, REFUSAL_KILL, REFUSAL_ORIGIN_OWN,
    REFUSAL_ORIGIN_RUNTIME, REFUSAL_ORIGIN_SHIFT, REFUSAL_TRAP,
};
use aya::maps::{Array, HashMap, MapData};
use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf};

use super::{btf_scan::KernelBtf, map_mut, map_ref, Attachment, BpfError, TargetSlot};
use crate::syscalls::Arch;

/// What seccomp did with a refused call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefusalAction {
    /// The call failed with an errno (`SCMP_ACT_ERRNO`; also a user-notification
    /// supervisor's error answer and `SCMP_ACT_TRACE` without a tracer).
    Errno,
    /// `SIGSYS` was sent (`SCMP_ACT_TRAP`).
    Trap,
    /// The task was killed (`SCMP_ACT_KILL_PROCESS`, `SCMP_ACT_KILL_THREAD`).
    Kill,
}

/// Which filters the refused task had.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FilterOrigin {
    /// Only those its runtime handed to the workload's first exec: the profile in force.
    Runtime,
    /// More: the workload installed filters of its own (the kernel does not say which one
    /// refused the call).
    Own,
    /// The target was attached while running: its runtime's filters are not known.
    Unknown,
}

/// One program's refused calls of one syscall in one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusalUse {
    /// The target.
    pub slot: TargetSlot,
    /// Arch of the call.
    pub arch: Arch,
    /// Syscall number.
    pub nr: u32,
    /// Task name (`comm`).
    pub comm: String,
    /// Whether the caller was uid 0.
    pub root: bool,
    /// Whether the call was made in the runtime-init phase.
    pub runtime_init: bool,
    /// What seccomp did.
    pub action: RefusalAction,
    /// Whose filters the task had.
    pub origin: FilterOrigin,
    /// Calls refused.
    pub count: u64,
    /// `CLOCK_MONOTONIC` ns of the first and last refusal.
    pub first_ns: u64,
    /// See `first_ns`.
    pub last_ns: u64,
}

/// The small BTFs the three `tp_btf` programs are loaded with (see `sys_enter_btf` in the
/// parent module): each holds its attach point's typedef at the kernel's id.
pub(super) struct RefusalBtfs {
    sys_exit: Btf,
    sched_switch: Btf,
    process_exit: Btf,
}

impl RefusalBtfs {
    /// From the kernel's BTF; `None` if either typedef is missing.
    pub(super) fn find(kernel: &KernelBtf) -> Option<Self> {
        let small = |name: &str| {
            let id = kernel.typedef_id(name)?;
            let blob = super::btf_scan::with_typedef_at(id, name)?;
            Btf::parse(&blob, aya::Endianness::default()).ok()
        };
        Some(Self {
            sys_exit: small("btf_trace_sys_exit")?,
            sched_switch: small("btf_trace_sched_switch")?,
            process_exit: small("btf_trace_sched_process_exit")?,
        })
    }
}

/// Each ABI's `exit` and `exit_group` numbers, which `sys_enter` must not mark entered.
pub(super) fn no_return_nrs(abi_arch: &[Option<Arch>; ABI_COUNT]) -> [[u32; 2]; ABI_COUNT] {
    let mut nrs = [[u32::MAX; 2]; ABI_COUNT];
    for abi in [ABI_NATIVE, ABI_COMPAT32, ABI_X32] {
        if let Some(arch) = abi_arch[abi] {
            nrs[abi] = ["exit", "exit_group"].map(|n| arch.syscall_nr(n).unwrap_or(u32::MAX));
        }
    }
    nrs
}

/// The three refusal programs of the object, picked out of its program list.
#[derive(Default)]
pub(super) struct Programs<'a> {
    sched_switch: Option<&'a mut aya::programs::Program>,
    sys_exit: Option<&'a mut aya::programs::Program>,
    process_exit: Option<&'a mut aya::programs::Program>,
}

impl<'a> Programs<'a> {
    /// Keeps `program` if it is one of the three.
    pub(super) fn offer(&mut self, name: &str, program: &'a mut aya::programs::Program) {
        match name {
            PROG_SCHED_SWITCH_REFUSALS => self.sched_switch = Some(program),
            PROG_SYS_EXIT_REFUSALS => self.sys_exit = Some(program),
            PROG_SCHED_PROCESS_EXIT_REFUSALS => self.process_exit = Some(program),
            _ => {}
        }
    }

    /// Verifies and attaches `sched_switch` first, then `sys_exit`: an exit is only told
    /// unentered once blocked calls are carried across switches. `sched_process_exit` last
    /// (it counts kills, which `sys_exit` leaves to it).
    pub(super) fn attach(self, btfs: &RefusalBtfs) -> Result<Vec<Attachment>, BpfError> {
        let mut attached = Vec::with_capacity(3);
        for (name, event, btf, program) in [
            (
                PROG_SCHED_SWITCH_REFUSALS,
                "sched_switch",
                &btfs.sched_switch,
                self.sched_switch,
            ),
            (
                PROG_SYS_EXIT_REFUSALS,
                "sys_exit",
                &btfs.sys_exit,
                self.sys_exit,
            ),
            (
                PROG_SCHED_PROCESS_EXIT_REFUSALS,
                "sched_process_exit",
                &btfs.process_exit,
                self.process_exit,
            ),
        ] {
            let err = |source| BpfError::Attach {
                attach: name,
                source,
            };
            let program = program.ok_or(BpfError::Missing(name))?;
            let prog: &mut BtfTracePoint = program.try_into().map_err(err)?;
            prog.load(event, btf).map_err(err)?;
            let link = prog.attach().map_err(err)?;
            attached.push(Box::new(prog.take_link(link).map_err(err)?) as Attachment);
        }
        Ok(attached)
    }
}

/// Every (target, program, syscall, action, origin) refused so far.
pub(super) fn read(
    ebpf: &Ebpf,
    abi_arch: &[Option<Arch>; ABI_COUNT],
) -> Result<Vec<RefusalUse>, BpfError> {
    let Some(_) = ebpf.map(MAP_REFUSALS) else {
        return Ok(Vec::new());
    };
    let table: HashMap<&MapData, RefusalKey, AttribValue> = map_ref(ebpf, MAP_REFUSALS)?;
    let mut merged: StdHashMap<RefusalKey, AttribValue> = StdHashMap::new();
    for item in table.iter() {
        let (k, v) = item.map_err(|source| BpfError::Map {
            name: MAP_REFUSALS,
            source,
        })?;
        merged.insert(k, v);
    }
    Ok(merged
        .into_iter()
        .filter_map(|(k, v)| {
            Some(RefusalUse {
                slot: TargetSlot(k.slot_plus_one.checked_sub(1)?),
                arch: abi_arch.get(usize::from(k.abi)).copied().flatten()?,
                nr: u32::from(k.nr),
                comm: super::attribution::comm_string(&k.comm),
                root: k.flags & ATTRIB_ROOT != 0,
                runtime_init: k.flags & ATTRIB_RUNTIME_INIT != 0,
                action: action_of(k.flags),
                origin: origin_of(k.flags),
                count: v.count,
                first_ns: v.first_ns,
                last_ns: v.last_ns,
            })
        })
        .collect())
}

fn action_of(flags: u8) -> RefusalAction {
    match (flags >> REFUSAL_ACTION_SHIFT) & 3 {
        REFUSAL_ERRNO => RefusalAction::Errno,
        REFUSAL_TRAP => RefusalAction::Trap,
        REFUSAL_KILL => RefusalAction::Kill,
        // Not written by the kernel program; the strongest reading.
        _ => RefusalAction::Kill,
    }
}

fn origin_of(flags: u8) -> FilterOrigin {
    match (flags >> REFUSAL_ORIGIN_SHIFT) & 3 {
        REFUSAL_ORIGIN_RUNTIME => FilterOrigin::Runtime,
        REFUSAL_ORIGIN_OWN => FilterOrigin::Own,
        _ => FilterOrigin::Unknown,
    }
}

/// Each slot's refusals the kernel counted but could not name (its table was full), indexed
/// by slot; empty when refusals are not counted.
pub(super) fn unnamed(ebpf: &Ebpf) -> Result<Vec<u64>, BpfError> {
    let Some(_) = ebpf.map(MAP_REFUSALS_UNNAMED) else {
        return Ok(Vec::new());
    };
    let counts: Array<&MapData, u64> = map_ref(ebpf, MAP_REFUSALS_UNNAMED)?;
    counts
        .iter()
        .collect::<Result<Vec<u64>, _>>()
        .map_err(|source| BpfError::Map {
            name: MAP_REFUSALS_UNNAMED,
            source,
        })
}

/// Blocked calls whose entry mark found the kernel's table full (their exits may have been
/// counted as refusals), for every target at once.
pub(super) fn lost_marks(ebpf: &Ebpf) -> u64 {
    map_ref::<Array<&MapData, u64>>(ebpf, MAP_IN_SYSCALL_LOST)
        .and_then(|a| {
            a.get(&0, 0).map_err(|source| BpfError::Map {
                name: MAP_IN_SYSCALL_LOST,
                source,
            })
        })
        .unwrap_or(0)
}

/// Forgets the refusals and the filter baseline of slots about to be reused.
pub(super) fn clear(ebpf: &mut Ebpf, slots: &[u32]) -> Result<(), BpfError> {
    if slots.is_empty() || ebpf.map(MAP_REFUSALS).is_none() {
        return Ok(());
    }
    let owners: std::collections::HashSet<u32> = slots.iter().map(|s| s + 1).collect();
    let mut table: HashMap<&mut MapData, RefusalKey, AttribValue> = map_mut(ebpf, MAP_REFUSALS)?;
    let stale: Vec<RefusalKey> = table
        .keys()
        .flatten()
        .filter(|k| owners.contains(&k.slot_plus_one))
        .collect();
    for k in stale {
        let _ = table.remove(&k);
    }
    let mut unnamed: Array<&mut MapData, u64> = map_mut(ebpf, MAP_REFUSALS_UNNAMED)?;
    for &slot in slots {
        unnamed.set(slot, 0, 0).map_err(|source| BpfError::Map {
            name: MAP_REFUSALS_UNNAMED,
            source,
        })?;
    }
    let mut baseline: Array<&mut MapData, u32> = map_mut(ebpf, MAP_FILTER_BASELINE)?;
    for &slot in slots {
        baseline.set(slot, 0, 0).map_err(|source| BpfError::Map {
            name: MAP_FILTER_BASELINE,
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_decode_as_the_kernel_program_encodes_them() {
        let flags = |action: u8, origin: u8| {
            (action << REFUSAL_ACTION_SHIFT) | (origin << REFUSAL_ORIGIN_SHIFT) | ATTRIB_ROOT
        };
        assert_eq!(action_of(flags(REFUSAL_ERRNO, 0)), RefusalAction::Errno);
        assert_eq!(action_of(flags(REFUSAL_TRAP, 0)), RefusalAction::Trap);
        assert_eq!(action_of(flags(REFUSAL_KILL, 0)), RefusalAction::Kill);
        assert_eq!(
            origin_of(flags(0, REFUSAL_ORIGIN_RUNTIME)),
            FilterOrigin::Runtime
        );
        assert_eq!(origin_of(flags(0, REFUSAL_ORIGIN_OWN)), FilterOrigin::Own);
        assert_eq!(origin_of(flags(0, 0)), FilterOrigin::Unknown);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn exit_and_exit_group_are_never_marked_entered() {
        let arches = [Some(Arch::X86_64), Some(Arch::X86), Some(Arch::X32)];
        let nrs = no_return_nrs(&arches);
        assert_eq!(nrs[ABI_NATIVE], [60, 231]);
        assert_eq!(nrs[ABI_COMPAT32], [1, 252]);
        assert_eq!(nrs[ABI_X32], [60, 231]);
        assert_eq!(
            no_return_nrs(&[None; ABI_COUNT]),
            [[u32::MAX; 2]; ABI_COUNT]
        );
    }
}
