//! Resolving a container name or id to the host pid of its init process, through the engines
//! that may run it: the Docker Engine API, Podman's Docker-compatible API (HTTP over their unix
//! sockets, with hyper), then `runc state`.

use std::io;
use std::process::Command;

use crate::allowlist::ContainerInfo;
use crate::engine::api::pid_field;
use crate::engine::{Engine, EngineSocket};

/// A container that could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// No engine knows the container.
    #[error("container {name:?} not found; tried: {tried}")]
    NotFound {
        /// The name or id given.
        name: String,
        /// Each engine tried and what it answered.
        tried: String,
    },
    /// The container exists but is not running, so it has no processes to watch.
    #[error("container {name:?} ({engine}) is not running; start it, or use `record --wait` to catch its next start")]
    NotRunning {
        /// The name given.
        name: String,
        /// The engine that knows it.
        engine: &'static str,
    },
}

impl ContainerError {
    /// The documented exit code: 66, the container cannot be found running.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        crate::exit::ExitCode::NO_INPUT
    }
}

/// Finds a running container by name or id and returns its engine's description: on the
/// named engine only, or on each engine that answers, then `runc state`.
pub fn resolve(name: &str, choice: &EngineSocket) -> Result<ContainerInfo, ContainerError> {
    let mut tried = Vec::new();
    for candidate in choice.candidates() {
        let engine = match Engine::at(&candidate.socket) {
            Ok(engine) => engine,
            Err(e) => {
                tried.push(format!("{}: {e}", candidate.label));
                continue;
            }
        };
        match engine.describe(name) {
            Ok(Some(c)) => {
                let running = Some(c).filter(|c| c.pid != 0);
                return finish(name, engine.kind().name(), running);
            }
            Ok(None) => tried.push(format!(
                "{} ({}): no such container",
                engine.kind(),
                candidate.socket.display()
            )),
            Err(e) => tried.push(format!(
                "{} ({}): {e}",
                engine.kind(),
                candidate.socket.display()
            )),
        }
    }
    if *choice == EngineSocket::Discover {
        match runc_state(name) {
            Ok(Some(c)) => return finish(name, "runc", c),
            Ok(None) => tried.push("runc state: no such container".into()),
            Err(e) => tried.push(format!("runc: {e}")),
        }
    }
    Err(ContainerError::NotFound {
        name: name.to_string(),
        tried: tried.join("; "),
    })
}

fn finish(
    name: &str,
    engine: &'static str,
    c: Option<ContainerInfo>,
) -> Result<ContainerInfo, ContainerError> {
    c.ok_or(ContainerError::NotRunning {
        name: name.to_string(),
        engine,
    })
}

/// `runc state NAME`: `Ok(None)` when runc is installed but does not know the container.
fn runc_state(name: &str) -> io::Result<Option<Option<ContainerInfo>>> {
    let out = Command::new("runc").arg("state").arg(name).output()?;
    if !out.status.success() {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(io::Error::other)?;
    let pid = pid_field(&v["pid"])?;
    if pid == 0 || v["status"].as_str() == Some("stopped") {
        return Ok(Some(None));
    }
    Ok(Some(Some(ContainerInfo {
        engine: "runc".into(),
        id: v["id"].as_str().unwrap_or(name).to_string(),
        name: name.to_string(),
        pid,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_container_names_every_engine_tried() {
        let err = resolve(
            "agent-audit-no-such-container-0xdead",
            &EngineSocket::Discover,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ContainerError::NotFound { .. }), "{text}");
        for engine in ["docker", "podman", "runc"] {
            assert!(text.contains(engine), "{engine} missing from: {text}");
        }
    }
}
