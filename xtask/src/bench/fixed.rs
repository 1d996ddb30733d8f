//! agent-audit's fixed costs, which no per-call figure shows: the start-up and teardown of
//! `agent-audit run -- true`, and the CPU a recorder uses while its targets do nothing.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::env::{self, BenchEnv};
use super::samples::Samples;
use crate::step;

/// The messages of the `-vv` debug events that mark start-up steps, in the order they are logged, with the
/// label printed for the step that ends at each. The program's steps are timed from the start
/// of loading, `run`'s from the start of `run` (a few syscalls earlier).
pub const STARTUP_STEPS: [(&str, &str); 10] = [
    ("kernel layout", "layout scan of the kernel's BTF"),
    (
        "kernel BTF parsed",
        "aya's loader ready (its kernel BTF parse, on a second thread)",
    ),
    (
        "object loaded, maps created",
        "object loaded, feature probes, maps created",
    ),
    (
        "sys_enter verified and attached",
        "sys_enter verified + attached (at the same time as the next)",
    ),
    (
        "sched_process_exec verified and attached",
        "sched_process_exec verified + attached",
    ),
    ("ready: target added", "cgroup created, target added"),
    ("command ended", "command ran (`true`)"),
    ("attribution read", "attribution table read"),
    (
        "counters read, allowlist written",
        "counters read, allowlist written",
    ),
    (
        "program detached, cgroup removed",
        "program detached, cgroup removed",
    ),
];

/// The steps that run at the same time, each from the end of loading (`STARTUP_STEPS[2]`).
const CONCURRENT_STEPS: [&str; 2] = [
    "sys_enter verified and attached",
    "sched_process_exec verified and attached",
];

/// `agent-audit run --out x.json -- true`, end to end: `runs` timed runs (wall clock, as a user
/// sees it), then a few with `-vv --log-format json` whose debug events give each step's share.
pub fn startup(env: &BenchEnv, runs: usize, samples: &mut Samples) -> Result<()> {
    step(&format!(
        "start-up: {runs} × `agent-audit run --out x.json -- true`"
    ));
    let bin = env.bin.join("agent-audit");
    let out = env.out.join("startup.allowlist.json");
    for rep in 0..runs {
        let started = Instant::now();
        let status = Command::new(&bin)
            .arg("run")
            .arg("--out")
            .arg(&out)
            .args(["--", "true"])
            .stderr(Stdio::null())
            .status()?;
        let wall = started.elapsed().as_secs_f64();
        if !status.success() {
            bail!("agent-audit run -- true failed: {status}");
        }
        samples.add("startup", "wall_s", rep, wall);
    }
    for rep in 0..runs.min(5) {
        let output = Command::new(&bin)
            .args(["-vv", "--log-format", "json"])
            .arg("run")
            .arg("--out")
            .arg(&out)
            .args(["--", "true"])
            .output()?;
        if !output.status.success() {
            bail!("agent-audit -vv run -- true failed: {}", output.status);
        }
        for line in String::from_utf8_lossy(&output.stderr).lines() {
            let Some((step, ms)) = step_elapsed(line) else {
                continue;
            };
            samples.add("startup", &format!("step_ms:{step}"), rep, ms);
        }
    }
    Ok(())
}

/// (`message`, milliseconds) of one of agent-audit's own step events: a JSON log line (see
/// agent-audit's `logging.rs`) whose target is agent-audit's, whose message is a step and
/// whose `elapsed` field is a `Duration` as `Debug` prints it.
fn step_elapsed(line: &str) -> Option<(&'static str, f64)> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    if !event["target"].as_str()?.starts_with("agent_audit") {
        return None;
    }
    let fields = &event["fields"];
    let message = fields["message"].as_str()?;
    let (step, _) = STARTUP_STEPS.iter().find(|(step, _)| *step == message)?;
    Some((step, parse_duration_ms(fields["elapsed"].as_str()?)?))
}

/// A `Duration` as `Debug` prints it ("381.48ms", "1.2s", "950µs") in milliseconds.
fn parse_duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_alphabetic() || c == 'µ')?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match unit {
        "s" => 1e3,
        "ms" => 1.0,
        "µs" | "us" => 1e-3,
        "ns" => 1e-6,
        _ => return None,
    };
    Some(number * factor)
}

/// CPU time of every thread of `pid` in nanoseconds (/proc/PID/task/*/schedstat: time on CPU,
/// exact, where utime+stime count 10 ms ticks).
fn cpu_ns(pid: u32) -> Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat"))?;
        total += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .context("unreadable schedstat")?;
    }
    Ok(total)
}

/// `record --cgroup <idle cgroup>… --duration D` with 1 and with 256 idle targets: the share
/// of one CPU the recorder uses between its readiness line and shortly before it stops.
pub fn idle(env: &BenchEnv, seconds: u64, samples: &mut Samples) -> Result<()> {
    for targets in [1usize, 256] {
        step(&format!(
            "idle recorder: {targets} idle target(s), {seconds} s"
        ));
        let share = idle_share(env, targets, seconds)?;
        samples.add(&format!("idle-{targets}"), "cpu_percent", 0, share * 100.0);
    }
    Ok(())
}

fn idle_share(env: &BenchEnv, targets: usize, seconds: u64) -> Result<f64> {
    let mut cmd = Command::new(env.bin.join("agent-audit"));
    cmd.arg("record").arg("--duration").arg(seconds.to_string());
    let dir = env.out.join(format!("idle-{targets}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    cmd.arg("--cgroup").arg(env.rel(&env.idle_cgroup));
    for i in 1..targets {
        cmd.arg("--cgroup").arg(env.rel(&env.extra_target(i)));
    }
    if targets == 1 {
        cmd.arg("--out").arg(dir.join("idle.allowlist.json"));
    } else {
        cmd.arg("--out-dir").arg(&dir);
    }
    let log_path = env.out.join(format!("idle-{targets}.log"));
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(File::create(&log_path)?)
        .spawn()
        .context("cannot start agent-audit record")?;
    let pid = child.id();
    env::wait_for_line(pid, &log_path, "agent-audit: recording ", 30_000)?;
    let window = Duration::from_secs(seconds.saturating_sub(3).max(1));
    let (cpu0, t0) = (cpu_ns(pid)?, Instant::now());
    std::thread::sleep(window);
    let (cpu1, t1) = (cpu_ns(pid)?, Instant::now());
    let status = child.wait()?;
    if !status.success() {
        bail!(
            "idle recorder exited with {status} (see {})",
            log_path.display()
        );
    }
    Ok((cpu1 - cpu0) as f64 / (t1 - t0).as_nanos() as f64)
}

/// Markdown of both fixed costs.
pub fn markdown(s: &Samples, o: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(
        o,
        "\n### Start-up and teardown: `agent-audit run --out x.json -- true`\n\n\
         Wall time, median of {} runs: **{}**. Steps from the `-vv` debug lines (median of up \
         to 5 runs; the program's steps are timed from the start of loading, `run`'s from the \
         start of `run`; `-vv` itself adds a little):\n\n\
         | step ends | ms since start | step ms |\n|---|---:|---:|",
        s.values("startup", "wall_s").len(),
        s.median("startup", "wall_s")
            .map_or("—".into(), |v| format!("{v:.3} s")),
    );
    // Each step starts when the one before it ended, except the two attaches, which run at
    // the same time (one on a thread of its own) from the end of loading.
    let ended = |message: &str| s.median("startup", &format!("step_ms:{message}"));
    let loaded = ended(STARTUP_STEPS[2].0);
    let mut previous = 0.0;
    for (message, label) in STARTUP_STEPS {
        let Some(ms) = ended(message) else {
            continue;
        };
        let concurrent = CONCURRENT_STEPS.contains(&message);
        let start = match (concurrent, loaded) {
            (true, Some(loaded)) => loaded,
            _ => previous,
        };
        let _ = writeln!(o, "| {label} | {ms:.1} | {:.1} |", (ms - start).max(0.0));
        previous = if concurrent { ms.max(previous) } else { ms };
    }
    let _ = writeln!(
        o,
        "\n### Idle recorder: `record --cgroup <idle cgroup>… --duration D`\n\n\
         CPU time of all its threads (/proc/PID/task/*/schedstat) between its readiness line \
         and shortly before it stops, as a share of one CPU.\n\n\
         | idle targets | CPU % |\n|---:|---:|"
    );
    for targets in [1, 256] {
        let _ = writeln!(
            o,
            "| {targets} | {} |",
            s.median(&format!("idle-{targets}"), "cpu_percent")
                .map_or("—".into(), |v| format!("{v:.3} %"))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit_debug_prints() {
        assert_eq!(parse_duration_ms("381.5ms"), Some(381.5));
        assert_eq!(parse_duration_ms("1.25s"), Some(1250.0));
        assert_eq!(parse_duration_ms("500µs"), Some(0.5));
        assert_eq!(parse_duration_ms("12"), None);
    }

    #[test]
    fn step_events_are_read_from_the_json_log() {
        let step = r#"{"timestamp":"2026-12-04T11:49:36.379017Z","level":"DEBUG","fields":{"message":"kernel BTF parsed","elapsed":"606.5ms"},"target":"agent_audit::bpf::load"}"#;
        assert_eq!(step_elapsed(step), Some(("kernel BTF parsed", 606.5)));
        let other_target = r#"{"level":"DEBUG","fields":{"message":"command ended","elapsed":"3ms"},"target":"aya::bpf"}"#;
        assert_eq!(step_elapsed(other_target), None);
        let not_a_step = r#"{"level":"DEBUG","fields":{"message":"command","elapsed":"3ms"},"target":"agent_audit::run"}"#;
        assert_eq!(step_elapsed(not_a_step), None);
        assert_eq!(
            step_elapsed("DEBUG agent_audit::run: command ended elapsed=3ms"),
            None
        );
    }
}
