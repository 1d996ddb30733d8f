//! A target's trouble stays that target's: a cgroup name too long to be a file name, a full
//! disk, and the signals that end `record` — none of them loses a count or stops the others.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::cgroup::ScratchCgroup;
use agent_audit_tests::process::Running;
use agent_audit_tests::{agent_audit_bin, require_root, unique_name};

const HELPER: &str = env!("CARGO_BIN_EXE_getppid-loop");
const TIMEOUT: Duration = Duration::from_secs(40);

/// A FIFO that holds every `getppid-loop --open` on it until [`Gate::open`].
struct Gate {
    path: PathBuf,
    writer: Option<fs::File>,
}

impl Gate {
    fn new(dir: &Path) -> Self {
        fs::create_dir_all(dir).unwrap();
        let path = dir.join("gate");
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        Self { path, writer: None }
    }

    /// Releases every process waiting on the gate, and any that comes later.
    fn open(&mut self) {
        self.writer = Some(fs::OpenOptions::new().write(true).open(&self.path).unwrap());
    }
}

/// `getppid-loop --open <gate> <calls>` inside `cgroup`.
fn spawn_loop(cgroup: &ScratchCgroup, gate: &Gate, calls: u64) -> Child {
    let mut cmd = Command::new(HELPER);
    cmd.arg("--open")
        .arg(&gate.path)
        .arg(calls.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cgroup.contain(&mut cmd);
    cmd.spawn().expect("start getppid-loop")
}

fn wait_ok(mut child: Child) {
    let status = child.wait().expect("wait for getppid-loop");
    assert!(status.success(), "getppid-loop failed: {status}");
}

/// Polls `cond` on the recorder's stderr; panics with its output if it exits or time is up.
fn wait_for(recorder: &mut Running, what: &str, mut cond: impl FnMut(&str) -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond(&recorder.stderr_so_far()) {
        let exited = recorder.has_exited();
        if exited || Instant::now() > deadline {
            panic!(
                "{} while waiting for {what}; stderr so far:\n{}",
                if exited {
                    "the recorder exited"
                } else {
                    "timed out"
                },
                recorder.stderr_so_far()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn record(args: &[&str], out: &[&Path]) -> Running {
    Running::spawn(
        Command::new(agent_audit_bin())
            .args(["record", "--interval", "0.2"])
            .args(args)
            .args(out),
    )
}

/// A cgroup named with 240 characters (a user with a delegated subtree can make one) cannot
/// have `<name>.allowlist.json`: its file name is cut and ends in a hash, and it and its
/// sibling are both recorded exactly.
#[test]
fn root_record_gives_a_cgroup_with_a_240_character_name_a_shortened_file() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let mut gate = Gate::new(dir.path());
    let parent = ScratchCgroup::new(&unique_name("aa-long"));
    let long = "x".repeat(240);
    let names = ["short".to_string(), long.clone()];
    let mut cgroups: Vec<ScratchCgroup> = names
        .iter()
        .map(|n| ScratchCgroup::at(&format!("{}/{n}", parent.rel)))
        .collect();
    let children: Vec<Child> = cgroups
        .iter()
        .zip([300, 700])
        .map(|(cg, calls)| spawn_loop(cg, &gate, calls))
        .collect();
    let pattern = format!("{}/*", parent.rel);
    let mut recorder = record(&["--cgroup-glob", &pattern, "--out-dir"], &[&out]);
    let files = || -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        v.sort();
        v
    };
    wait_for(&mut recorder, "both first snapshots", |_| {
        files().len() == 2
    });
    gate.open();
    children.into_iter().for_each(wait_ok);
    cgroups.clear(); // gone: the recorder writes the final files and exits
    let done = recorder.finish(TIMEOUT, "agent-audit record");
    done.assert_code(0);

    let files = files();
    let short_list = Allowlist::read(&out.join("short.allowlist.json"));
    assert_eq!(short_list.count("getppid"), 300);
    let long_file = files.iter().find(|f| f.starts_with('x')).unwrap();
    // 143 characters of the name, '-', 16 hex digits of its hash.
    let (stem, ext) = long_file.split_once('.').unwrap();
    assert_eq!(ext, "allowlist.json");
    assert_eq!(stem.len(), 160, "{long_file}");
    assert!(stem.starts_with(&"x".repeat(143)), "{long_file}");
    assert!(stem[144..].chars().all(|c| c.is_ascii_hexdigit()), "{stem}");
    let long_list = Allowlist::read(&out.join(long_file));
    assert!(long_list.complete());
    assert_eq!(long_list.count("getppid"), 700);
    let path = long_list.target()["cgroup_path"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(path.ends_with(&format!("/{long}")), "{path}");
}

/// A small tmpfs, mounted for one test and unmounted however it ends.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> Self {
        fs::create_dir(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs on {}", dir.display());
        Self(dir.to_path_buf())
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> PathBuf {
        let path = self.0.join("filler");
        let mut f = fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            if let Err(e) = f.write_all(&chunk) {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                return path;
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The disk fills while the target makes its calls: the failed snapshots are reported (once),
/// recording goes on, the last good file stays whole, and once there is room again the file
/// is written again; the final file counts every call.
#[test]
fn root_record_survives_a_full_disk_and_writes_every_call_once_there_is_room() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("disk"), "256k");
    let out = disk.0.join("a.allowlist.json");
    let mut gate = Gate::new(dir.path());
    let cgroup = ScratchCgroup::new(&unique_name("aa-full"));
    let child = spawn_loop(&cgroup, &gate, 4321);
    let mut recorder = record(&["--cgroup", &cgroup.rel, "--out"], &[&out]);
    wait_for(&mut recorder, "the first snapshot", |_| out.exists());

    let filler = disk.fill();
    gate.open();
    wait_ok(child);
    let warning = "still recording, retrying";
    wait_for(&mut recorder, "the failed write to be reported", |e| {
        e.contains(warning)
    });
    // The last good snapshot is still there, whole.
    let old = Allowlist::read(&out);
    assert!(!old.complete());
    assert!(old.count("getppid") < 4321);
    std::thread::sleep(Duration::from_millis(600)); // several failed snapshots
    fs::remove_file(&filler).unwrap();
    wait_for(&mut recorder, "the file to be written again", |e| {
        e.contains("written again")
    });
    recorder.signal(libc::SIGTERM);
    let done = recorder.finish(TIMEOUT, "agent-audit record");
    done.assert_code(0);
    assert_eq!(done.stderr.matches(warning).count(), 1, "{}", done.stderr);
    let list = Allowlist::read(&out);
    assert!(list.complete());
    assert_eq!(list.count("getppid"), 4321);
}

/// Still full at the end: the final write is tried, fails, is reported, and `record` exits 73
/// leaving the last good snapshot.
#[test]
fn root_record_reports_a_final_write_that_fails_with_exit_73() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("disk"), "256k");
    let out = disk.0.join("a.allowlist.json");
    let mut gate = Gate::new(dir.path());
    let cgroup = ScratchCgroup::new(&unique_name("aa-full-end"));
    let child = spawn_loop(&cgroup, &gate, 1000);
    let mut recorder = record(&["--cgroup", &cgroup.rel, "--out"], &[&out]);
    wait_for(&mut recorder, "the first snapshot", |_| out.exists());
    disk.fill();
    // Calls once the disk is full: the next interval's snapshot has something new to write
    // (an idle target's file is not rewritten), and that write fails.
    gate.open();
    wait_ok(child);
    wait_for(&mut recorder, "the failed write to be reported", |e| {
        e.contains("still recording")
    });
    recorder.signal(libc::SIGTERM);
    let done = recorder.finish(TIMEOUT, "agent-audit record");
    done.assert_code(73);
    assert!(
        done.stderr.contains("final allowlist") && done.stderr.contains("not written"),
        "{}",
        done.stderr
    );
    assert!(!Allowlist::read(&out).complete());
}

/// Every signal sent to ask `record` to stop — not only SIGINT and SIGTERM — ends it with
/// every final file written and exit 0.
#[test]
fn root_record_writes_the_final_file_whichever_stop_signal_arrives() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let cgroup = ScratchCgroup::new(&unique_name("aa-signal"));
    let signals = [
        ("SIGHUP", libc::SIGHUP),
        ("SIGUSR1", libc::SIGUSR1),
        ("SIGUSR2", libc::SIGUSR2),
        ("SIGQUIT", libc::SIGQUIT),
        ("SIGRTMIN+3", libc::SIGRTMIN() + 3),
        ("SIGTERM", libc::SIGTERM),
    ];
    for (name, number) in signals {
        let out = dir.path().join(format!("{name}.allowlist.json"));
        let mut recorder = record(&["--cgroup", &cgroup.rel, "--out"], &[&out]);
        wait_for(&mut recorder, "the first snapshot", |_| out.exists());
        recorder.signal(number);
        let done = recorder.finish(TIMEOUT, &format!("agent-audit record after {name}"));
        done.assert_code(0);
        assert!(Allowlist::read(&out).complete(), "{name}: no final file");
    }
}

/// `run` passes a stop signal sent to it alone on to the command (which here dies of it) and
/// still writes the allowlist, with the command's status.
#[test]
fn root_run_passes_sighup_and_sigusr1_on_and_writes_the_allowlist() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    for (name, number) in [("SIGHUP", libc::SIGHUP), ("SIGUSR1", libc::SIGUSR1)] {
        let out = dir.path().join(format!("{name}.allowlist.json"));
        let started = dir.path().join(format!("{name}.started"));
        let gate = Gate::new(&dir.path().join(name));
        let mut run = Running::spawn(
            Command::new(agent_audit_bin())
                .args(["run", "--out"])
                .arg(&out)
                .arg("--")
                .arg(HELPER)
                .arg("--signal")
                .arg(&started)
                .arg("--open")
                .arg(&gate.path)
                .arg("5"),
        );
        wait_for(&mut run, "the command to start", |_| started.exists());
        run.signal(number);
        let done = run.finish(TIMEOUT, &format!("agent-audit run after {name}"));
        done.assert_code(128 + number);
        let list = Allowlist::read(&out);
        assert!(list.complete(), "{name}");
        assert_eq!(list.target()["exit_status"], 128 + number, "{name}");
    }
}
