//! Where an engine puts a container's cgroup, relative to the cgroup v2 root, from the engine
//! (Docker or Podman), its cgroup driver and the container's `HostConfig.CgroupParent` (empty:
//! the engine's default):
//!
//! | engine | driver | default parent | the container's cgroup |
//! |---|---|---|---|
//! | Docker | cgroupfs | `docker` | `<parent>/<id>` |
//! | Docker | systemd | `system.slice` | `<slice path>/docker-<id>.scope` |
//! | Podman | cgroupfs | `libpod_parent` | `<parent>/libpod-<id>` |
//! | Podman | systemd | `machine.slice` | `<slice path>/libpod-<id>.scope` |
//!
//! The defaults are moby's `newCgroupParent` (cmd/dockerd) and libpod's
//! `CgroupfsDefaultCgroupParent`/`SystemdDefaultCgroupParent`; the systemd names are the
//! runtime's `<slice>:<prefix>:<id>` → `<prefix>-<id>.scope` below the slice, whose path runc's
//! systemd driver expands (`a-b.slice` → `a.slice/a-b.slice`). Podman's systemd driver also
//! makes `libpod-conmon-<id>.scope` next to the container's: a name that contains the id but
//! is not the container, so names are compared whole, never searched for the id.

use std::fmt;

/// Which engine serves an API socket (from its `/version` answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    /// The Docker Engine.
    Docker,
    /// Podman's Docker-compatible service (`podman system service`).
    Podman,
}

impl EngineKind {
    /// The engine's name in messages and in an allowlist's `container.engine`.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Docker => "docker",
            EngineKind::Podman => "podman",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the engine manages cgroups (its `/info` `CgroupDriver`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupDriver {
    /// Directories created by the runtime itself.
    Cgroupfs,
    /// Transient systemd scopes below slices.
    Systemd,
}

impl CgroupDriver {
    /// The driver named by `/info`'s `CgroupDriver`; `None` for any other.
    pub fn from_info(name: &str) -> Option<Self> {
        match name {
            "cgroupfs" => Some(CgroupDriver::Cgroupfs),
            "systemd" => Some(CgroupDriver::Systemd),
            _ => None,
        }
    }
}

/// A systemd cgroup parent that is no slice name (the engine would have refused it too).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("cgroup parent {0:?} is no systemd slice name (NAME.slice, dashes for nesting)")]
pub struct SliceError(pub String);

/// The cgroup layout of one engine with one driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgroupLayout {
    /// The engine.
    pub engine: EngineKind,
    /// Its cgroup driver.
    pub driver: CgroupDriver,
}

impl CgroupLayout {
    /// The parent of containers created without `--cgroup-parent`.
    pub fn default_parent(self) -> &'static str {
        match (self.engine, self.driver) {
            (EngineKind::Docker, CgroupDriver::Cgroupfs) => "docker",
            (EngineKind::Docker, CgroupDriver::Systemd) => "system.slice",
            (EngineKind::Podman, CgroupDriver::Cgroupfs) => "libpod_parent",
            (EngineKind::Podman, CgroupDriver::Systemd) => "machine.slice",
        }
    }

    /// The directory, relative to the cgroup v2 root and without slashes around it, that a
    /// container with this `HostConfig.CgroupParent` gets its cgroup in. A relative cgroupfs
    /// parent is taken from the root (the engines' init runs in it).
    pub fn parent_dir(self, cgroup_parent: &str) -> Result<String, SliceError> {
        let given = cgroup_parent.trim();
        let parent = if given.is_empty() {
            self.default_parent()
        } else {
            given
        };
        match self.driver {
            CgroupDriver::Cgroupfs => Ok(parent.trim_matches('/').to_string()),
            CgroupDriver::Systemd => expand_slice(parent),
        }
    }

    /// The name of container `id`'s cgroup in its parent.
    pub fn child_name(self, id: &str) -> String {
        match (self.engine, self.driver) {
            (EngineKind::Docker, CgroupDriver::Cgroupfs) => id.to_string(),
            (EngineKind::Docker, CgroupDriver::Systemd) => format!("docker-{id}.scope"),
            (EngineKind::Podman, CgroupDriver::Cgroupfs) => format!("libpod-{id}"),
            (EngineKind::Podman, CgroupDriver::Systemd) => format!("libpod-{id}.scope"),
        }
    }

    /// The names of every container's cgroup in a parent, as a `--cgroup-glob` last component.
    /// Podman's systemd `libpod-conmon-<id>.scope` matches it too: see [`Self::is_container`].
    pub fn child_pattern(self) -> &'static str {
        match (self.engine, self.driver) {
            (EngineKind::Docker, CgroupDriver::Cgroupfs) => "*",
            (EngineKind::Docker, CgroupDriver::Systemd) => "docker-*.scope",
            (EngineKind::Podman, CgroupDriver::Cgroupfs) => "libpod-*",
            (EngineKind::Podman, CgroupDriver::Systemd) => "libpod-*.scope",
        }
    }

    /// Whether the cgroup named `name` is container `id`'s own.
    pub fn is_container(self, name: &str, id: &str) -> bool {
        !id.is_empty() && name == self.child_name(id)
    }

    /// Container `id`'s cgroup, relative to the cgroup v2 root.
    pub fn container_path(self, cgroup_parent: &str, id: &str) -> Result<String, SliceError> {
        Ok(join(&self.parent_dir(cgroup_parent)?, &self.child_name(id)))
    }

    /// Every container's cgroup with this cgroup parent, as a `--cgroup-glob` pattern.
    pub fn containers_pattern(self, cgroup_parent: &str) -> Result<String, SliceError> {
        Ok(join(&self.parent_dir(cgroup_parent)?, self.child_pattern()))
    }
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}/{child}")
    }
}

/// A slice name's path below the root, as systemd (and runc's systemd driver) nests slices:
/// `a-b-c.slice` → `a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root itself.
pub fn expand_slice(slice: &str) -> Result<String, SliceError> {
    let invalid = || SliceError(slice.to_string());
    let stem = slice.strip_suffix(".slice").ok_or_else(invalid)?;
    if stem == "-" {
        return Ok(String::new());
    }
    if stem.is_empty()
        || stem.contains('/')
        || stem.starts_with('-')
        || stem.ends_with('-')
        || stem.contains("--")
    {
        return Err(invalid());
    }
    let mut path = Vec::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    Ok(path.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_CGROUPFS: CgroupLayout = CgroupLayout {
        engine: EngineKind::Docker,
        driver: CgroupDriver::Cgroupfs,
    };
    const DOCKER_SYSTEMD: CgroupLayout = CgroupLayout {
        engine: EngineKind::Docker,
        driver: CgroupDriver::Systemd,
    };
    const PODMAN_CGROUPFS: CgroupLayout = CgroupLayout {
        engine: EngineKind::Podman,
        driver: CgroupDriver::Cgroupfs,
    };
    const PODMAN_SYSTEMD: CgroupLayout = CgroupLayout {
        engine: EngineKind::Podman,
        driver: CgroupDriver::Systemd,
    };

    #[test]
    fn each_engine_and_driver_has_its_default_place() {
        let id = "4e9c8f56c68c";
        for (layout, path, pattern) in [
            (DOCKER_CGROUPFS, "docker/4e9c8f56c68c", "docker/*"),
            (
                DOCKER_SYSTEMD,
                "system.slice/docker-4e9c8f56c68c.scope",
                "system.slice/docker-*.scope",
            ),
            (
                PODMAN_CGROUPFS,
                "libpod_parent/libpod-4e9c8f56c68c",
                "libpod_parent/libpod-*",
            ),
            (
                PODMAN_SYSTEMD,
                "machine.slice/libpod-4e9c8f56c68c.scope",
                "machine.slice/libpod-*.scope",
            ),
        ] {
            assert_eq!(layout.container_path("", id).unwrap(), path, "{layout:?}");
            assert_eq!(layout.containers_pattern("").unwrap(), pattern);
        }
    }

    #[test]
    fn a_cgroup_parent_given_to_the_container_moves_it() {
        assert_eq!(
            DOCKER_CGROUPFS.container_path("/ci/jobs/", "ab").unwrap(),
            "ci/jobs/ab"
        );
        assert_eq!(
            PODMAN_CGROUPFS.container_path("ci", "ab").unwrap(),
            "ci/libpod-ab"
        );
        assert_eq!(
            DOCKER_SYSTEMD
                .container_path("ci-jobs.slice", "ab")
                .unwrap(),
            "ci.slice/ci-jobs.slice/docker-ab.scope"
        );
        assert_eq!(
            PODMAN_SYSTEMD.container_path("-.slice", "ab").unwrap(),
            "libpod-ab.scope"
        );
        assert_eq!(
            PODMAN_SYSTEMD.container_path("ci/jobs", "ab"),
            Err(SliceError("ci/jobs".into()))
        );
    }

    #[test]
    fn slices_expand_as_systemd_nests_them() {
        assert_eq!(expand_slice("system.slice").unwrap(), "system.slice");
        assert_eq!(
            expand_slice("a-b-c.slice").unwrap(),
            "a.slice/a-b.slice/a-b-c.slice"
        );
        assert_eq!(expand_slice("-.slice").unwrap(), "");
        for bad in [
            "system",
            ".slice",
            "-a.slice",
            "a-.slice",
            "a--b.slice",
            "a/b.slice",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn podmans_conmon_scope_is_not_the_container() {
        let id = "812df671";
        assert!(PODMAN_SYSTEMD.is_container("libpod-812df671.scope", id));
        assert!(!PODMAN_SYSTEMD.is_container("libpod-conmon-812df671.scope", id));
        assert!(!PODMAN_CGROUPFS.is_container("libpod-812df671.scope", id));
        assert!(!DOCKER_CGROUPFS.is_container("812df671-other", id));
        assert!(!DOCKER_CGROUPFS.is_container("", ""));
    }
}
