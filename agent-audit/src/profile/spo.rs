//! The Kubernetes Security Profiles Operator frontend: a [`ProfilePlan`] as a `SeccompProfile`
//! resource (`security-profiles-operator.x-k8s.io/v1beta1`), written as JSON (`kubectl apply`
//! takes JSON as well as YAML).
//!
//! The resource has no `comment` per rule and no `defaultErrnoRet` (runc then uses EPERM, which
//! is what ours is), so rule comments go to `metadata.annotations`, keyed by rule index. Its
//! `errnoRet` is a string in the v1beta1 Go type.

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::ProfilePlan;
use super::oci::action_of;
use crate::seccomp::{Action, ArgCondition};

/// API group and version of the resource.
pub const API_VERSION: &str = "security-profiles-operator.x-k8s.io/v1beta1";
/// Annotation key prefix of rule comments.
pub const ANNOTATION_PREFIX: &str = "agent-audit.io/";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Resource<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    spec: Spec,
}

#[derive(Serialize)]
struct Metadata<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    default_action: Action,
    architectures: Vec<&'static str>,
    syscalls: Vec<Syscall>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Syscall {
    names: Vec<String>,
    action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno_ret: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    args: Vec<ArgCondition>,
}

/// The plan as an SPO `SeccompProfile` resource, pretty JSON with a trailing newline.
pub fn to_spo_json(plan: &ProfilePlan, name: &str, namespace: Option<&str>) -> String {
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
    let resource = Resource {
        api_version: API_VERSION,
        kind: "SeccompProfile",
        metadata: Metadata {
            name,
            namespace,
            annotations,
        },
        spec: Spec {
            default_action: Action::Errno,
            architectures: plan
                .architectures
                .iter()
                .map(|a| a.arch.scmp_name())
                .collect(),
            syscalls: plan
                .rules
                .iter()
                .map(|rule| {
                    let (action, errno) = action_of(rule.verdict);
                    Syscall {
                        names: rule.names.clone(),
                        action,
                        errno_ret: errno.map(|e| e.to_string()),
                        args: rule.args.clone(),
                    }
                })
                .collect(),
        },
    };
    let mut text = serde_json::to_string_pretty(&resource).expect("resource serializes");
    text.push('\n');
    text
}
