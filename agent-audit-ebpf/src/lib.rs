//! The contract between agent-audit's kernel program and its userspace: map names, map value
//! layouts and limits. `no_std` so that the BPF target and the host build the same definitions.
//!
//! Minimum kernel: 5.5 for `tp_btf` attachment (5.8 for the `raw_tp` fallback's
//! `bpf_get_current_ancestor_cgroup_id`), 5.12 for argument values (`BPF_ATOMIC` OR).
//! Developed and tested on 6.18.
#![no_std]

/// Target slots: how many cgroup targets one daemon can watch at once. Each target owns one
/// element of [`MAP_COUNTERS`], so the hot path finds its counters by index, never by a loop.
pub const MAX_TARGETS: u32 = 256;

/// Syscall numbers `0..NR_SLOTS` are counted exactly, per ABI. Every current table (x86_64,
/// i386, aarch64, arm, and x32's 512..547) fits; anything above lands in `other`.
pub const NR_SLOTS: usize = 1024;

/// The syscall ABIs a task can enter the kernel through. Userspace maps them to libseccomp
/// architecture names for the host (x86_64: native, i386, x32; aarch64: native, arm).
pub const ABI_NATIVE: usize = 0;
/// A 32-bit compat task (x86_64: `int 0x80`/`sysenter` from an i386 binary; arm64: AArch32).
pub const ABI_COMPAT32: usize = 1;
/// x86_64's x32 ABI: a 64-bit task whose syscall number carries [`X32_SYSCALL_BIT`].
pub const ABI_X32: usize = 2;
/// Number of ABIs counted.
pub const ABI_COUNT: usize = 3;

/// Distinct cgroups whose verdict is cached at once (LRU).
pub const MAX_CACHED_CGROUPS: u32 = 16384;

/// x86_64 marks x32 syscall numbers with this bit.
pub const X32_SYSCALL_BIT: u64 = 0x4000_0000;

/// Cgroups deeper than this below the v2 root are not searched for a target ancestor.
pub const MAX_CGROUP_DEPTH: u32 = 32;

/// Value in [`MAP_CGROUP_VERDICT`] for a cgroup that is neither a target nor below one.
pub const NO_TARGET: u32 = u32::MAX;

/// Flag on a [`MAP_TARGETS`] value: the cgroup is a *watched parent*, not a target. Each child
/// cgroup created below it becomes a target of its own the moment its first task makes a
/// syscall: the kernel program claims a slot from [`MAP_FREE_SLOTS`] and inserts the child into
/// [`MAP_TARGETS`], so nothing is missed however fast the container starts; userspace finds the
/// new entry, keeps it if its name matches, and releases it otherwise.
pub const WATCH_PARENT: u32 = 0x8000_0000;

/// `Queue<u32>`: zeroed slots userspace keeps ready for the kernel program to claim. Userspace
/// keeps *every* free slot in it, so a burst of new cgroups can take all of them at once.
pub const MAP_FREE_SLOTS: &str = "FREE_SLOTS";

/// `Array<ClaimedName>` with [`MAX_TARGETS`] elements, indexed by slot: the name and parent of
/// the cgroup the kernel program last claimed the slot for, written at that cgroup's first
/// counted call, so that userspace can name a cgroup created and removed before its inotify
/// event was read.
pub const MAP_CLAIMED_NAMES: &str = "CLAIMED_NAMES";
/// `[u32; 2]`: offsets of `cgroup.ancestors` and `kernfs_node.name` from the kernel's BTF;
/// 0 where unknown (no names are recorded then).
pub const GLOBAL_NAME_LAYOUT: &str = "NAME_LAYOUT";
/// Bytes of a cgroup's name kept, with its NUL (a name has at most 255 bytes).
pub const CGROUP_NAME_LEN: usize = 256;

/// A claimed cgroup's name, as the kernel program found it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimedName {
    /// The cgroup's id; 0 while the entry is written (or never was).
    pub id: u64,
    /// Its parent's id (the watched parent).
    pub parent_id: u64,
    /// Its kernfs name, NUL-terminated.
    pub name: [u8; CGROUP_NAME_LEN],
}

/// `HashMap<u64, u64>`: children of a watched parent that found no slot to claim (every slot
/// in use) → `CLOCK_MONOTONIC` ns of the first such call. Userspace drains it, reports each
/// one, and gives it the next slot that frees (its own [`MAP_TARGETS`] entry, then a
/// [`MAP_TARGET_GENERATION`] bump), so it is counted from its next syscall on.
pub const MAP_STARVED: &str = "STARVED";
/// Entries of [`MAP_STARVED`].
pub const MAX_STARVED: u32 = 4096;

/// `Array<u32>` with one element: bumped by userspace after every change to the target set.
/// Cached verdicts carry the generation they were computed under and are recomputed when it
/// differs, so a change never leaves a stale verdict behind, even one written concurrently.
pub const MAP_TARGET_GENERATION: &str = "TARGET_GENERATION";
/// Entries of [`MAP_TARGETS`]: targets, watched parents and excluded children together.
pub const MAX_TARGET_ENTRIES: u32 = 4096;

/// `HashMap<u64, u32>`: cgroup v2 id → its slot, [`WATCH_PARENT`] for a watched parent, or
/// [`NO_TARGET`] for an excluded child of one. Written by userspace, and by the kernel program
/// when it claims a slot for a new child of a watched parent.
pub const MAP_TARGETS: &str = "TARGETS";
/// `LruHashMap<u64, CgroupVerdict>`: any cgroup id seen on the hot path → slot of the nearest
/// target at or above it. Filled by the kernel program only, on first sight of a cgroup in a
/// generation; eviction just costs one more ancestor walk.
pub const MAP_CGROUP_VERDICT: &str = "CGROUP_VERDICT";
/// `Array<SyscallCounters>` with [`MAX_TARGETS`] elements, indexed by slot: syscall entries.
/// Shared by every CPU and updated with atomic adds, so that its memory does not grow with the
/// CPU count (per-CPU copies were ~12 MiB per CPU at 256 slots).
pub const MAP_COUNTERS: &str = "COUNTERS";
/// Same layout as [`MAP_COUNTERS`], for syscall *exits*; only filled while `verify` runs.
/// A call refused by seccomp never reaches `sys_enter` but does reach `sys_exit`, so
/// `exits − entries` per syscall is what the filter denied.
pub const MAP_EXIT_COUNTERS: &str = "EXIT_COUNTERS";
/// Like [`MAP_EXIT_COUNTERS`], for exits while the target is in [`PHASE_RUNTIME_INIT`]. Kept
/// apart because a runtime moves its init into the cgroup while that init is inside a syscall
/// (which then exits without having entered there), and because a refusal during the init
/// fails the container's start, which `verify` reports as such.
pub const MAP_INIT_EXIT_COUNTERS: &str = "INIT_EXIT_COUNTERS";

/// `Array<SyscallCounters>`, like [`MAP_COUNTERS`], for calls a target made while in
/// [`PHASE_RUNTIME_INIT`]: the container runtime's own init, before the workload's first exec.
pub const MAP_INIT_COUNTERS: &str = "INIT_COUNTERS";
/// `Array<u32>` with [`MAX_TARGETS`] elements: each slot's phase.
pub const MAP_PHASE: &str = "PHASE";
/// `Array<u32>` with [`MAX_TARGETS`] elements, memory-mappable (`BPF_F_MMAPABLE`): a slot's
/// word is set to 1 by the first call the slot counts after userspace cleared it (a call sets
/// it after all its other writes, and only when it reads 0, so a busy target's word is read,
/// not written, on every call). Userspace swaps words to 0 through its mapping, with no
/// syscall, and reads the counters of the slots that were set: a snapshot of idle targets
/// costs nothing per target.
pub const MAP_DIRTY: &str = "DIRTY";
/// Calls are the workload's own (the default; `run` and targets attached while running).
pub const PHASE_WORKLOAD: u32 = 0;
/// Calls are the runtime's init until the target's first *completed* exec (targets picked up
/// by `--wait` from their cgroup's creation); the exec call itself belongs to this phase.
pub const PHASE_RUNTIME_INIT: u32 = 1;

/// `u32`: entries of [`MAP_ATTRIB`] minus one, the index mask.
pub const GLOBAL_ATTRIB_MASK: &str = "ATTRIB_MASK";
/// `PerCpuArray<AttribEntry>` with at most [`ATTRIB_ENTRIES`] elements: which program made which
/// syscall, as a per-CPU direct-mapped table indexed by a hash of the key. The common case (a
/// key already in this CPU's table) touches only per-CPU arrays; a collision spills into
/// [`MAP_ATTRIB_OVERFLOW`].
pub const MAP_ATTRIB: &str = "ATTRIB";
/// `HashMap<AttribKey, AttribValue>`, shared, for keys whose table entry is taken.
pub const MAP_ATTRIB_OVERFLOW: &str = "ATTRIB_OVERFLOW";
/// `PerCpuArray<TaskCache>` with one element: the task this CPU last attributed.
pub const MAP_TASK_CACHE: &str = "TASK_CACHE";
/// `RingBuf` of [`ExecEvent`]s: every successful exec inside a target.
pub const MAP_EXEC_EVENTS: &str = "EXEC_EVENTS";
/// Entries of [`MAP_ATTRIB`] per CPU at most (a power of two; fewer on hosts with many CPUs,
/// so that all CPUs' tables together stay within a fixed budget: each CPU then sees fewer of
/// the host's tasks).
pub const ATTRIB_ENTRIES: u32 = 8192;
/// Entries of [`MAP_ATTRIB_OVERFLOW`].
pub const ATTRIB_OVERFLOW_ENTRIES: u32 = 65536;
/// Bytes of an exec's file name kept (longer names are cut).
pub const EXEC_FILENAME_LEN: usize = 256;
/// Native `prctl` number: `PR_SET_NAME` renames the task, so the cached name is dropped.
pub const GLOBAL_PRCTL_NR: &str = "PRCTL_NR";
/// `[u32; 4]`: native clone, clone3, fork, vfork numbers (`u32::MAX` where absent).
pub const GLOBAL_FORK_NRS: &str = "FORK_NRS";
/// `u32`: 1 to attribute calls to programs (the default), 0 to count only.
pub const GLOBAL_ATTRIBUTION: &str = "ATTRIBUTION";
/// Classic tracepoint `sched:sched_process_exec` program.
pub const PROG_SCHED_EXEC: &str = "sched_process_exec";

/// Who made a syscall: task name, target, syscall and whether the caller was root.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AttribKey {
    /// `comm` of the task (16 bytes, NUL-padded), as two words for cheap comparison.
    pub comm: [u64; 2],
    /// Target slot + 1 (0 marks an empty table entry).
    pub slot_plus_one: u32,
    /// Syscall number in its ABI's table.
    pub nr: u16,
    /// ABI index (`ABI_*`).
    pub abi: u8,
    /// Bit 0: the caller's uid was 0 ([`ATTRIB_ROOT`]). Bit 1: the call was made in the
    /// runtime-init phase ([`ATTRIB_RUNTIME_INIT`]).
    pub flags: u8,
}

/// [`AttribKey::flags`] bit: uid 0.
pub const ATTRIB_ROOT: u8 = 1;
/// [`AttribKey::flags`] bit: runtime-init phase.
pub const ATTRIB_RUNTIME_INIT: u8 = 2;

/// How often and when a key was seen.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttribValue {
    /// Calls.
    pub count: u64,
    /// `CLOCK_MONOTONIC` of the first call, ns.
    pub first_ns: u64,
    /// `CLOCK_MONOTONIC` of the last call, ns.
    pub last_ns: u64,
}

/// One entry of the per-CPU attribution table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttribEntry {
    /// Which key occupies the entry (`slot_plus_one == 0`: free).
    pub key: AttribKey,
    /// Its counts.
    pub value: AttribValue,
}

/// The task whose name this CPU has at hand.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskCache {
    /// `bpf_get_current_pid_tgid()` of the task.
    pub pid_tgid: u64,
    /// Its `comm`.
    pub comm: [u64; 2],
    /// Hash of `comm`.
    pub comm_hash: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// The name epoch `comm` was read in; a different current epoch means read it again.
    pub epoch: u64,
}

/// A successful exec inside a target.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    /// Target slot.
    pub slot: u32,
    /// Thread group id.
    pub tgid: u32,
    /// Real uid and gid of the task.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
    /// `CLOCK_MONOTONIC`, ns.
    pub ktime_ns: u64,
    /// New `comm`.
    pub comm: [u8; 16],
    /// Bytes of `filename` used, not counting its NUL.
    pub filename_len: u32,
    /// Explicit padding (keeps the layout free of implicit holes).
    pub _pad: u32,
    /// The exec'd file as given to exec (NUL-terminated).
    pub filename: [u8; EXEC_FILENAME_LEN],
}

/// Capabilities counted: `0..CAP_SLOTS` (`CAP_CHOWN` = 0 … `CAP_CHECKPOINT_RESTORE` = 40, the
/// last one in 6.18). A check of a higher number is not counted.
pub const CAP_SLOTS: usize = 41;
/// Outcomes a capability check is counted under: [`CAP_REFUSED`] and [`CAP_NOAUDIT`] bits.
pub const CAP_OUTCOMES: usize = 4;
/// Outcome bit: `cap_capable` returned an error (the check was refused).
pub const CAP_REFUSED: usize = 1;
/// Outcome bit: the check passed `CAP_OPT_NOAUDIT` (a probe such as `ns_capable_noaudit`, which
/// asks without needing: the caller goes on either way).
pub const CAP_NOAUDIT: usize = 2;
/// The kernel's `CAP_OPT_NOAUDIT` bit of `cap_capable`'s `opts` (include/linux/security.h).
pub const CAP_OPT_NOAUDIT: u32 = 1 << 1;
/// `fexit/cap_capable(const struct cred *, struct user_namespace *, int cap, unsigned int opts)`.
pub const PROG_CAP_CAPABLE: &str = "cap_capable_exit";
/// `tp_btf/cap_capable` (the `capability:cap_capable` tracepoint, Linux 6.14+): the fallback
/// where BPF trampolines are refused; it has no `opts`, so no-audit probes are recognised by
/// their callers ([`MAP_NOAUDIT_CALLERS`]).
pub const PROG_CAP_CAPABLE_TP: &str = "cap_capable_tp";
/// `Array<[[u64; 2]; NOAUDIT_CALLER_SLOTS]>` with one element: `[start, end)` addresses of
/// the kernel's no-audit entry points (`ns_capable_noaudit`, `has_ns_capability_noaudit`,
/// `has_capability_noaudit`, `cap_vm_enough_memory` and its only caller
/// `security_vm_enough_memory_mm`: it tail-calls `cap_capable` and leaves no frame of its
/// own), from /proc/kallsyms. The tracepoint has no `opts`: a check with one of these among
/// its first [`NOAUDIT_FRAMES`] kernel stack frames is counted as a no-audit probe. Unused entries are zero. A map, not a load-time global, so that only the
/// tracepoint path pays for reading /proc/kallsyms.
pub const MAP_NOAUDIT_CALLERS: &str = "NOAUDIT_CALLERS";
/// Entries of [`GLOBAL_NOAUDIT_CALLERS`].
pub const NOAUDIT_CALLER_SLOTS: usize = 8;
/// Kernel stack frames looked at for a no-audit caller.
pub const NOAUDIT_FRAMES: usize = 8;
/// The kernel function [`PROG_CAP_CAPABLE`] attaches to, and the tracepoint
/// [`PROG_CAP_CAPABLE_TP`] does.
pub const CAP_CAPABLE_FUNCTION: &str = "cap_capable";
/// `Array<CapCounters>` with [`MAX_TARGETS`] elements, indexed by slot: the capability checks
/// a target made after its runtime's init. Shared (not per-CPU): checks are rare next to
/// syscalls, so atomic adds on one copy cost less memory than a copy per CPU.
pub const MAP_CAP_COUNTS: &str = "CAP_COUNTS";
/// `HashMap<CapProgramKey, u64>`, shared: which program (`comm`) made which check, with
/// atomic adds; a key that finds the map full is counted in [`MAP_CAP_COUNTS`] only.
pub const MAP_CAP_PROGRAMS: &str = "CAP_PROGRAMS";
/// Entries of [`MAP_CAP_PROGRAMS`].
pub const CAP_PROGRAM_ENTRIES: u32 = 2048;

/// One target's capability checks: `counts[cap][outcome]` (outcome: [`CAP_REFUSED`] |
/// [`CAP_NOAUDIT`] bits).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapCounters {
    /// Checks per capability and outcome.
    pub counts: [[u64; CAP_OUTCOMES]; CAP_SLOTS],
}

impl CapCounters {
    /// No checks.
    pub const ZERO: Self = Self {
        counts: [[0; CAP_OUTCOMES]; CAP_SLOTS],
    };
}

/// Which program made a capability check, in which target, with which outcome.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CapProgramKey {
    /// `comm` of the task (16 bytes, NUL-padded).
    pub comm: [u64; 2],
    /// Target slot.
    pub slot: u32,
    /// Capability number (`0..CAP_SLOTS`).
    pub cap: u8,
    /// Outcome bits.
    pub outcome: u8,
    /// Explicit padding.
    pub _pad: u16,
}

/// Read-only globals set by userspace at load time (`EbpfLoader::set_global`), describing the
/// host so the program needs no CO-RE: where the task's compat flag lives and what marks it.
/// Offset of a `u32` inside `task_struct` that carries the compat flag (x86_64:
/// `thread_info.status`, arm64: `thread_info.flags`); 0 disables compat detection.
pub const GLOBAL_COMPAT_FLAG_OFFSET: &str = "COMPAT_FLAG_OFFSET";
/// Bit(s) of that `u32` set for a compat task (x86_64 `TS_COMPAT` = 0x2, arm64 `TIF_32BIT`).
pub const GLOBAL_COMPAT_FLAG_MASK: &str = "COMPAT_FLAG_MASK";
/// Compat syscall numbers of the multiplexers (i386: socketcall 102, ipc 117); `u32::MAX`
/// where the compat ABI has none.
pub const GLOBAL_COMPAT_SOCKETCALL_NR: &str = "COMPAT_SOCKETCALL_NR";
/// See [`GLOBAL_COMPAT_SOCKETCALL_NR`].
pub const GLOBAL_COMPAT_IPC_NR: &str = "COMPAT_IPC_NR";
/// Offset in `struct pt_regs` of a compat syscall's first argument (x86_64: `bx`).
pub const GLOBAL_COMPAT_ARG0_OFFSET: &str = "COMPAT_ARG0_OFFSET";

/// `TaskLayout`: where the current task's cgroup id, pid, tgid and uid are, read from the
/// kernel's BTF. The `tp_btf` program then loads them through the BTF-typed task pointer
/// (one helper call for all of them) instead of calling `bpf_get_current_cgroup_id`,
/// `bpf_get_current_pid_tgid` and `bpf_get_current_uid_gid` on every syscall.
pub const GLOBAL_TASK_LAYOUT: &str = "TASK_LAYOUT";

/// Byte offsets of the members the kernel program follows from `task_struct`; all zero when
/// unknown (no BTF, or a member was not found), which makes it call the helpers instead.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskLayout {
    /// `task_struct.cgroups` (`struct css_set *`).
    pub task_cgroups: u32,
    /// `css_set.dfl_cgrp` (`struct cgroup *`, the task's cgroup v2).
    pub css_set_dfl_cgrp: u32,
    /// `cgroup.kn` (`struct kernfs_node *`).
    pub cgroup_kn: u32,
    /// `kernfs_node.id` (`u64`, the cgroup id `bpf_get_current_cgroup_id` returns).
    pub kernfs_node_id: u32,
    /// `task_struct.pid`.
    pub task_pid: u32,
    /// `task_struct.tgid`.
    pub task_tgid: u32,
    /// `task_struct.cred` (`const struct cred *`, the subjective credentials).
    pub task_cred: u32,
    /// `cred.uid` (`kuid_t`: the kernel uid, as `bpf_get_current_uid_gid` reports it).
    pub cred_uid: u32,
    /// `cred.gid` (`kgid_t`).
    pub cred_gid: u32,
}

impl TaskLayout {
    /// Unknown: the helpers are used.
    pub const UNKNOWN: Self = Self {
        task_cgroups: 0,
        css_set_dfl_cgrp: 0,
        cgroup_kn: 0,
        kernfs_node_id: 0,
        task_pid: 0,
        task_tgid: 0,
        task_cred: 0,
        cred_uid: 0,
        cred_gid: 0,
    };

    /// Whether every offset was found. None of these members leads its struct in any kernel
    /// with BTF (`task_struct` starts with `thread_info` or `__state`, `css_set` and `cred`
    /// with a reference count, `cgroup` with its `css`, `kernfs_node` with `count`), so 0
    /// can mean "unknown".
    pub const fn is_known(&self) -> bool {
        self.task_cgroups != 0
            && self.css_set_dfl_cgrp != 0
            && self.cgroup_kn != 0
            && self.kernfs_node_id != 0
            && self.task_pid != 0
            && self.task_tgid != 0
            && self.task_cred != 0
            && self.cred_uid != 0
            && self.cred_gid != 0
    }
}

/// `HashMap<DepartureKey, Departure>`: tasks of a target that left its cgroup subtree —
/// moved to a cgroup outside it (a write to another cgroup's `cgroup.procs`), or born outside
/// it (`clone3(CLONE_INTO_CGROUP)` from inside). Their calls are not counted from then on: a
/// recording with an entry is incomplete, and `verify` fails and kills what left. Userspace
/// reads a slot's entries when it writes the target's file and deletes them before the slot is
/// reused. Once full, later departures are not kept (userspace says the list may be cut).
pub const MAP_DEPARTURES: &str = "DEPARTURES";
/// Entries of [`MAP_DEPARTURES`].
pub const MAX_DEPARTURES: u32 = 1024;
/// `LruHashMap<u32, Membership>`: process id → the target it belongs to, kept by the two
/// programs below (a fork inside a target, a move into one) so that a move *out* can be told
/// apart: the kernel's attach tracepoint fires after the move and names only the destination.
/// An entry of a process that ended stays until its pid is reused (the fork that reuses it
/// overwrites or deletes it) or the LRU evicts it.
pub const MAP_MEMBERS: &str = "MEMBERS";
/// Entries of [`MAP_MEMBERS`]: processes of all targets together.
pub const MAX_MEMBERS: u32 = 16384;
/// `tp_btf/sched_process_fork`: a new process inside a target becomes a member.
pub const PROG_MEMBER_FORK: &str = "member_fork";
/// `tp_btf/cgroup_attach_task`: a member moved out of its target is a departure.
pub const PROG_CGROUP_ATTACH: &str = "cgroup_attach";
/// `CgroupLayout`: the members these programs follow, from the kernel's BTF.
pub const GLOBAL_CGROUP_LAYOUT: &str = "CGROUP_LAYOUT";

/// The target a process belongs to: its slot and its cgroup, so that a move can be checked
/// against the target's subtree with one read (the destination's ancestor at the target's
/// level) instead of a walk over every level.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// Target slot.
    pub slot: u32,
    /// Level of the target's cgroup below the v2 root.
    pub level: u32,
    /// The target cgroup's v2 id.
    pub cgroup: u64,
}

/// Which target lost which task.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DepartureKey {
    /// Target slot.
    pub slot: u32,
    /// Its process id.
    pub pid: u32,
}

/// A process that left a target's cgroup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Departure {
    /// Cgroup v2 id of the target it left (it may have been in a cgroup below).
    pub from_cgroup: u64,
    /// Cgroup v2 id it moved to (or was created in).
    pub to_cgroup: u64,
    /// `CLOCK_MONOTONIC` of the move, ns.
    pub ktime_ns: u64,
    /// Its `task_struct.start_boottime` (ns): with the pid, which process it was (field 22 of
    /// `/proc/<pid>/stat` is the same time in clock ticks), so that a reused pid is not taken
    /// for it.
    pub start_boottime_ns: u64,
    /// Its process id.
    pub pid: u32,
    /// 1 when it was created outside (`clone3(CLONE_INTO_CGROUP)` by a task inside), 0 when it
    /// moved.
    pub born_outside: u32,
    /// Its `comm` (NUL-padded).
    pub comm: [u8; 16],
}

/// Byte offsets the departure programs need beyond [`TaskLayout`]; all zero when unknown
/// (then they are not attached).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupLayout {
    /// `task_struct.comm`.
    pub task_comm: u32,
    /// `cgroup.level` (`int`; the root is 0).
    pub cgroup_level: u32,
    /// `cgroup.ancestors` (6.2+: `struct cgroup *[]`) or `cgroup.ancestor_ids` (`u64[]`).
    pub cgroup_ancestors: u32,
    /// 1 when [`Self::cgroup_ancestors`] is `ancestor_ids`.
    pub ancestors_are_ids: u32,
    /// `task_struct.start_boottime` (`u64`).
    pub task_start_boottime: u32,
    /// Explicit padding.
    pub _pad: u32,
}

impl CgroupLayout {
    /// Unknown: departures are not watched.
    pub const UNKNOWN: Self = Self {
        task_comm: 0,
        cgroup_level: 0,
        cgroup_ancestors: 0,
        ancestors_are_ids: 0,
        task_start_boottime: 0,
        _pad: 0,
    };

    /// Whether every offset was found (none of these members leads its struct).
    pub const fn is_known(&self) -> bool {
        self.task_comm != 0
            && self.cgroup_level != 0
            && self.cgroup_ancestors != 0
            && self.task_start_boottime != 0
    }
}

/// Sub-operations of i386 `socketcall`/`ipc` counted separately (`args[0] & 0xffff` below this).
pub const MUX_SLOTS: usize = 32;

/// Program names in the object, one per attach type; userspace picks one.
pub const PROG_SYS_ENTER_BTF: &str = "sys_enter_btf";
/// `raw_tp` fallback for kernels without BTF.
pub const PROG_SYS_ENTER_RAW: &str = "sys_enter_raw";
/// An empty `tp_btf` program on the same attach point: the benchmark's floor.
pub const PROG_SYS_ENTER_EMPTY: &str = "sys_enter_empty";
/// Classic tracepoint `raw_syscalls:sys_exit` counter, attached only by `verify`.
pub const PROG_SYS_EXIT: &str = "sys_exit";

/// `tp_btf` `sys_exit` program that counts the calls a target's seccomp filter refused. Such a
/// call never reaches `sys_enter` (the tracepoint fires after seccomp has decided) but does
/// reach `sys_exit`: a call of a task under a filter whose exit has no entry is a refusal.
/// Attached by `record` and `run` unless `--no-refusals` (see [`GLOBAL_REFUSALS`]).
pub const PROG_SYS_EXIT_REFUSALS: &str = "sys_exit_refusals";
/// `tp_btf` `sched_switch` program: a task that leaves its CPU inside a syscall takes its
/// [`MAP_IN_FLIGHT`] mark along into [`MAP_IN_SYSCALL`], so its exit on any CPU pairs.
pub const PROG_SCHED_SWITCH_REFUSALS: &str = "sched_switch_refusals";
/// `tp_btf` `sched_process_exit` program: counts a seccomp kill when the killed task exits
/// (a thread killed alone never reaches `sys_exit`).
pub const PROG_SCHED_PROCESS_EXIT_REFUSALS: &str = "sched_process_exit_refusals";
/// `u32`: 1 when the refusal programs are attached, so `sys_enter` marks each call in a
/// target as entered; 0 (the default) removes that code.
pub const GLOBAL_REFUSALS: &str = "COUNT_REFUSALS";
/// [`SeccompLayout`]: where the task's seccomp state and pending signals are, from BTF.
pub const GLOBAL_SECCOMP_LAYOUT: &str = "SECCOMP_LAYOUT";
/// `[[u32; 2]; ABI_COUNT]`: each ABI's `exit` and `exit_group` numbers (`u32::MAX` where
/// absent). They never return, so `sys_enter` does not mark them entered.
pub const GLOBAL_NO_RETURN_NRS: &str = "NO_RETURN_NRS";
/// `PerCpuArray<u64>` with one element: the task (its `task_struct` address) whose call this
/// CPU's `sys_enter` marked entered and whose exit has not been seen; 0 for none. Only the
/// task running on the CPU can own it: `sched_switch` moves it out when that task leaves.
pub const MAP_IN_FLIGHT: &str = "IN_FLIGHT";
/// `HashMap<u64, u64>`: tasks that left their CPU inside an entered call (a blocking
/// syscall); removed at that call's exit. Not preallocated: only blocked tasks of targets.
pub const MAP_IN_SYSCALL: &str = "IN_SYSCALL";
/// Entries of [`MAP_IN_SYSCALL`]: tasks of targets blocked in a syscall at once.
pub const MAX_IN_SYSCALL: u32 = 65536;
/// `Array<u64>` with one element: tasks whose blocked call found [`MAP_IN_SYSCALL`] full.
/// Their exit then looks unentered; userspace marks refusal counts as possibly inflated.
pub const MAP_IN_SYSCALL_LOST: &str = "IN_SYSCALL_LOST";
/// `HashMap<RefusalKey, AttribValue>`, shared (refusals are rare): calls a target's seccomp
/// filter refused, by program, syscall, action and filter origin; counts added atomically.
pub const MAP_REFUSALS: &str = "REFUSALS";
/// Entries of [`MAP_REFUSALS`].
pub const MAX_REFUSAL_KEYS: u32 = 8192;
/// `Array<u64>` with [`MAX_TARGETS`] elements: refusals of a slot that found
/// [`MAP_REFUSALS`] full (counted, not named).
pub const MAP_REFUSALS_UNNAMED: &str = "REFUSALS_UNNAMED";
/// `Array<u32>` with [`MAX_TARGETS`] elements: 1 + the number of seccomp filters the task
/// that ended the slot's runtime-init phase had (the runtime's filters, handed to the
/// workload's first exec); 0 while unknown (a target attached while running).
pub const MAP_FILTER_BASELINE: &str = "FILTER_BASELINE";

/// What seccomp did with a refused call ([`RefusalKey::flags`] bits 2–3).
pub const REFUSAL_ERRNO: u8 = 0;
/// `SCMP_ACT_TRAP`: `SIGSYS` sent to the thread.
pub const REFUSAL_TRAP: u8 = 1;
/// `SCMP_ACT_KILL_PROCESS` / `SCMP_ACT_KILL_THREAD`: the task was killed (counted when it
/// exits).
pub const REFUSAL_KILL: u8 = 2;
/// Shift of the action in [`RefusalKey::flags`].
pub const REFUSAL_ACTION_SHIFT: u8 = 2;
/// Whose filters the task had ([`RefusalKey::flags`] bits 4–5): unknown (no baseline).
pub const REFUSAL_ORIGIN_UNKNOWN: u8 = 0;
/// Only the filters the runtime handed to the workload's first exec: the profile in force.
pub const REFUSAL_ORIGIN_RUNTIME: u8 = 1;
/// More filters than that: the workload installed some of its own, and the kernel does not
/// say which filter refused.
pub const REFUSAL_ORIGIN_OWN: u8 = 2;
/// Shift of the origin in [`RefusalKey::flags`].
pub const REFUSAL_ORIGIN_SHIFT: u8 = 4;

/// Who was refused what: the same fields as [`AttribKey`]; `flags` bit 0 [`ATTRIB_ROOT`],
/// bit 1 [`ATTRIB_RUNTIME_INIT`], bits 2–3 the action (`REFUSAL_ERRNO` …), bits 4–5 the
/// filter origin (`REFUSAL_ORIGIN_*`).
pub type RefusalKey = AttribKey;

/// Byte offsets of what the refusal programs read, from the kernel's BTF; all zero when
/// unknown, which leaves refusal counting off.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompLayout {
    /// `task_struct.seccomp.mode` (`int`; 3 is the kernel's `SECCOMP_MODE_DEAD`).
    pub task_seccomp_mode: u32,
    /// `task_struct.seccomp.filter_count` (`atomic_t`).
    pub task_filter_count: u32,
    /// `task_struct.pending.signal` (`sigset_t`: the thread's own pending signals).
    pub task_pending_signal: u32,
    /// The syscall number in `struct pt_regs` at exit (x86_64 `orig_ax`, arm64 `syscallno`).
    pub regs_syscall_nr: u32,
}

impl SeccompLayout {
    /// Unknown: refusals are not counted.
    pub const UNKNOWN: Self = Self {
        task_seccomp_mode: 0,
        task_filter_count: 0,
        task_pending_signal: 0,
        regs_syscall_nr: 0,
    };

    /// Whether every offset was found (none of them leads its struct).
    pub const fn is_known(&self) -> bool {
        self.task_seccomp_mode != 0
            && self.task_filter_count != 0
            && self.task_pending_signal != 0
            && self.regs_syscall_nr != 0
    }
}

/// Tracked arguments (`agent-audit/data/tracked-args.json`), resolved per ABI at load time.
/// Each resolved (ABI, syscall, argument) is one *spec*, numbered `0..MAX_TRACKED_ARGS`.
pub const MAX_TRACKED_ARGS: usize = 48;
/// Specs per syscall at most (`socket`: family and type).
pub const MAX_ARGS_PER_SYSCALL: usize = 2;
/// Distinct values one CPU adds per (target, phase, spec) before it marks the set incomplete.
pub const ARG_VALUES_PER_CPU: u8 = 64;
/// Phases argument values are kept apart for: 0 the workload, 1 the runtime's init.
pub const ARG_PHASES: usize = 2;
/// Entries of [`MAP_ARG_VALUES`] per CPU at most (a power of two; fewer on hosts with many
/// CPUs, so that all CPUs' tables together stay within a fixed budget).
pub const ARG_VALUE_ENTRIES: u32 = 4096;
/// Entries of [`MAP_ARG_VALUES_SPILL`].
pub const ARG_SPILL_ENTRIES: u32 = 16384;

/// [`ArgSpec::kind`]: keep each distinct value with its count.
pub const ARG_KIND_VALUES: u8 = 0;
/// [`ArgSpec::kind`]: keep the union of the bits seen.
pub const ARG_KIND_FLAGS: u8 = 1;
/// [`ArgSpec::source`]: the argument register itself.
pub const ARG_SOURCE_REGISTER: u8 = 0;
/// [`ArgSpec::source`]: the first `u64` the argument points to, when the next argument (a
/// size) is one the kernel accepts (64 or more): `clone3`'s `clone_args.flags`.
pub const ARG_SOURCE_CLONE_ARGS_FLAGS: u8 = 1;

/// `u32`: 1 to record tracked arguments (the default), 0 for `--no-args`.
pub const GLOBAL_ARGS: &str = "ARGS";
/// `[[u8; NR_SLOTS]; ABI_COUNT]`: for each (ABI, syscall number), 1 + the first spec of that
/// syscall, or 0 when none of its arguments is tracked. A syscall's specs are consecutive.
pub const GLOBAL_ARG_FIRST: &str = "ARG_FIRST";
/// `[ArgSpec; MAX_TRACKED_ARGS]`: what each spec reads and how it keeps it.
pub const GLOBAL_ARG_SPECS: &str = "ARG_SPECS";
/// `[[u32; 6]; 2]`: offset in `struct pt_regs` of each syscall argument, for native (and x32)
/// calls in row 0 and compat calls in row 1.
pub const GLOBAL_ARG_REG_OFFSETS: &str = "ARG_REG_OFFSETS";

/// `Array<ArgState>` with [`MAX_TARGETS`] elements, indexed by slot, shared by every CPU.
pub const MAP_ARG_STATE: &str = "ARG_STATE";
/// `PerCpuArray<ArgAdded>` with [`MAX_TARGETS`] elements, indexed by slot: the per-CPU cap on
/// new values (96 bytes per slot and CPU).
pub const MAP_ARG_ADDED: &str = "ARG_ADDED";
/// `u32`: entries of [`MAP_ARG_VALUES`] minus one, the index mask (userspace creates the table
/// with fewer entries per CPU on hosts with many CPUs).
pub const GLOBAL_ARG_VALUE_MASK: &str = "ARG_VALUE_MASK";
/// `PerCpuArray<ArgValueEntry>` with at most [`ARG_VALUE_ENTRIES`] elements: (target, phase, spec,
/// value) → calls, as a per-CPU direct-mapped table indexed by a hash of the key, like
/// [`MAP_ATTRIB`]; a collision spills into [`MAP_ARG_VALUES_SPILL`].
pub const MAP_ARG_VALUES: &str = "ARG_VALUES";
/// `HashMap<ArgValueKey, u64>`, shared, for keys whose table entry is taken.
pub const MAP_ARG_VALUES_SPILL: &str = "ARG_VALUES_SPILL";

/// One tracked argument of one syscall in one ABI.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgSpec {
    /// Bits kept (the kernel ignores the others).
    pub mask: u64,
    /// Argument index (0..=5).
    pub index: u8,
    /// `ARG_KIND_*`.
    pub kind: u8,
    /// `ARG_SOURCE_*`.
    pub source: u8,
    /// 1 when the next spec belongs to the same syscall.
    pub more: u8,
    /// Explicit padding.
    pub _pad: u32,
}

/// Per target, shared by every CPU: the bits seen by `flags` specs and which sets are
/// incomplete. Bits are ORed in atomically; an incompleteness mark is a store of 1.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgState {
    /// `flags[phase][spec]`: union of the (masked) values seen.
    pub flags: [[u64; MAX_TRACKED_ARGS]; ARG_PHASES],
    /// `incomplete[phase][spec]`: non-zero when a value was not kept (over
    /// [`ARG_VALUES_PER_CPU`] on a CPU, tables full, or the argument could not be read).
    pub incomplete: [[u8; MAX_TRACKED_ARGS]; ARG_PHASES],
}

impl ArgState {
    /// Nothing seen.
    pub const ZERO: Self = Self {
        flags: [[0; MAX_TRACKED_ARGS]; ARG_PHASES],
        incomplete: [[0; MAX_TRACKED_ARGS]; ARG_PHASES],
    };
}

/// Per target and CPU: how many distinct values this CPU added to the value tables.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgAdded {
    /// `added[phase][spec]`.
    pub added: [[u8; MAX_TRACKED_ARGS]; ARG_PHASES],
}

impl ArgAdded {
    /// Nothing added.
    pub const ZERO: Self = Self {
        added: [[0; MAX_TRACKED_ARGS]; ARG_PHASES],
    };
}

/// Which value of which spec a target used, in which phase.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ArgValueKey {
    /// The masked value.
    pub value: u64,
    /// Target slot + 1 (0 marks an empty table entry).
    pub slot_plus_one: u32,
    /// Spec number.
    pub spec: u8,
    /// 0 workload, 1 runtime init.
    pub phase: u8,
    /// Explicit padding.
    pub _pad: u16,
}

/// One entry of the per-CPU value table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgValueEntry {
    /// Which key occupies the entry (`slot_plus_one == 0`: free).
    pub key: ArgValueKey,
    /// Its calls.
    pub count: u64,
}

/// What the kernel program remembers about one cgroup.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgroupVerdict {
    /// Slot of the nearest target at or above the cgroup, or [`NO_TARGET`].
    pub slot: u32,
    /// [`MAP_TARGET_GENERATION`] value this verdict was computed under.
    pub generation: u32,
}

/// Per-target syscall counts, shared by every CPU (atomic adds).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SyscallCounters {
    /// `counts[abi][nr]`: calls of syscall `nr` through `abi`.
    pub counts: [[u64; NR_SLOTS]; ABI_COUNT],
    /// Calls whose number was outside `0..NR_SLOTS` (for example `-1` from a tracer), per ABI.
    pub other: [u64; ABI_COUNT],
    /// Compat `socketcall` calls by operation (`SYS_SOCKET` = 1 …); out-of-range ops in slot 0.
    pub socketcall: [u64; MUX_SLOTS],
    /// Compat `ipc` calls by operation (`SEMOP` = 1 …); out-of-range ops in slot 0.
    pub ipc: [u64; MUX_SLOTS],
}

impl SyscallCounters {
    /// All counters at zero.
    pub const ZERO: Self = Self {
        counts: [[0; NR_SLOTS]; ABI_COUNT],
        other: [0; ABI_COUNT],
        socketcall: [0; MUX_SLOTS],
        ipc: [0; MUX_SLOTS],
    };
}

// SAFETY: `SyscallCounters` is `repr(C)`, made only of `u64`s, with no padding; any bit pattern
// is a valid value.
#[cfg(all(feature = "user", not(target_arch = "bpf")))]
unsafe impl aya::Pod for SyscallCounters {}

// SAFETY: `repr(C)` plain integers laid out without padding (asserted below).
#[cfg(all(feature = "user", not(target_arch = "bpf")))]
unsafe impl aya::Pod for AttribKey {}
// SAFETY: as above.
#[cfg(all(feature = "user", not(target_arch = "bpf")))]
unsafe impl aya::Pod for AttribValue {}
// SAFETY: as above.
#[cfg(all(feature = "user", not(target_arch = "bpf")))]
unsafe impl aya::Pod for AttribEntry {}
// SAFETY: as above.
#[cfg(all(feature = "user", not(target_arch = "bpf")))]
unsafe impl aya::Pod for ArgSpec {}
// SAFETY: as above.
#[cfg(all(feature = "user", not(target_arch = "bpf")))]
unsafe impl aya::Pod for TaskLayout {}
// SAFETY: as above.
#[cfg(all(feature = "user", not(target_arch = "bpf")))]
unsafe impl aya::Pod for SeccompLayout {}
// SAFETY: as above.
#[cfg(all(feature = "user", not(target_arch = "bpf")))]
unsafe impl aya::Pod for ArgState {}
// SAFETY: as above.
#[cfg(all(feature = "user", not(target_arch = "bpf")))]
unsafe impl aya::Pod for ArgAdded {}
// SAFETY: as above.
#[cfg(all(feature = "user", not(target_arch = "bpf")))]
unsafe impl aya::Pod for ClaimedName {}
// SAFETY: as above.
#[cfg(all(feature = "user", not(target_arch = "bpf")))]
unsafe impl aya::Pod for ArgValueKey {}
// SAFETY: as above.
#[cfg(all(feature = "user", not(target_arch = "bpf")))]
unsafe impl aya::Pod for ArgValueEntry {}
// SAFETY: as above.
#[cfg(all(feature = "user", not(target_arch = "bpf")))]
unsafe impl aya::Pod for DepartureKey {}
// SAFETY: as above.
#[cfg(all(feature = "user", not(target_arch = "bpf")))]
unsafe impl aya::Pod for Departure {}
// SAFETY: as above.
#[cfg(all(feature = "user", not(target_arch = "bpf")))]
unsafe impl aya::Pod for CgroupLayout {}
// SAFETY: as above.
#[cfg(all(feature = "user", not(target_arch = "bpf")))]
unsafe impl aya::Pod for Membership {}
// SAFETY: as above.
#[cfg(all(feature = "user", not(target_arch = "bpf")))]
unsafe impl aya::Pod for CapCounters {}
// SAFETY: as above.
#[cfg(all(feature = "user", not(target_arch = "bpf")))]
unsafe impl aya::Pod for CapProgramKey {}

const _: () = assert!(core::mem::size_of::<AttribKey>() == 24);
const _: () = assert!(core::mem::size_of::<AttribEntry>() == 48);
const _: () = assert!(core::mem::size_of::<ExecEvent>() == 48 + EXEC_FILENAME_LEN);
const _: () = assert!(ATTRIB_ENTRIES.is_power_of_two());
const _: () = assert!(core::mem::size_of::<ArgSpec>() == 16);
const _: () = assert!(core::mem::size_of::<ClaimedName>() == 16 + CGROUP_NAME_LEN);
const _: () = assert!(core::mem::size_of::<TaskLayout>() == 36);
const _: () = assert!(core::mem::size_of::<SeccompLayout>() == 16);
const _: () = assert!(core::mem::size_of::<ArgState>() == ARG_PHASES * MAX_TRACKED_ARGS * 9);
const _: () = assert!(core::mem::size_of::<ArgAdded>() == ARG_PHASES * MAX_TRACKED_ARGS);
const _: () = assert!(core::mem::size_of::<ArgValueKey>() == 16);
const _: () = assert!(core::mem::size_of::<ArgValueEntry>() == 24);
const _: () = assert!(ARG_VALUE_ENTRIES.is_power_of_two());
const _: () = assert!(core::mem::size_of::<DepartureKey>() == 8);
const _: () = assert!(core::mem::size_of::<Departure>() == 56);
const _: () = assert!(core::mem::size_of::<CgroupLayout>() == 24);
const _: () = assert!(core::mem::size_of::<Membership>() == 16);
const _: () = assert!(core::mem::size_of::<CapCounters>() == CAP_SLOTS * CAP_OUTCOMES * 8);
const _: () = assert!(core::mem::size_of::<CapProgramKey>() == 24);
// Spec numbers are stored as `u8` (+1 in ARG_FIRST).
const _: () = assert!(MAX_TRACKED_ARGS < 255);

// Small enough for the stack of the userspace reader, and a multiple of 8 as map values are.
const _: () = assert!(core::mem::size_of::<SyscallCounters>() <= 32 * 1024);
const _: () = assert!(core::mem::size_of::<SyscallCounters>().is_multiple_of(8));
