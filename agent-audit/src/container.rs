//! Resolving a container name or id to the host pid of its init process, through the engines
//! that may run it: the Docker Engine API, Podman's Docker-compatible API (HTTP over their unix
//! sockets, with hyper), then `runc state`.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;

use crate::allowlist::ContainerInfo;

/// Docker Engine API sockets, in the order tried (`DOCKER_HOST=unix://…` first when set).
const DOCKER_SOCKETS: &[&str] = &["/var/run/docker.sock", "/run/docker.sock"];
/// Podman's Docker-compatible API socket (rootful).
const PODMAN_SOCKETS: &[&str] = &["/run/podman/podman.sock"];
/// Engine API version requested: old enough for every supported engine.
const API_VERSION: &str = "v1.41";
/// How long one engine API request may take.
const API_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Finds a running container by name or id and returns its engine's description.
pub fn resolve(name: &str) -> Result<ContainerInfo, ContainerError> {
    let mut tried = Vec::new();
    let docker_sockets = docker_host_socket()
        .into_iter()
        .chain(DOCKER_SOCKETS.iter().map(PathBuf::from));
    for (engine, sockets) in [
        ("docker", docker_sockets.collect::<Vec<_>>()),
        ("podman", PODMAN_SOCKETS.iter().map(PathBuf::from).collect()),
    ] {
        let mut answered = false;
        for socket in &sockets {
            match inspect_over_api(socket, engine, name) {
                Ok(Some(c)) => return finish(name, engine, c),
                Ok(None) => {
                    tried.push(format!(
                        "{engine} ({}): no such container",
                        socket.display()
                    ));
                    answered = true;
                    break;
                }
                Err(_) => continue,
            }
        }
        if !answered {
            tried.push(format!("{engine}: no API socket ({})", join(&sockets)));
        }
    }
    match runc_state(name) {
        Ok(Some(c)) => return finish(name, "runc", c),
        Ok(None) => tried.push("runc state: no such container".into()),
        Err(e) => tried.push(format!("runc: {e}")),
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

fn join(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn docker_host_socket() -> Option<PathBuf> {
    let host = std::env::var("DOCKER_HOST").ok()?;
    host.strip_prefix("unix://").map(PathBuf::from)
}

/// `GET path` on an engine's API socket. `Ok(None)`: the engine answered 404.
///
/// Callers are synchronous (target resolution, and the recorder as a new cgroup appears); the
/// request runs with hyper on a thread of its own with its own small runtime, so that it works
/// from inside the recorder's runtime as well, and is bounded by [`API_TIMEOUT`].
fn api_get(socket: &Path, path: &str) -> io::Result<Option<serde_json::Value>> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(api_get_async(socket, path))
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the engine API request panicked")))
    })
}

/// [`api_get`] for async callers.
async fn api_get_async(socket: &Path, path: &str) -> io::Result<Option<serde_json::Value>> {
    let request = async {
        let stream = tokio::net::UnixStream::connect(socket).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(io::Error::other)?;
        // The connection is driven until the response is read; it ends with this task.
        let connection = tokio::spawn(connection);
        let request = hyper::Request::get(format!("/{API_VERSION}{path}"))
            .header(hyper::header::HOST, "localhost")
            .body(Empty::<Bytes>::new())
            .map_err(io::Error::other)?;
        let response = sender
            .send_request(request)
            .await
            .map_err(io::Error::other)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(io::Error::other)?
            .to_bytes();
        connection.abort();
        Ok::<_, io::Error>((status, body))
    };
    let (status, body) = tokio::time::timeout(API_TIMEOUT, request)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the engine did not answer"))??;
    match status {
        StatusCode::OK => serde_json::from_slice(&body)
            .map(Some)
            .map_err(io::Error::other),
        StatusCode::NOT_FOUND => Ok(None),
        other => Err(io::Error::other(format!("engine answered HTTP {other}"))),
    }
}

/// `GET /containers/{name}/json`. `Ok(None)`: the engine answered 404. `Ok(Some(None))`: the
/// container exists but is not running.
fn inspect_over_api(
    socket: &Path,
    engine: &str,
    name: &str,
) -> io::Result<Option<Option<ContainerInfo>>> {
    let Some(v) = api_get(
        socket,
        &format!("/containers/{}/json", percent_encode(name)),
    )?
    else {
        return Ok(None);
    };
    let running = v["State"]["Running"].as_bool().unwrap_or(false);
    let pid = pid_field(&v["State"]["Pid"])?;
    if !running || pid == 0 {
        return Ok(Some(None));
    }
    Ok(Some(Some(info_from(&v, engine, name, pid))))
}

/// A pid from an engine's JSON: 0 when absent (not running); an error when it is no pid.
fn pid_field(field: &serde_json::Value) -> io::Result<u32> {
    let pid = field.as_u64().unwrap_or(0);
    u32::try_from(pid).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the engine reported pid {pid}, which is no pid"),
        )
    })
}

fn info_from(v: &serde_json::Value, engine: &str, name: &str, pid: u32) -> ContainerInfo {
    ContainerInfo {
        engine: engine.to_string(),
        id: v["Id"].as_str().unwrap_or_default().to_string(),
        name: v["Name"]
            .as_str()
            .unwrap_or(name)
            .trim_start_matches('/')
            .to_string(),
        pid,
    }
}

/// The Docker Engine's API socket, if one answers.
fn docker_socket() -> Option<PathBuf> {
    docker_host_socket()
        .into_iter()
        .chain(DOCKER_SOCKETS.iter().map(PathBuf::from))
        .find(|s| UnixStream::connect(s).is_ok())
}

/// Where Docker creates its containers' cgroups, as a `--cgroup-glob` pattern: `docker/*` with
/// the cgroupfs driver, `system.slice/docker-*.scope` with systemd's.
pub fn docker_cgroup_pattern() -> Result<String, ContainerError> {
    let unavailable = |why: String| ContainerError::NotFound {
        name: "(docker engine)".into(),
        tried: why,
    };
    let socket = docker_socket().ok_or_else(|| unavailable("docker: no API socket".into()))?;
    let info = api_get(&socket, "/info")
        .map_err(|e| unavailable(format!("docker /info: {e}")))?
        .ok_or_else(|| unavailable("docker /info: 404".into()))?;
    Ok(match info["CgroupDriver"].as_str() {
        Some("systemd") => "system.slice/docker-*.scope".into(),
        _ => "docker/*".into(),
    })
}

/// A Docker container's description whether or not it runs yet (`pid` 0 when not).
pub fn docker_container(name: &str) -> Option<ContainerInfo> {
    let socket = docker_socket()?;
    let v = api_get(
        &socket,
        &format!("/containers/{}/json", percent_encode(name)),
    )
    .ok()??;
    let pid = pid_field(&v["State"]["Pid"]).ok()?;
    Some(info_from(&v, "docker", name, pid))
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

/// Container names and ids are `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; anything else is escaped so it
/// cannot change the request.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_inject_into_the_request() {
        assert_eq!(percent_encode("web-1_a.b"), "web-1_a.b");
        assert_eq!(percent_encode("../x y"), "..%2Fx%20y");
    }

    #[test]
    fn unknown_container_names_every_engine_tried() {
        let err = resolve("agent-audit-no-such-container-0xdead").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ContainerError::NotFound { .. }), "{text}");
        for engine in ["docker", "podman", "runc"] {
            assert!(text.contains(engine), "{engine} missing from: {text}");
        }
    }
}
