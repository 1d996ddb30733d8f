//! `record --metrics ADDR`: per-target call and refusal counters over an OpenMetrics endpoint
//! (`GET /metrics`), for node agents that are scraped rather than read from files. The
//! encoding is the `prometheus-client` crate's; the server is hyper's HTTP/1 on the recorder's
//! tokio runtime. Bound to loopback unless an address says otherwise.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::bpf::{RefusalAction, RefusalUse, TargetSlot};
use crate::exit::ExitCode;

/// Where to serve: `PORT` (loopback), `HOST:PORT` or `[V6]:PORT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsAddr(pub SocketAddr);

impl FromStr for MetricsAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(port) = s.parse::<u16>() {
            return Ok(Self(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)));
        }
        s.parse::<SocketAddr>().map(Self).map_err(|_| {
            format!("{s:?} is not PORT or HOST:PORT (an IP address, e.g. 127.0.0.1:9464)")
        })
    }
}

/// The endpoint could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("--metrics {addr}: cannot listen there: {source}")]
pub struct MetricsError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// The OS error.
    pub source: std::io::Error,
}

impl MetricsError {
    /// 77 when binding needs privileges, 74 otherwise (in use, not this host's address).
    pub fn exit_code(&self) -> ExitCode {
        match self.source.kind() {
            std::io::ErrorKind::PermissionDenied => ExitCode::NO_PERM,
            _ => ExitCode::IO,
        }
    }
}

/// Who a counter is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    /// The target's cgroup, relative to the cgroup v2 mount.
    cgroup: String,
    /// The container's name, empty for a cgroup target.
    container: String,
}

/// One refused syscall of one target.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    cgroup: String,
    container: String,
    syscall: String,
    arch: String,
    action: String,
}

/// One recorded target as the metrics name it.
pub struct MetricsTarget<'a> {
    /// Its slot in the kernel program.
    pub slot: TargetSlot,
    /// Its cgroup, relative to the mount.
    pub cgroup: &'a str,
    /// Its container's name, if any.
    pub container: &'a str,
    /// Calls counted so far (workload and runtime init).
    pub calls: u64,
}

/// The counters, shared between the recorder (which updates them) and the server.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    calls: Family<TargetLabels, Counter>,
    refused: Family<RefusalLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty counters.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("agent_audit");
        let calls = Family::<TargetLabels, Counter>::default();
        let refused = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "calls",
            "Syscalls the target made (entered), runtime init included",
            calls.clone(),
        );
        registry.register(
            "refused_calls",
            "Syscalls the target's seccomp filter refused (never ran)",
            refused.clone(),
        );
        Self {
            registry: Arc::new(registry),
            calls,
            refused,
        }
    }

    /// Brings the counters up to the kernel's counts (they only grow while a target lives).
    pub fn update(&self, targets: &[MetricsTarget<'_>], refusals: &[RefusalUse]) {
        for t in targets {
            let labels = TargetLabels {
                cgroup: t.cgroup.to_string(),
                container: t.container.to_string(),
            };
            raise(&self.calls.get_or_create(&labels), t.calls);
            let mut refused: std::collections::BTreeMap<(String, String, &str), u64> =
                std::collections::BTreeMap::new();
            for r in refusals.iter().filter(|r| r.slot == t.slot) {
                let name = r
                    .arch
                    .syscall_name(r.nr)
                    .map_or_else(|| format!("#{}", r.nr), str::to_owned);
                let key = (name, r.arch.scmp_name().to_string(), action_name(r.action));
                let sum = refused.entry(key).or_default();
                *sum = sum.saturating_add(r.count);
            }
            for ((syscall, arch, action), count) in refused {
                let labels = RefusalLabels {
                    cgroup: t.cgroup.to_string(),
                    container: t.container.to_string(),
                    syscall,
                    arch,
                    action: action.to_string(),
                };
                raise(&self.refused.get_or_create(&labels), count);
            }
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Listens on `addr` and serves `GET /metrics` (anything else: 404) on the current tokio
    /// runtime until it ends.
    pub async fn serve(&self, addr: SocketAddr) -> Result<SocketAddr, MetricsError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| MetricsError { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| MetricsError { addr, source })?;
        let metrics = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let metrics = metrics.clone();
                        async move { Ok::<_, std::convert::Infallible>(respond(&metrics, &req)) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await
                    {
                        tracing::debug!("metrics connection: {e}");
                    }
                });
            }
        });
        Ok(bound)
    }
}

/// OpenMetrics' content type.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn respond<B>(
    metrics: &Metrics,
    req: &hyper::Request<B>,
) -> hyper::Response<http_body_util::Full<hyper::body::Bytes>> {
    let found = req.method() == hyper::Method::GET && req.uri().path() == "/metrics";
    let (status, content_type, body) = if found {
        (hyper::StatusCode::OK, CONTENT_TYPE, metrics.encode())
    } else {
        (
            hyper::StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "agent-audit serves GET /metrics only\n".to_string(),
        )
    };
    let mut response = hyper::Response::new(http_body_util::Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// Raises a counter to `total` (a counter never goes down).
fn raise(counter: &Counter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

fn action_name(action: RefusalAction) -> &'static str {
    match action {
        RefusalAction::Errno => "errno",
        RefusalAction::Trap => "trap",
        RefusalAction::Kill => "kill",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::{FilterOrigin, RefusalUse};
    use crate::syscalls::Arch;

    #[test]
    fn a_bare_port_binds_loopback_and_an_address_is_taken_as_given() {
        assert_eq!(
            "9464".parse::<MetricsAddr>().unwrap().0,
            "127.0.0.1:9464".parse().unwrap()
        );
        assert_eq!(
            "0.0.0.0:80".parse::<MetricsAddr>().unwrap().0,
            "0.0.0.0:80".parse().unwrap()
        );
        assert!("[::1]:9".parse::<MetricsAddr>().is_ok());
        let err = "localhost:9464".parse::<MetricsAddr>().unwrap_err();
        assert!(err.contains("not PORT or HOST:PORT"), "{err}");
    }

    #[test]
    fn counters_follow_the_kernel_counts_per_target_and_syscall() {
        let metrics = Metrics::new();
        let slot = TargetSlot::for_tests(3);
        let mkdir = Arch::X86_64.syscall_nr("mkdir").unwrap();
        let refusal = |count| RefusalUse {
            slot,
            arch: Arch::X86_64,
            nr: mkdir,
            comm: "sh".into(),
            root: false,
            runtime_init: false,
            action: crate::bpf::RefusalAction::Errno,
            origin: FilterOrigin::Runtime,
            count,
            first_ns: 0,
            last_ns: 0,
        };
        let target = MetricsTarget {
            slot,
            cgroup: "docker/abc",
            container: "agent",
            calls: 40,
        };
        metrics.update(std::slice::from_ref(&target), &[refusal(2)]);
        metrics.update(&[target], &[refusal(5)]);
        let text = metrics.encode();
        assert!(
            text.contains(
                "agent_audit_refused_calls_total{cgroup=\"docker/abc\",container=\"agent\",\
                 syscall=\"mkdir\",arch=\"SCMP_ARCH_X86_64\",action=\"errno\"} 5"
            ),
            "{text}"
        );
        assert!(
            text.contains("agent_audit_calls_total{cgroup=\"docker/abc\",container=\"agent\"} 40"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
