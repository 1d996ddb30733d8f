//! The only module that knows aya: loads the embedded kernel program, attaches it to
//! `sys_enter`, manages target slots and reads the counters into plain values.
//!
//! Minimum kernel: 5.8 (CAP_BPF/CAP_PERFMON, `bpf_get_current_ancestor_cgroup_id` in tracing
//! programs); `tp_btf` additionally needs BTF (`CONFIG_DEBUG_INFO_BTF`, /sys/kernel/btf/vmlinux);
//! recording argument values needs 5.12 (BPF atomic OR of flag bits into a shared array).

mod adopt;
mod args;
mod attribution;
mod batch;
mod btf_scan;
mod capabilities;
mod departures;
mod dirty;
mod error;
pub mod footprint;
mod layout;
mod load;
pub mod pin;
mod read;
mod refusals;
mod slots;
mod targets;

use agent_audit_ebpf::ABI_COUNT;
use aya::maps::MapData;
use aya::maps::RingBuf;
use aya::Ebpf;

pub use args::ArgUse;
pub use attribution::{ExecRecord, ProgramUse};
pub use capabilities::{CapabilityCounts, CapabilityHook, CapabilityProgramCount};
pub use departures::{Departures, LeftTask};
pub use error::BpfError;
pub use layout::KernelLayout;
pub use load::{attach_empty_program, AttachMode, CounterOptions, SysEnterKind};
pub use read::{CallDetails, TargetCounts};
pub use refusals::{FilterOrigin, RefusalAction, RefusalUse};

use crate::syscalls::Arch;
use load::Attachment;
use slots::SlotPool;

/// A target's position in the per-target counter array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TargetSlot(u32);

impl TargetSlot {
    /// The slot's index in the per-slot maps.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// A slot value for unit tests of code that groups by slot.
    #[cfg(test)]
    pub fn for_tests(index: u32) -> Self {
        Self(index)
    }
}

/// The loaded, attached kernel program. Its methods live by job: loading and attaching
/// (`load`), the target set and slot pool (`targets`), reading the counters (`read`),
/// attribution and execs (`attribution`), argument values (`args`).
pub struct SyscallCounter {
    /// The programs' attachments; dropping one detaches its program.
    attachments: Vec<Attachment>,
    ebpf: Ebpf,
    /// How `sys_enter` is attached.
    attach: SysEnterKind,
    /// Which slot counts which target, and the kernel's pool of free ones.
    pool: SlotPool,
    /// The target-set generation last written to `TARGET_GENERATION`.
    generation: u32,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    abi_arch: [Option<Arch>; ABI_COUNT],
    exec_events: Option<RingBuf<MapData>>,
    /// Whether the exit counters have a slot per target.
    exits: ExitCounting,
    /// What each tracked-argument spec number means; `None` when arguments are not recorded.
    arg_meanings: Option<Vec<args::SpecMeaning>>,
    /// Entries per CPU of the per-CPU direct-mapped tables, set at load from the CPU count.
    tables: TableSizes,
    /// Execs read from the ring whose slot is not reported as a target yet.
    exec_backlog: Vec<ExecRecord>,
    /// Which slots counted a call since last asked; `None` if the map could not be mapped
    /// (every slot then counts as changed).
    dirty: Option<dirty::DirtyWords>,
    /// The programs that see tasks leave a target's cgroup are attached.
    departures_watched: bool,
    /// The refusal programs' BTFs while they wait to be attached.
    refusal_btfs: Option<refusals::RefusalBtfs>,
    /// Whether the refusal programs are attached.
    counts_refusals: bool,
    /// How capability checks are counted, when they are (see `capabilities`).
    capability_hook: Option<CapabilityHook>,
    /// Where the maps and links are pinned (`record --pin-dir`).
    pins: Option<pin::PinDir>,
    /// The programs were attached by an earlier recorder and adopted (see `adopt`).
    adopted: bool,
    /// What was loaded (see [`pin::fingerprint`]).
    fingerprint: String,
}

/// Entries per CPU of the per-CPU direct-mapped tables (attribution, argument values): all
/// CPUs' tables together stay within a fixed budget, so that their memory does not grow with
/// the CPU count; a CPU's table holds what the tasks that ran on it used, fewer with more
/// CPUs, and a key that finds its entry taken is counted in the shared overflow map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TableSizes {
    attrib: u32,
    arg_values: u32,
}

impl TableSizes {
    /// All CPUs' attribution tables together, at most (unless every table is at its minimum).
    const ATTRIB_BUDGET: u64 = 4 << 20;
    /// All CPUs' argument-value tables together, at most (likewise).
    const ARG_VALUES_BUDGET: u64 = 1 << 20;
    /// Entries per CPU at least.
    const MIN_ENTRIES: u32 = 256;

    fn for_cpus(cpus: usize) -> Self {
        use agent_audit_ebpf::{ArgValueEntry, AttribEntry, ARG_VALUE_ENTRIES, ATTRIB_ENTRIES};
        let cpus = u64::try_from(cpus.max(1)).unwrap_or(u64::MAX);
        let entries = |max: u32, entry: usize, budget: u64| {
            let entry = u64::try_from(entry).unwrap_or(u64::MAX);
            let fit = budget / entry / cpus;
            // The largest power of two that fits, within [MIN_ENTRIES, max].
            let fit = u32::try_from(fit)
                .unwrap_or(u32::MAX)
                .clamp(Self::MIN_ENTRIES, max);
            1u32 << fit.ilog2()
        };
        Self {
            attrib: entries(
                ATTRIB_ENTRIES,
                std::mem::size_of::<AttribEntry>(),
                Self::ATTRIB_BUDGET,
            ),
            arg_values: entries(
                ARG_VALUE_ENTRIES,
                std::mem::size_of::<ArgValueEntry>(),
                Self::ARG_VALUES_BUDGET,
            ),
        }
    }
}

/// Whether a counter has room for syscall exits (`verify`), or only for entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExitCounting {
    On,
    Off,
}

fn map_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<T, BpfError>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.map_mut(name).ok_or(BpfError::Missing(name))?;
    T::try_from(map).map_err(|source| BpfError::Map { name, source })
}

fn map_ref<'a, T>(ebpf: &'a Ebpf, name: &'static str) -> Result<T, BpfError>
where
    T: TryFrom<&'a aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.map(name).ok_or(BpfError::Missing(name))?;
    T::try_from(map).map_err(|source| BpfError::Map { name, source })
}

#[cfg(test)]
mod tests {
    use super::TableSizes;

    #[test]
    fn per_cpu_tables_shrink_with_the_cpu_count_within_a_budget() {
        let small = TableSizes::for_cpus(2);
        assert_eq!((small.attrib, small.arg_values), (8192, 4096));
        for cpus in [16, 64, 192, 1024] {
            let t = TableSizes::for_cpus(cpus);
            assert!(t.attrib.is_power_of_two() && t.arg_values.is_power_of_two());
            assert!(t.attrib >= TableSizes::MIN_ENTRIES && t.arg_values >= 256);
            let attrib = u64::from(t.attrib) * 48 * cpus as u64;
            assert!(
                attrib <= TableSizes::ATTRIB_BUDGET || t.attrib == 256,
                "{cpus}: {attrib}"
            );
        }
        assert_eq!(TableSizes::for_cpus(64).attrib, 1024);
        assert_eq!(TableSizes::for_cpus(192).attrib, 256);
    }
}
