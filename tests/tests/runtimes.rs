//! Language runtimes: a static Go service (tests/data/workloads/go_http: HTTP
//! server on loopback, goroutine clients, a child process, graceful shutdown) is audited from
//! a run its runtime did not preempt by signal (`GODEBUG=asyncpreemptoff=1`: what a run that
//! happened not to need preemption records), then run under the profile with a CPU-bound
//! goroutine that forces preemption (`tgkill` of its own thread with SIGURG). The runtime is
//! recognised from the binary's `.go.buildinfo` section, and its preemption calls are allowed
//! with the reason; with `--no-timing-allowances` the same run is refused `tgkill`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::golang::build_go_http;
use agent_audit_tests::process::{run, Finished};
use agent_audit_tests::{agent_audit_bin, require_root};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(120);
/// The Go runtime's timing-dependent calls (`data/timing-dependent.json`).
const GO_CALLS: [&str; 3] = ["tgkill", "getpid", "rt_sigreturn"];
/// 2 clients × 2 requests, no spinning: the recorded run.
const QUIET: [&str; 3] = ["2", "2", "0"];
/// The same with a goroutine spinning 60 ms without a call: sysmon preempts it by signal.
const SPINNING: [&str; 3] = ["2", "2", "60"];

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `audit --runs 1` of the quiet workload, recorded without signal-based preemption.
fn audit_unpreempted(go: &Path, out: &Path, extra: &[&str]) -> Finished {
    let done = run(
        Command::new(agent_audit_bin())
            .env("GODEBUG", "asyncpreemptoff=1")
            .args(["audit", "--runs", "1", "--out-dir"])
            .arg(out)
            .args(extra)
            .arg("--")
            .arg(go)
            .args(QUIET),
        TIMEOUT,
    );
    assert!(
        out.join("profile.json").exists(),
        "no profile:\n{}",
        done.stderr
    );
    done
}

/// The spinning workload under `profile`: its verify result.
fn verify_spinning(go: &Path, profile: &Path, dir: &Path) -> (Value, Finished) {
    let out = dir.join("verify.json");
    let done = run(
        Command::new(agent_audit_bin())
            .env_remove("GODEBUG")
            .arg("verify")
            .arg("--profile")
            .arg(profile)
            .arg("--out")
            .arg(&out)
            .arg("--")
            .arg(go)
            .args(SPINNING),
        TIMEOUT,
    );
    (json(&out), done)
}

/// Names refused in a verify result, but `clone3`'s intended ENOSYS fallback.
fn refused(verify: &Value) -> Vec<String> {
    verify["denied"]
        .as_array()
        .expect("denied is a list")
        .iter()
        .filter(|d| !(d["fallback"] == true && d["name"] == "clone3"))
        .map(|d| d["name"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// The comment of the profile rule that allows `name`, if one does.
fn allow_comment(profile: &Value, name: &str) -> Option<String> {
    profile["syscalls"].as_array()?.iter().find_map(|rule| {
        let allows = rule["action"] == "SCMP_ACT_ALLOW"
            && rule["names"].as_array()?.iter().any(|n| n == name);
        allows.then(|| rule["comment"].as_str().unwrap_or("").to_string())
    })
}

#[test]
fn root_a_go_service_is_recognised_and_its_preemption_calls_allowed() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let go = build_go_http(dir.path());
    let go_path = go.display().to_string();

    let with = dir.path().join("with");
    audit_unpreempted(&go, &with, &[]);
    let list = Allowlist::read(&with.join("allowlist-1.json"));
    assert_eq!(list.target()["exit_status"], 0, "{:#}", list.0);
    let executables = list.0["executables"].as_array().unwrap();
    let server = executables
        .iter()
        .find(|e| e["path"] == go_path.as_str())
        .unwrap_or_else(|| panic!("{go_path} not among {executables:#?}"));
    assert_eq!(server["runtime"], "go", "{server:#}");
    assert!(
        list.count("tgkill") == 0,
        "no preemption signal was expected with asyncpreemptoff=1: {:#}",
        list.0
    );

    let profile = json(&with.join("profile.json"));
    for name in GO_CALLS {
        let comment =
            allow_comment(&profile, name).unwrap_or_else(|| panic!("{name} is not allowed"));
        if list.count(name) == 0 {
            assert!(
                comment.contains(&format!("because the Go runtime ran ({go_path})")),
                "{name}: {comment}"
            );
        }
    }
    // The report says which runtime triggered the allowance.
    let report = json(&with.join("report.json"));
    let row = report["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "tgkill")
        .expect("tgkill in the report's allowed syscalls");
    let reason = row["reason"]["text"].as_str().unwrap();
    assert!(reason.contains("the Go runtime ran"), "{row:#}");

    // Forced preemption under the profile: nothing refused, three times.
    for i in 1..=3 {
        let (verify, done) = verify_spinning(&go, &with.join("profile.json"), dir.path());
        assert_eq!(
            refused(&verify),
            Vec::<String>::new(),
            "run {i}: {verify:#}"
        );
        assert_eq!(
            verify["exit_status"], 0,
            "run {i}: {verify:#}\n{}",
            done.stderr
        );
    }

    // Without the allowances the same profile refuses the preemption signal.
    let without = dir.path().join("without");
    audit_unpreempted(&go, &without, &["--no-timing-allowances"]);
    let bare = json(&without.join("profile.json"));
    assert_eq!(allow_comment(&bare, "tgkill"), None);
    let (verify, _) = verify_spinning(&go, &without.join("profile.json"), dir.path());
    assert!(refused(&verify).iter().any(|n| n == "tgkill"), "{verify:#}");
}
