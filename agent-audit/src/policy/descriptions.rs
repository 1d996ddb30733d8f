//! One line per syscall name: what the call does.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The description table.
#[derive(Debug, Deserialize)]
pub struct Descriptions {
    /// What the table covers.
    pub about: String,
    descriptions: BTreeMap<String, String>,
}

impl Descriptions {
    /// The one-line description of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.descriptions.get(name).map(String::as_str)
    }

    /// Every described name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.descriptions.keys().map(String::as_str)
    }
}
