//! How recordings end and what they leave: snapshots are replaced atomically (a reader never
//! sees half a file), SIGTERM and `--duration` end `record` with a complete final file, and
//! `run` passes SIGTERM on to its command.

use std::fs;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::cgroup::ScratchCgroup;
use agent_audit_tests::process::{wait_until, Running};
use agent_audit_tests::{agent_audit_bin, require_root, unique_name};

const TIMEOUT: Duration = Duration::from_secs(30);

/// What the reader saw.
#[derive(Default)]
struct Reads {
    /// Reads that found the file.
    files: u64,
    /// Distinct snapshots seen (by `ended_at`).
    snapshots: Vec<String>,
    /// Snapshots marked complete.
    complete: u64,
    /// Everything that went wrong: unparsable text, the file vanishing.
    problems: Vec<String>,
}

/// Reads `path` in a tight loop until `stop`, parsing every read.
fn read_continuously(path: PathBuf, stop: Arc<AtomicBool>) -> Reads {
    let mut reads = Reads::default();
    while !stop.load(Ordering::Relaxed) {
        match fs::read_to_string(&path) {
            Ok(text) => {
                reads.files += 1;
                match Allowlist::parse(&text) {
                    Ok(list) => {
                        let ended = list.0["ended_at"].as_str().unwrap_or_default().to_string();
                        if reads.snapshots.last() != Some(&ended) {
                            reads.snapshots.push(ended);
                            reads.complete += u64::from(list.complete());
                        }
                    }
                    Err(e) => reads.problems.push(format!("unparsable ({e}): {text:?}")),
                }
            }
            // Before the first snapshot; afterwards a rename never leaves the path missing.
            Err(e) if e.kind() == ErrorKind::NotFound && reads.files == 0 => {}
            Err(e) => reads
                .problems
                .push(format!("read failed after {} reads: {e}", reads.files)),
        }
    }
    reads
}

#[test]
fn root_sigterm_writes_a_complete_file_and_no_reader_ever_sees_a_partial_one() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("allowlist.json");
    let target = ScratchCgroup::new(&unique_name("agent-audit-test-snapshots"));
    // A steady workload in the target: an exec and a file read every 20 ms.
    let mut workload = Command::new("/bin/busybox");
    workload.args([
        "sh",
        "-c",
        "while :; do /bin/busybox cat /etc/hostname > /dev/null; /bin/busybox sleep 0.02; done",
    ]);
    target.contain(&mut workload);
    let _workload = Running::spawn(&mut workload);
    wait_until("the workload to be in its cgroup", TIMEOUT, || {
        target.is_populated()
    });

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (out, stop) = (out.clone(), Arc::clone(&stop));
        thread::spawn(move || read_continuously(out, stop))
    };
    let recorder = Running::spawn(
        Command::new(agent_audit_bin())
            .args([
                "record",
                "--cgroup",
                &target.rel,
                "--interval",
                "0.1",
                "--out",
            ])
            .arg(&out),
    );
    wait_until("the first snapshot", TIMEOUT, || out.exists());
    // About ten snapshots' worth of rewrites for the reader to race against.
    thread::sleep(Duration::from_millis(1000));
    let during = Allowlist::read(&out);
    assert!(
        !during.complete(),
        "a snapshot taken while recording says complete"
    );
    recorder.signal(libc::SIGTERM);
    let done = recorder.finish(TIMEOUT, "agent-audit record after SIGTERM");
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("reader thread");
    done.assert_code(0);
    eprintln!(
        "reader: {} reads, {} distinct snapshots",
        reads.files,
        reads.snapshots.len()
    );

    assert!(
        reads.problems.is_empty(),
        "a reader saw a broken file: {:#?}",
        reads.problems
    );
    assert!(
        reads.snapshots.len() >= 3,
        "only {} snapshots seen in {} reads: the race was not exercised",
        reads.snapshots.len(),
        reads.files
    );
    assert!(
        reads.complete <= 1,
        "{} files said complete",
        reads.complete
    );
    let last = Allowlist::read(&out);
    assert!(
        last.complete(),
        "the file after SIGTERM is not complete: {:#}",
        last.0
    );
    assert!(
        last.total_calls() >= during.total_calls(),
        "the final file counts fewer calls than a snapshot before it"
    );
    // The workload exec'd and read throughout.
    last.assert_has(&["execve", "openat", "wait4"]);
    assert_eq!(last.target()["cgroup_path"], target.rel.as_str());
    // Atomic writes leave no temporary files behind.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec!["allowlist.json"],
        "stray files next to the allowlist"
    );
}

const HELPER: &str = env!("CARGO_BIN_EXE_getppid-loop");

#[test]
fn root_record_duration_ends_with_exact_counts_of_a_cgroup() {
    require_root();
    const N: u64 = 30_000;
    // getppid calls start-up could add; see counting.rs.
    const SLACK: u64 = 16;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("allowlist.json");
    let go = dir.path().join("go");
    let target = ScratchCgroup::new(&unique_name("agent-audit-test-duration"));
    let mut helper = Command::new(HELPER);
    helper.arg("--wait-for").arg(&go).arg(N.to_string());
    target.contain(&mut helper);
    let helper = Running::spawn(&mut helper);

    let recorder = Running::spawn(
        Command::new(agent_audit_bin())
            .args(["record", "--cgroup", &target.rel, "--interval", "0.2"])
            .args(["--duration", "3", "--out"])
            .arg(&out),
    );
    wait_until("the first snapshot", TIMEOUT, || out.exists());
    fs::write(&go, b"").unwrap();
    helper.finish(TIMEOUT, "getppid-loop").assert_code(0);
    // The cgroup still exists (empty): only --duration can end the recording.
    recorder
        .finish(TIMEOUT, "agent-audit record --duration 3")
        .assert_code(0);
    let list = Allowlist::read(&out);
    assert!(list.complete());
    let got = list.count("getppid");
    assert!(
        (N..=N + SLACK).contains(&got),
        "getppid counted {got} times for {N} calls:\n{:#}",
        list.0
    );
    assert_eq!(list.target()["kind"], "cgroup");
}

#[test]
fn root_run_passes_sigterm_to_the_command_and_writes_a_complete_file() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("allowlist.json");
    let started = dir.path().join("started");
    // The command announces itself, then sleeps far longer than the test waits.
    let script = format!("echo > {}; exec /bin/busybox sleep 60", started.display());
    let audit = Running::spawn(
        Command::new(agent_audit_bin())
            .arg("run")
            .arg("--out")
            .arg(&out)
            .args(["--", "/bin/busybox", "sh", "-c", &script]),
    );
    wait_until("the command to start", TIMEOUT, || started.exists());
    audit.signal(libc::SIGTERM);
    // A command ended by signal N makes `run` exit 128+N.
    audit
        .finish(TIMEOUT, "agent-audit run after SIGTERM")
        .assert_code(128 + libc::SIGTERM);
    let list = Allowlist::read(&out);
    assert!(list.complete());
    assert_eq!(list.target()["exit_status"], 128 + libc::SIGTERM);
    // sh exec'd busybox sleep after announcing itself.
    assert!(list.count("execve") >= 2, "{:#}", list.0);
}

/// `--out -`: standard output cannot be rewritten, so it gets the final allowlist alone, one
/// JSON document, even when the recording outlasts the default 5-second snapshot period.
#[test]
fn root_record_to_stdout_writes_only_the_final_allowlist() {
    require_root();
    const N: u64 = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let target = ScratchCgroup::new(&unique_name("agent-audit-test-stdout"));
    let mut helper = Command::new(HELPER);
    helper.arg("--wait-for").arg(&go).arg(N.to_string());
    target.contain(&mut helper);
    let helper = Running::spawn(&mut helper);
    let recorder = Running::spawn(
        Command::new(agent_audit_bin())
            .args(["record", "--cgroup", &target.rel, "--duration", "6"])
            .args(["--out", "-"]),
    );
    wait_until("the recorder to arm", TIMEOUT, || {
        recorder.stderr_so_far().contains("recording 1 target(s)")
    });
    fs::write(&go, b"").unwrap();
    helper.finish(TIMEOUT, "getppid-loop").assert_code(0);
    let done = recorder.finish(TIMEOUT, "agent-audit record --out -");
    done.assert_code(0);
    // One document: a second one after it would make this parse fail ("trailing characters").
    let list = Allowlist::parse(&done.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", done.stdout));
    assert!(list.complete(), "{:#}", list.0);
    assert!(list.count("getppid") >= N, "{:#}", list.0);
}

/// Snapshots on standard output would be concatenated documents: asking for them is a usage
/// error that names the problem, before anything is recorded or printed.
#[test]
fn record_interval_with_out_stdout_is_a_usage_error() {
    let done = agent_audit_tests::process::run(
        Command::new(agent_audit_bin()).args([
            "record",
            "--cgroup",
            "/no-such-cgroup-needed",
            "--out",
            "-",
            "--interval",
            "1",
        ]),
        TIMEOUT,
    );
    done.assert_code(2)
        .assert_stderr_mentions(&["--interval with --out -", "final allowlist"]);
    assert_eq!(done.stdout, "");
}

/// Every target's snapshot follows its own calls while the recorder runs, whatever its slot:
/// the kernel's `DIRTY` flags are 8 bytes apart in the mapped array, and a reader that took
/// them 4 bytes apart saw slot 1 never change and slot 2 change with slot 1.
#[test]
fn root_snapshots_of_every_slot_follow_its_own_calls() {
    require_root();
    const TARGETS: u64 = 4;
    let work = tempfile::tempdir().unwrap();
    let looped = agent_audit_tests::build_static_c(
        work.path(),
        "loop",
        "#include <stdlib.h>\n#include <unistd.h>\n#include <sys/syscall.h>\n\
         int main(int argc, char **argv) {\n\
             long n = argc > 1 ? atol(argv[1]) : 0;\n\
             for (long i = 0; i < n; i++) syscall(SYS_getppid);\n\
             return 0;\n}\n",
    );
    let cgroups: Vec<ScratchCgroup> = (0..TARGETS)
        .map(|i| ScratchCgroup::new(&unique_name(&format!("slot{i}"))))
        .collect();
    let out_dir = work.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let mut cmd = Command::new(agent_audit_bin());
    cmd.args(["record", "--interval", "0.2", "--out-dir"])
        .arg(&out_dir);
    for c in &cgroups {
        cmd.args(["--cgroup", &c.rel]);
    }
    let mut recorder = Running::spawn(&mut cmd);
    let file_of = |c: &ScratchCgroup| {
        let name = c.rel.rsplit('/').next().unwrap().to_string();
        out_dir.join(format!("{name}.allowlist.json"))
    };
    let getppids = |c: &ScratchCgroup| {
        fs::read_to_string(file_of(c))
            .ok()
            .and_then(|t| Allowlist::parse(&t).ok())
            .map(|l| l.count("getppid"))
    };
    wait_until("every target's first snapshot", TIMEOUT, || {
        recorder.has_exited() || cgroups.iter().all(|c| getppids(c).is_some())
    });
    // Last slot first: each target calls while the others are idle.
    for (i, c) in cgroups.iter().enumerate().rev() {
        let calls = 1000 * (i as u64 + 1);
        let mut workload = Command::new(&looped);
        workload.arg(calls.to_string());
        c.contain(&mut workload);
        assert!(workload.status().unwrap().success());
        wait_until(
            &format!("target {i}'s snapshot to show its calls"),
            TIMEOUT,
            || recorder.has_exited() || getppids(c) == Some(calls),
        );
        assert_eq!(getppids(c), Some(calls), "{}", recorder.stderr_so_far());
    }
    recorder.signal(libc::SIGTERM);
    recorder.finish(TIMEOUT, "record").assert_code(0);
}
