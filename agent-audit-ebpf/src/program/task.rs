//! The current task's cgroup id, compat flag, pid/tgid, uid and gid, read the cheapest way the
//! program type allows. Each helper call costs a call and a return (which return-stack
//! mitigations make expensive) and most helpers call further functions; `tp_btf` and the exec
//! program get the task pointer with one call and load the rest through it (offsets from the
//! kernel's BTF, checked by the verifier), while `raw_tp` and `sys_exit`, and any program when
//! the offsets are unknown, call one helper per fact.

use agent_audit_ebpf::TaskLayout;
use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_task,
    bpf_get_current_task_btf, bpf_get_current_uid_gid, bpf_probe_read_kernel, bpf_task_pt_regs,
};

use super::global;

/// See `GLOBAL_TASK_LAYOUT`. Read-only after load: the verifier sees the offsets as constants
/// and drops the helper fallbacks when they are known.
#[no_mangle]
pub(super) static TASK_LAYOUT: TaskLayout = TaskLayout::UNKNOWN;

/// The task layout the loader set (all offsets 0 when unknown).
#[inline(always)]
pub(crate) fn layout() -> TaskLayout {
    global(&TASK_LAYOUT)
}

/// What the hot path asks about the task that made the call.
pub(crate) trait Current {
    /// The task's cgroup v2 id (`bpf_get_current_cgroup_id`).
    fn cgroup_id(&self) -> u64;
    /// The `u32` at `offset` in `task_struct` (the compat flag word).
    fn compat_flag(&self, offset: u32) -> u32;
    /// `tgid << 32 | pid` (`bpf_get_current_pid_tgid`).
    fn pid_tgid(&self) -> u64;
    /// The real uid in the initial user namespace, i.e. the kernel uid (`bpf_get_current_uid_gid`).
    fn uid(&self) -> u32;
    /// The real gid, likewise.
    fn gid(&self) -> u32;
    /// The address of the task's `task_struct`: who it is while it lives (unlike its pid, it
    /// stays the same when a thread's exec takes over its leader's pid).
    fn address(&self) -> u64;
}

/// The BTF-typed pointer to the current task (`tp_btf`, and the exec tracepoint).
pub(crate) struct BtfTask {
    task: *const u8,
}

impl BtfTask {
    /// The current task. Without its layout the helper is not called at all (the verifier
    /// drops the call as dead code): `sched_process_exec` must load on kernels without BTF,
    /// where the verifier refuses `bpf_get_current_task_btf`.
    #[inline(always)]
    pub(super) fn current() -> Self {
        let task = if layout_known() {
            // SAFETY: helper without preconditions; returns the trusted current task.
            unsafe { bpf_get_current_task_btf() as *const u8 }
        } else {
            core::ptr::null()
        };
        Self { task }
    }

    /// The `u32` at `offset` in the task (refusal programs only, which load only where the
    /// layout is known).
    #[inline(always)]
    pub(super) fn read_u32(&self, offset: u32) -> u32 {
        load(self.task, offset)
    }

    /// The `u64` at `offset` in the task, likewise.
    #[inline(always)]
    pub(super) fn read_u64(&self, offset: u32) -> u64 {
        load(self.task, offset)
    }

    /// The task's user registers as it entered the kernel (`bpf_task_pt_regs`; refusal
    /// programs only): a BTF pointer to its `struct pt_regs`.
    #[inline(always)]
    pub(super) fn user_regs(&self) -> *const u8 {
        // SAFETY: `task` is the trusted current task; the helper returns a pointer the
        // verifier types as `struct pt_regs`.
        unsafe { bpf_task_pt_regs(self.task as *mut _) as *const u8 }
    }
}

/// One offset of [`TASK_LAYOUT`], read field by field so that the verifier sees each as the
/// constant the loader set.
macro_rules! offset {
    ($field:ident) => {
        global(&TASK_LAYOUT.$field)
    };
}

/// Whether the loader found the offsets (a load-time constant: userspace sets all of them or
/// none, see `TaskLayout::is_known`).
#[inline(always)]
fn layout_known() -> bool {
    offset!(task_cgroups) != 0
}

/// Loads the value at `offset` of the struct `base` points to. The verifier checks the
/// offset against the struct's BTF (and refuses the program otherwise) and turns the load into
/// one that cannot fault.
#[inline(always)]
fn load<T>(base: *const u8, offset: u32) -> T {
    // SAFETY: `base` is a BTF pointer the verifier tracks and `offset` a load-time constant
    // it resolves to a member of that struct.
    unsafe { core::ptr::read_volatile(base.wrapping_add(offset as usize) as *const T) }
}

/// Follows a pointer member; `None` for a null pointer (`__rcu` members may be null to the
/// verifier, which refuses loads through them without this test).
#[inline(always)]
fn follow(base: *const u8, offset: u32) -> Option<*const u8> {
    let p: *const u8 = load(base, offset);
    (!p.is_null()).then_some(p)
}

impl Current for BtfTask {
    #[inline(always)]
    fn cgroup_id(&self) -> u64 {
        if !layout_known() {
            return HelperTask.cgroup_id();
        }
        // current->cgroups->dfl_cgrp->kn->id, as the helper reads it.
        let id = follow(self.task, offset!(task_cgroups))
            .and_then(|css_set| follow(css_set, offset!(css_set_dfl_cgrp)))
            .and_then(|cgroup| follow(cgroup, offset!(cgroup_kn)))
            .map(|kn| load::<u64>(kn, offset!(kernfs_node_id)));
        // A task always has a css_set and a default cgroup: no path leads here in practice.
        id.unwrap_or_else(|| HelperTask.cgroup_id())
    }

    #[inline(always)]
    fn compat_flag(&self, offset: u32) -> u32 {
        // Only `tp_btf` asks, and it has BTF even when the task layout was not found.
        let task = if layout_known() {
            self.task
        } else {
            // SAFETY: helper without preconditions.
            unsafe { bpf_get_current_task_btf() as *const u8 }
        };
        load(task, offset)
    }

    #[inline(always)]
    fn pid_tgid(&self) -> u64 {
        if !layout_known() {
            return HelperTask.pid_tgid();
        }
        let pid: u32 = load(self.task, offset!(task_pid));
        let tgid: u32 = load(self.task, offset!(task_tgid));
        (u64::from(tgid) << 32) | u64::from(pid)
    }

    #[inline(always)]
    fn uid(&self) -> u32 {
        if !layout_known() {
            return HelperTask.uid();
        }
        match follow(self.task, offset!(task_cred)) {
            Some(cred) => load(cred, offset!(cred_uid)),
            None => HelperTask.uid(),
        }
    }

    #[inline(always)]
    fn gid(&self) -> u32 {
        if !layout_known() {
            return HelperTask.gid();
        }
        match follow(self.task, offset!(task_cred)) {
            Some(cred) => load(cred, offset!(cred_gid)),
            None => HelperTask.gid(),
        }
    }

    #[inline(always)]
    fn address(&self) -> u64 {
        if !layout_known() {
            return HelperTask.address();
        }
        self.task as u64
    }
}

/// Program types without BTF pointers (`raw_tp`, classic tracepoints): one helper per fact.
pub(crate) struct HelperTask;

impl Current for HelperTask {
    #[inline(always)]
    fn cgroup_id(&self) -> u64 {
        // SAFETY: helper without preconditions.
        unsafe { bpf_get_current_cgroup_id() }
    }

    #[inline(always)]
    fn compat_flag(&self, offset: u32) -> u32 {
        // SAFETY: helper without preconditions.
        let task = unsafe { bpf_get_current_task() } as *const u8;
        // SAFETY: probe read of kernel memory; failure reads as "not compat".
        unsafe { bpf_probe_read_kernel(task.wrapping_add(offset as usize) as *const u32) }
            .unwrap_or(0)
    }

    #[inline(always)]
    fn pid_tgid(&self) -> u64 {
        bpf_get_current_pid_tgid()
    }

    #[inline(always)]
    fn uid(&self) -> u32 {
        // The helper returns the gid in the high 32 bits and the uid in the low ones.
        #[allow(clippy::cast_possible_truncation)]
        let uid = bpf_get_current_uid_gid() as u32;
        uid
    }

    #[inline(always)]
    fn gid(&self) -> u32 {
        (bpf_get_current_uid_gid() >> 32) as u32
    }

    #[inline(always)]
    fn address(&self) -> u64 {
        // SAFETY: helper without preconditions.
        unsafe { bpf_get_current_task() }
    }
}
