//! cgroup v2 for tests: the mount and a process's cgroup are read from /proc (never assumed:
//! hybrid hosts mount cgroup2 at /sys/fs/cgroup/unified, unified ones at /sys/fs/cgroup), and
//! scratch cgroups are removed however the test ends.

use std::ffi::CString;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where cgroup2 is mounted, from /proc/self/mountinfo.
pub fn v2_mount() -> Option<PathBuf> {
    mounts_of_type("cgroup2").into_iter().next()
}

/// Mount points of every filesystem of type `fstype` (e.g. `cgroup` for v1 hierarchies).
pub fn mounts_of_type(fstype: &str) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            if right.split_whitespace().next()? != fstype {
                return None;
            }
            // Mount points with spaces are octal-escaped; the tests never need those.
            left.split_whitespace().nth(4).map(PathBuf::from)
        })
        .collect()
}

/// The cgroup v2 path of `pid` relative to the mount (`0::` line of /proc/PID/cgroup).
pub fn v2_path_of(pid: u32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|s| s.trim().to_string())
}

/// A cgroup the test created; on drop its processes are killed and it is removed with every
/// child cgroup below it.
pub struct ScratchCgroup {
    /// Absolute directory.
    pub dir: PathBuf,
    /// Path relative to the cgroup2 mount, with a leading `/`.
    pub rel: String,
}

impl ScratchCgroup {
    /// Creates `name` below this process's own cgroup v2.
    pub fn new(name: &str) -> Self {
        let own = v2_path_of(std::process::id()).expect("no 0:: line in /proc/self/cgroup");
        Self::at(&format!("{}/{name}", own.trim_end_matches('/')))
    }

    /// Creates the cgroup `rel` (relative to the cgroup2 mount, e.g. `/name` next to the
    /// containers runc creates); its parent must exist.
    pub fn at(rel: &str) -> Self {
        let mount = v2_mount().expect("no cgroup2 mount in /proc/self/mountinfo");
        let rel = format!("/{}", rel.trim_start_matches('/'));
        let dir = mount.join(rel.trim_start_matches('/'));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Self { dir, rel }
    }

    /// Makes `cmd` join this cgroup between fork and exec, so everything it does is inside.
    pub fn contain(&self, cmd: &mut Command) {
        let procs = CString::new(
            self.dir
                .join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .expect("cgroup path without NUL");
        // SAFETY: only async-signal-safe calls (open, write, close) on memory prepared before
        // fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if n < 0 {
                    return Err(err);
                }
                Ok(())
            });
        }
    }

    /// Whether any process is in it or below it.
    pub fn is_populated(&self) -> bool {
        fs::read_to_string(self.dir.join("cgroup.events"))
            .map(|t| t.lines().any(|l| l.trim() == "populated 1"))
            .unwrap_or(false)
    }
}

impl Drop for ScratchCgroup {
    fn drop(&mut self) {
        if !self.dir.exists() {
            return;
        }
        // cgroup.kill ends every process below too (Linux 5.14+).
        let _ = fs::write(self.dir.join("cgroup.kill"), b"1");
        for _ in 0..250 {
            if !self.is_populated() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = remove_tree(&self.dir);
    }
}

/// Removes a cgroup and its child cgroups, deepest first (cgroupfs needs rmdir per level).
pub fn remove_tree(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)?.flatten() {
        if entry.file_type()?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    fs::remove_dir(dir)
}
