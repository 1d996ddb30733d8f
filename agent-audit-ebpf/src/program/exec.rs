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
    super::end_runtime_init(slot);
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
        (*event).uid = uid_gid as u32;
        (*event).gid = (uid_gid >> 32) as u32;
        (*event).ktime_ns = bpf_ktime_get_ns();
        (*event).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        (*event)._pad = 0;
        let loc: u32 = ctx.read_at(8).unwrap_or(0);
        let src = (ctx.as_ptr() as *const u8).wrapping_add((loc & 0xffff) as usize);
        let buf = &mut (*event).filename;
        buf[0] = 0;
        let len = bpf_probe_read_kernel_str_bytes(src, buf)
            .map(|s| s.len())
            .unwrap_or(0);
        (*event).filename_len = len.min(EXEC_FILENAME_LEN) as u32;
    }
    entry.submit(0);
    0
}
