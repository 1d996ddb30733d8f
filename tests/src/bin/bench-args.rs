//! `bench-args "AGENT_AUDIT [RECORD_FLAG...]"...`: what agent-audit's `sys_enter` program
//! itself costs per call inside a target, for an untracked syscall (getppid) and for two whose
//! arguments are recorded (fcntl F_GETFL, ioctl TCGETS), read from the kernel's own BPF
//! statistics (`BPF_ENABLE_STATS`: run_time_ns / run_cnt of each program) rather than timed.
//!
//! Each argument is one configuration: a binary and its `record` flags (for example an older
//! build, or `--no-args`). All configurations record the same empty scratch cgroup *at once*,
//! each with its own program attached to `sys_enter`, so every call of the loop runs all of
//! them under the same conditions (cache, load, frequency) and the kernel times each
//! separately: on a busy machine that compares configurations far more fairly than runs one
//! after another. The program that runs first on each call pays for bringing the task's
//! cgroup and the tracepoint's data into the cache (about 60 ns here), so a copy of the first
//! configuration is attached first as a warm-up and left out of the figures. `bench-loop MODE N 1` runs inside the cgroup, modes interleaved over
//! repetitions; printed per (mode, configuration): the median ns per program run over the
//! repetitions, and the loop's share of the runs in the window (the rest are other tasks on
//! the host taking the cheaper outside path; near 100% means the figure is the inside path's).
//! The statistics add two clock reads to every run (about 30 ns here): compare figures of this
//! tool with each other, not with timed ones. Environment: `BENCH_ARGS_CALLS` (calls per loop,
//! default 1 000 000), `BENCH_ARGS_REPS` (default 7). Needs root.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use agent_audit_tests::cgroup::ScratchCgroup;
use agent_audit_tests::unique_name;

const MODES: [&str; 3] = ["getppid", "fcntl", "ioctl"];

fn main() {
    let configs: Vec<String> = std::env::args().skip(1).collect();
    if configs.is_empty() {
        eprintln!("usage: bench-args \"AGENT_AUDIT [RECORD_FLAG...]\"...");
        std::process::exit(2);
    }
    let calls: u64 = env_number("BENCH_ARGS_CALLS", 1_000_000);
    let reps: usize = env_number("BENCH_ARGS_REPS", 7);
    let bench_loop = std::env::current_exe()
        .expect("own path")
        .with_file_name("bench-loop");
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).expect("BPF_ENABLE_STATS");
    let target = ScratchCgroup::new(&unique_name("bench-args"));
    let out = tempfile::tempdir().expect("tempdir");
    let mut recorders = Vec::new();
    let mut programs = Vec::new();
    let warm_up = std::iter::once(&configs[0]);
    for (i, config) in warm_up.chain(&configs).enumerate() {
        let words: Vec<&str> = config.split_whitespace().collect();
        let dir = out.path().join(i.to_string());
        std::fs::create_dir(&dir).expect("mkdir");
        let recorder = start_recorder(words[0], &words[1..], &target, &dir);
        programs.push(sys_enter_program_of(recorder.id()));
        recorders.push(recorder);
    }

    programs.remove(0); // the warm-up

    // samples[mode][config]: ns per run, one per repetition; shares[mode]: the loop's share.
    let mut samples = vec![vec![Vec::new(); configs.len()]; MODES.len()];
    let mut shares = vec![Vec::new(); MODES.len()];
    for rep in 0..reps {
        for i in 0..MODES.len() {
            let m = (i + rep) % MODES.len(); // rotate the order between repetitions
            let (per_run, share) = measure(&programs, &bench_loop, &target, MODES[m], calls);
            for (c, ns) in per_run.into_iter().enumerate() {
                samples[m][c].push(ns);
            }
            shares[m].push(share);
        }
    }
    for recorder in &mut recorders {
        // SAFETY: signalling our own child (std's u32 is the kernel's pid_t).
        unsafe { libc::kill(recorder.id().cast_signed(), libc::SIGINT) };
        let _ = recorder.wait();
    }

    println!("{reps} repetitions of {calls} calls; median ns per program run");
    println!("| call | {} | loop's share of runs |", configs.join(" | "));
    println!("|---|{}---:|", "---:|".repeat(configs.len()));
    for (m, mode) in MODES.iter().enumerate() {
        let medians: Vec<String> = samples[m]
            .iter_mut()
            .map(|s| {
                s.sort_by(f64::total_cmp);
                format!("{:.1}", s[s.len() / 2])
            })
            .collect();
        let share = shares[m].iter().sum::<f64>() / shares[m].len() as f64;
        println!(
            "| {mode} | {} | {:.1}% |",
            medians.join(" | "),
            100.0 * share
        );
    }
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}

/// Starts `record` on the cgroup and waits for its readiness line.
fn start_recorder(bin: &str, flags: &[&str], target: &ScratchCgroup, out: &Path) -> Child {
    let mut child = Command::new(bin)
        .arg("record")
        .arg("--cgroup")
        .arg(&target.dir)
        .arg("--out")
        .arg(out.join("allowlist.json"))
        .args(["--interval", "3600"])
        .args(flags)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start agent-audit record");
    let stderr = child.stderr.take().expect("piped");
    let mut lines = BufReader::new(stderr).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("recording") => break,
            Some(Ok(_)) => continue,
            _ => panic!("agent-audit record ended before it was ready"),
        }
    }
    // Keep draining its stderr so it never blocks on a full pipe; pass on what it says.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            eprintln!("bench-args: recorder: {line}");
        }
    });
    child
}

/// The `sys_enter` program a recorder holds, found through its open descriptors (other
/// agent-audit processes on the machine load programs of the same name).
fn sys_enter_program_of(pid: u32) -> u32 {
    let mut held = HashSet::new();
    let fdinfo = std::fs::read_dir(format!("/proc/{pid}/fdinfo")).expect("recorder's fdinfo");
    for entry in fdinfo.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            if let Some(id) = line.strip_prefix("prog_id:") {
                held.insert(id.trim().parse::<u32>().expect("prog_id"));
            }
        }
    }
    aya::programs::loaded_programs()
        .flatten()
        .find(|p| {
            held.contains(&p.id())
                && matches!(p.name_as_str(), Some("sys_enter_btf" | "sys_enter_raw"))
        })
        .map(|p| p.id())
        .expect("the recorder holds a sys_enter program")
}

/// (run_time_ns, run_cnt) of a program.
fn stats(id: u32) -> (u64, u64) {
    aya::programs::loaded_programs()
        .flatten()
        .find(|p| p.id() == id)
        .map(|p| {
            // u64 nanoseconds last 584 years of run time.
            let ns = u64::try_from(p.run_time().as_nanos()).unwrap_or(u64::MAX);
            (ns, p.run_count())
        })
        .unwrap_or_else(|| panic!("program {id} is gone: did its recorder stop? (see above)"))
}

/// Runs the loop in the target; returns each program's ns per run in the window, and the
/// loop's share of the runs.
fn measure(
    programs: &[u32],
    bench_loop: &PathBuf,
    target: &ScratchCgroup,
    mode: &str,
    calls: u64,
) -> (Vec<f64>, f64) {
    let mut cmd = Command::new(bench_loop);
    cmd.args([mode, &calls.to_string(), "1"])
        .stdout(Stdio::null());
    target.contain(&mut cmd);
    let before: Vec<(u64, u64)> = programs.iter().map(|&p| stats(p)).collect();
    let status = cmd.status().expect("run bench-loop");
    let after: Vec<(u64, u64)> = programs.iter().map(|&p| stats(p)).collect();
    assert!(status.success(), "bench-loop {mode} failed: {status}");
    let per_run = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a.0 - b.0) as f64 / (a.1 - b.1).max(1) as f64)
        .collect();
    // bench-loop warms up with calls/20 calls first.
    let loop_calls = calls + (calls / 20).max(100);
    let runs = (after[0].1 - before[0].1).max(1);
    (per_run, (loop_calls as f64 / runs as f64).min(1.0))
}
