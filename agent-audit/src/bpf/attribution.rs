//! Reading who made each syscall (the per-CPU attribution table and its overflow map) and the
//! execs seen inside targets.

use std::collections::HashMap as StdHashMap;

use agent_audit_ebpf::{
    AttribEntry, AttribKey, AttribValue, ExecEvent, ATTRIB_ROOT, ATTRIB_RUNTIME_INIT, MAP_ATTRIB,
    MAP_ATTRIB_OVERFLOW,
};
use aya::maps::{HashMap, MapData, PerCpuArray, PerCpuValues, RingBuf};

use super::slots::SlotState;
use super::{map_mut, map_ref, BpfError, SyscallCounter, TargetSlot};
use crate::syscalls::Arch;

/// One program's use of one syscall in one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramUse {
    /// The target.
    pub slot: TargetSlot,
    /// Arch of the call.
    pub arch: Arch,
    /// Syscall number.
    pub nr: u32,
    /// Task name (`comm`).
    pub comm: String,
    /// Whether the caller was uid 0.
    pub root: bool,
    /// Whether the call was made in the runtime-init phase (before the target's first exec).
    pub runtime_init: bool,
    /// Calls.
    pub count: u64,
    /// `CLOCK_MONOTONIC` ns of the first and last call.
    pub first_ns: u64,
    /// See `first_ns`.
    pub last_ns: u64,
}

/// A successful exec inside a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRecord {
    /// The target.
    pub slot: TargetSlot,
    /// File name as passed to exec.
    pub filename: String,
    /// Task name after the exec.
    pub comm: String,
    /// Real uid and gid.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
    /// Thread group id.
    pub tgid: u32,
    /// `CLOCK_MONOTONIC` ns.
    pub ktime_ns: u64,
}

impl SyscallCounter {
    /// Every (target, program, syscall) seen so far, summed over CPUs.
    pub fn read_attribution(&self) -> Result<Vec<ProgramUse>, BpfError> {
        let mut merged: StdHashMap<AttribKey, AttribValue> = StdHashMap::new();
        for e in self
            .attribution_table()?
            .iter()
            .filter(|e| e.key.slot_plus_one != 0)
        {
            add(&mut merged, e.key, e.value);
        }
        let overflow: HashMap<&MapData, AttribKey, AttribValue> =
            map_ref(&self.ebpf, MAP_ATTRIB_OVERFLOW)?;
        for item in overflow.iter() {
            let (k, v) = item.map_err(|source| BpfError::Map {
                name: MAP_ATTRIB_OVERFLOW,
                source,
            })?;
            add(&mut merged, k, v);
        }
        Ok(merged
            .into_iter()
            .filter_map(|(k, v)| {
                Some(ProgramUse {
                    slot: TargetSlot(k.slot_plus_one - 1),
                    arch: self.abi_arch.get(usize::from(k.abi)).copied().flatten()?,
                    nr: u32::from(k.nr),
                    comm: comm_string(&k.comm),
                    root: k.flags & ATTRIB_ROOT != 0,
                    runtime_init: k.flags & ATTRIB_RUNTIME_INIT != 0,
                    count: v.count,
                    first_ns: v.first_ns,
                    last_ns: v.last_ns,
                })
            })
            .collect())
    }

    /// Execs reported since the last call. An exec in a slot the kernel program has
    /// claimed but [`Self::claimed_targets`] has not reported yet is kept until it is (claim
    /// and exec can both happen between a scan of the targets and a read of the ring); one in
    /// a slot that is no target is dropped.
    pub fn drain_execs(&mut self) -> Vec<ExecRecord> {
        self.read_exec_ring();
        let (ready, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.exec_backlog)
            .into_iter()
            .filter(|e| {
                matches!(
                    self.pool.table.get(e.slot.0),
                    SlotState::Target(_) | SlotState::Pooled
                )
            })
            .partition(|e| matches!(self.pool.table.get(e.slot.0), SlotState::Target(_)));
        self.exec_backlog = kept;
        ready
    }

    /// Moves the execs in the ring into the backlog.
    pub(super) fn read_exec_ring(&mut self) {
        if let Some(ring) = self.exec_events.as_mut() {
            self.exec_backlog.extend(drain(ring));
        }
    }

    /// Drops the execs of a slot's last owner before the slot is handed out again.
    pub(super) fn forget_execs(&mut self, slot: u32) {
        self.read_exec_ring();
        self.exec_backlog.retain(|e| e.slot.0 != slot);
    }

    /// Every entry of the per-CPU attribution table, read in batches: entries × CPUs.
    fn attribution_table(&self) -> Result<Vec<AttribEntry>, BpfError> {
        let io_error = |e| BpfError::Map {
            name: MAP_ATTRIB,
            source: aya::maps::MapError::IoError(e),
        };
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| io_error(e))?;
        let map = self
            .ebpf
            .map(MAP_ATTRIB)
            .ok_or(BpfError::Missing(MAP_ATTRIB))?;
        let aya::maps::Map::PerCpuArray(data) = map else {
            return Err(BpfError::Missing(MAP_ATTRIB));
        };
        super::batch::lookup_percpu_array(data, self.tables.attrib, cpus).map_err(io_error)
    }

    /// Forgets the attribution of slots about to be reused, in one pass over the tables
    /// however many slots there are (a burst of targets can end at once): only the table
    /// entries that hold one of their keys are written.
    pub(super) fn clear_attribution(&mut self, slots: &[u32]) -> Result<(), BpfError> {
        if slots.is_empty() {
            return Ok(());
        }
        let owners: std::collections::HashSet<u32> = slots.iter().map(|s| s + 1).collect();
        let owned = |e: &AttribEntry| owners.contains(&e.key.slot_plus_one);
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| BpfError::Map {
            name: MAP_ATTRIB,
            source: aya::maps::MapError::IoError(e),
        })?;
        let entries = self.attribution_table()?;
        let mut table: PerCpuArray<&mut MapData, AttribEntry> =
            map_mut(&mut self.ebpf, MAP_ATTRIB)?;
        for (index, per_cpu) in (0..self.tables.attrib).zip(entries.chunks(cpus)) {
            if !per_cpu.iter().any(owned) {
                continue;
            }
            let cleaned: Vec<AttribEntry> = per_cpu
                .iter()
                .map(|e| if owned(e) { AttribEntry::default() } else { *e })
                .collect();
            debug_assert_eq!(cleaned.len(), cpus);
            let values = PerCpuValues::try_from(cleaned).map_err(|e| BpfError::Map {
                name: MAP_ATTRIB,
                source: aya::maps::MapError::IoError(e),
            })?;
            table
                .set(index, values, 0)
                .map_err(|source| BpfError::Map {
                    name: MAP_ATTRIB,
                    source,
                })?;
        }
        let mut overflow: HashMap<&mut MapData, AttribKey, AttribValue> =
            map_mut(&mut self.ebpf, MAP_ATTRIB_OVERFLOW)?;
        let stale: Vec<AttribKey> = overflow
            .keys()
            .flatten()
            .filter(|k| owners.contains(&k.slot_plus_one))
            .collect();
        for k in stale {
            let _ = overflow.remove(&k);
        }
        Ok(())
    }
}

fn add(merged: &mut StdHashMap<AttribKey, AttribValue>, k: AttribKey, v: AttribValue) {
    let e = merged.entry(k).or_insert(AttribValue {
        count: 0,
        first_ns: u64::MAX,
        last_ns: 0,
    });
    e.count += v.count;
    e.first_ns = e.first_ns.min(v.first_ns);
    e.last_ns = e.last_ns.max(v.last_ns);
}

fn drain(ring: &mut RingBuf<MapData>) -> Vec<ExecRecord> {
    let mut out = Vec::new();
    while let Some(item) = ring.next() {
        if item.len() < std::mem::size_of::<ExecEvent>() {
            continue;
        }
        // SAFETY: the kernel program writes whole `ExecEvent`s; read unaligned.
        let ev: ExecEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
        let len = (ev.filename_len as usize).min(ev.filename.len());
        let name = &ev.filename[..len];
        let name = name.split(|&b| b == 0).next().unwrap_or_default();
        out.push(ExecRecord {
            slot: TargetSlot(ev.slot),
            filename: String::from_utf8_lossy(name).into_owned(),
            comm: String::from_utf8_lossy(ev.comm.split(|&b| b == 0).next().unwrap_or_default())
                .into_owned(),
            uid: ev.uid,
            gid: ev.gid,
            tgid: ev.tgid,
            ktime_ns: ev.ktime_ns,
        });
    }
    out
}

/// The task name packed in two little-endian words.
fn comm_string(words: &[u64; 2]) -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&words[0].to_le_bytes());
    bytes[8..].copy_from_slice(&words[1].to_le_bytes());
    let name = bytes.split(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(name).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_unpack_from_words() {
        let mut bytes = [0u8; 16];
        bytes[..9].copy_from_slice(b"busybox-x");
        let words = [
            u64::from_le_bytes(bytes[..8].try_into().unwrap()),
            u64::from_le_bytes(bytes[8..].try_into().unwrap()),
        ];
        assert_eq!(comm_string(&words), "busybox-x");
        assert_eq!(comm_string(&[0, 0]), "");
    }

    #[test]
    fn merging_keeps_the_earliest_first_and_latest_last() {
        let mut m = StdHashMap::new();
        let k = AttribKey::default();
        add(
            &mut m,
            k,
            AttribValue {
                count: 2,
                first_ns: 50,
                last_ns: 60,
            },
        );
        add(
            &mut m,
            k,
            AttribValue {
                count: 3,
                first_ns: 10,
                last_ns: 40,
            },
        );
        assert_eq!(
            m[&k],
            AttribValue {
                count: 5,
                first_ns: 10,
                last_ns: 60
            }
        );
    }
}
