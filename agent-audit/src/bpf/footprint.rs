//! What the kernel program's maps cost in memory, from the kernel's own accounting: the
//! `memlock` line of each map descriptor's fdinfo is the kernel's `map_mem_usage`, what the
//! map charges to the memory cgroup of whoever created it. Each map's share that every
//! possible CPU adds is computed with the kernel's own formula for its type
//! (`kernel/bpf/arraymap.c` `array_map_mem_usage`, `kernel/bpf/hashtab.c`
//! `htab_map_mem_usage`), so that a measurement on this host projects to any CPU count.

use std::io;
use std::path::Path;

use agent_audit_ebpf::{MAP_ARG_VALUES, MAP_ATTRIB};

/// `sizeof(struct htab_elem)` on 64-bit kernels: the hash node, the LRU node (or per-CPU
/// pointer) and the hash, the key starting 8-aligned.
const HTAB_ELEM: u64 = 48;
/// `sizeof(int) * HASHTAB_MAP_LOCK_COUNT`: a hash map's per-CPU recursion counters.
const HTAB_LOCKS_PER_CPU: u64 = 4 * 8;
/// `BPF_F_NO_PREALLOC`.
const NO_PREALLOC: u32 = 1;

/// Map types whose memory grows with the CPU count (`enum bpf_map_type`).
mod map_type {
    pub const HASH: u32 = 1;
    pub const PERCPU_HASH: u32 = 5;
    pub const PERCPU_ARRAY: u32 = 6;
    pub const LRU_HASH: u32 = 9;
    pub const LRU_PERCPU_HASH: u32 = 10;
}

/// One map as the kernel accounts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapFootprint {
    /// The map's name (as the kernel keeps it: at most 15 bytes).
    pub name: String,
    /// Its kernel id.
    pub id: u32,
    /// `bytes_memlock`: what it costs on this host.
    pub memlock: u64,
    /// What each possible CPU adds to it.
    pub per_cpu: u64,
    /// Its element size and number, for maps sized from the CPU count.
    shape: MapShape,
}

/// The maps a process holds, and its resident memory.
#[derive(Clone, Debug)]
pub struct Footprint {
    /// This host's possible CPUs (what per-CPU maps are allocated for).
    pub possible_cpus: u64,
    /// Every BPF map the process holds a descriptor of, each once.
    pub maps: Vec<MapFootprint>,
    /// The process's resident memory (`VmRSS`), bytes.
    pub rss: u64,
}

impl Footprint {
    /// The maps process `pid` holds (found through its descriptors) and its resident memory.
    pub fn of_process(pid: u32) -> io::Result<Self> {
        let proc = Path::new("/proc").join(pid.to_string());
        let mut maps: Vec<MapFootprint> = Vec::new();
        for entry in std::fs::read_dir(proc.join("fd"))?.flatten() {
            let is_map = std::fs::read_link(entry.path())
                .is_ok_and(|target| target.as_os_str() == "anon_inode:bpf-map");
            if !is_map {
                continue;
            }
            let fdinfo = proc.join("fdinfo").join(entry.file_name());
            // A descriptor closed meanwhile is simply not counted.
            let Ok(text) = std::fs::read_to_string(fdinfo) else {
                continue;
            };
            let Some(map) = MapFootprint::from_fdinfo(&text) else {
                continue;
            };
            if !maps.iter().any(|m| m.id == map.id) {
                maps.push(map);
            }
        }
        maps.sort_by(|a, b| b.memlock.cmp(&a.memlock).then(a.name.cmp(&b.name)));
        let status = std::fs::read_to_string(proc.join("status"))?;
        Ok(Self {
            possible_cpus: possible_cpus()?,
            maps,
            rss: rss_bytes(&status).unwrap_or(0),
        })
    }

    /// What every possible CPU adds, all maps together.
    pub fn per_cpu_bytes(&self) -> u64 {
        self.maps.iter().map(|m| m.per_cpu).sum()
    }

    /// What every CPU adds on a host with `cpus` CPUs: as here, except for the per-CPU tables
    /// the loader creates with fewer entries per CPU on hosts with more CPUs.
    pub fn per_cpu_bytes_at(&self, cpus: u64) -> u64 {
        let tables = usize::try_from(cpus).map_or(
            super::TableSizes::for_cpus(usize::MAX),
            super::TableSizes::for_cpus,
        );
        self.maps
            .iter()
            .map(|m| {
                let entries = match m.name.as_str() {
                    MAP_ATTRIB => tables.attrib,
                    MAP_ARG_VALUES => tables.arg_values,
                    _ => return m.per_cpu,
                };
                u64::from(entries) * m.shape.value_size.next_multiple_of(8)
            })
            .sum()
    }

    /// What the maps cost whatever the CPU count.
    pub fn shared_bytes(&self) -> u64 {
        let measured: u64 = self.maps.iter().map(|m| m.memlock).sum();
        measured.saturating_sub(self.per_cpu_bytes() * self.possible_cpus)
    }

    /// The maps' memory on a host with `cpus` possible CPUs.
    pub fn maps_bytes_at(&self, cpus: u64) -> u64 {
        self.shared_bytes() + self.per_cpu_bytes_at(cpus) * cpus
    }
}

impl MapFootprint {
    /// One map from its fdinfo text; `None` if it is not a map's.
    fn from_fdinfo(text: &str) -> Option<Self> {
        let field = |name: &str| -> Option<u64> {
            text.lines().find_map(|line| {
                let value = line.strip_prefix(name)?.strip_prefix(':')?.trim();
                match value.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16).ok(),
                    None => value.parse().ok(),
                }
            })
        };
        let id = u32::try_from(field("map_id")?).ok()?;
        let shape = MapShape {
            map_type: u32::try_from(field("map_type")?).ok()?,
            key_size: field("key_size")?,
            value_size: field("value_size")?,
            max_entries: field("max_entries")?,
            flags: u32::try_from(field("map_flags")?).ok()?,
        };
        let name = aya::maps::MapInfo::from_id(id)
            .ok()
            .and_then(|info| info.name_as_str().map(str::to_string))
            .unwrap_or_else(|| format!("map {id}"));
        Some(Self {
            name,
            id,
            memlock: field("memlock")?,
            per_cpu: shape.per_cpu_bytes(),
            shape,
        })
    }
}

/// What decides a map's per-CPU memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MapShape {
    map_type: u32,
    key_size: u64,
    value_size: u64,
    max_entries: u64,
    flags: u32,
}

impl MapShape {
    /// The share of `map_mem_usage` that is multiplied by `num_possible_cpus()`.
    fn per_cpu_bytes(self) -> u64 {
        let value = self.value_size.next_multiple_of(8);
        let key = self.key_size.next_multiple_of(8);
        match self.map_type {
            map_type::PERCPU_ARRAY => self.max_entries * value,
            map_type::HASH if self.flags & NO_PREALLOC == 0 => {
                // One extra element per CPU (for updates that replace an element) and a
                // pointer to it, besides the locks.
                HTAB_LOCKS_PER_CPU + HTAB_ELEM + key + value + 8
            }
            map_type::PERCPU_HASH | map_type::LRU_PERCPU_HASH => {
                HTAB_LOCKS_PER_CPU + self.max_entries * value
            }
            map_type::HASH | map_type::LRU_HASH => HTAB_LOCKS_PER_CPU,
            _ => 0,
        }
    }
}

/// `VmRSS` from `/proc/PID/status`, bytes.
fn rss_bytes(status: &str) -> Option<u64> {
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib * 1024)
}

/// How many CPUs per-CPU maps are allocated for (`num_possible_cpus()`).
fn possible_cpus() -> io::Result<u64> {
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| e)?;
    u64::try_from(cpus).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERCPU_ARRAY_FDINFO: &str = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t2071\n\
        map_type:\t6\nkey_size:\t4\nvalue_size:\t48\nmax_entries:\t8192\nmap_flags:\t0x0\n\
        map_extra:\t0x0\nmemlock:\t852032\nmap_id:\t4294967295\nfrozen:\t0\n";

    #[test]
    fn a_per_cpu_array_grows_by_its_values_per_cpu() {
        // An id no map has: the name falls back to the id, the sizes come from the text.
        let text = PERCPU_ARRAY_FDINFO.replace("4294967295", "4000000000");
        let map = MapFootprint::from_fdinfo(&text).expect("a map's fdinfo");
        assert_eq!(map.per_cpu, 8192 * 48);
        assert_eq!(map.memlock, 852_032);
        assert_eq!(map.name, "map 4000000000");
    }

    #[test]
    fn hash_maps_add_one_element_per_cpu_and_arrays_nothing() {
        let hash = MapShape {
            map_type: map_type::HASH,
            key_size: 24,
            value_size: 24,
            max_entries: 65536,
            flags: 0,
        };
        assert_eq!(hash.per_cpu_bytes(), 32 + 48 + 24 + 24 + 8);
        let lru = MapShape {
            map_type: map_type::LRU_HASH,
            ..hash
        };
        assert_eq!(lru.per_cpu_bytes(), 32);
        let array = MapShape {
            map_type: 2,
            ..hash
        };
        assert_eq!(array.per_cpu_bytes(), 0);
    }

    #[test]
    fn not_a_map_and_rss_parse() {
        assert!(MapFootprint::from_fdinfo("pos:\t0\nflags:\t02\nprog_id:\t3\n").is_none());
        assert_eq!(
            rss_bytes("Name:\tx\nVmRSS:\t   14600 kB\n"),
            Some(14600 * 1024)
        );
    }

    #[test]
    fn projection_keeps_the_shared_part_and_scales_the_rest() {
        let f = Footprint {
            possible_cpus: 2,
            maps: vec![MapFootprint {
                name: "A".into(),
                id: 1,
                memlock: 1000 + 2 * 300,
                per_cpu: 300,
                shape: MapShape {
                    map_type: map_type::PERCPU_ARRAY,
                    key_size: 4,
                    value_size: 100,
                    max_entries: 3,
                    flags: 0,
                },
            }],
            rss: 0,
        };
        assert_eq!(f.shared_bytes(), 1000);
        assert_eq!(f.maps_bytes_at(64), 1000 + 64 * 300);
        // The attribution table is created smaller per CPU on larger hosts.
        let attrib = MapFootprint {
            name: MAP_ATTRIB.into(),
            id: 2,
            memlock: 0,
            per_cpu: 8192 * 48,
            shape: MapShape {
                map_type: map_type::PERCPU_ARRAY,
                key_size: 4,
                value_size: 48,
                max_entries: 8192,
                flags: 0,
            },
        };
        let f = Footprint {
            maps: vec![attrib],
            ..f
        };
        assert_eq!(f.per_cpu_bytes_at(2), 8192 * 48);
        assert_eq!(f.per_cpu_bytes_at(64), 1024 * 48);
    }
}
