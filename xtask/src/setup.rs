//! Installs what the build and the tests need, idempotently: each check is cheap, each install
//! says what it does, and a second run installs nothing.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{run, step};

/// Debian packages the userspace build needs (libseccomp for the `libseccomp` crate).
pub const BUILD_PACKAGES: &[&str] = &["libseccomp-dev", "pkg-config"];
/// Debian packages bpf-linker builds against (LLVM 22, the same major as nightly's).
const LINKER_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
];
/// Debian packages the integration tests and benchmarks use.
const TEST_PACKAGES: &[&str] = &[
    "busybox-static", // rootfs of the test containers
    "runc",           // runs them without Docker
    "strace",         // reference tracer in tests and benchmarks
    "bpftrace",       // reference eBPF tracer in benchmarks
    "gcc-multilib",   // 32-bit test programs (i386 syscall ABI)
    "util-linux",     // setpriv, to test missing privileges
    "chromium",       // renders the HTML report headless in its tests
    "docker-compose", // runs the compose example (examples/compose) in its test
    "jq",             // the GitHub Action's scripts read the JSON report with it
    "python3-venv",   // a virtualenv for kubernetes-validate (manifest tests)
    "python3",        // real workloads audited by the tests (tests/data/workloads)
    "nodejs",
    "git",
    "debootstrap", // the Debian root filesystem of the Debian container test
    "golang-go",   // the Go workload (tests/data/workloads/go_http), built static
    "podman",      // the second engine (tests/tests/engines.rs), with runc
    "bpftool",     // what `unpin` leaves in the kernel (tests/tests/pin.rs)
];

/// Debian packages `cargo xtask bench` uses: the reference tracers, bpftool (the BPF-statistics
/// part reads every program's run time with it), the workload's tools, and Podman's default
/// seccomp profile (/usr/share/containers/seccomp.json), which is compared without being copied
/// into the repository.
pub const BENCH_PACKAGES: &[&str] = &[
    "bpftrace",
    "bpftool",
    "strace",
    "git",
    "tar",
    "golang-github-containers-common",
];

/// Nightly pinned to the last release on LLVM 22 (bpf-linker 0.13 is built against it).
const PINNED_NIGHTLY: &str = "nightly-2026-05-20";
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Everything: build, linker and test dependencies.
pub fn all() -> Result<()> {
    let mut packages = BUILD_PACKAGES.to_vec();
    packages.extend(LINKER_PACKAGES);
    packages.extend(TEST_PACKAGES);
    apt_packages(&packages)?;
    ebpf_toolchain()?;
    python_tools()?;
    Ok(())
}

/// Python packages the Kubernetes manifest tests use, in a virtualenv of their own.
const PYTHON_PACKAGES: &[&str] = &[
    "kubernetes-validate", // the Kubernetes API schemas, offline; brings jsonschema and PyYAML
];

/// The virtualenv with [`PYTHON_PACKAGES`]: `target/python` (the tests look for it there).
pub fn python_tools() -> Result<()> {
    let venv = crate::workspace_root().join("target/python");
    if venv.join("bin/kubernetes-validate").exists() {
        return Ok(());
    }
    step(&format!(
        "installing {} from PyPI into {}",
        PYTHON_PACKAGES.join(" "),
        venv.display()
    ));
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))
        .context("python3 -m venv failed (Debian: apt-get install python3-venv)")?;
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet"])
        .args(PYTHON_PACKAGES))
}

/// Installs the Debian packages that are missing.
pub fn apt_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!(
        "installing Debian packages: {}",
        missing.join(" ")
    ));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing))
    .context("apt-get install failed (the setup needs root)")
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Makes sure a nightly on LLVM 22 with rust-src, clippy and bpf-linker are there; returns the
/// toolchain name to build the kernel program with.
pub fn ebpf_toolchain() -> Result<String> {
    let toolchain = nightly_on_llvm22()?;
    for (component, why) in [
        ("rust-src", "build-std needs it"),
        ("clippy", "`cargo xtask test` lints the kernel program"),
    ] {
        if has_component(&toolchain, component) {
            continue;
        }
        step(&format!("adding {component} to {toolchain} ({why})"));
        run(Command::new("rustup").args([
            "component",
            "add",
            component,
            "--toolchain",
            &toolchain,
        ]))?;
    }
    bpf_linker()?;
    Ok(toolchain)
}

fn llvm_major(toolchain: &str) -> Option<u32> {
    let out = Command::new("rustc")
        .args([&format!("+{toolchain}"), "-vV"])
        .env("RUSTUP_AUTO_INSTALL", "0")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))?;
    version.split('.').next()?.trim().parse().ok()
}

fn nightly_on_llvm22() -> Result<String> {
    for candidate in ["nightly", PINNED_NIGHTLY] {
        if llvm_major(candidate) == Some(22) {
            return Ok(candidate.to_string());
        }
    }
    step(&format!(
        "installing {PINNED_NIGHTLY} (the toolchain `nightly` is missing or not on LLVM 22)"
    ));
    run(Command::new("rustup").args([
        "toolchain",
        "install",
        PINNED_NIGHTLY,
        "--profile",
        "minimal",
        "--component",
        "rust-src",
        "--component",
        "clippy",
    ]))?;
    match llvm_major(PINNED_NIGHTLY) {
        Some(22) => Ok(PINNED_NIGHTLY.to_string()),
        other => bail!("{PINNED_NIGHTLY} reports LLVM {other:?}, expected 22"),
    }
}

fn has_component(toolchain: &str, component: &str) -> bool {
    Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", toolchain])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with(component))
        })
        .unwrap_or(false)
}

fn bpf_linker() -> Result<()> {
    let installed = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION))
        .unwrap_or(false);
    if installed {
        return Ok(());
    }
    apt_packages(LINKER_PACKAGES)?;
    step(&format!(
        "installing bpf-linker {BPF_LINKER_VERSION} against Debian's LLVM 22 (about a minute)"
    ));
    let llvm = "/usr/lib/llvm-22";
    let path = format!("{llvm}/bin:{}", std::env::var("PATH").unwrap_or_default());
    run(Command::new("cargo")
        .env("PATH", path)
        .env("LLVM_SYS_221_PREFIX", llvm)
        .env("LLVM_PREFIX", llvm)
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
            "--features",
            "llvm-22",
        ]))
}
