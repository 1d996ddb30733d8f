//! Argument rules: which calls of `socket`, `socketpair`, `clone` and `personality` the profile
//! allows, from the values the recordings saw (the allowlist `args` field) or, when they are
//! unknown, from `data/argument-rules.json` (never looser than Docker's default).
//!
//! How the rules are shaped follows what runc and libseccomp do (checked in their sources):
//! - conditions in one rule are ANDed and rules for one name are ORed, but runc splits a rule
//!   that compares one argument twice into one rule per condition (`matchCall`), so "family
//!   != 38 AND family != 40" cannot be one rule: every rule here compares each index once;
//! - libseccomp keeps one unconditional rule over any conditional one for the same syscall
//!   (`db_col_rule_add`), so a narrowed name is removed from every unconditional allow;
//! - the kernel truncates `int` arguments to 32 bits, so `SCMP_CMP_GT 40` lets
//!   `0x1_0000_0028` through as AF_VSOCK: only EQ, LT (upper bits make a value larger) and
//!   MASKED_EQ with the upper bits in the mask are used;
//! - on 32-bit arches libseccomp compares the two halves of a 64-bit value: every datum here
//!   fits in 32 bits, so the high half compares against 0, which a 32-bit task always passes;
//! - what a call costs is the rules libseccomp walks for it (`seccomp::cost`), and libseccomp
//!   orders the alternatives of one argument itself (`_db_chain_lt` in its `src/db.c`: equality
//!   and masked comparisons first, larger datum first; then `LT` rules, smaller datum first),
//!   whatever their order in the profile. So "every value but a few" is refusal rules (an errno
//!   of their own: runc drops a rule whose action is the default's) tested before a few allow
//!   rules, and long runs of allowed values are `LT` boundaries walked in ascending order,
//!   each alternative refusing or allowing the values below it that the ones before left. The
//!   rules are listed here in libseccomp's order, so the first that matches decides, in the
//!   kernel as in [`Narrowed::verdict_for`].

use std::collections::BTreeSet;

use super::arg_rules::{all_but_low_32, value_rules, LOW_32_BITS};
pub use super::arg_rules::{ArgRule, ArgVerdict};
use crate::allowlist::{ArgField, ArgKind, ArgRecord};
use crate::policy::{self, NamedValue};
use crate::seccomp::{ArgCondition, CompareOp};

/// Names whose allow rules are narrowed by argument.
pub const NARROWED: &[&str] = &["socket", "socketpair", "clone", "personality", "ioctl"];

/// How far recorded values narrow the rules that have a safe default (`--args`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ArgsMode {
    /// Dangerous values refused unless observed; other values of `ioctl` allowed.
    #[default]
    Default,
    /// Only the observed `ioctl` requests are allowed (when they were recorded completely).
    Strict,
}

/// What the recordings said about one argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Not recorded (older recorder, `--no-args`, or an input without them).
    Unknown,
    /// More distinct values than kept: the set is incomplete.
    Overflow,
    /// Every distinct value, with its call count.
    Values(Vec<(u64, u64)>),
    /// The union of every value's bits.
    Flags(u64),
}

/// The argument rules of one syscall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Narrowed {
    /// The syscall.
    pub name: String,
    /// What was observed of the compared argument.
    pub seen: Seen,
    /// What the rules allow, for people (`AF_UNIX (1), AF_INET (2)`).
    pub allows: String,
    /// Why the rules look the way they do.
    pub why: String,
    /// The rules, in the order libseccomp tests them: the first whose conditions (ANDed) all
    /// match decides; a call no rule matches gets the default action. Empty: one unconditional
    /// allow.
    pub rules: Vec<ArgRule>,
    /// Dangerous values the recordings saw, which the rules therefore allow.
    pub dangerous_observed: Vec<String>,
}

impl Narrowed {
    /// What the rules decide for a call whose compared argument is `arg` (every rule here
    /// compares one argument); `None`: no rule matches, the default action applies.
    pub fn verdict_for(&self, arg: u64) -> Option<ArgVerdict> {
        if self.rules.is_empty() {
            return Some(ArgVerdict::Allow);
        }
        self.rules
            .iter()
            .find(|r| r.conditions.iter().all(|c| c.matches(arg)))
            .map(|r| r.verdict)
    }
}

/// What the recordings saw of argument `index` (or of `field`) in `records`.
pub fn seen(records: Option<&[ArgRecord]>, index: u8, field: Option<ArgField>) -> Seen {
    let Some(record) =
        records.and_then(|rs| rs.iter().find(|r| r.index == index && r.field == field))
    else {
        return Seen::Unknown;
    };
    if record.overflow {
        return Seen::Overflow;
    }
    match record.kind {
        ArgKind::Values => Seen::Values(record.values.iter().map(|v| (v.value, v.count)).collect()),
        ArgKind::Flags => Seen::Flags(record.bits.unwrap_or(0)),
    }
}

/// Whether a profile may refuse some `socket` families by a rule of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketRefusals {
    /// Refusal rules beside allow rules: cheaper to walk.
    Allowed,
    /// The profile lists x86, where libseccomp also adds every `socket` rule to `socketcall`
    /// (`abi_rule_add` in its `src/arch-x86.c`), without the family comparison it cannot make
    /// there: an allow and a refusal then clash on `socketcall(SYS_SOCKET)` and libseccomp
    /// refuses the rule (EEXIST), which makes runc refuse the whole profile. Only allow rules.
    Clash,
}

impl SocketRefusals {
    /// What `arches` permit.
    pub fn for_arches(arches: &[crate::syscalls::Arch]) -> Self {
        if arches.contains(&crate::syscalls::Arch::X86) {
            SocketRefusals::Clash
        } else {
            SocketRefusals::Allowed
        }
    }
}

/// `socket` / `socketpair`: the observed families, or every family but the dangerous ones.
pub fn socket_families(name: &str, seen: Seen, refusals: SocketRefusals) -> Narrowed {
    let families = &policy::argument_rules().socket_families;
    let label = |f: u64| family_label(f);
    let (allowed, why, dangerous_observed) = match &seen {
        Seen::Values(values) => {
            let allowed: Vec<u64> = values.iter().map(|&(f, _)| f).collect();
            let dangerous: Vec<String> = allowed
                .iter()
                .filter_map(|&f| families.dangerous(f))
                .map(|d| format!("{} ({}): {}", d.name, d.value, d.reason))
                .collect();
            let counts: Vec<String> = values
                .iter()
                .map(|&(f, n)| format!("{} ×{n}", label(f)))
                .collect();
            let why = format!(
                "{name} is allowed only for the address families the recordings saw ({}); any \
                 other family, AF_ALG and AF_VSOCK included, gets EPERM.",
                counts.join(", ")
            );
            (allowed, why, dangerous)
        }
        _ => {
            let allowed: Vec<u64> = (0..families.known_below)
                .filter(|f| families.dangerous(*f).is_none())
                .collect();
            let refused: Vec<String> = families
                .dangerous
                .iter()
                .map(|d| format!("{} ({})", d.name, d.value))
                .collect();
            let why = format!(
                "The recordings have no {name} families ({}), so every family is allowed except \
                 the dangerous ones, which get EPERM: {}. {}",
                unknown_why(&seen),
                refused.join(", "),
                families.comment
            );
            (allowed, why, Vec::new())
        }
    };
    Narrowed {
        name: name.to_string(),
        allows: allowed
            .iter()
            .map(|&f| label(f))
            .collect::<Vec<_>>()
            .join(", "),
        rules: value_rules(
            0,
            &allowed,
            (refusals == SocketRefusals::Allowed).then_some(families.refused_errno.value),
        ),
        seen,
        why,
        dangerous_observed,
    }
}

/// `clone`: no namespace flag outside those observed (in `clone` or in `clone3`'s flags).
pub fn clone(seen_clone: Seen, seen_clone3: Option<Seen>) -> Narrowed {
    let ns = &policy::argument_rules().clone_namespace_flags;
    let all = ns.mask();
    let used = match (&seen_clone, &seen_clone3) {
        (Seen::Flags(a), None | Some(Seen::Flags(_))) => {
            let b = match seen_clone3 {
                Some(Seen::Flags(b)) => b,
                _ => 0,
            };
            Some((a | b) & all)
        }
        _ => None,
    };
    let (mask, why, dangerous_observed) = match used {
        Some(used) => {
            let names = ns.names_in(used);
            let why = if names.is_empty() {
                "The recordings used no namespace flag in clone (nor clone3), so clone is \
                 allowed only without any: CLONE_NEWUSER, CLONE_NEWNS and the others get EPERM."
                    .to_string()
            } else {
                format!(
                    "The recordings used these namespace flags: {}; clone is allowed with them \
                     but with no other namespace flag.",
                    names.join(", ")
                )
            };
            let dangerous = names.iter().map(|n| format!("clone {n}")).collect();
            (all & !used, why, dangerous)
        }
        None => (
            all,
            format!(
                "The recordings have no clone flags ({}), so clone is allowed only without \
                 namespace flags, as in Docker's default (mask {all:#x}). {}",
                unknown_why(&seen_clone),
                ns.comment
            ),
            Vec::new(),
        ),
    };
    let allows = if mask == 0 {
        "any flags".to_string()
    } else {
        format!("flags without {}", ns.names_in(mask).join("|"))
    };
    let rules = if mask == 0 {
        Vec::new()
    } else {
        vec![ArgRule::allow(ArgCondition::masked_eq(0, mask, 0))]
    };
    Narrowed {
        name: "clone".into(),
        seen: seen_clone,
        allows,
        why,
        rules,
        dangerous_observed,
    }
}

/// `personality`: the safe values plus the observed ones.
pub fn personality(seen: Seen) -> Narrowed {
    let safe = &policy::argument_rules().personality_safe;
    let mut allowed: BTreeSet<u64> = safe.values.iter().map(|v| v.value).collect();
    let mut unsafe_seen = Vec::new();
    let why = match &seen {
        Seen::Values(values) => {
            for &(v, _) in values {
                if allowed.insert(v) {
                    unsafe_seen.push(format!("personality {v:#x}"));
                }
            }
            let counts: Vec<String> = values
                .iter()
                .map(|&(v, n)| format!("{v:#x} ×{n}"))
                .collect();
            format!(
                "personality is allowed for the values the recordings saw ({}) and the safe \
                 ones. {}",
                counts.join(", "),
                safe.comment
            )
        }
        _ => format!(
            "The recordings have no personality values ({}), so only the safe ones are \
             allowed. {}",
            unknown_why(&seen),
            safe.comment
        ),
    };
    let allowed: Vec<u64> = allowed.into_iter().collect();
    Narrowed {
        name: "personality".into(),
        seen,
        allows: allowed
            .iter()
            .map(|v| match safe.values.iter().find(|s| s.value == *v) {
                Some(NamedValue { name, .. }) => format!("{v:#x} ({name})"),
                None => format!("{v:#x}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        rules: allowed
            .iter()
            .map(|&v| ArgRule::allow(ArgCondition::new(0, CompareOp::Equal, v)))
            .collect(),
        why,
        dangerous_observed: unsafe_seen,
    }
}

/// `ioctl`: every request but the dangerous ones not observed, or (strict) only the observed
/// ones. Requests are compared on their low 32 bits, as the kernel reads them.
pub fn ioctl(seen: Seen, mode: ArgsMode) -> Narrowed {
    let dangerous = &policy::argument_rules().ioctl_dangerous;
    let name_of = |v: u64| {
        dangerous
            .values
            .iter()
            .find(|d| d.value == v)
            .map_or(format!("{v:#x}"), |d| format!("{} ({v:#x})", d.name))
    };
    let observed: Vec<u64> = match &seen {
        Seen::Values(values) => values.iter().map(|&(v, _)| v).collect(),
        _ => Vec::new(),
    };
    let dangerous_observed: Vec<String> = observed
        .iter()
        .filter(|v| dangerous.values.iter().any(|d| d.value == **v))
        .map(|&v| format!("ioctl {}", name_of(v)))
        .collect();
    if mode == ArgsMode::Strict && matches!(seen, Seen::Values(_)) {
        return Narrowed {
            name: "ioctl".into(),
            allows: format!(
                "only {}",
                observed
                    .iter()
                    .map(|&v| name_of(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            why: format!(
                "--args strict: ioctl is allowed only for the {} requests the recordings saw, \
                 compared on their low 32 bits (the kernel ignores the rest).",
                observed.len()
            ),
            rules: observed
                .iter()
                .map(|&v| ArgRule::allow(ArgCondition::masked_eq(1, LOW_32_BITS, v)))
                .collect(),
            seen,
            dangerous_observed,
        };
    }
    let refused: Vec<u64> = dangerous
        .values
        .iter()
        .map(|d| d.value)
        .filter(|v| !observed.contains(v))
        .collect();
    let why = format!(
        "ioctl is allowed for every request except {} ({}): each refused request is a rule \
         comparing the request's low 32 bits (so no upper bit gets it through) that fails the \
         call with {}, tested before the two rules that allow every other request (low bit 1, \
         low bit 0). {} {}",
        if refused.is_empty() {
            "none: the dangerous ones were observed".to_string()
        } else {
            refused
                .iter()
                .map(|&v| name_of(v))
                .collect::<Vec<_>>()
                .join(", ")
        },
        match &seen {
            Seen::Values(v) => format!("{} distinct requests observed", v.len()),
            other => unknown_why(other).to_string(),
        },
        dangerous.refused_errno.name,
        dangerous.refused_errno.reason,
        dangerous.comment
    );
    Narrowed {
        name: "ioctl".into(),
        allows: if refused.is_empty() {
            "any request".into()
        } else {
            format!(
                "any request but {}",
                refused
                    .iter()
                    .map(|&v| name_of(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        rules: all_but_low_32(1, &refused, dangerous.refused_errno.value),
        seen,
        why,
        dangerous_observed,
    }
}

fn unknown_why(seen: &Seen) -> &'static str {
    match seen {
        Seen::Overflow => "more distinct values were seen than recorded",
        _ => "not recorded",
    }
}

/// `AF_INET (2)`, or the bare number for families without a name here.
pub fn family_label(family: u64) -> String {
    const NAMES: &[&str] = &[
        "AF_UNSPEC",
        "AF_UNIX",
        "AF_INET",
        "AF_AX25",
        "AF_IPX",
        "AF_APPLETALK",
        "AF_NETROM",
        "AF_BRIDGE",
        "AF_ATMPVC",
        "AF_X25",
        "AF_INET6",
        "AF_ROSE",
        "AF_DECnet",
        "AF_NETBEUI",
        "AF_SECURITY",
        "AF_KEY",
        "AF_NETLINK",
        "AF_PACKET",
        "AF_ASH",
        "AF_ECONET",
        "AF_ATMSVC",
        "AF_RDS",
        "AF_SNA",
        "AF_IRDA",
        "AF_PPPOX",
        "AF_WANPIPE",
        "AF_LLC",
        "AF_IB",
        "AF_MPLS",
        "AF_CAN",
        "AF_TIPC",
        "AF_BLUETOOTH",
        "AF_IUCV",
        "AF_RXRPC",
        "AF_ISDN",
        "AF_PHONET",
        "AF_IEEE802154",
        "AF_CAIF",
        "AF_ALG",
        "AF_NFC",
        "AF_VSOCK",
        "AF_KCM",
        "AF_QIPCRTR",
        "AF_SMC",
        "AF_XDP",
        "AF_MCTP",
    ];
    match usize::try_from(family).ok().and_then(|i| NAMES.get(i)) {
        Some(name) => format!("{name} ({family})"),
        None => family.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(n: &Narrowed, arg: u64) -> bool {
        n.verdict_for(arg) == Some(ArgVerdict::Allow)
    }

    #[test]
    fn unknown_families_allow_everything_but_the_dangerous_ones() {
        let n = socket_families("socket", Seen::Unknown, SocketRefusals::Allowed);
        for f in [0, 1, 2, 10, 16, 44, 45] {
            assert!(allows(&n, f), "{f}");
        }
        for f in [3, 17, 21, 29, 30, 38, 39, 40, 46, 1000] {
            assert!(!allows(&n, f), "{f}");
        }
        // The kernel reads an int: upper bits must not smuggle AF_VSOCK or AF_ALG in.
        assert!(!allows(&n, 0x1_0000_0028) && !allows(&n, 0x1_0000_0026));
        for rule in &n.rules {
            assert_eq!(rule.conditions.len(), 1);
            assert!(matches!(
                rule.conditions[0].op,
                CompareOp::Equal | CompareOp::Less
            ));
        }
        // Six runs of allowed families: a boundary each, and one below each gap.
        assert_eq!(n.rules.len(), 11);
        // The refused ones between allowed runs get EACCES (runc would drop an EPERM rule).
        assert_eq!(n.verdict_for(38), Some(ArgVerdict::Refuse { errno: 13 }));
        assert_eq!(n.verdict_for(46), None);
    }

    #[test]
    fn with_x86_listed_families_are_only_allowed_never_refused() {
        let n = socket_families("socket", Seen::Unknown, SocketRefusals::Clash);
        assert!(n.rules.iter().all(|r| r.verdict == ArgVerdict::Allow));
        for f in [0, 1, 2, 10, 16, 44, 45] {
            assert!(allows(&n, f), "{f}");
        }
        for f in [3, 17, 38, 40, 46, 0x1_0000_0002] {
            assert_eq!(n.verdict_for(f), None, "{f}");
        }
        assert_eq!(
            SocketRefusals::for_arches(&[
                crate::syscalls::Arch::X86_64,
                crate::syscalls::Arch::X86
            ]),
            SocketRefusals::Clash
        );
    }

    #[test]
    fn observed_families_are_all_that_is_allowed() {
        let n = socket_families(
            "socket",
            Seen::Values(vec![(1, 4), (2, 9), (17, 1)]),
            SocketRefusals::Allowed,
        );
        assert!(allows(&n, 1) && allows(&n, 2) && allows(&n, 17));
        assert!(!allows(&n, 0) && !allows(&n, 10) && !allows(&n, 38) && !allows(&n, 40));
        assert_eq!(n.dangerous_observed.len(), 1, "{:?}", n.dangerous_observed);
        assert!(n.dangerous_observed[0].starts_with("AF_PACKET"));
        let n = socket_families("socket", Seen::Overflow, SocketRefusals::Allowed);
        assert!(allows(&n, 10) && !allows(&n, 40));
    }

    #[test]
    fn clone_masks_namespace_flags_not_observed() {
        const THREAD: u64 = 0x3d0f00;
        const NEWUSER: u64 = 0x1000_0000;
        const NEWNS: u64 = 0x20000;
        let n = clone(Seen::Unknown, None);
        assert_eq!(
            n.rules,
            [ArgRule::allow(ArgCondition::masked_eq(0, 0x7E02_0000, 0))]
        );
        let n = clone(Seen::Flags(THREAD | 0x11), Some(Seen::Flags(0x50_0000)));
        assert!(allows(&n, THREAD) && allows(&n, 0x11));
        assert!(!allows(&n, NEWUSER | 0x11) && !allows(&n, NEWNS | 0x11));
        let n = clone(Seen::Flags(NEWNS | 0x11), None);
        assert!(allows(&n, NEWNS | 0x11) && !allows(&n, NEWUSER | 0x11));
        assert_eq!(n.dangerous_observed, ["clone CLONE_NEWNS"]);
        // clone3's flags unknown: Docker's mask.
        let n = clone(Seen::Flags(NEWNS), Some(Seen::Unknown));
        assert!(!allows(&n, NEWNS));
    }

    fn allows_arg1(n: &Narrowed, arg: u64) -> bool {
        n.verdict_for(arg) == Some(ArgVerdict::Allow)
    }

    #[test]
    fn ioctl_refuses_tiocsti_and_tioclinux_on_their_low_32_bits() {
        let n = ioctl(Seen::Unknown, ArgsMode::Default);
        for request in [
            0x5401,
            0x5413,
            0x541b,
            0x541d,
            0x8004_5430,
            0xffff_ffff_8004_5430,
            0,
        ] {
            assert!(allows_arg1(&n, request), "{request:#x}");
        }
        for request in [0x5412, 0x541c, 0x1_0000_5412, 0xffff_ffff_0000_541c] {
            assert!(!allows_arg1(&n, request), "{request:#x}");
        }
        assert!(n
            .rules
            .iter()
            .all(|r| r.conditions.len() == 1 && r.conditions[0].index == 1));
        // Two refusals, then two allows that match everything else.
        assert_eq!(n.rules.len(), 2 + 2);
        assert_eq!(
            n.verdict_for(0x5412),
            Some(ArgVerdict::Refuse { errno: 13 })
        );
        // Observed TIOCSTI is allowed and reported.
        let n = ioctl(
            Seen::Values(vec![(0x5412, 1), (0x5401, 9)]),
            ArgsMode::Default,
        );
        assert!(allows_arg1(&n, 0x5412) && !allows_arg1(&n, 0x541c));
        assert_eq!(n.dangerous_observed.len(), 1);
        let n = ioctl(
            Seen::Values(vec![(0x5401, 9), (0x8004_5430, 1)]),
            ArgsMode::Strict,
        );
        assert!(allows_arg1(&n, 0x5401) && allows_arg1(&n, 0xffff_ffff_8004_5430));
        assert!(!allows_arg1(&n, 0x5402) && !allows_arg1(&n, 0x5412));
        // Strict without values keeps the default.
        let n = ioctl(Seen::Overflow, ArgsMode::Strict);
        assert!(allows_arg1(&n, 0x5402) && !allows_arg1(&n, 0x5412));
    }

    #[test]
    fn personality_allows_safe_and_observed_values() {
        let n = personality(Seen::Unknown);
        for v in [0, 8, 0x20000, 0x20008, 0xffff_ffff] {
            assert!(allows(&n, v));
        }
        assert!(!allows(&n, 0x40_0000) && !allows(&n, 0x1_ffff_ffff));
        let n = personality(Seen::Values(vec![(0x40000, 1)]));
        assert!(allows(&n, 0x40000) && !allows(&n, 0x40_0000));
        assert_eq!(n.dangerous_observed, ["personality 0x40000"]);
    }
}
