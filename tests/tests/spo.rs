//! `profile --format spo|spo-yaml` as a user runs it: the object it writes is read back by
//! `check`, `diff` and `profile --base`, and names the API server would refuse are usage errors
//! caught before anything is written.

use std::path::Path;
use std::process::{Command, Output};

use agent_audit_tests::{agent_audit_bin, workspace_root};

fn agent_audit(args: &[&str]) -> Output {
    Command::new(agent_audit_bin())
        .args(args)
        .output()
        .expect("agent-audit runs")
}

fn allowlist() -> String {
    workspace_root()
        .join("tests/data/allowlists/shell-commands.allowlist.json")
        .display()
        .to_string()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn spo_yaml_is_read_back_by_check_diff_and_base() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("agent.yaml");
    let oci = dir.path().join("agent.json");
    let out = agent_audit(&[
        "profile",
        &allowlist(),
        "--format",
        "spo-yaml",
        "--name",
        "agent",
        "-o",
        path_str(&yaml),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&yaml).unwrap();
    assert!(
        text.contains("apiVersion: security-profiles-operator.x-k8s.io/v1\n"),
        "{text}"
    );
    let out = agent_audit(&["profile", &allowlist(), "-o", path_str(&oci)]);
    assert!(out.status.success());

    let check = agent_audit(&["check", path_str(&yaml)]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    // The same plan in both formats: diff sees no difference.
    let diff = agent_audit(&["diff", path_str(&oci), path_str(&yaml)]);
    assert_eq!(
        diff.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    let again = dir.path().join("again.json");
    let base = agent_audit(&[
        "profile",
        &allowlist(),
        "--base",
        path_str(&yaml),
        "-o",
        path_str(&again),
    ]);
    assert!(
        base.status.success(),
        "{}",
        String::from_utf8_lossy(&base.stderr)
    );
}

#[test]
fn spo_names_and_scopes_the_api_server_refuses_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("x.yaml");
    let allowlist = allowlist();
    for extra in [
        &["--name", "Not_A_DNS_Name"][..],
        &["--name", "ok", "--namespace", "ci"][..],
    ] {
        let mut args = vec![
            "profile",
            &allowlist,
            "--format",
            "spo-yaml",
            "-o",
            path_str(&out_path),
        ];
        args.extend_from_slice(extra);
        let out = agent_audit(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out_path.exists(), "nothing is written on a usage error");
    }
    let out = agent_audit(&[
        "profile",
        &allowlist,
        "--format",
        "spo",
        "--spo-version",
        "v1beta1",
        "--name",
        "ok",
        "--namespace",
        "ci",
        "-o",
        path_str(&out_path),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_multi_document_yaml_is_refused_with_65() {
    let dir = tempfile::tempdir().unwrap();
    let two = dir.path().join("two.yaml");
    std::fs::copy(
        workspace_root().join("tests/data/schemas/spo-seccompprofile-example.yaml"),
        &two,
    )
    .unwrap();
    let out = agent_audit(&["check", path_str(&two)]);
    assert_eq!(
        out.status.code(),
        Some(65),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("YAML documents"));
}
