//! Argument values the generated profile refuses or allows by itself
//! (`data/argument-rules.json`): dangerous socket families, clone's namespace flags, the safe
//! personality values. Each entry carries its reason.

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
pub struct ArgumentRules {
    /// What the file is for.
    pub about: String,
    /// Address families of `socket` and `socketpair`.
    pub socket_families: SocketFamilies,
    /// `clone` flags that create namespaces.
    pub clone_namespace_flags: NamedValues,
    /// `personality` values that are always allowed.
    pub personality_safe: NamedValues,
    /// `ioctl` requests refused unless observed.
    pub ioctl_dangerous: IoctlRequests,
}

/// `ioctl` requests refused unless observed.
#[derive(Debug, Deserialize)]
pub struct IoctlRequests {
    /// Why the list exists.
    pub comment: String,
    /// The errno of a refusal rule.
    pub refused_errno: NamedErrno,
    /// The requests.
    pub values: Vec<NamedValue>,
}

/// Address families.
#[derive(Debug, Deserialize)]
pub struct SocketFamilies {
    /// Why families are restricted.
    pub comment: String,
    /// Families `0..known_below` exist (AF_MAX); higher ones the kernel refuses.
    pub known_below: u64,
    /// Families refused unless a recording saw them.
    pub dangerous: Vec<NamedValue>,
    /// The errno of a refusal rule (a refused family between allowed ones).
    pub refused_errno: NamedErrno,
}

/// The errno a refusal rule returns, with why it is not the default action's.
#[derive(Debug, Deserialize)]
pub struct NamedErrno {
    /// The number.
    pub value: u32,
    /// Its C name.
    pub name: String,
    /// Why this one.
    pub reason: String,
}

/// A list of values with a shared comment.
#[derive(Debug, Deserialize)]
pub struct NamedValues {
    /// Why the list exists.
    pub comment: String,
    /// The values.
    #[serde(alias = "flags")]
    pub values: Vec<NamedValue>,
}

/// One value with its name and reason.
#[derive(Debug, Deserialize)]
pub struct NamedValue {
    /// The number.
    pub value: u64,
    /// Its C name.
    pub name: String,
    /// Why it is listed.
    pub reason: String,
}

impl SocketFamilies {
    /// The dangerous entry for `family`.
    pub fn dangerous(&self, family: u64) -> Option<&NamedValue> {
        self.dangerous.iter().find(|f| f.value == family)
    }
}

impl NamedValues {
    /// The bitwise OR of every value (for flag lists).
    pub fn mask(&self) -> u64 {
        self.values.iter().fold(0, |m, v| m | v.value)
    }

    /// Names of the values set in `bits` (for flag lists).
    pub fn names_in(&self, bits: u64) -> Vec<&str> {
        self.values
            .iter()
            .filter(|v| bits & v.value != 0)
            .map(|v| v.name.as_str())
            .collect()
    }
}
