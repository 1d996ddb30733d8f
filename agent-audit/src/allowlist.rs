//! The allowlist file: what one recording saw, as versioned JSON.
//!
//! `agent-audit/allowlist/v1` is the format written by `record` and `run` and read by every later
//! step. It is documented in docs/allowlist-format.md; fields are only ever added, never renamed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::capabilities::CapabilityChecks;
use crate::exit::ExitCode;
use crate::fsutil::{self, InputError, OutputError};
use crate::syscalls::Arch;

/// Schema tag of the current format.
pub const SCHEMA_V1: &str = "agent-audit/allowlist/v1";

/// One recording of one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowlist {
    /// Always [`SCHEMA_V1`].
    pub schema: String,
    /// What was watched and how it was resolved.
    pub target: TargetInfo,
    /// When counting started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When these counts were read.
    #[serde(with = "time::serde::rfc3339")]
    pub ended_at: OffsetDateTime,
    /// `false` for the periodic snapshots written while recording, `true` for the final file.
    pub complete: bool,
    /// The machine the recording ran on.
    pub host: HostInfo,
    /// How the recording was made.
    pub recorder: RecorderInfo,
    /// Sums over `syscalls` plus calls whose number was out of range.
    pub totals: Totals,
    /// Every (arch, syscall) seen, sorted by name, then arch, then number.
    pub syscalls: Vec<SyscallCount>,
    /// Operations of multiplexer syscalls (i386 `socketcall`, `ipc`), when any were made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub multiplexed: Vec<MultiplexedCount>,
    /// Calls made by the container runtime's own init before the workload's first exec
    /// (phase `runtime-init`), kept apart from `syscalls`; only for targets recorded from their
    /// cgroup's creation (`record --wait`). Same shape and order as `syscalls`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtime_init: Vec<SyscallCount>,
    /// Every successful exec inside the target, by (path, uid), earliest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub executables: Vec<ExecutableRun>,
    /// Present when calls were made both as root and as another user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privilege_drop: Option<PrivilegeDrop>,
    /// Present when the recording missed the target's start (`record --wait` found every
    /// target slot in use when its cgroup made its first call): the counts are incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed_start: Option<MissedStart>,
    /// Calls the target's seccomp filter refused: they never ran, so they are not in
    /// `syscalls` nor in `totals`. Sorted as `syscalls`, then by action, filter and phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedCall>,
    /// Refusals counted but not named (the kernel's refusal table was full).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refused_unnamed: u64,
    /// Every start of the target recorded into this file, earliest first (`record` only):
    /// a container restarted under `record --wait --keep-waiting --container` is one target
    /// whose counts add up over its starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub starts: Vec<TargetStart>,
    /// Processes that left the target's cgroup while it was recorded (moved to a cgroup outside
    /// it, or created outside it by a process inside): their calls from then on were not
    /// counted, so the counts are incomplete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_cgroup: Vec<LeftCgroup>,
    /// The capability checks the target made after its runtime's init; absent when they were
    /// not counted (see [`CapabilityChecks`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<CapabilityChecks>,
}

/// A process that left the recorded target's cgroup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftCgroup {
    /// Its process id.
    pub pid: u32,
    /// Its program name (`comm`) when it left.
    pub program: String,
    /// The cgroup v2 id it went to.
    pub to_cgroup_id: u64,
    /// It was created outside (`clone3(CLONE_INTO_CGROUP)`) rather than moved.
    #[serde(default, skip_serializing_if = "is_false")]
    pub born_outside: bool,
}

/// One start of a target: a cgroup of its own (a container's restart gets a new one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStart {
    /// When recording this start began.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When its counts were last read.
    #[serde(with = "time::serde::rfc3339")]
    pub ended_at: OffsetDateTime,
    /// Its cgroup's id.
    pub cgroup_id: u64,
    /// Calls counted in this start (`totals.calls` is the sum over the starts).
    pub calls: u64,
    /// Whether it was counted from its cgroup's first syscall (`record --wait` claimed it
    /// and found a free slot), or picked up while already running.
    pub from_first_call: bool,
}

/// Calls of one syscall a seccomp filter refused, with one action, under one filter origin,
/// in one phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedCall {
    /// Syscall name in its arch's table; `null` if the number has none.
    pub name: Option<String>,
    /// Arch of the call.
    pub arch: Arch,
    /// Syscall number.
    pub nr: u32,
    /// Exact number of refused calls.
    pub count: u64,
    /// What seccomp did.
    pub action: RefusalAction,
    /// Which filters the task had.
    pub filter: RefusingFilter,
    /// Refused during the runtime's init (before the workload's first exec).
    #[serde(default, skip_serializing_if = "is_false")]
    pub runtime_init: bool,
    /// Who was refused, most calls first (at most [`MAX_PROGRAMS_LISTED`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<ProgramCount>,
}

/// What seccomp did with a refused call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalAction {
    /// The call failed with an errno: `SCMP_ACT_ERRNO` (also a user-notification supervisor's
    /// error answer, and `SCMP_ACT_TRACE` with no tracer).
    Errno,
    /// `SIGSYS` was sent (`SCMP_ACT_TRAP`).
    Trap,
    /// The task was killed (`SCMP_ACT_KILL_PROCESS`, `SCMP_ACT_KILL_THREAD`).
    Kill,
}

/// Which seccomp filters the refused task had, against those its runtime handed to the
/// workload's first exec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusingFilter {
    /// Only the runtime's: the profile in force refused the call.
    Runtime,
    /// The workload had installed filters of its own; the kernel does not say which filter
    /// refused (it may be the workload's own).
    WithOwn,
    /// Not known: the target was attached while running.
    Unknown,
}

impl RefusedCall {
    /// Whether the profile in force refused it (not a filter the workload installed itself).
    pub fn by_profile(&self) -> bool {
        self.filter != RefusingFilter::WithOwn
    }
}

/// The calls a target made before it could be recorded were lost: `record --wait` had no
/// free target slot when its cgroup made its first call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissedStart {
    /// When its first call found no free slot.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// When it got a slot; every call from then on is counted.
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_from: OffsetDateTime,
}

/// How often one operation of a multiplexer syscall was made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiplexedCount {
    /// Arch of the multiplexer call (`SCMP_ARCH_X86`).
    pub arch: Arch,
    /// `socketcall` or `ipc`.
    pub syscall: String,
    /// The operation number (first argument; low 16 bits for `ipc`).
    pub op: u32,
    /// The direct syscall doing the same thing, when the number is known.
    pub op_name: Option<String>,
    /// Exact number of calls.
    pub count: u64,
}

impl MultiplexedCount {
    /// Rows for one multiplexer's (op, count) pairs.
    pub fn rows(arch: Arch, syscall: &str, ops: &[(u32, u64)]) -> Vec<Self> {
        ops.iter()
            .map(|&(op, count)| Self {
                arch,
                syscall: syscall.to_string(),
                op,
                op_name: crate::syscalls::multiplexed::operation_name(syscall, op)
                    .map(str::to_owned),
                count,
            })
            .collect()
    }
}

/// What was watched.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// How the target was given: `cgroup`, `cgroup-id`, `pid`, `container` or `command`.
    pub kind: String,
    /// The value given on the command line (path, id, pid, container name, or the command).
    pub spec: String,
    /// The cgroup v2 path, relative to the cgroup2 mount (`/docker/4a4a…`).
    pub cgroup_path: String,
    /// The cgroup v2 id (the inode number of its directory).
    pub cgroup_id: u64,
    /// The container engine's view, when resolved through one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
    /// The command line, for `run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// The command's exit status, for `run` (128+N when signal N ended it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
}

/// A container as its engine named it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// `docker`, `podman` or `runc`.
    pub engine: String,
    /// Full container id.
    pub id: String,
    /// Container name, without Docker's leading `/`.
    pub name: String,
    /// Host pid of the container's init process when it was resolved.
    pub pid: u32,
}

/// The host that was recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// `uname -r`.
    pub kernel: String,
    /// `uname -m`.
    pub machine: String,
}

impl HostInfo {
    /// This machine, from `uname(2)`.
    pub fn current() -> Self {
        // SAFETY: `utsname` is plain C data (arrays of chars): all zeroes is a valid value.
        let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: `uname` fills the correctly sized struct it is given.
        if unsafe { libc::uname(&mut uts) } != 0 {
            return Self::default();
        }
        let field = |f: &[libc::c_char]| {
            // SAFETY: uname NUL-terminates each field within its array.
            unsafe { std::ffi::CStr::from_ptr(f.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        };
        Self {
            kernel: field(&uts.release),
            machine: field(&uts.machine),
        }
    }
}

/// The recorder that produced the file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecorderInfo {
    /// agent-audit's version.
    pub version: String,
    /// How the kernel program was attached: `tp_btf` or `raw_tp`.
    pub attach: String,
    /// Whether the calls the target's seccomp filter refused were counted: only then does an
    /// empty `refused` mean that nothing was refused. Absent (false) in files from a recorder
    /// that did not count them (`--no-refusals`, a kernel without BTF, `verify`, older
    /// versions).
    #[serde(default, skip_serializing_if = "is_false")]
    pub refusals: bool,
}

/// Totals over the recording.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// All syscalls counted, including out-of-range numbers.
    pub calls: u64,
    /// Distinct (arch, nr) pairs in `syscalls`.
    pub distinct: u64,
    /// Calls whose number was outside every table (for example `-1` set by a tracer).
    pub out_of_range: u64,
}

/// How often one syscall was made through one architecture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallCount {
    /// Name in `arch`'s table; `null` when the table has no name for `nr`.
    pub name: Option<String>,
    /// libseccomp architecture name.
    pub arch: Arch,
    /// Syscall number in `arch`'s table.
    pub nr: u32,
    /// Exact number of calls.
    pub count: u64,
    /// The programs that made this call, earliest first, at most [`MAX_PROGRAMS_LISTED`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<ProgramCount>,
    /// How many more distinct programs made it ("and N more").
    #[serde(default, skip_serializing_if = "is_zero")]
    pub programs_omitted: u64,
    /// The values of the arguments the recorder tracks (`data/tracked-args.json`), sorted by
    /// index then field; absent when the syscall is not tracked or arguments were not
    /// recorded (then they are unknown, not empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgRecord>,
}

/// Distinct values kept per (target, ABI, syscall, argument) before the set is marked
/// incomplete (`overflow`).
pub const MAX_ARG_VALUES: usize = 64;

/// One tracked argument of one syscall entry: the values the recording saw in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgRecord {
    /// The argument's index as seccomp sees it (0..=5).
    pub index: u8,
    /// Set when the value was read from user memory through the argument (seccomp cannot
    /// compare it; the profile uses it to allow an equivalent call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<ArgField>,
    /// How the values are summarised.
    pub kind: ArgKind,
    /// [`ArgKind::Values`]: the distinct values and their call counts, sorted by value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<ArgValueCount>,
    /// [`ArgKind::Flags`]: the bitwise OR of every value seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits: Option<u64>,
    /// More values were seen than kept (or a value could not be read): the record is
    /// incomplete and must not be used to narrow a rule.
    #[serde(default, skip_serializing_if = "is_false")]
    pub overflow: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A language runtime whose timing-dependent calls are known (`executables[].runtime`;
/// recognised in `runtimes`, its calls listed in `policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// A Go binary (its runtime is linked in).
    Go,
    /// A Java virtual machine.
    Jvm,
    /// Node.js.
    Node,
    /// CPython.
    Cpython,
    /// The .NET runtime host.
    Dotnet,
    /// The Erlang/Elixir BEAM.
    Erlang,
}

impl Runtime {
    /// Every runtime, in declaration order.
    pub const ALL: [Runtime; 6] = [
        Runtime::Go,
        Runtime::Jvm,
        Runtime::Node,
        Runtime::Cpython,
        Runtime::Dotnet,
        Runtime::Erlang,
    ];

    /// Its name in prose.
    pub fn title(self) -> &'static str {
        match self {
            Runtime::Go => "Go",
            Runtime::Jvm => "JVM",
            Runtime::Node => "Node.js",
            Runtime::Cpython => "CPython",
            Runtime::Dotnet => ".NET",
            Runtime::Erlang => "Erlang BEAM",
        }
    }
}

/// A value read through an argument rather than the argument itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ArgField {
    /// `clone3`'s `struct clone_args.flags`, the first `u64` its first argument points to.
    #[serde(rename = "clone_args.flags")]
    CloneArgsFlags,
}

/// How a tracked argument's values are summarised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArgKind {
    /// An enumeration: each distinct value with its count.
    Values,
    /// A bit set: the union of the bits seen.
    Flags,
}

/// How often one value of an argument was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgValueCount {
    /// The value, after the tracked argument's mask.
    pub value: u64,
    /// Exact number of calls with it.
    pub count: u64,
}

impl ArgRecord {
    /// An enumeration record from (value, count) pairs: summed per value, sorted, and cut to
    /// the [`MAX_ARG_VALUES`] most frequent (then `overflow`).
    pub fn values(
        index: u8,
        field: Option<ArgField>,
        counts: impl IntoIterator<Item = (u64, u64)>,
        overflow: bool,
    ) -> Self {
        let mut merged = std::collections::BTreeMap::<u64, u64>::new();
        for (value, count) in counts {
            let c = merged.entry(value).or_default();
            *c = c.saturating_add(count);
        }
        let mut record = Self {
            index,
            field,
            kind: ArgKind::Values,
            values: merged
                .into_iter()
                .map(|(value, count)| ArgValueCount { value, count })
                .collect(),
            bits: None,
            overflow,
        };
        record.cap_values();
        record
    }

    /// A bit-set record.
    pub fn flags(index: u8, field: Option<ArgField>, bits: u64, overflow: bool) -> Self {
        Self {
            index,
            field,
            kind: ArgKind::Flags,
            values: Vec::new(),
            bits: Some(bits),
            overflow,
        }
    }

    /// Adds `other` (the same argument, from another recording or CPU): values are united with
    /// their counts summed (saturating) and re-capped at [`MAX_ARG_VALUES`]; bits are ORed;
    /// overflow is ORed. Records of different kinds cannot be united: the result is marked
    /// `overflow` so that no rule is narrowed to either.
    pub fn merge(&mut self, other: &ArgRecord) {
        self.overflow |= other.overflow || self.kind != other.kind;
        if !other.values.is_empty() {
            let mut merged: std::collections::BTreeMap<u64, u64> =
                self.values.iter().map(|v| (v.value, v.count)).collect();
            for v in &other.values {
                let c = merged.entry(v.value).or_default();
                *c = c.saturating_add(v.count);
            }
            self.values = merged
                .into_iter()
                .map(|(value, count)| ArgValueCount { value, count })
                .collect();
            self.cap_values();
        }
        self.bits = match (self.bits, other.bits) {
            (Some(a), Some(b)) => Some(a | b),
            (a, b) => a.or(b),
        };
    }

    /// Keeps the [`MAX_ARG_VALUES`] most frequent values (ties: the smaller value), sorted by
    /// value; sets `overflow` when any were dropped.
    fn cap_values(&mut self) {
        if self.values.len() <= MAX_ARG_VALUES {
            return;
        }
        self.values
            .sort_by(|a, b| b.count.cmp(&a.count).then(a.value.cmp(&b.value)));
        self.values.truncate(MAX_ARG_VALUES);
        self.values.sort_by_key(|v| v.value);
        self.overflow = true;
    }

    /// The order of records in an entry's `args`: by index, then field (the plain argument
    /// first).
    pub fn sort_key(&self) -> (u8, Option<ArgField>) {
        (self.index, self.field)
    }

    /// Checks one entry's `args` against the format's rules: each record well-formed, and
    /// the records sorted by (index, field) without repeats.
    pub fn check_list(records: &[ArgRecord]) -> Result<(), ArgProblem> {
        for r in records {
            r.check()?;
        }
        match records
            .windows(2)
            .find(|w| w[0].sort_key() >= w[1].sort_key())
        {
            Some(w) => Err(ArgProblem::Unsorted { index: w[1].index }),
            None => Ok(()),
        }
    }

    fn check(&self) -> Result<(), ArgProblem> {
        let index = self.index;
        if index > 5 {
            return Err(ArgProblem::IndexOutOfRange { index });
        }
        match self.kind {
            ArgKind::Values if self.bits.is_some() => Err(ArgProblem::ValuesWithBits { index }),
            ArgKind::Values if self.values.len() > MAX_ARG_VALUES => {
                Err(ArgProblem::TooManyValues { index })
            }
            ArgKind::Values if self.values.windows(2).any(|w| w[0].value >= w[1].value) => {
                Err(ArgProblem::ValuesUnsorted { index })
            }
            ArgKind::Flags if self.bits.is_none() || !self.values.is_empty() => {
                Err(ArgProblem::FlagsWithoutBits { index })
            }
            _ => Ok(()),
        }
    }
}

/// What is wrong with an entry's `args`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArgProblem {
    /// seccomp sees six arguments.
    #[error("argument index {index} is out of range (0..=5)")]
    IndexOutOfRange {
        /// The index found.
        index: u8,
    },
    /// A `values` record with `bits`.
    #[error("argument {index}: kind \"values\" has no \"bits\"")]
    ValuesWithBits {
        /// The argument.
        index: u8,
    },
    /// More values than a recording keeps.
    #[error("argument {index}: more than {MAX_ARG_VALUES} values")]
    TooManyValues {
        /// The argument.
        index: u8,
    },
    /// Values out of order or repeated.
    #[error("argument {index}: values must be sorted and distinct")]
    ValuesUnsorted {
        /// The argument.
        index: u8,
    },
    /// A `flags` record without `bits`, or with `values`.
    #[error("argument {index}: kind \"flags\" needs \"bits\" and no \"values\"")]
    FlagsWithoutBits {
        /// The argument.
        index: u8,
    },
    /// Records out of order or repeated.
    #[error("records must be sorted by index and field, each once (argument {index})")]
    Unsorted {
        /// The argument of the first record out of place.
        index: u8,
    },
}

/// Programs listed per syscall before the rest are only counted.
pub const MAX_PROGRAMS_LISTED: usize = 16;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One program's use of one syscall.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramCount {
    /// The task name (`comm`, at most 15 bytes) of the caller.
    pub comm: String,
    /// Whether the caller's uid was 0 (separate entries before and after a privilege drop).
    pub as_root: bool,
    /// Exact number of calls.
    pub count: u64,
    /// First call.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    /// Last call.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
}

/// A file executed inside the target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutableRun {
    /// The path as passed to exec.
    pub path: String,
    /// The task name after the exec.
    pub comm: String,
    /// Real uid of the process that ran it.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// How many times it was executed with this uid.
    pub count: u64,
    /// First execution.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    /// The language runtime it is, when recognised (`data/timing-dependent.json`'s
    /// `runtimes`): `audit` allows that runtime's timing-dependent calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<Runtime>,
}

/// What ran as root before the workload dropped privileges, and what after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivilegeDrop {
    /// The first call made as a non-root user.
    #[serde(with = "time::serde::rfc3339")]
    pub first_unprivileged_call: OffsetDateTime,
    /// Syscalls (arch-qualified names) made only as root.
    pub root_only: Vec<String>,
    /// Syscalls made as a non-root user.
    pub unprivileged: Vec<String>,
}

/// Refuses, in one list of syscall entries, a name that is not its number's, `null` for a
/// number that has a name, an (arch, number) listed twice, and a malformed `args` list.
/// A `refused` row names its syscall as a `syscalls` entry does (one syscall may have several
/// rows: one per action, filter and phase).
fn check_refused(rows: &[RefusedCall], path: &Path) -> Result<(), AllowlistError> {
    for (index, r) in rows.iter().enumerate() {
        match (&r.name, r.arch.syscall_name(r.nr)) {
            (Some(name), _) if r.arch.syscall_nr(name) != Some(r.nr) => {
                return Err(AllowlistError::UnknownSyscall {
                    path: path.to_path_buf(),
                    arch: r.arch,
                    name: name.clone(),
                    nr: r.nr,
                });
            }
            (None, Some(name)) => {
                return Err(AllowlistError::UnnamedKnownSyscall {
                    path: path.to_path_buf(),
                    list: "refused",
                    index,
                    arch: r.arch,
                    nr: r.nr,
                    name,
                });
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_entries(
    list: &'static str,
    entries: &[SyscallCount],
    path: &Path,
) -> Result<(), AllowlistError> {
    let mut seen = std::collections::HashMap::with_capacity(entries.len());
    for (index, s) in entries.iter().enumerate() {
        match (&s.name, s.arch.syscall_name(s.nr)) {
            (Some(name), _) if s.arch.syscall_nr(name) != Some(s.nr) => {
                return Err(AllowlistError::UnknownSyscall {
                    path: path.to_path_buf(),
                    arch: s.arch,
                    name: name.clone(),
                    nr: s.nr,
                });
            }
            (None, Some(name)) => {
                return Err(AllowlistError::UnnamedKnownSyscall {
                    path: path.to_path_buf(),
                    list,
                    index,
                    arch: s.arch,
                    nr: s.nr,
                    name,
                });
            }
            _ => {}
        }
        if let Some(first) = seen.insert((s.arch, s.nr), index) {
            return Err(AllowlistError::DuplicateEntry {
                path: path.to_path_buf(),
                list,
                index,
                first,
                arch: s.arch,
                nr: s.nr,
            });
        }
        ArgRecord::check_list(&s.args).map_err(|problem| AllowlistError::BadArgs {
            path: path.to_path_buf(),
            arch: s.arch,
            nr: s.nr,
            problem,
        })?;
    }
    Ok(())
}

/// An allowlist file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AllowlistError {
    /// The file could not be read, or is not a bounded UTF-8 regular file.
    #[error("allowlist: {0}")]
    Read(#[from] InputError),
    /// The file is not JSON of the expected shape (a key given twice in one object included).
    #[error("{path} is not a valid allowlist: {field}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// JSON path of the offending field (`syscalls[3].count`; `.` for the document).
        field: String,
        /// Where and what.
        source: serde_json::Error,
    },
    /// The schema tag is missing or unknown.
    #[error("{path} has schema {found:?}; this agent-audit reads {SCHEMA_V1:?}")]
    Schema {
        /// The file.
        path: PathBuf,
        /// The tag found.
        found: String,
    },
    /// A name that does not exist on the arch it is recorded for.
    #[error("{path}: syscall {name:?} is not in the {arch} table (number {nr})")]
    UnknownSyscall {
        /// The file.
        path: PathBuf,
        /// Arch of the entry.
        arch: Arch,
        /// The name recorded.
        name: String,
        /// The number recorded.
        nr: u32,
    },
    /// One (arch, number) listed twice in `syscalls` or `runtime_init`: the recorder writes
    /// each once, so one of the two counts would be lost or doubled by every reader.
    #[error(
        "{path}: {list}[{index}] ({arch} number {nr}) repeats {list}[{first}]: each (arch, \
         number) is listed once"
    )]
    DuplicateEntry {
        /// The file.
        path: PathBuf,
        /// `syscalls` or `runtime_init`.
        list: &'static str,
        /// Index of the repeated entry.
        index: usize,
        /// Index of its first appearance.
        first: usize,
        /// Arch of the entry.
        arch: Arch,
        /// Number of the entry.
        nr: u32,
    },
    /// `name: null` for a number that has a name: the call would silently leave every profile
    /// made from the file, which allows syscalls by name.
    #[error(
        "{path}: {list}[{index}] has name null, but {arch} number {nr} is {name:?} (write its \
         name)"
    )]
    UnnamedKnownSyscall {
        /// The file.
        path: PathBuf,
        /// `syscalls` or `runtime_init`.
        list: &'static str,
        /// Index of the entry.
        index: usize,
        /// Arch of the entry.
        arch: Arch,
        /// Number of the entry.
        nr: u32,
        /// The name the arch's table has for it.
        name: &'static str,
    },
    /// An `args` list that breaks the format's rules.
    #[error("{path}: {arch} syscall number {nr}: args: {problem}")]
    BadArgs {
        /// The file.
        path: PathBuf,
        /// Arch of the entry.
        arch: Arch,
        /// Number of the entry.
        nr: u32,
        /// What is wrong.
        problem: ArgProblem,
    },
    /// A `capabilities` entry names no capability this version knows.
    #[error("{path}: capabilities: {name:?} is not a Linux capability name (without CAP_)")]
    UnknownCapability {
        /// The file.
        path: PathBuf,
        /// The name recorded.
        name: String,
    },
    /// `totals` does not agree with the entries it sums (a later sum would be wrong too:
    /// shares over 100 %, say).
    #[error(transparent)]
    InconsistentTotals(Box<TotalsMismatch>),
    /// Writing the file failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// A field of `totals` and what its entries really add up to.
#[derive(Debug, thiserror::Error)]
#[error(
    "{path}: totals.{field} is {stated}, but {} make {computed}: the file is inconsistent",
    field.what_it_sums()
)]
pub struct TotalsMismatch {
    /// The file.
    pub path: PathBuf,
    /// The field.
    pub field: TotalsField,
    /// What the file says.
    pub stated: u64,
    /// What its entries add up to (wider than u64: the sum itself may not fit).
    pub computed: u128,
}

/// The checked fields of `totals`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TotalsField {
    /// `totals.calls`.
    Calls,
    /// `totals.distinct`.
    Distinct,
}

impl TotalsField {
    fn what_it_sums(self) -> &'static str {
        match self {
            TotalsField::Calls => "the counts of `syscalls` and totals.out_of_range",
            TotalsField::Distinct => "the entries of `syscalls`",
        }
    }
}

impl std::fmt::Display for TotalsField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TotalsField::Calls => "calls",
            TotalsField::Distinct => "distinct",
        })
    }
}

impl AllowlistError {
    /// The documented exit code: the read error's, 73 for an unwritable output, 65 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            AllowlistError::Read(e) => e.exit_code(),
            AllowlistError::Output(e) => e.exit_code(),
            AllowlistError::Parse { .. }
            | AllowlistError::Schema { .. }
            | AllowlistError::UnknownSyscall { .. }
            | AllowlistError::DuplicateEntry { .. }
            | AllowlistError::UnnamedKnownSyscall { .. }
            | AllowlistError::BadArgs { .. }
            | AllowlistError::UnknownCapability { .. }
            | AllowlistError::InconsistentTotals(_) => ExitCode::DATA,
        }
    }
}

impl Allowlist {
    /// Builds the `syscalls` list and totals from raw (arch, nr, count) triples, naming each
    /// number from its arch's table. Zero counts are dropped; duplicates are summed.
    pub fn syscalls_from_counts(
        counts: impl IntoIterator<Item = (Arch, u32, u64)>,
        out_of_range: u64,
    ) -> (Vec<SyscallCount>, Totals) {
        let mut merged = std::collections::BTreeMap::<(Arch, u32), u64>::new();
        for (arch, nr, count) in counts {
            if count > 0 {
                let entry = merged.entry((arch, nr)).or_default();
                *entry = entry.saturating_add(count);
            }
        }
        let mut syscalls: Vec<SyscallCount> = merged
            .into_iter()
            .map(|((arch, nr), count)| SyscallCount {
                name: arch.syscall_name(nr).map(str::to_owned),
                arch,
                nr,
                count,
                programs: Vec::new(),
                programs_omitted: 0,
                args: Vec::new(),
            })
            .collect();
        sort_syscalls(&mut syscalls);
        let totals = Totals {
            calls: saturating_sum(syscalls.iter().map(|s| s.count)).saturating_add(out_of_range),
            distinct: syscalls.len() as u64,
            out_of_range,
        };
        (syscalls, totals)
    }

    /// A complete allowlist with only these fields set, for other modules' unit tests.
    #[cfg(test)]
    pub fn for_tests(target: TargetInfo, syscalls: Vec<SyscallCount>, totals: Totals) -> Self {
        Self {
            schema: SCHEMA_V1.into(),
            target,
            started_at: OffsetDateTime::UNIX_EPOCH,
            ended_at: OffsetDateTime::UNIX_EPOCH,
            complete: true,
            host: HostInfo::default(),
            recorder: RecorderInfo::default(),
            totals,
            syscalls,
            multiplexed: Vec::new(),
            runtime_init: Vec::new(),
            executables: Vec::new(),
            privilege_drop: None,
            missed_start: None,
            refused: Vec::new(),
            refused_unnamed: 0,
            starts: Vec::new(),
            left_cgroup: Vec::new(),
            capabilities: None,
        }
    }

    /// A `run` recording of command `spec` that saw `calls` (arch, name, count), for other
    /// modules' unit tests.
    #[cfg(test)]
    pub fn for_tests_of_command(spec: &str, calls: &[(Arch, &str, u64)]) -> Self {
        let counts = calls
            .iter()
            .map(|(arch, name, count)| (*arch, arch.syscall_nr(name).expect(name), *count));
        let (syscalls, totals) = Self::syscalls_from_counts(counts, 0);
        Self::for_tests(
            TargetInfo {
                kind: "command".into(),
                spec: spec.into(),
                command: Some(vec![spec.into()]),
                ..Default::default()
            },
            syscalls,
            totals,
        )
    }

    /// Reads and validates an allowlist file.
    pub fn read(path: &Path) -> Result<Self, AllowlistError> {
        let text = fsutil::read_input(path)?;
        Self::parse(&text, path)
    }

    /// Parses and validates allowlist JSON; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, AllowlistError> {
        let parse_error = |field: String, source| AllowlistError::Parse {
            path: path.to_path_buf(),
            field,
            source,
        };
        // Check the schema first so that a file from a newer version gets a clear message
        // rather than a complaint about some field.
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|source| parse_error(".".into(), source))?;
        let schema = value.get("schema").and_then(|s| s.as_str()).unwrap_or("");
        if schema != SCHEMA_V1 {
            return Err(AllowlistError::Schema {
                path: path.to_path_buf(),
                found: schema.to_string(),
            });
        }
        // From the text, not from `value`: a JSON object keeps the last of two equal keys,
        // the derived readers refuse the second, as the profile reader does.
        let mut de = serde_json::Deserializer::from_str(text);
        let list: Allowlist = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| parse_error(e.path().to_string(), e.into_inner()))?;
        for (name, entries) in [
            ("syscalls", &list.syscalls),
            ("runtime_init", &list.runtime_init),
        ] {
            check_entries(name, entries, path)?;
        }
        check_refused(&list.refused, path)?;
        if let Some(name) = list.capabilities.as_ref().and_then(|c| c.unknown_name()) {
            return Err(AllowlistError::UnknownCapability {
                path: path.to_path_buf(),
                name: name.to_string(),
            });
        }
        list.check_totals(path)?;
        Ok(list)
    }

    /// `totals.calls` is every entry's count plus `out_of_range`, `totals.distinct` the number
    /// of entries, as the recorder writes them.
    fn check_totals(&self, path: &Path) -> Result<(), AllowlistError> {
        let calls = self
            .syscalls
            .iter()
            .map(|s| u128::from(s.count))
            .sum::<u128>()
            + u128::from(self.totals.out_of_range);
        let distinct = self.syscalls.len() as u128;
        for (field, stated, computed) in [
            (TotalsField::Calls, self.totals.calls, calls),
            (TotalsField::Distinct, self.totals.distinct, distinct),
        ] {
            if u128::from(stated) != computed {
                return Err(AllowlistError::InconsistentTotals(Box::new(
                    TotalsMismatch {
                        path: path.to_path_buf(),
                        field,
                        stated,
                        computed,
                    },
                )));
            }
        }
        Ok(())
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("allowlist serializes");
        s.push('\n');
        s
    }

    /// Writes the file (atomically for a file: see [`fsutil::write_output`]).
    pub fn write(&self, path: &Path) -> Result<(), AllowlistError> {
        fsutil::write_output(path, self.to_json().as_bytes())?;
        Ok(())
    }
}

/// The sum of counts that may come from several files: at most `u64::MAX`, never wrapped.
/// One file's counts always fit (its totals are checked when it is read); a merge of files
/// may not, and then says "at least u64::MAX" rather than a small wrong number.
pub fn saturating_sum(counts: impl IntoIterator<Item = u64>) -> u64 {
    counts.into_iter().fold(0, u64::saturating_add)
}

/// The file's order: by name (unnamed last), then arch, then number.
pub fn sort_syscalls(syscalls: &mut [SyscallCount]) {
    syscalls.sort_by(|a, b| {
        (a.name.is_none(), &a.name, a.arch, a.nr).cmp(&(b.name.is_none(), &b.name, b.arch, b.nr))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Allowlist {
        let (syscalls, totals) = Allowlist::syscalls_from_counts(
            [
                (Arch::X86_64, 110, 7), // getppid
                (Arch::X86_64, 0, 3),   // read
                (Arch::X86, 5, 1),      // open (i386)
                (Arch::X86_64, 1000, 2),
                (Arch::X86_64, 110, 1),
                (Arch::X86_64, 1, 0),
            ],
            4,
        );
        Allowlist {
            schema: SCHEMA_V1.into(),
            target: TargetInfo {
                kind: "cgroup".into(),
                spec: "/x".into(),
                cgroup_path: "/x".into(),
                cgroup_id: 42,
                ..Default::default()
            },
            started_at: OffsetDateTime::UNIX_EPOCH,
            ended_at: OffsetDateTime::UNIX_EPOCH,
            complete: true,
            host: HostInfo::current(),
            recorder: RecorderInfo::default(),
            totals,
            syscalls,
            multiplexed: MultiplexedCount::rows(Arch::X86, "socketcall", &[(1, 2), (3, 1)]),
            runtime_init: Vec::new(),
            executables: Vec::new(),
            privilege_drop: None,
            missed_start: None,
            refused: Vec::new(),
            refused_unnamed: 0,
            starts: Vec::new(),
            left_cgroup: Vec::new(),
            capabilities: None,
        }
    }

    /// Refusals are a field of their own, out of `totals`; files without it (every
    /// earlier one) still read, and a refused row names its syscall as `syscalls` does.
    #[test]
    fn refused_calls_round_trip_apart_from_totals_and_are_checked() {
        let mut list = sample();
        let totals = list.totals.clone();
        list.refused = vec![RefusedCall {
            name: Some("mkdir".into()),
            arch: Arch::X86_64,
            nr: 83,
            count: 4,
            action: RefusalAction::Errno,
            filter: RefusingFilter::Runtime,
            runtime_init: false,
            programs: Vec::new(),
        }];
        let json = list.to_json();
        assert!(json.contains("\"refused\""), "{json}");
        assert!(json.contains("\"action\": \"errno\""), "{json}");
        assert!(json.contains("\"filter\": \"runtime\""), "{json}");
        let read = Allowlist::parse(&json, Path::new("a.json")).unwrap();
        assert_eq!(read, list);
        assert_eq!(read.totals, totals);
        assert!(!sample().to_json().contains("refused"));
        let wrong = json.replace("\"nr\": 83", "\"nr\": 84");
        assert!(matches!(
            Allowlist::parse(&wrong, Path::new("a.json")),
            Err(AllowlistError::UnknownSyscall { .. })
        ));
    }

    #[test]
    fn the_recorder_says_whether_refusals_were_counted_and_older_files_read_as_not_counted() {
        let mut list = sample();
        let older = list.to_json();
        assert!(!older.contains("\"refusals\""), "{older}");
        assert!(
            !Allowlist::parse(&older, Path::new("a.json"))
                .unwrap()
                .recorder
                .refusals
        );
        list.recorder.refusals = true;
        let json = list.to_json();
        assert!(json.contains("\"refusals\": true"), "{json}");
        let read = Allowlist::parse(&json, Path::new("a.json")).unwrap();
        assert!(read.recorder.refusals);
        assert!(read.refused.is_empty(), "counted, and none refused");
    }

    #[test]
    fn counts_are_named_summed_and_sorted() {
        let list = sample();
        let rows: Vec<_> = list
            .syscalls
            .iter()
            .map(|s| (s.name.as_deref(), s.arch, s.nr, s.count))
            .collect();
        assert_eq!(
            rows,
            vec![
                (Some("getppid"), Arch::X86_64, 110, 8),
                (Some("open"), Arch::X86, 5, 1),
                (Some("read"), Arch::X86_64, 0, 3),
                (None, Arch::X86_64, 1000, 2),
            ]
        );
        assert_eq!(list.totals.calls, 8 + 1 + 3 + 2 + 4);
        assert_eq!(list.totals.distinct, 4);
    }

    #[test]
    fn round_trips_through_json() {
        let list = sample();
        let json = list.to_json();
        assert!(json.contains("\"schema\": \"agent-audit/allowlist/v1\""));
        assert!(json.contains("\"arch\": \"SCMP_ARCH_X86\""));
        assert!(json.contains("\"name\": null"));
        assert!(json.contains("\"op_name\": \"connect\""));
        assert_eq!(Allowlist::parse(&json, Path::new("t")).unwrap(), list);
    }

    #[test]
    fn rejects_bad_json_schema_and_names() {
        let p = Path::new("in.json");
        let err = Allowlist::parse("{not json", p).unwrap_err();
        assert!(matches!(err, AllowlistError::Parse { .. }), "{err}");
        assert!(err.to_string().contains("in.json"));

        let err = Allowlist::parse(r#"{"schema":"agent-audit/allowlist/v9"}"#, p).unwrap_err();
        assert!(err.to_string().contains("v9"), "{err}");

        let json = sample().to_json().replace("\"getppid\"", "\"getppidx\"");
        let err = Allowlist::parse(&json, p).unwrap_err();
        assert!(
            matches!(err, AllowlistError::UnknownSyscall { ref name, .. } if name == "getppidx"),
            "{err}"
        );

        let json = sample()
            .to_json()
            .replace("SCMP_ARCH_X86\"", "SCMP_ARCH_VAX\"");
        assert!(Allowlist::parse(&json, p).is_err());
    }

    /// What a JSON object or a list would silently resolve (the last of two
    /// keys, two entries for one call, a call without its name) is refused, naming the entry.
    #[test]
    fn refuses_repeated_keys_repeated_entries_and_null_names_of_known_calls() {
        let p = Path::new("in.json");
        let refused = |json: &str| {
            let err = Allowlist::parse(json, p).unwrap_err();
            assert_eq!(err.exit_code(), ExitCode::DATA, "{err}");
            err
        };
        let json = sample().to_json();
        // The second "count" of getppid's entry would win in a JSON object.
        let twice = json.replacen("\"count\": 8", "\"count\": 8, \"count\": 1", 1);
        assert_ne!(twice, json);
        let err = refused(&twice);
        let text = err.to_string();
        assert!(
            matches!(&err, AllowlistError::Parse { field, .. } if field == "syscalls[0]"),
            "{text}"
        );
        assert!(text.contains("duplicate field `count`"), "{text}");
        let err = refused(&json.replacen(
            "\"complete\": true",
            "\"complete\": true, \"complete\": false",
            1,
        ));
        assert!(
            err.to_string().contains("duplicate field `complete`"),
            "{err}"
        );

        // getppid listed twice, totals kept consistent with the entries.
        let mut list = sample();
        list.syscalls.push(list.syscalls[0].clone());
        list.totals.calls += list.syscalls[0].count;
        list.totals.distinct += 1;
        let err = refused(&list.to_json());
        assert!(
            matches!(
                err,
                AllowlistError::DuplicateEntry {
                    list: "syscalls",
                    index: 4,
                    first: 0,
                    nr: 110,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("syscalls[4]"), "{err}");

        // getppid (x86_64 110) written without its name.
        let mut list = sample();
        list.syscalls[0].name = None;
        let err = refused(&list.to_json());
        assert!(
            matches!(
                err,
                AllowlistError::UnnamedKnownSyscall {
                    index: 0,
                    nr: 110,
                    name: "getppid",
                    ..
                }
            ),
            "{err}"
        );
        // The same in `runtime_init`.
        let mut list = sample();
        list.runtime_init = vec![list.syscalls[0].clone(), list.syscalls[0].clone()];
        let err = refused(&list.to_json());
        assert!(
            matches!(
                err,
                AllowlistError::DuplicateEntry {
                    list: "runtime_init",
                    index: 1,
                    ..
                }
            ),
            "{err}"
        );
        // A number without a name in its table stays `null` and is read.
        assert_eq!(sample().syscalls[3].name, None);
        Allowlist::parse(&sample().to_json(), p).unwrap();
    }

    #[test]
    fn capabilities_round_trip_and_an_unknown_name_is_refused_by_name() {
        let p = Path::new("caps.json");
        let mut list = sample();
        let json = sample().to_json();
        assert!(!json.contains("capabilities"), "absent when not counted");
        list.capabilities = Some(
            serde_json::from_str(
                r#"{"hook": "fexit/cap_capable", "checks": [
                    {"capability": "CHOWN", "granted": 2, "refused": 0,
                     "programs": [{"comm": "chown", "granted": 2, "refused": 0}]}]}"#,
            )
            .unwrap(),
        );
        let json = list.to_json();
        assert_eq!(Allowlist::parse(&json, p).unwrap(), list);
        let err = Allowlist::parse(&json.replace("\"CHOWN\"", "\"CAP_CHOWN\""), p).unwrap_err();
        assert!(
            matches!(err, AllowlistError::UnknownCapability { ref name, .. } if name == "CAP_CHOWN"),
            "{err}"
        );
        assert_eq!(err.exit_code(), ExitCode::DATA);
        assert!(err.to_string().contains("caps.json"), "{err}");
    }

    #[test]
    fn args_round_trip_in_the_contract_shape() {
        let json = r#"[
            { "index": 0, "kind": "values", "values": [ { "value": 1, "count": 4 }, { "value": 2, "count": 12 } ] },
            { "index": 1, "kind": "values", "values": [ { "value": 5, "count": 1 } ], "overflow": true },
            { "index": 0, "kind": "flags", "bits": 4001536 },
            { "index": 0, "field": "clone_args.flags", "kind": "flags", "bits": 18446744073709551615 }
        ]"#;
        let records: Vec<ArgRecord> = serde_json::from_str(json).unwrap();
        assert_eq!(
            records[0],
            ArgRecord::values(0, None, [(2, 12), (1, 4)], false)
        );
        assert!(records[1].overflow);
        assert_eq!(records[2], ArgRecord::flags(0, None, 4001536, false));
        assert_eq!(records[3].field, Some(ArgField::CloneArgsFlags));
        assert_eq!(records[3].bits, Some(u64::MAX));
        let back: Vec<ArgRecord> =
            serde_json::from_str(&serde_json::to_string(&records).unwrap()).unwrap();
        assert_eq!(back, records);
        // Empty and false fields are left out; the field name is the C one.
        let text = serde_json::to_string(&records[3]).unwrap();
        assert_eq!(
            text,
            r#"{"index":0,"field":"clone_args.flags","kind":"flags","bits":18446744073709551615}"#
        );
        let text = serde_json::to_string(&records[0]).unwrap();
        assert!(!text.contains("overflow") && !text.contains("bits") && !text.contains("field"));
        assert!(serde_json::from_str::<ArgRecord>(r#"{"index":0,"kind":"set"}"#).is_err());
        assert!(serde_json::from_str::<ArgRecord>(
            r#"{"index":0,"field":"clone_args.stack","kind":"flags","bits":1}"#
        )
        .is_err());
    }

    #[test]
    fn syscall_entries_carry_args_only_when_recorded() {
        let mut list = sample();
        let json = list.to_json();
        assert!(
            !json.contains("\"args\""),
            "no args field when none were recorded"
        );
        list.syscalls[0].args = vec![ArgRecord::values(0, None, [(3, 1)], false)];
        let json = list.to_json();
        assert!(json.contains("\"args\""));
        assert_eq!(Allowlist::parse(&json, Path::new("t")).unwrap(), list);
    }

    #[test]
    fn malformed_args_are_refused_with_what_is_wrong() {
        let p = Path::new("in.json");
        let with_args = |args: &str| {
            let json = sample().to_json();
            // Give the first entry (getppid) the args under test.
            let json = json.replacen(
                "\"count\": 8",
                &format!("\"count\": 8, \"args\": {args}"),
                1,
            );
            Allowlist::parse(&json, p)
        };
        assert!(with_args(r#"[{"index":0,"kind":"flags","bits":1}]"#).is_ok());
        for (args, problem) in [
            (
                r#"[{"index":6,"kind":"flags","bits":1}]"#,
                ArgProblem::IndexOutOfRange { index: 6 },
            ),
            (
                r#"[{"index":1,"kind":"values","values":[{"value":1,"count":1}],"bits":1}]"#,
                ArgProblem::ValuesWithBits { index: 1 },
            ),
            (
                r#"[{"index":1,"kind":"values","values":[{"value":2,"count":1},{"value":2,"count":1}]}]"#,
                ArgProblem::ValuesUnsorted { index: 1 },
            ),
            (
                r#"[{"index":0,"kind":"flags"}]"#,
                ArgProblem::FlagsWithoutBits { index: 0 },
            ),
            (
                r#"[{"index":1,"kind":"flags","bits":1},{"index":0,"kind":"flags","bits":1}]"#,
                ArgProblem::Unsorted { index: 0 },
            ),
        ] {
            let err = with_args(args).unwrap_err();
            assert!(
                matches!(&err, AllowlistError::BadArgs { problem: p, nr: 110, .. } if *p == problem),
                "{args}: {err}"
            );
            assert_eq!(err.exit_code(), ExitCode::DATA);
            assert!(err.to_string().contains("in.json"), "{err}");
        }
        let many: Vec<String> = (0..65)
            .map(|v| format!(r#"{{"value":{v},"count":1}}"#))
            .collect();
        let err = with_args(&format!(
            r#"[{{"index":0,"kind":"values","values":[{}]}}]"#,
            many.join(",")
        ))
        .unwrap_err();
        assert!(err.to_string().contains("more than 64 values"), "{err}");
        // A value that is not a u64 is a parse error.
        let err = with_args(r#"[{"index":0,"kind":"flags","bits":-1}]"#).unwrap_err();
        assert!(matches!(err, AllowlistError::Parse { .. }), "{err}");
    }

    #[test]
    fn merging_values_sums_counts_and_caps_with_overflow() {
        let mut a = ArgRecord::values(1, None, [(1, 2), (7, u64::MAX)], false);
        a.merge(&ArgRecord::values(1, None, [(1, 3), (7, 1), (9, 1)], false));
        assert_eq!(
            a,
            ArgRecord::values(1, None, [(1, 5), (7, u64::MAX), (9, 1)], false)
        );

        // 40 + 40 distinct values, 16 shared: 64 fit exactly, one more overflows.
        let mut b = ArgRecord::values(0, None, (0..40).map(|v| (v, 1)), false);
        b.merge(&ArgRecord::values(0, None, (24..64).map(|v| (v, 1)), false));
        assert_eq!(b.values.len(), MAX_ARG_VALUES);
        assert!(!b.overflow);
        b.merge(&ArgRecord::values(0, None, [(1000, 50)], false));
        assert!(b.overflow);
        assert_eq!(b.values.len(), MAX_ARG_VALUES);
        // The most frequent are kept, still sorted by value.
        assert_eq!(b.values.last().unwrap().value, 1000);
        assert!(b.values.windows(2).all(|w| w[0].value < w[1].value));
        // The shared ones (count 2) survive the cut; one count-1 value went.
        assert!(b.values.iter().filter(|v| v.count == 2).count() == 16);

        let mut c = ArgRecord::values(0, None, [(1, 1)], false);
        c.merge(&ArgRecord::values(0, None, [(2, 1)], true));
        assert!(c.overflow, "overflow is sticky");
    }

    #[test]
    fn merging_flags_ors_bits_and_overflow() {
        let mut a = ArgRecord::flags(0, Some(ArgField::CloneArgsFlags), 0x100, false);
        a.merge(&ArgRecord::flags(
            0,
            Some(ArgField::CloneArgsFlags),
            0x11,
            false,
        ));
        assert_eq!(a.bits, Some(0x111));
        assert!(!a.overflow);
        a.merge(&ArgRecord::flags(
            0,
            Some(ArgField::CloneArgsFlags),
            0,
            true,
        ));
        assert!(a.overflow);
        // Different kinds cannot be united: the result must not narrow anything.
        let mut d = ArgRecord::flags(0, None, 1, false);
        d.merge(&ArgRecord::values(0, None, [(2, 1)], false));
        assert!(d.overflow);
    }

    #[test]
    fn totals_must_agree_with_the_entries() {
        let p = Path::new("t.json");
        let consistent = sample();
        assert_eq!(
            Allowlist::parse(&consistent.to_json(), p).unwrap(),
            consistent
        );
        let refused = |change: fn(&mut Allowlist)| {
            let mut list = sample();
            change(&mut list);
            Allowlist::parse(&list.to_json(), p).unwrap_err()
        };
        let mismatch = |err: &AllowlistError| match err {
            AllowlistError::InconsistentTotals(m) => (m.field, m.stated, m.computed),
            other => panic!("{other}"),
        };
        let err = refused(|l| l.totals.calls -= 1);
        assert_eq!(mismatch(&err), (TotalsField::Calls, 17, 18));
        assert_eq!(err.exit_code(), ExitCode::DATA);
        assert!(err.to_string().contains("totals.calls is 17"), "{err}");
        let err = refused(|l| l.totals.distinct = 9);
        assert_eq!(mismatch(&err), (TotalsField::Distinct, 9, 4));
        // Counts whose sum does not fit in 64 bits: the sum is exact, so it cannot match.
        let err = refused(|l| {
            l.syscalls[0].count = u64::MAX;
            l.totals.calls = u64::MAX;
        });
        let wide = u128::from(u64::MAX) + 1 + 3 + 2 + 4;
        assert_eq!(mismatch(&err), (TotalsField::Calls, u64::MAX, wide));
    }

    #[test]
    fn sums_of_counts_saturate() {
        assert_eq!(saturating_sum([u64::MAX, 2]), u64::MAX);
        assert_eq!(saturating_sum([1, 2, 3]), 6);
        assert_eq!(saturating_sum([]), 0);
        let (_, totals) =
            Allowlist::syscalls_from_counts([(Arch::X86_64, 0, u64::MAX), (Arch::X86_64, 0, 2)], 1);
        assert_eq!(totals.calls, u64::MAX);
    }
}
