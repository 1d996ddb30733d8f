//! One run of a container for `audit --container`: `record --wait --container NAME` is armed
//! first (a child process of our own binary, so that the recorder is exactly the documented
//! one), then `docker start -a NAME` starts the container, which is recorded from its first
//! syscall until its cgroup is gone.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::exit::ExitCode;

/// How long the recorder may take to notice the container's cgroup is gone after `docker
/// start -a` returned, before it is told to finish (SIGINT: it writes its file and exits).
const RECORDER_GRACE: Duration = Duration::from_secs(20);

/// Why a container run could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// `docker` itself could not be run.
    #[error("cannot run docker: {0}")]
    Docker(#[source] std::io::Error),
    /// `docker inspect` does not know the container.
    #[error("no Docker container named {name:?}: {detail}")]
    NotFound {
        /// The name given.
        name: String,
        /// What docker said.
        detail: String,
    },
    /// The container runs already: its start would not be recorded.
    #[error(
        "container {name:?} is running: stop it first (`docker stop {name}`), so that each run \
         records it from its first syscall"
    )]
    Running {
        /// The name given.
        name: String,
    },
    /// The recorder could not be started or stopped before it was armed.
    #[error("the recorder (`agent-audit record --wait`) {what}")]
    Recorder {
        /// What went wrong.
        what: String,
    },
    /// `docker start -a` failed to start the container.
    #[error("`docker start -a {name}` failed: {status}")]
    Start {
        /// The container.
        name: String,
        /// Its status.
        status: ExitStatus,
    },
}

impl ContainerError {
    /// The documented exit code: 66 for an unknown container, 2 for a running one, 69 when
    /// docker or the recorder cannot do their part.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ContainerError::NotFound { .. } => ExitCode::NO_INPUT,
            ContainerError::Running { .. } => ExitCode::USAGE,
            ContainerError::Docker(_)
            | ContainerError::Recorder { .. }
            | ContainerError::Start { .. } => ExitCode::UNAVAILABLE,
        }
    }
}

/// Fails unless `name` is an existing, stopped container.
pub fn ensure_stopped(name: &str) -> Result<(), ContainerError> {
    let out = Command::new("docker")
        .args([
            "inspect",
            "--type",
            "container",
            "-f",
            "{{.State.Running}}",
            name,
        ])
        .output()
        .map_err(ContainerError::Docker)?;
    if !out.status.success() {
        return Err(ContainerError::NotFound {
            name: name.to_string(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    match String::from_utf8_lossy(&out.stdout).trim() {
        "false" => Ok(()),
        _ => Err(ContainerError::Running {
            name: name.to_string(),
        }),
    }
}

/// Records one start of the stopped container `name` into `out`.
pub fn record_start(name: &str, out: &Path) -> Result<(), ContainerError> {
    let mut recorder = arm_recorder(name, out)?;
    let started = Command::new("docker")
        .args(["start", "-a", name])
        .status()
        .map_err(ContainerError::Docker);
    let finished = finish_recorder(&mut recorder);
    let started = started?;
    let recorded = finished?;
    // A container that ran and exited non-zero is a recorded run (its status is in the
    // allowlist); one that never started is not.
    if !recorded.success() || !out.exists() {
        return Err(ContainerError::Recorder {
            what: format!("ended with {recorded} and wrote no complete allowlist"),
        });
    }
    if !started.success() {
        eprintln!("agent-audit: container {name} exited with {started}");
    }
    Ok(())
}

/// Starts `agent-audit record --wait --container NAME` and returns once it says it is armed;
/// its later stderr is passed through.
fn arm_recorder(name: &str, out: &Path) -> Result<Child, ContainerError> {
    let exe = std::env::current_exe().map_err(|e| ContainerError::Recorder {
        what: format!("cannot be found: {e}"),
    })?;
    let mut child = Command::new(exe)
        .args(["record", "--wait", "--container", name, "--out"])
        .arg(out)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ContainerError::Recorder {
            what: format!("cannot be started: {e}"),
        })?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                eprintln!("{line}");
                if line.contains("armed for") {
                    break;
                }
            }
            _ => {
                let status = child.wait().map_err(ContainerError::Docker)?;
                return Err(ContainerError::Recorder {
                    what: format!("exited with {status} before it was armed"),
                });
            }
        }
    }
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            eprintln!("{line}");
        }
    });
    Ok(child)
}

/// Waits for the recorder to see the container's cgroup go; after [`RECORDER_GRACE`] tells it
/// to finish.
fn finish_recorder(child: &mut Child) -> Result<ExitStatus, ContainerError> {
    let deadline = Instant::now() + RECORDER_GRACE;
    loop {
        if let Some(status) = child.try_wait().map_err(ContainerError::Docker)? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            // SAFETY: kill(2) on our own child, not yet reaped (std's u32 is the kernel's pid_t).
            unsafe { libc::kill(child.id().cast_signed(), libc::SIGINT) };
            return child.wait().map_err(ContainerError::Docker);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
