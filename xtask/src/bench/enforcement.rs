//! Per-call enforcement cost: what each syscall with argument rules (and cached ones beside
//! them) costs a container under Docker's current default and under the profile generated
//! from a recording of that container.
//!
//! The figures that decide the goal are instruction counts, not timings: `bench-walk` runs
//! agent-audit's BPF interpreter over the very filter libseccomp compiles for each profile
//! (runc 1.1's linear lookup, as on this host, and runc ≥ 1.2's binary tree) and counts the
//! instructions each call walks, or 0 where the kernel's always-allow cache skips the filter.
//! Beside them, for information, ns per call in a container under each profile (the fastest
//! batch of the fastest of the interleaved runs; loop timings here move by ±10 ns).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::docker::{self, Profile};
use super::env::BenchEnv;
use super::tracer::{self, Tracer};

/// Docker's current default profile (moby/profiles), the one the issue compares against.
const DOCKER_DEFAULT: &str = "tests/data/profiles/docker-default.json";

/// bench-loop modes timed in the container, and calls per loop (socket is two calls, each
/// about 20 times dearer).
const MODES: &[(&str, u64)] = &[
    ("getppid", 1_000_000),
    ("fcntl", 1_000_000),
    ("prctl", 1_000_000),
    ("ioctl", 1_000_000),
    ("personality", 1_000_000),
    ("socket", 50_000),
];

/// The Markdown section: the instruction tables, then the timings.
pub fn run(env: &BenchEnv, root: &Path, reps: usize, quick: bool) -> Result<String> {
    docker::build_image(env)?;
    let generated = record_and_profile(env)?;
    let docker_default = root.join(DOCKER_DEFAULT);
    let walk = Command::new(env.bin.join("bench-walk"))
        .arg(&docker_default)
        .arg(&generated)
        .output()
        .context("running bench-walk")?;
    if !walk.status.success() {
        bail!(
            "bench-walk failed ({}): {}",
            walk.status,
            String::from_utf8_lossy(&walk.stderr).trim()
        );
    }
    let profiles = [
        Profile {
            name: "docker-current-default",
            security_opt: Some(format!("seccomp={}", docker_default.display())),
        },
        Profile {
            name: "generated",
            security_opt: Some(format!("seccomp={}", generated.display())),
        },
    ];
    let runs = reps.max(3);
    let timings = time_calls(env, &profiles, runs, quick)?;
    Ok(format!(
        "\n#### Enforcement: BPF instructions walked per call\n\n\
         The filter runc installs, compiled by libseccomp from Docker's current default \
         (`{DOCKER_DEFAULT}`, for a container with Docker's default capabilities) and from the \
         profile `agent-audit profile` generated from a recording of the container below, run \
         by agent-audit's BPF interpreter (`seccomp::interpret`) on x86_64; \"cached\": the \
         kernel's always-allow cache (Linux ≥ 5.11) skips the filter. Goal: no more \
         instructions than under Docker's default on every row.\n\n{}\n\
         #### Enforcement: ns per call in a container (for information)\n\n\
         `bench-loop MODE` in a container under each profile, fastest batch of the fastest of \
         {runs} interleaved runs (`socket` is socket + close).\n\n{timings}",
        String::from_utf8_lossy(&walk.stdout),
    ))
}

/// Records one unconfined run of the container making every timed call, and generates its
/// profile.
fn record_and_profile(env: &BenchEnv) -> Result<PathBuf> {
    let allowlist = env.out.join("enforcement.allowlist.json");
    let tracer = Tracer::AgentAudit {
        attach: "auto",
        inside: true,
        targets: 1,
        attribution: true,
    };
    let recorder = tracer::record(
        env,
        tracer,
        "auto",
        std::slice::from_ref(&env.gen_cgroup),
        &allowlist,
    )?;
    let unconfined = &docker::profiles(None)[0];
    let script = loops_script(1000);
    let run = docker::run_script(env, unconfined, &script, Some(&env.gen_cgroup));
    // Let the daemon see the container's cgroup go; then stop it, which writes the file.
    std::thread::sleep(Duration::from_millis(300));
    recorder.stop()?;
    run?;
    let profile = env.out.join("enforcement.seccomp.json");
    crate::run(
        Command::new(env.bin.join("agent-audit"))
            .arg("profile")
            .arg(&allowlist)
            .arg("--out")
            .arg(&profile),
    )?;
    Ok(profile)
}

/// Every mode's loop, `n` calls each, in one shell.
fn loops_script(n: u64) -> String {
    MODES
        .iter()
        .map(|(mode, _)| format!("/bench/bench-loop {mode} {n} 2"))
        .collect::<Vec<_>>()
        .join(" && ")
}

/// ns per call of every mode under each profile, interleaved: the fastest over `reps` runs.
fn time_calls(env: &BenchEnv, profiles: &[Profile], reps: usize, quick: bool) -> Result<String> {
    let script = MODES
        .iter()
        .map(|(mode, calls)| {
            let calls = if quick { calls / 5 } else { *calls };
            format!("/bench/bench-loop {mode} {calls} 20")
        })
        .collect::<Vec<_>>()
        .join(" && ");
    let mut best = vec![vec![f64::INFINITY; MODES.len()]; profiles.len()];
    for rep in 0..reps {
        let mut order: Vec<usize> = (0..profiles.len()).collect();
        super::shuffle(&mut order, rep as u64);
        for i in order {
            let text = docker::run_script(env, &profiles[i], &script, None)?;
            let lines: Vec<&str> = text.lines().collect();
            if lines.len() != MODES.len() {
                bail!("container under {} printed {text:?}", profiles[i].name);
            }
            for (slot, line) in best[i].iter_mut().zip(lines) {
                *slot = slot.min(super::parse_loop(line)?.0);
            }
        }
    }
    let mut table = format!(
        "| call | {} |\n|---|{}\n",
        profiles
            .iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(profiles.len())
    );
    for (m, (mode, _)) in MODES.iter().enumerate() {
        let cells: Vec<String> = best.iter().map(|b| format!("{:.1}", b[m])).collect();
        table.push_str(&format!("| `{mode}` | {} |\n", cells.join(" | ")));
    }
    Ok(table)
}
