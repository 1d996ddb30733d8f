//! The Kubernetes Security Profiles Operator's `SeccompProfile` resource
//! (`security-profiles-operator.x-k8s.io`, versions `v1` — the storage version — and
//! `v1beta1`): the object model, its limits as the API server enforces them, and the
//! conversion to and from the OCI profile model, so that `check`, `diff` and `profile --base`
//! read SPO objects (JSON or YAML) like any profile.
//!
//! The limits follow the CRD's `openAPIV3Schema` at SPO's current release: `errnoRet` and
//! `index` are `int32 ≥ 0`, `value`/`valueTwo` are `int64 ≥ 0`, `names` has at least one item,
//! `args` at most six; `metadata.name` is a DNS subdomain; and, for any object, the API server
//! refuses annotations that add up to more than 256 KiB.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Action, ArgCondition, SeccompProfile, SyscallRule};

/// API group of the resource.
pub const GROUP: &str = "security-profiles-operator.x-k8s.io";
/// `kind` of the resource.
pub const KIND: &str = "SeccompProfile";
/// Annotation key prefix agent-audit writes (rule comments, generator).
pub const ANNOTATION_PREFIX: &str = "agent-audit.io/";
/// The API server's limit on the total size of an object's annotations (keys and values).
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// Which version of the resource to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SpoVersion {
    /// The storage version at SPO's current release (cluster-scoped).
    #[default]
    V1,
    /// The older version, still served.
    V1beta1,
}

impl SpoVersion {
    /// `apiVersion` of an object of this version.
    pub fn api_version(self) -> &'static str {
        match self {
            SpoVersion::V1 => "security-profiles-operator.x-k8s.io/v1",
            SpoVersion::V1beta1 => "security-profiles-operator.x-k8s.io/v1beta1",
        }
    }
}

/// A `SeccompProfile` object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpoObject {
    /// `security-profiles-operator.x-k8s.io/<version>`.
    pub api_version: String,
    /// `SeccompProfile`.
    pub kind: String,
    /// Name, namespace, annotations.
    pub metadata: Metadata,
    /// The profile.
    pub spec: Spec,
}

/// The object's metadata (only what agent-audit reads or writes; the rest is kept).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// `metadata.name`.
    #[serde(default)]
    pub name: String,
    /// `metadata.namespace` (only for `v1beta1`: `v1` objects are cluster-scoped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `metadata.annotations`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Labels and anything else, kept verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `spec` of the object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// Action for syscalls no rule matches.
    pub default_action: Action,
    /// Architectures (`SCMP_ARCH_*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// `SECCOMP_FILTER_FLAG_*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<super::FilterFlag>,
    /// Rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<SpoSyscall>,
    /// `baseProfileName`, `listenerPath`, `state`, … kept verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One rule of `spec.syscalls`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpoSyscall {
    /// Syscall names (at least one).
    pub names: Vec<String>,
    /// Action on a match.
    pub action: Action,
    /// errno for `SCMP_ACT_ERRNO`/`SCMP_ACT_TRACE`: an integer in the CRD; older writers
    /// (agent-audit before 0.2 among them) wrote a numeric string, which is read too.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "errno_from_int_or_string"
    )]
    pub errno_ret: Option<u32>,
    /// Argument conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgCondition>,
}

fn errno_from_int_or_string<'de, D>(deserializer: D) -> Result<Option<u32>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IntOrString {
        Int(u32),
        Text(String),
    }
    match Option::<IntOrString>::deserialize(deserializer)? {
        None => Ok(None),
        Some(IntOrString::Int(n)) => Ok(Some(n)),
        Some(IntOrString::Text(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("errnoRet {s:?} is not a number"))),
    }
}

/// Why an SPO object cannot be read or would be refused by the API server.
#[derive(Debug, thiserror::Error)]
pub enum SpoError {
    /// Neither JSON nor YAML of the object's shape.
    #[error("not a SeccompProfile object: {0}")]
    Shape(String),
    /// A YAML stream with no object, or more than one.
    #[error("holds {0} YAML documents; give a file with exactly one SeccompProfile")]
    Documents(usize),
    /// Another kind or API group.
    #[error("is a {kind} of {api_version}, not a {KIND} of {GROUP}")]
    WrongKind {
        /// `kind` found.
        kind: String,
        /// `apiVersion` found.
        api_version: String,
    },
    /// A field the API server would refuse, named by its path in the object.
    #[error("{field}: {problem}")]
    Invalid {
        /// JSON path of the field, e.g. `spec.syscalls[3].args[0].value`.
        field: String,
        /// What the API server's schema says.
        problem: String,
    },
}

impl SpoObject {
    /// Parses an object from JSON or YAML (one document).
    pub fn parse(text: &str) -> Result<Self, SpoError> {
        let object: Self = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| SpoError::Shape(e.to_string()))?
        } else {
            // Each document straight into the object, not through a `Value`: a document of
            // many aliases is expanded once, not twice.
            let mut documents = Vec::new();
            for document in serde_yaml_ng::Deserializer::from_str(text) {
                let object = Option::<Self>::deserialize(document)
                    .map_err(|e| SpoError::Shape(e.to_string()))?;
                documents.extend(object);
            }
            if documents.len() != 1 {
                return Err(SpoError::Documents(documents.len()));
            }
            documents.pop().expect("one document")
        };
        let group = object.api_version.split('/').next().unwrap_or_default();
        if object.kind != KIND || group != GROUP {
            return Err(SpoError::WrongKind {
                kind: object.kind,
                api_version: object.api_version,
            });
        }
        Ok(object)
    }

    /// Whether `text` looks like an SPO object rather than a plain OCI profile: JSON or YAML
    /// that names the kind (an OCI profile has no `kind`).
    pub fn sniff(text: &str) -> bool {
        let trimmed = text.trim_start();
        if trimmed.starts_with('{') {
            trimmed.contains("\"kind\"") && trimmed.contains(KIND)
        } else {
            trimmed.contains("kind:") && trimmed.contains(KIND)
        }
    }

    /// The profile this object describes, in the OCI model: rule comments come back from the
    /// `agent-audit.io/rule-NN` annotations agent-audit writes; fields the OCI model has no
    /// place for (`baseProfileName`, `listenerPath`, …) are kept as unknown fields, which
    /// `check` reports.
    pub fn to_profile(&self) -> SeccompProfile {
        let comments = rule_comments(&self.metadata.annotations);
        SeccompProfile {
            default_action: self.spec.default_action,
            default_errno_ret: None,
            architectures: self.spec.architectures.clone(),
            arch_map: Vec::new(),
            flags: self.spec.flags.clone(),
            syscalls: self
                .spec
                .syscalls
                .iter()
                .enumerate()
                .map(|(index, rule)| SyscallRule {
                    names: rule.names.clone(),
                    action: rule.action,
                    errno_ret: rule.errno_ret,
                    args: rule.args.clone(),
                    comment: comments.get(&index).cloned(),
                    ..SyscallRule::default()
                })
                .collect(),
            extra: self.spec.extra.clone(),
            ..SeccompProfile::default()
        }
    }

    /// Checks what the API server checks before it stores the object (the CRD schema's
    /// bounds, the name, the annotations' size), naming the first field it would refuse.
    pub fn validate(&self) -> Result<(), SpoError> {
        let invalid = |field: String, problem: &str| SpoError::Invalid {
            field,
            problem: problem.to_string(),
        };
        if !is_dns_subdomain(&self.metadata.name) {
            return Err(invalid(
                "metadata.name".into(),
                "must be a DNS subdomain: at most 253 lowercase letters, digits, '-' and '.', \
                 starting and ending with a letter or digit",
            ));
        }
        let annotation_bytes: usize = self
            .metadata
            .annotations
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum();
        if annotation_bytes > MAX_ANNOTATIONS_BYTES {
            return Err(invalid(
                "metadata.annotations".into(),
                "add up to more than 256 KiB, which the API server refuses",
            ));
        }
        for (i, rule) in self.spec.syscalls.iter().enumerate() {
            let at = format!("spec.syscalls[{i}]");
            if rule.names.is_empty() {
                return Err(invalid(format!("{at}.names"), "needs at least one name"));
            }
            if rule.args.len() > 6 {
                return Err(invalid(format!("{at}.args"), "has more than 6 conditions"));
            }
            if rule.errno_ret.is_some_and(|e| i32::try_from(e).is_err()) {
                return Err(invalid(format!("{at}.errnoRet"), "is not an int32 ≥ 0"));
            }
            for (j, arg) in rule.args.iter().enumerate() {
                for (name, value) in [("value", arg.value), ("valueTwo", arg.value_two)] {
                    if i64::try_from(value).is_err() {
                        return Err(invalid(
                            format!("{at}.args[{j}].{name}"),
                            "is above 2^63-1, which the CRD's int64 cannot hold",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("object serializes");
        text.push('\n');
        text
    }

    /// YAML, as `kubectl apply -f` users keep it in Git.
    pub fn to_yaml(&self) -> String {
        let body = serde_yaml_ng::to_string(self).expect("object serializes");
        format!("---\n{body}")
    }
}

/// Rule index → comment, from `agent-audit.io/rule-NN` annotations.
fn rule_comments(annotations: &BTreeMap<String, String>) -> BTreeMap<usize, String> {
    annotations
        .iter()
        .filter_map(|(key, value)| {
            let index = key.strip_prefix(ANNOTATION_PREFIX)?.strip_prefix("rule-")?;
            Some((index.parse().ok()?, value.clone()))
        })
        .collect()
}

/// RFC 1123 subdomain, as Kubernetes checks `metadata.name` of most resources.
pub fn is_dns_subdomain(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.starts_with(alnum)
                && label.ends_with(alnum)
                && label.chars().all(|c| alnum(c) || c == '-')
        })
}

/// Reads an SPO object from `text` into the OCI model; `path` only names the source.
pub fn parse_profile(text: &str, path: &Path) -> Result<SeccompProfile, super::ProfileFileError> {
    SpoObject::parse(text)
        .map(|object| object.to_profile())
        .map_err(|source| super::ProfileFileError::Spo {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_subdomains() {
        assert!(is_dns_subdomain("my-agent"));
        assert!(is_dns_subdomain("a.b-c.d"));
        for bad in ["", "My-agent", "-a", "a-", "a..b", "a_b", &"a".repeat(254)] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
    }

    #[test]
    fn errno_ret_is_read_as_integer_or_numeric_string() {
        let object = SpoObject::parse(
            r#"{"apiVersion":"security-profiles-operator.x-k8s.io/v1beta1","kind":"SeccompProfile",
               "metadata":{"name":"x"},"spec":{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
               {"names":["a"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
               {"names":["b"],"action":"SCMP_ACT_ERRNO","errnoRet":"1"}]}}"#,
        )
        .unwrap();
        let errnos: Vec<_> = object.spec.syscalls.iter().map(|s| s.errno_ret).collect();
        assert_eq!(errnos, vec![Some(38), Some(1)]);
    }

    #[test]
    fn yaml_streams_need_exactly_one_object() {
        let one = "---\napiVersion: security-profiles-operator.x-k8s.io/v1\nkind: SeccompProfile\nmetadata:\n  name: a\nspec:\n  defaultAction: SCMP_ACT_LOG\n";
        assert!(SpoObject::parse(one).is_ok());
        let two = format!("{one}{one}");
        assert!(matches!(
            SpoObject::parse(&two),
            Err(SpoError::Documents(2))
        ));
        let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  defaultAction: SCMP_ACT_LOG\n";
        assert!(matches!(
            SpoObject::parse(pod),
            Err(SpoError::WrongKind { .. })
        ));
    }

    #[test]
    fn validation_names_the_field_the_api_server_would_refuse() {
        let mut object = SpoObject::parse(
            r#"{"apiVersion":"security-profiles-operator.x-k8s.io/v1","kind":"SeccompProfile",
               "metadata":{"name":"x"},"spec":{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
               {"names":["ioctl"],"action":"SCMP_ACT_ALLOW",
                "args":[{"index":1,"value":21522,"valueTwo":0,"op":"SCMP_CMP_EQ"}]}]}}"#,
        )
        .unwrap();
        object.validate().unwrap();
        object.spec.syscalls[0].args[0].value = u64::MAX;
        let err = object.validate().unwrap_err().to_string();
        assert!(err.starts_with("spec.syscalls[0].args[0].value"), "{err}");
        object.spec.syscalls[0].args[0].value = 1;
        object.metadata.name = "Not_A_Name".into();
        let err = object.validate().unwrap_err().to_string();
        assert!(err.starts_with("metadata.name"), "{err}");
    }
}
