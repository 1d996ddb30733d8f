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
        self.0
            .iter()
            .position(|s| *s == SlotState::Free)
            .map(|i| i as u32)
    }

    pub(super) fn all_free(&self) -> Vec<u32> {
        (0..self.0.len() as u32)
            .filter(|&i| self.0[i as usize] == SlotState::Free)
            .collect()
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
