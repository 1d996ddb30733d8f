//! `verify` always ends: a command that runs too long is killed at `--timeout`, and the
//! processes a command leaves running (a worker the profile kept from being stopped) are
//! killed after the grace period. Each case is a real workload under a real filter; each must
//! end within its bound, say why it failed, and leave no process behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use agent_audit_tests::process::{run, Finished};
use agent_audit_tests::{agent_audit_bin, require_root, workspace_root};

/// The grace period after the command's exit (agent-audit/src/verify/mod.rs).
const GRACE: Duration = Duration::from_secs(5);
/// Far above every bound below: a verify that waits for its survivors fails here instead.
const HANG: Duration = Duration::from_secs(120);

const FINDINGS: i32 = 1;

/// Everything allowed: the outcome depends on the workload alone.
const ALLOW_ALL: &str = r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#;
/// Everything allowed but kill(2), which fails with EPERM.
const NO_KILL: &str = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
    {"names":["kill"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#;

/// A sleep length no other process on the machine has: it marks this test's processes.
fn marker() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("600.{}{nanos}", std::process::id())
}

struct Verified {
    done: Finished,
    result: Value,
    elapsed: Duration,
}

fn verify(dir: &Path, profile: &str, extra: &[&str], command: &[&str]) -> Verified {
    let profile_path = dir.join("profile.json");
    std::fs::write(&profile_path, profile).unwrap();
    let out = dir.join("verify.json");
    let started = Instant::now();
    let done = run(
        Command::new(agent_audit_bin())
            .arg("verify")
            .arg("--profile")
            .arg(&profile_path)
            .arg("-o")
            .arg(&out)
            .args(extra)
            .arg("--")
            .args(command),
        HANG,
    );
    let elapsed = started.elapsed();
    let text = std::fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("no verify.json ({e}):\n{}\n{}", done.stdout, done.stderr));
    Verified {
        done,
        result: serde_json::from_str(&text).unwrap(),
        elapsed,
    }
}

/// The pids of live processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            pids.push(pid);
        }
    }
    pids
}

/// Verify ended within the grace period (and some slack), leaving no process with `mark`.
fn assert_ended_within_the_grace_period(v: &Verified, mark: &str) {
    assert!(
        v.elapsed < GRACE + Duration::from_secs(30),
        "took {:?}",
        v.elapsed
    );
    assert_eq!(processes_with(mark), Vec::<u32>::new(), "left behind");
}

fn survivors(result: &Value) -> Vec<(u64, String)> {
    result["survivors"]
        .as_array()
        .expect("survivors is a list")
        .iter()
        .map(|s| {
            (
                s["pid"].as_u64().unwrap(),
                s["command"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn denied_names(result: &Value) -> Vec<String> {
    result["denied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn root_verify_kills_a_child_that_ignores_sigterm_once_the_grace_period_passed() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let mark = marker();
    // The shell asks its child to stop; the child ignores SIGTERM (inherited from the trap).
    let script = format!("trap '' TERM; sleep {mark} & kill -TERM $!; exit 0");
    let v = verify(dir.path(), ALLOW_ALL, &[], &["sh", "-c", &script]);
    v.done.assert_code(FINDINGS);
    assert_eq!(v.result["exit_status"], 0, "{:#}", v.result);
    assert_eq!(v.result["timed_out"], false, "{:#}", v.result);
    assert_eq!(v.result["passed"], false, "{:#}", v.result);
    let left = survivors(&v.result);
    assert_eq!(left.len(), 1, "{:#}", v.result);
    assert_eq!(left[0].1, format!("sleep {mark}"));
    assert!(v.done.stdout.contains("LEFT RUNNING"), "{}", v.done.stdout);
    assert!(
        v.done
            .stdout
            .contains(&format!("pid {} sleep {mark}", left[0].0)),
        "{}",
        v.done.stdout
    );
    assert!(v.done.stdout.ends_with("FAILED\n"), "{}", v.done.stdout);
    assert_ended_within_the_grace_period(&v, &mark);
}

#[test]
fn root_verify_ends_a_multiprocessing_worker_the_profile_kept_from_being_stopped() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let mark = marker();
    let script = workspace_root().join("tests/data/workloads/worker_left_behind.py");
    let script = script.to_str().unwrap();
    let v = verify(
        dir.path(),
        NO_KILL,
        &["--timeout", "60"],
        &["/usr/bin/python3", script, &mark],
    );
    v.done.assert_code(FINDINGS);
    // Python's exit handler tried to stop its worker with kill(2): denied, so it lived on.
    assert!(
        denied_names(&v.result).contains(&"kill".to_string()),
        "{:#}",
        v.result
    );
    assert!(
        v.done.stderr.contains("PermissionError"),
        "python saw its kill refused:\n{}",
        v.done.stderr
    );
    assert_eq!(v.result["timed_out"], false, "{:#}", v.result);
    let left = survivors(&v.result);
    assert_eq!(left.len(), 1, "{:#}", v.result);
    let worker: u64 = v
        .done
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("worker "))
        .expect("the workload printed its worker's pid")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(left[0].0, worker, "{:#}", v.result);
    assert!(left[0].1.contains(&mark), "{:?}", left[0]);
    assert_ended_within_the_grace_period(&v, &mark);
}

#[test]
fn root_verify_kills_a_command_that_runs_past_its_timeout() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let mark = marker();
    let script = format!("sleep {mark}; echo not reached");
    let v = verify(
        dir.path(),
        ALLOW_ALL,
        &["--timeout", "1.5"],
        &["sh", "-c", &script],
    );
    v.done.assert_code(FINDINGS);
    assert_eq!(v.result["timed_out"], true, "{:#}", v.result);
    assert_eq!(v.result["timeout_seconds"], 1.5, "{:#}", v.result);
    // The shell was killed by the timeout's SIGKILL.
    assert_eq!(v.result["exit_status"], 128 + 9, "{:#}", v.result);
    assert_eq!(v.result["passed"], false, "{:#}", v.result);
    // Its sleep was still running too: killed and listed.
    let left = survivors(&v.result);
    assert_eq!(left.len(), 1, "{:#}", v.result);
    assert_eq!(left[0].1, format!("sleep {mark}"));
    assert!(
        v.done.stdout.contains("TIMED OUT after 1.5s"),
        "{}",
        v.done.stdout
    );
    // (The first line quotes the command, `echo` included.)
    assert!(!v.done.stdout.lines().any(|l| l == "not reached"));
    assert!(v.elapsed < Duration::from_secs(30), "took {:?}", v.elapsed);
    assert_eq!(processes_with(&mark), Vec::<u32>::new(), "left behind");
}

#[test]
fn root_verify_waits_for_a_background_job_that_ends_within_the_grace_period() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("written");
    let script = format!("(sleep 1; touch {}) & exit 0", flag.display());
    let v = verify(dir.path(), ALLOW_ALL, &[], &["sh", "-c", &script]);
    v.done.assert_code(0);
    assert_eq!(v.result["passed"], true, "{:#}", v.result);
    assert_eq!(survivors(&v.result), Vec::new());
    assert_eq!(v.result["timed_out"], false);
    assert!(flag.exists(), "the background job was cut short");
}

#[test]
fn root_audit_passes_its_verify_timeout_on_and_reports_the_timeout_first() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("audit");
    let done = run(
        Command::new(agent_audit_bin())
            .args([
                "audit",
                "--runs",
                "1",
                "--verify-timeout",
                "0.5",
                "--out-dir",
            ])
            .arg(&out)
            .args(["--", "sleep", "2"]),
        HANG,
    );
    done.assert_code(FINDINGS);
    assert!(done.stdout.contains("verify FAILED"), "{}", done.stdout);
    let text = std::fs::read_to_string(out.join("verify.json")).unwrap();
    let result: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(result["timed_out"], true, "{result:#}");
    assert_eq!(result["timeout_seconds"], 0.5, "{result:#}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let first = &report["findings"]["verify_failed"][0];
    assert_eq!(first["kind"], "timed-out", "{:#}", report["findings"]);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let failed = md.find("Verify FAILED").expect("verify section");
    assert!(
        md[failed..].contains("timed out under the profile after 0.5s"),
        "{md}"
    );
}

/// A container's copy is bounded too: the engine kills it at `--timeout`, the verification
/// fails as timed out, and neither the copy nor its processes are left.
#[test]
fn root_verify_kills_a_container_copy_that_runs_past_its_timeout() {
    require_root();
    if agent_audit_tests::image::skip_without_docker("root_verify_kills_a_container_copy") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = agent_audit_tests::unique_name("aa-vtimeout");
    let mark = marker();
    let created = run(
        Command::new("docker")
            .args(["create", "--name", &name, "--network", "none"])
            .arg(agent_audit_tests::container::docker_busybox_image())
            .args(["sleep", &mark]),
        HANG,
    );
    created.assert_code(0);
    let profile_path = dir.path().join("profile.json");
    std::fs::write(&profile_path, ALLOW_ALL).unwrap();
    let out = dir.path().join("verify.json");
    let started = Instant::now();
    let done = run(
        Command::new(agent_audit_bin())
            .arg("verify")
            .arg("--profile")
            .arg(&profile_path)
            .args(["--timeout", "2", "--docker-container", &name, "-o"])
            .arg(&out),
        HANG,
    );
    let elapsed = started.elapsed();
    let copies = agent_audit_tests::container::leftover_verify_copies(&name);
    let _ = Command::new("docker").args(["rm", "-f", &name]).output();
    done.assert_code(FINDINGS);
    let result: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(result["timed_out"], true, "{result:#}");
    assert_eq!(result["timeout_seconds"], 2.0, "{result:#}");
    assert_eq!(result["passed"], false, "{result:#}");
    assert_eq!(result["exit_status"], 128 + 9, "{result:#}");
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    assert_eq!(copies, "", "verify copies left behind");
    assert_eq!(processes_with(&mark), Vec::<u32>::new(), "left behind");
}

// A process that leaves the command's cgroup (a write of its pid to another cgroup's
// `cgroup.procs`) is no longer counted: verify fails naming it and kills it, run marks its
// recording incomplete. The kernel's cgroup-attach tracepoint sees the move.

/// Everything allowed but mkdir, which fails with EPERM.
const NO_MKDIR: &str = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
    {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#;

/// The `cgroup.procs` of a scratch cgroup outside every target (the cgroup v2 root, as a
/// user would write, would do as well but leaves the process where nothing cleans it up).
fn outside() -> agent_audit_tests::cgroup::ScratchCgroup {
    agent_audit_tests::cgroup::ScratchCgroup::new(&agent_audit_tests::unique_name(
        "verify-truth-out",
    ))
}

fn left_cgroup(result: &Value) -> Vec<Value> {
    result["left_cgroup"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn root_verify_fails_when_the_command_moves_itself_out_of_its_cgroup() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = outside();
    let target = dir.path().join("made");
    let script = format!(
        "echo $$ > {}/cgroup.procs; mkdir {}",
        out.dir.display(),
        target.display()
    );
    let v = verify(dir.path(), NO_MKDIR, &[], &["sh", "-c", &script]);
    v.done.assert_code(FINDINGS);
    assert!(!target.exists(), "the profile refused mkdir");
    assert_eq!(v.result["passed"], false, "{:#}", v.result);
    let left = left_cgroup(&v.result);
    assert_eq!(left.len(), 1, "{:#}", v.result);
    assert_eq!(left[0]["program"], "sh", "{:#}", v.result);
    assert!(left[0]["pid"].as_u64().unwrap() > 0);
    assert!(
        v.done.stdout.contains("left the command's cgroup"),
        "{}",
        v.done.stdout
    );
    assert!(v.done.stdout.ends_with("FAILED\n"), "{}", v.done.stdout);
}

#[test]
fn root_verify_kills_a_process_that_moved_out_of_its_cgroup() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = outside();
    let mark = marker();
    let script = format!(
        // Its output goes elsewhere: a process verify failed to kill would otherwise hold
        // the test's pipes open until it ends.
        "sh -c \"echo \\$\\$ > {}/cgroup.procs; exec sleep {mark} >/dev/null 2>&1\" & sleep 0.3",
        out.dir.display()
    );
    let v = verify(dir.path(), ALLOW_ALL, &[], &["sh", "-c", &script]);
    v.done.assert_code(FINDINGS);
    assert_eq!(v.result["exit_status"], 0, "{:#}", v.result);
    assert_eq!(v.result["passed"], false, "{:#}", v.result);
    // Not in the command's cgroup any more: not a survivor the cgroup shows.
    assert_eq!(survivors(&v.result), Vec::new(), "{:#}", v.result);
    let left = left_cgroup(&v.result);
    assert_eq!(left.len(), 1, "{:#}", v.result);
    let killed = left[0]["killed"].as_array().unwrap();
    assert_eq!(killed.len(), 1, "{:#}", v.result);
    assert_eq!(
        killed[0]["command"],
        format!("sleep {mark}"),
        "{:#}",
        v.result
    );
    assert_eq!(killed[0]["pid"], left[0]["pid"], "{:#}", v.result);
    // Killed by verify, not by the scratch cgroup's removal.
    agent_audit_tests::process::wait_until("the sleep to be gone", Duration::from_secs(5), || {
        processes_with(&mark).is_empty()
    });
    assert!(v.elapsed < Duration::from_secs(30), "took {:?}", v.elapsed);
}

#[test]
fn root_verify_passes_a_command_that_moves_into_a_cgroup_below_its_own() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    // Below its own cgroup it is still counted: not leaving.
    let script = "cg=$(grep ^0:: /proc/self/cgroup | cut -d: -f3); \
                  root=$(grep ' - cgroup2 ' /proc/self/mountinfo | head -n1 | cut -d' ' -f5); \
                  mkdir \"$root$cg/sub\" && echo $$ > \"$root$cg/sub/cgroup.procs\" && \
                  grep -q '^0::.*/sub$' /proc/self/cgroup";
    let v = verify(dir.path(), ALLOW_ALL, &[], &["sh", "-c", script]);
    assert_eq!(
        left_cgroup(&v.result),
        Vec::<Value>::new(),
        "{:#}",
        v.result
    );
    assert_eq!(v.result["passed"], true, "{:#}", v.result);
    v.done.assert_code(0);
}

#[test]
fn root_run_marks_a_recording_incomplete_when_a_process_leaves_its_cgroup() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = outside();
    let allowlist = dir.path().join("allowlist.json");
    let script = format!("echo $$ > {}/cgroup.procs; true", out.dir.display());
    let done = run(
        Command::new(agent_audit_bin())
            .args(["run", "--out"])
            .arg(&allowlist)
            .args(["--", "sh", "-c", &script]),
        HANG,
    );
    done.assert_code(0);
    let list: Value = serde_json::from_str(&std::fs::read_to_string(&allowlist).unwrap()).unwrap();
    let left = left_cgroup(&list);
    assert_eq!(left.len(), 1, "{list:#}");
    assert_eq!(left[0]["program"], "sh", "{list:#}");
    let pid = left[0]["pid"].as_u64().unwrap();
    assert!(
        done.stderr.contains(&format!(
            "INCOMPLETE: pid {pid} (sh) left the command's cgroup"
        )),
        "{}",
        done.stderr
    );
}

#[test]
fn root_record_marks_a_recording_incomplete_when_a_process_leaves_its_cgroup() {
    use agent_audit_tests::process::{wait_until, Running};
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("allowlist.json");
    let go = dir.path().join("go");
    let target = agent_audit_tests::cgroup::ScratchCgroup::new(&agent_audit_tests::unique_name(
        "verify-truth-record",
    ));
    let away = outside();
    // Polls with `sleep` (a fork while recorded: how a process already in the cgroup becomes
    // known), then moves itself out and lives on there for a while.
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.1; done; echo $$ > {}/cgroup.procs; exec sleep 3",
        away.dir.display(),
        go = go.display()
    );
    let mut shell = Command::new("sh");
    shell
        .args(["-c", &script])
        .stdout(std::process::Stdio::null());
    target.contain(&mut shell);
    let shell = Running::spawn(&mut shell);
    let recorder = Running::spawn(
        Command::new(agent_audit_bin())
            .args([
                "record",
                "--cgroup",
                &target.rel,
                "--duration",
                "3",
                "--out",
            ])
            .arg(&out),
    );
    wait_until("the recorder to arm", HANG, || {
        recorder.stderr_so_far().contains("recording 1 target(s)")
    });
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&go, b"").unwrap();
    let done = recorder.finish(HANG, "agent-audit record --duration 3");
    done.assert_code(0);
    let list: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let left = left_cgroup(&list);
    assert_eq!(left.len(), 1, "{list:#}");
    assert_eq!(left[0]["pid"], shell.pid(), "{list:#}");
    assert_eq!(left[0]["program"], "sh", "{list:#}");
    assert!(
        done.stderr.contains("a process left the target's cgroup"),
        "{}",
        done.stderr
    );
    drop(away);
    shell.finish(HANG, "the shell");
}
