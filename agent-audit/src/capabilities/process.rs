//! Reducing a process's own capability sets to a container's set before it execs the
//! workload (`verify` of a command, as the engine does for a container's first process): the
//! bounding set (what a root exec gets back), effective, permitted and inheritable, and the
//! ambient set (what survives a non-root exec).

use std::io;

use super::NAMES;
use crate::seccomp::container::Capabilities;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`, one per 32 capabilities.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// What the child does, prepared before the fork: only syscalls are left for it to make.
#[derive(Clone)]
pub struct KeptCapabilities {
    /// Capabilities kept, bit N for capability N.
    keep: u64,
    /// The highest capability this kernel knows (`/proc/sys/kernel/cap_last_cap`).
    last_cap: u32,
    /// Our own sets, each reduced to `keep`.
    reduced: [CapData; 2],
}

impl KeptCapabilities {
    /// The reduction to `caps`; `None` for every capability (nothing to reduce).
    pub fn prepare(caps: &Capabilities) -> io::Result<Option<Self>> {
        let Capabilities::Set(names) = caps else {
            return Ok(None);
        };
        let mut keep = 0u64;
        for name in names {
            let bare = name.strip_prefix("CAP_").unwrap_or(name);
            let bit = NAMES.iter().position(|n| *n == bare).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{name} is not a capability this version knows"),
                )
            })?;
            keep |= 1 << bit;
        }
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")?
            .trim()
            .parse::<u32>()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut reduced = own_sets()?;
        for (word, data) in reduced.iter_mut().enumerate() {
            // Bits 32..63 of `keep` for the second word, truncation meant.
            #[allow(clippy::cast_possible_truncation)]
            let mask = (keep >> (32 * word)) as u32;
            data.effective &= mask;
            data.permitted &= mask;
            data.inheritable &= mask;
        }
        Ok(Some(Self {
            keep,
            last_cap,
            reduced,
        }))
    }

    /// Drops every capability outside the set from the bounding and ambient sets, then sets
    /// effective, permitted and inheritable to ours reduced. The bounding set first: dropping
    /// from it needs `CAP_SETPCAP`, which the reduced effective set may lack.
    ///
    /// # Safety
    /// Async-signal-safe (syscalls on memory prepared before): fit for a child between fork
    /// and exec. Returns whether every call succeeded; the error is left in `errno`.
    #[must_use]
    pub unsafe fn apply(&self) -> bool {
        for cap in 0..=self.last_cap.min(63) {
            if self.keep & (1 << cap) != 0 {
                continue;
            }
            let cap = libc::c_ulong::from(cap);
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                return false;
            }
            let ambient = libc::c_ulong::try_from(libc::PR_CAP_AMBIENT_LOWER).unwrap_or(0);
            if libc::prctl(libc::PR_CAP_AMBIENT, ambient, cap, 0, 0) != 0 {
                return false;
            }
        }
        let mut header = CapHeader {
            version: CAPABILITY_VERSION_3,
            pid: 0,
        };
        let rc = libc::syscall(
            libc::SYS_capset,
            std::ptr::addr_of_mut!(header),
            self.reduced.as_ptr(),
        );
        rc == 0
    }
}

/// This process's effective, permitted and inheritable sets.
fn own_sets() -> io::Result<[CapData; 2]> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget with a version-3 header and room for its two data words.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            std::ptr::addr_of_mut!(header),
            data.as_mut_ptr(),
        )
    };
    if rc == 0 {
        Ok(data)
    } else {
        Err(io::Error::last_os_error())
    }
}
