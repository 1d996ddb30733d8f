//! A compiled filter as raw classic BPF, ready to install in a forked child between fork and
//! exec. libseccomp's own `load()` allocates, which is not safe after `fork` in a process with
//! other threads; installing prepared instructions with two syscalls is.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};

use super::compile::CompiledFilter;

/// The most instructions the kernel takes in one seccomp filter: `BPF_MAXINSNS`
/// (include/uapi/linux/bpf_common.h). kernel/seccomp.c `seccomp_prepare_filter` refuses a
/// longer program with EINVAL, whoever loads it (runc, crun, `verify`).
///
/// The kernel has a second limit, not checked here: every filter a task already has (each
/// counted with 4 instructions more) plus the new one must stay within `MAX_INSNS_PER_PATH`
/// (256 KiB of instructions: 32768; `seccomp_attach_filter`, ENOMEM). Only a process already
/// under several large filters (nested sandboxes) meets it; `verify` then reports the refused
/// filter as its start failure.
pub const MAX_FILTER_INSTRUCTIONS: usize = 4096;

/// A filter that cannot become a program the kernel would load.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// libseccomp could not export the filter, or reading it back failed.
    #[error("exporting the filter from libseccomp failed: {0}")]
    Export(#[source] std::io::Error),
    /// Longer than [`MAX_FILTER_INSTRUCTIONS`].
    #[error(
        "the filter is {instructions} BPF instructions, more than the {MAX_FILTER_INSTRUCTIONS} \
         the kernel accepts in one seccomp filter (BPF_MAXINSNS; seccomp(2) refuses it with \
         EINVAL)"
    )]
    TooLarge {
        /// Its length.
        instructions: usize,
    },
}

/// Classic BPF instructions of a seccomp filter.
#[derive(Clone, Debug)]
pub struct SeccompProgram {
    instructions: Vec<libc::sock_filter>,
    /// `instructions.len()` as the kernel's `sock_fprog` takes it, converted before fork.
    len: u16,
}

impl SeccompProgram {
    /// Exports the filter libseccomp generated for `compiled`, after runc's ENOSYS stub,
    /// refusing one the kernel would refuse for its length.
    pub fn export(compiled: &CompiledFilter) -> Result<Self, ProgramError> {
        let instructions = Self::export_unchecked(compiled).map_err(ProgramError::Export)?;
        let too_large = || ProgramError::TooLarge {
            instructions: instructions.len(),
        };
        if instructions.len() > MAX_FILTER_INSTRUCTIONS {
            return Err(too_large());
        }
        let len = u16::try_from(instructions.len()).map_err(|_| too_large())?;
        Ok(Self { instructions, len })
    }

    fn export_unchecked(compiled: &CompiledFilter) -> std::io::Result<Vec<libc::sock_filter>> {
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
        let stub = compiled.enosys.instructions();
        let instructions = stub
            .into_iter()
            .chain(bytes.chunks_exact(size).map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            }))
            .collect();
        Ok(instructions)
    }

    /// The instructions, as the kernel receives them.
    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.instructions
    }

    /// Installs the filter on the calling thread, as a container runtime does: sets
    /// `no_new_privs` (required without CAP_SYS_ADMIN, and what runc does by default), then
    /// `seccomp(SECCOMP_SET_MODE_FILTER)`. Async-signal-safe: only two syscalls on memory
    /// prepared before fork.
    pub fn install(&self) -> std::io::Result<()> {
        let prog = libc::sock_fprog {
            len: self.len,
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

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    use super::*;

    /// `len - 1` loads of the syscall number, then "allow": valid at any length.
    fn program_of_length(len: usize) -> SeccompProgram {
        const LD_W_ABS: u16 = 0x20;
        const RET_K: u16 = 0x06;
        const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
        let mut instructions = vec![
            libc::sock_filter {
                code: LD_W_ABS,
                jt: 0,
                jf: 0,
                k: 0,
            };
            len - 1
        ];
        instructions.push(libc::sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ALLOW,
        });
        SeccompProgram {
            instructions,
            len: u16::try_from(len).unwrap(),
        }
    }

    /// What installing `program` in a child says.
    fn install_in_child(program: SeccompProgram) -> std::io::Result<()> {
        let mut cmd = Command::new("/bin/true");
        // SAFETY: `install` makes two syscalls on memory prepared before fork.
        unsafe { cmd.pre_exec(move || program.install()) };
        cmd.status().map(|_| ())
    }

    /// The limit is the running kernel's, not a number from memory: it loads a filter of
    /// exactly MAX_FILTER_INSTRUCTIONS and refuses one more with EINVAL.
    #[test]
    fn the_kernel_takes_max_filter_instructions_and_not_one_more() {
        install_in_child(program_of_length(MAX_FILTER_INSTRUCTIONS)).unwrap();
        let err = install_in_child(program_of_length(MAX_FILTER_INSTRUCTIONS + 1)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    }
}
