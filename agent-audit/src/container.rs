//! Resolving a container name or id to the host pid of its init process, through the engines
//! that may run it: the Docker Engine API, Podman's Docker-compatible API (HTTP over their unix
//! sockets, with hyper), then `runc state`.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
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
    /// The Docker Engine's API cannot tell where containers' cgroups go: no socket answers
    /// the connection, or the one that does (`socket`) fails the request (never answers it).
    /// Every engine error's text starts with the socket it came from.
    #[error("Docker Engine API: {source}")]
    EngineUnavailable {
        /// The socket used, if one took the connection.
        socket: Option<PathBuf>,
        /// What went wrong.
        source: io::Error,
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
    /// The documented exit code: 66, the container cannot be found running; 69, the engine
    /// cannot be asked.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        match self {
            ContainerError::NotFound { .. } | ContainerError::NotRunning { .. } => {
                crate::exit::ExitCode::NO_INPUT
            }
            ContainerError::EngineUnavailable { .. } => crate::exit::ExitCode::UNAVAILABLE,
        }
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
fn api_get(socket: &Path, path: &str) -> io::Result<Option<serde_json::Value>> {
    let (status, body) = api_call(socket, Method::GET, path, None, Some(API_TIMEOUT))?;
    match status {
        StatusCode::OK => serde_json::from_slice(&body)
            .map(Some)
            .map_err(io::Error::other),
        StatusCode::NOT_FOUND => Ok(None),
        other => Err(io::Error::other(format!("engine answered HTTP {other}"))),
    }
}

/// One request on an engine's API socket: its status and body.
///
/// Callers are synchronous (target resolution, the recorder as a new cgroup appears, `verify`
/// of a container); the request runs with hyper on a thread of its own with its own small
/// runtime, so that it works from inside the recorder's runtime as well. `timeout: None` is for
/// requests that last as long as a container runs (`wait`).
fn api_call(
    socket: &Path,
    method: Method,
    path: &str,
    json_body: Option<Vec<u8>>,
    timeout: Option<Duration>,
) -> io::Result<(StatusCode, Bytes)> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let call = api_call_async(socket, method, path, json_body);
                runtime.block_on(async {
                    match timeout {
                        Some(limit) => tokio::time::timeout(limit, call).await.map_err(|_| {
                            io::Error::new(
                                io::ErrorKind::TimedOut,
                                format!("no answer within {} s", limit.as_secs()),
                            )
                        })?,
                        None => call.await,
                    }
                })
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the engine API request panicked")))
    })
    // Every engine error names the socket that was asked (DOCKER_HOST may point anywhere).
    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", socket.display())))
}

async fn api_call_async(
    socket: &Path,
    method: Method,
    path: &str,
    json_body: Option<Vec<u8>>,
) -> io::Result<(StatusCode, Bytes)> {
    let stream = tokio::net::UnixStream::connect(socket).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    // The connection is driven until the response is read; it ends with this task.
    let connection = tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(format!("/{API_VERSION}{path}"))
        .header(hyper::header::HOST, "localhost");
    if json_body.is_some() {
        request = request.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(Full::new(Bytes::from(json_body.unwrap_or_default())))
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
    Ok((status, body))
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
    let engine = DockerEngine::connect().map_err(|source| ContainerError::EngineUnavailable {
        socket: None,
        source,
    })?;
    let unavailable = |source| ContainerError::EngineUnavailable {
        socket: Some(engine.socket.clone()),
        source,
    };
    let info = api_get(&engine.socket, "/info")
        .map_err(unavailable)?
        .ok_or_else(|| unavailable(io::Error::new(io::ErrorKind::NotFound, "/info: 404")))?;
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

/// The Docker Engine API, for the calls that create and run a container (`audit --container`'s
/// verify run).
#[derive(Clone, Debug)]
pub struct DockerEngine {
    socket: PathBuf,
}

impl DockerEngine {
    /// The engine whose API socket answers (`DOCKER_HOST=unix://…` first).
    pub fn connect() -> io::Result<Self> {
        docker_socket()
            .map(|socket| Self { socket })
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "no Docker Engine API socket answers (tried {})",
                        join(
                            &docker_host_socket()
                                .into_iter()
                                .chain(DOCKER_SOCKETS.iter().map(PathBuf::from))
                                .collect::<Vec<_>>()
                        )
                    ),
                )
            })
    }

    /// An engine at a socket no test ever reaches.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        Self {
            socket: PathBuf::from("/nonexistent/agent-audit-test.sock"),
        }
    }

    /// `GET /containers/{name}/json`: the container's whole description, `None` when the
    /// engine does not know it.
    pub fn inspect(&self, name: &str) -> io::Result<Option<serde_json::Value>> {
        api_get(
            &self.socket,
            &format!("/containers/{}/json", percent_encode(name)),
        )
    }

    /// `POST /containers/create?name=NAME` with `body`; returns the new container's id.
    pub fn create(&self, name: &str, body: &serde_json::Value) -> io::Result<String> {
        let bytes = serde_json::to_vec(body).map_err(io::Error::other)?;
        let path = format!("/containers/create?name={}", percent_encode(name));
        let (status, answer) = api_call(
            &self.socket,
            Method::POST,
            &path,
            Some(bytes),
            Some(API_TIMEOUT),
        )?;
        if status != StatusCode::CREATED {
            return Err(engine_refused(status, &answer));
        }
        let v: serde_json::Value = serde_json::from_slice(&answer).map_err(io::Error::other)?;
        v["Id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| io::Error::other("the engine's create answer has no Id"))
    }

    /// `POST /containers/{id}/start`. The error carries the engine's message (the runtime's
    /// own, when runc refused the filter or the exec failed).
    pub fn start(&self, id: &str) -> io::Result<()> {
        let path = format!("/containers/{}/start", percent_encode(id));
        // Starting includes runc creating the container: allow more than a plain request.
        let (status, answer) = api_call(
            &self.socket,
            Method::POST,
            &path,
            None,
            Some(API_TIMEOUT * 6),
        )?;
        match status {
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED => Ok(()),
            other => Err(engine_refused(other, &answer)),
        }
    }

    /// `POST /containers/{id}/wait`: blocks until the container has exited, or `limit` has
    /// passed (an error of kind `TimedOut`); its exit code.
    pub fn wait(&self, id: &str, limit: Option<Duration>) -> io::Result<i64> {
        let path = format!("/containers/{}/wait", percent_encode(id));
        let (status, answer) = api_call(&self.socket, Method::POST, &path, None, limit)?;
        if status != StatusCode::OK {
            return Err(engine_refused(status, &answer));
        }
        let v: serde_json::Value = serde_json::from_slice(&answer).map_err(io::Error::other)?;
        v["StatusCode"]
            .as_i64()
            .ok_or_else(|| io::Error::other("the engine's wait answer has no StatusCode"))
    }

    /// `POST /containers/{id}/kill`: SIGKILL to the container's init, which takes every
    /// process of its PID namespace with it.
    pub fn kill(&self, id: &str) -> io::Result<()> {
        let path = format!("/containers/{}/kill", percent_encode(id));
        let (status, answer) =
            api_call(&self.socket, Method::POST, &path, None, Some(API_TIMEOUT))?;
        match status {
            // 409: it is not running (any more).
            StatusCode::NO_CONTENT | StatusCode::CONFLICT => Ok(()),
            other => Err(engine_refused(other, &answer)),
        }
    }

    /// The last `lines` lines the container wrote to stdout and stderr.
    pub fn logs_tail(&self, id: &str, lines: usize) -> io::Result<String> {
        let path = format!(
            "/containers/{}/logs?stdout=1&stderr=1&tail={lines}",
            percent_encode(id)
        );
        let (status, answer) = api_call(&self.socket, Method::GET, &path, None, Some(API_TIMEOUT))?;
        if status != StatusCode::OK {
            return Err(engine_refused(status, &answer));
        }
        Ok(demultiplex(&answer))
    }

    /// `DELETE /containers/{id}?force=1&v=1`: the container and its anonymous volumes.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        let path = format!("/containers/{}?force=1&v=1", percent_encode(id));
        let (status, answer) =
            api_call(&self.socket, Method::DELETE, &path, None, Some(API_TIMEOUT))?;
        match status {
            StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(()),
            other => Err(engine_refused(other, &answer)),
        }
    }
}

/// The engine's error answer (`{"message": …}`) as an error.
fn engine_refused(status: StatusCode, answer: &[u8]) -> io::Error {
    let message = serde_json::from_slice::<serde_json::Value>(answer)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(answer).trim().to_string());
    io::Error::other(format!("engine answered HTTP {status}: {message}"))
}

/// The log stream of a container without a TTY is framed: 8-byte headers (stream, 3 zero
/// bytes, big-endian length) before each chunk. A TTY container's stream is plain.
fn demultiplex(raw: &[u8]) -> String {
    let framed = raw.len() >= 8 && matches!(raw[0], 0..=2) && raw[1..4] == [0, 0, 0];
    if !framed {
        return String::from_utf8_lossy(raw).into_owned();
    }
    let mut out = Vec::new();
    let mut rest = raw;
    while rest.len() >= 8 {
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let end = (8 + len).min(rest.len());
        out.extend_from_slice(&rest[8..end]);
        rest = &rest[end..];
    }
    String::from_utf8_lossy(&out).into_owned()
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
    fn framed_logs_are_joined_and_plain_ones_kept() {
        let mut framed = vec![1, 0, 0, 0, 0, 0, 0, 3];
        framed.extend_from_slice(b"ab\n");
        framed.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 4]);
        framed.extend_from_slice(b"err\n");
        assert_eq!(demultiplex(&framed), "ab\nerr\n");
        assert_eq!(demultiplex(b"plain text\n"), "plain text\n");
    }

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
