//! Who used each syscall: turns the kernel program's per-program counts and exec events into
//! the allowlist's `programs`, `executables` and `privilege_drop` fields.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use crate::allowlist::{
    ExecutableRun, PrivilegeDrop, ProgramCount, SyscallCount, MAX_PROGRAMS_LISTED,
};
use crate::bpf::{ExecRecord, ProgramUse};
use crate::runtimes::{self, ExecPaths};

/// Converts `CLOCK_MONOTONIC` nanoseconds (the kernel program's clock) to wall-clock time.
///
/// The offset between the clocks is measured once per process: measured per call, it jitters
/// by the time between the two clock reads, enough to put a `last_seen` before its own
/// `first_seen`.
pub fn wall_clock(monotonic_ns: u64) -> OffsetDateTime {
    static OFFSET: std::sync::OnceLock<i128> = std::sync::OnceLock::new();
    let offset = *OFFSET.get_or_init(|| {
        let now = |clock| {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: valid clock id and out-pointer.
            unsafe { libc::clock_gettime(clock, &mut ts) };
            i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
        };
        now(libc::CLOCK_REALTIME) - now(libc::CLOCK_MONOTONIC)
    });
    OffsetDateTime::from_unix_timestamp_nanos(offset + i128::from(monotonic_ns))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Fills each syscall's `programs` (earliest first, bounded) from the target's uses.
pub fn attach_programs(syscalls: &mut [SyscallCount], uses: &[&ProgramUse]) {
    for s in syscalls.iter_mut() {
        let mut mine: Vec<&&ProgramUse> = uses
            .iter()
            .filter(|u| u.arch == s.arch && u.nr == s.nr)
            .collect();
        mine.sort_by(|a, b| (a.first_ns, &a.comm, a.root).cmp(&(b.first_ns, &b.comm, b.root)));
        s.programs_omitted = mine.len().saturating_sub(MAX_PROGRAMS_LISTED) as u64;
        s.programs = mine
            .into_iter()
            .take(MAX_PROGRAMS_LISTED)
            .map(|u| ProgramCount {
                comm: u.comm.clone(),
                as_root: u.root,
                count: u.count,
                first_seen: wall_clock(u.first_ns),
                last_seen: wall_clock(u.last_ns),
            })
            .collect();
    }
}

/// Execs grouped by (path, uid) as they arrive, so that a long recording of a busy target
/// keeps one entry per program and user, not one per exec; each program is looked at for a
/// language runtime until the look succeeds (once, unless its processes were gone).
#[derive(Clone, Debug, Default)]
pub struct ExecTally {
    entries: BTreeMap<(String, u32), TallyEntry>,
    paths: ExecPaths,
}

#[derive(Clone, Debug)]
struct TallyEntry {
    run: ExecutableRun,
    first_ns: u64,
    /// Whether its runtime is known (or known to be none).
    recognised: bool,
}

impl ExecTally {
    /// A tally of execs whose paths name files as `paths` says.
    pub fn new(paths: ExecPaths) -> Self {
        Self {
            entries: BTreeMap::new(),
            paths,
        }
    }

    /// Counts one exec.
    pub fn add(&mut self, e: &ExecRecord) {
        let entry = self
            .entries
            .entry((e.filename.clone(), e.uid))
            .or_insert_with(|| TallyEntry {
                run: ExecutableRun {
                    path: e.filename.clone(),
                    comm: e.comm.clone(),
                    uid: e.uid,
                    gid: e.gid,
                    count: 0,
                    first_seen: wall_clock(e.ktime_ns),
                    runtime: None,
                },
                first_ns: e.ktime_ns,
                recognised: false,
            });
        entry.run.count += 1;
        if e.ktime_ns < entry.first_ns {
            entry.first_ns = e.ktime_ns;
            entry.run.first_seen = wall_clock(e.ktime_ns);
        }
        if !entry.recognised {
            let found = runtimes::recognise(&e.filename, &e.comm, e.tgid, self.paths);
            entry.run.runtime = found.runtime;
            entry.recognised = found.settled;
        }
    }

    /// The executables, earliest first.
    pub fn runs(&self) -> Vec<ExecutableRun> {
        let mut runs: Vec<&TallyEntry> = self.entries.values().collect();
        runs.sort_by(|a, b| (a.first_ns, &a.run.path).cmp(&(b.first_ns, &b.run.path)));
        runs.into_iter().map(|e| e.run.clone()).collect()
    }
}

/// The root / non-root split, when both happened.
pub fn privilege_drop(
    uses: &[&ProgramUse],
    name_of: impl Fn(&ProgramUse) -> String,
) -> Option<PrivilegeDrop> {
    let first_unprivileged = uses.iter().filter(|u| !u.root).map(|u| u.first_ns).min()?;
    if !uses.iter().any(|u| u.root) {
        return None;
    }
    let root: BTreeSet<String> = uses.iter().filter(|u| u.root).map(|u| name_of(u)).collect();
    let unprivileged: BTreeSet<String> = uses
        .iter()
        .filter(|u| !u.root)
        .map(|u| name_of(u))
        .collect();
    Some(PrivilegeDrop {
        first_unprivileged_call: wall_clock(first_unprivileged),
        root_only: root.difference(&unprivileged).cloned().collect(),
        unprivileged: unprivileged.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::TargetSlot;
    use crate::syscalls::Arch;

    fn use_of(comm: &str, nr: u32, root: bool, first: u64) -> ProgramUse {
        ProgramUse {
            slot: TargetSlot::for_tests(0),
            arch: Arch::X86_64,
            nr,
            comm: comm.into(),
            root,
            runtime_init: false,
            count: 2,
            first_ns: first,
            last_ns: first + 10,
        }
    }

    #[test]
    fn wall_clock_keeps_the_order_of_kernel_times() {
        for t in [1_000u64, 5_000_000, 77_000_000_000] {
            assert!(wall_clock(t) <= wall_clock(t + 1));
            assert_eq!(
                wall_clock(t + 1) - wall_clock(t),
                time::Duration::nanoseconds(1)
            );
        }
    }

    #[test]
    fn programs_are_bounded_and_earliest_first() {
        let uses: Vec<ProgramUse> = (0..20)
            .map(|i| use_of(&format!("p{i}"), 0, false, 100 - i))
            .collect();
        let refs: Vec<&ProgramUse> = uses.iter().collect();
        let (mut syscalls, _) = crate::allowlist::Allowlist::syscalls_from_counts(
            [(Arch::X86_64, 0, 40), (Arch::X86_64, 1, 1)],
            0,
        );
        attach_programs(&mut syscalls, &refs);
        let read = syscalls.iter().find(|s| s.nr == 0).unwrap();
        assert_eq!(read.programs.len(), MAX_PROGRAMS_LISTED);
        assert_eq!(read.programs_omitted, 4);
        assert_eq!(read.programs[0].comm, "p19");
        let write = syscalls.iter().find(|s| s.nr == 1).unwrap();
        assert!(write.programs.is_empty());
    }

    #[test]
    fn privilege_drop_splits_root_from_the_rest() {
        let uses = [
            use_of("init", 165, true, 1), // mount, as root only
            use_of("init", 0, true, 2),
            use_of("app", 0, false, 50),
            use_of("app", 1, false, 60),
        ];
        let refs: Vec<&ProgramUse> = uses.iter().collect();
        let name = |u: &ProgramUse| Arch::X86_64.syscall_name(u.nr).unwrap().to_string();
        let drop = privilege_drop(&refs, name).unwrap();
        assert_eq!(drop.root_only, vec!["mount"]);
        assert_eq!(drop.unprivileged, vec!["read", "write"]);
        assert!(privilege_drop(&refs[..2], name).is_none());
    }

    #[test]
    fn execs_group_by_path_and_uid() {
        let exec = |path: &str, uid, t| ExecRecord {
            slot: TargetSlot::for_tests(0),
            filename: path.into(),
            comm: "x".into(),
            uid,
            gid: uid,
            tgid: 1,
            ktime_ns: t,
        };
        let mut tally = ExecTally::default();
        for e in [
            exec("/bin/sh", 0, 5),
            exec("/bin/ls", 1000, 9),
            exec("/bin/sh", 0, 3),
        ] {
            tally.add(&e);
        }
        let runs = tally.runs();
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].path.as_str(), runs[0].count), ("/bin/sh", 2));
        assert_eq!(runs[1].uid, 1000);
    }
}
