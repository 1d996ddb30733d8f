//! The container a Docker or Podman profile is applied to: its capabilities, the host's kernel
//! and arch. Docker and Podman evaluate each rule's `includes`/`excludes` against them when
//! they turn their profile into the one runc loads (moby `profiles/seccomp`'s `setupSeccomp`:
//! a rule is skipped when its `excludes.arches` has the arch or `includes.arches` lacks it,
//! when the bounding set has any of `excludes.caps` or lacks one of `includes.caps`, when the
//! kernel is at least `excludes.minKernel` or below `includes.minKernel`). `check`, `diff` and
//! `verify` do the same, so that a rule for a capability the container lacks does not count
//! as allowed.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use super::{KernelVersion, RuleFilter, SeccompProfile, SyscallRule};
use crate::syscalls::Arch;

/// Docker's default capability set (moby `oci/caps/defaults.go`), which a container gets
/// without `--cap-add`/`--cap-drop`.
pub const DOCKER_DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// A container's capability (bounding) set, as `--caps` gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capabilities {
    /// Every capability (`--privileged`).
    All,
    /// These, spelled `CAP_*`.
    Set(BTreeSet<String>),
}

impl Capabilities {
    /// Docker's default set.
    pub fn docker_default() -> Self {
        Self::Set(DOCKER_DEFAULT_CAPS.iter().map(|c| c.to_string()).collect())
    }

    /// Whether the set holds `cap` (`CAP_*`).
    pub fn has(&self, cap: &str) -> bool {
        match self {
            Self::All => true,
            Self::Set(set) => set.contains(&normalize(cap)),
        }
    }
}

/// A container's `--cap-drop` and `--cap-add` lists, as Docker's `HostConfig` (`CapDrop`,
/// `CapAdd`) and `capabilities.json` (`drop`, `add`) hold them: names with or without `CAP_`,
/// or `ALL`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CapabilityLists {
    /// Dropped from Docker's default set (`ALL`: every one).
    #[serde(default)]
    pub drop: Vec<String>,
    /// Added to what is left (`ALL`: every capability).
    #[serde(default)]
    pub add: Vec<String>,
}

impl CapabilityLists {
    /// Every capability dropped but `add`, as `capabilities.json` says.
    pub fn only(add: Vec<String>) -> Self {
        Self {
            drop: vec!["ALL".to_string()],
            add,
        }
    }

    /// The set the container gets, as Docker computes it (moby's `TweakCapabilities`): `ALL`
    /// added gives every capability; `ALL` dropped starts from none; otherwise Docker's
    /// default set, less the drops, plus the additions.
    pub fn resolve(&self) -> Result<Capabilities, String> {
        let is_all = |c: &String| c.eq_ignore_ascii_case("ALL");
        if self.add.iter().any(is_all) {
            return Ok(Capabilities::All);
        }
        let mut items = Vec::new();
        if !self.drop.iter().any(is_all) {
            items.push("default".to_string());
        }
        items.extend(self.drop.iter().map(|c| format!("-{c}")));
        items.extend(self.add.iter().map(|c| format!("+{c}")));
        if items.is_empty() {
            return Ok(Capabilities::Set(BTreeSet::new()));
        }
        items.join(",").parse()
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::docker_default()
    }
}

/// `CAP_SYS_ADMIN` for `sys_admin`, `SYS_ADMIN` or `CAP_SYS_ADMIN`.
fn normalize(cap: &str) -> String {
    let upper = cap.trim().to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

impl FromStr for Capabilities {
    type Err = String;

    /// `default` (Docker's set), `all` (privileged), `none`, or a comma-separated list of
    /// capabilities; `default,+CAP_X,-CAP_Y` adds to and drops from Docker's set, as
    /// `--cap-add`/`--cap-drop` do.
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "all" => return Ok(Self::All),
            "none" | "" => return Ok(Self::Set(BTreeSet::new())),
            _ => {}
        }
        let mut set = BTreeSet::new();
        for item in text.split(',').map(str::trim) {
            if item == "default" {
                set.extend(DOCKER_DEFAULT_CAPS.iter().map(|c| c.to_string()));
                continue;
            }
            let (drop, name) = match item.strip_prefix('-') {
                Some(name) => (true, name),
                None => (false, item.strip_prefix('+').unwrap_or(item)),
            };
            let cap = normalize(name);
            let valid =
                cap.len() > 4 && cap[4..].chars().all(|c| c.is_ascii_uppercase() || c == '_');
            if !valid {
                return Err(format!(
                    "{item:?} is not a capability name (CAP_SYS_ADMIN, sys_ptrace, …)"
                ));
            }
            if drop {
                set.remove(&cap);
            } else {
                set.insert(cap);
            }
        }
        Ok(Self::Set(set))
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all capabilities"),
            Self::Set(set) if set.is_empty() => f.write_str("no capabilities"),
            Self::Set(set) if *self == Self::docker_default() => {
                write!(f, "Docker's default capabilities ({})", set.len())
            }
            Self::Set(set) => write!(f, "{}", set.iter().cloned().collect::<Vec<_>>().join(",")),
        }
    }
}

/// What a rule's `includes`/`excludes` are evaluated against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerContext {
    /// The container's bounding set.
    pub caps: Capabilities,
    /// The host kernel (`None`: unknown, `minKernel` conditions count as met).
    pub kernel: Option<KernelVersion>,
    /// The host arch, as Go names it in `includes.arches` (`amd64`, `arm64`, …).
    pub go_arch: &'static str,
}

impl ContainerContext {
    /// A container with `caps` on this host (its kernel and arch).
    pub fn on_this_host(caps: Capabilities) -> Self {
        Self {
            caps,
            kernel: host_kernel(),
            go_arch: go_arch(Arch::native()),
        }
    }

    /// Whether Docker would keep `rule` for this container.
    pub fn keeps(&self, rule: &SyscallRule) -> bool {
        !self.excluded_by(&rule.excludes) && self.included_by(&rule.includes)
    }

    fn included_by(&self, includes: &RuleFilter) -> bool {
        (includes.arches.is_empty() || includes.arches.iter().any(|a| a == self.go_arch))
            && includes.caps.iter().all(|c| self.caps.has(c))
            && match (includes.min_kernel, self.kernel) {
                (Some(min), Some(kernel)) => kernel >= min,
                _ => true,
            }
    }

    fn excluded_by(&self, excludes: &RuleFilter) -> bool {
        excludes.arches.iter().any(|a| a == self.go_arch)
            || excludes.caps.iter().any(|c| self.caps.has(c))
            || matches!((excludes.min_kernel, self.kernel), (Some(min), Some(kernel)) if kernel >= min)
    }

    /// The profile as Docker hands it to runc for this container: the rules it keeps, without
    /// their conditions.
    pub fn effective(&self, profile: &SeccompProfile) -> SeccompProfile {
        SeccompProfile {
            syscalls: profile
                .syscalls
                .iter()
                .filter(|r| self.keeps(r))
                .map(|r| SyscallRule {
                    includes: RuleFilter::default(),
                    excludes: RuleFilter::default(),
                    ..r.clone()
                })
                .collect(),
            ..profile.clone()
        }
    }
}

impl Default for ContainerContext {
    /// Docker's default capabilities on this host.
    fn default() -> Self {
        Self::on_this_host(Capabilities::docker_default())
    }
}

/// Docker's name of an arch in `includes.arches` (moby `goToNative`, reversed).
pub fn go_arch(arch: Option<Arch>) -> &'static str {
    match arch {
        Some(Arch::X86_64) => "amd64",
        Some(Arch::X86) => "386",
        Some(Arch::X32) => "x32",
        Some(Arch::Aarch64) => "arm64",
        Some(Arch::Arm) => "arm",
        None => "",
    }
}

/// This host's kernel as `minKernel` compares it: the first two numbers of the release.
pub fn host_kernel() -> Option<KernelVersion> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    parse_release(&release)
}

fn parse_release(release: &str) -> Option<KernelVersion> {
    let mut parts = release.trim().split(['.', '-', '+']);
    let kernel = parts.next()?.parse().ok()?;
    let major = parts.next()?.parse().ok()?;
    Some(KernelVersion { kernel, major })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn docker_default() -> SeccompProfile {
        SeccompProfile::parse(
            include_str!("../../../tests/data/profiles/docker-default.json"),
            Path::new("docker-default.json"),
        )
        .unwrap()
    }

    fn allows(profile: &SeccompProfile, name: &str) -> bool {
        super::super::evaluate::outcome(profile, name, &[0; 6]).allows()
    }

    fn amd64(caps: &str, kernel: (u8, u8)) -> ContainerContext {
        ContainerContext {
            caps: caps.parse().unwrap(),
            kernel: Some(KernelVersion {
                kernel: kernel.0,
                major: kernel.1,
            }),
            go_arch: "amd64",
        }
    }

    #[test]
    fn capability_gated_rules_count_only_with_the_capability() {
        let docker = docker_default();
        let default = amd64("default", (6, 18)).effective(&docker);
        assert!(
            allows(&default, "chroot"),
            "CAP_SYS_CHROOT is a default cap"
        );
        assert!(!allows(&default, "mount"), "mount needs CAP_SYS_ADMIN");
        assert!(
            !allows(&default, "bpf"),
            "bpf needs CAP_SYS_ADMIN or CAP_BPF"
        );
        let without_chroot = amd64("default,-CAP_SYS_CHROOT", (6, 18)).effective(&docker);
        assert!(!allows(&without_chroot, "chroot"));
        let admin = amd64("default,+sys_admin", (6, 18)).effective(&docker);
        assert!(allows(&admin, "mount"));
        assert!(allows(&amd64("all", (6, 18)).effective(&docker), "bpf"));
        assert!(effective_has_no_conditions(&default));
    }

    fn effective_has_no_conditions(profile: &SeccompProfile) -> bool {
        profile.syscalls.iter().all(|r| !r.is_filtered())
    }

    #[test]
    fn min_kernel_follows_the_host_kernel() {
        // Docker allows ptrace without CAP_SYS_PTRACE from kernel 4.8 on (seccomp bypass fix).
        let docker = docker_default();
        assert!(allows(
            &amd64("default", (4, 8)).effective(&docker),
            "ptrace"
        ));
        assert!(!allows(
            &amd64("default", (4, 7)).effective(&docker),
            "ptrace"
        ));
    }

    #[test]
    fn capability_lists_parse_as_docker_spells_them() {
        assert_eq!("all".parse::<Capabilities>().unwrap(), Capabilities::All);
        let caps: Capabilities = "sys_ptrace, CAP_NET_ADMIN".parse().unwrap();
        assert!(caps.has("CAP_SYS_PTRACE") && caps.has("net_admin") && !caps.has("CAP_KILL"));
        assert!("CAP_".parse::<Capabilities>().is_err());
        assert!("cap sys".parse::<Capabilities>().is_err());
        assert_eq!(
            parse_release("6.18.44-amd64\n"),
            Some(KernelVersion {
                kernel: 6,
                major: 18
            })
        );
    }
}
