//! `agent-audit record`: the daemon that watches one or more existing cgroups and keeps each
//! one's allowlist file current until the target goes away, a signal arrives, or time is up.

mod daemon;
mod lookups;
mod outputs;
pub mod recording;
mod waiting;

use std::path::PathBuf;
use std::time::Duration;

use crate::bpf::pin::PinDir;
use crate::bpf::{BpfError, CounterOptions, SyscallCounter};
use crate::cgroup::CgroupV2Mount;
use crate::engine::{AwaitedContainer, EngineSocket};
use crate::privileges;
use crate::ready::ReadyFile;
use crate::shell::status;
use crate::signals::StopSignals;
use crate::target::{CgroupTarget, TargetError, TargetSpec};
use crate::watch::{CgroupGlob, GlobError};
use crate::Error;
pub use outputs::{OutputPlanError, OutputSpec, DEFAULT_INTERVAL};
use recording::Recording;
use waiting::{Waiting, Watch};

/// Options of `record`.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    /// What to watch.
    pub targets: Vec<TargetSpec>,
    /// `--cgroup-glob` patterns: matching cgroups that exist now are targets.
    pub globs: Vec<String>,
    /// Also pick up cgroups matching `globs` as they are created, from their first syscall;
    /// stop once every target picked up is gone.
    pub wait: bool,
    /// With `wait`: keep waiting for new cgroups after every one picked up is gone (a
    /// node-wide daemon); only a signal or `duration` ends it.
    pub keep_waiting: bool,
    /// Written once armed, removed at the end (`--ready-file`).
    pub ready_file: Option<PathBuf>,
    /// Where to write.
    pub output: OutputSpec,
    /// Snapshot period as given (`--interval`); [`DEFAULT_INTERVAL`] when `None`, or no
    /// snapshots at all when the output is a stream (standard output, a FIFO).
    pub interval: Option<Duration>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// How the kernel program is loaded.
    pub counter: CounterOptions,
    /// Serve per-target counters over OpenMetrics here (`--metrics ADDR`).
    pub metrics: Option<crate::metrics::MetricsAddr>,
    /// Pin the programs and maps there, adopting an earlier recorder's (`--pin-dir`).
    pub pin_dir: Option<PathBuf>,
}

/// Why recording stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Every target cgroup was removed.
    TargetsGone,
    /// A signal that asks the process to end (see [`crate::signals`]).
    Signal,
    /// `--duration` elapsed.
    Duration,
}

/// Runs the daemon to completion; every target's final file is written before it returns.
pub fn record(opts: RecordOptions) -> Result<StopReason, Error> {
    // Everything that can be checked without the kernel is checked first, so a typo never
    // costs a half-started recording.
    let plan = outputs::plan_outputs(&opts)?;
    if let Some(path) = &opts.ready_file {
        ReadyFile::check_writable(path)?;
    }
    privileges::check_bpf_privileges()?;
    // Signal handlers go in before anything is attached, so that a SIGTERM arriving at any
    // point after this still ends with the final files written.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Io)?;
    let _enter = runtime.enter();
    let signals = StopSignals::install().map_err(Error::Io)?;
    crate::signals::ignore_file_size_signal();
    let mount = CgroupV2Mount::discover()?;
    let (targets, watches) = resolve_targets(&mount, &opts)?;
    // Listening before anything is attached: an address in use fails the start, not later.
    let metrics = match opts.metrics {
        Some(addr) => {
            let metrics = crate::metrics::Metrics::new();
            let bound = runtime.block_on(metrics.serve(addr.0))?;
            status!("agent-audit: metrics at http://{bound}/metrics");
            Some(metrics)
        }
        None => None,
    };

    let mut counter = match &opts.pin_dir {
        Some(dir) => {
            SyscallCounter::load_pinned(opts.counter, PinDir::open(dir).map_err(BpfError::Pin)?)?
        }
        None => SyscallCounter::load(opts.counter)?,
    };
    if counter.adopted() {
        status!(
            "agent-audit: adopted the programs pinned in {}: counts carry on",
            opts.pin_dir
                .as_deref()
                .unwrap_or_else(|| std::path::Path::new(""))
                .display()
        );
    } else {
        count_capability_checks(&mut counter);
        counter.pin_links()?;
    }
    let snapshots = plan.snapshots;
    let mut outputs = plan;
    let mut active = Vec::new();
    for target in targets {
        let out = outputs.next_path(&target)?;
        active.push(Recording::start(&mut counter, target, out)?);
    }
    let waiting = match opts.wait {
        true => Some(Waiting::arm(
            &mut counter,
            mount,
            watches,
            outputs,
            &active,
        )?),
        false => None,
    };
    // Scripts wait for this line (or the first snapshot) before starting the workload.
    let ready_line = ready_line(active.len(), &counter, waiting.as_ref());
    status!("{ready_line}");
    let _ready = opts
        .ready_file
        .as_deref()
        .map(|path| ReadyFile::create(path, &ready_line))
        .transpose()?;
    runtime.block_on(daemon::watch(
        &mut counter,
        active,
        waiting,
        signals,
        snapshots,
        &opts,
        metrics.as_ref(),
    ))
}

/// Also counts each target's capability checks (`fexit/cap_capable`), for the minimal
/// capability set `profile` emits. A kernel without BPF trampolines still records syscalls:
/// the allowlists then have no `capabilities` section, and `profile` says the set is unknown.
pub(crate) fn count_capability_checks(counter: &mut SyscallCounter) {
    if let Err(e) = counter.attach_capability_checks() {
        tracing::warn!("capability checks are not recorded: {e}");
    }
}

/// The targets that exist now, and the parents `--wait` arms (`--cgroup-glob` patterns, and a
/// `--container` that does not run yet).
fn resolve_targets(
    mount: &CgroupV2Mount,
    opts: &RecordOptions,
) -> Result<(Vec<CgroupTarget>, Vec<Watch>), Error> {
    let mut targets = Vec::new();
    let mut watches = Vec::new();
    for spec in &opts.targets {
        match (CgroupTarget::resolve(mount, spec), spec) {
            (Ok(t), TargetSpec::Container { name, engine }) if opts.wait && opts.keep_waiting => {
                // Running now; its later starts are recorded too, into the same file.
                targets.push(t);
                watches.push(container_watch(mount, name, engine)?);
            }
            (Ok(t), _) => targets.push(t),
            // A container that does not run yet is exactly what --wait is for.
            (Err(TargetError::Container(_)), TargetSpec::Container { name, engine })
                if opts.wait =>
            {
                watches.push(container_watch(mount, name, engine)?);
            }
            (Err(e), _) => return Err(e.into()),
        }
    }
    for pattern in &opts.globs {
        let glob = CgroupGlob::parse(mount, pattern)?;
        targets.extend(
            glob.existing(mount)
                .into_iter()
                .map(|c| CgroupTarget::for_glob(c, &glob.pattern)),
        );
        watches.push(Watch {
            glob,
            container: None,
        });
    }
    warn_if_recording_self(mount, &targets);
    if targets.is_empty() && !opts.wait {
        return Err(GlobError::NothingMatches(opts.globs.clone()).into());
    }
    Ok((targets, watches))
}

/// The watch for the cgroups of container `name`'s starts.
fn container_watch(
    mount: &CgroupV2Mount,
    name: &str,
    engine: &EngineSocket,
) -> Result<Watch, Error> {
    let awaited = AwaitedContainer::new(name, engine).map_err(TargetError::from)?;
    Ok(Watch {
        glob: CgroupGlob::parse_runtime_layout(mount, &awaited.cgroup.pattern)?,
        container: Some(awaited),
    })
}

/// The line scripts wait for: how many targets, the attach type, and what `--wait` armed for.
fn ready_line(targets: usize, counter: &SyscallCounter, waiting: Option<&Waiting>) -> String {
    format!(
        "agent-audit: recording {targets} target(s) via {}{}",
        counter.attach_kind(),
        match waiting {
            Some(w) => format!("; armed for new cgroups matching {}", w.armed_for()),
            None => String::new(),
        }
    )
}

/// A target at or above agent-audit's own cgroup (for example `--pid` of a process in the root
/// cgroup) counts agent-audit's own syscalls too: say so rather than refuse, since recording
/// a whole host is sometimes what is wanted.
fn warn_if_recording_self(mount: &CgroupV2Mount, targets: &[CgroupTarget]) {
    let Ok(own) = mount.resolve_pid(std::process::id()) else {
        return;
    };
    for t in targets {
        let rel = t.cgroup.rel.trim_end_matches('/');
        if own.rel == t.cgroup.rel || own.rel.starts_with(&format!("{rel}/")) {
            status!(
                "agent-audit: warning: target {} ({}) contains agent-audit itself: its own \
                 syscalls will be counted too",
                t.info.spec,
                t.cgroup.rel
            );
        }
    }
}
