//! `record` against real containers: runc (by cgroup path and by pid) and Docker (by name).
//! The workload waits for the recorder to attach before it execs anything, and the recorder
//! must exit 0 by itself when the container ends.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::container::{
    busybox_rootfs, sync_dir, DockerContainer, RuncContainer, WORKLOAD,
};
use agent_audit_tests::process::{wait_until, Running};
use agent_audit_tests::{agent_audit_bin, cgroup, require_root, unique_name};

/// Generous: on a loaded CI machine a container start plus a debug-build recorder can be slow,
/// and a failing test is better than a hung one.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Starts `record <target_args> --interval 0.2 --out out`, waits until its first snapshot
/// exists (the target is attached by then), lets the workload go, and waits for the recorder
/// to exit on its own when the container's cgroup disappears.
fn record_until_container_ends(target_args: &[&str], sync: &Path, out: &Path) -> Allowlist {
    let recorder = Running::spawn(
        Command::new(agent_audit_bin())
            .arg("record")
            .args(target_args)
            .args(["--interval", "0.2", "--out"])
            .arg(out),
    );
    let mut recorder = Some(recorder);
    wait_until("the recorder's first snapshot", TIMEOUT, || {
        let r = recorder.as_mut().unwrap();
        // A recorder that failed to start would otherwise only show up as a timeout.
        if r.has_exited() {
            let done = recorder
                .take()
                .unwrap()
                .finish(TIMEOUT, "agent-audit record");
            panic!("agent-audit record exited early: {done:#?}");
        }
        out.exists()
    });
    fs::write(sync.join("go"), b"").unwrap();
    let done = recorder
        .unwrap()
        .finish(TIMEOUT, "agent-audit record (container ended)");
    done.assert_code(0);
    // The workload really ran to its end after `go`: its results are in /sync.
    let wc = fs::read_to_string(sync.join("wc.out")).expect("the workload wrote wc.out");
    assert!(wc.contains("/etc/passwd"), "unexpected wc output {wc:?}");
    assert_eq!(
        fs::read_to_string(sync.join("done")).unwrap().trim(),
        "done"
    );
    let list = Allowlist::read(out);
    assert!(
        list.complete(),
        "the final file must be complete: {:#}",
        list.0
    );
    list
}

/// What busybox's sh, ls, cat and wc must have made after `go` (checked against a recording
/// of this exact workload: cat uses sendfile, wc read; sh forks with clone or its variants).
fn assert_busybox_workload(list: &Allowlist) {
    list.assert_has(&[
        "execve",
        "openat",
        "read",
        "write",
        "getdents64",
        "wait4",
        "exit_group",
    ]);
    list.assert_has_one_of(&["clone", "clone3", "fork", "vfork"]);
    // ls, cat and wc each exec'd after the recorder attached.
    assert!(
        list.count("execve") >= 3,
        "fewer than 3 execve: {:#}",
        list.0
    );
}

/// How a runc container is named on the recorder's command line.
enum RuncTarget {
    Cgroup,
    Pid,
    Name,
}

/// Records a runc busybox container until it ends; checks what every way of naming it shares
/// and returns the allowlist and the container id.
fn record_runc_container(how: RuncTarget) -> (Allowlist, String) {
    let bundle = tempfile::tempdir().unwrap();
    let rootfs = bundle.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let id = unique_name("agent-audit-test-runc");
    let mut container = RuncContainer::start(bundle.path(), &id, WORKLOAD);
    let pid = container.init_pid().expect("container is running");
    let cgroup_path = cgroup::v2_path_of(pid).expect("container init has a cgroup v2");
    assert!(cgroup_path.ends_with(&id), "runc put {id} in {cgroup_path}");
    let out = bundle.path().join("runc.allowlist.json");
    let args = match how {
        RuncTarget::Cgroup => ["--cgroup".to_string(), cgroup_path.clone()],
        RuncTarget::Pid => ["--pid".to_string(), pid.to_string()],
        RuncTarget::Name => ["--container".to_string(), id.clone()],
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let list = record_until_container_ends(&args, &sync_dir(&rootfs), &out);
    assert_eq!(container.wait(TIMEOUT), 0, "the workload failed");
    assert_busybox_workload(&list);
    assert_eq!(list.target()["cgroup_path"], cgroup_path.as_str());
    (list, id)
}

#[test]
fn root_record_runc_container_by_cgroup_until_it_ends() {
    require_root();
    let (list, _) = record_runc_container(RuncTarget::Cgroup);
    assert_eq!(list.target()["kind"], "cgroup");
}

#[test]
fn root_record_runc_container_by_pid_until_it_ends() {
    require_root();
    let (list, _) = record_runc_container(RuncTarget::Pid);
    assert_eq!(list.target()["kind"], "pid");
}

#[test]
fn root_record_runc_container_by_name_until_it_ends() {
    require_root();
    let (list, id) = record_runc_container(RuncTarget::Name);
    let target = list.target();
    assert_eq!(target["kind"], "container");
    // Docker and Podman do not know it; `runc state` does.
    assert_eq!(target["container"]["engine"], "runc");
    assert_eq!(target["container"]["id"], id.as_str());
}

#[test]
fn root_record_docker_container_by_name_until_it_ends() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let sync = dir.path().join("sync");
    fs::create_dir(&sync).unwrap();
    let name = unique_name("agent-audit-test-docker");
    let container = DockerContainer::start(&name, &sync, WORKLOAD);
    assert_ne!(container.pid(), 0, "container {name} is not running");
    let out = dir.path().join("docker.allowlist.json");

    let list = record_until_container_ends(&["--container", &name], &sync, &out);
    assert_eq!(container.wait(TIMEOUT), 0, "the workload failed");
    assert_busybox_workload(&list);
    let target = list.target();
    assert_eq!(target["kind"], "container");
    assert_eq!(target["container"]["engine"], "docker");
    assert_eq!(target["container"]["name"], name.as_str());
    assert_eq!(target["container"]["id"], container.id.as_str());
    assert!(
        target["cgroup_path"]
            .as_str()
            .unwrap()
            .contains(&container.id),
        "cgroup {} is not the container's",
        target["cgroup_path"]
    );
}
