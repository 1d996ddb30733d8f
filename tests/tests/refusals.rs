//! The calls the seccomp filter in force refused are recorded, exactly, apart from
//! the calls that ran; a workload's own EPERM/EACCES is not one; a kill and a trap are; an
//! i386 refusal has its i386 name. Then through Docker with the documented sidecar line: a
//! container run under a profile that lacks `mkdir`, `diff --fail-on added` naming it, and a
//! profile from that recording running the container.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::container::docker_busybox_image;
use agent_audit_tests::image::{sidecar_image, sidecar_options, skip_without_docker};
use agent_audit_tests::process::{run, wait_until, Finished, Running};
use agent_audit_tests::{
    agent_audit_bin, build_static_c_with, require_root, unique_name, workspace_root,
};

const TIMEOUT: Duration = Duration::from_secs(120);

/// A static program that refuses its own `mkdir` with ACTION (`errno`, `trap`, `kill`,
/// `kill-thread`) through a filter it installs, after failing on its own: an open of a
/// root-only file (EACCES) and a kill of PID 1 (EPERM), as nobody. Then it calls `mkdir` N
/// times (for `kill-thread`, in a second thread, which the first call ends), and prints how
/// many were refused (errno) or trapped, or that the thread ended.
const PROBE: &str = r#"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#if defined(__i386__)
#define ARCH AUDIT_ARCH_I386
#else
#define ARCH AUDIT_ARCH_X86_64
#endif

static volatile int trapped;
static void on_sigsys(int sig) { (void)sig; trapped++; }
static int n;

static void *make_dirs(void *unused) {
    (void)unused;
    for (int i = 0; i < n; i++) syscall(SYS_mkdir, "/nonexistent-dir/x", 0700);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    const char *action = argv[1], *root_only = argv[3];
    n = atoi(argv[2]);
    int alone = !strcmp(action, "kill-thread");
    unsigned ret = !strcmp(action, "errno") ? SECCOMP_RET_ERRNO | EPERM
                 : !strcmp(action, "trap") ? SECCOMP_RET_TRAP
                 : alone ? SECCOMP_RET_KILL_THREAD : SECCOMP_RET_KILL_PROCESS;
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mkdir, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, ret),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof f / sizeof f[0], f };
    signal(SIGSYS, on_sigsys);
    if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534)) return 3;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
        return 4;
    /* The workload's own failures, under the filter: not refusals. */
    /* Signal 0, not SIGCONT: SIGCONT may be sent to any process of one's own session, and
       where PID 1 leads the session the tests run in (a CI container's init), it succeeds. */
    if (open(root_only, O_RDONLY) != -1 || errno != EACCES) {
        fprintf(stderr, "open of a root-only file: %s\n", strerror(errno));
        return 5;
    }
    if (kill(1, 0) != -1 || errno != EPERM) {
        fprintf(stderr, "kill(1, 0) as nobody: %s\n", strerror(errno));
        return 6;
    }
    if (alone) {
        /* The thread's first mkdir ends it alone: this one goes on. */
        pthread_t thread;
        if (pthread_create(&thread, NULL, make_dirs, NULL) || pthread_join(thread, NULL))
            return 7;
        printf("thread ended\n");
        return 0;
    }
    int refused = 0;
    for (int i = 0; i < n; i++)
        if (syscall(SYS_mkdir, "/nonexistent-dir/x", 0700) == -1 && errno == EPERM) refused++;
    printf("refused=%d trapped=%d\n", refused, trapped);
    return 0;
}
"#;

/// Builds the probe (`-m32` for i386); `setresuid` needs `_GNU_SOURCE`.
fn build_probe(dir: &Path, m32: bool) -> PathBuf {
    let (name, flags): (&str, &[&str]) = match m32 {
        true => ("probe32", &["-D_GNU_SOURCE", "-m32"]),
        false => ("probe", &["-D_GNU_SOURCE"]),
    };
    build_static_c_with(dir, name, PROBE, flags)
}

/// `agent-audit run --out FILE -- PROBE ACTION N ROOT_ONLY`.
fn record_probe(dir: &Path, probe: &Path, action: &str, n: u32) -> (Finished, Allowlist) {
    let root_only = dir.join("root-only");
    fs::write(&root_only, "secret").unwrap();
    fs::set_permissions(
        &root_only,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    // The probe runs as nobody: it must reach its own directory.
    fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = dir.join(format!("{action}.allowlist.json"));
    let finished = run(
        Command::new(agent_audit_bin())
            .args(["run", "--out"])
            .arg(&out)
            .arg("--")
            .arg(probe)
            .args([action, &n.to_string()])
            .arg(&root_only),
        TIMEOUT,
    );
    (finished, Allowlist::read(&out))
}

/// `(name, arch, count, action, filter)` of every `refused` row.
fn refused(list: &Allowlist) -> Vec<(String, String, u64, String, String)> {
    list.rows("refused")
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (
                s("name"),
                s("arch"),
                r["count"].as_u64().unwrap(),
                s("action"),
                s("filter"),
            )
        })
        .collect()
}

fn row(name: &str, arch: &str, count: u64, action: &str) -> (String, String, u64, String, String) {
    // The probe installed the filter itself, after its exec: its own filter.
    (
        name.into(),
        arch.into(),
        count,
        action.into(),
        "with_own".into(),
    )
}

#[test]
fn root_refusals_are_counted_exactly_and_the_workloads_own_eperm_is_not() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let probe = build_probe(dir.path(), false);
    let (finished, list) = record_probe(dir.path(), &probe, "errno", 7);
    finished.assert_code(0);
    assert!(finished.stdout.contains("refused=7"), "{finished:#?}");
    assert_eq!(
        refused(&list),
        vec![row("mkdir", "SCMP_ARCH_X86_64", 7, "errno")],
        "{:#}",
        list.0
    );
    // The calls that failed on their own ran: they are counted as calls, not refusals; the
    // refused ones never ran and stay out of `syscalls` and `totals`.
    list.assert_has(&["openat", "kill", "prctl"]);
    assert_eq!(list.count("mkdir"), 0, "{:#}", list.0);
    let programs: Vec<(&str, u64)> = list.rows("refused")[0]["programs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["comm"].as_str().unwrap(), p["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(programs, vec![("probe", 7)]);
}

#[test]
fn root_trap_and_kill_refusals_are_counted() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let probe = build_probe(dir.path(), false);
    let (finished, list) = record_probe(dir.path(), &probe, "trap", 3);
    finished.assert_code(0);
    assert!(finished.stdout.contains("trapped=3"), "{finished:#?}");
    assert_eq!(
        refused(&list),
        vec![row("mkdir", "SCMP_ARCH_X86_64", 3, "trap")]
    );
    let (finished, list) = record_probe(dir.path(), &probe, "kill", 3);
    // SIGSYS: the first mkdir killed the process.
    assert_eq!(finished.code(), 128 + libc::SIGSYS, "{finished:#?}");
    assert_eq!(
        refused(&list),
        vec![row("mkdir", "SCMP_ARCH_X86_64", 1, "kill")]
    );
}

/// A thread killed alone (`SCMP_ACT_KILL_THREAD`, its process goes on) ends inside the
/// filter and never reaches `sys_exit`: its kill is counted when it exits, once, and the
/// process's own end is not a refusal.
#[test]
fn root_a_thread_killed_alone_is_one_kill_refusal() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let probe = build_probe(dir.path(), false);
    let (finished, list) = record_probe(dir.path(), &probe, "kill-thread", 5);
    finished.assert_code(0);
    assert!(finished.stdout.contains("thread ended"), "{finished:#?}");
    assert_eq!(
        refused(&list),
        vec![row("mkdir", "SCMP_ARCH_X86_64", 1, "kill")],
        "{:#}",
        list.0
    );
    assert_eq!(list.0["recorder"]["refusals"], true, "{:#}", list.0);
}

#[test]
#[cfg(target_arch = "x86_64")]
fn root_an_i386_refusal_has_its_i386_name() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let probe = build_probe(dir.path(), true);
    let (finished, list) = record_probe(dir.path(), &probe, "errno", 4);
    finished.assert_code(0);
    // i386 mkdir is 39 (x86_64's 39 is getpid).
    assert_eq!(
        refused(&list),
        vec![row("mkdir", "SCMP_ARCH_X86", 4, "errno")]
    );
    assert_eq!(list.rows("refused")[0]["nr"], 39);
}

/// Docker's default profile without `mkdir`/`mkdirat`: the profile in force.
fn profile_without_mkdir(dir: &Path) -> PathBuf {
    let text = fs::read_to_string(workspace_root().join("tests/data/profiles/docker-default.json"))
        .unwrap();
    let mut profile: serde_json::Value = serde_json::from_str(&text).unwrap();
    for rule in profile["syscalls"].as_array_mut().unwrap() {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| !matches!(n.as_str(), Some("mkdir" | "mkdirat")));
        }
    }
    let path = dir.join("no-mkdir.json");
    fs::write(&path, serde_json::to_string_pretty(&profile).unwrap()).unwrap();
    path
}

/// Removes a container by name on drop.
struct Rm(String);

impl Drop for Rm {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "--force", &self.0])
            .output();
    }
}

/// Three `mkdir`s, then proof the container got that far.
const MKDIRS: &str =
    "mkdir /tmp/a; mkdir /tmp/b; mkdir /tmp/c; ls -d /tmp/a /tmp/b /tmp/c; echo end";

#[test]
fn root_sidecar_records_what_the_profile_in_force_refused() {
    require_root();
    if skip_without_docker("root_sidecar_records_what_the_profile_in_force_refused") {
        return;
    }
    let image = sidecar_image();
    let busybox = docker_busybox_image();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("audit");
    fs::create_dir(&out).unwrap();
    let in_force = profile_without_mkdir(dir.path());
    let agent = unique_name("refusals-agent");
    let sidecar = format!("{agent}-sidecar");
    let (_rm_agent, _rm_sidecar) = (Rm(agent.clone()), Rm(sidecar.clone()));
    // The documented sidecar line (docs/containers-and-kubernetes.md).
    let mut recorder = Running::spawn(
        Command::new("docker")
            .args(["run", "--rm", "--name", &sidecar])
            .args(sidecar_options(&out))
            .arg(image)
            .args(["record", "--wait", "--container", &agent, "--out"])
            .arg(format!("/out/{agent}.allowlist.json")),
    );
    wait_until("the sidecar's readiness line", TIMEOUT, || {
        recorder.has_exited() || recorder.stderr_so_far().contains("armed for new cgroups")
    });
    let docker_run = |profile: &Path| {
        run(
            Command::new("docker")
                .args(["run", "--rm", "--network", "none", "--name", &agent])
                .arg("--security-opt")
                .arg(format!("seccomp={}", profile.display()))
                .args([busybox, "sh", "-c", MKDIRS]),
            TIMEOUT,
        )
    };
    let first = docker_run(&in_force);
    assert!(first.stdout.contains("end"), "{first:#?}");
    assert_eq!(
        first.stderr.matches("Operation not permitted").count(),
        3,
        "{first:#?}"
    );
    recorder.finish(TIMEOUT, "the sidecar").assert_code(0);
    let recorded = out.join(format!("{agent}.allowlist.json"));
    let list = Allowlist::read(&recorded);
    let mkdir: Vec<_> = refused(&list)
        .into_iter()
        .filter(|r| r.0.starts_with("mkdir"))
        .collect();
    assert_eq!(
        mkdir,
        vec![(
            "mkdir".to_string(),
            "SCMP_ARCH_X86_64".to_string(),
            3,
            "errno".to_string(),
            "runtime".to_string()
        )],
        "{:#}",
        list.0
    );

    // The committed profile lacks it: the CI gate fails and names it.
    let gate = run(
        Command::new(agent_audit_bin())
            .args(["diff", "--fail-on", "added"])
            .arg(&in_force)
            .arg(&recorded),
        TIMEOUT,
    );
    gate.assert_code(1);
    assert!(
        gate.stdout
            .contains("! mkdir: refused 3 time(s), never recorded"),
        "{gate:#?}"
    );

    // A profile from that recording allows it, and runs the container.
    let profile = dir.path().join("profile.json");
    run(
        Command::new(agent_audit_bin())
            .arg("profile")
            .arg(&recorded)
            .arg("-o")
            .arg(&profile),
        TIMEOUT,
    )
    .assert_code(0);
    let text = fs::read_to_string(&profile).unwrap();
    assert!(
        text.contains("refused under the previous profile")
            || text.contains("Refused by the profile in force"),
        "{text}"
    );
    let second = docker_run(&profile);
    second.assert_code(0);
    assert!(second.stdout.contains("/tmp/a"), "{second:#?}");
    assert!(
        !second.stderr.contains("Operation not permitted"),
        "{second:#?}"
    );
}

/// `GET PATH` from `addr`, the whole response.
fn get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// The metrics endpoint answers with the counts while the recorder runs: a target's refused
/// `mkdir`s appear, exactly, as its workload makes them.
#[test]
fn root_metrics_endpoint_answers_with_the_refusal_counts_while_recording() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let probe = build_probe(dir.path(), false);
    let root_only = dir.path().join("root-only");
    fs::write(&root_only, "secret").unwrap();
    fs::set_permissions(
        &root_only,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let cgroup = agent_audit_tests::cgroup::ScratchCgroup::new(&unique_name("refusals-metrics"));
    let mut recorder = Running::spawn(
        Command::new(agent_audit_bin())
            .args(["record", "--metrics", "0", "--cgroup"])
            .arg(&cgroup.dir)
            .arg("--out")
            .arg(dir.path().join("m.json")),
    );
    let mut addr = String::new();
    wait_until("the metrics line and the armed line", TIMEOUT, || {
        let err = recorder.stderr_so_far();
        if let Some(line) = err.lines().find(|l| l.contains("metrics at http://")) {
            addr = line
                .split("http://")
                .nth(1)
                .unwrap()
                .trim_end_matches("/metrics")
                .to_string();
        }
        recorder.has_exited() || (!addr.is_empty() && err.contains("recording"))
    });
    assert!(
        !recorder.has_exited(),
        "{:#?}",
        recorder.finish(TIMEOUT, "record")
    );
    let before = get(&addr, "/metrics");
    assert!(before.starts_with("HTTP/1.1 200"), "{before}");
    assert!(before.contains("application/openmetrics-text"), "{before}");
    assert!(!before.contains("refused_calls_total{"), "{before}");
    let workload = run(
        Command::new("sh").arg("-c").arg(format!(
            "echo $$ > {}/cgroup.procs && exec {} errno 5 {}",
            cgroup.dir.display(),
            probe.display(),
            root_only.display()
        )),
        TIMEOUT,
    );
    workload.assert_code(0);
    let mut scraped = String::new();
    wait_until("the refusals in the metrics", TIMEOUT, || {
        scraped = get(&addr, "/metrics");
        scraped.contains("syscall=\"mkdir\"")
    });
    assert!(
        scraped.contains("arch=\"SCMP_ARCH_X86_64\",action=\"errno\"} 5\n"),
        "{scraped}"
    );
    assert!(scraped.trim_end().ends_with("# EOF"), "{scraped}");
    let not_found = get(&addr, "/");
    assert!(not_found.starts_with("HTTP/1.1 404"), "{not_found}");
    recorder.signal(libc::SIGTERM);
    recorder.finish(TIMEOUT, "record").assert_code(0);
}

#[test]
fn root_a_metrics_address_that_cannot_be_used_is_refused_before_recording() {
    require_root();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let cgroup =
        agent_audit_tests::cgroup::ScratchCgroup::new(&unique_name("refusals-metrics-bad"));
    let record = |addr: &str| {
        run(
            Command::new(agent_audit_bin())
                .args(["record", "--duration", "1", "--metrics", addr, "--cgroup"])
                .arg(&cgroup.dir)
                .arg("--out")
                .arg(dir.path().join("m.json")),
            TIMEOUT,
        )
    };
    record("localhost:9464")
        .assert_code(2)
        .assert_stderr_mentions(&["not PORT or HOST:PORT"]);
    record(&port.to_string())
        .assert_code(74)
        .assert_stderr_mentions(&["--metrics 127.0.0.1:", "cannot listen there"]);
    assert!(!dir.path().join("m.json").exists());
}
