//! The only module that knows aya: loads the embedded kernel program, attaches it to
//! `sys_enter`, manages target slots and reads the per-CPU counters into plain values.
//!
//! Minimum kernel: 5.8 (CAP_BPF/CAP_PERFMON, `bpf_get_current_ancestor_cgroup_id` in tracing
//! programs); `tp_btf` additionally needs BTF (`CONFIG_DEBUG_INFO_BTF`, /sys/kernel/btf/vmlinux).

mod args;
mod attribution;
mod batch;
mod btf_scan;
mod departures;
mod dirty;
mod layout;
mod slots;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use agent_audit_ebpf::{
    SyscallCounters, ABI_COMPAT32, ABI_COUNT, ABI_NATIVE, ABI_X32, GLOBAL_ARGS, GLOBAL_ARG_FIRST,
    GLOBAL_ARG_REG_OFFSETS, GLOBAL_ARG_SPECS, GLOBAL_ATTRIBUTION, GLOBAL_CGROUP_LAYOUT,
    GLOBAL_COMPAT_ARG0_OFFSET, GLOBAL_COMPAT_FLAG_MASK, GLOBAL_COMPAT_FLAG_OFFSET,
    GLOBAL_COMPAT_IPC_NR, GLOBAL_COMPAT_SOCKETCALL_NR, GLOBAL_FORK_NRS, GLOBAL_PRCTL_NR,
    GLOBAL_TASK_LAYOUT, MAP_COUNTERS, MAP_DIRTY, MAP_EXEC_EVENTS, MAP_EXIT_COUNTERS,
    MAP_FREE_SLOTS, MAP_INIT_COUNTERS, MAP_INIT_EXIT_COUNTERS, MAP_PHASE, MAP_STARVED, MAP_TARGETS,
    MAP_TARGET_GENERATION, MAX_TARGETS, MUX_SLOTS, NO_TARGET, NR_SLOTS, PHASE_RUNTIME_INIT,
    PHASE_WORKLOAD, PROG_SCHED_EXEC, PROG_SYS_ENTER_BTF, PROG_SYS_ENTER_EMPTY, PROG_SYS_ENTER_RAW,
    PROG_SYS_EXIT, WATCH_PARENT,
};
use aya::maps::{Array, HashMap, MapData, PerCpuArray, PerCpuValues, Queue, RingBuf};
use aya::programs::{BtfTracePoint, RawTracePoint, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader};

pub use args::ArgUse;
pub use attribution::{ExecRecord, ProgramUse};
pub use departures::{Departures, LeftTask};
pub use layout::KernelLayout;

use crate::syscalls::Arch;
use slots::{SlotState, SlotTable};

/// The kernel program, built by `cargo xtask build-ebpf` and embedded by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/agent-audit-ebpf.o"));

/// Where the kernel exposes its BTF; overridable for tests that simulate a kernel without it.
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// How to attach to `sys_enter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    /// `tp_btf` when the kernel has BTF, else `raw_tp`.
    Auto,
    /// BTF-typed raw tracepoint (fastest; needs BTF).
    TpBtf,
    /// Raw tracepoint (as fast; works without BTF).
    RawTp,
}

/// How the kernel program is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterOptions {
    /// Attach type.
    pub attach: AttachMode,
    /// Attribute each call to its program (off: count only, the cheapest path).
    pub attribution: bool,
    /// Record the values of the tracked syscall arguments (`data/tracked-args.json`).
    pub args: bool,
}

impl CounterOptions {
    /// `attach`, with attribution on.
    pub fn new(attach: AttachMode) -> Self {
        Self {
            attach,
            attribution: true,
            args: true,
        }
    }
}

/// What went wrong between this process and the kernel.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// `tp_btf` was asked for and there is no BTF.
    #[error(
        "this kernel has no BTF ({path} is missing; needs CONFIG_DEBUG_INFO_BTF=y): \
         tp_btf cannot attach. Use `--attach raw-tp` or `--attach auto`"
    )]
    NoBtf {
        /// The BTF file looked for.
        path: PathBuf,
    },
    /// The object could not be loaded (maps created, programs verified).
    #[error("loading the kernel program failed: {0}")]
    Load(#[source] aya::EbpfError),
    /// A program was rejected or could not be attached.
    #[error(
        "loading or attaching the {attach} program failed: {} (the kernel needs \
         CONFIG_BPF_EVENTS and CONFIG_FTRACE_SYSCALLS; run with -vv for the whole verifier log)",
        summarize(.source)
    )]
    Attach {
        /// `tp_btf` or `raw_tp`.
        attach: &'static str,
        /// aya's error, with the verifier log when there is one.
        source: aya::programs::ProgramError,
    },
    /// A map is missing from the object or an operation on it failed.
    #[error("BPF map {name}: {source}")]
    Map {
        /// Map name.
        name: &'static str,
        /// aya's error.
        source: aya::maps::MapError,
    },
    /// The object lacks an expected map or program (a build mismatch).
    #[error("the embedded kernel program has no {0}: rebuild with `cargo xtask build`")]
    Missing(&'static str),
    /// All target slots are in use.
    #[error("at most {MAX_TARGETS} targets can be watched at once")]
    TooManyTargets,
}

/// aya's error with a verifier log cut to its last lines: the reason is at the end, and the
/// whole log (thousands of lines) buries it. The full log goes to the debug log.
fn summarize(err: &aya::programs::ProgramError) -> String {
    const TAIL: usize = 8;
    match err {
        aya::programs::ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            tracing::debug!("verifier log:\n{log}");
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(TAIL)..].join("\n    ");
            format!("{io_error}; verifier said:\n    {tail}\n")
        }
        other => other.to_string(),
    }
}

impl BpfError {
    /// Whether the kernel refused for lack of privileges (EPERM/EACCES), found by walking
    /// the error's sources down to the OS error.
    pub fn is_permission_denied(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(err) = cause {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::PermissionDenied
                    || matches!(io.raw_os_error(), Some(libc::EPERM | libc::EACCES))
                {
                    return true;
                }
            }
            cause = err.source();
        }
        false
    }

    /// The documented exit code: 77 for missing privileges, 70 for a build mismatch or a
    /// failed map operation (a bug), 2 for too many targets, 69 when the kernel cannot run
    /// the program.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        use crate::exit::ExitCode;
        match self {
            e if e.is_permission_denied() => ExitCode::NO_PERM,
            BpfError::Map { .. } | BpfError::Missing(_) => ExitCode::SOFTWARE,
            BpfError::TooManyTargets => ExitCode::USAGE,
            BpfError::NoBtf { .. } | BpfError::Load(_) | BpfError::Attach { .. } => {
                ExitCode::UNAVAILABLE
            }
        }
    }
}

/// A target's position in the per-target counter array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TargetSlot(u32);

impl TargetSlot {
    /// A slot value for unit tests of code that groups by slot.
    #[cfg(test)]
    pub fn for_tests(index: u32) -> Self {
        Self(index)
    }
}

/// Counts read for one target, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetCounts {
    /// Non-zero (arch, nr, count) triples.
    pub syscalls: Vec<(Arch, u32, u64)>,
    /// Calls whose number was outside `0..NR_SLOTS`.
    pub out_of_range: u64,
    /// Compat `socketcall` operations: (op, count), non-zero only.
    pub socketcall_ops: Vec<(u32, u64)>,
    /// Compat `ipc` operations: (op, count), non-zero only.
    pub ipc_ops: Vec<(u32, u64)>,
}

impl TargetCounts {
    /// Every call counted.
    pub fn total(&self) -> u64 {
        self.syscalls.iter().map(|s| s.2).sum::<u64>() + self.out_of_range
    }
}

/// What was recorded about each call beyond its count, for every target at once (each is one
/// shared table, read once per batch of allowlists).
#[derive(Clone, Debug, Default)]
pub struct CallDetails {
    /// Which program made which syscall.
    pub programs: Vec<ProgramUse>,
    /// The values of the tracked arguments.
    pub args: Vec<ArgUse>,
}

/// The loaded, attached kernel program.
pub struct SyscallCounter {
    /// The programs' attachments; dropping one detaches its program.
    attachments: Vec<Attachment>,
    ebpf: Ebpf,
    attach: &'static str,
    slots: SlotTable,
    generation: u32,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    abi_arch: [Option<Arch>; ABI_COUNT],
    exec_events: Option<RingBuf<MapData>>,
    /// Slots that have counted before, whose counters and attribution must be cleared
    /// before reuse (the maps start zeroed).
    used_slots: std::collections::HashSet<u32>,
    /// Whether the exit counters have a slot per target.
    exits: ExitCounting,
    /// What each tracked-argument spec number means; `None` when arguments are not recorded.
    arg_meanings: Option<Vec<args::SpecMeaning>>,
    /// A parent is watched: every free slot is kept in the kernel's pool.
    pooling: bool,
    /// Children of a watched parent that found every slot in use, first come first served
    /// when a slot frees.
    waiting: std::collections::VecDeque<u64>,
    /// Slots given to waiting children, not yet reported by [`Self::claimed_targets`].
    assigned: Vec<(u64, TargetSlot)>,
    /// Execs read from the ring whose slot is not reported as a target yet.
    exec_backlog: Vec<ExecRecord>,
    /// Which slots counted a call since last asked; `None` if the map could not be mapped
    /// (every slot then counts as changed).
    dirty: Option<dirty::DirtyWords>,
    /// The `fentry` program that sees tasks leave a target's cgroup is attached.
    departures_watched: bool,
}

impl SyscallCounter {
    /// Loads the embedded program and attaches the counter to `sys_enter`. Counting starts
    /// for targets as they are added.
    pub fn load(opts: CounterOptions) -> Result<Self, BpfError> {
        Self::load_with_slots(opts, MAX_TARGETS, ExitCounting::Off)
    }

    /// Like [`SyscallCounter::load`], with room to count every slot's syscall exits too
    /// (`verify --docker-container`, which watches a parent as `record --wait` does). The exit
    /// counters are per-CPU maps of the counters' size: loaded for every slot only here, so
    /// that a recorder does not hold them (12 MiB per CPU at 256 slots).
    pub fn load_counting_exits(opts: CounterOptions) -> Result<Self, BpfError> {
        Self::load_with_slots(opts, MAX_TARGETS, ExitCounting::On)
    }

    /// Like [`SyscallCounter::load`], for one command (`run`, `verify`): a single target
    /// slot. The per-slot counter maps are per-CPU arrays of ~25 KiB per slot and CPU that
    /// the kernel allocates and zeroes when the object is loaded; at 256 slots that was tens
    /// of milliseconds of every start-up.
    pub fn load_for_command(opts: CounterOptions) -> Result<Self, BpfError> {
        Self::load_with_slots(opts, 1, ExitCounting::On)
    }

    fn load_with_slots(
        opts: CounterOptions,
        slots: u32,
        exits: ExitCounting,
    ) -> Result<Self, BpfError> {
        let mode = opts.attach;
        let btf_path = btf_path();
        let use_btf = match mode {
            AttachMode::TpBtf if !btf_path.exists() => {
                return Err(BpfError::NoBtf { path: btf_path })
            }
            AttachMode::TpBtf => true,
            AttachMode::RawTp => false,
            AttachMode::Auto => btf_path.exists(),
        };
        let started = std::time::Instant::now();
        // aya's loader reads and parses the kernel's whole BTF when it is created (for CO-RE
        // relocations), the largest single cost of starting: it is created on a thread of its
        // own while this one reads the few facts agent-audit needs from the same file.
        let new_loader = std::thread::spawn(EbpfLoader::new);
        let kernel_btf = btf_scan::KernelBtf::read(&btf_path);
        let layout = KernelLayout::detect(kernel_btf.as_ref());
        tracing::debug!(?layout, elapsed = ?started.elapsed(), "kernel layout");
        let departure_watch = departures::DepartureWatch::detect(kernel_btf.as_ref(), &layout.task);
        let attach_btf = match use_btf {
            true => Some(sys_enter_btf(kernel_btf.as_ref(), &btf_path)?),
            false => None,
        };
        drop(kernel_btf);
        let record_args = opts.args && layout.knows_arg_registers();
        if opts.args && !record_args {
            tracing::warn!("argument values are not recorded: this host's registers are unknown");
        }
        let arg_tables = args::ArgTables::resolve(crate::policy::tracked_args(), &abi_arches());
        let mut loader = new_loader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        tracing::debug!(elapsed = ?started.elapsed(), "kernel BTF parsed");
        if !btf_path.exists() {
            // A host without BTF (or a test simulating one): no relocation against it.
            loader.btf(None);
        }
        for map in [MAP_COUNTERS, MAP_INIT_COUNTERS, MAP_PHASE] {
            loader.map_max_entries(map, slots);
        }
        let exit_slots = match exits {
            ExitCounting::On => slots,
            ExitCounting::Off => 1,
        };
        for map in [MAP_EXIT_COUNTERS, MAP_INIT_EXIT_COUNTERS] {
            loader.map_max_entries(map, exit_slots);
        }
        let mut ebpf = loader
            .override_global(GLOBAL_COMPAT_FLAG_OFFSET, &layout.compat_flag_offset, true)
            .override_global(GLOBAL_COMPAT_FLAG_MASK, &layout.compat_flag_mask, true)
            .override_global(
                GLOBAL_COMPAT_SOCKETCALL_NR,
                &layout.compat_socketcall_nr,
                true,
            )
            .override_global(GLOBAL_COMPAT_IPC_NR, &layout.compat_ipc_nr, true)
            .override_global(GLOBAL_COMPAT_ARG0_OFFSET, &layout.compat_arg0_offset, true)
            .override_global(GLOBAL_PRCTL_NR, &native_nr("prctl"), true)
            .override_global(GLOBAL_ATTRIBUTION, &u32::from(opts.attribution), true)
            .override_global(GLOBAL_ARGS, &u32::from(record_args), true)
            .override_global(GLOBAL_ARG_FIRST, &arg_tables.first, true)
            .override_global(GLOBAL_ARG_SPECS, &arg_tables.specs, true)
            .override_global(GLOBAL_ARG_REG_OFFSETS, &layout.arg_offsets, true)
            .override_global(GLOBAL_TASK_LAYOUT, &layout.task, true)
            .override_global(GLOBAL_CGROUP_LAYOUT, departure_watch.layout(), true)
            .override_global(
                GLOBAL_FORK_NRS,
                &["clone", "clone3", "fork", "vfork"].map(native_nr),
                true,
            )
            .load(OBJECT)
            .map_err(BpfError::Load)?;
        let logger = match aya_log::EbpfLogger::init(&mut ebpf) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::debug!("kernel-side logging unavailable: {e}");
                None
            }
        };
        let mut counter = Self {
            attachments: Vec::new(),
            ebpf,
            attach: if use_btf { "tp_btf" } else { "raw_tp" },
            slots: SlotTable::new(slots as usize),
            generation: 0,
            logger,
            abi_arch: abi_arches(),
            exec_events: None,
            used_slots: std::collections::HashSet::new(),
            exits,
            arg_meanings: record_args.then_some(arg_tables.meanings),
            pooling: false,
            waiting: std::collections::VecDeque::new(),
            assigned: Vec::new(),
            exec_backlog: Vec::new(),
            dirty: None,
            departures_watched: false,
        };
        counter.dirty = counter.map_dirty_words();
        counter.bump_generation()?;
        tracing::debug!(elapsed = ?started.elapsed(), "object loaded, maps created");
        let sys_enter = match (use_btf, &attach_btf) {
            (true, Some(btf)) => SysEnter::Btf(btf),
            (true, None) => return Err(BpfError::NoBtf { path: btf_path }),
            (false, _) => SysEnter::Raw,
        };
        counter.attach_both(sys_enter, &departure_watch, started)?;
        counter.log_verifier_work();
        Ok(counter)
    }

    /// Verifies and attaches the `sys_enter` counter, the `sched_process_exec` reporter and
    /// the departure programs at the same time, each but the first on a thread of its own: the
    /// verifier takes most of the start-up, and the programs are verified independently.
    fn attach_both(
        &mut self,
        sys_enter: SysEnter<'_>,
        departure_watch: &departures::DepartureWatch,
        started: std::time::Instant,
    ) -> Result<(), BpfError> {
        ensure_tracefs();
        let (mut enter_prog, mut exec_prog) = (None, None);
        let mut departure_progs = [None, None];
        for (name, program) in self.ebpf.programs_mut() {
            match (name, sys_enter) {
                (PROG_SYS_ENTER_BTF, SysEnter::Btf(_)) | (PROG_SYS_ENTER_RAW, SysEnter::Raw) => {
                    enter_prog = Some(program)
                }
                (PROG_SCHED_EXEC, _) => exec_prog = Some(program),
                (name, _) => {
                    if let Some(i) = departures::DepartureWatch::index_of(name) {
                        departure_progs[i] = Some(program);
                    }
                }
            }
        }
        let enter_prog = enter_prog.ok_or(BpfError::Missing(sys_enter.program_name()))?;
        let exec_prog = exec_prog.ok_or(BpfError::Missing(PROG_SCHED_EXEC))?;
        let (enter, exec, departed) = std::thread::scope(|scope| {
            let departed = scope.spawn(|| {
                let attached = departure_watch.attach(departure_progs);
                tracing::debug!(elapsed = ?started.elapsed(), "cgroup departures watched");
                attached
            });
            let exec = scope.spawn(|| {
                let attached = attach_tracepoint(exec_prog, PROG_SCHED_EXEC, "sched", "sched_process_exec");
                tracing::debug!(elapsed = ?started.elapsed(), "sched_process_exec verified and attached");
                attached
            });
            let enter = sys_enter.attach(enter_prog);
            tracing::debug!(elapsed = ?started.elapsed(), "sys_enter verified and attached");
            (
                enter,
                exec.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                departed
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            )
        });
        self.attachments.push(enter?);
        self.attachments.push(exec?);
        if let Some(attached) = departed {
            self.attachments.extend(attached);
            self.departures_watched = true;
        }
        let map = self
            .ebpf
            .take_map(MAP_EXEC_EVENTS)
            .ok_or(BpfError::Missing(MAP_EXEC_EVENTS))?;
        self.exec_events = Some(RingBuf::try_from(map).map_err(|source| BpfError::Map {
            name: MAP_EXEC_EVENTS,
            source,
        })?);
        Ok(())
    }

    /// Logs how many instructions the verifier processed for each loaded program: its time
    /// grows with that number, and it is most of the start-up time.
    fn log_verifier_work(&self) {
        for (name, program) in self.ebpf.programs() {
            if let Ok(info) = program.info() {
                tracing::debug!(
                    program = name,
                    verified_insns = info.verified_instruction_count(),
                    "verifier work"
                );
            }
        }
    }

    /// The `DIRTY` words mapped into this process, if the kernel allows it.
    fn map_dirty_words(&self) -> Option<dirty::DirtyWords> {
        let Some(aya::maps::Map::Array(map)) = self.ebpf.map(MAP_DIRTY) else {
            tracing::debug!("no {MAP_DIRTY} array: every snapshot reads every target");
            return None;
        };
        dirty::DirtyWords::map(map, MAX_TARGETS)
            .inspect_err(|e| {
                tracing::debug!("{MAP_DIRTY} not mapped ({e}): every snapshot reads every target")
            })
            .ok()
    }

    /// Whether the target counted a call since the last time this was asked for its slot
    /// (always true where that cannot be known). Asked before its counters are read: a call
    /// that races with the read marks the slot again.
    pub fn take_changed(&self, slot: TargetSlot) -> bool {
        self.dirty.as_ref().is_none_or(|d| d.take(slot.0))
    }

    /// `tp_btf` or `raw_tp`.
    pub fn attach_kind(&self) -> &'static str {
        self.attach
    }

    /// Also counts syscall exits (`raw_syscalls:sys_exit`), which is how `verify` sees calls
    /// that seccomp refused: they exit without ever entering. Only for a counter loaded with
    /// room for exits ([`Self::load_for_command`], [`Self::load_counting_exits`]); elsewhere
    /// the exits of every slot but the first would go uncounted.
    pub fn attach_exit_counter(&mut self) -> Result<(), BpfError> {
        debug_assert!(
            self.exits == ExitCounting::On,
            "exit counters were not loaded"
        );
        ensure_tracefs();
        let program = self
            .ebpf
            .program_mut(PROG_SYS_EXIT)
            .ok_or(BpfError::Missing(PROG_SYS_EXIT))?;
        let exit = attach_tracepoint(program, PROG_SYS_EXIT, "raw_syscalls", "sys_exit")?;
        self.attachments.push(exit);
        Ok(())
    }

    /// Detaches every program without this process waiting for it; the maps stay readable.
    /// Detaching a classic tracepoint (`sched_process_exec`) waits for RCU grace periods —
    /// 20 to 80 ms measured, most of `run`'s teardown — in whichever process lets go of it
    /// last. That is left to a short-lived grandchild: it holds copies of the attachments,
    /// this process drops its own, and the grandchild then exits, detaching the programs on
    /// its way out, while this process goes on (or ends). If no process can be started, they
    /// are detached here.
    pub fn detach_without_waiting(&mut self) {
        let attachments = std::mem::take(&mut self.attachments);
        detach_in_grandchild(attachments);
    }

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
        let slot = self.slots.first_free().ok_or(BpfError::TooManyTargets)?;
        self.prepare_slot(slot, phase)?;
        self.targets_insert(cgroup_id, slot)?;
        self.slots.set(slot, SlotState::Target(cgroup_id));
        // Only now invalidate cached verdicts: a task that resolves its cgroup concurrently
        // either sees the new target or stores the old generation and resolves again.
        self.bump_generation()?;
        Ok(TargetSlot(slot))
    }

    /// Makes every cgroup created below `cgroup_id` a target of its own from its first
    /// syscall on (see `WATCH_PARENT`). New targets are reported by [`Self::claimed_targets`].
    pub fn watch_parent(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        self.pooling = true;
        self.refill_pool()?;
        self.targets_insert(cgroup_id, WATCH_PARENT)?;
        self.bump_generation()
    }

    /// Puts every free slot, zeroed, into the kernel's pool: a burst of new cgroups can take
    /// them all at once. Called whenever a slot frees, so the pool is never short of a slot
    /// that exists. Bumps the generation when it added any, so that children which found the
    /// pool empty (see [`Self::drain_starved`]) claim one on their next syscall.
    fn refill_pool(&mut self) -> Result<(), BpfError> {
        let free = self.slots.all_free();
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
            self.slots.set(slot, SlotState::Pooled);
        }
        self.bump_generation()
    }

    /// Slots are free again after targets ended: they go to the children that have waited
    /// longest for one, the rest back to the pool at once when pooling.
    fn slot_freed(&mut self) -> Result<(), BpfError> {
        // Old verdicts naming the slots are invalid before they are zeroed and handed out,
        // and so are the execs of their last owners.
        self.bump_generation()?;
        for slot in self.slots.all_free() {
            self.forget_execs(slot);
        }
        while let Some(slot) = self.slots.first_free() {
            let Some(child) = self.waiting.pop_front() else {
                break;
            };
            self.assign_free_slot(child, slot)?;
        }
        if self.pooling {
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
            self.slots.set(slot, SlotState::Target(child));
            self.assigned.push((child, TargetSlot(slot)));
            self.bump_generation()?;
        }
        Ok(())
    }

    /// Gives `child` (which found no slot, see [`Self::drain_starved`]) a slot from the pool
    /// if one is there by now, else queues it for the next slot that frees; either way it is
    /// reported by [`Self::claimed_targets`] once it has one.
    pub fn wait_for_slot(&mut self, child: u64) -> Result<(), BpfError> {
        if self.waiting.contains(&child) {
            return Ok(());
        }
        if let Some(slot) = self.pop_pooled()? {
            if self.insert_new_entry(child, slot)? {
                self.set_phase(slot, PHASE_WORKLOAD)?;
                self.slots.set(slot, SlotState::Target(child));
                self.assigned.push((child, TargetSlot(slot)));
                return self.bump_generation();
            }
            // It has an entry (claimed meanwhile, or excluded): the slot goes back.
            self.slots.set(slot, SlotState::Free);
            return self.refill_pool();
        }
        self.waiting.push_back(child);
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
        self.waiting.retain(|&c| c != child);
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
        let mut claimed = std::mem::take(&mut self.assigned);
        for entry in targets.iter() {
            let (cgroup_id, slot) = entry.map_err(|source| BpfError::Map {
                name: MAP_TARGETS,
                source,
            })?;
            if slot & WATCH_PARENT == 0 && self.slots.get(slot) == SlotState::Pooled {
                claimed.push((cgroup_id, TargetSlot(slot)));
            }
        }
        for (cgroup_id, slot) in &claimed {
            self.slots.set(slot.0, SlotState::Target(*cgroup_id));
            self.stop_waiting(*cgroup_id);
        }
        Ok(claimed)
    }

    /// Releases a target the kernel program claimed below a watched parent and stops that
    /// cgroup from being claimed again.
    pub fn exclude_claimed(&mut self, slot: TargetSlot) -> Result<(), BpfError> {
        let SlotState::Target(cgroup_id) = self.slots.get(slot.0) else {
            return Ok(());
        };
        self.targets_insert(cgroup_id, NO_TARGET)?;
        self.slots.set(slot.0, SlotState::Free);
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
            let SlotState::Target(cgroup_id) = self.slots.get(slot.0) else {
                continue;
            };
            self.slots.set(slot.0, SlotState::Free);
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

    /// Reads a target's syscall-entry counters, summed over CPUs.
    pub fn read(&self, slot: TargetSlot) -> Result<TargetCounts, BpfError> {
        self.read_map(MAP_COUNTERS, slot)
    }

    /// Reads the calls a target made during its runtime-init phase (before its first exec);
    /// empty for targets that started in the workload phase.
    pub fn read_runtime_init(&self, slot: TargetSlot) -> Result<TargetCounts, BpfError> {
        self.read_map(MAP_INIT_COUNTERS, slot)
    }

    /// Reads a target's syscall-exit counters (zero unless the exit counter is attached).
    pub fn read_exits(&self, slot: TargetSlot) -> Result<TargetCounts, BpfError> {
        self.read_map(MAP_EXIT_COUNTERS, slot)
    }

    /// Exits counted while the target was in the runtime's init (see [`Self::read_exits`]).
    pub fn read_init_exits(&self, slot: TargetSlot) -> Result<TargetCounts, BpfError> {
        self.read_map(MAP_INIT_EXIT_COUNTERS, slot)
    }

    fn read_map(&self, name: &'static str, slot: TargetSlot) -> Result<TargetCounts, BpfError> {
        let counters: PerCpuArray<&MapData, SyscallCounters> = map_ref(&self.ebpf, name)?;
        let per_cpu = counters
            .get(&slot.0, 0)
            .map_err(|source| BpfError::Map { name, source })?;
        let mut out = TargetCounts::default();
        let mut sums = vec![[0u64; NR_SLOTS]; ABI_COUNT];
        let mut socketcall = [0u64; MUX_SLOTS];
        let mut ipc = [0u64; MUX_SLOTS];
        for cpu in per_cpu.iter() {
            for (abi, row) in cpu.counts.iter().enumerate() {
                for (nr, c) in row.iter().enumerate() {
                    sums[abi][nr] += c;
                }
            }
            out.out_of_range += cpu.other.iter().sum::<u64>();
            for op in 0..MUX_SLOTS {
                socketcall[op] += cpu.socketcall[op];
                ipc[op] += cpu.ipc[op];
            }
        }
        for (abi, row) in sums.iter().enumerate() {
            // Numbered in u32 as syscalls are (a row has NR_SLOTS entries).
            for (nr, &count) in (0u32..).zip(row) {
                if count == 0 {
                    continue;
                }
                match self.abi_arch[abi] {
                    Some(arch) => out.syscalls.push((arch, nr, count)),
                    // An ABI this host cannot have: keep the calls in the totals.
                    None => out.out_of_range += count,
                }
            }
        }
        let nonzero = |ops: &[u64]| {
            (0u32..)
                .zip(ops)
                .filter(|(_, &c)| c > 0)
                .map(|(op, &c)| (op, c))
                .collect::<Vec<_>>()
        };
        out.socketcall_ops = nonzero(&socketcall);
        out.ipc_ops = nonzero(&ipc);
        Ok(out)
    }

    /// Reads the attribution and argument tables, for all targets.
    pub fn read_details(&self) -> Result<CallDetails, BpfError> {
        Ok(CallDetails {
            programs: self.read_attribution()?,
            args: self.read_args()?,
        })
    }

    /// Writes pending kernel-side log records to the log.
    pub fn flush_logs(&mut self) {
        if let Some(l) = &mut self.logger {
            l.flush();
        }
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
            .filter(|&s| !self.used_slots.insert(s))
            .collect();
        self.clear_attribution(&used)?;
        for &slot in &used {
            self.clear_args(slot)?;
            self.forget_departures(slot)?;
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
        let mut counters: PerCpuArray<&mut MapData, SyscallCounters> =
            map_mut(&mut self.ebpf, name)?;
        let io = |e| BpfError::Map {
            name,
            source: aya::maps::MapError::IoError(e),
        };
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| io(e))?;
        let zeros = PerCpuValues::try_from(vec![SyscallCounters::ZERO; cpus]).map_err(io)?;
        counters
            .set(slot, zeros, 0)
            .map_err(|source| BpfError::Map { name, source })
    }

    fn bump_generation(&mut self) -> Result<(), BpfError> {
        self.generation = self.generation.wrapping_add(1);
        let mut gen: Array<&mut MapData, u32> = map_mut(&mut self.ebpf, MAP_TARGET_GENERATION)?;
        gen.set(0, self.generation, 0)
            .map_err(|source| BpfError::Map {
                name: MAP_TARGET_GENERATION,
                source,
            })
    }
}

/// Whether a counter has room for syscall exits (`verify`), or only for entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExitCounting {
    On,
    Off,
}

/// Loads and attaches only the empty program: the benchmark's floor. Dropping the returned
/// value detaches it.
pub fn attach_empty_program() -> Result<impl Send, BpfError> {
    let path = btf_path();
    let btf = sys_enter_btf(btf_scan::KernelBtf::read(&path).as_ref(), &path)?;
    let mut ebpf = EbpfLoader::new().load(OBJECT).map_err(BpfError::Load)?;
    let program = ebpf
        .program_mut(PROG_SYS_ENTER_EMPTY)
        .ok_or(BpfError::Missing(PROG_SYS_ENTER_EMPTY))?;
    let attachment = attach_btf_program(program, &btf)?;
    // The attachment goes first: a program is detached before its object is unloaded.
    Ok((attachment, ebpf))
}

/// The BTF a `tp_btf` program on `sys_enter` is loaded with: aya only looks the
/// `btf_trace_sys_enter` typedef's id up in it, so it gets a small BTF with that typedef at
/// the id the scan found in the kernel's (see [`btf_scan::with_typedef_at`]) instead of a
/// second parse of the kernel's whole BTF; the whole one only if the scan did not find it.
fn sys_enter_btf(kernel: Option<&btf_scan::KernelBtf>, path: &Path) -> Result<Btf, BpfError> {
    const TYPEDEF: &str = "btf_trace_sys_enter";
    let small = kernel
        .and_then(|k| k.typedef_id(TYPEDEF))
        .and_then(|id| btf_scan::with_typedef_at(id, TYPEDEF))
        .and_then(|blob| Btf::parse(&blob, aya::Endianness::default()).ok());
    match small {
        Some(btf) => Ok(btf),
        None => Btf::parse_file(path, aya::Endianness::default()).map_err(|_| BpfError::NoBtf {
            path: path.to_path_buf(),
        }),
    }
}

fn btf_path() -> PathBuf {
    std::env::var_os("AGENT_AUDIT_BTF_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(VMLINUX_BTF))
}

/// A program's attachment, owned apart from the loaded object: dropping it detaches the
/// program (see [`SyscallCounter::detach_in_background`]).
type Attachment = Box<dyn Send>;

/// See [`SyscallCounter::detach_without_waiting`].
fn detach_in_grandchild(attachments: Vec<Attachment>) {
    let Ok((reader, writer)) = std::io::pipe() else {
        return drop(attachments);
    };
    let (read_end, write_end) = (reader.as_raw_fd(), writer.as_raw_fd());
    // SAFETY: fork; the child makes only async-signal-safe calls (fork, close, read, _exit).
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: in the child, as above. Its own child — the grandchild, whose end nobody
            // waits for — keeps the copies; stdin, stdout and stderr are closed at once, so
            // whoever reads this process's output is not kept waiting by it.
            unsafe {
                if libc::fork() != 0 {
                    libc::_exit(0);
                }
                for fd in [0, 1, 2, write_end] {
                    libc::close(fd);
                }
                // Returns once the parent has dropped its attachments and the write end.
                let mut byte = 0u8;
                while libc::read(read_end, std::ptr::addr_of_mut!(byte).cast(), 1) < 0
                    && *libc::__errno_location() == libc::EINTR
                {}
                libc::_exit(0)
            }
        }
        -1 => drop(attachments),
        child => {
            let mut status = 0;
            // SAFETY: reaping our own child, which exits at once.
            unsafe { libc::waitpid(child, &mut status, 0) };
            // Not the last references any more: dropping them does not wait.
            drop(attachments);
        }
    }
    drop(writer);
    drop(reader);
}

/// How `sys_enter` is attached.
#[derive(Clone, Copy)]
enum SysEnter<'a> {
    /// `tp_btf`, with the BTF that names its attach point.
    Btf(&'a Btf),
    /// `raw_tp`.
    Raw,
}

impl SysEnter<'_> {
    fn program_name(self) -> &'static str {
        match self {
            SysEnter::Btf(_) => PROG_SYS_ENTER_BTF,
            SysEnter::Raw => PROG_SYS_ENTER_RAW,
        }
    }

    fn attach(self, program: &mut aya::programs::Program) -> Result<Attachment, BpfError> {
        match self {
            SysEnter::Btf(btf) => attach_btf_program(program, btf),
            SysEnter::Raw => attach_raw(program),
        }
    }
}

fn attach_btf_program(
    program: &mut aya::programs::Program,
    btf: &Btf,
) -> Result<Attachment, BpfError> {
    let err = |source| BpfError::Attach {
        attach: "tp_btf",
        source,
    };
    let prog: &mut BtfTracePoint = program.try_into().map_err(err)?;
    prog.load("sys_enter", btf).map_err(err)?;
    let link = prog.attach().map_err(err)?;
    Ok(Box::new(prog.take_link(link).map_err(err)?))
}

/// Attaches a classic tracepoint program (tracefs must be mounted: see [`ensure_tracefs`]).
fn attach_tracepoint(
    program: &mut aya::programs::Program,
    name: &'static str,
    category: &str,
    event: &str,
) -> Result<Attachment, BpfError> {
    let err = |source| BpfError::Attach {
        attach: name,
        source,
    };
    let prog: &mut TracePoint = program.try_into().map_err(err)?;
    prog.load().map_err(err)?;
    let link = prog.attach(category, event).map_err(err)?;
    Ok(Box::new(prog.take_link(link).map_err(err)?))
}

/// Mounts tracefs if nobody has: it is not mounted by default on every host, and classic
/// tracepoints are looked up there.
fn ensure_tracefs() {
    let tracing = Path::new("/sys/kernel/tracing");
    if tracing.join("events").exists() || Path::new("/sys/kernel/debug/tracing/events").exists() {
        return;
    }
    // SAFETY: constant NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        tracing::info!("mounted tracefs at /sys/kernel/tracing");
    } else {
        tracing::warn!(
            "tracefs is not mounted and mounting it failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn attach_raw(program: &mut aya::programs::Program) -> Result<Attachment, BpfError> {
    let err = |source| BpfError::Attach {
        attach: "raw_tp",
        source,
    };
    let prog: &mut RawTracePoint = program.try_into().map_err(err)?;
    prog.load().map_err(err)?;
    let link = prog.attach("sys_enter").map_err(err)?;
    Ok(Box::new(prog.take_link(link).map_err(err)?))
}

fn map_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<T, BpfError>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.map_mut(name).ok_or(BpfError::Missing(name))?;
    T::try_from(map).map_err(|source| BpfError::Map { name, source })
}

fn map_ref<'a, T>(ebpf: &'a Ebpf, name: &'static str) -> Result<T, BpfError>
where
    T: TryFrom<&'a aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.map(name).ok_or(BpfError::Missing(name))?;
    T::try_from(map).map_err(|source| BpfError::Map { name, source })
}

/// A syscall's number in this host's native table (`u32::MAX` if it has none).
fn native_nr(name: &str) -> u32 {
    Arch::native()
        .and_then(|a| a.syscall_nr(name))
        .unwrap_or(u32::MAX)
}

/// Which libseccomp arch each counted ABI means on this host.
fn abi_arches() -> [Option<Arch>; ABI_COUNT] {
    let mut arches = [None; ABI_COUNT];
    let native = Arch::native();
    arches[ABI_NATIVE] = native;
    arches[ABI_COMPAT32] = native.and_then(Arch::compat32_of);
    if native == Some(Arch::X86_64) {
        arches[ABI_X32] = Some(Arch::X32);
    }
    arches
}
