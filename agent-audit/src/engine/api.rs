//! The engines' HTTP API over their unix sockets (hyper): one request, its answer, and the
//! small parsers of what Docker and Podman send back.

use std::io;
use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;

use crate::allowlist::ContainerInfo;

/// Engine API version requested: old enough for every supported engine.
const API_VERSION: &str = "v1.41";
/// How long one engine API request may take.
pub(crate) const API_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET path` on an engine's API socket. `Ok(None)`: the engine answered 404.
pub(crate) fn api_get(socket: &Path, path: &str) -> io::Result<Option<serde_json::Value>> {
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
pub(crate) fn api_call(
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

/// A pid from an engine's JSON: 0 when absent (not running); an error when it is no pid.
pub(crate) fn pid_field(field: &serde_json::Value) -> io::Result<u32> {
    let pid = field.as_u64().unwrap_or(0);
    u32::try_from(pid).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the engine reported pid {pid}, which is no pid"),
        )
    })
}

pub(crate) fn info_from(
    v: &serde_json::Value,
    engine: &str,
    name: &str,
    pid: u32,
) -> ContainerInfo {
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

/// The log stream of a container without a TTY is framed: 8-byte headers (stream, 3 zero
/// bytes, big-endian length) before each chunk. A TTY container's stream is plain.
pub(crate) fn demultiplex(raw: &[u8]) -> String {
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

/// Container names and ids are `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; anything else is escaped so it
/// cannot change the request.
pub(crate) fn percent_encode(s: &str) -> String {
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
}
