//! End to end as a user: Debian daemons that start as root and drop to their
//! own user, in a container from a real Debian root filesystem (debootstrap of squid,
//! nginx-light, postgresql-15 and curl from this machine's apt mirror, `docker import`), each
//! doing its job with no network but loopback (tests/data/workloads: squid refuses a domain
//! outside its allowlist and shuts down; nginx's worker serves a file to curl and nginx quits;
//! pg_ctlcluster starts PostgreSQL as `postgres`, psql gets an answer, the cluster stops;
//! memcached, in an image of its own, drops to `memcache`, stores and returns a value and stops
//! on SIGTERM).
//! `agent-audit audit --container` (3 runs, verify, report) must end verify PASSED,
//! `0 finding(s)`, exit 0: the privilege drop is information, merged over the runs, and so are
//! the runtime init's calls the profile handles. The report's Kubernetes line is run too: the
//! SPO object it writes allows exactly what the profile allows.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::container::{leftover_verify_copies, DockerContainer};
use agent_audit_tests::debian::{debian_image_with, DAEMON_PACKAGES};
use agent_audit_tests::process::{run, run_ok};
use agent_audit_tests::{agent_audit_bin, require_root, unique_name, workspace_root};
use serde_json::Value;

/// An audit is 4 or 5 starts of a container whose daemon runs for about a second.
const TIMEOUT: Duration = Duration::from_secs(600);

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `docker create` of `task` (a script in tests/data/workloads) in the daemon image, as root
/// (the daemon drops privileges itself), with no network but loopback.
fn create_daemon_container(name: &str, task: &str, packages: &[&str]) -> DockerContainer {
    let workloads = workspace_root().join("tests/data/workloads");
    let image = debian_image_with(packages);
    let mut create = Command::new("docker");
    create
        .args(["create", "--name", name, "--network", "none", "--volume"])
        .arg(format!("{}:/workloads:ro", workloads.display()))
        .args([image.as_str(), "sh", &format!("/workloads/{task}")]);
    let id = run_ok(&mut create, TIMEOUT).trim().to_string();
    DockerContainer {
        name: name.to_string(),
        id,
    }
}

/// Audits the daemon's container and checks what a user sees: PASSED, no finding, exit 0, the
/// privilege drop as one piece of information naming the 3 runs.
fn audit_daemon(prefix: &str, task: &str, daemon: &str) {
    audit_daemon_from(prefix, task, daemon, DAEMON_PACKAGES);
}

/// [`audit_daemon`] in an image of `packages`.
fn audit_daemon_from(prefix: &str, task: &str, daemon: &str, packages: &[&str]) {
    require_root();
    let name = unique_name(prefix);
    let container = create_daemon_container(&name, task, packages);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("audit");
    std::fs::create_dir_all(workspace_root().join("target/debian-daemons-failed")).unwrap();
    let done = run(
        Command::new(agent_audit_bin())
            .args(["audit", "--container", &container.name, "--out-dir"])
            .arg(&out),
        TIMEOUT,
    );
    let line = done.stdout.lines().last().unwrap_or_default();
    if !line.contains("; verify PASSED; 0 finding(s); report: ") {
        let kept = workspace_root()
            .join("target/debian-daemons-failed")
            .join(&name);
        let _ = Command::new("cp").arg("-r").arg(&out).arg(&kept).status();
        panic!(
            "{}\n{}\n(the audit's files are kept in {})",
            done.stdout,
            done.stderr,
            kept.display()
        );
    }
    done.assert_code(0);

    let report = json(&out.join("report.json"));
    assert_eq!(
        report["verdict"]["status"], "ready",
        "{:#}",
        report["verdict"]
    );
    assert_eq!(report["verdict"]["findings"], 0);
    // The daemon did drop privileges in every run: that is what this test is about.
    let per_run = report["findings"]["privilege_drops"].as_array().unwrap();
    assert_eq!(per_run.len(), 3, "{:#}", report["findings"]);
    let merged = report["information"]["privilege_drops"].as_array().unwrap();
    assert_eq!(merged.len(), 1, "{merged:#?}");
    assert_eq!(merged[0]["runs"].as_array().unwrap().len(), 3);
    let root = merged[0]["root_executables"].to_string();
    assert!(root.contains(daemon), "{root}");
    assert_minimal_set_runs(&name, &out, dir.path(), packages);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("**Ready to commit: verify PASSED"), "{md}");
    assert!(md.contains("**Privilege drop** in 3 run(s)"), "{md}");
    assert_eq!(leftover_verify_copies(&name), "");

    // The Kubernetes line of "use it", as a user pastes it (its first command; kubectl apply
    // needs a cluster): the object allows exactly what the profile allows.
    let kubernetes = report["use_it"]["kubernetes"].as_str().unwrap();
    let profile_line = kubernetes.lines().next().unwrap();
    let args: Vec<&str> = profile_line.split_whitespace().collect();
    assert_eq!(args[..2], ["agent-audit", "profile"], "{profile_line}");
    run_ok(
        Command::new(agent_audit_bin())
            .args(&args[1..])
            .current_dir(dir.path()),
        TIMEOUT,
    );
    let object = format!(
        "{}.seccompprofile.yaml",
        report["use_it"]["kubernetes_name"].as_str().unwrap()
    );
    let diff = run(
        Command::new(agent_audit_bin())
            .args(["diff", "--fail-on", "any"])
            .arg(out.join("profile.json"))
            .arg(dir.path().join(&object)),
        TIMEOUT,
    );
    assert_eq!(diff.code(), 0, "{}\n{}", diff.stdout, diff.stderr);
}

/// The capabilities of a container Docker creates with its defaults: the bounding set's bits
/// in the image's own `/proc/self/status`.
fn docker_default_capability_count(packages: &[&str]) -> u32 {
    let image = debian_image_with(packages);
    let status = run_ok(
        Command::new("docker").args([
            "run",
            "--rm",
            "--network",
            "none",
            image.as_str(),
            "grep",
            "CapBnd",
            "/proc/self/status",
        ]),
        TIMEOUT,
    );
    let hex = status.split_whitespace().last().unwrap();
    u64::from_str_radix(hex, 16).unwrap().count_ones()
}

/// The audit's `capabilities.json` adds fewer capabilities than Docker gives, each with its
/// reason; the audit's verify copy ran with exactly them; and the daemon does its job 3 times
/// of 3 in a copy created with `--cap-drop ALL --cap-add <set>` and the profile.
fn assert_minimal_set_runs(name: &str, out: &Path, dir: &Path, packages: &[&str]) {
    let minimal = json(&out.join("capabilities.json"));
    assert_eq!(minimal["drop"], serde_json::json!(["ALL"]), "{minimal:#}");
    let add: Vec<&str> = minimal["add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let docker_default = docker_default_capability_count(packages);
    assert!(
        add.len() < usize::try_from(docker_default).unwrap(),
        "{add:?} is not fewer than Docker's {docker_default}"
    );
    for cap in &add {
        let why = &minimal["reasons"][*cap];
        assert!(why["checks"].as_u64().unwrap() > 0, "{minimal:#}");
        assert!(why["programs"].as_object().is_some_and(|p| !p.is_empty()));
    }
    eprintln!("{name}: minimal set {add:?} (Docker's default: {docker_default})");
    let verify = json(&out.join("verify.json"));
    let ran_with = verify["container"]["capabilities"].as_str().unwrap();
    for cap in &add {
        assert!(ran_with.contains(&format!("CAP_{cap}")), "{ran_with}");
    }
    assert_eq!(ran_with.matches("CAP_").count(), add.len(), "{ran_with}");
    for i in 1..=3 {
        let result = dir.join(format!("verify-{i}.json"));
        let again = run(
            Command::new(agent_audit_bin())
                .arg("verify")
                .arg("--profile")
                .arg(out.join("profile.json"))
                .arg("--caps-file")
                .arg(out.join("capabilities.json"))
                .args(["--docker-container", name, "--out"])
                .arg(&result),
            TIMEOUT,
        );
        let v = json(&result);
        assert_eq!(v["passed"], true, "verify {i}: {v:#}\n{}", again.stderr);
        assert_eq!(v["container"]["capabilities"], ran_with, "{v:#}");
        again.assert_code(0);
    }
    assert_eq!(leftover_verify_copies(name), "");
}

#[test]
fn root_audit_of_a_squid_proxy_container_has_no_finding() {
    audit_daemon("findings-report-squid", "squid_task.sh", "/usr/sbin/squid");
}

#[test]
fn root_audit_of_an_nginx_container_has_no_finding() {
    audit_daemon("findings-report-nginx", "nginx_task.sh", "/usr/sbin/nginx");
}

#[test]
fn root_audit_of_a_postgres_container_has_no_finding() {
    audit_daemon(
        "findings-report-postgres",
        "postgres_task.sh",
        "/usr/bin/pg_ctlcluster",
    );
}

#[test]
fn root_audit_of_a_memcached_container_has_no_finding() {
    // memcached drops to its user with -u and keeps worker threads that never end (the
    // process leaves through exit_group only); its own image, so the other daemons' does not
    // grow.
    audit_daemon_from(
        "verdicts-memcached",
        "memcached_task.sh",
        "/usr/bin/memcached",
        &["memcached"],
    );
}
