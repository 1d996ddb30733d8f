//! The name of a cgroup the kernel program claims below a watched parent, recorded at its first
//! counted call: userspace names a new target from inotify, which a cgroup created and removed
//! before its event is read escapes. Once per claim, off the hot path.

use agent_audit_ebpf::{ClaimedName, MAX_CGROUP_DEPTH, MAX_TARGETS};
use aya_ebpf::{
    helpers::{
        bpf_get_current_ancestor_cgroup_id, bpf_get_current_task, bpf_probe_read_kernel,
        bpf_probe_read_kernel_str_bytes,
    },
    macros::map,
    maps::Array,
};

use super::{global, task};

/// See `GLOBAL_NAME_LAYOUT`: offsets of `cgroup.ancestors` and `kernfs_node.name`; 0 where
/// unknown, and then no name is recorded.
#[no_mangle]
static NAME_LAYOUT: [u32; 2] = [0; 2];

#[map(name = "CLAIMED_NAMES")]
static CLAIMED_NAMES: Array<ClaimedName> = Array::with_max_entries(MAX_TARGETS, 0);

/// Records the name and parent of `child`, the current task's ancestor at `level`, which has
/// just claimed `slot`. The task's own cgroup may lie deeper: the ancestor is found in its
/// `ancestors` array, as `bpf_get_current_ancestor_cgroup_id` finds its id.
#[inline(never)]
pub(super) fn record(slot: u32, child: u64, level: u32) {
    let [ancestors, name] = [global(&NAME_LAYOUT[0]), global(&NAME_LAYOUT[1])];
    let layout = task::layout();
    if ancestors == 0 || name == 0 || layout.task_cgroups == 0 || level == 0 {
        return;
    }
    if level > MAX_CGROUP_DEPTH {
        return;
    }
    let Some(entry) = CLAIMED_NAMES.get_ptr_mut(slot) else {
        return;
    };
    // SAFETY: helper without preconditions; the pointer is only read through probe reads.
    let current = unsafe { bpf_get_current_task() } as *const u8;
    let Some(kn) = read(current, layout.task_cgroups)
        .and_then(|cgroups| read(pointer(cgroups), layout.css_set_dfl_cgrp))
        .and_then(|cgroup| read(pointer(cgroup), ancestors + level * 8))
        .and_then(|ancestor| read(pointer(ancestor), layout.cgroup_kn))
        .map(pointer)
    else {
        return;
    };
    // The ancestor must be the claimed child (the same walk the id came from).
    if read(kn, layout.kernfs_node_id) != Some(child) {
        return;
    }
    let Some(text) = read(kn, name).map(pointer) else {
        return;
    };
    // SAFETY: a live element of an array map; two CPUs claiming the same child write the same.
    let entry = unsafe { &mut *entry };
    // Invalid while it is written: userspace takes a name only with the id it was claimed for.
    entry.id = 0;
    // SAFETY: probe read of a kernel string into the entry's buffer, NUL-terminated and cut.
    if unsafe { bpf_probe_read_kernel_str_bytes(text, &mut entry.name) }.is_err() {
        return;
    }
    // SAFETY: helper without preconditions; `level - 1` ≥ 0 is the watched parent.
    entry.parent_id = unsafe { bpf_get_current_ancestor_cgroup_id((level - 1).cast_signed()) };
    entry.id = child;
}

/// The `u64` (or pointer) at `offset` of the kernel struct at `base`, by probe read.
#[inline(always)]
fn read(base: *const u8, offset: u32) -> Option<u64> {
    if base.is_null() {
        return None;
    }
    // SAFETY: probe read: a bad address fails, never faults.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize) as *const u64) }.ok()
}

/// A kernel address read as a number, as a pointer to probe-read through.
#[inline(always)]
fn pointer(address: u64) -> *const u8 {
    address as *const u8
}
