//! Kubernetes pods resolved through the kubelet's cgroup layouts, on cgroup trees laid out as
//! the kubelet lays them out (systemd driver with containerd scopes; cgroupfs driver with bare
//! and CRI-O ids), created under the real cgroup v2 mount below a scratch `--kubelet-cgroup-root`.
//! Real processes run in the "containers"; the recorder must pick up the ones created after it
//! armed from their first syscall and write one allowlist per container (`--pod`) or per pod
//! (`--kubepods`).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::armed::ArmedRecorder;
use agent_audit_tests::cgroup::ScratchCgroup;
use agent_audit_tests::process::{run_ok, Running};
use agent_audit_tests::{require_root, unique_name};

const TIMEOUT: Duration = Duration::from_secs(60);
const UID: &str = "0d5e7f3a-8c6b-4f1e-9a2d-3b4c5d6e7f80";
const UID2: &str = "9f8e7d6c-5b4a-4392-8170-fedcba987654";
const ID1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const ID2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

/// A container's workload: ls (getdents64) and cat (sendfile or read).
fn workload(cgroup: &ScratchCgroup) {
    let mut cmd = Command::new("/bin/busybox");
    cmd.args([
        "sh",
        "-c",
        "ls / > /dev/null && cat /etc/hostname > /dev/null",
    ]);
    cgroup.contain(&mut cmd);
    run_ok(&mut cmd, TIMEOUT);
}

/// Creates the directories of `rel` (below `root`) that do not exist yet.
fn mkdirs(root: &ScratchCgroup, rel: &str) {
    fs::create_dir_all(root.dir.join(rel)).unwrap();
}

fn out_file(out: &Path, name: &str) -> Allowlist {
    Allowlist::read(&out.join(format!("{name}.allowlist.json")))
}

#[test]
fn root_pod_containers_on_the_systemd_layout_one_allowlist_each_from_the_first_syscall() {
    require_root();
    let root = ScratchCgroup::at(&unique_name("aa-kubelet"));
    let pod = format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
        UID.replace('-', "_")
    );
    mkdirs(&root, &pod);
    // A container that runs before the recorder starts: recorded from then on.
    let running_rel = format!("{}/{pod}/cri-containerd-{ID1}.scope", root.rel);
    let running = ScratchCgroup::at(&running_rel);
    let mut sleeper = Command::new("/bin/busybox");
    sleeper.args(["sleep", "600"]);
    running.contain(&mut sleeper);
    let sleeper = Running::spawn(&mut sleeper);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let recorder = ArmedRecorder::start(
        &[
            "--pod",
            UID,
            "--kubelet-cgroup-root",
            &root.rel,
            "--interval",
            "0.2",
            "--out-dir",
            out.to_str().unwrap(),
        ],
        TIMEOUT,
    );
    // A container created after the recorder armed.
    let new = ScratchCgroup::at(&format!("{}/{pod}/cri-containerd-{ID2}.scope", root.rel));
    workload(&new);
    drop(new);
    drop(sleeper);
    drop(running);
    recorder.finish(TIMEOUT);

    let list = out_file(out, &format!("cri-containerd-{ID2}.scope"));
    let dump = format!("{:#}", list.0);
    assert!(list.complete(), "{dump}");
    assert!(
        list.target()["cgroup_path"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{pod}/cri-containerd-{ID2}.scope")),
        "{dump}"
    );
    // From its first syscall: the shell's own execve of ls is there, and everything after.
    list.assert_has(&["execve", "getdents64", "exit_group"]);
    let existing = out_file(out, &format!("cri-containerd-{ID1}.scope"));
    assert!(existing.complete());
    assert!(
        !existing.names().contains("getdents64"),
        "the other container's calls leaked into it"
    );
}

#[test]
fn root_kubepods_on_the_cgroupfs_layout_records_new_pods_of_every_qos_class() {
    require_root();
    let root = ScratchCgroup::at(&unique_name("aa-kubelet"));
    mkdirs(&root, "kubepods/burstable");
    mkdirs(&root, "kubepods/besteffort");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let recorder = ArmedRecorder::start(
        &[
            "--kubepods",
            "--kubelet-cgroup-root",
            &root.rel,
            "--interval",
            "0.2",
            "--out-dir",
            out.to_str().unwrap(),
        ],
        TIMEOUT,
    );
    // A BestEffort pod with a containerd container, a Guaranteed one with a CRI-O container.
    let besteffort = format!("{}/kubepods/besteffort/pod{UID}", root.rel);
    let guaranteed = format!("{}/kubepods/pod{UID2}", root.rel);
    let pods = [
        ScratchCgroup::at(&besteffort),
        ScratchCgroup::at(&guaranteed),
    ];
    let containers = [
        ScratchCgroup::at(&format!("{besteffort}/{ID1}")),
        ScratchCgroup::at(&format!("{guaranteed}/crio-{ID2}")),
    ];
    for c in &containers {
        workload(c);
    }
    drop(containers);
    drop(pods);
    recorder.finish(TIMEOUT);

    for (pod_dir, pod) in [
        (&besteffort, format!("pod{UID}")),
        (&guaranteed, format!("pod{UID2}")),
    ] {
        let list = out_file(out, &pod);
        let dump = format!("{:#}", list.0);
        assert_eq!(list.target()["cgroup_path"], pod_dir.as_str(), "{dump}");
        list.assert_has(&["execve", "getdents64", "exit_group"]);
    }
    let files = fs::read_dir(out).unwrap().count();
    assert_eq!(files, 2, "one allowlist per pod, nothing else");
}

#[test]
fn root_unknown_pod_exit_66_naming_the_layouts_tried() {
    require_root();
    let root = ScratchCgroup::at(&unique_name("aa-kubelet"));
    let done = agent_audit_tests::process::run(
        Command::new(agent_audit_tests::agent_audit_bin()).args([
            "record",
            "--pod",
            UID,
            "--kubelet-cgroup-root",
            &root.rel,
            "--duration",
            "1",
        ]),
        TIMEOUT,
    );
    done.assert_code(66).assert_stderr_mentions(&[
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0d5e7f3a_8c6b",
        "kubepods/besteffort/pod0d5e7f3a-8c6b",
    ]);
    let done = agent_audit_tests::process::run(
        Command::new(agent_audit_tests::agent_audit_bin()).args([
            "record",
            "--pod",
            "../../etc",
            "--duration",
            "1",
        ]),
        TIMEOUT,
    );
    done.assert_code(2)
        .assert_stderr_mentions(&["not a pod UID"]);
}
