//! Operations of the i386 multiplexer syscalls `socketcall` and `ipc`, which carry the real
//! operation in their first argument. Numbers are kernel ABI: `SYS_*` in
//! include/uapi/linux/net.h and the IPC call numbers in include/uapi/linux/ipc.h; each name is
//! the direct syscall that does the same thing.

/// `socketcall(call, args)`: `call` → operation.
const SOCKETCALL_OPS: &[(u32, &str)] = &[
    (1, "socket"),
    (2, "bind"),
    (3, "connect"),
    (4, "listen"),
    (5, "accept"),
    (6, "getsockname"),
    (7, "getpeername"),
    (8, "socketpair"),
    (9, "send"),
    (10, "recv"),
    (11, "sendto"),
    (12, "recvfrom"),
    (13, "shutdown"),
    (14, "setsockopt"),
    (15, "getsockopt"),
    (16, "sendmsg"),
    (17, "recvmsg"),
    (18, "accept4"),
    (19, "recvmmsg"),
    (20, "sendmmsg"),
];

/// `ipc(call, …)`: the low 16 bits of `call` → operation (the high bits are a version).
const IPC_OPS: &[(u32, &str)] = &[
    (1, "semop"),
    (2, "semget"),
    (3, "semctl"),
    (4, "semtimedop"),
    (11, "msgsnd"),
    (12, "msgrcv"),
    (13, "msgget"),
    (14, "msgctl"),
    (21, "shmat"),
    (22, "shmdt"),
    (23, "shmget"),
    (24, "shmctl"),
];

/// The operation a multiplexer call performed, if `syscall` is a multiplexer and `op` known.
pub fn operation_name(syscall: &str, op: u32) -> Option<&'static str> {
    let table = match syscall {
        "socketcall" => SOCKETCALL_OPS,
        "ipc" => IPC_OPS,
        _ => return None,
    };
    table.iter().find(|(n, _)| *n == op).map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscalls::Arch;

    #[test]
    fn operations_are_real_syscalls_elsewhere() {
        assert_eq!(operation_name("socketcall", 1), Some("socket"));
        assert_eq!(operation_name("ipc", 23), Some("shmget"));
        assert_eq!(operation_name("socketcall", 0), None);
        assert_eq!(operation_name("read", 1), None);
        // Each operation name exists as a direct syscall on x86_64 or i386 (send/recv are
        // libc wrappers over sendto/recvfrom and exist on neither).
        for (_, name) in SOCKETCALL_OPS.iter().chain(IPC_OPS) {
            let known = Arch::X86_64.syscall_nr(name).is_some()
                || Arch::X86.syscall_nr(name).is_some()
                || matches!(*name, "send" | "recv");
            assert!(known, "{name}");
        }
    }
}
