//! Adopting the maps and programs an earlier recorder pinned (`record --pin-dir`): nothing is
//! attached, the slot pool is rebuilt from the kernel's own maps, and every target keeps its
//! slot and its counts — the calls made while no recorder ran included.

use agent_audit_ebpf::{
    MAP_FREE_SLOTS, MAP_TARGETS, MAP_TARGET_GENERATION, NO_TARGET, WATCH_PARENT,
};
use aya::maps::{Array, HashMap, MapData, Queue};

use super::pin::PinState;
use super::slots::SlotState;
use super::{map_mut, map_ref, BpfError, SyscallCounter};

impl SyscallCounter {
    /// Takes over the pinned programs described by `state`.
    pub(super) fn adopt(&mut self, state: &PinState) -> Result<(), BpfError> {
        self.adopted = true;
        self.attach = state.sys_enter_kind();
        self.counts_refusals = state.refusals;
        self.departures_watched = state.departures;
        self.capability_hook = state.capability_hook();
        self.refusal_btfs = None;
        self.take_exec_events()?;
        self.generation = self.current_generation()?;
        self.rebuild_pool()?;
        // The earlier recorder's last reads are not this one's: every slot is read once.
        if let Some(dirty) = &self.dirty {
            dirty.mark_all();
        }
        self.bump_generation()
    }

    /// The slot pool as the kernel holds it: slots in `FREE_SLOTS` stay pooled; slots with a
    /// target are marked pooled as well, so that [`Self::claimed_targets`] reports those not
    /// taken back by [`Self::add_target`] (targets born or ended while no recorder ran); every
    /// other slot is free and counts as used (zeroed before reuse).
    fn rebuild_pool(&mut self) -> Result<(), BpfError> {
        let pooled = self.drain_free_slots()?;
        {
            let mut queue: Queue<&mut MapData, u32> = map_mut(&mut self.ebpf, MAP_FREE_SLOTS)?;
            for &slot in &pooled {
                queue.push(slot, 0).map_err(|source| BpfError::Map {
                    name: MAP_FREE_SLOTS,
                    source,
                })?;
            }
        }
        let targets: HashMap<&MapData, u64, u32> = map_ref(&self.ebpf, MAP_TARGETS)?;
        let mut counting = Vec::new();
        for entry in targets.iter() {
            let (cgroup_id, slot) = entry.map_err(|source| BpfError::Map {
                name: MAP_TARGETS,
                source,
            })?;
            if slot & WATCH_PARENT == 0 && slot != NO_TARGET {
                counting.push((cgroup_id, slot));
            }
        }
        let slots = u32::try_from(self.pool.table.len()).unwrap_or(u32::MAX);
        for slot in 0..slots {
            self.pool.used.insert(slot);
        }
        for slot in pooled {
            self.pool.table.set(slot, SlotState::Pooled);
        }
        for (cgroup_id, slot) in counting {
            self.pool.table.set(slot, SlotState::Pooled);
            self.pool.adopted.insert(cgroup_id, slot);
        }
        // A parent was watched: free slots go back to the kernel's pool as before.
        self.pool.pooling = self.pool.table.any_pooled();
        Ok(())
    }

    /// Every slot in the kernel's pool, taken out.
    fn drain_free_slots(&mut self) -> Result<Vec<u32>, BpfError> {
        let mut queue: Queue<&mut MapData, u32> = map_mut(&mut self.ebpf, MAP_FREE_SLOTS)?;
        let mut slots = Vec::new();
        loop {
            match queue.pop(0) {
                Ok(slot) => slots.push(slot),
                Err(aya::maps::MapError::ElementNotFound) => return Ok(slots),
                Err(source) => {
                    return Err(BpfError::Map {
                        name: MAP_FREE_SLOTS,
                        source,
                    })
                }
            }
        }
    }

    fn current_generation(&self) -> Result<u32, BpfError> {
        let gen: Array<&MapData, u32> = map_ref(&self.ebpf, MAP_TARGET_GENERATION)?;
        gen.get(&0, 0).map_err(|source| BpfError::Map {
            name: MAP_TARGET_GENERATION,
            source,
        })
    }
}
