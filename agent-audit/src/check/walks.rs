//! What argument rules cost per call: for each syscall with argument rules, the most BPF
//! instructions a call of it can walk in the filter runc builds (`seccomp::cost`), on each
//! listed arch. A syscall without argument rules that a rule allows outright costs nothing
//! after the first call (the kernel caches it as always allowed, Linux ≥ 5.11); one with them
//! runs the filter on every call, so its walk is paid by the workload for ever.

use std::collections::BTreeSet;

use super::finding;
use super::{Finding, LintCode, Severity};
use crate::seccomp::compile::SyscallLayout;
use crate::seccomp::cost::{Cost, FilterCost};
use crate::seccomp::SeccompProfile;
use crate::syscalls::Arch;

/// The most instructions a call of a syscall with argument rules should walk with runc ≥ 1.2's
/// binary-tree lookup before `check` warns: more than twice the worst of any syscall Docker's
/// current default narrows by argument (`socket`, 28 on x86_64), and well under the 116 that
/// agent-audit's earlier one-rule-per-bit `ioctl` encoding walked. The lookup itself is a few
/// levels of a tree; the rest is the argument comparisons, which a profile controls.
pub const ARGUMENT_WALK_BOUND: usize = 64;

/// One note per arch with every argument syscall's worst case (runc 1.1's linear lookup and
/// runc ≥ 1.2's tree), and a warning naming those past [`ARGUMENT_WALK_BOUND`].
pub(super) fn run(profile: &SeccompProfile, arches: &[Arch], out: &mut Vec<Finding>) {
    let names: BTreeSet<&str> = profile
        .syscalls
        .iter()
        .filter(|r| !r.args.is_empty())
        .flat_map(|r| r.all_names())
        .collect();
    if names.is_empty() {
        return;
    }
    for &arch in arches {
        let compile = |layout| FilterCost::compile(profile, arch, layout).ok();
        // A profile that does not compile has its own error (`does-not-compile`).
        let (Some(linear), Some(tree)) = (
            compile(SyscallLayout::Linear),
            compile(SyscallLayout::RuncTree),
        ) else {
            continue;
        };
        let walks: Vec<(&str, Cost, Cost)> = names
            .iter()
            .filter_map(|&name| Some((name, linear.worst_case(name)?, tree.worst_case(name)?)))
            .collect();
        if walks.is_empty() {
            continue;
        }
        let arch_name = Some(arch.scmp_name().to_string());
        out.push(Finding {
            arch: arch_name.clone(),
            ..note(&walks)
        });
        let long: Vec<String> = walks
            .iter()
            .filter(|(_, _, tree)| tree.instructions() > ARGUMENT_WALK_BOUND)
            .map(|(name, _, tree)| format!("{name} ({})", tree.instructions()))
            .collect();
        if !long.is_empty() {
            out.push(Finding {
                arch: arch_name,
                ..finding(
                    Severity::Warning,
                    LintCode::ArgumentWalkLong,
                    format!(
                        "a call of these syscalls walks more than {ARGUMENT_WALK_BOUND} BPF \
                         instructions of argument rules at worst (runc ≥ 1.2's lookup), on \
                         every call: the kernel cannot cache a syscall whose outcome depends \
                         on its arguments. Fewer alternatives cost less: a few refusals before \
                         an allow of everything else, LT boundaries around runs of allowed \
                         values, rather than one rule per bit or per value"
                    ),
                    long,
                )
            });
        }
    }
}

fn note(walks: &[(&str, Cost, Cost)]) -> Finding {
    let each: Vec<String> = walks
        .iter()
        .map(|(name, linear, tree)| format!("{name} {}/{}", text(*linear), text(*tree)))
        .collect();
    finding(
        Severity::Note,
        LintCode::ArgumentWalk,
        format!(
            "worst-case BPF instructions walked per call of each syscall with argument rules \
             (runc 1.1's linear lookup / runc ≥ 1.2's binary tree): {}",
            each.join(", ")
        ),
        Vec::new(),
    )
}

fn text(cost: Cost) -> String {
    match cost {
        Cost::Cached => "0 (cached: an unconditional rule wins)".into(),
        Cost::Walked(n) => n.to_string(),
    }
}
