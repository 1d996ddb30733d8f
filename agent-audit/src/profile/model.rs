//! The generated profile as a model of rules and actions, independent of any file format (the
//! way rust-vmm's seccompiler keeps its filter model apart from its JSON frontend). The OCI
//! ([`super::oci`]), Kubernetes SPO ([`super::spo`]) and rationale ([`super::rationale`])
//! writers only read it.

use std::collections::BTreeMap;

use crate::seccomp::ArgCondition;
use crate::syscalls::Arch;

/// errno numbers the generator uses.
pub mod errno {
    /// "Operation not permitted": what a denied syscall returns.
    pub const EPERM: u32 = 1;
    /// "Function not implemented": makes glibc fall back from clone3 to clone.
    pub const ENOSYS: u32 = 38;
}

/// What a rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Run the syscall.
    Allow,
    /// Run the syscall and log it (only ever copied from a `--base` profile).
    Log,
    /// Fail it with this errno.
    Deny {
        /// errno returned.
        errno: u32,
    },
    /// Kill the thread (only ever copied from a `--base` profile).
    KillThread,
    /// Kill the process (only ever copied from a `--base` profile).
    KillProcess,
    /// Send SIGSYS (only ever copied from a `--base` profile).
    Trap,
}

impl Verdict {
    /// Whether the syscall runs.
    pub fn allows(self) -> bool {
        matches!(self, Verdict::Allow | Verdict::Log)
    }
}

/// Where a rule comes from; also its place in the profile (rules are emitted in this order).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// 1. Syscalls the recordings saw.
    Observed,
    /// 1a. Syscalls the profile in force refused while a recording ran (never observed,
    /// since a refused call never runs), allowed as observed ones would be.
    Refused,
    /// 1b. Names standing for observed syscalls on an arch that was not observed (or the
    /// `*_time64` twins on a 32-bit arch).
    Translated(Arch),
    /// 1c. A dangerous or unobserved syscall allowed with `--allow NAME --reason TEXT`, or
    /// as one of `audit`'s timing allowances.
    ExplicitAllow(String, AllowedBy),
    /// 1d. Allowed by `--base` and kept with `--keep-base-allows`.
    BaseAllow(usize),
    /// 2. Baseline: the runtime, the vDSO fallbacks, the kernel's own needs.
    Baseline(String),
    /// 2b. A syscall allowed above, narrowed by argument (`socket`, `clone`, …): one rule per
    /// alternative, allowing or refusing, in the order libseccomp tests them.
    Arguments(String),
    /// 3. Explicit deny of a dangerous category.
    DenyCategory(String),
    /// 3b. Explicit deny kept from `--base`.
    BaseDeny(usize),
    /// 4. clone3 fails with ENOSYS so that glibc falls back to clone.
    Clone3,
}

/// One rule of the generated profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedRule {
    /// Where it comes from.
    pub section: Section,
    /// Syscall names, sorted.
    pub names: Vec<String>,
    /// What it does.
    pub verdict: Verdict,
    /// Argument conditions, ANDed ([`Section::Arguments`] rules, or copied from `--base`).
    pub args: Vec<ArgCondition>,
    /// Why it exists; never empty.
    pub comment: String,
}

/// Why one syscall name is allowed or denied, for the rationale and reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Seen in the recordings: total calls, per-arch counts, inputs (indices into
    /// [`ProfilePlan::inputs`]).
    Observed {
        /// Calls over every arch and input.
        count: u64,
        /// Calls per arch.
        per_arch: BTreeMap<Arch, u64>,
        /// Which inputs saw it.
        inputs: Vec<usize>,
    },
    /// Stands for observed syscalls on `arch`.
    Translated {
        /// Arches it is allowed for.
        arches: Vec<Arch>,
        /// The observed names it stands for.
        from: Vec<String>,
        /// Why, from the translation table.
        why: String,
    },
    /// Baseline entry.
    Baseline {
        /// Group title.
        group: String,
        /// The entry's reason.
        why: String,
    },
    /// Allowed with `--allow NAME --reason TEXT`, or as one of `audit`'s timing allowances.
    ExplicitAllow {
        /// The reason.
        why: String,
        /// Who allowed it.
        by: AllowedBy,
        /// Whether the name is in the dangerous set.
        dangerous: bool,
        /// Calls observed (0 if never seen).
        count: u64,
    },
    /// Allowed by the `--base` profile and kept.
    BaseAllow {
        /// The base rule's comment.
        comment: String,
    },
    /// Explicitly denied as dangerous.
    Dangerous {
        /// Category title.
        category: String,
        /// The entry's reason.
        why: String,
        /// Calls observed (0 if never seen): non-zero means the workload will get EPERM.
        observed: u64,
    },
    /// Explicitly denied by the `--base` profile.
    BaseDeny {
        /// The base rule's comment.
        comment: String,
        /// Calls observed (0 if never seen).
        observed: u64,
    },
    /// clone3 → ENOSYS.
    Clone3 {
        /// Calls observed (0 if never seen).
        observed: u64,
    },
    /// `clone` was not observed but `clone3` was: allowed (narrowed) because glibc falls back
    /// to it when clone3 fails with ENOSYS.
    Clone3Fallback {
        /// clone3 calls observed.
        clone3_calls: u64,
    },
    /// Refused by the profile in force while a recording ran: the workload needs it.
    Refused {
        /// Refused calls over every arch and input.
        count: u64,
        /// Which inputs recorded the refusals.
        inputs: Vec<usize>,
    },
}

/// Who allowed a call the recordings need not show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AllowedBy {
    /// The user, with `--allow NAME --reason TEXT`.
    Flag,
    /// `audit`, as a timing-dependent call whose trigger was recorded.
    TimingAllowance,
}

impl AllowedBy {
    /// `reason` as rationale and report give it: after `--allow: ` for the user's; alone
    /// for a timing allowance, whose reason says that `audit` allowed it and why.
    pub fn introduce(self, reason: &str) -> String {
        match self {
            AllowedBy::Flag => format!("--allow: {reason}"),
            AllowedBy::TimingAllowance => reason.to_string(),
        }
    }
}

/// Why a refused syscall is not allowed by the new profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusedDenial {
    /// In the dangerous set: only `--allow NAME --reason TEXT` allows it.
    Dangerous,
    /// The `--base` profile denies it explicitly.
    BaseDenied,
    /// clone3 fails with ENOSYS on purpose (libc falls back to clone).
    Clone3,
    /// Only a seccomp filter the workload installed itself refused it.
    OwnFilter,
    /// None of the profile's arches has the name.
    NotOnArches,
}

/// An architecture of the profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlannedArch {
    /// The arch.
    pub arch: Arch,
    /// Whether the recordings saw it (otherwise added with `--arch` and translated).
    pub observed: bool,
}

/// Something the user must hear about (printed on stderr, listed in the rationale).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A syscall the profile in force refused stays denied here (dangerous, denied by the
    /// base profile, or clone3's deliberate ENOSYS), or was refused only by a filter the
    /// workload installed itself.
    RefusedStaysDenied {
        /// Syscall name.
        name: String,
        /// Refused calls.
        count: u64,
        /// Why.
        why: RefusedDenial,
    },
    /// A dangerous syscall was observed.
    DangerousObserved {
        /// Syscall name.
        name: String,
        /// Calls observed.
        count: u64,
        /// Whether `--allow` let it through.
        allowed: bool,
    },
    /// A syscall the `--base` profile denies explicitly was observed; it stays denied.
    BaseDeniedObserved {
        /// Syscall name.
        name: String,
        /// Calls observed.
        count: u64,
    },
    /// An observed name has no equivalent on an added arch.
    NoEquivalent {
        /// Observed name.
        name: String,
        /// The arch lacking it.
        arch: Arch,
        /// Why that is harmless, when known.
        harmless: Option<String>,
    },
    /// Calls whose number has no name: they cannot be allowed and will fail.
    Unnamed {
        /// Arch.
        arch: Arch,
        /// Number.
        nr: u32,
        /// Calls.
        count: u64,
    },
    /// An input is a snapshot of an unfinished recording.
    IncompleteInput {
        /// Its label.
        label: String,
    },
    /// The base profile allowed these names but no recording saw them.
    BaseAllowsUnobserved {
        /// Names, sorted.
        names: Vec<String>,
        /// Whether `--keep-base-allows` kept them.
        kept: bool,
    },
    /// `--allow` named a syscall no recording saw.
    AllowedUnobserved {
        /// Syscall name.
        name: String,
    },
    /// A dangerous argument value was observed and is therefore allowed (`socket AF_PACKET`,
    /// `clone CLONE_NEWUSER`).
    DangerousArgumentObserved {
        /// Syscall name.
        name: String,
        /// The value and why it is dangerous.
        what: String,
    },
    /// clone3 was observed but fails with ENOSYS (its flags cannot be filtered); the clone rule
    /// covers what it was used for.
    Clone3Observed {
        /// Calls observed.
        count: u64,
    },
    /// i386 `socketcall` passes its arguments through memory, so no rule can restrict its
    /// socket families: allowed (observed) or left denied (no 32-bit socket calls recorded).
    SocketcallNotFiltered {
        /// Whether the profile allows it.
        allowed: bool,
    },
    /// A `--base` rule whose action this generator does not carry over (notify, trace).
    BaseRuleDropped {
        /// Its names.
        names: Vec<String>,
        /// Its action as written.
        action: String,
    },
}

/// How loudly a [`Notice`] is told: `profile` prints a danger as `DANGER:`, the rest as `note:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The profile allows something dangerous, or the workload may fail under it.
    Danger,
    /// Worth knowing; nothing to act on before using the profile.
    Note,
}

impl Notice {
    /// A dangerous syscall or argument seen, or an observed name missing on an added arch
    /// with no known reason that is harmless, is a danger; everything else a note.
    pub fn severity(&self) -> Severity {
        match self {
            Notice::DangerousObserved { .. }
            | Notice::DangerousArgumentObserved { .. }
            | Notice::NoEquivalent { harmless: None, .. } => Severity::Danger,
            Notice::RefusedStaysDenied { .. }
            | Notice::BaseDeniedObserved { .. }
            | Notice::NoEquivalent {
                harmless: Some(_), ..
            }
            | Notice::Unnamed { .. }
            | Notice::IncompleteInput { .. }
            | Notice::BaseAllowsUnobserved { .. }
            | Notice::AllowedUnobserved { .. }
            | Notice::Clone3Observed { .. }
            | Notice::SocketcallNotFiltered { .. }
            | Notice::BaseRuleDropped { .. } => Severity::Note,
        }
    }
}

/// The whole generated profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfilePlan {
    /// errno of the default action (always a deny).
    pub default_errno: u32,
    /// Architectures, in [`Arch`] order.
    pub architectures: Vec<PlannedArch>,
    /// Rules in emission order.
    pub rules: Vec<PlannedRule>,
    /// Why each name in a rule is there.
    pub reasons: BTreeMap<String, Reason>,
    /// The recordings merged (labels and targets).
    pub inputs: Vec<super::merge::MergedInput>,
    /// What the user must hear about.
    pub notices: Vec<Notice>,
    /// The programs that made each observed syscall, by name.
    pub programs: BTreeMap<String, super::merge::ProgramList>,
    /// Whether the recordings saw calls both as root and not (then root is worth marking).
    pub mixed_privileges: bool,
    /// The argument rules of each narrowed syscall: what was observed, what is allowed.
    pub arguments: BTreeMap<String, super::args::Narrowed>,
    /// The minimal capability set to run with (`capabilities.json`).
    pub capabilities: crate::capabilities::minimal::MinimalSet,
}

impl ProfilePlan {
    /// Every allowed name (unconditionally or for some arguments), sorted, once.
    pub fn allowed_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .rules
            .iter()
            .filter(|r| r.verdict.allows())
            .flat_map(|r| r.names.iter().map(String::as_str))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Every explicitly denied name, sorted (an argument rule's refusal of some values is not
    /// a denial of the name).
    pub fn denied_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .rules
            .iter()
            .filter(|r| !r.verdict.allows() && !matches!(r.section, Section::Arguments(_)))
            .flat_map(|r| r.names.iter().map(String::as_str))
            .collect();
        names.sort_unstable();
        names
    }
}
