//! Cross-arch translation tables: which names stand for an observed call on another arch.

use serde::Deserialize;

/// The translation data.
#[derive(Debug, Deserialize)]
pub struct Translations {
    /// How the tables are applied.
    pub about: String,
    /// `*_time64` twins of calls that take a `time_t` (32-bit ABIs only).
    pub time64: Vec<Time64Twin>,
    /// Families of equivalent names, applied to arches that were not observed.
    pub families: Vec<Family>,
    /// Names that need no equivalent on arches that lack them, and why.
    pub none_needed: Vec<NoneNeeded>,
}

/// A call and its 64-bit-time twin.
#[derive(Debug, Deserialize)]
pub struct Time64Twin {
    /// The call (e.g. `clock_gettime`).
    pub name: String,
    /// Its twin (e.g. `clock_gettime64`).
    pub twin: String,
}

/// A group of translations that exist for the same reason.
#[derive(Debug, Deserialize)]
pub struct Family {
    /// Stable identifier (`abi32`, `legacy-to-modern`, `modern-to-legacy`).
    pub id: String,
    /// What the family is.
    pub comment: String,
    /// Its entries.
    pub entries: Vec<FamilyEntry>,
}

/// When `name` is allowed, `also` stands for it on arches that have those names.
#[derive(Debug, Deserialize)]
pub struct FamilyEntry {
    /// The observed name.
    pub name: String,
    /// Names allowed alongside it on a translated arch, where they exist.
    pub also: Vec<String>,
    /// Why.
    pub reason: String,
}

/// A name whose absence on an arch is harmless.
#[derive(Debug, Deserialize)]
pub struct NoneNeeded {
    /// Syscall name.
    pub name: String,
    /// Why no equivalent is needed.
    pub reason: String,
}

impl Translations {
    /// The `*_time64` twin of `name`, if it has one.
    pub fn time64_twin(&self, name: &str) -> Option<&str> {
        self.time64
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.twin.as_str())
    }

    /// Every family entry for `name`, with its family.
    pub fn entries_for<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (&'a Family, &'a FamilyEntry)> + 'a {
        self.families.iter().flat_map(move |f| {
            f.entries
                .iter()
                .filter(move |e| e.name == name)
                .map(move |e| (f, e))
        })
    }

    /// Why `name` needs no equivalent where it does not exist, if that is known.
    pub fn none_needed(&self, name: &str) -> Option<&str> {
        self.none_needed
            .iter()
            .find(|n| n.name == name)
            .map(|n| n.reason.as_str())
    }
}
