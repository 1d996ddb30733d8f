//! Bookkeeping of target slots: which are free, which wait in the kernel's pool for a cgroup
//! created below a watched parent, and which count a target.

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
