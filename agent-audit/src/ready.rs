//! The readiness file of `record --ready-file FILE`: written once the kernel program is
//! attached and armed, removed when the recorder ends, and checked by `agent-audit ready FILE`
//! — a health check that needs no shell (the sidecar image has none), for compose's
//! `depends_on: condition: service_healthy` and for scripts.

use std::fs;
use std::path::{Path, PathBuf};

use crate::exit::ExitCode;
use crate::fsutil::{self, OutputError};

/// Why `agent-audit ready FILE` says "not ready".
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// No recorder has written the file (yet).
    #[error("{path}: no readiness file ({source}): the recorder is not armed yet")]
    NoFile {
        /// The file checked.
        path: PathBuf,
        /// What reading it said (through the one input reader: a FIFO or device planted
        /// at the path is refused, not waited on).
        source: crate::fsutil::InputError,
    },
    /// The file does not hold a pid.
    #[error("{path} is not a readiness file written by `record --ready-file`")]
    Malformed {
        /// The file checked.
        path: PathBuf,
    },
    /// The recorder that wrote the file is no longer running.
    #[error("{path}: the recorder that wrote it (pid {pid}) is no longer running")]
    RecorderGone {
        /// The file checked.
        path: PathBuf,
        /// The pid it names.
        pid: u32,
    },
}

impl NotReady {
    /// The documented exit code: 1, not ready (a health check's "unhealthy").
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::FINDINGS
    }
}

/// A readiness file that exists while the recorder that wrote it runs.
#[derive(Debug)]
pub struct ReadyFile {
    path: PathBuf,
}

impl ReadyFile {
    /// Fails before recording starts if the file cannot be written.
    pub fn check_writable(path: &Path) -> Result<(), OutputError> {
        fsutil::check_output(path)
    }

    /// Writes `path` (atomically) with this process's pid and the readiness line.
    pub fn create(path: &Path, line: &str) -> Result<Self, OutputError> {
        let contents = format!("{}\n{line}\n", std::process::id());
        fsutil::write_output(path, contents.as_bytes())?;
        Ok(Self {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for ReadyFile {
    fn drop(&mut self) {
        // Once the recorder ends it is no longer armed; a stale file would mislead the next
        // health check (`ready` also checks the pid, for a recorder killed with SIGKILL).
        let _ = fs::remove_file(&self.path);
    }
}

/// Ok when `path` was written by a recorder that is still running.
pub fn check(path: &Path) -> Result<u32, NotReady> {
    let text = fsutil::read_input(path).map_err(|source| NotReady::NoFile {
        path: path.to_path_buf(),
        source,
    })?;
    let pid: u32 = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| NotReady::Malformed {
            path: path.to_path_buf(),
        })?;
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(NotReady::RecorderGone {
            path: path.to_path_buf(),
            pid,
        });
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_while_the_writer_runs_and_not_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("armed");
        assert!(matches!(check(&path), Err(NotReady::NoFile { .. })));
        let file = ReadyFile::create(&path, "agent-audit: recording 0 target(s)").unwrap();
        assert_eq!(check(&path).unwrap(), std::process::id());
        drop(file);
        assert!(!path.exists());
        fs::write(&path, "not a pid\n").unwrap();
        assert!(matches!(check(&path), Err(NotReady::Malformed { .. })));
        // pid_max is at most 2^22: this pid cannot exist.
        fs::write(&path, "4294967295\n").unwrap();
        assert!(matches!(check(&path), Err(NotReady::RecorderGone { .. })));
    }
}
