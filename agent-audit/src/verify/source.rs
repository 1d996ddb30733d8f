//! The audited container as its engine describes it, and what the verify copy is made of: the
//! create body (its configuration with the profile as its seccomp option), the form of that
//! option each engine takes, and the capability set the profile is evaluated for (Docker's
//! rules over `CapAdd`/`CapDrop`; Podman's own computed set).

use std::io;

use serde_json::Value;

use super::container::ContainerVerifyError;
use crate::engine::{Engine, EngineKind, EngineSocket};
use crate::seccomp::container::{Capabilities, CapabilityLists};

/// The audited container as the engine describes it.
pub struct SourceContainer {
    pub(super) engine: Engine,
    pub(super) name: String,
    inspect: Value,
    pub(super) caps: Capabilities,
}

impl SourceContainer {
    /// Looks `name` up on the engine `choice` names; refuses a container the engine would run
    /// without seccomp.
    pub fn inspect(name: &str, choice: &EngineSocket) -> Result<Self, ContainerVerifyError> {
        let engine = Engine::connect(choice)?;
        let inspect = engine
            .inspect(name)
            .map_err(ContainerVerifyError::Engine)?
            .ok_or_else(|| ContainerVerifyError::NotFound {
                name: name.to_string(),
                engine: engine.kind(),
                socket: engine.socket().to_path_buf(),
            })?;
        let host = &inspect["HostConfig"];
        if host["Privileged"].as_bool() == Some(true) {
            return Err(ContainerVerifyError::Privileged(name.to_string()));
        }
        let caps = match engine.kind() {
            EngineKind::Docker => capabilities(host),
            EngineKind::Podman => bounding_caps(&libpod_inspect(&engine, name)?),
        }
        .map_err(|detail| ContainerVerifyError::Capabilities {
            name: name.to_string(),
            detail,
        })?;
        let name = inspect["Name"]
            .as_str()
            .map(|n| n.trim_start_matches('/').to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| name.to_string());
        Ok(Self {
            engine,
            name,
            inspect,
            caps,
        })
    }

    /// The container as it would run with `lists` for its own `CapDrop`/`CapAdd` (as
    /// `capabilities.json` gives them: every capability dropped but the minimal set): its
    /// copy is created with them, and the profile is evaluated for exactly that set.
    pub(super) fn with_capabilities(
        mut self,
        lists: &CapabilityLists,
    ) -> Result<Self, ContainerVerifyError> {
        let host = &mut self.inspect["HostConfig"];
        host["CapDrop"] = Value::from(lists.drop.clone());
        host["CapAdd"] = Value::from(lists.add.clone());
        self.caps = capabilities(host).map_err(|detail| ContainerVerifyError::Capabilities {
            name: self.name.clone(),
            detail,
        })?;
        Ok(self)
    }

    pub(super) fn image(&self) -> String {
        self.inspect["Config"]["Image"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// What the container runs: its entrypoint and command.
    pub(super) fn argv(&self) -> Vec<String> {
        let config = &self.inspect["Config"];
        strings(&config["Entrypoint"])
            .into_iter()
            .chain(strings(&config["Cmd"]))
            .collect()
    }
}

/// The container's capability set as Docker computes it from its `CapAdd`/`CapDrop`.
fn capabilities(host_config: &Value) -> Result<Capabilities, String> {
    CapabilityLists {
        drop: strings(&host_config["CapDrop"]),
        add: strings(&host_config["CapAdd"]),
    }
    .resolve()
}

/// The container's capability set as Podman computed it: `CapAdd`/`CapDrop` in its compatible
/// inspect are relative to containers.conf's `default_capabilities`, which the API does not
/// show, so the set is read from its own inspect's `BoundingCaps`.
fn bounding_caps(libpod_inspect: &Value) -> Result<Capabilities, String> {
    if !libpod_inspect["BoundingCaps"].is_array() {
        return Err("Podman's inspect has no BoundingCaps".to_string());
    }
    let caps = strings(&libpod_inspect["BoundingCaps"]);
    if caps.is_empty() {
        return Ok(Capabilities::Set(Default::default()));
    }
    caps.join(",").parse()
}

/// Podman's own inspect of `name`.
fn libpod_inspect(engine: &Engine, name: &str) -> Result<Value, ContainerVerifyError> {
    engine
        .inspect_libpod(name)
        .map_err(ContainerVerifyError::Engine)?
        .ok_or_else(|| ContainerVerifyError::NotFound {
            name: name.to_string(),
            engine: engine.kind(),
            socket: engine.socket().to_path_buf(),
        })
}

/// A JSON array of strings (`null`: none).
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// The create body of the verify container: the audited one's configuration and host
/// configuration, with the profile as its seccomp option (any other seccomp option replaced),
/// no restart policy and no automatic removal.
pub(super) fn create_body(source: &SourceContainer, seccomp: Option<&str>) -> Value {
    let mut body = source.inspect["Config"].clone();
    // The image the container was created from, even if its tag has moved since.
    if let Some(id) = source.inspect["Image"].as_str() {
        body["Image"] = Value::from(id);
    }
    if !body["Labels"].is_object() {
        body["Labels"] = Value::Object(Default::default());
    }
    body["Labels"]["agent-audit.verify-of"] = Value::from(source.name.clone());
    let mut host = source.inspect["HostConfig"].clone();
    if let Some(seccomp) = seccomp {
        let mut options: Vec<Value> = strings(&host["SecurityOpt"])
            .into_iter()
            .filter(|o| !o.starts_with("seccomp=") && !o.starts_with("seccomp:"))
            .map(Value::from)
            .collect();
        options.push(Value::from(format!("seccomp={seccomp}")));
        host["SecurityOpt"] = Value::Array(options);
    }
    host["AutoRemove"] = Value::Bool(false);
    host["RestartPolicy"] = serde_json::json!({"Name": "no", "MaximumRetryCount": 0});
    body["HostConfig"] = host;
    body
}

/// The value of the verify container's `seccomp=` security option. Docker's API takes the
/// profile's content (its CLI reads the file); Podman's compatible API takes a path it opens
/// itself (its create handler fills `SeccompProfilePath` from it), so for Podman the profile
/// is written to a file of our own that lives as long as this value.
pub(super) enum SeccompOption {
    Content(String),
    File(tempfile::NamedTempFile),
}

impl SeccompOption {
    pub(super) fn for_engine(
        engine: EngineKind,
        profile_json: String,
    ) -> Result<Self, ContainerVerifyError> {
        match engine {
            EngineKind::Docker => Ok(SeccompOption::Content(profile_json)),
            EngineKind::Podman => {
                let mut file = tempfile::Builder::new()
                    .prefix("agent-audit-profile-")
                    .suffix(".json")
                    .tempfile()
                    .map_err(ContainerVerifyError::ProfileFile)?;
                io::Write::write_all(&mut file, profile_json.as_bytes())
                    .map_err(ContainerVerifyError::ProfileFile)?;
                Ok(SeccompOption::File(file))
            }
        }
    }

    pub(super) fn value(&self) -> std::borrow::Cow<'_, str> {
        match self {
            SeccompOption::Content(json) => json.into(),
            SeccompOption::File(file) => file.path().to_string_lossy(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn capabilities_follow_dockers_rules() {
        let caps = |add: Value, drop: Value| {
            capabilities(&json!({"CapAdd": add, "CapDrop": drop})).unwrap()
        };
        assert_eq!(
            caps(Value::Null, Value::Null),
            Capabilities::docker_default()
        );
        let seed = caps(
            Value::Null,
            json!(["NET_RAW", "SYS_PTRACE", "SYS_MODULE", "SYS_RAWIO", "MKNOD"]),
        );
        assert!(!seed.has("CAP_NET_RAW") && !seed.has("CAP_MKNOD"));
        assert!(seed.has("CAP_CHOWN"));
        let minimal = caps(json!(["NET_BIND_SERVICE"]), json!(["ALL"]));
        assert_eq!(
            minimal,
            Capabilities::Set(["CAP_NET_BIND_SERVICE".to_string()].into())
        );
        assert_eq!(caps(json!(["ALL"]), Value::Null), Capabilities::All);
        assert!(capabilities(&json!({"CapAdd": ["no such cap!"]})).is_err());
    }

    #[test]
    fn the_create_body_carries_the_configuration_and_replaces_the_seccomp_option() {
        let source = SourceContainer {
            engine: Engine::for_tests(EngineKind::Docker),
            name: "agent".into(),
            inspect: json!({
                "Name": "/agent",
                "Image": "sha256:abc",
                "Config": {"Image": "debian-agent:1", "Cmd": ["python3", "task.py"],
                           "Env": ["A=1"], "User": "1000", "WorkingDir": "/work", "Labels": null},
                "HostConfig": {"CapDrop": ["NET_RAW"], "Binds": ["/src:/src:ro"],
                               "NetworkMode": "none", "AutoRemove": true,
                               "RestartPolicy": {"Name": "always"},
                               "SecurityOpt": ["no-new-privileges:true", "seccomp=unconfined"]}
            }),
            caps: Capabilities::docker_default(),
        };
        let body = create_body(&source, Some("{\"defaultAction\":\"SCMP_ACT_ERRNO\"}"));
        assert_eq!(body["Image"], "sha256:abc");
        assert_eq!(body["Cmd"], json!(["python3", "task.py"]));
        assert_eq!(body["User"], "1000");
        assert_eq!(body["Labels"]["agent-audit.verify-of"], "agent");
        let host = &body["HostConfig"];
        assert_eq!(host["CapDrop"], json!(["NET_RAW"]));
        assert_eq!(host["Binds"], json!(["/src:/src:ro"]));
        assert_eq!(host["AutoRemove"], false);
        assert_eq!(host["RestartPolicy"]["Name"], "no");
        assert_eq!(
            host["SecurityOpt"],
            json!([
                "no-new-privileges:true",
                "seccomp={\"defaultAction\":\"SCMP_ACT_ERRNO\"}"
            ])
        );
        // The baseline copy keeps the container's own seccomp configuration.
        let baseline = create_body(&source, None);
        assert_eq!(
            baseline["HostConfig"]["SecurityOpt"],
            json!(["no-new-privileges:true", "seccomp=unconfined"])
        );
        assert_eq!(baseline["HostConfig"]["RestartPolicy"]["Name"], "no");
    }

    #[test]
    fn the_minimal_set_replaces_the_containers_capabilities() {
        let source = SourceContainer {
            engine: Engine::for_tests(EngineKind::Docker),
            name: "daemon".into(),
            inspect: json!({"Name": "/daemon", "Config": {"Image": "d"},
                            "HostConfig": {"CapAdd": ["SYS_ADMIN"], "CapDrop": ["NET_RAW"]}}),
            caps: Capabilities::docker_default(),
        };
        let only = source
            .with_capabilities(&CapabilityLists::only(vec![
                "CHOWN".into(),
                "SETUID".into(),
            ]))
            .unwrap();
        let host = &create_body(&only, None)["HostConfig"];
        assert_eq!(host["CapDrop"], json!(["ALL"]));
        assert_eq!(host["CapAdd"], json!(["CHOWN", "SETUID"]));
        assert!(only.caps.has("CAP_CHOWN") && only.caps.has("CAP_SETUID"));
        assert!(!only.caps.has("CAP_SYS_ADMIN") && !only.caps.has("CAP_KILL"));
        // The empty set: nothing at all.
        let none = only
            .with_capabilities(&CapabilityLists::only(Vec::new()))
            .unwrap();
        assert!(!none.caps.has("CAP_CHOWN"));
    }

    #[test]
    fn podmans_capability_set_is_its_own_bounding_set() {
        // Podman's answer for `--cap-drop NET_BIND_SERVICE --cap-add SYS_PTRACE` with Debian's
        // containers.conf (11 default capabilities).
        let libpod = json!({"BoundingCaps": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER",
            "CAP_FSETID", "CAP_KILL", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
            "CAP_SYS_CHROOT", "CAP_SYS_PTRACE"]});
        let caps = bounding_caps(&libpod).unwrap();
        assert!(caps.has("CAP_SYS_PTRACE") && caps.has("CAP_CHOWN"));
        assert!(!caps.has("CAP_NET_RAW") && !caps.has("CAP_MKNOD"));
        assert!(!caps.has("CAP_NET_BIND_SERVICE"));
        assert_eq!(
            bounding_caps(&json!({"BoundingCaps": []})).unwrap(),
            Capabilities::Set(Default::default())
        );
        assert!(bounding_caps(&json!({})).is_err());
    }

    #[test]
    fn podman_gets_the_profile_as_a_file_docker_as_content() {
        let profile = r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#;
        let docker = SeccompOption::for_engine(EngineKind::Docker, profile.into()).unwrap();
        assert_eq!(docker.value(), profile);
        let podman = SeccompOption::for_engine(EngineKind::Podman, profile.into()).unwrap();
        let path = podman.value().into_owned();
        assert!(path.starts_with('/'), "{path}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), profile);
        drop(podman);
        assert!(
            !std::path::Path::new(&path).exists(),
            "removed with the option"
        );
    }
}
