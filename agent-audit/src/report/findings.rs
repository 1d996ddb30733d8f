//! The findings of a report: what a reviewer must look at before signing a profile off.

use crate::check::{LintCode, ACCEPTED_RISK};
use std::collections::{BTreeMap, BTreeSet};

use super::context::Context;
use super::{
    ArchGap, DangerousObserved, DeniedSource, DeniedUse, Findings, PrivilegeDropFinding,
    RuntimeInitOnly, RuntimeInitVerdict, VerifyDenial, VerifyFailure, VerifyFailureKind,
    VerifyProbe, VerifyResult,
};
use crate::allowlist::Allowlist;
use crate::check::CheckReport;
use crate::convergence::Convergence;
use crate::policy;
use crate::profile::translate;
use crate::syscalls::Arch;
use crate::verify::CapabilityFindingKind;

/// Every finding, each list in a stable order.
pub(super) fn compute(
    ctx: &Context,
    check: &CheckReport,
    verify: Option<&VerifyResult>,
    convergence: &Convergence,
) -> Findings {
    Findings {
        verify_failed: verify
            .map(|v| verify_failed(v, &recorded_exit_statuses(ctx.lists)))
            .unwrap_or_default(),
        not_converged: convergence
            .still_changing()
            .filter(|_| one_workload(ctx.lists))
            .cloned(),
        dangerous_observed: dangerous_observed(ctx),
        denied_but_used: denied_but_used(ctx, verify),
        arch_gaps: arch_gaps(ctx, check),
        runtime_init_only: runtime_init_only(ctx),
        privilege_drops: privilege_drops(ctx),
        notes: notes(ctx),
    }
}

/// The recordings' convergence, in recording order: by start time, then file.
pub(super) fn convergence(lists: &[(String, Allowlist)]) -> Convergence {
    let mut ordered: Vec<&(String, Allowlist)> = lists.iter().collect();
    ordered.sort_by(|a, b| (a.1.started_at, &a.0).cmp(&(b.1.started_at, &b.0)));
    Convergence::of(
        ordered
            .into_iter()
            .map(|(file, list)| (file.as_str(), list)),
    )
}

/// Whether the recordings are runs of one workload (same target), the only case where a run
/// adding calls means the others missed them.
fn one_workload(lists: &[(String, Allowlist)]) -> bool {
    let target = |l: &Allowlist| (l.target.kind.clone(), l.target.spec.clone());
    lists.windows(2).all(|w| target(&w[0].1) == target(&w[1].1))
}

/// The verdict of a `verify` result: its own when it has one (older files do not), else
/// what it lists.
pub(super) fn verify_passed(v: &VerifyResult) -> bool {
    v.passed.unwrap_or_else(|| {
        !v.timed_out
            && v.survivors.is_empty()
            && v.denied.iter().all(VerifyDenial::expected)
            && v.left_cgroup.is_empty()
            && !v.probes.iter().any(VerifyProbe::failed)
            && v.exit_status.unwrap_or(0) == 0
    })
}

/// The exit status of every recorded run of a command (container recordings have none).
fn recorded_exit_statuses(lists: &[(String, Allowlist)]) -> Vec<i32> {
    lists
        .iter()
        .filter_map(|(_, l)| l.target.exit_status)
        .collect()
}

/// What failed under `verify` besides its denials, a run that did not end by itself first;
/// never empty when it failed without a denial, so that a failed verification always counts
/// as a finding. `recorded`: the recorded runs' exit statuses, which tell a workload that
/// fails by itself from one the profile breaks.
fn verify_failed(v: &VerifyResult, recorded: &[i32]) -> Vec<VerifyFailure> {
    let start = v.start_failure.as_ref().map(|f| VerifyFailure {
        kind: VerifyFailureKind::Start,
        what: format!("the workload did not start under the profile: {}", f.error),
    });
    let mut out: Vec<VerifyFailure> = start.into_iter().collect();
    out.extend(unfinished_run(v));
    out.extend(
        v.probes
            .iter()
            .filter(|p| p.failed())
            .map(|p| VerifyFailure {
                kind: VerifyFailureKind::Probe,
                what: format!(
                    "probe `{}` got {} where the profile should give errno {}",
                    p.syscall,
                    match p.errno {
                        0 => "success".to_string(),
                        e => format!("errno {e}"),
                    },
                    p.expected_errno
                ),
            }),
    );
    out.extend(
        v.capabilities
            .iter()
            .filter(|c| c.finding.is_some_and(CapabilityFindingKind::fails))
            .map(|c| VerifyFailure {
                kind: VerifyFailureKind::CapabilityRefused,
                what: format!(
                    "CAP_{} was refused {} time(s) under verify; the recordings saw it granted \
                     and never refused: the capability set lacks it",
                    c.capability, c.checks.refused
                ),
            }),
    );
    // A workload that did not start has its start failure instead of an exit status; a
    // timed-out one's status is the SIGKILL that ended it: the timeout says it all.
    let ran = v.start_failure.is_none() && !v.timed_out;
    if let Some(status) = v.exit_status.filter(|&s| s != 0 && ran) {
        out.push(VerifyFailure {
            kind: VerifyFailureKind::ExitStatus,
            what: exit_status_failure(status, recorded),
        });
    }
    if out.is_empty() && v.denied.iter().all(VerifyDenial::expected) && !verify_passed(v) {
        out.push(VerifyFailure {
            kind: VerifyFailureKind::Failed,
            what: "verify reported FAILED".into(),
        });
    }
    out
}

/// Why a non-zero exit under the profile failed verification; when every recorded run exited
/// the same way without the profile, the workload fails by itself, and the line says so: the
/// fix is in the workload, not in the profile.
fn exit_status_failure(status: i32, recorded: &[i32]) -> String {
    let same = !recorded.is_empty() && recorded.iter().all(|&r| r == status);
    if same {
        format!(
            "the command exited {status} under the profile, as it did in every recorded run \
             without it ({} run(s)): the workload fails by itself; make it succeed, then audit \
             again",
            recorded.len()
        )
    } else {
        format!("the command exited {status} under the profile")
    }
}

/// The timeout, and the processes `verify` had to kill because the command left them running.
fn unfinished_run(v: &VerifyResult) -> Vec<VerifyFailure> {
    let mut out = Vec::new();
    if v.timed_out {
        let after = v
            .timeout_seconds
            .map(|s| format!(" after {s}s"))
            .unwrap_or_default();
        out.push(VerifyFailure {
            kind: VerifyFailureKind::TimedOut,
            what: format!(
                "the command timed out under the profile{after}: what was still running was \
                 killed (a call the profile denies may have left it waiting or retrying)"
            ),
        });
    }
    if !v.survivors.is_empty() {
        let list: Vec<String> = v
            .survivors
            .iter()
            .map(|p| format!("pid {} `{}`", p.pid, p.command))
            .collect();
        out.push(VerifyFailure {
            kind: VerifyFailureKind::LeftRunning,
            what: format!(
                "the command left {} process(es) running, which verify killed: {} (a call the \
                 profile denies, such as kill, may have kept them from being stopped)",
                list.len(),
                list.join(", ")
            ),
        });
    }
    if !v.left_cgroup.is_empty() {
        let list: Vec<String> = v
            .left_cgroup
            .iter()
            .map(|p| format!("pid {} `{}`", p.pid, p.program))
            .collect();
        out.push(VerifyFailure {
            kind: VerifyFailureKind::LeftRunning,
            what: format!(
                "{} process(es) left the command's cgroup while it ran, so nothing they did \
                 afterwards was checked; verify killed those still running: {}",
                list.len(),
                list.join(", ")
            ),
        });
    }
    out
}

fn dangerous_observed(ctx: &Context) -> Vec<DangerousObserved> {
    let set = policy::dangerous();
    ctx.merged
        .names()
        .into_iter()
        .filter_map(|name| {
            let entry = set.entry(name)?;
            let allowed = ctx.allows(name);
            let kind = DangerousObserved::kind_of(allowed, accepted_risk(ctx, name));
            Some(DangerousObserved {
                name: name.to_string(),
                category: set
                    .category_of(name)
                    .map(|c| c.title.clone())
                    .unwrap_or_default(),
                reason: entry.reason.clone(),
                count: ctx.merged.count(name),
                programs: ctx.merged.programs(name),
                allowed,
                profile_action: ctx.describe_effect(name),
                kind,
                actionable: kind.actionable(),
            })
        })
        .collect()
}

/// Calls the recordings saw that the profile refuses (by name, or because their arch is not
/// listed, or because their number has no name), then what `verify` saw denied.
fn denied_but_used(ctx: &Context, verify: Option<&VerifyResult>) -> Vec<DeniedUse> {
    let listed = |arch: Arch| ctx.profile.architectures.is_empty() || ctx.arches.contains(&arch);
    let mut out = Vec::new();
    for ((arch, name), s) in &ctx.merged.syscalls {
        let why = if !listed(*arch) {
            format!("the profile does not list {}", arch.scmp_name())
        } else if ctx.allows(name) || refused_for_fallback(ctx, name) {
            continue;
        } else {
            ctx.describe_effect(name)
        };
        out.push(DeniedUse {
            source: DeniedSource::Recording,
            arch: *arch,
            name: Some(name.clone()),
            nr: arch.syscall_nr(name),
            count: s.count,
            why,
        });
    }
    for unnamed in &ctx.merged.unnamed {
        out.push(DeniedUse {
            source: DeniedSource::Recording,
            arch: unnamed.arch,
            name: None,
            nr: Some(unnamed.nr),
            count: unnamed.count,
            why: "the number has no name on this architecture, so no profile can allow it".into(),
        });
    }
    let denials = verify.map(|v| v.denied.as_slice()).unwrap_or_default();
    for denial in denials.iter().filter(|d| !d.expected()) {
        out.push(DeniedUse {
            source: DeniedSource::Verify,
            arch: denial.arch,
            name: denial.name.clone(),
            nr: Some(denial.nr),
            count: denial.count,
            why: "denied by the loaded filter while `verify` ran the workload".into(),
        });
    }
    out
}

/// Names a listed arch needs for the observed calls: the translations `profile` would add,
/// and `check`'s missing `*_time64` twins of what the profile allows.
fn arch_gaps(ctx: &Context, check: &CheckReport) -> Vec<ArchGap> {
    let observed: BTreeSet<&str> = ctx.merged.names();
    let observed_arches = ctx.merged.arches();
    let mut gaps: BTreeMap<(Arch, String), String> = BTreeMap::new();
    for &arch in &ctx.arches {
        let t = translate::translate(&observed, arch, observed_arches.contains(&arch));
        for (name, added) in t.added {
            if ctx.allows(&name) || policy::dangerous().contains(&name) {
                continue;
            }
            let from: Vec<&str> = added.from.iter().map(String::as_str).collect();
            let why = format!("stands for {} there: {}", from.join(", "), added.why);
            gaps.insert((arch, name), why);
        }
    }
    for finding in check.with_code(LintCode::Time64TwinMissing) {
        let Some(arch) = finding.arch.as_deref().and_then(|a| a.parse::<Arch>().ok()) else {
            continue;
        };
        for name in &finding.names {
            gaps.entry((arch, name.clone())).or_insert_with(|| {
                "the *_time64 twin of an allowed call, which 32-bit programs built with a 64-bit \
                 time_t call instead (check: time64-twin-missing)"
                    .into()
            });
        }
    }
    gaps.into_iter()
        .map(|((arch, name), why)| ArchGap { arch, name, why })
        .collect()
}

fn runtime_init_only(ctx: &Context) -> Vec<RuntimeInitOnly> {
    let observed = ctx.merged.names();
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, list) in ctx.lists {
        for s in &list.runtime_init {
            match s.name.as_deref() {
                Some(name) if !observed.contains(name) => {
                    let sum = counts.entry(name).or_default();
                    *sum = sum.saturating_add(s.count);
                }
                _ => {}
            }
        }
    }
    counts
        .into_iter()
        .map(|(name, count)| {
            let profile = runtime_init_verdict(ctx, &observed, name);
            RuntimeInitOnly {
                name: name.to_string(),
                count,
                allowed: profile != RuntimeInitVerdict::Denied,
                profile,
                kind: profile.kind(),
                actionable: profile.kind().actionable(),
            }
        })
        .collect()
}

/// What the profile does with a call only the runtime's init made: denied, or allowed for a
/// documented reason (checked in this order), or for none.
fn runtime_init_verdict(
    ctx: &Context,
    observed: &BTreeSet<&str>,
    name: &str,
) -> RuntimeInitVerdict {
    if !ctx.allows(name) {
        return RuntimeInitVerdict::Denied;
    }
    match policy::baseline().entry(name) {
        Some((group, _)) if group.id == "runtime" => return RuntimeInitVerdict::RuntimeBaseline,
        Some(_) => return RuntimeInitVerdict::Baseline,
        None => {}
    }
    // As `audit` allows it: timing-dependent, and its trigger was recorded.
    let timing = policy::timing_dependent()
        .to_allow(observed, &ctx.merged.runtimes)
        .iter()
        .any(|a| a.entry.name == name);
    if timing {
        RuntimeInitVerdict::TimingAllowance
    } else if accepted_risk(ctx, name) {
        RuntimeInitVerdict::AcceptedRisk
    } else {
        RuntimeInitVerdict::Allowed
    }
}

/// Whether the rule that allows `name` records an accepted risk.
fn accepted_risk(ctx: &Context, name: &str) -> bool {
    ctx.allows(name)
        && ctx
            .rule_comment(name)
            .is_some_and(|c| c.trim_start().starts_with(ACCEPTED_RISK))
}

fn privilege_drops(ctx: &Context) -> Vec<PrivilegeDropFinding> {
    ctx.lists
        .iter()
        .filter_map(|(file, list)| {
            let drop = list.privilege_drop.as_ref()?;
            let (root, other): (Vec<_>, Vec<_>) = list.executables.iter().partition(|e| e.uid == 0);
            Some(PrivilegeDropFinding {
                file: file.clone(),
                first_unprivileged_call: drop
                    .first_unprivileged_call
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                root_only: drop.root_only.clone(),
                unprivileged: drop.unprivileged.len(),
                root_executables: root.iter().map(|e| e.path.clone()).collect(),
                unprivileged_executables: other
                    .iter()
                    .map(|e| format!("{} (uid {})", e.path, e.uid))
                    .collect(),
            })
        })
        .collect()
}

/// Denied with ENOSYS: the caller is told the call does not exist and falls back to an older
/// one (`clone3` → `clone`), as `verify` counts it too; not a finding, a note.
fn refused_for_fallback(ctx: &Context, name: &str) -> bool {
    let effect = ctx.effect(name);
    effect.action.denies()
        && !effect.conditional
        && effect.errno == u32::try_from(libc::ENOSYS).ok()
}

fn notes(ctx: &Context) -> Vec<String> {
    let mut notes = Vec::new();
    for ((_, name), s) in &ctx.merged.syscalls {
        if refused_for_fallback(ctx, name) && !ctx.allows(name) {
            notes.push(format!(
                "{name} ({} calls recorded) is refused with ENOSYS on purpose: the libc then \
                 falls back to an older call the profile allows",
                s.count
            ));
        }
    }
    if ctx.profile_file.is_none() {
        notes.push(
            "no --profile given: the profile reviewed is the one `agent-audit profile` generates \
             from these allowlists with its defaults"
                .to_string(),
        );
    }
    for input in ctx.merged.inputs.iter().filter(|i| !i.complete) {
        notes.push(format!(
            "{} is a snapshot of an unfinished recording: later calls are missing",
            input.label
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::exit_status_failure;

    #[test]
    fn a_command_that_fails_without_the_profile_too_is_said_to_fail_by_itself() {
        let itself = exit_status_failure(2, &[2, 2, 2]);
        assert!(
            itself.contains("as it did in every recorded run"),
            "{itself}"
        );
        assert!(itself.contains("3 run(s)"), "{itself}");
        // Recorded runs that succeeded, or differed: the profile may be the cause.
        for recorded in [&[0, 0, 0][..], &[2, 0, 2], &[]] {
            let line = exit_status_failure(2, recorded);
            assert_eq!(
                line, "the command exited 2 under the profile",
                "{recorded:?}"
            );
        }
    }
}
