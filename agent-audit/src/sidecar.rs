//! Running inside a container (the sidecar image): the recorder needs the host's cgroup tree,
//! its pid namespace, the container engine's socket, BTF and a capability. When one of them
//! is missing the error says what failed; this adds which `docker run` option provides it.

use std::fs;
use std::path::Path;

use crate::bpf::BpfError;
use crate::cgroup::CgroupError;
use crate::container::ContainerError;
use crate::engine::EngineError;
use crate::target::TargetError;
use crate::Error;

/// Files container engines create in every container's root.
const CONTAINER_MARKERS: &[&str] = &["/.dockerenv", "/run/.containerenv"];
/// Where the sidecar expects the Docker socket.
const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// A `docker run` option the sidecar lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissingOption {
    /// The host's cgroup tree.
    CgroupMount,
    /// The host's cgroup namespace (paths in /proc/PID/cgroup are relative to one's own).
    HostCgroupNs,
    /// The host's pid namespace (engines report host pids).
    HostPid,
    /// The Docker Engine API socket.
    DockerSocket,
    /// The kernel's BTF.
    BtfMount,
    /// The capability to load and attach BPF programs.
    Capability,
}

impl MissingOption {
    /// What to add to `docker run`, and why.
    pub fn advice(self) -> &'static str {
        match self {
            Self::CgroupMount => {
                "inside a container: mount the host's cgroup tree with \
                 `-v /sys/fs/cgroup:/sys/fs/cgroup` (and `--cgroupns=host`)"
            }
            Self::HostCgroupNs => {
                "inside a container with its own cgroup namespace: add `--cgroupns=host` so \
                 that cgroup paths are the host's"
            }
            Self::HostPid => {
                "inside a container with its own pid namespace: add `--pid=host` (the engine \
                 reports the container's host pid)"
            }
            Self::DockerSocket => {
                "inside a container: mount the Docker socket with \
                 `-v /var/run/docker.sock:/var/run/docker.sock`"
            }
            Self::BtfMount => {
                "inside a container: /sys/kernel/btf is not visible; add \
                 `-v /sys/kernel/btf:/sys/kernel/btf:ro`"
            }
            Self::Capability => {
                "inside a container: add `--cap-add SYS_ADMIN` (or `--cap-add BPF --cap-add \
                 PERFMON` on engines that know them; Docker 20.10 does not)"
            }
        }
    }
}

/// Whether this process runs inside a container.
pub fn in_container() -> bool {
    CONTAINER_MARKERS.iter().any(|m| Path::new(m).exists())
}

/// Whether this process has a cgroup namespace of its own: its cgroup is the namespace's root
/// (`0::/`), which inside a container only happens with a private cgroup namespace.
fn private_cgroup_namespace() -> bool {
    fs::read_to_string("/proc/self/cgroup")
        .map(|text| text.lines().any(|l| l.trim() == "0::/"))
        .unwrap_or(false)
}

/// The option that would have avoided `err` when running inside a container.
pub fn missing_option(err: &Error) -> Option<MissingOption> {
    if !in_container() {
        return None;
    }
    let cgroup = match err {
        Error::Privileges(_) => return Some(MissingOption::Capability),
        Error::Bpf(BpfError::NoBtf { .. }) => return Some(MissingOption::BtfMount),
        Error::Cgroup(e) | Error::Target(TargetError::Cgroup(e)) => e,
        Error::Target(
            TargetError::Container(ContainerError::NotFound { .. })
            | TargetError::Engine(EngineError::NoEngine { .. }),
        ) if !Path::new(DOCKER_SOCKET).exists() => return Some(MissingOption::DockerSocket),
        _ => return None,
    };
    match cgroup {
        CgroupError::NoV2Mount | CgroupError::NotV2 { .. } => Some(MissingOption::CgroupMount),
        CgroupError::NoSuchPid { .. } => Some(MissingOption::HostPid),
        _ if private_cgroup_namespace() => Some(MissingOption::HostCgroupNs),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_names_the_docker_run_flag() {
        for (option, flag) in [
            (MissingOption::CgroupMount, "/sys/fs/cgroup:/sys/fs/cgroup"),
            (MissingOption::HostCgroupNs, "--cgroupns=host"),
            (MissingOption::HostPid, "--pid=host"),
            (MissingOption::DockerSocket, "/var/run/docker.sock"),
            (MissingOption::BtfMount, "/sys/kernel/btf"),
            (MissingOption::Capability, "--cap-add SYS_ADMIN"),
        ] {
            assert!(option.advice().contains(flag), "{option:?}");
        }
    }
}
