//! A real Debian root filesystem for the container tests: `debootstrap --variant=minbase` with
//! the packages a test asks for (the agent image: nodejs, git and python3; daemon images: squid,
//! nginx, postgres), from the Debian archive this machine's apt is configured with, and imported with
//! `docker import` (these machines have no registry).
//!
//! Built once per package set and cached: the root filesystem under
//! `target/debian-rootfs/<key>/` (a marker file says debootstrap finished), the image as
//! `agent-audit-tests/debian:<key>`; the key is derived from the mirror, the suite and the
//! package list. An unreachable mirror fails the test that needs the image, with debootstrap's
//! own words: there is no silent skip.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::process::run;
use crate::workspace_root;

/// What the agent image installs on top of `minbase`.
pub const PACKAGES: &[&str] = &["nodejs", "git", "python3"];
/// The daemon image: daemons that start as root and drop to their own user, and a client.
pub const DAEMON_PACKAGES: &[&str] = &["squid", "nginx-light", "postgresql-15", "curl"];
/// debootstrap downloads and unpacks ~150 packages; on a slow mirror that takes minutes.
const DEBOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const IMPORT_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Where apt's sources are.
const SOURCES_LIST: &str = "/etc/apt/sources.list";
const SOURCES_DIR: &str = "/etc/apt/sources.list.d";

/// One `deb` source of apt's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AptSource {
    /// The archive's URI.
    pub uri: String,
    /// The suite (`bookworm`).
    pub suite: String,
}

impl AptSource {
    /// A Debian archive (a `debian` path segment: deb.debian.org/debian, a mirror's /debian,
    /// snapshot.debian.org/archive/debian/…) and a release suite, not `-updates`/`-security`.
    fn is_debian_release(&self) -> bool {
        let path = self
            .uri
            .split_once("://")
            .map_or(self.uri.as_str(), |(_, rest)| rest);
        path.split('/').skip(1).any(|segment| segment == "debian") && !self.suite.contains('-')
    }
}

/// The `deb` sources of a one-line `sources.list` file (`deb [options] URI SUITE COMPONENTS…`).
pub fn parse_one_line(text: &str) -> Vec<AptSource> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter_map(|line| {
            let rest = line.strip_prefix("deb ")?.trim_start();
            let rest = match rest.strip_prefix('[') {
                Some(options) => options.split_once(']')?.1,
                None => rest,
            };
            let mut words = rest.split_whitespace();
            Some(AptSource {
                uri: words.next()?.to_string(),
                suite: words.next()?.to_string(),
            })
        })
        .collect()
}

/// The `deb` sources of a deb822 `.sources` file (stanzas of `Types:`, `URIs:`, `Suites:`).
pub fn parse_deb822(text: &str) -> Vec<AptSource> {
    let mut found = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| -> Vec<String> {
            stanza
                .lines()
                .filter(|l| !l.starts_with('#'))
                .find_map(|l| {
                    let (key, value) = l.split_once(':')?;
                    key.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| value.split_whitespace().map(str::to_owned).collect())
                })
                .unwrap_or_default()
        };
        let enabled = field("Enabled").first().is_none_or(|v| v != "no");
        if !enabled || !field("Types").iter().any(|t| t == "deb") {
            continue;
        }
        for uri in field("URIs") {
            for suite in field("Suites") {
                found.push(AptSource {
                    uri: uri.clone(),
                    suite,
                });
            }
        }
    }
    found
}

/// The Debian archive and release this machine's apt uses. Panics, naming the files read,
/// when there is none.
pub fn configured_debian_mirror() -> AptSource {
    let mut files = vec![PathBuf::from(SOURCES_LIST)];
    if let Ok(entries) = fs::read_dir(SOURCES_DIR) {
        let mut more: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    let mut sources = Vec::new();
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        match file.extension().and_then(|e| e.to_str()) {
            Some("list") => sources.extend(parse_one_line(&text)),
            Some("sources") => sources.extend(parse_deb822(&text)),
            // sources.list itself has no extension; anything else (.disabled, .save) apt ignores.
            _ if file == Path::new(SOURCES_LIST) => sources.extend(parse_one_line(&text)),
            _ => {}
        }
    }
    sources
        .into_iter()
        .find(AptSource::is_debian_release)
        .unwrap_or_else(|| {
            panic!(
                "no Debian archive in apt's sources ({} and {SOURCES_DIR}/*.list|*.sources): the \
                 Debian container test bootstraps its root filesystem from it",
                SOURCES_LIST
            )
        })
}

/// The key of a root filesystem with `packages` (its cache directory, its images' tags).
fn key_of(source: &AptSource, packages: &[&str]) -> String {
    let mut hasher = DefaultHasher::new();
    (source, packages, "minbase").hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// The key of the agent root filesystem ([`PACKAGES`]): its cache directory, its images' tags.
pub fn debian_key() -> String {
    key_of(&configured_debian_mirror(), PACKAGES)
}

/// The agent root filesystem ([`PACKAGES`]), bootstrapped unless cached under
/// `target/debian-rootfs/<key>`, for engines other than Docker to import.
pub fn debian_rootfs() -> PathBuf {
    let source = configured_debian_mirror();
    let key = key_of(&source, PACKAGES);
    bootstrapped_rootfs(&source, &key, PACKAGES)
}

/// The agent image ([`PACKAGES`]), built (or found) once per test binary; its tag.
pub fn debian_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| debian_image_with(PACKAGES))
}

/// A Debian image with `packages` installed on top of `minbase`, built (or found) once per
/// package set; its tag. Tests asking for the same set at once wait for one build.
pub fn debian_image_with(packages: &[&str]) -> String {
    static BUILT: Mutex<Option<HashMap<Vec<String>, String>>> = Mutex::new(None);
    let wanted: Vec<String> = packages.iter().map(|p| p.to_string()).collect();
    // A test that panicked while building leaves nothing half-registered: start over.
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(tag) = built.get(&wanted) {
        return tag.clone();
    }
    let source = configured_debian_mirror();
    let key = key_of(&source, packages);
    let tag = format!("agent-audit-tests/debian:{key}");
    let known = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", &tag])
        .output()
        .is_ok_and(|o| o.status.success());
    if !known {
        let rootfs = bootstrapped_rootfs(&source, &key, packages);
        import(&rootfs, &tag);
    }
    built.insert(wanted, tag.clone());
    tag
}

/// `target/debian-rootfs/<key>/rootfs`, bootstrapped unless a finished one is there.
fn bootstrapped_rootfs(source: &AptSource, key: &str, packages: &[&str]) -> PathBuf {
    let dir = workspace_root().join("target/debian-rootfs").join(key);
    let rootfs = dir.join("rootfs");
    let finished = dir.join("finished");
    if finished.exists() {
        return rootfs;
    }
    // A rootfs without the marker is from an interrupted debootstrap: start over.
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    assert!(
        Path::new("/usr/sbin/debootstrap").exists(),
        "debootstrap is not installed: run `cargo xtask setup` (or apt-get install debootstrap)"
    );
    let started = Instant::now();
    let done = run(
        Command::new("/usr/sbin/debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={}", packages.join(",")))
            .arg(&source.suite)
            .arg(&rootfs)
            .arg(&source.uri),
        DEBOOTSTRAP_TIMEOUT,
    );
    assert_eq!(
        done.code(),
        0,
        "debootstrap of Debian {} from {} failed (is the apt mirror reachable?):\n{}\n{}",
        source.suite,
        source.uri,
        tail(&done.stdout, 15),
        tail(&done.stderr, 15)
    );
    fs::write(&finished, format!("{source:?}\n")).unwrap();
    eprintln!(
        "debootstrap of Debian {} ({}) from {}: {:.1} s",
        source.suite,
        packages.join(", "),
        source.uri,
        started.elapsed().as_secs_f64()
    );
    rootfs
}

/// `tar -C rootfs -c . | docker import - tag`.
fn import(rootfs: &Path, tag: &str) {
    let started = Instant::now();
    let script = format!(
        "set -o pipefail; tar --numeric-owner -C '{}' -c . | docker import --change 'CMD [\"/bin/bash\"]' - '{tag}'",
        rootfs.display()
    );
    let done = run(Command::new("bash").arg("-c").arg(&script), IMPORT_TIMEOUT);
    assert_eq!(done.code(), 0, "docker import failed:\n{}", done.stderr);
    eprintln!(
        "docker import of {}: {:.1} s",
        rootfs.display(),
        started.elapsed().as_secs_f64()
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_and_one_line_sources_are_read() {
        let deb822 = "Types: deb\n# a comment\nURIs: http://deb.debian.org/debian\n\
                      Suites: bookworm bookworm-updates\nComponents: main\n\n\
                      Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: trixie\n\n\
                      Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n";
        let found = parse_deb822(deb822);
        assert_eq!(found.len(), 3);
        let debian: Vec<_> = found.iter().filter(|s| s.is_debian_release()).collect();
        assert_eq!(
            debian,
            [&AptSource {
                uri: "http://deb.debian.org/debian".into(),
                suite: "bookworm".into()
            }]
        );
        let list = "# deb http://old/debian buster main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://ftp.de.debian.org/debian/ trixie main\n\
                    deb http://snapshot.debian.org/archive/debian/20250520T000000Z bookworm main\n";
        let found = parse_one_line(list);
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(AptSource::is_debian_release), "{found:?}");
        assert_eq!(found[0].suite, "trixie");
    }
}
