//! The baseline: syscalls a profile allows although the recording may not show them.

use serde::Deserialize;

/// Baseline groups in the order profiles list them.
#[derive(Debug, Deserialize)]
pub struct Baseline {
    /// Why a baseline exists and how the runtime group was measured.
    pub about: String,
    /// The groups.
    pub groups: Vec<BaselineGroup>,
}

/// Baseline syscalls that exist for the same reason.
#[derive(Debug, Deserialize)]
pub struct BaselineGroup {
    /// Stable identifier (`runtime`, `vdso`, `kernel`).
    pub id: String,
    /// Human title.
    pub title: String,
    /// Why the group is needed.
    pub comment: String,
    /// The syscalls, each with its reason.
    pub syscalls: Vec<BaselineEntry>,
}

/// One baseline syscall.
#[derive(Debug, Deserialize)]
pub struct BaselineEntry {
    /// Syscall name.
    pub name: String,
    /// Why it is allowed without being observed.
    pub reason: String,
}

impl Baseline {
    /// Every entry with its group, in file order.
    pub fn entries(&self) -> impl Iterator<Item = (&BaselineGroup, &BaselineEntry)> {
        self.groups
            .iter()
            .flat_map(|g| g.syscalls.iter().map(move |e| (g, e)))
    }

    /// The entry for `name`, with its group.
    pub fn entry(&self, name: &str) -> Option<(&BaselineGroup, &BaselineEntry)> {
        self.entries().find(|(_, e)| e.name == name)
    }
}
