//! The Kubernetes Security Profiles Operator frontend: a [`ProfilePlan`] as a `SeccompProfile`
//! object (`v1`, the storage version, by default; `v1beta1` on request), checked against what
//! the API server accepts before it is written, as JSON or YAML.
//!
//! The resource has no `comment` per rule and no `defaultErrnoRet` (runc then uses EPERM, which
//! is what ours is), so rule comments go to `metadata.annotations`, keyed by rule index; they
//! are shortened if they would pass the API server's 256 KiB limit on annotations.

use std::collections::BTreeMap;

use super::model::ProfilePlan;
use super::oci::action_of;
use crate::seccomp::spo::{
    Metadata, Spec, SpoError, SpoObject, SpoSyscall, SpoVersion, ANNOTATION_PREFIX, KIND,
    MAX_ANNOTATIONS_BYTES,
};
use crate::seccomp::Action;

/// What `profile --format spo` writes into the object's metadata.
#[derive(Clone, Debug)]
pub struct SpoTarget<'a> {
    /// `metadata.name` (a DNS subdomain).
    pub name: &'a str,
    /// `metadata.namespace`: only `v1beta1` objects are namespaced.
    pub namespace: Option<&'a str>,
    /// Resource version.
    pub version: SpoVersion,
}

/// The plan as an SPO `SeccompProfile` object, validated as the API server would.
pub fn to_spo_object(plan: &ProfilePlan, target: &SpoTarget<'_>) -> Result<SpoObject, SpoError> {
    let namespace = match (target.version, target.namespace) {
        (SpoVersion::V1, Some(_)) => {
            return Err(SpoError::Invalid {
                field: "metadata.namespace".into(),
                problem: "SeccompProfile v1 is cluster-scoped; give no namespace, or \
                          --spo-version v1beta1"
                    .into(),
            })
        }
        (_, namespace) => namespace.map(str::to_owned),
    };
    let object = SpoObject {
        api_version: target.version.api_version().to_string(),
        kind: KIND.to_string(),
        metadata: Metadata {
            name: target.name.to_string(),
            namespace,
            annotations: annotations(plan),
            extra: serde_json::Map::new(),
        },
        spec: Spec {
            default_action: Action::Errno,
            architectures: plan
                .architectures
                .iter()
                .map(|a| a.arch.scmp_name().to_string())
                .collect(),
            flags: Vec::new(),
            syscalls: plan
                .rules
                .iter()
                .map(|rule| {
                    let (action, errno) = action_of(rule.verdict);
                    SpoSyscall {
                        names: rule.names.clone(),
                        action,
                        errno_ret: errno,
                        args: rule.args.clone(),
                    }
                })
                .collect(),
            extra: serde_json::Map::new(),
        },
    };
    object.validate()?;
    Ok(object)
}

/// The generator and one annotation per rule comment. Comments are cut, longest first, until
/// the whole fits the API server's limit with room to spare for the object's other metadata.
fn annotations(plan: &ProfilePlan) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::new();
    annotations.insert(
        format!("{ANNOTATION_PREFIX}generated-by"),
        format!("agent-audit {}", env!("CARGO_PKG_VERSION")),
    );
    let width = plan.rules.len().to_string().len();
    for (index, rule) in plan.rules.iter().enumerate() {
        annotations.insert(
            format!("{ANNOTATION_PREFIX}rule-{index:0width$}"),
            rule.comment.clone(),
        );
    }
    fit_annotations(&mut annotations, MAX_ANNOTATIONS_BYTES / 2);
    annotations
}

/// Cuts every value longer than one common cap (the largest that fits) so that keys and
/// values add up to at most `budget` bytes; short comments stay whole.
fn fit_annotations(annotations: &mut BTreeMap<String, String>, budget: usize) {
    const MARK: &str = " […]";
    let size_with_cap = |cap: usize| -> usize {
        annotations
            .iter()
            .map(|(k, v)| {
                k.len()
                    + if v.len() > cap {
                        cap + MARK.len()
                    } else {
                        v.len()
                    }
            })
            .sum()
    };
    let longest = annotations.values().map(String::len).max().unwrap_or(0);
    if size_with_cap(longest) <= budget {
        return;
    }
    // The largest cap that fits, by bisection (size grows with the cap).
    let (mut low, mut high) = (0, longest);
    while low < high {
        let mid = (low + high).div_ceil(2);
        if size_with_cap(mid) <= budget {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    for value in annotations.values_mut() {
        if value.len() > low {
            let mut keep = low;
            while !value.is_char_boundary(keep) {
                keep -= 1;
            }
            value.truncate(keep);
            value.push_str(MARK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn long_comments_are_cut_to_fit_the_budget() {
        let mut annotations: BTreeMap<String, String> = (0..10)
            .map(|i| (format!("k{i}"), "é".repeat(10_000)))
            .collect();
        fit_annotations(&mut annotations, 50_000);
        let size: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(size <= 50_000, "{size}");
        assert!(annotations.values().all(|v| v.ends_with(" […]")));
        let lengths: BTreeSet<usize> = annotations.values().map(String::len).collect();
        assert!(
            lengths.len() <= 2,
            "one common cap (±1 char boundary): {lengths:?}"
        );
    }
}
