//! `record --wait --cgroup-glob`: armed before the containers exist, the recorder picks up each
//! new matching cgroup from its first syscall, keeps the runtime's init (runc's `mount`,
//! `pivot_root`, …, up to the workload's first execve) apart in `runtime_init`, writes one file
//! per container, ignores non-matching siblings, and exits by itself once they are all gone.
//!
//! `record` prints nothing when it is armed, so each test first creates an empty matching
//! "probe" cgroup: it is a target from the start, and its first snapshot can only be written
//! once the parent is armed (arming happens before the recording loop starts). The probe is
//! removed once the containers have been picked up, so that the recorder's exit depends on the
//! containers alone.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::cgroup::ScratchCgroup;
use agent_audit_tests::container::{busybox_rootfs, docker_busybox_image, RuncContainer};
use agent_audit_tests::process::{run_ok, Finished, Running};
use agent_audit_tests::{agent_audit_bin, require_root, unique_name};

const TIMEOUT: Duration = Duration::from_secs(40);

/// A `record --wait` daemon, armed, with its probe cgroup.
struct Armed {
    recorder: Option<Running>,
    out_dir: PathBuf,
    probe: Option<ScratchCgroup>,
}

impl Armed {
    /// Creates the probe `<parent>/<probe_name>` (it must match `pattern`), starts
    /// `record --wait --cgroup-glob pattern --out-dir out_dir` and waits until it is armed.
    fn start(pattern: &str, parent: &str, probe_name: &str, out_dir: &Path) -> Self {
        let probe = ScratchCgroup::at(&format!("{parent}/{probe_name}"));
        let recorder = Running::spawn(
            Command::new(agent_audit_bin())
                .args(["record", "--wait", "--cgroup-glob", pattern])
                .args(["--interval", "0.2", "--out-dir"])
                .arg(out_dir),
        );
        let mut armed = Self {
            recorder: Some(recorder),
            out_dir: out_dir.to_path_buf(),
            probe: Some(probe),
        };
        let probe_file = armed.file(probe_name);
        armed.wait_for("the probe's first snapshot (armed)", || probe_file.exists());
        armed
    }

    /// Where the allowlist of the cgroup named `name` goes.
    fn file(&self, name: &str) -> PathBuf {
        self.out_dir.join(format!("{name}.allowlist.json"))
    }

    /// Waits for `cond`; fails with the recorder's output and the files written if the
    /// recorder exits meanwhile or the time is up.
    fn wait_for(&mut self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if cond() {
                return;
            }
            let recorder = self.recorder.as_mut().unwrap();
            let exited = recorder.has_exited();
            if exited || Instant::now() > deadline {
                if !exited {
                    recorder.signal(libc::SIGTERM);
                }
                let done = self
                    .recorder
                    .take()
                    .unwrap()
                    .finish(TIMEOUT, "agent-audit record");
                panic!(
                    "{} while waiting for {what}; files: {:?}; recorder: {done:#?}",
                    if exited {
                        "agent-audit record exited"
                    } else {
                        "timed out"
                    },
                    armed_files(&self.out_dir)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the final (complete) file of `name` is written.
    fn wait_for_final(&mut self, name: &str) -> Allowlist {
        let path = self.file(name);
        self.wait_for(&format!("the final allowlist of {name}"), || {
            fs::read_to_string(&path)
                .ok()
                .and_then(|t| Allowlist::parse(&t).ok())
                .is_some_and(|l| l.complete())
        });
        Allowlist::read(&path)
    }

    /// Removes the probe cgroup: from now on only the containers keep the recorder running.
    fn release_probe(&mut self) {
        self.probe.take();
    }

    /// Waits for the recorder to exit by itself.
    fn finish(mut self) -> Finished {
        self.release_probe();
        self.recorder
            .take()
            .unwrap()
            .finish(TIMEOUT, "agent-audit record --wait (all targets gone)")
    }
}

/// A fresh busybox bundle `<dir>/<name>` for one runc container.
fn bundle(dir: &Path, name: &str) -> PathBuf {
    let bundle = dir.join(name);
    busybox_rootfs(&bundle.join("rootfs"));
    bundle
}

/// Checks what every container picked up at creation shares: complete, named after its
/// cgroup, runc's init kept apart from the workload's calls. Returns the workload's names.
fn assert_runc_container_recorded(list: &Allowlist, name: &str, pattern: &str) -> BTreeSet<String> {
    let dump = format!("{:#}", list.0);
    assert!(list.complete(), "{dump}");
    assert_eq!(list.target()["cgroup_path"], format!("/{name}"), "{dump}");
    assert_eq!(list.target()["spec"], pattern, "{dump}");
    let init = list.names_in("runtime_init");
    // runc's init: mounts the rootfs, pivots into it, names the host, then execs the
    // workload (that execve is the last call counted as the runtime's).
    for call in ["mount", "pivot_root", "sethostname", "execve"] {
        assert!(init.contains(call), "{call} not in runtime_init {init:?}");
    }
    let workload = list.names_in("syscalls");
    for call in ["mount", "pivot_root", "sethostname"] {
        assert!(
            !workload.contains(call),
            "runc's {call} counted as the workload's: {workload:?}"
        );
    }
    // The workload starts as `sh -c …`, run by runc's init as root.
    let execs = list.rows("executables");
    assert!(
        execs
            .iter()
            .any(|e| e["path"] == "/bin/sh" && e["uid"] == 0),
        "no /bin/sh exec in {execs:?}"
    );
    workload
}

#[test]
fn root_record_wait_picks_up_a_runc_container_and_ignores_other_siblings() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let prefix = unique_name("aa-wait");
    let pattern = format!("{prefix}-*");
    let mut armed = Armed::start(&pattern, "", &format!("{prefix}-probe"), &out);

    let name = format!("{prefix}-1");
    let other = unique_name("aa-other");
    let mut container = RuncContainer::launch(
        &bundle(dir.path(), &name),
        &name,
        "ls -l / > /dev/null; cat /etc/passwd > /dev/null; wc -c /etc/passwd > /dev/null",
    );
    // A sibling that does not match, created while the recorder waits.
    let mut sibling = RuncContainer::launch(&bundle(dir.path(), &other), &other, "ls /");
    let file = armed.file(&name);
    armed.wait_for(&format!("{name} to be picked up"), || file.exists());
    armed.release_probe();
    assert_eq!(container.wait(TIMEOUT), 0, "the workload failed");
    assert_eq!(sibling.wait(TIMEOUT), 0, "the sibling's workload failed");
    armed.finish().assert_code(0);

    let list = Allowlist::read(&file);
    let workload = assert_runc_container_recorded(&list, &name, &pattern);
    for call in ["getdents64", "openat", "wait4", "exit_group"] {
        assert!(workload.contains(call), "{call} not in {workload:?}");
    }
    assert!(
        ["clone", "clone3", "fork", "vfork"]
            .iter()
            .any(|c| workload.contains(*c)),
        "sh started no child: {workload:?}"
    );
    // The probe and the container, nothing for the sibling.
    let expected: BTreeSet<String> = [format!("{prefix}-probe"), name]
        .iter()
        .map(|n| format!("{n}.allowlist.json"))
        .collect();
    assert_eq!(armed_files(&out), expected);
}

fn armed_files(out: &Path) -> BTreeSet<String> {
    fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn root_record_wait_gives_two_containers_started_at_once_their_own_allowlists() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let prefix = unique_name("aa-wait2");
    let pattern = format!("{prefix}-*");
    let mut armed = Armed::start(&pattern, "", &format!("{prefix}-probe"), &out);

    // One lists a directory; the other writes a file and reads it back.
    let (lister, writer) = (format!("{prefix}-a"), format!("{prefix}-b"));
    let mut a = RuncContainer::launch(&bundle(dir.path(), &lister), &lister, "ls -l /etc");
    let mut b = RuncContainer::launch(
        &bundle(dir.path(), &writer),
        &writer,
        "echo data > /tmp/x; cat /tmp/x",
    );
    let (fa, fb) = (armed.file(&lister), armed.file(&writer));
    armed.wait_for("both containers to be picked up", || {
        fa.exists() && fb.exists()
    });
    armed.release_probe();
    assert_eq!(a.wait(TIMEOUT), 0);
    assert_eq!(b.wait(TIMEOUT), 0);
    armed.finish().assert_code(0);

    let la = Allowlist::read(&fa);
    let lb = Allowlist::read(&fb);
    let wa = assert_runc_container_recorded(&la, &lister, &pattern);
    let wb = assert_runc_container_recorded(&lb, &writer, &pattern);
    assert_ne!(la.target()["cgroup_id"], lb.target()["cgroup_id"]);
    // Only ls reads directories; only cat copies a file (busybox cat: sendfile).
    assert!(wa.contains("getdents64"), "ls made no getdents64: {wa:?}");
    assert!(
        !wb.contains("getdents64"),
        "the writer's allowlist has the lister's getdents64: {wb:?}"
    );
    assert!(wb.contains("sendfile"), "cat made no sendfile: {wb:?}");
    assert!(
        !wa.contains("sendfile"),
        "the lister's allowlist has the writer's sendfile: {wa:?}"
    );
    let expected: BTreeSet<String> = [format!("{prefix}-probe"), lister, writer]
        .iter()
        .map(|n| format!("{n}.allowlist.json"))
        .collect();
    assert_eq!(armed_files(&out), expected);
}

#[test]
fn root_record_wait_records_a_container_that_exits_at_once() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let prefix = unique_name("aa-wait3");
    let pattern = format!("{prefix}-*");
    let mut armed = Armed::start(&pattern, "", &format!("{prefix}-probe"), &out);

    let name = format!("{prefix}-short");
    let mut container = RuncContainer::launch(&bundle(dir.path(), &name), &name, "exit 3");
    // Gone (cgroup removed) before the recorder's next poll, most likely.
    assert_eq!(container.wait(TIMEOUT), 3);
    let list = armed.wait_for_final(&name);
    armed.finish().assert_code(0);
    let workload = assert_runc_container_recorded(&list, &name, &pattern);
    assert!(workload.contains("exit_group"), "{workload:?}");
    let expected: BTreeSet<String> = [format!("{prefix}-probe"), name]
        .iter()
        .map(|n| format!("{n}.allowlist.json"))
        .collect();
    assert_eq!(armed_files(&out), expected);
}

/// Optional: Docker (cgroupfs driver: containers in `docker/<id>`). Other containers on the
/// machine may match too, so the recorder is stopped with SIGTERM once this one's final file
/// is written, rather than waited for.
#[test]
fn root_record_wait_picks_up_a_docker_container() {
    require_root();
    let mount = agent_audit_tests::cgroup::v2_mount().unwrap();
    assert!(
        mount.join("docker").is_dir(),
        "no docker/ cgroup below {}: Docker must use the cgroupfs driver",
        mount.display()
    );
    let image = docker_busybox_image();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let probe_name = unique_name("aa-probe");
    let mut armed = Armed::start("docker/*", "docker", &probe_name, &out);
    armed.release_probe();

    let cidfile = dir.path().join("cid");
    let name = unique_name("aa-wait-docker");
    let _cleanup = DockerRm(name.clone());
    run_ok(
        Command::new("docker")
            .args([
                "run",
                "--rm",
                "--network",
                "none",
                "--name",
                &name,
                "--cidfile",
            ])
            .arg(&cidfile)
            .args([image, "sh", "-c", "ls / > /dev/null"]),
        TIMEOUT,
    );
    let id = fs::read_to_string(&cidfile).unwrap().trim().to_string();
    let list = armed.wait_for_final(&id);
    armed.recorder.as_ref().unwrap().signal(libc::SIGTERM);
    armed.finish().assert_code(0);

    let dump = format!("{:#}", list.0);
    assert_eq!(list.target()["cgroup_path"], format!("/docker/{id}"));
    let init = list.names_in("runtime_init");
    for call in ["mount", "pivot_root", "execve"] {
        assert!(init.contains(call), "{call} not in runtime_init:\n{dump}");
    }
    assert!(
        list.names().contains("getdents64"),
        "ls not recorded:\n{dump}"
    );
    assert!(!list.names().contains("pivot_root"), "{dump}");
}

/// Removes a Docker container by name on drop, in case `docker run --rm` did not.
struct DockerRm(String);

impl Drop for DockerRm {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "--force", &self.0])
            .output();
    }
}

/// The workload's `programs` must be the workload's: runc's init ran before the first execve
/// and is counted in `runtime_init`, so its task names (`runc:[2:INIT]`, …) and calls must not
/// be attributed to the workload's rows.
#[test]
fn root_record_wait_attributes_only_workload_calls_to_workload_rows() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let prefix = unique_name("aa-wait4");
    let pattern = format!("{prefix}-*");
    let mut armed = Armed::start(&pattern, "", &format!("{prefix}-probe"), &out);
    let name = format!("{prefix}-1");
    let mut container = RuncContainer::launch(&bundle(dir.path(), &name), &name, "ls /");
    assert_eq!(container.wait(TIMEOUT), 0);
    let list = armed.wait_for_final(&name);
    armed.finish().assert_code(0);
    for row in list.syscalls() {
        let progs = row["programs"].as_array().cloned().unwrap_or_default();
        let sum: u64 = progs.iter().map(|p| p["count"].as_u64().unwrap()).sum();
        assert_eq!(sum, row["count"].as_u64().unwrap(), "{row}");
        assert!(
            progs
                .iter()
                .all(|p| !p["comm"].as_str().unwrap().starts_with("runc")),
            "runc's init attributed to the workload: {row}"
        );
    }
}
