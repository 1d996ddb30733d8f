//! Test workload: makes exactly N raw `getppid` syscalls, so a test knows how many the
//! recorder must count. Options are steps run in the order given, before the calls:
//!
//!   --child-cgroup   create a cgroup v2 below its own and move itself there
//!   --signal FILE    create FILE
//!   --wait-for FILE  wait (up to 30 s) until FILE exists
//!   --open FIFO      open FIFO for reading: blocks, making no syscall, until a writer has it
//!                    open (many processes can be held and released at once this way)
//!   --threads T      the N calls are made by T threads at once (N/T each, the first thread
//!                    also the remainder), so they run on every CPU together
//!   --forks F        the N calls are made by F child processes (N/F each, the first also the
//!                    remainder), all forked before any is waited for; each ends with `_exit`
//!
//! `getppid-loop --signal A --wait-for B N` and `getppid-loop --wait-for A --signal B 10N`
//! started together make their call loops overlap in time (a two-way handshake).
//!
//! It makes no other getppid calls (Rust's runtime makes none), and everything it does besides
//! the loop uses other syscalls.

use std::fs;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use agent_audit_tests::cgroup;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((count, steps)) = args.split_last() else {
        return usage();
    };
    let Ok(count) = count.parse::<u64>() else {
        return usage();
    };
    let mut steps = steps.iter();
    let mut split = Split::None;
    while let Some(step) = steps.next() {
        let result = match step.as_str() {
            "--threads" | "--forks" => match steps.next().and_then(|n| n.parse::<u64>().ok()) {
                Some(n) if n > 0 && step == "--threads" => {
                    split = Split::Threads(n);
                    Ok(())
                }
                Some(n) if n > 0 => {
                    split = Split::Forks(n);
                    Ok(())
                }
                _ => return usage(),
            },
            "--child-cgroup" => join_child_cgroup(),
            "--signal" => match steps.next() {
                Some(file) => fs::write(file, b"").map_err(|e| format!("create {file}: {e}")),
                None => return usage(),
            },
            "--wait-for" => match steps.next() {
                Some(file) => wait_for(Path::new(file)),
                None => return usage(),
            },
            "--open" => match steps.next() {
                Some(file) => fs::File::open(file)
                    .map(drop)
                    .map_err(|e| format!("open {file}: {e}")),
                None => return usage(),
            },
            _ => return usage(),
        };
        if let Err(e) = result {
            eprintln!("getppid-loop: {e}");
            return ExitCode::from(1);
        }
    }
    match split {
        Split::None => calls(count),
        Split::Threads(n) => std::thread::scope(|scope| {
            for share in shares(count, n) {
                scope.spawn(move || calls(share));
            }
        }),
        Split::Forks(n) => {
            if let Err(e) = fork_all(count, n) {
                eprintln!("getppid-loop: {e}");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

/// Who makes the calls.
#[derive(Clone, Copy)]
enum Split {
    /// This thread.
    None,
    /// That many threads.
    Threads(u64),
    /// That many child processes.
    Forks(u64),
}

/// `count` raw getppid calls.
fn calls(count: u64) {
    for _ in 0..count {
        // SAFETY: getppid takes no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
}

/// `count` split into `n` shares, the first with the remainder.
fn shares(count: u64, n: u64) -> impl Iterator<Item = u64> {
    (0..n).map(move |i| count / n + if i == 0 { count % n } else { 0 })
}

/// Forks `n` children making `count` calls between them, then waits for every one.
fn fork_all(count: u64, n: u64) -> Result<(), String> {
    let mut children = Vec::new();
    for share in shares(count, n) {
        // SAFETY: the child only makes raw syscalls (getppid, exit_group) before `_exit`.
        match unsafe { libc::fork() } {
            0 => {
                calls(share);
                // SAFETY: ends the child without running the parent's atexit handlers.
                unsafe { libc::_exit(0) }
            }
            -1 => return Err(format!("fork: {}", std::io::Error::last_os_error())),
            pid => children.push(pid),
        }
    }
    for pid in children {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        if unsafe { libc::waitpid(pid, &mut status, 0) } != pid || status != 0 {
            return Err(format!("child {pid} ended with status {status}"));
        }
    }
    Ok(())
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: getppid-loop [--child-cgroup] [--signal FILE] [--wait-for FILE] [--open FIFO] \
         [--threads T | --forks F] N"
    );
    ExitCode::from(2)
}

/// Creates `<own cgroup>/getppid-loop-<pid>` and moves this process into it, the way a
/// container runtime or systemd creates sub-cgroups inside a target.
fn join_child_cgroup() -> Result<(), String> {
    let mount = cgroup::v2_mount().ok_or("no cgroup2 mount in /proc/self/mountinfo")?;
    let own = cgroup::v2_path_of(std::process::id()).ok_or("no 0:: line in /proc/self/cgroup")?;
    let child = mount
        .join(own.trim_start_matches('/'))
        .join(format!("getppid-loop-{}", std::process::id()));
    fs::create_dir(&child).map_err(|e| format!("create {}: {e}", child.display()))?;
    fs::write(child.join("cgroup.procs"), b"0")
        .map_err(|e| format!("join {}: {e}", child.display()))?;
    let now = cgroup::v2_path_of(std::process::id()).unwrap_or_default();
    if !now.ends_with(&format!("/getppid-loop-{}", std::process::id())) {
        return Err(format!("still in {now} after joining {}", child.display()));
    }
    Ok(())
}

fn wait_for(file: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !file.exists() {
        if Instant::now() > deadline {
            return Err(format!("{} did not appear within 30 s", file.display()));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}
