//! One run of a container for `audit --container`: `record --wait --container NAME` is armed
//! first (a child process of our own binary, so that the recorder is exactly the documented
//! one, told the same engine socket; it says it is armed by creating its `--ready-file`), then
//! the container is started through its engine's API (Docker's or Podman's) and waited for; it
//! is recorded from its first syscall until its cgroup is gone.

use std::io;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::engine::{Engine, EngineError, EngineKind, EngineSocket};
use crate::exit::ExitCode;
use crate::shell::status;

/// How long the recorder may take to notice the container's cgroup is gone after the engine
/// reported it exited, before it is told to finish (SIGINT: it writes its file and exits).
const RECORDER_GRACE: Duration = Duration::from_secs(20);
/// How long the recorder may take to load and arm (a few seconds on a busy host).
const ARM_LIMIT: Duration = Duration::from_secs(120);
/// Lines of a failed run's output shown.
const LOG_LINES_ON_FAILURE: usize = 20;

/// Why a container run could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// No engine answers, or it cannot say where its containers' cgroups appear.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// An engine request about the container failed.
    #[error("{engine} could not {action} container {name:?}: {source}")]
    Request {
        /// The container.
        name: String,
        /// The engine.
        engine: EngineKind,
        /// What was asked.
        action: &'static str,
        /// The engine's answer.
        source: io::Error,
    },
    /// The engine does not know the container.
    #[error("no container named {name:?} ({engine} at {socket})")]
    NotFound {
        /// The name given.
        name: String,
        /// The engine asked.
        engine: EngineKind,
        /// Its socket.
        socket: std::path::PathBuf,
    },
    /// The container runs already: its start would not be recorded.
    #[error(
        "container {name:?} is running: stop it first (`{engine} stop {name}`), so that each run \
         records it from its first syscall"
    )]
    Running {
        /// The name given.
        name: String,
        /// Its engine.
        engine: EngineKind,
    },
    /// The recorder could not be started or stopped before it was armed.
    #[error("the recorder (`agent-audit record --wait`) {what}")]
    Recorder {
        /// What went wrong.
        what: String,
    },
}

impl ContainerError {
    /// The documented exit code: 66 for an unknown container, 2 for a running one, 69 when
    /// the engine or the recorder cannot do their part.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ContainerError::NotFound { .. } => ExitCode::NO_INPUT,
            ContainerError::Running { .. } => ExitCode::USAGE,
            ContainerError::Engine(e) => e.exit_code(),
            ContainerError::Request { .. } | ContainerError::Recorder { .. } => {
                ExitCode::UNAVAILABLE
            }
        }
    }
}

/// The id of `name`, an existing, stopped container of `engine`.
fn stopped_id(engine: &Engine, name: &str) -> Result<String, ContainerError> {
    let info = engine
        .describe(name)
        .map_err(|source| ContainerError::Request {
            name: name.to_string(),
            engine: engine.kind(),
            action: "inspect",
            source,
        })?
        .ok_or_else(|| ContainerError::NotFound {
            name: name.to_string(),
            engine: engine.kind(),
            socket: engine.socket().to_path_buf(),
        })?;
    if info.pid != 0 {
        return Err(ContainerError::Running {
            name: name.to_string(),
            engine: engine.kind(),
        });
    }
    Ok(info.id)
}

/// Fails unless `name` is an existing, stopped container of the engine `choice` names.
pub fn ensure_stopped(name: &str, choice: &EngineSocket) -> Result<(), ContainerError> {
    stopped_id(&Engine::connect(choice)?, name).map(drop)
}

/// Records one start of the stopped container `name` into `out`.
pub fn record_start(name: &str, choice: &EngineSocket, out: &Path) -> Result<(), ContainerError> {
    let engine = Engine::connect(choice)?;
    let id = stopped_id(&engine, name)?;
    let mut recorder = arm_recorder(name, engine.socket(), out)?;
    let request = |action, source| ContainerError::Request {
        name: name.to_string(),
        engine: engine.kind(),
        action,
        source,
    };
    // The container runs as long as it runs, as under `docker start -a`.
    let ran = engine
        .start(&id)
        .map_err(|e| request("start", e))
        .and_then(|()| engine.wait(&id, None).map_err(|e| request("wait for", e)));
    let finished = finish_recorder(&mut recorder);
    let status = ran?;
    let recorded = finished?;
    // A container that ran and exited non-zero is a recorded run (its status is in the
    // allowlist); one that never started is not.
    if !recorded.success() || !out.exists() {
        return Err(ContainerError::Recorder {
            what: format!("ended with {recorded} and wrote no complete allowlist"),
        });
    }
    if status != 0 {
        status!("agent-audit: container {name} exited with status {status}");
        show_output(&engine, &id);
    }
    Ok(())
}

/// Starts `agent-audit record --wait --container NAME --engine-socket SOCKET` and returns once
/// its ready file exists; its stderr is ours.
fn arm_recorder(name: &str, socket: &Path, out: &Path) -> Result<Child, ContainerError> {
    let failed = |what: String| ContainerError::Recorder { what };
    let exe = std::env::current_exe().map_err(|e| failed(format!("cannot be found: {e}")))?;
    let scratch = tempfile::Builder::new()
        .prefix("agent-audit-audit-")
        .tempdir()
        .map_err(|e| failed(format!("has no directory for its ready file: {e}")))?;
    let ready = scratch.path().join("ready");
    let mut child = Command::new(exe)
        .args(["record", "--wait", "--container", name, "--engine-socket"])
        .arg(socket)
        .arg("--ready-file")
        .arg(&ready)
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| failed(format!("cannot be started: {e}")))?;
    let deadline = Instant::now() + ARM_LIMIT;
    while !ready.exists() {
        let exited = child
            .try_wait()
            .map_err(|e| failed(format!("cannot be waited for: {e}")))?;
        if let Some(status) = exited {
            return Err(failed(format!("exited with {status} before it was armed")));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(failed(format!(
                "was not armed after {} s",
                ARM_LIMIT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// Waits for the recorder to see the container's cgroup go; after [`RECORDER_GRACE`] tells it
/// to finish.
fn finish_recorder(child: &mut Child) -> Result<ExitStatus, ContainerError> {
    let failed = |e: io::Error| ContainerError::Recorder {
        what: format!("cannot be waited for: {e}"),
    };
    let deadline = Instant::now() + RECORDER_GRACE;
    loop {
        if let Some(status) = child.try_wait().map_err(failed)? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            // SAFETY: kill(2) on our own child, not yet reaped (std's u32 is the kernel's pid_t).
            unsafe { libc::kill(child.id().cast_signed(), libc::SIGINT) };
            return child.wait().map_err(failed);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The end of a failed run's output, on stderr (`docker start -a` showed it all).
fn show_output(engine: &Engine, id: &str) {
    match engine.logs_tail(id, LOG_LINES_ON_FAILURE) {
        Ok(text) => {
            for line in text.lines() {
                status!("  | {line}");
            }
        }
        Err(e) => status!("agent-audit: cannot read the container's output: {e}"),
    }
}
