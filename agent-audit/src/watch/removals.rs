//! Whether any target cgroup may have gone since the last look, from inotify: the directory
//! that holds each target's is watched for removals and renames of its entries, so the
//! recorder looks at its targets' directories only after one of them reported something,
//! instead of `stat`ing every target on every poll (256 idle targets: 1 280 `statx` a second).
//! The parent is watched, not the target itself: cgroupfs reports a removed directory to its
//! parent's watchers only (no `IN_DELETE_SELF`).

use std::collections::HashSet;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Whether a target's parent directory is watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watched {
    /// Since an earlier call: its removal since then is in the queue.
    Before,
    /// From this call on: it may have gone just before.
    Now,
    /// It could not be (gone already, no inotify).
    Not,
}

/// One inotify instance with a watch on the parent of each target directory.
pub struct RemovalEvents {
    fd: Option<OwnedFd>,
    /// Cgroup ids whose parent directory is watched.
    watched: HashSet<u64>,
}

impl RemovalEvents {
    /// An instance with no watch yet. If inotify is unavailable, every check says "look".
    pub fn new() -> Self {
        // SAFETY: plain syscall; the fd is owned below.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        let fd = if raw < 0 {
            tracing::debug!(
                "inotify unavailable ({}): targets are checked every poll",
                io::Error::last_os_error()
            );
            None
        } else {
            // SAFETY: `raw` is a fresh fd nobody else owns.
            Some(unsafe { OwnedFd::from_raw_fd(raw) })
        };
        Self {
            fd,
            watched: HashSet::new(),
        }
    }

    /// Watches the parent of cgroup `id`'s directory `dir`, once per target (so that a parent
    /// created anew is watched anew). Removals before the watch are not reported: a target
    /// not [`Watched::Before`] must be looked at once.
    pub fn watch(&mut self, id: u64, dir: &Path) -> Watched {
        if self.watched.contains(&id) {
            return Watched::Before;
        }
        let (Some(fd), Some(parent)) = (&self.fd, dir.parent()) else {
            return Watched::Not;
        };
        let Ok(path) = CString::new(parent.as_os_str().as_encoded_bytes()) else {
            return Watched::Not;
        };
        // SAFETY: a valid fd and a NUL-terminated path.
        let wd = unsafe {
            libc::inotify_add_watch(
                fd.as_raw_fd(),
                path.as_ptr(),
                libc::IN_DELETE | libc::IN_MOVED_FROM | libc::IN_ONLYDIR,
            )
        };
        if wd < 0 {
            return Watched::Not;
        }
        self.watched.insert(id);
        Watched::Now
    }

    /// Whether any watched parent reported a removal or rename since the last call (the
    /// queue is drained). An unreadable queue counts as one.
    pub fn take_any(&mut self) -> bool {
        let Some(fd) = &self.fd else {
            return true;
        };
        let mut any = false;
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reading into a local buffer of the given size.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                any = true;
                continue;
            }
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock {
                return any;
            }
            return true;
        }
    }
}

impl Default for RemovalEvents {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removal_next_to_a_target_is_reported_and_a_missing_parent_is_not_watched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        std::fs::create_dir(&target).unwrap();
        let mut events = RemovalEvents::new();
        assert_eq!(events.watch(1, &target), Watched::Now);
        assert_eq!(events.watch(1, &target), Watched::Before);
        assert!(!events.take_any(), "nothing happened yet");
        std::fs::remove_dir(&target).unwrap();
        assert!(events.take_any(), "the removal was not reported");
        assert!(!events.take_any(), "the queue was drained");
        assert_eq!(events.watch(2, &dir.path().join("missing/t")), Watched::Not);
    }
}
