//! A recorder's kernel state pinned in a bpffs directory (`record --pin-dir`): every map under
//! `maps/`, every program's link under `links/`, and `state/` saying which build pinned
//! them and how it attached. Pinned links keep the programs counting after the recorder ends;
//! the next recorder with the same directory adopts the maps (see `adopt`), and
//! `agent-audit unpin` removes it all (removing a link's pin detaches its program, and the
//! programs and maps are freed once nothing refers to them).
//!
//! Minimum kernel: 5.15 — `sched_process_exec` is a classic tracepoint, whose link can only
//! be pinned where it is a BPF link (`BPF_LINK_CREATE` for perf events).

use std::path::{Path, PathBuf};

use aya::programs::links::FdLink;

use super::{CapabilityHook, CounterOptions, ExitCounting, SysEnterKind};

/// The bpffs mount pinned objects must live on.
pub const BPFFS: &str = "/sys/fs/bpf";

/// `BPF_FS_MAGIC` from `linux/magic.h`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// What can go wrong with a pin directory.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The directory holds another build's (or other options') programs.
    #[error(
        "{dir} holds kernel programs pinned by another agent-audit build or with other \
         options ({found}; this one is {ours}): they cannot be adopted. Run `agent-audit unpin \
         {dir}` to detach and remove them (their counts since the last snapshot are lost)"
    )]
    OtherBuild {
        /// The directory.
        dir: PathBuf,
        /// Its state's fingerprint.
        found: String,
        /// This build's.
        ours: String,
    },
    /// Another process holds the directory (a running recorder, or `unpin`).
    #[error(
        "{0} is in use by another agent-audit process (a recorder with the same --pin-dir, or \
         unpin): one at a time"
    )]
    InUse(PathBuf),
    /// The directory is not on a BPF file system.
    #[error("{0} is not on a BPF file system (bpffs): mount one at {BPFFS} or choose a directory on one")]
    NotBpffs(PathBuf),
    /// Creating, reading or removing a pin failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A link is not a BPF link (a classic tracepoint before Linux 5.15): it cannot be pinned.
    #[error(
        "a program's link cannot be pinned on this kernel (--pin-dir needs Linux 5.15 or later)"
    )]
    NotALink,
    /// Pinning a link failed.
    #[error("pinning a link at {path}: {source}")]
    Link {
        /// Where.
        path: PathBuf,
        /// aya's error.
        source: aya::pin::PinError,
    },
}

impl PinError {
    /// 75 for another build's pins (see [`crate::exit::ExitCode::PINNED_OTHER_BUILD`]), 69 for
    /// a directory not on bpffs, 74 otherwise.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        use crate::exit::ExitCode;
        match self {
            PinError::OtherBuild { .. } | PinError::InUse(_) => ExitCode::PINNED_OTHER_BUILD,
            PinError::NotBpffs(_) | PinError::NotALink => ExitCode::UNAVAILABLE,
            PinError::Io { .. } | PinError::Link { .. } => ExitCode::IO,
        }
    }
}

/// How the pinned programs were attached, so that an adopting recorder knows without
/// attaching anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct PinState {
    /// The kernel object and load options (see [`fingerprint`]).
    pub fingerprint: String,
    /// `tp_btf` or `raw_tp`.
    pub sys_enter: String,
    /// The refusal programs are attached.
    pub refusals: bool,
    /// The departure programs are attached.
    pub departures: bool,
    /// The capability hook's name, when attached.
    pub capabilities: Option<String>,
}

impl PinState {
    pub(super) fn sys_enter_kind(&self) -> SysEnterKind {
        match self.sys_enter.as_str() {
            "raw_tp" => SysEnterKind::RawTp,
            _ => SysEnterKind::TpBtf,
        }
    }

    pub(super) fn capability_hook(&self) -> Option<CapabilityHook> {
        [CapabilityHook::FExit, CapabilityHook::TpBtf]
            .into_iter()
            .find(|h| self.capabilities.as_deref() == Some(h.name()))
    }
}

/// A pin directory, locked (`flock`) by this process for as long as the value lives.
#[derive(Clone, Debug)]
pub struct PinDir {
    dir: PathBuf,
    _lock: std::sync::Arc<std::fs::File>,
}

impl PinDir {
    /// `dir`, created (with its parents) if missing; it must be on bpffs. Mounts bpffs at
    /// [`BPFFS`] first when nothing is mounted there (a fresh container's `/sys`).
    pub fn open(dir: &Path) -> Result<Self, PinError> {
        ensure_bpffs();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PinError::Io { path, source }
        };
        std::fs::create_dir_all(dir.join("maps")).map_err(io(dir))?;
        std::fs::create_dir_all(dir.join("links")).map_err(io(dir))?;
        if !is_bpffs(dir) {
            return Err(PinError::NotBpffs(dir.to_path_buf()));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            _lock: std::sync::Arc::new(lock(dir)?),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where map `name` is pinned.
    pub(super) fn map_path(&self, name: &str) -> PathBuf {
        self.dir.join("maps").join(name)
    }

    /// The state of a previous recorder, if one pinned anything here.
    pub(super) fn state(&self) -> Result<Option<PinState>, PinError> {
        read_state(&self.dir)
    }

    /// Whether anything is pinned here.
    pub(super) fn holds_pins(&self) -> bool {
        ["maps", "links"]
            .iter()
            .any(|sub| std::fs::read_dir(self.dir.join(sub)).is_ok_and(|mut d| d.next().is_some()))
    }

    /// Whether any link is pinned here (a state without links holds nothing to adopt).
    pub(super) fn holds_links(&self) -> bool {
        std::fs::read_dir(self.dir.join("links")).is_ok_and(|mut d| d.next().is_some())
    }

    /// Records how this recorder attached; written last, once every link is pinned, so that a
    /// state always means complete pins. bpffs holds no regular files: each field is the name
    /// of an empty directory under `state/` (`key=value`), on the node like the pins and gone
    /// after a reboot like them.
    pub(super) fn write_state(&self, state: &PinState) -> Result<(), PinError> {
        let dir = self.dir.join(STATE);
        for entry in state.entries() {
            let path = dir.join(entry);
            std::fs::create_dir_all(&path).map_err(|source| PinError::Io { path, source })?;
        }
        Ok(())
    }

    /// Pins `link` as the `index`th.
    pub(super) fn pin_link(&self, index: usize, link: FdLink) -> Result<(), PinError> {
        let path = self.dir.join("links").join(index.to_string());
        link.pin(&path)
            .map(drop)
            .map_err(|source| PinError::Link { path, source })
    }
}

/// The subdirectory holding the state (see [`PinDir::write_state`]).
const STATE: &str = "state";

impl PinState {
    /// `key=value` names, `/` written as `:`.
    fn entries(&self) -> Vec<String> {
        let mut entries = vec![
            format!("fingerprint={}", self.fingerprint),
            format!("sys_enter={}", self.sys_enter),
            format!("refusals={}", self.refusals),
            format!("departures={}", self.departures),
        ];
        if let Some(c) = &self.capabilities {
            entries.push(format!("capabilities={}", c.replace('/', ":")));
        }
        entries
    }

    /// The state named by `entries`; `None` without a fingerprint.
    fn from_entries<'a>(entries: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut state = PinState {
            fingerprint: String::new(),
            sys_enter: String::new(),
            refusals: false,
            departures: false,
            capabilities: None,
        };
        for entry in entries {
            let Some((key, value)) = entry.split_once('=') else {
                continue;
            };
            match key {
                "fingerprint" => state.fingerprint = value.to_string(),
                "sys_enter" => state.sys_enter = value.to_string(),
                "refusals" => state.refusals = value == "true",
                "departures" => state.departures = value == "true",
                "capabilities" => state.capabilities = Some(value.replace(':', "/")),
                _ => {}
            }
        }
        (!state.fingerprint.is_empty()).then_some(state)
    }
}

fn read_state(dir: &Path) -> Result<Option<PinState>, PinError> {
    let path = dir.join(STATE);
    let entries = match std::fs::read_dir(&path) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(PinError::Io { path, source }),
    };
    let names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    Ok(PinState::from_entries(names.iter().map(String::as_str)))
}

/// The fingerprint of what a recorder loads: the kernel object's bytes and every option that
/// changes the maps' layout or what the programs count. Equal fingerprints can share maps.
pub(super) fn fingerprint(
    object: &[u8],
    opts: CounterOptions,
    slots: u32,
    exits: ExitCounting,
) -> String {
    use std::hash::Hasher;
    let mut hash = fnv::FnvHasher::default();
    hash.write(object);
    hash.write(format!("{opts:?} {slots} {exits:?} {}", env!("CARGO_PKG_VERSION")).as_bytes());
    format!("{:016x}", hash.finish())
}

/// What `unpin` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnpinWhen {
    /// Always.
    Always,
    /// Only when another build's (or other options') programs are pinned there: the init
    /// step of an upgraded DaemonSet, which keeps its own build's counts.
    OtherBuild,
}

/// What `unpin` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unpinned {
    /// Removed this many pins.
    Removed(usize),
    /// The pins are this build's: kept (`--if-other-build`).
    KeptOwnBuild,
}

/// Removes every pin under `dir` (links first: that detaches the programs) and the directory.
pub fn unpin(dir: &Path, when: UnpinWhen) -> Result<Unpinned, PinError> {
    let _lock = match lock(dir) {
        Ok(file) => Some(file),
        // Nothing there: nothing to remove.
        Err(PinError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Unpinned::Removed(0))
        }
        Err(e) => return Err(e),
    };
    if when == UnpinWhen::OtherBuild {
        let ours = fingerprint(
            super::load::object(),
            super::CounterOptions::new(super::AttachMode::Auto),
            agent_audit_ebpf::MAX_TARGETS,
            ExitCounting::Off,
        );
        if read_state(dir)?.is_some_and(|s| s.fingerprint == ours) {
            return Ok(Unpinned::KeptOwnBuild);
        }
    }
    let removed = remove_pins(dir)?;
    for sub in ["links", "maps", STATE] {
        remove_dir_if_there(&dir.join(sub))?;
    }
    remove_dir_if_there(dir)?;
    Ok(Unpinned::Removed(removed))
}

/// Removes every pin under `dir` (links first: that detaches the programs) and the state;
/// the directories stay. Returns how many pins were removed.
pub(super) fn remove_pins(dir: &Path) -> Result<usize, PinError> {
    let mut removed = 0;
    for sub in ["links", "maps"] {
        let sub = dir.join(sub);
        let entries = match std::fs::read_dir(&sub) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(PinError::Io { path: sub, source }),
        };
        for entry in entries {
            let path = entry
                .map_err(|source| PinError::Io {
                    path: sub.clone(),
                    source,
                })?
                .path();
            std::fs::remove_file(&path).map_err(|source| PinError::Io { path, source })?;
            removed += 1;
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir.join(STATE)) {
        for entry in entries.flatten() {
            remove_dir_if_there(&entry.path())?;
        }
    }
    Ok(removed)
}

/// An exclusive `flock` on `dir` (any file system takes one), without waiting.
fn lock(dir: &Path) -> Result<std::fs::File, PinError> {
    use std::os::fd::AsRawFd as _;
    let file = std::fs::File::open(dir).map_err(|source| PinError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    // SAFETY: flock on an fd this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => PinError::InUse(dir.to_path_buf()),
            _ => PinError::Io {
                path: dir.to_path_buf(),
                source: err,
            },
        });
    }
    Ok(file)
}

fn remove_dir_if_there(dir: &Path) -> Result<(), PinError> {
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(PinError::Io {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn is_bpffs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a NUL-terminated path and a zeroed statfs the call fills.
    // `f_type` is i64 here, 32 bits on some other architectures: converted, not cast.
    #[allow(clippy::useless_conversion)]
    unsafe {
        let mut fs: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut fs) == 0 && i64::from(fs.f_type) == BPF_FS_MAGIC
    }
}

/// Mounts bpffs at [`BPFFS`] when it is not there (hosts mount it at boot; a container's
/// fresh `/sys` may not have it).
fn ensure_bpffs() {
    if is_bpffs(Path::new(BPFFS)) {
        return;
    }
    // SAFETY: constant NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            c"/sys/fs/bpf".as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        tracing::info!("mounted bpffs at {BPFFS}");
    } else {
        tracing::warn!(
            "bpffs is not mounted at {BPFFS} and mounting it failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_directory_names() {
        let state = PinState {
            fingerprint: "00ff".into(),
            sys_enter: "tp_btf".into(),
            refusals: true,
            departures: true,
            capabilities: Some("fexit/cap_capable".into()),
        };
        let entries = state.entries();
        assert!(entries.iter().all(|e| !e.contains('/')));
        assert_eq!(
            PinState::from_entries(entries.iter().map(String::as_str)),
            Some(state)
        );
        assert_eq!(PinState::from_entries(["refusals=true"]), None);
    }

    #[test]
    fn fingerprints_differ_by_object_and_options() {
        let opts = CounterOptions::new(super::super::AttachMode::Auto);
        let a = fingerprint(b"one", opts, 256, ExitCounting::Off);
        assert_eq!(a, fingerprint(b"one", opts, 256, ExitCounting::Off));
        assert_ne!(a, fingerprint(b"two", opts, 256, ExitCounting::Off));
        let no_args = CounterOptions {
            args: false,
            ..opts
        };
        assert_ne!(a, fingerprint(b"one", no_args, 256, ExitCounting::Off));
    }

    #[test]
    fn state_round_trips_its_hooks() {
        let state = PinState {
            fingerprint: "0".into(),
            sys_enter: "raw_tp".into(),
            refusals: true,
            departures: false,
            capabilities: Some("tp_btf/cap_capable".into()),
        };
        assert_eq!(state.sys_enter_kind(), SysEnterKind::RawTp);
        assert_eq!(state.capability_hook(), Some(CapabilityHook::TpBtf));
    }
}
