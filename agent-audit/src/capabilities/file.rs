//! Reading `capabilities.json` back (`--caps-file` of `check`, `diff` and `verify`): its
//! `drop` and `add` lists, each name one this version knows, and the set Docker gives a
//! container run with them.

use std::path::{Path, PathBuf};

use super::NAMES;
use crate::exit::ExitCode;
use crate::fsutil::{self, InputError};
use crate::seccomp::container::{Capabilities, CapabilityLists};

/// Why a `--caps-file` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CapsFileError {
    /// Missing, unreadable, not a regular file, too large, not UTF-8.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Not JSON of `capabilities.json`'s shape.
    #[error(
        "{path} is not a capabilities file (`{{\"drop\": [\"ALL\"], \"add\": [\"CHOWN\", …]}}`, as \
         `profile` writes it beside the profile): {source}"
    )]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A name in `drop` or `add` that is no capability.
    #[error(
        "{path}: {name:?} in `{list}` is not a capability name (CHOWN, CAP_SYS_ADMIN, … or ALL)"
    )]
    UnknownName {
        /// The file.
        path: PathBuf,
        /// `drop` or `add`.
        list: &'static str,
        /// The name.
        name: String,
    },
}

impl CapsFileError {
    /// 65 for a malformed file, the input's own code (66 when it does not exist) otherwise.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CapsFileError::Input(e) => e.exit_code(),
            CapsFileError::Json { .. } | CapsFileError::UnknownName { .. } => ExitCode::DATA,
        }
    }
}

/// A `capabilities.json` read: its lists and the set they give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapsFile {
    /// `drop` and `add` as written.
    pub lists: CapabilityLists,
    /// The container's set with them (Docker's rule).
    pub caps: Capabilities,
}

impl CapsFile {
    /// Reads and checks `path`.
    pub fn read(path: &Path) -> Result<Self, CapsFileError> {
        let text = fsutil::read_input(path)?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self, CapsFileError> {
        let lists: CapabilityLists =
            serde_json::from_str(text).map_err(|source| CapsFileError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        for (list, names) in [("drop", &lists.drop), ("add", &lists.add)] {
            if let Some(name) = names.iter().find(|n| !is_capability(n)) {
                return Err(CapsFileError::UnknownName {
                    path: path.to_path_buf(),
                    list,
                    name: name.clone(),
                });
            }
        }
        let caps = lists
            .resolve()
            .expect("names checked above resolve into a set");
        Ok(Self { lists, caps })
    }
}

/// `ALL`, or a capability name this version knows, with or without `CAP_`, in any case.
fn is_capability(name: &str) -> bool {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    bare == "ALL" || NAMES.contains(&bare)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CapsFile, CapsFileError> {
        CapsFile::parse(text, Path::new("capabilities.json"))
    }

    #[test]
    fn the_written_file_reads_back_as_its_set() {
        let file = parse(
            r#"{"drop": ["ALL"], "add": ["CHOWN", "cap_setuid"],
                "reasons": {"CHOWN": {"checks": 2}}}"#,
        )
        .unwrap();
        assert!(file.caps.has("CAP_CHOWN") && file.caps.has("CAP_SETUID"));
        assert!(!file.caps.has("CAP_KILL"), "{:?}", file.caps);
        let none = parse(r#"{"drop": ["ALL"], "add": []}"#).unwrap();
        assert_eq!(none.caps, Capabilities::Set(Default::default()));
        // Without `ALL` dropped, Docker's default set is the start, as for `CapDrop`.
        let default_less = parse(r#"{"drop": ["NET_RAW"]}"#).unwrap();
        assert!(default_less.caps.has("CAP_KILL") && !default_less.caps.has("CAP_NET_RAW"));
    }

    #[test]
    fn a_bad_name_or_shape_is_malformed_input() {
        let err = parse(r#"{"drop": ["ALL"], "add": ["CHOWN", "SYS_WIZARD"]}"#).unwrap_err();
        assert!(err.to_string().contains("\"SYS_WIZARD\" in `add`"), "{err}");
        assert_eq!(err.exit_code(), ExitCode::DATA);
        let err = parse(r#"{"drop": "ALL"}"#).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::DATA);
        let err = parse(r#"{"add": [], "add": ["CHOWN"]}"#).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::DATA, "{err}");
    }
}
