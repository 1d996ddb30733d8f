//! `agent-audit run -- CMD…`: records one command from its very first `execve`.
//!
//! A fresh cgroup is created and made a target before the command exists; the forked child
//! moves itself into that cgroup before it calls `execve`, so nothing the command does is
//! missed. The run ends when the command and every process it left behind have exited.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use crate::allowlist::Allowlist;
use crate::bpf::{CounterOptions, SyscallCounter};
use crate::capabilities::process::KeptCapabilities;
use crate::cgroup::{Cgroup, CgroupV2Mount};
use crate::fsutil;
use crate::launch::{self, Launch, LaunchError, Launched};
use crate::privileges;
use crate::progress::ProgressLine;
use crate::record::recording::Recording;
use crate::seccomp::SeccompProgram;
use crate::shell::status;
use crate::signals::{self, StopSignals};
use crate::target::CgroupTarget;
use crate::Error;

const POLL: Duration = Duration::from_millis(100);

/// Options of `run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Where the allowlist goes.
    pub out: PathBuf,
    /// How the kernel program is loaded.
    pub counter: CounterOptions,
    /// The command's working directory (default: ours).
    pub cwd: Option<PathBuf>,
}

/// How the run ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// The command's exit status; 128+N if signal N ended it.
    pub exit_status: i32,
    /// The allowlist written.
    pub allowlist: Allowlist,
}

/// Removes the run's cgroup however the run ends.
struct CgroupGuard(Cgroup);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if self.0.is_populated().unwrap_or(false) {
            let _ = self.0.kill_all();
            for _ in 0..50 {
                if !self.0.is_populated().unwrap_or(false) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Err(e) = self.0.remove() {
            tracing::warn!("{e}");
        }
    }
}

/// A command run in a fresh target cgroup under the recorder: shared by `run` and `verify`.
pub(crate) struct CommandSession {
    /// The loaded kernel program.
    pub counter: SyscallCounter,
    /// The command's target.
    pub recording: Recording,
    cgroup: Cgroup,
    _guard: CgroupGuard,
}

impl CommandSession {
    /// Checks privileges, creates the cgroup and makes it a target, before anything runs.
    pub(crate) fn prepare(
        command: &[String],
        out: PathBuf,
        counter_opts: CounterOptions,
    ) -> Result<Self, Error> {
        if command.is_empty() {
            return Err(Error::Usage("no command given: put it after `--`".into()));
        }
        privileges::check_bpf_privileges()?;
        let mount = CgroupV2Mount::discover()?;
        let mut counter = SyscallCounter::load_for_command(counter_opts)?;
        let cgroup =
            mount.create_child_of_self(&format!("agent-audit-run-{}", std::process::id()))?;
        let guard = CgroupGuard(cgroup.clone());
        let target = CgroupTarget::for_command(cgroup.clone(), command);
        let recording = Recording::start_command(&mut counter, target, out)?;
        Ok(Self {
            counter,
            recording,
            cgroup,
            _guard: guard,
        })
    }

    /// Runs the command (under `filter` when given, installed between fork and exec) until
    /// it and every process it left behind have exited; returns its exit status.
    pub(crate) fn run(
        &mut self,
        command: &[String],
        filter: Option<&SeccompProgram>,
        cwd: Option<&Path>,
    ) -> Result<i32, Error> {
        let start = Start {
            filter,
            capabilities: None,
        };
        self.run_limited(command, start, cwd, None)
            .map(|end| end.exit_status)
    }

    /// [`CommandSession::run`], started as `start` says, ended by `limit` when given: what is
    /// still running at its timeout, or after the grace period once the command itself has
    /// exited, is killed.
    pub(crate) fn run_limited(
        &mut self,
        command: &[String],
        start: Start<'_>,
        cwd: Option<&Path>,
        limit: Option<RunLimit>,
    ) -> Result<RunEnd, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Io)?;
        // Caught before the command starts: a signal sent as soon as it runs must not end
        // us before its file is written.
        let signals = {
            let _enter = runtime.enter();
            StopSignals::install().map_err(Error::Io)?
        };
        let child = spawn_in_cgroup(command, &self.cgroup, start, cwd)?;
        let end = runtime.block_on(async {
            let mut supervisor = Supervisor {
                cgroup: &self.cgroup,
                counter: &mut self.counter,
                recording: &mut self.recording,
                signals,
                poll: tokio::time::interval(POLL),
                progress: ProgressLine::new(),
            };
            supervisor.supervise(child, limit).await
        })?;
        self.recording.target.info.exit_status = Some(end.exit_status);
        let execs = self.counter.drain_execs();
        self.recording.note_execs(&execs);
        Ok(end)
    }
}

/// What the command starts under, besides its cgroup (see `launch`).
#[derive(Clone, Copy, Default)]
pub(crate) struct Start<'a> {
    /// The seccomp filter, installed between fork and exec.
    pub filter: Option<&'a SeccompProgram>,
    /// The capability sets are reduced to these first.
    pub capabilities: Option<&'a KeptCapabilities>,
}

/// The bound on a command's run (`verify --timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RunLimit {
    /// From the command's start: whatever of it is still running then is killed.
    pub timeout: Duration,
    /// Once the command itself has exited: how long the processes it left may take to exit
    /// on their own before they are killed (never past the timeout).
    pub grace: Duration,
}

/// How a command's run ended.
#[derive(Debug)]
pub(crate) struct RunEnd {
    /// The command's exit status; 128+N if signal N ended it (137 when the timeout did).
    pub exit_status: i32,
    /// The timeout passed with the command, or processes it left, still running.
    pub timed_out: bool,
    /// Processes the command started that were still running when the run was ended, each
    /// killed.
    pub survivors: Vec<Survivor>,
}

/// A process killed because it was still running when a limited run ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Survivor {
    /// Its pid.
    pub pid: u32,
    /// Its command line, or `[comm]` when it has none.
    pub command: String,
}

impl Survivor {
    /// Describes `pid` from /proc (before it is killed: afterwards there is nothing to read).
    pub(crate) fn of(pid: u32) -> Self {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let words: Vec<String> = cmdline
            .split(|&b| b == 0)
            .filter(|w| !w.is_empty())
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        let command = if words.is_empty() {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            format!("[{}]", comm.trim())
        } else {
            words.join(" ")
        };
        Self { pid, command }
    }
}

/// Runs the command under recording and writes its allowlist.
pub fn run(opts: RunOptions) -> Result<RunOutcome, Error> {
    fsutil::check_output(&opts.out)?;
    let started = std::time::Instant::now();
    let mut session = CommandSession::prepare(&opts.command, opts.out.clone(), opts.counter)?;
    crate::record::count_capability_checks(&mut session.counter);
    tracing::debug!(elapsed = ?started.elapsed(), "ready: target added");
    let exit_status = session.run(&opts.command, None, opts.cwd.as_deref())?;
    tracing::debug!(elapsed = ?started.elapsed(), "command ended");
    // The command and everything it left are gone (its cgroup is empty): nothing more can be
    // counted, so the programs are detached, without waiting for the kernel to finish.
    session.counter.detach_without_waiting();
    let uses = session.counter.read_details()?;
    session.counter.warn_if_refusals_inexact();
    tracing::debug!(elapsed = ?started.elapsed(), "attribution read");
    let allowlist = session.recording.write(&session.counter, true, &uses)?;
    tracing::debug!(elapsed = ?started.elapsed(), "counters read, allowlist written");
    drop(session);
    tracing::debug!(elapsed = ?started.elapsed(), "program detached, cgroup removed");
    status!(
        "agent-audit: {} distinct syscalls, {} calls -> {} (command exited {exit_status})",
        allowlist.totals.distinct,
        allowlist.totals.calls,
        opts.out.display()
    );
    for p in &allowlist.left_cgroup {
        status!(
            "agent-audit: INCOMPLETE: pid {} ({}) left the command's cgroup; its calls after \
             that were not recorded (left_cgroup in the allowlist)",
            p.pid,
            p.program
        );
    }
    Ok(RunOutcome {
        exit_status,
        allowlist,
    })
}

pub use crate::launch::StartStage;

/// The command could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot run {command:?}: {stage} failed: {source}")]
pub struct SpawnError {
    /// argv[0].
    pub command: String,
    /// Which step failed.
    pub stage: StartStage,
    /// What the kernel said.
    pub source: std::io::Error,
}

impl SpawnError {
    /// 127 when the command does not exist, 126 when it could not be executed (as a shell
    /// says), 125 when a container engine could not start it (as `docker run` says), 74 when
    /// agent-audit could not put it into its cgroup.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        use crate::exit::ExitCode;
        match self.stage {
            StartStage::JoinCgroup => ExitCode::IO,
            StartStage::Exec if self.source.kind() == std::io::ErrorKind::NotFound => ExitCode(127),
            StartStage::Exec | StartStage::InstallFilter | StartStage::DropCapabilities => {
                ExitCode(126)
            }
            StartStage::ContainerStart => ExitCode(125),
        }
    }
}

/// Starts the command inside `cgroup`, as `start` says (see `launch`).
fn spawn_in_cgroup(
    command: &[String],
    cgroup: &Cgroup,
    start: Start<'_>,
    cwd: Option<&Path>,
) -> Result<Launched, Error> {
    // The PATH search happens here, in the parent: done by the child (execvp) it would try
    // one execve per PATH entry inside the target.
    let program = resolve_executable(&command[0])?;
    launch::launch(&Launch {
        program: &program,
        argv0: &command[0],
        args: &command[1..],
        cwd,
        cgroup: &cgroup.dir,
        filter: start.filter,
        capabilities: start.capabilities,
    })
    .map_err(|LaunchError { stage, source }| {
        Error::Spawn(SpawnError {
            command: command[0].clone(),
            stage,
            source,
        })
    })
}

/// The file `execvp` would run for `program`: itself when it names a path (has a `/`), else
/// the first executable file of that name in `PATH`.
fn resolve_executable(program: &str) -> Result<PathBuf, Error> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    which::which(program).map_err(|_| {
        Error::Spawn(SpawnError {
            command: program.to_string(),
            stage: StartStage::Exec,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no executable of that name in PATH",
            ),
        })
    })
}

/// What watches a running command: its cgroup, the recording, the signals sent to us.
struct Supervisor<'a> {
    cgroup: &'a Cgroup,
    counter: &'a mut SyscallCounter,
    recording: &'a mut Recording,
    signals: StopSignals,
    poll: tokio::time::Interval,
    progress: ProgressLine,
}

/// How long the processes killed at the end of a limited run may take to disappear.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl Supervisor<'_> {
    /// Waits for the command, forwarding stop signals, then for every process left in its
    /// cgroup; with a `limit`, kills what is left at its timeout or after its grace period.
    async fn supervise(
        &mut self,
        child: Launched,
        limit: Option<RunLimit>,
    ) -> Result<RunEnd, Error> {
        // std hands out the kernel's pid_t as u32: `cast_signed` gives the pid back.
        let pid = child.id();
        let deadline = limit.map(|l| tokio::time::Instant::now() + l.timeout);
        let mut wait = tokio::task::spawn_blocking(move || child.wait());
        let mut timed_out = false;
        let mut survivors = Vec::new();
        let status = match self.command(&mut wait, pid, deadline).await? {
            Some(status) => status,
            None => {
                timed_out = true;
                survivors = self.end_all(Some(pid)).await?;
                // Should the command have left its cgroup, it is killed all the same.
                // SAFETY: plain kill(2) on our own child, not yet reaped.
                unsafe { libc::kill(pid.cast_signed(), libc::SIGKILL) };
                joined(wait.await)?
            }
        };
        let grace_end = limit
            .zip(deadline)
            .map(|(l, deadline)| (tokio::time::Instant::now() + l.grace).min(deadline));
        let left = self.descendants(grace_end).await?;
        if !left.is_empty() && grace_end == deadline {
            timed_out = true;
        }
        survivors.extend(left);
        self.progress.clear();
        Ok(RunEnd {
            exit_status: status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            timed_out,
            survivors,
        })
    }

    /// Waits for the command until `deadline`; `None` when it passed first.
    async fn command(
        &mut self,
        wait: &mut tokio::task::JoinHandle<std::io::Result<ExitStatus>>,
        pid: u32,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Option<ExitStatus>, Error> {
        // A terminal's Ctrl-C or Ctrl-\ already reaches the command (same process group); we
        // only keep ourselves alive to write the file. Any other stop signal (SIGTERM, SIGHUP,
        // SIGUSR1, …) was sent to us alone: pass it on, and the command decides what it means.
        loop {
            tokio::select! {
                res = &mut *wait => return joined(res).map(Some),
                number = self.signals.recv() => {
                    if !signals::is_from_terminal(number) {
                        // SAFETY: plain kill(2) on our own child.
                        unsafe { libc::kill(pid.cast_signed(), number) };
                    }
                }
                _ = self.poll.tick() => self.tick()?,
                _ = until(deadline) => return Ok(None),
            }
        }
    }

    /// Waits until the cgroup is empty: descendants the command left running (daemons,
    /// background jobs) are part of its behaviour. A stop signal, or `deadline` when given,
    /// ends them: those killed at the deadline are returned.
    async fn descendants(
        &mut self,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Vec<Survivor>, Error> {
        while self.cgroup.is_populated()? {
            tokio::select! {
                _ = self.signals.recv() => {
                    self.end_all(None).await?;
                }
                _ = self.poll.tick() => self.tick()?,
                _ = until(deadline) => return self.end_all(None).await,
            }
        }
        Ok(Vec::new())
    }

    /// Kills every process in the cgroup and waits until it is empty; returns who they
    /// were, but for `command` (the command itself, reported by its exit status).
    async fn end_all(&mut self, command: Option<u32>) -> Result<Vec<Survivor>, Error> {
        let survivors: Vec<Survivor> = self
            .cgroup
            .processes()?
            .into_iter()
            .filter(|&pid| Some(pid) != command)
            .map(Survivor::of)
            .collect();
        self.cgroup.kill_all()?;
        let give_up = tokio::time::Instant::now() + KILL_WAIT;
        while self.cgroup.is_populated()? {
            if tokio::time::Instant::now() > give_up {
                return Err(Error::Io(std::io::Error::other(format!(
                    "processes of cgroup {} did not exit within {KILL_WAIT:?} of SIGKILL: {:?}",
                    self.cgroup.dir.display(),
                    self.cgroup.processes().unwrap_or_default()
                ))));
            }
            self.poll.tick().await;
            self.tick()?;
        }
        Ok(survivors)
    }

    fn tick(&mut self) -> Result<(), Error> {
        tick(self.counter, self.recording, &mut self.progress)
    }
}

/// Resolves at `deadline`, never without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The command's exit status from the blocking task that waited for it.
fn joined(
    res: Result<std::io::Result<ExitStatus>, tokio::task::JoinError>,
) -> Result<ExitStatus, Error> {
    res.map_err(|e| Error::Io(std::io::Error::other(e)))?
        .map_err(Error::Io)
}

/// Every poll while the command runs: drain the exec ring buffer (it is bounded), read the
/// counters, redraw the progress line.
fn tick(
    counter: &mut SyscallCounter,
    recording: &mut Recording,
    progress: &mut ProgressLine,
) -> Result<(), Error> {
    recording.note_execs(&counter.drain_execs());
    recording.refresh(counter)?;
    progress.update(
        1,
        recording.last.syscalls.len() as u64,
        recording.last.total(),
    );
    Ok(())
}
