use std::path::{Path, PathBuf};

use super::*;
use crate::allowlist::{Allowlist, PrivilegeDrop, ProgramCount};
use crate::profile::{self, build as plan_build, oci, ProfileOptions};

/// An allowlist of `calls` (arch, name, count), each made by `comm` as root.
fn recording(spec: &str, comm: &str, calls: &[(Arch, &str, u64)]) -> Allowlist {
    let mut list = Allowlist::for_tests_of_command(spec, calls);
    for s in &mut list.syscalls {
        s.programs = vec![ProgramCount {
            comm: comm.into(),
            as_root: true,
            count: s.count,
            first_seen: time::OffsetDateTime::UNIX_EPOCH,
            last_seen: time::OffsetDateTime::UNIX_EPOCH,
        }];
    }
    list
}

fn write(dir: &Path, name: &str, list: &Allowlist) -> PathBuf {
    let path = dir.join(name);
    list.write(&path).unwrap();
    path
}

const X: Arch = Arch::X86_64;

/// Two runs: `a` reads and opens files; `b` also writes and calls ptrace.
fn two_runs(dir: &Path) -> Vec<PathBuf> {
    let a = recording(
        "a",
        "cat",
        &[(X, "read", 6), (X, "openat", 3), (X, "execve", 1)],
    );
    let b = recording(
        "b",
        "tool",
        &[(X, "read", 2), (X, "write", 7), (X, "ptrace", 1)],
    );
    vec![write(dir, "a.json", &a), write(dir, "b.json", &b)]
}

fn inputs(allowlists: Vec<PathBuf>) -> ReportInputs {
    ReportInputs {
        allowlists,
        ..Default::default()
    }
}

#[test]
fn without_a_profile_the_generated_one_is_reviewed() {
    let dir = tempfile::tempdir().unwrap();
    let paths = two_runs(dir.path());
    let report = build(&inputs(paths.clone())).unwrap();
    let merged = profile::read_and_merge(&paths).unwrap();
    let plan = plan_build::plan(
        &merged,
        &ProfileOptions {
            baseline: true,
            ..Default::default()
        },
    )
    .unwrap();
    let names: Vec<&str> = report.syscalls.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, plan.allowed_names());
    assert_eq!(report.summary.profile.allowed, plan.allowed_names().len());
    assert_eq!(
        report.summary.profile.denied_explicitly,
        plan.denied_names().len()
    );
    assert_eq!(report.summary.totals.calls, 20);
    assert_eq!(report.summary.runs.len(), 2);

    let read = report.syscalls.iter().find(|r| r.name == "read").unwrap();
    assert_eq!((read.count, read.category.as_str()), (8, "file"));
    assert_eq!(read.share, 0.4);
    assert_eq!(read.reason.kind, "observed");
    assert_eq!(read.programs.summary(5, false), "cat ×6, tool ×2");
    let baseline = report.syscalls.iter().find(|r| r.count == 0).unwrap();
    assert_eq!(baseline.reason.kind, "baseline", "{baseline:?}");

    // ptrace was observed, is dangerous, and the generated profile denies it.
    let danger = &report.findings.dangerous_observed;
    assert_eq!(danger.len(), 1);
    assert_eq!(
        (danger[0].name.as_str(), danger[0].allowed),
        ("ptrace", false)
    );
    assert!(danger[0].profile_action.contains("denied explicitly"));
    let denied: Vec<_> = report.findings.denied_but_used.iter().collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].name.as_deref(), Some("ptrace"));
    assert_eq!(denied[0].nr, X.syscall_nr("ptrace"));

    // Categories add up to the table.
    let in_categories: usize = report.categories.iter().map(|c| c.syscalls).sum();
    assert_eq!(in_categories, report.syscalls.len());
    assert!(report.findings.notes[0].contains("no --profile"));
}

#[test]
fn a_given_profile_its_base_and_accepted_risks() {
    let dir = tempfile::tempdir().unwrap();
    let paths = two_runs(dir.path());
    // The reviewed profile accepts ptrace, drops write; the base allowed write but not ptrace.
    let profile = r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],
      "syscalls":[
        {"names":["read","openat","execve"],"action":"SCMP_ACT_ALLOW","comment":"observed"},
        {"names":["ptrace"],"action":"SCMP_ACT_ALLOW","comment":"ACCEPTED RISK: the debugger"},
        {"names":["mount"],"action":"SCMP_ACT_ERRNO","errnoRet":1,"comment":"no mounts"}]}"#;
    let base = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["read","openat","execve","write"],"action":"SCMP_ACT_ALLOW"}]}"#;
    std::fs::write(dir.path().join("p.json"), profile).unwrap();
    std::fs::write(dir.path().join("old.json"), base).unwrap();
    let report = build(&ReportInputs {
        allowlists: paths,
        profile: Some(dir.path().join("p.json")),
        base: Some(dir.path().join("old.json")),
        verify: None,
    })
    .unwrap();
    let s = &report.summary;
    assert_eq!((s.profile.allowed, s.profile.denied_explicitly), (4, 1));
    let base = s.base.as_ref().unwrap();
    assert_eq!(
        (base.added.clone(), base.removed.clone()),
        (vec!["ptrace".to_string()], vec!["write".to_string()])
    );
    let ptrace = report.syscalls.iter().find(|r| r.name == "ptrace").unwrap();
    assert_eq!(ptrace.reason.kind, "accepted-risk");
    assert!(ptrace.dangerous);
    assert!(report.findings.dangerous_observed[0].allowed);
    assert!(report.findings.dangerous_observed[0]
        .profile_action
        .contains("accepted risk"));
    let denied: Vec<&str> = report
        .findings
        .denied_but_used
        .iter()
        .filter_map(|d| d.name.as_deref())
        .collect();
    assert_eq!(denied, vec!["write"]);
    assert!(
        report.findings.notes.is_empty(),
        "{:?}",
        report.findings.notes
    );
}

#[test]
fn verify_results_x86_gaps_runtime_init_and_privilege_drop() {
    let dir = tempfile::tempdir().unwrap();
    let mut list = recording(
        "c",
        "app",
        &[(X, "clock_gettime", 4), (X, "read", 1), (X, "setuid", 1)],
    );
    list.runtime_init = recording("c", "runc", &[(X, "pivot_root", 1), (X, "read", 9)]).syscalls;
    list.privilege_drop = Some(PrivilegeDrop {
        first_unprivileged_call: time::OffsetDateTime::UNIX_EPOCH,
        root_only: vec!["SCMP_ARCH_X86_64:setuid".into()],
        unprivileged: vec!["SCMP_ARCH_X86_64:read".into()],
    });
    let path = write(dir.path(), "c.json", &list);
    // A profile listing x86 too, generated without translation: x86 lacks clock_gettime64.
    let profile = r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
      "syscalls":[{"names":["clock_gettime","read","setuid"],"action":"SCMP_ACT_ALLOW","comment":"seen"}]}"#;
    std::fs::write(dir.path().join("p.json"), profile).unwrap();
    let verify = r#"{"profile":"p.json","denied":[{"arch":"SCMP_ARCH_X86","name":"clock_gettime64","nr":403,"count":2}]}"#;
    std::fs::write(dir.path().join("v.json"), verify).unwrap();
    let report = build(&ReportInputs {
        allowlists: vec![path],
        profile: Some(dir.path().join("p.json")),
        base: None,
        verify: Some(dir.path().join("v.json")),
    })
    .unwrap();
    let f = &report.findings;
    let gaps: Vec<(Arch, &str)> = f
        .arch_gaps
        .iter()
        .map(|g| (g.arch, g.name.as_str()))
        .collect();
    assert!(gaps.contains(&(Arch::X86, "clock_gettime64")), "{gaps:?}");
    let from_verify: Vec<_> = f
        .denied_but_used
        .iter()
        .filter(|d| d.source == DeniedSource::Verify)
        .collect();
    assert_eq!(from_verify.len(), 1);
    assert_eq!((from_verify[0].nr, from_verify[0].count), (Some(403), 2));
    // The JSON keeps the words it had when `source` was a string.
    let json = serde_json::to_value(from_verify[0]).unwrap();
    assert_eq!(json["source"], "verify", "{json}");
    assert_eq!(
        serde_json::to_value(DeniedSource::Recording).unwrap(),
        "recording"
    );
    assert_eq!(f.runtime_init_only.len(), 1);
    assert_eq!(
        (
            f.runtime_init_only[0].name.as_str(),
            f.runtime_init_only[0].profile
        ),
        ("pivot_root", RuntimeInitVerdict::Denied)
    );
    // Denied as it should be: shown, but nothing for a reviewer to do.
    assert_eq!(f.runtime_init_needs_review().count(), 0);
    assert_eq!(f.privilege_drops.len(), 1);
    assert_eq!(
        f.privilege_drops[0].root_only,
        vec!["SCMP_ARCH_X86_64:setuid"]
    );
}

#[test]
fn bad_inputs_map_to_documented_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let paths = two_runs(dir.path());
    let with = |profile: Option<PathBuf>, verify: Option<PathBuf>| {
        build(&ReportInputs {
            allowlists: paths.clone(),
            profile,
            base: None,
            verify,
        })
        .unwrap_err()
        .exit_code()
    };
    let missing = dir.path().join("missing.json");
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{not json").unwrap();
    assert_eq!(with(Some(missing.clone()), None).0, 66);
    assert_eq!(with(Some(garbage.clone()), None).0, 65);
    assert_eq!(with(None, Some(missing.clone())).0, 66);
    assert_eq!(with(None, Some(garbage)).0, 65);
    let err = build(&inputs(vec![missing])).unwrap_err();
    assert_eq!(err.exit_code().0, 66, "{err}");
}

#[test]
fn output_is_identical_whatever_the_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let paths = two_runs(dir.path());
    let mut reversed = paths.clone();
    reversed.reverse();
    let one = build(&inputs(paths)).unwrap();
    let two = build(&inputs(reversed)).unwrap();
    assert_eq!(json::render(&one), json::render(&two));
    assert_eq!(markdown::render(&one), markdown::render(&two));
    assert_eq!(html::render(&one), html::render(&two));
}

#[test]
fn markdown_fits_a_comment_and_folds_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let report = build(&inputs(two_runs(dir.path()))).unwrap();
    let md = markdown::render(&report);
    assert!(md.len() <= markdown::COMMENT_LIMIT);
    assert!(md.find("### Findings").unwrap() < md.find("### Summary").unwrap());
    assert!(md.contains("<details><summary>All "));
    for row in &report.syscalls {
        assert!(
            md.contains(&format!("| `{}` |", row.name)),
            "{} missing",
            row.name
        );
    }
    assert!(!md.contains("more row(s)"));

    // A report far too long for a comment is cut table by table, and says so.
    let mut huge = report.clone();
    let template = huge.syscalls[0].clone();
    huge.syscalls = (0..3000)
        .map(|i| SyscallRow {
            name: format!("call{i:04}"),
            description: "x".repeat(100),
            ..template.clone()
        })
        .collect();
    let md = markdown::render(&huge);
    assert!(md.len() <= markdown::COMMENT_LIMIT, "{} bytes", md.len());
    assert!(md.contains("more row(s), left out to fit a pull-request comment"));
    assert!(md.contains("| `call0000` |"));
}

#[test]
fn html_is_self_contained_with_one_bar_per_category() {
    let dir = tempfile::tempdir().unwrap();
    let report = build(&inputs(two_runs(dir.path()))).unwrap();
    let page = html::render(&report);
    for external in ["http://", "https://", " src=", "<link", "@import", "url("] {
        assert!(!page.contains(external), "page refers to {external}");
    }
    let chart = &page[page.find("id=\"chart-categories\"").unwrap()..];
    let chart = &chart[..chart.find("</svg>").unwrap()];
    assert_eq!(
        chart.matches("<g class=\"bar\"").count(),
        report.categories.len()
    );
    assert!(page.contains("<table id=\"syscall-table\" class=\"sortable\">"));
    assert!(page.contains("@media print"));
}

#[test]
fn rows_of_the_generated_plan_and_the_oci_file_agree() {
    // The report reads the profile file form; a generated plan must read back identically.
    let dir = tempfile::tempdir().unwrap();
    let paths = two_runs(dir.path());
    let merged = profile::read_and_merge(&paths).unwrap();
    let plan = plan_build::plan(
        &merged,
        &ProfileOptions {
            baseline: true,
            ..Default::default()
        },
    )
    .unwrap();
    let file = dir.path().join("p.json");
    oci::to_seccomp_profile(&plan).write(&file).unwrap();
    let generated = build(&inputs(paths.clone())).unwrap();
    let given = build(&ReportInputs {
        allowlists: paths,
        profile: Some(file),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(generated.syscalls, given.syscalls);
    assert_eq!(
        generated.findings.dangerous_observed,
        given.findings.dangerous_observed
    );
}

#[test]
fn a_failed_verification_is_the_first_finding() {
    let dir = tempfile::tempdir().unwrap();
    let runs = two_runs(dir.path());
    // A failed probe and a failing command, no denial: verify said FAILED.
    let verify = r#"{"denied":[],"exit_status":128,"passed":false,
        "probes":[{"syscall":"clone3","expected_errno":38,"errno":22,"if_allowed":"EINVAL","ok":false},
                  {"syscall":"mount","expected_errno":1,"errno":1,"if_allowed":"EFAULT","ok":true}]}"#;
    std::fs::write(dir.path().join("v.json"), verify).unwrap();
    let report = build(&ReportInputs {
        verify: Some(dir.path().join("v.json")),
        ..inputs(runs.clone())
    })
    .unwrap();
    let kinds: Vec<VerifyFailureKind> = report
        .findings
        .verify_failed
        .iter()
        .map(|f| f.kind)
        .collect();
    assert_eq!(
        kinds,
        [VerifyFailureKind::Probe, VerifyFailureKind::ExitStatus]
    );
    assert!(report.findings.verify_failed[0].what.contains("clone3"));
    assert_eq!(report.summary.verify_passed, Some(false));
    let md = markdown::render(&report);
    let failed = md.find("Verify FAILED").expect("verify section");
    let dangerous = md
        .find("Dangerous syscalls observed")
        .expect("ptrace is dangerous");
    assert!(failed < dangerous, "{md}");
    assert!(html::render(&report).contains("id=\"verify-failed\""));

    // A capability granted when recorded and refused under verify is its own failure; one
    // refused when recorded too is not.
    std::fs::write(
        dir.path().join("v.json"),
        r#"{"denied":[],"exit_status":0,"passed":false,"capabilities":[
            {"capability":"SETUID","checks":{"granted":0,"refused":2},"recorded":"granted",
             "finding":"capability-refused"},
            {"capability":"SYS_RESOURCE","checks":{"granted":0,"refused":1},
             "recorded":"refused","finding":"refused-when-recorded"}]}"#,
    )
    .unwrap();
    let report = build(&ReportInputs {
        verify: Some(dir.path().join("v.json")),
        ..inputs(runs.clone())
    })
    .unwrap();
    let failed = &report.findings.verify_failed;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].kind, VerifyFailureKind::CapabilityRefused);
    assert!(failed[0].what.contains("CAP_SETUID"), "{}", failed[0].what);

    // Even a result that only says FAILED is a finding: never "0 findings".
    std::fs::write(dir.path().join("v.json"), r#"{"denied":[],"passed":false}"#).unwrap();
    let list = recording("c", "true", &[(X, "read", 1)]);
    let report = build(&ReportInputs {
        verify: Some(dir.path().join("v.json")),
        ..inputs(vec![write(dir.path(), "c.json", &list)])
    })
    .unwrap();
    assert_eq!(report.finding_count(), 1, "{:?}", report.findings);
    assert_eq!(
        report.findings.verify_failed[0].kind,
        VerifyFailureKind::Failed
    );

    // clone3 refused with ENOSYS on purpose (the libc falls back to clone): not a finding.
    std::fs::write(
        dir.path().join("v.json"),
        r#"{"denied":[{"arch":"SCMP_ARCH_X86_64","name":"clone3","nr":435,"count":4,"fallback":true}],
            "exit_status":0,"passed":true}"#,
    )
    .unwrap();
    let report = build(&ReportInputs {
        verify: Some(dir.path().join("v.json")),
        ..inputs(vec![dir.path().join("c.json")])
    })
    .unwrap();
    assert_eq!(report.finding_count(), 0, "{:?}", report.findings);
    assert_eq!(report.summary.verify_passed, Some(true));
}

#[test]
fn a_container_that_did_not_start_is_the_first_finding_and_its_verify_is_described() {
    let dir = tempfile::tempdir().unwrap();
    let list = recording("c", "true", &[(X, "read", 1)]);
    let runs = vec![write(dir.path(), "c.json", &list)];
    let container = r#""container":{"container":"agent","verify_container":"agent-v",
        "image":"debian-agent","capabilities":"no capabilities",
        "probes":"host-with-container-capabilities","baseline_container":"agent-b"}"#;
    let failed = format!(
        r#"{{"denied":[],"exit_status":125,"passed":false,{container},
            "start_failure":{{"stage":"container-start","error":"engine answered HTTP 500: exec failed"}}}}"#
    );
    std::fs::write(dir.path().join("v.json"), failed).unwrap();
    let report = build(&ReportInputs {
        verify: Some(dir.path().join("v.json")),
        ..inputs(runs.clone())
    })
    .unwrap();
    let f = &report.findings.verify_failed;
    // The start failure, not also an exit status.
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].kind, VerifyFailureKind::Start);
    assert!(f[0].what.contains("exec failed"), "{f:?}");
    let note = report.summary.verify_note.clone().unwrap();
    assert!(
        note.contains("ran on the host") && note.contains("agent-b"),
        "{note}"
    );
    let md = markdown::render(&report);
    assert!(md.find("Verify FAILED").unwrap() < md.find("### Summary").unwrap());
    assert!(html::render(&report).contains("verify-note"));

    // A refusal the container's own configuration makes too is no finding, and is named.
    let passed = format!(
        r#"{{"denied":[{{"arch":"SCMP_ARCH_X86_64","name":"pkey_alloc","nr":330,"count":2,
            "refused_before":true}}],"exit_status":0,"passed":true,{container}}}"#
    );
    std::fs::write(dir.path().join("v.json"), passed).unwrap();
    let report = build(&ReportInputs {
        verify: Some(dir.path().join("v.json")),
        ..inputs(runs)
    })
    .unwrap();
    assert_eq!(report.finding_count(), 0, "{:?}", report.findings);
    assert!(report
        .summary
        .verify_note
        .unwrap()
        .contains("pkey_alloc x2"));
}

#[test]
fn a_timeout_and_processes_left_running_come_before_every_other_verify_failure() {
    let dir = tempfile::tempdir().unwrap();
    let list = recording("c", "true", &[(X, "read", 1)]);
    let runs = vec![write(dir.path(), "c.json", &list)];
    let verify = r#"{"denied":[{"arch":"SCMP_ARCH_X86_64","name":"kill","nr":62,"count":1}],
        "exit_status":137,"passed":false,"timeout_seconds":2.5,"timed_out":true,
        "survivors":[{"pid":4242,"command":"sleep 600"}],
        "probes":[{"syscall":"mount","expected_errno":1,"errno":0,"if_allowed":"EFAULT","ok":false}]}"#;
    std::fs::write(dir.path().join("v.json"), verify).unwrap();
    let report = build(&ReportInputs {
        verify: Some(dir.path().join("v.json")),
        ..inputs(runs)
    })
    .unwrap();
    let failed = &report.findings.verify_failed;
    let kinds: Vec<VerifyFailureKind> = failed.iter().map(|f| f.kind).collect();
    // No exit-status entry: 137 is the SIGKILL of the timeout, which says it already.
    assert_eq!(
        kinds,
        [
            VerifyFailureKind::TimedOut,
            VerifyFailureKind::LeftRunning,
            VerifyFailureKind::Probe
        ]
    );
    assert!(failed[0].what.contains("after 2.5s"), "{}", failed[0].what);
    assert!(
        failed[1].what.contains("pid 4242 `sleep 600`"),
        "{}",
        failed[1].what
    );
    let md = markdown::render(&report);
    let section = md.find("Verify FAILED").expect("verify section");
    let timed_out = md
        .find("timed out under the profile")
        .expect("timeout line");
    let left = md
        .find("left 1 process(es) running")
        .expect("survivor line");
    let denied = md.find("denied: `kill`").expect("the denial");
    assert!(
        section < timed_out && timed_out < left && left < denied,
        "{md}"
    );

    // An older result without `passed`: the survivors alone make it a failure.
    std::fs::write(
        dir.path().join("v.json"),
        r#"{"denied":[],"exit_status":0,"survivors":[{"pid":7,"command":"[worker]"}]}"#,
    )
    .unwrap();
    let report = build(&ReportInputs {
        verify: Some(dir.path().join("v.json")),
        ..inputs(vec![dir.path().join("c.json")])
    })
    .unwrap();
    assert_eq!(report.summary.verify_passed, Some(false));
    assert_eq!(
        report.findings.verify_failed[0].kind,
        VerifyFailureKind::LeftRunning
    );
}

#[test]
fn a_process_that_left_the_cgroup_is_a_verify_failure_and_a_probe_error_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let list = recording("c", "true", &[(X, "read", 1)]);
    let runs = vec![write(dir.path(), "c.json", &list)];
    let verify = r#"{"denied":[],"exit_status":0,"passed":false,"timed_out":false,
        "survivors":[],"left_cgroup":[{"pid":4242,"program":"sh","to_cgroup_id":1,"killed":[]}],
        "probes":[{"syscall":"clone","expected_errno":0,"errno":0,"if_allowed":"success",
                   "ok":false,"error":"fork failed"}]}"#;
    std::fs::write(dir.path().join("v.json"), verify).unwrap();
    let report = build(&ReportInputs {
        verify: Some(dir.path().join("v.json")),
        ..inputs(runs)
    })
    .unwrap();
    let failed = &report.findings.verify_failed;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].kind, VerifyFailureKind::LeftRunning);
    assert!(
        failed[0].what.contains("left the command's cgroup") && failed[0].what.contains("pid 4242"),
        "{}",
        failed[0].what
    );
}

#[test]
fn convergence_follows_recording_order_and_flags_a_last_run_that_added() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    // Labels sort the other way round from the start times.
    for (i, (name, calls)) in [
        ("z.json", vec![(X, "read", 1)]),
        ("a.json", vec![(X, "read", 1), (X, "sched_yield", 2)]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut list = recording("prog --flag", "prog", &calls);
        list.started_at =
            time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(i64::try_from(i).unwrap());
        paths.push(write(dir.path(), name, &list));
    }
    let report = build(&inputs(paths)).unwrap();
    let c = &report.summary.convergence;
    assert_eq!(
        c.runs[0].file,
        dir.path().join("z.json").display().to_string()
    );
    assert_eq!(c.runs[1].added, ["sched_yield"]);
    assert_eq!(c.line, "run 2 added `sched_yield`: record more runs");
    let not_converged = report.findings.not_converged.as_ref().expect("a finding");
    assert_eq!(not_converged.run, 2);
    assert!(markdown::render(&report).contains("**Not converged**"));
    // Recordings of different workloads are not runs of one: no such finding.
    let other = recording("other", "other", &[(X, "read", 1), (X, "futex", 1)]);
    let mixed = vec![
        dir.path().join("z.json"),
        write(dir.path(), "other.json", &other),
    ];
    assert!(build(&inputs(mixed))
        .unwrap()
        .findings
        .not_converged
        .is_none());
    let json: serde_json::Value = serde_json::from_str(&json::render(&report)).unwrap();
    assert_eq!(json["summary"]["convergence"]["runs"][1]["added_count"], 1);
}

#[test]
fn narrowed_syscalls_show_what_was_observed_and_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut list = recording("n", "srv", &[(X, "read", 2), (X, "socket", 3)]);
    for s in list
        .syscalls
        .iter_mut()
        .filter(|s| s.name.as_deref() == Some("socket"))
    {
        s.args = vec![crate::allowlist::ArgRecord::values(
            0,
            None,
            [(2, 3)],
            false,
        )];
    }
    let report = build(&inputs(vec![write(dir.path(), "n.json", &list)])).unwrap();
    let socket = report.syscalls.iter().find(|r| r.name == "socket").unwrap();
    assert!(socket.conditional);
    let args = socket.arguments.as_ref().expect("argument summary");
    assert_eq!(args.observed, "AF_INET (2) ×3");
    assert_eq!(args.allowed, "AF_INET (2)");
    assert!(
        socket.reason.text.contains("Only for: AF_INET (2)"),
        "{:?}",
        socket.reason
    );
    let read = report.syscalls.iter().find(|r| r.name == "read").unwrap();
    assert!(read.arguments.is_none());
}

/// Calls only runc's init made: denied (made before the filter), allowed for the runtime
/// (baseline), or allowed for no reason — only the last is a finding.
#[test]
fn only_runtime_init_calls_the_profile_allows_for_no_reason_are_findings() {
    let dir = tempfile::tempdir().unwrap();
    let mut list = recording("c", "app", &[(X, "read", 3)]);
    list.runtime_init = recording(
        "c",
        "runc",
        &[
            (X, "pivot_root", 1),
            (X, "capset", 2),
            (X, "sethostname", 1),
        ],
    )
    .syscalls;
    let path = write(dir.path(), "c.json", &list);
    let profile = r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],
      "syscalls":[{"names":["read","capset","sethostname"],"action":"SCMP_ACT_ALLOW"}]}"#;
    std::fs::write(dir.path().join("p.json"), profile).unwrap();
    let report = build(&ReportInputs {
        allowlists: vec![path],
        profile: Some(dir.path().join("p.json")),
        ..Default::default()
    })
    .unwrap();
    let verdicts: Vec<(&str, RuntimeInitVerdict)> = report
        .findings
        .runtime_init_only
        .iter()
        .map(|r| (r.name.as_str(), r.profile))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("capset", RuntimeInitVerdict::RuntimeBaseline),
            ("pivot_root", RuntimeInitVerdict::Denied),
            ("sethostname", RuntimeInitVerdict::Allowed),
        ]
    );
    let review: Vec<&str> = report
        .findings
        .runtime_init_needs_review()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(review, vec!["sethostname"]);
    assert_eq!(report.finding_count(), 1);
    let md = markdown::render(&report);
    assert!(
        md.contains("| `sethostname` | 1 | ALLOWED, not needed |"),
        "{md}"
    );
    assert!(
        md.contains("| `capset` | 2 | allowed (runtime baseline) |"),
        "{md}"
    );
}

/// What the profile in force refused comes first, with programs and counts, and
/// whether the profile under review allows it now.
#[test]
fn refusals_are_listed_first_with_programs_and_counts() {
    use crate::allowlist::{RefusalAction, RefusedCall, RefusingFilter};
    let dir = tempfile::tempdir().unwrap();
    let mut list = recording("a", "cat", &[(X, "read", 6), (X, "execve", 1)]);
    let refused = |name: &str, count, action| RefusedCall {
        name: Some(name.into()),
        arch: X,
        nr: X.syscall_nr(name).unwrap(),
        count,
        action,
        filter: RefusingFilter::Runtime,
        runtime_init: false,
        programs: vec![ProgramCount {
            comm: "mkdir".into(),
            as_root: false,
            count,
            first_seen: time::OffsetDateTime::UNIX_EPOCH,
            last_seen: time::OffsetDateTime::UNIX_EPOCH,
        }],
    };
    list.refused = vec![
        refused("mkdir", 3, RefusalAction::Errno),
        refused("ptrace", 5, RefusalAction::Kill),
    ];
    let report = build(&inputs(vec![write(dir.path(), "a.json", &list)])).unwrap();
    let rows: Vec<(&str, u64, bool)> = report
        .refused
        .iter()
        .map(|r| (r.name.as_str(), r.count, r.allowed_now))
        .collect();
    // The generated profile allows mkdir now; ptrace stays denied (dangerous).
    assert_eq!(rows, vec![("ptrace", 5, false), ("mkdir", 3, true)]);
    assert_eq!(report.refused[0].actions, vec![RefusalAction::Kill]);
    let md = markdown::render(&report);
    let refused_at = md.find("### Refused under the profile in force").unwrap();
    assert!(refused_at < md.find("### Findings").unwrap(), "{md}");
    assert!(
        md.contains("| `mkdir` | x86_64 | 3 | errno | allowed | mkdir ×3 |"),
        "{md}"
    );
    let json = json::render(&report);
    assert!(json.contains("\"refused\""), "{json}");
    let page = html::render(&report);
    let refused_at = page.find("Refused under the profile in force").unwrap();
    assert!(refused_at < page.find("<h2>Findings (").unwrap());
}

/// A daemon that starts as root and drops to its user (squid), audited in 3
/// runs, whose runtime init made `sched_yield` — which `audit` allowed as a timing-dependent
/// call because the workload made futex calls. Nothing asks for a change: the privilege drop
/// is information (one entry naming the 3 runs), `sched_yield` a documented allowance.
#[test]
fn a_daemon_dropping_privileges_with_a_timing_allowance_has_no_finding() {
    let dir = tempfile::tempdir().unwrap();
    let daemon_run = |k: usize, futex: bool| {
        let mut calls = vec![(X, "read", 3), (X, "setgroups", 1), (X, "setuid", 1)];
        if futex {
            calls.push((X, "futex", 2));
        }
        let mut list = recording("squid", "squid", &calls);
        list.target.kind = "container".into();
        list.runtime_init = recording(
            "squid",
            "runc:[2:INIT]",
            &[
                (X, "sched_yield", 1),
                (X, "pivot_root", 1),
                (X, "capset", 2),
            ],
        )
        .syscalls;
        list.privilege_drop = Some(PrivilegeDrop {
            first_unprivileged_call: time::OffsetDateTime::UNIX_EPOCH,
            root_only: vec!["SCMP_ARCH_X86_64:setuid".into()],
            unprivileged: vec!["SCMP_ARCH_X86_64:read".into()],
        });
        write(dir.path(), &format!("allowlist-{k}-{futex}.json"), &list)
    };
    let profile = r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],
      "syscalls":[{"names":["read","futex","setgroups","setuid","capset"],"action":"SCMP_ACT_ALLOW"},
      {"names":["sched_yield"],"action":"SCMP_ACT_ALLOW","comment":"timing-dependent, allowed by `audit`"}]}"#;
    std::fs::write(dir.path().join("p.json"), profile).unwrap();
    std::fs::write(dir.path().join("v.json"), r#"{"denied":[],"passed":true}"#).unwrap();
    let report_of = |futex: bool| {
        build(&ReportInputs {
            allowlists: (1..=3).map(|k| daemon_run(k, futex)).collect(),
            profile: Some(dir.path().join("p.json")),
            base: None,
            verify: Some(dir.path().join("v.json")),
        })
        .unwrap()
    };

    let report = report_of(true);
    let f = &report.findings;
    let sched_yield = f
        .runtime_init_only
        .iter()
        .find(|r| r.name == "sched_yield")
        .unwrap();
    assert_eq!(sched_yield.profile, RuntimeInitVerdict::TimingAllowance);
    assert!(!sched_yield.actionable);
    assert_eq!(f.privilege_drops.len(), 3, "one per run, as before");
    let drops = &report.information.privilege_drops;
    assert_eq!(drops.len(), 1, "{drops:#?}");
    assert_eq!(drops[0].runs.len(), 3);
    assert_eq!(report.finding_count(), 0, "{:#?}", report.verdict);
    assert_eq!(report.verdict.status, VerdictStatus::Ready);
    assert!(report.verdict.line.starts_with("Ready to commit"));
    // privilege drop, runtime-init calls handled (sched_yield, pivot_root, capset).
    assert_eq!(report.verdict.information, 4, "{:#?}", report.verdict);
    let json: serde_json::Value = serde_json::from_str(&json::render(&report)).unwrap();
    let kinds = json["verdict"]["kinds"].as_array().unwrap();
    assert!(kinds.iter().all(|k| k["actionable"] == false), "{kinds:#?}");
    assert!(kinds.iter().any(|k| k["kind"] == "privilege-drop"));
    assert_eq!(
        json["findings"]["privilege_drops"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let md = markdown::render(&report);
    assert!(md.contains("**Ready to commit"), "{md}");
    assert!(md.contains("### Findings (0)"), "{md}");
    assert!(md.contains("<details><summary>Information (4)"), "{md}");
    assert_eq!(md.matches("**Privilege drop**").count(), 1, "{md}");
    let information = &md[md.find("<summary>Information").unwrap()..];
    assert!(information.contains("allowed (timing-dependent allowance)"));

    // Without a futex call `audit` would not have allowed it: allowed for no reason.
    let report = report_of(false);
    let review: Vec<&str> = report
        .findings
        .runtime_init_needs_review()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(review, ["sched_yield"]);
    assert_eq!(report.finding_count(), 1);
    assert_eq!(report.verdict.status, VerdictStatus::ChangesNeeded);
    assert_eq!(
        report.verdict.line,
        "Not ready to commit: 1 runtime-init call(s) allowed for no reason."
    );
}

/// "Use it": lines a shell takes as they are, naming the reviewed profile, the
/// recorded command (each argument quoted back) or container, and the runs.
#[test]
fn use_it_lines_are_ready_to_paste() {
    let dir = tempfile::tempdir().unwrap();
    let mut list = recording("x", "sh", &[(X, "read", 1), (X, "execve", 1)]);
    list.target.command = Some(vec!["sh".into(), "-c".into(), "echo 'hi' > out".into()]);
    let run = write(dir.path(), "run 1.json", &list);
    let profile = dir.path().join("my profile.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","execve"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    let report = build(&ReportInputs {
        allowlists: vec![run.clone()],
        profile: Some(profile.clone()),
        ..Default::default()
    })
    .unwrap();
    let u = &report.use_it;
    let (p, r) = (
        format!("'{}'", profile.display()),
        format!("'{}'", run.display()),
    );
    let command = r"sh -c 'echo '\''hi'\'' > out'";
    assert_eq!(
        u.docker,
        format!("docker run --security-opt seccomp={p} IMAGE {command}")
    );
    assert_eq!(
        u.ci,
        format!(
            "agent-audit run --out new.allowlist.json -- {command}\n\
             agent-audit diff --fail-on added {p} new.allowlist.json"
        )
    );
    assert_eq!(u.kubernetes_name, "sh");
    assert_eq!(
        u.kubernetes.lines().next().unwrap(),
        format!(
            "agent-audit profile {r} --base {p} --keep-base-allows --format spo-yaml --name sh \
             -o sh.seccompprofile.yaml"
        )
    );
    assert!(u
        .kubernetes_pod
        .ends_with("localhostProfile: operator/sh.json"));
    assert!(u
        .compose
        .ends_with(&format!("- seccomp={}", profile.display())));

    // A container, and no --profile: the profile is written first, from the runs.
    list.target.kind = "container".into();
    list.target.command = None;
    list.target.spec = "Squid".into();
    let run = write(dir.path(), "c.json", &list);
    let report = build(&inputs(vec![run.clone()])).unwrap();
    let u = &report.use_it;
    assert!(u.docker.starts_with(&format!(
        "agent-audit profile {} -o profile.json\n",
        run.display()
    )));
    assert!(u
        .docker
        .ends_with("docker run --security-opt seccomp=profile.json IMAGE"));
    assert!(u.ci.contains("agent-audit record --wait --container Squid"));
    assert!(u.ci.contains("docker start -a Squid; wait"));
    assert_eq!(u.kubernetes_name, "squid");
}
