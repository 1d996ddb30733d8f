//! From recording to enforcement, end to end: record a real container's workload, generate
//! the profile, lint it, run the same container again under it (runc's `linux.seccomp`, and
//! Docker's `--security-opt seccomp=`), and check that the workload still works while the
//! dangerous calls of a probe binary are refused with the errno the profile gives them.
//!
//! The probe (tests/src/probe.rs) is recorded in `--dry` mode, which makes every call of the
//! real run except the probe calls themselves, so its startup syscalls are in the profile and
//! the dangerous ones are not. The containers get CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SYS_BOOT
//! and CAP_DAC_READ_SEARCH, and the probe also runs once without any profile: without the
//! capabilities several probes would fail with EPERM anyway and the test could not tell the
//! profile's EPERM from the kernel's. Every expected errno is taken from the profile itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::armed::ArmedRecorder;
use agent_audit_tests::container::{busybox_rootfs, docker_busybox_image};
use agent_audit_tests::foreground::{docker_run, RuncBundle};
use agent_audit_tests::probe::{self, errno_name, Mode, PROBES};
use agent_audit_tests::process::{run, Finished};
use agent_audit_tests::profile::{self as seccomp, allowed_names, errno_for};
use agent_audit_tests::{agent_audit_bin, require_root, unique_name};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Capabilities that make the probe calls reach the kernel's own checks when no profile
/// stops them (runc spec names).
const CAPS: &[&str] = &[
    "CAP_SYS_ADMIN",
    "CAP_SYS_PTRACE",
    "CAP_SYS_BOOT",
    "CAP_DAC_READ_SEARCH",
];

/// The container's workload: files, ls, cat, wc, a nested shell, then the probe. `$1` is the
/// probe's mode, `$2` a token the test checks comes back. `set -e`: any refused call that
/// breaks a step fails the container.
const WORKLOAD: &str = "set -e
echo \"$2\" > /tmp/token
cat /tmp/token
wc -c /etc/passwd
ls /
sh -c 'echo nested-shell-ok'
/probe \"$1\"
";

/// The documented exit code for malformed input.
const DATA_ERR: i32 = 65;

fn agent_audit(args: &[&str]) -> Finished {
    run(Command::new(agent_audit_bin()).args(args), TIMEOUT)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

fn argv(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `sh -c WORKLOAD sh MODE TOKEN`.
fn workload_command(mode: Mode, token: &str) -> Vec<String> {
    ["sh", "-c", WORKLOAD, "sh", mode.arg(), token]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Checks that one container run of [`WORKLOAD`] did every step (its output, computed from
/// the token, the rootfs and the probe list) and returns the probe results.
fn assert_workload_ran(done: &Finished, mode: Mode, token: &str, passwd_len: u64) -> Run {
    done.assert_code(0);
    let lines: Vec<&str> = done.stdout.lines().map(str::trim).collect();
    let expect = |line: &str| {
        assert!(
            lines.contains(&line),
            "the workload did not print {line:?}; stdout:\n{}\nstderr:\n{}",
            done.stdout,
            done.stderr
        )
    };
    expect(token);
    expect(&format!("{passwd_len} /etc/passwd"));
    // ls / lists the probe binary and busybox's directories.
    expect("probe");
    expect("bin");
    expect("nested-shell-ok");
    Run {
        errnos: probe::parse(&done.stdout, mode),
    }
}

/// The probe results of one run.
struct Run {
    errnos: BTreeMap<String, i32>,
}

/// What the profile makes each probe call fail with; panics if it allows one. The issue asks
/// for EPERM for every dangerous call and ENOSYS for clone3 (so that glibc falls back to
/// clone): checked here against the profile before the containers are.
fn expected_errnos(profile: &Value) -> BTreeMap<String, i32> {
    PROBES
        .iter()
        .map(|p| {
            let errno = errno_for(profile, p.name)
                .unwrap_or_else(|| panic!("the profile allows the dangerous {}", p.name));
            let wanted = if p.name == "clone3" {
                libc::ENOSYS
            } else {
                libc::EPERM
            };
            assert_eq!(
                errno,
                wanted,
                "the profile gives {} {} instead of {}",
                p.name,
                errno_name(errno),
                errno_name(wanted)
            );
            (p.name.to_string(), errno)
        })
        .collect()
}

/// Under the profile every probe got the profile's errno, and without it the kernel gave
/// something else (so the errno really is the profile's doing).
fn assert_probes_refused(confined: &Run, unconfined: &Run, expected: &BTreeMap<String, i32>) {
    for (name, &want) in expected {
        let got = confined.errnos[name];
        assert_eq!(
            got,
            want,
            "{name} under the profile: got {}, want {}; all: {:?}",
            errno_name(got),
            errno_name(want),
            confined.errnos
        );
        let free = unconfined.errnos[name];
        assert_ne!(
            free,
            want,
            "{name} without a profile also fails with {}: the test cannot tell the profile's \
             refusal from the kernel's on this host; all: {:?}",
            errno_name(free),
            unconfined.errnos
        );
    }
}

/// The recording holds the workload and the dry probe, but none of the probe calls.
fn assert_recorded_without_probe_calls(list: &Allowlist) {
    assert!(list.complete(), "final file not complete: {:#}", list.0);
    list.assert_has(&["execve", "getdents64", "wait4", "exit_group"]);
    let seen = list.names();
    let probed: Vec<&str> = PROBES
        .iter()
        .map(|p| p.name)
        .filter(|n| seen.contains(*n))
        .collect();
    assert!(
        probed.is_empty(),
        "the dry run made probe calls {probed:?}: {:#}",
        list.0
    );
}

/// `profile ALLOWLIST -o dir/profile.json`, then `check` it: must be clean (exit 0, no
/// errors in the JSON report).
fn generate_and_check(allowlist: &Path, dir: &Path) -> (PathBuf, Value) {
    let out = dir.join("profile.json");
    agent_audit(&["profile", path_str(allowlist), "-o", path_str(&out)]).assert_code(0);
    let check = agent_audit(&["check", path_str(&out)]);
    check.assert_code(0);
    let report = agent_audit(&["check", "--format", "json", path_str(&out)]);
    report.assert_code(0);
    let report: Value = serde_json::from_str(&report.stdout).expect("check --format json");
    assert_eq!(report["errors"], 0, "check found errors: {report:#}");
    let profile = seccomp::read(&out);
    (out, profile)
}

#[test]
fn root_runc_round_trip_profile_in_config_json_refuses_probes() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let probe_bin = probe::build(dir.path());
    let bundle_dir = dir.path().join("bundle");
    fs::create_dir(&bundle_dir).unwrap();
    let bundle = RuncBundle::new(&bundle_dir, &probe_bin, CAPS);
    let passwd_len = fs::metadata(bundle_dir.join("rootfs/etc/passwd"))
        .unwrap()
        .len();
    let prefix = unique_name("aa-roundtrip");
    let token = unique_name("token");
    let args = |mode| workload_command(mode, &token);

    // 1. Record the workload with the dry probe, armed before runc creates the cgroup.
    let allowlists = dir.path().join("allowlists");
    fs::create_dir(&allowlists).unwrap();
    let glob = format!("{prefix}-*");
    let recorder = ArmedRecorder::start(
        &["--cgroup-glob", &glob, "--out-dir", path_str(&allowlists)],
        TIMEOUT,
    );
    let recorded_id = format!("{prefix}-record");
    bundle.configure(&argv(&args(Mode::Dry)), None);
    let done = bundle.run(&recorded_id, TIMEOUT);
    assert_workload_ran(&done, Mode::Dry, &token, passwd_len);
    recorder.finish(TIMEOUT);
    let files: Vec<PathBuf> = fs::read_dir(&allowlists)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one container, one allowlist: {files:?}");
    let list = Allowlist::read(&files[0]);
    assert_recorded_without_probe_calls(&list);
    assert!(
        list.target()["cgroup_path"]
            .as_str()
            .is_some_and(|p| p.ends_with(&recorded_id)),
        "recorded another cgroup: {:#}",
        list.target()
    );

    // 2. Profile and lint.
    let (_, profile) = generate_and_check(&files[0], dir.path());
    let expected = expected_errnos(&profile);

    // 3. The probe without any profile: what the kernel itself answers.
    bundle.configure(&argv(&args(Mode::Real)), None);
    let done = bundle.run(&format!("{prefix}-unconfined"), TIMEOUT);
    let unconfined = assert_workload_ran(&done, Mode::Real, &token, passwd_len);

    // 4. The same container under the profile. The profile is Docker/OCI JSON; config.json's
    // `linux.seccomp` is the OCI runtime-spec LinuxSeccomp. The generated profile uses only
    // fields both define (defaultAction, defaultErrnoRet, architectures, syscalls[].names,
    // .action, .errnoRet) plus `comment`, which runc's JSON decoder ignores, and none of
    // Docker's own fields that carry meaning (`name`, `archMap`, `includes`, `excludes`).
    // So it goes into config.json unchanged, and this run shows runc accepts it.
    let outside = seccomp::fields_outside_oci(&profile);
    assert_eq!(
        outside,
        BTreeSet::from(["syscalls[].comment".to_string()]),
        "the profile uses fields the OCI runtime spec does not have"
    );
    bundle.configure(&argv(&args(Mode::Real)), Some(&profile));
    let done = bundle.run(&format!("{prefix}-enforced"), TIMEOUT);
    let confined = assert_workload_ran(&done, Mode::Real, &token, passwd_len);
    assert_probes_refused(&confined, &unconfined, &expected);
}

#[test]
fn root_docker_round_trip_security_opt_seccomp_refuses_probes() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let probe_bin = probe::build(dir.path());
    let image = docker_busybox_image();
    // The image's rootfs is what busybox_rootfs writes: the expected `wc` output comes from a
    // copy of it.
    let reference = dir.path().join("reference-rootfs");
    busybox_rootfs(&reference);
    let passwd_len = fs::metadata(reference.join("etc/passwd")).unwrap().len();
    let name = unique_name("aa-roundtrip-docker");
    let token = unique_name("token");
    let volume = format!("{}:/probe:ro", probe_bin.display());
    let mut options = vec!["--volume".to_string(), volume];
    for cap in CAPS {
        options.push("--cap-add".into());
        options.push(cap.trim_start_matches("CAP_").into());
    }
    let run_with = |container: &str, extra: &[String], mode| {
        let opts: Vec<&str> = options.iter().chain(extra).map(String::as_str).collect();
        let cmd = workload_command(mode, &token);
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let done = docker_run(container, &opts, image, &cmd, TIMEOUT);
        assert_workload_ran(&done, mode, &token, passwd_len)
    };

    // 1. Record it by name, armed before `docker run` creates it; Docker's default seccomp
    // profile is in force (it allows everything the workload does).
    let allowlist = dir.path().join("docker.allowlist.json");
    let recorder = ArmedRecorder::start(
        &["--container", &name, "--out", path_str(&allowlist)],
        TIMEOUT,
    );
    run_with(&name, &[], Mode::Dry);
    recorder.finish(TIMEOUT);
    let list = Allowlist::read(&allowlist);
    assert_recorded_without_probe_calls(&list);
    assert_eq!(list.target()["container"]["engine"], "docker");
    assert_eq!(list.target()["container"]["name"], name.as_str());

    // 2. Profile and lint.
    let (profile_path, profile) = generate_and_check(&allowlist, dir.path());
    let expected = expected_errnos(&profile);

    // 3. Unconfined, then 4. the way users apply the profile.
    let unconfined = run_with(
        &format!("{name}-unconfined"),
        &["--security-opt".into(), "seccomp=unconfined".into()],
        Mode::Real,
    );
    let confined = run_with(
        &format!("{name}-enforced"),
        &[
            "--security-opt".into(),
            format!("seccomp={}", profile_path.display()),
        ],
        Mode::Real,
    );
    assert_probes_refused(&confined, &unconfined, &expected);
}

/// A host workload for `run` and `verify`: `ls` needs getdents64.
fn host_workload(file: &Path, token: &str) -> Vec<String> {
    let script = format!(
        "ls / > /dev/null && echo {token} > {f} && cat {f} > /dev/null && sh -c true",
        f = file.display()
    );
    ["/bin/busybox", "sh", "-c", &script]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// `agent-audit run --out OUT -- CMD`, which must succeed; returns the allowlist.
fn record_command(out: &Path, cmd: &[String]) -> Allowlist {
    let mut args = vec!["run", "--out", path_str(out), "--"];
    args.extend(cmd.iter().map(String::as_str));
    agent_audit(&args).assert_code(0);
    Allowlist::read(out)
}

/// `agent-audit verify --profile P --allowlist A [extra] -o OUT -- CMD`: the run, its JSON.
fn verify(
    profile: &Path,
    allowlist: &Path,
    extra: &[&str],
    out: &Path,
    cmd: &[String],
) -> (Finished, Value) {
    let mut args = vec![
        "verify",
        "--profile",
        path_str(profile),
        "--allowlist",
        path_str(allowlist),
        "-o",
        path_str(out),
    ];
    args.extend(extra);
    args.push("--");
    args.extend(cmd.iter().map(String::as_str));
    let done = agent_audit(&args);
    let text = fs::read_to_string(out)
        .unwrap_or_else(|e| panic!("verify wrote no {}: {e}; {done:#?}", out.display()));
    let json: Value = serde_json::from_str(&text).expect("verify -o writes JSON");
    assert_eq!(json["schema"], "agent-audit/verify/v1");
    (done, json)
}

#[test]
fn root_verify_names_a_syscall_removed_from_the_profile() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let token = unique_name("token");
    let file = dir.path().join("token.txt");
    let cmd = host_workload(&file, &token);
    let allowlist = dir.path().join("host.allowlist.json");
    let list = record_command(&allowlist, &cmd);
    let removed = "getdents64";
    list.assert_has(&[removed]);
    let profile_path = dir.path().join("profile.json");
    agent_audit(&[
        "profile",
        path_str(&allowlist),
        "-o",
        path_str(&profile_path),
    ])
    .assert_code(0);
    let profile = seccomp::read(&profile_path);

    // The generated profile: nothing denied, every probe gets the profile's errno.
    fs::remove_file(&file).unwrap();
    let (done, report) = verify(
        &profile_path,
        &allowlist,
        &["--probe-dangerous"],
        &dir.path().join("unmodified.json"),
        &cmd,
    );
    done.assert_code(0);
    assert_eq!(fs::read_to_string(&file).unwrap().trim(), token);
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["exit_status"], 0);
    assert_eq!(report["denied"], Value::Array(vec![]), "{report:#}");
    let probes = report["probes"]
        .as_array()
        .expect("--probe-dangerous results");
    let probed: BTreeSet<&str> = probes
        .iter()
        .filter_map(|p| p["syscall"].as_str())
        .collect();
    for p in PROBES {
        assert!(
            probed.contains(p.name),
            "verify did not probe {}: {report:#}",
            p.name
        );
    }
    for p in probes {
        let label = p["probe"].as_str().unwrap();
        assert_eq!(p["ok"], true, "probe {label}: {report:#}");
        if p["expect"] == "works" {
            // Calls argument rules must let through (fork, thread, allowed families).
            assert!(
                done.stdout.contains(label),
                "text report does not list {label}:\n{}",
                done.stdout
            );
            continue;
        }
        // Refused: by name (the default or an explicit deny) or, for the narrowed names, by
        // their argument rules: a refusal rule's errno (ioctl's TIOCSTI, a dangerous family
        // between allowed ones) or the default's.
        let name = p["syscall"].as_str().unwrap();
        let want = errno_for(&profile, name).unwrap_or_else(|| panic!("profile allows {name}"));
        let refusals = seccomp::refusal_errnos(&profile, name);
        let got = p["errno"].as_i64().expect("an errno");
        assert!(
            got == i64::from(want) || refusals.iter().any(|&e| i64::from(e) == got),
            "probe {label}: got {got}, want {want} or one of {refusals:?}: {report:#}"
        );
        assert!(
            done.stdout.lines().any(|l| l.starts_with("probe ")
                && l.contains(&format!(" {label} "))
                && l.contains("ok")),
            "text report has no ok line for {label}:\n{}",
            done.stdout
        );
    }
    // The explicit deny rules equal the default action, so they are not in the filter as
    // rules, yet the default action refuses them (the probes above): they must not be
    // reported as names libseccomp does not know.
    let not_in_filter: BTreeSet<&str> = report["not_in_filter"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let misreported: Vec<&str> = probed.intersection(&not_in_filter).copied().collect();
    assert!(
        misreported.is_empty(),
        "verify says {misreported:?} are left out of the filter as unknown to libseccomp, \
         but the probes just exercised them: {report:#}"
    );

    // Without the syscall `ls` needs: verify names it, flags it as recorded, and fails.
    let edited = seccomp::without_allowed(&profile, removed);
    let edited_path = dir.path().join("without.json");
    fs::write(&edited_path, serde_json::to_vec_pretty(&edited).unwrap()).unwrap();
    let (done, report) = verify(
        &edited_path,
        &allowlist,
        &[],
        &dir.path().join("without-result.json"),
        &cmd,
    );
    done.assert_code(1);
    assert_eq!(report["passed"], false);
    let denied = report["denied"].as_array().expect("denied array");
    let names: Vec<&str> = denied.iter().filter_map(|d| d["name"].as_str()).collect();
    assert_eq!(
        names,
        [removed],
        "only the removed syscall is denied: {report:#}"
    );
    assert_eq!(denied[0]["observed_in_allowlist"], true, "{report:#}");
    assert!(denied[0]["count"].as_u64().unwrap() >= 1);
    let text = &done.stdout;
    let section = text
        .split_once("denied by the profile:")
        .unwrap_or_else(|| panic!("no denial section in the text report:\n{text}"))
        .1;
    assert!(
        section
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("{removed} "))
                && l.contains("observed when recording")),
        "the text report does not name {removed} as dropped:\n{text}"
    );
    assert!(text.lines().any(|l| l == "FAILED"), "{text}");
}

#[test]
fn root_profile_merge_is_order_independent_and_byte_identical() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);
    // Two different workloads: ls stats and lists, the pipeline forks, pipes and sleeps.
    let a = record_command(
        &d("a.json"),
        &["/bin/busybox".into(), "ls".into(), "-l".into(), "/".into()],
    );
    let b = record_command(
        &d("b.json"),
        &[
            "/bin/busybox".into(),
            "sh".into(),
            "-c".into(),
            "cat /etc/hostname | wc -c; sleep 0.01".into(),
        ],
    );
    let union: BTreeSet<String> = a.names().union(&b.names()).cloned().collect();
    assert_ne!(
        a.names(),
        union,
        "the recordings must differ for the merge to mean something"
    );
    assert_ne!(
        b.names(),
        union,
        "the recordings must differ for the merge to mean something"
    );

    // Every run writes to the same paths (the rationale names its profile file), and the
    // bytes are read back before the next run replaces them.
    let (out, rationale) = (d("profile.json"), d("rationale.md"));
    let make = |inputs: [&str; 2]| {
        agent_audit(&[
            "profile",
            path_str(&d(inputs[0])),
            path_str(&d(inputs[1])),
            "-o",
            path_str(&out),
            "--rationale",
            path_str(&rationale),
        ])
        .assert_code(0);
        (fs::read(&out).unwrap(), fs::read(&rationale).unwrap())
    };
    let ab = make(["a.json", "b.json"]);
    let ba = make(["b.json", "a.json"]);
    let again = make(["a.json", "b.json"]);
    assert!(ab.0 == ba.0, "profile A B and profile B A differ");
    assert!(ab.0 == again.0, "two runs of profile A B differ");
    assert!(ab.1 == ba.1, "the rationales of A B and B A differ");
    assert!(ab.1 == again.1, "two rationales of A B differ");

    // The merge is the union: the first rule allows exactly what either recording saw, except
    // the names narrowed by argument rules (allowed by conditional rules of their own) and
    // clone3 (ENOSYS even when observed).
    let profile: Value = serde_json::from_slice(&ab.0).unwrap();
    let mut allowed: BTreeSet<String> = seccomp::rule_names(&seccomp::rules(&profile)[0])
        .into_iter()
        .map(str::to_string)
        .collect();
    let conditional: BTreeSet<String> = seccomp::rules(&profile)
        .iter()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_some())
        .flat_map(|r| seccomp::rule_names(r).into_iter().map(str::to_string))
        .collect();
    allowed.extend(conditional.intersection(&union).cloned());
    let expected: BTreeSet<String> = union.iter().filter(|n| *n != "clone3").cloned().collect();
    assert_eq!(
        allowed, expected,
        "the observed and argument rules do not allow the union of A and B"
    );
    let rationale = String::from_utf8(ab.1).unwrap();
    for name in &union {
        assert!(
            rationale.contains(&format!("`{name}`")),
            "rationale misses {name}"
        );
    }
}

#[test]
fn root_diff_fail_on_added_flags_syscalls_the_profile_does_not_allow() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);
    let a = d("a.json");
    let b = d("b.json");
    record_command(&a, &["/bin/busybox".into(), "true".into()]);
    let b_list = record_command(
        &b,
        &[
            "/bin/busybox".into(),
            "sh".into(),
            "-c".into(),
            "ls / | wc -l; sleep 0.01".into(),
        ],
    );
    let pa = d("a.profile.json");
    let pab = d("ab.profile.json");
    agent_audit(&["profile", path_str(&a), "-o", path_str(&pa)]).assert_code(0);
    agent_audit(&["profile", path_str(&a), path_str(&b), "-o", path_str(&pab)]).assert_code(0);
    let allowed = allowed_names(&seccomp::read(&pa));
    let expected_added: Vec<String> = b_list.names().difference(&allowed).cloned().collect();
    assert!(
        !expected_added.is_empty(),
        "B uses nothing A's profile does not allow; pick other workloads"
    );

    let text = agent_audit(&["diff", "--fail-on", "added", path_str(&pa), path_str(&b)]);
    text.assert_code(1);
    for name in &expected_added {
        assert!(
            text.stdout.lines().any(|l| l == format!("+ {name}")),
            "diff does not list {name} as added:\n{}",
            text.stdout
        );
    }
    let json = agent_audit(&[
        "diff",
        "--fail-on",
        "added",
        "--format",
        "json",
        path_str(&pa),
        path_str(&b),
    ]);
    json.assert_code(1);
    let json: Value = serde_json::from_str(&json.stdout).expect("diff --format json");
    let added: Vec<String> = json["added"]
        .as_array()
        .expect("added array")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(added, expected_added);
    // A profile that covers B: nothing added, exit 0 even though the profile allows more.
    let covered = agent_audit(&["diff", "--fail-on", "added", path_str(&pab), path_str(&b)]);
    covered.assert_code(0);
    assert!(
        !covered.stdout.lines().any(|l| l.starts_with("+ ")),
        "{}",
        covered.stdout
    );
}

/// A small valid deny-by-default profile to break in different ways.
fn valid_profile() -> Value {
    serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW",
             "comment": "what the workload needs"},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
             "comment": "glibc falls back to clone"}
        ]
    })
}

#[test]
fn check_reports_malformed_profiles_as_errors_with_exit_65() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        path
    };
    // The unbroken profile is fine, so what follows is about the defects.
    let good = write("good.json", &valid_profile().to_string());
    agent_audit(&["check", path_str(&good)]).assert_code(0);

    let text = serde_json::to_string_pretty(&valid_profile()).unwrap();
    let bad_json = write("truncated.json", &text[..text.len() / 2]);
    let mut p = valid_profile();
    p["architectures"] = serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_NOPE"]);
    let bad_arch = write("arch.json", &p.to_string());
    let mut p = valid_profile();
    p["syscalls"][0]["action"] = "SCMP_ACT_MAYBE".into();
    let bad_action = write("action.json", &p.to_string());
    let mut p = valid_profile();
    p["defaultAction"] = "SCMP_ACT_PERHAPS".into();
    let bad_default = write("default.json", &p.to_string());

    let cases: [(&Path, &str); 4] = [
        (&bad_json, "truncated.json"),
        (&bad_arch, "SCMP_ARCH_NOPE"),
        (&bad_action, "SCMP_ACT_MAYBE"),
        (&bad_default, "SCMP_ACT_PERHAPS"),
    ];
    for (path, culprit) in cases {
        for format in ["text", "json"] {
            let done = agent_audit(&["check", "--format", format, path_str(path)]);
            done.assert_code(DATA_ERR)
                .assert_stderr_mentions(&[path_str(path), culprit]);
            assert!(
                done.stderr.contains("error"),
                "not reported as an error: {}",
                done.stderr
            );
        }
    }
}

/// A process-based program: forks three children that exit at once, waits for each, never
/// creates a thread (PostgreSQL's shape: it ends with `exit_group`, never `exit`).
const FORKING_C: &str = r#"
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    for (int i = 0; i < 3; i++) {
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        if (pid < 0 || waitpid(pid, 0, 0) != pid) return 1;
    }
    return 0;
}
"#;

/// A program that creates two threads and joins them.
const THREADS_C: &str = r#"
#include <pthread.h>
static void *work(void *arg) { return arg; }
int main(void) {
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], 0, work, 0) != 0) return 1;
    for (int i = 0; i < 2; i++) pthread_join(t[i], 0);
    return 0;
}
"#;

const THREAD_PROBE: &str = "thread (clone CLONE_VM|CLONE_THREAD|…)";
const FORK_PROBE: &str = "fork (clone SIGCHLD)";

fn probe_named<'a>(result: &'a Value, name: &str) -> Option<&'a Value> {
    result["probes"]
        .as_array()?
        .iter()
        .find(|p| p["probe"] == name)
}

fn skipped_reason(result: &Value, name: &str) -> Option<String> {
    result["probes_skipped"]
        .as_array()?
        .iter()
        .find(|p| p["probe"] == name)
        .map(|p| p["reason"].as_str().unwrap_or_default().to_string())
}

/// The must-work thread probe ran on every profile that allowed clone and ended its
/// thread with `exit`; under a profile without `exit` (a process-based server's) the thread
/// fell through onto the probe's stack and verify FAILED a correct profile. The probes now ask
/// only for what the recordings show, and without recordings only for what the profile allows.
#[test]
fn root_must_work_probes_ask_only_for_what_the_recordings_show() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let forking = agent_audit_tests::build_static_c(dir.path(), "forking", FORKING_C);
    let cmd = vec![forking.display().to_string()];
    let allowlist = dir.path().join("forking.json");
    record_command(&allowlist, &cmd);
    let profile = dir.path().join("forking-profile.json");
    agent_audit(&[
        "profile",
        "--no-baseline",
        path_str(&allowlist),
        "--out",
        path_str(&profile),
    ])
    .assert_code(0);
    let p: Value = serde_json::from_str(&fs::read_to_string(&profile).unwrap()).unwrap();
    assert!(
        !allowed_names(&p).contains("exit"),
        "never called: not allowed"
    );
    let out = dir.path().join("verify.json");
    let (done, result) = verify(&profile, &allowlist, &["--probe-dangerous"], &out, &cmd);
    assert_eq!(result["passed"], true, "{result:#}");
    done.assert_code(0);
    let fork = probe_named(&result, FORK_PROBE).expect("the recording shows forks");
    assert_eq!(fork["ok"], true, "{result:#}");
    assert!(probe_named(&result, THREAD_PROBE).is_none(), "{result:#}");
    let why = skipped_reason(&result, THREAD_PROBE).expect("the thread probe is listed");
    assert!(why.contains("recordings show no such call"), "{why}");

    // Without recordings: the thread probe would need `exit`, which the profile refuses.
    let bare = dir.path().join("bare.json");
    let mut args = vec![
        "verify",
        "--profile",
        path_str(&profile),
        "--probe-dangerous",
        "-o",
        path_str(&bare),
        "--",
    ];
    args.extend(cmd.iter().map(String::as_str));
    agent_audit(&args).assert_code(0);
    let result: Value = serde_json::from_str(&fs::read_to_string(&bare).unwrap()).unwrap();
    assert_eq!(result["passed"], true, "{result:#}");
    let why = skipped_reason(&result, THREAD_PROBE).expect("skipped, and said so");
    assert!(why.contains("does not allow exit"), "{why}");

    // A program that creates threads gets the thread probe, and its profile passes it.
    let threads = agent_audit_tests::build_static_c(dir.path(), "threads", THREADS_C);
    let cmd = vec![threads.display().to_string()];
    let allowlist = dir.path().join("threads.json");
    record_command(&allowlist, &cmd);
    let profile = dir.path().join("threads-profile.json");
    agent_audit(&["profile", path_str(&allowlist), "--out", path_str(&profile)]).assert_code(0);
    let out = dir.path().join("verify-threads.json");
    let (done, result) = verify(&profile, &allowlist, &["--probe-dangerous"], &out, &cmd);
    let thread = probe_named(&result, THREAD_PROBE).expect("the recording shows threads");
    assert_eq!(thread["ok"], true, "{result:#}");
    assert_eq!(thread["errno"], 0, "{result:#}");
    assert_eq!(result["passed"], true, "{result:#}");
    done.assert_code(0);
}
