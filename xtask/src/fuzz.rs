//! `cargo xtask fuzz`: runs every cargo-fuzz target in `fuzz/` for a while, one after the
//! other, and sums up executions and crashes. Not part of CI: it takes minutes and needs the
//! nightly toolchain (sanitizers).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{setup, step};

/// Every target with the directories (relative to the workspace) its corpus is seeded from.
const TARGETS: &[(&str, &[&str])] = &[
    ("allowlist", &["tests/data/allowlists"]),
    ("seccomp_profile", &["tests/data/profiles"]),
    (
        "spo_object",
        &["fuzz/seeds/spo_object", "tests/data/schemas"],
    ),
    ("verify_result", &["fuzz/seeds/verify_result"]),
    (
        "diff_side",
        &["tests/data/allowlists", "tests/data/profiles"],
    ),
];

/// Options of `cargo xtask fuzz`.
#[derive(Debug, clap::Args)]
pub struct FuzzOptions {
    /// Seconds to fuzz each target.
    #[arg(long, default_value_t = 180)]
    seconds: u64,
    /// Only these targets (default: all of them).
    #[arg(value_name = "TARGET")]
    targets: Vec<String>,
}

/// What one target's run did.
struct Outcome {
    target: &'static str,
    runs: u64,
    seconds: u64,
    crashes: Vec<PathBuf>,
}

pub fn fuzz(root: &Path, opts: FuzzOptions) -> Result<()> {
    for name in &opts.targets {
        if !TARGETS.iter().any(|(t, _)| t == name) {
            let known: Vec<&str> = TARGETS.iter().map(|(t, _)| *t).collect();
            bail!(
                "no fuzz target {name:?}; the targets are {}",
                known.join(", ")
            );
        }
    }
    // agent-audit embeds the kernel program, so the library only builds once it exists.
    let nightly = setup::ebpf_toolchain()?;
    crate::build_ebpf(root)?;
    cargo_fuzz()?;
    let mut outcomes = Vec::new();
    for (target, seeds) in TARGETS {
        if !opts.targets.is_empty() && !opts.targets.iter().any(|t| t == target) {
            continue;
        }
        outcomes.push(run_target(root, &nightly, target, seeds, opts.seconds)?);
    }
    println!("\n| target | executions | seconds | executions/s | crashes |");
    println!("|---|---:|---:|---:|---:|");
    for o in &outcomes {
        println!(
            "| {} | {} | {} | {} | {} |",
            o.target,
            o.runs,
            o.seconds,
            o.runs / o.seconds.max(1),
            o.crashes.len()
        );
    }
    let crashes: Vec<&PathBuf> = outcomes.iter().flat_map(|o| &o.crashes).collect();
    if !crashes.is_empty() {
        bail!("crashes (replay with `cargo +{nightly} fuzz run TARGET FILE`): {crashes:?}");
    }
    Ok(())
}

/// Installs cargo-fuzz from crates.io when it is missing.
fn cargo_fuzz() -> Result<()> {
    let installed = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        step("installing cargo-fuzz from crates.io (about two minutes)");
        crate::run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

fn run_target(
    root: &Path,
    nightly: &str,
    target: &'static str,
    seeds: &[&str],
    seconds: u64,
) -> Result<Outcome> {
    step(&format!("fuzzing {target} for {seconds} s"));
    let corpus = root.join("fuzz/corpus").join(target);
    let artifacts = root.join("fuzz/artifacts").join(target);
    for dir in [&corpus, &artifacts] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let before = crash_files(&artifacts)?;
    let output = Command::new("cargo")
        .current_dir(root)
        .env_remove("RUSTUP_TOOLCHAIN")
        .args([&format!("+{nightly}"), "fuzz", "run", target])
        .arg(&corpus)
        .args(seeds.iter().map(|s| root.join(s)))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .output()
        .with_context(|| format!("cannot start cargo fuzz for {target}"))?;
    let log = String::from_utf8_lossy(&output.stderr);
    let log_path = artifacts.join("last-run.log");
    std::fs::write(&log_path, log.as_bytes())?;
    let crashes: Vec<PathBuf> = crash_files(&artifacts)?
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    let runs = executions(&log)
        .with_context(|| format!("no libFuzzer statistics in {}", log_path.display()))?;
    if !output.status.success() && crashes.is_empty() {
        bail!(
            "cargo fuzz run {target} failed ({}) without a crash file; see {}",
            output.status,
            log_path.display()
        );
    }
    Ok(Outcome {
        target,
        runs,
        seconds,
        crashes,
    })
}

/// The crash, leak, timeout and out-of-memory inputs libFuzzer saved.
fn crash_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if ["crash-", "leak-", "timeout-", "oom-"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            files.push(path);
        }
    }
    Ok(files)
}

/// Executions from libFuzzer's log: `Done N runs in S second(s)` at a normal end, else the last
/// `#N` status line (a crash ends the run without the summary).
fn executions(log: &str) -> Option<u64> {
    let done = log.lines().find_map(|line| {
        line.strip_prefix("Done ")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    });
    done.or_else(|| {
        log.lines().rev().find_map(|line| {
            line.strip_prefix('#')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    })
}
