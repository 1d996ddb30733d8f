//! Processes that leave a target's cgroup subtree: moved out (a write of their pid to another
//! cgroup's `cgroup.procs`), or created outside by a task inside (`clone3(CLONE_INTO_CGROUP)`).
//! Their calls are not counted from then on, so userspace must know.
//!
//! The kernel's `cgroup_attach_task` tracepoint fires *after* the move and names only the
//! destination (`dst_root`, `dst_id`, `dst_level`, `pid`, `comm`; the `tp_btf` form gives the
//! destination cgroup and the task), and `fentry` on the function itself is not available
//! everywhere (refused by this project's own CI hosts). So the programs keep which target each
//! process belongs to (`MEMBERS`): set when a process is forked inside a target or moved into
//! one, and a move that takes a member out of its target's subtree is recorded in
//! `DEPARTURES`. Both run on forks and cgroup moves, never on a syscall. A membership holds
//! its target's cgroup id and level, so whether a cgroup lies below the target is one read of
//! its ancestor at that level: no walk over an arbitrary cgroup's ancestors, whose loop of
//! probe reads the verifier does not prune (a million instructions). Only the forking task's
//! own ancestors are walked, with the helper the hot path uses, when it is not yet a member.

use agent_audit_ebpf::{
    CgroupLayout, Departure, DepartureKey, Membership, MAX_CGROUP_DEPTH, MAX_DEPARTURES,
    MAX_MEMBERS, NO_TARGET, WATCH_PARENT,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_ancestor_cgroup_id, bpf_ktime_get_ns,
        generated::bpf_probe_read_kernel as bpf_probe_read_kernel_raw,
    },
    macros::{btf_tracepoint, map},
    maps::{HashMap, LruHashMap},
    programs::BtfTracePointContext,
};

use super::{
    global, opaque, target_slot,
    task::{BtfTask, Current, TASK_LAYOUT},
    TARGETS,
};

/// See `GLOBAL_CGROUP_LAYOUT`. Read-only after load.
#[no_mangle]
static CGROUP_LAYOUT: CgroupLayout = CgroupLayout::UNKNOWN;

#[map(name = "DEPARTURES")]
static DEPARTURES: HashMap<DepartureKey, Departure> = HashMap::with_max_entries(MAX_DEPARTURES, 0);

#[map(name = "MEMBERS")]
static MEMBERS: LruHashMap<u32, Membership> = LruHashMap::with_max_entries(MAX_MEMBERS, 0);

/// `tp_btf/sched_process_fork(parent, child)`, in the parent, after the child got its cgroup.
#[btf_tracepoint(function = "sched_process_fork")]
pub fn member_fork(ctx: BtfTracePointContext) -> i32 {
    let parent: u64 = ctx.arg(0);
    let child: u64 = ctx.arg(1);
    let _ = on_fork(&ctx, parent, child);
    0
}

/// `tp_btf/cgroup_attach_task(dst_cgrp, path, task, threadgroup)`, after the move.
#[btf_tracepoint(function = "cgroup_attach_task")]
pub fn cgroup_attach(ctx: BtfTracePointContext) -> i32 {
    let dst: u64 = ctx.arg(0);
    let task: u64 = ctx.arg(2);
    let _ = on_attach(dst, task);
    0
}

/// Reads a `T` at `base + offset` of kernel memory; `None` for a null `base` or a failed read.
#[inline(always)]
fn read<T: Default + PartialEq>(base: u64, offset: u32) -> Option<T> {
    let value = read_or_zero::<T>(base, offset);
    (value != T::default()).then_some(value)
}

/// Reads a `T` at `base + offset` of kernel memory, zero when it cannot be read. Without a
/// branch on the helper's result: in the ancestor walk's loop every branch multiplies the
/// states the verifier keeps (past its limit of 8192 pending ones).
#[inline(always)]
fn read_or_zero<T: Default>(base: u64, offset: u32) -> T {
    let mut value = T::default();
    // The helper takes the size as `u32`; T is at most 16 bytes.
    #[allow(clippy::cast_possible_truncation)]
    let size = core::mem::size_of::<T>() as u32;
    // SAFETY: a probe read into a local of that size: a bad address fails (and zeroes the
    // destination), it never faults.
    unsafe {
        bpf_probe_read_kernel_raw(
            core::ptr::addr_of_mut!(value).cast(),
            size,
            (base + u64::from(offset)) as *const core::ffi::c_void,
        )
    };
    value
}

/// Whether the loader found every offset (a load-time constant).
#[inline(always)]
fn layout_known() -> bool {
    global(&CGROUP_LAYOUT).cgroup_level != 0 && global(&TASK_LAYOUT).task_cgroups != 0
}

/// `task->cgroups->dfl_cgrp`: the task's cgroup v2.
#[inline(always)]
fn cgroup_of(task: u64) -> Option<u64> {
    let layout = global(&TASK_LAYOUT);
    let css_set: u64 = read(task, layout.task_cgroups)?;
    read(css_set, layout.css_set_dfl_cgrp)
}

/// The id of `cgroup`'s ancestor at `level` (its own id at its own level); 0 if unreadable.
#[inline(always)]
fn ancestor_id(cgroup: u64, level: u32) -> u64 {
    let cg = global(&CGROUP_LAYOUT);
    let task = global(&TASK_LAYOUT);
    let at = cg.cgroup_ancestors + level * 8;
    if cg.ancestors_are_ids != 0 {
        return read_or_zero(cgroup, at); // before 6.2: `u64 ancestor_ids[]`
    }
    let ancestor: u64 = read_or_zero(cgroup, at);
    let kn: u64 = read_or_zero(ancestor, task.cgroup_kn);
    read_or_zero(kn, task.kernfs_node_id)
}

/// `cgroup`'s own id.
#[inline(always)]
fn id_of(cgroup: u64) -> u64 {
    ancestor_id(cgroup, level_of(cgroup))
}

#[inline(always)]
fn level_of(cgroup: u64) -> u32 {
    read_or_zero(cgroup, global(&CGROUP_LAYOUT).cgroup_level)
}

/// Whether `cgroup` is the member's target or below it.
#[inline(always)]
fn within(cgroup: u64, member: &Membership) -> bool {
    level_of(cgroup) >= member.level && ancestor_id(cgroup, member.level) == member.cgroup
}

/// The membership of a process whose cgroup is `cgroup`, when that cgroup is itself a target
/// (the cgroup `run` starts its command in, the one `verify`'s launcher joins).
#[inline(always)]
fn as_target(cgroup: u64) -> Option<Membership> {
    let id = id_of(cgroup);
    // SAFETY: plain `u32` values.
    let slot = *unsafe { TARGETS.get(id) }?;
    (slot != NO_TARGET && slot & WATCH_PARENT == 0).then_some(Membership {
        slot,
        level: level_of(cgroup),
        cgroup: id,
    })
}

/// The target the current task's cgroup (`cgroup_id`) is counted for, found as the hot path
/// finds it (the deepest [`TARGETS`] entry among its ancestors), with that target's level.
#[inline(never)]
fn current_target(cgroup_id: u64) -> Option<Membership> {
    let mut found = NO_TARGET;
    let mut found_level = 0;
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
            found = if s & WATCH_PARENT != 0 { NO_TARGET } else { s };
            found_level = level;
        }
        if ancestor == cgroup_id {
            break;
        }
        level += 1;
    }
    // Both went into `opaque` as u32 and come back unchanged (see `opaque`).
    #[allow(clippy::cast_possible_truncation)]
    let (slot, level) = (
        opaque(u64::from(found)) as u32,
        opaque(u64::from(found_level)) as u32,
    );
    if slot == NO_TARGET || level >= MAX_CGROUP_DEPTH {
        return None;
    }
    // SAFETY: as above.
    let cgroup = unsafe { bpf_get_current_ancestor_cgroup_id(level.cast_signed()) };
    Some(Membership {
        slot,
        level,
        cgroup,
    })
}

#[inline(always)]
fn on_fork(ctx: &BtfTracePointContext, parent: u64, child: u64) -> Option<()> {
    if !layout_known() {
        return None;
    }
    let layout = global(&TASK_LAYOUT);
    let pid: u32 = read(child, layout.task_pid)?;
    let tgid: u32 = read(child, layout.task_tgid)?;
    if pid != tgid {
        return None; // a thread: its process is already known, or not
    }
    // The parent is the current task, inside a target or not: the hot path's cached verdict.
    let current = BtfTask::current();
    let parent_slot = target_slot(ctx, &current);
    // A child shares its parent's css_set unless it was created in another cgroup.
    let child_css: u64 = read(child, layout.task_cgroups)?;
    let same_cgroup = read::<u64>(parent, layout.task_cgroups) == Some(child_css);
    if parent_slot.is_none() && same_cgroup {
        // Most forks on the host: nobody's target. Only a reused pid's stale entry goes.
        // SAFETY: plain data.
        if unsafe { MEMBERS.get(tgid) }.is_some() {
            let _ = MEMBERS.remove(tgid);
        }
        return Some(());
    }
    let parent_tgid: u32 = read(parent, layout.task_tgid)?;
    let parent_member = match parent_slot {
        // SAFETY: plain data; a concurrent update reads as either value.
        Some(slot) => match unsafe { MEMBERS.get(parent_tgid) } {
            Some(m) if m.slot == slot => Some(*m),
            _ => {
                // Inside a target but not known yet (there before the target was added, or
                // moved into a cgroup below it): learnt now.
                let m = current_target(current.cgroup_id())?;
                let _ = MEMBERS.insert(parent_tgid, m, 0);
                Some(m)
            }
        },
        None => None,
    };
    let child_cgroup: u64 = read(child_css, layout.css_set_dfl_cgrp)?;
    let child_member = match parent_member {
        Some(m) if same_cgroup || within(child_cgroup, &m) => Some(m),
        // clone3(CLONE_INTO_CGROUP): `run`'s command starts in its target this way.
        _ => as_target(child_cgroup),
    };
    match child_member {
        Some(m) => {
            let _ = MEMBERS.insert(tgid, m, 0);
        }
        None => {
            // A reused pid must not inherit an ended process's membership.
            let _ = MEMBERS.remove(tgid);
        }
    }
    match parent_member {
        Some(m) if child_member.map(|c| c.slot) != Some(m.slot) => {
            note(&m, child, child_cgroup, true)
        }
        _ => Some(()),
    }
}

#[inline(always)]
fn on_attach(dst: u64, task: u64) -> Option<()> {
    if !layout_known() {
        return None;
    }
    // After a move within the v2 hierarchy the task's default cgroup is the destination; a
    // v1 controller's `cgroup.procs` (hybrid hosts) leaves it as it was.
    if cgroup_of(task)? != dst {
        return None;
    }
    let tgid: u32 = read(task, global(&TASK_LAYOUT).task_tgid)?;
    // SAFETY: plain data; a concurrent update reads as either value.
    let old = unsafe { MEMBERS.get(tgid) }.copied();
    if let Some(m) = old {
        if within(dst, &m) {
            return Some(()); // to a cgroup below its target: still counted
        }
    }
    match as_target(dst) {
        Some(m) => {
            let _ = MEMBERS.insert(tgid, m, 0);
        }
        None => {
            let _ = MEMBERS.remove(tgid);
        }
    }
    match old {
        Some(m) => note(&m, task, dst, false),
        None => Some(()),
    }
}

/// Records that `task` left `member`'s target for the cgroup `to`.
#[inline(never)]
fn note(member: &Membership, task: u64, to: u64, born_outside: bool) -> Option<()> {
    let layout = global(&TASK_LAYOUT);
    let pid: u32 = read(task, layout.task_tgid)?;
    let departure = Departure {
        from_cgroup: member.cgroup,
        to_cgroup: id_of(to),
        // SAFETY: helper without preconditions.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
        start_boottime_ns: read_or_zero(task, global(&CGROUP_LAYOUT).task_start_boottime),
        pid,
        born_outside: u32::from(born_outside),
        comm: read_or_zero(task, global(&CGROUP_LAYOUT).task_comm),
    };
    let key = DepartureKey {
        slot: member.slot,
        pid,
    };
    // Full: userspace sees as many entries as the map holds and says the list may be cut.
    DEPARTURES.insert(key, departure, 0).ok()
}
