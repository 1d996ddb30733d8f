//! Every way `record` and `run` refuse to start: the documented exit code (agent-audit's
//! exit.rs) and a message that tells the user what to do.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::process::{run, Finished, Running};
use agent_audit_tests::{agent_audit_bin, cgroup, is_root, require_root, unique_name};

const TIMEOUT: Duration = Duration::from_secs(30);

// The documented exit codes (agent-audit/src/exit.rs).
const NO_INPUT: i32 = 66;
const UNAVAILABLE: i32 = 69;
const CANT_CREATE: i32 = 73;
const NO_PERM: i32 = 77;
const NOT_FOUND: i32 = 127;
const NOT_EXECUTABLE: i32 = 126;

fn agent_audit(args: &[&str]) -> Finished {
    run(Command::new(agent_audit_bin()).args(args), TIMEOUT)
}

/// A directory anyone may write to, for runs as an unprivileged user.
fn world_writable_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

fn out_in(dir: &Path) -> String {
    dir.join("allowlist.json").display().to_string()
}

#[test]
fn missing_privileges_exit_77_naming_cap_bpf() {
    let dir = world_writable_dir();
    let out = out_in(dir.path());
    let pid = std::process::id().to_string();
    let cases: [&[&str]; 2] = [
        &["record", "--pid", &pid, "--out", &out],
        &["run", "--out", &out, "--", "/bin/true"],
    ];
    if !is_root() {
        for args in cases {
            agent_audit(args)
                .assert_code(NO_PERM)
                .assert_stderr_mentions(&["CAP_BPF"]);
        }
        return;
    }
    // A copy anyone can execute: the workspace may be in a directory `nobody` cannot enter.
    let bin = dir.path().join("agent-audit");
    fs::copy(agent_audit_bin(), &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
    ];
    // Root's uid without any capability must be refused just the same.
    let root_without_caps = ["--inh-caps=-all", "--bounding-set=-all"];
    for setpriv in [&as_nobody[..], &root_without_caps[..]] {
        for args in cases {
            let done = run(
                Command::new("setpriv").args(setpriv).arg(&bin).args(args),
                TIMEOUT,
            );
            done.assert_code(NO_PERM)
                .assert_stderr_mentions(&["CAP_BPF", "CAP_PERFMON"]);
        }
    }
    assert!(
        !Path::new(&out).exists(),
        "an allowlist was written without privileges"
    );
}

#[test]
fn root_missing_cgroup_exit_66_naming_the_v2_mount() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = out_in(dir.path());
    let mount = cgroup::v2_mount().expect("cgroup2 is mounted");
    let missing = format!("/{}", unique_name("agent-audit-no-such-cgroup"));
    agent_audit(&["record", "--cgroup", &missing, "--out", &out])
        .assert_code(NO_INPUT)
        .assert_stderr_mentions(&[&missing, &mount.display().to_string()]);
    // The same cgroup given as an absolute path under the mount.
    let absolute = mount.join(missing.trim_start_matches('/'));
    agent_audit(&[
        "record",
        "--cgroup",
        absolute.to_str().unwrap(),
        "--out",
        &out,
    ])
    .assert_code(NO_INPUT)
    .assert_stderr_mentions(&["does not exist", &mount.display().to_string()]);
    // Ids and pids that name nothing are "not found" too.
    agent_audit(&[
        "record",
        "--cgroup-id",
        "18446744073709551614",
        "--out",
        &out,
    ])
    .assert_code(NO_INPUT)
    .assert_stderr_mentions(&["18446744073709551614"]);
    agent_audit(&["record", "--pid", "2147483646", "--out", &out])
        .assert_code(NO_INPUT)
        .assert_stderr_mentions(&["2147483646"]);
    assert!(!Path::new(&out).exists());
}

#[test]
fn root_cgroup_v1_exit_69_and_a_plain_directory_exit_66() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = out_in(dir.path());
    // A v1 hierarchy where the host has one (hybrid hosts such as this project's CI): the
    // host offers that cgroup only as v1.
    let v1: Vec<PathBuf> = cgroup::mounts_of_type("cgroup")
        .into_iter()
        .take(1)
        .collect();
    for path in &v1 {
        agent_audit(&["record", "--cgroup", path.to_str().unwrap(), "--out", &out])
            .assert_code(UNAVAILABLE)
            .assert_stderr_mentions(&["not a cgroup v2", &path.display().to_string()]);
    }
    // A directory on another filesystem, given directly or by climbing out of the mount, is no
    // cgroup: not found, not "unsupported host".
    let plain = dir.path().join("not-a-cgroup");
    fs::create_dir(&plain).unwrap();
    let escaping = format!("{}/etc", "../".repeat(16));
    for path in [plain.to_str().unwrap(), &escaping] {
        agent_audit(&["record", "--cgroup", path, "--out", &out])
            .assert_code(NO_INPUT)
            .assert_stderr_mentions(&[path]);
    }
    assert!(!Path::new(&out).exists());
}

#[test]
fn root_no_btf_with_attach_tp_btf_exit_69_naming_btf() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = out_in(dir.path());
    let pid = std::process::id().to_string();
    for args in [
        &["record", "--attach", "tp-btf", "--pid", &pid, "--out", &out][..],
        &[
            "run",
            "--attach",
            "tp-btf",
            "--out",
            &out,
            "--",
            "/bin/true",
        ][..],
    ] {
        let done = run(
            Command::new(agent_audit_bin())
                .env("AGENT_AUDIT_BTF_PATH", "/nonexistent")
                .args(args),
            TIMEOUT,
        );
        done.assert_code(UNAVAILABLE)
            .assert_stderr_mentions(&["BTF", "/nonexistent", "raw-tp"]);
    }
    assert!(!Path::new(&out).exists());
}

#[test]
fn root_unknown_container_exit_66_naming_every_engine() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = out_in(dir.path());
    let name = unique_name("agent-audit-no-such-container");
    agent_audit(&["record", "--container", &name, "--out", &out])
        .assert_code(NO_INPUT)
        .assert_stderr_mentions(&[&name, "docker", "podman", "runc"]);
    assert!(!Path::new(&out).exists());
}

/// Output is checked before anything else: before privileges, before the target is resolved,
/// before the program is loaded, and (for `run`) before the command starts.
#[test]
fn unwritable_output_exit_73_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("command-ran");
    agent_audit(&[
        "run",
        "--out",
        "/proc/agent-audit-x.json",
        "--",
        "/bin/busybox",
        "touch",
        marker.to_str().unwrap(),
    ])
    .assert_code(CANT_CREATE)
    .assert_stderr_mentions(&["/proc"]);
    assert!(
        !marker.exists(),
        "the command ran although the output cannot be written"
    );
    // A target that does not exist would be 66 (and without root 77): 73 comes first.
    let missing = format!("/{}", unique_name("agent-audit-no-such-cgroup"));
    agent_audit(&[
        "record",
        "--cgroup",
        &missing,
        "--out",
        "/proc/agent-audit-x.json",
    ])
    .assert_code(CANT_CREATE)
    .assert_stderr_mentions(&["/proc"]);
    agent_audit(&[
        "record",
        "--cgroup",
        &missing,
        "--out-dir",
        "/proc/agent-audit-x",
    ])
    .assert_code(CANT_CREATE)
    .assert_stderr_mentions(&["/proc/agent-audit-x"]);
}

/// A read-only tmpfs, unmounted on drop.
struct ReadOnlyMount(PathBuf);

impl ReadOnlyMount {
    fn new(dir: PathBuf) -> Self {
        fs::create_dir(&dir).unwrap();
        let done = run(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
                .arg(&dir),
            TIMEOUT,
        );
        done.assert_code(0);
        Self(dir)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}

#[test]
fn root_read_only_output_dir_exit_73() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let ro = ReadOnlyMount::new(dir.path().join("ro"));
    let out = ro.0.join("allowlist.json");
    let out = out.to_str().unwrap();
    let pid = std::process::id().to_string();
    // Root passes permission checks, so only really creating a file can tell.
    agent_audit(&["record", "--pid", &pid, "--out", out])
        .assert_code(CANT_CREATE)
        .assert_stderr_mentions(&[ro.0.to_str().unwrap(), "Read-only"]);
    let marker = dir.path().join("command-ran");
    agent_audit(&[
        "run",
        "--out",
        out,
        "--",
        "/bin/busybox",
        "touch",
        marker.to_str().unwrap(),
    ])
    .assert_code(CANT_CREATE);
    assert!(
        !marker.exists(),
        "the command ran although the output cannot be written"
    );
}

/// `run` of a command that cannot start: 127/126 like a shell, and its cgroup is removed.
#[test]
fn root_run_of_a_missing_or_non_executable_command_exit_127_or_126() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = out_in(dir.path());
    let mount = cgroup::v2_mount().unwrap();
    let own = cgroup::v2_path_of(std::process::id()).unwrap();
    let missing = unique_name("agent-audit-no-such-command");
    let not_executable = dir.path().join("data.txt");
    fs::write(&not_executable, "not a program").unwrap();
    let not_executable = not_executable.to_str().unwrap();
    for (command, code) in [
        ("/nonexistent/agent-audit-command", NOT_FOUND),
        (missing.as_str(), NOT_FOUND),
        (not_executable, NOT_EXECUTABLE),
    ] {
        let audit = Running::spawn(
            Command::new(agent_audit_bin()).args(["run", "--out", &out, "--", command]),
        );
        let run_cgroup = mount
            .join(own.trim_start_matches('/'))
            .join(format!("agent-audit-run-{}", audit.pid()));
        audit
            .finish(TIMEOUT, "agent-audit run")
            .assert_code(code)
            .assert_stderr_mentions(&["cannot run", command]);
        assert!(
            !run_cgroup.exists(),
            "{} was left behind",
            run_cgroup.display()
        );
    }
}
