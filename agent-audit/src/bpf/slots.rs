//! Bookkeeping of target slots: which are free, which wait in the kernel's pool for a cgroup
//! created below a watched parent, and which count a target.

use std::collections::{HashMap, HashSet, VecDeque};

use super::TargetSlot;

/// The state of one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SlotState {
    /// Unused.
    Free,
    /// Zeroed and pushed to `FREE_SLOTS`; the kernel program may claim it at any time.
    Pooled,
    /// Counting this cgroup id.
    Target(u64),
}

/// Userspace's side of the slot pool: each slot's state, which slots need zeroing before
/// reuse, and the children of watched parents waiting for a slot.
pub(super) struct SlotPool {
    /// Every slot's state.
    pub(super) table: SlotTable,
    /// Slots that have counted before, whose counters and attribution must be cleared
    /// before reuse (the maps start zeroed).
    pub(super) used: HashSet<u32>,
    /// A parent is watched: every free slot is kept in the kernel's pool.
    pub(super) pooling: bool,
    /// Children of a watched parent that found every slot in use, first come first served
    /// when a slot frees.
    pub(super) waiting: VecDeque<u64>,
    /// Slots given to waiting children, not yet reported by `claimed_targets`.
    pub(super) assigned: Vec<(u64, TargetSlot)>,
    /// Targets an adopted recorder's programs counted, by cgroup id: `add_target` takes its
    /// slot back (counts kept) instead of a new one.
    pub(super) adopted: HashMap<u64, u32>,
}

impl SlotPool {
    /// `len` free slots, none used yet.
    pub(super) fn new(len: usize) -> Self {
        Self {
            table: SlotTable::new(len),
            used: HashSet::new(),
            pooling: false,
            waiting: VecDeque::new(),
            assigned: Vec::new(),
            adopted: HashMap::new(),
        }
    }
}

/// All slots of the per-target counter arrays.
pub(super) struct SlotTable(Vec<SlotState>);

impl SlotTable {
    pub(super) fn new(len: usize) -> Self {
        Self(vec![SlotState::Free; len])
    }

    pub(super) fn first_free(&self) -> Option<u32> {
        self.free().next()
    }

    pub(super) fn all_free(&self) -> Vec<u32> {
        self.free().collect()
    }

    /// The free slots' numbers (slot numbers are u32, as the kernel program's maps take them).
    fn free(&self) -> impl Iterator<Item = u32> + '_ {
        (0u32..)
            .zip(&self.0)
            .filter(|(_, s)| **s == SlotState::Free)
            .map(|(i, _)| i)
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn any_pooled(&self) -> bool {
        self.0.contains(&SlotState::Pooled)
    }

    pub(super) fn get(&self, slot: u32) -> SlotState {
        self.0
            .get(slot as usize)
            .copied()
            .unwrap_or(SlotState::Free)
    }

    pub(super) fn set(&mut self, slot: u32, state: SlotState) {
        if let Some(s) = self.0.get_mut(slot as usize) {
            *s = state;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_states() {
        let mut t = SlotTable::new(3);
        assert_eq!(t.first_free(), Some(0));
        t.set(0, SlotState::Target(7));
        t.set(1, SlotState::Pooled);
        assert_eq!(t.first_free(), Some(2));
        assert_eq!(t.all_free(), vec![2]);
        assert_eq!(t.get(0), SlotState::Target(7));
        t.set(2, SlotState::Pooled);
        assert_eq!(t.first_free(), None);
        assert_eq!(t.get(99), SlotState::Free);
    }
}
