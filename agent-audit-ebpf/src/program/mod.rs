//! The BPF programs and maps. Built only for `target_arch = "bpf"`.

mod args;
mod attribution;
mod capabilities;
mod departures;
mod exec;
mod names;
mod refusals;
mod task;

use agent_audit_ebpf::{
    CgroupVerdict, SyscallCounters, ABI_COMPAT32, ABI_NATIVE, ABI_X32, MAX_CACHED_CGROUPS,
    MAX_CGROUP_DEPTH, MAX_STARVED, MAX_TARGETS, MAX_TARGET_ENTRIES, MUX_SLOTS, NO_TARGET, NR_SLOTS,
    PHASE_RUNTIME_INIT, PHASE_WORKLOAD, WATCH_PARENT, X32_SYSCALL_BIT,
};
use core::intrinsics::{atomic_xadd, AtomicOrdering};

use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    helpers::{bpf_get_current_ancestor_cgroup_id, bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, Queue},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
    EbpfContext,
};
use aya_log_ebpf::debug;
use task::{BtfTask, Current, HelperTask};

// Host facts from userspace (see the GLOBAL_* docs in lib.rs). Read-only after load, so the
// verifier sees constants and drops the compat branches entirely where detection is off.
#[no_mangle]
static COMPAT_FLAG_OFFSET: u32 = 0;
#[no_mangle]
static COMPAT_FLAG_MASK: u32 = 0;
#[no_mangle]
static COMPAT_SOCKETCALL_NR: u32 = u32::MAX;
#[no_mangle]
static COMPAT_IPC_NR: u32 = u32::MAX;
#[no_mangle]
static COMPAT_ARG0_OFFSET: u32 = 0;
#[no_mangle]
pub(crate) static PRCTL_NR: u32 = u32::MAX;
/// 0: attribution off (`--no-attribution`): counting only, the cheapest inside path.
#[no_mangle]
pub(crate) static ATTRIBUTION: u32 = 1;
/// Native clone, clone3, fork, vfork: a new task "returns" from them without having entered.
#[no_mangle]
static FORK_NRS: [u32; 4] = [u32::MAX; 4];

#[map(name = "TARGET_GENERATION")]
pub(crate) static TARGET_GENERATION: Array<u32> = Array::with_max_entries(1, 0);

/// One per-CPU word the verifier cannot see through: see [`opaque`].
#[map(name = "OPAQUE")]
static OPAQUE: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Returns `value` by way of map memory, whose contents the verifier does not track, so that
/// it treats the result as any value rather than the exact constant it followed. Used where
/// a slow-path loop ends with one of many exact values (the ancestor level at which a watched
/// parent was found, the slot found): without it the verifier checks everything after the
/// loop once per value — about 245 000 instructions per program instead of a few thousand,
/// most of `record`'s and `run`'s start-up time. Costs one per-CPU array access, only on the
/// first call of a cgroup.
#[inline(always)]
fn opaque(value: u64) -> u64 {
    match OPAQUE.get_ptr_mut(0) {
        // SAFETY: this CPU's element of an array map; programs on one CPU do not nest here.
        Some(slot) => unsafe {
            core::ptr::write_volatile(slot, value);
            core::ptr::read_volatile(slot)
        },
        None => value,
    }
}

#[map(name = "TARGETS")]
static TARGETS: HashMap<u64, u32> = HashMap::with_max_entries(MAX_TARGET_ENTRIES, 0);

#[map(name = "FREE_SLOTS")]
static FREE_SLOTS: Queue<u32> = Queue::with_max_entries(MAX_TARGETS, 0);

#[map(name = "STARVED")]
static STARVED: HashMap<u64, u64> = HashMap::with_max_entries(MAX_STARVED, 0);

/// The last cgroup this CPU resolved, and its verdict.
#[repr(C)]
pub(crate) struct LastVerdict {
    cgroup_id: u64,
    verdict: CgroupVerdict,
}

#[map(name = "LAST_VERDICT")]
static LAST_VERDICT: PerCpuArray<LastVerdict> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "CGROUP_VERDICT")]
pub(crate) static CGROUP_VERDICT: LruHashMap<u64, CgroupVerdict> =
    LruHashMap::with_max_entries(MAX_CACHED_CGROUPS, 0);

#[map(name = "COUNTERS")]
static COUNTERS: Array<SyscallCounters> = Array::with_max_entries(MAX_TARGETS, 0);

#[map(name = "INIT_COUNTERS")]
static INIT_COUNTERS: Array<SyscallCounters> = Array::with_max_entries(MAX_TARGETS, 0);

#[map(name = "PHASE")]
static PHASE: Array<u32> = Array::with_max_entries(MAX_TARGETS, 0);

#[map(name = "DIRTY")]
static DIRTY: Array<u32> = Array::with_max_entries(MAX_TARGETS, BPF_F_MMAPABLE);

#[map(name = "EXIT_COUNTERS")]
static EXIT_COUNTERS: Array<SyscallCounters> = Array::with_max_entries(MAX_TARGETS, 0);

#[map(name = "INIT_EXIT_COUNTERS")]
static INIT_EXIT_COUNTERS: Array<SyscallCounters> = Array::with_max_entries(MAX_TARGETS, 0);

/// `tp_btf/sys_enter(struct pt_regs *regs, long id)`: the preferred attachment (needs BTF).
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_btf(ctx: BtfTracePointContext) -> i32 {
    let regs: *const u8 = ctx.arg(0);
    let id: i64 = ctx.arg(1);
    count_enter::<_, _, args::BtfRegs>(&ctx, &BtfTask::current(), regs, id);
    0
}

/// `raw_tp/sys_enter`: same arguments, for kernels without BTF.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter_raw(ctx: RawTracePointContext) -> i32 {
    let regs: *const u8 = ctx.arg(0);
    let id: i64 = ctx.arg(1);
    count_enter::<_, _, args::ProbedRegs>(&ctx, &HelperTask, regs, id);
    0
}

/// Does nothing: attached alone, it measures what the kernel charges for any program on
/// `sys_enter` (the benchmark's floor).
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter_empty(_ctx: BtfTracePointContext) -> i32 {
    0
}

/// `raw_syscalls:sys_exit` (classic tracepoint: `long id` at offset 8), for `verify` only,
/// where speed matters less than running everywhere.
#[tracepoint(category = "raw_syscalls", name = "sys_exit")]
pub fn sys_exit(ctx: TracePointContext) -> u32 {
    // SAFETY: offset 8 is `long id` in the raw_syscalls:sys_exit format.
    let Ok(id) = (unsafe { ctx.read_at::<i64>(8) }) else {
        return 0;
    };
    // SAFETY: offset 16 is `long ret`.
    let ret = unsafe { ctx.read_at::<i64>(16) }.unwrap_or(-1);
    let Some(slot) = target_slot(&ctx, &HelperTask) else {
        return 0;
    };
    let (abi, nr) = abi_and_nr(id, &HelperTask);
    if ret == 0 && abi == ABI_NATIVE && is_fork_family(nr) {
        // The new child's first return: it never entered this call.
        return 0;
    }
    let exits = if in_runtime_init(slot) {
        INIT_EXIT_COUNTERS.get_ptr_mut(slot)
    } else {
        EXIT_COUNTERS.get_ptr_mut(slot)
    };
    if let Some(counters) = exits {
        bump(counters, abi, nr);
    }
    0
}

#[inline(always)]
fn is_fork_family(nr: u64) -> bool {
    let nrs = global(&FORK_NRS);
    nrs.iter().any(|&f| u64::from(f) == nr)
}

#[inline(always)]
fn count_enter<C: EbpfContext, T: Current, R: args::SavedRegs>(
    ctx: &C,
    current: &T,
    regs: *const u8,
    id: i64,
) {
    let Some(slot) = target_slot(ctx, current) else {
        return;
    };
    let (abi, nr) = abi_and_nr(id, current);
    refusals::mark_entered(current, abi, nr);
    let runtime_init = in_runtime_init(slot);
    let Some(counters) = counters_of(slot, runtime_init) else {
        return;
    };
    bump(counters, abi, nr);
    if abi == ABI_COMPAT32 {
        count_multiplexer(counters, regs, nr);
    }
    if global(&ATTRIBUTION) != 0 {
        attribution::attribute(current, slot, abi, nr, runtime_init);
    }
    if args::enabled() {
        args::record::<R>(regs, slot, abi, nr, runtime_init);
    }
    mark_changed(slot);
}

/// Whether target `slot` is still in its runtime's init (before the workload's first exec).
#[inline(always)]
pub(crate) fn in_runtime_init(slot: u32) -> bool {
    match PHASE.get_ptr_mut(slot) {
        // SAFETY: a valid element of an array map; a racing write stores the same value.
        Some(phase) => unsafe { *phase == PHASE_RUNTIME_INIT },
        None => false,
    }
}

/// Tells userspace that the slot counted a call since it last looked (see `MAP_DIRTY`). Last,
/// after every other write of the call. Written only when clear: a busy target's word stays
/// in every CPU's cache instead of bouncing between them.
#[inline(always)]
fn mark_changed(slot: u32) {
    if let Some(dirty) = DIRTY.get_ptr_mut(slot) {
        // SAFETY: a valid element of an array map; racing writers store the same value.
        unsafe {
            if core::ptr::read_volatile(dirty) == 0 {
                core::ptr::write_volatile(dirty, 1);
            }
        }
    }
}

/// The counters of `slot` for the phase. Each map has its own lookup call so that the
/// verifier can inline both (a lookup in a map chosen at run time is a call through the map's
/// operations, several times the cost of the rest of the counting).
#[inline(always)]
fn counters_of(slot: u32, runtime_init: bool) -> Option<*mut SyscallCounters> {
    if runtime_init {
        INIT_COUNTERS.get_ptr_mut(slot)
    } else {
        COUNTERS.get_ptr_mut(slot)
    }
}

/// The target slot counting the current task, if any. This is the only work done for tasks
/// outside every target: reading the task's cgroup id and two array loads when this CPU saw
/// the same cgroup last (the common case: a task runs many syscalls per time slice), else one
/// hash lookup.
#[inline(always)]
pub(crate) fn target_slot<C: EbpfContext, T: Current>(ctx: &C, current: &T) -> Option<u32> {
    let cgroup_id = current.cgroup_id();
    let generation = *TARGET_GENERATION.get(0)?;
    let last = LAST_VERDICT.get_ptr_mut(0)?;
    // SAFETY: this CPU's element; programs on one CPU do not nest on sys_enter.
    let last = unsafe { &mut *last };
    if last.cgroup_id == cgroup_id && last.verdict.generation == generation {
        let slot = last.verdict.slot;
        return (slot != NO_TARGET).then_some(slot);
    }
    // SAFETY: values are plain data; a concurrently replaced entry reads as either verdict.
    let slot = match unsafe { CGROUP_VERDICT.get(cgroup_id) } {
        Some(v) if v.generation == generation => v.slot,
        _ => resolve_verdict(ctx, cgroup_id, generation),
    };
    // The cgroup id last, after an invalid one (no cgroup has id 0): a reader on this CPU that
    // ran while this program was preempted between the stores sees no cgroup, never a cgroup
    // with another's verdict (see `last_verdict_of`). Volatile: kept, and in this order.
    // SAFETY: plain stores into this CPU's element.
    unsafe {
        core::ptr::write_volatile(&mut last.cgroup_id, 0);
        core::ptr::write_volatile(&mut last.verdict, CgroupVerdict { slot, generation });
        core::ptr::write_volatile(&mut last.cgroup_id, cgroup_id);
    }
    (slot != NO_TARGET).then_some(slot)
}

/// This CPU's cached verdict when it is `cgroup_id`'s, for programs that only read the cache
/// and may be preempted while reading it (the capability hook). The cgroup id is read before
/// and after the verdict: a `sys_enter` that rewrote the cache in between (this task was
/// preempted) changes it, and one preempted halfway leaves it invalid (see `target_slot`).
#[inline(always)]
pub(crate) fn last_verdict_of(cgroup_id: u64) -> Option<CgroupVerdict> {
    let last = LAST_VERDICT.get_ptr(0)?;
    // SAFETY: this CPU's element; volatile reads, in this order, of plain data.
    let (before, verdict, after) = unsafe {
        (
            core::ptr::read_volatile(core::ptr::addr_of!((*last).cgroup_id)),
            core::ptr::read_volatile(core::ptr::addr_of!((*last).verdict)),
            core::ptr::read_volatile(core::ptr::addr_of!((*last).cgroup_id)),
        )
    };
    (before == cgroup_id && after == cgroup_id).then_some(verdict)
}

/// The target's first successful exec: the runtime has handed over to the workload. Called
/// when the exec has completed (`sched_process_exec`), so that calls the runtime's other
/// threads make while the exec is under way, and failed exec attempts, stay in the init phase.
#[inline(always)]
pub(crate) fn end_runtime_init(slot: u32) {
    if let Some(phase) = PHASE.get_ptr_mut(slot) {
        // SAFETY: a valid element of an array map; racing writers store the same value.
        unsafe { *phase = PHASE_WORKLOAD };
    }
}

/// Which ABI the current syscall came through, and its number in that ABI's table: the task's
/// compat flag (x86_64 `thread_info.status`, tested with `TS_COMPAT` as the kernel's
/// `in_ia32_syscall()` does, so `int 0x80` from 64-bit code is classified right), then x32's
/// number bit.
#[inline(always)]
fn abi_and_nr<T: Current>(id: i64, current: &T) -> (usize, u64) {
    let offset = global(&COMPAT_FLAG_OFFSET);
    // The number as the kernel's unsigned syscall tables see it (-1 becomes out of range).
    let nr = id.cast_unsigned();
    if offset != 0 && current.compat_flag(offset) & global(&COMPAT_FLAG_MASK) != 0 {
        return (ABI_COMPAT32, nr);
    }
    if id > 0 && nr & X32_SYSCALL_BIT != 0 {
        return (ABI_X32, nr & !X32_SYSCALL_BIT);
    }
    (ABI_NATIVE, nr)
}

/// Counts one call in a target's counters, which every CPU shares: an atomic add, so that
/// the counters cost the same memory on any number of CPUs and stay exact.
#[inline(always)]
fn bump(counters: *mut SyscallCounters, abi: usize, nr: u64) {
    // SAFETY: `counters` is a live element of an array map; only its address is taken here.
    let counters = unsafe { &mut *counters };
    let in_table = usize::try_from(nr).ok().filter(|&nr| nr < NR_SLOTS);
    if let Some(nr) = in_table {
        if let Some(c) = counters.counts.get_mut(abi).and_then(|row| row.get_mut(nr)) {
            add_one(c);
        }
    } else if let Some(c) = counters.other.get_mut(abi) {
        // SAFETY: as in `add_one`. Sequentially consistent (the same `lock xadd` in BPF) only
        // so that LLVM does not merge the two branches' adds into one: it would then compute
        // both addresses before the bounds check, and the verifier refuses that.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(c, 1) };
    }
}

/// One more in a counter other CPUs update at the same time (BPF's atomic add; the result is
/// unused, so LLVM emits the plain `lock xadd` every BPF CPU version has).
#[inline(always)]
fn add_one(counter: *mut u64) {
    // SAFETY: a live, aligned `u64` of a map value, only ever updated atomically.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(counter, 1) };
}

/// i386 `socketcall`/`ipc` multiplex many operations through one number: count which
/// operation (the first argument) so the report can name the socket calls a 32-bit program
/// made. Rare path: compat tasks only.
#[inline(never)]
fn count_multiplexer(counters: *mut SyscallCounters, regs: *const u8, nr: u64) {
    // SAFETY: a live element of an array map; its counters are only updated atomically.
    let counters = unsafe { &mut *counters };
    let table = if nr == u64::from(global(&COMPAT_SOCKETCALL_NR)) {
        &mut counters.socketcall
    } else if nr == u64::from(global(&COMPAT_IPC_NR)) {
        &mut counters.ipc
    } else {
        return;
    };
    let arg0_at = regs.wrapping_add(global(&COMPAT_ARG0_OFFSET) as usize) as *const u64;
    // SAFETY: probe read of the saved registers; failure counts as operation 0.
    let call = unsafe { bpf_probe_read_kernel(arg0_at) }.unwrap_or(0) & 0xffff;
    let index = if (call as usize) < MUX_SLOTS {
        call as usize
    } else {
        0
    };
    if let Some(c) = table.get_mut(index) {
        add_one(c);
    }
}

/// First sight of a cgroup in this generation: find the nearest target at or above it.
/// Runs once per cgroup and generation, not once per syscall.
#[inline(never)]
fn resolve_verdict<C: EbpfContext>(ctx: &C, cgroup_id: u64, generation: u32) -> u32 {
    let mut slot = NO_TARGET;
    // Level of the child of the deepest watched parent above this cgroup, if any.
    let mut watched_child_level = 0;
    let mut level = 0;
    while level < MAX_CGROUP_DEPTH {
        // `level` < MAX_CGROUP_DEPTH (32): the same value as the helper's int.
        // SAFETY: helper without preconditions; returns 0 past the task's own level.
        let ancestor = unsafe { bpf_get_current_ancestor_cgroup_id(level.cast_signed()) };
        if ancestor == 0 {
            break;
        }
        // SAFETY: plain `u32` values.
        if let Some(&s) = unsafe { TARGETS.get(ancestor) } {
            // The deepest entry wins.
            if s == NO_TARGET {
                // Excluded: a child of a watched parent that userspace did not want.
                slot = NO_TARGET;
                watched_child_level = 0;
            } else if s & WATCH_PARENT != 0 {
                slot = NO_TARGET;
                watched_child_level = level + 1;
            } else {
                slot = s;
                watched_child_level = 0;
            }
        }
        if ancestor == cgroup_id {
            break;
        }
        level += 1;
    }
    // Both went into `opaque` as u32 and come back unchanged.
    #[allow(clippy::cast_possible_truncation)]
    let (watched_child_level, mut slot) = (
        opaque(u64::from(watched_child_level)) as u32,
        opaque(u64::from(slot)) as u32,
    );
    if slot == NO_TARGET && watched_child_level != 0 {
        // At most MAX_CGROUP_DEPTH: the same value as the helper's int.
        // SAFETY: as above; 0 when the task sits in the watched parent itself.
        let child =
            unsafe { bpf_get_current_ancestor_cgroup_id(watched_child_level.cast_signed()) };
        if child != 0 {
            slot = claim_slot(child);
            if slot != NO_TARGET {
                names::record(slot, child, watched_child_level);
            }
        }
    }
    let verdict = CgroupVerdict { slot, generation };
    let _ = CGROUP_VERDICT.insert(cgroup_id, verdict, 0);
    if slot != NO_TARGET {
        debug!(ctx, "cgroup {} counted for target slot {}", cgroup_id, slot);
    }
    slot
}

/// Makes `child` (a new cgroup below a watched parent) a target with a slot from the pool.
/// Two CPUs may race for the same child: the loser returns its slot and uses the winner's.
#[inline(never)]
fn claim_slot(child: u64) -> u32 {
    let Ok(Some(slot)) = FREE_SLOTS.pop() else {
        // Every slot is in use: tell userspace, which hands this child a slot once one frees.
        note_starved(child);
        return NO_TARGET;
    };
    if TARGETS.insert(child, slot, BPF_NOEXIST).is_ok() {
        return slot;
    }
    let _ = FREE_SLOTS.push(slot, 0);
    // SAFETY: plain `u32` value.
    match unsafe { TARGETS.get(child) } {
        Some(&s) if s & WATCH_PARENT == 0 => s,
        Some(_) => NO_TARGET, // excluded by userspace
        None => {
            // TARGETS is full: as starved as an empty pool.
            note_starved(child);
            NO_TARGET
        }
    }
}

const BPF_NOEXIST: u64 = 1;

/// Records when `child` first found no slot; later misses keep the first time.
#[inline(always)]
fn note_starved(child: u64) {
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let _ = STARVED.insert(child, now, BPF_NOEXIST);
}

/// Reads a load-time constant without letting the compiler fold the placeholder value.
#[inline(always)]
pub(crate) fn global<T: Copy>(value: &'static T) -> T {
    // SAFETY: a valid static; volatile so the value set by the loader is used.
    unsafe { core::ptr::read_volatile(value) }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
