//! The BPF programs and maps. Built only for `target_arch = "bpf"`.

use agent_audit_ebpf::{
    CgroupVerdict, SyscallCounters, ABI_NATIVE, ABI_X32, MAX_CACHED_CGROUPS, MAX_CGROUP_DEPTH,
    MAX_TARGETS, NO_TARGET, NR_SLOTS, X32_SYSCALL_BIT,
};
use aya_ebpf::{
    helpers::{bpf_get_current_ancestor_cgroup_id, bpf_get_current_cgroup_id},
    macros::{btf_tracepoint, map, raw_tracepoint},
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
    programs::{BtfTracePointContext, RawTracePointContext},
};
use aya_log_ebpf::debug;

#[map(name = "TARGET_GENERATION")]
static TARGET_GENERATION: Array<u32> = Array::with_max_entries(1, 0);

#[map(name = "TARGETS")]
static TARGETS: HashMap<u64, u32> = HashMap::with_max_entries(MAX_TARGETS, 0);

#[map(name = "CGROUP_VERDICT")]
static CGROUP_VERDICT: LruHashMap<u64, CgroupVerdict> =
    LruHashMap::with_max_entries(MAX_CACHED_CGROUPS, 0);

#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<SyscallCounters> = PerCpuArray::with_max_entries(MAX_TARGETS, 0);

/// `tp_btf/sys_enter(struct pt_regs *regs, long id)`: the preferred attachment (needs BTF).
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_btf(ctx: BtfTracePointContext) -> i32 {
    let id: i64 = ctx.arg(1);
    count_syscall(&ctx, id);
    0
}

/// `raw_tp/sys_enter`: same arguments, for kernels without BTF.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter_raw(ctx: RawTracePointContext) -> i32 {
    let id: i64 = ctx.arg(1);
    count_syscall(&ctx, id);
    0
}

/// Does nothing: attached alone, it measures what the kernel charges for any program on
/// `sys_enter` (the benchmark's floor).
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_empty(_ctx: BtfTracePointContext) -> i32 {
    0
}

#[inline(always)]
fn count_syscall<C: aya_ebpf::EbpfContext>(ctx: &C, id: i64) {
    // SAFETY: helper without preconditions.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    let generation = match TARGET_GENERATION.get(0) {
        Some(g) => *g,
        None => return,
    };
    // SAFETY: values are plain data; a concurrently replaced entry reads as either verdict.
    let slot = match unsafe { CGROUP_VERDICT.get(&cgroup_id) } {
        Some(v) if v.generation == generation => v.slot,
        _ => resolve_verdict(ctx, cgroup_id, generation),
    };
    if slot == NO_TARGET {
        return;
    }
    let Some(counters) = COUNTERS.get_ptr_mut(slot) else {
        return;
    };
    // SAFETY: the per-CPU element is only written by this CPU, and programs on one CPU do not
    // nest on sys_enter.
    let counters = unsafe { &mut *counters };

    let (abi, nr) = if (id as u64) & X32_SYSCALL_BIT != 0 && id > 0 {
        (ABI_X32, (id as u64) & !X32_SYSCALL_BIT)
    } else {
        (ABI_NATIVE, id as u64)
    };
    if nr < NR_SLOTS as u64 {
        if let Some(c) = counters.counts[abi].get_mut(nr as usize) {
            *c += 1;
        }
    } else if let Some(c) = counters.other.get_mut(abi) {
        *c += 1;
    }
}

/// First sight of a cgroup in this generation: find the nearest target at or above it.
/// Runs once per cgroup and generation, not once per syscall.
#[inline(never)]
fn resolve_verdict<C: aya_ebpf::EbpfContext>(ctx: &C, cgroup_id: u64, generation: u32) -> u32 {
    let mut slot = NO_TARGET;
    let mut level = 0;
    while level < MAX_CGROUP_DEPTH {
        // SAFETY: helper without preconditions; returns 0 past the task's own level.
        let ancestor = unsafe { bpf_get_current_ancestor_cgroup_id(level as i32) };
        if ancestor == 0 {
            break;
        }
        // SAFETY: plain `u32` values.
        if let Some(s) = unsafe { TARGETS.get(&ancestor) } {
            slot = *s; // the deepest target wins
        }
        if ancestor == cgroup_id {
            break;
        }
        level += 1;
    }
    let verdict = CgroupVerdict { slot, generation };
    let _ = CGROUP_VERDICT.insert(&cgroup_id, &verdict, 0);
    if slot != NO_TARGET {
        debug!(ctx, "cgroup {} counted for target slot {}", cgroup_id, slot);
    }
    slot
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
