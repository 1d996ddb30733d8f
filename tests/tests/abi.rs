//! ABI-correct capture: a 32-bit static program on x86_64 calls the kernel through the i386
//! table, where numbers mean other things (5 is `open` there, `fstat` on x86_64). Its calls must
//! be recorded as `SCMP_ARCH_X86` with i386 names, its `socketcall`s with their operation, and
//! the only x86_64 calls must be those `run`'s own child made before it exec'd the program.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agent_audit_tests::allowlist::{timestamp_ns, Allowlist};
use agent_audit_tests::process::run;
use agent_audit_tests::{agent_audit_bin, build_static_c_with, require_root};

const TIMEOUT: Duration = Duration::from_secs(60);
/// The program's name, and so its `comm`.
const PROGRAM: &str = "abi32-probe";

/// Explicit calls the program makes, by number, besides whatever its libc does.
const GETPPID: u64 = 5_000;
const OPENS: u64 = 3; // each followed by one read and one close
const STATS: u64 = 2;
const SOCKETCALL_SOCKETS: u64 = 3;
const SOCKETCALL_PAIRS: u64 = 2;
const DIRECT_SOCKETS: u64 = 4;
/// Calls the program's libc start-up and exit could add to the counts checked with `>=`.
const SLACK: u64 = 16;

/// i386 numbers (arch/x86/entry/syscalls/syscall_32.tbl) and socketcall operations
/// (include/uapi/linux/net.h) the program uses.
const I386_READ: u64 = 3;
const I386_OPEN: u64 = 5;
const I386_CLOSE: u64 = 6;
const I386_GETPPID: u64 = 64;
const I386_SOCKETCALL: u64 = 102;
const I386_STAT: u64 = 106;
const I386_SOCKET: u64 = 359;
const SYS_SOCKET_OP: u64 = 1;
const SYS_SOCKETPAIR_OP: u64 = 8;
/// x86_64 numbers the i386 ones above would be mis-named as.
const X86_64_FSTAT: u64 = 5;
const X86_64_SETGID: u64 = 106;
const X86_64_EXECVE: u64 = 59;

fn c_source() -> String {
    format!(
        r#"#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Fails the build if the numbers the test expects are not this ABI's. */
_Static_assert(SYS_read == {I386_READ} && SYS_open == {I386_OPEN} && SYS_close == {I386_CLOSE}, "i386");
_Static_assert(SYS_getppid == {I386_GETPPID} && SYS_socketcall == {I386_SOCKETCALL}, "i386");
_Static_assert(SYS_stat == {I386_STAT} && SYS_socket == {I386_SOCKET}, "i386");

int main(int argc, char **argv) {{
    if (argc != 2) return 2;
    char buf[256];
    for (int i = 0; i < {OPENS}; i++) {{
        long fd = syscall(SYS_open, argv[1], O_RDONLY);
        if (fd < 0) return 10;
        if (syscall(SYS_read, fd, buf, sizeof buf) < 0) return 11;
        if (syscall(SYS_close, fd) != 0) return 12;
    }}
    for (int i = 0; i < {STATS}; i++)
        if (syscall(SYS_stat, argv[1], buf) != 0) return 13; /* old struct stat: 64 bytes */
    /* The libc's own socket(): socketcall or the direct call, whichever it uses. */
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0) return 14;
    close(s);
    for (int i = 0; i < {SOCKETCALL_SOCKETS}; i++) {{
        unsigned long args[3] = {{AF_UNIX, SOCK_DGRAM, 0}};
        long fd = syscall(SYS_socketcall, {SYS_SOCKET_OP}, args);
        if (fd < 0) return 15;
        close(fd);
    }}
    for (int i = 0; i < {SOCKETCALL_PAIRS}; i++) {{
        int sv[2];
        unsigned long args[4] = {{AF_UNIX, SOCK_STREAM, 0, (unsigned long)sv}};
        if (syscall(SYS_socketcall, {SYS_SOCKETPAIR_OP}, args) != 0) return 16;
        close(sv[0]);
        close(sv[1]);
    }}
    for (int i = 0; i < {DIRECT_SOCKETS}; i++) {{
        long fd = syscall(SYS_socket, AF_UNIX, SOCK_DGRAM, 0);
        if (fd < 0) return 17;
        close(fd);
    }}
    for (long i = 0; i < {GETPPID}; i++) syscall(SYS_getppid);
    return 0;
}}
"#
    )
}

/// Builds the 32-bit static program in `dir`.
fn build_program(dir: &Path) -> PathBuf {
    build_static_c_with(dir, PROGRAM, &c_source(), &["-m32"])
}

fn count(row: Option<&serde_json::Value>) -> u64 {
    row.map_or(0, |r| r["count"].as_u64().expect("count"))
}

fn programs(row: &serde_json::Value) -> Vec<(String, u64)> {
    row["programs"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    (
                        p["comm"].as_str().unwrap().to_string(),
                        p["count"].as_u64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn mux(list: &Allowlist, syscall: &str, op: u64) -> (u64, Option<String>) {
    list.rows("multiplexed")
        .iter()
        .find(|m| m["syscall"] == syscall && m["op"].as_u64() == Some(op))
        .map_or((0, None), |m| {
            assert_eq!(m["arch"], "SCMP_ARCH_X86", "{m}");
            (
                m["count"].as_u64().unwrap(),
                m["op_name"].as_str().map(str::to_string),
            )
        })
}

/// Builds the program, records it reading an input file with `agent-audit run` (which must
/// succeed), and returns (program, input, allowlist).
fn record_program(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let bin = build_program(dir);
    let input = dir.join("input.txt");
    fs::write(&input, "some bytes to read\n").unwrap();
    let out = dir.join("allowlist.json");
    run(
        Command::new(agent_audit_bin())
            .arg("run")
            .arg("--out")
            .arg(&out)
            .arg("--")
            .arg(&bin)
            .arg(&input),
        TIMEOUT,
    )
    .assert_code(0);
    (bin, input, out)
}

#[test]
fn root_run_records_a_32_bit_program_under_the_i386_table() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (bin, _input, out) = record_program(dir.path());
    let list = Allowlist::read(&out);
    let dump = format!("{:#}", list.0);
    assert!(list.complete());
    assert_eq!(list.target()["exit_status"], 0);

    // The explicit calls, under their i386 numbers and names.
    for (nr, name, made) in [
        (I386_GETPPID, "getppid", GETPPID),
        (I386_OPEN, "open", OPENS),
        (I386_READ, "read", OPENS),
        (I386_CLOSE, "close", OPENS),
        (I386_STAT, "stat", STATS),
    ] {
        let row = list.row("SCMP_ARCH_X86", nr);
        let got = count(row);
        assert!(
            (made..=made + SLACK).contains(&got) || name == "close" && got >= made,
            "i386 {name} (nr {nr}) counted {got} times, the program made {made}:\n{dump}"
        );
        assert_eq!(row.unwrap()["name"], name, "i386 nr {nr}");
    }
    // close also closes every socket: at least that many more.
    let sockets = 1 + SOCKETCALL_SOCKETS + 2 * SOCKETCALL_PAIRS + DIRECT_SOCKETS;
    assert!(count(list.row("SCMP_ARCH_X86", I386_CLOSE)) >= OPENS + sockets);

    // Nothing of the program is named through the x86_64 table.
    assert_eq!(
        count(list.row("SCMP_ARCH_X86_64", X86_64_FSTAT)),
        0,
        "{dump}"
    );
    assert_eq!(
        count(list.row("SCMP_ARCH_X86_64", X86_64_SETGID)),
        0,
        "{dump}"
    );
    let native_getppid: u64 = list
        .syscalls()
        .iter()
        .filter(|s| s["arch"] == "SCMP_ARCH_X86_64" && s["name"] == "getppid")
        .map(|s| s["count"].as_u64().unwrap())
        .sum();
    assert_eq!(native_getppid, 0, "{dump}");

    // socket(): the libc's one call went either through socketcall(SYS_SOCKET) or the direct
    // syscall; the explicit ones are exact.
    let (via_socketcall, op_name) = mux(&list, "socketcall", SYS_SOCKET_OP);
    assert_eq!(op_name.as_deref(), Some("socket"));
    let direct = count(list.row("SCMP_ARCH_X86", I386_SOCKET));
    let libc_used_socketcall = via_socketcall == SOCKETCALL_SOCKETS + 1;
    assert!(
        libc_used_socketcall && direct == DIRECT_SOCKETS
            || via_socketcall == SOCKETCALL_SOCKETS && direct == DIRECT_SOCKETS + 1,
        "socketcall(SYS_SOCKET) {via_socketcall} and socket {direct} times; the program made \
         {SOCKETCALL_SOCKETS} and {DIRECT_SOCKETS} plus one through its libc:\n{dump}"
    );
    assert_eq!(
        mux(&list, "socketcall", SYS_SOCKETPAIR_OP),
        (SOCKETCALL_PAIRS, Some("socketpair".to_string())),
        "{dump}"
    );
    // The socketcall row is the sum of its operations, and no other operation was made.
    let ops: u64 = list
        .rows("multiplexed")
        .iter()
        .filter(|m| m["syscall"] == "socketcall")
        .map(|m| m["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        ops,
        via_socketcall + SOCKETCALL_PAIRS,
        "unexpected socketcall operations:\n{dump}"
    );
    assert_eq!(
        count(list.row("SCMP_ARCH_X86", I386_SOCKETCALL)),
        ops,
        "{dump}"
    );

    // Every call is the program's: through the i386 table, and the one x86_64 call, the exec
    // that started it (made by `run`'s 64-bit child, before the first i386 call). Nothing of
    // the launcher's own (joining the cgroup, the PATH search) is recorded.
    let mut native_names = BTreeSet::new();
    let mut last_native = i128::MIN;
    let mut first_compat = i128::MAX;
    for row in list.syscalls() {
        let arch = row["arch"].as_str().unwrap();
        let progs = programs(row);
        let expected_comm = match arch {
            "SCMP_ARCH_X86" => PROGRAM,
            "SCMP_ARCH_X86_64" => PROGRAM,
            other => panic!("unexpected arch {other}:\n{dump}"),
        };
        assert!(
            !progs.is_empty() && progs.iter().all(|(comm, _)| comm == expected_comm),
            "{arch} {} made by {progs:?}, expected only {expected_comm}",
            row["name"]
        );
        assert_eq!(
            progs.iter().map(|(_, n)| n).sum::<u64>(),
            row["count"].as_u64().unwrap(),
            "program counts of {row}"
        );
        for p in row["programs"].as_array().unwrap() {
            let (first, last) = (
                timestamp_ns(&p["first_seen"]),
                timestamp_ns(&p["last_seen"]),
            );
            if arch == "SCMP_ARCH_X86" {
                first_compat = first_compat.min(first);
            } else {
                last_native = last_native.max(last);
                native_names.insert(row["name"].as_str().unwrap().to_string());
            }
        }
    }
    assert_eq!(
        native_names,
        BTreeSet::from(["execve".to_string()]),
        "x86_64 calls beyond the exec that started the program"
    );
    assert_eq!(
        count(list.row("SCMP_ARCH_X86_64", X86_64_EXECVE)),
        1,
        "{dump}"
    );
    assert!(
        last_native < first_compat,
        "an x86_64 call ({last_native} ns) came after the program's first i386 call \
         ({first_compat} ns):\n{dump}"
    );

    // The one exec: the program, as root.
    let execs = list.rows("executables");
    assert_eq!(execs.len(), 1, "{dump}");
    assert_eq!(execs[0]["path"], bin.to_str().unwrap());
    assert_eq!(execs[0]["comm"], PROGRAM);
    assert_eq!(execs[0]["uid"], 0);
    assert_eq!(execs[0]["count"], 1);
}

/// The profile built from the 32-bit program's recording lists `SCMP_ARCH_X86` and runs the
/// program with nothing denied: under `verify` on the host, and as a runc container's process
/// with the profile in `linux.seccomp`.
#[test]
fn root_profile_from_a_32_bit_recording_runs_it_with_no_denials() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (bin, input, allowlist) = record_program(dir.path());
    let profile_path = dir.path().join("profile.json");
    run(
        Command::new(agent_audit_bin())
            .arg("profile")
            .arg(&allowlist)
            .arg("--out")
            .arg(&profile_path),
        TIMEOUT,
    )
    .assert_code(0);
    let profile: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&profile_path).unwrap()).unwrap();
    let arches = profile["architectures"].as_array().unwrap();
    assert!(
        arches.iter().any(|a| a == "SCMP_ARCH_X86"),
        "the i386 calls need SCMP_ARCH_X86 listed: {arches:?}"
    );

    // On the host, under verify: the exec from the 64-bit child into the 32-bit program
    // enters through one table and exits through the other, and must not count as a denial.
    let result = dir.path().join("verify.json");
    let done = run(
        Command::new(agent_audit_bin())
            .arg("verify")
            .arg("--profile")
            .arg(&profile_path)
            .arg("--out")
            .arg(&result)
            .arg("--")
            .arg(&bin)
            .arg(&input),
        TIMEOUT,
    );
    let verdict: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&result).unwrap()).unwrap();
    assert_eq!(verdict["denied"], serde_json::json!([]), "{verdict:#}");
    assert_eq!(verdict["exit_status"], 0, "{verdict:#}");
    done.assert_code(0);

    // In a runc container, the way the profile is shipped.
    let bundle_dir = dir.path().join("bundle");
    fs::create_dir(&bundle_dir).unwrap();
    let bundle = agent_audit_tests::foreground::RuncBundle::new(&bundle_dir, &bin, &[]);
    fs::copy(&input, bundle_dir.join("rootfs/input.txt")).unwrap();
    let program = format!("/{PROGRAM}");
    bundle.configure(&[program.as_str(), "/input.txt"], Some(&profile));
    let id = format!("aa-abi32-{}", std::process::id());
    bundle.run(&id, TIMEOUT).assert_code(0);
}
