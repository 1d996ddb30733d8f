//! Process exit codes, shared by every subcommand and documented in `--help` and
//! docs/exit-codes.md.
//!
//! The numbers follow BSD `sysexits.h` where one fits, so scripts can tell "your input is
//! wrong" from "this machine cannot do it" from "the audit found a problem".

/// A documented exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitCode(pub u8);

impl ExitCode {
    /// Success.
    pub const OK: Self = Self(0);
    /// The command ran but its verdict is negative (`check` found errors, `verify` saw denials).
    pub const FINDINGS: Self = Self(1);
    /// Command-line usage error (clap's own code).
    pub const USAGE: Self = Self(2);
    /// An input file is malformed: bad JSON, unknown schema, unknown architecture or syscall.
    pub const DATA: Self = Self(65);
    /// Something named on the command line does not exist: cgroup, pid, container, input file.
    pub const NO_INPUT: Self = Self(66);
    /// This kernel or host lacks what is needed: cgroup v2, BTF, the tracepoint, BPF support.
    pub const UNAVAILABLE: Self = Self(69);
    /// An internal error (a bug): please report it.
    pub const SOFTWARE: Self = Self(70);
    /// An output file or directory cannot be created or written.
    pub const CANT_CREATE: Self = Self(73);
    /// Any other I/O error.
    pub const IO: Self = Self(74);
    /// `record --pin-dir`: the directory holds another build's (or other options') pinned
    /// programs; `agent-audit unpin DIR` removes them.
    pub const PINNED_OTHER_BUILD: Self = Self(75);
    /// Missing privileges: not root, or lacking CAP_BPF / CAP_PERFMON / CAP_SYS_ADMIN.
    pub const NO_PERM: Self = Self(77);
}

impl ExitCode {
    /// The code for an input that could not be read: 66 when it does not exist, 74 for any
    /// other I/O error.
    pub fn for_read_error(err: &std::io::Error) -> Self {
        match err.kind() {
            std::io::ErrorKind::NotFound => Self::NO_INPUT,
            _ => Self::IO,
        }
    }
}

/// The table printed in `--help` and mirrored in docs/exit-codes.md.
pub const EXIT_CODES_HELP: &str = "\
EXIT CODES:
    0   success
    1   findings: `check` found errors, `verify` saw denials or the command failed,
        timed out or left processes running, `diff` found differences (see
        --fail-on), `audit`'s verify failed or its report has findings
    2   usage error
    65  malformed input: bad JSON (a key given twice included), unknown schema,
        architecture, syscall or (--caps-file) capability name; an allowlist
        listing a syscall twice or `name: null` for a number that has a name; a
        profile with more than 4096 distinct rules; not UTF-8, over 64 MiB, or not
        a regular file (FIFO, device); a profile `verify` cannot enforce (refused
        by libseccomp, or over the kernel's 4096-instruction limit)
    66  not found: cgroup (or a directory that is no cgroup), pid, container or input
        file
    69  unsupported host: no cgroup v2, no BTF, no sys_enter tracepoint, BPF refused;
        a container engine that does not answer, or cannot say where its
        containers' cgroups appear
    70  internal error (a bug)
    73  output cannot be written: also standard output closed at start (`>&-`), or
        another user's FIFO or device that stops reading (given 5 s)
    74  other I/O error (`--help` into a full device included); `record --metrics`
        cannot listen on its address
    75  `record --pin-dir DIR`: DIR holds programs pinned by another agent-audit build
        or with other options (`agent-audit unpin DIR` removes them)
    77  missing privileges (root, or CAP_BPF + CAP_PERFMON, or CAP_SYS_ADMIN)
    `run` exits with the command's own status (128+N if a signal N ended it) once the
    command has started; 127 if it was not found, 126 if it could not be executed, 74 if
    it could not be moved into its cgroup; the codes above apply to failures before that.";
