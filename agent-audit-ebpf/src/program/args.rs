//! The values of the few syscall arguments a seccomp rule can compare (`tracked-args.json`),
//! per target, phase and ABI. Only calls inside a target whose syscall is tracked pay more than
//! one byte load: userspace resolves the tracked names to numbers per ABI at load time into a
//! read-only table. Bit sets are ORed atomically into an array every CPU shares; enumerations
//! are counted in a per-CPU direct-mapped table like attribution's (its size set by userspace
//! from the CPU count), and only a collision touches a shared map.

use core::intrinsics::{atomic_or, atomic_xadd, AtomicOrdering};

use agent_audit_ebpf::{
    ArgAdded, ArgSpec, ArgState, ArgValueEntry, ArgValueKey, ABI_COMPAT32, ABI_COUNT,
    ARG_KIND_FLAGS, ARG_SOURCE_CLONE_ARGS_FLAGS, ARG_SPILL_ENTRIES, ARG_VALUES_PER_CPU,
    ARG_VALUE_ENTRIES, MAX_ARGS_PER_SYSCALL, MAX_TARGETS, MAX_TRACKED_ARGS, NR_SLOTS,
};
use aya_ebpf::{
    helpers::{bpf_probe_read_kernel, bpf_probe_read_user},
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
};

use super::global;

/// `sizeof(struct clone_args)` in its first version (include/uapi/linux/sched.h).
const CLONE_ARGS_SIZE_VER0: u64 = 64;

/// 0: `--no-args`; the verifier then drops everything below.
#[no_mangle]
pub(super) static ARGS: u32 = 1;
/// See `GLOBAL_ARG_FIRST`.
#[no_mangle]
static ARG_FIRST: [[u8; NR_SLOTS]; ABI_COUNT] = [[0; NR_SLOTS]; ABI_COUNT];
/// See `GLOBAL_ARG_SPECS`.
#[no_mangle]
static ARG_SPECS: [ArgSpec; MAX_TRACKED_ARGS] = [ArgSpec {
    mask: 0,
    index: 0,
    kind: 0,
    source: 0,
    more: 0,
    _pad: 0,
}; MAX_TRACKED_ARGS];
/// See `GLOBAL_ARG_REG_OFFSETS`.
#[no_mangle]
static ARG_REG_OFFSETS: [[u32; 6]; 2] = [[0; 6]; 2];

/// The value table's index mask (see `GLOBAL_ARG_VALUE_MASK`).
#[no_mangle]
static ARG_VALUE_MASK: u32 = ARG_VALUE_ENTRIES - 1;

#[map(name = "ARG_STATE")]
static ARG_STATE: Array<ArgState> = Array::with_max_entries(MAX_TARGETS, 0);

#[map(name = "ARG_ADDED")]
static ARG_ADDED: PerCpuArray<ArgAdded> = PerCpuArray::with_max_entries(MAX_TARGETS, 0);

#[map(name = "ARG_VALUES")]
static ARG_VALUES: PerCpuArray<ArgValueEntry> = PerCpuArray::with_max_entries(ARG_VALUE_ENTRIES, 0);

#[map(name = "ARG_VALUES_SPILL")]
static ARG_VALUES_SPILL: HashMap<ArgValueKey, u64> =
    HashMap::with_max_entries(ARG_SPILL_ENTRIES, 0);

/// How a program type reads syscall arguments from the saved registers.
pub(super) trait SavedRegs {
    /// Argument `index` of a native/x32 (`row` 0) or compat (`row` 1) call.
    fn arg(regs: *const u8, row: usize, index: usize) -> Result<u64, Unreadable>;
}

/// `tp_btf`: the verifier knows `regs` is a `struct pt_regs *`, so the registers are plain
/// loads (no helper call). It only allows loads at offsets it knows, so all six arguments of
/// the row are loaded at their load-time-constant offsets and the wanted one picked after.
pub(super) struct BtfRegs;

impl SavedRegs for BtfRegs {
    #[inline(always)]
    fn arg(regs: *const u8, row: usize, index: usize) -> Result<u64, Unreadable> {
        let args = if row == 0 {
            saved_args::<0>(regs)
        } else {
            saved_args::<1>(regs)
        };
        args.get(index).copied().ok_or(Unreadable)
    }
}

#[inline(always)]
fn saved_args<const ROW: usize>(regs: *const u8) -> [u64; 6] {
    let load = |i: usize| {
        let offset = global(&ARG_REG_OFFSETS[ROW][i]);
        // SAFETY: a BTF pointer to the task's saved registers; `offset` is a load-time
        // constant the verifier checks against `struct pt_regs` (and refuses otherwise).
        unsafe { core::ptr::read_volatile(regs.add(offset as usize) as *const u64) }
    };
    [load(0), load(1), load(2), load(3), load(4), load(5)]
}

/// `raw_tp`: `regs` is an untyped pointer, read through `bpf_probe_read_kernel`.
pub(super) struct ProbedRegs;

impl SavedRegs for ProbedRegs {
    #[inline(always)]
    fn arg(regs: *const u8, row: usize, index: usize) -> Result<u64, Unreadable> {
        let offset = ARG_REG_OFFSETS
            .get(row)
            .and_then(|r| r.get(index))
            .ok_or(Unreadable)?;
        // SAFETY: a valid static; volatile for the loader's value.
        let offset = unsafe { core::ptr::read_volatile(offset) };
        // SAFETY: probe read of the task's saved registers; failure is reported.
        unsafe { bpf_probe_read_kernel(regs.wrapping_add(offset as usize) as *const u64) }
            .map_err(|_| Unreadable)
    }
}

/// Records the tracked arguments of one call of `nr` (through `abi`) by target `slot`. For an
/// untracked syscall this is one load from a read-only table.
#[inline(always)]
pub(super) fn record<R: SavedRegs>(
    regs: *const u8,
    slot: u32,
    abi: usize,
    nr: u64,
    runtime_init: bool,
) {
    let Ok(nr) = usize::try_from(nr) else {
        return;
    };
    if nr >= NR_SLOTS || abi >= ABI_COUNT {
        return;
    }
    // SAFETY: in bounds (checked above); volatile so the loader's table is read, not the
    // all-zero placeholder the compiler sees.
    let first = unsafe { core::ptr::read_volatile(&ARG_FIRST[abi][nr]) };
    if first != 0 {
        record_tracked::<R>(
            regs,
            slot,
            abi,
            usize::from(first) - 1,
            usize::from(runtime_init),
        );
    }
}

/// A tracked call: reads each of the syscall's tracked arguments (its specs are consecutive,
/// at most [`MAX_ARGS_PER_SYSCALL`]) and keeps it.
#[inline(never)]
fn record_tracked<R: SavedRegs>(
    regs: *const u8,
    slot: u32,
    abi: usize,
    first: usize,
    phase: usize,
) {
    let Some(state) = ARG_STATE.get_ptr_mut(slot) else {
        return;
    };
    // SAFETY: a live element of an array map every CPU shares: its bits are only ORed in
    // atomically; the other fields take racing stores of the same value, or a count that a
    // lost increment only lets go one value further.
    let state = unsafe { &mut *state };
    const _: () = assert!(MAX_ARGS_PER_SYSCALL == 2);
    let position = Position { slot, abi, phase };
    if record_spec::<R>(regs, state, &position, first) {
        record_spec::<R>(regs, state, &position, first + 1);
    }
}

/// Where a call was made: its target, ABI and phase.
struct Position {
    slot: u32,
    abi: usize,
    phase: usize,
}

/// Reads and keeps one spec's value; returns whether the next spec belongs to the same
/// syscall. A function of its own so that the verifier sees each spec lookup bounds-checked
/// where it is used (inside a loop the compiler derives the pointer from the induction
/// variable, past the check).
#[inline(never)]
fn record_spec<R: SavedRegs>(
    regs: *const u8,
    state: &mut ArgState,
    at: &Position,
    spec_nr: usize,
) -> bool {
    let Some(spec) = ARG_SPECS.get(spec_nr) else {
        return false;
    };
    // SAFETY: a valid static; volatile for the loader's value.
    let spec = unsafe { core::ptr::read_volatile(spec) };
    match read_arg::<R>(regs, at.abi, &spec) {
        Ok(Some(value)) if spec.kind == ARG_KIND_FLAGS => {
            add_bits(state, at.phase, spec_nr, value & spec.mask)
        }
        Ok(Some(value)) => {
            // The key keeps them in bytes: `spec_nr` < MAX_TRACKED_ARGS (the lookup above
            // found it) and `phase` < ARG_PHASES.
            #[allow(clippy::cast_possible_truncation)]
            let key = ArgValueKey {
                value: value & spec.mask,
                slot_plus_one: at.slot + 1,
                spec: spec_nr as u8,
                phase: at.phase as u8,
                _pad: 0,
            };
            count_value(state, &key);
        }
        Ok(None) => {}
        Err(Unreadable) => mark_incomplete(state, at.phase, spec_nr),
    }
    spec.more != 0
}

/// A value the kernel program could not read: the record is then incomplete.
pub(super) struct Unreadable;

/// The value a spec records: an argument register, or for `clone3` the flags its first
/// argument points to. `Ok(None)` when the call carries no value (the kernel refuses it before
/// reading one).
#[inline(always)]
fn read_arg<R: SavedRegs>(
    regs: *const u8,
    abi: usize,
    spec: &ArgSpec,
) -> Result<Option<u64>, Unreadable> {
    let row = usize::from(abi == ABI_COMPAT32);
    let value = R::arg(regs, row, spec.index as usize)?;
    if spec.source != ARG_SOURCE_CLONE_ARGS_FLAGS {
        return Ok(Some(value));
    }
    // clone3(struct clone_args *uargs, size_t size): a size below the struct's first version
    // is refused (EINVAL, kernel/fork.c copy_clone_args_from_user) and a null pointer faults,
    // both before anything is created.
    let size = R::arg(regs, row, spec.index as usize + 1)?;
    if value == 0 || size < CLONE_ARGS_SIZE_VER0 {
        return Ok(None);
    }
    // SAFETY: probe read of user memory; a fault is reported, never taken (a page the kernel
    // would have faulted in reads as unreadable, and the record is marked incomplete).
    match unsafe { bpf_probe_read_user(value as *const u64) } {
        Ok(flags) => Ok(Some(flags)),
        Err(_) => Err(Unreadable),
    }
}

#[inline(always)]
fn add_bits(state: &mut ArgState, phase: usize, spec_nr: usize, bits: u64) {
    if let Some(b) = state
        .flags
        .get_mut(phase)
        .and_then(|row| row.get_mut(spec_nr))
    {
        if *b | bits != *b {
            // SAFETY: a live, aligned `u64` of a map value; every update is atomic.
            unsafe { atomic_or::<u64, u64, { AtomicOrdering::Relaxed }>(b, bits) };
        }
    }
}

#[inline(always)]
fn mark_incomplete(state: &mut ArgState, phase: usize, spec_nr: usize) {
    if let Some(m) = state
        .incomplete
        .get_mut(phase)
        .and_then(|row| row.get_mut(spec_nr))
    {
        *m = 1;
    }
}

/// Whether this CPU may add one more distinct value for the key's (target, phase, spec); if
/// not, the set is marked incomplete instead. The count is this CPU's own (`ARG_ADDED`), so a
/// value every CPU sees counts once on each, as when the whole state was per CPU.
#[inline(always)]
fn may_add_value(state: &mut ArgState, key: &ArgValueKey) -> bool {
    let (phase, spec_nr) = (usize::from(key.phase), usize::from(key.spec));
    let Some(added) = ARG_ADDED.get_ptr_mut(key.slot_plus_one.wrapping_sub(1)) else {
        return false;
    };
    // SAFETY: this CPU's element; programs on one CPU do not nest on sys_enter.
    let added = unsafe { &mut *added };
    let Some(added) = added
        .added
        .get_mut(phase)
        .and_then(|row| row.get_mut(spec_nr))
    else {
        return false;
    };
    if *added >= ARG_VALUES_PER_CPU {
        mark_incomplete(state, phase, spec_nr);
        return false;
    }
    *added += 1;
    true
}

/// Counts one call with `key`'s value: in this CPU's table entry for the key when it holds the
/// key or is free, else in the shared spill map.
#[inline(always)]
fn count_value(state: &mut ArgState, key: &ArgValueKey) {
    // Hashing: the value's low and high 32-bit words are mixed in separately.
    #[allow(clippy::cast_possible_truncation)]
    let hash = super::attribution::mix(
        key.value as u32
            ^ ((key.value >> 32) as u32).wrapping_mul(0x9E37_79B1)
            ^ key.slot_plus_one.wrapping_mul(0x85EB_CA6B)
            ^ u32::from(key.spec).wrapping_mul(0xC2B2_AE35)
            ^ u32::from(key.phase),
    );
    let Some(entry) = ARG_VALUES.get_ptr_mut(hash & global(&ARG_VALUE_MASK)) else {
        return;
    };
    // SAFETY: this CPU's element.
    let entry = unsafe { &mut *entry };
    if entry.key == *key {
        entry.count += 1;
    } else if entry.key.slot_plus_one == 0 {
        if may_add_value(state, key) {
            entry.key = *key;
            entry.count = 1;
        }
    } else {
        spill(state, key);
    }
}

/// The table entry is taken by another key: count in the shared map, atomically.
#[inline(never)]
fn spill(state: &mut ArgState, key: &ArgValueKey) {
    if let Some(count) = ARG_VALUES_SPILL.get_ptr_mut(key) {
        // SAFETY: a live map value, only ever updated atomically.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(count, 1) };
        return;
    }
    if !may_add_value(state, key) {
        return;
    }
    const BPF_NOEXIST: u64 = 1;
    if ARG_VALUES_SPILL.insert(key, 1, BPF_NOEXIST).is_ok() {
        return;
    }
    // Another CPU inserted it first, or the map is full.
    match ARG_VALUES_SPILL.get_ptr_mut(key) {
        Some(count) => {
            // SAFETY: as above.
            unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(count, 1) };
        }
        None => mark_incomplete(state, usize::from(key.phase), usize::from(key.spec)),
    }
}

/// Whether argument recording is on (a load-time constant).
#[inline(always)]
pub(super) fn enabled() -> bool {
    global(&ARGS) != 0
}
