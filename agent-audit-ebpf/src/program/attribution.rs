//! Which program made which syscall, kept cheap: the task's name is read once per task and CPU
//! (again after it execs or renames itself), and each (name, target, syscall, root?) key is
//! counted in a per-CPU direct-mapped table. Only a collision in that table touches a shared
//! map.

use core::intrinsics::{atomic_xadd, AtomicOrdering};

use agent_audit_ebpf::{
    AttribEntry, AttribKey, AttribValue, TaskCache, ATTRIB_ENTRIES, ATTRIB_OVERFLOW_ENTRIES,
    ATTRIB_ROOT, ATTRIB_RUNTIME_INIT,
};
use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_ktime_get_ns},
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
};

use super::{global, task::Current, PRCTL_NR};

/// The table's index mask: its entries minus one, set by userspace to the size it created the
/// table with (fewer entries per CPU on hosts with more CPUs, see `GLOBAL_ATTRIB_MASK`).
#[no_mangle]
static ATTRIB_MASK: u32 = ATTRIB_ENTRIES - 1;

/// `last_ns` is refreshed on every this many calls of a (program, syscall) key.
const LAST_SEEN_EVERY: u64 = 64;

#[map(name = "ATTRIB")]
static ATTRIB: PerCpuArray<AttribEntry> = PerCpuArray::with_max_entries(ATTRIB_ENTRIES, 0);

#[map(name = "ATTRIB_OVERFLOW")]
static ATTRIB_OVERFLOW: HashMap<AttribKey, AttribValue> =
    HashMap::with_max_entries(ATTRIB_OVERFLOW_ENTRIES, 0);

#[map(name = "TASK_CACHE")]
static TASK_CACHE: PerCpuArray<TaskCache> = PerCpuArray::with_max_entries(1, 0);

/// Bumped whenever a task in a target may have changed its name (exec, prctl): every CPU's
/// cached name is then read again, not only the cache of the CPU the exec ran on.
#[map(name = "NAME_EPOCH")]
static NAME_EPOCH: Array<u64> = Array::with_max_entries(1, 0);

/// Invalidates every CPU's cached task name.
#[inline(always)]
pub(super) fn names_changed() {
    if let Some(epoch) = NAME_EPOCH.get_ptr_mut(0) {
        // SAFETY: a valid array element; concurrent bumps only need to change the value.
        unsafe { *epoch = (*epoch).wrapping_add(1) };
    }
}

/// Attributes one call of syscall `nr` (through `abi`) by the current task to target `slot`,
/// in the workload's phase or the runtime's init.
#[inline(always)]
pub(super) fn attribute<T: Current>(
    current: &T,
    slot: u32,
    abi: usize,
    nr: u64,
    runtime_init: bool,
) {
    let Some(cache) = TASK_CACHE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's element, not shared with other CPUs.
    let cache = unsafe { &mut *cache };
    let pid_tgid = current.pid_tgid();
    let epoch = NAME_EPOCH.get(0).copied().unwrap_or(0);
    if cache.pid_tgid != pid_tgid || cache.epoch != epoch {
        refresh(cache, pid_tgid, epoch);
    }
    // An exec renames the task too; `sched_process_exec` bumps the epoch for it, once the
    // exec has succeeded.
    if nr == u64::from(global(&PRCTL_NR)) {
        // PR_SET_NAME may rename the task, which may go on on another CPU.
        names_changed();
    }
    let flags = (u8::from(current.uid() == 0) * ATTRIB_ROOT)
        | (u8::from(runtime_init) * ATTRIB_RUNTIME_INIT);
    // The key's layout, shared with userspace: the number in 16 bits (syscall numbers are
    // below 1024; a bogus larger one folds onto a small one, as it always has) and the ABI
    // (< ABI_COUNT) in a byte.
    #[allow(clippy::cast_possible_truncation)]
    let key = AttribKey {
        comm: cache.comm,
        slot_plus_one: slot + 1,
        nr: nr as u16,
        abi: abi as u8,
        flags,
    };
    // Hashing: only the number's low 32 bits are mixed in.
    #[allow(clippy::cast_possible_truncation)]
    let hash = cache.comm_hash
        ^ slot.wrapping_mul(0x9E37_79B1)
        ^ (nr as u32).wrapping_mul(0x85EB_CA6B)
        ^ (abi as u32).wrapping_mul(0xC2B2_AE35)
        ^ u32::from(flags);
    let index = mix(hash) & global(&ATTRIB_MASK);
    let Some(entry) = ATTRIB.get_ptr_mut(index) else {
        return;
    };
    // SAFETY: this CPU's element.
    let entry = unsafe { &mut *entry };
    if same_key(&entry.key, &key) {
        entry.value.count += 1;
        // Reading the clock costs more than the rest of this path in a VM: refresh the last
        // call's time every LAST_SEEN_EVERY calls only (userspace documents the resolution).
        if entry.value.count % LAST_SEEN_EVERY == 0 {
            // SAFETY: helper without preconditions.
            entry.value.last_ns = unsafe { bpf_ktime_get_ns() };
        }
        return;
    }
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if entry.key.slot_plus_one == 0 {
        entry.key = key;
        entry.value = AttribValue {
            count: 1,
            first_ns: now,
            last_ns: now,
        };
    } else {
        overflow(&key, now);
    }
}

#[inline(always)]
fn same_key(a: &AttribKey, b: &AttribKey) -> bool {
    a.comm[0] == b.comm[0]
        && a.comm[1] == b.comm[1]
        && a.slot_plus_one == b.slot_plus_one
        && a.nr == b.nr
        && a.abi == b.abi
        && a.flags == b.flags
}

/// Reads the task's name (once per task per CPU, and after exec/prctl).
#[inline(never)]
fn refresh(cache: &mut TaskCache, pid_tgid: u64, epoch: u64) {
    let comm = bpf_get_current_comm().unwrap_or([0; 16]);
    let mut words = [0u64; 2];
    let mut i = 0;
    while i < 16 {
        words[i / 8] |= u64::from(comm[i]) << ((i % 8) * 8);
        i += 1;
    }
    cache.pid_tgid = pid_tgid;
    cache.comm = words;
    // Hashing: the name's 32-bit words folded into one.
    #[allow(clippy::cast_possible_truncation)]
    let folded = (words[0] ^ words[0] >> 32 ^ words[1] ^ words[1] >> 32) as u32;
    cache.comm_hash = mix(folded);
    cache.epoch = epoch;
}

/// The table entry is taken by another key: count in the shared map, atomically.
#[inline(never)]
fn overflow(key: &AttribKey, now: u64) {
    if let Some(v) = ATTRIB_OVERFLOW.get_ptr_mut(key) {
        // SAFETY: a live map value; `count` is only ever updated atomically.
        unsafe {
            atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&mut (*v).count, 1);
            (*v).last_ns = now;
        }
        return;
    }
    let value = AttribValue {
        count: 1,
        first_ns: now,
        last_ns: now,
    };
    const BPF_NOEXIST: u64 = 1;
    if ATTRIB_OVERFLOW.insert(key, value, BPF_NOEXIST).is_err() {
        // Another CPU inserted it first (or the map is full: then the call is lost to
        // attribution only; the per-syscall totals are counted elsewhere).
        if let Some(v) = ATTRIB_OVERFLOW.get_ptr_mut(key) {
            // SAFETY: as above.
            unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&mut (*v).count, 1) };
        }
    }
}

/// A cheap integer mixer (murmur3 finaliser) so nearby keys spread over a table (also the
/// argument-value table's).
#[inline(always)]
pub(super) fn mix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}
