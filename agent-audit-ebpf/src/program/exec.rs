//! Every successful exec inside a target, with its file name and uid, for the report's list of
//! executables. Execs are rare, so a ring buffer is fine here.

use agent_audit_ebpf::{ExecEvent, EXEC_FILENAME_LEN};
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
        bpf_probe_read_kernel_str_bytes,
    },
    macros::{map, tracepoint},
    maps::RingBuf,
    programs::TracePointContext,
    EbpfContext,
};

use super::target_slot;

#[map(name = "EXEC_EVENTS")]
static EXEC_EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// `sched:sched_process_exec`: `__data_loc char[] filename` at offset 8.
#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let Some(slot) = target_slot(&ctx) else {
        return 0;
    };
    // The exec renamed the task: caches on every CPU must read the new name.
    super::attribution::names_changed();
    // SAFETY: offset 8 of this tracepoint holds the `__data_loc` of `filename`.
    let loc: u32 = unsafe { ctx.read_at(8) }.unwrap_or(0);
    let filename = (ctx.as_ptr() as *const u8).wrapping_add((loc & 0xffff) as usize);
    if !is_descriptor_exec(filename) {
        super::end_runtime_init(slot);
    }
    let Some(mut entry) = EXEC_EVENTS.reserve::<ExecEvent>(0) else {
        return 0; // buffer full: userspace reports dropped execs from the totals it sees
    };
    let event = entry.as_mut_ptr();
    let uid_gid = bpf_get_current_uid_gid();
    // SAFETY: `event` points to reserved ring-buffer memory of the right size; every field is
    // written before submit.
    unsafe {
        (*event).slot = slot;
        (*event).tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        // The helper returns the gid in the high 32 bits and the uid in the low ones.
        #[allow(clippy::cast_possible_truncation)]
        let uid = uid_gid as u32;
        (*event).uid = uid;
        (*event).gid = (uid_gid >> 32) as u32;
        (*event).ktime_ns = bpf_ktime_get_ns();
        (*event).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        (*event)._pad = 0;
        let buf = &mut (*event).filename;
        buf[0] = 0;
        let len = bpf_probe_read_kernel_str_bytes(filename, buf)
            .map(|s| s.len())
            .unwrap_or(0);
        // At most EXEC_FILENAME_LEN (256).
        #[allow(clippy::cast_possible_truncation)]
        let filename_len = len.min(EXEC_FILENAME_LEN) as u32;
        (*event).filename_len = filename_len;
    }
    entry.submit(0);
    0
}

/// Whether the exec ran an open file descriptor (`fexecve`/`execveat(fd, "", AT_EMPTY_PATH)`,
/// named `/dev/fd/N` by the kernel). That is how a container runtime re-executes a sealed
/// copy of itself inside the new cgroup (runc 1.1's `runc init` runs its memfd clone this
/// way) before its init's mounts: not the workload's first exec, so the runtime's init phase
/// goes on.
#[inline(always)]
fn is_descriptor_exec(filename: *const u8) -> bool {
    const PREFIX: &[u8; 8] = b"/dev/fd/";
    let mut buf = [0u8; 9];
    // SAFETY: probe read of the tracepoint's own filename string, bounded by `buf`.
    match unsafe { bpf_probe_read_kernel_str_bytes(filename, &mut buf) } {
        Ok(s) => s == PREFIX,
        Err(_) => false,
    }
}
