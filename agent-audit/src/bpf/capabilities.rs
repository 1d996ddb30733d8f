//! The capability checks each target made after its runtime's init (`fexit/cap_capable`):
//! attaching the program, clearing a reused slot, and reading the counts per capability and
//! outcome and per program.

use agent_audit_ebpf::{
    CapCounters, CapProgramKey, CAP_CAPABLE_FUNCTION, CAP_OUTCOMES, MAP_CAP_COUNTS,
    MAP_CAP_PROGRAMS, MAP_NOAUDIT_CALLERS, NOAUDIT_CALLER_SLOTS, PROG_CAP_CAPABLE,
    PROG_CAP_CAPABLE_TP,
};
use aya::maps::{Array, HashMap, MapData};
use aya::programs::{BtfTracePoint, FExit};
use aya::Btf;

use super::{
    btf_scan, load, load::Attachment, map_mut, map_ref, BpfError, SyscallCounter, TargetSlot,
};

/// How capability checks are seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapabilityHook {
    /// `fexit/cap_capable`: result and whether the check was audited.
    FExit,
    /// `tp_btf/cap_capable` (the tracepoint, Linux 6.14+): result only; no-audit probes count
    /// as audited checks.
    TpBtf,
}

impl CapabilityHook {
    /// The attach type and point, as allowlists record it.
    pub fn name(self) -> &'static str {
        match self {
            CapabilityHook::FExit => "fexit/cap_capable",
            CapabilityHook::TpBtf => "tp_btf/cap_capable",
        }
    }

    /// Whether no-audit probes are told apart from audited checks.
    pub fn sees_audit_option(self) -> bool {
        self == CapabilityHook::FExit
    }
}

/// One target's capability checks as the kernel counted them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapabilityCounts {
    /// `per_cap[cap][outcome]` (outcome bits: `CAP_REFUSED`, `CAP_NOAUDIT`).
    pub per_cap: Vec<[u64; CAP_OUTCOMES]>,
    /// Checks per (program, capability, outcome).
    pub programs: Vec<CapabilityProgramCount>,
    /// How they were seen.
    pub hook: CapabilityHook,
}

/// How often one program made one check with one outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapabilityProgramCount {
    /// The task's `comm`.
    pub comm: String,
    /// Capability number.
    pub cap: u8,
    /// Outcome bits.
    pub outcome: u8,
    /// Checks.
    pub checks: u64,
}

impl SyscallCounter {
    /// Attaches the capability-check counter: `fexit` on `cap_capable` where the kernel
    /// allows BPF trampolines, else the `capability:cap_capable` tracepoint as `tp_btf`. Both
    /// need BTF; there is no kprobe path. On error nothing is attached and the recording goes
    /// on without capabilities.
    pub fn attach_capability_checks(&mut self) -> Result<CapabilityHook, BpfError> {
        let path = load::btf_path();
        let kernel =
            btf_scan::KernelBtf::read(&path).ok_or(BpfError::NoBtf { path: path.clone() })?;
        let small = |blob: Option<Vec<u8>>| {
            blob.and_then(|b| Btf::parse(&b, aya::Endianness::default()).ok())
        };
        let fexit_btf = small(
            kernel
                .func_id(CAP_CAPABLE_FUNCTION)
                .and_then(|id| btf_scan::with_func_at(id, CAP_CAPABLE_FUNCTION)),
        );
        let tp_typedef = "btf_trace_cap_capable";
        let tp_btf = small(
            kernel
                .typedef_id(tp_typedef)
                .and_then(|id| btf_scan::with_typedef_at(id, tp_typedef)),
        );
        drop(kernel);
        let fexit = match &fexit_btf {
            Some(btf) => self.attach_fexit(btf),
            None => Err(BpfError::NoBtf { path: path.clone() }),
        };
        let (attachment, hook) = match (fexit, &tp_btf) {
            (Ok(a), _) => (a, CapabilityHook::FExit),
            (Err(e), Some(btf)) => {
                tracing::debug!("fexit/cap_capable unavailable ({e}); using the tracepoint");
                self.set_noaudit_callers()?;
                (self.attach_tracepoint(btf)?, CapabilityHook::TpBtf)
            }
            (Err(e), None) => return Err(e),
        };
        self.attachments.push(attachment);
        self.capability_hook = Some(hook);
        Ok(hook)
    }

    /// Tells the tracepoint program where the kernel's no-audit entry points are.
    fn set_noaudit_callers(&mut self) -> Result<(), BpfError> {
        let ranges = std::fs::read_to_string("/proc/kallsyms")
            .map(|text| noaudit_ranges(&text))
            .unwrap_or_default();
        if ranges.iter().all(|r| r[1] == 0) {
            tracing::warn!(
                "the kernel's no-audit capability checks cannot be told apart (no addresses \
                 in /proc/kallsyms): they count as audited"
            );
        }
        let mut map: Array<&mut MapData, [[u64; 2]; NOAUDIT_CALLER_SLOTS]> =
            map_mut(&mut self.ebpf, MAP_NOAUDIT_CALLERS)?;
        map.set(0, ranges, 0).map_err(|source| BpfError::Map {
            name: MAP_NOAUDIT_CALLERS,
            source,
        })
    }

    fn attach_fexit(&mut self, btf: &Btf) -> Result<Attachment, BpfError> {
        let err = |source| BpfError::Attach {
            attach: "fexit/cap_capable",
            source,
        };
        let program = self
            .ebpf
            .program_mut(PROG_CAP_CAPABLE)
            .ok_or(BpfError::Missing(PROG_CAP_CAPABLE))?;
        let prog: &mut FExit = program.try_into().map_err(err)?;
        prog.load(CAP_CAPABLE_FUNCTION, btf).map_err(err)?;
        let link = prog.attach().map_err(err)?;
        Ok(Box::new(prog.take_link(link).map_err(err)?))
    }

    fn attach_tracepoint(&mut self, btf: &Btf) -> Result<Attachment, BpfError> {
        let err = |source| BpfError::Attach {
            attach: "tp_btf/cap_capable",
            source,
        };
        let program = self
            .ebpf
            .program_mut(PROG_CAP_CAPABLE_TP)
            .ok_or(BpfError::Missing(PROG_CAP_CAPABLE_TP))?;
        let prog: &mut BtfTracePoint = program.try_into().map_err(err)?;
        prog.load(CAP_CAPABLE_FUNCTION, btf).map_err(err)?;
        let link = prog.attach().map_err(err)?;
        Ok(Box::new(prog.take_link(link).map_err(err)?))
    }

    /// How capability checks are being counted, if they are
    /// ([`Self::attach_capability_checks`]).
    pub fn capability_hook(&self) -> Option<CapabilityHook> {
        self.capability_hook
    }

    /// The capability checks `slot` made; `None` when they are not counted.
    pub fn read_capability_checks(
        &self,
        slot: TargetSlot,
    ) -> Result<Option<CapabilityCounts>, BpfError> {
        let Some(hook) = self.capability_hook else {
            return Ok(None);
        };
        let map_err = |name| move |source| BpfError::Map { name, source };
        let counts: Array<&MapData, CapCounters> = map_ref(&self.ebpf, MAP_CAP_COUNTS)?;
        let per_cap = counts
            .get(&slot.0, 0)
            .map_err(map_err(MAP_CAP_COUNTS))?
            .counts
            .to_vec();
        let programs: HashMap<&MapData, CapProgramKey, u64> =
            map_ref(&self.ebpf, MAP_CAP_PROGRAMS)?;
        let mut out = Vec::new();
        for entry in programs.iter() {
            let (key, checks) = entry.map_err(map_err(MAP_CAP_PROGRAMS))?;
            if key.slot == slot.0 {
                out.push(CapabilityProgramCount {
                    comm: comm_name(key.comm),
                    cap: key.cap,
                    outcome: key.outcome,
                    checks,
                });
            }
        }
        Ok(Some(CapabilityCounts {
            per_cap,
            programs: out,
            hook,
        }))
    }

    /// Zeroes a reused slot's capability counts and forgets its programs.
    pub(super) fn clear_capability_checks(&mut self, slot: u32) -> Result<(), BpfError> {
        let map_err = |name| move |source| BpfError::Map { name, source };
        let mut counts: Array<&mut MapData, CapCounters> = map_mut(&mut self.ebpf, MAP_CAP_COUNTS)?;
        counts
            .set(slot, CapCounters::ZERO, 0)
            .map_err(map_err(MAP_CAP_COUNTS))?;
        let mut programs: HashMap<&mut MapData, CapProgramKey, u64> =
            map_mut(&mut self.ebpf, MAP_CAP_PROGRAMS)?;
        let stale: Vec<CapProgramKey> = programs
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.slot == slot)
            .collect();
        for key in stale {
            // Already gone is fine: nothing else removes entries.
            let _ = programs.remove(&key);
        }
        Ok(())
    }
}

/// The kernel functions that ask for a capability with `CAP_OPT_NOAUDIT` (kernel/capability.c,
/// security/commoncap.c): a check called from one of them is a probe. `cap_vm_enough_memory`
/// tail-calls `cap_capable`, so its frame is gone from the stack and its caller
/// `security_vm_enough_memory_mm` (which makes no other capability check) is what is seen.
const NOAUDIT_FUNCTIONS: [&str; 5] = [
    "ns_capable_noaudit",
    "has_ns_capability_noaudit",
    "has_capability_noaudit",
    "cap_vm_enough_memory",
    "security_vm_enough_memory_mm",
];

/// `[start, end)` of each of [`NOAUDIT_FUNCTIONS`] in /proc/kallsyms text (its end is the
/// next symbol's address); zeros where absent or where addresses are hidden
/// (`kptr_restrict`).
fn noaudit_ranges(kallsyms: &str) -> [[u64; 2]; NOAUDIT_CALLER_SLOTS] {
    let symbols: Vec<(u64, &str)> = kallsyms
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let addr = u64::from_str_radix(words.next()?, 16).ok()?;
            let kind = words.next()?;
            let name = words.next()?;
            matches!(kind, "T" | "t").then_some((addr, name))
        })
        .filter(|&(addr, _)| addr != 0)
        .collect();
    let mut ranges = [[0u64; 2]; NOAUDIT_CALLER_SLOTS];
    for (slot, name) in ranges.iter_mut().zip(NOAUDIT_FUNCTIONS) {
        let Some(&(start, _)) = symbols.iter().find(|(_, n)| *n == name) else {
            continue;
        };
        let end = symbols.iter().map(|&(a, _)| a).filter(|&a| a > start).min();
        if let Some(end) = end {
            *slot = [start, end];
        }
    }
    ranges
}

/// A `comm` as two words, NUL-padded, as text.
fn comm_name(comm: [u64; 2]) -> String {
    let bytes: Vec<u8> = comm.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noaudit_ranges_end_at_the_next_text_symbol() {
        let text = "ffffffff81000010 T ns_capable_noaudit\n\
                    ffffffff81000000 T capable\n\
                    ffffffff81000040 d some_data\n\
                    ffffffff81000090 t next_fn\n\
                    0000000000000000 T has_capability_noaudit\n";
        let ranges = noaudit_ranges(text);
        assert_eq!(ranges[0], [0xffff_ffff_8100_0010, 0xffff_ffff_8100_0090]);
        // Hidden addresses (zeros) give no range.
        assert_eq!(ranges[2], [0, 0]);
        assert_eq!(ranges[3], [0, 0]);
    }
}
