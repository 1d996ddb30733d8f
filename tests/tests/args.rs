//! Argument values: a static program makes each tracked call a known number of times with
//! known arguments under `agent-audit run`; the allowlist must hold exactly those values,
//! counts and bits, per ABI (the program is built for x86_64 and, with `gcc -m32`, for i386).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agent_audit::bpf::{AttachMode, CounterOptions, SyscallCounter};
use agent_audit::syscalls::Arch;
use agent_audit_tests::allowlist::Allowlist;
use agent_audit_tests::cgroup::ScratchCgroup;
use agent_audit_tests::process::run;
use agent_audit_tests::{agent_audit_bin, build_static_c_with, require_root, unique_name};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Calls the program makes (include/uapi/linux/*.h values, checked by the C compiler below).
const INET_STREAM: u64 = 3; // socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC)
const UNIX_DGRAM: u64 = 2; // socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK)
const PAIRS: u64 = 1; // socketpair(AF_UNIX, SOCK_STREAM)
const TCGETS_CALLS: u64 = 4;
const GETFL_CALLS: u64 = 7;
const AF_UNIX: u64 = 1;
const AF_INET: u64 = 2;
const SOCK_STREAM: u64 = 1;
const SOCK_DGRAM: u64 = 2;
const TCGETS: u64 = 0x5401;
const F_GETFL: u64 = 3;
const PR_SET_NAME: u64 = 15;
const PR_GET_NAME: u64 = 16;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
/// glibc's fork(): CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD (the signal is masked).
const FORK_FLAGS: u64 = 0x0100_0000 | 0x0020_0000;
/// glibc's pthread_create() through clone3 (sysdeps/unix/sysv/linux/createthread.c): VM, FS,
/// FILES, SYSVSEM, SIGHAND, THREAD, SETTLS, PARENT_SETTID, CHILD_CLEARTID.
const THREAD_FLAGS: u64 = 0x3d_0f00;

fn c_source() -> String {
    format!(
        r#"#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

_Static_assert(AF_UNIX == {AF_UNIX} && AF_INET == {AF_INET}, "families");
_Static_assert(SOCK_STREAM == {SOCK_STREAM} && SOCK_DGRAM == {SOCK_DGRAM}, "types");
_Static_assert(TCGETS == {TCGETS} && F_GETFL == {F_GETFL}, "requests");
_Static_assert(PR_SET_NAME == {PR_SET_NAME} && PR_GET_NAME == {PR_GET_NAME}, "options");
_Static_assert(CLONE_FS == {CLONE_FS} && CLONE_FILES == {CLONE_FILES}, "clone");

static void *thread(void *arg) {{ return arg; }}

/* A child that only exits; returns 0 in the parent once it has been reaped. */
static int reap(long pid) {{
    if (pid == 0) _exit(0);
    if (pid < 0) return 1;
    return waitpid(pid, 0, 0) == pid ? 0 : 1;
}}

int main(void) {{
    /* socket/socketpair through the direct syscalls (i386 libc would use socketcall). */
    for (int i = 0; i < {INET_STREAM}; i++) {{
        long fd = syscall(SYS_socket, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return 10;
        close(fd);
    }}
    for (int i = 0; i < {UNIX_DGRAM}; i++) {{
        long fd = syscall(SYS_socket, AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (fd < 0) return 11;
        close(fd);
    }}
    for (int i = 0; i < {PAIRS}; i++) {{
        int sv[2];
        if (syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 12;
        close(sv[0]);
        close(sv[1]);
    }}
    /* clone: glibc's fork, and a raw fork-like clone with two more flags. */
    if (reap(fork())) return 13;
    if (reap(syscall(SYS_clone, CLONE_FILES | CLONE_FS | SIGCHLD, 0, 0, 0, 0))) return 14;
    /* clone3: glibc's pthread_create, a raw fork-like clone3, and two the kernel refuses
       before reading anything, which must neither add bits nor make the record incomplete. */
    pthread_t t;
    if (pthread_create(&t, 0, thread, 0) != 0 || pthread_join(t, 0) != 0) return 15;
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = CLONE_FILES;
    ca.exit_signal = SIGCHLD;
    if (reap(syscall(SYS_clone3, &ca, sizeof ca))) return 16;
    /* Sizes below the struct's first version (64 bytes) are refused before the flags are
       read, whatever they say. */
    ca.flags = CLONE_NEWUSER | CLONE_NEWNS;
    if (syscall(SYS_clone3, &ca, 0) != -1) return 17;
    if (syscall(SYS_clone3, &ca, 8) != -1) return 24;
    if (unshare(0) != 0) return 18;
    if (personality(0xffffffff) < 0) return 19;
    int p[2];
    if (pipe(p) != 0) return 20;
    struct termios tio;
    for (int i = 0; i < {TCGETS_CALLS}; i++) ioctl(p[0], TCGETS, &tio); /* ENOTTY */
#ifdef __x86_64__
    /* The kernel reads the request's low 32 bits only: recorded as TCGETS. */
    syscall(SYS_ioctl, p[0], 0xdead00000000UL | TCGETS, &tio);
#endif
    char name[16];
    if (prctl(PR_SET_NAME, "args-probe") != 0) return 21;
    for (int i = 0; i < 2; i++)
        if (prctl(PR_GET_NAME, name) != 0) return 22;
    for (int i = 0; i < {GETFL_CALLS}; i++)
        if (fcntl(p[0], F_GETFL) < 0) return 23;
    return 0;
}}
"#
    )
}

/// Builds the program (`-m32` for i386) in `dir`.
fn build(dir: &Path, m32: bool) -> PathBuf {
    let flags: &[&str] = if m32 { &["-m32"] } else { &[] };
    build_static_c_with(dir, "args-probe", &c_source(), flags)
}

/// Builds the program and records it with `agent-audit run <flags>`.
fn record(dir: &Path, m32: bool, flags: &[&str]) -> Allowlist {
    let bin = build(dir, m32);
    let out = dir.join("allowlist.json");
    run(
        Command::new(agent_audit_bin())
            .arg("run")
            .args(flags)
            .arg("--out")
            .arg(&out)
            .arg("--")
            .arg(&bin),
        TIMEOUT,
    )
    .assert_code(0);
    Allowlist::read(&out)
}

/// The `args` of the `name` row of `arch`, and the row's count.
fn args_of(list: &Allowlist, arch: &str, name: &str) -> (Value, u64) {
    let row = list
        .syscalls()
        .iter()
        .find(|s| s["arch"] == arch && s["name"] == name)
        .unwrap_or_else(|| panic!("no {arch} {name} in {:#}", list.0));
    (row["args"].clone(), row["count"].as_u64().unwrap())
}

fn values(index: u64, pairs: &[(u64, u64)]) -> Value {
    let values: Vec<Value> = pairs
        .iter()
        .map(|&(value, count)| json!({ "value": value, "count": count }))
        .collect();
    json!({ "index": index, "kind": "values", "values": values })
}

fn assert_recorded(list: &Allowlist, arch: &str, fcntl: &str) {
    let check = |name: &str, count: u64, expected: Value| {
        let (args, got) = args_of(list, arch, name);
        assert_eq!(got, count, "{arch} {name} calls");
        assert_eq!(args, expected, "{arch} {name} args");
    };
    check(
        "socket",
        INET_STREAM + UNIX_DGRAM,
        json!([
            values(0, &[(AF_UNIX, UNIX_DGRAM), (AF_INET, INET_STREAM)]),
            // SOCK_CLOEXEC and SOCK_NONBLOCK are not part of the type.
            values(1, &[(SOCK_STREAM, INET_STREAM), (SOCK_DGRAM, UNIX_DGRAM)]),
        ]),
    );
    check("socketpair", PAIRS, json!([values(0, &[(AF_UNIX, PAIRS)])]));
    check(
        "clone",
        2,
        json!([{ "index": 0, "kind": "flags", "bits": FORK_FLAGS | CLONE_FILES | CLONE_FS }]),
    );
    check(
        "clone3",
        4,
        json!([{ "index": 0, "field": "clone_args.flags", "kind": "flags",
                 "bits": THREAD_FLAGS | CLONE_FILES }]),
    );
    check(
        "unshare",
        1,
        json!([{ "index": 0, "kind": "flags", "bits": 0 }]),
    );
    check("personality", 1, json!([values(0, &[(0xffff_ffff, 1)])]));
    let tcgets = TCGETS_CALLS + u64::from(arch == "SCMP_ARCH_X86_64");
    check("ioctl", tcgets, json!([values(1, &[(TCGETS, tcgets)])]));
    check(
        "prctl",
        3,
        json!([values(0, &[(PR_SET_NAME, 1), (PR_GET_NAME, 2)])]),
    );
    check(
        fcntl,
        GETFL_CALLS,
        json!([values(1, &[(F_GETFL, GETFL_CALLS)])]),
    );
    // Untracked syscalls carry no args.
    let (close, _) = args_of(list, arch, "close");
    assert!(close.is_null(), "{close}");
}

#[test]
fn root_run_records_tracked_argument_values_exactly() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let list = record(dir.path(), false, &["--attach", "tp-btf"]);
    assert_eq!(list.attach(), "tp_btf");
    assert_recorded(&list, "SCMP_ARCH_X86_64", "fcntl");
}

#[test]
fn root_run_records_argument_values_of_a_32_bit_program_under_its_abi() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    // Through the raw_tp program, which reads the registers with a helper call rather than
    // the BTF-typed loads of tp_btf (the 64-bit test's default).
    let list = record(dir.path(), true, &["--attach", "raw-tp"]);
    assert_eq!(list.attach(), "raw_tp");
    // i386 glibc's fcntl() is the fcntl64 syscall.
    assert_recorded(&list, "SCMP_ARCH_X86", "fcntl64");
    // No value is filed under the native ABI: the program made no native tracked call.
    for row in list.syscalls() {
        if row["arch"] == "SCMP_ARCH_X86_64" {
            assert!(row.get("args").is_none(), "{row}");
        }
    }
}

#[test]
fn root_no_args_records_counts_without_values() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let list = record(dir.path(), false, &["--no-args"]);
    assert_eq!(list.count("socket"), INET_STREAM + UNIX_DGRAM);
    assert!(list.syscalls().iter().all(|s| s.get("args").is_none()));
}

/// socket family values the kernel program holds for `slot`: (value, count).
fn socket_families(counter: &SyscallCounter, slot: agent_audit::bpf::TargetSlot) -> Vec<Value> {
    let socket = Arch::X86_64.syscall_nr("socket").unwrap();
    counter
        .read_args()
        .unwrap()
        .into_iter()
        .filter(|a| a.slot == slot && a.nr == socket && a.record.index == 0)
        .map(|a| serde_json::to_value(&a.record).unwrap())
        .collect()
}

#[test]
fn root_a_reused_slot_starts_without_the_previous_targets_values() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let bin = build(dir.path(), false);
    let mut counter = SyscallCounter::load(CounterOptions::new(AttachMode::Auto)).unwrap();
    let run_in = |cgroup: &ScratchCgroup| {
        let mut cmd = Command::new(&bin);
        cgroup.contain(&mut cmd);
        run(&mut cmd, TIMEOUT).assert_code(0);
    };
    let expected = json!([values(0, &[(AF_UNIX, UNIX_DGRAM), (AF_INET, INET_STREAM)])]);

    let first = ScratchCgroup::new(&unique_name("args-first"));
    let slot = counter
        .add_target(fs::metadata(&first.dir).unwrap().ino())
        .unwrap();
    run_in(&first);
    assert_eq!(Value::from(socket_families(&counter, slot)), expected);
    counter.remove_target(slot).unwrap();
    assert_eq!(socket_families(&counter, slot), Vec::<Value>::new());

    // The next target gets the same slot and must count only its own calls.
    let second = ScratchCgroup::new(&unique_name("args-second"));
    let reused = counter
        .add_target(fs::metadata(&second.dir).unwrap().ino())
        .unwrap();
    assert_eq!(reused, slot, "the freed slot is the first free one");
    assert_eq!(socket_families(&counter, reused), Vec::<Value>::new());
    run_in(&second);
    assert_eq!(Value::from(socket_families(&counter, reused)), expected);
}
