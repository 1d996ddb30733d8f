//! Developer tasks. Every task that needs a tool first makes sure it is installed (and says
//! what it installs), so a fresh machine needs nothing but `cargo xtask <task>`.

mod bench;
mod image;
mod setup;

use std::ffi::OsStr;
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
    /// Audit a command end to end: allowlist, seccomp profile, its rationale, a verify run
    /// under the profile and the audit report (HTML and Markdown) in a directory.
    Audit {
        /// Output directory.
        #[arg(long, default_value = "audit")]
        out_dir: PathBuf,
        /// Audit a container instead of a command: record it (waiting for it to start if it
        /// does not run yet) until it stops.
        #[arg(long, value_name = "NAME", conflicts_with = "command")]
        container: Option<String>,
        /// Do not re-run the command under the generated profile.
        #[arg(long)]
        no_verify: bool,
        /// The command to audit.
        #[arg(last = true, required_unless_present = "container")]
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
        Task::Bench(opts) => bench::bench(&root, opts),
        Task::Image(opts) => image::image(&root, opts),
        Task::Audit {
            out_dir,
            container,
            no_verify,
            command,
        } => audit(&root, &out_dir, container.as_deref(), !no_verify, &command),
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

fn audit(
    root: &Path,
    out_dir: &Path,
    container: Option<&str>,
    verify: bool,
    command: &[String],
) -> Result<()> {
    let bin = build(root)?;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let allowlist = out_dir.join("allowlist.json");
    let status = match container {
        Some(name) => {
            step(&format!(
                "recording container {name} until it stops (start it now if it is not running)"
            ));
            Command::new(&bin)
                .args(["record", "--wait", "--container", name, "--out"])
                .arg(&allowlist)
                .status()?
        }
        None => {
            step(&format!("recording {:?}", command.join(" ")));
            Command::new(&bin)
                .arg("run")
                .arg("--out")
                .arg(&allowlist)
                .arg("--")
                .args(command)
                .status()?
        }
    };
    if !status.success() {
        eprintln!("xtask: the audited workload exited with {status}");
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
    let mut verify_result = None;
    if verify && container.is_none() {
        let result = out_dir.join("verify.json");
        step("re-running the command under the profile, with the dangerous-syscall probes");
        let status = Command::new(&bin)
            .arg("verify")
            .arg("--profile")
            .arg(&profile)
            .arg("--allowlist")
            .arg(&allowlist)
            .arg("--probe-dangerous")
            .arg("--out")
            .arg(&result)
            .arg("--")
            .args(command)
            .status()?;
        step(&format!(
            "verify: {} ({})",
            if status.success() { "passed" } else { "FAILED" },
            result.display()
        ));
        if result.exists() {
            verify_result = Some(result);
        }
    }
    step("writing the audit report (HTML and Markdown)");
    for (format, file) in [("html", "report.html"), ("md", "report.md")] {
        run(Command::new(&bin)
            .arg("report")
            .arg(&allowlist)
            .arg("--profile")
            .arg(&profile)
            .args(
                verify_result
                    .iter()
                    .flat_map(|v| [OsStr::new("--verify"), v.as_os_str()]),
            )
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

pub(crate) fn effective_uid() -> u32 {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u32::MAX)
}
