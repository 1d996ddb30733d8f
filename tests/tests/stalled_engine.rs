//! A stalled container engine (a socket that accepts and never answers) never stalls the
//! recorder: whether a new cgroup is the awaited container is asked of the engine on a thread
//! of its own, so another target's snapshots go on while the question waits (each request is
//! bounded by the engine client's 10 s), and the container's cgroup, counted by the kernel
//! program from its first call meanwhile, is recorded whole once the question times out.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::armed::ArmedRecorder;
use agent_audit_tests::cgroup::ScratchCgroup;
use agent_audit_tests::engine::{recorded_answer, FakeEngine};
use agent_audit_tests::{build_static_c, require_root, unique_name};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(60);
const ID: &str = "5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e";
const CALLS: u64 = 1000;

const LOOP_C: &str = "#include <stdlib.h>\n#include <unistd.h>\n#include <sys/syscall.h>\n\
     int main(int argc, char **argv) {\n\
         long n = argc > 1 ? atol(argv[1]) : 0;\n\
         for (long i = 0; i < n; i++) syscall(SYS_getppid);\n\
         return 0;\n}\n";

/// Docker with the systemd driver (recorded answers), container `name` created below `slice`.
fn engine(name: &str, slice: &str) -> FakeEngine {
    let mut info = recorded_answer("docker-20.10-cgroupfs.info");
    info["CgroupDriver"] = Value::from("systemd");
    let mut inspect = recorded_answer("docker-20.10-cgroupfs.inspect");
    inspect["Id"] = Value::from(ID);
    inspect["Name"] = Value::from(format!("/{name}"));
    inspect["HostConfig"]["CgroupParent"] = Value::from(slice);
    FakeEngine::serve(vec![
        (
            "/version".into(),
            recorded_answer("docker-20.10-cgroupfs.version"),
        ),
        ("/info".into(), info),
        (format!("/containers/{name}/json"), inspect),
    ])
}

/// The getppid count of an allowlist file, once it parses.
fn getppids(file: &PathBuf) -> Option<u64> {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| Allowlist::parse(&t).ok())
        .map(|l| l.count("getppid"))
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

#[test]
fn root_a_stalled_engine_never_delays_another_targets_file_and_loses_no_call() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let looped = build_static_c(work.path(), "loop", LOOP_C);
    let slice_name = format!("{}.slice", unique_name("pin_stall").replace('-', "_"));
    let slice = ScratchCgroup::at(&slice_name);
    let jobs = ScratchCgroup::new(&unique_name("pin-stall-jobs"));
    let name = unique_name("pin-stall");
    let engine = engine(&name, &slice_name);
    let out_dir = work.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let pattern = format!("{}/*", jobs.rel);
    let recorder = ArmedRecorder::start(
        &[
            "--keep-waiting",
            "--container",
            &name,
            "--engine-socket",
            engine.socket.to_str().unwrap(),
            "--cgroup-glob",
            &pattern,
            "--interval",
            "0.2",
            "--out-dir",
            out_dir.to_str().unwrap(),
        ],
        TIMEOUT,
    );
    engine.stall();
    let run_in = |cgroup: &ScratchCgroup| {
        let mut cmd = Command::new(&looped);
        cmd.arg(CALLS.to_string());
        cgroup.contain(&mut cmd);
        assert!(cmd.status().unwrap().success());
    };

    // The container starts: the recorder's question about it now waits on the engine.
    let container = ScratchCgroup::at(&format!("{}/docker-{ID}.scope", slice.rel));
    run_in(&container);
    let asked = Instant::now();
    // Meanwhile another target is born, runs and is snapshotted at the usual pace.
    let job_name = unique_name("job");
    let job = ScratchCgroup::at(&format!("{}/{job_name}", jobs.rel));
    run_in(&job);
    let job_file = out_dir.join(format!("{job_name}.allowlist.json"));
    let took = wait_for(
        "the other target's snapshot",
        Duration::from_secs(5),
        || getppids(&job_file) == Some(CALLS),
    );
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "the other target's snapshot came only after {took:?}, once the engine's question \
         timed out"
    );
    // The question times out (10 s): the container's cgroup is recorded, every call in it.
    let container_file = out_dir.join(format!("{name}.allowlist.json"));
    wait_for("the container's file", TIMEOUT, || {
        getppids(&container_file) == Some(CALLS)
    });
    drop(container);
    drop(job);
    recorder.stop(TIMEOUT);
}
