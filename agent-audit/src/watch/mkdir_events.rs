//! Names of cgroups as they are created below a watched parent, from inotify.
//!
//! The kernel program identifies a new cgroup only by id; a short-lived container's cgroup can
//! be gone before the next poll, and with it the directory that maps the id to a name. So a
//! thread of its own waits on inotify and looks each new directory up the moment it appears,
//! whatever the recorder's main loop is busy with. Each batch of events, removals included,
//! also wakes the main loop, so that excluding a new child, finishing an ended target and
//! freeing its slot need not wait for its next poll.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What the reader has seen, shared with the recorder.
#[derive(Default)]
struct Created {
    /// cgroup id → (parent directory, child name).
    names: HashMap<u64, (PathBuf, String)>,
    /// Ids created since [`MkdirEvents::take_new`] was last called.
    new: Vec<u64>,
    /// Directories already removed when their creation was read: their id (the inode) can
    /// no longer be looked up, only their name is known.
    vanished: Vec<(PathBuf, String)>,
}

type Seen = Arc<Mutex<Created>>;

/// An inotify instance watching directory creation in one or more cgroups.
pub struct MkdirEvents {
    fd: Arc<OwnedFd>,
    /// inotify watch descriptor → the directory it watches.
    dirs: Arc<HashMap<i32, PathBuf>>,
    seen: Seen,
    /// Woken whenever the reader thread saw directories created or removed.
    changed: Arc<tokio::sync::Notify>,
    /// Written to stop the reader thread.
    stop: OwnedFd,
}

impl MkdirEvents {
    /// Starts watching `dirs` for new subdirectories.
    pub fn new(dirs: &[&Path]) -> io::Result<Self> {
        // SAFETY: plain syscall; the fd is owned below.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd nobody else owns.
        let fd = Arc::new(unsafe { OwnedFd::from_raw_fd(raw) });
        let mut watches = HashMap::new();
        for dir in dirs {
            let c = CString::new(dir.as_os_str().as_encoded_bytes())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
            // SAFETY: valid fd and NUL-terminated path.
            let wd = unsafe {
                libc::inotify_add_watch(
                    fd.as_raw_fd(),
                    c.as_ptr(),
                    libc::IN_CREATE | libc::IN_DELETE | libc::IN_ONLYDIR,
                )
            };
            if wd < 0 {
                return Err(io::Error::last_os_error());
            }
            watches.insert(wd, dir.to_path_buf());
        }
        // SAFETY: plain syscall; the fd is owned below.
        let stop = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if stop < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd nobody else owns.
        let stop = unsafe { OwnedFd::from_raw_fd(stop) };
        let events = Self {
            fd,
            dirs: Arc::new(watches),
            seen: Arc::new(Mutex::new(Created::default())),
            changed: Arc::new(tokio::sync::Notify::new()),
            stop,
        };
        let (fd, dirs, seen, changed, stop_fd) = (
            events.fd.clone(),
            events.dirs.clone(),
            events.seen.clone(),
            events.changed.clone(),
            events.stop.as_raw_fd(),
        );
        std::thread::Builder::new()
            .name("mkdir-events".into())
            .spawn(move || reader(&fd, &dirs, &seen, &changed, stop_fd))?;
        Ok(events)
    }

    /// Records the events already queued, without waiting (in case the reader thread has not
    /// got to them yet). The kernel queues a directory's event inside `mkdir` itself, before
    /// any task can be moved into the new cgroup, so after this call every cgroup that has
    /// made a syscall is named if it still exists.
    pub fn read_pending(&mut self) -> io::Result<()> {
        read_queued(self.fd.as_raw_fd(), &self.dirs, &self.seen)
    }

    /// Records a child found by looking its id up in its parent directory.
    pub fn remember(&mut self, id: u64, parent: PathBuf, name: String) {
        lock(&self.seen).names.insert(id, (parent, name));
    }

    /// The (parent, name) of a child created since watching began, by cgroup id.
    pub fn name_of(&self, id: u64) -> Option<(PathBuf, String)> {
        lock(&self.seen).names.get(&id).cloned()
    }

    /// Children created and removed before their creation was read, since the last call:
    /// (parent, name), without an id.
    pub fn take_vanished(&mut self) -> Vec<(PathBuf, String)> {
        std::mem::take(&mut lock(&self.seen).vanished)
    }

    /// Ids of the children named since the last call, oldest first.
    pub fn take_new(&mut self) -> Vec<u64> {
        std::mem::take(&mut lock(&self.seen).new)
    }

    /// Notified each time the reader thread sees children created or removed: the recorder
    /// then deals with them at once (excludes, adopts, finishes, frees slots) rather than at
    /// its next poll.
    pub fn changed(&self) -> Arc<tokio::sync::Notify> {
        self.changed.clone()
    }
}

impl Drop for MkdirEvents {
    fn drop(&mut self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes to our eventfd wakes the reader thread, which then exits.
        unsafe { libc::write(self.stop.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

fn lock(seen: &Seen) -> std::sync::MutexGuard<'_, Created> {
    seen.lock().unwrap_or_else(|e| e.into_inner())
}

/// The reader thread: waits for inotify events (or the stop eventfd) and records them.
fn reader(
    fd: &OwnedFd,
    dirs: &HashMap<i32, PathBuf>,
    seen: &Seen,
    changed: &tokio::sync::Notify,
    stop: RawFd,
) {
    let mut fds = [
        libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: two valid pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[1].revents != 0 {
            return;
        }
        if read_queued(fd.as_raw_fd(), dirs, seen).is_err() {
            return;
        }
        changed.notify_one();
    }
}

/// Reads the inotify fd (non-blocking) until it is empty, recording each new directory.
fn read_queued(fd: RawFd, dirs: &HashMap<i32, PathBuf>, seen: &Seen) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reading into a local buffer of the given size.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        // Negative: the call failed (errno says why).
        let Ok(n) = usize::try_from(n) else {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::WouldBlock {
                return Ok(());
            }
            return Err(err);
        };
        if n == 0 {
            return Ok(());
        }
        parse(dirs, seen, &buf[..n]);
    }
}

/// Records the id of every directory named in a buffer of inotify events.
fn parse(dirs: &HashMap<i32, PathBuf>, seen: &Seen, mut buf: &[u8]) {
    const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
    while buf.len() >= HEADER {
        // SAFETY: the kernel writes whole `inotify_event` headers; read unaligned.
        let ev: libc::inotify_event = unsafe { std::ptr::read_unaligned(buf.as_ptr().cast()) };
        let end = (HEADER + ev.len as usize).min(buf.len());
        let name = String::from_utf8_lossy(&buf[HEADER..end])
            .trim_end_matches('\0')
            .to_string();
        if ev.mask & libc::IN_CREATE == 0 {
            buf = &buf[end..];
            continue; // a removal: it only wakes the recorder
        }
        if let Some(parent) = dirs.get(&ev.wd) {
            let mut seen = lock(seen);
            match std::fs::metadata(parent.join(&name)) {
                Ok(meta) => {
                    seen.names.insert(meta.ino(), (parent.clone(), name));
                    seen.new.push(meta.ino());
                }
                Err(_) => seen.vanished.push((parent.clone(), name)),
            }
        }
        buf = &buf[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One inotify event as the kernel writes it: the header, then the name padded with NULs.
    fn event(wd: i32, mask: u32, name: &str) -> Vec<u8> {
        let padded = (name.len() / 16 + 1) * 16;
        let mut buf = Vec::new();
        buf.extend_from_slice(&wd.to_ne_bytes());
        buf.extend_from_slice(&mask.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // cookie
        buf.extend_from_slice(&u32::try_from(padded).unwrap().to_ne_bytes());
        buf.extend_from_slice(name.as_bytes());
        buf.resize(buf.len() + padded - name.len(), 0);
        buf
    }

    #[test]
    fn a_directory_gone_before_its_creation_is_read_is_kept_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("here")).unwrap();
        let dirs = HashMap::from([(1, dir.path().to_path_buf())]);
        let seen: Seen = Arc::default();
        let mut buf = event(1, libc::IN_CREATE | libc::IN_ISDIR, "gone");
        buf.extend(event(1, libc::IN_CREATE | libc::IN_ISDIR, "here"));
        buf.extend(event(1, libc::IN_DELETE | libc::IN_ISDIR, "gone"));
        parse(&dirs, &seen, &buf);
        let created = lock(&seen);
        assert_eq!(
            created.vanished,
            [(dir.path().to_path_buf(), "gone".to_string())]
        );
        let ino = std::fs::metadata(dir.path().join("here")).unwrap().ino();
        assert_eq!(created.new, [ino]);
        assert_eq!(created.names.len(), 1);
    }

    #[test]
    fn names_directories_as_they_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let mut events = MkdirEvents::new(&[dir.path()]).unwrap();
        let child = dir.path().join("c1");
        std::fs::create_dir(&child).unwrap();
        let ino = std::fs::metadata(&child).unwrap().ino();
        let mut named = None;
        for _ in 0..200 {
            events.read_pending().unwrap();
            named = events.name_of(ino);
            if named.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(named, Some((dir.path().to_path_buf(), "c1".to_string())));
        assert_eq!(events.take_new(), vec![ino]);
        assert_eq!(events.take_new(), Vec::<u64>::new());
        assert_eq!(events.name_of(ino + 1_000_000), None);
    }
}
