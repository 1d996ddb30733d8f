//! `run` records the command's calls and nothing of its own: not the PATH search, not the
//! cgroup join, not the pre-exec set-up of the forked child. The reference is strace, an
//! independent tracer, on a statically linked program whose calls do not vary between runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::process::{run, run_ok};
use agent_audit_tests::{agent_audit_bin, require_root};

const TIMEOUT: Duration = Duration::from_secs(60);
/// Statically linked (Debian's busybox-static): no loader, the same calls on every run.
const PROGRAM: &[&str] = &["busybox", "echo", "launcher test"];

/// Calls per syscall name as `strace -f -c` counts them for the program.
fn strace_counts(dir: &Path) -> BTreeMap<String, u64> {
    let out = dir.join("strace.txt");
    run_ok(
        Command::new("strace")
            .args(["-f", "-c", "-U", "name,calls", "-o"])
            .arg(&out)
            .args(PROGRAM),
        TIMEOUT,
    );
    let text = std::fs::read_to_string(&out).expect("strace output");
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            let calls = words.next()?.parse().ok()?;
            (name != "total").then(|| (name.to_string(), calls))
        })
        .collect()
}

#[test]
fn root_run_records_only_the_commands_own_calls() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("allowlist.json");
    // A bare name: agent-audit searches PATH itself, in the parent.
    run_ok(
        Command::new(agent_audit_bin())
            .arg("run")
            .arg("--out")
            .arg(&out)
            .arg("--")
            .args(PROGRAM),
        TIMEOUT,
    );
    assert_only_the_programs_calls(dir.path(), &out);
}

/// Where `clone3` is refused (Docker's default profile fails it with ENOSYS, so in the
/// sidecar), the launcher forks and the child joins the cgroup by writing `cgroup.procs`: that
/// write, and the rest of its set-up, are not the command's either. `run` itself runs under
/// such a filter here, installed by `verify`.
#[test]
fn root_run_records_only_the_commands_own_calls_where_clone3_is_refused() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("allowlist.json");
    let no_clone3 = dir.path().join("no-clone3.json");
    std::fs::write(
        &no_clone3,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
    )
    .unwrap();
    let done = run(
        Command::new(agent_audit_bin())
            .arg("verify")
            .arg("--profile")
            .arg(&no_clone3)
            .arg("--")
            .arg(agent_audit_bin())
            .args(["-vv", "run", "--out"])
            .arg(&out)
            .arg("--")
            .args(PROGRAM),
        TIMEOUT,
    );
    done.assert_code(0);
    assert!(
        done.stderr.contains("joining by cgroup.procs"),
        "the launcher fell back: {}",
        done.stderr
    );
    assert_only_the_programs_calls(dir.path(), &out);
}

/// The allowlist at `out` holds the calls strace sees the program make, and nothing else.
fn assert_only_the_programs_calls(dir: &Path, out: &Path) {
    let list = Allowlist::read(out);

    for row in list.syscalls() {
        for program in row["programs"].as_array().into_iter().flatten() {
            assert_ne!(
                program["comm"], "agent-audit",
                "a call of agent-audit's own is in the allowlist: {row:#}"
            );
        }
    }
    assert!(
        list.rows("runtime_init").is_empty(),
        "the launcher's calls are not a runtime's init: {:#}",
        list.0
    );

    // The exec that started the program is its one execve (the PATH search made none); strace
    // counts calls as they return, so it has no exit_group.
    let mut expected = strace_counts(dir);
    assert_eq!(expected.get("execve"), Some(&1), "{expected:?}");
    expected.insert("exit_group".into(), 1);
    let recorded: BTreeMap<String, u64> = list
        .names()
        .into_iter()
        .map(|name| {
            let count = list.count(&name);
            (name, count)
        })
        .collect();
    assert_eq!(recorded, expected);
}
