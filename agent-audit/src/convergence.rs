//! Convergence of repeated recordings of one workload: what each run saw that no earlier run
//! had. Timing-dependent calls (`sched_yield` when a lock is contended, `kill` when a child
//! outlives its parent's wait) show up in some runs only; when the last runs added nothing,
//! the recordings have likely seen what the workload does often, and when the last run still
//! added something, a later run will likely add more. "Added nothing" is not "complete": a
//! call that comes in a fraction p of runs is missed by all N runs with probability
//! (1 − p)^N, at most 5 % once p > 3/N (the rule of three), so N runs rule out only calls
//! made in more than about 3/N of runs; the verdict says so.
//!
//! What counts as new is an [`Observation`]: a syscall per architecture, a value of one of its
//! tracked arguments, or a bit of a tracked flags argument (allowlists carry those in `args`).

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::allowlist::{Allowlist, ArgField, ArgKind};
use crate::syscalls::Arch;

/// One thing a recording can see.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Observation {
    /// A syscall through an architecture's table (`None` name: a number without one).
    Syscall {
        /// The architecture.
        arch: Arch,
        /// Its name there, or `#nr`.
        name: String,
    },
    /// A value of a tracked argument (an enumeration such as `socket`'s family).
    ArgValue {
        /// The call (architecture, name).
        call: (Arch, String),
        /// Which argument.
        arg: (u8, Option<ArgField>),
        /// The value.
        value: u64,
    },
    /// One bit of a tracked flags argument (such as `clone`'s flags).
    ArgBit {
        /// The call (architecture, name).
        call: (Arch, String),
        /// Which argument.
        arg: (u8, Option<ArgField>),
        /// The bit, as a mask.
        bit: u64,
    },
}

/// `arg0`, or the field read through it (`clone_args.flags`).
fn arg_label((index, field): &(u8, Option<ArgField>)) -> String {
    match field {
        Some(ArgField::CloneArgsFlags) => "clone_args.flags".to_string(),
        None => format!("arg{index}"),
    }
}

/// `name`, or `arch:name` off the native arch.
fn call_label(arch: Arch, name: &str) -> String {
    if Some(arch) == Arch::native() {
        name.to_string()
    } else {
        format!("{}:{name}", arch.short_name())
    }
}

impl fmt::Display for Observation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observation::Syscall { arch, name } => f.write_str(&call_label(*arch, name)),
            Observation::ArgValue { call, arg, value } => {
                write!(
                    f,
                    "{}({}={value})",
                    call_label(call.0, &call.1),
                    arg_label(arg)
                )
            }
            Observation::ArgBit { call, arg, bit } => {
                write!(
                    f,
                    "{}({} bit {bit:#x})",
                    call_label(call.0, &call.1),
                    arg_label(arg)
                )
            }
        }
    }
}

/// Everything one allowlist saw: its syscalls and the values of their tracked arguments.
pub fn observations(list: &Allowlist) -> BTreeSet<Observation> {
    let mut seen = BTreeSet::new();
    for s in &list.syscalls {
        let name = s.name.clone().unwrap_or_else(|| format!("#{}", s.nr));
        for record in &s.args {
            let call = (s.arch, name.clone());
            let arg = (record.index, record.field);
            match record.kind {
                ArgKind::Values => {
                    seen.extend(record.values.iter().map(|v| Observation::ArgValue {
                        call: call.clone(),
                        arg,
                        value: v.value,
                    }))
                }
                ArgKind::Flags => {
                    let bits = record.bits.unwrap_or(0);
                    seen.extend(
                        (0..64)
                            .map(|i| 1u64 << i)
                            .filter(|b| bits & b != 0)
                            .map(|bit| Observation::ArgBit {
                                call: call.clone(),
                                arg,
                                bit,
                            }),
                    )
                }
            }
        }
        seen.insert(Observation::Syscall { arch: s.arch, name });
    }
    seen
}

/// What one run added.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunAdded {
    /// 1-based position in recording order.
    pub run: usize,
    /// The recording (as labelled by the caller).
    pub file: String,
    /// How many observations no earlier run had.
    pub added_count: usize,
    /// Those observations (`name`, or `arch:name` off the native arch), sorted.
    pub added: Vec<String>,
}

/// Per-run additions over a series of recordings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Convergence {
    /// Every run, in recording order.
    pub runs: Vec<RunAdded>,
    /// How many runs at the end added nothing.
    pub stable_runs: usize,
    /// A call made in more than this fraction of runs would, at 95 %, have shown in at least
    /// one of them (the rule of three: 3/N, at most 1); rarer calls may still be missing.
    pub missed_call_bound: f64,
    /// The verdict in one line.
    pub line: String,
}

impl Convergence {
    /// Computes the additions of `lists`, taken in the order given (recording order).
    pub fn of<'a>(lists: impl IntoIterator<Item = (&'a str, &'a Allowlist)>) -> Self {
        let mut seen = BTreeSet::new();
        let mut runs = Vec::new();
        for (i, (file, list)) in lists.into_iter().enumerate() {
            let mut added: Vec<String> = observations(list)
                .into_iter()
                .filter(|o| seen.insert(o.clone()))
                .map(|o| o.to_string())
                .collect();
            // A call and its argument values side by side.
            added.sort();
            runs.push(RunAdded {
                run: i + 1,
                file: file.to_string(),
                added_count: added.len(),
                added,
            });
        }
        let stable_runs = runs
            .iter()
            .skip(1)
            .rev()
            .take_while(|r| r.added.is_empty())
            .count();
        let line = verdict(&runs, stable_runs);
        Self {
            missed_call_bound: missed_call_bound(runs.len()),
            runs,
            stable_runs,
            line,
        }
    }

    /// The last run added something although earlier runs existed: more runs are needed.
    pub fn still_changing(&self) -> Option<&RunAdded> {
        self.runs
            .last()
            .filter(|last| last.run > 1 && !last.added.is_empty())
    }
}

/// 3/N, at most 1 (and 1 for no runs).
fn missed_call_bound(n: usize) -> f64 {
    let n = u32::try_from(n).unwrap_or(u32::MAX).max(1);
    (3.0 / f64::from(n)).min(1.0)
}

/// What N runs that all missed a call say about how often it comes, in words.
fn what_runs_rule_out(n: usize) -> String {
    if n <= 3 {
        format!(
            "not proof of completeness: {n} runs can miss any call that only some runs make \
             (N runs rule out, at 95 %, only calls made in more than 3/N of runs)"
        )
    } else {
        let percent = (300 + n / 2) / n;
        format!(
            "not proof of completeness: a call made in fewer than {percent} % of runs could \
             have been missed by all {n} (rule of three, 95 %)"
        )
    }
}

fn verdict(runs: &[RunAdded], stable_runs: usize) -> String {
    let n = runs.len();
    match (n, stable_runs) {
        (0, _) => "no runs".to_string(),
        (1, _) => "1 run: record more runs to know whether it saw everything".to_string(),
        (_, 0) => {
            let last = &runs[n - 1];
            let names: Vec<String> = last.added.iter().map(|a| format!("`{a}`")).collect();
            format!("run {n} added {}: record more runs", names.join(", "))
        }
        (_, 1) => format!("run {n} added nothing; {}", what_runs_rule_out(n)),
        (_, k) => format!(
            "runs {}–{n} added nothing; {}",
            n - k + 1,
            what_runs_rule_out(n)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(names: &[&str]) -> Allowlist {
        let calls: Vec<(Arch, &str, u64)> = names.iter().map(|n| (Arch::X86_64, *n, 1)).collect();
        Allowlist::for_tests_of_command("cmd", &calls)
    }

    fn convergence(runs: &[&[&str]]) -> Convergence {
        let lists: Vec<Allowlist> = runs.iter().map(|r| list(r)).collect();
        let files: Vec<String> = (1..=lists.len()).map(|i| format!("run{i}")).collect();
        Convergence::of(files.iter().map(String::as_str).zip(&lists))
    }

    #[test]
    fn each_run_lists_what_no_earlier_run_had() {
        let c = convergence(&[&["read", "write"], &["read", "futex"], &["write"]]);
        let added: Vec<&[String]> = c.runs.iter().map(|r| r.added.as_slice()).collect();
        assert_eq!(added, [&["read", "write"][..], &["futex"], &[]]);
        assert_eq!(c.stable_runs, 1);
        assert_eq!(
            c.line,
            "run 3 added nothing; not proof of completeness: 3 runs can miss any call that only \
             some runs make (N runs rule out, at 95 %, only calls made in more than 3/N of runs)"
        );
        assert!(c.still_changing().is_none());
    }

    #[test]
    fn a_last_run_that_adds_is_still_changing() {
        let c = convergence(&[&["read"], &["read"], &["read", "sched_yield"]]);
        assert_eq!(c.stable_runs, 0);
        assert_eq!(c.line, "run 3 added `sched_yield`: record more runs");
        assert_eq!(c.still_changing().unwrap().added, ["sched_yield"]);
    }

    #[test]
    fn a_new_argument_value_or_flag_bit_is_new() {
        use crate::allowlist::ArgRecord;
        let mut first = list(&["socket", "clone"]);
        let mut second = list(&["socket", "clone"]);
        let set_args = |l: &mut Allowlist, families: &[u64], flags: u64| {
            for s in &mut l.syscalls {
                s.args = match s.name.as_deref() {
                    Some("socket") => vec![ArgRecord::values(
                        0,
                        None,
                        families.iter().map(|&f| (f, 1)),
                        false,
                    )],
                    _ => vec![ArgRecord::flags(0, None, flags, false)],
                };
            }
        };
        set_args(&mut first, &[1], 0x100);
        set_args(&mut second, &[1, 2], 0x100 | 0x10000);
        let c = Convergence::of([("a", &first), ("b", &second)]);
        assert_eq!(
            c.runs[1].added,
            ["clone(arg0 bit 0x10000)", "socket(arg0=2)"]
        );
        assert_eq!(
            c.line,
            "run 2 added `clone(arg0 bit 0x10000)`, `socket(arg0=2)`: record more runs"
        );
    }

    #[test]
    fn stable_runs_say_how_rare_a_call_they_could_have_missed() {
        let ten: Vec<&[&str]> = vec![&["read"]; 10];
        let c = convergence(&ten);
        assert_eq!(
            c.line,
            "runs 2–10 added nothing; not proof of completeness: a call made in fewer than 30 % \
             of runs could have been missed by all 10 (rule of three, 95 %)"
        );
        assert!((c.missed_call_bound - 0.3).abs() < 1e-12);
        // The bound is the rule of three: (1 - 3/N)^N stays below 5 % (it tends to e^-3).
        for n in 4..200 {
            let p = missed_call_bound(n);
            let missed = (1.0 - p).powi(i32::try_from(n).unwrap());
            assert!(missed < 0.05, "{n}: {missed}");
        }
    }

    #[test]
    fn trailing_stable_runs_are_a_range() {
        let c = convergence(&[&["read"], &["read"], &["read"]]);
        assert!(c.line.starts_with("runs 2–3 added nothing; "), "{}", c.line);
        assert_eq!(c.stable_runs, 2);
        assert_eq!(c.missed_call_bound, 1.0);
        let one = convergence(&[&["read"]]);
        assert_eq!(one.stable_runs, 0);
        assert!(
            one.still_changing().is_none(),
            "one run has nothing to compare"
        );
    }
}
