use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::bpf::{AttachMode, CounterOptions};
use crate::cgroup::CgroupV2Mount;
use crate::exit::ExitCode;
use crate::kube::KubeletCgroups;
use crate::record::{self, OutputSpec, RecordOptions};
use crate::target::TargetSpec;
use crate::Error;

use super::seconds::{DURATION, INTERVAL};

/// Arguments of `record`.
#[derive(Debug, Args)]
#[command(
    after_help = "Targets may be repeated and mixed; each gets its own allowlist. Recording \
                  stops on SIGINT/SIGTERM, at --duration, or when every target's cgroup is gone \
                  (its container stopped); the final files are always written first."
)]
pub struct RecordArgs {
    /// cgroup v2 to watch (and every cgroup below it): absolute, or relative to the cgroup2
    /// mount (e.g. /docker/<id> as shown in /proc/PID/cgroup).
    #[arg(long = "cgroup", value_name = "PATH")]
    cgroups: Vec<PathBuf>,
    /// cgroup v2 id to watch (the inode number of its directory).
    #[arg(long = "cgroup-id", value_name = "N")]
    cgroup_ids: Vec<u64>,
    /// Watch the cgroup of this process.
    #[arg(long = "pid", value_name = "PID")]
    pids: Vec<u32>,
    /// Watch a container, by name or id: running now (Docker, then Podman, then runc, unless
    /// --engine-socket or DOCKER_HOST names the engine), or with --wait, from its next start
    /// (where its cgroup will appear is asked of its engine).
    #[arg(long = "container", value_name = "NAME|ID")]
    containers: Vec<String>,
    /// The engine of --container.
    #[command(flatten)]
    engine: super::EngineArgs,
    /// Watch every cgroup matching PATTERN (relative to the cgroup2 mount; wildcards * and ?
    /// in the last component only, e.g. 'docker/*' or 'system.slice/docker-*.scope').
    #[arg(long = "cgroup-glob", value_name = "PATTERN")]
    globs: Vec<String>,
    /// Watch every container of this Kubernetes pod (by UID), one allowlist per container:
    /// the kubelet's cgroup layout (systemd or cgroupfs driver, any QoS class) is resolved to
    /// the pattern `<pod cgroup>/*`. With --wait, containers created later are recorded from
    /// their first syscall.
    #[arg(long = "pod", value_name = "UID")]
    pods: Vec<String>,
    /// Watch every pod on this node, one allowlist per pod (all its containers); with --wait,
    /// pods created later too (the DaemonSet in deploy/kubernetes/).
    #[arg(long)]
    kubepods: bool,
    /// The kubelet's --cgroup-root, relative to the cgroup v2 mount.
    #[arg(long, value_name = "PATH", default_value = "/")]
    kubelet_cgroup_root: String,
    /// With --cgroup-glob: also record matching cgroups created from now on, from their first
    /// syscall (the kernel program claims them before any task in them runs user code), and
    /// exit once every cgroup picked up is gone.
    #[arg(long)]
    wait: bool,
    /// Allowlist file for a single target.
    #[arg(long, short = 'o', value_name = "FILE", conflicts_with = "out_dir")]
    out: Option<PathBuf>,
    /// Directory for one `<name>.allowlist.json` per target.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Rewrite the allowlist files this often (seconds, 0.1 to 86400; default 5). Not with
    /// --out - (or a FIFO): a stream cannot be rewritten, so only the final allowlist goes
    /// there.
    #[arg(long, value_name = "SECS", value_parser = INTERVAL.parser())]
    interval: Option<Duration>,
    /// Stop after this many seconds (0.001 to 31536000, i.e. 365 days).
    #[arg(long, value_name = "SECS", value_parser = DURATION.parser())]
    duration: Option<Duration>,
    /// How to attach to sys_enter.
    #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
    attach: AttachMode,
    /// With --wait: keep waiting for new matching cgroups after every one picked up is gone
    /// (a node-wide daemon such as the Kubernetes DaemonSet); SIGINT/SIGTERM or --duration end
    /// it.
    #[arg(long, requires = "wait")]
    keep_waiting: bool,
    /// Write this file (the recorder's pid and the readiness line) once the kernel program is
    /// attached and armed; it is removed when recording ends. `agent-audit ready FILE` checks
    /// it (a health check for containers).
    #[arg(long, value_name = "FILE")]
    ready_file: Option<PathBuf>,
    /// Count syscalls only, without attributing each to the program that made it (the
    /// cheapest path inside a target; the allowlist then has no `programs`).
    #[arg(long)]
    no_attribution: bool,
    /// Do not record the values of the tracked syscall arguments (socket families, clone
    /// flags, ioctl requests, …): the allowlist then has no `args`, and profiles fall back to
    /// argument rules at least as strict as Docker's default.
    #[arg(long)]
    no_args: bool,
    /// Do not count the calls the target's seccomp filter refused: no `sys_exit` and
    /// `sched_switch` programs (which run for every task on the host), and no `refused` in
    /// the allowlist.
    #[arg(long)]
    no_refusals: bool,
    /// Serve each target's call and refusal counters over OpenMetrics at
    /// http://ADDR/metrics while recording: PORT (bound to 127.0.0.1) or IP:PORT (any other
    /// address, such as 0.0.0.0:9464, exposes them beyond this host: only when told to).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<crate::metrics::MetricsAddr>,
    /// Pin the kernel programs, their links and maps in DIR (on bpffs, such as
    /// /sys/fs/bpf/agent-audit; created if missing, bpffs mounted at /sys/fs/bpf if it is
    /// not): they go on counting after this recorder ends, and the next `record --pin-dir
    /// DIR` adopts them — every call made meanwhile and every matching cgroup born meanwhile
    /// are in its allowlists. Another build's pins are refused (exit 75); `agent-audit unpin
    /// DIR` removes them. Needs Linux 5.15.
    #[arg(long, value_name = "DIR")]
    pin_dir: Option<PathBuf>,
}

impl RecordArgs {
    pub(super) fn execute(self) -> Result<ExitCode, Error> {
        let mut targets: Vec<TargetSpec> = Vec::new();
        targets.extend(self.cgroups.into_iter().map(TargetSpec::Cgroup));
        targets.extend(self.cgroup_ids.into_iter().map(TargetSpec::CgroupId));
        targets.extend(self.pids.into_iter().map(TargetSpec::Pid));
        let engine = self.engine.socket();
        targets.extend(
            self.containers
                .into_iter()
                .map(|name| TargetSpec::Container {
                    name,
                    engine: engine.clone(),
                }),
        );
        let mut globs = self.globs;
        if !self.pods.is_empty() || self.kubepods {
            let mount = CgroupV2Mount::discover()?;
            let kubelet = KubeletCgroups::new(&mount, &self.kubelet_cgroup_root);
            for uid in &self.pods {
                globs.push(kubelet.pod_containers_pattern(uid)?);
            }
            if self.kubepods {
                globs.extend(kubelet.all_pods_patterns()?);
            }
        }
        let single = targets.len() <= 1 && globs.is_empty();
        let output = match (self.out, self.out_dir) {
            (Some(f), _) => OutputSpec::File(f),
            (None, Some(d)) => OutputSpec::Dir(d),
            (None, None) if single => OutputSpec::File("allowlist.json".into()),
            (None, None) => OutputSpec::Dir(".".into()),
        };
        record::record(RecordOptions {
            targets,
            globs,
            wait: self.wait,
            keep_waiting: self.keep_waiting,
            ready_file: self.ready_file,
            output,
            interval: self.interval,
            duration: self.duration,
            counter: CounterOptions {
                attach: self.attach,
                attribution: !self.no_attribution,
                args: !self.no_args,
                refusals: !self.no_refusals,
            },
            metrics: self.metrics,
            pin_dir: self.pin_dir,
        })?;
        Ok(ExitCode::OK)
    }
}
