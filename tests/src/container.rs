//! Real containers for the tests: a busybox-static rootfs run by `runc`, and the same rootfs as
//! a `FROM scratch` Docker image built locally (these machines have no registry). Each
//! container gets a unique name and is removed when its guard drops.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::process::{run, run_ok, wait_until, Finished, Running};

/// Debian's busybox-static.
pub const BUSYBOX: &str = "/bin/busybox";
/// Applets the workloads call, linked to busybox in the rootfs.
const APPLETS: &[&str] = &["sh", "ls", "cat", "wc", "sleep", "echo", "true", "["];
/// Where the host-shared directory appears inside the containers.
pub const SYNC_IN_CONTAINER: &str = "/sync";

/// The workload of the container tests. It waits until the test creates `/sync/go` (which the
/// test does only once the recorder has attached), so that the execs and file accesses after
/// it are certainly recorded; then it writes its results to /sync and exits, which removes the
/// container's cgroup and must end the recorder by itself.
pub const WORKLOAD: &str = "\
while [ ! -e /sync/go ]; do sleep 0.05; done
ls / > /dev/null
cat /etc/passwd > /dev/null
wc -c /etc/passwd > /sync/wc.out
echo done > /sync/done
";

/// Fills `root` with busybox-static, its applet links, /etc/passwd and empty /sync, /tmp.
pub fn busybox_rootfs(root: &Path) {
    let bytes = fs::read(BUSYBOX).unwrap_or_else(|e| {
        panic!("cannot read {BUSYBOX}: {e} (install busybox-static: `cargo xtask setup`)")
    });
    // A dynamically linked busybox would fail inside an empty rootfs with a confusing ENOENT.
    assert!(
        !bytes
            .windows(11)
            .any(|w| w == b"/lib64/ld-l" || w == b"/lib/ld-lin"),
        "{BUSYBOX} is dynamically linked: install busybox-static"
    );
    for dir in ["bin", "etc", "tmp", "sync", "proc", "dev", "sys"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::write(root.join("bin/busybox"), &bytes).unwrap();
    fs::set_permissions(
        root.join("bin/busybox"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    for applet in APPLETS {
        symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
}

/// A container run by `runc run` (in the foreground, so that runc removes the container and
/// its cgroup as soon as the workload exits); killed and deleted on drop.
pub struct RuncContainer {
    /// The container id (also its cgroup v2 name: `0::/<id>`).
    pub id: String,
    runc: Option<Running>,
}

impl RuncContainer {
    /// Runs `sh -c script` in a busybox container whose bundle is `bundle` (rootfs already
    /// filled), and waits until it is running.
    pub fn start(bundle: &Path, id: &str, script: &str) -> Self {
        let container = Self::launch(bundle, id, script);
        wait_until(
            &format!("runc container {id} to run"),
            Duration::from_secs(20),
            || container.init_pid().is_some(),
        );
        container
    }

    /// Like [`Self::start`] but returns as soon as `runc run` is started: for containers that
    /// may be gone before anyone could see them running.
    pub fn launch(bundle: &Path, id: &str, script: &str) -> Self {
        run_ok(
            Command::new("runc").arg("spec").current_dir(bundle),
            Duration::from_secs(10),
        );
        let config_path = bundle.join("config.json");
        let mut config: Value =
            serde_json::from_str(&fs::read_to_string(&config_path).unwrap()).unwrap();
        config["process"]["args"] = serde_json::json!(["sh", "-c", script]);
        config["process"]["terminal"] = Value::Bool(false);
        // The workload writes its results to /sync, inside the rootfs.
        config["root"]["readonly"] = Value::Bool(false);
        fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let runc = Running::spawn(
            Command::new("runc")
                .arg("run")
                .arg("--bundle")
                .arg(bundle)
                .arg(id),
        );
        Self {
            id: id.to_string(),
            runc: Some(runc),
        }
    }

    /// The host pid of the container's init process, while it runs.
    pub fn init_pid(&self) -> Option<u32> {
        let out = Command::new("runc")
            .arg("state")
            .arg(&self.id)
            .output()
            .ok()?;
        let state: Value = serde_json::from_slice(&out.stdout).ok()?;
        if state["status"].as_str() != Some("running") {
            return None;
        }
        state["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .filter(|&p| p != 0)
    }

    /// Waits for `runc run` to return (the workload ended and runc cleaned up); returns its
    /// exit code, which is the workload's.
    pub fn wait(&mut self, timeout: Duration) -> i32 {
        let runc = self.runc.take().expect("waited once");
        runc.finish(timeout, &format!("runc run {}", self.id))
            .code()
    }
}

impl Drop for RuncContainer {
    fn drop(&mut self) {
        if self.runc.is_some() {
            let _ = Command::new("runc")
                .args(["kill", &self.id, "KILL"])
                .output();
        }
        let _ = Command::new("runc")
            .args(["delete", "--force", &self.id])
            .output();
    }
}

/// The ids of the containers `verify` created as copies of `name` and did not remove (they
/// carry the label `agent-audit.verify-of=NAME`); empty when it cleaned up.
pub fn leftover_verify_copies(name: &str) -> String {
    run_ok(
        Command::new("docker").args([
            "ps",
            "--all",
            "--quiet",
            "--filter",
            &format!("label=agent-audit.verify-of={name}"),
        ]),
        Duration::from_secs(60),
    )
    .trim()
    .to_string()
}

/// `audit --runs 2 --container NAME --out-dir <a new directory>` of a created container;
/// then the container is removed, and `verify`'s copies of it must be gone too. Returns the
/// directory and how the audit ended.
pub fn audit_container_twice(name: &str, timeout: Duration) -> (tempfile::TempDir, Finished) {
    let out = tempfile::tempdir().unwrap();
    let done = run(
        Command::new(crate::agent_audit_bin())
            .args(["audit", "--runs", "2", "--container", name, "--out-dir"])
            .arg(out.path()),
        timeout,
    );
    let leftovers = leftover_verify_copies(name);
    let _ = Command::new("docker")
        .args(["rm", "--force", name])
        .output();
    assert_eq!(leftovers, "", "the verify container is removed");
    (out, done)
}

/// The busybox image for Docker tests, built once per test binary. Its tag is derived from the
/// rootfs content, so reruns reuse it (docker's cache) instead of piling up images, and
/// concurrent runs building it agree on what it contains.
pub fn docker_busybox_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let context = tempfile::tempdir().unwrap();
        busybox_rootfs(&context.path().join("rootfs"));
        fs::write(
            context.path().join("Dockerfile"),
            "FROM scratch\nCOPY rootfs/ /\nCMD [\"sh\"]\n",
        )
        .unwrap();
        let mut hasher = DefaultHasher::new();
        fs::read(BUSYBOX).unwrap().hash(&mut hasher);
        APPLETS.hash(&mut hasher);
        let tag = format!("agent-audit-tests/busybox:{:016x}", hasher.finish());
        run_ok(
            Command::new("docker")
                .args(["build", "--quiet", "--tag", &tag])
                .arg(context.path()),
            Duration::from_secs(120),
        );
        tag
    })
}

/// A Docker container, removed (with `docker rm -f`) on drop.
pub struct DockerContainer {
    /// Its unique name.
    pub name: String,
    /// Its full id.
    pub id: String,
}

impl DockerContainer {
    /// `docker run -d` of `sh -c script` in the busybox image, with `sync` mounted at /sync.
    pub fn start(name: &str, sync: &Path, script: &str) -> Self {
        let image = docker_busybox_image();
        let volume = format!("{}:{SYNC_IN_CONTAINER}", sync.display());
        let out = run_ok(
            Command::new("docker").args([
                "run",
                "--detach",
                "--name",
                name,
                "--network",
                "none",
                "--volume",
                &volume,
                image,
                "sh",
                "-c",
                script,
            ]),
            Duration::from_secs(60),
        );
        Self {
            name: name.to_string(),
            id: out.trim().to_string(),
        }
    }

    /// The host pid of its init process (0 once stopped).
    pub fn pid(&self) -> u32 {
        let out = run_ok(
            Command::new("docker").args(["inspect", "--format", "{{.State.Pid}}", &self.name]),
            Duration::from_secs(20),
        );
        out.trim().parse().unwrap_or(0)
    }

    /// Waits for it to stop; returns its exit code.
    pub fn wait(&self, timeout: Duration) -> i32 {
        let out = run_ok(Command::new("docker").args(["wait", &self.name]), timeout);
        out.trim()
            .parse()
            .expect("docker wait prints the exit code")
    }
}

impl Drop for DockerContainer {
    fn drop(&mut self) {
        // Not `run`: a timeout panic inside drop (maybe while unwinding) would abort.
        let _ = Command::new("docker")
            .args(["rm", "--force", &self.name])
            .output();
    }
}

/// A directory shared with a container.
pub fn sync_dir(root: &Path) -> PathBuf {
    root.join(SYNC_IN_CONTAINER.trim_start_matches('/'))
}
