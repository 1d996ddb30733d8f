//! Kubernetes pods as cgroups: where the kubelet puts a pod's cgroup and its containers', for
//! both of its cgroup drivers, as `--cgroup-glob` patterns the recorder already understands.
//!
//! systemd driver (pod UID dashes become underscores in unit names):
//!   `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<UID>.slice/cri-containerd-<ID>.scope`
//!   (`kubepods-besteffort…` alike; Guaranteed pods sit directly in `kubepods.slice/kubepods-pod<UID>.slice`);
//!   CRI-O names its scopes `crio-<ID>.scope` (and its monitor `crio-conmon-<ID>.scope`),
//!   cri-dockerd `docker-<ID>.scope`.
//! cgroupfs driver: `kubepods/burstable/pod<UID>/<ID>` (`kubepods/besteffort/…`, `kubepods/pod<UID>/…`),
//!   CRI-O `crio-<ID>`.
//! Everything sits below the kubelet's `--cgroup-root` (the mount's root by default).

use std::path::Path;

use crate::cgroup::CgroupV2Mount;
use crate::exit::ExitCode;

/// The kubelet's cgroup driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupDriver {
    /// `--cgroup-driver=systemd`: slices and scopes.
    Systemd,
    /// `--cgroup-driver=cgroupfs`: plain directories.
    Cgroupfs,
}

/// A pod's quality-of-service class, which decides its cgroup's parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QosClass {
    /// Requests equal limits: directly below `kubepods`.
    Guaranteed,
    /// Below `kubepods/burstable`.
    Burstable,
    /// Below `kubepods/besteffort`.
    BestEffort,
}

/// Guaranteed first: its pods' parent (`kubepods`) is also the parent of the other classes'
/// parents, which `record --wait` excludes as existing siblings when it arms `kubepods`; the
/// classes armed after that make those parents watched parents again.
const QOS_CLASSES: [QosClass; 3] = [
    QosClass::Guaranteed,
    QosClass::Burstable,
    QosClass::BestEffort,
];

/// The container runtime that named a container's cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// containerd's CRI plugin (`cri-containerd-<ID>.scope`, or the bare ID with cgroupfs).
    Containerd,
    /// CRI-O (`crio-<ID>.scope`, `crio-<ID>`).
    CriO,
    /// CRI-O's per-container monitor, not the container itself (`crio-conmon-<ID>.scope`).
    CriOConmon,
    /// cri-dockerd (`docker-<ID>.scope`).
    Docker,
}

/// A cgroup the kubelet laid out: a pod's, or one of its containers'.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeletCgroup {
    /// Which driver's layout it follows.
    pub driver: CgroupDriver,
    /// The pod's QoS class.
    pub qos: QosClass,
    /// The pod's UID, with dashes (as the API server shows it).
    pub pod_uid: String,
    /// For a container's cgroup: its runtime and id.
    pub container: Option<(Runtime, String)>,
}

/// A pod or the kubelet's cgroups that cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// Not a pod UID (36 characters of hex digits and dashes).
    #[error("{0:?} is not a pod UID (e.g. 0d5e7f3a-8c6b-4f1e-9a2d-3b4c5d6e7f80: `kubectl get pod NAME -o jsonpath='{{.metadata.uid}}'`)")]
    BadUid(String),
    /// No cgroup for the pod under any layout.
    #[error("no cgroup for pod {uid} under {root} (tried {tried}); is it scheduled on this node, and is --kubelet-cgroup-root right?")]
    PodNotFound {
        /// The UID given.
        uid: String,
        /// The kubelet's cgroup root (absolute).
        root: String,
        /// Every path tried.
        tried: String,
    },
    /// Neither `kubepods.slice` nor `kubepods` exists.
    #[error("no kubelet cgroups under {root} (neither kubepods.slice nor kubepods): not a Kubernetes node, or give --kubelet-cgroup-root")]
    NoKubepods {
        /// The kubelet's cgroup root (absolute).
        root: String,
    },
}

impl KubeError {
    /// The documented exit code: 2 for a malformed UID, 66 when nothing is found.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::BadUid(_) => ExitCode::USAGE,
            Self::PodNotFound { .. } | Self::NoKubepods { .. } => ExitCode::NO_INPUT,
        }
    }
}

/// The kubelet's cgroups on this node: the v2 mount and the kubelet's `--cgroup-root` below it.
#[derive(Clone, Debug)]
pub struct KubeletCgroups<'a> {
    mount: &'a CgroupV2Mount,
    /// Relative to the mount, without leading or trailing `/` (empty: the mount's root).
    root: String,
}

impl<'a> KubeletCgroups<'a> {
    /// `root`: the kubelet's `--cgroup-root`, relative to the mount (`/` or empty: the root).
    pub fn new(mount: &'a CgroupV2Mount, root: &str) -> Self {
        Self {
            mount,
            root: root.trim_matches('/').to_string(),
        }
    }

    fn rel(&self, path: &str) -> String {
        if self.root.is_empty() {
            path.to_string()
        } else {
            format!("{}/{path}", self.root)
        }
    }

    fn exists(&self, rel: &str) -> bool {
        self.mount.path.join(rel).is_dir()
    }

    fn root_display(&self) -> String {
        self.mount.path.join(&self.root).display().to_string()
    }

    /// The driver whose top-level cgroup exists (systemd's first).
    pub fn driver(&self) -> Result<CgroupDriver, KubeError> {
        [CgroupDriver::Systemd, CgroupDriver::Cgroupfs]
            .into_iter()
            .find(|d| self.exists(&self.rel(kubepods(*d))))
            .ok_or_else(|| KubeError::NoKubepods {
                root: self.root_display(),
            })
    }

    /// `--cgroup-glob` patterns matching every pod cgroup of every QoS class (one allowlist
    /// per pod, counting all its containers; with `--wait`, pods created later too).
    pub fn all_pods_patterns(&self) -> Result<Vec<String>, KubeError> {
        let driver = self.driver()?;
        Ok(QOS_CLASSES
            .iter()
            .map(|q| self.rel(&pod_path(driver, *q, "*")))
            .collect())
    }

    /// The pattern matching every container cgroup of pod `uid` (one allowlist per container;
    /// with `--wait`, its containers created later too, from their first syscall).
    pub fn pod_containers_pattern(&self, uid: &str) -> Result<String, KubeError> {
        if !is_pod_uid(uid) {
            return Err(KubeError::BadUid(uid.to_string()));
        }
        let mut tried = Vec::new();
        for driver in [CgroupDriver::Systemd, CgroupDriver::Cgroupfs] {
            for qos in QOS_CLASSES {
                let rel = self.rel(&pod_path(driver, qos, uid));
                if self.exists(&rel) {
                    return Ok(format!("{rel}/*"));
                }
                tried.push(rel);
            }
        }
        Err(KubeError::PodNotFound {
            uid: uid.to_string(),
            root: self.root_display(),
            tried: tried.join(", "),
        })
    }
}

fn kubepods(driver: CgroupDriver) -> &'static str {
    match driver {
        CgroupDriver::Systemd => "kubepods.slice",
        CgroupDriver::Cgroupfs => "kubepods",
    }
}

/// A pod's cgroup path below the kubelet's root; `uid` may be `*`.
fn pod_path(driver: CgroupDriver, qos: QosClass, uid: &str) -> String {
    match driver {
        CgroupDriver::Systemd => {
            let uid = uid.replace('-', "_");
            match qos {
                QosClass::Guaranteed => format!("kubepods.slice/kubepods-pod{uid}.slice"),
                QosClass::Burstable => format!(
                    "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice"
                ),
                QosClass::BestEffort => format!(
                    "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid}.slice"
                ),
            }
        }
        CgroupDriver::Cgroupfs => match qos {
            QosClass::Guaranteed => format!("kubepods/pod{uid}"),
            QosClass::Burstable => format!("kubepods/burstable/pod{uid}"),
            QosClass::BestEffort => format!("kubepods/besteffort/pod{uid}"),
        },
    }
}

/// A pod UID: 8-4-4-4-12 hex digits.
fn is_pod_uid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl KubeletCgroup {
    /// Reads a cgroup path (as in an allowlist's `target.cgroup_path`, under any kubelet
    /// root) as the kubelet's: `None` when it is not a pod's or a pod's container's cgroup.
    pub fn parse(path: &str) -> Option<Self> {
        let parts: Vec<&str> = Path::new(path)
            .iter()
            .filter_map(|p| p.to_str())
            .filter(|p| *p != "/")
            .collect();
        let at = parts
            .iter()
            .position(|p| *p == "kubepods.slice" || *p == "kubepods")?;
        let rest = &parts[at + 1..];
        let driver = if parts[at] == "kubepods.slice" {
            CgroupDriver::Systemd
        } else {
            CgroupDriver::Cgroupfs
        };
        let (qos, pod, container) = split_qos(driver, rest)?;
        let pod_uid = match driver {
            CgroupDriver::Systemd => pod
                .strip_suffix(".slice")?
                .rsplit_once("-pod")?
                .1
                .replace('_', "-"),
            CgroupDriver::Cgroupfs => pod.strip_prefix("pod")?.to_string(),
        };
        if !is_pod_uid(&pod_uid) {
            return None;
        }
        let container = match container {
            [] => None,
            [c] => Some(container_named(c)?),
            _ => return None,
        };
        Some(Self {
            driver,
            qos,
            pod_uid,
            container,
        })
    }
}

/// `[qos parent, pod, rest…]` or, for Guaranteed pods, `[pod, rest…]`.
fn split_qos<'p>(
    driver: CgroupDriver,
    rest: &'p [&'p str],
) -> Option<(QosClass, &'p str, &'p [&'p str])> {
    let (first, after) = rest.split_first()?;
    let class_name = match driver {
        CgroupDriver::Systemd => first
            .strip_prefix("kubepods-")
            .and_then(|s| s.strip_suffix(".slice")),
        CgroupDriver::Cgroupfs => Some(*first),
    };
    match class_name.and_then(qos_named) {
        Some(qos) => {
            let (pod, more) = after.split_first()?;
            Some((qos, pod, more))
        }
        None => Some((QosClass::Guaranteed, first, after)),
    }
}

fn qos_named(name: &str) -> Option<QosClass> {
    match name {
        "burstable" => Some(QosClass::Burstable),
        "besteffort" => Some(QosClass::BestEffort),
        _ => None,
    }
}

/// A container's cgroup name → runtime and container id.
fn container_named(name: &str) -> Option<(Runtime, String)> {
    let (runtime, id) = if let Some(scope) = name.strip_suffix(".scope") {
        [
            ("cri-containerd-", Runtime::Containerd),
            ("crio-conmon-", Runtime::CriOConmon),
            ("crio-", Runtime::CriO),
            ("docker-", Runtime::Docker),
        ]
        .into_iter()
        .find_map(|(prefix, rt)| scope.strip_prefix(prefix).map(|id| (rt, id)))?
    } else if let Some(id) = name.strip_prefix("crio-") {
        (Runtime::CriO, id)
    } else {
        (Runtime::Containerd, name)
    };
    let is_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    is_id.then(|| (runtime, id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0d5e7f3a-8c6b-4f1e-9a2d-3b4c5d6e7f80";
    const ID: &str = "4a4a0cec1f2e3d4c5b6a79881726354453627180a9b8c7d6e5f4a3b2c1d0e9f8";

    #[test]
    fn reads_the_systemd_driver_layout_for_every_runtime_and_qos() {
        let uid_ = UID.replace('-', "_");
        for (path, qos, runtime) in [
            (format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{ID}.scope"), QosClass::Burstable, Runtime::Containerd),
            (format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/crio-{ID}.scope"), QosClass::BestEffort, Runtime::CriO),
            (format!("/kubepods.slice/kubepods-pod{uid_}.slice/crio-conmon-{ID}.scope"), QosClass::Guaranteed, Runtime::CriOConmon),
            (format!("/kubepods.slice/kubepods-pod{uid_}.slice/docker-{ID}.scope"), QosClass::Guaranteed, Runtime::Docker),
        ] {
            let c = KubeletCgroup::parse(&path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!(c.driver, CgroupDriver::Systemd, "{path}");
            assert_eq!(c.qos, qos, "{path}");
            assert_eq!(c.pod_uid, UID);
            assert_eq!(c.container, Some((runtime, ID.to_string())), "{path}");
        }
    }

    #[test]
    fn reads_the_cgroupfs_driver_layout_and_pod_cgroups() {
        for (path, qos, container) in [
            (
                format!("/kubepods/burstable/pod{UID}/{ID}"),
                QosClass::Burstable,
                Some((Runtime::Containerd, ID.to_string())),
            ),
            (
                format!("/kubepods/besteffort/pod{UID}/crio-{ID}"),
                QosClass::BestEffort,
                Some((Runtime::CriO, ID.to_string())),
            ),
            (format!("/kubepods/pod{UID}"), QosClass::Guaranteed, None),
            (
                format!("/custom-root/kubepods/pod{UID}/{ID}"),
                QosClass::Guaranteed,
                Some((Runtime::Containerd, ID.to_string())),
            ),
        ] {
            let c = KubeletCgroup::parse(&path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!((c.driver, c.qos), (CgroupDriver::Cgroupfs, qos), "{path}");
            assert_eq!(c.pod_uid, UID);
            assert_eq!(c.container, container, "{path}");
        }
    }

    #[test]
    fn other_cgroups_are_not_pods() {
        for path in [
            "/docker/abc".to_string(),
            "/kubepods.slice".to_string(),
            "/kubepods.slice/kubepods-burstable.slice".to_string(),
            "/kubepods/burstable/podnot-a-uid".to_string(),
            format!("/kubepods/pod{UID}/not-an-id"),
            format!("/kubepods/pod{UID}/{ID}/deeper"),
        ] {
            assert_eq!(KubeletCgroup::parse(&path), None, "{path}");
        }
    }

    #[test]
    fn pod_uids_are_checked_before_any_path_is_built() {
        assert!(is_pod_uid(UID));
        for bad in ["", "../../etc", "0d5e7f3a_8c6b_4f1e_9a2d_3b4c5d6e7f80", "*"] {
            assert!(!is_pod_uid(bad), "{bad}");
        }
        let mount = CgroupV2Mount {
            path: "/nonexistent".into(),
        };
        let kubelet = KubeletCgroups::new(&mount, "/");
        let err = kubelet.pod_containers_pattern("../x").unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::USAGE);
        let err = kubelet.pod_containers_pattern(UID).unwrap_err();
        assert!(err.to_string().contains("kubepods/burstable/pod"), "{err}");
        assert_eq!(err.exit_code(), ExitCode::NO_INPUT);
        assert!(matches!(
            kubelet.all_pods_patterns(),
            Err(KubeError::NoKubepods { .. })
        ));
    }
}
