//! `agent-audit audit` on real programs no one here wrote (CPython with threads and
//! multiprocessing, Node with a TCP server and a child process, git), with the default 3 runs;
//! then each is run 3 more times under `verify` with the generated profile, and nothing may be
//! denied. Also a Docker container audited start by start and verified on a copy of itself
//! (the Debian container of the issue is in `debian_container.rs`), and the usage errors.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::container::docker_busybox_image;
use agent_audit_tests::process::{run, run_ok};
use agent_audit_tests::{agent_audit_bin, require_root, unique_name, workspace_root};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(300);
const FILES: [&str; 7] = [
    "profile.json",
    "rationale.md",
    "verify.json",
    "report.html",
    "report.md",
    "report.json",
    "allowlist-3.json",
];

fn workload(name: &str) -> String {
    workspace_root()
        .join("tests/data/workloads")
        .join(name)
        .display()
        .to_string()
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Nothing in a verify result was denied, but the refusals the profile makes on purpose so
/// that the libc falls back (`clone3` → ENOSYS, then `clone`, which is allowed).
fn assert_nothing_denied(verify: &Value) {
    for d in verify["denied"].as_array().expect("denied is a list") {
        assert!(
            d["fallback"] == true && d["name"] == "clone3",
            "denied: {d}\n{verify:#}"
        );
    }
}

/// Audits `argv` with the defaults into a fresh directory, checks what it wrote, then runs
/// `argv` 3 more times under the profile: nothing may be denied, and it must succeed.
/// Audits `argv`, checks the audit's files and its exit code against its verdict, then verifies
/// the profile three more times; returns `verify.json` of the audit.
fn audit_then_verify_three_times(argv: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("audit");
    let done = run(
        Command::new(agent_audit_bin())
            .arg("audit")
            .arg("--out-dir")
            .arg(&out)
            .arg("--")
            .args(argv),
        TIMEOUT,
    );
    for file in FILES {
        assert!(out.join(file).exists(), "no {file}:\n{}", done.stderr);
    }
    assert!(!out.join("allowlist-4.json").exists(), "3 runs by default");
    for k in 1..=3 {
        let list = Allowlist::read(&out.join(format!("allowlist-{k}.json")));
        assert_eq!(list.target()["exit_status"], 0, "run {k}: {:#}", list.0);
        for row in list.syscalls() {
            for p in row["programs"].as_array().into_iter().flatten() {
                assert_ne!(p["comm"], "agent-audit", "run {k}: {row}");
            }
        }
    }

    let verify = json(&out.join("verify.json"));
    assert_nothing_denied(&verify);
    assert_eq!(verify["exit_status"], 0, "{verify:#}");
    let report = json(&out.join("report.json"));
    let convergence = &report["summary"]["convergence"];
    assert_eq!(
        convergence["runs"].as_array().unwrap().len(),
        3,
        "{convergence:#}"
    );
    // The report shows a failed verification as a finding, and the exit code follows both.
    let verify_failed = !report["findings"]["verify_failed"]
        .as_array()
        .unwrap()
        .is_empty();
    assert_eq!(verify_failed, verify["passed"] == false, "{report:#}");
    assert_eq!(report["summary"]["verify_passed"], verify["passed"]);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains(convergence["line"].as_str().unwrap()), "{md}");
    let clean = verify["passed"] == true && md.contains("**0 finding(s)**");
    assert_eq!(done.code(), if clean { 0 } else { 1 }, "{}", done.stderr);

    for i in 1..=3 {
        let cwd = tempfile::tempdir().unwrap();
        let result = cwd.path().join("verify.json");
        let again = run(
            Command::new(agent_audit_bin())
                .current_dir(cwd.path())
                .arg("verify")
                .arg("--profile")
                .arg(out.join("profile.json"))
                .arg("--out")
                .arg(&result)
                .arg("--")
                .args(argv),
            TIMEOUT,
        );
        let v = json(&result);
        assert_nothing_denied(&v);
        assert_eq!(v["exit_status"], 0, "verify {i}: {v:#}\n{}", again.stderr);
        again.assert_code(0);
    }
    verify
}

#[test]
fn root_audit_python_threads_and_multiprocessing() {
    require_root();
    // Debian's CPython, not a version manager's shim script.
    audit_then_verify_three_times(&["/usr/bin/python3", &workload("threads_and_processes.py")]);
}

#[test]
fn root_audit_node_tcp_server_worker_and_child() {
    require_root();
    audit_then_verify_three_times(&["node", &workload("tcp_and_child.js")]);
}

#[test]
fn root_audit_git_clone_into_the_fresh_working_directory() {
    require_root();
    let src = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        run_ok(
            Command::new("git").arg("-C").arg(src.path()).args(args),
            TIMEOUT,
        )
    };
    git(&["init", "-q"]);
    std::fs::write(src.path().join("README"), "audited\n").unwrap();
    git(&["add", "README"]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-qm",
        "one",
    ]);
    let url = format!("file://{}", src.path().display());
    // A relative destination: each run gets a fresh working directory, so it never exists.
    audit_then_verify_three_times(&["git", "clone", "--quiet", &url, "clone"]);
}

#[test]
fn root_audit_of_a_shell_that_forks_only_with_vfork_passes() {
    require_root();
    // Debian's dash runs `/bin/true` through vfork, never clone: the profile allows vfork and
    // refuses clone, and the must-work fork probe (a clone) has nothing to ask for. It was a
    // false FAIL ("fork (clone SIGCHLD) FAIL, errno 1") until the probe looked at clone only.
    let verify = audit_then_verify_three_times(&[
        "/bin/sh",
        "-c",
        "for i in 1 2 3; do /bin/true; done; id -u",
    ]);
    assert_eq!(verify["passed"], true, "{verify:#}");
}

#[test]
fn root_audit_of_a_shell_whose_wait_finds_its_child_running_only_later_passes() {
    require_root();
    // dash's `wait` calls rt_sigsuspend only while the child still runs. The first 3 runs (the
    // recorded ones) find it gone; every later run (verify, then 3 more) finds it running,
    // as a slower server did under the audit's verify: refused, rt_sigsuspend made dash spin
    // until verify's timeout. It is a timing-dependent allowance once wait4 is recorded.
    let counter = tempfile::tempdir().unwrap();
    let runs = counter.path().join("runs");
    let verify = audit_then_verify_three_times(&[
        "/bin/dash",
        "-c",
        r#"n=$(cat "$1" 2>/dev/null || echo 0); echo $((n + 1)) > "$1"
        if [ "$n" -lt 3 ]; then sleep 0.05 & sleep 0.3; wait; else sleep 0.3 & wait; fi"#,
        "sh",
        runs.to_str().unwrap(),
    ]);
    assert_eq!(verify["passed"], true, "{verify:#}");
    let started = std::fs::read_to_string(&runs).unwrap();
    assert_eq!(
        started.trim(),
        "7",
        "3 recorded runs, verify, 3 more verify runs"
    );
}

#[test]
fn root_audit_a_container_start_by_start() {
    require_root();
    let name = unique_name("aa-audit");
    let image = docker_busybox_image();
    // Each start counts itself in the mounted directory; from the third on (the verify run
    // after 2 recorded runs) it also sleeps, a call no recorded run made: verify must see the
    // profile refuse it.
    let sync = tempfile::tempdir().unwrap();
    let volume = format!("{}:/sync", sync.path().display());
    run_ok(
        Command::new("docker").args([
            "create",
            "--name",
            &name,
            "--network",
            "none",
            "--volume",
            &volume,
            image,
            "sh",
            "-c",
            "n=$(cat /sync/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /sync/n; \
             if [ $n -gt 2 ]; then sleep 0.01; fi; echo started $n",
        ]),
        TIMEOUT,
    );
    let (out, done) = agent_audit_tests::container::audit_container_twice(&name, TIMEOUT);
    for k in 1..=2 {
        let list = Allowlist::read(&out.path().join(format!("allowlist-{k}.json")));
        assert!(list.complete(), "{:#}", list.0);
        // Recorded from its first syscall: the runtime's init is there, kept apart.
        assert!(!list.rows("runtime_init").is_empty(), "{:#}", list.0);
        list.assert_has(&["execve", "write"]);
    }
    // The verify run was the third start (a copy of the container, with the profile). The
    // profile refused a call: whether the container's own configuration refuses it too came
    // from the recordings' refusal counts (it does not), without a fourth start.
    assert_eq!(
        std::fs::read_to_string(sync.path().join("n")).unwrap(),
        "3\n"
    );
    let verify = json(&out.path().join("verify.json"));
    assert_eq!(verify["passed"], false, "{verify:#}\n{}", done.stderr);
    assert_eq!(verify["exit_status"], 0, "{verify:#}");
    let denied: Vec<&str> = verify["denied"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert!(
        denied.iter().any(|n| n.contains("nanosleep")),
        "{verify:#}\n{}",
        done.stderr
    );
    // Nothing else: the calls runc's init was making when it joined the cgroup are no denials.
    assert_eq!(denied.len(), 1, "{verify:#}");
    assert!(
        verify["denied"][0].get("refused_before").is_none(),
        "{verify:#}"
    );
    assert!(
        verify["container"].get("baseline_container").is_none(),
        "{verify:#}"
    );
    assert_eq!(
        verify["container"]["refused_before_from_recordings"], true,
        "{verify:#}"
    );
    assert_eq!(
        verify["container"]["probes"],
        "host-with-container-capabilities"
    );
    let report = json(&out.path().join("report.json"));
    assert_eq!(
        report["summary"]["convergence"]["runs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(report["summary"]["verify_passed"], false);
    // The denial is the report's first finding.
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    let findings = &md[md.find("### Findings").unwrap()..];
    let first = findings.lines().find(|l| l.starts_with("**")).unwrap();
    assert_eq!(first, "**Verify FAILED under the profile**", "{md}");
    assert!(findings.contains("nanosleep"), "{md}");
    done.assert_code(1);
}

/// A container run under a seccomp profile (Docker's default, named explicitly) whose
/// workload calls `mount` without CAP_SYS_ADMIN: the profile in force refuses it at every
/// start. The generated profile denies it too (dangerous), and verify takes "the container's
/// own configuration refuses it too" from the recordings' refusal counts: no baseline copy
/// runs, so the container starts 3 times (2 recorded runs, the verify copy).
#[test]
fn root_audit_of_a_container_under_a_profile_takes_its_refusals_from_the_recordings() {
    require_root();
    let name = unique_name("refusals-audit");
    let sync = tempfile::tempdir().unwrap();
    let volume = format!("{}:/sync", sync.path().display());
    let profile = workspace_root().join("tests/data/profiles/docker-default.json");
    run_ok(
        Command::new("docker").args([
            "create",
            "--name",
            &name,
            "--network",
            "none",
            "--security-opt",
            &format!("seccomp={}", profile.display()),
            "--volume",
            &volume,
            docker_busybox_image(),
            "sh",
            "-c",
            // Every start makes the same calls (no read of a count that is absent only at
            // first): appending a line counts it.
            "echo started >> /sync/starts; mount -t tmpfs none /mnt 2>/dev/null; echo started",
        ]),
        TIMEOUT,
    );
    let (out, done) = agent_audit_tests::container::audit_container_twice(&name, TIMEOUT);
    for k in 1..=2 {
        let list = Allowlist::read(&out.path().join(format!("allowlist-{k}.json")));
        assert_eq!(list.0["recorder"]["refusals"], true, "{:#}", list.0);
        let mount = list
            .rows("refused")
            .iter()
            .find(|r| r["name"] == "mount")
            .unwrap_or_else(|| panic!("mount refused while recorded: {:#}", list.0));
        assert_eq!(mount["count"], 1, "{:#}", list.0);
    }
    let starts = std::fs::read_to_string(sync.path().join("starts")).unwrap();
    assert_eq!(
        starts.lines().count(),
        3,
        "2 recorded starts and the verify copy, no baseline copy\n{}",
        done.stderr
    );
    let verify = json(&out.path().join("verify.json"));
    let mount = verify["denied"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "mount")
        .unwrap_or_else(|| panic!("the profile denies mount: {verify:#}"));
    assert_eq!(mount["refused_before"], true, "{verify:#}");
    assert_eq!(
        verify["container"]["refused_before_from_recordings"], true,
        "{verify:#}"
    );
    assert!(
        verify["container"].get("baseline_container").is_none(),
        "{verify:#}"
    );
    assert_eq!(verify["passed"], true, "{verify:#}\n{}", done.stderr);
    done.assert_code(0);
}

#[test]
fn root_audit_refuses_a_running_or_unknown_container() {
    require_root();
    let out = tempfile::tempdir().unwrap();
    let missing = unique_name("aa-no-such");
    run(
        Command::new(agent_audit_bin())
            .args(["audit", "--container", &missing, "--out-dir"])
            .arg(out.path()),
        TIMEOUT,
    )
    .assert_code(66)
    .assert_stderr_mentions(&[&missing]);
    let profile = workspace_root().join("tests/data/profiles/docker-default.json");
    run(
        Command::new(agent_audit_bin())
            .arg("verify")
            .arg("--profile")
            .arg(&profile)
            .args(["--docker-container", &missing]),
        TIMEOUT,
    )
    .assert_code(66)
    .assert_stderr_mentions(&[&missing]);

    // Docker applies no seccomp profile to a privileged container: refused before any run.
    let privileged = unique_name("aa-privileged");
    run_ok(
        Command::new("docker").args([
            "create",
            "--name",
            &privileged,
            "--privileged",
            "--network",
            "none",
            docker_busybox_image(),
            "true",
        ]),
        TIMEOUT,
    );
    let done = run(
        Command::new(agent_audit_bin())
            .args(["audit", "--container", &privileged, "--out-dir"])
            .arg(out.path()),
        TIMEOUT,
    );
    let _ = Command::new("docker")
        .args(["rm", "--force", &privileged])
        .output();
    done.assert_code(2)
        .assert_stderr_mentions(&[&privileged, "privileged"]);
    assert!(
        !out.path().join("allowlist-1.json").exists(),
        "no run recorded"
    );
}

#[test]
fn audit_usage_errors_exit_2_before_anything_runs() {
    let out = tempfile::tempdir().unwrap();
    let audit = |args: &[&str]| {
        run(
            Command::new(agent_audit_bin())
                .arg("audit")
                .arg("--out-dir")
                .arg(out.path())
                .args(args),
            TIMEOUT,
        )
    };
    audit(&["--runs", "0", "--", "true"])
        .assert_code(2)
        .assert_stderr_mentions(&["--runs"]);
    audit(&["--until-stable", "3", "--max-runs", "3", "--", "true"])
        .assert_code(2)
        .assert_stderr_mentions(&["--max-runs 3"]);
    audit(&["--runs", "2", "--until-stable", "1", "--", "true"]).assert_code(2);
    audit(&[]).assert_code(2);
    assert!(
        std::fs::read_dir(out.path()).unwrap().next().is_none(),
        "nothing written"
    );
}
