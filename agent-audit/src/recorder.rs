//! `agent-audit record`: the daemon that watches one or more existing cgroups and keeps each
//! one's allowlist file current until the target goes away, a signal arrives, or time is up.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use crate::bpf::{AttachMode, SyscallCounter};
use crate::cgroup::CgroupV2Mount;
use crate::fsutil;
use crate::privileges;
use crate::progress::ProgressLine;
use crate::recording::Recording;
use crate::target::{CgroupTarget, TargetSpec};
use crate::Error;

/// How often target cgroups are checked for removal and the progress line redrawn.
const POLL: Duration = Duration::from_millis(200);

/// Where allowlists go.
#[derive(Clone, Debug)]
pub enum OutputSpec {
    /// One file (only with one target).
    File(PathBuf),
    /// A directory: one `<label>.allowlist.json` per target.
    Dir(PathBuf),
}

/// Options of `record`.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    /// What to watch (at least one).
    pub targets: Vec<TargetSpec>,
    /// Where to write.
    pub output: OutputSpec,
    /// Snapshot period.
    pub interval: Duration,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Attach type.
    pub attach: AttachMode,
}

/// Why recording stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Every target cgroup was removed.
    TargetsGone,
    /// SIGINT or SIGTERM.
    Signal,
    /// `--duration` elapsed.
    Duration,
}

/// Runs the daemon to completion; every target's final file is written before it returns.
pub fn record(opts: RecordOptions) -> Result<StopReason, Error> {
    // Everything that can be checked without the kernel is checked first, so a typo never
    // costs a half-started recording.
    let outputs = plan_outputs(&opts)?;
    privileges::check_bpf_privileges()?;
    let mount = CgroupV2Mount::discover()?;
    let targets = opts
        .targets
        .iter()
        .map(|spec| CgroupTarget::resolve(&mount, spec))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = outputs.finish(&targets);

    let mut counter = SyscallCounter::load(opts.attach)?;
    let mut active = Vec::new();
    for (target, out) in targets.into_iter().zip(outputs) {
        active.push(Recording::start(&mut counter, target, out)?);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Io)?;
    runtime.block_on(watch(&mut counter, active, &opts))
}

async fn watch(
    counter: &mut SyscallCounter,
    mut active: Vec<Recording>,
    opts: &RecordOptions,
) -> Result<StopReason, Error> {
    let mut sigint = signal(SignalKind::interrupt()).map_err(Error::Io)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(Error::Io)?;
    let mut poll = tokio::time::interval(POLL);
    let mut flush = tokio::time::interval(opts.interval);
    flush.tick().await; // the first tick is immediate
    let deadline = opts.duration.map(|d| tokio::time::Instant::now() + d);
    let deadline_sleep = tokio::time::sleep_until(deadline.unwrap_or_else(far_future));
    tokio::pin!(deadline_sleep);
    let mut progress = ProgressLine::new();

    let reason = loop {
        tokio::select! {
            _ = sigint.recv() => break StopReason::Signal,
            _ = sigterm.recv() => break StopReason::Signal,
            _ = &mut deadline_sleep, if deadline.is_some() => break StopReason::Duration,
            _ = flush.tick() => {
                for r in &mut active {
                    r.write(counter, false)?;
                }
            }
            _ = poll.tick() => {
                counter.flush_logs();
                // A container's cgroup disappears when it stops: finish its file now.
                let mut i = 0;
                while i < active.len() {
                    if active[i].target.cgroup.exists() {
                        i += 1;
                        continue;
                    }
                    let mut r = active.swap_remove(i);
                    progress.clear();
                    finish(counter, &mut r)?;
                    counter.remove_target(r.slot)?;
                }
                if active.is_empty() {
                    break StopReason::TargetsGone;
                }
                for r in &mut active {
                    r.refresh(counter)?;
                }
                let distinct: u64 = active.iter().map(|r| r.last.syscalls.len() as u64).sum();
                let calls: u64 = active.iter().map(|r| r.last.total()).sum();
                progress.update(active.len(), distinct, calls);
            }
        }
    };
    progress.clear();
    for r in &mut active {
        finish(counter, r)?;
    }
    Ok(reason)
}

fn finish(counter: &SyscallCounter, r: &mut Recording) -> Result<(), Error> {
    let list = r.write(counter, true)?;
    tracing::info!(
        target = %r.target.cgroup.rel,
        distinct = list.totals.distinct,
        calls = list.totals.calls,
        out = %r.out.display(),
        "wrote final allowlist"
    );
    eprintln!(
        "agent-audit: {}: {} distinct syscalls, {} calls -> {}",
        r.target.label(),
        list.totals.distinct,
        list.totals.calls,
        r.out.display()
    );
    Ok(())
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

/// Output paths, checked for writability before anything is attached.
struct OutputPlan(OutputSpec);

fn plan_outputs(opts: &RecordOptions) -> Result<OutputPlan, Error> {
    if opts.targets.is_empty() {
        return Err(Error::Usage(
            "no target: give --cgroup, --cgroup-id, --pid or --container".into(),
        ));
    }
    match &opts.output {
        OutputSpec::File(path) => {
            if opts.targets.len() > 1 {
                return Err(Error::Usage(format!(
                    "{} targets but one --out file: use --out-dir DIR for several targets",
                    opts.targets.len()
                )));
            }
            fsutil::ensure_dir_writable(fsutil::parent_dir(path))?;
        }
        OutputSpec::Dir(dir) => fsutil::ensure_dir_writable(dir)?,
    }
    Ok(OutputPlan(opts.output.clone()))
}

impl OutputPlan {
    /// One path per target: `<label>.allowlist.json`, disambiguated by cgroup id on collision.
    fn finish(self, targets: &[CgroupTarget]) -> Vec<PathBuf> {
        match self.0 {
            OutputSpec::File(path) => vec![path],
            OutputSpec::Dir(dir) => {
                let mut seen = HashSet::new();
                targets
                    .iter()
                    .map(|t| {
                        let mut name = sanitize(&t.label());
                        if !seen.insert(name.clone()) {
                            name = format!("{name}-{}", t.cgroup.id);
                        }
                        dir.join(format!("{name}.allowlist.json"))
                    })
                    .collect()
            }
        }
    }
}

/// Keeps file names to `[A-Za-z0-9._-]`.
fn sanitize(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_start_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe() {
        assert_eq!(sanitize("docker-abc.scope"), "docker-abc.scope");
        assert_eq!(sanitize("../etc/x y"), "_etc_x_y");
    }

    #[test]
    fn one_file_for_several_targets_is_a_usage_error() {
        let opts = RecordOptions {
            targets: vec![TargetSpec::Pid(1), TargetSpec::Pid(2)],
            output: OutputSpec::File(PathBuf::from("x.json")),
            interval: Duration::from_secs(5),
            duration: None,
            attach: AttachMode::Auto,
        };
        let err = plan_outputs(&opts).err().expect("must fail");
        assert!(err.to_string().contains("--out-dir"), "{err}");
        assert_eq!(err.exit_code(), crate::exit::ExitCode::USAGE);
    }
}
