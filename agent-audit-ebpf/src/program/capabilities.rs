//! Each capability check a target makes after its runtime's init, seen in `cap_capable`, the
//! commoncap LSM hook every `capable()`/`ns_capable()`/`has_capability()` check goes through.
//! Preferred: `fexit`, which gives the capability, the `opts` (whether the check is audited)
//! and the result in one program; it needs BPF trampolines. Else the `capability:cap_capable`
//! tracepoint (Linux 6.14+) as `tp_btf`: capability and result, but no `opts`, so every check
//! counts as audited. There is no kprobe path (see docs/allowlist-format.md).

use core::intrinsics::{atomic_xadd, AtomicOrdering};

use agent_audit_ebpf::{
    CapCounters, CapProgramKey, CAP_NOAUDIT, CAP_OPT_NOAUDIT, CAP_OUTCOMES, CAP_PROGRAM_ENTRIES,
    CAP_REFUSED, CAP_SLOTS, MAX_TARGETS, NOAUDIT_CALLER_SLOTS, NOAUDIT_FRAMES, NO_TARGET,
};
use aya_ebpf::{
    helpers::generated::{bpf_get_current_comm, bpf_get_stack},
    macros::{btf_tracepoint, fexit, map},
    maps::{Array, HashMap},
    programs::{BtfTracePointContext, FExitContext},
    EbpfContext,
};

use super::{
    global, in_runtime_init, last_verdict_of,
    task::{BtfTask, Current},
    ATTRIBUTION, CGROUP_VERDICT, TARGET_GENERATION,
};

#[map(name = "CAP_COUNTS")]
static CAP_COUNTS: Array<CapCounters> = Array::with_max_entries(MAX_TARGETS, 0);

#[map(name = "CAP_PROGRAMS")]
static CAP_PROGRAMS: HashMap<CapProgramKey, u64> =
    HashMap::with_max_entries(CAP_PROGRAM_ENTRIES, 0);

const BPF_NOEXIST: u64 = 1;

/// See `MAP_NOAUDIT_CALLERS`.
#[map(name = "NOAUDIT_CALLERS")]
static NOAUDIT_CALLERS: Array<[[u64; 2]; NOAUDIT_CALLER_SLOTS]> = Array::with_max_entries(1, 0);

/// `fexit/cap_capable(const struct cred *cred, struct user_namespace *ns, int cap,
/// unsigned int opts)`; argument 4 is the return value (0: granted, `-EPERM`: refused).
#[fexit(function = "cap_capable")]
pub fn cap_capable_exit(ctx: FExitContext) -> i32 {
    let cap: i32 = ctx.arg(2);
    let opts: u32 = ctx.arg(3);
    let ret: i32 = ctx.arg(4);
    count_check(cap, ret, || opts & CAP_OPT_NOAUDIT != 0);
    0
}

/// `tp_btf/cap_capable(const struct cred *cred, struct user_namespace *target_ns,
/// const struct user_namespace *capable_ns, int cap, int ret)`: no `opts`, so a no-audit probe
/// is recognised by its caller ([`called_noaudit`]).
#[btf_tracepoint(function = "cap_capable")]
pub fn cap_capable_tp(ctx: BtfTracePointContext) -> i32 {
    let cap: i32 = ctx.arg(3);
    let ret: i32 = ctx.arg(4);
    count_check(cap, ret, || called_noaudit(&ctx));
    0
}

/// Whether one of the kernel's no-audit entry points is among the first kernel stack frames
/// (see `MAP_NOAUDIT_CALLERS`). Costs a stack walk, so it runs only for targets' checks.
#[inline(never)]
fn called_noaudit(ctx: &BtfTracePointContext) -> bool {
    let mut frames = [0u64; NOAUDIT_FRAMES];
    // NOAUDIT_FRAMES * 8 bytes.
    #[allow(clippy::cast_possible_truncation)]
    let size = core::mem::size_of_val(&frames) as u32;
    // SAFETY: the helper writes at most `size` bytes into `frames`; flags 0: kernel stack.
    let got = unsafe { bpf_get_stack(ctx.as_ptr(), frames.as_mut_ptr().cast(), size, 0) };
    if got <= 0 {
        return false;
    }
    let Some(callers) = NOAUDIT_CALLERS.get(0) else {
        return false;
    };
    // One comparison per pair, of a difference that is dead afterwards: the verifier prunes
    // the paths that go on (they differ only in that dead value) instead of walking one per
    // combination of outcomes. An unused entry (0, 0) has length 0 and matches nothing.
    for &ip in &frames {
        for &[start, end] in callers {
            if ip.wrapping_sub(start) < end.wrapping_sub(start) {
                return true;
            }
        }
    }
    false
}

#[inline(always)]
fn count_check(cap: i32, ret: i32, noaudit: impl FnOnce() -> bool) {
    let Some(cap) = usize::try_from(cap).ok().filter(|&c| c < CAP_SLOTS) else {
        return;
    };
    let Some(slot) = cached_target_slot(&BtfTask::current()) else {
        return;
    };
    if in_runtime_init(slot) {
        return;
    }
    let mut outcome = 0;
    if ret != 0 {
        outcome |= CAP_REFUSED;
    }
    if noaudit() {
        outcome |= CAP_NOAUDIT;
    }
    count(slot, cap, outcome);
    if global(&ATTRIBUTION) != 0 {
        attribute(slot, cap, outcome);
    }
}

/// The target slot of the current task's cgroup, from the verdict its syscall's `sys_enter`
/// cached a moment before (a capability check is made inside a syscall): this CPU's last
/// verdict when it is this cgroup's (most checks: the syscall that makes it started here and
/// nothing else ran since; read only, with its cgroup id checked around it, see
/// `last_verdict_of`), else `CGROUP_VERDICT`. The slow path is never taken, nor the cache
/// written: a trampoline program can be preempted (it runs with migration, not preemption,
/// disabled), and `sys_enter` on the same CPU would then see them half-written. A check whose
/// cgroup has no current verdict (evicted, or the target set changed during the syscall) is
/// not counted.
#[inline(always)]
fn cached_target_slot<T: Current>(current: &T) -> Option<u32> {
    let cgroup_id = current.cgroup_id();
    let generation = *TARGET_GENERATION.get(0)?;
    let verdict = match last_verdict_of(cgroup_id) {
        Some(v) if v.generation == generation => v,
        // SAFETY: values are plain data; a concurrently replaced entry reads as either verdict.
        _ => *unsafe { CGROUP_VERDICT.get(cgroup_id) }?,
    };
    (verdict.generation == generation && verdict.slot != NO_TARGET).then_some(verdict.slot)
}

#[inline(always)]
fn count(slot: u32, cap: usize, outcome: usize) {
    let Some(counters) = CAP_COUNTS.get_ptr_mut(slot) else {
        return;
    };
    // One flat index, passed through the stack so that the compiler cannot fold the bound
    // check below into the caller's (it would then index with the unchecked register, and
    // the verifier refuses the access as unbounded).
    let mut index = cap * CAP_OUTCOMES + outcome;
    // SAFETY: a local variable.
    let index = unsafe {
        core::ptr::write_volatile(&mut index, index);
        core::ptr::read_volatile(&index)
    };
    if index >= CAP_SLOTS * CAP_OUTCOMES {
        return;
    }
    // SAFETY: `counts` is `CAP_SLOTS * CAP_OUTCOMES` contiguous `u64`s (repr(C) arrays) and
    // `index` is below that; every writer adds atomically.
    unsafe {
        let c = (*counters).counts.as_mut_ptr().cast::<u64>().add(index);
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(c, 1);
    }
}

/// Which program made the check. Rare next to syscalls, so a shared hash map is enough.
#[inline(never)]
fn attribute(slot: u32, cap: usize, outcome: usize) {
    let mut key = CapProgramKey {
        slot,
        // Both below 64 (checked by the caller).
        #[allow(clippy::cast_possible_truncation)]
        cap: cap as u8,
        #[allow(clippy::cast_possible_truncation)]
        outcome: outcome as u8,
        ..CapProgramKey::default()
    };
    // SAFETY: the helper writes at most 16 bytes into `comm`, which has 16.
    if unsafe { bpf_get_current_comm(key.comm.as_mut_ptr().cast(), 16) } != 0 {
        key.comm = [0; 2];
    }
    if let Some(v) = CAP_PROGRAMS.get_ptr_mut(key) {
        // SAFETY: a live map value; every writer adds atomically.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(v, 1) };
        return;
    }
    if CAP_PROGRAMS.insert(key, 1, BPF_NOEXIST).is_err() {
        // Inserted by another CPU meanwhile (or the map is full: then counted only per slot).
        if let Some(v) = CAP_PROGRAMS.get_ptr_mut(key) {
            // SAFETY: as above.
            unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(v, 1) };
        }
    }
}
