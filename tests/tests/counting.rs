//! Exact counting with `agent-audit run`: a helper makes exactly N getppid calls inside the
//! target while the same helper makes ten times as many outside it, at the same time.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::process::{run, Running};
use agent_audit_tests::{agent_audit_bin, cgroup, require_root};

const HELPER: &str = env!("CARGO_BIN_EXE_getppid-loop");
/// Calls made inside the target.
const N: u64 = 50_000;
/// Calls made concurrently outside it: if any leaked in, the count would blow past the slack.
const OUTSIDE: u64 = 10 * N;
/// getppid calls the helper's own start-up and exit could add (none today, but a libc or Rust
/// runtime change could add a few); far below what a leak from outside would add.
const SLACK: u64 = 16;
const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `helper <steps> N` under `agent-audit run` while an outside helper makes OUTSIDE calls
/// in lockstep; returns the allowlist.
fn run_helper_with_outside_noise(
    dir: &Path,
    inside_steps: &[&str],
    env: &[(&str, &str)],
) -> Allowlist {
    let go = dir.join("go");
    let ack = dir.join("ack");
    let out = dir.join("allowlist.json");
    // The outside helper starts its loop as soon as the inside one is about to start its own,
    // and the inside one waits for that: the two loops overlap, the outside one is 10x longer.
    let outside = Running::spawn(
        Command::new(HELPER)
            .arg("--wait-for")
            .arg(&go)
            .arg("--signal")
            .arg(&ack)
            .arg(OUTSIDE.to_string()),
    );
    let mut audit = Command::new(agent_audit_bin());
    audit
        .envs(env.iter().copied())
        .arg("run")
        .arg("--out")
        .arg(&out)
        .arg("--")
        .arg(HELPER);
    audit
        .args(inside_steps)
        .arg("--signal")
        .arg(&go)
        .arg("--wait-for")
        .arg(&ack)
        .arg(N.to_string());
    let done = run(&mut audit, TIMEOUT);
    done.assert_code(0);
    outside
        .finish(TIMEOUT, "outside getppid-loop")
        .assert_code(0);
    Allowlist::read(&out)
}

fn assert_counted_exactly(list: &Allowlist) {
    let got = list.count("getppid");
    assert!(
        (N..=N + SLACK).contains(&got),
        "getppid counted {got} times; the helper made {N} in the target (slack {SLACK}) and \
         {OUTSIDE} outside it concurrently:\n{:#}",
        list.0
    );
    assert!(list.complete(), "the file `run` leaves must be complete");
    assert_eq!(list.target()["kind"], "command");
    assert_eq!(list.target()["exit_status"], 0);
    // The helper's own execve is the first thing recorded.
    assert!(list.count("execve") >= 1, "no execve in {:#}", list.0);
}

#[test]
fn root_run_counts_exactly_the_targets_getppid_calls_and_nothing_outside() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let list = run_helper_with_outside_noise(dir.path(), &[], &[]);
    assert_counted_exactly(&list);
    // `--attach auto` picks the BTF-typed tracepoint whenever the kernel has BTF.
    let has_btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    assert_eq!(list.attach(), if has_btf { "tp_btf" } else { "raw_tp" });
}

#[test]
fn root_run_counts_a_child_cgroup_of_the_target() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let list = run_helper_with_outside_noise(dir.path(), &["--child-cgroup"], &[]);
    assert_counted_exactly(&list);
    // The run's cgroup (with the child the helper made) is gone once `run` returns.
    let mount = cgroup::v2_mount().unwrap();
    let run_cgroup = mount.join(
        list.target()["cgroup_path"]
            .as_str()
            .unwrap()
            .trim_start_matches('/'),
    );
    assert!(
        !run_cgroup.exists(),
        "{} was left behind",
        run_cgroup.display()
    );
}

#[test]
fn root_run_without_btf_falls_back_to_raw_tp_and_still_counts_exactly() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    // Simulates a kernel built without CONFIG_DEBUG_INFO_BTF.
    let list =
        run_helper_with_outside_noise(dir.path(), &[], &[("AGENT_AUDIT_BTF_PATH", "/nonexistent")]);
    assert_eq!(list.attach(), "raw_tp");
    assert_counted_exactly(&list);
}

/// Runs `getppid-loop ARGS` under `agent-audit run`; returns its allowlist.
fn run_helper(dir: &Path, args: &[&str]) -> Allowlist {
    let out = dir.join("allowlist.json");
    let mut audit = Command::new(agent_audit_bin());
    audit
        .arg("run")
        .arg("--out")
        .arg(&out)
        .arg("--")
        .arg(HELPER)
        .args(args);
    run(&mut audit, TIMEOUT).assert_code(0);
    Allowlist::read(&out)
}

#[test]
fn root_run_counts_5m_calls_of_4_threads_on_every_cpu_exactly() {
    require_root();
    // Four threads hammer one counter of one target from every CPU at once: the counters all
    // CPUs share (atomic adds) must lose none.
    const CALLS: u64 = 5_000_000;
    let dir = tempfile::tempdir().unwrap();
    let list = run_helper(dir.path(), &["--threads", "4", &CALLS.to_string()]);
    let got = list.count("getppid");
    assert!(
        (CALLS..=CALLS + SLACK).contains(&got),
        "getppid counted {got} times; 4 threads made {CALLS}"
    );
    assert!(
        list.count("clone3") + list.count("clone") >= 4,
        "no thread creation in {:#}",
        list.0
    );
}

#[test]
fn root_run_counts_a_storm_of_1000_forks_exactly() {
    require_root();
    // 1 000 children forked at once, each making 7 calls and exiting, on both CPUs together.
    const FORKS: u64 = 1000;
    const CALLS: u64 = 7 * FORKS;
    let dir = tempfile::tempdir().unwrap();
    let list = run_helper(
        dir.path(),
        &["--forks", &FORKS.to_string(), &CALLS.to_string()],
    );
    let got = list.count("getppid");
    assert!(
        (CALLS..=CALLS + SLACK).contains(&got),
        "getppid counted {got} times; {FORKS} children made {CALLS}"
    );
    let forks = list.count("clone") + list.count("fork") + list.count("clone3");
    assert!(
        (FORKS..=FORKS + SLACK).contains(&forks),
        "{forks} forks counted for {FORKS}:\n{:#}",
        list.0
    );
    let waits = list.count("wait4");
    assert!(
        (FORKS..=FORKS + SLACK).contains(&waits),
        "{waits} wait4 counted for {FORKS}"
    );
}
