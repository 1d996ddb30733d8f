//! Host facts the kernel program needs and cannot discover itself (aya programs have no CO-RE):
//! where a task's compat flag lives, where the saved registers hold each syscall argument,
//! and how i386's multiplexed syscalls are numbered.
//!
//! Offsets are read from the kernel's own BTF when it has one; without BTF the layouts of
//! current kernels are assumed and the assumption is logged.

use agent_audit_ebpf::TaskLayout;

use super::btf_scan::KernelBtf;
use crate::syscalls::Arch;

/// The members the `tp_btf` program follows from the current task, in [`TaskLayout`]'s order.
/// They are the same on every architecture, so they are asked in the same BTF scan as the
/// architecture's own members (one pass over the file).
const TASK_MEMBERS: [(&str, &str); 9] = [
    ("task_struct", "cgroups"),
    ("css_set", "dfl_cgrp"),
    ("cgroup", "kn"),
    ("kernfs_node", "id"),
    ("task_struct", "pid"),
    ("task_struct", "tgid"),
    ("task_struct", "cred"),
    ("cred", "uid"),
    ("cred", "gid"),
];

/// Where a cgroup's ancestors and a kernfs node's name are, for the name the kernel program
/// records when it claims a cgroup (in the same scan, after [`TASK_MEMBERS`]).
const NAME_MEMBERS: [(&str, &str); 2] = [("cgroup", "ancestors"), ("kernfs_node", "name")];

/// The offsets of [`NAME_MEMBERS`], all zero unless both were found.
fn name_offsets(found: &[Option<u32>]) -> [u32; 2] {
    match found {
        [Some(ancestors), Some(name)] => [*ancestors, *name],
        _ => [0; 2],
    }
}

/// The task layout from the scan's answers to [`TASK_MEMBERS`]; unknown unless all were found.
/// The offsets of `wanted` in the kernel's BTF; all unknown without one.
fn offsets_in(btf: Option<&KernelBtf>, wanted: &[(&str, &str)]) -> Vec<Option<u32>> {
    btf.map_or_else(|| vec![None; wanted.len()], |b| b.member_offsets(wanted))
}

fn task_layout(found: &[Option<u32>]) -> TaskLayout {
    let Some(v) = found.iter().copied().collect::<Option<Vec<u32>>>() else {
        return TaskLayout::UNKNOWN;
    };
    let [task_cgroups, css_set_dfl_cgrp, cgroup_kn, kernfs_node_id, task_pid, task_tgid, task_cred, cred_uid, cred_gid] =
        v[..]
    else {
        return TaskLayout::UNKNOWN;
    };
    let layout = TaskLayout {
        task_cgroups,
        css_set_dfl_cgrp,
        cgroup_kn,
        kernfs_node_id,
        task_pid,
        task_tgid,
        task_cred,
        cred_uid,
        cred_gid,
    };
    if layout.is_known() {
        layout
    } else {
        TaskLayout::UNKNOWN
    }
}

/// x86 `TS_COMPAT` in `thread_info.status` (arch/x86/include/asm/thread_info.h).
const X86_TS_COMPAT: u32 = 0x0002;
/// arm64 `TIF_32BIT` in `thread_info.flags` (arch/arm64/include/asm/thread_info.h).
const ARM64_TIF_32BIT: u32 = 1 << 22;

/// Values handed to the kernel program as read-only globals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLayout {
    /// Offset in `task_struct` of the `u32` holding the compat flag; 0 disables detection.
    pub compat_flag_offset: u32,
    /// The compat bit(s) in that word.
    pub compat_flag_mask: u32,
    /// Compat `socketcall` number, or `u32::MAX`.
    pub compat_socketcall_nr: u32,
    /// Compat `ipc` number, or `u32::MAX`.
    pub compat_ipc_nr: u32,
    /// Offset in `pt_regs` of a compat syscall's first argument.
    pub compat_arg0_offset: u32,
    /// Offsets in `pt_regs` of the six syscall arguments: native (and x32) calls, then compat
    /// calls. All zero where unknown, which turns argument recording off.
    pub arg_offsets: [[u32; 6]; 2],
    /// Where the current task's cgroup id, pid, tgid and uid are (known only from BTF, which
    /// the `tp_btf` program that uses them needs anyway).
    pub task: TaskLayout,
    /// Offsets of `cgroup.ancestors` and `kernfs_node.name` (zero where unknown).
    pub name_offsets: [u32; 2],
    /// Where the offsets came from: `btf` or `assumed`.
    pub source: &'static str,
}

impl KernelLayout {
    /// Compat detection off: every call is counted through the native or x32 table.
    pub const NO_COMPAT: Self = Self {
        compat_flag_offset: 0,
        compat_flag_mask: 0,
        compat_socketcall_nr: u32::MAX,
        compat_ipc_nr: u32::MAX,
        compat_arg0_offset: 0,
        arg_offsets: [[0; 6]; 2],
        task: TaskLayout::UNKNOWN,
        name_offsets: [0; 2],
        source: "none",
    };

    /// Whether the argument registers are known.
    pub fn knows_arg_registers(&self) -> bool {
        self.arg_offsets != [[0; 6]; 2]
    }

    /// The layout of this host, from the kernel's BTF when it has one.
    pub fn detect(btf: Option<&KernelBtf>) -> Self {
        match Arch::native() {
            Some(Arch::X86_64) => Self::x86_64(btf),
            Some(Arch::Aarch64) => Self::aarch64(btf),
            _ => Self::NO_COMPAT,
        }
    }

    fn x86_64(btf: Option<&KernelBtf>) -> Self {
        // i386 numbers of the multiplexers, from the i386 table.
        let socketcall = Arch::X86.syscall_nr("socketcall").unwrap_or(u32::MAX);
        let ipc = Arch::X86.syscall_nr("ipc").unwrap_or(u32::MAX);
        // The syscall calling conventions (arch/x86/entry/entry_64.S, entry_64_compat.S).
        const NATIVE_ARGS: [&str; 6] = ["di", "si", "dx", "r10", "r8", "r9"];
        const COMPAT_ARGS: [&str; 6] = ["bx", "cx", "dx", "si", "di", "bp"];
        let mut wanted = vec![("task_struct", "thread_info"), ("thread_info", "status")];
        wanted.extend(NATIVE_ARGS.iter().map(|r| ("pt_regs", *r)));
        wanted.extend(COMPAT_ARGS.iter().map(|r| ("pt_regs", *r)));
        let arch_members = wanted.len();
        wanted.extend(TASK_MEMBERS);
        wanted.extend(NAME_MEMBERS);
        let found = offsets_in(btf, &wanted);
        let names_at = arch_members + TASK_MEMBERS.len();
        let task = task_layout(&found[arch_members..names_at]);
        let name_offsets = name_offsets(&found[names_at..]);
        let from_btf: Option<Vec<u32>> = found[..arch_members].iter().copied().collect();
        // Since 5.11 thread_info is {flags, syscall_work, status, …} at the start of
        // task_struct, and pt_regs saves r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax,
        // cx, dx, si, di in that order.
        let (flag, args, source) = match from_btf {
            Some(v) => (
                v[0] + v[1],
                [
                    v[2..8].try_into().expect("six"),
                    v[8..14].try_into().expect("six"),
                ],
                "btf",
            ),
            None => (
                16,
                [[112, 104, 96, 56, 72, 64], [40, 88, 96, 104, 112, 32]],
                "assumed",
            ),
        };
        Self {
            compat_flag_offset: flag,
            compat_flag_mask: X86_TS_COMPAT,
            compat_socketcall_nr: socketcall,
            compat_ipc_nr: ipc,
            compat_arg0_offset: args[1][0],
            arg_offsets: args,
            task,
            name_offsets,
            source,
        }
    }

    fn aarch64(btf: Option<&KernelBtf>) -> Self {
        // Arguments are x0..x5 for both AArch64 and AArch32 tasks (r0..r5 land in the same
        // slots); x0 is overwritten by the return value, so the kernel reads the first
        // argument from orig_x0 (arch/arm64/include/asm/syscall.h). `regs` is the first member
        // of user_pt_regs, which starts pt_regs.
        let mut wanted = vec![
            ("task_struct", "thread_info"),
            ("thread_info", "flags"),
            ("user_pt_regs", "regs"),
            ("pt_regs", "orig_x0"),
        ];
        let arch_members = wanted.len();
        wanted.extend(TASK_MEMBERS);
        wanted.extend(NAME_MEMBERS);
        let found = offsets_in(btf, &wanted);
        let names_at = arch_members + TASK_MEMBERS.len();
        let task = task_layout(&found[arch_members..names_at]);
        let name_offsets = name_offsets(&found[names_at..]);
        let from_btf = match found[..arch_members] {
            [Some(ti), Some(flags), Some(regs), Some(orig_x0)] => Some((ti + flags, regs, orig_x0)),
            _ => None,
        };
        let (flag, source, args) = match from_btf {
            Some((flag, regs, orig_x0)) => {
                // x0 as it was on entry, then x1..x5 in `regs`, 8 bytes apart.
                let row = [
                    orig_x0,
                    regs + 8,
                    regs + 16,
                    regs + 24,
                    regs + 32,
                    regs + 40,
                ];
                (flag, "btf", [row, row])
            }
            None => (0, "none", [[0; 6]; 2]),
        };
        // AArch32 has no socketcall/ipc multiplexers in its EABI table use; leave them off.
        Self {
            compat_flag_offset: flag,
            compat_flag_mask: if flag == 0 { 0 } else { ARM64_TIF_32BIT },
            compat_socketcall_nr: u32::MAX,
            compat_ipc_nr: u32::MAX,
            compat_arg0_offset: 0,
            arg_offsets: args,
            task,
            name_offsets,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn reads_the_compat_flag_offset_from_this_kernels_btf() {
        let Some(btf) = KernelBtf::read(Path::new("/sys/kernel/btf/vmlinux")) else {
            // Without BTF the assumed layout is used; covered below.
            assert_eq!(KernelLayout::detect(None).source, "assumed");
            return;
        };
        let layout = KernelLayout::detect(Some(&btf));
        assert_eq!(layout.source, "btf");
        // thread_info is the first member of task_struct on x86_64 (THREAD_INFO_IN_TASK).
        assert!(layout.compat_flag_offset >= 8 && layout.compat_flag_offset < 64);
        assert_eq!(layout.compat_flag_mask, X86_TS_COMPAT);
        assert_eq!(layout.compat_socketcall_nr, 102);
        assert_eq!(layout.compat_ipc_nr, 117);
        assert_eq!(layout.compat_arg0_offset, 40);
        // The same as the assumed layout, read from BTF.
        assert_eq!(
            layout.arg_offsets,
            [[112, 104, 96, 56, 72, 64], [40, 88, 96, 104, 112, 32]]
        );
        assert!(layout.knows_arg_registers());
        assert!(!KernelLayout::NO_COMPAT.knows_arg_registers());
        // The members the tp_btf program follows from the task: all found, each past the
        // leading member of its struct, and pid and tgid adjacent as pid_tgid packs them.
        let task = layout.task;
        assert!(task.is_known(), "{task:?}");
        assert_eq!(task.task_tgid, task.task_pid + 4);
        assert_eq!(task.cred_gid, task.cred_uid + 4);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn without_btf_current_layouts_are_assumed() {
        let layout =
            KernelLayout::detect(KernelBtf::read(Path::new("/nonexistent/vmlinux")).as_ref());
        assert_eq!(layout.source, "assumed");
        assert_eq!(
            (layout.compat_flag_offset, layout.compat_arg0_offset),
            (16, 40)
        );
        // Nothing is assumed about the task's members: the program calls the helpers.
        assert_eq!(layout.task, TaskLayout::UNKNOWN);
        assert!(!layout.task.is_known());
    }

    #[test]
    fn a_task_layout_with_any_member_missing_is_unknown() {
        let all: Vec<Option<u32>> = (1..=9).map(|i| Some(i * 8)).collect();
        assert!(task_layout(&all).is_known());
        for missing in 0..all.len() {
            let mut found = all.clone();
            found[missing] = None;
            assert_eq!(task_layout(&found), TaskLayout::UNKNOWN, "member {missing}");
        }
        assert_eq!(task_layout(&all[..8]), TaskLayout::UNKNOWN);
    }
}
