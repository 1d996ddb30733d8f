//! Argument rules end to end, in real runc and Docker containers: a
//! static program that forks, starts a thread (glibc tries clone3 first), opens AF_INET and
//! AF_UNIX sockets and queries its personality is recorded; under its generated profile all of
//! that still works, while AF_ALG and AF_VSOCK sockets, clone with CLONE_NEWUSER or
//! CLONE_NEWNS and personality(READ_IMPLIES_EXEC) get EPERM and clone3 gets ENOSYS.
//!
//! The program also runs without any profile, with the capabilities that let those calls
//! through (CAP_SYS_ADMIN for the namespaces): there each refused step gets something else, so
//! the errno really is the profile's doing.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::argprobe::{self, REFUSED_STEPS, WORKLOAD_STEPS};
use agent_audit_tests::armed::ArmedRecorder;
use agent_audit_tests::container::docker_busybox_image;
use agent_audit_tests::foreground::{docker_run, RuncBundle};
use agent_audit_tests::process::{run, Finished};
use agent_audit_tests::profile::{self as seccomp, allowed_names, errno_for};
use agent_audit_tests::{agent_audit_bin, require_root, unique_name};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Lets the refused calls through when no profile stops them.
const CAPS: &[&str] = &["CAP_SYS_ADMIN"];

fn agent_audit(args: &[&str]) -> Finished {
    run(Command::new(agent_audit_bin()).args(args), TIMEOUT)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// The program's steps from one container run, which must have exited 0.
fn steps(done: &Finished) -> BTreeMap<String, i32> {
    done.assert_code(0);
    argprobe::parse(&done.stdout)
}

/// `profile` then `check` (clean); the profile's JSON and path.
fn generate_and_check(allowlist: &Path, dir: &Path) -> (PathBuf, Value) {
    let out = dir.join("profile.json");
    agent_audit(&["profile", path_str(allowlist), "-o", path_str(&out)]).assert_code(0);
    agent_audit(&["check", path_str(&out)]).assert_code(0);
    let profile = seccomp::read(&out);
    // No unconditional rule for the narrowed names, clone3 fails with ENOSYS.
    let unconditional = allowed_names(&profile);
    for name in ["socket", "clone", "personality", "clone3"] {
        assert!(
            !unconditional.contains(name),
            "{name} is allowed unconditionally"
        );
    }
    assert_eq!(errno_for(&profile, "clone3"), Some(libc::ENOSYS));
    (out, profile)
}

/// The recording saw the workload (clone3 from pthread_create, personality, socket) and none
/// of the refused steps.
fn assert_recorded(list: &Allowlist) {
    assert!(list.complete(), "final file not complete: {:#}", list.0);
    list.assert_has(&["socket", "personality", "wait4"]);
    list.assert_has_one_of(&["clone", "clone3"]);
}

/// Under the profile the workload works and every refused step gets its errno; without it,
/// each refused step gets something else.
fn assert_enforced(confined: &BTreeMap<String, i32>, unconfined: &BTreeMap<String, i32>) {
    for step in WORKLOAD_STEPS {
        assert_eq!(
            confined[*step], 0,
            "{step} fails under the profile: {confined:?}"
        );
        assert_eq!(
            unconfined[*step], 0,
            "{step} fails unconfined: {unconfined:?}"
        );
    }
    for &(step, want) in REFUSED_STEPS {
        assert_eq!(
            confined[step], want,
            "{step} under the profile: got {}, want {want}; all: {confined:?}",
            confined[step]
        );
        assert_ne!(
            unconfined[step], want,
            "{step} unconfined also gets {want}: the test cannot tell the profile's refusal \
             from the kernel's; all: {unconfined:?}"
        );
    }
}

#[test]
fn root_runc_argument_rules_round_trip() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let program = argprobe::build(dir.path());
    let bundle_dir = dir.path().join("bundle");
    fs::create_dir(&bundle_dir).unwrap();
    let bundle = RuncBundle::new(&bundle_dir, &program, CAPS);
    let prefix = unique_name("aa-args");

    // 1. Record the workload, armed before runc creates the cgroup.
    let allowlists = dir.path().join("allowlists");
    fs::create_dir(&allowlists).unwrap();
    let glob = format!("{prefix}-*");
    let recorder = ArmedRecorder::start(
        &["--cgroup-glob", &glob, "--out-dir", path_str(&allowlists)],
        TIMEOUT,
    );
    bundle.configure(&["/argprobe", "--dry"], None);
    let recorded = steps(&bundle.run(&format!("{prefix}-record"), TIMEOUT));
    assert!(
        WORKLOAD_STEPS.iter().all(|s| recorded[*s] == 0),
        "{recorded:?}"
    );
    recorder.finish(TIMEOUT);
    let files: Vec<PathBuf> = fs::read_dir(&allowlists)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one container, one allowlist: {files:?}");
    assert_recorded(&Allowlist::read(&files[0]));

    // 2. Profile and lint; 3. unconfined; 4. under the profile, in config.json.
    let (_, profile) = generate_and_check(&files[0], dir.path());
    bundle.configure(&["/argprobe", "--real"], None);
    let unconfined = steps(&bundle.run(&format!("{prefix}-unconfined"), TIMEOUT));
    bundle.configure(&["/argprobe", "--real"], Some(&profile));
    let confined = steps(&bundle.run(&format!("{prefix}-enforced"), TIMEOUT));
    assert_enforced(&confined, &unconfined);
}

#[test]
fn root_docker_argument_rules_round_trip() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let program = argprobe::build(dir.path());
    let image = docker_busybox_image();
    let name = unique_name("aa-args-docker");
    let mut options = vec![
        "--volume".to_string(),
        format!("{}:/argprobe:ro", program.display()),
    ];
    for cap in CAPS {
        options.push("--cap-add".into());
        options.push(cap.trim_start_matches("CAP_").into());
    }
    let run_with = |container: &str, extra: &[String], mode: &str| {
        let opts: Vec<&str> = options.iter().chain(extra).map(String::as_str).collect();
        steps(&docker_run(
            container,
            &opts,
            image,
            &["/argprobe", mode],
            TIMEOUT,
        ))
    };

    // 1. Record it by name, armed before `docker run` creates it.
    let allowlist = dir.path().join("docker.allowlist.json");
    let recorder = ArmedRecorder::start(
        &["--container", &name, "--out", path_str(&allowlist)],
        TIMEOUT,
    );
    let recorded = run_with(&name, &[], "--dry");
    assert!(
        WORKLOAD_STEPS.iter().all(|s| recorded[*s] == 0),
        "{recorded:?}"
    );
    recorder.finish(TIMEOUT);
    assert_recorded(&Allowlist::read(&allowlist));

    // 2. Profile and lint; 3. unconfined; 4. the way users apply the profile.
    let (profile_path, _) = generate_and_check(&allowlist, dir.path());
    let unconfined = run_with(
        &format!("{name}-unconfined"),
        &["--security-opt".into(), "seccomp=unconfined".into()],
        "--real",
    );
    let confined = run_with(
        &format!("{name}-enforced"),
        &[
            "--security-opt".into(),
            format!("seccomp={}", profile_path.display()),
        ],
        "--real",
    );
    assert_enforced(&confined, &unconfined);
}
