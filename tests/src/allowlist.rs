//! Reading allowlist files as plain JSON: the tests check the file format the README documents,
//! not the library's own types, so a change to the format shows up here.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

/// A parsed allowlist file.
#[derive(Clone, Debug)]
pub struct Allowlist(pub Value);

impl Allowlist {
    /// Reads and parses `path`, panicking with its text if it is not JSON.
    pub fn read(path: &Path) -> Self {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read allowlist {}: {e}", path.display()));
        Self::parse(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}):\n{text}", path.display()))
    }

    /// Parses allowlist text.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text).map(Self)
    }

    /// Calls of the syscall `name`, summed over architectures.
    pub fn count(&self, name: &str) -> u64 {
        self.syscalls()
            .iter()
            .filter(|s| s["name"].as_str() == Some(name))
            .map(|s| s["count"].as_u64().expect("count is a number"))
            .sum()
    }

    /// The names of every syscall seen.
    pub fn names(&self) -> BTreeSet<String> {
        self.syscalls()
            .iter()
            .filter_map(|s| s["name"].as_str().map(str::to_string))
            .collect()
    }

    /// The `syscalls` array.
    pub fn syscalls(&self) -> &Vec<Value> {
        self.0["syscalls"]
            .as_array()
            .unwrap_or_else(|| panic!("no syscalls array in {:#}", self.0))
    }

    /// `complete`: true only for the final file.
    pub fn complete(&self) -> bool {
        self.0["complete"]
            .as_bool()
            .unwrap_or_else(|| panic!("no complete flag in {:#}", self.0))
    }

    /// `recorder.attach`: `tp_btf` or `raw_tp`.
    pub fn attach(&self) -> &str {
        self.0["recorder"]["attach"].as_str().unwrap_or_default()
    }

    /// `totals.calls`.
    pub fn total_calls(&self) -> u64 {
        self.0["totals"]["calls"].as_u64().unwrap_or_default()
    }

    /// The `target` object.
    pub fn target(&self) -> &Value {
        &self.0["target"]
    }

    /// Panics unless every one of `names` was seen, listing what was.
    pub fn assert_has(&self, names: &[&str]) {
        let seen = self.names();
        let missing: Vec<_> = names.iter().filter(|n| !seen.contains(**n)).collect();
        assert!(
            missing.is_empty(),
            "missing {missing:?}; the allowlist has {seen:?}"
        );
    }

    /// Panics unless at least one of `names` was seen (for calls whose variant depends on the
    /// libc or busybox build, e.g. fork vs clone vs clone3).
    pub fn assert_has_one_of(&self, names: &[&str]) {
        let seen = self.names();
        assert!(
            names.iter().any(|n| seen.contains(*n)),
            "none of {names:?}; the allowlist has {seen:?}"
        );
    }
}
