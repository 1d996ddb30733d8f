//! Computing the [`Report`] from its inputs: read them, merge the allowlists, plan the profile
//! `profile` would generate (for the reasons), resolve what the reviewed profile does with every
//! name, then the summary, findings, categories and the table of allowed syscalls.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;

use time::OffsetDateTime;

use super::context::Context;
use super::findings;
use super::{use_it, verdict, Information};
use super::{
    AllowReason, ArchSummary, BaseChanges, CategoryRow, Report, ReportError, ReportInputs,
    RunSummary, Summary, SyscallRow, TotalsSummary, VerifyResult, SCHEMA_V1,
};
use crate::allowlist::saturating_sum;
use crate::check::ACCEPTED_RISK;
use crate::diff::{self, Side};
use crate::policy;
use crate::profile::model::Reason;
use crate::profile::{self, build as plan_build, oci, Merged, ProfileError, ProfileOptions};
use crate::seccomp::SeccompProfile;
use crate::syscalls::Arch;

/// Reads the inputs and computes the report.
pub fn build(inputs: &ReportInputs) -> Result<Report, ReportError> {
    let lists = profile::read_allowlists(&inputs.allowlists)?;
    let mut lists = lists;
    lists.sort_by(|a, b| a.0.cmp(&b.0));
    let merged = Merged::new(lists.clone());
    let read = |what, path: &Path| {
        SeccompProfile::read(path).map_err(|source| ReportError::Profile { what, source })
    };
    let given = inputs
        .profile
        .as_deref()
        .map(|p| read("--profile", p))
        .transpose()?;
    let options = ProfileOptions {
        baseline: true,
        ..Default::default()
    };
    let plan = match plan_build::plan(&merged, &options) {
        Ok(plan) => Some(plan),
        Err(ProfileError::NothingObserved) if given.is_some() => None,
        Err(e) => return Err(e.into()),
    };
    let profile = match (given, &plan) {
        (Some(p), _) => p,
        (None, Some(plan)) => oci::to_seccomp_profile(plan),
        (None, None) => unreachable!("plan errors without --profile were returned above"),
    };
    let profile_file = inputs.profile.as_deref();
    let label = profile_file.unwrap_or(Path::new("generated profile"));
    let side = Side::from_profile(label, &profile);
    // `check` validates the architectures exactly as it does for `check PROFILE`.
    let check = crate::check::check(&profile, label)?;
    let arches: Vec<Arch> = check
        .architectures
        .iter()
        .filter_map(|a| Arch::from_str(a).ok())
        .collect();
    let ctx = Context {
        lists: &lists,
        merged: &merged,
        plan: plan.as_ref(),
        profile: &profile,
        profile_file,
        side: &side,
        arches,
    };
    let base = inputs
        .base
        .as_deref()
        .map(|path| {
            let old = read("--base", path)?;
            let d = diff::diff(&Side::from_profile(path, &old), &side);
            Ok::<_, ReportError>(BaseChanges {
                base: path.display().to_string(),
                added: d.added,
                removed: d.removed,
                changed: d.changed.into_iter().map(|c| c.name).collect(),
            })
        })
        .transpose()?;
    let verify = inputs
        .verify
        .as_deref()
        .map(VerifyResult::read)
        .transpose()?;
    let syscalls = syscall_rows(&ctx);
    let mut summary = summary(&ctx, base);
    summary.verify_passed = verify.as_ref().map(findings::verify_passed);
    summary.verify_note = verify.as_ref().and_then(verify_note);
    summary.convergence = findings::convergence(&lists);
    let findings = findings::compute(&ctx, &check, verify.as_ref(), &summary.convergence);
    let information = Information::of(&findings.privilege_drops, &summary.runs);
    let image = verify
        .as_ref()
        .and_then(|v| v.container.as_ref())
        .map(|c| c.image.as_str());
    Ok(Report {
        schema: SCHEMA_V1,
        generator: format!("agent-audit {}", env!("CARGO_PKG_VERSION")),
        verdict: verdict::verdict(&findings, &information, summary.verify_passed),
        use_it: use_it::use_it(&summary, image, recorded_command(&lists)),
        findings,
        information,
        summary,
        categories: category_rows(&syscalls),
        syscalls,
        refused: refused_rows(&ctx),
    })
}

/// The recordings' refusals by (arch, name), most refused first.
fn refused_rows(ctx: &Context) -> Vec<super::RefusedRow> {
    use crate::profile::merge::{ProgramList, ProgramUse};
    let mut rows: BTreeMap<(Arch, String), super::RefusedRow> = BTreeMap::new();
    let mut programs: BTreeMap<(Arch, String), BTreeMap<(String, bool), u64>> = BTreeMap::new();
    for (_, list) in ctx.lists {
        for r in &list.refused {
            let Some(name) = &r.name else { continue };
            let key = (r.arch, name.clone());
            let row = rows
                .entry(key.clone())
                .or_insert_with(|| super::RefusedRow {
                    name: name.clone(),
                    arch: r.arch,
                    count: 0,
                    actions: Vec::new(),
                    own_filters: false,
                    allowed_now: ctx
                        .side
                        .effects
                        .get(name)
                        .is_some_and(|e| !e.action.denies()),
                    programs: ProgramList::default(),
                });
            row.count = row.count.saturating_add(r.count);
            if !row.actions.contains(&r.action) {
                row.actions.push(r.action);
                row.actions.sort();
            }
            row.own_filters |= !r.by_profile();
            let mine = programs.entry(key).or_default();
            for p in &r.programs {
                let c = mine.entry((p.comm.clone(), p.as_root)).or_default();
                *c = c.saturating_add(p.count);
            }
        }
    }
    let mut out: Vec<super::RefusedRow> = rows
        .into_iter()
        .map(|(key, mut row)| {
            let mut listed: Vec<ProgramUse> = programs
                .remove(&key)
                .unwrap_or_default()
                .into_iter()
                .map(|((comm, as_root), count)| ProgramUse {
                    comm,
                    as_root,
                    count,
                })
                .collect();
            listed.sort_by(|a, b| (b.count, &a.comm).cmp(&(a.count, &b.comm)));
            row.programs = ProgramList { listed, omitted: 0 };
            row
        })
        .collect();
    out.sort_by(|a, b| (b.count, &a.name, a.arch).cmp(&(a.count, &b.name, b.arch)));
    out
}

/// The command the first recording (by file) ran, when its target is one.
fn recorded_command(lists: &[(String, crate::allowlist::Allowlist)]) -> Option<&[String]> {
    lists.first()?.1.target.command.as_deref()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Seconds with millisecond precision, so that the JSON does not carry float noise.
fn seconds(from: OffsetDateTime, to: OffsetDateTime) -> f64 {
    ((to - from).whole_milliseconds().max(0) as f64) / 1000.0
}

fn summary(ctx: &Context, base: Option<BaseChanges>) -> Summary {
    let runs: Vec<RunSummary> = ctx
        .lists
        .iter()
        .zip(&ctx.merged.inputs)
        .map(|((file, list), input)| RunSummary {
            file: file.clone(),
            target: input.target.clone(),
            started_at: rfc3339(list.started_at),
            ended_at: rfc3339(list.ended_at),
            duration_seconds: seconds(list.started_at, list.ended_at),
            calls: list.totals.calls,
            distinct: list.totals.distinct,
            complete: list.complete,
            host: format!("{} ({})", list.host.kernel, list.host.machine),
        })
        .collect();
    let mut per_arch: BTreeMap<Arch, (usize, u64)> = BTreeMap::new();
    for ((arch, _), s) in &ctx.merged.syscalls {
        let entry = per_arch.entry(*arch).or_default();
        entry.0 += 1;
        entry.1 = entry.1.saturating_add(s.count);
    }
    let allowed = ctx
        .side
        .effects
        .iter()
        .filter(|(_, e)| !e.action.denies())
        .count();
    let denied_explicitly = ctx.side.effects.len() - allowed;
    let duration = runs.iter().map(|r| r.duration_seconds).sum::<f64>();
    Summary {
        verify_passed: None,
        verify_note: None,
        convergence: findings::convergence(&[]),
        duration_seconds: (duration * 1000.0).round() / 1000.0,
        totals: TotalsSummary {
            calls: saturating_sum(ctx.lists.iter().map(|(_, l)| l.totals.calls)),
            distinct_names: ctx.merged.names().len(),
            unnamed_calls: saturating_sum(ctx.merged.unnamed.iter().map(|u| u.count)),
            out_of_range: saturating_sum(ctx.lists.iter().map(|(_, l)| l.totals.out_of_range)),
        },
        runs,
        per_arch: per_arch
            .into_iter()
            .map(|(arch, (distinct, calls))| ArchSummary {
                arch,
                distinct,
                calls,
            })
            .collect(),
        profile: super::ProfileSummary {
            file: ctx.profile_file.map(|p| p.display().to_string()),
            architectures: ctx.profile.architectures.clone(),
            default_action: serde_json::to_value(ctx.profile.default_action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            allowed,
            denied_explicitly,
            rules: ctx.profile.syscalls.len(),
        },
        base,
        mixed_privileges: ctx.merged.mixed_privileges(),
    }
}

fn syscall_rows(ctx: &Context) -> Vec<SyscallRow> {
    let total = saturating_sum(ctx.lists.iter().map(|(_, l)| l.totals.calls));
    let categories = policy::categories();
    let names: BTreeSet<&str> = ctx
        .side
        .effects
        .iter()
        .filter(|(_, e)| !e.action.denies())
        .map(|(n, _)| n.as_str())
        .collect();
    names
        .into_iter()
        .map(|name| {
            let count = ctx.merged.count(name);
            let arguments = argument_summary(ctx, name);
            SyscallRow {
                name: name.to_string(),
                category: categories.of(name).unwrap_or("unknown").to_string(),
                count,
                share: if total == 0 {
                    0.0
                } else {
                    // Six decimals: stable, and finer than any table shows.
                    (count as f64 / total as f64 * 1e6).round() / 1e6
                },
                per_arch: ctx
                    .merged
                    .by_arch(name)
                    .map(|(a, s)| (a.scmp_name().to_string(), s.count))
                    .collect(),
                programs: ctx.merged.programs(name),
                description: policy::descriptions()
                    .get(name)
                    .unwrap_or("Not a syscall agent-audit knows.")
                    .to_string(),
                reason: with_arguments(allow_reason(ctx, name), arguments.as_ref()),
                dangerous: policy::dangerous().contains(name),
                conditional: ctx.effect(name).conditional,
                arguments,
            }
        })
        .collect()
}

/// The reason, saying which arguments the rules allow (shown by every renderer).
fn with_arguments(
    mut reason: AllowReason,
    arguments: Option<&super::ArgumentSummary>,
) -> AllowReason {
    if let Some(a) = arguments {
        reason.text = format!(
            "{} Only for: {} (observed: {}).",
            reason.text.trim_end(),
            a.allowed,
            a.observed
        );
    }
    reason
}

/// The planned argument rules of `name`, when the profile narrows it by argument.
fn argument_summary(ctx: &Context, name: &str) -> Option<super::ArgumentSummary> {
    if !ctx.effect(name).conditional {
        return None;
    }
    let narrowed = ctx.plan?.arguments.get(name)?;
    Some(super::ArgumentSummary {
        observed: crate::profile::rationale::describe_seen(name, &narrowed.seen),
        allowed: narrowed.allows.clone(),
    })
}

/// Why `name` is allowed: the plan's reason when the profile agrees with it, else the rule.
fn allow_reason(ctx: &Context, name: &str) -> AllowReason {
    let comment = ctx.rule_comment(name).map(str::trim).unwrap_or("");
    if comment.starts_with(ACCEPTED_RISK) {
        return AllowReason {
            kind: "accepted-risk",
            text: comment.to_string(),
        };
    }
    let runs = |inputs: &[usize]| {
        inputs
            .iter()
            .map(|i| (i + 1).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match ctx.plan.and_then(|p| p.reasons.get(name)) {
        Some(Reason::Observed {
            per_arch, inputs, ..
        }) => {
            let arches: Vec<String> = per_arch
                .iter()
                .map(|(a, c)| format!("{} ×{c}", a.short_name()))
                .collect();
            AllowReason {
                kind: "observed",
                text: format!(
                    "observed in run(s) {} ({})",
                    runs(inputs),
                    arches.join(", ")
                ),
            }
        }
        Some(Reason::Translated { arches, from, why }) => AllowReason {
            kind: "translated",
            text: format!(
                "translated for {} from {}: {why}",
                arches
                    .iter()
                    .map(|a| a.short_name())
                    .collect::<Vec<_>>()
                    .join(", "),
                from.join(", ")
            ),
        },
        Some(Reason::Baseline { group, why }) => AllowReason {
            kind: "baseline",
            text: format!("baseline ({group}): {why}"),
        },
        Some(Reason::ExplicitAllow { why, by, .. }) => AllowReason {
            kind: "explicit-allow",
            text: by.introduce(why),
        },
        Some(Reason::BaseAllow { comment }) => AllowReason {
            kind: "base-allow",
            text: comment.clone(),
        },
        _ if comment.is_empty() => AllowReason {
            kind: "profile-rule",
            text: "allowed by a rule of the profile that has no comment".into(),
        },
        _ => AllowReason {
            kind: "profile-rule",
            text: format!("allowed by the profile's rule: {comment}"),
        },
    }
}

fn category_rows(rows: &[SyscallRow]) -> Vec<CategoryRow> {
    let mut out: Vec<CategoryRow> = Vec::new();
    let table = policy::categories();
    let ids = table
        .categories
        .iter()
        .map(|c| (c.id.as_str(), c.title.as_str()))
        .chain([("unknown", "Unknown")]);
    for (id, title) in ids {
        let mine: Vec<&SyscallRow> = rows.iter().filter(|r| r.category == id).collect();
        if mine.is_empty() {
            continue;
        }
        out.push(CategoryRow {
            id: id.to_string(),
            title: title.to_string(),
            syscalls: mine.len(),
            calls: saturating_sum(mine.iter().map(|r| r.count)),
        });
    }
    out
}

/// How a container's verify ran, and the refusals its own seccomp configuration makes too.
fn verify_note(v: &VerifyResult) -> Option<String> {
    let mut note = v.container.as_ref()?.describe();
    let before: Vec<String> = v
        .denied
        .iter()
        .filter(|d| d.refused_before)
        .map(|d| format!("{} x{}", d.name.as_deref().unwrap_or("?"), d.count))
        .collect();
    if !before.is_empty() {
        note.push_str(&format!(
            ". Refused under the profile and under the container's own seccomp configuration \
             alike, so its recorded runs ran with them refused (not a failure): {}",
            before.join(", ")
        ));
    }
    Some(note)
}
