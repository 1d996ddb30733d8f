//! A compiled filter as raw classic BPF, ready to install in a forked child between fork and
//! exec. libseccomp's own `load()` allocates, which is not safe after `fork` in a process with
//! other threads; installing prepared instructions with two syscalls is.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};

use super::compile::CompiledFilter;

/// Classic BPF instructions of a seccomp filter.
#[derive(Clone, Debug)]
pub struct SeccompProgram {
    instructions: Vec<libc::sock_filter>,
}

impl SeccompProgram {
    /// Exports the filter libseccomp generated for `compiled`.
    pub fn export(compiled: &CompiledFilter) -> std::io::Result<Self> {
        // SAFETY: static NUL-terminated name; the fd is owned right away.
        let fd = unsafe { libc::memfd_create(c"agent-audit-filter".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        compiled
            .context
            .export_bpf(&fd)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut file = std::fs::File::from(fd);
        std::io::Seek::rewind(&mut file)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let size = std::mem::size_of::<libc::sock_filter>();
        if bytes.is_empty() || bytes.len() % size != 0 {
            return Err(std::io::Error::other(format!(
                "libseccomp exported {} bytes, not whole BPF instructions",
                bytes.len()
            )));
        }
        let instructions = bytes
            .chunks_exact(size)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok(Self { instructions })
    }

    /// Installs the filter on the calling thread, as a container runtime does: sets
    /// `no_new_privs` (required without CAP_SYS_ADMIN, and what runc does by default), then
    /// `seccomp(SECCOMP_SET_MODE_FILTER)`. Async-signal-safe: only two syscalls on memory
    /// prepared before fork.
    pub fn install(&self) -> std::io::Result<()> {
        let prog = libc::sock_fprog {
            len: self.instructions.len() as u16,
            filter: self.instructions.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: plain syscalls; `prog` points to live instructions for their duration.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            const SECCOMP_SET_MODE_FILTER: libc::c_long = 1;
            if libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}
