//! Where a container's cgroup appears is asked of its engine. Podman for real:
//! Debian's podman with runc, its service on a socket of the test's own, the Debian agent
//! container of `debian_container.rs` imported into Podman's store and audited through that
//! socket (`audit --container --engine-socket`), its profile then enforced by `podman run`.
//! The systemd cgroup driver, which this host cannot run: an engine API serving answers
//! recorded from Docker and Podman here (tests/data/engines/) with the systemd driver's
//! `CgroupDriver`, and cgroup trees laid out as each engine lays them under a slice of the
//! test's own, with real processes in them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::armed::ArmedRecorder;
use agent_audit_tests::cgroup::ScratchCgroup;
use agent_audit_tests::engine::{
    podman_busybox_image, podman_debian_image, recorded_answer, FakeEngine, PodmanService,
};
use agent_audit_tests::process::{run, run_ok};
use agent_audit_tests::{agent_audit_bin, require_root, unique_name, workspace_root};
use serde_json::Value;

/// An audit is 4 starts of a container running git, CPython and Node.
const TIMEOUT: Duration = Duration::from_secs(600);
/// gh-aw-firewall's agent container (`src/docker-manager.ts`): `cap_drop`.
const SEED_CAP_DROPS: &[&str] = &["NET_RAW", "SYS_PTRACE", "SYS_MODULE", "SYS_RAWIO", "MKNOD"];
const ID: &str = "5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e";
const OTHER_ID: &str = "0dd0dd0dd0dd0dd0dd0dd0dd0dd0dd0dd0dd0dd0dd0dd0dd0dd0dd0dd0dd0dd0";

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Podman container, removed on drop.
struct PodmanContainer<'a> {
    service: &'a PodmanService,
    name: String,
}

impl Drop for PodmanContainer<'_> {
    fn drop(&mut self) {
        let _ = self
            .service
            .podman()
            .args(["rm", "--force", &self.name])
            .output();
    }
}

/// The seed project's agent container options (as `debian_container.rs` gives Docker), for
/// `podman create` and `podman run`.
fn agent_options() -> Vec<String> {
    let workloads = workspace_root().join("tests/data/workloads");
    let mut options: Vec<String> = [
        "--network",
        "none",
        "--user",
        "65534:65534",
        "--env",
        "HOME=/tmp",
        "--workdir",
        "/tmp",
        "--security-opt",
        "no-new-privileges",
    ]
    .map(String::from)
    .to_vec();
    for cap in SEED_CAP_DROPS {
        options.extend(["--cap-drop".to_string(), cap.to_string()]);
    }
    options.push("--volume".into());
    options.push(format!("{}:/workloads:ro", workloads.display()));
    options
}

const AGENT_COMMAND: [&str; 2] = ["python3", "/workloads/agent_task.py"];

/// Nothing denied but `clone3`'s ENOSYS fallback and what the container's own seccomp
/// configuration refuses too (Podman's default profile).
fn assert_nothing_denied(verify: &Value) {
    for d in verify["denied"].as_array().expect("denied is a list") {
        let fallback = d["fallback"] == true && d["name"] == "clone3";
        let refused_before = d["refused_before"] == true
            && (verify["container"]["baseline_container"].is_string()
                || verify["container"]["refused_before_from_recordings"] == true);
        assert!(fallback || refused_before, "denied: {d}\n{verify:#}");
    }
}

#[test]
fn root_podman_audit_of_the_debian_agent_container_passes_and_its_profile_runs_3_of_3() {
    require_root();
    let service = PodmanService::start();
    let image = podman_debian_image(&service);
    let name = unique_name("podman-debian");
    let mut create = service.podman();
    create.args(["create", "--name", &name]);
    create.args(agent_options()).arg(&image).args(AGENT_COMMAND);
    let id = run_ok(&mut create, TIMEOUT).trim().to_string();
    let _container = PodmanContainer {
        service: &service,
        name: name.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("audit");
    let done = run(
        Command::new(agent_audit_bin())
            .env_remove("DOCKER_HOST")
            .args(["audit", "--container", &name, "--engine-socket"])
            .arg(&service.socket)
            .arg("--out-dir")
            .arg(&out),
        TIMEOUT,
    );
    for k in 1..=3 {
        let path = out.join(format!("allowlist-{k}.json"));
        assert!(path.exists(), "no {}:\n{}", path.display(), done.stderr);
        let list = Allowlist::read(&path);
        assert!(list.complete(), "run {k}: {:#}", list.0);
        list.assert_has(&["execve", "clone", "socket", "connect"]);
        let target = list.target();
        assert_eq!(
            target["cgroup_path"],
            format!("/libpod_parent/libpod-{id}"),
            "{target:#}"
        );
        assert_eq!(target["container"]["engine"], "podman", "{target:#}");
        assert_eq!(target["container"]["id"], id.as_str(), "{target:#}");
    }

    let verify = json(&out.join("verify.json"));
    assert_nothing_denied(&verify);
    assert_eq!(verify["exit_status"], 0, "{verify:#}\n{}", done.stderr);
    assert_eq!(verify["passed"], true, "{verify:#}\n{}", done.stderr);
    let caps = verify["container"]["capabilities"].as_str().unwrap();
    for cap in SEED_CAP_DROPS {
        assert!(!caps.contains(&format!("CAP_{cap}")), "{caps}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("**0 finding(s)**"), "{md}");
    done.assert_code(0);
    let copies = run_ok(
        service.podman().args([
            "ps",
            "--all",
            "--quiet",
            "--filter",
            &format!("label=agent-audit.verify-of={name}"),
        ]),
        TIMEOUT,
    );
    assert_eq!(copies.trim(), "", "verify copies left behind");

    // The profile as Podman enforces it: 3 of 3 runs of the agent task succeed.
    let profile = out.join("profile.json");
    for i in 1..=3 {
        let mut enforced = service.podman();
        enforced.args(["run", "--rm"]).args(agent_options());
        enforced
            .arg("--security-opt")
            .arg(format!("seccomp={}", profile.display()));
        enforced.arg(&image).args(AGENT_COMMAND);
        let ran = run(&mut enforced, TIMEOUT);
        assert_eq!(
            ran.code(),
            0,
            "podman run {i} of 3 under the profile: {ran:#?}"
        );
    }
}

/// The first failure: `record --wait --container` through Podman's socket armed for
/// `docker/*` and never saw the container. Armed before the container exists, the recorder asks
/// Podman where its containers' cgroups appear (`libpod_parent/libpod-*` with cgroupfs) and
/// keeps the one that is NAME's, from its first syscall.
#[test]
fn root_podman_record_wait_container_created_after_arming() {
    require_root();
    let service = PodmanService::start();
    let image = podman_busybox_image(&service);
    let name = unique_name("podman-wait");
    let _container = PodmanContainer {
        service: &service,
        name: name.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("allowlist.json");
    let recorder = ArmedRecorder::start(
        &[
            "--container",
            &name,
            "--engine-socket",
            service.socket.to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
        ],
        TIMEOUT,
    );
    let mut podman_run = service.podman();
    podman_run.args(["run", "--name", &name, "--network", "none", &image]);
    podman_run.args([
        "sh",
        "-c",
        "ls / > /dev/null && cat /etc/passwd > /dev/null",
    ]);
    run_ok(&mut podman_run, TIMEOUT);
    let id = run_ok(
        service
            .podman()
            .args(["inspect", "--format", "{{.Id}}", &name]),
        TIMEOUT,
    );
    recorder.finish(TIMEOUT);

    let list = Allowlist::read(&file);
    let dump = format!("{:#}", list.0);
    assert!(list.complete(), "{dump}");
    let target = list.target();
    assert_eq!(
        target["cgroup_path"],
        format!("/libpod_parent/libpod-{}", id.trim()),
        "{dump}"
    );
    assert_eq!(target["container"]["engine"], "podman", "{dump}");
    // From its first syscall: runc's init is there, kept apart from the workload.
    let init = list.names_in("runtime_init");
    for call in ["mount", "pivot_root", "execve"] {
        assert!(init.contains(call), "{call} not in runtime_init:\n{dump}");
    }
    list.assert_has(&["getdents64", "exit_group"]);
}

/// One engine's systemd layout: recorded answers with the systemd driver, a container whose
/// cgroup parent is a slice of the test's own, and what the engine creates in that slice.
struct SystemdCase {
    /// The recorded answers' prefix in tests/data/engines.
    recorded: &'static str,
    /// `container.engine` in the allowlist.
    engine: &'static str,
    /// The container's scope in its slice.
    scope: String,
    /// Another scope the engine creates there first, whose name holds an id too.
    decoy: String,
}

fn fake_systemd_engine(case: &SystemdCase, name: &str, slice: &str) -> FakeEngine {
    let mut info = recorded_answer(&format!("{}.info", case.recorded));
    info["CgroupDriver"] = Value::from("systemd");
    let mut inspect = recorded_answer(&format!("{}.inspect", case.recorded));
    inspect["Id"] = Value::from(ID);
    inspect["Name"] = Value::from(format!("/{name}"));
    inspect["HostConfig"]["CgroupParent"] = Value::from(slice);
    FakeEngine::serve(vec![
        (
            "/version".into(),
            recorded_answer(&format!("{}.version", case.recorded)),
        ),
        ("/info".into(), info),
        (format!("/containers/{name}/json"), inspect),
    ])
}

/// Runs `script` with busybox inside `cgroup`.
fn busybox_in(cgroup: &ScratchCgroup, script: &str) {
    let mut cmd = Command::new("/bin/busybox");
    cmd.args(["sh", "-c", script]);
    cgroup.contain(&mut cmd);
    run_ok(&mut cmd, Duration::from_secs(60));
}

#[test]
fn root_record_wait_container_on_the_systemd_layouts_of_docker_and_podman() {
    require_root();
    let cases = [
        SystemdCase {
            recorded: "docker-20.10-cgroupfs",
            engine: "docker",
            scope: format!("docker-{ID}.scope"),
            decoy: format!("docker-{OTHER_ID}.scope"),
        },
        SystemdCase {
            recorded: "podman-4.3-cgroupfs",
            engine: "podman",
            scope: format!("libpod-{ID}.scope"),
            // Podman's systemd driver puts conmon in a scope of its own next to the container's.
            decoy: format!("libpod-conmon-{ID}.scope"),
        },
    ];
    for case in &cases {
        // No dash: a dash would nest the slice (a-b.slice lives in a.slice).
        let slice_name = format!("{}.slice", unique_name("aa_engine").replace('-', "_"));
        let slice = ScratchCgroup::at(&slice_name);
        let name = unique_name("aa-systemd");
        let engine = fake_systemd_engine(case, &name, &slice_name);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("allowlist.json");
        let recorder = ArmedRecorder::start(
            &[
                "--container",
                &name,
                "--engine-socket",
                engine.socket.to_str().unwrap(),
                "--interval",
                "0.2",
                "--out",
                file.to_str().unwrap(),
            ],
            TIMEOUT,
        );
        let decoy = ScratchCgroup::at(&format!("{}/{}", slice.rel, case.decoy));
        // A call the container's workload never makes (not `sync`, which waits for every dirty
        // page on a busy host).
        busybox_in(&decoy, "usleep 1000");
        let container = ScratchCgroup::at(&format!("{}/{}", slice.rel, case.scope));
        busybox_in(
            &container,
            "ls / > /dev/null && cat /etc/hostname > /dev/null",
        );
        drop(container);
        recorder.finish(TIMEOUT);

        let list = Allowlist::read(&file);
        let dump = format!("{}: {:#}", case.engine, list.0);
        assert!(list.complete(), "{dump}");
        let target = list.target();
        assert_eq!(
            target["cgroup_path"],
            format!("{}/{}", slice.rel, case.scope),
            "{dump}"
        );
        assert_eq!(target["container"]["engine"], case.engine, "{dump}");
        assert_eq!(target["container"]["id"], ID, "{dump}");
        list.assert_has(&["execve", "getdents64", "exit_group"]);
        let names = list.names();
        assert!(
            !names.contains("nanosleep") && !names.contains("clock_nanosleep"),
            "the decoy's calls: {dump}"
        );
        drop(decoy);
    }
}

#[test]
fn root_an_engine_that_cannot_say_where_its_cgroups_are_is_named_exit_69() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("allowlist.json");
    let record = |socket: &Path| {
        run(
            Command::new(agent_audit_bin())
                .args(["record", "--wait", "--container", "aa-never-created"])
                .arg("--engine-socket")
                .arg(socket)
                .arg("--out")
                .arg(&file),
            TIMEOUT,
        )
    };
    let silent = dir.path().join("nobody-listens.sock");
    let done = record(&silent);
    done.assert_code(69)
        .assert_stderr_mentions(&[&silent.display().to_string()]);

    let mut no_driver = recorded_answer("podman-4.3-cgroupfs.info");
    no_driver.as_object_mut().unwrap().remove("CgroupDriver");
    let engine = FakeEngine::serve(vec![
        (
            "/version".into(),
            recorded_answer("podman-4.3-cgroupfs.version"),
        ),
        ("/info".into(), no_driver),
    ]);
    let done = record(&engine.socket);
    done.assert_code(69).assert_stderr_mentions(&[
        &engine.socket.display().to_string(),
        "GET /info without a CgroupDriver",
        "GET /version",
        "--cgroup-glob",
    ]);
    assert!(!file.exists(), "no allowlist without a recording");
}
