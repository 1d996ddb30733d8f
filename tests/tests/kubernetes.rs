//! deploy/kubernetes/ without a cluster: every manifest validates against the Kubernetes API
//! schemas (kubernetes-validate, offline, strict), the merge script turns allowlists of two
//! replicas recorded on different nodes into one SeccompProfile that validates against the
//! Security Profiles Operator's CRD and allows the union of what they did, and the DaemonSet's
//! own command line arms the recorder and passes its readiness probe.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::cgroup::ScratchCgroup;
use agent_audit_tests::process::{run, wait_until, Running};
use agent_audit_tests::{agent_audit_bin, require_root, unique_name, workspace_root};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(120);
const CRD: &str = "tests/data/schemas/spo-seccompprofile-crd.yaml";

fn deploy_dir() -> PathBuf {
    workspace_root().join("deploy/kubernetes")
}

/// The virtualenv `cargo xtask setup` makes (kubernetes-validate, jsonschema, PyYAML).
fn python_bin(tool: &str) -> PathBuf {
    let bin = workspace_root().join("target/python/bin").join(tool);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo xtask setup` (it installs kubernetes-validate from PyPI)",
        bin.display()
    );
    bin
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(deploy_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    files
}

/// `kubernetes-validate --strict` (unknown fields are errors) for Kubernetes `version`.
fn kubernetes_validate(version: &str, files: &[PathBuf]) -> agent_audit_tests::process::Finished {
    run(
        Command::new(python_bin("kubernetes-validate"))
            .args(["--strict", "--kubernetes-version", version])
            .args(files),
        TIMEOUT,
    )
}

#[test]
fn every_manifest_validates_against_the_kubernetes_schemas() {
    for version in ["1.29.0", "1.33.0"] {
        let done = kubernetes_validate(version, &manifests());
        done.assert_code(0);
        assert!(!done.stdout.contains("WARN"), "{done:#?}");
    }
    // Not vacuous: a misspelt field fails.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("daemonset.yaml");
    let text = fs::read_to_string(deploy_dir().join("daemonset.yaml")).unwrap();
    fs::write(&broken, text.replace("hostPID: true", "hostPid: true")).unwrap();
    let done = kubernetes_validate("1.33.0", &[broken]);
    assert_ne!(done.code(), 0, "{done:#?}");
}

/// `fixture` with `drop` removed from its syscalls, as recorded in the pod `uid`'s container
/// under the systemd (`node-a`) or cgroupfs (`node-b`) layout.
fn replica_allowlist(fixture: &Value, uid: &str, systemd: bool, drop: &str) -> Value {
    let mut list = fixture.clone();
    let path = if systemd {
        format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
            uid.replace('-', "_")
        )
    } else {
        format!("/kubepods/besteffort/pod{uid}")
    };
    list["target"] =
        json!({"kind": "cgroup-glob", "spec": "kubepods", "cgroup_path": path, "cgroup_id": 1});
    let syscalls = list["syscalls"].as_array_mut().unwrap();
    syscalls.retain(|s| s["name"] != drop);
    let calls: u64 = syscalls.iter().map(|s| s["count"].as_u64().unwrap()).sum();
    let distinct = syscalls.len();
    list["totals"]["calls"] = json!(calls);
    list["totals"]["distinct"] = json!(distinct);
    list
}

fn pod(uid: &str, name: &str, owner: Option<(&str, &str)>, hash: Option<&str>) -> Value {
    let mut pod = json!({"metadata": {"uid": uid, "name": name, "namespace": "ci", "labels": {"app": "agent"}}});
    if let Some((kind, owner)) = owner {
        pod["metadata"]["ownerReferences"] = json!([{"kind": kind, "name": owner, "controller": true, "apiVersion": "apps/v1", "uid": "x"}]);
    }
    if let Some(hash) = hash {
        pod["metadata"]["labels"]["pod-template-hash"] = json!(hash);
    }
    pod
}

/// A `kubectl` that answers `get pods -n ci -l app=agent -o json` with `pods` and fails on
/// anything else.
fn fake_kubectl(bin_dir: &Path, pods: &Value) {
    let pods_file = bin_dir.join("pods.json");
    fs::write(&pods_file, serde_json::to_vec(pods).unwrap()).unwrap();
    let script = format!(
        "#!/bin/sh\n[ \"$*\" = \"get pods -n ci -l app=agent -o json\" ] || {{ echo \"unexpected kubectl $*\" >&2; exit 3; }}\ncat {}\n",
        pods_file.display()
    );
    let kubectl = bin_dir.join("kubectl");
    fs::write(&kubectl, script).unwrap();
    fs::set_permissions(&kubectl, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn merge_makes_one_spo_profile_per_workload_from_replicas_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let fixture: Value = serde_json::from_str(
        &fs::read_to_string(
            workspace_root().join("tests/data/allowlists/shell-commands.allowlist.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let (a, b, other) = (
        "11111111-2222-4333-8444-555555555555",
        "66666666-7777-4888-9999-aaaaaaaaaaaa",
        "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff",
    );
    // Two replicas of Deployment `agent` (through ReplicaSet agent-5d8f7c9b6), collected from
    // two nodes; each did something the other did not. A third pod is not selected.
    let collected = dir.path().join("collected");
    for (node, uid, systemd, drop) in [
        ("node-a", a, true, "statx"),
        ("node-b", b, false, "getdents64"),
        ("node-b", other, false, "read"),
    ] {
        fs::create_dir_all(collected.join(node)).unwrap();
        let list = replica_allowlist(&fixture, uid, systemd, drop);
        fs::write(
            collected
                .join(node)
                .join(format!("pod{uid}.allowlist.json")),
            serde_json::to_vec_pretty(&list).unwrap(),
        )
        .unwrap();
    }
    let bin_dir = dir.path().join("bin");
    fs::create_dir(&bin_dir).unwrap();
    let pods = json!({"items": [
        pod(a, "agent-5d8f7c9b6-x2x9q", Some(("ReplicaSet", "agent-5d8f7c9b6")), Some("5d8f7c9b6")),
        pod(b, "agent-5d8f7c9b6-k7m2p", Some(("ReplicaSet", "agent-5d8f7c9b6")), Some("5d8f7c9b6")),
    ]});
    fake_kubectl(&bin_dir, &pods);

    let out = dir.path().join("profiles");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let done = run(
        Command::new(deploy_dir().join("merge.sh"))
            .args(["ci", "app=agent"])
            .arg(&collected)
            .arg(&out)
            .env("PATH", path)
            .env("AGENT_AUDIT", agent_audit_bin()),
        TIMEOUT,
    );
    done.assert_code(0);
    assert!(done.stdout.contains("agent: 2 allowlist(s)"), "{done:#?}");
    let files: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(
        files,
        [out.join("ci-agent.yaml")],
        "one profile per workload"
    );
    let profile = &files[0];

    // The SPO CRD accepts it, and so does `check`.
    let valid = run(
        Command::new(python_bin("python3"))
            .arg(deploy_dir().join("validate_crd.py"))
            .arg(workspace_root().join(CRD))
            .arg(profile),
        TIMEOUT,
    );
    valid.assert_code(0);
    assert!(
        valid.stdout.contains("SeccompProfile ci-agent valid"),
        "{valid:#?}"
    );
    run(
        Command::new(agent_audit_bin()).arg("check").arg(profile),
        TIMEOUT,
    )
    .assert_code(0);
    // The union of both replicas: everything the full workload did is allowed.
    let diff = run(
        Command::new(agent_audit_bin())
            .args(["diff", "--fail-on", "added"])
            .arg(profile)
            .arg(workspace_root().join("tests/data/allowlists/shell-commands.allowlist.json")),
        TIMEOUT,
    );
    diff.assert_code(0);
}

/// The validator itself refuses an object the CRD does not allow.
#[test]
fn crd_validation_refuses_an_invalid_seccomp_profile() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    fs::write(
        &bad,
        "apiVersion: security-profiles-operator.x-k8s.io/v1\nkind: SeccompProfile\n\
         metadata: {name: bad}\nspec: {defaultAction: SCMP_ACT_BOGUS}\n",
    )
    .unwrap();
    let done = run(
        Command::new(python_bin("python3"))
            .arg(deploy_dir().join("validate_crd.py"))
            .arg(workspace_root().join(CRD))
            .arg(&bad),
        TIMEOUT,
    );
    assert_eq!(done.code(), 1, "{done:#?}");
    assert!(done.stdout.contains("defaultAction"), "{done:#?}");
}

/// The recorder container's args from daemonset.yaml, as JSON.
fn daemonset_recorder(field: &str) -> Value {
    let script = format!(
        "import json,sys,yaml; d=yaml.safe_load(open(sys.argv[1])); \
         c=[c for c in d['spec']['template']['spec']['containers'] if c['name']=='recorder'][0]; \
         print(json.dumps(c{field}))"
    );
    let done = run(
        Command::new(python_bin("python3"))
            .args(["-c", &script])
            .arg(deploy_dir().join("daemonset.yaml")),
        TIMEOUT,
    );
    done.assert_code(0);
    serde_json::from_str(&done.stdout).unwrap()
}

#[test]
fn root_the_daemonsets_command_arms_and_passes_its_readiness_probe() {
    require_root();
    let args: Vec<String> = serde_json::from_value(daemonset_recorder("['args']")).unwrap();
    let probe: Vec<String> =
        serde_json::from_value(daemonset_recorder("['readinessProbe']['exec']['command']"))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("armed");
    // The node's kubelet tree, here a scratch one (systemd driver, no pods yet).
    let root = ScratchCgroup::at(&unique_name("aa-kubelet"));
    // The node's pin directory, here a scratch one, removed however the test ends.
    let pins = PinDir(Path::new("/sys/fs/bpf").join(unique_name("aa-kubelet")));
    fs::create_dir_all(root.dir.join("kubepods.slice/kubepods-burstable.slice")).unwrap();
    fs::create_dir_all(root.dir.join("kubepods.slice/kubepods-besteffort.slice")).unwrap();
    let args: Vec<String> = args
        .into_iter()
        .map(|a| match a.as_str() {
            "/out" => dir.path().display().to_string(),
            "/tmp/armed" => ready.display().to_string(),
            "/sys/fs/bpf/agent-audit" => pins.0.display().to_string(),
            _ => a,
        })
        .collect();
    let mut recorder = Running::spawn(
        Command::new(agent_audit_bin())
            .args(&args)
            .args(["--kubelet-cgroup-root", &root.rel]),
    );
    let probe_ok = || {
        Command::new(agent_audit_bin())
            .args(&probe[1..probe.len() - 1])
            .arg(&ready)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert_eq!(probe[0], "/usr/local/bin/agent-audit");
    wait_until("the readiness probe to pass", TIMEOUT, || {
        assert!(!recorder.has_exited(), "the recorder exited");
        probe_ok()
    });
    // --keep-waiting: a pod that comes and goes does not end the daemon.
    let pod = ScratchCgroup::at(&format!(
        "{}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice",
        root.rel, "11111111_2222_4333_8444_555555555555"
    ));
    let mut cmd = Command::new("/bin/busybox");
    cmd.args(["ls", "/"]);
    pod.contain(&mut cmd);
    run(&mut cmd, TIMEOUT).assert_code(0);
    drop(pod);
    let file = dir
        .path()
        .join("kubepods-besteffort-pod11111111_2222_4333_8444_555555555555.slice.allowlist.json");
    wait_until("the pod's final allowlist", TIMEOUT, || file.exists());
    std::thread::sleep(Duration::from_secs(1));
    assert!(!recorder.has_exited(), "the daemon ended with its last pod");
    recorder.signal(libc::SIGTERM);
    recorder
        .finish(TIMEOUT, "the DaemonSet's recorder")
        .assert_code(0);
    assert!(!probe_ok(), "the probe passes after the recorder ended");
    // Its programs stay pinned for the next recorder.
    assert!(pins.0.join("links").read_dir().unwrap().next().is_some());
}

/// A pin directory, unpinned on drop.
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = Command::new(agent_audit_bin())
            .arg("unpin")
            .arg(&self.0)
            .output();
    }
}
