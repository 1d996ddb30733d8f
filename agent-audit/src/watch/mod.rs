//! `record --cgroup-glob PATTERN`: cgroups named by a pattern, both those that exist now and,
//! with `--wait`, those created later — picked up by the kernel program itself before their
//! first task's first syscall (see `WATCH_PARENT` in agent-audit-ebpf).

mod mkdir_events;
mod removals;

pub use mkdir_events::MkdirEvents;
pub use removals::{RemovalEvents, Watched};

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::cgroup::{Cgroup, CgroupError, CgroupV2Mount};

/// A pattern such as `docker/*` or `system.slice/docker-*.scope`, relative to the cgroup2
/// mount. Only the last component may hold wildcards (`*`, `?`).
#[derive(Clone, Debug)]
pub struct CgroupGlob {
    /// The pattern as given.
    pub pattern: String,
    /// The cgroup the matches are created in.
    pub parent: Cgroup,
    child_pattern: String,
}

/// A pattern that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GlobError {
    /// Wildcards before the last component, or no wildcard-free parent.
    #[error("unsupported --cgroup-glob {0:?}: only the last path component may contain * or ? (e.g. docker/* or system.slice/docker-*.scope)")]
    Unsupported(String),
    /// The parent cgroup does not exist.
    #[error("--cgroup-glob {pattern:?}: {source}")]
    Parent {
        /// The pattern.
        pattern: String,
        /// Why the parent cannot be used.
        source: CgroupError,
    },
    /// No cgroup matches the patterns, and `record` was not told to wait for one.
    #[error("no cgroup matches {}; add --wait to record the next ones created", .0.join(", "))]
    NothingMatches(Vec<String>),
}

impl GlobError {
    /// The documented exit code: 2 for a pattern agent-audit cannot watch, the parent
    /// cgroup's otherwise.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        match self {
            GlobError::Unsupported(_) | GlobError::NothingMatches(_) => {
                crate::exit::ExitCode::USAGE
            }
            GlobError::Parent { source, .. } => source.exit_code(),
        }
    }
}

impl CgroupGlob {
    /// Parses a pattern; its parent cgroup must exist.
    pub fn parse(mount: &CgroupV2Mount, pattern: &str) -> Result<Self, GlobError> {
        let trimmed = pattern.trim_matches('/');
        let (parent, last) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
        if last.is_empty() || parent.contains(['*', '?']) {
            return Err(GlobError::Unsupported(pattern.to_string()));
        }
        let parent = mount
            .resolve_path(Path::new(&format!("/{parent}")))
            .map_err(|source| GlobError::Parent {
                pattern: pattern.to_string(),
                source,
            })?;
        Ok(Self {
            pattern: pattern.to_string(),
            parent,
            child_pattern: last.to_string(),
        })
    }

    /// Parses the pattern of a container runtime's layout (`record --wait --container`):
    /// when its parent does not exist yet, it is created, as the runtime itself does on its
    /// first container (Docker's cgroupfs driver creates `docker/` in the cgroup v2 hierarchy
    /// of a hybrid host only then, with mkdir -p semantics, so creating it first changes
    /// nothing for Docker). Without it, a recorder armed on a freshly booted host could not
    /// watch for the very first container.
    pub fn parse_runtime_layout(mount: &CgroupV2Mount, pattern: &str) -> Result<Self, GlobError> {
        match Self::parse(mount, pattern) {
            Err(GlobError::Parent { source, .. }) if source.is_not_found() => {}
            other => return other,
        }
        let parent = pattern
            .trim_matches('/')
            .rsplit_once('/')
            .map_or("", |(p, _)| p);
        let dir = mount.path.join(parent);
        match fs::create_dir(&dir) {
            Ok(()) => {
                tracing::info!(cgroup = %dir.display(), "created the runtime's parent cgroup, which it creates on its first container")
            }
            // Created meanwhile by the runtime: as good.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(GlobError::Parent {
                    pattern: pattern.to_string(),
                    source: CgroupError::Io {
                        action: "create",
                        path: dir,
                        source,
                    },
                })
            }
        }
        Self::parse(mount, pattern)
    }

    /// Whether a child cgroup of the parent with this directory name matches.
    pub fn matches_child(&self, name: &str) -> bool {
        wildcard_match(self.child_pattern.as_bytes(), name.as_bytes())
    }

    /// Matching cgroups that exist now.
    pub fn existing(&self, mount: &CgroupV2Mount) -> Vec<Cgroup> {
        self.existing_children(mount)
            .into_iter()
            .filter(|c| {
                let name = c.dir.file_name().map(|n| n.to_string_lossy().into_owned());
                name.is_some_and(|n| self.matches_child(&n))
            })
            .collect()
    }

    /// Every child cgroup of the parent that exists now, matching or not.
    pub fn existing_children(&self, mount: &CgroupV2Mount) -> Vec<Cgroup> {
        let Ok(entries) = fs::read_dir(&self.parent.dir) else {
            return Vec::new();
        };
        let mut found: Vec<Cgroup> = entries
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| mount.resolve_path(&e.path()).ok())
            .collect();
        found.sort_by(|a, b| a.rel.cmp(&b.rel));
        found
    }

    /// The child of the parent whose cgroup id is `id`, if it still exists.
    pub fn child_by_id(&self, mount: &CgroupV2Mount, id: u64) -> Option<Cgroup> {
        fs::read_dir(&self.parent.dir)
            .ok()?
            .flatten()
            .find(|e| {
                e.metadata()
                    .map(|m| m.is_dir() && m.ino() == id)
                    .unwrap_or(false)
            })
            .and_then(|e| mount.resolve_path(&e.path()).ok())
    }
}

/// Shell-style matching of `*` (any run) and `?` (one byte).
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match backtrack {
                Some((bp, bn)) => {
                    p = bp + 1;
                    n = bn + 1;
                    backtrack = Some((bp, bn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_a_shell() {
        let m = |p: &str, n: &str| wildcard_match(p.as_bytes(), n.as_bytes());
        assert!(m("*", "anything"));
        assert!(m("docker-*.scope", "docker-4a4a.scope"));
        assert!(!m("docker-*.scope", "docker-4a4a.slice"));
        assert!(m("run-?", "run-1"));
        assert!(!m("run-?", "run-12"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("exact", "exact"));
    }

    #[test]
    fn root_a_missing_runtime_parent_is_created_and_watched() {
        let mount = CgroupV2Mount::discover().expect("these tests need a cgroup v2 mount");
        let name = format!("aa-runtime-parent-{}", std::process::id());
        let dir = mount.path.join(&name);
        assert!(!dir.exists());
        let pattern = format!("{name}/*");
        assert!(CgroupGlob::parse(&mount, &pattern).is_err());
        let glob = CgroupGlob::parse_runtime_layout(&mount, &pattern).unwrap();
        let created = dir.is_dir();
        let _ = fs::remove_dir(&dir);
        assert!(created, "{} was not created", dir.display());
        assert_eq!(glob.parent.rel, format!("/{name}"));
        // Only the runtime's own parent is created, never a deeper path.
        let deep = format!("{name}/below/*");
        let err = CgroupGlob::parse_runtime_layout(&mount, &deep).unwrap_err();
        assert!(matches!(err, GlobError::Parent { .. }), "{err}");
        assert!(!dir.exists());
    }

    #[test]
    fn wildcards_only_in_the_last_component() {
        let Ok(mount) = CgroupV2Mount::discover() else {
            panic!("these tests need a cgroup v2 mount");
        };
        let err = CgroupGlob::parse(&mount, "*/x").unwrap_err();
        assert!(matches!(err, GlobError::Unsupported(_)), "{err}");
        let err = CgroupGlob::parse(&mount, "no-such-parent-xyz/*").unwrap_err();
        assert!(matches!(err, GlobError::Parent { .. }), "{err}");
        let glob = CgroupGlob::parse(&mount, "*").unwrap();
        assert_eq!(glob.parent.rel, "/");
        assert!(glob.matches_child("anything"));
    }
}
