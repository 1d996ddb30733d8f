//! cgroup v2: finding the mount, naming a cgroup by path, id or pid, and making the fresh
//! cgroup that `run` starts its command in.
//!
//! The mount is read from /proc/self/mountinfo, never assumed: unified hosts mount cgroup2 at
//! /sys/fs/cgroup, hybrid ones (this project's CI) at /sys/fs/cgroup/unified.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::exit::ExitCode;

/// `statfs.f_type` of a cgroup2 filesystem.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// `statfs.f_type` of a cgroup v1 hierarchy.
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;

/// A cgroup that cannot be used as a target.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup2 filesystem is mounted.
    #[error(
        "no cgroup v2 (cgroup2) filesystem is mounted (checked /proc/self/mountinfo); \
         mount one with `mount -t cgroup2 none /sys/fs/cgroup/unified` or boot with \
         systemd.unified_cgroup_hierarchy=1"
    )]
    NoV2Mount,
    /// The path does not exist.
    #[error("cgroup {path} does not exist (the cgroup v2 mount is {mount}; give a path under it or relative to it)")]
    NotFound {
        /// The path tried.
        path: PathBuf,
        /// The cgroup2 mount.
        mount: PathBuf,
    },
    /// The path is a cgroup of a v1 hierarchy: this host has it, but not as cgroup v2.
    #[error("{path} is not a cgroup v2 directory (it is on a cgroup v1 hierarchy); the cgroup v2 mount is {mount}")]
    NotV2 {
        /// The path given.
        path: PathBuf,
        /// The cgroup2 mount.
        mount: PathBuf,
    },
    /// The path is an ordinary directory (`../../etc`): there is no such cgroup.
    #[error("{path} is not a cgroup (a directory outside every cgroup hierarchy); give a path under the cgroup v2 mount {mount} or relative to it")]
    NotACgroup {
        /// The path given.
        path: PathBuf,
        /// The cgroup2 mount.
        mount: PathBuf,
    },
    /// No cgroup under the mount has this id.
    #[error("no cgroup v2 with id {id} under {mount} (it may have been removed)")]
    IdNotFound {
        /// The id given.
        id: u64,
        /// The cgroup2 mount.
        mount: PathBuf,
    },
    /// The process does not exist.
    #[error("no process with pid {pid} (/proc/{pid}/cgroup: {source})")]
    NoSuchPid {
        /// The pid given.
        pid: u32,
        /// What reading its cgroup file said.
        source: io::Error,
    },
    /// The process has no cgroup v2 membership line.
    #[error("process {pid} has no cgroup v2 entry (\"0::\") in /proc/{pid}/cgroup")]
    PidNotInV2 {
        /// The pid given.
        pid: u32,
    },
    /// Creating, joining or removing a cgroup failed.
    #[error("cannot {action} cgroup {path}: {source}")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The cgroup directory.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
}

impl CgroupError {
    /// The documented exit code: 66 for a missing cgroup or pid (or a directory that is no
    /// cgroup at all), 69 when the host has no usable cgroup v2 (or the path is cgroup v1), 77 when the kernel refuses for lack of privileges, 74 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            e if e.is_not_found() => ExitCode::NO_INPUT,
            Self::NoV2Mount | Self::NotV2 { .. } | Self::PidNotInV2 { .. } => ExitCode::UNAVAILABLE,
            Self::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                ExitCode::NO_PERM
            }
            _ => ExitCode::IO,
        }
    }

    /// Whether the error means "does not exist" rather than "cannot be used".
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::NotFound { .. }
                | Self::NotACgroup { .. }
                | Self::IdNotFound { .. }
                | Self::NoSuchPid { .. }
        )
    }
}

/// The cgroup2 filesystem of this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupV2Mount {
    /// Where it is mounted, e.g. `/sys/fs/cgroup`.
    pub path: PathBuf,
}

/// One cgroup v2 directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroup {
    /// Absolute directory, under the mount.
    pub dir: PathBuf,
    /// Path relative to the mount, with a leading `/` (as in /proc/PID/cgroup).
    pub rel: String,
    /// cgroup v2 id: the inode number of `dir`, what `bpf_get_current_cgroup_id()` returns.
    pub id: u64,
}

impl CgroupV2Mount {
    /// Finds the cgroup2 mount in /proc/self/mountinfo.
    pub fn discover() -> Result<Self, CgroupError> {
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Self::from_mountinfo(&info).ok_or(CgroupError::NoV2Mount)
    }

    /// Parses mountinfo text; the first cgroup2 mount wins.
    pub fn from_mountinfo(info: &str) -> Option<Self> {
        info.lines().find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            if fstype != "cgroup2" {
                return None;
            }
            let mount_point = left.split_whitespace().nth(4)?;
            Some(Self {
                path: PathBuf::from(unescape_mountinfo(mount_point)),
            })
        })
    }

    /// Resolves a path given by the user: absolute under the mount, or relative to it (with
    /// or without a leading `/`, so `/docker/ID` from /proc/PID/cgroup works as given).
    pub fn resolve_path(&self, given: &Path) -> Result<Cgroup, CgroupError> {
        let candidates: Vec<PathBuf> = if given.starts_with(&self.path) {
            vec![given.to_path_buf()]
        } else if given.is_absolute() {
            // `/docker/ID` (as /proc/PID/cgroup shows it) first; the literal path last, so
            // that a cgroup v1 path is reported as such rather than as missing.
            let rel = given.strip_prefix("/").unwrap_or(given);
            vec![self.path.join(rel), given.to_path_buf()]
        } else {
            vec![self.path.join(given)]
        };
        for dir in &candidates {
            if dir.is_dir() {
                return self.cgroup_at(dir, given);
            }
        }
        Err(CgroupError::NotFound {
            path: given.to_path_buf(),
            mount: self.path.clone(),
        })
    }

    /// Describes the cgroup at `dir`, which must be a directory on this cgroup2 mount.
    fn cgroup_at(&self, dir: &Path, given: &Path) -> Result<Cgroup, CgroupError> {
        let not_v2 = || CgroupError::NotV2 {
            path: given.to_path_buf(),
            mount: self.path.clone(),
        };
        match fs_type(dir) {
            Some(CGROUP2_SUPER_MAGIC) => {}
            Some(CGROUP_SUPER_MAGIC) => return Err(not_v2()),
            _ => {
                return Err(CgroupError::NotACgroup {
                    path: given.to_path_buf(),
                    mount: self.path.clone(),
                })
            }
        }
        let dir = dir.canonicalize().map_err(|_| not_v2())?;
        let rel = dir.strip_prefix(&self.path).map_err(|_| not_v2())?;
        let id = fs::metadata(&dir)
            .map_err(|source| CgroupError::Io {
                action: "stat",
                path: dir.clone(),
                source,
            })?
            .ino();
        Ok(Cgroup {
            rel: format!("/{}", rel.display()),
            dir,
            id,
        })
    }

    /// Finds the cgroup with this id by walking the hierarchy.
    pub fn resolve_id(&self, id: u64) -> Result<Cgroup, CgroupError> {
        let mut stack = vec![self.path.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(meta) = fs::metadata(&dir) else {
                continue;
            };
            if meta.ino() == id {
                return self.cgroup_at(&dir, &dir);
            }
            if let Ok(entries) = fs::read_dir(&dir) {
                stack.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                        .map(|e| e.path()),
                );
            }
        }
        Err(CgroupError::IdNotFound {
            id,
            mount: self.path.clone(),
        })
    }

    /// The cgroup v2 that process `pid` belongs to.
    pub fn resolve_pid(&self, pid: u32) -> Result<Cgroup, CgroupError> {
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .map_err(|source| CgroupError::NoSuchPid { pid, source })?;
        let rel = text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or(CgroupError::PidNotInV2 { pid })?;
        self.resolve_path(Path::new(rel.trim()))
    }

    /// Creates a new, empty cgroup `name` below the cgroup of this process (or below the root
    /// when that is not possible, e.g. inside a container that cannot write its own cgroup).
    pub fn create_child_of_self(&self, name: &str) -> Result<Cgroup, CgroupError> {
        let own = self.resolve_pid(std::process::id())?;
        let mut last_err = None;
        for parent in [own.dir.clone(), self.path.clone()] {
            let dir = parent.join(name);
            match fs::create_dir(&dir) {
                Ok(()) => return self.cgroup_at(&dir, &dir),
                Err(source) => {
                    last_err = Some(CgroupError::Io {
                        action: "create",
                        path: dir,
                        source,
                    })
                }
            }
        }
        Err(last_err.expect("at least one parent was tried"))
    }
}

impl Cgroup {
    /// Whether the directory still exists (containers' cgroups vanish when they stop).
    pub fn exists(&self) -> bool {
        fs::metadata(&self.dir)
            .map(|m| m.ino() == self.id)
            .unwrap_or(false)
    }

    /// Whether any process is in this cgroup or below it (`populated` in cgroup.events).
    pub fn is_populated(&self) -> Result<bool, CgroupError> {
        let events = fs::read_to_string(self.dir.join("cgroup.events")).map_err(|source| {
            CgroupError::Io {
                action: "read cgroup.events of",
                path: self.dir.clone(),
                source,
            }
        })?;
        Ok(events.lines().any(|l| l.trim() == "populated 1"))
    }

    /// The processes in this cgroup and in every cgroup below it, in `cgroup.procs` order.
    pub fn processes(&self) -> Result<Vec<u32>, CgroupError> {
        let mut pids = Vec::new();
        collect_procs(&self.dir, &mut pids).map_err(|source| CgroupError::Io {
            action: "list the processes of",
            path: self.dir.clone(),
            source,
        })?;
        Ok(pids)
    }

    /// Kills every process in the cgroup and below it: at once with `cgroup.kill` (Linux
    /// 5.14), else with SIGKILL to each process listed until none is left.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        // Opened without O_CREAT: on a kernel without the file this is ENOENT (creating a file
        // in cgroupfs would be EACCES, which looks like a privilege problem).
        let written = fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.kill"))
            .and_then(|mut f| io::Write::write_all(&mut f, b"1"));
        match written {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.dir.exists() => {
                self.kill_listed()
            }
            Err(source) => Err(CgroupError::Io {
                action: "kill the processes of",
                path: self.dir.clone(),
                source,
            }),
        }
    }

    /// The fallback of [`Cgroup::kill_all`] for kernels before 5.14: SIGKILL to every pid in
    /// `cgroup.procs` (and below), again until the listing is empty, since a process may fork
    /// between the listing and its kill. Gives up after [`KILL_LISTED_FOR`].
    pub fn kill_listed(&self) -> Result<(), CgroupError> {
        let started = std::time::Instant::now();
        loop {
            let pids = self.processes()?;
            if pids.is_empty() {
                return Ok(());
            }
            if started.elapsed() > KILL_LISTED_FOR {
                return Err(CgroupError::Io {
                    action: "kill the processes of",
                    path: self.dir.clone(),
                    source: io::Error::other(format!(
                        "{} process(es) still listed after SIGKILL for {KILL_LISTED_FOR:?}",
                        pids.len()
                    )),
                });
            }
            for pid in pids {
                // SAFETY: plain kill(2); a pid that has exited meanwhile gives ESRCH. The pid
                // was the kernel's pid_t, printed: `cast_signed` gives it back.
                unsafe { libc::kill(pid.cast_signed(), libc::SIGKILL) };
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Removes the (empty) cgroup and any empty child cgroups the workload left.
    pub fn remove(&self) -> Result<(), CgroupError> {
        remove_tree(&self.dir).map_err(|source| CgroupError::Io {
            action: "remove",
            path: self.dir.clone(),
            source,
        })
    }
}

/// How long [`Cgroup::kill_listed`] keeps killing before it reports the cgroup unkillable
/// (a process stuck in uninterruptible sleep, e.g. on a dead NFS server).
pub const KILL_LISTED_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// Appends the pids of `dir`'s `cgroup.procs` and of every cgroup below it. A child cgroup
/// removed meanwhile is skipped.
fn collect_procs(dir: &Path, pids: &mut Vec<u32>) -> io::Result<()> {
    let procs = fs::read_to_string(dir.join("cgroup.procs"))?;
    pids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    for entry in fs::read_dir(dir)?.flatten() {
        if !entry.file_type()?.is_dir() {
            continue;
        }
        match collect_procs(&entry.path(), pids) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

fn remove_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)?.flatten() {
        if entry.file_type()?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    // cgroupfs directories are removed with rmdir even though they list control files.
    fs::remove_dir(dir)
}

/// The filesystem type (`statfs.f_type`) `dir` is on.
fn fs_type(dir: &Path) -> Option<i64> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: `statfs` is plain C data (integers): all zeroes is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a correctly sized out-struct.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_type as i64)
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const UNIFIED: &str = "\
25 20 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn finds_the_cgroup2_mount_on_hybrid_and_unified_hosts() {
        let m = CgroupV2Mount::from_mountinfo(HYBRID).unwrap();
        assert_eq!(m.path, Path::new("/sys/fs/cgroup/unified"));
        let m = CgroupV2Mount::from_mountinfo(UNIFIED).unwrap();
        assert_eq!(m.path, Path::new("/sys/fs/cgroup"));
        assert!(CgroupV2Mount::from_mountinfo("31 23 0:28 / /x rw - tmpfs tmpfs rw\n").is_none());
    }

    #[test]
    fn unescapes_mount_points() {
        assert_eq!(unescape_mountinfo(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn missing_and_non_v2_paths_name_the_mount() {
        let Ok(mount) = CgroupV2Mount::discover() else {
            return; // no cgroup2 on this host: covered by the parser tests above
        };
        let err = mount
            .resolve_path(Path::new("/no/such/cgroup-xyz"))
            .unwrap_err();
        assert!(err.is_not_found());
        assert!(
            err.to_string().contains(&mount.path.display().to_string()),
            "{err}"
        );
        let err = mount.resolve_path(Path::new("/proc")).unwrap_err();
        assert!(matches!(err, CgroupError::NotACgroup { .. }), "{err}");
        assert_eq!(err.exit_code(), ExitCode::NO_INPUT);
        let escaping = Path::new("../../../../../../../etc");
        let err = mount.resolve_path(escaping).unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    /// The fallback for kernels without `cgroup.kill`, exercised on any kernel: a shell and
    /// its two background children, one in a child cgroup, are all gone afterwards.
    #[test]
    fn killing_each_listed_process_empties_the_cgroup_and_those_below() {
        let Ok(mount) = CgroupV2Mount::discover() else {
            return;
        };
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: creating cgroups needs root");
            return;
        }
        let cgroup = mount
            .create_child_of_self(&format!("agent-audit-killtest-{}", std::process::id()))
            .unwrap();
        let nested = cgroup.dir.join("nested");
        fs::create_dir(&nested).unwrap();
        let join = |dir: &Path| {
            use std::os::unix::process::CommandExt;
            let procs = fs::File::options()
                .write(true)
                .open(dir.join("cgroup.procs"))
                .unwrap();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&procs);
            let mut cmd = std::process::Command::new("sh");
            cmd.args(["-c", "trap '' TERM; sleep 300 & sleep 300 & wait"]);
            // The shell joins before it execs, so that its sleeps start in the cgroup.
            // SAFETY: only write(2) on a descriptor opened before fork.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::write(fd, b"0".as_ptr().cast(), 1) == 1 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
            cmd.spawn().unwrap()
        };
        let mut shells = [join(&cgroup.dir), join(&nested)];
        // The shells fork their sleeps after joining: wait until all six are listed.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while cgroup.processes().unwrap().len() < 6 {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                cgroup.processes()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        cgroup.kill_listed().unwrap();
        assert_eq!(cgroup.processes().unwrap(), Vec::<u32>::new());
        for shell in &mut shells {
            let status = shell.wait().unwrap();
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(libc::SIGKILL)
            );
        }
        cgroup.remove().unwrap();
    }

    #[test]
    fn own_cgroup_resolves_by_pid_and_by_id() {
        let Ok(mount) = CgroupV2Mount::discover() else {
            return;
        };
        let own = mount.resolve_pid(std::process::id()).unwrap();
        assert!(own.exists());
        assert_eq!(mount.resolve_id(own.id).unwrap(), own);
        let err = mount.resolve_pid(u32::MAX - 1).unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }
}
