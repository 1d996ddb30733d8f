//! Starting a command inside its cgroup, optionally under a seccomp filter, and telling why it
//! did not start when it did not: the one launcher of `run` and `verify`.
//!
//! The child is created inside the cgroup with `clone3(CLONE_INTO_CGROUP)` (Linux 5.7): a
//! child that joins by writing `cgroup.procs` migrates, and a migration takes the cgroup
//! threadgroup lock for writing, which waits for an RCU grace period (15–20 ms of every `run`
//! on the machines measured). Where the kernel (or a seccomp filter around agent-audit)
//! refuses that, the child is forked and writes `cgroup.procs` itself.
//!
//! A failed step is reported through memory shared with the child, not through a pipe: once
//! the filter under test is installed, any call the child makes may be refused — a `write` of
//! the failure with it — so the child stores its step and errno with plain memory writes and
//! exits (or, if even `exit_group` is refused, dies on the C library's abort instruction,
//! which is as good: the parent reads the record once the child has exec'd or is gone). A
//! close-on-exec pipe only tells the parent when that is.

use std::ffi::{CString, OsStr};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};

use crate::capabilities::process::KeptCapabilities;
use crate::seccomp::SeccompProgram;

/// `CLONE_INTO_CGROUP` from `include/uapi/linux/sched.h`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The step at which a command failed to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartStage {
    /// The child could not move itself into the target cgroup (agent-audit's own setup).
    JoinCgroup,
    /// The kernel refused the seccomp filter.
    InstallFilter,
    /// Reducing the capability sets to the container's (`verify` with a capability set)
    /// failed.
    DropCapabilities,
    /// `execve` failed: not found, not executable, or denied by the filter just installed.
    Exec,
    /// The container engine could not start a container under the profile (`verify` of a
    /// container: runc refused the filter, or the container's first exec failed).
    ContainerStart,
}

impl StartStage {
    /// The stage as the child records it (0 is "no failure").
    fn code(self) -> u8 {
        match self {
            StartStage::JoinCgroup => 1,
            StartStage::InstallFilter => 2,
            StartStage::Exec => 3,
            StartStage::ContainerStart => 4,
            StartStage::DropCapabilities => 5,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(StartStage::JoinCgroup),
            2 => Some(StartStage::InstallFilter),
            3 => Some(StartStage::Exec),
            4 => Some(StartStage::ContainerStart),
            5 => Some(StartStage::DropCapabilities),
            _ => None,
        }
    }
}

impl std::fmt::Display for StartStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StartStage::JoinCgroup => "joining its cgroup",
            StartStage::InstallFilter => "installing the seccomp filter",
            StartStage::Exec => "exec",
            StartStage::ContainerStart => "starting the container",
            StartStage::DropCapabilities => "reducing its capabilities",
        })
    }
}

/// `struct clone_args` up to `cgroup` (`CLONE_ARGS_SIZE_VER2`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// A command started by [`launch`].
#[derive(Debug)]
pub struct Launched {
    pid: libc::pid_t,
}

impl Launched {
    /// Its process id.
    pub fn id(&self) -> u32 {
        self.pid.cast_unsigned()
    }

    /// Waits for it to exit.
    pub fn wait(&self) -> io::Result<ExitStatus> {
        let mut status = 0;
        loop {
            // SAFETY: plain waitpid on our own child.
            let rc = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if rc == self.pid {
                return Ok(ExitStatus::from_raw(status));
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

/// The command could not be started at `stage`.
#[derive(Debug)]
pub struct LaunchError {
    /// Where it failed.
    pub stage: StartStage,
    /// What the kernel said.
    pub source: io::Error,
}

/// What to start and how.
pub struct Launch<'a> {
    /// The file to execute (already searched in `PATH`).
    pub program: &'a Path,
    /// argv[0].
    pub argv0: &'a str,
    /// argv[1..].
    pub args: &'a [String],
    /// Working directory (default: ours).
    pub cwd: Option<&'a Path>,
    /// The cgroup directory the command starts in.
    pub cgroup: &'a Path,
    /// Installed after the cgroup is joined and before exec.
    pub filter: Option<&'a SeccompProgram>,
    /// The capability sets are reduced to these before the filter is installed (which may
    /// refuse the calls that reduce them).
    pub capabilities: Option<&'a KeptCapabilities>,
}

/// What the child needs, prepared before the clone: it may only make syscalls.
struct Prepared {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: Option<CString>,
    /// `<cgroup>/cgroup.procs`, for a child that joins by writing it.
    procs: CString,
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte"))
}

impl Prepared {
    fn new(l: &Launch<'_>) -> io::Result<Self> {
        let mut argv = vec![c_string(l.argv0.as_bytes())?];
        for a in l.args {
            argv.push(c_string(a.as_bytes())?);
        }
        let mut envp = Vec::new();
        for (k, v) in std::env::vars_os() {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            envp.push(c_string(&kv)?);
        }
        Ok(Self {
            path: c_string(l.program.as_os_str().as_bytes())?,
            argv,
            envp,
            cwd: l
                .cwd
                .map(|d| c_string(OsStr::as_bytes(d.as_os_str())))
                .transpose()?,
            procs: c_string(l.cgroup.join("cgroup.procs").as_os_str().as_bytes())?,
        })
    }
}

/// The child's failure record, in a page shared with it (`MAP_SHARED`: the child's writes
/// are the parent's).
struct Report {
    stage: AtomicU8,
    errno: AtomicI32,
}

/// An anonymous shared mapping holding a [`Report`], unmapped on drop.
struct SharedReport {
    ptr: std::ptr::NonNull<Report>,
}

impl SharedReport {
    fn new() -> io::Result<Self> {
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
            return Err(io::Error::last_os_error());
        }
        // Zero-filled by the kernel: stage 0, errno 0 — a valid `Report` of "no failure".
        let ptr =
            std::ptr::NonNull::new(ptr.cast::<Report>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Self { ptr })
    }

    fn get(&self) -> &Report {
        // SAFETY: a live, page-aligned mapping of at least `Report`'s size, zero-initialised
        // (a valid value); only atomics are accessed through it.
        unsafe { self.ptr.as_ref() }
    }

    /// The failure the child recorded, if any.
    fn failure(&self) -> Option<LaunchError> {
        let report = self.get();
        let stage = StartStage::from_code(report.stage.load(Ordering::Acquire))?;
        Some(LaunchError {
            stage,
            source: io::Error::from_raw_os_error(report.errno.load(Ordering::Relaxed)),
        })
    }
}

impl Drop for SharedReport {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), std::mem::size_of::<Report>()) };
    }
}

/// Starts the command inside its cgroup (see the module's documentation).
pub fn launch(l: &Launch<'_>) -> Result<Launched, LaunchError> {
    let failed = |stage, source| LaunchError { stage, source };
    let prepared = Prepared::new(l).map_err(|e| failed(StartStage::Exec, e))?;
    let argv = null_terminated(&prepared.argv);
    let envp = null_terminated(&prepared.envp);
    let dir = std::fs::File::open(l.cgroup).map_err(|e| failed(StartStage::JoinCgroup, e))?;
    let report = SharedReport::new().map_err(|e| failed(StartStage::JoinCgroup, e))?;
    let (mut reader, writer) = std::io::pipe().map_err(|e| failed(StartStage::JoinCgroup, e))?;
    let writer = OwnedFd::from(writer);
    let child = Child {
        prepared: &prepared,
        argv: &argv,
        envp: &envp,
        filter: l.filter,
        capabilities: l.capabilities,
        report: report.get(),
    };
    let pid = match clone_into(&dir, &child) {
        Ok(pid) => pid,
        Err(e) => {
            tracing::debug!("clone3 into the cgroup refused ({e}): joining by cgroup.procs");
            fork_joining(&child).map_err(|e| failed(StartStage::JoinCgroup, e))?
        }
    };
    drop(writer);
    let launched = Launched { pid };
    // The pipe is close-on-exec and never written: end of file once the child has exec'd
    // or is gone, whichever way it went.
    let mut byte = [0u8; 1];
    while let Err(e) = reader.read(&mut byte) {
        if e.kind() != io::ErrorKind::Interrupted {
            break;
        }
    }
    match report.failure() {
        None => Ok(launched),
        Some(e) => {
            let _ = launched.wait();
            Err(e)
        }
    }
}

/// `clone3(CLONE_INTO_CGROUP)`; the kernel's error when it refuses the call.
fn clone_into(dir: &std::fs::File, child: &Child<'_>) -> io::Result<libc::pid_t> {
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: u64::from(dir.as_raw_fd().cast_unsigned()),
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed. Like fork: the child gets a
    // copy of this address space and only makes syscalls on memory prepared before.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::addr_of_mut!(args),
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match pid {
        // SAFETY: in the child: only async-signal-safe calls, then exec or _exit.
        0 => unsafe { child.run(false) },
        p if p < 0 => Err(io::Error::last_os_error()),
        p => Ok(libc::pid_t::try_from(p).expect("clone3 returns a pid")),
    }
}

/// fork; the child joins the cgroup by writing `cgroup.procs` itself.
fn fork_joining(child: &Child<'_>) -> io::Result<libc::pid_t> {
    // SAFETY: fork; the child only makes async-signal-safe calls, then exec or _exit.
    match unsafe { libc::fork() } {
        // SAFETY: in the child, as above.
        0 => unsafe { child.run(true) },
        -1 => Err(io::Error::last_os_error()),
        pid => Ok(pid),
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// What the child runs, all prepared before the clone.
struct Child<'a> {
    prepared: &'a Prepared,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    filter: Option<&'a SeccompProgram>,
    capabilities: Option<&'a KeptCapabilities>,
    report: &'a Report,
}

impl Child<'_> {
    /// The child: the signal state a new program expects (as `std::process::Command` leaves
    /// it), its cgroup when it has to join, the working directory, the filter, then exec. A
    /// failure is stored in the shared report with plain memory writes.
    ///
    /// # Safety
    /// Only in the child of a clone or fork: it never returns.
    unsafe fn run(&self, join: bool) -> ! {
        let fail = |stage: StartStage| -> ! {
            let errno = *libc::__errno_location();
            self.report.errno.store(errno, Ordering::Relaxed);
            self.report.stage.store(stage.code(), Ordering::Release);
            // If the filter refuses exit_group, glibc's _exit ends on an abort instruction:
            // death by a signal, which the parent does not mind (it reads the report).
            libc::_exit(127)
        };
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        if join {
            let fd = libc::open(
                self.prepared.procs.as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            if fd < 0 {
                fail(StartStage::JoinCgroup);
            }
            // "0" moves the writing process itself.
            let n = libc::write(fd, b"0\n".as_ptr().cast(), 2);
            if n < 0 {
                fail(StartStage::JoinCgroup);
            }
            libc::close(fd);
        }
        if let Some(dir) = &self.prepared.cwd {
            if libc::chdir(dir.as_ptr()) != 0 {
                fail(StartStage::Exec);
            }
        }
        if let Some(kept) = self.capabilities {
            if !kept.apply() {
                fail(StartStage::DropCapabilities);
            }
        }
        // After joining the cgroup, so that the calls the filter refuses are counted too.
        if let Some(filter) = self.filter {
            if filter.install().is_err() {
                fail(StartStage::InstallFilter);
            }
        }
        libc::execve(
            self.prepared.path.as_ptr(),
            self.argv.as_ptr(),
            self.envp.as_ptr(),
        );
        fail(StartStage::Exec)
    }
}
