//! Output files appear whole or not at all: every write goes to a temporary file in the
//! destination's directory, is synced, then renamed over the destination.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// An output path that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The directory is missing, read-only, or not ours to write.
    #[error(
        "cannot write to {dir}: {source} (choose another --out/--out-dir or fix its permissions)"
    )]
    NotWritable {
        /// Directory that was probed.
        dir: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
    /// Writing or renaming failed part-way; the destination was left untouched.
    #[error("writing {path} failed: {source} (the previous file, if any, is unchanged)")]
    Write {
        /// Destination file.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
}

impl OutputError {
    /// The documented exit code: 73, the output cannot be written.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        crate::exit::ExitCode::CANT_CREATE
    }
}

/// The directory a file will be written into (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Fails early, before any recording starts, if files cannot be created in `dir`.
pub fn ensure_dir_writable(dir: &Path) -> Result<(), OutputError> {
    let not_writable = |source| OutputError::NotWritable {
        dir: dir.to_path_buf(),
        source,
    };
    let meta = fs::metadata(dir).map_err(not_writable)?;
    if !meta.is_dir() {
        return Err(not_writable(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    // Root passes every permission check, but not a read-only mount: so really create a file.
    let probe = dir.join(format!(".agent-audit-probe-{}", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)
        .map_err(not_writable)?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// Replaces `path` with `contents` atomically: readers see the old file or the new one, never a
/// mix, and a crash leaves at most a stray `.tmp` file next to it.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), OutputError> {
    let err = |source| OutputError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = parent_dir(path);
    let file_name = path.file_name().ok_or_else(|| {
        err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file path",
        ))
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "stray files: {names:?}");
    }

    #[test]
    fn missing_directory_is_reported_by_name() {
        let err = ensure_dir_writable(Path::new("/nonexistent/agent-audit")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/agent-audit"),
            "{err}"
        );
        let err = write_atomic(Path::new("/nonexistent/dir/x.json"), b"x").unwrap_err();
        assert!(matches!(err, OutputError::Write { .. }));
    }

    #[test]
    fn a_file_is_not_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"").unwrap();
        assert!(ensure_dir_writable(&file).is_err());
    }
}
