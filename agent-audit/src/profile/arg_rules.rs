//! How a set of allowed argument values becomes rules: the alternatives libseccomp walks,
//! shaped so that it walks few of them (see [`super::args`] for why these shapes and not
//! others: runc's split of repeated indexes, the kernel's 32-bit reads, libseccomp's order).

use crate::seccomp::{ArgCondition, CompareOp};

/// The kernel reads ioctl's request as an unsigned int.
pub(super) const LOW_32_BITS: u64 = 0xffff_ffff;

/// One alternative of a narrowed syscall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgRule {
    /// What a matching call gets.
    pub verdict: ArgVerdict,
    /// Conditions, ANDed, each on a different index; never empty.
    pub conditions: Vec<ArgCondition>,
}

/// What an argument rule does with a call it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgVerdict {
    /// The call runs.
    Allow,
    /// The call fails with this errno (never the default action's).
    Refuse {
        /// The errno.
        errno: u32,
    },
}

impl ArgRule {
    pub(super) fn allow(condition: ArgCondition) -> Self {
        Self {
            verdict: ArgVerdict::Allow,
            conditions: vec![condition],
        }
    }

    pub(super) fn refuse(errno: u32, condition: ArgCondition) -> Self {
        Self {
            verdict: ArgVerdict::Refuse { errno },
            conditions: vec![condition],
        }
    }
}

/// Every value whose low 32 bits are none of `excluded`: one refusal per excluded value
/// (MASKED_EQ on the low 32 bits, so upper bits change nothing), then two allows that together
/// match everything (low bit 1, low bit 0). libseccomp puts all of them on one level below a
/// shared always-true test of the upper half, larger datum first, so the refusals (never 0 or
/// 1: `policy`'s test of the data) come first: a call walks one comparison per refused value and one
/// or two more, where one MASKED_EQ alternative per bit walked up to 35.
pub(super) fn all_but_low_32(index: u32, excluded: &[u64], errno: u32) -> Vec<ArgRule> {
    if excluded.is_empty() {
        return Vec::new();
    }
    let mut rules: Vec<ArgRule> = excluded
        .iter()
        .map(|&v| ArgRule::refuse(errno, ArgCondition::masked_eq(index, LOW_32_BITS, v)))
        .collect();
    for low_bit in [1, 0] {
        rules.push(ArgRule::allow(ArgCondition::masked_eq(index, 1, low_bit)));
    }
    rules
}

/// Exactly the values `allowed` (all below 2^32). With a refusal errno: `LT` boundaries in
/// ascending order when that is fewer rules than one `EQ` per value, each refusing the gap
/// below a run of allowed values or allowing the run. Without: `LT` the first run when it
/// starts at 0, then one `EQ` per other value. Either way a value with upper bits set matches
/// no rule and gets the default action. Never GT/NE: see the module documentation.
pub(super) fn value_rules(index: u32, allowed: &[u64], refusal_errno: Option<u32>) -> Vec<ArgRule> {
    let mut sorted = allowed.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &v in &sorted {
        match runs.last_mut() {
            Some((_, end)) if *end == v => *end = v + 1,
            _ => runs.push((v, v + 1)),
        }
    }
    if let Some(errno) = refusal_errno {
        let ranges = runs_as_boundaries(index, &runs, errno);
        if ranges.len() < sorted.len() {
            return ranges;
        }
    }
    let below = match runs.first() {
        Some(&(0, end)) if end > 1 => end,
        _ => 0,
    };
    let mut rules = Vec::new();
    if below > 0 {
        rules.push(ArgRule::allow(ArgCondition::new(
            index,
            CompareOp::Less,
            below,
        )));
    }
    rules.extend(
        sorted
            .iter()
            .filter(|&&v| v >= below)
            .map(|&v| ArgRule::allow(ArgCondition::new(index, CompareOp::Equal, v))),
    );
    rules
}

/// `runs` (sorted, disjoint `[start, end)`) as ascending `LT` boundaries, the order libseccomp
/// walks them in: refuse below each run's start (what earlier boundaries left), allow below
/// its end.
fn runs_as_boundaries(index: u32, runs: &[(u64, u64)], errno: u32) -> Vec<ArgRule> {
    let mut rules = Vec::new();
    let mut covered = 0;
    for &(start, end) in runs {
        if start > covered {
            rules.push(ArgRule::refuse(
                errno,
                ArgCondition::new(index, CompareOp::Less, start),
            ));
        }
        rules.push(ArgRule::allow(ArgCondition::new(
            index,
            CompareOp::Less,
            end,
        )));
        covered = end;
    }
    rules
}
