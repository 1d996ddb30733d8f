//! The lints behind `check`, one function per defect.

use super::LintCode;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use libseccomp::ScmpSyscall;

use super::{finding, sorted, CheckError, Finding, ListedArches, Severity};
use crate::policy;
use crate::seccomp::arches::ProfileArches;
use crate::seccomp::compile::{self, SkipReason};
use crate::seccomp::{Action, SeccompProfile, SyscallRule, MAX_FILTER_INSTRUCTIONS};
use crate::syscalls::Arch;

const ENOSYS: u32 = 38;
const EPERM: u32 = 1;
/// The prefix `profile --allow` writes, which marks a dangerous allow as a reviewed decision.
pub const ACCEPTED_RISK: &str = "ACCEPTED RISK";

/// The arches linted: every one the file names (each `archMap` entry, as the file may be used on
/// any host); the native one if it names none. See [`ProfileArches`].
pub(super) fn architectures(
    profile: &SeccompProfile,
    path: &Path,
) -> Result<ListedArches, CheckError> {
    let arches = ProfileArches::resolve(profile);
    if let Some(name) = arches.unknown.first() {
        return Err(CheckError::UnknownArch {
            path: path.to_path_buf(),
            name: name.clone(),
        });
    }
    Ok(ListedArches {
        supported: arches.linted(profile),
    })
}

/// Every lint, in no particular order.
pub(super) fn run(profile: &SeccompProfile, arches: &ListedArches) -> Vec<Finding> {
    let mut out = Vec::new();
    let ctx = Context::new(profile, arches);
    default_action(&ctx, &mut out);
    unsupported_arches(profile, arches, &mut out);
    dangerous(&ctx, &mut out);
    unknown_names(&ctx, &mut out);
    duplicates(&ctx, &mut out);
    same_as_default(&ctx, &mut out);
    comments(&ctx, &mut out);
    unknown_fields(&ctx, &mut out);
    clone3(&ctx, &mut out);
    time64_twins(&ctx, &mut out);
    compiles(&ctx, &mut out);
    super::arguments::run(profile, &arches.supported, &mut out);
    super::walks::run(profile, &arches.supported, &mut out);
    out
}

struct Context<'a> {
    profile: &'a SeccompProfile,
    arches: &'a [Arch],
    default_denies: bool,
    /// Unconditional allows and denies, by name.
    allowed: BTreeSet<&'a str>,
    denied: BTreeSet<&'a str>,
}

impl<'a> Context<'a> {
    fn new(profile: &'a SeccompProfile, arches: &'a ListedArches) -> Self {
        let mut allowed = BTreeSet::new();
        let mut denied = BTreeSet::new();
        for rule in &profile.syscalls {
            let set = if rule.action.denies() {
                &mut denied
            } else {
                &mut allowed
            };
            set.extend(rule.all_names());
        }
        Context {
            profile,
            arches: &arches.supported,
            default_denies: profile.default_action.denies(),
            allowed,
            denied,
        }
    }

    fn on_listed_arch(&self, name: &str) -> bool {
        self.arches.iter().any(|a| a.has_syscall(name))
    }

    fn rules(&self) -> impl Iterator<Item = (usize, &'a SyscallRule)> {
        self.profile.syscalls.iter().enumerate()
    }
}

fn default_action(ctx: &Context, out: &mut Vec<Finding>) {
    if !ctx.default_denies {
        out.push(finding(
            Severity::Error,
            LintCode::DefaultAllows,
            format!(
                "defaultAction {:?} lets every syscall not listed run: use SCMP_ACT_ERRNO \
                 (deny by default) and allow what the workload needs",
                ctx.profile.default_action
            ),
            Vec::new(),
        ));
    }
}

fn unsupported_arches(profile: &SeccompProfile, arches: &ListedArches, out: &mut Vec<Finding>) {
    let mut names: Vec<&str> = profile.architectures.iter().map(String::as_str).collect();
    for entry in &profile.arch_map {
        names.push(&entry.architecture);
        names.extend(entry.sub_architectures.iter().map(String::as_str));
    }
    let skipped = sorted(
        names
            .into_iter()
            .filter(|n| !arches.supported.iter().any(|a| a.scmp_name() == *n)),
    );
    if !skipped.is_empty() {
        out.push(finding(
            Severity::Note,
            LintCode::ArchNotAnalysed,
            "listed architectures agent-audit has no syscall table for; names are not checked \
             against them"
                .into(),
            skipped,
        ));
    }
}

fn dangerous(ctx: &Context, out: &mut Vec<Finding>) {
    let set = policy::dangerous();
    let mut accepted = Vec::new();
    let mut allowed = Vec::new();
    for (_, rule) in ctx.rules().filter(|(_, r)| !r.action.denies()) {
        let reviewed = rule
            .comment
            .as_deref()
            .is_some_and(|c| c.trim_start().starts_with(ACCEPTED_RISK));
        for name in rule.all_names().filter(|n| set.contains(n)) {
            if reviewed {
                accepted.push(name);
            } else {
                allowed.push(name);
            }
        }
    }
    if !allowed.is_empty() {
        out.push(finding(
            Severity::Error,
            LintCode::DangerousAllowed,
            "dangerous syscalls are allowed (see docs/profiles.md, the dangerous set, for why each \
             is); deny them, or mark a reviewed exception with a single-name rule whose comment \
             starts with \"ACCEPTED RISK:\""
                .into(),
            sorted(allowed),
        ));
    }
    if !accepted.is_empty() {
        out.push(finding(
            Severity::Warning,
            LintCode::DangerousAccepted,
            "dangerous syscalls allowed as an accepted risk".into(),
            sorted(accepted),
        ));
    }
    let missing: Vec<&str> = set
        .names()
        .filter(|n| ctx.on_listed_arch(n) && !ctx.allowed.contains(n) && !ctx.denied.contains(n))
        .collect();
    if missing.is_empty() {
        return;
    }
    if ctx.default_denies {
        out.push(finding(
            Severity::Warning,
            LintCode::DangerousNotDenied,
            "dangerous syscalls only denied by the default action: deny them explicitly so that \
             the decision is visible and a later allow shows up as a conflict"
                .into(),
            sorted(missing),
        ));
    } else {
        out.push(finding(
            Severity::Error,
            LintCode::DangerousAllowed,
            "dangerous syscalls are allowed by the default action".into(),
            sorted(missing),
        ));
    }
}

fn unknown_names(ctx: &Context, out: &mut Vec<Finding>) {
    let names: BTreeSet<&str> = ctx.rules().flat_map(|(_, r)| r.all_names()).collect();
    let mut nowhere = Vec::new();
    let mut not_listed = Vec::new();
    for &name in &names {
        let ours = policy::is_known_syscall(name);
        if !ours && ScmpSyscall::from_name(name).is_err() {
            nowhere.push(name);
        } else if !ctx.arches.is_empty() && !ctx.on_listed_arch(name) {
            not_listed.push(name);
        }
    }
    if !nowhere.is_empty() {
        out.push(finding(
            Severity::Error,
            LintCode::UnknownSyscall,
            "names that are no syscall on any architecture (typos?): runtimes skip them".into(),
            sorted(nowhere),
        ));
    }
    if !not_listed.is_empty() {
        out.push(finding(
            Severity::Warning,
            LintCode::NotOnListedArches,
            "names that exist on none of the listed architectures: these entries do nothing".into(),
            sorted(not_listed),
        ));
    }
    for &arch in ctx.arches {
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !arch.has_syscall(n) && ctx.on_listed_arch(n))
            .collect();
        if !missing.is_empty() {
            out.push(Finding {
                arch: Some(arch.scmp_name().into()),
                ..finding(
                    Severity::Note,
                    LintCode::UnknownOnArch,
                    format!("{} name(s) do not exist on this architecture (normal in a multi-arch profile)", missing.len()),
                    sorted(missing),
                )
            });
        }
    }
}

fn duplicates(ctx: &Context, out: &mut Vec<Finding>) {
    // Rules with argument conditions legitimately repeat a name; only unconditional ones count.
    let mut seen: BTreeMap<&str, Vec<(usize, bool)>> = BTreeMap::new();
    for (index, rule) in ctx.rules().filter(|(_, r)| r.args.is_empty()) {
        for name in rule.all_names() {
            seen.entry(name)
                .or_default()
                .push((index, rule.action.denies()));
        }
    }
    let mut conflicting = Vec::new();
    let mut repeated = Vec::new();
    for (name, rules) in seen.into_iter().filter(|(_, r)| r.len() > 1) {
        if rules.iter().any(|r| r.1) && rules.iter().any(|r| !r.1) {
            conflicting.push(name);
        } else {
            repeated.push(name);
        }
    }
    if !conflicting.is_empty() {
        out.push(finding(
            Severity::Error,
            LintCode::AllowedAndDenied,
            "names both allowed and denied: libseccomp keeps one action per syscall, so one of \
             the two rules silently loses"
                .into(),
            sorted(conflicting),
        ));
    }
    if !repeated.is_empty() {
        out.push(finding(
            Severity::Warning,
            LintCode::NameInTwoRules,
            "names listed in more than one rule".into(),
            sorted(repeated),
        ));
    }
}

fn same_as_default(ctx: &Context, out: &mut Vec<Finding>) {
    let default_errno = ctx.profile.default_errno_ret.unwrap_or(EPERM);
    for (index, rule) in ctx.rules() {
        let same = rule.action == ctx.profile.default_action
            && (rule.action != Action::Errno || rule.errno_ret.unwrap_or(EPERM) == default_errno);
        if !same {
            continue;
        }
        // An explicit deny equal to a deny default is documentation; anything else is a
        // rule its author expected to do something.
        let (severity, what) = if ctx.default_denies {
            (
                Severity::Note,
                "documents a decision but does nothing: runc and crun skip it and libseccomp \
                 refuses it",
            )
        } else {
            (
                Severity::Warning,
                "does nothing: runc and crun skip a rule whose action is the default action",
            )
        };
        out.push(finding(
            severity,
            LintCode::SameAsDefault,
            format!("rule {} has the default action and {what}", index + 1),
            sorted(rule.all_names()),
        ));
    }
}

fn comments(ctx: &Context, out: &mut Vec<Finding>) {
    let bare: Vec<String> = ctx
        .rules()
        .filter(|(_, r)| r.comment.as_deref().is_none_or(|c| c.trim().is_empty()))
        .map(|(i, r)| {
            format!(
                "rule {} ({})",
                i + 1,
                r.all_names().next().unwrap_or("no names")
            )
        })
        .collect();
    if !bare.is_empty() {
        out.push(finding(
            Severity::Warning,
            LintCode::RuleWithoutComment,
            "rules without a comment: say why each rule exists".into(),
            bare,
        ));
    }
}

fn unknown_fields(ctx: &Context, out: &mut Vec<Finding>) {
    let mut fields: Vec<String> = ctx.profile.extra.keys().cloned().collect();
    for (index, rule) in ctx.rules() {
        fields.extend(rule.extra.keys().map(|k| format!("syscalls[{index}].{k}")));
    }
    if !fields.is_empty() {
        out.push(finding(
            Severity::Warning,
            LintCode::UnknownField,
            "fields runc and Docker do not read (Podman's own, or typos): they change nothing in \
             the filter"
                .into(),
            fields,
        ));
    }
}

fn clone3(ctx: &Context, out: &mut Vec<Finding>) {
    if !ctx.on_listed_arch("clone3") || ctx.allowed.contains("clone3") {
        return;
    }
    let explicit = ctx
        .rules()
        .find(|(_, r)| r.action.denies() && r.all_names().any(|n| n == "clone3"));
    let errno = match explicit {
        Some((_, rule)) if rule.action == Action::Errno => Some(rule.errno_ret.unwrap_or(EPERM)),
        Some(_) => None,
        None if ctx.profile.default_action == Action::Errno => {
            Some(ctx.profile.default_errno_ret.unwrap_or(EPERM))
        }
        None => None,
    };
    let how = if explicit.is_some() {
        "explicitly"
    } else {
        "by the default action"
    };
    // runc's stub answers ENOSYS when the profile names nothing newer than clone3: that works,
    // but by accident, until a newer name is added.
    let stub_enosys = explicit.is_none()
        && crate::seccomp::evaluate::outcome(ctx.profile, "clone3", &[0; 6]).errno == Some(ENOSYS);
    let message = match errno {
        Some(ENOSYS) => return,
        Some(e) if stub_enosys => {
            out.push(finding(
                Severity::Warning,
                LintCode::Clone3NotEnosys,
                format!(
                    "clone3 is denied by the default action with errno {e}, and gets ENOSYS \
                     under runc only from its stub for syscalls newer than every name of the \
                     profile: naming a newer one makes clone3 fail with errno {e} and glibc \
                     2.34+ stop creating threads; deny it explicitly with errnoRet 38"
                ),
                vec!["clone3".into()],
            ));
            return;
        }
        Some(e) => format!(
            "clone3 is denied {how} with errno {e}: glibc 2.34+ only falls back to clone on \
             ENOSYS, so creating threads and processes fails; deny it with errnoRet 38"
        ),
        None => format!(
            "clone3 is denied {how} with a non-errno action: glibc 2.34+ cannot fall back to \
             clone; deny it with SCMP_ACT_ERRNO and errnoRet 38"
        ),
    };
    out.push(finding(
        Severity::Error,
        LintCode::Clone3NotEnosys,
        message,
        vec!["clone3".into()],
    ));
}

fn time64_twins(ctx: &Context, out: &mut Vec<Finding>) {
    let tables = policy::translations();
    for &arch in ctx
        .arches
        .iter()
        .filter(|a| matches!(a, Arch::X86 | Arch::Arm))
    {
        let missing: Vec<&str> = ctx
            .allowed
            .iter()
            .filter_map(|name| tables.time64_twin(name))
            .filter(|twin| arch.has_syscall(twin) && !ctx.allowed.contains(twin))
            .collect();
        if !missing.is_empty() {
            out.push(Finding {
                arch: Some(arch.scmp_name().into()),
                ..finding(
                    Severity::Warning,
                    LintCode::Time64TwinMissing,
                    "allowed calls whose *_time64 twin is not allowed: 32-bit programs built \
                     with a 64-bit time_t (the default since glibc 2.34 on some distros, musl \
                     1.2) call the twin and fail"
                        .into(),
                    sorted(missing),
                )
            });
        }
    }
}

fn compiles(ctx: &Context, out: &mut Vec<Finding>) {
    // The one filter for every arch holds each arch's filter (less the blocks libseccomp
    // shares between them): it is only worth building, which is slow for long filters, when
    // their sum is over the limit.
    let mut per_arch_total = 0usize;
    for &arch in ctx.arches {
        let arch_name = Some(arch.scmp_name().to_string());
        match compile::build_filter(ctx.profile, &[arch]) {
            Err(e) => out.push(Finding {
                arch: arch_name,
                ..finding(
                    Severity::Error,
                    LintCode::DoesNotCompile,
                    e.to_string(),
                    Vec::new(),
                )
            }),
            Ok(filter) => {
                skipped_names(ctx, arch, &filter, out);
                let size = filter.bpf_instructions();
                per_arch_total =
                    per_arch_total.saturating_add(*size.as_ref().unwrap_or(&usize::MAX));
                out.push(Finding {
                    arch: arch_name,
                    ..filter_size(size, "")
                });
            }
        }
    }
    if per_arch_total > MAX_FILTER_INSTRUCTIONS {
        all_arches_in_one_filter(ctx, out);
    }
}

/// Names of an arch's filter that libseccomp does not know or refused.
fn skipped_names(
    ctx: &Context,
    arch: Arch,
    filter: &compile::CompiledFilter,
    out: &mut Vec<Finding>,
) {
    let arch_name = Some(arch.scmp_name().to_string());
    let mut unknown = Vec::new();
    let mut refused = Vec::new();
    for skip in &filter.skipped {
        let allow = !ctx.profile.syscalls[skip.rule].action.denies();
        match &skip.reason {
            SkipReason::UnknownToLibseccomp if allow && arch.has_syscall(&skip.name) => {
                unknown.push(skip.name.as_str())
            }
            SkipReason::Refused(why) => refused.push(format!("{} ({why})", skip.name)),
            _ => {}
        }
    }
    if !unknown.is_empty() {
        let (major, minor, micro) = libseccomp_version();
        out.push(Finding {
            arch: arch_name.clone(),
            ..finding(
                Severity::Warning,
                LintCode::UnknownToLibseccomp,
                format!(
                    "allowed names this libseccomp ({major}.{minor}.{micro}) does not know: \
                     runtimes linked against it skip them, so the calls stay denied"
                ),
                sorted(unknown),
            )
        });
    }
    if !refused.is_empty() {
        out.push(Finding {
            arch: arch_name,
            ..finding(
                Severity::Error,
                LintCode::RuleRefused,
                "libseccomp refused these rules".into(),
                refused,
            )
        });
    }
}

/// A note with the filter's size, or an error when the kernel would refuse it for its length.
/// `scope` says which arches the filter covers when that is not the finding's own arch.
fn filter_size(size: std::io::Result<usize>, scope: &str) -> Finding {
    match size {
        Ok(n) if n > MAX_FILTER_INSTRUCTIONS => finding(
            Severity::Error,
            LintCode::FilterTooLarge,
            format!(
                "{scope}{n} BPF instructions, more than the {MAX_FILTER_INSTRUCTIONS} the kernel \
                 accepts in one seccomp filter (BPF_MAXINSNS): runc, crun and verify fail with \
                 EINVAL. Fewer argument conditions or fewer architectures make it shorter"
            ),
            Vec::new(),
        ),
        Ok(n) => finding(
            Severity::Note,
            LintCode::Compiles,
            format!("{scope}compiles with libseccomp: {n} BPF instructions"),
            Vec::new(),
        ),
        Err(e) => finding(
            Severity::Note,
            LintCode::Compiles,
            format!("{scope}compiles with libseccomp (size unknown: {e})"),
            Vec::new(),
        ),
    }
}

/// Runtimes load one filter for every listed arch: it alone can be over the kernel's limit.
/// Only reported then (the per-arch notes give the sizes).
fn all_arches_in_one_filter(ctx: &Context, out: &mut Vec<Finding>) {
    if ctx.arches.len() < 2 {
        return;
    }
    let Ok(filter) = compile::build_filter(ctx.profile, ctx.arches) else {
        return; // Each arch's own error is reported already.
    };
    let arches: Vec<&str> = ctx.arches.iter().map(|a| a.scmp_name()).collect();
    let scope = format!(
        "all listed arches in one filter, as runtimes load it ({}): ",
        arches.join(", ")
    );
    let size = filter_size(filter.bpf_instructions(), &scope);
    if size.severity == Severity::Error {
        out.push(size);
    }
}

fn libseccomp_version() -> (u32, u32, u32) {
    libseccomp::ScmpVersion::current()
        .map(|v| (v.major, v.minor, v.micro))
        .unwrap_or_default()
}
