//! A target that starts again is still the same target: `record --wait --keep-waiting
//! --container NAME` records every start of the container (same id, a new cgroup each time)
//! into its one allowlist. [`combine`] adds a start's allowlist to the one of the starts
//! before it: counts add up, each start keeps an entry of its own in `starts`.

use std::collections::BTreeMap;

use crate::allowlist::{
    saturating_sum, sort_syscalls, Allowlist, ArgRecord, ExecutableRun, MultiplexedCount,
    ProgramCount, RecorderInfo, RefusedCall, SyscallCount, Totals, MAX_PROGRAMS_LISTED,
};

/// The allowlist of `earlier`'s starts followed by `later`'s: what was watched, the state
/// (`complete`, `ended_at`) and the host are the later one's; counts, programs, argument
/// values, executables and `starts` are united; a missed start or privilege drop is kept
/// from whichever start had one first; refusals count as counted only if every start's were.
pub fn combine(earlier: Allowlist, later: Allowlist) -> Allowlist {
    let syscalls = combine_rows(earlier.syscalls, later.syscalls);
    let out_of_range = earlier
        .totals
        .out_of_range
        .saturating_add(later.totals.out_of_range);
    let totals = Totals {
        calls: saturating_sum(syscalls.iter().map(|s| s.count)).saturating_add(out_of_range),
        distinct: u64::try_from(syscalls.len()).unwrap_or(u64::MAX),
        out_of_range,
    };
    let mut starts = earlier.starts;
    starts.extend(later.starts);
    let recorder = RecorderInfo {
        refusals: earlier.recorder.refusals && later.recorder.refusals,
        ..later.recorder
    };
    Allowlist {
        recorder,
        started_at: earlier.started_at.min(later.started_at),
        totals,
        syscalls,
        multiplexed: combine_multiplexed(earlier.multiplexed, later.multiplexed),
        runtime_init: combine_rows(earlier.runtime_init, later.runtime_init),
        executables: combine_executables(earlier.executables, later.executables),
        privilege_drop: earlier.privilege_drop.or(later.privilege_drop),
        missed_start: earlier.missed_start.or(later.missed_start),
        refused: combine_refused(earlier.refused, later.refused),
        left_cgroup: [earlier.left_cgroup, later.left_cgroup].concat(),
        capabilities: match (earlier.capabilities, later.capabilities) {
            (Some(e), Some(l)) => Some(crate::capabilities::CapabilityChecks::combined(e, l)),
            (e, l) => l.or(e),
        },
        refused_unnamed: earlier
            .refused_unnamed
            .saturating_add(later.refused_unnamed),
        starts,
        ..later
    }
}

/// Rows of the same (arch, nr) summed, with their programs and argument values united.
fn combine_rows(earlier: Vec<SyscallCount>, later: Vec<SyscallCount>) -> Vec<SyscallCount> {
    let mut by_call: BTreeMap<(crate::syscalls::Arch, u32), SyscallCount> = BTreeMap::new();
    for row in earlier.into_iter().chain(later) {
        match by_call.get_mut(&(row.arch, row.nr)) {
            None => {
                by_call.insert((row.arch, row.nr), row);
            }
            Some(seen) => add_row(seen, row),
        }
    }
    let mut rows: Vec<SyscallCount> = by_call.into_values().collect();
    sort_syscalls(&mut rows);
    rows
}

fn add_row(seen: &mut SyscallCount, row: SyscallCount) {
    seen.count = seen.count.saturating_add(row.count);
    seen.programs_omitted = seen.programs_omitted.saturating_add(row.programs_omitted);
    let (programs, extra) = united_programs(std::mem::take(&mut seen.programs), row.programs);
    seen.programs_omitted = seen.programs_omitted.saturating_add(extra);
    seen.programs = programs;
    for record in row.args {
        match seen
            .args
            .iter_mut()
            .find(|r| (r.index, r.field) == (record.index, record.field))
        {
            Some(existing) => existing.merge(&record),
            None => seen.args.push(record),
        }
    }
    seen.args.sort_by_key(ArgRecord::sort_key);
}

fn combine_multiplexed(
    earlier: Vec<MultiplexedCount>,
    later: Vec<MultiplexedCount>,
) -> Vec<MultiplexedCount> {
    let mut rows: Vec<MultiplexedCount> = Vec::new();
    for row in earlier.into_iter().chain(later) {
        let same = |r: &&mut MultiplexedCount| {
            (r.arch, &r.syscall, r.op) == (row.arch, &row.syscall, row.op)
        };
        match rows.iter_mut().find(same) {
            Some(seen) => seen.count = seen.count.saturating_add(row.count),
            None => rows.push(row),
        }
    }
    rows
}

/// Executables by (path, uid): counts summed, the earliest first execution, a runtime
/// recognised in either.
fn combine_executables(
    earlier: Vec<ExecutableRun>,
    later: Vec<ExecutableRun>,
) -> Vec<ExecutableRun> {
    let mut runs: Vec<ExecutableRun> = Vec::new();
    for run in earlier.into_iter().chain(later) {
        match runs
            .iter_mut()
            .find(|r| (&r.path, r.uid) == (&run.path, run.uid))
        {
            Some(seen) => {
                seen.count = seen.count.saturating_add(run.count);
                seen.first_seen = seen.first_seen.min(run.first_seen);
                seen.runtime = seen.runtime.or(run.runtime);
            }
            None => runs.push(run),
        }
    }
    runs.sort_by(|a, b| (a.first_seen, &a.path).cmp(&(b.first_seen, &b.path)));
    runs
}

/// Two starts' programs of one call, summed per (program, as root), earliest first; at most
/// [`MAX_PROGRAMS_LISTED`], with how many were left out.
fn united_programs(
    earlier: Vec<ProgramCount>,
    later: Vec<ProgramCount>,
) -> (Vec<ProgramCount>, u64) {
    let mut programs: BTreeMap<(String, bool), ProgramCount> = BTreeMap::new();
    for p in earlier.into_iter().chain(later) {
        match programs.get_mut(&(p.comm.clone(), p.as_root)) {
            None => {
                programs.insert((p.comm.clone(), p.as_root), p);
            }
            Some(q) => {
                q.count = q.count.saturating_add(p.count);
                q.first_seen = q.first_seen.min(p.first_seen);
                q.last_seen = q.last_seen.max(p.last_seen);
            }
        }
    }
    let mut programs: Vec<ProgramCount> = programs.into_values().collect();
    programs.sort_by(|a, b| {
        (a.first_seen, &a.comm, a.as_root).cmp(&(b.first_seen, &b.comm, b.as_root))
    });
    let extra = programs.len().saturating_sub(MAX_PROGRAMS_LISTED);
    programs.truncate(MAX_PROGRAMS_LISTED);
    (programs, u64::try_from(extra).unwrap_or(u64::MAX))
}

/// Refusals of the same (call, action, filter, phase) summed over the starts, their programs
/// united (most calls first, as the recorder lists them).
fn combine_refused(earlier: Vec<RefusedCall>, later: Vec<RefusedCall>) -> Vec<RefusedCall> {
    let mut rows: Vec<RefusedCall> = Vec::new();
    for row in earlier.into_iter().chain(later) {
        let same = |r: &&mut RefusedCall| {
            (r.arch, r.nr, r.action, r.filter, r.runtime_init)
                == (row.arch, row.nr, row.action, row.filter, row.runtime_init)
        };
        match rows.iter_mut().find(same) {
            None => rows.push(row),
            Some(seen) => {
                seen.count = seen.count.saturating_add(row.count);
                let (mut programs, _) =
                    united_programs(std::mem::take(&mut seen.programs), row.programs);
                programs.sort_by_key(|p| std::cmp::Reverse(p.count));
                seen.programs = programs;
            }
        }
    }
    crate::refusals::sort_refused(&mut rows);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allowlist::TargetStart;
    use crate::syscalls::Arch;

    fn start(calls: &[(&str, u64)], at: i64) -> Allowlist {
        let counts: Vec<(Arch, &str, u64)> =
            calls.iter().map(|(n, c)| (Arch::X86_64, *n, *c)).collect();
        let mut list = Allowlist::for_tests_of_command("cmd", &counts);
        let t = time::OffsetDateTime::from_unix_timestamp(at).unwrap();
        list.started_at = t;
        list.ended_at = t + time::Duration::seconds(1);
        list.starts = vec![TargetStart {
            started_at: t,
            ended_at: list.ended_at,
            cgroup_id: u64::try_from(at).unwrap(),
            calls: list.totals.calls,
            from_first_call: true,
        }];
        list
    }

    #[test]
    fn counts_add_up_and_each_start_keeps_its_entry() {
        let a = start(&[("getppid", 100), ("read", 2)], 10);
        let b = start(&[("getppid", 100), ("write", 1)], 20);
        let c = start(&[("getppid", 100)], 30);
        let all = combine(combine(a, b), c);
        let count = |name: &str| {
            all.syscalls
                .iter()
                .find(|s| s.name.as_deref() == Some(name))
                .map(|s| s.count)
        };
        assert_eq!(count("getppid"), Some(300));
        assert_eq!((count("read"), count("write")), (Some(2), Some(1)));
        assert_eq!(all.totals.calls, 303);
        assert_eq!(all.totals.distinct, 3);
        let starts: Vec<(u64, u64)> = all.starts.iter().map(|s| (s.cgroup_id, s.calls)).collect();
        assert_eq!(starts, [(10, 102), (20, 101), (30, 100)]);
        assert_eq!(all.started_at.unix_timestamp(), 10);
        assert_eq!(all.ended_at.unix_timestamp(), 31);
        // What the file's reader checks holds for the sum too.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        all.write(&path).unwrap();
        assert_eq!(Allowlist::read(&path).unwrap(), all);
    }

    #[test]
    fn refusals_count_as_counted_only_when_every_start_counted_them() {
        let counted = |at: i64| {
            let mut list = start(&[("getppid", 1)], at);
            list.recorder.refusals = true;
            list
        };
        assert!(combine(counted(10), counted(20)).recorder.refusals);
        assert!(
            !combine(start(&[("getppid", 1)], 10), counted(20))
                .recorder
                .refusals
        );
        assert!(
            !combine(counted(10), start(&[("getppid", 1)], 20))
                .recorder
                .refusals
        );
    }

    #[test]
    fn argument_values_and_executables_are_united() {
        let mut a = start(&[("socket", 1)], 10);
        let mut b = start(&[("socket", 2)], 20);
        a.syscalls[0].args = vec![ArgRecord::values(0, None, [(1, 1)], false)];
        b.syscalls[0].args = vec![ArgRecord::values(0, None, [(1, 1), (2, 1)], false)];
        let exec = |t: i64| ExecutableRun {
            path: "/bin/app".into(),
            comm: "app".into(),
            uid: 0,
            gid: 0,
            count: 1,
            first_seen: time::OffsetDateTime::from_unix_timestamp(t).unwrap(),
            runtime: None,
        };
        a.executables = vec![exec(10)];
        b.executables = vec![exec(20)];
        let all = combine(a, b);
        let values: Vec<(u64, u64)> = all.syscalls[0].args[0]
            .values
            .iter()
            .map(|v| (v.value, v.count))
            .collect();
        assert_eq!(values, [(1, 2), (2, 1)]);
        assert_eq!(all.executables.len(), 1);
        assert_eq!(all.executables[0].count, 2);
        assert_eq!(all.executables[0].first_seen.unix_timestamp(), 10);
    }

    #[test]
    fn refusals_add_up_over_the_starts_and_stay_out_of_the_totals() {
        use crate::allowlist::{RefusalAction, RefusingFilter};
        let refused = |count: u64| RefusedCall {
            name: Some("mkdir".into()),
            arch: Arch::X86_64,
            nr: Arch::X86_64.syscall_nr("mkdir").unwrap(),
            count,
            action: RefusalAction::Errno,
            filter: RefusingFilter::Runtime,
            runtime_init: false,
            programs: Vec::new(),
        };
        let mut a = start(&[("getppid", 10)], 10);
        let mut b = start(&[("getppid", 10)], 20);
        a.refused = vec![refused(3)];
        a.refused_unnamed = 1;
        b.refused = vec![refused(4)];
        let all = combine(a, b);
        assert_eq!(all.refused.len(), 1);
        assert_eq!(all.refused[0].count, 7);
        assert_eq!(all.refused_unnamed, 1);
        assert_eq!(all.totals.calls, 20);
    }
}
