//! The libseccomp backend: a profile compiled into a `ScmpFilterContext` the way runc and crun
//! do it, so that `check` can tell whether a profile compiles for each of its arches and
//! `verify` can load the very same filter.
//!
//! Like runc, a rule comparing one argument index twice becomes one rule per condition (ORed),
//! names libseccomp does not know are skipped (the rule then has no effect, which for
//! an allow means the call is denied), and rules whose action equals the default action are
//! skipped (libseccomp refuses them). Both are returned as [`Skipped`] entries, never silently.
//! runc's -ENOSYS stub for syscalls newer than the profile comes with the filter
//! ([`super::enosys`]).

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

use super::arches::scmp_arch;
use super::enosys::EnosysStub;
use super::{Action, ArgCondition, CompareOp, SeccompProfile, SyscallRule};
use crate::syscalls::Arch;

/// errno runc uses for `SCMP_ACT_ERRNO` without `errnoRet`.
const RUNC_DEFAULT_ERRNO: u32 = 1;

/// A profile that libseccomp cannot turn into a filter at all.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// An action libseccomp cannot express as written.
    #[error("{what}: {detail}")]
    Action {
        /// Where (default action or rule number).
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// libseccomp refused part of the filter.
    #[error("libseccomp refused {what} for {arch}: {source}")]
    Libseccomp {
        /// What was being done.
        what: String,
        /// Architecture being compiled.
        arch: String,
        /// libseccomp's error.
        source: libseccomp::error::SeccompError,
    },
}

/// Why a name of a rule did not make it into the filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// This libseccomp does not know the name at all (newer than it, or a typo).
    UnknownToLibseccomp,
    /// The rule's action is the default action: runc skips it, libseccomp would refuse it.
    SameAsDefault,
    /// libseccomp refused the rule (conflicting actions for the name, bad argument…).
    Refused(String),
}

/// A name of a rule that the filter does not contain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Index of the rule in `syscalls`.
    pub rule: usize,
    /// Syscall name.
    pub name: String,
    /// Why.
    pub reason: SkipReason,
}

/// A compiled filter with what it left out.
pub struct CompiledFilter {
    /// The libseccomp context, ready to `load()` or export.
    pub context: ScmpFilterContext,
    /// Names that are not in the filter, and why.
    pub skipped: Vec<Skipped>,
    /// Names of rules that repeat an earlier rule's name, action, errno and conditions: not
    /// given to libseccomp again (see [`build_filter`]).
    pub merged: usize,
    /// runc's -ENOSYS stub, run before the libseccomp program.
    pub enosys: EnosysStub,
}

impl CompiledFilter {
    /// Size of the generated BPF program, in instructions (runc's ENOSYS stub included).
    pub fn bpf_instructions(&self) -> Result<usize, std::io::Error> {
        // SAFETY: memfd_create with a static NUL-terminated name; the fd is owned below.
        let fd = unsafe { libc::memfd_create(c"agent-audit-bpf".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        self.context
            .export_bpf(&fd)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let file = std::fs::File::from(fd);
        let bytes = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
        Ok(bytes / std::mem::size_of::<libc::sock_filter>() + self.enosys.instructions().len())
    }
}

/// The action libseccomp runs for `action` with `errno` (runc's defaults for a missing errno).
pub fn scmp_action(action: Action, errno: Option<u32>) -> Result<ScmpAction, String> {
    let checked = |e: Option<u32>| -> Result<u16, String> {
        let e = e.unwrap_or(RUNC_DEFAULT_ERRNO);
        u16::try_from(e).map_err(|_| format!("errno {e} does not fit in 16 bits"))
    };
    Ok(match action {
        Action::Allow => ScmpAction::Allow,
        Action::Log => ScmpAction::Log,
        Action::Errno => ScmpAction::Errno(i32::from(checked(errno)?)),
        Action::Trace => ScmpAction::Trace(checked(errno)?),
        Action::KillThread => ScmpAction::KillThread,
        Action::KillProcess => ScmpAction::KillProcess,
        Action::Trap => ScmpAction::Trap,
        Action::Notify => ScmpAction::Notify,
    })
}

/// What one libseccomp addition is made of: a name with an action, an errno and conditions.
type AdditionKey<'p> = (&'p str, Action, Option<u32>, &'p [ArgCondition]);

/// Most distinct rules (name, action, errno, conditions: what [`build_filter`] gives
/// libseccomp) a profile may have; a profile with more is refused when it is read. The kernel
/// loads no seccomp filter over 4096 instructions (BPF_MAXINSNS) and every rule libseccomp
/// keeps costs at least one, so a profile past this bound is either unloadable or made of
/// rules that change nothing; and libseccomp's cost grows with the square of the rule count
/// (1–2 s per architecture at this bound with every rule on one name, 12 s at 10 000), which
/// the bound caps.
pub const MAX_DISTINCT_RULES: usize = 4096;

/// The number of distinct rules of `profile` (see [`MAX_DISTINCT_RULES`]); repeats of a name
/// with the same action, errno and conditions count once.
pub fn distinct_rules(profile: &SeccompProfile) -> usize {
    let mut seen: std::collections::HashSet<AdditionKey> = std::collections::HashSet::new();
    for rule in &profile.syscalls {
        for name in rule.all_names() {
            seen.insert((name, rule.action, rule.errno_ret, rule.args.as_slice()));
        }
    }
    seen.len()
}

/// How the filter finds a syscall's rules: what decides the cost of every call that is not
/// cached as always allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallLayout {
    /// One comparison per syscall, in libseccomp's priority order (fewest argument nodes first):
    /// runc up to 1.1, and this host's Docker 20.10.
    Linear,
    /// A binary tree over the syscall numbers (`SCMP_FLTATR_CTL_OPTIMIZE` 2), which runc sets
    /// from 1.2 on for a profile of more than 32 names (`libcontainer/seccomp`, commit
    /// b265d128 "enable binary tree optimization"); fewer names stay linear.
    RuncTree,
}

/// More names than this and runc ≥ 1.2 asks libseccomp for a binary tree.
const RUNC_TREE_ABOVE_NAMES: usize = 32;

/// Compiles `profile` into one filter that accepts exactly `arches`, laid out as runc 1.1 does
/// (the runc of this host's Docker, against which `verify` is tested).
///
/// Identical rules are merged first: a name repeated with the same action, errno and
/// conditions is given to libseccomp once and what that addition did (added, or refused and
/// why) stands for every repeat. libseccomp snapshots the whole filter on every addition, so
/// n additions cost O(n²): 40 000 copies of a few hundred rules took 30 s, now as long as the
/// few hundred. The filter is the same (libseccomp accepts an identical addition as a no-op).
pub fn build_filter(
    profile: &SeccompProfile,
    arches: &[Arch],
) -> Result<CompiledFilter, CompileError> {
    build_filter_laid_out(profile, arches, SyscallLayout::Linear)
}

/// [`build_filter`] with the syscall lookup of a given runc.
pub fn build_filter_laid_out(
    profile: &SeccompProfile,
    arches: &[Arch],
    layout: SyscallLayout,
) -> Result<CompiledFilter, CompileError> {
    let arch_label = arches
        .iter()
        .map(|a| a.scmp_name())
        .collect::<Vec<_>>()
        .join(",");
    let lib = |what: String| {
        let arch = arch_label.clone();
        move |source| CompileError::Libseccomp { what, arch, source }
    };
    let default =
        scmp_action(profile.default_action, profile.default_errno_ret).map_err(|detail| {
            CompileError::Action {
                what: "defaultAction".into(),
                detail,
            }
        })?;
    let mut context = ScmpFilterContext::new(default).map_err(lib("a new filter".into()))?;
    let native = ScmpArch::native();
    for arch in arches {
        context
            .add_arch(scmp_arch(*arch))
            .map_err(lib(format!("architecture {arch}")))?;
    }
    if !arches.iter().any(|a| scmp_arch(*a) == native) {
        context
            .remove_arch(native)
            .map_err(lib("removing the native architecture".into()))?;
    }
    let name_count: usize = profile.syscalls.iter().map(|r| r.all_names().count()).sum();
    if layout == SyscallLayout::RuncTree && name_count > RUNC_TREE_ABOVE_NAMES {
        context
            .set_ctl_optimize(2)
            .map_err(lib("the binary tree layout".into()))?;
    }
    let mut skipped = Vec::new();
    let mut added: HashMap<AdditionKey, Result<(), String>> = HashMap::new();
    let mut names: HashMap<&str, Option<ScmpSyscall>> = HashMap::new();
    let mut merged = 0;
    for (index, rule) in profile.syscalls.iter().enumerate() {
        let action =
            scmp_action(rule.action, rule.errno_ret).map_err(|detail| CompileError::Action {
                what: format!("rule {}", index + 1),
                detail,
            })?;
        let same_as_default = action == default;
        let conditions = conditions(rule).map_err(|detail| CompileError::Action {
            what: format!("rule {}", index + 1),
            detail,
        })?;
        for name in rule.all_names() {
            let skip = |reason| Skipped {
                rule: index,
                name: name.to_string(),
                reason,
            };
            if same_as_default {
                skipped.push(skip(SkipReason::SameAsDefault));
                continue;
            }
            // Native-arch resolution, as runc does; libseccomp translates per filter arch and
            // uses pseudo-numbers for names the native arch lacks. Once per name: libseccomp
            // looks a name up by comparing it with every name of its table.
            let resolved = *names
                .entry(name)
                .or_insert_with(|| ScmpSyscall::from_name(name).ok());
            let Some(syscall) = resolved else {
                skipped.push(skip(SkipReason::UnknownToLibseccomp));
                continue;
            };
            let key = (name, rule.action, rule.errno_ret, rule.args.as_slice());
            let result = match added.get(&key) {
                Some(earlier) => {
                    merged += 1;
                    earlier.clone()
                }
                None => {
                    let result = add(&mut context, action, syscall, &conditions, rule)
                        .map_err(|e| e.to_string());
                    added.insert(key, result.clone());
                    result
                }
            };
            if let Err(why) = result {
                skipped.push(skip(SkipReason::Refused(why)));
            }
        }
    }
    Ok(CompiledFilter {
        context,
        skipped,
        merged,
        enosys: EnosysStub::for_profile(profile),
    })
}

/// Adds one name of `rule` to the filter, as runc does.
fn add(
    context: &mut ScmpFilterContext,
    action: ScmpAction,
    syscall: ScmpSyscall,
    conditions: &[ScmpArgCompare],
    rule: &SyscallRule,
) -> Result<(), libseccomp::error::SeccompError> {
    if conditions.is_empty() {
        context.add_rule(action, syscall).map(|_| ())
    } else if rule.repeated_indexes().is_empty() {
        context
            .add_rule_conditional(action, syscall, conditions)
            .map(|_| ())
    } else {
        // runc (`matchCall`): an index compared twice turns every condition into a rule of
        // its own, so they are ORed.
        conditions.iter().try_for_each(|c| {
            context
                .add_rule_conditional(action, syscall, std::slice::from_ref(c))
                .map(|_| ())
        })
    }
}

fn conditions(rule: &SyscallRule) -> Result<Vec<ScmpArgCompare>, String> {
    rule.args.iter().map(condition).collect()
}

fn condition(arg: &ArgCondition) -> Result<ScmpArgCompare, String> {
    if arg.index > 5 {
        return Err(format!("argument index {} is not 0..=5", arg.index));
    }
    // OCI: for SCMP_CMP_MASKED_EQ, `value` is the mask and `valueTwo` the datum (runc passes
    // both to libseccomp-golang's MakeCondition in that order).
    let (op, datum) = match arg.op {
        CompareOp::NotEqual => (ScmpCompareOp::NotEqual, arg.value),
        CompareOp::Less => (ScmpCompareOp::Less, arg.value),
        CompareOp::LessOrEqual => (ScmpCompareOp::LessOrEqual, arg.value),
        CompareOp::Equal => (ScmpCompareOp::Equal, arg.value),
        CompareOp::GreaterOrEqual => (ScmpCompareOp::GreaterEqual, arg.value),
        CompareOp::Greater => (ScmpCompareOp::Greater, arg.value),
        CompareOp::MaskedEqual => (ScmpCompareOp::MaskedEqual(arg.value), arg.value_two),
    };
    Ok(ScmpArgCompare::new(arg.index, op, datum))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use super::*;

    fn parse(json: &str) -> SeccompProfile {
        SeccompProfile::parse(json, Path::new("t.json")).unwrap()
    }

    #[test]
    fn compiles_for_each_arch_and_reports_what_it_skips() {
        let profile = parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"syscalls":[
                {"names":["read","write","open","no_such_call"],"action":"SCMP_ACT_ALLOW"},
                {"names":["ptrace"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
                {"names":["personality"],"action":"SCMP_ACT_ALLOW",
                 "args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        for arch in Arch::ALL {
            let filter = build_filter(&profile, &[arch]).unwrap();
            assert!(filter.bpf_instructions().unwrap() > 5, "{arch}");
            assert!(filter.skipped.contains(&Skipped {
                rule: 0,
                name: "no_such_call".into(),
                reason: SkipReason::UnknownToLibseccomp
            }));
            assert!(filter.skipped.contains(&Skipped {
                rule: 1,
                name: "ptrace".into(),
                reason: SkipReason::SameAsDefault
            }));
        }
        let all = build_filter(&profile, &Arch::ALL).unwrap();
        assert!(all.bpf_instructions().unwrap() > 20);
    }

    /// errno of `ioctl(-1, request)` in a child under `profile` (0 if it succeeded).
    fn ioctl_errno_under(profile: &SeccompProfile, request: u64) -> i32 {
        errno_under(profile, libc::SYS_ioctl, [u64::MAX, request, 0])
    }

    /// errno of syscall `nr` with three arguments in a child under `profile` (0 if it
    /// succeeded; a returned descriptor is left to the child's exit).
    pub(crate) fn errno_under(profile: &SeccompProfile, nr: libc::c_long, a: [u64; 3]) -> i32 {
        let program = crate::seccomp::SeccompProgram::export(
            &build_filter(profile, &[Arch::native().unwrap()]).unwrap(),
        )
        .unwrap();
        // SAFETY: the child only installs the prepared filter, makes one syscall and exits
        // with its errno: async-signal-safe calls on memory prepared before fork.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                if program.install().is_err() {
                    libc::_exit(255);
                }
                let r = libc::syscall(nr, a[0], a[1], a[2]);
                libc::_exit(if r < 0 { *libc::__errno_location() } else { 0 });
            }
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            assert!(libc::WIFEXITED(status));
            libc::WEXITSTATUS(status)
        }
    }

    #[test]
    fn in_the_kernel_an_unconditional_allow_wins_over_a_conditional_deny() {
        const EACCES: i32 = 13;
        const EBADF: i32 = 9;
        let deny_tiocsti = r#"{"names":["ioctl"],"action":"SCMP_ACT_ERRNO","errnoRet":13,
              "args":[{"index":1,"value":4294967295,"valueTwo":21522,"op":"SCMP_CMP_MASKED_EQ"}]}"#;
        let allow = r#"{"names":["ioctl"],"action":"SCMP_ACT_ALLOW"}"#;
        // What the child needs to install the filter and report: the default denies.
        let base = r#"{"names":["prctl","seccomp","exit_group","exit"],"action":"SCMP_ACT_ALLOW"}"#;
        for rules in [
            format!("{deny_tiocsti},{allow}"),
            format!("{allow},{deny_tiocsti}"),
        ] {
            let p = parse(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{rules},{base}]}}"#
            ));
            // The default denies (EPERM), so that neither rule equals it and is skipped.
            // libseccomp keeps the unconditional rule whatever the order: TIOCSTI gets through.
            assert_eq!(ioctl_errno_under(&p, 0x5412), EBADF, "{rules}");
        }
        // Alone, the masked deny catches TIOCSTI with or without upper bits.
        let p = parse(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{deny_tiocsti}]}}"#
        ));
        assert_eq!(ioctl_errno_under(&p, 0x5412), EACCES);
        assert_eq!(ioctl_errno_under(&p, 0x1_0000_5412), EACCES);
        assert_eq!(ioctl_errno_under(&p, 0x5401), EBADF);
    }

    #[test]
    fn in_the_kernel_nested_conditional_rules_keep_one_by_order() {
        const EINVAL: i32 = 22;
        const EPERM: i32 = 1;
        const AF_NETLINK: u64 = 16;
        const SOCK_RAW: u64 = 3;
        const NETLINK_AUDIT: u64 = 9;
        let allow = r#"{"names":["socket"],"action":"SCMP_ACT_ALLOW",
              "args":[{"index":0,"value":16,"op":"SCMP_CMP_EQ"}]}"#;
        let deny = r#"{"names":["socket"],"action":"SCMP_ACT_ERRNO","errnoRet":22,
              "args":[{"index":0,"value":16,"op":"SCMP_CMP_EQ"},{"index":2,"value":9,"op":"SCMP_CMP_EQ"}]}"#;
        let base = r#"{"names":["prctl","seccomp","exit_group","exit"],"action":"SCMP_ACT_ALLOW"}"#;
        let under = |rules: String| {
            let p = parse(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{rules},{base}]}}"#
            ));
            (
                errno_under(&p, libc::SYS_socket, [AF_NETLINK, SOCK_RAW, NETLINK_AUDIT]),
                errno_under(&p, libc::SYS_socket, [AF_NETLINK, SOCK_RAW, 0]),
            )
        };
        // Allow first: the narrower deny is dropped, NETLINK_AUDIT gets through.
        assert_eq!(under(format!("{allow},{deny}")), (0, 0));
        // Deny first: the wider allow is dropped, every netlink socket is refused.
        assert_eq!(under(format!("{deny},{allow}")), (EINVAL, EPERM));
    }

    /// The libseccomp program of `filter`, as bytes.
    fn exported(filter: &CompiledFilter) -> Vec<u8> {
        let mut file = tempfile::tempfile().unwrap();
        filter.context.export_bpf(&file).unwrap();
        std::io::Seek::rewind(&mut file).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();
        bytes
    }

    /// Each libseccomp addition snapshots the filter so far, so 40 000 rules
    /// took 30 s. Repeats of a name with one action, errno and conditions are given to
    /// libseccomp once: the filter is byte for byte the one of the distinct rules, and what
    /// was skipped is reported for every repeat as before.
    #[test]
    fn identical_rules_are_merged_before_compiling() {
        let distinct = [
            r#"{"names":["read","write"],"action":"SCMP_ACT_ALLOW","comment":"io"}"#,
            r#"{"names":["socket"],"action":"SCMP_ACT_ALLOW",
                "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]}"#,
            r#"{"names":["socket"],"action":"SCMP_ACT_ALLOW",
                "args":[{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]}"#,
            r#"{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13}"#,
            r#"{"names":["no_such_call"],"action":"SCMP_ACT_ALLOW"}"#,
        ];
        let profile = |rules: &[&str]| {
            parse(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{}]}}"#,
                rules.join(",")
            ))
        };
        let once = build_filter(&profile(&distinct), &[Arch::X86_64]).unwrap();
        assert_eq!(once.merged, 0);
        const COPIES: usize = 8000;
        let repeated: Vec<&str> = distinct.iter().copied().cycle().take(COPIES * 5).collect();
        let many = profile(&repeated);
        assert_eq!(distinct_rules(&many), 6);
        let merged = build_filter(&many, &[Arch::X86_64]).unwrap();
        // 6 names per copy (read, write, socket ×2, mkdir, no_such_call): all but the first
        // copy's 5 known ones are merged; the unknown name never reaches libseccomp.
        assert_eq!(merged.merged, (COPIES - 1) * 5);
        assert_eq!(exported(&merged), exported(&once));
        let unknown: Vec<usize> = merged
            .skipped
            .iter()
            .filter(|s| s.reason == SkipReason::UnknownToLibseccomp)
            .map(|s| s.rule)
            .collect();
        assert_eq!(unknown.len(), COPIES);
        assert!(unknown.iter().all(|r| r % 5 == 4), "{:?}", &unknown[..5]);
    }

    /// Past [`MAX_DISTINCT_RULES`] distinct rules a profile is refused when read (65), so no
    /// command spends minutes in libseccomp; repeats do not count.
    #[test]
    fn a_profile_past_the_distinct_rule_bound_is_refused_when_read() {
        let rule = |value: usize| {
            format!(
                r#"{{"names":["socket"],"action":"SCMP_ACT_ALLOW",
                    "args":[{{"index":0,"value":{value},"op":"SCMP_CMP_EQ"}}]}}"#
            )
        };
        let text = |values: &mut dyn Iterator<Item = usize>| {
            let rules: Vec<String> = values.map(rule).collect();
            format!(
                r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{}]}}"#,
                rules.join(",")
            )
        };
        let at_bound = text(&mut (0..MAX_DISTINCT_RULES).cycle().take(3 * MAX_DISTINCT_RULES));
        SeccompProfile::parse(&at_bound, Path::new("t.json")).unwrap();
        let past = text(&mut (0..=MAX_DISTINCT_RULES));
        let err = SeccompProfile::parse(&past, Path::new("t.json")).unwrap_err();
        assert!(
            matches!(
                err,
                crate::seccomp::ProfileFileError::TooManyRules {
                    distinct: 4097,
                    limit: 4096,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.exit_code(), crate::exit::ExitCode::DATA);
        assert!(err.to_string().contains("4097 distinct rules"), "{err}");
    }

    #[test]
    fn bad_comparisons_are_parse_errors_naming_the_field() {
        let err = SeccompProfile::parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["read"],"action":"SCMP_ACT_ALLOW",
                 "args":[{"index":0,"value":1,"op":"SCMP_CMP_ROUGHLY"}]}]}"#,
            Path::new("t.json"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("SCMP_CMP_ROUGHLY") && text.contains("syscalls[0].args[0].op"),
            "{text}"
        );
    }
}
