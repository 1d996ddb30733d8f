//! One probe in a forked child of its own: the child installs the filter, makes the call and
//! stores its errno in memory shared with `verify` (no call the filter could refuse), then
//! exits; the parent reads the errno, or how the child died.

use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};

use crate::seccomp::SeccompProgram;

/// How the child makes the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Call {
    /// A plain syscall; a returned descriptor is closed.
    Plain,
    /// clone: a child that gets 0 exits at once, the parent waits for it.
    Fork,
    /// clone with a thread's flags: the new thread exits before touching memory.
    Thread,
}

/// What a probe's child came back with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Got {
    /// The call's errno (0: it succeeded).
    Errno(i32),
    /// The child was killed by this signal during the call (the filter's kill or trap
    /// action gives SIGSYS).
    Killed(i32),
    /// The probe could not run.
    Error(String),
}

/// A probe child's report, in memory shared with it.
struct Report {
    /// 1 once the child stored the call's errno.
    done: AtomicU8,
    errno: AtomicI32,
}

/// An anonymous shared mapping holding a [`Report`], unmapped on drop.
pub(super) struct SharedReport {
    ptr: std::ptr::NonNull<Report>,
}

impl SharedReport {
    pub(super) fn new() -> std::io::Result<Self> {
        // SAFETY: a new anonymous mapping; no existing memory is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                std::mem::size_of::<Report>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(ptr.cast::<Report>())
            .ok_or_else(|| std::io::Error::other("mmap returned null"))?;
        Ok(Self { ptr })
    }

    fn get(&self) -> &Report {
        // SAFETY: a live mapping of at least `Report`'s size, zero-filled by the kernel (a
        // valid value); only atomics are accessed through it.
        unsafe { self.ptr.as_ref() }
    }
}

impl Drop for SharedReport {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), std::mem::size_of::<Report>()) };
    }
}

/// Forks a child that installs the filter, makes the one call and stores its errno in
/// `report`; waits for it.
pub(super) fn in_child(
    filter: &SeccompProgram,
    report: &SharedReport,
    nr: i64,
    a: &[u64; 6],
    call: Call,
) -> Got {
    let shared = report.get();
    shared.done.store(0, Ordering::Relaxed);
    shared.errno.store(0, Ordering::Relaxed);
    // SAFETY: fork; the child makes only async-signal-safe calls on memory prepared before
    // (the filter's instructions, the shared report) and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: in the child, as above.
        unsafe {
            if filter.install().is_err() {
                libc::_exit(INSTALL_FAILED);
            }
            let errno = make_call(nr, a, call);
            shared.errno.store(errno, Ordering::Relaxed);
            shared.done.store(1, Ordering::Release);
            // Refused exit_group ends on glibc's abort instruction: the errno is stored.
            libc::_exit(0)
        }
    }
    if pid < 0 {
        return Got::Error(format!("fork failed: {}", std::io::Error::last_os_error()));
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Got::Error(format!("waiting for the probe's child failed: {err}"));
        }
    }
    if shared.done.load(Ordering::Acquire) == 1 {
        return Got::Errno(shared.errno.load(Ordering::Relaxed));
    }
    if libc::WIFSIGNALED(status) {
        return Got::Killed(libc::WTERMSIG(status));
    }
    match libc::WEXITSTATUS(status) {
        INSTALL_FAILED => Got::Error("the probe's child could not install the filter".into()),
        code => Got::Error(format!("the probe's child exited {code} before reporting")),
    }
}

/// The probe child's exit status when the kernel refused the filter.
const INSTALL_FAILED: i32 = 71;

/// Makes one call in the probe child; its errno, 0 on success. Async-signal-safe.
///
/// # Safety
/// Only for the forked probe child: a call the filter allows really happens.
unsafe fn make_call(nr: i64, a: &[u64; 6], call: Call) -> i32 {
    let ret = match call {
        Call::Thread => raw_thread(nr, a[0]),
        _ => libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]),
    };
    if ret < 0 {
        return *libc::__errno_location();
    }
    match call {
        Call::Fork if ret == 0 => libc::_exit(0),
        // A successful fork returns a pid and socket a descriptor: both fit in an int.
        Call::Fork => {
            if let Ok(pid) = libc::pid_t::try_from(ret) {
                libc::waitpid(pid, std::ptr::null_mut(), libc::__WALL);
            }
        }
        Call::Plain if nr == libc::SYS_socket => {
            if let Ok(fd) = libc::c_int::try_from(ret) {
                libc::close(fd);
            }
        }
        _ => {}
    }
    0
}

/// clone with thread flags. The new thread shares the stack, so it never returns: it ends
/// itself with a raw `exit`, and should the profile refuse that, waits with `pause`
/// instructions, touching no memory, until the probe's child ends (its `_exit` ends every
/// thread). Returns -1 with errno set on failure, like `syscall`.
#[cfg(target_arch = "x86_64")]
unsafe fn raw_thread(nr: i64, flags: u64) -> libc::c_long {
    let ret: i64;
    std::arch::asm!(
        "syscall",
        "test rax, rax",
        "jnz 3f",
        "mov eax, 60",
        "xor edi, edi",
        "syscall",
        "2:",
        "pause",
        "jmp 2b",
        "3:",
        inlateout("rax") nr => ret,
        in("rdi") flags,
        in("rsi") 0u64,
        in("rdx") 0u64,
        in("r10") 0u64,
        in("r8") 0u64,
        lateout("rcx") _,
        lateout("r11") _,
        options(nostack),
    );
    if ret < 0 {
        // Kernel ABI: a failed syscall returns -errno, with errno in 1..=4095.
        #[allow(clippy::cast_possible_truncation)]
        let errno = (-ret) as i32;
        *libc::__errno_location() = errno;
        return -1;
    }
    ret
}

/// Not supported on this arch: `probes::working_candidates` does not plan the thread probe.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn raw_thread(_nr: i64, _flags: u64) -> libc::c_long {
    *libc::__errno_location() = libc::ENOSYS;
    -1
}
