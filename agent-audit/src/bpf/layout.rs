//! Host facts the kernel program needs and cannot discover itself (aya programs have no CO-RE):
//! where a task's compat flag lives, and how i386's multiplexed syscalls are numbered.
//!
//! Offsets are read from the kernel's own BTF when it has one; without BTF the layouts of
//! current kernels are assumed and the assumption is logged.

use std::path::Path;

use super::btf_scan::member_offsets;
use crate::syscalls::Arch;

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
        source: "none",
    };

    /// The layout of this host, from the BTF at `btf_path` when present.
    pub fn detect(btf_path: &Path) -> Self {
        match Arch::native() {
            Some(Arch::X86_64) => Self::x86_64(btf_path),
            Some(Arch::Aarch64) => Self::aarch64(btf_path),
            _ => Self::NO_COMPAT,
        }
    }

    fn x86_64(btf_path: &Path) -> Self {
        // i386 numbers of the multiplexers, from the i386 table.
        let socketcall = Arch::X86.syscall_nr("socketcall").unwrap_or(u32::MAX);
        let ipc = Arch::X86.syscall_nr("ipc").unwrap_or(u32::MAX);
        let from_btf = match member_offsets(
            btf_path,
            &[
                ("task_struct", "thread_info"),
                ("thread_info", "status"),
                ("pt_regs", "bx"),
            ],
        )[..]
        {
            [Some(ti), Some(status), Some(bx)] => Some((ti + status, bx)),
            _ => None,
        };
        // Since 5.11 thread_info is {flags, syscall_work, status, …} at the start of
        // task_struct, and pt_regs stores bx sixth.
        let ((flag, arg0), source) = match from_btf {
            Some(v) => (v, "btf"),
            None => ((16, 40), "assumed"),
        };
        Self {
            compat_flag_offset: flag,
            compat_flag_mask: X86_TS_COMPAT,
            compat_socketcall_nr: socketcall,
            compat_ipc_nr: ipc,
            compat_arg0_offset: arg0,
            source,
        }
    }

    fn aarch64(btf_path: &Path) -> Self {
        let from_btf = match member_offsets(
            btf_path,
            &[("task_struct", "thread_info"), ("thread_info", "flags")],
        )[..]
        {
            [Some(ti), Some(flags)] => Some(ti + flags),
            _ => None,
        };
        let (flag, source) = match from_btf {
            Some(v) => (v, "btf"),
            None => (0, "none"),
        };
        // AArch32 has no socketcall/ipc multiplexers in its EABI table use; leave them off.
        Self {
            compat_flag_offset: flag,
            compat_flag_mask: if flag == 0 { 0 } else { ARM64_TIF_32BIT },
            compat_socketcall_nr: u32::MAX,
            compat_ipc_nr: u32::MAX,
            compat_arg0_offset: 0,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn reads_the_compat_flag_offset_from_this_kernels_btf() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            // Without BTF the assumed layout is used; covered below.
            assert_eq!(KernelLayout::detect(path).source, "assumed");
            return;
        }
        let layout = KernelLayout::detect(path);
        assert_eq!(layout.source, "btf");
        // thread_info is the first member of task_struct on x86_64 (THREAD_INFO_IN_TASK).
        assert!(layout.compat_flag_offset >= 8 && layout.compat_flag_offset < 64);
        assert_eq!(layout.compat_flag_mask, X86_TS_COMPAT);
        assert_eq!(layout.compat_socketcall_nr, 102);
        assert_eq!(layout.compat_ipc_nr, 117);
        assert_eq!(layout.compat_arg0_offset, 40);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn without_btf_current_layouts_are_assumed() {
        let layout = KernelLayout::detect(Path::new("/nonexistent/vmlinux"));
        assert_eq!(layout.source, "assumed");
        assert_eq!(
            (layout.compat_flag_offset, layout.compat_arg0_offset),
            (16, 40)
        );
    }
}
