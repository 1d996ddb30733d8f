//! Figures from samples: medians, overheads against the same repetition's baseline, ratios,
//! the bench's goals with PASS/MISS, a Markdown report and a JSON file. Nothing here
//! measures; every number comes from `Samples`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use super::env::Machine;
use super::samples::Samples;
use super::LoopSizes;

const NONE: &str = "none";
const FLOOR: &str = "empty-program";
const IN_BTF: &str = "agent-audit-tp_btf-inside-1";
const OUT_BTF: &str = "agent-audit-tp_btf-outside-1";
const LOOPS: [&str; 2] = ["getppid", "fstat"];

/// One of the bench's goals as measured.
#[derive(Debug, serde::Serialize)]
pub struct Goal {
    pub goal: String,
    pub measured: String,
    /// "PASS", "MISS", or "PENDING"/"NO DATA" when it could not be measured.
    pub verdict: &'static str,
}

pub struct Report {
    machine: Machine,
    sizes: LoopSizes,
    reps: usize,
    files: usize,
    samples: Samples,
    notes: Vec<String>,
    seconds: f64,
    goals: Vec<Goal>,
}

impl Report {
    pub fn new(
        machine: Machine,
        sizes: LoopSizes,
        reps: usize,
        files: usize,
        samples: Samples,
        notes: Vec<String>,
        seconds: f64,
    ) -> Self {
        let mut r = Self {
            machine,
            sizes,
            reps,
            files,
            samples,
            notes,
            seconds,
            goals: Vec::new(),
        };
        r.goals = r.check_goals();
        r
    }

    /// Overhead of `case` on loop `l`, as a multiple of `of`'s overhead.
    fn overhead_ratio(&self, case: &str, of: &str, l: &str) -> Option<f64> {
        let m = format!("{l}_ns");
        Some(self.samples.overhead(case, NONE, &m)? / self.samples.overhead(of, NONE, &m)?)
    }

    fn check_goals(&self) -> Vec<Goal> {
        let mut goals = Vec::new();
        let per_loop = |case: &str, of: &str, limit: f64, goal: &str| {
            let ratios: Vec<Option<f64>> = LOOPS
                .iter()
                .map(|l| self.overhead_ratio(case, of, l))
                .collect();
            let measured = LOOPS
                .iter()
                .zip(&ratios)
                .map(|(l, r)| format!("{l} {}", fmt_x(*r)))
                .collect::<Vec<_>>()
                .join(", ");
            Goal {
                goal: goal.to_string(),
                measured,
                verdict: verdict(
                    ratios.iter().all(|r| r.is_some_and(|r| r <= limit)),
                    &ratios,
                ),
            }
        };
        goals.push(per_loop(
            IN_BTF,
            FLOOR,
            1.15,
            "overhead inside the target ≤ 1.15× the empty program's",
        ));
        goals.push(per_loop(
            OUT_BTF,
            FLOOR,
            1.10,
            "overhead outside every target ≤ 1.10× the empty program's",
        ));
        goals.push(per_loop(
            IN_BTF,
            "bpftrace",
            0.3,
            "overhead inside ≤ 0.3× the bpftrace one-liner's",
        ));
        let w = self.samples.ratio("agent-audit-run", NONE, "workload_ns");
        goals.push(Goal {
            goal: "workload < 1 % slower while recorded (`agent-audit run`)".into(),
            measured: fmt_x(w),
            verdict: verdict(w.is_some_and(|w| w < 1.01), &[w]),
        });
        let flat = self.samples.ratio_to(
            "agent-audit-tp_btf-inside-256",
            "agent-audit-tp_btf-inside-1",
            "getppid_ns",
        );
        goals.push(Goal {
            goal: "per-syscall cost flat from 1 to 256 targets (getppid ns within 5 %)".into(),
            measured: fmt_x(flat),
            verdict: verdict(flat.is_some_and(|f| f <= 1.05), &[flat]),
        });
        let hwm = self
            .samples
            .median("agent-audit-tp_btf-inside-256", "vmhwm_kib");
        goals.push(Goal {
            goal: "daemon resident memory < 32 MiB (VmHWM, 256 targets)".into(),
            measured: hwm.map_or("no data".into(), |k| format!("{:.1} MiB", k / 1024.0)),
            verdict: verdict(hwm.is_some_and(|k| k < 32.0 * 1024.0), &[hwm]),
        });
        let enforce =
            self.samples
                .ratio("container-generated", "container-unconfined", "workload_ns");
        goals.push(Goal {
            goal: "workload < 5 % slower under the generated profile (seed's budget)".into(),
            measured: fmt_x(enforce),
            verdict: verdict(enforce.is_some_and(|e| e < 1.05), &[enforce]),
        });
        goals.extend(self.bpf_stats_goals());
        goals.extend(self.fixed_cost_goals());
        goals.extend(self.memory_goals());
        let merge = self.samples.median("profile-merge-100", "seconds");
        goals.push(Goal {
            goal: "time for `profile` to merge 100 allowlists (no target set: reported)".into(),
            measured: merge.map_or("no data".into(), |s| format!("{s:.2} s")),
            verdict: if merge.is_some() {
                "MEASURED"
            } else {
                "MISSING"
            },
        });
        goals
    }

    pub fn markdown(&self) -> String {
        let s = &self.samples;
        let m = &self.machine;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "Machine: {} CPUs, {}, kernel {}. Load average at start {}, at end {}.\n\
             {} repetitions, interleaved in a shuffled order; loops of {} getppid / {} fstat \
             calls in {} batches (fastest batch kept), strace loops of {}; workload tree of {} \
             files. Bench took {:.0} s.\n",
            m.nproc,
            m.cpu_model,
            m.kernel,
            m.loadavg_start,
            m.loadavg_end,
            self.reps,
            self.sizes.getppid,
            self.sizes.fstat,
            self.sizes.batches,
            self.sizes.strace,
            self.files,
            self.seconds
        );
        o.push_str(
            "### Per-syscall cost\n\nns per call (median over repetitions); overhead = case − \
             no tracer measured just before it, in the same job; × floor = overhead ÷ the empty program's \
             overhead.\n\n\
             | case | getppid ns | overhead | × floor | fstat ns | overhead | × floor |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
        );
        let cases = [
            (NONE, "no tracer"),
            (FLOOR, "empty tp_btf program (floor)"),
            (IN_BTF, "agent-audit tp_btf, loop inside the target"),
            (
                "agent-audit-tp_btf-noattr-inside-1",
                "agent-audit tp_btf `--no-attribution`, inside",
            ),
            (OUT_BTF, "agent-audit tp_btf, loop outside every target"),
            ("agent-audit-raw_tp-inside-1", "agent-audit raw_tp, inside"),
            (
                "agent-audit-raw_tp-outside-1",
                "agent-audit raw_tp, outside",
            ),
            ("bpftrace", "bpftrace one-liner (same cgroup)"),
            ("strace", "strace -f -c"),
        ];
        for (case, label) in cases {
            let _ = write!(o, "| {label} ");
            for l in LOOPS {
                let metric = format!("{l}_ns");
                let _ = write!(
                    o,
                    "| {} | {} | {} ",
                    fmt_ns(s.median(case, &metric)),
                    if case == NONE {
                        "—".into()
                    } else {
                        fmt_ns(s.overhead(case, NONE, &metric))
                    },
                    if case == NONE || case == FLOOR {
                        "—".into()
                    } else {
                        fmt_x(self.overhead_ratio(case, FLOOR, l))
                    },
                );
            }
            o.push_str("|\n");
        }

        self.bpf_stats_markdown(&mut o);
        super::fixed::markdown(&self.samples, &mut o);
        super::rules::markdown(&self.samples, &mut o);
        o.push_str(
            "\n### Scale (agent-audit tp_btf, loop inside one of N targets)\n\n\
             | targets | getppid ns | overhead | × 1 target (ns) | fstat ns | VmRSS MiB | VmHWM MiB |\n\
             |---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for n in [1, 16, 256] {
            let case = format!("agent-audit-tp_btf-inside-{n}");
            let _ = writeln!(
                o,
                "| {n} | {} | {} | {} | {} | {} | {} |",
                fmt_ns(s.median(&case, "getppid_ns")),
                fmt_ns(s.overhead(&case, NONE, "getppid_ns")),
                fmt_x(s.ratio_to(&case, IN_BTF, "getppid_ns")),
                fmt_ns(s.median(&case, "fstat_ns")),
                fmt_mib(s.median(&case, "vmrss_kib")),
                fmt_mib(s.median(&case, "vmhwm_kib")),
            );
        }
        let _ = writeln!(
            o,
            "\nTime for `agent-audit profile` to merge 100 allowlists (median): {}.",
            s.median("profile-merge-100", "seconds")
                .map_or("no data".into(), |v| format!("{v:.2} s"))
        );

        o.push_str(
            "\n### Workload (git init/add/commit/log/status/diff + tar c/x of the tree, tmpfs)\n\n\
             | case | workload s | × none | wall s (incl. agent-audit start/stop) | × none |\n\
             |---|---:|---:|---:|---:|\n",
        );
        for (case, label) in [
            (NONE, "not recorded"),
            ("agent-audit-run", "`agent-audit run`"),
        ] {
            let _ = writeln!(
                o,
                "| {label} | {} | {} | {} | {} |",
                fmt_s(s.median(case, "workload_ns")),
                fmt_x(s.ratio(case, NONE, "workload_ns")),
                fmt_s(s.median(case, "workload_wall_ns")),
                fmt_x(s.ratio(case, NONE, "workload_wall_ns")),
            );
        }

        o.push_str(
            "\n### Enforcement (Docker container, same loops and workload)\n\n\
             | seccomp profile | getppid ns | × unconfined | fstat ns | × unconfined | workload s | × unconfined |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
        );
        let base = "container-unconfined";
        for (name, label) in [
            ("unconfined", "none (`seccomp=unconfined`)"),
            ("docker-default", "Docker's built-in default"),
            ("podman-default", "Podman's default (containers-common)"),
            ("generated", "generated from agent-audit's allowlist"),
        ] {
            let case = format!("container-{name}");
            let _ = writeln!(
                o,
                "| {label} | {} | {} | {} | {} | {} | {} |",
                fmt_ns(s.median(&case, "getppid_ns")),
                fmt_x(s.ratio(&case, base, "getppid_ns")),
                fmt_ns(s.median(&case, "fstat_ns")),
                fmt_x(s.ratio(&case, base, "fstat_ns")),
                fmt_s(s.median(&case, "workload_ns")),
                fmt_x(s.ratio(&case, base, "workload_ns")),
            );
        }

        o.push_str("\n### Goals\n\n| goal | measured | verdict |\n|---|---|---|\n");
        for g in &self.goals {
            let _ = writeln!(o, "| {} | {} | **{}** |", g.goal, g.measured, g.verdict);
        }
        if !self.notes.is_empty() {
            o.push_str("\nNotes:\n");
            for n in &self.notes {
                let _ = writeln!(o, "- {n}");
            }
        }
        o
    }

    pub fn json(&self) -> Value {
        let mut summary = BTreeMap::new();
        for (case, metrics) in self.samples.cases() {
            let mut m = BTreeMap::new();
            for metric in metrics.filter(|m| !m.ends_with("_base")) {
                m.insert(
                    metric.to_string(),
                    json!({
                        "median": self.samples.median(case, metric),
                        "overhead_vs_none": self.samples.overhead(case, NONE, metric),
                        "samples": self.samples.values(case, metric),
                        "baseline_samples": self.samples.values(case, &format!("{metric}_base")),
                    }),
                );
            }
            summary.insert(case.to_string(), m);
        }
        json!({
            "schema": "agent-audit/bench/v1",
            "command": "cargo xtask bench",
            "machine": self.machine,
            "repetitions": self.reps,
            "loop_sizes": self.sizes,
            "workload_files": self.files,
            "seconds": self.seconds,
            "cases": summary,
            "goals": self.goals,
            "notes": self.notes,
        })
    }
}

const ST_FILTER: &str = "stats-bpftrace-filter-only-getppid";
const ST_COUNT: &str = "stats-bpftrace-getppid";
const ST_IN: &str = "stats-agent-audit-tp_btf-inside-1-getppid";
const ST_IN_NOATTR: &str = "stats-agent-audit-tp_btf-noattr-inside-1-getppid";
const ST_OUT: &str = "stats-agent-audit-tp_btf-outside-1-getppid";
const ST_EXEC_IN: &str = "stats-agent-audit-tp_btf-inside-1-exec";
const ST_EXEC_OUT: &str = "stats-agent-audit-tp_btf-outside-1-exec";
const ST_CAP_FILTER: &str = "stats-bpftrace-capability-filter-only-mmap";
const ST_CAP_OUT: &str = "stats-agent-audit-tp_btf-outside-1-mmap";
const NS_PER_RUN: &str = "ns_per_run";

impl Report {
    /// ns per run of `case` beyond bpftrace's filter-only program.
    fn added(&self, case: &str) -> Option<f64> {
        Some(self.samples.median(case, NS_PER_RUN)? - self.samples.median(ST_FILTER, NS_PER_RUN)?)
    }

    fn bpf_stats_goals(&self) -> Vec<Goal> {
        let s = &self.samples;
        let added_ratio = |case: &str| Some(self.added(case)? / self.added(ST_COUNT)?);
        let ratio_goal = |case: &str, limit: f64, goal: &str| {
            let r = added_ratio(case);
            Goal {
                goal: goal.into(),
                measured: format!(
                    "{} ns vs {} ns: {}",
                    fmt_ns(self.added(case)),
                    fmt_ns(self.added(ST_COUNT)),
                    fmt_x(r)
                ),
                verdict: verdict(r.is_some_and(|r| r <= limit), &[r]),
            }
        };
        let outside = s.ratio_to(ST_OUT, ST_FILTER, NS_PER_RUN);
        let exec = s.median(ST_EXEC_IN, NS_PER_RUN);
        let capability = s.ratio_to(ST_CAP_OUT, ST_CAP_FILTER, NS_PER_RUN);
        vec![
            ratio_goal(
                ST_IN,
                0.5,
                "BPF statistics, getppid inside: agent-audit's add over bpftrace's filter-only \
                 program ≤ 0.5× the counting one-liner's add",
            ),
            ratio_goal(ST_IN_NOATTR, 0.3, "the same with `--no-attribution` ≤ 0.3×"),
            Goal {
                goal: "BPF statistics, loop outside every target ≤ 1.1× bpftrace's filter-only \
                       program"
                    .into(),
                measured: format!(
                    "{} ns vs {} ns: {}",
                    fmt_ns(s.median(ST_OUT, NS_PER_RUN)),
                    fmt_ns(s.median(ST_FILTER, NS_PER_RUN)),
                    fmt_x(outside)
                ),
                verdict: verdict(outside.is_some_and(|r| r <= 1.1), &[outside]),
            },
            Goal {
                goal: "BPF statistics, capability checks outside every target ≤ 1.1× bpftrace's \
                       filter-only program on `capability:cap_capable`"
                    .into(),
                measured: format!(
                    "{} ns vs {} ns: {}",
                    fmt_ns(s.median(ST_CAP_OUT, NS_PER_RUN)),
                    fmt_ns(s.median(ST_CAP_FILTER, NS_PER_RUN)),
                    fmt_x(capability)
                ),
                verdict: verdict(capability.is_some_and(|r| r <= 1.1), &[capability]),
            },
            Goal {
                goal: "BPF statistics, `sched_process_exec` ≤ 1 µs per exec in a target".into(),
                measured: format!("{} ns", fmt_ns(exec)),
                verdict: verdict(exec.is_some_and(|e| e <= 1000.0), &[exec]),
            },
        ]
    }

    fn memory_goals(&self) -> Vec<Goal> {
        use super::memory::{maps_metric, CASE, GOALS, RSS};
        let s = &self.samples;
        GOALS
            .iter()
            .map(|&(cpus, limit)| {
                let bytes = s
                    .median(CASE, &maps_metric(cpus))
                    .zip(s.median(CASE, RSS))
                    .map(|(maps, rss)| (maps + rss) / (1024.0 * 1024.0));
                Goal {
                    goal: format!(
                        "node-wide recorder at 256 targets (BPF maps + RSS) ≤ {limit} MiB on a \
                         {cpus}-CPU host (projected)"
                    ),
                    measured: bytes.map_or("no data".into(), |t| format!("{t:.1} MiB")),
                    verdict: verdict(bytes.is_some_and(|t| t <= limit), &[bytes]),
                }
            })
            .collect()
    }

    fn fixed_cost_goals(&self) -> Vec<Goal> {
        let s = &self.samples;
        let wall = s.median("startup", "wall_s");
        let idle = |n: usize| s.median(&format!("idle-{n}"), "cpu_percent");
        let idle_goal = |n: usize, limit: f64| {
            let v = idle(n);
            Goal {
                goal: format!(
                    "idle recorder ≤ {limit} % of a CPU with {n} target{}",
                    if n == 1 { "" } else { "s" }
                ),
                measured: v.map_or("no data".into(), |v| format!("{v:.3} %")),
                verdict: verdict(v.is_some_and(|v| v <= limit), &[v]),
            }
        };
        vec![
            Goal {
                goal: "`agent-audit run --out x.json -- true` end to end ≤ 0.1 s (median)".into(),
                measured: wall.map_or("no data".into(), |w| format!("{w:.3} s")),
                verdict: verdict(wall.is_some_and(|w| w <= 0.1), &[wall]),
            },
            idle_goal(1, 0.1),
            idle_goal(256, 1.0),
        ]
    }

    fn bpf_stats_markdown(&self, o: &mut String) {
        let s = &self.samples;
        o.push_str(
            "\n### Per-call cost from the kernel's BPF statistics\n\n\
             `kernel.bpf_stats_enabled=1`; the programs that appeared when each tracer attached \
             are read with `bpftool -j prog show` before and after the load; ns per run = \
             Δrun_time_ns ÷ Δrun_cnt (median over repetitions). Every run includes the \
             statistics' own clock reads (the empty program's figure). Added = ns per run − \
             bpftrace's filter-only program's. Runs per call > 1: other tasks of the host ran \
             the program meanwhile (outside the target, where it is cheaper).\n\n\
             | program (load) | ns per run | added over filter-only | runs per loop call |\n\
             |---|---:|---:|---:|\n",
        );
        let rows = [
            (
                "stats-empty-program-getppid",
                "empty tp_btf program (getppid)",
            ),
            (
                ST_FILTER,
                "bpftrace `/cgroup == cgroupid(…)/ { }` (getppid)",
            ),
            (ST_COUNT, "bpftrace `{ @[args->id] = count(); }` (getppid)"),
            (ST_IN, "agent-audit, inside the target (getppid)"),
            (
                ST_IN_NOATTR,
                "agent-audit `--no-attribution`, inside (getppid)",
            ),
            (ST_OUT, "agent-audit, loop outside every target (getppid)"),
            (
                "stats-agent-audit-tp_btf-inside-1-fcntl",
                "agent-audit, inside, tracked arguments (fcntl F_GETFL)",
            ),
            (
                ST_EXEC_IN,
                "agent-audit `sched_process_exec`, exec inside the target",
            ),
            (
                ST_EXEC_OUT,
                "agent-audit `sched_process_exec`, exec outside every target",
            ),
            (
                ST_CAP_FILTER,
                "bpftrace `capability:cap_capable /cgroup == …/ { }` (mmap, not its cgroup)",
            ),
            (
                ST_CAP_OUT,
                "agent-audit `cap_capable`, check outside every target (mmap)",
            ),
        ];
        for (case, label) in rows {
            // Other hooks than sys_enter: bpftrace's sys_enter filter is no base for them.
            let added = if case.ends_with("-exec") || case.ends_with("-mmap") {
                None
            } else {
                self.added(case)
            };
            let _ = writeln!(
                o,
                "| {label} | {} | {} | {} |",
                fmt_ns(s.median(case, NS_PER_RUN)),
                fmt_ns(added),
                s.median(case, "runs_per_call")
                    .map_or("—".into(), |r| format!("{r:.3}")),
            );
        }
    }
}

fn verdict(pass: bool, values: &[Option<f64>]) -> &'static str {
    if values.iter().any(Option::is_none) {
        "NO DATA"
    } else if pass {
        "PASS"
    } else {
        "MISS"
    }
}

fn fmt_ns(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.1}"))
}

fn fmt_x(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.2}×"))
}

fn fmt_s(ns: Option<f64>) -> String {
    ns.map_or("—".into(), |v| format!("{:.3}", v / 1e9))
}

fn fmt_mib(kib: Option<f64>) -> String {
    kib.map_or("—".into(), |v| format!("{:.1}", v / 1024.0))
}
