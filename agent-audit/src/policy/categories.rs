//! The category of every syscall name (file, network, process, …), for grouping in reports.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The category table.
#[derive(Debug, Deserialize)]
pub struct Categories {
    /// What the table covers.
    pub about: String,
    /// Every category, in display order.
    pub categories: Vec<Category>,
    syscalls: BTreeMap<String, String>,
}

/// One category of syscalls.
#[derive(Debug, Deserialize)]
pub struct Category {
    /// Stable identifier used in JSON output (`file`, `network`, …).
    pub id: String,
    /// Short human title.
    pub title: String,
    /// What the calls in it do.
    pub description: String,
}

impl Categories {
    /// The category id of `name`.
    pub fn of(&self, name: &str) -> Option<&str> {
        self.syscalls.get(name).map(String::as_str)
    }

    /// The category with this id.
    pub fn get(&self, id: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.id == id)
    }

    /// Every categorised name with its category id, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.syscalls.iter().map(|(n, c)| (n.as_str(), c.as_str()))
    }
}
