//! `record --pin-dir`: the kernel programs, links and maps outlive the recorder. A recorder
//! stopped in the middle of an exact `getppid` loop (SIGTERM, or SIGKILL: no clean-up at all)
//! and started again a second later with the same directory adopts them: the final count is
//! the loop's, exactly. A cgroup created below a watched parent while no recorder runs is
//! recorded from its first syscall. `unpin` leaves no program, map or link of the recorder's
//! (`bpftool`); a Docker container started and ended while no recorder ran is recorded from its
//! first syscall; a directory holding another build's pins, or in use by another recorder,
//! is refused with exit 75.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::cgroup::ScratchCgroup;
use agent_audit_tests::process::{run, run_ok, wait_until, Running};
use agent_audit_tests::{agent_audit_bin, build_static_c, require_root, unique_name};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(30);
/// `getppid` calls of the loop; long enough (seconds) to stop a recorder inside it.
const CALLS: u64 = 10_000_000;

const LOOP_C: &str = "#include <stdlib.h>\n#include <unistd.h>\n#include <sys/syscall.h>\n\
     int main(int argc, char **argv) {\n\
         long n = argc > 1 ? atol(argv[1]) : 0;\n\
         for (long i = 0; i < n; i++) syscall(SYS_getppid);\n\
         return 0;\n}\n";

/// A pin directory on bpffs, unpinned (and so detached) however the test ends.
struct Pins(PathBuf);

impl Pins {
    fn new() -> Self {
        Self(Path::new("/sys/fs/bpf").join(unique_name("pin")))
    }

    fn arg(&self) -> &Path {
        &self.0
    }

    /// The ids of the pinned links, programs and maps (`bpftool … show pinned`).
    fn pinned_ids(&self) -> Vec<(&'static str, u64)> {
        let mut ids = Vec::new();
        for (kind, sub) in [("link", "links"), ("map", "maps")] {
            for entry in std::fs::read_dir(self.0.join(sub)).unwrap() {
                let path = entry.unwrap().path();
                let shown = bpftool(&[kind, "show", "pinned", path.to_str().unwrap()]);
                ids.push((kind, shown["id"].as_u64().unwrap()));
                if let Some(prog) = shown["prog_id"].as_u64() {
                    ids.push(("prog", prog));
                }
            }
        }
        ids
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = Command::new(agent_audit_bin())
            .arg("unpin")
            .arg(&self.0)
            .output();
    }
}

fn bpftool(args: &[&str]) -> Value {
    let out = run_ok(Command::new("bpftool").arg("-j").args(args), TIMEOUT);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bpftool {args:?}: {e}: {out}"))
}

/// `record --cgroup REL --pin-dir DIR -o OUT`, once it says it records.
fn start_recorder(cgroup: &ScratchCgroup, pins: &Pins, out: &Path) -> Running {
    let mut recorder = Running::spawn(
        Command::new(agent_audit_bin())
            .args([
                "record",
                "--interval",
                "0.5",
                "--cgroup",
                &cgroup.rel,
                "--pin-dir",
            ])
            .arg(pins.arg())
            .arg("-o")
            .arg(out),
    );
    wait_until("the recorder's readiness line", TIMEOUT, || {
        recorder.has_exited() || recorder.stderr_so_far().contains("agent-audit: recording ")
    });
    assert!(
        !recorder.has_exited(),
        "the recorder exited: {:#?}",
        recorder.finish(TIMEOUT, "record --pin-dir")
    );
    recorder
}

/// Stops a recorder with `signal` in the middle of the loop, starts another a second later,
/// and checks that the second's final file holds every call of the loop.
fn restart_mid_loop(signal: libc::c_int) {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let looped = build_static_c(work.path(), "loop", LOOP_C);
    let cgroup = ScratchCgroup::new(&unique_name("pin-loop"));
    let pins = Pins::new();
    let first_out = work.path().join("first.json");
    let out = work.path().join("allowlist.json");
    let first = start_recorder(&cgroup, &pins, &first_out);

    let mut workload = Command::new(&looped);
    workload.arg(CALLS.to_string());
    cgroup.contain(&mut workload);
    let mut workload = workload.spawn().unwrap();
    // Stopped once the loop is well under way (its first snapshot counts some of it).
    wait_until("a snapshot in the middle of the loop", TIMEOUT, || {
        std::fs::read_to_string(&first_out)
            .ok()
            .and_then(|t| Allowlist::parse(&t).ok())
            .is_some_and(|l| l.count("getppid") > 0)
    });
    first.signal(signal);
    let stopped = first.finish(TIMEOUT, "the first recorder");
    if signal == libc::SIGTERM {
        stopped.assert_code(0);
    }
    let partial = Allowlist::read(&first_out).count("getppid");
    std::thread::sleep(Duration::from_secs(1));

    let second = start_recorder(&cgroup, &pins, &out);
    assert!(
        second
            .stderr_so_far()
            .contains("adopted the programs pinned"),
        "{}",
        second.stderr_so_far()
    );
    assert!(workload.wait().unwrap().success());
    second.signal(libc::SIGTERM);
    second.finish(TIMEOUT, "the second recorder").assert_code(0);
    let list = Allowlist::read(&out);
    assert_eq!(
        list.count("getppid"),
        CALLS,
        "the first recorder had seen {partial} when stopped"
    );
    assert!(partial < CALLS, "stopped after the loop: {partial}");
}

#[test]
fn root_sigterm_mid_loop_then_restart_counts_every_call() {
    restart_mid_loop(libc::SIGTERM);
}

#[test]
fn root_sigkill_mid_loop_then_restart_counts_every_call() {
    restart_mid_loop(libc::SIGKILL);
}

#[test]
fn root_cgroup_born_while_no_recorder_ran_is_recorded_from_its_first_call() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let looped = build_static_c(work.path(), "loop", LOOP_C);
    let parent = ScratchCgroup::new(&unique_name("pin-parent"));
    let pins = Pins::new();
    let out_dir = work.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let pattern = format!("{}/*", parent.rel);
    let start = || {
        let mut recorder = Running::spawn(
            Command::new(agent_audit_bin())
                .args(["record", "--wait", "--keep-waiting", "--interval", "0.5"])
                .args(["--cgroup-glob", &pattern, "--pin-dir"])
                .arg(pins.arg())
                .arg("--out-dir")
                .arg(&out_dir),
        );
        wait_until("armed", TIMEOUT, || {
            recorder.has_exited() || recorder.stderr_so_far().contains("armed for new cgroups")
        });
        recorder
    };
    let first = start();
    first.signal(libc::SIGTERM);
    first.finish(TIMEOUT, "the first recorder").assert_code(0);

    // No recorder runs: a cgroup is born below the watched parent and its workload ends.
    let name = unique_name("pin-child");
    let child = ScratchCgroup::at(&format!("{}/{name}", parent.rel));
    let mut workload = Command::new(&looped);
    workload.arg(CALLS.to_string());
    child.contain(&mut workload);
    assert!(workload.status().unwrap().success());

    let second = start();
    let file = out_dir.join(format!("{name}.allowlist.json"));
    wait_until("the child's file", TIMEOUT, || file.exists());
    second.signal(libc::SIGTERM);
    second.finish(TIMEOUT, "the second recorder").assert_code(0);
    let list = Allowlist::read(&file);
    assert_eq!(list.count("getppid"), CALLS);
    // From its first syscall: the exec of the loop, made while no recorder ran, is in it.
    assert!(
        list.count("execve") >= 1 || list.names_in("runtime_init").contains("execve"),
        "{:#}",
        list.0
    );
    drop(child);
}

#[test]
fn root_unpin_leaves_no_program_map_or_link() {
    require_root();
    let cgroup = ScratchCgroup::new(&unique_name("pin-unpin"));
    let pins = Pins::new();
    let work = tempfile::tempdir().unwrap();
    let recorder = start_recorder(&cgroup, &pins, &work.path().join("a.json"));
    recorder.signal(libc::SIGTERM);
    recorder.finish(TIMEOUT, "the recorder").assert_code(0);
    let ids = pins.pinned_ids();
    assert!(ids.iter().any(|(kind, _)| *kind == "prog"), "{ids:?}");

    run(
        Command::new(agent_audit_bin()).arg("unpin").arg(pins.arg()),
        TIMEOUT,
    )
    .assert_code(0);
    assert!(!pins.0.exists());
    // Maps are freed once the programs using them are (an RCU grace period later).
    wait_until("every pinned object freed", TIMEOUT, || {
        let live: Vec<(&str, u64)> = ["prog", "map", "link"]
            .into_iter()
            .flat_map(|kind| {
                bpftool(&[kind, "show"])
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|o| o["id"].as_u64())
                    .map(move |id| (kind, id))
                    .collect::<Vec<_>>()
            })
            .collect();
        ids.iter().all(|id| !live.contains(id))
    });
}

#[test]
fn root_other_build_or_a_running_recorder_is_refused_with_75() {
    require_root();
    let cgroup = ScratchCgroup::new(&unique_name("pin-other"));
    let pins = Pins::new();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("a.json");
    let recorder = start_recorder(&cgroup, &pins, &out);
    // `record` for a second into `file` with the same pin directory.
    let record_into = |file: &Path| {
        run(
            Command::new(agent_audit_bin())
                .args(["record", "--duration", "1", "--cgroup", &cgroup.rel])
                .arg("--pin-dir")
                .arg(pins.arg())
                .arg("-o")
                .arg(file),
            TIMEOUT,
        )
    };
    // A second recorder with the same directory while the first runs.
    let second = record_into(&work.path().join("b.json"));
    second.assert_code(75).assert_stderr_mentions(&["in use"]);
    recorder.signal(libc::SIGTERM);
    recorder.finish(TIMEOUT, "the recorder").assert_code(0);

    // The pins now say another build made them.
    let state = pins.0.join("state");
    for entry in std::fs::read_dir(&state).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("fingerprint=")
        {
            std::fs::remove_dir(&path).unwrap();
        }
    }
    std::fs::create_dir(state.join("fingerprint=0123456789abcdef")).unwrap();
    let refused = record_into(&out);
    refused
        .assert_code(75)
        .assert_stderr_mentions(&["another agent-audit build", "agent-audit unpin"]);
    // `unpin --if-other-build` removes them; this build's own would have been kept.
    run(
        Command::new(agent_audit_bin())
            .args(["unpin", "--if-other-build"])
            .arg(pins.arg()),
        TIMEOUT,
    )
    .assert_code(0);
    assert!(!pins.0.exists());
}

/// Removes the container on drop.
struct DockerRm(String);

impl Drop for DockerRm {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "--force", &self.0])
            .output();
    }
}

#[test]
fn root_a_container_started_while_no_recorder_ran_is_recorded_from_its_first_call() {
    require_root();
    const CONTAINER_CALLS: u64 = 100_000;
    let work = tempfile::tempdir().unwrap();
    build_static_c(work.path(), "loop", LOOP_C);
    let name = unique_name("pin-container");
    let _rm = DockerRm(name.clone());
    run_ok(
        Command::new("docker")
            .args(["create", "--network", "none", "--name", &name, "-v"])
            .arg(format!("{}:/w:ro", work.path().display()))
            .args([
                agent_audit_tests::container::docker_busybox_image(),
                "/w/loop",
                &CONTAINER_CALLS.to_string(),
            ]),
        TIMEOUT,
    );
    let pins = Pins::new();
    let out = work.path().join("container.json");
    let start = || {
        let mut recorder = Running::spawn(
            Command::new(agent_audit_bin())
                .args(["record", "--wait", "--keep-waiting", "--container", &name])
                .args(["--interval", "0.5", "--pin-dir"])
                .arg(pins.arg())
                .arg("--out")
                .arg(&out),
        );
        wait_until("armed", TIMEOUT, || {
            recorder.has_exited() || recorder.stderr_so_far().contains("armed for")
        });
        assert!(!recorder.has_exited(), "{}", recorder.stderr_so_far());
        recorder
    };
    let first = start();
    first.signal(libc::SIGTERM);
    first.finish(TIMEOUT, "the first recorder").assert_code(0);

    // The container runs, start to end, while no recorder runs.
    run(Command::new("docker").args(["start", "-a", &name]), TIMEOUT).assert_code(0);

    let second = start();
    wait_until("the container's file", TIMEOUT, || {
        std::fs::read_to_string(&out)
            .ok()
            .and_then(|t| Allowlist::parse(&t).ok())
            .is_some_and(|l| l.count("getppid") == CONTAINER_CALLS)
    });
    second.signal(libc::SIGTERM);
    let done = second.finish(TIMEOUT, "the second recorder");
    done.assert_code(0);
    let list = Allowlist::read(&out);
    assert_eq!(list.count("getppid"), CONTAINER_CALLS, "{:#}", list.0);
    // From its first syscall: the runtime's init (runc's, before the loop's exec) is there.
    assert!(
        !list.rows("runtime_init").is_empty(),
        "no runtime init: {:#}",
        list.0
    );
    assert_eq!(
        list.target()["container"]["name"],
        name.as_str(),
        "{:#}",
        list.0
    );
}
