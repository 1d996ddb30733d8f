//! Built-in probes: dangerous syscalls tried under the profile, each with arguments that do
//! nothing harmful even where the call is allowed (invalid flags, bad descriptors, null
//! pointers). Under a correct profile each must fail with the errno the profile gives it,
//! and *not* with the error the kernel itself would return for those arguments.

use std::os::unix::process::CommandExt;
use std::process::Command;

use serde::Serialize;

use crate::seccomp::SeccompProgram;
use crate::syscalls::Arch;

/// EPERM and ENOSYS.
pub const EPERM: i32 = 1;
/// See [`EPERM`].
pub const ENOSYS: i32 = 38;

/// One probe: a syscall and harmless arguments.
struct Probe {
    name: &'static str,
    args: [u64; 6],
    /// What the kernel says when the filter lets the call through, for the report.
    if_allowed: &'static str,
}

/// The probes: what `--probe-dangerous` tries.
const PROBES: &[Probe] = &[
    // PTRACE_PEEKDATA of pid -1: no such process.
    Probe {
        name: "ptrace",
        args: [2, u64::MAX, 0, 0, 0, 0],
        if_allowed: "ESRCH",
    },
    // All-null mount: bad address.
    Probe {
        name: "mount",
        args: [0; 6],
        if_allowed: "EFAULT",
    },
    // Invalid flags are refused before anything is loaded (and unlike 0 segments, never
    // unloads a staged kernel).
    Probe {
        name: "kexec_load",
        args: [0, 0, 0, 0xffff_ffff, 0, 0],
        if_allowed: "EINVAL",
    },
    Probe {
        name: "name_to_handle_at",
        args: [u64::MAX, 0, 0, 0, 0, 0],
        if_allowed: "EBADF/EFAULT",
    },
    Probe {
        name: "open_by_handle_at",
        args: [u64::MAX, 0, 0, 0, 0, 0],
        if_allowed: "EBADF/EFAULT",
    },
    // unshare(0) is a no-op when allowed.
    Probe {
        name: "unshare",
        args: [0; 6],
        if_allowed: "success",
    },
    // An invalid command.
    Probe {
        name: "bpf",
        args: [u32::MAX as u64, 0, 0, 0, 0, 0],
        if_allowed: "EINVAL",
    },
    // Null args: invalid when allowed.
    Probe {
        name: "clone3",
        args: [0; 6],
        if_allowed: "EINVAL/EFAULT",
    },
];

/// What one probe got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    /// The syscall.
    pub syscall: String,
    /// errno the profile should produce.
    pub expected_errno: i32,
    /// errno observed (0: the call succeeded).
    pub errno: i32,
    /// What the kernel returns for these arguments when the call is allowed.
    pub if_allowed: String,
    /// `errno == expected_errno`.
    pub ok: bool,
}

/// Runs every probe in a child that installs `filter` and never execs. `expected(name)` is
/// the errno the profile gives that syscall.
pub fn run(
    filter: &SeccompProgram,
    expected: impl Fn(&str) -> i32,
) -> std::io::Result<Vec<ProbeResult>> {
    let native = Arch::native().ok_or_else(|| std::io::Error::other("unsupported host arch"))?;
    let calls: Vec<(&Probe, i64)> = PROBES
        .iter()
        .filter_map(|p| native.syscall_nr(p.name).map(|nr| (p, nr as i64)))
        .collect();
    let mut fds = [0; 2];
    // SAFETY: out-array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let (read_fd, write_fd) = (fds[0], fds[1]);
    let filter = filter.clone();
    let plan: Vec<(i64, [u64; 6])> = calls.iter().map(|(p, nr)| (*nr, p.args)).collect();
    let mut cmd = Command::new("/proc/self/exe");
    // SAFETY: after fork the closure installs the filter, makes raw syscalls and writes
    // their errnos to a pipe, then leaves with `_exit`: only async-signal-safe calls on
    // memory prepared before fork. It never returns, so nothing is exec'd.
    unsafe {
        cmd.pre_exec(move || {
            let mut results = [0i32; 16];
            let ok = filter.install().is_ok();
            for (i, (nr, a)) in plan.iter().enumerate().take(results.len()) {
                results[i] = if !ok {
                    -1
                } else if libc::syscall(*nr, a[0], a[1], a[2], a[3], a[4], a[5]) < 0 {
                    *libc::__errno_location()
                } else {
                    0
                };
            }
            libc::write(
                write_fd,
                results.as_ptr().cast(),
                std::mem::size_of_val(&results),
            );
            libc::_exit(0);
        });
    }
    let spawned = cmd.spawn();
    // SAFETY: our end of the pipe, closed once.
    unsafe { libc::close(write_fd) };
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            unsafe { libc::close(read_fd) };
            return Err(e);
        }
    };
    let mut buf = [0i32; 16];
    // SAFETY: reading into a local buffer of the given size.
    let n = unsafe {
        libc::read(
            read_fd,
            buf.as_mut_ptr().cast(),
            std::mem::size_of_val(&buf),
        )
    };
    unsafe { libc::close(read_fd) };
    child.wait()?;
    if n != std::mem::size_of_val(&buf) as isize {
        return Err(std::io::Error::other(
            "the probe child died before reporting",
        ));
    }
    if buf[..calls.len()].contains(&-1) {
        return Err(std::io::Error::other(
            "the probe child could not install the filter",
        ));
    }
    Ok(calls
        .iter()
        .zip(buf)
        .map(|((p, _), errno)| {
            let expected_errno = expected(p.name);
            ProbeResult {
                syscall: p.name.to_string(),
                expected_errno,
                errno,
                if_allowed: p.if_allowed.to_string(),
                ok: errno == expected_errno,
            }
        })
        .collect())
}
