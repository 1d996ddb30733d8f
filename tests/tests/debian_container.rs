//! The container case: a container from a real Debian root filesystem (debootstrap from
//! this machine's apt mirror, `docker import`; nodejs, git and python3 from Debian) runs an
//! agent-like task (tests/data/workloads/agent_task.py: clones a git repository, edits files
//! from threads, runs a Node program with a local TCP server and a child process, commits)
//! with the capability drops of the seed project's agent container (gh-aw-firewall's
//! `cap_drop`, and `no-new-privileges`). `agent-audit audit --container` records 3 starts,
//! verifies the profile on a copy of the container, and the copy then runs 3 more times under
//! the profile (`verify --docker-container`) with nothing denied.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::container::{leftover_verify_copies, DockerContainer};
use agent_audit_tests::debian::debian_image;
use agent_audit_tests::process::{run, run_ok};
use agent_audit_tests::{agent_audit_bin, require_root, unique_name, workspace_root};
use serde_json::Value;

/// An audit is 4 starts of a container running git, CPython and Node.
const TIMEOUT: Duration = Duration::from_secs(600);
/// gh-aw-firewall's agent container (`src/docker-manager.ts`): `cap_drop`.
const SEED_CAP_DROPS: &[&str] = &["NET_RAW", "SYS_PTRACE", "SYS_MODULE", "SYS_RAWIO", "MKNOD"];

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Nothing denied but the refusals the profile makes on purpose so that the libc falls back
/// (`clone3` → ENOSYS, then `clone`), and those the container's own seccomp configuration
/// makes too (Docker 20.10's default profile refuses `pkey_alloc`, which Node's V8 tries):
/// the recorded runs ran with those refused, as their refusal counts (or a copy under that
/// configuration) showed.
fn assert_nothing_denied(verify: &Value) {
    for d in verify["denied"].as_array().expect("denied is a list") {
        let fallback = d["fallback"] == true && d["name"] == "clone3";
        let refused_before = d["refused_before"] == true
            && (verify["container"]["baseline_container"].is_string()
                || verify["container"]["refused_before_from_recordings"] == true);
        assert!(fallback || refused_before, "denied: {d}\n{verify:#}");
    }
}

/// `docker create` of the agent task in the Debian image, as the seed project runs its agent:
/// capabilities dropped, no new privileges, an unprivileged user, no network but loopback.
fn create_agent_container(name: &str) -> DockerContainer {
    let workloads = workspace_root().join("tests/data/workloads");
    let mut create = Command::new("docker");
    create.args(["create", "--name", name, "--network", "none"]);
    create.args([
        "--user",
        "65534:65534",
        "--env",
        "HOME=/tmp",
        "--workdir",
        "/tmp",
    ]);
    create.args(["--security-opt", "no-new-privileges:true"]);
    for cap in SEED_CAP_DROPS {
        create.args(["--cap-drop", cap]);
    }
    create
        .arg("--volume")
        .arg(format!("{}:/workloads:ro", workloads.display()));
    create.args([debian_image(), "python3", "/workloads/agent_task.py"]);
    let id = run_ok(&mut create, TIMEOUT).trim().to_string();
    DockerContainer {
        name: name.to_string(),
        id,
    }
}

fn container_exit_code(name: &str) -> String {
    run_ok(
        Command::new("docker").args(["inspect", "--format", "{{.State.ExitCode}}", name]),
        TIMEOUT,
    )
    .trim()
    .to_string()
}

#[test]
fn root_audit_a_debian_container_running_an_agent_task() {
    require_root();
    let name = unique_name("aa-debian");
    let container = create_agent_container(&name);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("audit");
    let done = run(
        Command::new(agent_audit_bin())
            .args(["audit", "--container", &container.name, "--out-dir"])
            .arg(&out),
        TIMEOUT,
    );
    for k in 1..=3 {
        let path = out.join(format!("allowlist-{k}.json"));
        assert!(path.exists(), "no {}:\n{}", path.display(), done.stderr);
        let list = Allowlist::read(&path);
        assert!(list.complete(), "run {k}: {:#}", list.0);
        list.assert_has(&["execve", "clone", "socket", "connect"]);
    }
    assert!(!out.join("allowlist-4.json").exists(), "3 runs by default");
    assert_eq!(container_exit_code(&name), "0", "{}", done.stderr);

    let verify = json(&out.join("verify.json"));
    assert_nothing_denied(&verify);
    assert_eq!(verify["exit_status"], 0, "{verify:#}\n{}", done.stderr);
    assert_eq!(verify["passed"], true, "{verify:#}\n{}", done.stderr);
    let run_info = &verify["container"];
    assert_eq!(run_info["container"], name.as_str(), "{verify:#}");
    assert_eq!(run_info["probes"], "host-with-container-capabilities");
    let caps = run_info["capabilities"].as_str().unwrap();
    for cap in SEED_CAP_DROPS {
        assert!(!caps.contains(&format!("CAP_{cap}")), "{caps}");
    }
    // The copy runs with only the capabilities the recordings needed: this agent runs as uid
    // 65534 and needs none, so the copy runs with every capability dropped and still passes.
    let minimal = json(&out.join("capabilities.json"));
    assert_eq!(minimal["drop"], serde_json::json!(["ALL"]), "{minimal:#}");
    assert_eq!(minimal["add"], serde_json::json!([]), "{minimal:#}");
    assert!(!caps.contains("CAP_"), "{caps}");
    assert!(
        verify["probes"].as_array().is_some_and(|p| !p.is_empty()),
        "{verify:#}"
    );

    let report = json(&out.join("report.json"));
    assert_eq!(report["summary"]["verify_passed"], true, "{report:#}");
    let note = report["summary"]["verify_note"].as_str().unwrap();
    assert!(note.contains("on the host"), "{note}");
    assert!(report["findings"]["verify_failed"]
        .as_array()
        .unwrap()
        .is_empty());
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("ran on the host"), "{md}");
    // runc's init calls are listed, but none is allowed without a reason: nothing to review.
    assert!(md.contains("**0 finding(s)**"), "{md}");
    assert!(md.contains("allowed (runtime baseline)"), "{md}");
    done.assert_code(0);
    assert_eq!(leftover_verify_copies(&name), "");

    for i in 1..=3 {
        let result = dir.path().join(format!("verify-{i}.json"));
        let again = run(
            Command::new(agent_audit_bin())
                .arg("verify")
                .arg("--profile")
                .arg(out.join("profile.json"))
                .arg("--caps-file")
                .arg(out.join("capabilities.json"))
                .args(["--docker-container", &name, "--out"])
                .arg(&result),
            TIMEOUT,
        );
        let v = json(&result);
        assert_nothing_denied(&v);
        assert_eq!(v["exit_status"], 0, "verify {i}: {v:#}\n{}", again.stderr);
        // Under `--cap-drop ALL` and nothing added: no capability at all.
        let caps = v["container"]["capabilities"].as_str().unwrap();
        assert!(!caps.contains("CAP_"), "{caps}");
        again.assert_code(0);
    }
    assert_eq!(leftover_verify_copies(&name), "");
}
