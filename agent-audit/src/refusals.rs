//! What the seccomp filter in force refused: the kernel program's refusal counts (see
//! `bpf::RefusalUse`) become the allowlist's `refused` rows, and recordings' rows are read
//! back as [`RecordedRefusals`].

use std::collections::{BTreeMap, BTreeSet};

use crate::allowlist::{
    Allowlist, ProgramCount, RefusalAction, RefusedCall, RefusingFilter, MAX_PROGRAMS_LISTED,
};
use crate::attribution::wall_clock;
use crate::bpf::{FilterOrigin, RefusalUse, TargetSlot};
use crate::syscalls::Arch;

impl From<crate::bpf::RefusalAction> for RefusalAction {
    fn from(action: crate::bpf::RefusalAction) -> Self {
        match action {
            crate::bpf::RefusalAction::Errno => RefusalAction::Errno,
            crate::bpf::RefusalAction::Trap => RefusalAction::Trap,
            crate::bpf::RefusalAction::Kill => RefusalAction::Kill,
        }
    }
}

impl From<FilterOrigin> for RefusingFilter {
    fn from(origin: FilterOrigin) -> Self {
        match origin {
            FilterOrigin::Runtime => RefusingFilter::Runtime,
            FilterOrigin::Own => RefusingFilter::WithOwn,
            FilterOrigin::Unknown => RefusingFilter::Unknown,
        }
    }
}

/// One row per (syscall, action, filter, phase) of `slot`, each with its programs (most
/// calls first), in the allowlist's order: by name (unnamed last), arch, number, then the
/// rest.
pub fn rows(uses: &[RefusalUse], slot: TargetSlot) -> Vec<RefusedCall> {
    type Key = (Arch, u32, RefusalAction, RefusingFilter, bool);
    let mut grouped: BTreeMap<Key, Vec<&RefusalUse>> = BTreeMap::new();
    for u in uses.iter().filter(|u| u.slot == slot) {
        let key = (
            u.arch,
            u.nr,
            u.action.into(),
            u.origin.into(),
            u.runtime_init,
        );
        grouped.entry(key).or_default().push(u);
    }
    let mut rows: Vec<RefusedCall> = grouped
        .into_iter()
        .map(|((arch, nr, action, filter, runtime_init), mut by)| {
            by.sort_by(|a, b| {
                (b.count, a.first_ns, &a.comm, a.root).cmp(&(a.count, b.first_ns, &b.comm, b.root))
            });
            RefusedCall {
                name: arch.syscall_name(nr).map(str::to_owned),
                arch,
                nr,
                count: crate::allowlist::saturating_sum(by.iter().map(|u| u.count)),
                action,
                filter,
                runtime_init,
                programs: by
                    .iter()
                    .take(MAX_PROGRAMS_LISTED)
                    .map(|u| ProgramCount {
                        comm: u.comm.clone(),
                        as_root: u.root,
                        count: u.count,
                        first_seen: wall_clock(u.first_ns),
                        last_seen: wall_clock(u.last_ns),
                    })
                    .collect(),
            }
        })
        .collect();
    sort_refused(&mut rows);
    rows
}

/// The allowlist's order of `refused`: by name (unnamed last), arch, number, action, filter,
/// phase.
pub fn sort_refused(rows: &mut [RefusedCall]) {
    rows.sort_by(|a, b| {
        (
            a.name.is_none(),
            &a.name,
            a.arch,
            a.nr,
            a.action,
            a.filter,
            a.runtime_init,
        )
            .cmp(&(
                b.name.is_none(),
                &b.name,
                b.arch,
                b.nr,
                b.action,
                b.filter,
                b.runtime_init,
            ))
    });
}

/// The calls a target's seccomp filter refused while it was recorded: the recordings' `refused`
/// rows, when every recording counted refusals (`recorder.refusals`). `verify` of a container
/// reads from them which of the calls its profile refused the container's own configuration
/// refused too: the recorded runs are the ones that matter (a call refused there is one no
/// profile made from them allows), so they answer without another run.
pub struct RecordedRefusals(BTreeSet<(Arch, u32)>);

impl RecordedRefusals {
    /// `None` when there is no recording or one did not count refusals: its `refused` being
    /// empty says nothing.
    pub fn from_recordings(lists: &[Allowlist]) -> Option<Self> {
        if lists.is_empty() || !lists.iter().all(|l| l.recorder.refusals) {
            return None;
        }
        Some(Self(
            lists
                .iter()
                .flat_map(|l| &l.refused)
                .map(|r| (r.arch, r.nr))
                .collect(),
        ))
    }

    /// Whether a recording saw (arch, nr) refused.
    pub fn contains(&self, arch: Arch, nr: u32) -> bool {
        self.0.contains(&(arch, nr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_refusals_count_only_when_every_recording_counted_them() {
        let x = Arch::X86_64;
        let refused = |nr: u32| RefusedCall {
            name: x.syscall_name(nr).map(str::to_owned),
            arch: x,
            nr,
            count: 2,
            action: RefusalAction::Errno,
            filter: RefusingFilter::Runtime,
            runtime_init: false,
            programs: Vec::new(),
        };
        let recording = |counted: bool, rows: Vec<RefusedCall>| {
            let mut list = Allowlist::for_tests_of_command("node", &[(x, "read", 3)]);
            list.recorder.refusals = counted;
            list.refused = rows;
            list
        };
        // pkey_alloc (330) refused in one recorded run, nothing in the other.
        let counted = [recording(true, vec![refused(330)]), recording(true, vec![])];
        let recorded = RecordedRefusals::from_recordings(&counted).unwrap();
        assert!(recorded.contains(x, 330));
        assert!(!recorded.contains(x, 83), "mkdir was not refused");
        assert!(!recorded.contains(Arch::X86, 330), "per architecture");

        let one_uncounted = [
            recording(true, vec![refused(330)]),
            recording(false, vec![]),
        ];
        assert!(RecordedRefusals::from_recordings(&one_uncounted).is_none());
        assert!(RecordedRefusals::from_recordings(&[]).is_none());
    }

    fn refusal(comm: &str, nr: u32, count: u64, action: crate::bpf::RefusalAction) -> RefusalUse {
        RefusalUse {
            slot: TargetSlot::for_tests(0),
            arch: Arch::X86_64,
            nr,
            comm: comm.into(),
            root: false,
            runtime_init: false,
            action,
            origin: FilterOrigin::Runtime,
            count,
            first_ns: 1,
            last_ns: 2,
        }
    }

    #[test]
    fn rows_group_programs_by_syscall_and_action_and_keep_other_targets_out() {
        use crate::bpf::RefusalAction as Kernel;
        let mkdir = Arch::X86_64.syscall_nr("mkdir").unwrap();
        let chmod = Arch::X86_64.syscall_nr("chmod").unwrap();
        let mut other = refusal("other", mkdir, 7, Kernel::Errno);
        other.slot = TargetSlot::for_tests(1);
        let uses = vec![
            refusal("sh", mkdir, 2, Kernel::Errno),
            refusal("mkdir", mkdir, 3, Kernel::Errno),
            refusal("sh", mkdir, 1, Kernel::Kill),
            refusal("sh", chmod, 4, Kernel::Errno),
            other,
        ];
        let rows = rows(&uses, TargetSlot::for_tests(0));
        let summary: Vec<(&str, RefusalAction, u64, Vec<&str>)> = rows
            .iter()
            .map(|r| {
                (
                    r.name.as_deref().unwrap(),
                    r.action,
                    r.count,
                    r.programs.iter().map(|p| p.comm.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("chmod", RefusalAction::Errno, 4, vec!["sh"]),
                ("mkdir", RefusalAction::Errno, 5, vec!["mkdir", "sh"]),
                ("mkdir", RefusalAction::Kill, 1, vec!["sh"]),
            ]
        );
    }
}
