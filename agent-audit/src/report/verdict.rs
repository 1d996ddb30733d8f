//! The verdict every report opens with: whether the profile can be committed and, when not,
//! why, in one line; counted from the findings by kind, only actionable kinds as findings.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{FindingKind, Findings, Information};

/// Whether the profile can be committed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// The answer.
    pub status: VerdictStatus,
    /// It in one line, with why not.
    pub line: String,
    /// Entries that ask for a change (the report's finding count).
    pub findings: usize,
    /// Entries that ask for nothing.
    pub information: usize,
    /// Every kind present, in report order: how many, and whether it asks for a change.
    pub kinds: Vec<KindCount>,
}

/// How many entries of one kind the report has.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KindCount {
    /// The kind.
    pub kind: FindingKind,
    /// Whether entries of this kind ask a reviewer for a change (they count as findings).
    pub actionable: bool,
    /// How many.
    pub count: usize,
    /// What the reviewer does about one.
    pub what_to_do: &'static str,
}

/// Whether the profile can be committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictStatus {
    /// Verified, and nothing asks for a change.
    Ready,
    /// Nothing asks for a change, but no `verify` result was given.
    Unverified,
    /// At least one finding asks for a change (a failed verification always does).
    ChangesNeeded,
}

/// The verdict of these findings; `verify_passed` is the `verify` result's, when given.
pub(super) fn verdict(
    findings: &Findings,
    information: &Information,
    verify_passed: Option<bool>,
) -> Verdict {
    let kinds: Vec<KindCount> = counts(findings, information)
        .into_iter()
        .map(|(kind, count)| KindCount {
            kind,
            actionable: kind.actionable(),
            count,
            what_to_do: kind.what_to_do(),
        })
        .collect();
    let sum = |actionable: bool| -> usize {
        kinds
            .iter()
            .filter(|k| k.actionable == actionable)
            .map(|k| k.count)
            .sum()
    };
    let (actionable, info) = (sum(true), sum(false));
    let status = match (actionable, verify_passed) {
        (0, Some(true)) => VerdictStatus::Ready,
        (0, None) => VerdictStatus::Unverified,
        _ => VerdictStatus::ChangesNeeded,
    };
    Verdict {
        line: line(status, &kinds, verify_passed, info),
        status,
        findings: actionable,
        information: info,
        kinds,
    }
}

/// Entries per kind (kinds with none left out).
fn counts(f: &Findings, information: &Information) -> BTreeMap<FindingKind, usize> {
    let mut counts: BTreeMap<FindingKind, usize> = BTreeMap::new();
    let mut add = |kind: FindingKind, n: usize| {
        if n > 0 {
            *counts.entry(kind).or_default() += n;
        }
    };
    add(FindingKind::VerifyFailed, f.verify_failed.len());
    add(
        FindingKind::NotConverged,
        usize::from(f.not_converged.is_some()),
    );
    for d in &f.dangerous_observed {
        add(d.kind, 1);
    }
    for d in &f.denied_but_used {
        add(d.source.kind(), 1);
    }
    add(FindingKind::ArchGap, f.arch_gaps.len());
    for r in &f.runtime_init_only {
        add(r.kind, 1);
    }
    add(
        FindingKind::PrivilegeDrop,
        information.privilege_drops.len(),
    );
    add(FindingKind::Note, f.notes.len());
    counts
}

fn line(
    status: VerdictStatus,
    kinds: &[KindCount],
    verify_passed: Option<bool>,
    information: usize,
) -> String {
    let info = match information {
        0 => String::new(),
        n => format!(" ({n} informational item(s) below ask for nothing)"),
    };
    match status {
        VerdictStatus::Ready => format!(
            "Ready to commit: verify PASSED under the profile and no finding asks for a \
             change{info}."
        ),
        VerdictStatus::Unverified => format!(
            "No finding asks for a change, but the profile was not verified: run `agent-audit \
             verify` with it (or `agent-audit audit`) before committing it{info}."
        ),
        VerdictStatus::ChangesNeeded => {
            let mut why: Vec<String> = Vec::new();
            if verify_passed == Some(false) {
                why.push("verify FAILED under the profile".into());
            }
            why.extend(
                kinds
                    .iter()
                    .filter(|k| k.actionable)
                    .map(|k| k.kind.counted(k.count)),
            );
            format!("Not ready to commit: {}.", why.join("; "))
        }
    }
}
