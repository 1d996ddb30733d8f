//! Processes that left a target's cgroup subtree: the kernel programs in
//! `agent-audit-ebpf/src/program/departures.rs` keep which target each process belongs to (a
//! fork inside one, a move into one) and record in `DEPARTURES` a member moved out, or created
//! outside by a task inside; this attaches them and reads a target's entries. A process that
//! left is no longer counted, so a recording with one is incomplete and `verify` cannot vouch
//! for what it did afterwards.

use agent_audit_ebpf::{
    CgroupLayout, Departure, DepartureKey, TaskLayout, MAP_DEPARTURES, MAX_DEPARTURES,
    PROG_CGROUP_ATTACH, PROG_MEMBER_FORK,
};
use aya::maps::{HashMap, MapData};
use aya::programs::BtfTracePoint;
use aya::Btf;

use super::btf_scan::{self, KernelBtf};
use super::load::Attachment;
use super::{map_mut, map_ref, BpfError, SyscallCounter, TargetSlot};

/// The members [`CgroupLayout`] holds, in its order, with 6.2+'s `ancestors` and the older
/// `ancestor_ids` both asked (one is found).
const MEMBERS: [(&str, &str); 5] = [
    ("task_struct", "comm"),
    ("cgroup", "level"),
    ("cgroup", "ancestors"),
    ("cgroup", "ancestor_ids"),
    ("task_struct", "start_boottime"),
];

/// The two programs, each with the tracepoint it attaches to.
const PROGRAMS: [(&str, &str); 2] = [
    (PROG_MEMBER_FORK, "sched_process_fork"),
    (PROG_CGROUP_ATTACH, "cgroup_attach_task"),
];

/// What attaching the departure programs needs, found in the same BTF file as the rest.
pub(super) struct DepartureWatch {
    layout: CgroupLayout,
    /// Per program of [`PROGRAMS`], a small BTF naming its tracepoint's typedef at the
    /// kernel's id (see [`btf_scan::with_typedef_at`]).
    btfs: Option<[Btf; 2]>,
}

impl DepartureWatch {
    /// Reads the offsets and the tracepoints' ids; without BTF or the task layout nothing is
    /// attached (the programs follow pointers from the task).
    pub(super) fn detect(kernel: Option<&KernelBtf>, task: &TaskLayout) -> Self {
        let unknown = Self {
            layout: CgroupLayout::UNKNOWN,
            btfs: None,
        };
        let Some(kernel) = kernel.filter(|_| task.is_known()) else {
            return unknown;
        };
        let found = kernel.member_offsets(&MEMBERS);
        let (ancestors, are_ids) = match (found[2], found[3]) {
            (Some(at), _) => (at, 0),
            (None, Some(at)) => (at, 1),
            (None, None) => return unknown,
        };
        let layout = CgroupLayout {
            task_comm: found[0].unwrap_or(0),
            cgroup_level: found[1].unwrap_or(0),
            cgroup_ancestors: ancestors,
            ancestors_are_ids: are_ids,
            task_start_boottime: found[4].unwrap_or(0),
            _pad: 0,
        };
        let btf_of = |event: &str| {
            let typedef = format!("btf_trace_{event}");
            kernel
                .typedef_id(&typedef)
                .and_then(|id| btf_scan::with_typedef_at(id, &typedef))
                .and_then(|blob| Btf::parse(&blob, aya::Endianness::default()).ok())
        };
        match (
            layout.is_known(),
            btf_of(PROGRAMS[0].1),
            btf_of(PROGRAMS[1].1),
        ) {
            (true, Some(fork), Some(attach)) => Self {
                layout,
                btfs: Some([fork, attach]),
            },
            _ => unknown,
        }
    }

    /// The offsets handed to the programs (all zero when they will not be attached).
    pub(super) fn layout(&self) -> &CgroupLayout {
        &self.layout
    }

    /// Verifies and attaches both programs (`programs` as [`Self::take_programs`] picked
    /// them); `None` (and a warning) where this kernel cannot: departures then go unseen.
    pub(super) fn attach(
        &self,
        programs: [Option<&mut aya::programs::Program>; 2],
    ) -> Option<Vec<Attachment>> {
        let Some(btfs) = &self.btfs else {
            tracing::warn!(
                "this kernel's BTF lacks what watching cgroup moves needs: a process moving out \
                 of a target's cgroup will not be noticed"
            );
            return None;
        };
        let mut attachments = Vec::new();
        for (((_, event), btf), program) in PROGRAMS.iter().zip(btfs).zip(programs) {
            let attached = (|| -> Result<Attachment, aya::programs::ProgramError> {
                let program = program.ok_or(aya::programs::ProgramError::UnexpectedProgramType)?;
                let prog: &mut BtfTracePoint = program.try_into()?;
                prog.load(event, btf)?;
                let link = prog.attach()?;
                Ok(Box::new(prog.take_link(link)?))
            })();
            match attached {
                Ok(a) => attachments.push(a),
                Err(e) => {
                    tracing::warn!(
                        "tp_btf/{event} could not be attached ({e}): a process moving out of a \
                         target's cgroup will not be noticed"
                    );
                    return None;
                }
            }
        }
        Some(attachments)
    }

    /// Where `name` sits among the two programs, if it is one of them.
    pub(super) fn index_of(name: &str) -> Option<usize> {
        PROGRAMS.iter().position(|(p, _)| *p == name)
    }
}

/// A process that left a target's cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeftTask {
    /// Its process id.
    pub pid: u32,
    /// Its `comm` when it left.
    pub comm: String,
    /// The target's cgroup v2 id.
    pub from_cgroup: u64,
    /// The cgroup v2 id it went to.
    pub to_cgroup: u64,
    /// `CLOCK_MONOTONIC` of the move, ns.
    pub ktime_ns: u64,
    /// When it started, ns since boot (`/proc/<pid>/stat` field 22, in ticks).
    pub start_boottime_ns: u64,
    /// Created outside by a task inside, rather than moved.
    pub born_outside: bool,
}

impl From<&Departure> for LeftTask {
    fn from(d: &Departure) -> Self {
        let end = d.comm.iter().position(|&b| b == 0).unwrap_or(d.comm.len());
        Self {
            pid: d.pid,
            comm: String::from_utf8_lossy(&d.comm[..end]).into_owned(),
            from_cgroup: d.from_cgroup,
            to_cgroup: d.to_cgroup,
            ktime_ns: d.ktime_ns,
            start_boottime_ns: d.start_boottime_ns,
            born_outside: d.born_outside != 0,
        }
    }
}

/// The tasks that left one target, and whether the list may be cut (the map was full).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Departures {
    /// Earliest first.
    pub tasks: Vec<LeftTask>,
    /// `DEPARTURES` is full: later departures (of any target) were not kept.
    pub maybe_more: bool,
}

impl SyscallCounter {
    /// Whether departures are watched on this kernel (the `fentry` program is attached).
    pub fn watches_departures(&self) -> bool {
        self.departures_watched
    }

    /// The tasks that left `slot`'s target since it was added.
    pub fn departures(&self, slot: TargetSlot) -> Result<Departures, BpfError> {
        let map: HashMap<&MapData, DepartureKey, Departure> = map_ref(&self.ebpf, MAP_DEPARTURES)?;
        let mut total = 0u32;
        let mut tasks = Vec::new();
        for entry in map.iter() {
            let (key, departure) = entry.map_err(|source| BpfError::Map {
                name: MAP_DEPARTURES,
                source,
            })?;
            total += 1;
            if key.slot == slot.0 {
                tasks.push(LeftTask::from(&departure));
            }
        }
        tasks.sort_by_key(|t| (t.ktime_ns, t.pid));
        Ok(Departures {
            tasks,
            maybe_more: total >= MAX_DEPARTURES,
        })
    }

    /// Deletes `slot`'s entries, before the slot counts for another target.
    pub(super) fn forget_departures(&mut self, slot: u32) -> Result<(), BpfError> {
        let mut map: HashMap<&mut MapData, DepartureKey, Departure> =
            map_mut(&mut self.ebpf, MAP_DEPARTURES)?;
        let keys: Vec<DepartureKey> = map
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.slot == slot)
            .collect();
        for key in keys {
            // Already gone is as good as deleted.
            let _ = map.remove(&key);
        }
        Ok(())
    }
}
