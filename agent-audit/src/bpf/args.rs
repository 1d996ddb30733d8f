//! Tracked syscall arguments: the load-time tables that tell the kernel program which
//! arguments to keep (from `data/tracked-args.json`, resolved per ABI of this host), and
//! reading back what it kept.

use std::collections::BTreeMap;

use agent_audit_ebpf::{
    ArgAdded, ArgSpec, ArgState, ArgValueEntry, ArgValueKey, ABI_COUNT, ARG_KIND_FLAGS,
    ARG_KIND_VALUES, ARG_PHASES, ARG_SOURCE_CLONE_ARGS_FLAGS, ARG_SOURCE_REGISTER, MAP_ARG_ADDED,
    MAP_ARG_STATE, MAP_ARG_VALUES, MAP_ARG_VALUES_SPILL, MAX_TRACKED_ARGS, NR_SLOTS,
};
use aya::maps::{Array, HashMap, MapData, PerCpuArray, PerCpuValues};

use super::{map_mut, map_ref, BpfError, SyscallCounter, TargetSlot};
use crate::allowlist::{ArgField, ArgKind, ArgRecord};
use crate::policy::TrackedArgs;
use crate::syscalls::Arch;

/// What one spec number means on this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SpecMeaning {
    arch: Arch,
    nr: u32,
    index: u8,
    field: Option<ArgField>,
    kind: ArgKind,
}

/// The tables handed to the kernel program, and what their spec numbers mean.
pub(super) struct ArgTables {
    /// `GLOBAL_ARG_FIRST`.
    pub(super) first: [[u8; NR_SLOTS]; ABI_COUNT],
    /// `GLOBAL_ARG_SPECS`.
    pub(super) specs: [ArgSpec; MAX_TRACKED_ARGS],
    /// Meaning of each used spec number.
    pub(super) meanings: Vec<SpecMeaning>,
}

impl ArgTables {
    /// Resolves every tracked argument for each ABI this host counts (`abi_arch`). Names an
    /// ABI's table lacks are skipped; specs beyond the table's size are dropped with a
    /// warning (the data tests keep that from happening).
    pub(super) fn resolve(tracked: &TrackedArgs, abi_arch: &[Option<Arch>; ABI_COUNT]) -> Self {
        let mut tables = Self {
            first: [[0; NR_SLOTS]; ABI_COUNT],
            specs: [ArgSpec::default(); MAX_TRACKED_ARGS],
            meanings: Vec::new(),
        };
        for (abi, arch) in abi_arch.iter().enumerate() {
            let Some(arch) = *arch else { continue };
            let mut names: Vec<&str> = Vec::new();
            for arg in &tracked.args {
                if !names.contains(&arg.syscall.as_str()) {
                    names.push(&arg.syscall);
                }
            }
            for name in names {
                let Some(nr) = arch.syscall_nr(name).filter(|&nr| (nr as usize) < NR_SLOTS) else {
                    continue;
                };
                tables.add_syscall(tracked, abi, arch, nr, name);
            }
        }
        tables
    }

    fn add_syscall(&mut self, tracked: &TrackedArgs, abi: usize, arch: Arch, nr: u32, name: &str) {
        let args: Vec<_> = tracked.of(name).collect();
        if self.meanings.len() + args.len() > MAX_TRACKED_ARGS {
            tracing::warn!("{arch}:{name}: no room left to track its arguments");
            return;
        }
        // ARG_FIRST holds a spec's index plus one in a byte (0: not tracked).
        let Ok(first) = u8::try_from(self.meanings.len() + 1) else {
            tracing::warn!("{arch}:{name}: no room left to track its arguments");
            return;
        };
        self.first[abi][nr as usize] = first;
        for (i, arg) in args.iter().enumerate() {
            self.specs[self.meanings.len()] = ArgSpec {
                mask: arg.mask,
                index: arg.index,
                kind: match arg.kind {
                    ArgKind::Values => ARG_KIND_VALUES,
                    ArgKind::Flags => ARG_KIND_FLAGS,
                },
                source: match arg.field {
                    None => ARG_SOURCE_REGISTER,
                    Some(ArgField::CloneArgsFlags) => ARG_SOURCE_CLONE_ARGS_FLAGS,
                },
                more: u8::from(i + 1 < args.len()),
                _pad: 0,
            };
            self.meanings.push(SpecMeaning {
                arch,
                nr,
                index: arg.index,
                field: arg.field,
                kind: arg.kind,
            });
        }
    }
}

/// The recorded values of one tracked argument of one syscall in one target and phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgUse {
    /// The target.
    pub slot: TargetSlot,
    /// Whether the calls were made in the runtime-init phase.
    pub runtime_init: bool,
    /// Arch of the calls.
    pub arch: Arch,
    /// Syscall number.
    pub nr: u32,
    /// What was seen.
    pub record: ArgRecord,
}

/// Values and bits of one (slot, phase, spec), summed over CPUs and maps.
#[derive(Default)]
struct Gathered {
    values: BTreeMap<u64, u64>,
    bits: u64,
    incomplete: bool,
}

impl SyscallCounter {
    /// Every tracked argument value recorded so far, for every target; empty when argument
    /// recording is off. Flags records are only meaningful next to a syscall count (a zero
    /// union is also what an unused syscall shows), so callers attach them to counted rows.
    pub fn read_args(&self) -> Result<Vec<ArgUse>, BpfError> {
        let Some(meanings) = self.arg_meanings.as_deref() else {
            return Ok(Vec::new());
        };
        let mut gathered: BTreeMap<(u32, usize, usize), Gathered> = BTreeMap::new();
        self.gather_states(&mut gathered)?;
        self.gather_values(&mut gathered)?;
        Ok(gathered
            .into_iter()
            .filter_map(|((slot, phase, spec), g)| {
                let m = meanings.get(spec)?;
                let record = match m.kind {
                    ArgKind::Flags => ArgRecord::flags(m.index, m.field, g.bits, g.incomplete),
                    ArgKind::Values if g.values.is_empty() && !g.incomplete => return None,
                    ArgKind::Values => ArgRecord::values(m.index, m.field, g.values, g.incomplete),
                };
                Some(ArgUse {
                    slot: TargetSlot(slot),
                    runtime_init: phase == 1,
                    arch: m.arch,
                    nr: m.nr,
                    record,
                })
            })
            .collect())
    }

    /// Bits and incompleteness marks, from every slot in use.
    fn gather_states(
        &self,
        gathered: &mut BTreeMap<(u32, usize, usize), Gathered>,
    ) -> Result<(), BpfError> {
        let states: Array<&MapData, ArgState> = map_ref(&self.ebpf, MAP_ARG_STATE)?;
        for &slot in &self.pool.used {
            let state = states.get(&slot, 0).map_err(|source| BpfError::Map {
                name: MAP_ARG_STATE,
                source,
            })?;
            for phase in 0..ARG_PHASES {
                for spec in 0..MAX_TRACKED_ARGS {
                    let (bits, incomplete) =
                        (state.flags[phase][spec], state.incomplete[phase][spec] != 0);
                    if bits == 0 && !incomplete {
                        continue;
                    }
                    let g = gathered.entry((slot, phase, spec)).or_default();
                    g.bits |= bits;
                    g.incomplete |= incomplete;
                }
            }
        }
        // Flags specs of used slots get a (possibly zero) union even when no bit was set.
        for &slot in &self.pool.used {
            for (spec, m) in self.arg_meanings.iter().flatten().enumerate() {
                if m.kind == ArgKind::Flags {
                    for phase in 0..ARG_PHASES {
                        gathered.entry((slot, phase, spec)).or_default();
                    }
                }
            }
        }
        Ok(())
    }

    /// Value counts from the per-CPU table and the spill map.
    fn gather_values(
        &self,
        gathered: &mut BTreeMap<(u32, usize, usize), Gathered>,
    ) -> Result<(), BpfError> {
        let mut add = |k: &ArgValueKey, count: u64| {
            let g = gathered
                .entry((
                    k.slot_plus_one - 1,
                    usize::from(k.phase),
                    usize::from(k.spec),
                ))
                .or_default();
            let c = g.values.entry(k.value).or_default();
            *c = c.saturating_add(count);
        };
        for e in self
            .value_table()?
            .iter()
            .filter(|e| e.key.slot_plus_one != 0)
        {
            add(&e.key, e.count);
        }
        let spill: HashMap<&MapData, ArgValueKey, u64> = map_ref(&self.ebpf, MAP_ARG_VALUES_SPILL)?;
        for item in spill.iter() {
            let (k, count) = item.map_err(|source| BpfError::Map {
                name: MAP_ARG_VALUES_SPILL,
                source,
            })?;
            if k.slot_plus_one != 0 {
                add(&k, count);
            }
        }
        Ok(())
    }

    /// Every entry of the per-CPU value table on every CPU, read in batches: entry `i` on CPU
    /// `c` is at `i * cpus + c`.
    fn value_table(&self) -> Result<Vec<ArgValueEntry>, BpfError> {
        let io_error = |e| BpfError::Map {
            name: MAP_ARG_VALUES,
            source: aya::maps::MapError::IoError(e),
        };
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| io_error(e))?;
        let map = self
            .ebpf
            .map(MAP_ARG_VALUES)
            .ok_or(BpfError::Missing(MAP_ARG_VALUES))?;
        let aya::maps::Map::PerCpuArray(data) = map else {
            return Err(BpfError::Missing(MAP_ARG_VALUES));
        };
        super::batch::lookup_percpu_array(data, self.tables.arg_values, cpus).map_err(io_error)
    }

    /// Forgets every argument value of `slot`, so that a target given the slot later starts
    /// from nothing; only the table entries that hold one of its values are written.
    pub(super) fn clear_args(&mut self, slot: u32) -> Result<(), BpfError> {
        if self.arg_meanings.is_none() {
            return Ok(());
        }
        let io = |name, e| BpfError::Map {
            name,
            source: aya::maps::MapError::IoError(e),
        };
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| io(MAP_ARG_ADDED, e))?;
        let mut states: Array<&mut MapData, ArgState> = map_mut(&mut self.ebpf, MAP_ARG_STATE)?;
        states
            .set(slot, ArgState::ZERO, 0)
            .map_err(|source| BpfError::Map {
                name: MAP_ARG_STATE,
                source,
            })?;
        let mut added: PerCpuArray<&mut MapData, ArgAdded> =
            map_mut(&mut self.ebpf, MAP_ARG_ADDED)?;
        let zeros =
            PerCpuValues::try_from(vec![ArgAdded::ZERO; cpus]).map_err(|e| io(MAP_ARG_ADDED, e))?;
        added.set(slot, zeros, 0).map_err(|source| BpfError::Map {
            name: MAP_ARG_ADDED,
            source,
        })?;
        let owner = slot + 1;
        let entries = self.value_table()?;
        let mut table: PerCpuArray<&mut MapData, ArgValueEntry> =
            map_mut(&mut self.ebpf, MAP_ARG_VALUES)?;
        for (index, per_cpu) in (0..self.tables.arg_values).zip(entries.chunks(cpus)) {
            if !per_cpu.iter().any(|e| e.key.slot_plus_one == owner) {
                continue;
            }
            let cleaned: Vec<ArgValueEntry> = per_cpu
                .iter()
                .map(|e| match e.key.slot_plus_one == owner {
                    true => ArgValueEntry::default(),
                    false => *e,
                })
                .collect();
            let values = PerCpuValues::try_from(cleaned).map_err(|e| io(MAP_ARG_VALUES, e))?;
            table
                .set(index, values, 0)
                .map_err(|source| BpfError::Map {
                    name: MAP_ARG_VALUES,
                    source,
                })?;
        }
        let mut spill: HashMap<&mut MapData, ArgValueKey, u64> =
            map_mut(&mut self.ebpf, MAP_ARG_VALUES_SPILL)?;
        let stale: Vec<ArgValueKey> = spill
            .keys()
            .flatten()
            .filter(|k| k.slot_plus_one == owner)
            .collect();
        for k in stale {
            let _ = spill.remove(&k);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_audit_ebpf::{ABI_COMPAT32, ABI_NATIVE, ABI_X32};

    fn x86_host() -> [Option<Arch>; ABI_COUNT] {
        let mut arches = [None; ABI_COUNT];
        arches[ABI_NATIVE] = Some(Arch::X86_64);
        arches[ABI_COMPAT32] = Some(Arch::X86);
        arches[ABI_X32] = Some(Arch::X32);
        arches
    }

    #[test]
    fn tracked_names_resolve_to_each_abis_numbers() {
        let tables = ArgTables::resolve(crate::policy::tracked_args(), &x86_host());
        let spec_of = |abi: usize, name: &str, arch: Arch| {
            let nr = arch.syscall_nr(name).unwrap() as usize;
            usize::from(tables.first[abi][nr])
        };
        // socket: two consecutive specs (family, then type without NONBLOCK/CLOEXEC).
        let socket = spec_of(ABI_NATIVE, "socket", Arch::X86_64);
        assert_ne!(socket, 0);
        let (family, kind) = (&tables.specs[socket - 1], &tables.specs[socket]);
        assert_eq!(
            (family.index, family.kind, family.more),
            (0, ARG_KIND_VALUES, 1)
        );
        assert_eq!((kind.index, kind.mask, kind.more), (1, 0xfff7_f7ff, 0));
        assert_eq!(tables.meanings[socket - 1].arch, Arch::X86_64);
        assert_eq!(tables.meanings[socket - 1].nr, 41);
        // i386 numbers differ (socket is 359 there), and fcntl64 exists only there.
        let socket32 = spec_of(ABI_COMPAT32, "socket", Arch::X86);
        assert_eq!(tables.meanings[socket32 - 1].nr, 359);
        assert_ne!(spec_of(ABI_COMPAT32, "fcntl64", Arch::X86), 0);
        assert!(Arch::X86_64.syscall_nr("fcntl64").is_none());
        // clone3 reads its flags through its first argument.
        let clone3 = spec_of(ABI_NATIVE, "clone3", Arch::X86_64);
        assert_eq!(tables.specs[clone3 - 1].source, ARG_SOURCE_CLONE_ARGS_FLAGS);
        assert_eq!(
            tables.meanings[clone3 - 1].field,
            Some(ArgField::CloneArgsFlags)
        );
        // Untracked syscalls stay zero; every spec used is described.
        assert_eq!(tables.first[ABI_NATIVE][0], 0, "read is not tracked");
        let used = tables.first.iter().flatten().filter(|&&f| f != 0).count();
        assert!(used >= 3 * 10, "{used} syscalls resolved over three ABIs");
        assert!(tables.meanings.len() <= MAX_TRACKED_ARGS);
        assert!(tables.specs[tables.meanings.len()..]
            .iter()
            .all(|s| *s == ArgSpec::default()));
    }

    #[test]
    fn a_host_without_abis_tracks_nothing() {
        let tables = ArgTables::resolve(crate::policy::tracked_args(), &[None; ABI_COUNT]);
        assert!(tables.meanings.is_empty());
        assert!(tables.first.iter().flatten().all(|&f| f == 0));
    }
}
