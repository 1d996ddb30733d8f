//! Hostile and careless inputs that used to panic, mislead or wrap around: each
//! test reproduces one finding with the real binary and pins the behaviour that replaced it.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::foreground::RuncBundle;
use agent_audit_tests::process::{run, Finished};
use agent_audit_tests::profile::{self as seccomp, allowed_names};
use agent_audit_tests::{agent_audit_bin, require_root, unique_name, workspace_root};

const TIMEOUT: Duration = Duration::from_secs(60);

// The documented exit codes (agent-audit/src/exit.rs).
const FINDINGS: i32 = 1;
const USAGE: i32 = 2;
const DATA: i32 = 65;

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

fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} was not written: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A real profile for `CMD`: recorded with `run`, generated with `profile` (the baseline
/// allows `execve`, as runc needs it).
fn recorded_profile(dir: &Path, cmd: &[&str]) -> (std::path::PathBuf, Value) {
    let allowlist = dir.join("allowlist.json");
    let mut args = vec!["run", "--out", path_str(&allowlist), "--"];
    args.extend(cmd);
    agent_audit(&args).assert_code(0);
    Allowlist::read(&allowlist).assert_has(&["execve"]);
    let profile = dir.join("profile.json");
    agent_audit(&["profile", path_str(&allowlist), "-o", path_str(&profile)]).assert_code(0);
    (allowlist, seccomp::read(&profile))
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

/// 13.7: a profile that denies `execve` used to end `verify` with "cannot run: Operation not
/// permitted", exit 126, no result file and no probes. It is a denial like any other: in
/// `denied[]` with the errno the command got, the start failure in the result, exit 1, and
/// the probes still run.
#[test]
fn root_verify_reports_a_denied_execve_and_still_runs_the_probes() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let cmd = ["/bin/busybox", "sh", "-c", "ls / > /dev/null"];
    let (allowlist, profile) = recorded_profile(dir.path(), &cmd);
    let no_exec = seccomp::without_allowed(&profile, "execve");
    assert!(!allowed_names(&no_exec).contains("execve"));
    let no_exec_path = dir.path().join("no-execve.json");
    fs::write(&no_exec_path, serde_json::to_vec_pretty(&no_exec).unwrap()).unwrap();
    let result = dir.path().join("result.json");
    let mut args = vec![
        "verify",
        "--profile",
        path_str(&no_exec_path),
        "--allowlist",
        path_str(&allowlist),
        "--probe-dangerous",
        "-o",
        path_str(&result),
        "--",
    ];
    args.extend(cmd);
    let done = agent_audit(&args);
    done.assert_code(FINDINGS);
    let report = read_json(&result);
    assert_eq!(report["passed"], false, "{report:#}");
    assert_eq!(report["exit_status"], 126, "{report:#}");
    assert_eq!(report["start_failure"]["stage"], "exec", "{report:#}");
    assert_eq!(report["start_failure"]["errno"], libc::EPERM, "{report:#}");
    let denied = report["denied"].as_array().unwrap();
    let exec = denied
        .iter()
        .find(|d| d["name"] == "execve")
        .unwrap_or_else(|| panic!("execve is not among the denials: {report:#}"));
    assert_eq!(exec["count"], 1, "{report:#}");
    assert_eq!(exec["errno"], libc::EPERM, "{report:#}");
    assert_eq!(exec["observed_in_allowlist"], true, "{report:#}");
    let probes = report["probes"].as_array().expect("the probes ran");
    assert!(!probes.is_empty(), "{report:#}");
    assert!(probes.iter().all(|p| p["ok"] == true), "{report:#}");
    assert!(
        done.stdout.contains("did not start under the profile")
            && done
                .stdout
                .contains("execve [SCMP_ARCH_X86_64] x1 (errno 1)"),
        "{}",
        done.stdout
    );

    // A command that does not exist under a profile that allows exec: a start failure with
    // no denial, and 127 as a shell would say.
    let missing = dir.path().join("missing.json");
    agent_audit(&[
        "verify",
        "--profile",
        path_str(&dir.path().join("profile.json")),
        "-o",
        path_str(&missing),
        "--",
        "/nonexistent/agent-audit-command",
    ])
    .assert_code(FINDINGS);
    let report = read_json(&missing);
    assert_eq!(report["exit_status"], 127, "{report:#}");
    assert_eq!(report["start_failure"]["errno"], libc::ENOENT, "{report:#}");
    assert_eq!(report["denied"], Value::Array(vec![]), "{report:#}");
}

/// A failed exec used to be blamed on the profile. With a profile that does
/// not allow `write` (the launcher's failure report), `verify -- /bin/nonexistent` said exit
/// 139, `start_failure: null`, and listed the launcher's own calls (rt_sigaction, getpid,
/// tgkill, write) as the command's denials; a deny-all profile did the same with `/bin/true`.
/// Now: the start failure with its errno, 127 (126 for EPERM) as a shell says, and no call of
/// the launcher counted as the command's.
#[test]
fn root_verify_blames_a_failed_exec_on_the_exec_not_on_the_profile() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let allowlist = dir.path().join("true.json");
    agent_audit(&["run", "--out", path_str(&allowlist), "--", "/bin/true"]).assert_code(0);
    let profile = dir.path().join("no-write.json");
    agent_audit(&[
        "profile",
        "--no-baseline",
        path_str(&allowlist),
        "--out",
        path_str(&profile),
    ])
    .assert_code(0);
    assert!(
        !allowed_names(&read_json(&profile)).contains("write"),
        "/bin/true writes nothing"
    );
    let deny_all = dir.path().join("deny-all.json");
    fs::write(&deny_all, r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#).unwrap();
    let cases: [(&Path, &str, i32, i32, &[&str]); 2] = [
        (&profile, "/bin/nonexistent", 127, libc::ENOENT, &[]),
        (&deny_all, "/bin/true", 126, libc::EPERM, &["execve"]),
    ];
    for (profile, command, exit, errno, denials) in cases {
        let result = dir.path().join("result.json");
        let done = agent_audit(&[
            "verify",
            "--profile",
            path_str(profile),
            "-o",
            path_str(&result),
            "--",
            command,
        ]);
        done.assert_code(FINDINGS);
        let report = read_json(&result);
        assert_eq!(report["exit_status"], exit, "{command}: {report:#}");
        assert_eq!(report["start_failure"]["stage"], "exec", "{report:#}");
        assert_eq!(report["start_failure"]["errno"], errno, "{report:#}");
        let denied: Vec<&str> = report["denied"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(denied, denials, "{command}: {report:#}");
        assert!(
            done.stdout
                .contains("did not start under the profile: exec failed"),
            "{}",
            done.stdout
        );
    }
}

/// A real profile made long: the generated profile of a recorded command, plus one rule per
/// (level, option) pair of `setsockopt` it lets through, as a profile that pins socket
/// options would have: enough to pass the kernel's 4096-instruction limit on x86_64. Each
/// option has its own upper 32 bits, so that each rule compares both halves of it (about 4
/// instructions): 1 200 rules pass the limit, below the 4096 distinct rules a profile may
/// have.
fn oversized_profile(dir: &Path, cmd: &[&str]) -> std::path::PathBuf {
    let (_, mut profile) = recorded_profile(dir, cmd);
    // Not allowed unconditionally, or libseccomp would drop the conditional rules.
    assert!(!allowed_names(&profile).contains("setsockopt"));
    profile["architectures"] = serde_json::json!(["SCMP_ARCH_X86_64"]);
    let rules = profile["syscalls"].as_array_mut().unwrap();
    for (level, option) in (0..30u64).flat_map(|l| (0..40u64).map(move |o| (l, o))) {
        rules.push(serde_json::json!({
            "names": ["setsockopt"],
            "action": "SCMP_ACT_ALLOW",
            "args": [
                {"index": 1, "value": level, "op": "SCMP_CMP_EQ"},
                {"index": 2, "value": (option << 32) | option, "op": "SCMP_CMP_EQ"}
            ],
            "comment": format!("socket option {option} at level {level}"),
        }));
    }
    let path = dir.join("oversized.json");
    fs::write(&path, serde_json::to_vec_pretty(&profile).unwrap()).unwrap();
    path
}

/// 13.6: `check` said a 4 557-instruction filter compiles, though the kernel refuses filters
/// over 4096 instructions (BPF_MAXINSNS), and `verify` then failed with "Invalid argument",
/// exit 126. Now `check` reports the size as an error, and `verify` refuses the profile
/// before running anything: exit 65 with a message that says why, and no result file.
#[test]
fn root_a_filter_over_the_kernel_limit_is_refused_by_check_and_verify() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let script = format!("ls / > /dev/null; touch {}", marker.display());
    let cmd = ["/bin/busybox", "sh", "-c", &script];
    let profile = oversized_profile(dir.path(), &cmd);
    fs::remove_file(&marker).unwrap();

    let done = agent_audit(&["check", path_str(&profile), "--format", "json"]);
    done.assert_code(FINDINGS);
    let report: Value = serde_json::from_str(&done.stdout).unwrap();
    let too_large: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "filter-too-large")
        .collect();
    assert_eq!(too_large.len(), 1, "{report:#}");
    assert_eq!(too_large[0]["severity"], "error");
    assert_eq!(too_large[0]["arch"], "SCMP_ARCH_X86_64");
    let message = too_large[0]["message"].as_str().unwrap();
    let size: u64 = message.split_whitespace().next().unwrap().parse().unwrap();
    assert!(size > 4096 && message.contains("4096"), "{message}");
    assert!(
        !report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "compiles"),
        "{report:#}"
    );

    let result = dir.path().join("result.json");
    let mut args = vec![
        "verify",
        "--profile",
        path_str(&profile),
        "-o",
        path_str(&result),
        "--",
    ];
    args.extend(cmd);
    let done = agent_audit(&args);
    done.assert_code(DATA).assert_stderr_mentions(&[
        path_str(&profile),
        &format!("{size} BPF instructions"),
        "4096",
        "BPF_MAXINSNS",
    ]);
    assert!(
        !result.exists(),
        "verify wrote a result for a profile it cannot load"
    );
    assert!(
        !marker.exists(),
        "the command ran under a profile that cannot be loaded"
    );

    // What `check` says is what runc meets: the kernel refuses the filter.
    let bundle_dir = dir.path().join("bundle");
    fs::create_dir(&bundle_dir).unwrap();
    let bundle = RuncBundle::new(&bundle_dir, Path::new("/bin/busybox"), &[]);
    // The recorded profile without the extra rules runs: the size is what runc refuses.
    let recorded = seccomp::read(&dir.path().join("profile.json"));
    bundle.configure(&["/bin/busybox", "true"], Some(&recorded));
    bundle
        .run(&unique_name("aa-recorded"), TIMEOUT)
        .assert_code(0);
    bundle.configure(&["/bin/busybox", "true"], Some(&seccomp::read(&profile)));
    let done = bundle.run(&unique_name("aa-oversized"), TIMEOUT);
    assert_ne!(
        done.code(),
        0,
        "runc loaded the oversized filter: {done:#?}"
    );
    assert!(
        done.stderr.to_lowercase().contains("invalid argument"),
        "runc failed for another reason: {}",
        done.stderr
    );
}

/// The shell-commands fixture, edited by `change`, written to `dir/name`.
fn edited_fixture(dir: &Path, name: &str, change: impl FnOnce(&mut Value)) -> String {
    let mut list: Value = serde_json::from_str(
        &fs::read_to_string(fixture("shell-commands.allowlist.json")).unwrap(),
    )
    .unwrap();
    change(&mut list);
    let path = dir.join(name);
    fs::write(&path, serde_json::to_vec_pretty(&list).unwrap()).unwrap();
    path_str(&path).to_string()
}

/// `syscalls[0]` (`access`) made so large that this file's calls add up to `u64::MAX`
/// exactly (its totals stay consistent), with every program beyond the listed ones omitted.
fn near_the_limit(list: &mut Value) {
    let others: u64 = list["syscalls"].as_array().unwrap()[1..]
        .iter()
        .map(|s| s["count"].as_u64().unwrap())
        .sum();
    list["syscalls"][0]["count"] = (u64::MAX - others).into();
    list["syscalls"][0]["programs_omitted"] = u64::MAX.into();
    list["totals"]["calls"] = u64::MAX.into();
}

/// 13.10: merging counts used to wrap (u64::MAX + 2 → 1; a debug build panicked). Sums over
/// several files saturate at u64::MAX, and no share goes over 1.
#[test]
fn merged_counts_saturate_instead_of_wrapping() {
    let dir = tempfile::tempdir().unwrap();
    let a = edited_fixture(dir.path(), "a.json", near_the_limit);
    let b = edited_fixture(dir.path(), "b.json", near_the_limit);
    let profile = dir.path().join("profile.json");
    let rationale = dir.path().join("rationale.md");
    let done = agent_audit(&[
        "profile",
        &a,
        &b,
        "-o",
        path_str(&profile),
        "--rationale",
        path_str(&rationale),
    ]);
    assert_no_panic(&done);
    done.assert_code(0);
    let md = fs::read_to_string(&rationale).unwrap();
    let access = md.lines().find(|l| l.starts_with("| `access` |")).unwrap();
    assert!(access.contains(&format!("| {} |", u64::MAX)), "{access}");

    let done = agent_audit(&["report", &a, &b, "--format", "json"]);
    assert_no_panic(&done);
    done.assert_code(0);
    let report: Value = serde_json::from_str(&done.stdout).unwrap();
    assert_eq!(report["summary"]["totals"]["calls"], u64::MAX);
    let rows = report["syscalls"].as_array().unwrap();
    let access = rows.iter().find(|r| r["name"] == "access").unwrap();
    assert_eq!(access["count"], u64::MAX, "{access:#}");
    assert_eq!(access["programs"]["omitted"], u64::MAX, "{access:#}");
    for row in rows {
        let share = row["share"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&share), "{row:#}");
    }
    for format in ["md", "html"] {
        let done = agent_audit(&["report", &a, &b, "--format", format]);
        assert_no_panic(&done);
        done.assert_code(0);
    }
}

/// 13.10: `totals` that disagree with the entries used to be accepted (shares over 1).
/// Every command that reads an allowlist refuses it: exit 65, naming the field and both
/// numbers.
#[test]
fn inconsistent_totals_are_refused_naming_the_field_and_both_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            edited_fixture(dir.path(), "calls.json", |l| {
                l["totals"]["calls"] = 5.into()
            }),
            ["totals.calls is 5", "make 700"],
        ),
        (
            edited_fixture(dir.path(), "distinct.json", |l| {
                l["totals"]["distinct"] = 40.into()
            }),
            ["totals.distinct is 40", "make 43"],
        ),
        // One file whose own counts do not fit in 64 bits.
        (
            edited_fixture(dir.path(), "overflow.json", |l| {
                l["syscalls"][0]["count"] = u64::MAX.into();
                l["totals"]["calls"] = u64::MAX.into();
            }),
            [
                "totals.calls is 18446744073709551615",
                "make 18446744073709552308",
            ],
        ),
    ];
    let profile_out = dir.path().join("p.json");
    for (file, needles) in &cases {
        for args in [
            vec!["profile", file, "-o", path_str(&profile_out)],
            vec!["report", file, "--format", "json"],
            vec!["diff", file, file],
        ] {
            let done = agent_audit(&args);
            assert_no_panic(&done);
            done.assert_code(DATA)
                .assert_stderr_mentions(&[file.as_str(), needles[0], needles[1]]);
            assert!(done.stdout.is_empty(), "{args:?}: {}", done.stdout);
        }
    }
    assert!(!profile_out.exists());
}
