//! From merged recordings to a [`ProfilePlan`]: the rules, their order and their comments.
//!
//! [`plan`] runs the sections of the profile in order, each a method of [`Builder`]; a name
//! gets its rule from the first section that claims it (its entry in `reasons`).

use std::collections::{BTreeMap, BTreeSet};

use super::args::{self, ArgVerdict, Narrowed, Seen, SocketRefusals};
use super::merge::Merged;
use super::model::{
    errno, AllowedBy, Notice, PlannedArch, PlannedRule, ProfilePlan, Reason, RefusedDenial,
    Section, Verdict,
};
use super::translate::{self, Added};
use super::{ExplicitAllow, ProfileError, ProfileOptions};
use crate::allowlist::ArgField;
use crate::policy::{self, DangerousSet};
use crate::seccomp::{Action, ArgCondition, SyscallRule};
use crate::syscalls::Arch;

/// Builds the plan. Pure: the same merge and options always give the same plan.
pub fn plan(merged: &Merged, options: &ProfileOptions) -> Result<ProfilePlan, ProfileError> {
    let mut builder = Builder::new(merged, options)?;
    builder.note_inputs();
    builder.observed();
    builder.refused();
    builder.translated();
    builder.explicit_allows();
    builder.base_allows();
    builder.baseline();
    builder.argument_rules();
    builder.dangerous_denies();
    builder.base_denies();
    builder.clone3();
    Ok(builder.finish())
}

/// The plan under construction, with what every section needs to know.
struct Builder<'a> {
    merged: &'a Merged,
    options: &'a ProfileOptions,
    architectures: Vec<PlannedArch>,
    /// The profile's arches.
    listed: Vec<Arch>,
    /// `--allow NAME` and audit's timing allowances → the reason, and who allowed it.
    explicit: BTreeMap<String, (String, AllowedBy)>,
    dangerous: &'static DangerousSet,
    /// Every observed name.
    observed: BTreeSet<&'a str>,
    /// What the base profile denies explicitly, by name.
    base_denied: BTreeSet<String>,
    rules: Vec<PlannedRule>,
    reasons: BTreeMap<String, Reason>,
    notices: Vec<Notice>,
    arguments: BTreeMap<String, Narrowed>,
}

impl<'a> Builder<'a> {
    fn new(merged: &'a Merged, options: &'a ProfileOptions) -> Result<Self, ProfileError> {
        let architectures = architectures(merged, &options.extra_arches)?;
        let listed: Vec<Arch> = architectures.iter().map(|a| a.arch).collect();
        let by_flag = options.allows.iter().map(|a| (a, AllowedBy::Flag));
        let by_audit = (options.timing_allows.iter()).map(|a| (a, AllowedBy::TimingAllowance));
        let explicit = explicit_allows(by_flag.chain(by_audit), &listed)?;
        // Only unconditional denies deny a name outright; a conditional one (Podman's
        // NETLINK_AUDIT socket rule) refines calls the profile may otherwise allow.
        let base_denied = base_rules(options)
            .filter(|(_, r)| r.action.denies() && r.args.is_empty())
            .flat_map(|(_, r)| r.all_names().map(str::to_owned))
            .collect();
        Ok(Builder {
            merged,
            options,
            architectures,
            listed,
            explicit,
            dangerous: policy::dangerous(),
            observed: merged.names(),
            base_denied,
            rules: Vec::new(),
            reasons: BTreeMap::new(),
            notices: Vec::new(),
            arguments: BTreeMap::new(),
        })
    }

    /// Names that stay denied whatever the recordings say, unless `--allow`ed.
    fn forced_deny(&self, name: &str) -> bool {
        !self.explicit.contains_key(name)
            && (self.dangerous.contains(name) || self.base_denied.contains(name))
    }

    /// Whether any of the profile's arches has `name`.
    fn exists(&self, name: &str) -> bool {
        self.listed.iter().any(|a| a.has_syscall(name))
    }

    /// Snapshots and unnamed numbers, which the user must hear about.
    fn note_inputs(&mut self) {
        for input in &self.merged.inputs {
            if !input.complete {
                self.notices.push(Notice::IncompleteInput {
                    label: input.label.clone(),
                });
            }
        }
        for unnamed in &self.merged.unnamed {
            self.notices.push(Notice::Unnamed {
                arch: unnamed.arch,
                nr: unnamed.nr,
                count: unnamed.count,
            });
        }
    }

    /// 1. Observed names, except those denied whatever happens and those `--allow`ed.
    fn observed(&mut self) {
        let merged = self.merged;
        let mut names = Vec::new();
        for &name in &self.observed.clone() {
            let count = merged.count(name);
            let explicit = self.explicit.contains_key(name);
            if self.dangerous.contains(name) {
                self.notices.push(Notice::DangerousObserved {
                    name: name.to_string(),
                    count,
                    allowed: explicit,
                });
            } else if self.base_denied.contains(name) && !explicit {
                self.notices.push(Notice::BaseDeniedObserved {
                    name: name.to_string(),
                    count,
                });
            }
            if self.forced_deny(name) || explicit {
                continue;
            }
            if name == "clone3" {
                // Its flags live in user memory where seccomp cannot compare them: ENOSYS
                // (section 4) makes libc fall back to clone, whose rule covers them.
                self.notices.push(Notice::Clone3Observed { count });
                continue;
            }
            if name == "socketcall" {
                self.notices
                    .push(Notice::SocketcallNotFiltered { allowed: true });
            }
            names.push(name.to_string());
            self.reasons.insert(
                name.to_string(),
                Reason::Observed {
                    count,
                    per_arch: merged.by_arch(name).map(|(a, s)| (a, s.count)).collect(),
                    inputs: merged.seen_in(name).into_iter().collect(),
                },
            );
        }
        if !names.is_empty() {
            let comment = observed_comment(merged, names.len());
            self.push(Section::Observed, names, Verdict::Allow, comment);
        }
    }

    /// 1a. Calls the profile in force refused: the workload needs them, so they are allowed
    /// exactly as observed ones would be (the argument rules of section 2b narrow them to
    /// what Docker's default allows, their values being unknown), except what stays denied
    /// whatever happens (dangerous, the base profile's denies, clone3's ENOSYS) and what only
    /// the workload's own filter refused.
    fn refused(&mut self) {
        let merged = self.merged;
        let mut names = Vec::new();
        for name in merged.refused_names() {
            if self.reasons.contains_key(name) || self.explicit.contains_key(name) {
                continue;
            }
            let by_profile = merged.refused_by_profile(name);
            let why = if by_profile == 0 {
                Some(RefusedDenial::OwnFilter)
            } else if self.dangerous.contains(name) {
                Some(RefusedDenial::Dangerous)
            } else if self.base_denied.contains(name) {
                Some(RefusedDenial::BaseDenied)
            } else if name == "clone3" {
                Some(RefusedDenial::Clone3)
            } else if !self.exists(name) {
                Some(RefusedDenial::NotOnArches)
            } else {
                None
            };
            if let Some(why) = why {
                let count = by_profile.max(merged.refused_with_own_filters(name));
                self.notices.push(Notice::RefusedStaysDenied {
                    name: name.to_string(),
                    count,
                    why,
                });
                continue;
            }
            names.push(name.to_string());
            self.reasons.insert(
                name.to_string(),
                Reason::Refused {
                    count: by_profile,
                    inputs: merged.refused_in(name).into_iter().collect(),
                },
            );
        }
        if !names.is_empty() {
            let comment = format!(
                "Refused by the profile in force while recording ({} syscall(s)): the workload \
                 needs them.",
                names.len()
            );
            self.push(Section::Refused, names, Verdict::Allow, comment);
        }
    }

    /// 1b. Translations, one rule per arch; a name goes to the first arch that needs it.
    fn translated(&mut self) {
        let mut translated: BTreeMap<String, (Vec<Arch>, Added)> = BTreeMap::new();
        let mut per_arch: Vec<(PlannedArch, BTreeMap<String, Added>)> = Vec::new();
        for planned in self.architectures.clone() {
            let t = translate::translate(&self.observed, planned.arch, planned.observed);
            for (name, harmless) in t.missing {
                self.notices.push(Notice::NoEquivalent {
                    name,
                    arch: planned.arch,
                    harmless,
                });
            }
            let mut mine = BTreeMap::new();
            for (name, added) in t.added {
                if self.forced_deny(&name) || self.explicit.contains_key(&name) {
                    continue;
                }
                if name == "socketcall" && !planned.observed {
                    // No 32-bit socket operation was recorded, and socketcall's arguments
                    // cannot be filtered: leave it denied.
                    let notice = Notice::SocketcallNotFiltered { allowed: false };
                    if !self.notices.contains(&notice) {
                        self.notices.push(notice);
                    }
                    continue;
                }
                match translated.get_mut(&name) {
                    Some((arches, first)) => {
                        arches.push(planned.arch);
                        first.from.extend(added.from);
                    }
                    None => {
                        translated.insert(name.clone(), (vec![planned.arch], added.clone()));
                        mine.insert(name, added);
                    }
                }
            }
            per_arch.push((planned, mine));
        }
        for (planned, mine) in per_arch {
            if mine.is_empty() {
                continue;
            }
            let comment = translated_comment(planned, &mine, &translated);
            let names = mine.keys().cloned().collect();
            self.push(
                Section::Translated(planned.arch),
                names,
                Verdict::Allow,
                comment,
            );
        }
        for (name, (arches, added)) in translated {
            self.reasons.insert(
                name,
                Reason::Translated {
                    arches,
                    from: added.from.into_iter().collect(),
                    why: added.why,
                },
            );
        }
    }

    /// 1c. `--allow NAME --reason TEXT`.
    fn explicit_allows(&mut self) {
        for (name, (why, by)) in self.explicit.clone() {
            let count = self.merged.count(&name);
            let entry = self.dangerous.entry(&name);
            // audit says itself what it allowed and why; only a user's --allow is noted.
            if count == 0 && by == AllowedBy::Flag {
                self.notices
                    .push(Notice::AllowedUnobserved { name: name.clone() });
            }
            let comment = match entry {
                Some(e) => format!(
                    "ACCEPTED RISK: {name} is dangerous ({}) and is allowed with --allow because: {why}",
                    e.reason.trim_end_matches('.')
                ),
                None if count == 0 && by == AllowedBy::TimingAllowance => {
                    format!("Allowed although never observed: {why}")
                }
                None if count == 0 => {
                    format!("Allowed with --allow although never observed: {why}")
                }
                None => format!("Allowed with --allow: {why}"),
            };
            self.reasons.insert(
                name.clone(),
                Reason::ExplicitAllow {
                    why: why.clone(),
                    by,
                    dangerous: entry.is_some(),
                    count,
                },
            );
            self.push(
                Section::ExplicitAllow(name.clone(), by),
                vec![name],
                Verdict::Allow,
                comment,
            );
        }
    }

    /// 1d. What the base allowed but nobody observed: listed, kept on request.
    fn base_allows(&mut self) {
        let options = self.options;
        let mut unobserved = BTreeSet::new();
        for (index, rule) in base_rules(options).filter(|(_, r)| !r.action.denies()) {
            let names: Vec<String> = rule
                .all_names()
                .filter(|n| !self.observed.contains(n))
                .map(str::to_owned)
                .collect();
            unobserved.extend(names.iter().cloned());
            if !options.keep_base_allows {
                continue;
            }
            let Some(verdict) = verdict_of(rule, &mut self.notices) else {
                continue;
            };
            let names: Vec<String> = names
                .into_iter()
                .filter(|n| !self.forced_deny(n) && !self.reasons.contains_key(n))
                .collect();
            if names.is_empty() {
                continue;
            }
            let comment = base_comment(
                options,
                rule,
                "allowed by the base profile, kept with --keep-base-allows",
            );
            for name in &names {
                self.reasons.insert(
                    name.clone(),
                    Reason::BaseAllow {
                        comment: comment.clone(),
                    },
                );
            }
            self.push_with_args(Section::BaseAllow(index), names, verdict, rule, comment);
        }
        if !unobserved.is_empty() {
            self.notices.push(Notice::BaseAllowsUnobserved {
                names: unobserved.into_iter().collect(),
                kept: options.keep_base_allows,
            });
        }
    }

    /// 2. Baseline, with the `*_time64` twins of its entries on 32-bit arches.
    fn baseline(&mut self) {
        if !self.options.baseline {
            return;
        }
        let tables = policy::translations();
        let mut entries: Vec<(String, String, String)> = Vec::new();
        for (group, entry) in policy::baseline().entries() {
            entries.push((
                entry.name.clone(),
                group.title.clone(),
                entry.reason.clone(),
            ));
            if let Some(twin) = tables.time64_twin(&entry.name) {
                let why = format!(
                    "32-bit twin of baseline entry {} for libcs built with a 64-bit time_t.",
                    entry.name
                );
                entries.push((twin.to_string(), group.title.clone(), why));
            }
        }
        for (name, group, why) in entries {
            if !self.exists(&name) || self.forced_deny(&name) || self.reasons.contains_key(&name) {
                continue;
            }
            let comment = format!("Baseline ({group}): {name}: {why}");
            self.reasons
                .insert(name.clone(), Reason::Baseline { group, why });
            self.push(
                Section::Baseline(name.clone()),
                vec![name],
                Verdict::Allow,
                comment,
            );
        }
    }

    /// 2b. Narrows `socket`, `socketpair`, `clone`, `personality` and `ioctl` where an unconditional
    /// allow above (observed, translated, baseline) let them through; `--allow` keeps its
    /// unconditional rule. `clone` is also allowed, narrowed, when only clone3 was observed.
    fn argument_rules(&mut self) {
        let clone3_calls = self.merged.count("clone3");
        for &name in args::NARROWED {
            let held = self.take_unconditional(name);
            let clone3_fallback = name == "clone"
                && !held
                && clone3_calls > 0
                && !self.reasons.contains_key(name)
                && !self.forced_deny(name)
                && self.exists(name);
            if !held && !clone3_fallback {
                continue;
            }
            if clone3_fallback {
                self.reasons
                    .insert(name.into(), Reason::Clone3Fallback { clone3_calls });
            }
            let narrowed = self.narrow(name, clone3_fallback);
            for what in &narrowed.dangerous_observed {
                self.notices.push(Notice::DangerousArgumentObserved {
                    name: name.to_string(),
                    what: what.clone(),
                });
            }
            self.push_narrowed(&narrowed);
            self.arguments.insert(name.to_string(), narrowed);
        }
    }

    /// Removes `name` from the unconditional allows of the observed, translated and baseline
    /// sections; whether it was there.
    fn take_unconditional(&mut self, name: &str) -> bool {
        let mut found = false;
        for rule in self.rules.iter_mut().filter(|r| {
            r.args.is_empty()
                && r.verdict == Verdict::Allow
                && matches!(
                    r.section,
                    Section::Observed
                        | Section::Refused
                        | Section::Translated(_)
                        | Section::Baseline(_)
                )
        }) {
            let before = rule.names.len();
            rule.names.retain(|n| n != name);
            found |= rule.names.len() != before;
        }
        self.rules.retain(|r| !r.names.is_empty());
        found
    }

    /// The argument rules of `name` from what the recordings saw.
    fn narrow(&self, name: &str, clone_unobserved: bool) -> Narrowed {
        let records = self.merged.args(name);
        let seen = args::seen(records.as_deref(), 0, None);
        match name {
            "clone" => {
                let clone3 = (self.merged.count("clone3") > 0).then(|| {
                    let records = self.merged.args("clone3");
                    args::seen(records.as_deref(), 0, Some(ArgField::CloneArgsFlags))
                });
                let own = if clone_unobserved {
                    Seen::Flags(0)
                } else {
                    seen
                };
                args::clone(own, clone3)
            }
            "personality" => args::personality(seen),
            "ioctl" => args::ioctl(
                args::seen(records.as_deref(), 1, None),
                self.options.args_mode,
            ),
            _ => args::socket_families(name, seen, SocketRefusals::for_arches(&self.listed)),
        }
    }

    /// One allow rule per alternative, each with its comment.
    fn push_narrowed(&mut self, narrowed: &Narrowed) {
        let name = &narrowed.name;
        let summary = format!("{name}: allowed for {}. {}", narrowed.allows, narrowed.why);
        if narrowed.rules.is_empty() {
            self.push(
                Section::Arguments(name.clone()),
                vec![name.clone()],
                Verdict::Allow,
                summary,
            );
            return;
        }
        let total = narrowed.rules.len();
        for (i, rule) in narrowed.rules.iter().enumerate() {
            let (verdict, does) = match rule.verdict {
                ArgVerdict::Allow => (Verdict::Allow, "allows".to_string()),
                ArgVerdict::Refuse { errno } => {
                    (Verdict::Deny { errno }, format!("refuses (errno {errno})"))
                }
            };
            let comment = if i == 0 {
                summary.clone()
            } else {
                format!(
                    "{name}, alternative {} of {total} (libseccomp tests them in this order;                      the first that matches decides): {does} {}",
                    i + 1,
                    ArgCondition::describe_all(&rule.conditions)
                )
            };
            self.push(
                Section::Arguments(name.clone()),
                vec![name.clone()],
                verdict,
                comment,
            );
            if let Some(last) = self.rules.last_mut() {
                last.args = rule.conditions.clone();
            }
        }
    }

    /// 3. Explicit denies, by dangerous category.
    fn dangerous_denies(&mut self) {
        let allowed: BTreeSet<String> = self.reasons.keys().cloned().collect();
        for category in &self.dangerous.categories {
            let mut names = Vec::new();
            let mut seen = Vec::new();
            for entry in &category.syscalls {
                if !self.exists(&entry.name) || allowed.contains(&entry.name) {
                    continue;
                }
                let count = self.merged.count(&entry.name);
                if count > 0 {
                    seen.push(format!("{} ({count} calls)", entry.name));
                }
                names.push(entry.name.clone());
                self.reasons.insert(
                    entry.name.clone(),
                    Reason::Dangerous {
                        category: category.title.clone(),
                        why: entry.reason.clone(),
                        observed: count,
                    },
                );
            }
            if names.is_empty() {
                continue;
            }
            let mut comment = format!("Deny: {}. {}", category.title, category.comment);
            if !seen.is_empty() {
                comment.push_str(&format!(
                    " OBSERVED in the recordings but kept denied (the workload will get EPERM; \
                     use --allow NAME --reason TEXT to accept the risk): {}.",
                    seen.join(", ")
                ));
            }
            names.sort();
            self.push(
                Section::DenyCategory(category.id.clone()),
                names,
                Verdict::Deny {
                    errno: errno::EPERM,
                },
                comment,
            );
        }
    }

    /// 3b. The base profile's own explicit denies.
    fn base_denies(&mut self) {
        let options = self.options;
        for (index, rule) in base_rules(options).filter(|(_, r)| r.action.denies()) {
            // A conditional deny is kept even for a name allowed above: it refines that allow.
            // Not for a name with argument rules of its own: libseccomp keeps only one of two
            // overlapping conditional rules with different actions (which one depends on the
            // order; measured in the kernel), so the base rule would silently do nothing.
            let conditional = !rule.args.is_empty();
            let (clashing, names): (Vec<&str>, Vec<&str>) = rule
                .all_names()
                .partition(|n| conditional && self.arguments.contains_key(*n));
            if !clashing.is_empty() {
                self.notices.push(Notice::BaseRuleDropped {
                    names: clashing.iter().map(|n| n.to_string()).collect(),
                    action: "conditional deny (libseccomp cannot combine it with this profile's \
                             own argument rules for the same syscall)"
                        .into(),
                });
            }
            let names: Vec<String> = names
                .into_iter()
                .filter(|n| *n != "clone3" && (conditional || !self.reasons.contains_key(*n)))
                .filter(|n| self.exists(n))
                .map(str::to_owned)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let Some(verdict) = verdict_of(rule, &mut self.notices) else {
                continue;
            };
            if names.is_empty() {
                continue;
            }
            let comment = base_comment(options, rule, "explicit deny kept from the base profile");
            for name in &names {
                self.reasons
                    .entry(name.clone())
                    .or_insert_with(|| Reason::BaseDeny {
                        comment: comment.clone(),
                        observed: self.merged.count(name),
                    });
            }
            self.push_with_args(Section::BaseDeny(index), names, verdict, rule, comment);
        }
    }

    /// 4. clone3 → ENOSYS, so that glibc falls back to clone.
    fn clone3(&mut self) {
        if self.reasons.contains_key("clone3") || !self.exists("clone3") {
            return;
        }
        let count = self.merged.count("clone3");
        let comment = if count > 0 {
            format!(
                "clone3 was observed ({count} calls) but fails with ENOSYS: its flags live in \
                 user memory where seccomp cannot compare them, so glibc and other runtimes fall \
                 back to clone, whose rule allows the flags clone3 was seen to use (--allow \
                 clone3 --reason TEXT overrides)"
            )
        } else {
            "clone3 was not observed: fail it with ENOSYS (not EPERM) so that glibc and other \
             runtimes fall back to clone, which the profile allows"
                .into()
        };
        self.reasons
            .insert("clone3".into(), Reason::Clone3 { observed: count });
        self.push(
            Section::Clone3,
            vec!["clone3".into()],
            Verdict::Deny {
                errno: errno::ENOSYS,
            },
            comment,
        );
    }

    fn finish(self) -> ProfilePlan {
        let merged = self.merged;
        ProfilePlan {
            default_errno: errno::EPERM,
            architectures: self.architectures,
            rules: self.rules,
            reasons: self.reasons,
            inputs: merged.inputs.clone(),
            notices: self.notices,
            programs: self
                .observed
                .iter()
                .map(|name| (name.to_string(), merged.programs(name)))
                .collect(),
            mixed_privileges: merged.mixed_privileges(),
            arguments: self.arguments,
            capabilities: merged.capabilities.clone(),
        }
    }

    fn push(
        &mut self,
        section: Section,
        mut names: Vec<String>,
        verdict: Verdict,
        comment: String,
    ) {
        names.sort();
        self.rules.push(PlannedRule {
            section,
            names,
            verdict,
            args: Vec::new(),
            comment,
        });
    }

    fn push_with_args(
        &mut self,
        section: Section,
        names: Vec<String>,
        verdict: Verdict,
        base: &SyscallRule,
        comment: String,
    ) {
        self.push(section, names, verdict, comment);
        if let Some(rule) = self.rules.last_mut() {
            rule.args = base.args.clone();
        }
    }
}

fn architectures(merged: &Merged, extra: &[Arch]) -> Result<Vec<PlannedArch>, ProfileError> {
    let observed = merged.arches();
    let mut all: BTreeSet<Arch> = observed.clone();
    all.extend(extra.iter().copied());
    if all.is_empty() {
        return Err(ProfileError::NothingObserved);
    }
    Ok(all
        .into_iter()
        .map(|arch| PlannedArch {
            arch,
            observed: observed.contains(&arch),
        })
        .collect())
}

fn explicit_allows<'a>(
    allows: impl Iterator<Item = (&'a ExplicitAllow, AllowedBy)>,
    listed: &[Arch],
) -> Result<BTreeMap<String, (String, AllowedBy)>, ProfileError> {
    let mut out = BTreeMap::new();
    for (allow, by) in allows {
        if !listed.iter().any(|a| a.has_syscall(&allow.name)) {
            return Err(ProfileError::UnknownAllow {
                name: allow.name.clone(),
                arches: listed
                    .iter()
                    .map(|a| a.short_name())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        if allow.reason.trim().is_empty() {
            return Err(ProfileError::EmptyReason {
                name: allow.name.clone(),
            });
        }
        if out
            .insert(allow.name.clone(), (allow.reason.trim().to_string(), by))
            .is_some()
        {
            return Err(ProfileError::DuplicateAllow {
                name: allow.name.clone(),
            });
        }
    }
    Ok(out)
}

fn base_rules(options: &ProfileOptions) -> impl Iterator<Item = (usize, &SyscallRule)> {
    options
        .base
        .iter()
        .flat_map(|b| b.profile.syscalls.iter().enumerate())
}

/// How a base rule's action carries over; `None` (with a notice) for notify and trace.
fn verdict_of(rule: &SyscallRule, notices: &mut Vec<Notice>) -> Option<Verdict> {
    let verdict = match rule.action {
        Action::Allow => Verdict::Allow,
        Action::Log => Verdict::Log,
        Action::Errno => Verdict::Deny {
            errno: rule.errno_ret.unwrap_or(errno::EPERM),
        },
        Action::KillThread => Verdict::KillThread,
        Action::KillProcess => Verdict::KillProcess,
        Action::Trap => Verdict::Trap,
        Action::Notify | Action::Trace => {
            let action = serde_json::to_value(rule.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let notice = Notice::BaseRuleDropped {
                names: rule.all_names().map(str::to_owned).collect(),
                action,
            };
            if !notices.contains(&notice) {
                notices.push(notice);
            }
            return None;
        }
    };
    Some(verdict)
}

fn base_comment(options: &ProfileOptions, rule: &SyscallRule, what: &str) -> String {
    let label = options.base.as_ref().map_or("", |b| b.label.as_str());
    match rule.comment.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() => format!("From {label} ({what}): {c}"),
        _ => format!("From {label} ({what}; it had no comment)"),
    }
}

fn observed_comment(merged: &Merged, allowed: usize) -> String {
    let arches: Vec<&str> = merged.arches().iter().map(|a| a.scmp_name()).collect();
    let runs: Vec<String> = merged
        .inputs
        .iter()
        .map(|i| format!("{} ({})", i.label, i.target))
        .collect();
    format!(
        "Observed: {allowed} syscalls seen on {} in {} recording(s): {}. Counts and runs per \
         syscall are in the rationale.",
        arches.join(", "),
        merged.inputs.len(),
        runs.join("; ")
    )
}

fn translated_comment(
    planned: PlannedArch,
    mine: &BTreeMap<String, Added>,
    all: &BTreeMap<String, (Vec<Arch>, Added)>,
) -> String {
    let what = if planned.observed {
        "observed; *_time64 twins of allowed calls"
    } else {
        "not observed, added with --arch; translated from the observed calls"
    };
    let items: Vec<String> = mine
        .keys()
        .map(|name| {
            let from: Vec<&str> = all[name].1.from.iter().map(String::as_str).collect();
            let also: Vec<&str> = all[name].0[1..].iter().map(|a| a.short_name()).collect();
            let mut item = format!("{name} for {}", from.join("/"));
            if !also.is_empty() {
                item.push_str(&format!(" (also {})", also.join(", ")));
            }
            item
        })
        .collect();
    format!(
        "Translated for {} ({what}): {}.",
        planned.arch.scmp_name(),
        items.join(", ")
    )
}
