//! Outputs that are streams rather than files: standard output, and a device, FIFO or socket
//! named as the output. Neither can be replaced atomically; what this module guards against is
//! output that vanishes (a standard output that was closed) and a write that never ends (a
//! FIFO whose reader never reads).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{replace_file, NodeKind, OutputError};

/// How long a write into another user's device, FIFO or socket may take in all. Its reader is
/// someone else's program: one that stops reading would otherwise hold agent-audit (root, a CI
/// job) forever once the pipe's buffer (64 KiB) is full.
pub const FOREIGN_NODE_DEADLINE: Duration = Duration::from_secs(5);

/// Whether file descriptor 1 was closed when the process started (`>&-`).
static STDOUT_CLOSED_AT_START: AtomicBool = AtomicBool::new(false);

/// Notes whether standard output is closed. Called by the binary before Rust's runtime starts:
/// the runtime then reopens a closed descriptor 1 on `/dev/null` (so that a later file cannot
/// take its number), after which a closed standard output can no longer be told from
/// `>/dev/null` and every document written there would vanish with exit 0. Only async-signal-
/// safe work: one `fcntl` and one atomic store.
pub fn note_stdout_before_runtime() {
    // SAFETY: F_GETFD on a descriptor number, no pointer; it only reads the descriptor table.
    let closed = unsafe { libc::fcntl(libc::STDOUT_FILENO, libc::F_GETFD) } < 0;
    STDOUT_CLOSED_AT_START.store(closed, Ordering::Relaxed);
}

/// Fails when standard output was closed at start: whatever went there would be lost.
/// Every command that writes to standard output calls it before any work.
pub fn check_stdout() -> Result<(), OutputError> {
    if STDOUT_CLOSED_AT_START.load(Ordering::Relaxed) {
        return Err(OutputError::StdoutClosed);
    }
    Ok(())
}

/// Writes `contents` to standard output. A reader that goes away early (`| head -1`) is not an
/// error: as for a program ended by SIGPIPE, the output just stops (the rule of
/// docs/exit-codes.md, the same for every command, `run --out -` and `record --out -` included).
pub fn write_stdout(contents: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(contents).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Writes into an existing device, FIFO or socket without creating, truncating or replacing
/// it. One of the invoking user's own is written as any program writes it (a FIFO read by the
/// user's pager may take its time); another user's must take all it is given within
/// [`FOREIGN_NODE_DEADLINE`], or the write is abandoned.
pub(super) fn write_through(
    path: &Path,
    kind: NodeKind,
    contents: &[u8],
) -> Result<(), OutputError> {
    write_through_within(path, kind, contents, FOREIGN_NODE_DEADLINE)
}

/// [`write_through`] with another user's node given `deadline`.
pub(super) fn write_through_within(
    path: &Path,
    kind: NodeKind,
    contents: &[u8],
    deadline: Duration,
) -> Result<(), OutputError> {
    let err = |source| OutputError::Write {
        path: path.to_path_buf(),
        source,
    };
    // O_NONBLOCK: opening a FIFO nobody reads fails (ENXIO) instead of blocking forever.
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ENXIO) => OutputError::NoReader {
                path: path.to_path_buf(),
                kind,
            },
            _ => err(source),
        })?;
    // The node may have been swapped since it was looked at: a file is replaced, never written
    // through; the owner that counts is the opened node's.
    let meta = file.metadata().map_err(err)?;
    if meta.is_file() {
        drop(file);
        return replace_file(path, contents).map_err(err);
    }
    // SAFETY: geteuid cannot fail and has no preconditions.
    if meta.uid() == unsafe { libc::geteuid() } {
        set_blocking(&file).map_err(err)?;
        return (&file).write_all(contents).map_err(err);
    }
    match write_before(&file, contents, Instant::now() + deadline) {
        Ok(()) => Ok(()),
        Err(Stalled::Io(source)) => Err(err(source)),
        Err(Stalled::Deadline { written }) => Err(OutputError::Stalled {
            path: path.to_path_buf(),
            kind,
            owner: meta.uid(),
            written,
            size: contents.len(),
            deadline,
        }),
    }
}

/// Why a bounded write stopped.
enum Stalled {
    /// The reader took only `written` bytes before the deadline.
    Deadline { written: usize },
    /// The write failed.
    Io(io::Error),
}

/// Writes all of `contents` to a non-blocking `file` by `deadline`, waiting in `poll(2)` while
/// the reader's buffer is full.
fn write_before(file: &File, contents: &[u8], deadline: Instant) -> Result<(), Stalled> {
    let mut written = 0;
    while written < contents.len() {
        match (&*file).write(&contents[written..]) {
            Ok(0) => return Err(Stalled::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || !wait_writable(file, left).map_err(Stalled::Io)? {
                    return Err(Stalled::Deadline { written });
                }
            }
            Err(e) => return Err(Stalled::Io(e)),
        }
    }
    Ok(())
}

/// Waits up to `limit` for `file` to take more bytes; `false` when the time ran out.
fn wait_writable(file: &File, limit: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // Rounded up, so that a wait never ends just before the deadline and spins.
    let millis =
        libc::c_int::try_from(limit.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd that outlives the call.
    match unsafe { libc::poll(&mut pfd, 1, millis) } {
        0 => Ok(false),
        // Writable, or an error the next write reports.
        n if n > 0 => Ok(true),
        _ => {
            let e = io::Error::last_os_error();
            // A signal: the caller writes again and waits for what is left of its time.
            match e.kind() {
                io::ErrorKind::Interrupted => Ok(true),
                _ => Err(e),
            }
        }
    }
}

/// Clears `O_NONBLOCK` on an open file.
pub(super) fn set_blocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor `file` owns, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
