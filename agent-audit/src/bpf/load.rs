//! Loading the embedded kernel program and attaching it: the host layout and argument tables
//! handed to the object as globals, `tp_btf` or `raw_tp` on `sys_enter`, `sched_process_exec`,
//! the exit counter for `verify`, and detaching without waiting for RCU.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use agent_audit_ebpf::{
    ABI_COMPAT32, ABI_COUNT, ABI_NATIVE, ABI_X32, GLOBAL_ARGS, GLOBAL_ARG_FIRST,
    GLOBAL_ARG_REG_OFFSETS, GLOBAL_ARG_SPECS, GLOBAL_ARG_VALUE_MASK, GLOBAL_ATTRIBUTION,
    GLOBAL_ATTRIB_MASK, GLOBAL_CGROUP_LAYOUT, GLOBAL_COMPAT_ARG0_OFFSET, GLOBAL_COMPAT_FLAG_MASK,
    GLOBAL_COMPAT_FLAG_OFFSET, GLOBAL_COMPAT_IPC_NR, GLOBAL_COMPAT_SOCKETCALL_NR, GLOBAL_FORK_NRS,
    GLOBAL_NAME_LAYOUT, GLOBAL_NO_RETURN_NRS, GLOBAL_PRCTL_NR, GLOBAL_REFUSALS,
    GLOBAL_SECCOMP_LAYOUT, GLOBAL_TASK_LAYOUT, MAP_ARG_VALUES, MAP_ATTRIB, MAP_CAP_COUNTS,
    MAP_COUNTERS, MAP_DIRTY, MAP_EXEC_EVENTS, MAP_EXIT_COUNTERS, MAP_INIT_COUNTERS,
    MAP_INIT_EXIT_COUNTERS, MAP_PHASE, MAX_IN_SYSCALL, MAX_TARGETS, PROG_SCHED_EXEC,
    PROG_SYS_ENTER_BTF, PROG_SYS_ENTER_EMPTY, PROG_SYS_ENTER_RAW, PROG_SYS_EXIT,
};
use aya::maps::RingBuf;
use aya::programs::links::FdLink;
use aya::programs::{BtfTracePoint, RawTracePoint, TracePoint};
use aya::{Btf, EbpfLoader};

use super::pin::{self, PinDir, PinError, PinState};
use super::slots::SlotPool;
use super::{
    args, btf_scan, departures, dirty, refusals, BpfError, ExitCounting, KernelLayout,
    SyscallCounter, TableSizes,
};
use crate::shell::status;
use crate::syscalls::Arch;

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

/// Sizes the maps whose length is chosen at load: the per-slot maps for `slots` targets (exit
/// counters only where they are counted), and the per-CPU direct-mapped tables from the CPU
/// count.
fn size_maps(
    loader: &mut EbpfLoader,
    slots: u32,
    exits: ExitCounting,
) -> Result<TableSizes, BpfError> {
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| BpfError::Map {
        name: MAP_ATTRIB,
        source: aya::maps::MapError::IoError(e),
    })?;
    let tables = TableSizes::for_cpus(cpus);
    loader.map_max_entries(MAP_ATTRIB, tables.attrib);
    loader.map_max_entries(MAP_ARG_VALUES, tables.arg_values);
    for map in [MAP_COUNTERS, MAP_INIT_COUNTERS, MAP_PHASE, MAP_CAP_COUNTS] {
        loader.map_max_entries(map, slots);
    }
    let exit_slots = match exits {
        ExitCounting::On => slots,
        ExitCounting::Off => 1,
    };
    for map in [MAP_EXIT_COUNTERS, MAP_INIT_EXIT_COUNTERS] {
        loader.map_max_entries(map, exit_slots);
    }
    Ok(tables)
}

/// What the kernel program is told at load, as read-only globals (the loader borrows each
/// value until it loads the object).
struct Globals<'a> {
    layout: &'a KernelLayout,
    arg_tables: &'a args::ArgTables,
    attribution: u32,
    args: u32,
    prctl_nr: u32,
    fork_nrs: [u32; 4],
    attrib_mask: u32,
    arg_value_mask: u32,
    /// 1 when the refusal programs will be attached.
    refusals: u32,
    no_return_nrs: [[u32; 2]; ABI_COUNT],
    /// The cgroup members the departure programs read.
    cgroup_layout: &'a agent_audit_ebpf::CgroupLayout,
}

impl<'a> Globals<'a> {
    fn new(
        layout: &'a KernelLayout,
        arg_tables: &'a args::ArgTables,
        opts: CounterOptions,
        record_args: bool,
        tables: TableSizes,
        departure_watch: &'a departures::DepartureWatch,
    ) -> Self {
        Self {
            layout,
            arg_tables,
            attribution: u32::from(opts.attribution),
            args: u32::from(record_args),
            prctl_nr: native_nr("prctl"),
            fork_nrs: ["clone", "clone3", "fork", "vfork"].map(native_nr),
            attrib_mask: tables.attrib - 1,
            arg_value_mask: tables.arg_values - 1,
            refusals: 0,
            no_return_nrs: refusals::no_return_nrs(&abi_arches()),
            cgroup_layout: departure_watch.layout(),
        }
    }

    /// Sets every global and loads the object: maps created, programs not yet verified.
    fn load(&'a self, mut loader: EbpfLoader<'a>) -> Result<aya::Ebpf, BpfError> {
        let layout = self.layout;
        loader
            .override_global(GLOBAL_COMPAT_FLAG_OFFSET, &layout.compat_flag_offset, true)
            .override_global(GLOBAL_COMPAT_FLAG_MASK, &layout.compat_flag_mask, true)
            .override_global(
                GLOBAL_COMPAT_SOCKETCALL_NR,
                &layout.compat_socketcall_nr,
                true,
            )
            .override_global(GLOBAL_COMPAT_IPC_NR, &layout.compat_ipc_nr, true)
            .override_global(GLOBAL_COMPAT_ARG0_OFFSET, &layout.compat_arg0_offset, true)
            .override_global(GLOBAL_PRCTL_NR, &self.prctl_nr, true)
            .override_global(GLOBAL_ATTRIBUTION, &self.attribution, true)
            .override_global(GLOBAL_ARGS, &self.args, true)
            .override_global(GLOBAL_ARG_FIRST, &self.arg_tables.first, true)
            .override_global(GLOBAL_ARG_SPECS, &self.arg_tables.specs, true)
            .override_global(GLOBAL_ARG_REG_OFFSETS, &layout.arg_offsets, true)
            .override_global(GLOBAL_TASK_LAYOUT, &layout.task, true)
            .override_global(GLOBAL_CGROUP_LAYOUT, self.cgroup_layout, true)
            .override_global(GLOBAL_NAME_LAYOUT, &layout.name_offsets, true)
            .override_global(GLOBAL_ATTRIB_MASK, &self.attrib_mask, true)
            .override_global(GLOBAL_ARG_VALUE_MASK, &self.arg_value_mask, true)
            .override_global(GLOBAL_FORK_NRS, &self.fork_nrs, true)
            .override_global(GLOBAL_REFUSALS, &self.refusals, true)
            .override_global(GLOBAL_SECCOMP_LAYOUT, &layout.seccomp, true)
            .override_global(GLOBAL_NO_RETURN_NRS, &self.no_return_nrs, true)
            .load(OBJECT)
            .map_err(BpfError::Load)
    }
}

/// How `sys_enter` was attached: [`AttachMode`] once `Auto` is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SysEnterKind {
    /// BTF-typed raw tracepoint.
    TpBtf,
    /// Raw tracepoint.
    RawTp,
}

impl SysEnterKind {
    /// The kernel's name for the attach type, as allowlists record it.
    pub fn name(self) -> &'static str {
        match self {
            SysEnterKind::TpBtf => "tp_btf",
            SysEnterKind::RawTp => "raw_tp",
        }
    }
}

impl std::fmt::Display for SysEnterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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
    /// Count the calls the targets' seccomp filters refused (`sys_exit` and `sched_switch`
    /// programs; needs BTF).
    pub refusals: bool,
}

impl CounterOptions {
    /// `attach`, with attribution on.
    pub fn new(attach: AttachMode) -> Self {
        Self {
            attach,
            attribution: true,
            args: true,
            refusals: true,
        }
    }
}

impl SyscallCounter {
    /// Loads the embedded program and attaches the counter to `sys_enter`. Counting starts
    /// for targets as they are added.
    pub fn load(opts: CounterOptions) -> Result<Self, BpfError> {
        Self::load_with_slots(opts, MAX_TARGETS, ExitCounting::Off, None)
    }

    /// Like [`SyscallCounter::load`], with every map pinned in `dir` (`record --pin-dir`).
    /// When a recorder of this build pinned its programs there and ended, they still count:
    /// they are adopted — nothing is attached, the maps are the same, every target keeps its
    /// slot and counts — and [`Self::pin_links`] does nothing. Another build's pins are
    /// refused ([`PinError::OtherBuild`]).
    pub fn load_pinned(opts: CounterOptions, dir: PinDir) -> Result<Self, BpfError> {
        Self::load_with_slots(opts, MAX_TARGETS, ExitCounting::Off, Some(dir))
    }

    /// Pins every link of a counter loaded with [`Self::load_pinned`] and writes the pin
    /// state: from then on the programs count until `agent-audit unpin`, and a later
    /// recorder adopts them. Called once everything is attached (capability checks too).
    pub fn pin_links(&mut self) -> Result<(), BpfError> {
        let Some(dir) = self.pins.clone() else {
            return Ok(());
        };
        if self.adopted {
            return Ok(());
        }
        for (index, attachment) in std::mem::take(&mut self.attachments)
            .into_iter()
            .enumerate()
        {
            let link = attachment
                .into_fd_link()
                .ok_or(BpfError::Pin(PinError::NotALink))?;
            dir.pin_link(index, link)?;
        }
        let state = PinState {
            fingerprint: self.fingerprint.clone(),
            sys_enter: self.attach.name().to_string(),
            refusals: self.counts_refusals,
            departures: self.departures_watched,
            capabilities: self.capability_hook.map(|h| h.name().to_string()),
        };
        dir.write_state(&state)?;
        Ok(())
    }

    /// Whether this counter adopted a previous recorder's pinned programs.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// Like [`SyscallCounter::load`], with room to count every slot's syscall exits too
    /// (`verify --docker-container`, which watches a parent as `record --wait` does). The exit
    /// counters are maps of the counters' size: loaded for every slot only here, so
    /// that a recorder does not hold them (12 MiB at 256 slots).
    pub fn load_counting_exits(opts: CounterOptions) -> Result<Self, BpfError> {
        Self::load_with_slots(opts, MAX_TARGETS, ExitCounting::On, None)
    }

    /// Like [`SyscallCounter::load`], for one command (`run`, `verify`): a single target
    /// slot. The per-slot counter maps hold ~25 KiB per slot that the kernel allocates and
    /// zeroes when the object is loaded: at 256 slots, and when they were per CPU, that was
    /// tens of milliseconds of every start-up.
    pub fn load_for_command(opts: CounterOptions) -> Result<Self, BpfError> {
        Self::load_with_slots(opts, 1, ExitCounting::On, None)
    }

    fn load_with_slots(
        opts: CounterOptions,
        slots: u32,
        exits: ExitCounting,
        pins: Option<PinDir>,
    ) -> Result<Self, BpfError> {
        let fingerprint = pin::fingerprint(OBJECT, opts, slots, exits);
        let adopting = match &pins {
            Some(dir) => adopted_state(dir, &fingerprint)?,
            None => None,
        };
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
        let refusal_btfs = match (opts.refusals, use_btf && layout.seccomp.is_known()) {
            (true, true) => kernel_btf.as_ref().and_then(refusals::RefusalBtfs::find),
            (true, false) => {
                tracing::warn!(
                    "refused calls are not counted: this kernel's BTF lacks what it needs"
                );
                None
            }
            (false, _) => None,
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
        let tables = size_maps(&mut loader, slots, exits)?;
        let map_pins: Vec<(String, PathBuf)> = match &pins {
            Some(dir) => map_names()
                .into_iter()
                .map(|name| {
                    let path = dir.map_path(&name);
                    (name, path)
                })
                .collect(),
            None => Vec::new(),
        };
        for (name, path) in &map_pins {
            loader.map_pin_path(name.as_str(), path.as_path());
        }
        let globals = Globals {
            refusals: u32::from(refusal_btfs.is_some()),
            ..Globals::new(
                &layout,
                &arg_tables,
                opts,
                record_args,
                tables,
                &departure_watch,
            )
        };
        let mut ebpf = globals.load(loader)?;
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
            attach: if use_btf {
                SysEnterKind::TpBtf
            } else {
                SysEnterKind::RawTp
            },
            pool: SlotPool::new(slots as usize),
            generation: 0,
            logger,
            abi_arch: abi_arches(),
            exec_events: None,
            exits,
            arg_meanings: record_args.then_some(arg_tables.meanings),
            tables,
            exec_backlog: Vec::new(),
            dirty: None,
            refusal_btfs,
            counts_refusals: false,
            departures_watched: false,
            capability_hook: None,
            pins,
            adopted: false,
            fingerprint,
        };
        counter.dirty = counter.map_dirty_words();
        if let Some(state) = adopting {
            counter.adopt(&state)?;
            return Ok(counter);
        }
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

    /// Verifies and attaches the `sys_enter` counter, the `sched_process_exec` reporter (with
    /// the refusal programs) and the departure programs at the same time, each group but the
    /// first on a thread of its own: the verifier takes most of the start-up, and the
    /// programs are verified independently.
    fn attach_both(
        &mut self,
        sys_enter: SysEnter<'_>,
        departure_watch: &departures::DepartureWatch,
        started: std::time::Instant,
    ) -> Result<(), BpfError> {
        ensure_tracefs();
        let refusal_btfs = self.refusal_btfs.take();
        let (mut enter_prog, mut exec_prog) = (None, None);
        let mut refusal_progs = refusals::Programs::default();
        let mut departure_progs = [None, None];
        for (name, program) in self.ebpf.programs_mut() {
            match (name, sys_enter) {
                (PROG_SYS_ENTER_BTF, SysEnter::Btf(_)) | (PROG_SYS_ENTER_RAW, SysEnter::Raw) => {
                    enter_prog = Some(program)
                }
                (PROG_SCHED_EXEC, _) => exec_prog = Some(program),
                (name, _) => match departures::DepartureWatch::index_of(name) {
                    Some(i) => departure_progs[i] = Some(program),
                    None if refusal_btfs.is_some() => refusal_progs.offer(name, program),
                    None => {}
                },
            }
        }
        let enter_prog = enter_prog.ok_or(BpfError::Missing(sys_enter.program_name()))?;
        let exec_prog = exec_prog.ok_or(BpfError::Missing(PROG_SCHED_EXEC))?;
        let mut refused = Ok(Vec::new());
        let (enter, exec, departed) = std::thread::scope(|scope| {
            let departed = scope.spawn(|| {
                let attached = departure_watch.attach(departure_progs);
                tracing::debug!(elapsed = ?started.elapsed(), "cgroup departures watched");
                attached
            });
            let exec = scope.spawn(|| {
                let attached = attach_tracepoint(exec_prog, PROG_SCHED_EXEC, "sched", "sched_process_exec");
                tracing::debug!(elapsed = ?started.elapsed(), "sched_process_exec verified and attached");
                // The refusal programs are small: verified here while sys_enter's much longer
                // verification goes on.
                if let Some(btfs) = &refusal_btfs {
                    refused = refusal_progs.attach(btfs);
                    tracing::debug!(elapsed = ?started.elapsed(), "refusal programs verified and attached");
                }
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
        let refused = refused?;
        self.counts_refusals = !refused.is_empty();
        self.attachments.extend(refused);
        self.take_exec_events()
    }

    /// Takes the exec ring buffer out of the object, to read it.
    pub(super) fn take_exec_events(&mut self) -> Result<(), BpfError> {
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

    /// Whether refused calls are counted.
    pub fn counts_refusals(&self) -> bool {
        self.counts_refusals
    }

    /// Says on stderr when blocked calls' entries could not be remembered (the kernel's table
    /// was full): that many exits may have been counted as refusals wrongly, in any target.
    pub fn warn_if_refusals_inexact(&self) {
        let lost = refusals::lost_marks(&self.ebpf);
        if lost > 0 {
            status!(
                "agent-audit: warning: {lost} blocked call(s) could not be remembered (the \
                 kernel's table of {MAX_IN_SYSCALL} tasks was full): their exits may be \
                 counted in `refused` although they ran"
            );
        }
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
    /// How `sys_enter` is attached.
    pub fn attach_kind(&self) -> SysEnterKind {
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
}

/// The state of the previous recorder pinned in `dir` when it is this build's (to adopt);
/// `None` when nothing complete is pinned there (stale pins of a start that never finished
/// pinning are removed: their counts belong to no recording). Another build's: refused.
fn adopted_state(dir: &PinDir, fingerprint: &str) -> Result<Option<PinState>, BpfError> {
    let stale = || -> Result<Option<PinState>, BpfError> {
        tracing::warn!(
            "{}: removing the pins of a recorder that never finished pinning",
            dir.path().display()
        );
        pin::remove_pins(dir.path())?;
        Ok(None)
    };
    match dir.state()? {
        Some(_) if !dir.holds_links() => stale(),
        Some(state) if state.fingerprint == fingerprint => Ok(Some(state)),
        Some(state) => Err(BpfError::Pin(PinError::OtherBuild {
            dir: dir.path().to_path_buf(),
            found: state.fingerprint,
            ours: fingerprint.to_string(),
        })),
        None if dir.holds_pins() => stale(),
        None => Ok(None),
    }
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

pub(super) fn btf_path() -> PathBuf {
    std::env::var_os("AGENT_AUDIT_BTF_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(VMLINUX_BTF))
}

/// A program's attachment, owned apart from the loaded object: dropping it detaches the
/// program (see [`SyscallCounter::detach_without_waiting`]), pinning it keeps it attached.
pub(super) type Attachment = Box<dyn PinnableLink>;

/// A link that can become an [`FdLink`] to be pinned (every link agent-audit makes, where the
/// kernel makes BPF links of them: classic tracepoints since 5.15).
pub(super) trait PinnableLink: Send {
    /// The link as an [`FdLink`]; `None` (and detached) where it is not a BPF link.
    fn into_fd_link(self: Box<Self>) -> Option<FdLink>;
}

impl<T: Send + 'static> PinnableLink for T
where
    FdLink: TryFrom<T>,
{
    fn into_fd_link(self: Box<Self>) -> Option<FdLink> {
        FdLink::try_from(*self).ok()
    }
}

/// The embedded kernel object.
pub(super) fn object() -> &'static [u8] {
    OBJECT
}

/// The names of the object's maps (its symbols in the `maps` section), to pin them all.
fn map_names() -> Vec<String> {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
    let Ok(file) = object::File::parse(OBJECT) else {
        return Vec::new();
    };
    file.symbols()
        .filter(|sym| {
            sym.section_index()
                .and_then(|i| file.section_by_index(i).ok())
                .is_some_and(|sec| sec.name() == Ok("maps"))
        })
        .filter_map(|sym| sym.name().ok().map(str::to_string))
        .collect()
}

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
