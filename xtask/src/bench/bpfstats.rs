//! Per-call cost from the kernel's own BPF statistics. With `kernel.bpf_stats_enabled=1` the
//! kernel times every run of every program (`run_time_ns`, `run_cnt`): exact per program, and
//! untouched by the scheduler noise that makes loop timings on a shared 2-core machine unable to
//! separate tens of nanoseconds. The statistics' own clock reads (~30 ns per run) are in every
//! figure, which is why the comparisons below are differences between programs.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::env::BenchEnv;
use super::samples::Samples;
use super::tracer::{Running, Tracer};
use crate::step;

const STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Turns the kernel's BPF statistics on; dropping it restores the previous setting.
pub struct StatsEnabled {
    previous: String,
}

impl StatsEnabled {
    pub fn enable() -> Result<Self> {
        let previous = std::fs::read_to_string(STATS_SYSCTL)
            .with_context(|| format!("cannot read {STATS_SYSCTL}"))?;
        std::fs::write(STATS_SYSCTL, "1")
            .with_context(|| format!("cannot write {STATS_SYSCTL}"))?;
        Ok(Self {
            previous: previous.trim().to_string(),
        })
    }
}

impl Drop for StatsEnabled {
    fn drop(&mut self) {
        let _ = std::fs::write(STATS_SYSCTL, &self.previous);
    }
}

/// What runs while a tracer's programs are timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// `bench-loop getppid`: the cheapest syscall, untracked by argument recording.
    Getppid,
    /// `bench-loop fcntl` (F_GETFL): a syscall whose arguments agent-audit records.
    Fcntl,
    /// A shell starting `/bin/true` again and again: `sched_process_exec` per exec.
    Exec,
    /// `bench-loop mmap`: one no-audit capability check per call (`cap_capable`).
    Mmap,
}

impl Load {
    fn name(self) -> &'static str {
        match self {
            Load::Getppid => "getppid",
            Load::Fcntl => "fcntl",
            Load::Exec => "exec",
            Load::Mmap => "mmap",
        }
    }
}

/// One row of the statistics table: a tracer and what runs while it is attached.
#[derive(Clone, Copy, Debug)]
pub struct StatCase {
    pub tracer: Tracer,
    pub load: Load,
}

impl StatCase {
    pub fn name(&self) -> String {
        format!("stats-{}-{}", self.tracer.name(), self.load.name())
    }
}

/// The cases of the table, in the order printed.
pub fn cases() -> Vec<StatCase> {
    let aa = |inside, attribution| Tracer::AgentAudit {
        attach: "tp_btf",
        inside,
        targets: 1,
        attribution,
    };
    let case = |tracer, load| StatCase { tracer, load };
    vec![
        case(Tracer::Floor, Load::Getppid),
        case(Tracer::BpftraceFilter, Load::Getppid),
        case(Tracer::Bpftrace, Load::Getppid),
        case(aa(true, true), Load::Getppid),
        case(aa(true, false), Load::Getppid),
        case(aa(false, true), Load::Getppid),
        case(aa(true, true), Load::Fcntl),
        case(aa(true, true), Load::Exec),
        case(aa(false, true), Load::Exec),
        case(Tracer::BpftraceCapabilityFilter, Load::Mmap),
        case(aa(false, true), Load::Mmap),
    ]
}

/// run_time_ns and run_cnt of one program.
#[derive(Clone, Copy, Debug, Default)]
struct ProgStats {
    run_time_ns: u64,
    run_cnt: u64,
}

/// Every loaded program's name and statistics, by id (`bpftool -j prog show`).
fn programs() -> Result<BTreeMap<u64, (String, ProgStats)>> {
    let out = Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run bpftool")?;
    if !out.status.success() {
        bail!("bpftool prog show failed: {}", out.status);
    }
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    Ok(list
        .iter()
        .filter_map(|p| {
            let stats = ProgStats {
                run_time_ns: p["run_time_ns"].as_u64().unwrap_or(0),
                run_cnt: p["run_cnt"].as_u64().unwrap_or(0),
            };
            let name = p["name"].as_str().unwrap_or("").to_string();
            Some((p["id"].as_u64()?, (name, stats)))
        })
        .collect())
}

/// What one measurement found: the measured programs' ns per run and how many runs each call
/// of the load caused (1.0 when nothing else on the host ran them meanwhile).
pub struct Measured {
    pub ns_per_run: f64,
    pub runs_per_call: f64,
}

/// Attaches the case's tracer, selects its programs as the ids that appeared meanwhile, and
/// times them over `calls` calls of the load.
pub fn measure(env: &BenchEnv, case: StatCase, calls: u64) -> Result<Measured> {
    let before: BTreeSet<u64> = programs()?.into_keys().collect();
    let running = Running::start(case.tracer, env)?;
    let ours: BTreeSet<u64> = programs()?
        .into_keys()
        .filter(|id| !before.contains(id))
        .collect();
    if ours.is_empty() {
        bail!("{}: no new BPF program appeared", case.tracer.name());
    }
    let start = programs()?;
    let made = run_load(env, case.load, calls)?;
    let end = programs()?;
    running.stop()?;
    let deltas: Vec<(&str, ProgStats)> = ours
        .iter()
        .filter_map(|id| {
            let (name, a) = start.get(id)?;
            let (_, b) = end.get(id)?;
            let d = ProgStats {
                run_time_ns: b.run_time_ns - a.run_time_ns,
                run_cnt: b.run_cnt - a.run_cnt,
            };
            Some((name.as_str(), d))
        })
        .collect();
    // The tracer's program on the measured hook, by name (bpftool cuts names to 15 bytes):
    // other work on the host (a test suite) may load programs of its own meanwhile.
    let measured: Vec<ProgStats> = deltas
        .iter()
        .filter(|(name, d)| is_measured(case, name) && d.run_cnt >= made / 2)
        .map(|(_, d)| *d)
        .collect();
    let [d] = measured[..] else {
        bail!(
            "{}: {} programs matched (another tracer attached meanwhile?)",
            case.name(),
            measured.len()
        );
    };
    Ok(Measured {
        ns_per_run: d.run_time_ns as f64 / d.run_cnt as f64,
        runs_per_call: d.run_cnt as f64 / made as f64,
    })
}

/// Whether a new program called `name` is the one `case` measures.
fn is_measured(case: StatCase, name: &str) -> bool {
    let agent_audit = [
        "sys_enter_btf",
        "sys_enter_raw",
        "sys_enter_empty",
        "sched_process_e",
    ];
    match (case.tracer, case.load) {
        (_, Load::Exec) => name == "sched_process_e",
        // bpftool shows at most 15 bytes of a name: `cap_capable_exit` is `cap_capable_exi`.
        (Tracer::AgentAudit { .. }, Load::Mmap) => {
            name == "cap_capable_tp" || name == "cap_capable_exi"
        }
        (Tracer::BpftraceCapabilityFilter, _) => name == "cap_capable",
        (Tracer::Floor, _) => name == "sys_enter_empty",
        (Tracer::AgentAudit { .. }, _) => name == "sys_enter_btf" || name == "sys_enter_raw",
        (Tracer::Bpftrace | Tracer::BpftraceFilter, _) => !agent_audit.contains(&name),
        (Tracer::None, _) => false,
    }
}

/// Runs the load in the loop cgroup; returns the calls (or execs) it made.
fn run_load(env: &BenchEnv, load: Load, calls: u64) -> Result<u64> {
    let (program, args, made) = match load {
        Load::Getppid | Load::Fcntl | Load::Mmap => (
            env.bin.join("bench-loop"),
            vec![load.name().to_string(), calls.to_string(), "1".into()],
            // bench-loop warms up with n/20 (at least 100) calls first.
            calls + (calls / 20).max(100),
        ),
        Load::Exec => {
            let execs = calls / 2000;
            let script = format!("i=0; while [ $i -lt {execs} ]; do /bin/true; i=$((i+1)); done");
            (
                "/bin/sh".into(),
                vec!["-c".into(), script],
                // The shell's own exec into the cgroup, then one per /bin/true.
                execs + 1,
            )
        }
    };
    let out = env
        .in_cgroup(&env.loop_cgroup, &program, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()?;
    if !out.success() {
        bail!("{} load failed: {out}", load.name());
    }
    Ok(made)
}

/// Every case once per repetition, shuffled like the loop cases, into `samples`.
pub fn run_all(
    env: &BenchEnv,
    calls: u64,
    reps: usize,
    samples: &mut Samples,
    notes: &mut Vec<String>,
) -> Result<()> {
    let _enabled = StatsEnabled::enable()?;
    let mut missing = BTreeSet::new();
    for rep in 0..reps {
        step(&format!("BPF statistics: repetition {}/{reps}", rep + 1));
        let mut order = cases();
        super::shuffle(&mut order, rep as u64 + 1000);
        for case in order {
            match measure(env, case, calls) {
                Ok(m) => {
                    samples.add(&case.name(), "ns_per_run", rep, m.ns_per_run);
                    samples.add(&case.name(), "runs_per_call", rep, m.runs_per_call);
                }
                Err(e) => {
                    if missing.insert(case.name()) {
                        eprintln!("xtask: {e:#}");
                        notes.push(format!("BPF statistics, {}: {e:#}", case.name()));
                    }
                }
            }
        }
    }
    Ok(())
}
