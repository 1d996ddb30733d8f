//! Every real profile of the corpus (tests/data/profiles: Docker's current and old defaults,
//! Podman's, the Security Profiles Operator's, the seed project's) is read by `check` (text and
//! JSON), `diff` and `profile --base` as a user runs them: exit 0 or 1, never 65. Docker's and
//! Podman's defaults write `"args": null` and `"excludes": {}`, which runc, Docker and Podman
//! accept.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use agent_audit_tests::{agent_audit_bin, workspace_root};

fn agent_audit(args: &[&str]) -> Output {
    Command::new(agent_audit_bin())
        .args(args)
        .output()
        .expect("agent-audit runs")
}

fn corpus() -> Vec<PathBuf> {
    let dir = workspace_root().join("tests/data/profiles");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 9, "corpus incomplete: {files:?}");
    files
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn assert_read(out: &Output, what: &str) {
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 1)),
        "{what}: exit {code:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_real_profile_is_read_by_check_diff_and_profile_base() {
    let dir = tempfile::tempdir().unwrap();
    let allowlist = workspace_root().join("tests/data/allowlists/shell-commands.allowlist.json");
    let files = corpus();
    for file in &files {
        let f = path_str(file);
        assert_read(&agent_audit(&["check", f]), &format!("check {f}"));
        let json = agent_audit(&["check", "--format", "json", f]);
        assert_read(&json, &format!("check --format json {f}"));
        let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        assert!(report["findings"].is_array(), "{f}: {report:#}");
        assert_read(
            &agent_audit(&["diff", f, path_str(&files[0])]),
            &format!("diff {f}"),
        );
        let out = dir.path().join("profile.json");
        let base = agent_audit(&[
            "profile",
            path_str(&allowlist),
            "--base",
            f,
            "-o",
            path_str(&out),
        ]);
        assert_eq!(
            base.status.code(),
            Some(0),
            "profile --base {f}: {}",
            String::from_utf8_lossy(&base.stderr)
        );
    }
}

#[test]
fn the_seed_projects_profile_is_flagged_for_its_unconditional_socket() {
    let agent = workspace_root().join("tests/data/profiles/gh-aw-firewall-agent-seccomp.json");
    let out = agent_audit(&["check", "--format", "json", path_str(&agent)]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let socket = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "socket-family-unrestricted")
        .unwrap_or_else(|| panic!("no socket finding: {report:#}"));
    assert_eq!(socket["severity"], "error");
    assert!(socket["message"]
        .as_str()
        .unwrap()
        .contains("CVE-2026-31431"));
}
