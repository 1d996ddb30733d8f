//! The target set: cgroups added by userspace, parents watched so that the kernel program
//! claims their new children from the pool of free slots, children that found the pool empty,
//! exclusions, and slots zeroed and handed out again when targets end.

use agent_audit_ebpf::{
    ClaimedName, SyscallCounters, MAP_CLAIMED_NAMES, MAP_COUNTERS, MAP_EXIT_COUNTERS,
    MAP_FREE_SLOTS, MAP_INIT_COUNTERS, MAP_INIT_EXIT_COUNTERS, MAP_PHASE, MAP_STARVED, MAP_TARGETS,
    MAP_TARGET_GENERATION, NO_TARGET, PHASE_RUNTIME_INIT, PHASE_WORKLOAD, WATCH_PARENT,
};
use aya::maps::{Array, HashMap, MapData, Queue};

use super::slots::SlotState;
use super::{map_mut, map_ref, BpfError, ExitCounting, SyscallCounter, TargetSlot};

impl SyscallCounter {
    /// Starts counting tasks in `cgroup_id` and every cgroup below it. Counters start at 0.
    pub fn add_target(&mut self, cgroup_id: u64) -> Result<TargetSlot, BpfError> {
        self.add_target_in_phase(cgroup_id, PHASE_WORKLOAD)
    }

    /// Like [`Self::add_target`], for an empty cgroup a launcher is about to exec a command
    /// in: the calls made before the target's first completed exec (the launcher's own, between
    /// fork and exec) are counted apart, in the runtime-init counters, exactly as a container
    /// runtime's init is for a cgroup claimed below a watched parent.
    pub fn add_target_before_exec(&mut self, cgroup_id: u64) -> Result<TargetSlot, BpfError> {
        self.add_target_in_phase(cgroup_id, PHASE_RUNTIME_INIT)
    }

    fn add_target_in_phase(&mut self, cgroup_id: u64, phase: u32) -> Result<TargetSlot, BpfError> {
        if let Some(slot) = self.pool.adopted.remove(&cgroup_id) {
            // Counted since an earlier recorder added it: its counts and phase are kept.
            self.pool.table.set(slot, SlotState::Target(cgroup_id));
            return Ok(TargetSlot(slot));
        }
        let slot = self
            .pool
            .table
            .first_free()
            .ok_or(BpfError::TooManyTargets)?;
        self.prepare_slot(slot, phase)?;
        self.targets_insert(cgroup_id, slot)?;
        self.pool.table.set(slot, SlotState::Target(cgroup_id));
        // Only now invalidate cached verdicts: a task that resolves its cgroup concurrently
        // either sees the new target or stores the old generation and resolves again.
        self.bump_generation()?;
        Ok(TargetSlot(slot))
    }

    /// Makes every cgroup created below `cgroup_id` a target of its own from its first
    /// syscall on (see `WATCH_PARENT`). New targets are reported by [`Self::claimed_targets`].
    pub fn watch_parent(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        self.pool.pooling = true;
        self.refill_pool()?;
        self.targets_insert(cgroup_id, WATCH_PARENT)?;
        self.bump_generation()
    }

    /// Puts every free slot, zeroed, into the kernel's pool: a burst of new cgroups can take
    /// them all at once. Called whenever a slot frees, so the pool is never short of a slot
    /// that exists. Bumps the generation when it added any, so that children which found the
    /// pool empty (see [`Self::drain_starved`]) claim one on their next syscall.
    fn refill_pool(&mut self) -> Result<(), BpfError> {
        let free = self.pool.table.all_free();
        if free.is_empty() {
            return Ok(());
        }
        // A cgroup claimed from the pool is new: its first calls are the runtime's init.
        self.prepare_slots(&free, PHASE_RUNTIME_INIT)?;
        for slot in free {
            let mut pool: Queue<&mut MapData, u32> = map_mut(&mut self.ebpf, MAP_FREE_SLOTS)?;
            pool.push(slot, 0).map_err(|source| BpfError::Map {
                name: MAP_FREE_SLOTS,
                source,
            })?;
            self.pool.table.set(slot, SlotState::Pooled);
        }
        self.bump_generation()
    }

    /// Slots are free again after targets ended: they go to the children that have waited
    /// longest for one, the rest back to the pool at once when pooling.
    fn slot_freed(&mut self) -> Result<(), BpfError> {
        // Old verdicts naming the slots are invalid before they are zeroed and handed out,
        // and so are the execs of their last owners.
        self.bump_generation()?;
        for slot in self.pool.table.all_free() {
            self.forget_execs(slot);
        }
        while let Some(slot) = self.pool.table.first_free() {
            let Some(child) = self.pool.waiting.pop_front() else {
                break;
            };
            self.assign_free_slot(child, slot)?;
        }
        if self.pool.pooling {
            self.refill_pool()?;
        }
        Ok(())
    }

    /// Gives free `slot` to `child`, a child of a watched parent that found the pool empty.
    /// It is counted from its next syscall on, all of it as the workload's (its runtime's
    /// init may be over). Nothing is done if it has an entry already (claimed from the pool
    /// meanwhile, or excluded).
    fn assign_free_slot(&mut self, child: u64, slot: u32) -> Result<(), BpfError> {
        self.prepare_slot(slot, PHASE_WORKLOAD)?;
        if self.insert_new_entry(child, slot)? {
            self.pool.table.set(slot, SlotState::Target(child));
            self.pool.assigned.push((child, TargetSlot(slot)));
            self.bump_generation()?;
        }
        Ok(())
    }

    /// Gives `child` (which found no slot, see [`Self::drain_starved`]) a slot from the pool
    /// if one is there by now, else queues it for the next slot that frees; either way it is
    /// reported by [`Self::claimed_targets`] once it has one.
    pub fn wait_for_slot(&mut self, child: u64) -> Result<(), BpfError> {
        if self.pool.waiting.contains(&child) {
            return Ok(());
        }
        if let Some(slot) = self.pop_pooled()? {
            if self.insert_new_entry(child, slot)? {
                self.set_phase(slot, PHASE_WORKLOAD)?;
                self.pool.table.set(slot, SlotState::Target(child));
                self.pool.assigned.push((child, TargetSlot(slot)));
                return self.bump_generation();
            }
            // It has an entry (claimed meanwhile, or excluded): the slot goes back.
            self.pool.table.set(slot, SlotState::Free);
            return self.refill_pool();
        }
        self.pool.waiting.push_back(child);
        Ok(())
    }

    /// Takes a slot out of the kernel's pool, if it has one.
    fn pop_pooled(&mut self) -> Result<Option<u32>, BpfError> {
        let mut pool: Queue<&mut MapData, u32> = map_mut(&mut self.ebpf, MAP_FREE_SLOTS)?;
        match pool.pop(0) {
            Ok(slot) => Ok(Some(slot)),
            Err(aya::maps::MapError::ElementNotFound) => Ok(None),
            Err(source) => Err(BpfError::Map {
                name: MAP_FREE_SLOTS,
                source,
            }),
        }
    }

    /// Drops `child` from the queue of [`Self::wait_for_slot`] (it is gone).
    pub fn stop_waiting(&mut self, child: u64) {
        self.pool.waiting.retain(|&c| c != child);
    }

    /// Children of a watched parent that found every slot in use since the last call:
    /// (cgroup id, `CLOCK_MONOTONIC` ns of their first call without a slot). Drained: a child
    /// that misses again (no slot freed yet) is reported again.
    pub fn drain_starved(&mut self) -> Result<Vec<(u64, u64)>, BpfError> {
        let err = |source| BpfError::Map {
            name: MAP_STARVED,
            source,
        };
        let mut starved: HashMap<&mut MapData, u64, u64> = map_mut(&mut self.ebpf, MAP_STARVED)?;
        let found: Vec<(u64, u64)> = starved.iter().collect::<Result<_, _>>().map_err(err)?;
        for (id, _) in &found {
            match starved.remove(id) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(source) => return Err(err(source)),
            }
        }
        Ok(found)
    }

    /// Targets created since the last call: claimed by the kernel program from the pool, or
    /// given a slot after waiting for one ([`Self::wait_for_slot`]): (cgroup id, slot).
    pub fn claimed_targets(&mut self) -> Result<Vec<(u64, TargetSlot)>, BpfError> {
        let targets: HashMap<&MapData, u64, u32> = map_ref(&self.ebpf, MAP_TARGETS)?;
        let mut claimed = std::mem::take(&mut self.pool.assigned);
        for entry in targets.iter() {
            let (cgroup_id, slot) = entry.map_err(|source| BpfError::Map {
                name: MAP_TARGETS,
                source,
            })?;
            if slot & WATCH_PARENT == 0 && self.pool.table.get(slot) == SlotState::Pooled {
                claimed.push((cgroup_id, TargetSlot(slot)));
            }
        }
        for (cgroup_id, slot) in &claimed {
            self.pool.adopted.remove(cgroup_id);
            self.pool.table.set(slot.0, SlotState::Target(*cgroup_id));
            self.stop_waiting(*cgroup_id);
        }
        Ok(claimed)
    }

    /// The name and parent id the kernel program recorded when it claimed `slot` for
    /// `cgroup_id` (see `MAP_CLAIMED_NAMES`): `None` when it recorded none for that cgroup.
    pub fn claimed_name(
        &self,
        slot: TargetSlot,
        cgroup_id: u64,
    ) -> Result<Option<(u64, String)>, BpfError> {
        let names: Array<&MapData, ClaimedName> = map_ref(&self.ebpf, MAP_CLAIMED_NAMES)?;
        let entry = names.get(&slot.0, 0).map_err(|source| BpfError::Map {
            name: MAP_CLAIMED_NAMES,
            source,
        })?;
        if entry.id != cgroup_id {
            return Ok(None);
        }
        let len = entry
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(entry.name.len());
        let name = String::from_utf8_lossy(&entry.name[..len]).into_owned();
        Ok((!name.is_empty()).then_some((entry.parent_id, name)))
    }

    /// Releases a target the kernel program claimed below a watched parent and stops that
    /// cgroup from being claimed again.
    pub fn exclude_claimed(&mut self, slot: TargetSlot) -> Result<(), BpfError> {
        let SlotState::Target(cgroup_id) = self.pool.table.get(slot.0) else {
            return Ok(());
        };
        self.targets_insert(cgroup_id, NO_TARGET)?;
        self.pool.table.set(slot.0, SlotState::Free);
        self.clear_args(slot.0)?;
        self.slot_freed()
    }

    /// Stops counting a target and forgets its argument values; its slot can be reused.
    pub fn remove_target(&mut self, slot: TargetSlot) -> Result<(), BpfError> {
        self.remove_targets(&[slot])
    }

    /// Stops counting several targets at once (their slots are made ready in one pass).
    pub fn remove_targets(&mut self, slots: &[TargetSlot]) -> Result<(), BpfError> {
        if slots.is_empty() {
            return Ok(());
        }
        for slot in slots {
            let SlotState::Target(cgroup_id) = self.pool.table.get(slot.0) else {
                continue;
            };
            self.pool.table.set(slot.0, SlotState::Free);
            self.forget_cgroup(cgroup_id)?;
            // Free the shared value tables now; a call racing with the removal is cleared
            // again when the slot is reused.
            self.clear_args(slot.0)?;
        }
        self.slot_freed()
    }

    /// Keeps a cgroup below a watched parent from ever being claimed (an existing sibling of
    /// the cgroups a pattern waits for).
    pub fn exclude_cgroup(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        self.targets_insert(cgroup_id, NO_TARGET)
    }

    /// Keeps a new child of a watched parent that no pattern wants from claiming a slot.
    /// Returns `false` if the kernel program claimed one for it first (it is then reported
    /// by [`Self::claimed_targets`] and released with [`Self::exclude_claimed`]).
    pub fn exclude_unclaimed(&mut self, cgroup_id: u64) -> Result<bool, BpfError> {
        self.insert_new_entry(cgroup_id, NO_TARGET)
    }

    /// Inserts a [`MAP_TARGETS`] entry unless the cgroup has one; `false` if it had.
    fn insert_new_entry(&mut self, cgroup_id: u64, value: u32) -> Result<bool, BpfError> {
        const BPF_NOEXIST: u64 = 1;
        let mut targets: HashMap<&mut MapData, u64, u32> = map_mut(&mut self.ebpf, MAP_TARGETS)?;
        match targets.insert(cgroup_id, value, BPF_NOEXIST) {
            Ok(()) => Ok(true),
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::EEXIST) =>
            {
                Ok(false)
            }
            Err(source) => Err(BpfError::Map {
                name: MAP_TARGETS,
                source,
            }),
        }
    }

    /// Drops any entry for a cgroup that no longer exists (an excluded child).
    pub fn forget_cgroup(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        let mut targets: HashMap<&mut MapData, u64, u32> = map_mut(&mut self.ebpf, MAP_TARGETS)?;
        match targets.remove(&cgroup_id) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(BpfError::Map {
                name: MAP_TARGETS,
                source,
            }),
        }
    }

    fn targets_insert(&mut self, cgroup_id: u64, value: u32) -> Result<(), BpfError> {
        let mut targets: HashMap<&mut MapData, u64, u32> = map_mut(&mut self.ebpf, MAP_TARGETS)?;
        targets
            .insert(cgroup_id, value, 0)
            .map_err(|source| BpfError::Map {
                name: MAP_TARGETS,
                source,
            })
    }

    /// Zeroes a slot's counters and sets the phase it starts in.
    fn prepare_slot(&mut self, slot: u32, phase: u32) -> Result<(), BpfError> {
        self.prepare_slots(&[slot], phase)
    }

    /// Zeroes the counters and attribution of slots used before (a slot never used is still
    /// zero from the maps' creation: pooling every slot at start costs no copying) and sets
    /// the phase they start in.
    fn prepare_slots(&mut self, slots: &[u32], phase: u32) -> Result<(), BpfError> {
        let used: Vec<u32> = slots
            .iter()
            .copied()
            .filter(|&s| !self.pool.used.insert(s))
            .collect();
        self.clear_attribution(&used)?;
        super::refusals::clear(&mut self.ebpf, &used)?;
        for &slot in &used {
            self.clear_args(slot)?;
            self.forget_departures(slot)?;
            self.clear_capability_checks(slot)?;
            for map in [MAP_COUNTERS, MAP_INIT_COUNTERS] {
                self.zero_counters(map, slot)?;
            }
            if self.exits == ExitCounting::On {
                for map in [MAP_EXIT_COUNTERS, MAP_INIT_EXIT_COUNTERS] {
                    self.zero_counters(map, slot)?;
                }
            }
        }
        for &slot in slots {
            self.set_phase(slot, phase)?;
        }
        Ok(())
    }

    fn set_phase(&mut self, slot: u32, phase: u32) -> Result<(), BpfError> {
        let mut phases: Array<&mut MapData, u32> = map_mut(&mut self.ebpf, MAP_PHASE)?;
        phases.set(slot, phase, 0).map_err(|source| BpfError::Map {
            name: MAP_PHASE,
            source,
        })
    }

    fn zero_counters(&mut self, name: &'static str, slot: u32) -> Result<(), BpfError> {
        let mut counters: Array<&mut MapData, SyscallCounters> = map_mut(&mut self.ebpf, name)?;
        counters
            .set(slot, SyscallCounters::ZERO, 0)
            .map_err(|source| BpfError::Map { name, source })
    }

    pub(super) fn bump_generation(&mut self) -> Result<(), BpfError> {
        self.generation = self.generation.wrapping_add(1);
        let mut gen: Array<&mut MapData, u32> = map_mut(&mut self.ebpf, MAP_TARGET_GENERATION)?;
        gen.set(0, self.generation, 0)
            .map_err(|source| BpfError::Map {
                name: MAP_TARGET_GENERATION,
                source,
            })
    }
}
