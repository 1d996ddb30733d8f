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
        Self::start_with_interval(pattern, parent, probe_name, out_dir, "0.2")
    }

    /// [`Self::start`] with snapshots every `interval` seconds.
    fn start_with_interval(
        pattern: &str,
        parent: &str,
        probe_name: &str,
        out_dir: &Path,
        interval: &str,
    ) -> Self {
        let probe = ScratchCgroup::at(&format!("{parent}/{probe_name}"));
        let recorder = Running::spawn(
            Command::new(agent_audit_bin())
                .args(["record", "--wait", "--cgroup-glob", pattern])
                .args(["--interval", interval, "--out-dir"])
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
        self.wait_for_stderr(what, |_| cond());
    }

    /// What the recorder has written to stderr so far.
    fn stderr(&self) -> String {
        self.recorder.as_ref().unwrap().stderr_so_far()
    }

    /// Waits for `cond` on the recorder's stderr so far, like [`Self::wait_for`].
    fn wait_for_stderr(&mut self, what: &str, mut cond: impl FnMut(&str) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if cond(&self.stderr()) {
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

const HELPER: &str = env!("CARGO_BIN_EXE_getppid-loop");

/// `getppid-loop <steps> <calls>` started inside `cgroup`, output discarded.
fn spawn_loop(cgroup: &ScratchCgroup, steps: &[&Path], calls: u64) -> std::process::Child {
    let mut cmd = Command::new(HELPER);
    for fifo in steps {
        cmd.arg("--open").arg(fifo);
    }
    cmd.arg(calls.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    cgroup.contain(&mut cmd);
    cmd.spawn().expect("start getppid-loop")
}

fn wait_ok(mut child: std::process::Child) {
    let status = child.wait().expect("wait for getppid-loop");
    assert!(status.success(), "getppid-loop failed: {status}");
}

/// A burst far larger than any fixed pool: 100 cgroups created at once, each running a
/// process that makes its own exact number of `getppid` calls. Every one gets its own file
/// with exactly its count, none marked as having missed its start.
#[test]
fn root_record_wait_records_every_one_of_100_cgroups_created_at_once() {
    require_root();
    const N: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    // A parent of its own: cgroups other programs create meanwhile are not in the burst.
    let parent = ScratchCgroup::at(&unique_name("aa-burst"));
    let pattern = format!("{}/c-*", parent.rel);
    let armed = Armed::start(&pattern, &parent.rel, "c-probe", &out);

    let names: Vec<String> = (0..N).map(|i| format!("c-{i}")).collect();
    let cgroups: Vec<ScratchCgroup> = names
        .iter()
        .map(|n| ScratchCgroup::at(&format!("{}/{n}", parent.rel)))
        .collect();
    let children: Vec<_> = cgroups
        .iter()
        .zip(1000..)
        .map(|(cgroup, calls)| spawn_loop(cgroup, &[], calls))
        .collect();
    children.into_iter().for_each(wait_ok);
    drop(cgroups); // each cgroup's removal finishes its file
    let files: Vec<PathBuf> = names.iter().map(|n| armed.file(n)).collect();
    let done = armed.finish();
    done.assert_code(0);
    assert!(!done.stderr.contains("warning"), "{}", done.stderr);
    for (i, file) in files.iter().enumerate() {
        let list = Allowlist::read(file);
        assert!(list.complete(), "{}", file.display());
        assert_eq!(list.count("getppid"), 1000 + i as u64, "{}", file.display());
        assert!(list.0.get("missed_start").is_none(), "{}", file.display());
    }
}

/// Cgroups created, used and removed one after another as fast as a loop can: the inotify
/// reader can lose the race and find a directory already gone, leaving the id the kernel
/// program claimed without a name. Each cgroup must then be accounted for: recorded (its
/// file, exact), or counted in a warning (its id and calls) that says its calls are in no
/// allowlist — never lost silently. The warning suggests the names of the last few
/// directories seen gone (at most 8), which must never be a recorded one's. (On a loaded
/// 2-core machine about 1 in 100 loses the race; under heavy load dozens.)
#[test]
fn root_record_wait_accounts_for_every_short_lived_cgroup() {
    require_root();
    const N: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let parent = ScratchCgroup::at(&unique_name("aa-flash"));
    let pattern = format!("{}/c-*", parent.rel);
    let armed = Armed::start(&pattern, &parent.rel, "c-probe", &out);
    let names: Vec<String> = (0..N).map(|i| format!("c-{i}")).collect();
    let files: Vec<PathBuf> = names.iter().map(|n| armed.file(n)).collect();
    for name in &names {
        let cgroup = ScratchCgroup::at(&format!("{}/{name}", parent.rel));
        wait_ok(spawn_loop(&cgroup, &[], 1));
        drop(cgroup);
    }
    let done = armed.finish();
    done.assert_code(0);
    let warnings: Vec<&str> = done
        .stderr
        .lines()
        .filter(|l| l.contains("was removed before its name could be read"))
        .collect();
    let mut lost = Vec::new();
    for (name, file) in names.iter().zip(&files) {
        if file.exists() {
            let list = Allowlist::read(file);
            assert!(list.complete(), "{}", file.display());
            assert_eq!(list.count("getppid"), 1, "{}", file.display());
        } else {
            lost.push(name.as_str());
        }
    }
    // One warning per cgroup without a file (it names the cgroup's id and its calls); the
    // names it suggests (the last few directories seen gone) are only ever lost ones.
    assert_eq!(
        warnings.len(),
        lost.len(),
        "lost {lost:?}:\n{}",
        done.stderr
    );
    let recorded = |name: &&String| !lost.contains(&name.as_str());
    for name in names.iter().filter(recorded) {
        let named = |l: &&str| l.contains(&format!("/{name},")) || l.contains(&format!("/{name})"));
        assert!(
            !warnings.iter().any(named),
            "{name} was recorded but named as lost:\n{}",
            done.stderr
        );
    }
    eprintln!(
        "{} of {N} cgroups were gone before they could be named",
        lost.len()
    );
}

/// More new cgroups than free slots: the ones left without a slot are reported on stderr
/// (name, time), get a slot as soon as recorded targets end, and are then counted exactly,
/// their files saying `missed_start`.
#[test]
fn root_record_wait_reports_cgroups_without_a_slot_and_records_them_once_one_frees() {
    require_root();
    const SLOTS: usize = 256; // agent_audit_ebpf::MAX_TARGETS
    const EXTRA: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let go = dir.path().join("go");
    let c = std::ffi::CString::new(go.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // A parent of its own: no other program's new cgroup can take a slot that frees.
    let parent = ScratchCgroup::at(&unique_name("aa-starve"));
    let pattern = format!("{}/c-*", parent.rel);
    // Snapshots of 256 targets every second, not five times a second: a debug build.
    let mut armed = Armed::start_with_interval(&pattern, &parent.rel, "c-probe", &out, "1");

    // The probe holds one slot: SLOTS - 1 of these get one, EXTRA do not.
    let count = SLOTS - 1 + EXTRA;
    let names: Vec<String> = (0..count).map(|i| format!("c-{i}")).collect();
    let mut cgroups: Vec<Option<ScratchCgroup>> = names
        .iter()
        .map(|n| Some(ScratchCgroup::at(&format!("{}/{n}", parent.rel))))
        .collect();
    let calls = |i: usize| 1000 + i as u64;
    let mut children: Vec<Option<std::process::Child>> = (0..count)
        .map(|i| {
            let cg = cgroups[i].as_ref().unwrap();
            Some(spawn_loop(cg, &[&go], calls(i)))
        })
        .collect();
    // "<time>: new cgroup /<name> found all 256 target slots in use: …"
    let reported = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains("target slots in") && l.contains("warning"))
            .filter_map(|l| l.split("new cgroup /").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            .filter_map(|path| path.rsplit('/').next())
            .map(str::to_string)
            .collect()
    };
    let (files_of, file_of) = (names.clone(), |n: &str| {
        out.join(format!("{n}.allowlist.json"))
    });
    armed.wait_for_stderr("every cgroup to be picked up or reported", |text| {
        let claimed = files_of.iter().filter(|n| file_of(n).exists()).count();
        claimed == SLOTS - 1 && reported(text).len() == EXTRA
    });
    let starved = reported(&armed.stderr());
    for name in &starved {
        assert!(names.contains(name), "{name} is not one of the test's");
        assert!(!file_of(name).exists(), "{name} reported but recorded");
    }
    // One of them makes no call after those that found no slot: its process ends while it
    // waits, its cgroup stays. It still gets a slot, and so a file: 0 calls, missed_start
    // (what docs/recording.md says of it).
    let emptied = names.iter().position(|n| *n == starved[0]).unwrap();
    if let Some(mut child) = children[emptied].take() {
        let _ = child.kill();
        let _ = child.wait();
    }
    // End EXTRA recorded cgroups (they are still blocked before their calls): their slots
    // free.
    let ended: Vec<usize> = (0..count)
        .filter(|&i| !starved.contains(&names[i]))
        .take(EXTRA)
        .collect();
    for &i in &ended {
        drop(cgroups[i].take()); // kills its process
        let _ = children[i].take().map(|mut c| c.wait());
    }
    for &i in &ended {
        armed.wait_for_final(&names[i]);
    }
    // The freed slots go to the cgroups that waited for one; everything they do from now
    // on is counted.
    armed.wait_for_stderr("the starved cgroups to get a slot", |text| {
        starved
            .iter()
            .all(|n| text.contains(&format!("/{n}: got a target slot")))
    });
    // Opening the write end releases every process into its calls.
    let _go = fs::OpenOptions::new().write(true).open(&go).unwrap();
    for (i, child) in children.iter_mut().enumerate() {
        if let Some(c) = child.take() {
            wait_ok(c);
            assert!(!ended.contains(&i));
        }
    }
    drop(cgroups);
    let done = armed.finish();
    done.assert_code(0);
    for (i, name) in names.iter().enumerate() {
        if ended.contains(&i) {
            continue;
        }
        let list = Allowlist::read(&file_of(name));
        assert!(list.complete(), "{name}");
        let expected = if i == emptied { 0 } else { calls(i) };
        assert_eq!(list.count("getppid"), expected, "{name}");
        let missed = list.0.get("missed_start");
        if starved.contains(name) {
            let missed = missed.unwrap_or_else(|| panic!("{name}: no missed_start"));
            let since = agent_audit_tests::allowlist::timestamp_ns(&missed["since"]);
            let from = agent_audit_tests::allowlist::timestamp_ns(&missed["recorded_from"]);
            assert!(since < from, "{missed}");
            assert_eq!(missed["recorded_from"], list.0["started_at"], "{name}");
        } else {
            assert!(missed.is_none(), "{name}: {missed:?}");
        }
    }
}

/// A node-wide recorder's memory does not grow with the CPU count: its BPF maps as the kernel
/// accounts them (each map's `memlock`), with 256 live targets that all counted calls,
/// projected to 64 and 192 CPUs with the kernel's per-CPU formula, stay within 40 MiB; with its
/// resident memory, within 96 and 128 MiB (the 64 MiB goal at 64 CPUs is a MISS, see below).
#[test]
fn root_record_wait_with_256_targets_keeps_its_maps_flat_across_cpu_counts() {
    use agent_audit::bpf::footprint::Footprint;
    require_root();
    const SLOTS: usize = 256; // agent_audit_ebpf::MAX_TARGETS
    const MIB: f64 = 1024.0 * 1024.0;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let parent = ScratchCgroup::at(&unique_name("fleet-mem"));
    let pattern = format!("{}/c-*", parent.rel);
    let mut armed = Armed::start_with_interval(&pattern, &parent.rel, "c-probe", &out, "1");
    // The probe holds one slot; every other one gets a target that makes calls.
    let cgroups: Vec<ScratchCgroup> = (0..SLOTS - 1)
        .map(|i| ScratchCgroup::at(&format!("{}/c-{i}", parent.rel)))
        .collect();
    for cg in &cgroups {
        wait_ok(spawn_loop(cg, &[], 100));
    }
    let files: Vec<PathBuf> = (0..SLOTS - 1)
        .map(|i| out.join(format!("c-{i}.allowlist.json")))
        .collect();
    armed.wait_for("every target's file", || files.iter().all(|f| f.exists()));
    let pid = armed.recorder.as_ref().unwrap().pid();
    let footprint = Footprint::of_process(pid).expect("the recorder's maps");
    assert!(
        footprint.maps.iter().any(|m| m.name == "COUNTERS"),
        "the recorder's maps were not found: {footprint:#?}"
    );
    // The kernel's share, the part that grows with the CPU count, must stay flat: 31.8 MiB at
    // 64 CPUs and ~34.5 at 192 were measured with refusals, departures and capabilities on.
    // The whole recorder's goal (maps + RSS: 64 MiB at 64 CPUs) is a MISS with this test's
    // debug binary (RSS ~40 MiB, half of it the binary's own file-backed pages; 71.7 MiB in
    // all): the bound below guards against growth until the resident memory is brought down.
    for (cpus, maps_limit, total_limit) in [(64u64, 40.0, 96.0), (192, 40.0, 128.0)] {
        let maps = footprint.maps_bytes_at(cpus) as f64 / MIB;
        let total = maps + footprint.rss as f64 / MIB;
        assert!(
            maps <= maps_limit && total <= total_limit,
            "{maps:.1} MiB of maps, {total:.1} MiB with RSS projected at {cpus} CPUs (limits \
             {maps_limit} and {total_limit} MiB): {footprint:#?}"
        );
    }
    drop(cgroups);
    armed.finish().assert_code(0);
}

/// Makes one getppid call in `cgroup` from a child process forked for it: the child joins the
/// cgroup (one write to `cgroup.procs`), calls, and exits; returns once it is reaped. About a
/// tenth of a millisecond, so that the cgroup lives well under one.
fn one_call_in(cgroup: &Path) {
    let procs =
        std::ffi::CString::new(cgroup.join("cgroup.procs").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: the child makes only raw syscalls (open, write, getppid) before `_exit`.
    match unsafe { libc::fork() } {
        0 => unsafe {
            // SAFETY: as above; "0" moves the calling process.
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            let moved = fd >= 0 && libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
            libc::syscall(libc::SYS_getppid);
            libc::_exit(if moved { 0 } else { 1 })
        },
        -1 => panic!("fork: {}", std::io::Error::last_os_error()),
        child => {
            let mut status = 0;
            // SAFETY: reaping our own child.
            assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
            assert_eq!(status, 0, "the child could not join {}", cgroup.display());
        }
    }
}

/// Cgroups created, used once and removed within a fraction of a millisecond, 200 in a row,
/// while the recorder cannot run (so that it reads their inotify events late): every one
/// still gets its own file under its own name, counted exactly (its one call, made before any
/// exec, is in `runtime_init`), because the kernel program
/// records a claimed cgroup's name at its first call (`CLAIMED_NAMES`); none is reported as
/// removed before its name could be read.
#[test]
fn root_record_wait_names_every_cgroup_gone_before_its_event_was_read() {
    require_root();
    const N: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let parent = ScratchCgroup::at(&unique_name("fleet-names"));
    let pattern = format!("{}/c-*", parent.rel);
    let armed = Armed::start(&pattern, &parent.rel, "c-probe", &out);
    // The recorder is stopped meanwhile (the worst of a loaded machine: it is not scheduled at
    // all), so it reads every creation event only once the directory is long gone; the kernel
    // program keeps claiming and counting.
    let recorder = armed.recorder.as_ref().unwrap();
    recorder.signal(libc::SIGSTOP);
    let mount = agent_audit_tests::cgroup::v2_mount().unwrap();
    let mut lifetimes = Vec::new();
    for i in 0..N {
        let cgroup = mount
            .join(parent.rel.trim_start_matches('/'))
            .join(format!("c-{i}"));
        let born = Instant::now();
        fs::create_dir(&cgroup).unwrap();
        one_call_in(&cgroup);
        fs::remove_dir(&cgroup).unwrap();
        lifetimes.push(born.elapsed());
    }
    recorder.signal(libc::SIGCONT);
    let done = armed.finish();
    done.assert_code(0);
    lifetimes.sort();
    eprintln!(
        "cgroup lifetimes: median {:?}, max {:?}",
        lifetimes[N / 2],
        lifetimes[N - 1]
    );
    assert!(
        !done
            .stderr
            .contains("was removed before its name could be read"),
        "{}",
        done.stderr
    );
    for i in 0..N {
        let file = out.join(format!("c-{i}.allowlist.json"));
        assert!(file.exists(), "c-{i} has no file:\n{}", done.stderr);
        let list = Allowlist::read(&file);
        assert!(list.complete(), "{}", file.display());
        // No exec: everything a cgroup claimed below a watched parent does before its first
        // exec is its runtime's init.
        let init_getppid: u64 = list
            .rows("runtime_init")
            .iter()
            .filter(|r| r["name"] == "getppid")
            .filter_map(|r| r["count"].as_u64())
            .sum();
        assert_eq!(
            list.count("getppid") + init_getppid,
            1,
            "{}",
            file.display()
        );
    }
}
