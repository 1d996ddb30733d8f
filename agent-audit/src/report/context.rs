//! What every part of the report is computed from: the inputs, read and merged once, and what
//! the reviewed profile does with each name. `build` makes it; `build` and `findings` read it.

use std::path::Path;

use crate::allowlist::Allowlist;
use crate::check::ACCEPTED_RISK;
use crate::diff::{Effect, Side};
use crate::profile::model::ProfilePlan;
use crate::profile::Merged;
use crate::seccomp::SeccompProfile;
use crate::syscalls::Arch;

/// Everything the parts of the report are computed from.
pub(super) struct Context<'a> {
    /// The recordings, labelled and sorted by label.
    pub lists: &'a [(String, Allowlist)],
    /// Their merge.
    pub merged: &'a Merged,
    /// What `profile` would generate with its defaults (for the reasons); `None` when the
    /// allowlists have no named syscall and a profile was given.
    pub plan: Option<&'a ProfilePlan>,
    /// The profile under review.
    pub profile: &'a SeccompProfile,
    /// Its file, or `None` when generated.
    pub profile_file: Option<&'a Path>,
    /// Name → effect, from `diff`.
    pub side: &'a Side,
    /// Arches the profile lists that agent-audit has tables for.
    pub arches: Vec<Arch>,
}

impl Context<'_> {
    /// The effect the profile gives `name`.
    pub fn effect(&self, name: &str) -> Effect {
        self.side
            .effects
            .get(name)
            .copied()
            .unwrap_or(self.side.default)
    }

    /// Whether the profile lets `name` run (at least under some argument values).
    pub fn allows(&self, name: &str) -> bool {
        !self.effect(name).action.denies()
    }

    /// The comment of the first rule that gives `name` its effect.
    pub fn rule_comment(&self, name: &str) -> Option<&str> {
        let allows = self.allows(name);
        self.profile
            .syscalls
            .iter()
            .filter(|r| r.action.denies() != allows)
            .find(|r| r.all_names().any(|n| n == name))
            .and_then(|r| r.comment.as_deref())
    }

    /// What the profile does with `name`, in words.
    pub fn describe_effect(&self, name: &str) -> String {
        let effect = self.effect(name);
        let action = serde_json::to_value(effect.action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let errno = effect
            .errno
            .map(|e| format!(" (errno {e})"))
            .unwrap_or_default();
        let conditional = if effect.conditional {
            " when its arguments match"
        } else {
            ""
        };
        match (effect.by_default, effect.action.denies()) {
            (true, true) => format!("denied by the default action {action}{errno}"),
            (true, false) => format!("ALLOWED by the default action {action}"),
            (false, true) => format!("denied explicitly: {action}{errno}{conditional}"),
            (false, false) => match self.rule_comment(name) {
                Some(c) if c.trim_start().starts_with(ACCEPTED_RISK) => {
                    format!("ALLOWED{conditional} as an accepted risk: {c}")
                }
                _ => format!("ALLOWED{conditional} by {action}"),
            },
        }
    }
}
