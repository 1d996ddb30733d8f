//! The sidecar image (`cargo xtask image`) run with the documented line: it records a sibling
//! container started after it armed, from the runtime's first syscall; `profile`, `check` and
//! `report` run in the image on mounted files; the sibling then runs under the profile with
//! `docker run --security-opt seccomp=…`, and a call it never made is refused. Without one of
//! the line's options the error names the missing one.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::container::docker_busybox_image;
use agent_audit_tests::image::{sidecar_image, sidecar_options, skip_without_docker};
use agent_audit_tests::process::{run, wait_until, Finished, Running};
use agent_audit_tests::{require_root, unique_name};

const TIMEOUT: Duration = Duration::from_secs(90);
/// What `record --wait` prints once armed.
const ARMED: &str = "armed for new cgroups";
/// The sibling's workload: ls (getdents64), cat (sendfile), a pipe into wc.
const WORKLOAD: &str = "ls / > /dev/null && cat /etc/passwd | wc -l && echo sibling-ok";

/// Removes a container by name on drop.
struct Rm(String);

impl Drop for Rm {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "--force", &self.0])
            .output();
    }
}

/// `docker run --rm [opts] IMAGE args…`, to completion.
fn docker_run(opts: &[String], image: &str, args: &[&str]) -> Finished {
    run(
        Command::new("docker")
            .args(["run", "--rm"])
            .args(opts)
            .arg(image)
            .args(args),
        TIMEOUT,
    )
}

/// `agent-audit ARGS` in the sidecar image with `dir` mounted at /out (no privileges: these
/// subcommands only read and write files).
fn in_image(dir: &Path, args: &[&str]) -> Finished {
    docker_run(
        &["-v".into(), format!("{}:/out", dir.display())],
        sidecar_image(),
        args,
    )
}

#[test]
fn root_sidecar_image_records_a_sibling_from_its_first_syscall_and_its_profile_runs_it() {
    require_root();
    if skip_without_docker("root_sidecar_image_records_a_sibling") {
        return;
    }
    let image = sidecar_image();
    let busybox = docker_busybox_image();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("audit");
    fs::create_dir(&out).unwrap();
    let sibling = unique_name("aa-sibling");
    let sidecar = format!("{sibling}-sidecar");
    let (_rm_sibling, _rm_sidecar) = (Rm(sibling.clone()), Rm(sidecar.clone()));
    let allowlist_in_image = format!("/out/{sibling}.allowlist.json");

    // The documented line (docs/containers-and-kubernetes.md; with a name, so that a failed
    // test can remove it).
    let mut recorder = Running::spawn(
        Command::new("docker")
            .args(["run", "--rm", "--name", &sidecar])
            .args(sidecar_options(&out))
            .arg(image)
            .args(["record", "--wait", "--container", &sibling, "--out"])
            .arg(&allowlist_in_image),
    );
    wait_until("the sidecar's readiness line", TIMEOUT, || {
        recorder.has_exited() || recorder.stderr_so_far().contains(ARMED)
    });
    assert!(
        !recorder.has_exited(),
        "the sidecar exited before it was armed: {:#?}",
        recorder.finish(TIMEOUT, "sidecar")
    );

    let network_none = ["--network".to_string(), "none".to_string()];
    let mut opts = vec!["--name".to_string(), sibling.clone()];
    opts.extend(network_none.clone());
    let first = docker_run(&opts, busybox, &["sh", "-c", WORKLOAD]);
    first.assert_code(0);
    assert!(first.stdout.contains("sibling-ok"), "{first:#?}");
    // The sibling's cgroup is gone: the sidecar writes the final file and exits by itself.
    recorder.finish(TIMEOUT, "the sidecar").assert_code(0);

    let list = Allowlist::read(&out.join(format!("{sibling}.allowlist.json")));
    let dump = format!("{:#}", list.0);
    assert!(list.complete(), "{dump}");
    assert_eq!(list.target()["container"]["name"], sibling.as_str());
    // From its first syscall: runc's init (before the entrypoint's execve) was recorded.
    let init = list.names_in("runtime_init");
    for call in ["mount", "pivot_root", "execve"] {
        assert!(init.contains(call), "{call} not in runtime_init:\n{dump}");
    }
    list.assert_has(&["execve", "getdents64", "pipe2", "wait4", "write"]);

    // Every other subcommand in the image, on the mounted files.
    let allowlist = format!("/out/{sibling}.allowlist.json");
    in_image(
        &out,
        &[
            "profile",
            &allowlist,
            "-o",
            "/out/profile.json",
            "--rationale",
            "/out/rationale.md",
        ],
    )
    .assert_code(0);
    in_image(&out, &["check", "/out/profile.json"]).assert_code(0);
    in_image(
        &out,
        &[
            "report",
            &allowlist,
            "--profile",
            "/out/profile.json",
            "--format",
            "md",
            "-o",
            "/out/report.md",
        ],
    )
    .assert_code(0);
    in_image(
        &out,
        &[
            "diff",
            "--fail-on",
            "added",
            "/out/profile.json",
            &allowlist,
        ],
    )
    .assert_code(0);
    let report = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("getdents64"), "{report}");

    // The sibling under the generated profile: the same workload runs; a call it never made
    // (mkdir) is refused, so the profile is really in force.
    let mut opts = network_none.to_vec();
    opts.push("--security-opt".into());
    opts.push(format!("seccomp={}", out.join("profile.json").display()));
    let confined = docker_run(&opts, busybox, &["sh", "-c", WORKLOAD]);
    confined.assert_code(0);
    assert!(confined.stdout.contains("sibling-ok"), "{confined:#?}");
    let refused = docker_run(&opts, busybox, &["sh", "-c", "mkdir /tmp/new-dir"]);
    assert_ne!(
        refused.code(),
        0,
        "mkdir ran under the profile: {refused:#?}"
    );
    assert!(
        refused.stderr.contains("Operation not permitted"),
        "{refused:#?}"
    );
}

/// Each option of the line, left out, is named by the error (exit code as documented).
#[test]
fn root_sidecar_image_names_the_option_that_is_missing() {
    require_root();
    if skip_without_docker("root_sidecar_image_names_the_option_that_is_missing") {
        return;
    }
    let image = sidecar_image();
    let dir = tempfile::tempdir().unwrap();
    let full = sidecar_options(dir.path());
    let without = |leave_out: &[&str]| -> Vec<String> {
        let mut opts = Vec::new();
        let mut it = full.iter();
        while let Some(o) = it.next() {
            if o == "-v" || o == "--cap-add" {
                let value = it.next().unwrap();
                if !leave_out.contains(&value.as_str()) {
                    opts.extend([o.clone(), value.clone()]);
                }
            } else if !leave_out.contains(&o.as_str()) {
                opts.push(o.clone());
            }
        }
        opts
    };
    let record = [
        "record",
        "--wait",
        "--container",
        "x",
        "--out",
        "/out/x.json",
    ];
    for (leave_out, code, advice) in [
        (
            "/sys/fs/cgroup:/sys/fs/cgroup",
            69,
            "-v /sys/fs/cgroup:/sys/fs/cgroup",
        ),
        (
            "/var/run/docker.sock:/var/run/docker.sock",
            66,
            "-v /var/run/docker.sock:/var/run/docker.sock",
        ),
        ("SYS_ADMIN", 77, "--cap-add SYS_ADMIN"),
    ] {
        let done = docker_run(&without(&[leave_out]), image, &record);
        done.assert_code(code)
            .assert_stderr_mentions(&["agent-audit: hint:", advice]);
    }
    // A running container found by the engine but not in our pid namespace.
    let running = unique_name("aa-running");
    let _rm = Rm(running.clone());
    let busybox = docker_busybox_image();
    run(
        Command::new("docker")
            .args([
                "run",
                "-d",
                "--network",
                "none",
                "--name",
                &running,
                busybox,
            ])
            .args(["sleep", "60"]),
        TIMEOUT,
    )
    .assert_code(0);
    let done = docker_run(
        &without(&["--pid=host"]),
        image,
        &[
            "record",
            "--container",
            &running,
            "--out",
            "/out/r.json",
            "--duration",
            "1",
        ],
    );
    done.assert_code(66)
        .assert_stderr_mentions(&["agent-audit: hint:", "--pid=host"]);
}
