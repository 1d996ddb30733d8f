//! Developer tasks. Every task that needs a tool first makes sure it is installed (and says
//! what it installs), so a fresh machine needs nothing but `cargo xtask <task>`.

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
    /// Audit a command end to end: allowlist, seccomp profile, its rationale and the audit
    /// report (HTML and Markdown) in a directory.
    Audit {
        /// Output directory.
        #[arg(long, default_value = "audit")]
        out_dir: PathBuf,
        /// The command to audit.
        #[arg(last = true, required = true)]
        command: Vec<String>,
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
        Task::Audit { out_dir, command } => audit(&root, &out_dir, &command),
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

fn build_ebpf(root: &Path) -> Result<()> {
    let nightly = setup::ebpf_toolchain()?;
    step("building the kernel program (agent-audit-ebpf, bpfel-unknown-none)");
    run(Command::new("cargo")
        .current_dir(root)
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTUP_TOOLCHAIN")
        .args([
            &format!("+{nightly}"),
            "build",
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
        ]))
}

fn build(root: &Path) -> Result<PathBuf> {
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
    cmd.current_dir(root)
        .env("AGENT_AUDIT_BIN", &bin)
        .args(["test", "--workspace"]);
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
    run(&mut cmd)
}

fn audit(root: &Path, out_dir: &Path, command: &[String]) -> Result<()> {
    let bin = build(root)?;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let allowlist = out_dir.join("allowlist.json");
    step(&format!("recording {:?}", command.join(" ")));
    let status = Command::new(&bin)
        .arg("run")
        .arg("--out")
        .arg(&allowlist)
        .arg("--")
        .args(command)
        .status()?;
    if !status.success() {
        eprintln!("xtask: the audited command exited with {status}");
    }
    if !allowlist.exists() {
        bail!("no allowlist was written");
    }
    step(&format!("allowlist: {}", allowlist.display()));
    let profile = out_dir.join("profile.json");
    let rationale = out_dir.join("rationale.md");
    step("generating the seccomp profile and its rationale");
    run(Command::new(&bin)
        .arg("profile")
        .arg(&allowlist)
        .arg("--out")
        .arg(&profile)
        .arg("--rationale")
        .arg(&rationale))?;
    step(&format!(
        "profile: {}, rationale: {}",
        profile.display(),
        rationale.display()
    ));
    step("writing the audit report (HTML and Markdown)");
    for (format, file) in [("html", "report.html"), ("md", "report.md")] {
        run(Command::new(&bin)
            .arg("report")
            .arg(&allowlist)
            .arg("--profile")
            .arg(&profile)
            .args(["--format", format, "--out"])
            .arg(out_dir.join(file)))?;
    }
    step(&format!(
        "report: {}, {}",
        out_dir.join("report.html").display(),
        out_dir.join("report.md").display()
    ));
    Ok(())
}

pub(crate) fn step(what: &str) {
    eprintln!("\x1b[1mxtask:\x1b[0m {what}");
}

fn effective_uid() -> u32 {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u32::MAX)
}
