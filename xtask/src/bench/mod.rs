//! `cargo xtask bench`: every figure of BENCHMARKS.md in one run. Cases are interleaved (each
//! repetition runs every case once, in a different order), each figure is the median over the
//! repetitions, and overheads are taken against the no-tracer case of the same repetition, so
//! that the load of a busy machine falls on all cases alike.

mod bpfstats;
mod docker;
mod enforcement;
mod env;
mod fixed;
mod memory;
mod report;
mod rules;
mod samples;
mod tracer;
pub mod workload;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::{run, setup, step};
use env::{BenchEnv, Machine};
use samples::Samples;
use tracer::{Running, Tracer};

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchOptions {
    /// Repetitions of every case (figures are medians over them).
    #[arg(long, default_value_t = 7)]
    reps: usize,
    /// Files in the workload's generated tree.
    #[arg(long, default_value_t = 3000)]
    files: usize,
    /// Smaller loops and tree, for trying the bench itself out (figures are noisier).
    #[arg(long)]
    quick: bool,
    /// Run only this part (for working on it; BENCHMARKS.md figures come from a full run).
    #[arg(long, value_enum)]
    only: Option<Part>,
}

/// The parts of the bench that can run alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// The per-call table from the kernel's BPF statistics.
    BpfStats,
    /// `agent-audit run -- true` end to end, with its steps.
    Startup,
    /// CPU of a recorder whose targets are idle.
    Idle,
    /// `check` and `verify` on profiles of 4 096 to 100 000 rules.
    Rules,
    /// Memory of a node-wide recorder with 256 targets, projected to other CPU counts.
    Memory,
    /// Per-call enforcement cost: BPF instructions walked under Docker's default and the
    /// generated profile, ns per call in a container.
    Enforcement,
}

/// Calls per timed loop.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoopSizes {
    pub getppid: u64,
    pub fstat: u64,
    /// Batches each loop is split into (the fastest is kept, see bench-loop).
    pub batches: u64,
    /// Calls per loop under strace, which is about three orders of magnitude slower.
    pub strace: u64,
}

/// One unit of an interleaved repetition.
#[derive(Clone, Debug)]
enum Job {
    Loops(Tracer),
    Strace,
    /// The workload unrecorded and recorded, back to back.
    Workload,
    Container(docker::Profile),
}

pub fn bench(root: &Path, opts: BenchOptions) -> Result<()> {
    setup::apt_packages(setup::BENCH_PACKAGES)?;
    crate::build(root)?;
    step("building the bench programs (tests/src/bin/bench-*.rs)");
    run(Command::new("cargo").current_dir(root).args([
        "build",
        "--release",
        "-p",
        "agent-audit-tests",
        "--bin",
        "bench-loop",
        "--bin",
        "bench-floor",
        "--bin",
        "bench-time",
        "--bin",
        "bench-args",
        "--bin",
        "bench-memory",
        "--bin",
        "bench-walk",
    ]))?;
    if crate::effective_uid() != 0 {
        bail!("the bench loads BPF programs and creates cgroups: run it as root");
    }
    let sizes = if opts.quick {
        LoopSizes {
            getppid: 300_000,
            fstat: 200_000,
            batches: 10,
            strace: 2_000,
        }
    } else {
        LoopSizes {
            getppid: 1_000_000,
            fstat: 600_000,
            batches: 20,
            strace: 5_000,
        }
    };
    let files = if opts.quick {
        opts.files / 4
    } else {
        opts.files
    };
    let started = Instant::now();
    let mut machine = Machine::probe();
    let env = BenchEnv::create(root, files)?;
    let mut notes = Vec::new();

    let generated = if opts.only.is_none() {
        prepare_containers(&env, &mut notes)
    } else {
        None
    };
    notes.push("generated profile: `agent-audit profile` of the container's allowlist".into());

    let mut jobs: Vec<Job> = tracers().into_iter().map(Job::Loops).collect();
    jobs.push(Job::Strace);
    jobs.push(Job::Workload);
    if let Some(generated) = &generated {
        jobs.extend(
            docker::profiles(generated.as_deref())
                .into_iter()
                .map(Job::Container),
        );
    }

    let mut samples = Samples::default();
    if opts.only.is_none_or(|p| p == Part::BpfStats) {
        let calls = sizes.getppid * 2;
        if let Err(e) = bpfstats::run_all(&env, calls, opts.reps, &mut samples, &mut notes) {
            notes.push(format!("BPF statistics: {e:#}"));
        }
    }
    let wanted = |part| opts.only.is_none_or(|p| p == part);
    if wanted(Part::Startup) {
        if let Err(e) = fixed::startup(&env, opts.reps.max(3) * 3, &mut samples) {
            notes.push(format!("start-up: {e:#}"));
        }
    }
    if wanted(Part::Idle) {
        let seconds = if opts.quick { 10 } else { 20 };
        if let Err(e) = fixed::idle(&env, seconds, &mut samples) {
            notes.push(format!("idle recorder: {e:#}"));
        }
    }
    if wanted(Part::Rules) {
        if let Err(e) = rules::run(&env, root, opts.reps.min(5), &mut samples) {
            notes.push(format!("many rules: {e:#}"));
        }
    }
    let memory_table = if wanted(Part::Memory) {
        memory::measure(&env, &mut samples).unwrap_or_else(|e| {
            notes.push(format!("memory: {e:#}"));
            String::new()
        })
    } else {
        String::new()
    };
    if opts.only.is_some() {
        jobs.clear();
    }
    for rep in 0..opts.reps {
        step(&format!(
            "repetition {}/{} ({} cases, shuffled)",
            rep + 1,
            opts.reps,
            jobs.len()
        ));
        let mut order = jobs.clone();
        shuffle(&mut order, rep as u64);
        for job in &order {
            if let Err(e) = run_job(&env, &sizes, job, rep, &mut samples) {
                let note = format!("repetition {}: {job:?}: {e:#}", rep + 1);
                eprintln!("xtask: {note}");
                notes.push(note);
            }
        }
    }
    if opts.only.is_none() {
        if let Err(e) = merge_time(&env, opts.reps, &mut samples) {
            notes.push(format!("merge of 100 allowlists: {e:#}"));
        }
    }
    let args_cost = if opts.only.is_none() {
        match argument_cost(&env, &sizes, opts.reps) {
            Ok(table) => table,
            Err(e) => {
                notes.push(format!("argument recording cost: {e:#}"));
                String::new()
            }
        }
    } else {
        String::new()
    };
    let enforcement = if wanted(Part::Enforcement) && docker_available() {
        step("enforcement: BPF instructions walked per call, ns per call in a container");
        match enforcement::run(&env, root, opts.reps, opts.quick) {
            Ok(section) => section,
            Err(e) => {
                notes.push(format!("enforcement cost: {e:#}"));
                String::new()
            }
        }
    } else {
        String::new()
    };
    machine.loadavg_end = env::read_trim("/proc/loadavg");
    let elapsed = started.elapsed().as_secs_f64();
    let results = report::Report::new(machine, sizes, opts.reps, files, samples, notes, elapsed);
    let text = results.markdown() + &memory_table + &args_cost + &enforcement;
    println!("\n{text}");
    std::fs::write(env.out.join("results.md"), &text)?;
    std::fs::write(
        env.out.join("results.json"),
        serde_json::to_vec_pretty(&results.json())?,
    )?;
    step(&format!(
        "results: target/bench/results.json and target/bench/results.md ({elapsed:.0} s)"
    ));
    drop(env);
    Ok(())
}

/// What argument recording costs the kernel program per call, from the kernel's own BPF
/// statistics (`bench-args`: all configurations attached at once to the same target, so every
/// call runs each of them under the same conditions). `--no-args` is the program without
/// argument recording (the verifier removes that code).
fn argument_cost(env: &BenchEnv, sizes: &LoopSizes, reps: usize) -> Result<String> {
    step("argument recording: the program's own cost per call (BPF statistics)");
    let aa = env.bin.join("agent-audit").display().to_string();
    let configs = [
        format!("{aa} --no-args"),
        aa.clone(),
        format!("{aa} --no-attribution --no-args"),
        format!("{aa} --no-attribution"),
    ];
    let out = Command::new(env.bin.join("bench-args"))
        .args(&configs)
        .env("BENCH_ARGS_CALLS", sizes.getppid.to_string())
        .env("BENCH_ARGS_REPS", reps.to_string())
        .stderr(Stdio::inherit())
        .output()
        .context("running bench-args")?;
    if !out.status.success() {
        bail!("bench-args failed: {}", out.status);
    }
    // Column headers are the configurations: keep their flags only.
    let table = String::from_utf8_lossy(&out.stdout).replace(&format!("| {aa} |"), "| default |");
    let table = table.replace(&format!("{aa} "), "");
    Ok(format!(
        "\n#### Argument recording: the kernel program's own cost per call (BPF statistics)\n\n\
         ns per program run inside the target, from `run_time_ns / run_cnt` with \
         `BPF_ENABLE_STATS` (which adds its own ~30 ns to every run), all four configurations \
         attached at once; `--no-args` is the program without argument recording. getppid is \
         untracked; fcntl and ioctl are tracked.\n\n{table}"
    ))
}

/// The per-syscall cases.
fn tracers() -> Vec<Tracer> {
    let aa = |attach, inside, targets| Tracer::AgentAudit {
        attach,
        inside,
        targets,
        attribution: true,
    };
    vec![
        Tracer::None,
        Tracer::Floor,
        aa("tp_btf", true, 1),
        Tracer::AgentAudit {
            attach: "tp_btf",
            inside: true,
            targets: 1,
            attribution: false,
        },
        aa("tp_btf", false, 1),
        aa("raw_tp", true, 1),
        aa("raw_tp", false, 1),
        aa("tp_btf", true, 16),
        aa("tp_btf", true, 256),
        Tracer::Bpftrace,
    ]
}

/// Builds the container image and records the generated profile. `None`: no Docker here;
/// `Some(None)`: Docker, but no generated profile (the reason is in the notes).
fn prepare_containers(
    env: &BenchEnv,
    notes: &mut Vec<String>,
) -> Option<Option<std::path::PathBuf>> {
    if !docker_available() {
        notes.push("no Docker engine: enforcement rows skipped".into());
        return None;
    }
    step("building the container image and recording the container for its generated profile");
    if let Err(e) = docker::build_image(env) {
        notes.push(format!("container image: {e:#}: enforcement rows skipped"));
        return None;
    }
    match docker::generated_profile(env) {
        Ok(p) => Some(Some(p)),
        Err(e) => {
            notes.push(format!("generated profile: {e:#}"));
            Some(None)
        }
    }
}

/// Whether a Docker engine answers.
fn docker_available() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn run_job(
    env: &BenchEnv,
    sizes: &LoopSizes,
    job: &Job,
    rep: usize,
    s: &mut Samples,
) -> Result<()> {
    match job {
        Job::Loops(tracer) => {
            let case = tracer.name();
            if *tracer != Tracer::None {
                // The baseline right before attaching: the machine's load drifts within a
                // repetition, so the closest no-tracer figure is the fairest one.
                let g = run_loop(env, "getppid", sizes.getppid, sizes.batches, &[])?;
                let f = run_loop(env, "fstat", sizes.fstat, sizes.batches, &[])?;
                s.add(&case, "getppid_ns_base", rep, g.0);
                s.add(&case, "fstat_ns_base", rep, f.0);
            }
            let running = Running::start(*tracer, env)?;
            let g = run_loop(env, "getppid", sizes.getppid, sizes.batches, &[])?;
            let f = run_loop(env, "fstat", sizes.fstat, sizes.batches, &[])?;
            let memory = running.pid().and_then(env::memory_kib);
            let output = running.output.clone();
            running.stop()?;
            if let (Tracer::AgentAudit { inside: true, .. }, Some(out)) = (tracer, output) {
                // Inside cases must really have counted the loop, or they measured nothing.
                let counted = tracer::counted_getppid(&out)?;
                if counted < sizes.getppid {
                    bail!(
                        "counted {counted} getppid calls, the loop made more than {}",
                        sizes.getppid
                    );
                }
            }
            s.add(&case, "getppid_ns", rep, g.0);
            s.add(&case, "fstat_ns", rep, f.0);
            if let Some((rss, hwm)) = memory {
                s.add(&case, "vmrss_kib", rep, rss);
                s.add(&case, "vmhwm_kib", rep, hwm);
            }
        }
        Job::Strace => {
            let wrap = ["strace", "-f", "-c", "-o", "/dev/null"];
            let g = run_loop(env, "getppid", sizes.strace, 5, &wrap)?;
            let f = run_loop(env, "fstat", sizes.strace, 5, &wrap)?;
            s.add("strace", "getppid_ns", rep, g.0);
            s.add("strace", "fstat_ns", rep, f.0);
        }
        Job::Workload => {
            // Alternate which one goes first, so neither always runs on a warmer cache.
            let first_recorded = rep % 2 == 1;
            let a = run_workload(env, first_recorded)?;
            let b = run_workload(env, !first_recorded)?;
            let (recorded, plain) = if first_recorded { (a, b) } else { (b, a) };
            s.add("none", "workload_ns", rep, plain.0);
            s.add("none", "workload_wall_ns", rep, plain.1);
            s.add("agent-audit-run", "workload_ns", rep, recorded.0);
            s.add("agent-audit-run", "workload_wall_ns", rep, recorded.1);
        }
        Job::Container(profile) => {
            let case = format!("container-{}", profile.name);
            if profile.security_opt.as_deref() != Some("seccomp=unconfined") {
                // Its own unconfined baseline, right before it (see Job::Loops).
                let unconfined = &docker::profiles(None)[0];
                let b = docker::run_container(env, unconfined, sizes, None)?;
                s.add(&case, "getppid_ns_base", rep, b.getppid.0);
                s.add(&case, "fstat_ns_base", rep, b.fstat.0);
                s.add(&case, "workload_ns_base", rep, b.workload_ns);
            }
            let r = docker::run_container(env, profile, sizes, None)?;
            s.add(&case, "getppid_ns", rep, r.getppid.0);
            s.add(&case, "fstat_ns", rep, r.fstat.0);
            s.add(&case, "workload_ns", rep, r.workload_ns);
        }
    }
    Ok(())
}

/// Runs the workload, recorded by `agent-audit run` or not; returns (ns measured inside,
/// wall ns including agent-audit's start and stop).
fn run_workload(env: &BenchEnv, recorded: bool) -> Result<(f64, f64)> {
    let script = env.work.join(workload::SCRIPT);
    let time = env.bin.join("bench-time");
    let mut cmd = if recorded {
        let mut cmd = Command::new(env.bin.join("agent-audit"));
        cmd.arg("run")
            .arg("--out")
            .arg(env.out.join("workload.allowlist.json"))
            .arg("--")
            .arg(&time)
            .arg("sh")
            .arg(&script);
        cmd
    } else {
        env.in_cgroup(
            &env.loop_cgroup,
            &time,
            &["sh".into(), script.display().to_string()],
        )
    };
    let start = Instant::now();
    let out = cmd.stderr(Stdio::null()).output()?;
    let wall = start.elapsed().as_nanos() as f64;
    if !out.status.success() {
        bail!("workload failed: {}", out.status);
    }
    let inner: f64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .context("no timing printed")?
        .trim()
        .parse()?;
    Ok((inner, wall))
}

/// Runs `bench-loop MODE N BATCHES` in the loop cgroup, optionally under `wrapper` (strace),
/// and returns (fastest, median) batch ns per call.
fn run_loop(
    env: &BenchEnv,
    mode: &str,
    n: u64,
    batches: u64,
    wrapper: &[&str],
) -> Result<(f64, f64)> {
    let bench_loop = env.bin.join("bench-loop").display().to_string();
    let mut args: Vec<String> = wrapper.iter().skip(1).map(|s| s.to_string()).collect();
    let program = match wrapper.first() {
        Some(w) => {
            args.push(bench_loop);
            Path::new(w).to_path_buf()
        }
        None => bench_loop.into(),
    };
    args.extend([mode.to_string(), n.to_string(), batches.to_string()]);
    let out = env
        .in_cgroup(&env.loop_cgroup, &program, &args)
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        bail!("bench-loop {mode} failed: {}", out.status);
    }
    parse_loop(String::from_utf8_lossy(&out.stdout).trim())
}

/// Parses bench-loop's "fastest median" line.
fn parse_loop(line: &str) -> Result<(f64, f64)> {
    let mut it = line.split_whitespace().map(str::parse::<f64>);
    match (it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b))) => Ok((a, b)),
        _ => bail!("bench-loop printed {line:?}"),
    }
}

/// Deterministic Fisher–Yates shuffle, a different order for every repetition, so that no case
/// always follows another (caches, a tracer's teardown) and a reader can reproduce the order.
pub(crate) fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in (1..items.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // At most `i`, so it fits in usize.
        let j = usize::try_from((state >> 33) % (i as u64 + 1)).unwrap_or(i);
        items.swap(i, j);
    }
}

/// Time for `agent-audit profile` to merge 100 allowlists: copies of one real recording (a
/// shell listing a directory), each a separate input as 100 CI runs would be.
fn merge_time(env: &BenchEnv, reps: usize, samples: &mut Samples) -> Result<()> {
    let bin = env.bin.join("agent-audit");
    let dir = env.out.join("merge");
    std::fs::create_dir_all(&dir)?;
    let first = dir.join("run-000.json");
    crate::run(
        Command::new(&bin)
            .arg("run")
            .arg("--out")
            .arg(&first)
            .args([
                "--",
                "/bin/sh",
                "-c",
                "ls -la / /usr >/dev/null; cat /etc/hostname",
            ])
            .stderr(Stdio::null()),
    )?;
    let mut inputs = vec![first.clone()];
    for i in 1..100 {
        let copy = dir.join(format!("run-{i:03}.json"));
        std::fs::copy(&first, &copy)?;
        inputs.push(copy);
    }
    for rep in 0..reps.min(5) {
        let started = Instant::now();
        crate::run(
            Command::new(&bin)
                .arg("profile")
                .args(&inputs)
                .arg("--out")
                .arg(dir.join("profile.json"))
                .stderr(Stdio::null()),
        )?;
        samples.add(
            "profile-merge-100",
            "seconds",
            rep,
            started.elapsed().as_secs_f64(),
        );
    }
    Ok(())
}
