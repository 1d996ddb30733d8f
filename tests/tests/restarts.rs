//! A container that restarts is the same target: under one
//! `record --wait --keep-waiting --container NAME --out FILE`, a Docker container started three
//! times (the same id, a new cgroup each time) gives one allowlist whose counts add up over the
//! three starts, with one `starts` entry each. The workload is a static program making an
//! exact number of `getppid` calls, bind-mounted into the busybox image. The recorder's stderr
//! goes to a file, as a service manager or CI log would take it: it must hold no colour escape.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::container::docker_busybox_image;
use agent_audit_tests::process::{run, run_ok, wait_until};
use agent_audit_tests::{agent_audit_bin, require_root, unique_name};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(20);
/// `getppid` calls per start.
const CALLS: u64 = 1000;
const STARTS: usize = 3;

/// Builds the static loop: `loop N` makes N raw getppid calls and nothing else of the kind.
fn build_loop(dir: &Path) -> PathBuf {
    let src = dir.join("loop.c");
    let bin = dir.join("loop");
    fs::write(
        &src,
        "#include <stdlib.h>\n#include <unistd.h>\n#include <sys/syscall.h>\n\
         int main(int argc, char **argv) {\n\
             long n = argc > 1 ? atol(argv[1]) : 0;\n\
             for (long i = 0; i < n; i++) syscall(SYS_getppid);\n\
             return 0;\n}\n",
    )
    .unwrap();
    run_ok(
        Command::new("gcc")
            .args(["-static", "-O1", "-o"])
            .arg(&bin)
            .arg(&src),
        TIMEOUT,
    );
    bin
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

/// The recorder, its stderr in a file; killed on drop if still running.
struct Recorder(Child);

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read_list(path: &Path) -> Option<Allowlist> {
    fs::read_to_string(path)
        .ok()
        .and_then(|t| Allowlist::parse(&t).ok())
}

#[test]
fn root_record_keep_waiting_adds_every_start_of_a_container_to_its_allowlist() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    fs::create_dir(&work).unwrap();
    build_loop(&work);
    let name = unique_name("runtimes-restart");
    let _rm = DockerRm(name.clone());
    let created = run_ok(
        Command::new("docker")
            .args(["create", "--network", "none", "--name", &name, "-v"])
            .arg(format!("{}:/w:ro", work.display()))
            .args([docker_busybox_image(), "/w/loop", &CALLS.to_string()]),
        TIMEOUT,
    );
    let id = created.trim().to_string();

    let out = dir.path().join("a.json");
    let ready = dir.path().join("armed");
    let log = dir.path().join("rec.log");
    let mut recorder = Recorder(
        Command::new(agent_audit_bin())
            .args([
                "-v",
                "record",
                "--wait",
                "--keep-waiting",
                "--container",
                &name,
            ])
            .args(["--interval", "0.5", "--out"])
            .arg(&out)
            .arg("--ready-file")
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let log_text = || fs::read_to_string(&log).unwrap_or_default();
    wait_until("the recorder is armed", TIMEOUT, || ready.exists());

    for start in 1..=STARTS {
        run(Command::new("docker").args(["start", "-a", &name]), TIMEOUT).assert_code(0);
        // The start is over once its final state is in the file: its counts, complete.
        let done = |l: &Allowlist| {
            l.complete()
                && l.0["starts"].as_array().map_or(0, Vec::len) == start
                && l.count("getppid") == CALLS * start as u64
        };
        let deadline = Instant::now() + TIMEOUT;
        while !read_list(&out).is_some_and(|l| done(&l)) {
            assert!(
                Instant::now() < deadline,
                "start {start} not in the file after {TIMEOUT:?}; file: {:#}\nrecorder log:\n{}",
                read_list(&out).map_or(Value::Null, |l| l.0),
                log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            recorder.0.try_wait().unwrap().is_none(),
            "the recorder ended after start {start}:\n{}",
            log_text()
        );
    }
    // SAFETY: kill(2) on our own, not yet reaped, child.
    let sent = unsafe { libc::kill(recorder.0.id().cast_signed(), libc::SIGTERM) };
    assert_eq!(sent, 0);
    let status = recorder.0.wait().unwrap();
    let log_text = log_text();
    assert_eq!(status.code(), Some(0), "{log_text}");

    let list = Allowlist::read(&out);
    let dump = format!("{:#}", list.0);
    assert_eq!(list.count("getppid"), CALLS * STARTS as u64, "{dump}");
    assert_eq!(list.target()["container"]["id"], id.as_str(), "{dump}");
    let starts = list.0["starts"].as_array().expect("starts");
    assert_eq!(starts.len(), STARTS, "{dump}");
    let mut cgroups: Vec<u64> = starts
        .iter()
        .map(|s| s["cgroup_id"].as_u64().unwrap())
        .collect();
    cgroups.dedup();
    assert_eq!(
        cgroups.len(),
        STARTS,
        "each start has a cgroup of its own: {dump}"
    );
    let per_start: u64 = starts.iter().map(|s| s["calls"].as_u64().unwrap()).sum();
    assert_eq!(per_start, list.total_calls(), "{dump}");
    for s in starts {
        assert_eq!(s["from_first_call"], true, "{dump}");
        assert!(s["calls"].as_u64().unwrap() > CALLS, "{dump}");
    }
    assert!(list.0.get("missed_start").is_none(), "{dump}");

    // Logs written to a file: no colour escape, and no start refused as "another target".
    assert!(log_text.contains("picked up new cgroup"), "{log_text}");
    assert!(
        !log_text.contains('\u{1b}'),
        "escape bytes in a file:\n{log_text:?}"
    );
    assert!(!log_text.contains("already used"), "{log_text}");
}

/// `--log-format json`: every log line is one JSON object.
#[test]
fn root_json_logs_are_one_object_per_line() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let name = unique_name("runtimes-nothere");
    let done = run(
        Command::new(agent_audit_bin())
            .args([
                "-vv",
                "--log-format",
                "json",
                "record",
                "--wait",
                "--container",
                &name,
            ])
            .args(["--duration", "0.5", "--out"])
            .arg(dir.path().join("a.json")),
        TIMEOUT,
    );
    done.assert_code(0);
    let logs: Vec<serde_json::Value> = done
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(!logs.is_empty(), "no JSON log line:\n{}", done.stderr);
    for line in &logs {
        assert!(
            line["level"].is_string() && line["fields"].is_object(),
            "{line}"
        );
    }
    assert!(!done.stderr.contains('\u{1b}'), "{:?}", done.stderr);
}
