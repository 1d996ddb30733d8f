//! Outputs that are streams rather than files: another user's FIFO
//! whose reader never reads, a standard output closed at start, a reader that leaves early,
//! `--help` into a full device, an engine socket that never answers, and a standard error that
//! cannot be written.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent_audit_tests::cgroup::ScratchCgroup;
use agent_audit_tests::process::{run, Finished, Running};
use agent_audit_tests::{agent_audit_bin, require_root, unique_name, workspace_root};

const TIMEOUT: Duration = Duration::from_secs(60);
const CANT_CREATE: i32 = 73;
const NOBODY: u32 = 65534;

fn allowlist() -> PathBuf {
    workspace_root().join("tests/data/allowlists/shell-commands.allowlist.json")
}

fn profile() -> PathBuf {
    workspace_root().join("tests/data/profiles/gh-aw-firewall-agent-seccomp.json")
}

fn agent_audit(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Command {
    let mut cmd = Command::new(agent_audit_bin());
    cmd.args(args);
    cmd
}

/// A cgroup with a shell that makes a few dozen kinds of calls every 50 ms until it is
/// removed: its allowlist is several KiB.
fn busy_cgroup() -> (ScratchCgroup, Running) {
    let cgroup = ScratchCgroup::new(&unique_name("io-hardening-busy"));
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "while :; do ls -la / >/dev/null; cat /etc/hostname >/dev/null; sleep 0.05; done",
    ]);
    cgroup.contain(&mut cmd);
    let running = Running::spawn(&mut cmd);
    (cgroup, running)
}

/// A FIFO made by `nobody` in a directory `nobody` owns (not a shared sticky one: the
/// `protected_fifos` refusal does not apply), opened by a reader that never reads. With
/// `pipe_bytes`, the reader also shrinks the pipe's buffer (the kernel's default is 64 KiB).
struct StalledFifo {
    _dir: tempfile::TempDir,
    path: PathBuf,
    _reader: File,
}

impl StalledFifo {
    fn new(pipe_bytes: Option<libc::c_int>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let own = dir.path().join("nobody");
        fs::create_dir(&own).unwrap();
        std::os::unix::fs::chown(&own, Some(NOBODY), Some(NOBODY)).unwrap();
        let path = own.join("out.fifo");
        let made = run(
            Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "mkfifo"])
                .arg(&path),
            TIMEOUT,
        );
        made.assert_code(0);
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        if let Some(bytes) = pipe_bytes {
            // SAFETY: fcntl on a descriptor we own, integer argument.
            let set = unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETPIPE_SZ, bytes) };
            assert!(
                set >= bytes,
                "F_SETPIPE_SZ: {}",
                std::io::Error::last_os_error()
            );
        }
        Self {
            _dir: dir,
            path,
            _reader: reader,
        }
    }
}

/// Each of these blocked until killed. Now the write gives up after 5 s with
/// 73, naming the owner and how much the reader took.
#[test]
fn root_another_users_fifo_whose_reader_never_reads_is_given_up_with_73() {
    require_root();
    let (cgroup, _busy) = busy_cgroup();
    // report's html with a profile is about 135 KiB: more than the default pipe holds. The
    // profile and the recording are smaller, so their reader keeps a one-page pipe.
    let cases: Vec<(&str, StalledFifo, Command)> = vec![
        ("report", StalledFifo::new(None), {
            let mut c = agent_audit(&[&"report", &allowlist(), &"--format", &"html"]);
            c.arg("--profile").arg(profile());
            c
        }),
        (
            "profile",
            StalledFifo::new(Some(4096)),
            agent_audit(&[&"profile", &allowlist()]),
        ),
        (
            "record",
            StalledFifo::new(Some(4096)),
            agent_audit(&[&"record", &"--cgroup", &cgroup.rel, &"--duration", &"1"]),
        ),
    ];
    for (what, fifo, mut cmd) in cases {
        let flag = if what == "record" { "--out" } else { "-o" };
        cmd.arg(flag).arg(&fifo.path);
        let started = Instant::now();
        let done = run(&mut cmd, TIMEOUT);
        let took = started.elapsed();
        assert_eq!(done.code(), CANT_CREATE, "{what}: {}", done.stderr);
        done.assert_stderr_mentions(&["FIFO", "uid 65534", "stopped reading"]);
        assert!(took < Duration::from_secs(30), "{what} took {took:?}");
    }
}

/// The invoking user's own pipe keeps working however slowly it is read: `report … | less`.
#[test]
fn a_pipe_read_slowly_gets_the_whole_output() {
    let mut child = agent_audit(&[&"report", &allowlist(), &"--format", &"html"])
        .arg("--profile")
        .arg(profile())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Longer than the 5 s another user's node is given.
    std::thread::sleep(Duration::from_secs(6));
    let mut html = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut html)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(html.len() > 64 << 10 && html.trim_end().ends_with("</html>"));
}

/// Runs `cmd` with descriptor 1 closed, as `>&-` leaves it.
fn with_stdout_closed(cmd: &mut Command) -> Finished {
    // SAFETY: close(2) only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(1);
            Ok(())
        });
    }
    run(cmd, TIMEOUT)
}

/// With standard output closed, the runtime reopens it on /dev/null and every
/// one of these wrote its document there and exited 0. Now each refuses before any work.
#[test]
fn root_a_closed_standard_output_is_refused_before_any_work() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let (cgroup, _busy) = busy_cgroup();
    let cases: Vec<Command> = vec![
        agent_audit(&[&"run", &"--out", &"-", &"--", &"touch", &marker]),
        agent_audit(&[&"report", &allowlist(), &"--format", &"md"]),
        agent_audit(&[
            &"verify",
            &"--profile",
            &profile(),
            &"-o",
            &"-",
            &"--",
            &"touch",
            &marker,
        ]),
        agent_audit(&[
            &"record",
            &"--cgroup",
            &cgroup.rel,
            &"--duration",
            &"30",
            &"--out",
            &"-",
        ]),
        agent_audit(&[&"profile", &allowlist(), &"-o", &"-"]),
        agent_audit(&[&"check", &profile()]),
        agent_audit(&[&"--help"]),
    ];
    for mut cmd in cases {
        let what = format!("{cmd:?}");
        let started = Instant::now();
        let done = with_stdout_closed(&mut cmd);
        assert_eq!(done.code(), CANT_CREATE, "{what}: {}", done.stderr);
        done.assert_stderr_mentions(&["standard output is closed"]);
        // record would run for 30 s: it never started.
        assert!(started.elapsed() < Duration::from_secs(20), "{what}");
    }
    assert!(
        !marker.exists(),
        "a command ran although its output was lost"
    );
    // Redirected to /dev/null on purpose, the output is discarded as asked.
    let done = with_stdout(
        &mut agent_audit(&[&"report", &allowlist(), &"--format", &"md"]),
        Stdio::null(),
    );
    done.assert_code(0);
}

/// Runs `cmd` with standard output a pipe whose reader is already gone.
fn into_a_closed_pipe(cmd: &mut Command) -> Finished {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    with_stdout(cmd, writer.into())
}

/// Runs `cmd` to its end with standard output `stdout` (`run` pipes it).
fn with_stdout(cmd: &mut Command, stdout: Stdio) -> Finished {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap();
    Finished {
        status: out.status,
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One rule for a reader that leaves early, docs/exit-codes.md's: the output just
/// stops, with no error, and the exit code is the verdict's. `run` exited 73 and `record`
/// 73 or 0 depending on when the reader left; now both follow the rule.
#[test]
fn root_run_and_record_end_quietly_when_their_reader_left_early() {
    require_root();
    let (cgroup, _busy) = busy_cgroup();
    let done = into_a_closed_pipe(&mut agent_audit(&[
        &"run", &"--out", &"-", &"--", &"sh", &"-c", &"exit 3",
    ]));
    assert_eq!(done.code(), 3, "run: {}", done.stderr);
    assert!(!done.stderr.contains("error"), "run: {}", done.stderr);
    let done = into_a_closed_pipe(&mut agent_audit(&[
        &"record",
        &"--cgroup",
        &cgroup.rel,
        &"--duration",
        &"0.5",
        &"--out",
        &"-",
    ]));
    assert_eq!(done.code(), 0, "record: {}", done.stderr);
    assert!(!done.stderr.contains("error"), "record: {}", done.stderr);
}

/// `audit` printed its summary line with println!, which panics (exit 101) when the reader has
/// gone: the rule above holds for it too.
#[test]
fn root_audit_ends_with_its_verdict_when_its_reader_left_early() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("audit");
    let done = into_a_closed_pipe(&mut agent_audit(&[
        &"audit",
        &"--runs",
        &"1",
        &"--out-dir",
        &out,
        &"--",
        &"/bin/true",
    ]));
    assert!(!done.stderr.contains("panicked"), "{}", done.stderr);
    assert!(matches!(done.code(), 0 | 1), "{}", done.stderr);
    assert!(out.join("report.md").exists());
}

/// `--help >/dev/full` exited 0 although nothing was printed: 74.
#[test]
fn help_into_a_full_device_is_an_io_error() {
    let full = || Stdio::from(File::options().write(true).open("/dev/full").unwrap());
    for args in [&["--help"][..], &["--version"], &["report", "--help"]] {
        let done = with_stdout(Command::new(agent_audit_bin()).args(args), full());
        assert_eq!(done.code(), 74, "{args:?}: {}", done.stderr);
        done.assert_stderr_mentions(&["No space left on device"]);
    }
    // A usage error still goes to standard error with 2.
    let done = with_stdout(
        Command::new(agent_audit_bin()).arg("--no-such-flag"),
        full(),
    );
    done.assert_code(2);
}

/// A unix socket that takes connections and never answers (nothing accepts them).
fn silent_socket(dir: &Path) -> (std::os::unix::net::UnixListener, String) {
    let path = dir.join("silent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    (listener, format!("unix://{}", path.display()))
}

/// A `DOCKER_HOST` that never answers was "container \"(docker engine)\" not
/// found" (66) for `record --wait --container` and 69 for `verify`: now 69 in both, naming the
/// socket that was asked.
#[test]
fn root_a_silent_docker_socket_is_69_naming_it() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (_listener, host) = silent_socket(dir.path());
    let socket = dir.path().join("silent.sock").display().to_string();
    let name = unique_name("io-hardening-absent");
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let cases = [
        agent_audit(&[
            &"record",
            &"--wait",
            &"--container",
            &name,
            &"--out-dir",
            &out,
        ]),
        agent_audit(&[
            &"verify",
            &"--profile",
            &profile(),
            &"--docker-container",
            &name,
        ]),
    ];
    for mut cmd in cases {
        let what = format!("{cmd:?}");
        let done = run(cmd.env("DOCKER_HOST", &host), TIMEOUT);
        assert_eq!(done.code(), 69, "{what}: {}", done.stderr);
        done.assert_stderr_mentions(&[&socket, "no answer"]);
    }
}

/// Status lines were written with `eprintln!`, which panics (exit 101) when standard error is a
/// full device or a pipe whose reader has gone: `run` then lost its command's exit code and
/// wrote no allowlist. With standard error closed, full or broken, `run` still ends with the
/// command's code and its file.
#[test]
fn root_run_keeps_the_commands_exit_code_when_standard_error_cannot_be_written() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    for how in [Unwritable::Closed, Unwritable::Full, Unwritable::Broken] {
        let out = dir.path().join(format!("{how:?}.allowlist.json"));
        let mut cmd = agent_audit(&[&"run", &"--out", &out, &"--", &"sh", &"-c", &"exit 3"]);
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        how.set_as_stderr(&mut cmd);
        let status = cmd.status().unwrap();
        assert_eq!(status.code(), Some(3), "standard error {how:?}: {status:?}");
        let allowlist = fs::read_to_string(&out).unwrap();
        assert!(
            allowlist.contains("\"name\": \"exit_group\""),
            "standard error {how:?}: {allowlist}"
        );
    }
}

/// A standard error that cannot be written.
#[derive(Clone, Copy, Debug)]
enum Unwritable {
    /// `2>&-`.
    Closed,
    /// `2>/dev/full`.
    Full,
    /// A pipe whose reader has gone.
    Broken,
}

impl Unwritable {
    fn set_as_stderr(self, cmd: &mut Command) {
        match self {
            // SAFETY: close(2) only, between fork and exec.
            Unwritable::Closed => unsafe {
                cmd.pre_exec(|| {
                    libc::close(2);
                    Ok(())
                });
            },
            Unwritable::Full => {
                cmd.stderr(File::options().write(true).open("/dev/full").unwrap());
            }
            Unwritable::Broken => {
                let (reader, writer) = std::io::pipe().unwrap();
                drop(reader);
                cmd.stderr(writer);
            }
        }
    }
}
