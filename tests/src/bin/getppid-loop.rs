//! Test workload: makes exactly N raw `getppid` syscalls, so a test knows how many the
//! recorder must count. Options are steps run in the order given, before the calls:
//!
//!   --child-cgroup   create a cgroup v2 below its own and move itself there
//!   --signal FILE    create FILE
//!   --wait-for FILE  wait (up to 30 s) until FILE exists
//!   --open FIFO      open FIFO for reading: blocks, making no syscall, until a writer has it
//!                    open (many processes can be held and released at once this way)
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
    while let Some(step) = steps.next() {
        let result = match step.as_str() {
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
    for _ in 0..count {
        // SAFETY: getppid takes no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: getppid-loop [--child-cgroup] [--signal FILE] [--wait-for FILE] [--open FIFO] N"
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
