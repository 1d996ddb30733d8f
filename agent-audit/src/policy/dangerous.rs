//! The dangerous set: syscalls a container profile should deny even when they were observed.

use serde::Deserialize;

/// Every dangerous syscall, grouped by why it is dangerous.
#[derive(Debug, Deserialize)]
pub struct DangerousSet {
    /// What the set is for.
    pub about: String,
    /// Categories in the order profiles list them.
    pub categories: Vec<DangerousCategory>,
}

/// A group of dangerous syscalls that share a reason.
#[derive(Debug, Deserialize)]
pub struct DangerousCategory {
    /// Stable identifier (`process-inspection`, …), used in JSON output.
    pub id: String,
    /// Human title.
    pub title: String,
    /// Why this group is dangerous; becomes the deny rule's comment.
    pub comment: String,
    /// The syscalls, each with its own reason.
    pub syscalls: Vec<DangerousEntry>,
}

/// One dangerous syscall.
#[derive(Debug, Deserialize)]
pub struct DangerousEntry {
    /// Syscall name.
    pub name: String,
    /// Why it is dangerous.
    pub reason: String,
}

impl DangerousSet {
    /// Whether `name` is dangerous.
    pub fn contains(&self, name: &str) -> bool {
        self.entry(name).is_some()
    }

    /// The entry for `name`.
    pub fn entry(&self, name: &str) -> Option<&DangerousEntry> {
        self.categories
            .iter()
            .flat_map(|c| &c.syscalls)
            .find(|e| e.name == name)
    }

    /// The category `name` belongs to.
    pub fn category_of(&self, name: &str) -> Option<&DangerousCategory> {
        self.categories
            .iter()
            .find(|c| c.syscalls.iter().any(|e| e.name == name))
    }

    /// Every dangerous name, in category order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.categories
            .iter()
            .flat_map(|c| &c.syscalls)
            .map(|e| e.name.as_str())
    }
}
