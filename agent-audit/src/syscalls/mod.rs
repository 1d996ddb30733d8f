//! Where a syscall number becomes a name, per architecture.
//!
//! Names come from maintained tables: the `syscalls` crate (generated from the kernel's own
//! syscall tables) for x86_64, i386, aarch64 and arm, and libseccomp's table for x32, which
//! that crate does not carry. Nothing here is typed by hand.

pub mod multiplexed;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A syscall architecture/ABI, named the way libseccomp and OCI seccomp profiles name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Arch {
    /// 64-bit x86.
    #[serde(rename = "SCMP_ARCH_X86_64")]
    X86_64,
    /// 32-bit x86 (i386), also a compat ABI of x86_64 kernels.
    #[serde(rename = "SCMP_ARCH_X86")]
    X86,
    /// x86_64's x32 ABI.
    #[serde(rename = "SCMP_ARCH_X32")]
    X32,
    /// 64-bit Arm.
    #[serde(rename = "SCMP_ARCH_AARCH64")]
    Aarch64,
    /// 32-bit Arm (EABI), also AArch32 compat on arm64 kernels.
    #[serde(rename = "SCMP_ARCH_ARM")]
    Arm,
}

/// A name that is not one of the supported architectures.
#[derive(Debug, thiserror::Error)]
#[error("unknown architecture {0:?}: expected one of {known}", known = Arch::KNOWN_NAMES)]
pub struct UnknownArch(pub String);

impl Arch {
    /// Every supported architecture.
    pub const ALL: [Arch; 5] = [Arch::X86_64, Arch::X86, Arch::X32, Arch::Aarch64, Arch::Arm];
    const KNOWN_NAMES: &'static str =
        "x86_64, x86, x32, aarch64, arm (or SCMP_ARCH_X86_64, SCMP_ARCH_X86, …)";

    /// The libseccomp / OCI name, e.g. `SCMP_ARCH_X86_64`.
    pub fn scmp_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "SCMP_ARCH_X86_64",
            Arch::X86 => "SCMP_ARCH_X86",
            Arch::X32 => "SCMP_ARCH_X32",
            Arch::Aarch64 => "SCMP_ARCH_AARCH64",
            Arch::Arm => "SCMP_ARCH_ARM",
        }
    }

    /// The short name used on the command line, e.g. `x86_64`.
    pub fn short_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::X86 => "x86",
            Arch::X32 => "x32",
            Arch::Aarch64 => "aarch64",
            Arch::Arm => "arm",
        }
    }

    /// The architecture of this build's native syscalls, if supported.
    pub fn native() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }

    /// The 32-bit compat ABI of a 64-bit kernel on this architecture.
    pub fn compat32_of(native: Arch) -> Option<Arch> {
        match native {
            Arch::X86_64 => Some(Arch::X86),
            Arch::Aarch64 => Some(Arch::Arm),
            _ => None,
        }
    }

    /// The name of syscall `nr` on this architecture, from the maintained table.
    pub fn syscall_name(self, nr: u32) -> Option<&'static str> {
        let index = usize::try_from(nr).ok()?;
        let name = match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::new(index).map(|s| s.name()),
            Arch::X86 => syscalls::x86::Sysno::new(index).map(|s| s.name()),
            Arch::Aarch64 => aarch64::name(nr),
            Arch::Arm => syscalls::arm::Sysno::new(index).map(|s| s.name()),
            Arch::X32 => x32::name(nr),
        };
        name.map(kernel_name)
    }

    /// Whether `name` is a syscall on this architecture.
    pub fn has_syscall(self, name: &str) -> bool {
        self.syscall_nr(name).is_some()
    }

    /// The number of syscall `name` on this architecture, if it exists there.
    pub fn syscall_nr(self, name: &str) -> Option<u32> {
        // The `syscalls` crate spells Rust keywords as raw identifiers (`r#break`); profiles,
        // libseccomp and the kernel say `break`. Only the kernel spelling is accepted.
        if name.starts_with("r#") {
            return None;
        }
        let name = match name {
            "break" => "r#break",
            other => other,
        };
        fn parse<T: FromStr + Copy>(name: &str, id: impl Fn(T) -> i32) -> Option<u32> {
            // The crate's numbers are never negative; a negative one would be no syscall.
            name.parse::<T>()
                .ok()
                .and_then(|s| u32::try_from(id(s)).ok())
        }
        match self {
            Arch::X86_64 => parse(name, |s: syscalls::x86_64::Sysno| s.id()),
            Arch::X86 => parse(name, |s: syscalls::x86::Sysno| s.id()),
            Arch::Aarch64 => aarch64::nr(name),
            Arch::Arm => parse(name, |s: syscalls::arm::Sysno| s.id()),
            Arch::X32 => x32::nr(name),
        }
    }

    /// Every syscall name this architecture's table knows, in number order.
    pub fn syscall_names(self) -> Vec<&'static str> {
        let names: Vec<&'static str> = match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::iter().map(|s| s.name()).collect(),
            Arch::X86 => syscalls::x86::Sysno::iter().map(|s| s.name()).collect(),
            Arch::Aarch64 => aarch64::names(),
            Arch::Arm => syscalls::arm::Sysno::iter().map(|s| s.name()).collect(),
            Arch::X32 => x32::names(),
        };
        names.into_iter().map(kernel_name).collect()
    }
}

/// The kernel's spelling of a name from the `syscalls` crate (`r#break` → `break`).
fn kernel_name(name: &'static str) -> &'static str {
    name.strip_prefix("r#").unwrap_or(name)
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scmp_name())
    }
}

impl FromStr for Arch {
    type Err = UnknownArch;

    /// Accepts the short name (`x86_64`, `x86`/`i386`, `x32`, `aarch64`/`arm64`, `arm`) or
    /// the libseccomp name (`SCMP_ARCH_X86_64`, …).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let arch = match s.trim() {
            "x86_64" | "amd64" | "SCMP_ARCH_X86_64" => Arch::X86_64,
            "x86" | "i386" | "i686" | "SCMP_ARCH_X86" => Arch::X86,
            "x32" | "SCMP_ARCH_X32" => Arch::X32,
            "aarch64" | "arm64" | "SCMP_ARCH_AARCH64" => Arch::Aarch64,
            "arm" | "SCMP_ARCH_ARM" => Arch::Arm,
            other => return Err(UnknownArch(other.to_string())),
        };
        Ok(arch)
    }
}

/// aarch64 names: the `syscalls` crate's table, corrected against libseccomp's.
///
/// `syscalls` 0.8 lists the asm-generic `*_time64` calls (403..) for aarch64, where the kernel
/// only builds them for 32-bit ABIs, and names number 79 `fstatat` where the kernel, libseccomp
/// and every profile say `newfstatat`. Where libseccomp knows a number under another name, its
/// name wins; where libseccomp knows a name but says aarch64 does not have it (a negative
/// pseudo-number), the entry is dropped. Names newer than libseccomp are kept as they are.
mod aarch64 {
    use std::sync::OnceLock;

    use libseccomp::{ScmpArch, ScmpSyscall};

    fn table() -> &'static [(u32, &'static str)] {
        static TABLE: OnceLock<Vec<(u32, &'static str)>> = OnceLock::new();
        TABLE.get_or_init(|| {
            syscalls::aarch64::Sysno::iter()
                .filter_map(|s| correct(s.id(), s.name()))
                .collect()
        })
    }

    fn correct(id: i32, name: &'static str) -> Option<(u32, &'static str)> {
        let nr = u32::try_from(id).ok()?;
        if let Ok(seccomp_name) = ScmpSyscall::from(id).get_name_by_arch(ScmpArch::Aarch64) {
            if seccomp_name != name {
                return Some((nr, super::x32::intern(seccomp_name)));
            }
            return Some((nr, name));
        }
        match ScmpSyscall::from_name_by_arch(name, ScmpArch::Aarch64) {
            Ok(sys) if i32::from(sys) < 0 => None,
            _ => Some((nr, name)),
        }
    }

    pub(super) fn name(nr: u32) -> Option<&'static str> {
        table()
            .iter()
            .find(|(n, _)| *n == nr)
            .map(|(_, name)| *name)
    }

    pub(super) fn nr(name: &str) -> Option<u32> {
        table().iter().find(|(_, n)| *n == name).map(|(nr, _)| *nr)
    }

    pub(super) fn names() -> Vec<&'static str> {
        table().iter().map(|(_, name)| *name).collect()
    }
}

/// x32 names, from libseccomp's table (x32 numbers carry bit 30; callers pass them without).
mod x32 {
    use libseccomp::{ScmpArch, ScmpSyscall};

    const X32_SYSCALL_BIT: i32 = 0x4000_0000;
    /// x32 numbers end below this (the x32-specific block is 512..547).
    const X32_TABLE_END: u32 = 1024;

    pub(super) fn name(nr: u32) -> Option<&'static str> {
        let sys = ScmpSyscall::from(X32_SYSCALL_BIT | i32::try_from(nr).ok()?);
        let name = sys.get_name_by_arch(ScmpArch::X32).ok()?;
        // libseccomp returns owned strings; intern them so all tables hand out `&'static str`.
        Some(intern(name))
    }

    pub(super) fn nr(name: &str) -> Option<u32> {
        let sys = ScmpSyscall::from_name_by_arch(name, ScmpArch::X32).ok()?;
        let raw = i32::from(sys);
        u32::try_from(raw & !X32_SYSCALL_BIT)
            .ok()
            .filter(|_| raw >= 0)
    }

    pub(super) fn names() -> Vec<&'static str> {
        (0..X32_TABLE_END).filter_map(name).collect()
    }

    pub(super) fn intern(name: String) -> &'static str {
        use std::collections::HashSet;
        use std::sync::Mutex;
        static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
        let mut guard = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        let set = guard.get_or_insert_with(HashSet::new);
        if let Some(existing) = set.get(name.as_str()) {
            return existing;
        }
        let leaked: &'static str = Box::leak(name.into_boxed_str());
        set.insert(leaked);
        leaked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i386_and_x86_64_number_the_same_name_differently() {
        // The reason the recorder keeps (arch, nr) pairs: 5 is `open` on i386, `fstat` on x86_64.
        assert_eq!(Arch::X86.syscall_name(5), Some("open"));
        assert_eq!(Arch::X86_64.syscall_name(5), Some("fstat"));
        assert_eq!(Arch::X86_64.syscall_nr("getppid"), Some(110));
        assert_eq!(Arch::X86.syscall_nr("getppid"), Some(64));
    }

    #[test]
    fn aarch64_has_no_legacy_open() {
        assert_eq!(Arch::Aarch64.syscall_nr("open"), None);
        assert_eq!(Arch::Aarch64.syscall_nr("openat"), Some(56));
        assert_eq!(Arch::Arm.syscall_name(5), Some("open"));
    }

    #[test]
    fn x32_names_come_from_libseccomp() {
        assert_eq!(Arch::X32.syscall_name(0), Some("read"));
        // x32-specific block: rt_sigaction is 512 on x32, 13 is not valid there.
        assert_eq!(Arch::X32.syscall_name(512), Some("rt_sigaction"));
        assert_eq!(Arch::X32.syscall_nr("rt_sigaction"), Some(512));
    }

    #[test]
    fn names_and_numbers_round_trip_on_every_arch() {
        for arch in Arch::ALL {
            let names = arch.syscall_names();
            assert!(names.len() > 300, "{arch}: only {} names", names.len());
            for name in names {
                let nr = arch
                    .syscall_nr(name)
                    .unwrap_or_else(|| panic!("{arch} {name}"));
                assert_eq!(arch.syscall_name(nr), Some(name), "{arch} {nr}");
            }
        }
    }

    #[test]
    fn aarch64_table_is_corrected_against_libseccomp() {
        assert_eq!(Arch::Aarch64.syscall_name(79), Some("newfstatat"));
        assert_eq!(Arch::Aarch64.syscall_nr("newfstatat"), Some(79));
        assert_eq!(Arch::Aarch64.syscall_nr("fstatat"), None);
        // 64-bit arches have no *_time64 twins.
        assert!(!Arch::Aarch64.has_syscall("clock_gettime64"));
        assert!(!Arch::Aarch64.has_syscall("futex_time64"));
        assert!(Arch::Arm.has_syscall("clock_gettime64"));
    }

    #[test]
    fn keyword_names_use_the_kernel_spelling() {
        // i386's `break` is `r#break` in the `syscalls` crate; profiles say `break`.
        assert_eq!(Arch::X86.syscall_name(17), Some("break"));
        assert_eq!(Arch::X86.syscall_nr("break"), Some(17));
        assert_eq!(Arch::X86.syscall_nr("r#break"), None);
        assert!(Arch::X86.syscall_names().contains(&"break"));
        assert!(Arch::X86.has_syscall("break"));
    }

    #[test]
    fn arch_names_parse_both_forms() {
        for arch in Arch::ALL {
            assert_eq!(arch.scmp_name().parse::<Arch>().unwrap(), arch);
            assert_eq!(arch.short_name().parse::<Arch>().unwrap(), arch);
        }
        let err = "sparc".parse::<Arch>().unwrap_err().to_string();
        assert!(err.contains("sparc") && err.contains("x86_64"), "{err}");
    }
}
