//! The sidecar image, built by `cargo xtask image` around the binary under test, and the
//! `docker run` line docs/containers-and-kubernetes.md documents for it.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::run_ok;
use crate::{agent_audit_bin, workspace_root};

/// The tag the tests build the sidecar image under (not `agent-audit:latest`, which is the
/// user's): one per checkout (a hash of the workspace's path), so that test runs of two
/// checkouts on one machine never run each other's binary, while reruns of one reuse it.
pub fn test_image() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        workspace_root().hash(&mut hasher);
        format!("agent-audit-tests/sidecar:{:016x}", hasher.finish())
    })
}

/// Whether a Docker engine answers; the deployment tests skip (saying so) when none does.
pub fn docker_available() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Prints why a deployment test does nothing and returns true when Docker is absent.
pub fn skip_without_docker(test: &str) -> bool {
    if docker_available() {
        return false;
    }
    eprintln!("{test}: SKIPPED: no Docker engine answers (`docker version` failed)");
    true
}

/// Builds the sidecar image once per test binary with `cargo xtask image --binary <bin under
/// test>`: the same build context, Dockerfile and library discovery as the release image.
pub fn sidecar_image() -> &'static str {
    static IMAGE: OnceLock<()> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let before = image_id(test_image());
        let context = tempfile::tempdir().unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        run_ok(
            Command::new(cargo)
                .current_dir(workspace_root())
                .args([
                    "run",
                    "--quiet",
                    "--package",
                    "xtask",
                    "--",
                    "image",
                    "--binary",
                ])
                .arg(agent_audit_bin())
                .args(["--tag", test_image(), "--context"])
                .arg(context.path()),
            Duration::from_secs(600),
        );
        // The tag moved to the new build: the previous one would be left dangling by every
        // test run. Removing it fails harmlessly while a container still uses it.
        if let Some(old) = before.filter(|old| image_id(test_image()).as_ref() != Some(old)) {
            let _ = Command::new("docker").args(["image", "rm", &old]).output();
        }
    });
    test_image()
}

/// The id of the image `tag` names, if any.
fn image_id(tag: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .output()
        .ok()?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !id.is_empty()).then_some(id)
}

/// The documented sidecar line up to the image: capabilities, namespaces and mounts, with the
/// host directory `out` at /out.
pub fn sidecar_options(out: &Path) -> Vec<String> {
    [
        "--cap-add",
        "SYS_ADMIN",
        "--pid=host",
        "--cgroupns=host",
        "-v",
        "/sys/fs/cgroup:/sys/fs/cgroup",
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        "-v",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("{}:/out", out.display())])
    .collect()
}
