//! Docker's and Podman's rule conditions (`includes` / `excludes`): the capabilities, arches
//! and kernel version under which a rule applies. runc never sees them: Docker and Podman
//! evaluate them when they turn their profile into the OCI one. Kept typed so that `check`,
//! `diff` and `verify` can evaluate them for a given container.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::null_as_default;

/// When a rule applies (`includes`: all must hold) or does not (`excludes`: any excludes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleFilter {
    /// Capabilities (`CAP_SYS_ADMIN`, …): for `includes` the container must have them all,
    /// for `excludes` any one of them excludes the rule.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub caps: Vec<String>,
    /// Go architecture names (`amd64`, `arm64`, `s390x`, …) of the host.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arches: Vec<String>,
    /// Lowest host kernel (`"4.8"`): only the version and major revision count.
    #[serde(
        default,
        deserialize_with = "kernel_or_empty",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_kernel: Option<KernelVersion>,
}

impl RuleFilter {
    /// Whether the filter says nothing (Go writes `{}` for it).
    pub fn is_empty(&self) -> bool {
        self.caps.is_empty() && self.arches.is_empty() && self.min_kernel.is_none()
    }
}

/// A kernel version as Docker writes it in `minKernel`: `"<kernel>.<major>"`, each 0..=255,
/// not `0.0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    /// The `4` of 4.8.
    pub kernel: u8,
    /// The `8` of 4.8.
    pub major: u8,
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kernel, self.major)
    }
}

impl std::str::FromStr for KernelVersion {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("invalid kernel version {text:?}, expected \"<kernel>.<major>\"");
        let (kernel, major) = text.split_once('.').ok_or_else(bad)?;
        let version = KernelVersion {
            kernel: kernel.parse().map_err(|_| bad())?,
            major: major.parse().map_err(|_| bad())?,
        };
        if version.kernel == 0 && version.major == 0 {
            return Err(bad());
        }
        Ok(version)
    }
}

impl Serialize for KernelVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Docker reads `""` (and a missing field) as "no minimum".
fn kernel_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<KernelVersion>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(text) if text.is_empty() => Ok(None),
        Some(text) => text.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_as_docker_reads_them() {
        let v: KernelVersion = "4.8".parse().unwrap();
        assert_eq!((v.kernel, v.major), (4, 8));
        assert_eq!(v.to_string(), "4.8");
        for bad in ["4", "4.8.1", "0.0", "a.b", "4.256", ""] {
            assert!(bad.parse::<KernelVersion>().is_err(), "{bad}");
        }
        let f: RuleFilter = serde_json::from_str(r#"{"minKernel":""}"#).unwrap();
        assert!(f.is_empty());
        let f: RuleFilter =
            serde_json::from_str(r#"{"caps":null,"arches":["amd64"],"minKernel":"5.4"}"#).unwrap();
        assert_eq!(f.arches, ["amd64"]);
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"arches":["amd64"],"minKernel":"5.4"}"#
        );
    }
}
