//! `report`: an audit report for reviewers (Markdown, HTML) and for CI (JSON).
//!
//! The [`Report`] model is computed once from the inputs (allowlists, the profile, an older
//! profile, a `verify` result); the renderers ([`markdown`], [`html`], [`json`]) only read it.
//! It reuses `profile`'s merge and rule planning (for why each syscall is allowed), `diff` (what
//! changed against the older profile) and `check` (what a listed 32-bit arch lacks).
//! Everything in it comes from the inputs, so the same inputs give the same bytes.

mod build;
mod context;
mod findings;
pub mod html;
mod information;
pub mod json;
mod kinds;
pub mod markdown;
mod use_it;
mod verdict;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::check::CheckError;
use crate::convergence::{Convergence, RunAdded};
use crate::fsutil::InputError;
use crate::profile::merge::ProgramList;
use crate::profile::ProfileError;
use crate::seccomp::ProfileFileError;
use crate::syscalls::Arch;

pub use build::build;
pub use information::{Information, MergedPrivilegeDrop};
pub use kinds::FindingKind;
pub use use_it::UseIt;
pub use verdict::{KindCount, Verdict, VerdictStatus};

/// Schema tag of the JSON form.
pub const SCHEMA_V1: &str = "agent-audit/report/v1";

/// What a report is made from.
#[derive(Clone, Debug, Default)]
pub struct ReportInputs {
    /// Allowlist files (at least one).
    pub allowlists: Vec<PathBuf>,
    /// The profile under review; without it, the one `profile` would generate by default.
    pub profile: Option<PathBuf>,
    /// An older profile to compare the profile with.
    pub base: Option<PathBuf>,
    /// A `verify` result file.
    pub verify: Option<PathBuf>,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Always [`SCHEMA_V1`].
    pub schema: &'static str,
    /// `agent-audit <version>`.
    pub generator: String,
    /// Whether the profile can be committed, and why not, in one line; the count of
    /// findings (entries a reviewer must act on) and of information per kind.
    pub verdict: Verdict,
    /// Targets, runs, totals, the profile's size and what changed.
    pub summary: Summary,
    /// Every entry a reviewer may look at; each list's kind (or each entry's `kind`) says
    /// whether it asks for a change ([`FindingKind::actionable`]).
    pub findings: Findings,
    /// Entries that ask for nothing, in the form the reports show them (privilege drops
    /// merged over the runs that made the same drop).
    pub information: Information,
    /// Ready-to-paste lines that put the profile to use: Docker, compose, Kubernetes, and the
    /// CI check that keeps it current.
    pub use_it: UseIt,
    /// Allowed syscalls and their calls per category (categories with at least one).
    pub categories: Vec<CategoryRow>,
    /// Every syscall the profile allows, sorted by name.
    pub syscalls: Vec<SyscallRow>,
    /// Calls a seccomp filter refused while the recordings ran (the profile in force then),
    /// most refused first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedRow>,
}

/// Calls of one syscall a seccomp filter refused, over every recording.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RefusedRow {
    /// Syscall name.
    pub name: String,
    /// Arch (libseccomp name).
    pub arch: Arch,
    /// Refused calls.
    pub count: u64,
    /// What seccomp did (`errno`, `trap`, `kill`), each that happened.
    pub actions: Vec<crate::allowlist::RefusalAction>,
    /// Whether the workload had installed filters of its own (the refusal may be its own).
    pub own_filters: bool,
    /// Whether the profile under review allows it now.
    pub allowed_now: bool,
    /// Who was refused.
    pub programs: ProgramList,
}

/// Summary of the inputs and the profile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// The recordings merged, sorted by file.
    pub runs: Vec<RunSummary>,
    /// Sum of the runs' durations.
    pub duration_seconds: f64,
    /// Totals over every run.
    pub totals: TotalsSummary,
    /// Per architecture seen.
    pub per_arch: Vec<ArchSummary>,
    /// The profile under review.
    pub profile: ProfileSummary,
    /// What changed against `--base`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseChanges>,
    /// Whether calls were made both as root and as another user (then programs that ran as
    /// root are marked).
    pub mixed_privileges: bool,
    /// The `verify` result's verdict, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_passed: Option<bool>,
    /// How `verify` ran a container (`audit --container`): which copy, and that its probes
    /// ran on the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_note: Option<String>,
    /// What each recording, in recording order (by start time), saw that no earlier one had.
    pub convergence: Convergence,
}

/// One recording.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunSummary {
    /// The file as given.
    pub file: String,
    /// `kind: spec` of the target (`command: npm test`, `container: my-agent`).
    pub target: String,
    /// Start of the recording (RFC 3339, from the file).
    pub started_at: String,
    /// End of the recording (RFC 3339, from the file).
    pub ended_at: String,
    /// `ended_at - started_at`.
    pub duration_seconds: f64,
    /// Calls counted.
    pub calls: u64,
    /// Distinct (arch, nr) pairs.
    pub distinct: u64,
    /// `false` for a snapshot of an unfinished recording.
    pub complete: bool,
    /// `kernel (machine)` of the recording host.
    pub host: String,
}

/// Totals over every run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TotalsSummary {
    /// Every call counted.
    pub calls: u64,
    /// Distinct syscall names over every arch.
    pub distinct_names: usize,
    /// Calls whose number has no name on its arch.
    pub unnamed_calls: u64,
    /// Calls whose number was out of range.
    pub out_of_range: u64,
}

/// One architecture seen.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArchSummary {
    /// libseccomp name.
    pub arch: Arch,
    /// Distinct names seen on it.
    pub distinct: usize,
    /// Calls through it.
    pub calls: u64,
}

/// The profile under review.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProfileSummary {
    /// Its file, or `null` when it was generated from the allowlists.
    pub file: Option<String>,
    /// Architectures it lists (libseccomp names).
    pub architectures: Vec<String>,
    /// Its default action (`SCMP_ACT_ERRNO`, …).
    pub default_action: String,
    /// Names it allows (unconditionally or under argument conditions).
    pub allowed: usize,
    /// Names it denies with an explicit rule.
    pub denied_explicitly: usize,
    /// Rules.
    pub rules: usize,
}

/// What changed against `--base`, from `diff`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BaseChanges {
    /// The older profile.
    pub base: String,
    /// Allowed now, not before.
    pub added: Vec<String>,
    /// Allowed before, not now.
    pub removed: Vec<String>,
    /// Same allowed-ness, another action, errno or condition.
    pub changed: Vec<String>,
}

/// Every entry of the report, each of a kind ([`FindingKind`]) that decides whether it asks for
/// a change (a finding) or is information.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Findings {
    /// What failed when `verify` ran the workload under the profile, besides its denials
    /// (those are in `denied_but_used`, source `verify`): probes that did not get their errno,
    /// the command failing. Shown first.
    pub verify_failed: Vec<VerifyFailure>,
    /// The last recording still saw something no earlier one had: more runs are needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_converged: Option<RunAdded>,
    /// Dangerous syscalls the workload made, and what the profile does about them.
    pub dangerous_observed: Vec<DangerousObserved>,
    /// Calls the workload made that the profile denies.
    pub denied_but_used: Vec<DeniedUse>,
    /// Names a listed architecture needs for the observed calls that the profile lacks.
    pub arch_gaps: Vec<ArchGap>,
    /// Syscalls only the container runtime's init made (before the workload's first exec).
    pub runtime_init_only: Vec<RuntimeInitOnly>,
    /// Recordings that saw calls both as root and as another user.
    pub privilege_drops: Vec<PrivilegeDropFinding>,
    /// Caveats about the inputs (snapshots, unnamed calls, an absent profile).
    pub notes: Vec<String>,
}

impl Findings {
    /// The calls only the runtime's init made that the profile allows for no reason: the
    /// only runtime-init entries that count as findings.
    pub fn runtime_init_needs_review(&self) -> impl Iterator<Item = &RuntimeInitOnly> {
        self.runtime_init_only.iter().filter(|r| r.actionable)
    }

    /// The calls `verify` saw the profile deny (the `denied_but_used` entries of source
    /// `verify`), which the renderers show with the verify failures, first.
    pub fn verify_denials(&self) -> Vec<&DeniedUse> {
        self.denied_but_used
            .iter()
            .filter(|d| d.source == DeniedSource::Verify)
            .collect()
    }
}

/// Something that failed when `verify` ran the workload under the profile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VerifyFailure {
    /// What failed.
    pub kind: VerifyFailureKind,
    /// In words.
    pub what: String,
}

/// Kinds of [`VerifyFailure`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyFailureKind {
    /// The workload did not start under the profile.
    Start,
    /// The command, or what it left running, was still running at `--timeout`.
    TimedOut,
    /// Processes the command started were still running after it exited (and its grace
    /// period): `verify` killed them.
    LeftRunning,
    /// A dangerous-syscall probe did not get the errno the profile should give.
    Probe,
    /// The command exited non-zero under the profile.
    ExitStatus,
    /// A capability check granted in the recordings, and never refused there, was refused
    /// under `verify`: the capability set it ran with lacks what it needed.
    CapabilityRefused,
    /// `verify` said FAILED for a reason the result file does not detail.
    Failed,
}

/// A dangerous syscall the workload made.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DangerousObserved {
    /// Syscall name.
    pub name: String,
    /// Its dangerous category's title.
    pub category: String,
    /// Why it is dangerous.
    pub reason: String,
    /// Calls observed.
    pub count: u64,
    /// Who made them.
    pub programs: ProgramList,
    /// Whether the profile lets it run.
    pub allowed: bool,
    /// What the profile does with it, in words.
    pub profile_action: String,
    /// Allowed without an accepted risk ([`FindingKind::DangerousAllowed`]), as an accepted
    /// risk, or denied.
    pub kind: FindingKind,
    /// Whether a reviewer must act on it (only when allowed without an accepted risk).
    pub actionable: bool,
}

impl DangerousObserved {
    /// Its kind, from what the profile does with it.
    pub(crate) fn kind_of(allowed: bool, accepted_risk: bool) -> FindingKind {
        match (allowed, accepted_risk) {
            (false, _) => FindingKind::DangerousDenied,
            (true, true) => FindingKind::DangerousAcceptedRisk,
            (true, false) => FindingKind::DangerousAllowed,
        }
    }
}

/// A call the profile denies although the workload made it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeniedUse {
    /// Where this is known from.
    pub source: DeniedSource,
    /// Architecture of the call.
    pub arch: Arch,
    /// Name, when its number has one.
    pub name: Option<String>,
    /// Number, when known (always from `verify`; for unnamed calls from recordings).
    pub nr: Option<u32>,
    /// Calls.
    pub count: u64,
    /// Why it is denied, in words.
    pub why: String,
}

/// How a [`DeniedUse`] is known: it decides where the renderers show it (verify's denials
/// first, with the verify failures).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeniedSource {
    /// The allowlists hold the call and the profile denies it.
    Recording,
    /// The loaded filter denied it while `verify` ran the workload.
    Verify,
}

impl DeniedSource {
    /// The kind of a denial known this way (both ask for a change).
    pub fn kind(self) -> FindingKind {
        match self {
            DeniedSource::Recording => FindingKind::DeniedButUsed,
            DeniedSource::Verify => FindingKind::VerifyDenied,
        }
    }

    /// The word the reports print, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            DeniedSource::Recording => "recording",
            DeniedSource::Verify => "verify",
        }
    }
}

impl std::fmt::Display for DeniedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name a listed architecture needs that the profile does not allow.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArchGap {
    /// The architecture listed.
    pub arch: Arch,
    /// The missing name.
    pub name: String,
    /// Why it is needed (what it stands for).
    pub why: String,
}

/// A syscall only the runtime's init made.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuntimeInitOnly {
    /// Syscall name.
    pub name: String,
    /// Calls.
    pub count: u64,
    /// Whether the profile allows it (for whatever reason).
    pub allowed: bool,
    /// What the profile does with it, and whether that needs a reviewer.
    pub profile: RuntimeInitVerdict,
    /// [`FindingKind::RuntimeInitUnneeded`] (allowed for no reason) or
    /// [`FindingKind::RuntimeInitHandled`].
    pub kind: FindingKind,
    /// Whether a reviewer must act on it (only when allowed for no reason).
    pub actionable: bool,
}

/// What the profile does with a call only the runtime's init made. The runtime makes most of
/// its init's calls before it installs the filter, so denying them is right; those it makes
/// after (dropping privileges) are the runtime baseline. A documented allowance (another
/// baseline group, a timing-dependent allowance whose trigger was recorded, an accepted risk)
/// is a reason too. Only a call allowed for none of these needs a reviewer: the profile is
/// looser than the workload needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeInitVerdict {
    /// Denied: the runtime made it before its filter was in place.
    Denied,
    /// Allowed because the runtime baseline needs it after the filter is in place.
    RuntimeBaseline,
    /// Allowed by another group of the baseline (vDSO fallbacks, kernel-made calls).
    Baseline,
    /// Allowed as a timing-dependent call whose trigger the workload made
    /// (`data/timing-dependent.json`, as `audit` allows it).
    TimingAllowance,
    /// Allowed by a rule whose comment records an accepted risk.
    AcceptedRisk,
    /// Allowed for no reason the recordings, the baseline or an allowance give: a finding.
    Allowed,
}

impl RuntimeInitVerdict {
    /// How the reports show it.
    pub fn label(self) -> &'static str {
        match self {
            RuntimeInitVerdict::Denied => "denied",
            RuntimeInitVerdict::RuntimeBaseline => "allowed (runtime baseline)",
            RuntimeInitVerdict::Baseline => "allowed (baseline)",
            RuntimeInitVerdict::TimingAllowance => "allowed (timing-dependent allowance)",
            RuntimeInitVerdict::AcceptedRisk => "allowed (accepted risk)",
            RuntimeInitVerdict::Allowed => "ALLOWED, not needed",
        }
    }

    /// Whether a reviewer must act: only for a call allowed for no reason.
    pub fn kind(self) -> FindingKind {
        match self {
            RuntimeInitVerdict::Allowed => FindingKind::RuntimeInitUnneeded,
            RuntimeInitVerdict::Denied
            | RuntimeInitVerdict::RuntimeBaseline
            | RuntimeInitVerdict::Baseline
            | RuntimeInitVerdict::TimingAllowance
            | RuntimeInitVerdict::AcceptedRisk => FindingKind::RuntimeInitHandled,
        }
    }
}

/// What ran as root before a recording's privilege drop.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrivilegeDropFinding {
    /// The recording.
    pub file: String,
    /// The first call made as a non-root user (RFC 3339).
    pub first_unprivileged_call: String,
    /// Syscalls (arch-qualified) only made as root.
    pub root_only: Vec<String>,
    /// How many syscalls were made as a non-root user.
    pub unprivileged: usize,
    /// Executables run as root.
    pub root_executables: Vec<String>,
    /// Executables run as another user (`path (uid N)`).
    pub unprivileged_executables: Vec<String>,
}

/// One category's share.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CategoryRow {
    /// Stable id (`file`, `network`, …).
    pub id: String,
    /// Title.
    pub title: String,
    /// Allowed syscalls in it.
    pub syscalls: usize,
    /// Observed calls of those syscalls.
    pub calls: u64,
}

/// One allowed syscall.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SyscallRow {
    /// Name.
    pub name: String,
    /// Category id.
    pub category: String,
    /// Calls observed over every arch and run (0 for baseline and translated names).
    pub count: u64,
    /// `count` over all calls of all runs, 0..=1.
    pub share: f64,
    /// Calls per architecture (libseccomp names).
    pub per_arch: BTreeMap<String, u64>,
    /// Who made it.
    pub programs: ProgramList,
    /// What it does.
    pub description: String,
    /// Why the profile allows it.
    pub reason: AllowReason,
    /// Whether it is in the dangerous set.
    pub dangerous: bool,
    /// Whether the profile allows it only under argument conditions.
    pub conditional: bool,
    /// For a syscall the planned profile narrows by argument: the values the recordings saw
    /// and what its rules allow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<ArgumentSummary>,
}

/// What the recordings saw of a narrowed syscall's argument, and what the rules allow.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArgumentSummary {
    /// The values observed, in words (`AF_UNIX (1) ×2`, `flags 0x1200000`, `not recorded`).
    pub observed: String,
    /// What the rules allow, in words.
    pub allowed: String,
}

/// Why a syscall is allowed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AllowReason {
    /// `observed`, `translated`, `baseline`, `accepted-risk`, `explicit-allow`, `base-allow`
    /// or `profile-rule` (allowed by a rule of a profile agent-audit did not plan).
    pub kind: &'static str,
    /// The reason in words.
    pub text: String,
}

/// The result file of `verify` (`denied`, and when present `exit_status`, `probes` and
/// `passed`; other fields are ignored).
#[derive(Clone, Debug, Deserialize)]
pub struct VerifyResult {
    /// Calls the filter denied.
    pub denied: Vec<VerifyDenial>,
    /// The command's exit status under the profile.
    #[serde(default)]
    pub exit_status: Option<i32>,
    /// Dangerous-syscall probes (`--probe-dangerous`).
    #[serde(default)]
    pub probes: Vec<VerifyProbe>,
    /// The verdict.
    #[serde(default)]
    pub passed: Option<bool>,
    /// The `--timeout`, in seconds (absent from older files).
    #[serde(default)]
    pub timeout_seconds: Option<f64>,
    /// The run was ended by the timeout.
    #[serde(default)]
    pub timed_out: bool,
    /// Processes the command left running that `verify` killed.
    #[serde(default)]
    pub survivors: Vec<VerifySurvivor>,
    /// Why the workload did not start under the profile, when it did not.
    #[serde(default)]
    pub start_failure: Option<VerifyStartFailure>,
    /// Processes that left the command's cgroup while it ran.
    #[serde(default)]
    pub left_cgroup: Vec<VerifyLeftCgroup>,
    /// The container run, for a container's verify.
    #[serde(default)]
    pub container: Option<crate::verify::ContainerRun>,
    /// The capabilities checked under `verify` (absent from older files).
    #[serde(default)]
    pub capabilities: Vec<VerifyCapability>,
}

/// A capability checked under `verify`, in a `verify` result.
#[derive(Clone, Debug, Deserialize)]
pub struct VerifyCapability {
    /// Name without `CAP_`.
    pub capability: String,
    /// The checks under `verify`.
    pub checks: crate::capabilities::Outcomes,
    /// Refused checks judged by the recordings.
    #[serde(default)]
    pub finding: Option<crate::verify::CapabilityFindingKind>,
}

/// A workload that did not start under the profile, in a `verify` result.
#[derive(Clone, Debug, Deserialize)]
pub struct VerifyStartFailure {
    /// The error in words.
    pub error: String,
}

/// A process `verify` killed because the command left it running.
#[derive(Clone, Debug, Deserialize)]
pub struct VerifySurvivor {
    /// Its pid.
    pub pid: u32,
    /// Its command line.
    pub command: String,
}

/// A process that left the command's cgroup, in a `verify` result.
#[derive(Clone, Debug, Deserialize)]
pub struct VerifyLeftCgroup {
    /// Its pid.
    pub pid: u32,
    /// Its program name when it left.
    pub program: String,
}

/// One probe in a `verify` result.
#[derive(Clone, Debug, Deserialize)]
pub struct VerifyProbe {
    /// The syscall tried.
    pub syscall: String,
    /// The errno the profile should give.
    pub expected_errno: i32,
    /// The errno it gave (0: the call succeeded).
    pub errno: i32,
    /// `errno == expected_errno`.
    pub ok: bool,
    /// The probe could not run: not the profile's answer.
    #[serde(default)]
    pub error: Option<String>,
}

impl VerifyProbe {
    /// It ran and did not get what it must (a probe that could not run is no answer of the
    /// profile's).
    pub fn failed(&self) -> bool {
        !self.ok && self.error.is_none()
    }
}

/// One denied call in a `verify` result.
#[derive(Clone, Debug, Deserialize)]
pub struct VerifyDenial {
    /// Architecture.
    pub arch: Arch,
    /// Name, when its number has one.
    pub name: Option<String>,
    /// Number.
    pub nr: u32,
    /// Calls denied.
    pub count: u64,
    /// Refused with ENOSYS by design (`clone3`), so that the libc falls back to an older call
    /// the profile allows: not a finding.
    #[serde(default)]
    pub fallback: bool,
    /// Refused under the configuration the workload was recorded in as well (a container's
    /// own seccomp profile): not a finding.
    #[serde(default)]
    pub refused_before: bool,
}

impl VerifyDenial {
    /// A refusal that is not a failure: an ENOSYS fallback, or one the workload was recorded
    /// under.
    pub fn expected(&self) -> bool {
        self.fallback || self.refused_before
    }
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The allowlists (unreadable, invalid, duplicate, nothing observed).
    #[error(transparent)]
    Allowlists(#[from] ProfileError),
    /// `--profile` or `--base`.
    #[error("{what}: {source}")]
    Profile {
        /// Which option.
        what: &'static str,
        /// What is wrong with it.
        source: ProfileFileError,
    },
    /// The profile has an architecture libseccomp does not know.
    #[error(transparent)]
    Check(#[from] CheckError),
    /// The `--verify` file cannot be read.
    #[error("verify result: {0}")]
    VerifyRead(#[from] InputError),
    /// The `--verify` file is not a verify result.
    #[error("{path} is not a verify result (expected {{\"denied\": [{{\"arch\", \"name\", \"nr\", \"count\"}}]}}): {source}")]
    VerifyParse {
        /// The file.
        path: PathBuf,
        /// Where and what.
        source: serde_json::Error,
    },
}

impl ReportError {
    /// The documented exit code: the input's (66 missing, 74 unreadable, 65 malformed), 2 for
    /// a duplicate allowlist.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        use crate::exit::ExitCode;
        match self {
            ReportError::Allowlists(e) => e.exit_code(),
            ReportError::Profile { source, .. } => source.exit_code(),
            ReportError::Check(e) => e.exit_code(),
            ReportError::VerifyRead(e) => e.exit_code(),
            ReportError::VerifyParse { .. } => ExitCode::DATA,
        }
    }
}

impl VerifyResult {
    /// Reads a `verify` result file.
    pub fn read(path: &Path) -> Result<Self, ReportError> {
        let text = crate::fsutil::read_input(path)?;
        Self::parse(&text, path)
    }

    /// Parses a `verify` result; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ReportError> {
        serde_json::from_str(text).map_err(|source| ReportError::VerifyParse {
            path: path.to_path_buf(),
            source,
        })
    }
}

impl Report {
    /// The targets of the runs, each once, in run order (the title names them).
    pub fn targets(&self) -> Vec<&str> {
        let mut targets: Vec<&str> = Vec::new();
        for run in &self.summary.runs {
            if !targets.contains(&run.target.as_str()) {
                targets.push(&run.target);
            }
        }
        targets
    }

    /// Allowed syscalls with the most calls first (ties by name), at most `n`.
    pub fn top_syscalls(&self, n: usize) -> Vec<&SyscallRow> {
        let mut rows: Vec<&SyscallRow> = self.syscalls.iter().filter(|r| r.count > 0).collect();
        rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        rows.truncate(n);
        rows
    }

    /// How many findings ask a reviewer for a change ([`FindingKind::actionable`]); the
    /// count `audit` exits 1 on.
    pub fn finding_count(&self) -> usize {
        self.verdict.findings
    }
}

#[cfg(test)]
mod tests;
