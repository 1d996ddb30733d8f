//! `check`, `diff` and `verify` evaluate Docker's and Podman's conditional rules the way Docker
//! does for a container: `--caps` (default: Docker's default set) and `--kernel` (default: this
//! host's) decide which rules apply.

use std::process::{Command, Output};

use agent_audit_tests::{agent_audit_bin, workspace_root};
use serde_json::Value;

fn agent_audit(args: &[&str]) -> Output {
    Command::new(agent_audit_bin())
        .args(args)
        .output()
        .expect("agent-audit runs")
}

fn fixture(name: &str) -> String {
    workspace_root()
        .join("tests/data/profiles")
        .join(name)
        .display()
        .to_string()
}

/// `check --format json` of Docker's default with extra arguments.
fn check_docker(extra: &[&str]) -> Value {
    let docker = fixture("docker-default.json");
    let mut args = vec!["check", docker.as_str(), "--format", "json"];
    args.extend_from_slice(extra);
    let out = agent_audit(&args);
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{out:?}"
    );
    serde_json::from_slice(&out.stdout).expect("check JSON")
}

/// Names of the findings with `code`.
fn names(report: &Value, code: &str) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == code)
        .flat_map(|f| f["names"].as_array().cloned().unwrap_or_default())
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn capability_gated_rules_count_only_with_the_capability() {
    let default = check_docker(&[]);
    let allowed = names(&default, "dangerous-allowed");
    assert!(
        allowed.contains(&"chroot".into()),
        "CAP_SYS_CHROOT is a default capability"
    );
    assert!(
        !allowed.contains(&"mount".into()),
        "mount needs CAP_SYS_ADMIN: {allowed:?}"
    );
    let gated = names(&default, "dangerous-with-capability");
    for name in ["mount", "bpf", "kcmp", "reboot"] {
        assert!(
            gated.contains(&name.into()),
            "{name} is reachable with a capability: {gated:?}"
        );
    }
    let privileged = names(&check_docker(&["--caps", "all"]), "dangerous-allowed");
    assert!(privileged.contains(&"mount".into()) && privileged.contains(&"bpf".into()));
    let no_chroot = names(
        &check_docker(&["--caps", "default,-SYS_CHROOT"]),
        "dangerous-allowed",
    );
    assert!(!no_chroot.contains(&"chroot".into()), "{no_chroot:?}");
}

#[test]
fn min_kernel_conditions_follow_kernel() {
    // Docker allows ptrace without CAP_SYS_PTRACE only from 4.8 on (before it, ptrace could
    // bypass seccomp).
    let new = names(&check_docker(&["--kernel", "4.8"]), "dangerous-allowed");
    let old = names(&check_docker(&["--kernel", "4.7"]), "dangerous-allowed");
    assert!(new.contains(&"ptrace".into()) && !old.contains(&"ptrace".into()));
}

#[test]
fn diff_of_docker_and_podman_defaults_depends_on_the_capabilities() {
    let (docker, podman) = (
        fixture("docker-default.json"),
        fixture("podman-default.json"),
    );
    let text = |extra: &[&str]| {
        let mut args = vec!["diff", docker.as_str(), podman.as_str()];
        args.extend_from_slice(extra);
        let out = agent_audit(&args);
        assert_eq!(out.status.code(), Some(1), "they differ: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    // With Docker's default capabilities, Podman's default allows mount; Docker's only with
    // CAP_SYS_ADMIN. Privileged, both allow it.
    assert!(text(&[]).lines().any(|l| l == "+ mount"));
    assert!(!text(&["--caps", "all"]).lines().any(|l| l == "+ mount"));
}

#[test]
fn bad_capability_lists_are_usage_errors() {
    let docker = fixture("docker-default.json");
    for caps in ["cap sys admin", "CAP_"] {
        let out = agent_audit(&["check", &docker, "--caps", caps]);
        assert_eq!(out.status.code(), Some(2), "{caps}: {out:?}");
    }
    let out = agent_audit(&["check", &docker, "--kernel", "four"]);
    assert_eq!(out.status.code(), Some(2));
}
