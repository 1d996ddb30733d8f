//! Built-in probes, tried under the profile in a child that installs the filter and never
//! execs.
//!
//! Refused probes are dangerous calls with arguments that do nothing harmful even where the
//! call is allowed (invalid flags, bad descriptors, null pointers, a child that exits at once):
//! under a correct profile each fails with the errno the profile gives it, not with the kernel's
//! own answer. Some are refused only by argument rules (`socket(AF_VSOCK)`,
//! `clone(CLONE_NEWUSER)`, `personality(READ_IMPLIES_EXEC)`). Working probes check that those
//! rules still let the common case through: a fork, a thread, a socket of each family the
//! profile allows; they run only when the profile allows the syscall at all.

use std::os::unix::process::CommandExt;
use std::process::Command;

use serde::Serialize;

use crate::profile::args::family_label;
use crate::seccomp::evaluate;
use crate::seccomp::{SeccompProfile, SeccompProgram};
use crate::syscalls::Arch;

/// EPERM and ENOSYS.
pub const EPERM: i32 = 1;
/// See [`EPERM`].
pub const ENOSYS: i32 = 38;

const SIGCHLD: u64 = 17;
const CLONE_NEWNS: u64 = 0x0002_0000;
const CLONE_NEWUSER: u64 = 0x1000_0000;
/// CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM: a thread.
const THREAD_FLAGS: u64 = 0x0005_0f00;
const READ_IMPLIES_EXEC: u64 = 0x0040_0000;
const TIOCSTI: u64 = 0x5412;
const TCGETS: u64 = 0x5401;
const SOCK_STREAM: u64 = 1;
const SOCK_DGRAM: u64 = 2;
const SOCK_SEQPACKET: u64 = 5;
/// Address families `0..KNOWN_FAMILIES` exist (AF_MAX).
const KNOWN_FAMILIES: u64 = 46;
/// At most this many probes run.
const MAX_PROBES: usize = 96;

/// What a probe checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// The profile must refuse it.
    Refused,
    /// The profile must let it run.
    Works,
}

/// How the child makes the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    /// A plain syscall; a returned descriptor is closed.
    Plain,
    /// clone: a child that gets 0 exits at once, the parent waits for it.
    Fork,
    /// clone with a thread's flags: the new thread exits before touching memory.
    Thread,
}

/// One probe.
#[derive(Clone, Debug)]
pub struct Probe {
    name: &'static str,
    label: String,
    args: [u64; 6],
    call: Call,
    expect: Expect,
    /// What the kernel says when the filter lets the call through, for the report.
    if_allowed: &'static str,
}

fn refused(name: &'static str, label: &str, args: [u64; 6], if_allowed: &'static str) -> Probe {
    let call = if name == "clone" {
        Call::Fork
    } else {
        Call::Plain
    };
    Probe {
        name,
        label: label.to_string(),
        args,
        call,
        expect: Expect::Refused,
        if_allowed,
    }
}

/// The dangerous calls: what `--probe-dangerous` tries.
fn refused_probes() -> Vec<Probe> {
    vec![
        // PTRACE_PEEKDATA of pid -1: no such process.
        refused("ptrace", "ptrace", [2, u64::MAX, 0, 0, 0, 0], "ESRCH"),
        // All-null mount: bad address.
        refused("mount", "mount", [0; 6], "EFAULT"),
        // Invalid flags are refused before anything is loaded (and unlike 0 segments, never
        // unloads a staged kernel).
        refused(
            "kexec_load",
            "kexec_load",
            [0, 0, 0, 0xffff_ffff, 0, 0],
            "EINVAL",
        ),
        refused(
            "name_to_handle_at",
            "name_to_handle_at",
            [u64::MAX, 0, 0, 0, 0, 0],
            "EBADF/EFAULT",
        ),
        refused(
            "open_by_handle_at",
            "open_by_handle_at",
            [u64::MAX, 0, 0, 0, 0, 0],
            "EBADF/EFAULT",
        ),
        // unshare(0) is a no-op when allowed.
        refused("unshare", "unshare", [0; 6], "success"),
        // An invalid command.
        refused("bpf", "bpf", [u64::from(u32::MAX), 0, 0, 0, 0, 0], "EINVAL"),
        // Null args: invalid when allowed. Must fail with ENOSYS so that libc falls back.
        refused("clone3", "clone3", [0; 6], "EINVAL/EFAULT"),
        // Only argument rules refuse these.
        refused(
            "socket",
            "socket(AF_ALG)",
            [38, SOCK_SEQPACKET, 0, 0, 0, 0],
            "a socket, or EAFNOSUPPORT",
        ),
        refused(
            "socket",
            "socket(AF_VSOCK)",
            [40, SOCK_STREAM, 0, 0, 0, 0],
            "a socket, or EAFNOSUPPORT",
        ),
        // The kernel reads the family as an int: AF_VSOCK with upper bits set.
        refused(
            "socket",
            "socket(AF_VSOCK|1<<32)",
            [0x1_0000_0028, SOCK_STREAM, 0, 0, 0, 0],
            "a socket, or EAFNOSUPPORT",
        ),
        refused(
            "clone",
            "clone(CLONE_NEWUSER|SIGCHLD)",
            [CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0, 0],
            "a child in a new user namespace",
        ),
        refused(
            "clone",
            "clone(CLONE_NEWNS|SIGCHLD)",
            [CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0, 0],
            "a child in a new mount namespace",
        ),
        // Bad descriptor: EBADF when allowed; the second one has the upper-bit alias of
        // CVE-2019-10063.
        refused(
            "ioctl",
            "ioctl(TIOCSTI)",
            [u64::MAX, TIOCSTI, 0, 0, 0, 0],
            "EBADF",
        ),
        refused(
            "ioctl",
            "ioctl(TIOCSTI|1<<32)",
            [u64::MAX, TIOCSTI | (1 << 32), 0, 0, 0, 0],
            "EBADF",
        ),
        refused(
            "personality",
            "personality(READ_IMPLIES_EXEC)",
            [READ_IMPLIES_EXEC, 0, 0, 0, 0, 0],
            "the old personality",
        ),
    ]
}

/// The common calls argument rules must not break, for the syscalls the profile allows.
fn working_probes(profile: &SeccompProfile) -> Vec<Probe> {
    let allows_some = |name: &str| {
        profile
            .syscalls
            .iter()
            .any(|r| !r.action.denies() && r.all_names().any(|n| n == name))
    };
    let mut probes = Vec::new();
    let works = |name, label: String, args, call| Probe {
        name,
        label,
        args,
        call,
        expect: Expect::Works,
        if_allowed: "success",
    };
    if allows_some("clone") {
        probes.push(works(
            "clone",
            "fork (clone SIGCHLD)".into(),
            [SIGCHLD, 0, 0, 0, 0, 0],
            Call::Fork,
        ));
        if cfg!(target_arch = "x86_64") {
            probes.push(works(
                "clone",
                "thread (clone CLONE_VM|CLONE_THREAD|…)".into(),
                [THREAD_FLAGS, 0, 0, 0, 0, 0],
                Call::Thread,
            ));
        }
    }
    if allows_some("ioctl") {
        let args = [u64::MAX, TCGETS, 0, 0, 0, 0];
        probes.push(works("ioctl", "ioctl(TCGETS)".into(), args, Call::Plain));
    }
    if allows_some("socket") {
        for family in 0..KNOWN_FAMILIES {
            let args = [family, SOCK_DGRAM, 0, 0, 0, 0];
            if evaluate::outcome(profile, "socket", &args).allows() {
                probes.push(works(
                    "socket",
                    format!("socket({})", family_label(family)),
                    args,
                    Call::Plain,
                ));
            }
        }
    }
    probes
}

/// Every probe for `profile`.
pub fn probes(profile: &SeccompProfile) -> Vec<Probe> {
    let mut all = refused_probes();
    all.extend(working_probes(profile));
    all.truncate(MAX_PROBES);
    all
}

/// What one probe got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    /// The syscall.
    pub syscall: String,
    /// The call as people write it (`socket(AF_VSOCK)`).
    pub probe: String,
    /// Whether the profile must refuse it or let it run.
    pub expect: Expect,
    /// errno the profile should produce (0 for a call that must work).
    pub expected_errno: i32,
    /// errno observed (0: the call succeeded).
    pub errno: i32,
    /// What the kernel returns for these arguments when the call is allowed.
    pub if_allowed: String,
    /// Refused: `errno == expected_errno`; works: not refused by the filter.
    pub ok: bool,
}

/// The errno a refused probe must get: clone3 must get ENOSYS (libc falls back to clone on
/// nothing else); any other dangerous call the errno the profile refuses it with, or EPERM if
/// the profile lets it through (then the probe fails).
fn expected_errno(profile: &SeccompProfile, probe: &Probe) -> i32 {
    if probe.name == "clone3" {
        return ENOSYS;
    }
    let outcome = evaluate::outcome(profile, probe.name, &probe.args);
    match outcome.errno {
        Some(e) if !outcome.allows() => errno_i32(e),
        _ => EPERM,
    }
}

/// A profile's errno as the C library reports it. `verify` compiles the profile first, which
/// refuses an errno over 16 bits; a larger one would match no errno a call can return.
fn errno_i32(errno: u32) -> i32 {
    i32::try_from(errno).unwrap_or(i32::MAX)
}

/// Runs `probes` in a child that installs `filter` and never execs.
pub fn run(
    filter: &SeccompProgram,
    profile: &SeccompProfile,
    probes: &[Probe],
) -> std::io::Result<Vec<ProbeResult>> {
    let native = Arch::native().ok_or_else(|| std::io::Error::other("unsupported host arch"))?;
    let calls: Vec<(&Probe, i64)> = probes
        .iter()
        .filter_map(|p| native.syscall_nr(p.name).map(|nr| (p, i64::from(nr))))
        .collect();
    let plan: Vec<(i64, [u64; 6], Call)> =
        calls.iter().map(|(p, nr)| (*nr, p.args, p.call)).collect();
    let errnos = in_child(filter, plan)?;
    let default_errno = profile.default_errno_ret.map_or(EPERM, errno_i32);
    Ok(calls
        .iter()
        .zip(errnos)
        .map(|((p, _), errno)| {
            let (expected_errno, ok) = match p.expect {
                Expect::Refused => {
                    let e = expected_errno(profile, p);
                    (e, errno == e)
                }
                Expect::Works => (0, errno != EPERM && errno != default_errno),
            };
            ProbeResult {
                syscall: p.name.to_string(),
                probe: p.label.clone(),
                expect: p.expect,
                expected_errno,
                errno,
                if_allowed: p.if_allowed.to_string(),
                ok,
            }
        })
        .collect())
}

/// Forks a child that installs the filter, makes each call and reports the errnos through a
/// pipe.
fn in_child(
    filter: &SeccompProgram,
    plan: Vec<(i64, [u64; 6], Call)>,
) -> std::io::Result<Vec<i32>> {
    let count = plan.len().min(MAX_PROBES);
    let mut fds = [0; 2];
    // SAFETY: out-array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let (read_fd, write_fd) = (fds[0], fds[1]);
    let filter = filter.clone();
    let mut cmd = Command::new("/proc/self/exe");
    // SAFETY: after fork the closure installs the filter, makes raw syscalls and writes
    // their errnos to a pipe, then leaves with `_exit`: only async-signal-safe calls on
    // memory prepared before fork. It never returns, so nothing is exec'd.
    unsafe {
        cmd.pre_exec(move || {
            let mut results = [0i32; MAX_PROBES];
            let ok = filter.install().is_ok();
            for (i, (nr, a, call)) in plan.iter().enumerate().take(MAX_PROBES) {
                results[i] = if ok { make_call(*nr, a, *call) } else { -1 };
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
            // SAFETY: our descriptor, closed once.
            unsafe { libc::close(read_fd) };
            return Err(e);
        }
    };
    let mut buf = [0i32; MAX_PROBES];
    // SAFETY: reading into a local buffer of the given size.
    let n = unsafe {
        libc::read(
            read_fd,
            buf.as_mut_ptr().cast(),
            std::mem::size_of_val(&buf),
        )
    };
    // SAFETY: our descriptor, closed once.
    unsafe { libc::close(read_fd) };
    child.wait()?;
    if usize::try_from(n).ok() != Some(std::mem::size_of_val(&buf)) {
        return Err(std::io::Error::other(
            "the probe child died before reporting",
        ));
    }
    if buf[..count].contains(&-1) {
        return Err(std::io::Error::other(
            "the probe child could not install the filter",
        ));
    }
    Ok(buf[..count].to_vec())
}

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

/// clone with thread flags; the new thread shares the stack, so it exits with a raw syscall
/// before touching any memory. Returns -1 with errno set on failure, like `syscall`.
#[cfg(target_arch = "x86_64")]
unsafe fn raw_thread(nr: i64, flags: u64) -> libc::c_long {
    let ret: i64;
    std::arch::asm!(
        "syscall",
        "test rax, rax",
        "jnz 2f",
        "mov eax, 60",
        "xor edi, edi",
        "syscall",
        "2:",
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

/// Not supported on this arch: [`working_probes`] does not plan the thread probe.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn raw_thread(_nr: i64, _flags: u64) -> libc::c_long {
    *libc::__errno_location() = libc::ENOSYS;
    -1
}
