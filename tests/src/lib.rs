//! Helpers shared by the integration tests: finding the binary under test, running processes
//! with timeouts (a hung recorder must fail a test, not hang CI), reading allowlists, making
//! cgroups and containers that are cleaned up even when a test panics.

pub mod allowlist;
pub mod argprobe;
pub mod armed;
pub mod browser;
pub mod cgroup;
pub mod container;
pub mod debian;
pub mod engine;
pub mod foreground;
pub mod golang;
pub mod image;
pub mod probe;
pub mod process;
pub mod profile;
pub mod seccomp_probe;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The `agent-audit` binary under test: `AGENT_AUDIT_BIN`, else the workspace's debug build.
pub fn agent_audit_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("AGENT_AUDIT_BIN") {
        return PathBuf::from(bin);
    }
    let bin = workspace_root().join("target/debug/agent-audit");
    assert!(
        bin.exists(),
        "{} does not exist: build it with `cargo xtask build-ebpf && cargo build -p agent-audit` \
         or set AGENT_AUDIT_BIN",
        bin.display()
    );
    bin
}

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
        .to_path_buf()
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// First line of every `root_*` test: these load the real kernel program or start containers.
pub fn require_root() {
    assert!(
        is_root(),
        "needs root: run `sudo cargo xtask test` (non-root runs skip root_* tests with --skip root_)"
    );
}

/// A name no other test, process or earlier run uses: `<prefix>-<pid>-<time>-<n>`.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Compiles the C `source` with `gcc -static` into `dir/name` (static: the same calls on
/// every host, no loader) and returns the binary.
pub fn build_static_c(dir: &std::path::Path, name: &str, source: &str) -> PathBuf {
    build_static_c_with(dir, name, source, &[])
}

/// [`build_static_c`] with more gcc flags (`-m32`, `-D_GNU_SOURCE`): every probe program is
/// built `-O1 -Wall -Werror -pthread`, so that a warning in a probe fails its test instead
/// of changing what it does. Panics with gcc's message (and the package `-m32` needs).
pub fn build_static_c_with(
    dir: &std::path::Path,
    name: &str,
    source: &str,
    flags: &[&str],
) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    let binary = dir.join(name);
    std::fs::write(&src, source).unwrap();
    let built = process::run(
        std::process::Command::new("gcc")
            .args(["-static", "-O1", "-Wall", "-Werror", "-pthread"])
            .args(flags)
            .arg("-o")
            .arg(&binary)
            .arg(&src),
        std::time::Duration::from_secs(60),
    );
    assert!(
        built.status.success(),
        "cannot build {name} with gcc {flags:?}{}:\n{}",
        if flags.contains(&"-m32") {
            " (-m32 needs gcc-multilib: `cargo xtask setup`)"
        } else {
            ""
        },
        built.stderr
    );
    binary
}
