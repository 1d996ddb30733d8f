//! Containers run in the foreground to completion (`runc run`, `docker run` without
//! `--detach`), their output captured: for workloads too short to be watched while they run.
//! Each run is removed when its guard drops, however the test ends.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::container::busybox_rootfs;
use crate::process::{run_ok, Finished, Running};

/// A runc bundle: busybox-static rootfs, an extra static binary at `/<name>`, and a
/// `config.json` from `runc spec` that the test adjusts before each run.
pub struct RuncBundle {
    /// The bundle directory.
    pub dir: PathBuf,
}

impl RuncBundle {
    /// Fills `dir` (which must exist) with the rootfs, copies `extra` to `/<its file name>`,
    /// and writes runc's default spec with a writable root, no terminal and `caps` added to
    /// every capability set the spec lists.
    pub fn new(dir: &Path, extra: &Path, caps: &[&str]) -> Self {
        let rootfs = dir.join("rootfs");
        busybox_rootfs(&rootfs);
        let name = extra.file_name().expect("extra binary has a file name");
        fs::copy(extra, rootfs.join(name)).unwrap();
        run_ok(
            Command::new("runc").arg("spec").current_dir(dir),
            Duration::from_secs(10),
        );
        let bundle = Self {
            dir: dir.to_path_buf(),
        };
        let mut config = bundle.config();
        config["process"]["terminal"] = Value::Bool(false);
        config["root"]["readonly"] = Value::Bool(false);
        let sets = config["process"]["capabilities"]
            .as_object_mut()
            .expect("runc spec lists capabilities");
        for set in sets.values_mut() {
            let list = set.as_array_mut().expect("a capability set is a list");
            for cap in caps {
                if !list.iter().any(|c| c == cap) {
                    list.push(json!(cap));
                }
            }
        }
        bundle.write_config(&config);
        bundle
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// The current `config.json`.
    pub fn config(&self) -> Value {
        serde_json::from_str(&fs::read_to_string(self.config_path()).unwrap()).unwrap()
    }

    fn write_config(&self, config: &Value) {
        fs::write(
            self.config_path(),
            serde_json::to_vec_pretty(config).unwrap(),
        )
        .unwrap();
    }

    /// Sets the process arguments and `linux.seccomp` (removed when `None`).
    pub fn configure(&self, args: &[&str], seccomp: Option<&Value>) {
        let mut config = self.config();
        config["process"]["args"] = json!(args);
        let linux = config["linux"].as_object_mut().expect("linux section");
        match seccomp {
            Some(s) => {
                linux.insert("seccomp".into(), s.clone());
            }
            None => {
                linux.remove("seccomp");
            }
        }
        self.write_config(&config);
    }

    /// `runc run` of container `id` in the foreground until it exits (at most `timeout`).
    pub fn run(&self, id: &str, timeout: Duration) -> Finished {
        let _guard = RuncDelete(id.to_string());
        Running::spawn(
            Command::new("runc")
                .arg("run")
                .arg("--bundle")
                .arg(&self.dir)
                .arg(id),
        )
        .finish(timeout, &format!("runc run {id}"))
    }
}

/// Deletes a runc container on drop (a run that timed out or panicked leaves nothing behind).
struct RuncDelete(String);

impl Drop for RuncDelete {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .args(["delete", "--force", &self.0])
            .output();
    }
}

/// `docker run` (no `--detach`, no `--rm`, loopback-only network) of `image` with
/// `options` before the image and `command` after it, until it exits; the container is
/// removed afterwards, and on timeout or panic.
pub fn docker_run(
    name: &str,
    options: &[&str],
    image: &str,
    command: &[&str],
    timeout: Duration,
) -> Finished {
    let _guard = DockerRemove(name.to_string());
    Running::spawn(
        Command::new("docker")
            .args(["run", "--name", name, "--network", "none"])
            .args(options)
            .arg(image)
            .args(command),
    )
    .finish(timeout, &format!("docker run {name}"))
}

/// Removes a Docker container on drop.
struct DockerRemove(String);

impl Drop for DockerRemove {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "--force", &self.0])
            .output();
    }
}
