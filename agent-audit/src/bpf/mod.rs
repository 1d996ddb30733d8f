//! The only module that knows aya: loads the embedded kernel program, attaches it to
//! `sys_enter`, manages target slots and reads the per-CPU counters into plain values.
//!
//! Minimum kernel: 5.8 (CAP_BPF/CAP_PERFMON, `bpf_get_current_ancestor_cgroup_id` in tracing
//! programs); `tp_btf` additionally needs BTF (`CONFIG_DEBUG_INFO_BTF`, /sys/kernel/btf/vmlinux).

mod args;
mod attribution;
mod batch;
mod btf_scan;
mod capabilities;
mod dirty;
mod error;
mod layout;
mod load;
mod read;
mod slots;
mod targets;

use agent_audit_ebpf::ABI_COUNT;
use aya::maps::MapData;
use aya::maps::RingBuf;
use aya::Ebpf;

pub use args::ArgUse;
pub use attribution::{ExecRecord, ProgramUse};
pub use capabilities::{CapabilityCounts, CapabilityHook, CapabilityProgramCount};
pub use error::BpfError;
pub use layout::KernelLayout;
pub use load::{attach_empty_program, AttachMode, CounterOptions, SysEnterKind};
pub use read::{CallDetails, TargetCounts};

use crate::syscalls::Arch;
use load::Attachment;
use slots::SlotPool;

/// A target's position in the per-target counter array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TargetSlot(u32);

impl TargetSlot {
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
    /// Execs read from the ring whose slot is not reported as a target yet.
    exec_backlog: Vec<ExecRecord>,
    /// Which slots counted a call since last asked; `None` if the map could not be mapped
    /// (every slot then counts as changed).
    dirty: Option<dirty::DirtyWords>,
    /// How capability checks are counted, when they are (see `capabilities`).
    capability_hook: Option<CapabilityHook>,
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
