//! Container engines for tests: an engine API that serves recorded answers (for layouts this
//! host cannot run, such as the systemd cgroup driver: tests/data/engines/), and Podman's real
//! service on a socket of the test's own.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::container::{busybox_rootfs, BUSYBOX};
use crate::debian::{debian_key, debian_rootfs};
use crate::process::{run, wait_until};
use crate::workspace_root;

/// An answer recorded from a real engine (`tests/data/engines/<name>.json`).
pub fn recorded_answer(name: &str) -> Value {
    let path = workspace_root().join(format!("tests/data/engines/{name}.json"));
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An engine API on a unix socket that answers `GET` requests from a table (path without
/// the API version → JSON body) and 404 to anything else, one connection at a time.
pub struct FakeEngine {
    /// Its socket.
    pub socket: PathBuf,
    stop: Arc<AtomicBool>,
    stalled: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl FakeEngine {
    /// Serves `answers` until dropped.
    pub fn serve(answers: Vec<(String, Value)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("engine.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let stalled = Arc::new(AtomicBool::new(false));
        let silent = Arc::clone(&stalled);
        let thread = std::thread::spawn(move || {
            // Connections taken while stalled: held open, never read nor answered.
            let mut held = Vec::new();
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                match stream {
                    Ok(stream) if silent.load(Ordering::SeqCst) => held.push(stream),
                    Ok(stream) => answer(stream, &answers),
                    Err(_) => {}
                }
            }
        });
        Self {
            socket,
            stop,
            stalled,
            thread: Some(thread),
            _dir: dir,
        }
    }
}

impl FakeEngine {
    /// From now on the engine accepts connections and never answers: a stalled engine.
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }
}

impl Drop for FakeEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = UnixStream::connect(&self.socket);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request (line and headers; the engine client sends no body with a GET) and
/// writes its answer.
fn answer(stream: UnixStream, answers: &[(String, Value)]) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 0) && header != "\r\n" {
        header.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or_default();
    // "/v1.41/info" → "/info"
    let path = path
        .strip_prefix("/v")
        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or(path);
    let (status, body) = match answers.iter().find(|(p, _)| p == path) {
        Some((_, v)) => ("200 OK", v.to_string()),
        None => (
            "404 Not Found",
            serde_json::json!({"message": format!("no such thing: {path}")}).to_string(),
        ),
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

/// How long a `podman import` of the Debian root filesystem may take.
const IMPORT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The Podman binary Debian installs (`cargo xtask setup`).
pub const PODMAN: &str = "/usr/bin/podman";

/// `podman system service` on a socket in a temporary directory, with a containers.conf of
/// the test's own (`CONTAINERS_CONF`): `default_ulimits = []`, because Podman's default
/// RLIMIT_NOFILE is above this host's hard limit. The host's own configuration is untouched.
/// Stopped on drop.
pub struct PodmanService {
    /// The API socket.
    pub socket: PathBuf,
    conf: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl PodmanService {
    /// Starts the service and waits (at most 60 s) for its socket to answer.
    pub fn start() -> Self {
        assert!(
            Path::new(PODMAN).exists(),
            "podman is not installed: run `cargo xtask setup` (or apt-get install podman)"
        );
        let dir = tempfile::Builder::new()
            .prefix("agent-audit-podman-")
            .tempdir()
            .unwrap();
        let conf = dir.path().join("containers.conf");
        fs::write(&conf, "[containers]\ndefault_ulimits = []\n").unwrap();
        let socket = dir.path().join("podman.sock");
        let child = Command::new(PODMAN)
            .env("CONTAINERS_CONF", &conf)
            .args(["system", "service", "--time", "0"])
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman system service");
        wait_until("podman's API socket", Duration::from_secs(60), || {
            UnixStream::connect(&socket).is_ok()
        });
        Self {
            socket,
            conf,
            child,
            _dir: dir,
        }
    }

    /// `podman ARGS` with the same configuration, on the same store.
    pub fn podman(&self) -> Command {
        let mut cmd = Command::new(PODMAN);
        cmd.env("CONTAINERS_CONF", &self.conf);
        cmd
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Debian root filesystem of [`crate::debian`] imported into Podman's own store (once per
/// key); the image's name.
pub fn podman_debian_image(service: &PodmanService) -> String {
    let tag = format!("localhost/agent-audit-tests/debian:{}", debian_key());
    let known = service
        .podman()
        .args(["image", "exists", &tag])
        .status()
        .is_ok_and(|s| s.success());
    if known {
        return tag;
    }
    let rootfs = debian_rootfs();
    let script = format!(
        "set -o pipefail; tar --numeric-owner -C '{}' -c . | {PODMAN} import --change \
         'CMD [\"/bin/bash\"]' - '{tag}'",
        rootfs.display()
    );
    let mut import = Command::new("bash");
    import.arg("-c").arg(&script);
    import.env("CONTAINERS_CONF", &service.conf);
    let done = run(&mut import, IMPORT_TIMEOUT);
    assert_eq!(done.code(), 0, "podman import failed:\n{}", done.stderr);
    tag
}

/// The busybox root filesystem of [`crate::container`] imported into Podman's store (once per
/// content, like Docker's busybox image); the image's name.
pub fn podman_busybox_image(service: &PodmanService) -> String {
    let context = tempfile::tempdir().unwrap();
    let rootfs = context.path().join("rootfs");
    busybox_rootfs(&rootfs);
    let mut hasher = DefaultHasher::new();
    fs::read(BUSYBOX).unwrap().hash(&mut hasher);
    let tag = format!(
        "localhost/agent-audit-tests/busybox:{:016x}",
        hasher.finish()
    );
    let script = format!(
        "set -o pipefail; {PODMAN} image exists '{tag}' || tar -C '{}' -c . | {PODMAN} import - '{tag}'",
        rootfs.display()
    );
    let mut import = Command::new("bash");
    import.arg("-c").arg(&script);
    import.env("CONTAINERS_CONF", &service.conf);
    let done = run(&mut import, IMPORT_TIMEOUT);
    assert_eq!(done.code(), 0, "podman import failed:\n{}", done.stderr);
    tag
}
