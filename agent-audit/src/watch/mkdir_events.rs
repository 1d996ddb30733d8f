//! Names of cgroups as they are created below a watched parent, from inotify.
//!
//! The kernel program identifies a new cgroup only by id; a short-lived container's cgroup can
//! be gone before the next poll, and with it the directory that maps the id to a name. So a
//! thread of its own waits on inotify and looks each new directory up the moment it appears,
//! whatever the recorder's main loop is busy with. Each batch of events, removals included,
//! also wakes the main loop, so that excluding a new child, finishing an ended target and
//! freeing its slot need not wait for its next poll.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

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
    /// Non-blocking; read by the reader thread and by [`MkdirEvents::read_pending`].
    inotify: Arc<Mutex<Inotify>>,
    /// inotify watch descriptor → the directory it watches.
    dirs: Arc<HashMap<WatchDescriptor, PathBuf>>,
    seen: Seen,
    /// Woken whenever the reader thread saw directories created or removed.
    changed: Arc<tokio::sync::Notify>,
    /// Written to stop the reader thread.
    stop: OwnedFd,
}

impl MkdirEvents {
    /// Starts watching `dirs` for new subdirectories.
    pub fn new(dirs: &[&Path]) -> io::Result<Self> {
        let inotify = Inotify::init()?;
        let mut watches = HashMap::new();
        for dir in dirs {
            let wd = inotify.watches().add(
                dir,
                WatchMask::CREATE | WatchMask::DELETE | WatchMask::ONLYDIR,
            )?;
            watches.insert(wd, dir.to_path_buf());
        }
        // SAFETY: plain syscall; the fd is owned below.
        let stop = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if stop < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd nobody else owns.
        let stop = unsafe { OwnedFd::from_raw_fd(stop) };
        let inotify_fd = inotify.as_raw_fd();
        let events = Self {
            inotify: Arc::new(Mutex::new(inotify)),
            dirs: Arc::new(watches),
            seen: Arc::new(Mutex::new(Created::default())),
            changed: Arc::new(tokio::sync::Notify::new()),
            stop,
        };
        let (inotify, dirs, seen, changed, stop_fd) = (
            events.inotify.clone(),
            events.dirs.clone(),
            events.seen.clone(),
            events.changed.clone(),
            events.stop.as_raw_fd(),
        );
        std::thread::Builder::new()
            .name("mkdir-events".into())
            .spawn(move || reader(&inotify, inotify_fd, &dirs, &seen, &changed, stop_fd))?;
        Ok(events)
    }

    /// Records the events already queued, without waiting (in case the reader thread has not
    /// got to them yet). The kernel queues a directory's event inside `mkdir` itself, before
    /// any task can be moved into the new cgroup, so after this call every cgroup that has
    /// made a syscall is named if it still exists.
    pub fn read_pending(&mut self) -> io::Result<()> {
        read_queued(&self.inotify, &self.dirs, &self.seen)
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
/// `inotify_fd` is the descriptor of `inotify`, polled without holding its lock.
fn reader(
    inotify: &Mutex<Inotify>,
    inotify_fd: RawFd,
    dirs: &HashMap<WatchDescriptor, PathBuf>,
    seen: &Seen,
    changed: &tokio::sync::Notify,
    stop: RawFd,
) {
    let mut fds = [
        libc::pollfd {
            fd: inotify_fd,
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
        // SAFETY: two valid pollfds; both descriptors outlive this thread's use of them (the
        // inotify instance is shared through an Arc, and the eventfd is closed only after it
        // told this loop to end).
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
        if read_queued(inotify, dirs, seen).is_err() {
            return;
        }
        changed.notify_one();
    }
}

/// Reads the (non-blocking) inotify instance until it is empty, recording each new directory.
fn read_queued(
    inotify: &Mutex<Inotify>,
    dirs: &HashMap<WatchDescriptor, PathBuf>,
    seen: &Seen,
) -> io::Result<()> {
    // Room for many events (each at most a header and a 255-byte name).
    let mut buf = [0u8; 4096];
    let mut inotify = inotify.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let events = match inotify.read_events(&mut buf) {
            Ok(events) => events,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        };
        for event in events {
            if !event.mask.contains(EventMask::CREATE) {
                continue; // a removal: it only wakes the recorder
            }
            if let (Some(parent), Some(name)) = (dirs.get(&event.wd), event.name) {
                record_created(seen, parent, name.to_string_lossy().into_owned());
            }
        }
    }
}

/// Looks a new directory up at once: its inode number is the cgroup id.
fn record_created(seen: &Seen, parent: &Path, name: String) {
    let mut seen = lock(seen);
    match std::fs::metadata(parent.join(&name)) {
        Ok(meta) => {
            seen.names.insert(meta.ino(), (parent.to_path_buf(), name));
            seen.new.push(meta.ino());
        }
        Err(_) => seen.vanished.push((parent.to_path_buf(), name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name of directory `ino` once the events are read (by either reader).
    fn named_within_a_second(events: &mut MkdirEvents, ino: u64) -> Option<(PathBuf, String)> {
        for _ in 0..200 {
            events.read_pending().unwrap();
            if let Some(named) = events.name_of(ino) {
                return Some(named);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        None
    }

    #[test]
    fn a_directory_gone_before_its_creation_is_read_is_kept_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut events = MkdirEvents::new(&[dir.path()]).unwrap();
        // Hold the instance so that the reader thread cannot read the events before the
        // first directory is gone again.
        let guard = events.inotify.lock().unwrap();
        std::fs::create_dir(dir.path().join("gone")).unwrap();
        std::fs::create_dir(dir.path().join("here")).unwrap();
        std::fs::remove_dir(dir.path().join("gone")).unwrap();
        drop(guard);
        let ino = std::fs::metadata(dir.path().join("here")).unwrap().ino();
        let named = named_within_a_second(&mut events, ino);
        assert_eq!(named, Some((dir.path().to_path_buf(), "here".to_string())));
        assert_eq!(
            events.take_vanished(),
            [(dir.path().to_path_buf(), "gone".to_string())]
        );
        assert_eq!(events.take_new(), [ino]);
    }

    #[test]
    fn names_directories_as_they_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let mut events = MkdirEvents::new(&[dir.path()]).unwrap();
        let child = dir.path().join("c1");
        std::fs::create_dir(&child).unwrap();
        let ino = std::fs::metadata(&child).unwrap().ino();
        let named = named_within_a_second(&mut events, ino);
        assert_eq!(named, Some((dir.path().to_path_buf(), "c1".to_string())));
        assert_eq!(events.take_new(), vec![ino]);
        assert_eq!(events.take_new(), Vec::<u64>::new());
        assert_eq!(events.name_of(ino + 1_000_000), None);
    }
}
