//! Hostile and careless inputs that used to panic, mislead or wrap around (issue 13): each
//! test reproduces one finding with the real binary and pins the behaviour that replaced it.

use std::process::{Command, Stdio};
use std::time::Duration;

use agent_audit_tests::process::{run, Finished};
use agent_audit_tests::{agent_audit_bin, workspace_root};

const TIMEOUT: Duration = Duration::from_secs(60);

// The documented exit codes (agent-audit/src/exit.rs).
const USAGE: i32 = 2;

fn agent_audit(args: &[&str]) -> Finished {
    run(Command::new(agent_audit_bin()).args(args), TIMEOUT)
}

fn fixture(name: &str) -> String {
    workspace_root()
        .join("tests/data/allowlists")
        .join(name)
        .display()
        .to_string()
}

fn assert_no_panic(done: &Finished) {
    assert!(
        !done.stderr.contains("panicked"),
        "agent-audit panicked:\n{}",
        done.stderr
    );
}

/// 13.9: `report … | head -1` used to panic (exit 101) once the reader was gone. Here the
/// reader is gone before anything is written, so every write hits a broken pipe.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let allowlist = fixture("shell-commands.allowlist.json");
    let profile = workspace_root()
        .join("tests/data/profiles/gh-aw-firewall-agent-seccomp.json")
        .display()
        .to_string();
    let cases: [(&[&str], i32); 5] = [
        (&["report", &allowlist, "--format", "html"], 0),
        (&["report", &allowlist, "--format", "json"], 0),
        (&["report", &allowlist, "--format", "md"], 0),
        (&["diff", "--format", "json", &allowlist, &allowlist], 0),
        // `check` keeps its verdict: this hand-written profile has errors.
        (&["check", &profile], 1),
    ];
    for (args, code) in cases {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let child = Command::new(agent_audit_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?} printed: {stderr}");
    }
}

/// 13.9: `--interval 18446744073709551615` and `--duration 1e300` used to panic converting
/// to a Duration. Every duration is bounded: exit 2 naming the flag and the range, before
/// anything is loaded or written.
#[test]
fn out_of_range_durations_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.json").display().to_string();
    let cases: [(&str, &str, &str); 8] = [
        ("--interval", "18446744073709551615", "from 0.1 to 86400"),
        ("--interval", "1e300", "from 0.1 to 86400"),
        ("--interval", "0", "from 0.1 to 86400"),
        ("--interval", "NaN", "from 0.1 to 86400"),
        ("--duration", "1e300", "from 0.001 to 31536000"),
        ("--duration", "inf", "from 0.001 to 31536000"),
        ("--duration", "-5", "from 0.001 to 31536000"),
        ("--duration", "soon", "from 0.001 to 31536000"),
    ];
    for (flag, value, range) in cases {
        let arg = format!("{flag}={value}");
        let done = agent_audit(&["record", "--cgroup-id", "1", &arg, "--out", &out]);
        assert_no_panic(&done);
        done.assert_code(USAGE)
            .assert_stderr_mentions(&[flag, value, range]);
    }
    assert!(!std::path::Path::new(&out).exists());
}
