//! `profile`: merge allowlists and generate a deny-by-default seccomp profile that explains
//! itself.
//!
//! [`merge`] unions recordings, [`build`] turns them into a [`model::ProfilePlan`] (rules and
//! actions, no file format), and the frontends write it: [`oci`] (Docker/OCI JSON), [`spo`]
//! (Kubernetes Security Profiles Operator resource) and [`rationale`] (Markdown).

mod arg_rules;
pub mod args;
pub mod build;
pub mod merge;
pub mod model;
pub mod oci;
pub mod rationale;
pub mod spo;
pub mod translate;

use std::path::{Path, PathBuf};

use crate::allowlist::{Allowlist, AllowlistError};
use crate::fsutil::OutputError;
use crate::seccomp::{ProfileFileError, SeccompProfile};
use crate::syscalls::Arch;

pub use merge::Merged;
pub use model::ProfilePlan;

/// `--allow NAME --reason TEXT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExplicitAllow {
    /// Syscall name.
    pub name: String,
    /// Why the risk is accepted (or why an unobserved call is needed).
    pub reason: String,
}

/// A profile to start from (`--base`).
#[derive(Clone, Debug, PartialEq)]
pub struct BaseProfile {
    /// How comments name it (its path as given).
    pub label: String,
    /// The profile.
    pub profile: SeccompProfile,
}

/// How to generate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProfileOptions {
    /// Arches to list besides the observed ones (`--arch`).
    pub extra_arches: Vec<Arch>,
    /// Include the baseline (off with `--no-baseline`).
    pub baseline: bool,
    /// `--allow NAME --reason TEXT` pairs.
    pub allows: Vec<ExplicitAllow>,
    /// The timing-dependent calls `audit` allows (`data/timing-dependent.json`), each with
    /// its reason: allowed like `--allow`, and said to be `audit`'s, not the user's.
    pub timing_allows: Vec<ExplicitAllow>,
    /// `--base PROFILE`.
    pub base: Option<BaseProfile>,
    /// `--keep-base-allows`.
    pub keep_base_allows: bool,
    /// `--args`: how far recorded argument values narrow `ioctl`.
    pub args_mode: args::ArgsMode,
}

/// Why a profile could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// An input allowlist is unreadable or invalid.
    #[error(transparent)]
    Allowlist(#[from] AllowlistError),
    /// The `--base` profile is unreadable or invalid.
    #[error("--base: {0}")]
    Base(ProfileFileError),
    /// The same input was given twice.
    #[error("{path} is given twice; each recording may be merged only once")]
    DuplicateInput {
        /// The path.
        path: PathBuf,
    },
    /// No syscall in any input, and no `--arch`.
    #[error(
        "the allowlists contain no named syscall, so there is no architecture to list \
         (give --arch, or check the recording)"
    )]
    NothingObserved,
    /// `--allow` names a syscall that none of the listed arches has.
    #[error("--allow {name}: no such syscall on the profile's architectures ({arches})")]
    UnknownAllow {
        /// The name.
        name: String,
        /// The listed arches.
        arches: String,
    },
    /// `--allow` given twice for one name.
    #[error("--allow {name} is given twice")]
    DuplicateAllow {
        /// The name.
        name: String,
    },
    /// `--reason` is empty.
    #[error("--allow {name}: --reason must say why the call is allowed")]
    EmptyReason {
        /// The name.
        name: String,
    },
    /// The Kubernetes object would be refused by the API server.
    #[error("the SeccompProfile object would be refused: {0}")]
    Spo(#[from] crate::seccomp::spo::SpoError),
    /// The output cannot be written.
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl ProfileError {
    /// The documented exit code: the input's or output's, 2 for contradictory options, 65
    /// when the inputs cannot make a profile.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        use crate::exit::ExitCode;
        match self {
            ProfileError::Allowlist(e) => e.exit_code(),
            ProfileError::Base(e) => e.exit_code(),
            ProfileError::Output(e) => e.exit_code(),
            ProfileError::DuplicateInput { .. }
            | ProfileError::DuplicateAllow { .. }
            | ProfileError::EmptyReason { .. } => ExitCode::USAGE,
            ProfileError::NothingObserved
            | ProfileError::UnknownAllow { .. }
            | ProfileError::Spo(_) => ExitCode::DATA,
        }
    }

    /// Whether this is a missing input file.
    pub fn is_not_found(&self) -> bool {
        match self {
            ProfileError::Allowlist(AllowlistError::Read(e)) => e.is_not_found(),
            ProfileError::Base(ProfileFileError::Read(e)) => e.is_not_found(),
            _ => false,
        }
    }
}

/// Reads and merges allowlist files. Paths must be distinct.
pub fn read_and_merge(paths: &[PathBuf]) -> Result<Merged, ProfileError> {
    Ok(Merged::new(read_allowlists(paths)?))
}

/// Reads allowlist files, each labelled with its path as given. Paths must be distinct.
pub fn read_allowlists(paths: &[PathBuf]) -> Result<Vec<(String, Allowlist)>, ProfileError> {
    let mut inputs = Vec::with_capacity(paths.len());
    let mut labels = std::collections::BTreeSet::new();
    for path in paths {
        let label = merge::label_of(path);
        if !labels.insert(label.clone()) {
            return Err(ProfileError::DuplicateInput { path: path.clone() });
        }
        inputs.push((label, Allowlist::read(path)?));
    }
    Ok(inputs)
}

/// Reads a `--base` profile.
pub fn read_base(path: &Path) -> Result<BaseProfile, ProfileError> {
    let profile = SeccompProfile::read(path).map_err(ProfileError::Base)?;
    Ok(BaseProfile {
        label: path.display().to_string(),
        profile,
    })
}

#[cfg(test)]
mod tests;
