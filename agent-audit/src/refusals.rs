//! What the seccomp filter in force refused: the kernel program's refusal counts (see
//! `bpf::RefusalUse`) become the allowlist's `refused` rows.

use std::collections::BTreeMap;

use crate::allowlist::{
    ProgramCount, RefusalAction, RefusedCall, RefusingFilter, MAX_PROGRAMS_LISTED,
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

#[cfg(test)]
mod tests {
    use super::*;

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
