//! `check`: lint any seccomp profile, ours or hand-written.
//!
//! Findings are errors (the profile is unsafe or does not do what it says: exit 1), warnings
//! (probably a mistake) or notes (worth knowing). [`lints`] holds the rules, this module the
//! report and its text and JSON forms.

mod arguments;
mod conditions;
mod lints;
mod walks;

pub use walks::ARGUMENT_WALK_BOUND;

pub use lints::ACCEPTED_RISK;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::seccomp::container::ContainerContext;
use crate::seccomp::{ProfileFileError, SeccompProfile};
use crate::syscalls::Arch;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Unsafe or broken: `check` exits 1.
    Error,
    /// Probably a mistake.
    Warning,
    /// Worth knowing.
    Note,
}

/// What a finding is about: a stable identifier for machines, written in kebab-case
/// (`dangerous-allowed`, …) in the JSON report and the text output. The table of docs/check.md
/// says what each means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LintCode {
    /// `allowed-and-denied`.
    AllowedAndDenied,
    /// `arch-not-analysed`.
    ArchNotAnalysed,
    /// `argument-walk`.
    ArgumentWalk,
    /// `argument-walk-long`.
    ArgumentWalkLong,
    /// `clone-namespaces-allowed`.
    CloneNamespacesAllowed,
    /// `clone3-allowed`.
    Clone3Allowed,
    /// `clone3-not-enosys`.
    Clone3NotEnosys,
    /// `compiles`.
    Compiles,
    /// `conditional-and-unconditional`.
    ConditionalAndUnconditional,
    /// `conditional-rules-overlap`.
    ConditionalRulesOverlap,
    /// `dangerous-accepted`.
    DangerousAccepted,
    /// `dangerous-allowed`.
    DangerousAllowed,
    /// `dangerous-not-denied`.
    DangerousNotDenied,
    /// `dangerous-with-capability`.
    DangerousWithCapability,
    /// `default-allows`.
    DefaultAllows,
    /// `does-not-compile`.
    DoesNotCompile,
    /// `filter-too-large`.
    FilterTooLarge,
    /// `index-compared-twice`.
    IndexComparedTwice,
    /// `ioctl-request-unmasked`.
    IoctlRequestUnmasked,
    /// `name-in-two-rules`.
    NameInTwoRules,
    /// `not-on-listed-arches`.
    NotOnListedArches,
    /// `rule-refused`.
    RuleRefused,
    /// `rule-without-comment`.
    RuleWithoutComment,
    /// `same-as-default`.
    SameAsDefault,
    /// `socket-family-unrestricted`.
    SocketFamilyUnrestricted,
    /// `socket-family-upper-bits`.
    SocketFamilyUpperBits,
    /// `time64-twin-missing`.
    Time64TwinMissing,
    /// `unknown-field`.
    UnknownField,
    /// `unknown-on-arch`.
    UnknownOnArch,
    /// `unknown-syscall`.
    UnknownSyscall,
    /// `unknown-to-libseccomp`.
    UnknownToLibseccomp,
}

impl LintCode {
    /// The identifier as written in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            LintCode::AllowedAndDenied => "allowed-and-denied",
            LintCode::ArchNotAnalysed => "arch-not-analysed",
            LintCode::ArgumentWalk => "argument-walk",
            LintCode::ArgumentWalkLong => "argument-walk-long",
            LintCode::CloneNamespacesAllowed => "clone-namespaces-allowed",
            LintCode::Clone3Allowed => "clone3-allowed",
            LintCode::Clone3NotEnosys => "clone3-not-enosys",
            LintCode::Compiles => "compiles",
            LintCode::ConditionalAndUnconditional => "conditional-and-unconditional",
            LintCode::ConditionalRulesOverlap => "conditional-rules-overlap",
            LintCode::DangerousAccepted => "dangerous-accepted",
            LintCode::DangerousAllowed => "dangerous-allowed",
            LintCode::DangerousNotDenied => "dangerous-not-denied",
            LintCode::DangerousWithCapability => "dangerous-with-capability",
            LintCode::DefaultAllows => "default-allows",
            LintCode::DoesNotCompile => "does-not-compile",
            LintCode::FilterTooLarge => "filter-too-large",
            LintCode::IndexComparedTwice => "index-compared-twice",
            LintCode::IoctlRequestUnmasked => "ioctl-request-unmasked",
            LintCode::NameInTwoRules => "name-in-two-rules",
            LintCode::NotOnListedArches => "not-on-listed-arches",
            LintCode::RuleRefused => "rule-refused",
            LintCode::RuleWithoutComment => "rule-without-comment",
            LintCode::SameAsDefault => "same-as-default",
            LintCode::SocketFamilyUnrestricted => "socket-family-unrestricted",
            LintCode::SocketFamilyUpperBits => "socket-family-upper-bits",
            LintCode::Time64TwinMissing => "time64-twin-missing",
            LintCode::UnknownField => "unknown-field",
            LintCode::UnknownOnArch => "unknown-on-arch",
            LintCode::UnknownSyscall => "unknown-syscall",
            LintCode::UnknownToLibseccomp => "unknown-to-libseccomp",
        }
    }
}

impl std::fmt::Display for LintCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A finding not tied to one architecture.
fn finding(severity: Severity, code: LintCode, message: String, names: Vec<String>) -> Finding {
    Finding {
        severity,
        code,
        message,
        arch: None,
        names,
    }
}

/// Names sorted and without repeats, as findings list them.
fn sorted<'s>(names: impl IntoIterator<Item = &'s str>) -> Vec<String> {
    names
        .into_iter()
        .map(str::to_owned)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// Stable identifier for machines (`dangerous-allowed`, …).
    pub code: LintCode,
    /// What is wrong and what to do, for people.
    pub message: String,
    /// The architecture concerned, when the finding is per arch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Syscall names concerned, sorted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

/// Everything `check` found in one profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The profile checked.
    pub profile: String,
    /// The container its conditional rules were evaluated for (capabilities, kernel, arch).
    pub evaluated_for: String,
    /// Architectures analysed.
    pub architectures: Vec<String>,
    /// Number of errors.
    pub errors: usize,
    /// Number of warnings.
    pub warnings: usize,
    /// Findings, errors first, then warnings, then notes.
    pub findings: Vec<Finding>,
}

/// A profile that cannot be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Unreadable, not JSON, or an unknown action.
    #[error(transparent)]
    Profile(#[from] ProfileFileError),
    /// An architecture name libseccomp does not know.
    #[error(
        "{path}: unknown architecture {name:?} (expected SCMP_ARCH_X86_64, SCMP_ARCH_AARCH64, …)"
    )]
    UnknownArch {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
    },
}

impl CheckError {
    /// The documented exit code: the profile's, 65 for an unknown architecture.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        match self {
            CheckError::Profile(e) => e.exit_code(),
            CheckError::UnknownArch { .. } => crate::exit::ExitCode::DATA,
        }
    }
}

/// Reads and checks a profile file for a container in `context`.
pub fn check_file(path: &Path, context: &ContainerContext) -> Result<CheckReport, CheckError> {
    let profile = SeccompProfile::read(path)?;
    check_for(&profile, path, context)
}

/// Checks a parsed profile for a container with Docker's default capabilities on this host;
/// `path` names it in the report.
pub fn check(profile: &SeccompProfile, path: &Path) -> Result<CheckReport, CheckError> {
    check_for(profile, path, &ContainerContext::default())
}

/// Checks the profile as Docker would hand it to runc for a container in `context` (rules
/// for capabilities it lacks left out), and notes which dangerous syscalls those rules open.
pub fn check_for(
    profile: &SeccompProfile,
    path: &Path,
    context: &ContainerContext,
) -> Result<CheckReport, CheckError> {
    let arches = lints::architectures(profile, path)?;
    let mut findings = lints::run(&context.effective(profile), &arches);
    findings.extend(conditions::dangerous_by_condition(profile, context));
    findings.sort_by(|a, b| {
        (a.severity, a.code, &a.arch, &a.names).cmp(&(b.severity, b.code, &b.arch, &b.names))
    });
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    Ok(CheckReport {
        profile: path.display().to_string(),
        evaluated_for: describe_context(context),
        architectures: arches
            .supported
            .iter()
            .map(|a| a.scmp_name().to_string())
            .collect(),
        errors: count(Severity::Error),
        warnings: count(Severity::Warning),
        findings,
    })
}

impl CheckReport {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }

    /// Findings with a given code.
    pub fn with_code(&self, code: LintCode) -> impl Iterator<Item = &Finding> + '_ {
        self.findings.iter().filter(move |f| f.code == code)
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("report serializes");
        s.push('\n');
        s
    }

    /// Human text: errors, then warnings, then notes, then a summary line. Long lists are
    /// cut to [`TEXT_LIST_LIMIT`] names per finding and findings per code, saying how many
    /// more there are; the JSON form keeps everything.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}: evaluated for {}\n", self.profile, self.evaluated_for);
        for (severity, title) in [
            (Severity::Error, "errors"),
            (Severity::Warning, "warnings"),
            (Severity::Note, "notes"),
        ] {
            let items: Vec<&Finding> = self
                .findings
                .iter()
                .filter(|f| f.severity == severity)
                .collect();
            if items.is_empty() {
                continue;
            }
            out.push_str(&format!("{title}:\n"));
            for same_code in items.chunk_by(|a, b| a.code == b.code) {
                for f in same_code.iter().take(TEXT_LIST_LIMIT) {
                    out.push_str(&finding_text(f));
                }
                if same_code.len() > TEXT_LIST_LIMIT {
                    out.push_str(&format!(
                        "  {}: and {} more (--format json lists them all)\n",
                        same_code[0].code,
                        same_code.len() - TEXT_LIST_LIMIT
                    ));
                }
            }
        }
        out.push_str(&format!(
            "{}: {} error(s), {} warning(s) ({})\n",
            self.profile,
            self.errors,
            self.warnings,
            self.architectures.join(", ")
        ));
        out
    }
}

/// Names listed per finding, and findings listed per code, in the text form.
pub const TEXT_LIST_LIMIT: usize = 10;

/// One finding for people: its code, arch and message, then its names (at most
/// [`TEXT_LIST_LIMIT`], then how many more).
fn finding_text(f: &Finding) -> String {
    let arch = f
        .arch
        .as_deref()
        .map(|a| format!(" [{a}]"))
        .unwrap_or_default();
    let mut text = format!("  {}{arch}: {}\n", f.code, f.message);
    if !f.names.is_empty() {
        let mut names = f.names[..f.names.len().min(TEXT_LIST_LIMIT)].join(", ");
        if f.names.len() > TEXT_LIST_LIMIT {
            names.push_str(&format!(", and {} more", f.names.len() - TEXT_LIST_LIMIT));
        }
        text.push_str(&format!("      {names}\n"));
    }
    text
}

/// The arches a report covers (used by lints).
pub(crate) struct ListedArches {
    /// Arches agent-audit knows, in profile order.
    pub supported: Vec<Arch>,
}

#[cfg(test)]
mod tests;

/// `Docker's default capabilities (14), kernel 6.18, amd64`.
fn describe_context(context: &ContainerContext) -> String {
    let kernel = context
        .kernel
        .map_or_else(|| "any kernel".to_string(), |k| format!("kernel {k}"));
    format!("{}, {kernel}, {}", context.caps, context.go_arch)
}
