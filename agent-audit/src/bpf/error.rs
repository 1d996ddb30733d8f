//! What can go wrong between this process and the kernel, down to the OS error.

use std::path::PathBuf;

use agent_audit_ebpf::MAX_TARGETS;

/// What went wrong between this process and the kernel.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// `tp_btf` was asked for and there is no BTF.
    #[error(
        "this kernel has no BTF ({path} is missing; needs CONFIG_DEBUG_INFO_BTF=y): \
         tp_btf cannot attach. Use `--attach raw-tp` or `--attach auto`"
    )]
    NoBtf {
        /// The BTF file looked for.
        path: PathBuf,
    },
    /// The object could not be loaded (maps created, programs verified).
    #[error("loading the kernel program failed: {0}")]
    Load(#[source] aya::EbpfError),
    /// A program was rejected or could not be attached.
    #[error(
        "loading or attaching the {attach} program failed: {} (the kernel needs \
         CONFIG_BPF_EVENTS and CONFIG_FTRACE_SYSCALLS; run with -vv for the whole verifier log)",
        summarize(.source)
    )]
    Attach {
        /// `tp_btf` or `raw_tp`.
        attach: &'static str,
        /// aya's error, with the verifier log when there is one.
        source: aya::programs::ProgramError,
    },
    /// A map is missing from the object or an operation on it failed.
    #[error("BPF map {name}: {source}")]
    Map {
        /// Map name.
        name: &'static str,
        /// aya's error.
        source: aya::maps::MapError,
    },
    /// The object lacks an expected map or program (a build mismatch).
    #[error("the embedded kernel program has no {0}: rebuild with `cargo xtask build`")]
    Missing(&'static str),
    /// A pin directory could not be used (`record --pin-dir`, `unpin`).
    #[error(transparent)]
    Pin(#[from] super::pin::PinError),
    /// All target slots are in use.
    #[error("at most {MAX_TARGETS} targets can be watched at once")]
    TooManyTargets,
}

/// aya's error with a verifier log cut to its last lines: the reason is at the end, and the
/// whole log (thousands of lines) buries it. The full log goes to the debug log.
fn summarize(err: &aya::programs::ProgramError) -> String {
    const TAIL: usize = 8;
    match err {
        aya::programs::ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            tracing::debug!("verifier log:\n{log}");
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(TAIL)..].join("\n    ");
            format!("{io_error}; verifier said:\n    {tail}\n")
        }
        other => other.to_string(),
    }
}

impl BpfError {
    /// Whether the kernel refused for lack of privileges (EPERM/EACCES), found by walking
    /// the error's sources down to the OS error.
    pub fn is_permission_denied(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(err) = cause {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::PermissionDenied
                    || matches!(io.raw_os_error(), Some(libc::EPERM | libc::EACCES))
                {
                    return true;
                }
            }
            cause = err.source();
        }
        false
    }

    /// The documented exit code: 77 for missing privileges, 70 for a build mismatch or a
    /// failed map operation (a bug), 2 for too many targets, 69 when the kernel cannot run
    /// the program.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        use crate::exit::ExitCode;
        match self {
            BpfError::Pin(e @ super::pin::PinError::OtherBuild { .. }) => e.exit_code(),
            e if e.is_permission_denied() => ExitCode::NO_PERM,
            BpfError::Pin(e) => e.exit_code(),
            BpfError::Map { .. } | BpfError::Missing(_) => ExitCode::SOFTWARE,
            BpfError::TooManyTargets => ExitCode::USAGE,
            BpfError::NoBtf { .. } | BpfError::Load(_) | BpfError::Attach { .. } => {
                ExitCode::UNAVAILABLE
            }
        }
    }
}
