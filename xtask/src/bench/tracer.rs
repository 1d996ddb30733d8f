//! The tracers compared on the timed loops: each is started, confirmed attached, left alone
//! while the loops run, then stopped. The loops always run in the same cgroup; only what is
//! attached, and what it targets, differs between cases.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

use super::env::{self, BenchEnv, EXTRA_TARGETS};

/// What is attached while the loops run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracer {
    /// Nothing: the baseline every overhead is measured from.
    None,
    /// agent-audit's empty tp_btf program: the kernel's floor.
    Floor,
    /// `agent-audit record`, targeting the loop's cgroup (`inside`) or an idle one, plus
    /// `targets - 1` other idle cgroups.
    AgentAudit {
        attach: &'static str,
        inside: bool,
        targets: usize,
        /// Per-program attribution on (the default) or `--no-attribution`.
        attribution: bool,
    },
    /// A bpftrace one-liner counting the loop cgroup's syscalls by number.
    Bpftrace,
    /// bpftrace's cheapest useful program: the same cgroup filter with an empty body.
    BpftraceFilter,
    /// The same filter-only program on the `capability:cap_capable` tracepoint, for a cgroup
    /// the load is not in: what any capability tracer pays for every check on the host.
    BpftraceCapabilityFilter,
}

impl Tracer {
    /// Stable name used in results.
    pub fn name(self) -> String {
        match self {
            Tracer::None => "none".into(),
            Tracer::Floor => "empty-program".into(),
            Tracer::AgentAudit {
                attach,
                inside,
                targets,
                attribution,
            } => format!(
                "agent-audit-{attach}{}-{}-{targets}",
                if attribution { "" } else { "-noattr" },
                if inside { "inside" } else { "outside" }
            ),
            Tracer::Bpftrace => "bpftrace".into(),
            Tracer::BpftraceFilter => "bpftrace-filter-only".into(),
            Tracer::BpftraceCapabilityFilter => "bpftrace-capability-filter-only".into(),
        }
    }
}

/// A started tracer.
pub struct Running {
    tracer: Tracer,
    child: Option<Child>,
    /// Where agent-audit writes (a file for one target, a directory for several).
    pub output: Option<PathBuf>,
}

impl Running {
    pub fn start(tracer: Tracer, env: &BenchEnv) -> Result<Self> {
        let log =
            |name: &str| -> Result<File> { Ok(File::create(env.out.join(format!("{name}.log")))?) };
        let child = match tracer {
            Tracer::None => None,
            Tracer::Floor => {
                let mut child = Command::new(env.bin.join("bench-floor"))
                    .stdout(Stdio::piped())
                    .stderr(log("bench-floor")?)
                    .spawn()
                    .context("cannot start bench-floor")?;
                // It prints "attached" only once the program is attached.
                let line = env::first_line(&mut child)?;
                if line != "attached" {
                    let _ = child.kill();
                    bail!("bench-floor failed (see target/bench/bench-floor.log)");
                }
                Some(child)
            }
            Tracer::AgentAudit {
                attach,
                inside,
                targets,
                ..
            } => {
                let first = if inside {
                    env.loop_cgroup.clone()
                } else {
                    env.idle_cgroup.clone()
                };
                let mut cgroups = vec![first];
                cgroups.extend((1..targets.min(EXTRA_TARGETS + 1)).map(|i| env.extra_target(i)));
                let out = env.out.join(tracer.name());
                let out = if targets == 1 {
                    out.with_extension("allowlist.json")
                } else {
                    out
                };
                return record(env, tracer, attach, &cgroups, &out);
            }
            Tracer::Bpftrace | Tracer::BpftraceFilter | Tracer::BpftraceCapabilityFilter => {
                let body = if tracer == Tracer::Bpftrace {
                    "@[args->id] = count();"
                } else {
                    ""
                };
                let (probe, cgroup) = if tracer == Tracer::BpftraceCapabilityFilter {
                    ("capability:cap_capable", &env.idle_cgroup)
                } else {
                    ("raw_syscalls:sys_enter", &env.loop_cgroup)
                };
                let program = format!(
                    "tracepoint:{probe} /cgroup == cgroupid(\"{}\")/ {{ {body} }}",
                    cgroup.display()
                );
                let child = Command::new("bpftrace")
                    .arg("-e")
                    .arg(program)
                    .stdout(log("bpftrace")?)
                    .stderr(Stdio::null())
                    .spawn()
                    .context("cannot start bpftrace")?;
                env::wait_attached(child.id(), 60_000)?;
                // bpftrace opens one perf event per CPU; give it time to attach the rest.
                std::thread::sleep(std::time::Duration::from_millis(500));
                Some(child)
            }
        };
        Ok(Self {
            tracer,
            child,
            output: None,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the tracer the way a user would (SIGINT for bpftrace, SIGTERM otherwise) and
    /// waits for it, so its final output is written.
    pub fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let signal = if matches!(
            self.tracer,
            Tracer::Bpftrace | Tracer::BpftraceFilter | Tracer::BpftraceCapabilityFilter
        ) {
            libc::SIGINT
        } else {
            libc::SIGTERM
        };
        // SAFETY: kill(2) on our own child, which has not been waited for yet (std's u32 is the
        // kernel's pid_t).
        unsafe { libc::kill(child.id().cast_signed(), signal) };
        let status = child.wait()?;
        if matches!(self.tracer, Tracer::AgentAudit { .. }) && !status.success() {
            bail!("{} exited with {status}", self.tracer.name());
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `agent-audit record` on `cgroups`, writing to the file `out` for one target or the
/// directory `out` for several, and waits until its program is attached.
pub fn record(
    env: &BenchEnv,
    tracer: Tracer,
    attach: &str,
    cgroups: &[PathBuf],
    out: &Path,
) -> Result<Running> {
    let mut cmd = Command::new(env.bin.join("agent-audit"));
    cmd.args(["record", "--attach", &attach.replace('_', "-")]);
    if let Tracer::AgentAudit {
        attribution: false, ..
    } = tracer
    {
        cmd.arg("--no-attribution");
    }
    for cgroup in cgroups {
        cmd.arg("--cgroup").arg(env.rel(cgroup));
    }
    if cgroups.len() == 1 {
        cmd.arg("--out").arg(out);
    } else {
        let _ = std::fs::remove_dir_all(out);
        std::fs::create_dir_all(out)?;
        cmd.arg("--out-dir").arg(out);
    }
    let log_path = env.out.join(format!("{}.log", tracer.name()));
    let log = File::create(&log_path)?;
    let child = cmd
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start agent-audit record")?;
    let pid = child.id();
    let running = Running {
        tracer,
        child: Some(child),
        output: Some(out.to_path_buf()),
    };
    env::wait_attached(pid, 20_000)?;
    // Attached is not yet counting: the targets are added after every program is attached,
    // and agent-audit says so on stderr.
    env::wait_for_line(pid, &log_path, "agent-audit: recording ", 20_000)?;
    Ok(running)
}

/// How many `getppid` calls agent-audit counted for the loop's cgroup: proof that the
/// "inside" cases really measured a recorded loop.
pub fn counted_getppid(output: &std::path::Path) -> Result<u64> {
    let file = if output.is_dir() {
        output.join("loop.allowlist.json")
    } else {
        output.to_path_buf()
    };
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?,
    )?;
    Ok(json["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["name"] == "getppid")
        .filter_map(|s| s["count"].as_u64())
        .sum())
}
