//! Every successful exec inside a target, with its file name and uid, for the report's list of
//! executables. Execs are rare, so a ring buffer is fine here.

use agent_audit_ebpf::{ExecEvent, EXEC_FILENAME_LEN};
use aya_ebpf::{
    bindings::BPF_RB_NO_WAKEUP,
    helpers::{
        bpf_ktime_get_ns,
        generated::{bpf_get_current_comm, bpf_probe_read_kernel_str},
    },
    macros::{map, tracepoint},
    maps::RingBuf,
    programs::TracePointContext,
    EbpfContext,
};

use super::{
    target_slot,
    task::{BtfTask, Current},
};

#[map(name = "EXEC_EVENTS")]
static EXEC_EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// What a `/dev/fd/N` exec's file name starts with.
const DESCRIPTOR_PREFIX: &[u8; 8] = b"/dev/fd/";

/// `sched:sched_process_exec`: `__data_loc char[] filename` at offset 8.
#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let current = BtfTask::current();
    let Some(slot) = target_slot(&ctx, &current) else {
        return 0;
    };
    // The exec renamed the task: caches on every CPU must read the new name.
    super::attribution::names_changed();
    // SAFETY: offset 8 of this tracepoint's record holds the `__data_loc` of `filename`; a
    // direct context load (the verifier checks it against the record's size).
    let loc = unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u32).add(2)) };
    let filename = (ctx.as_ptr() as *const u8).wrapping_add((loc & 0xffff) as usize);
    let Some(mut entry) = EXEC_EVENTS.reserve::<ExecEvent>(0) else {
        // Buffer full: userspace reports dropped execs from the totals it sees. The phase
        // still has to end on the workload's first exec.
        if !is_descriptor_exec(filename) {
            super::refusals::note_runtime_filters(&current, slot);
            super::end_runtime_init(slot);
        }
        return 0;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points to reserved ring-buffer memory of the right size; every field is
    // written before submit (the helpers fill `comm` and `filename` in place, NUL-padded or
    // NUL-terminated).
    let descriptor = unsafe {
        (*event).slot = slot;
        // The upper half of pid_tgid is the tgid.
        #[allow(clippy::cast_possible_truncation)]
        let tgid = (current.pid_tgid() >> 32) as u32;
        (*event).tgid = tgid;
        (*event).uid = current.uid();
        (*event).gid = current.gid();
        (*event).ktime_ns = bpf_ktime_get_ns();
        if bpf_get_current_comm((*event).comm.as_mut_ptr().cast(), 16) != 0 {
            (*event).comm = [0; 16];
        }
        (*event)._pad = 0;
        let buf = &mut (*event).filename;
        // EXEC_FILENAME_LEN is 256.
        #[allow(clippy::cast_possible_truncation)]
        let capacity = EXEC_FILENAME_LEN as u32;
        let len = bpf_probe_read_kernel_str(buf.as_mut_ptr().cast(), capacity, filename.cast());
        // Bytes copied including the NUL; 0 for an empty name, negative on failure.
        let copied = usize::try_from(len).unwrap_or(0);
        if copied == 0 {
            buf[0] = 0;
        }
        // At most EXEC_FILENAME_LEN (256).
        #[allow(clippy::cast_possible_truncation)]
        let filename_len = copied.saturating_sub(1).min(EXEC_FILENAME_LEN) as u32;
        (*event).filename_len = filename_len;
        // The file name is read once, into the event, and the prefix tested there.
        copied > DESCRIPTOR_PREFIX.len()
            && buf.get(..DESCRIPTOR_PREFIX.len()) == Some(DESCRIPTOR_PREFIX.as_slice())
    };
    if !descriptor {
        super::refusals::note_runtime_filters(&current, slot);
        super::end_runtime_init(slot);
    }
    // No wakeup: userspace drains the ring on its own schedule and never sleeps on it, and a
    // wakeup costs an inter-processor interrupt (a VM exit on a virtual machine).
    entry.submit(u64::from(BPF_RB_NO_WAKEUP));
    0
}

/// Whether the exec ran an open file descriptor (`fexecve`/`execveat(fd, "", AT_EMPTY_PATH)`,
/// named `/dev/fd/N` by the kernel). That is how a container runtime re-executes a sealed
/// copy of itself inside the new cgroup (runc 1.1's `runc init` runs its memfd clone this
/// way) before its init's mounts: not the workload's first exec, so the runtime's init phase
/// goes on. Only used when the ring buffer is full; otherwise the copy in the event is tested.
#[inline(never)]
fn is_descriptor_exec(filename: *const u8) -> bool {
    let mut buf = [0u8; 9];
    // SAFETY: probe read of the tracepoint's own filename string, bounded by `buf`.
    let len = unsafe { bpf_probe_read_kernel_str(buf.as_mut_ptr().cast(), 9, filename.cast()) };
    len == 9 && buf.get(..8) == Some(DESCRIPTOR_PREFIX.as_slice())
}
