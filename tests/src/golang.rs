//! The Go workload (`tests/data/workloads/go_http`), built static (`CGO_ENABLED=0`) with
//! Debian's Go (`golang-go`, installed by `cargo xtask setup`) into a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::run_ok;
use crate::workspace_root;

/// Builds the workload into `dir`; returns the binary. Go's build cache (safe for concurrent
/// builds) is kept in `target/go-cache`, so only the first build compiles the standard library.
pub fn build_go_http(dir: &Path) -> PathBuf {
    let binary = dir.join("go_http");
    let target = workspace_root().join("target");
    run_ok(
        Command::new("go")
            .current_dir(workspace_root().join("tests/data/workloads/go_http"))
            .env("CGO_ENABLED", "0")
            .env("GOCACHE", target.join("go-cache"))
            .env("GOPATH", target.join("go-path"))
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local")
            .args(["build", "-o"])
            .arg(&binary)
            .arg("."),
        Duration::from_secs(300),
    );
    binary
}
