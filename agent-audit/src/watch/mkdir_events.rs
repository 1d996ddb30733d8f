//! Names of cgroups as they are created below a watched parent, from inotify.
//!
//! The kernel program identifies a new cgroup only by id; a short-lived container's cgroup can
//! be gone before the next poll, and with it the directory that maps the id to a name. So the
//! name → id pairs are collected the moment each directory appears.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tokio::io::unix::AsyncFd;

/// An inotify instance watching directory creation in one or more cgroups.
pub struct MkdirEvents {
    fd: AsyncFd<OwnedFd>,
    /// inotify watch descriptor → the directory it watches.
    dirs: HashMap<i32, PathBuf>,
    /// cgroup id → (parent directory, child name) of every child seen created.
    seen: HashMap<u64, (PathBuf, String)>,
}

impl MkdirEvents {
    /// Starts watching `dirs` for new subdirectories. Must run inside a tokio runtime.
    pub fn new(dirs: &[&Path]) -> io::Result<Self> {
        // SAFETY: plain syscall; the fd is owned below.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut watches = HashMap::new();
        for dir in dirs {
            let c = CString::new(dir.as_os_str().as_encoded_bytes())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
            // SAFETY: valid fd and NUL-terminated path.
            let wd = unsafe {
                libc::inotify_add_watch(
                    fd.as_raw_fd(),
                    c.as_ptr(),
                    libc::IN_CREATE | libc::IN_ONLYDIR,
                )
            };
            if wd < 0 {
                return Err(io::Error::last_os_error());
            }
            watches.insert(wd, dir.to_path_buf());
        }
        // SAFETY: we own `fd` and hand it to the AsyncFd, which deregisters it before closing.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
        Ok(Self {
            fd,
            dirs: watches,
            seen: HashMap::new(),
        })
    }

    /// Waits for the next batch of events and records each new directory's id.
    pub async fn next_batch(&mut self) -> io::Result<()> {
        let Self { fd, dirs, seen } = self;
        let mut guard = fd.readable().await?;
        read_queued(fd.get_ref().as_raw_fd(), dirs, seen)?;
        guard.clear_ready();
        Ok(())
    }

    /// Records the events already queued, without waiting. The kernel queues a directory's
    /// event inside `mkdir` itself, before any task can be moved into the new cgroup, so after
    /// this call every cgroup that has made a syscall is named (if it still existed when its
    /// event was read).
    pub fn read_pending(&mut self) -> io::Result<()> {
        read_queued(self.fd.get_ref().as_raw_fd(), &self.dirs, &mut self.seen)
    }

    /// Records a child found by looking its id up in its parent directory.
    pub fn remember(&mut self, id: u64, parent: PathBuf, name: String) {
        self.seen.insert(id, (parent, name));
    }

    /// The (parent, name) of a child created since watching began, by cgroup id.
    pub fn name_of(&self, id: u64) -> Option<&(PathBuf, String)> {
        self.seen.get(&id)
    }
}

/// Reads the inotify fd (non-blocking) until it is empty, recording each new directory.
fn read_queued(
    fd: std::os::fd::RawFd,
    dirs: &HashMap<i32, PathBuf>,
    seen: &mut HashMap<u64, (PathBuf, String)>,
) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reading into a local buffer of the given size.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            return Ok(());
        }
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::WouldBlock {
                return Ok(());
            }
            return Err(err);
        }
        parse(dirs, seen, &buf[..n as usize]);
    }
}

/// Records the id of every directory named in a buffer of inotify events.
fn parse(dirs: &HashMap<i32, PathBuf>, seen: &mut HashMap<u64, (PathBuf, String)>, mut buf: &[u8]) {
    const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
    while buf.len() >= HEADER {
        // SAFETY: the kernel writes whole `inotify_event` headers; read unaligned.
        let ev: libc::inotify_event = unsafe { std::ptr::read_unaligned(buf.as_ptr().cast()) };
        let end = HEADER + ev.len as usize;
        let name_bytes = &buf[HEADER..end.min(buf.len())];
        let name = String::from_utf8_lossy(name_bytes)
            .trim_end_matches('\0')
            .to_string();
        if let Some(parent) = dirs.get(&ev.wd) {
            if let Ok(meta) = std::fs::metadata(parent.join(&name)) {
                seen.insert(meta.ino(), (parent.clone(), name));
            }
        }
        buf = &buf[end.min(buf.len())..];
    }
}
