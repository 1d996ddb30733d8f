//! Developer tasks. Every task that needs a tool first makes sure it is installed (and says
//! what it installs), so a fresh machine needs nothing but `cargo xtask <task>`.

mod bench;
mod fuzz;
mod image;
mod setup;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "agent-audit developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need (apt packages, nightly rust-src, bpf-linker).
    Setup,
    /// Build the kernel program (nightly, bpfel-unknown-none) into target/bpf/.
    BuildEbpf,
    /// Build the kernel program and the release `agent-audit` binary.
    Build,
    /// Everything CI checks: fmt, clippy, unit tests and, as root, the integration tests that
    /// load the real kernel program against real processes and containers.
    Test {
        /// Only tests whose name contains this.
        filter: Option<String>,
    },
    /// Build the `agent-audit:latest` container image offline (FROM scratch: the release
    /// binary and the shared libraries it loads) and print its size.
    Image(image::ImageOptions),
    /// Measure the cost of recording and enforcing (BENCHMARKS.md); as root, about 5 minutes.
    Bench(bench::BenchOptions),
    /// Fuzz every input parser (allowlist, seccomp profile, verify result, diff's reader) with
    /// cargo-fuzz, a few minutes each; prints executions and crashes. Not run in CI.
    Fuzz(fuzz::FuzzOptions),
    /// Build, then run `agent-audit audit` with these arguments (see `agent-audit audit
    /// --help`): record the command or container several times, profile, verify, report.
    Audit {
        /// Arguments of `agent-audit audit`, e.g. `--runs 5 -- git clone …` (passed on as
        /// given).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        _args: Vec<std::ffi::OsString>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    match cli.task {
        Task::Setup => setup::all(),
        Task::BuildEbpf => build_ebpf(&root),
        Task::Build => build(&root).map(|_| ()),
        Task::Test { filter } => test(&root, filter.as_deref()),
        Task::Bench(opts) => bench::bench(&root, opts),
        Task::Fuzz(opts) => fuzz::fuzz(&root, opts),
        Task::Image(opts) => image::image(&root, opts),
        Task::Audit { .. } => audit(&root, &audit_args()),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs a command, failing with its command line when it fails.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

pub(crate) fn build_ebpf(root: &Path) -> Result<()> {
    let nightly = setup::ebpf_toolchain()?;
    step("building the kernel program (agent-audit-ebpf, bpfel-unknown-none)");
    run(&mut ebpf_cargo(root, &nightly, "build"))
}

/// Clippy on the kernel program as it is built: the host's `cargo clippy --workspace` sees
/// only the crate's shared no_std part, since the program itself compiles for BPF alone.
fn clippy_ebpf(root: &Path) -> Result<()> {
    let nightly = setup::ebpf_toolchain()?;
    step("cargo clippy -D warnings (kernel program, bpfel-unknown-none)");
    run(ebpf_cargo(root, &nightly, "clippy").args(["--", "-D", "warnings"]))
}

/// `cargo +nightly SUBCOMMAND` for the kernel program's binary on `bpfel-unknown-none`.
fn ebpf_cargo(root: &Path, nightly: &str, subcommand: &str) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root)
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTUP_TOOLCHAIN")
        .args([
            &format!("+{nightly}"),
            subcommand,
            "--release",
            "-Z",
            "build-std=core",
            "--target",
            "bpfel-unknown-none",
            "-p",
            "agent-audit-ebpf",
            "--bin",
            "agent-audit-ebpf",
            "--target-dir",
            "target/bpf",
        ]);
    cmd
}

pub(crate) fn build(root: &Path) -> Result<PathBuf> {
    setup::apt_packages(setup::BUILD_PACKAGES)?;
    build_ebpf(root)?;
    step("building agent-audit (release)");
    run(Command::new("cargo")
        .current_dir(root)
        .args(["build", "--release", "-p", "agent-audit"]))?;
    Ok(root.join("target/release/agent-audit"))
}

fn test(root: &Path, filter: Option<&str>) -> Result<()> {
    setup::all()?;
    build_ebpf(root)?;
    step("cargo fmt --check");
    run(Command::new("cargo")
        .current_dir(root)
        .args(["fmt", "--all", "--", "--check"]))?;
    step("cargo clippy -D warnings");
    run(Command::new("cargo").current_dir(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    clippy_ebpf(root)?;
    step("building agent-audit and the test helpers");
    run(Command::new("cargo")
        .current_dir(root)
        .args(["build", "-p", "agent-audit"]))?;
    let bin = root.join("target/debug/agent-audit");
    let is_root = effective_uid() == 0;
    if !is_root {
        eprintln!(
            "xtask: not root: the integration tests that load the kernel program will be \
             skipped; run `sudo -E cargo xtask test` for the full suite"
        );
    }
    step("unit and integration tests");
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root).env("AGENT_AUDIT_BIN", &bin).args([
        "test",
        "--workspace",
        "--no-fail-fast",
    ]);
    if let Some(f) = filter {
        cmd.arg(f);
    }
    // The integration tests start containers and load BPF programs: keep them sequential
    // so that their counts and timings do not disturb each other.
    cmd.args(["--", "--test-threads=1"]);
    if !is_root {
        // Tests that need root are named root_*; skip them by name so that the summary says
        // how many were left out instead of each one failing on its euid assertion.
        cmd.args(["--skip", "root_"]);
    }
    run_tests(&mut cmd)
}

/// Runs `cargo test`, passing its output through, and ends with one line that sums every test
/// binary's result, so that the last line says how many tests ran (the last binary alone may
/// have none).
fn run_tests(cmd: &mut Command) -> Result<()> {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let (mut passed, mut failed) = (0u64, 0u64);
    let stdout = child.stdout.take().context("piped stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let number = |word: &str| {
                rest.split(';')
                    .find_map(|part| part.trim().strip_suffix(word))
                    .and_then(|n| n.trim().rsplit(' ').next()?.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            passed += number(" passed");
            failed += number(" failed");
        }
    }
    let status = child.wait()?;
    println!("tests: {passed} passed, {failed} failed");
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Everything after `audit` on our command line, as given: clap drops a leading `--`, which
/// `agent-audit audit` needs before the command.
fn audit_args() -> Vec<std::ffi::OsString> {
    std::env::args_os()
        .skip(1)
        .skip_while(|a| a != "audit")
        .skip(1)
        .collect()
}

/// `agent-audit audit ARGS…` with the freshly built binary; exits with its exit code.
fn audit(root: &Path, args: &[std::ffi::OsString]) -> Result<()> {
    let bin = build(root)?;
    let status = Command::new(&bin)
        .arg("audit")
        .args(args)
        .status()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    std::process::exit(status.code().unwrap_or(1));
}

pub(crate) fn step(what: &str) {
    eprintln!("\x1b[1mxtask:\x1b[0m {what}");
}

pub(crate) fn effective_uid() -> u32 {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u32::MAX)
}
