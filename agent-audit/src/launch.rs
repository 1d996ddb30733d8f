//! Starting a command already inside its cgroup: `clone3(CLONE_INTO_CGROUP)` (Linux 5.7).
//!
//! A child that joins its cgroup by writing `cgroup.procs` migrates, and a migration takes the
//! cgroup threadgroup lock for writing, which waits for an RCU grace period: 15–20 ms of every
//! `run` on the machines measured. A child created inside the cgroup never migrates.

use std::ffi::{CString, OsStr};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;

use crate::run::StartStage;

/// `CLONE_INTO_CGROUP` from `include/uapi/linux/sched.h`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

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

/// Why a launch did not start the command.
#[derive(Debug)]
pub enum LaunchError {
    /// This kernel (or a seccomp filter around agent-audit) refuses `clone3` into a cgroup:
    /// start the command another way.
    Unsupported(io::Error),
    /// The command could not be started at `stage`.
    Failed {
        /// Where it failed.
        stage: StartStage,
        /// What the kernel said.
        source: io::Error,
    },
}

/// What the child needs, prepared before the clone: it may only make syscalls.
struct Prepared {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: Option<CString>,
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte"))
}

impl Prepared {
    fn new(program: &Path, argv0: &str, args: &[String], cwd: Option<&Path>) -> io::Result<Self> {
        let mut argv = vec![c_string(argv0.as_bytes())?];
        for a in args {
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
            path: c_string(program.as_os_str().as_bytes())?,
            argv,
            envp,
            cwd: cwd
                .map(|d| c_string(OsStr::as_bytes(d.as_os_str())))
                .transpose()?,
        })
    }
}

/// Starts `program` (argv `argv0`, `args`) inside the cgroup whose directory is `cgroup`.
pub fn launch(
    program: &Path,
    argv0: &str,
    args: &[String],
    cwd: Option<&Path>,
    cgroup: &Path,
) -> Result<Launched, LaunchError> {
    let failed = |stage, source| LaunchError::Failed { stage, source };
    let prepared =
        Prepared::new(program, argv0, args, cwd).map_err(|e| failed(StartStage::Exec, e))?;
    let argv = null_terminated(&prepared.argv);
    let envp = null_terminated(&prepared.envp);
    let dir = std::fs::File::open(cgroup).map_err(|e| failed(StartStage::JoinCgroup, e))?;
    let (mut reader, writer) = std::io::pipe().map_err(|e| failed(StartStage::JoinCgroup, e))?;
    let writer = OwnedFd::from(writer);
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: u64::from(dir.as_raw_fd().cast_unsigned()),
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed. Like fork: the child gets a
    // copy of this address space and only makes syscalls on memory prepared above.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::addr_of_mut!(args),
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == 0 {
        // SAFETY: in the child: only async-signal-safe calls, then exec or _exit.
        unsafe { child(&prepared, &argv, &envp, writer.as_raw_fd()) }
    }
    if pid < 0 {
        let err = io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::ENOSYS | libc::EINVAL | libc::E2BIG | libc::EPERM) => {
                LaunchError::Unsupported(err)
            }
            _ => failed(StartStage::JoinCgroup, err),
        });
    }
    drop(writer);
    let launched = Launched {
        pid: libc::pid_t::try_from(pid).expect("clone3 returns a pid"),
    };
    // The pipe is close-on-exec: nothing is read once the exec worked.
    let mut report = [0u8; 5];
    match reader.read(&mut report) {
        Ok(0) => Ok(launched),
        Ok(_) => {
            let _ = launched.wait();
            let errno = i32::from_ne_bytes(report[1..5].try_into().expect("four bytes"));
            Err(failed(
                StartStage::from_byte(report[0]),
                io::Error::from_raw_os_error(errno),
            ))
        }
        Err(e) => {
            let _ = launched.wait();
            Err(failed(StartStage::Exec, e))
        }
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The child: the signal state a new program expects (as `std::process::Command` leaves it),
/// the working directory, then exec; a failure is written to `report` as its stage and errno.
unsafe fn child(
    prepared: &Prepared,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    report: libc::c_int,
) -> ! {
    let fail = |stage: StartStage| -> ! {
        let errno = *libc::__errno_location();
        let mut bytes = [stage.byte(), 0, 0, 0, 0];
        bytes[1..5].copy_from_slice(&errno.to_ne_bytes());
        libc::write(report, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127)
    };
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    if let Some(dir) = &prepared.cwd {
        if libc::chdir(dir.as_ptr()) != 0 {
            fail(StartStage::Exec);
        }
    }
    libc::execve(prepared.path.as_ptr(), argv.as_ptr(), envp.as_ptr());
    fail(StartStage::Exec)
}
