//! Calls a target's seccomp filter refused. `sys_enter` fires only after seccomp has allowed a
//! call, but every call reaches `sys_exit`: a call of a task under a filter whose exit was not
//! preceded by an entry is a refusal. The pairing costs `sys_enter` one per-CPU store per call
//! in a target (the task marks itself in flight on its CPU); a task that leaves the CPU inside
//! a call (a blocking syscall) takes its mark to a shared map (`sched_switch`), so its exit on
//! any CPU still pairs. Outside every target `sys_exit` does what `sys_enter` does: one
//! per-CPU compare and the cgroup filter.
//!
//! A kill is counted when the killed task exits instead (`sched_process_exit`): a
//! `SCMP_ACT_KILL_THREAD` of one thread of several ends the thread inside the filter, and its
//! call never reaches `sys_exit`; the task seccomp marked dead is the one refused, whichever
//! kill it was. Outside every target that program does one load of the exiting task's
//! seccomp mode per exit.
//!
//! fentry/fexit on `__secure_computing` would run only for tasks under a filter, but the
//! kernel this was built on refuses to load any fentry/fexit program (`EPERM`, even an empty
//! one), so the tracepoints it does allow are used.

use core::intrinsics::{atomic_xadd, AtomicOrdering};

use agent_audit_ebpf::{
    AttribValue, RefusalKey, SeccompLayout, ABI_COUNT, ATTRIB_ROOT, ATTRIB_RUNTIME_INIT,
    MAX_IN_SYSCALL, MAX_REFUSAL_KEYS, MAX_TARGETS, REFUSAL_ACTION_SHIFT, REFUSAL_ERRNO,
    REFUSAL_KILL, REFUSAL_ORIGIN_OWN, REFUSAL_ORIGIN_RUNTIME, REFUSAL_ORIGIN_SHIFT,
    REFUSAL_ORIGIN_UNKNOWN, REFUSAL_TRAP,
};
use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    helpers::{bpf_get_current_comm, bpf_ktime_get_ns},
    macros::{btf_tracepoint, map},
    maps::{Array, HashMap, PerCpuArray},
    programs::BtfTracePointContext,
};

use super::{
    abi_and_nr, global, in_runtime_init, mark_changed, target_slot,
    task::{BtfTask, Current},
};

/// See `GLOBAL_REFUSALS`.
#[no_mangle]
static COUNT_REFUSALS: u32 = 0;
/// See `GLOBAL_SECCOMP_LAYOUT`.
#[no_mangle]
static SECCOMP_LAYOUT: SeccompLayout = SeccompLayout::UNKNOWN;
/// See `GLOBAL_NO_RETURN_NRS`.
#[no_mangle]
static NO_RETURN_NRS: [[u32; 2]; ABI_COUNT] = [[u32::MAX; 2]; ABI_COUNT];

#[map(name = "IN_FLIGHT")]
static IN_FLIGHT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "IN_SYSCALL")]
static IN_SYSCALL: HashMap<u64, u64> = HashMap::with_max_entries(MAX_IN_SYSCALL, BPF_F_NO_PREALLOC);

#[map(name = "IN_SYSCALL_LOST")]
static IN_SYSCALL_LOST: Array<u64> = Array::with_max_entries(1, 0);

#[map(name = "REFUSALS")]
static REFUSALS: HashMap<RefusalKey, AttribValue> =
    HashMap::with_max_entries(MAX_REFUSAL_KEYS, BPF_F_NO_PREALLOC);

#[map(name = "REFUSALS_UNNAMED")]
static REFUSALS_UNNAMED: Array<u64> = Array::with_max_entries(MAX_TARGETS, 0);

#[map(name = "FILTER_BASELINE")]
static FILTER_BASELINE: Array<u32> = Array::with_max_entries(MAX_TARGETS, 0);

/// The kernel's `SECCOMP_MODE_DEAD` (kernel/seccomp.c: `SECCOMP_MODE_FILTER + 1`): set on a
/// task a kill action is ending.
const SECCOMP_MODE_DEAD: i32 = 3;
/// `SIGSYS` as a bit of the first word of `sigset_t`.
const SIGSYS_BIT: u64 = 1 << (31 - 1);
/// `TASK_DEAD` in `sched_switch`'s `prev_state`: the task's last switch.
const TASK_DEAD: u32 = 0x80;
/// The largest errno a syscall returns (`MAX_ERRNO`).
const MAX_ERRNO: i64 = 4095;

/// Whether refusals are counted (a load-time constant: the verifier drops the rest if not).
#[inline(always)]
fn enabled() -> bool {
    global(&COUNT_REFUSALS) != 0
}

/// `sys_enter`, in a target: marks the call entered on this CPU. Not for `exit`/`exit_group`,
/// which never return to clear it.
#[inline(always)]
pub(super) fn mark_entered<T: Current>(current: &T, abi: usize, nr: u64) {
    if !enabled() {
        return;
    }
    if let Some(no_return) = NO_RETURN_NRS.get(abi) {
        let no_return = [global(&no_return[0]), global(&no_return[1])];
        if no_return.iter().any(|&n| u64::from(n) == nr) {
            return;
        }
    }
    if let Some(slot) = IN_FLIGHT.get_ptr_mut(0) {
        // SAFETY: this CPU's element; only the task running here writes it.
        unsafe { *slot = current.address() };
    }
}

/// `sched_process_exec` is about to end a slot's runtime-init phase: the filters the task
/// has now are the runtime's (the profile in force), and any later one is the workload's own.
/// Later execs leave the baseline alone.
#[inline(always)]
pub(super) fn note_runtime_filters(current: &BtfTask, slot: u32) {
    if !enabled() || !in_runtime_init(slot) {
        return;
    }
    let count = current.read_u32(global(&SECCOMP_LAYOUT.task_filter_count));
    if let Some(baseline) = FILTER_BASELINE.get_ptr_mut(slot) {
        // SAFETY: a valid element of an array map; racing writers store the same value.
        unsafe { *baseline = count.saturating_add(1) };
    }
}

/// `tp_btf/sched_switch(bool preempt, struct task_struct *prev, struct task_struct *next,
/// unsigned int prev_state)`: `prev` (the current task) leaves this CPU; a call of its that
/// was marked entered here moves with it.
#[btf_tracepoint(function = "sched_switch")]
pub fn sched_switch_refusals(ctx: BtfTracePointContext) -> i32 {
    let prev: u64 = ctx.arg(1);
    let prev_state: u32 = ctx.arg(3);
    let Some(slot) = IN_FLIGHT.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's element; `prev` is still the task running here.
    let in_flight = unsafe { &mut *slot };
    let owned = *in_flight != 0 && *in_flight == prev;
    if owned {
        *in_flight = 0;
    }
    if prev_state & TASK_DEAD != 0 {
        // Its last switch: forget a mark it left behind (a call whose exit was seen outside
        // every target), so that no later task at the same address inherits it.
        let _ = IN_SYSCALL.remove(prev);
        return 0;
    }
    if !owned {
        return 0;
    }
    if IN_SYSCALL.insert(prev, 0, 0).is_err() {
        // Full: the exit will look unentered. Userspace says the counts may be high.
        if let Some(lost) = IN_SYSCALL_LOST.get_ptr_mut(0) {
            // SAFETY: a live map value, only ever updated atomically.
            unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(lost, 1) };
        }
    }
    0
}

/// `tp_btf/sys_exit(struct pt_regs *regs, long ret)`.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_refusals(ctx: BtfTracePointContext) -> i32 {
    let current = BtfTask::current();
    let task = current.address();
    if let Some(slot) = IN_FLIGHT.get_ptr_mut(0) {
        // SAFETY: this CPU's element; only the task running here writes it.
        let in_flight = unsafe { &mut *slot };
        if *in_flight == task {
            // The call entered on this CPU and never left it: the common case.
            *in_flight = 0;
            return 0;
        }
    }
    let Some(slot) = target_slot(&ctx, &current) else {
        return 0;
    };
    if IN_SYSCALL.remove(task).is_ok() {
        // Entered, blocked, and back (perhaps on another CPU).
        return 0;
    }
    let regs: *const u8 = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    if let Some(action) = refusal_action(&current, ret) {
        count_call(&current, slot, regs, action);
    }
    0
}

/// `tp_btf/sched_process_exit(struct task_struct *p, ...)`, `p` the current task: a task
/// seccomp marked dead was killed for the call it was making, which its registers still
/// hold (a kill of the process rolls them back to the call; a kill of one thread ends it
/// inside the filter). Other threads of a killed process are not marked: one kill, one
/// refusal.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit_refusals(ctx: BtfTracePointContext) -> i32 {
    let current = BtfTask::current();
    if !killed_by_seccomp(&current) {
        return 0;
    }
    let Some(slot) = target_slot(&ctx, &current) else {
        return 0;
    };
    count_call(&current, slot, current.user_regs(), REFUSAL_KILL);
    0
}

/// Whether seccomp is ending the task (`SECCOMP_MODE_DEAD`).
#[inline(always)]
fn killed_by_seccomp(current: &BtfTask) -> bool {
    let mode = current
        .read_u32(global(&SECCOMP_LAYOUT.task_seccomp_mode))
        .cast_signed();
    mode == SECCOMP_MODE_DEAD
}

/// Counts the call in `regs` (the task's `struct pt_regs`) as refused with `action`.
#[inline(always)]
fn count_call(current: &BtfTask, slot: u32, regs: *const u8, action: u8) {
    let id: i64 = load(regs, global(&SECCOMP_LAYOUT.regs_syscall_nr));
    let (abi, nr) = abi_and_nr(id, current);
    count(current, slot, abi, nr, action);
}

/// What seccomp did, if the unentered exit is a refusal. Only a task under a filter can be
/// refused (a task that joined the target inside a call, before its runtime installed the
/// profile, exits unentered too). A kill marks the task dead, and is counted when it exits
/// (`sched_process_exit_refusals`), not here; a trap (after `syscall_rollback`)
/// leaves `SIGSYS` pending; an errno refusal returns `-errno` (as do a user-notification
/// supervisor's error answer and `SCMP_ACT_TRACE` without a tracer). Anything else — a
/// supervisor that performed the call for the task, a call in flight when a running target
/// was attached that succeeded — is not counted.
#[inline(always)]
fn refusal_action(current: &BtfTask, ret: i64) -> Option<u8> {
    let layout = &SECCOMP_LAYOUT;
    let mode = current
        .read_u32(global(&layout.task_seccomp_mode))
        .cast_signed();
    if mode == 0 {
        return None;
    }
    if mode == SECCOMP_MODE_DEAD {
        return None;
    }
    let pending: u64 = current.read_u64(global(&layout.task_pending_signal));
    if pending & SIGSYS_BIT != 0 && ret >= 0 {
        return Some(REFUSAL_TRAP);
    }
    (-MAX_ERRNO..0).contains(&ret).then_some(REFUSAL_ERRNO)
}

/// Whose filters the task had, against the slot's baseline.
#[inline(always)]
fn origin(current: &BtfTask, slot: u32) -> u8 {
    let Some(&baseline) = FILTER_BASELINE.get(slot) else {
        return REFUSAL_ORIGIN_UNKNOWN;
    };
    if baseline == 0 {
        return REFUSAL_ORIGIN_UNKNOWN;
    }
    let count = current.read_u32(global(&SECCOMP_LAYOUT.task_filter_count));
    if count >= baseline {
        REFUSAL_ORIGIN_OWN
    } else {
        REFUSAL_ORIGIN_RUNTIME
    }
}

/// Counts one refusal in the shared map (rare path).
#[inline(never)]
fn count(current: &BtfTask, slot: u32, abi: usize, nr: u64, action: u8) {
    let runtime_init = in_runtime_init(slot);
    let flags = (u8::from(current.uid() == 0) * ATTRIB_ROOT)
        | (u8::from(runtime_init) * ATTRIB_RUNTIME_INIT)
        | (action << REFUSAL_ACTION_SHIFT)
        | (origin(current, slot) << REFUSAL_ORIGIN_SHIFT);
    let comm = bpf_get_current_comm().unwrap_or([0; 16]);
    let mut words = [0u64; 2];
    let mut i = 0;
    while i < 16 {
        words[i / 8] |= u64::from(comm[i]) << ((i % 8) * 8);
        i += 1;
    }
    // The key's layout, shared with userspace (as the attribution key's): the number in 16
    // bits, the ABI (< ABI_COUNT) in a byte.
    #[allow(clippy::cast_possible_truncation)]
    let key = RefusalKey {
        comm: words,
        slot_plus_one: slot + 1,
        nr: nr as u16,
        abi: abi as u8,
        flags,
    };
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if !add(&key, now) {
        let value = AttribValue {
            count: 1,
            first_ns: now,
            last_ns: now,
        };
        const BPF_NOEXIST: u64 = 1;
        // Lost a race to insert: add to the winner's entry. Full: counted unnamed.
        if REFUSALS.insert(key, value, BPF_NOEXIST).is_err() && !add(&key, now) {
            if let Some(unnamed) = REFUSALS_UNNAMED.get_ptr_mut(slot) {
                // SAFETY: a live map value, only ever updated atomically.
                unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(unnamed, 1) };
            }
        }
    }
    mark_changed(slot);
}

/// Adds one call to an existing entry; `false` when there is none.
#[inline(always)]
fn add(key: &RefusalKey, now: u64) -> bool {
    match REFUSALS.get_ptr_mut(key) {
        Some(v) => {
            // SAFETY: a live map value; `count` is only ever updated atomically.
            unsafe {
                atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&mut (*v).count, 1);
                (*v).last_ns = now;
            }
            true
        }
        None => false,
    }
}

/// Loads the value at `offset` of the BTF struct `base` points to.
#[inline(always)]
fn load<T>(base: *const u8, offset: u32) -> T {
    // SAFETY: `base` is a BTF pointer the verifier tracks and `offset` a load-time constant
    // it resolves to a member of that struct.
    unsafe { core::ptr::read_volatile(base.wrapping_add(offset as usize) as *const T) }
}
