//! What the user asked to watch, resolved to a cgroup v2.

use std::path::PathBuf;

use crate::allowlist::TargetInfo;
use crate::cgroup::{Cgroup, CgroupError, CgroupV2Mount};
use crate::container::{self, ContainerError};
use crate::engine::{EngineError, EngineSocket};

/// One target as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    /// `--cgroup PATH`.
    Cgroup(PathBuf),
    /// `--cgroup-id N`.
    CgroupId(u64),
    /// `--pid PID`: that process's cgroup.
    Pid(u32),
    /// `--container NAME|ID`, on the engine `--engine-socket` (or `DOCKER_HOST`) names.
    Container {
        /// The name or id.
        name: String,
        /// Which engine to ask.
        engine: EngineSocket,
    },
}

/// A target that could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The cgroup side failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// The container engine side failed.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// The engine cannot say where a container's cgroup will appear.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl TargetError {
    /// The documented exit code of the side that failed.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        match self {
            TargetError::Cgroup(e) => e.exit_code(),
            TargetError::Container(e) => e.exit_code(),
            TargetError::Engine(e) => e.exit_code(),
        }
    }
}

/// A resolved target: the cgroup to count, and how it was found (for the allowlist).
#[derive(Clone, Debug)]
pub struct CgroupTarget {
    /// The cgroup whose tasks (and descendants' tasks) are counted.
    pub cgroup: Cgroup,
    /// What goes in the allowlist's `target` field.
    pub info: TargetInfo,
}

impl CgroupTarget {
    /// Resolves a spec against the host's cgroup v2 mount and container engines.
    pub fn resolve(mount: &CgroupV2Mount, spec: &TargetSpec) -> Result<Self, TargetError> {
        let (kind, given, cgroup, container) = match spec {
            TargetSpec::Cgroup(path) => (
                "cgroup",
                path.display().to_string(),
                mount.resolve_path(path)?,
                None,
            ),
            TargetSpec::CgroupId(id) => ("cgroup-id", id.to_string(), mount.resolve_id(*id)?, None),
            TargetSpec::Pid(pid) => ("pid", pid.to_string(), mount.resolve_pid(*pid)?, None),
            TargetSpec::Container { name, engine } => {
                let c = container::resolve(name, engine)?;
                let cgroup = mount.resolve_pid(c.pid)?;
                ("container", name.clone(), cgroup, Some(c))
            }
        };
        Ok(Self::new(kind, given, cgroup, container))
    }

    /// A cgroup found through `--cgroup-glob`.
    pub fn for_glob(cgroup: Cgroup, pattern: &str) -> Self {
        Self::new("cgroup-glob", pattern.to_string(), cgroup, None)
    }

    /// A container picked up by `record --wait --container NAME` as its cgroup appeared.
    pub fn for_container(
        cgroup: Cgroup,
        name: &str,
        info: crate::allowlist::ContainerInfo,
    ) -> Self {
        Self::new("container", name.to_string(), cgroup, Some(info))
    }

    /// A target for a cgroup agent-audit made itself (`run`).
    pub fn for_command(cgroup: Cgroup, command: &[String]) -> Self {
        let mut t = Self::new("command", command.join(" "), cgroup, None);
        t.info.command = Some(command.to_vec());
        t
    }

    fn new(
        kind: &str,
        spec: String,
        cgroup: Cgroup,
        container: Option<crate::allowlist::ContainerInfo>,
    ) -> Self {
        let info = TargetInfo {
            kind: kind.to_string(),
            spec,
            cgroup_path: cgroup.rel.clone(),
            cgroup_id: cgroup.id,
            container,
            command: None,
            exit_status: None,
        };
        Self { cgroup, info }
    }

    /// A short name for file names and progress lines: the container name, else the cgroup's
    /// last path component.
    pub fn label(&self) -> String {
        if let Some(c) = &self.info.container {
            return c.name.clone();
        }
        let last = self.cgroup.rel.rsplit('/').find(|s| !s.is_empty());
        last.unwrap_or("root").to_string()
    }
}
