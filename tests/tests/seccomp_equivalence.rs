//! The filter `verify` installs answers every probe exactly as runc's does (Docker 20.10 → runc
//! → libseccomp), for every profile of the corpus and for synthetic profiles written for the
//! hard cases, with Docker's default capabilities and with all of them.
//!
//! Each profile is run twice with the same probe program (tests/src/seccomp_probe.rs): in a
//! `FROM scratch` container started by `docker run --security-opt seccomp=<copy>`, and under
//! `agent-audit verify --profile <copy> --caps …`. The copy differs from the profile only in its
//! errno values: every errno `e` becomes `MARKER_BASE + e`, a one-to-one renaming that keeps
//! every equality between actions (so libseccomp merges, skips and refuses exactly the same
//! rules), while an errno in the marker range can only come from seccomp. A probe's verdict is
//! then: denied with errno `e`, ENOSYS (from runc's stub for syscalls newer than the profile, or
//! from the kernel), trapped, killed by SIGSYS, or allowed (anything else the kernel answered).
//!
//! Probes: every syscall number of the x86_64, i386 (`int 0x80`) and x32 tables and a few past
//! their ends, with arguments that make an allowed call fail (-1: bad descriptors, kernel
//! pointers, invalid flags), and for every argument rule the values around each condition's
//! (value ±1, 0, high word set or cleared, masked variants) at its index. Calls that must never
//! run for real are in [`NEVER_RUN`], with the reason; the test prints how many it skipped.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use agent_audit::seccomp::container::{Capabilities, ContainerContext, DOCKER_DEFAULT_CAPS};
use agent_audit::seccomp::spo::SpoObject;
use agent_audit::seccomp::{CompareOp, SeccompProfile};
use agent_audit::syscalls::Arch;
use agent_audit_tests::image::skip_without_docker;
use agent_audit_tests::process::{run, run_ok};
use agent_audit_tests::seccomp_probe::{self, Abi, Outcome, Probe};
use agent_audit_tests::{agent_audit_bin, require_root, unique_name, workspace_root};
use serde_json::{json, Value};

/// errno `e` of a profile becomes `MARKER_BASE + e` in the test copy: above every errno the
/// kernel returns (they end below 600) and within SECCOMP_RET_DATA's usable range (4095).
const MARKER_BASE: i64 = 3000;
/// runc's errno for SCMP_ACT_ERRNO without `errnoRet`.
const RUNC_DEFAULT_ERRNO: i64 = 1;
const ENOSYS: i64 = 38;
/// The largest errno a syscall returns; seccomp clamps larger SECCOMP_RET_DATA to it.
const MAX_ERRNO: i64 = 4095;
const SIGSYS: i32 = 31;
/// Filler for the arguments a probe does not vary: a bad descriptor, a kernel address, every
/// flag bit set.
const FILLER: u64 = u64::MAX;

/// Calls the probe program never makes, and why.
const NEVER_RUN: &[(&str, &str)] = &[
    ("exit", "ends the probe child before it reports"),
    ("exit_group", "ends the probe child before it reports"),
    (
        "rt_sigreturn",
        "restores a signal frame the child never pushed: it crashes",
    ),
    (
        "sigreturn",
        "restores a signal frame the child never pushed: it crashes",
    ),
    ("pause", "blocks until a signal arrives"),
    (
        "sigsuspend",
        "i386's takes the mask by value: blocks until a signal arrives",
    ),
    (
        "vhangup",
        "hangs up the controlling terminal (verify runs it as root)",
    ),
    (
        "reboot",
        "restarts the host should the arguments ever be accepted",
    ),
    (
        "kexec_load",
        "replaces the kernel should the arguments ever be accepted",
    ),
    (
        "kexec_file_load",
        "replaces the kernel should the arguments ever be accepted",
    ),
    (
        "seccomp",
        "installs another filter or changes the seccomp mode of the child",
    ),
    (
        "sync",
        "flushes every filesystem of the host: slow on a busy machine",
    ),
    (
        "msgget",
        "flags -1 include IPC_CREAT: it would create a System V message queue on the host",
    ),
];

/// Why a name of a profile is not probed by name (its number range is probed all the same).
const NO_X86_NUMBER: &str =
    "named by the profile but has no number on x86_64, i386 or x32 (unknown, or another arch's)";

/// Calls that create a task: the probe program makes the new task exit at once.
const CREATE_TASKS: &[&str] = &["fork", "vfork", "clone", "clone3"];

/// Syscalls the harness needs: runc's init between installing the filter and the exec (Go
/// runtime, capabilities, user switch, closing descriptors; Docker sets no_new_privs off, so
/// runc installs the filter early), then the probe program (static glibc start-up, stdio,
/// fork, wait). A profile that denies by default and does not mention some of them gets a rule
/// allowing those (both sides run the same copy): the small moby fixtures would otherwise
/// refuse runc's own calls.
const HARNESS_NEEDS: &[&str] = &[
    "read",
    "write",
    "openat",
    "close",
    "close_range",
    "fstatfs",
    "newfstatat",
    "fstat",
    "getdents64",
    "fcntl",
    "futex",
    "nanosleep",
    "sched_yield",
    "sigaltstack",
    "gettid",
    "tgkill",
    "getpid",
    "getppid",
    "madvise",
    "epoll_pwait",
    "epoll_ctl",
    "mmap",
    "munmap",
    "mprotect",
    "brk",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "capget",
    "capset",
    "prctl",
    "setgroups",
    "setresuid",
    "setresgid",
    "setuid",
    "setgid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "chdir",
    "fchdir",
    "getcwd",
    "umask",
    "alarm",
    "clone",
    "fork",
    "execve",
    "wait4",
    "readlink",
    "readlinkat",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "prlimit64",
    "getrandom",
    "rseq",
    "exit",
    "exit_group",
    "access",
    "faccessat",
    "faccessat2",
    "stat",
    "statx",
];

/// Profiles written for the cases where runc's and libseccomp's handling is subtle. The
/// conditions are on calls whose first argument is a descriptor (-1 in every probe), so
/// whatever the filter says, the kernel refuses them harmlessly.
fn synthetic_profiles() -> Vec<(&'static str, String)> {
    let deny_by_default = |rules: &str| {
        format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
            "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
            "syscalls":[{rules}]}}"#
        )
    };
    let allow_by_default = |rules: &str| {
        format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW",
            "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],"syscalls":[{rules}]}}"#
        )
    };
    vec![
        (
            "synthetic-repeated-index",
            deny_by_default(
                r#"{"names":["fcntl"],"action":"SCMP_ACT_ALLOW","args":[
                    {"index":1,"value":1,"op":"SCMP_CMP_NE"},{"index":1,"value":2,"op":"SCMP_CMP_NE"}]},
                {"names":["lseek"],"action":"SCMP_ACT_ERRNO","errnoRet":13,"args":[
                    {"index":1,"value":4294967296,"op":"SCMP_CMP_GT"},{"index":1,"value":5,"op":"SCMP_CMP_LT"},
                    {"index":2,"value":1,"op":"SCMP_CMP_EQ"}]},
                {"names":["ioctl"],"action":"SCMP_ACT_ALLOW","args":[
                    {"index":1,"value":65280,"valueTwo":21504,"op":"SCMP_CMP_MASKED_EQ"},
                    {"index":1,"value":21522,"op":"SCMP_CMP_NE"}]}"#,
            ),
        ),
        (
            "synthetic-conditional-and-unconditional",
            deny_by_default(
                r#"{"names":["ioctl"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":21505,"op":"SCMP_CMP_EQ"}]},
                {"names":["ioctl"],"action":"SCMP_ACT_ERRNO","errnoRet":22},
                {"names":["fcntl"],"action":"SCMP_ACT_ERRNO","errnoRet":22},
                {"names":["fcntl"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":1,"op":"SCMP_CMP_EQ"}]},
                {"names":["flock"],"action":"SCMP_ACT_ERRNO","errnoRet":11,"args":[{"index":1,"value":2,"op":"SCMP_CMP_EQ"}]},
                {"names":["flock"],"action":"SCMP_ACT_ALLOW"},
                {"names":["lseek"],"action":"SCMP_ACT_ALLOW","args":[{"index":2,"value":0,"op":"SCMP_CMP_EQ"}]},
                {"names":["lseek"],"action":"SCMP_ACT_ERRNO","errnoRet":9,"args":[{"index":2,"value":0,"op":"SCMP_CMP_EQ"},{"index":1,"value":7,"op":"SCMP_CMP_EQ"}]}"#,
            ),
        ),
        (
            "synthetic-same-as-default",
            deny_by_default(
                r#"{"names":["ftruncate"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
                {"names":["fchmod"],"action":"SCMP_ACT_ERRNO"},
                {"names":["fchown"],"action":"SCMP_ACT_ERRNO","errnoRet":1,"args":[{"index":1,"value":0,"op":"SCMP_CMP_EQ"}]},
                {"names":["fchown"],"action":"SCMP_ACT_ALLOW"},
                {"names":["fsync"],"action":"SCMP_ACT_ERRNO","errnoRet":5}"#,
            ),
        ),
        (
            "synthetic-unknown-names",
            deny_by_default(
                r#"{"names":["no_such_syscall","fdatasync","arm_fadvise64_64","socketcall",
                    "cachestat","fchmodat2","mseal","futex_waitv"],"action":"SCMP_ACT_ALLOW"},
                {"names":["not_a_call_either","syncfs"],"action":"SCMP_ACT_ERRNO","errnoRet":30}"#,
            ),
        ),
        (
            "synthetic-64-bit-comparisons",
            deny_by_default(
                r#"{"names":["lseek"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":4294967297,"op":"SCMP_CMP_NE"}]},
                {"names":["fcntl"],"action":"SCMP_ACT_ALLOW","args":[{"index":2,"value":8589934594,"op":"SCMP_CMP_GT"}]},
                {"names":["ftruncate"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":12884901891,"op":"SCMP_CMP_GE"}]},
                {"names":["fchmod"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":17179869188,"op":"SCMP_CMP_LE"}]},
                {"names":["fchown"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":21474836485,"op":"SCMP_CMP_LT"}]},
                {"names":["flock"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":25769803782,"op":"SCMP_CMP_EQ"}]},
                {"names":["fadvise64"],"action":"SCMP_ACT_ERRNO","errnoRet":7,"args":[{"index":3,"value":18446744069414584320,"op":"SCMP_CMP_GE"}]},
                {"names":["ioctl"],"action":"SCMP_ACT_ALLOW","args":[
                    {"index":1,"value":18446462598732906495,"valueTwo":1099511649298,"op":"SCMP_CMP_MASKED_EQ"}]},
                {"names":["fallocate"],"action":"SCMP_ACT_ERRNO","errnoRet":12,"args":[
                    {"index":1,"value":4294967295,"valueTwo":3,"op":"SCMP_CMP_MASKED_EQ"},
                    {"index":2,"value":4294967296,"op":"SCMP_CMP_LE"}]}"#,
            ),
        ),
        (
            "synthetic-kill-trap-log",
            allow_by_default(
                r#"{"names":["fchmod"],"action":"SCMP_ACT_KILL","args":[{"index":1,"value":4,"op":"SCMP_CMP_GE"}]},
                {"names":["fchown"],"action":"SCMP_ACT_TRAP"},
                {"names":["fsync"],"action":"SCMP_ACT_KILL_PROCESS"},
                {"names":["fdatasync"],"action":"SCMP_ACT_LOG"},
                {"names":["ftruncate"],"action":"SCMP_ACT_ERRNO","errnoRet":27,"args":[{"index":1,"value":9,"op":"SCMP_CMP_LE"}]}"#,
            ),
        ),
    ]
}

/// A profile under test: where it came from and its text.
struct Subject {
    name: String,
    json: Value,
}

/// Every profile of the corpus (tests/data/profiles, as corpus.rs reads it), the Security
/// Profiles Operator's example objects converted by agent-audit's own SPO reader and OCI writer
/// (`SpoObject::parse`, `to_profile`, `to_json`), and the synthetic profiles.
fn subjects() -> Vec<Subject> {
    let dir = workspace_root().join("tests/data/profiles");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 9, "corpus incomplete: {files:?}");
    let mut subjects: Vec<Subject> = files
        .iter()
        .map(|f| Subject {
            name: f.file_name().unwrap().to_string_lossy().into_owned(),
            json: serde_json::from_str(&fs::read_to_string(f).unwrap()).unwrap(),
        })
        .collect();
    subjects.extend(spo_examples());
    subjects.extend(
        synthetic_profiles()
            .into_iter()
            .map(|(name, text)| Subject {
                name: name.to_string(),
                json: serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}")),
            }),
    );
    subjects
}

fn spo_examples() -> Vec<Subject> {
    let path = workspace_root().join("tests/data/schemas/spo-seccompprofile-example.yaml");
    let text = fs::read_to_string(&path).unwrap();
    let mut subjects = Vec::new();
    for document in text.split("\n---\n").filter(|d| d.contains("kind:")) {
        let object = SpoObject::parse(document).unwrap();
        let profile = object.to_profile();
        // Refusing everything refuses the probe program's execve: neither side runs a probe.
        if profile.syscalls.is_empty() && profile.default_action.denies() {
            eprintln!(
                "SPO example {}: not compared: it refuses execve itself",
                object.metadata.name
            );
            continue;
        }
        subjects.push(Subject {
            name: format!("spo-example/{}", object.metadata.name),
            json: serde_json::from_str(&profile.to_json()).unwrap(),
        });
    }
    assert!(!subjects.is_empty(), "no SPO example object in {path:?}");
    subjects
}

/// How the test copy renames errno values.
#[derive(Clone, Copy, Debug)]
enum Markers {
    /// Every errno `e` becomes `MARKER_BASE + e`.
    All,
    /// EPERM stays EPERM and the default action loses its `defaultErrnoRet`: for a Docker that
    /// drops `defaultErrnoRet` (20.10 does: runc then fails default-denied calls with EPERM),
    /// so that rules with EPERM still equal the default, as they do under that Docker.
    KeepEperm,
}

impl Markers {
    fn of(self, errno: i64) -> i64 {
        assert!(
            !(MARKER_BASE..MARKER_BASE + 1000).contains(&errno),
            "errno {errno} is in the marker range"
        );
        match self {
            Markers::KeepEperm if errno == RUNC_DEFAULT_ERRNO => errno,
            // The kernel answers MAX_ERRNO (4095) for larger values: they stay as they are.
            _ if errno >= 1000 => errno,
            _ => MARKER_BASE + errno,
        }
    }
}

/// The test copy: every errno `e` (runc's EPERM where none is given) renamed by `markers`,
/// and what the harness needs allowed if the profile does not mention it. Returns the names
/// added.
fn test_copy(profile: &Value, markers: Markers) -> (Value, Vec<&'static str>) {
    let mut copy = profile.clone();
    let added = allow_harness_needs(&mut copy);
    let marker = |errno: Option<&Value>| {
        let e = errno.and_then(Value::as_i64).unwrap_or(RUNC_DEFAULT_ERRNO);
        json!(markers.of(e))
    };
    if copy["defaultAction"] == "SCMP_ACT_ERRNO" {
        match markers {
            Markers::All => copy["defaultErrnoRet"] = marker(copy.get("defaultErrnoRet")),
            Markers::KeepEperm => {
                copy.as_object_mut().unwrap().remove("defaultErrnoRet");
            }
        }
    }
    if let Some(rules) = copy["syscalls"].as_array_mut() {
        for rule in rules.iter_mut().filter(|r| r["action"] == "SCMP_ACT_ERRNO") {
            rule["errnoRet"] = marker(rule.get("errnoRet"));
        }
    }
    (copy, added)
}

fn allow_harness_needs(profile: &mut Value) -> Vec<&'static str> {
    if matches!(
        profile["defaultAction"].as_str(),
        Some("SCMP_ACT_ALLOW" | "SCMP_ACT_LOG")
    ) {
        return Vec::new();
    }
    let rules = profile["syscalls"].as_array().cloned().unwrap_or_default();
    let mentioned: HashSet<&str> = rules
        .iter()
        .flat_map(|r| {
            let names = r["names"].as_array().map(Vec::as_slice).unwrap_or_default();
            names.iter().chain(r.get("name")).filter_map(Value::as_str)
        })
        .collect();
    let missing: Vec<&'static str> = HARNESS_NEEDS
        .iter()
        .copied()
        .filter(|n| !mentioned.contains(n))
        .collect();
    if !missing.is_empty() {
        let rule = json!({"names": missing, "action": "SCMP_ACT_ALLOW"});
        match profile["syscalls"].as_array_mut() {
            Some(rules) => rules.push(rule),
            None => profile["syscalls"] = json!([rule]),
        }
    }
    missing
}

/// What seccomp decided for one probe, as far as the caller can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    /// SCMP_ACT_ERRNO with this errno (of the original profile).
    Denied(i64),
    /// ENOSYS: runc's stub for calls newer than the profile, or the kernel's own answer.
    Enosys,
    /// EPERM: a rule or default keeping EPERM ([`Markers::KeepEperm`]), or the kernel's.
    Eperm,
    /// SCMP_ACT_TRAP.
    Trapped,
    /// Killed by SIGSYS: SCMP_ACT_KILL_*.
    Killed,
    /// The kernel ran the call (whatever it answered).
    Allowed,
    /// The child exited without reporting: the harness itself was refused something.
    Broken(i32),
}

fn verdict(outcome: Outcome) -> Verdict {
    match outcome {
        Outcome::Returned(r) if (MARKER_BASE..MARKER_BASE + 1000).contains(&-r) => {
            Verdict::Denied(-r - MARKER_BASE)
        }
        // An errno above the markers: the kernel's MAX_ERRNO for a large errnoRet.
        Outcome::Returned(r) if -r >= MARKER_BASE + 1000 && -r <= MAX_ERRNO => Verdict::Denied(-r),
        Outcome::Returned(r) if r == -ENOSYS => Verdict::Enosys,
        Outcome::Returned(r) if r == -RUNC_DEFAULT_ERRNO => Verdict::Eperm,
        Outcome::Returned(_) => Verdict::Allowed,
        Outcome::Trapped => Verdict::Trapped,
        Outcome::Signal(SIGSYS) => Verdict::Killed,
        // Any other signal came from the kernel running the call (uretprobe's SIGILL, …).
        Outcome::Signal(_) => Verdict::Allowed,
        Outcome::Exited(status) => Verdict::Broken(status),
    }
}

/// The probes for one profile, with their descriptions, and what was skipped (by reason).
struct ProbeSet {
    probes: Vec<Probe>,
    labels: Vec<String>,
    skipped: BTreeMap<&'static str, BTreeSet<String>>,
}

impl ProbeSet {
    fn new() -> Self {
        Self {
            probes: Vec::new(),
            labels: Vec::new(),
            skipped: BTreeMap::new(),
        }
    }

    fn add(&mut self, seen: &mut HashSet<(Abi, u32, [u64; 6])>, abi: Abi, nr: u32, a: [u64; 6]) {
        let arch = abi_arch(abi);
        let name = arch.syscall_name(nr);
        if let Some((_, reason)) = NEVER_RUN.iter().find(|(n, _)| Some(*n) == name) {
            self.skipped
                .entry(reason)
                .or_default()
                .insert(format!("{}[{abi}]", name.unwrap_or("?")));
            return;
        }
        let args = match abi {
            // Only the low 32 bits reach the kernel; libseccomp compares those.
            Abi::I386 => a.map(|v| v & 0xffff_ffff),
            _ => a,
        };
        if !seen.insert((abi, nr, args)) {
            return;
        }
        self.probes.push(Probe {
            abi,
            nr,
            args,
            creates_task: name.is_some_and(|n| CREATE_TASKS.contains(&n)),
        });
        self.labels.push(format!(
            "{}[{abi} #{nr}]({})",
            name.unwrap_or("unnamed"),
            args.iter()
                .map(|v| format!("{v:#x}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
}

fn abi_arch(abi: Abi) -> Arch {
    match abi {
        Abi::X86_64 => Arch::X86_64,
        Abi::X32 => Arch::X32,
        Abi::I386 => Arch::X86,
    }
}

/// Numbers probed per ABI: the whole table and a few past its end (where runc's ENOSYS stub
/// answers instead of the default action), plus x32's own block.
fn numbers(abi: Abi) -> Vec<u32> {
    let arch = abi_arch(abi);
    let last = (0..1024u32)
        .filter(|&nr| arch.syscall_name(nr).is_some() && nr < 512)
        .max()
        .unwrap();
    let mut numbers: Vec<u32> = (0..=last + 8).collect();
    if abi == Abi::X32 {
        numbers.extend(512..=547);
    }
    numbers.extend([999, 4095]);
    numbers
}

/// Values around one condition: where comparisons on 64 bits split into two 32-bit words.
fn values_around(op: CompareOp, value: u64, value_two: u64) -> Vec<u64> {
    const HIGH: u64 = 0xffff_ffff_0000_0000;
    const BIT32: u64 = 1 << 32;
    let mut around = vec![
        value,
        value.wrapping_add(1),
        value.wrapping_sub(1),
        0,
        1,
        u64::MAX,
        0xffff_ffff,
        value & 0xffff_ffff,
        value | BIT32,
        value ^ HIGH,
        value.wrapping_add(BIT32),
        value.wrapping_sub(BIT32),
        value >> 32,
        value << 32,
    ];
    if op == CompareOp::MaskedEqual {
        let (mask, datum) = (value, value_two);
        let low_bit = mask & mask.wrapping_neg();
        let high_bit = if mask == 0 {
            0
        } else {
            1 << (63 - mask.leading_zeros())
        };
        around.extend([
            datum,
            datum | !mask,
            datum ^ low_bit,
            datum ^ high_bit,
            datum | BIT32,
            datum ^ (mask & HIGH),
            datum ^ (mask & 0xffff_ffff),
            (datum & mask) | (0x5555_5555_5555_5555 & !mask),
            datum.wrapping_add(1),
        ]);
    }
    around
}

/// Every syscall number of the three x86 ABIs, and every argument rule's values.
fn probe_set(profile: &SeccompProfile) -> ProbeSet {
    let mut set = ProbeSet::new();
    let mut seen = HashSet::new();
    for abi in [Abi::X86_64, Abi::I386, Abi::X32] {
        for nr in numbers(abi) {
            set.add(&mut seen, abi, nr, [FILLER; 6]);
        }
    }
    for name in profile.syscalls.iter().flat_map(|r| r.all_names()) {
        let abis = [Abi::X86_64, Abi::I386, Abi::X32];
        if abis
            .iter()
            .all(|&abi| abi_arch(abi).syscall_nr(name).is_none())
        {
            set.skipped
                .entry(NO_X86_NUMBER)
                .or_default()
                .insert(name.to_string());
        }
    }
    for rule in profile.syscalls.iter().filter(|r| !r.args.is_empty()) {
        // The base: every condition's own value at its index (EQ-satisfying where it can be).
        let mut base = [FILLER; 6];
        for c in &rule.args {
            base[c.index as usize] = match c.op {
                CompareOp::MaskedEqual => c.value_two,
                _ => c.value,
            };
        }
        for name in rule.all_names() {
            for abi in [Abi::X86_64, Abi::I386, Abi::X32] {
                let Some(nr) = abi_arch(abi).syscall_nr(name) else {
                    continue;
                };
                set.add(&mut seen, abi, nr, base);
                for c in &rule.args {
                    for v in values_around(c.op, c.value, c.value_two) {
                        let mut a = base;
                        a[c.index as usize] = v;
                        set.add(&mut seen, abi, nr, a);
                        let mut alone = [FILLER; 6];
                        alone[c.index as usize] = v;
                        set.add(&mut seen, abi, nr, alone);
                    }
                }
            }
        }
    }
    set
}

/// The probe program in a `FROM scratch` image, built once; its tag follows its content.
fn probe_image(binary: &Path) -> String {
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};
    let context = tempfile::tempdir().unwrap();
    fs::copy(binary, context.path().join("scprobe")).unwrap();
    fs::write(
        context.path().join("Dockerfile"),
        "FROM scratch\nCOPY scprobe /scprobe\n",
    )
    .unwrap();
    let mut hasher = DefaultHasher::new();
    fs::read(binary).unwrap().hash(&mut hasher);
    let tag = format!("agent-audit-tests/scprobe:{:016x}", hasher.finish());
    run_ok(
        Command::new("docker")
            .args(["build", "--quiet", "--tag", &tag])
            .arg(context.path()),
        Duration::from_secs(120),
    );
    tag
}

/// The capabilities `runc spec` writes into a new bundle's config.
const RUNC_SPEC_CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// Capabilities by number (linux/capability.h), as Docker spells them.
const CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Capabilities this process's bounding set lacks: a container cannot get them, and
/// `docker run --cap-add ALL` fails ("unable to apply caps") unless they are dropped.
fn missing_capabilities() -> Vec<&'static str> {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
        .expect("CapBnd in /proc/self/status");
    CAPABILITIES
        .iter()
        .enumerate()
        .filter(|&(bit, _)| bounding & (1 << bit) == 0)
        .map(|(_, name)| *name)
        .collect()
}

/// The capability sets compared: Docker's default (`docker run`), and all this host can give
/// (`--cap-add ALL`, less what the host itself lacks: then `verify --caps` lists the rest).
#[derive(Clone, Debug)]
enum Caps {
    DockerDefault,
    /// What `runc spec` gives (for `runc run`).
    RuncSpec,
    All {
        missing: Vec<&'static str>,
    },
}

impl Caps {
    fn docker_args(&self) -> Vec<String> {
        match self {
            Caps::DockerDefault | Caps::RuncSpec => Vec::new(),
            Caps::All { missing } => ["--cap-add", "ALL"]
                .into_iter()
                .map(String::from)
                .chain(
                    missing
                        .iter()
                        .flat_map(|c| ["--cap-drop".into(), c.to_string()]),
                )
                .collect(),
        }
    }

    fn verify_arg(&self) -> String {
        match self {
            Caps::DockerDefault => "default".into(),
            Caps::RuncSpec => RUNC_SPEC_CAPS.join(","),
            Caps::All { missing } if missing.is_empty() => "all".into(),
            Caps::All { missing } => CAPABILITIES
                .iter()
                .filter(|c| !missing.contains(c))
                .copied()
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// The capability mask the probe program keeps (`--caps`): the same set on both sides.
    fn mask(&self) -> String {
        let names: Vec<&str> = match self {
            Caps::DockerDefault => DOCKER_DEFAULT_CAPS
                .iter()
                .map(|c| c.trim_start_matches("CAP_"))
                .collect(),
            Caps::RuncSpec => RUNC_SPEC_CAPS
                .iter()
                .map(|c| c.trim_start_matches("CAP_"))
                .collect(),
            Caps::All { missing } => CAPABILITIES
                .iter()
                .filter(|c| !missing.contains(c))
                .copied()
                .collect(),
        };
        let mask = names.iter().fold(0u64, |mask, name| {
            let bit = CAPABILITIES.iter().position(|c| c == name).unwrap();
            mask | 1 << bit
        });
        format!("{mask:x}")
    }

    fn label(&self) -> &'static str {
        match self {
            Caps::DockerDefault => "Docker's default capabilities",
            Caps::RuncSpec => "runc spec's capabilities",
            Caps::All { .. } => "all capabilities",
        }
    }
}

/// What one side did with a profile.
#[derive(Debug)]
enum Run {
    /// The probe program ran: each probe's verdict.
    Ran(Vec<Verdict>),
    /// The runtime refused the profile and ran nothing (runc's error, verify's exit 65).
    Refused(String),
}

/// Verdicts under runc: the probe program in a container with the copy as its profile.
fn under_docker(image: &str, dir: &Path, copy: &Path, caps: &Caps, count: usize) -> Run {
    let out = run(
        Command::new("docker")
            .args(["run", "--rm", "--network", "none", "--volume"])
            .arg(format!("{}:/p:ro", dir.display()))
            .arg("--security-opt")
            .arg(format!("seccomp={}", copy.display()))
            .args(caps.docker_args())
            // verify sets no_new_privs, as runc does with this option.
            .args(["--security-opt", "no-new-privileges"])
            .args([image, "/scprobe", "--caps", &caps.mask(), "/p/probes.txt"]),
        Duration::from_secs(300),
    );
    if out.stdout.is_empty() && out.stderr.contains("error adding seccomp filter rule") {
        return Run::Refused(out.stderr.trim().to_string());
    }
    let outcomes = seccomp_probe::parse(&out.stdout, count).unwrap_or_else(|e| {
        panic!(
            "docker run ({}): {e}\nstderr:\n{}",
            caps.label(),
            out.stderr
        )
    });
    Run::Ran(outcomes.into_iter().map(verdict).collect())
}

/// Verdicts under `verify`: the same program, list and copy.
fn under_verify(binary: &Path, dir: &Path, copy: &Path, caps: &Caps, count: usize) -> Run {
    let out = run(
        Command::new(agent_audit_bin())
            .arg("verify")
            .arg("--profile")
            .arg(copy)
            .arg("--caps")
            .arg(caps.verify_arg())
            .arg("--")
            .arg(binary)
            .args(["--caps", &caps.mask()])
            .arg(dir.join("probes.txt")),
        Duration::from_secs(300),
    );
    if out.status.code() == Some(65) && out.stderr.contains("runc would refuse") {
        return Run::Refused(out.stderr.trim().to_string());
    }
    let outcomes = seccomp_probe::parse(&out.stdout, count)
        .unwrap_or_else(|e| panic!("verify ({}): {e}\nstderr:\n{}", caps.label(), out.stderr));
    Run::Ran(outcomes.into_iter().map(verdict).collect())
}

/// Whether this Docker hands `defaultErrnoRet` to runc: a call the default action refuses gets
/// the default's errno, or EPERM.
fn docker_passes_default_errno_ret(image: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let profile = json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 333});
    let (copy, _) = test_copy(&profile, Markers::All);
    let path = dir.path().join("profile.json");
    fs::write(&path, copy.to_string()).unwrap();
    let mount = Probe {
        abi: Abi::X86_64,
        nr: Arch::X86_64.syscall_nr("mount").unwrap(),
        args: [FILLER; 6],
        creates_task: false,
    };
    fs::write(dir.path().join("probes.txt"), seccomp_probe::list(&[mount])).unwrap();
    match under_docker(image, dir.path(), &path, &Caps::DockerDefault, 1) {
        Run::Ran(verdicts) if verdicts == [Verdict::Denied(333)] => true,
        Run::Ran(verdicts) if verdicts == [Verdict::Eperm] => false,
        other => panic!("mount under a profile that refuses it: {other:?}"),
    }
}

/// The profile as Docker hands it to runc for a container of `runc spec`'s default
/// capabilities, in the OCI form `runc run` reads (`linux.seccomp`): rules evaluated and
/// stripped of `includes`/`excludes` by agent-audit (that part is what the Docker runs check),
/// `archMap` turned into the host's `architectures`, the legacy `name` into `names`.
fn as_runc_config(copy: &Value) -> Value {
    let profile = SeccompProfile::parse(&copy.to_string(), Path::new("copy.json")).unwrap();
    let caps = Capabilities::from_str(&Caps::RuncSpec.verify_arg()).unwrap();
    let effective = ContainerContext::on_this_host(caps).effective(&profile);
    let mut config = serde_json::to_value(&effective).unwrap();
    let object = config.as_object_mut().unwrap();
    if let Some(Value::Array(map)) = object.remove("archMap") {
        let native = Arch::native().unwrap().scmp_name();
        if let Some(entry) = map.iter().find(|e| e["architecture"] == native) {
            let mut arches = vec![entry["architecture"].clone()];
            arches.extend(
                entry["subArchitectures"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
            object.insert("architectures".into(), Value::Array(arches));
        }
    }
    for rule in object["syscalls"].as_array_mut().unwrap() {
        if let Some(name) = rule.as_object_mut().unwrap().remove("name") {
            match rule["names"].as_array_mut() {
                Some(names) => names.push(name),
                None => rule["names"] = json!([name]),
            }
        }
    }
    config
}

/// Verdicts under `runc run` itself: a bundle with the probe program, `runc spec`'s defaults
/// (no_new_privs, three capabilities) and `profile` as `linux.seccomp`.
fn under_runc(binary: &Path, probes: &Path, profile: &Value, count: usize) -> Run {
    let bundle = tempfile::tempdir().unwrap();
    let rootfs = bundle.path().join("rootfs");
    fs::create_dir_all(&rootfs).unwrap();
    fs::copy(binary, rootfs.join("scprobe")).unwrap();
    fs::copy(probes, rootfs.join("probes.txt")).unwrap();
    run_ok(
        Command::new("runc").arg("spec").current_dir(bundle.path()),
        Duration::from_secs(10),
    );
    let config_path = bundle.path().join("config.json");
    let mut config: Value =
        serde_json::from_str(&fs::read_to_string(&config_path).unwrap()).unwrap();
    let mask = Caps::RuncSpec.mask();
    config["process"]["args"] = json!(["/scprobe", "--caps", mask, "/probes.txt"]);
    config["process"]["terminal"] = Value::Bool(false);
    config["linux"]["seccomp"] = profile.clone();
    fs::write(&config_path, config.to_string()).unwrap();
    let id = unique_name("agent-audit-scprobe");
    let out = run(
        Command::new("runc")
            .arg("run")
            .arg("--bundle")
            .arg(bundle.path())
            .arg(&id),
        Duration::from_secs(300),
    );
    let _ = Command::new("runc")
        .args(["delete", "--force", &id])
        .output();
    if out.stdout.is_empty() && out.stderr.contains("error adding seccomp filter rule") {
        return Run::Refused(out.stderr.trim().to_string());
    }
    let outcomes = seccomp_probe::parse(&out.stdout, count)
        .unwrap_or_else(|e| panic!("runc run: {e}\nstderr:\n{}", out.stderr));
    Run::Ran(outcomes.into_iter().map(verdict).collect())
}

/// What the comparisons found.
#[derive(Default)]
struct Tally {
    compared: usize,
    refused: usize,
    mismatches: Vec<String>,
}

impl Tally {
    fn compare(&mut self, context: &str, labels: &[String], runc: Run, ours: Run) {
        match (runc, ours) {
            (Run::Ran(runc), Run::Ran(ours)) => {
                self.compared += runc.len();
                for (i, (r, o)) in runc.iter().zip(&ours).enumerate() {
                    if r != o {
                        self.mismatches.push(format!(
                            "{context}: {}: runc {r:?}, verify {o:?}",
                            labels[i]
                        ));
                    }
                }
            }
            (Run::Refused(runc), Run::Refused(ours)) => {
                eprintln!("{context}: both refuse the profile:\n  runc: {runc}\n  verify: {ours}");
                self.refused += 1;
            }
            (runc, ours) => self
                .mismatches
                .push(format!("{context}: runc {runc:?}, verify {ours:?}")),
        }
    }
}

#[test]
fn root_verify_filter_answers_like_runc_on_every_corpus_profile() {
    require_root();
    if skip_without_docker("root_verify_filter_answers_like_runc_on_every_corpus_profile") {
        return;
    }
    let build = tempfile::tempdir().unwrap();
    let binary = seccomp_probe::build(build.path());
    let image = probe_image(&binary);
    let markers = if docker_passes_default_errno_ret(&image) {
        Markers::All
    } else {
        eprintln!(
            "this Docker drops defaultErrnoRet (runc then answers EPERM for the default action): \
             the copies keep EPERM and have no defaultErrnoRet"
        );
        Markers::KeepEperm
    };
    let missing = missing_capabilities();
    if !missing.is_empty() {
        eprintln!(
            "this host's bounding set lacks {}: \"all capabilities\" leaves them out",
            missing.join(", ")
        );
    }
    let all_caps = Caps::All { missing };
    let mut tally = Tally::default();
    let mut profiles = 0usize;
    let mut skipped: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for subject in subjects() {
        eprintln!("{}", subject.name);
        let dir = tempfile::tempdir().unwrap();
        let copy_path = dir.path().join("profile.json");
        let (copy, added) = test_copy(&subject.json, markers);
        if !added.is_empty() {
            eprintln!(
                "{}: allowed what the harness needs and it does not mention: {}",
                subject.name,
                added.join(", ")
            );
        }
        fs::write(&copy_path, serde_json::to_vec_pretty(&copy).unwrap()).unwrap();
        let profile = SeccompProfile::parse(&copy.to_string(), &copy_path)
            .unwrap_or_else(|e| panic!("{}: {e}", subject.name));
        let set = probe_set(&profile);
        for (reason, names) in &set.skipped {
            skipped.entry(reason).or_default().extend(names.clone());
        }
        let probes = dir.path().join("probes.txt");
        fs::write(&probes, seccomp_probe::list(&set.probes)).unwrap();
        profiles += 1;
        let n = set.probes.len();
        for caps in [Caps::DockerDefault, all_caps.clone()] {
            let runc = under_docker(&image, dir.path(), &copy_path, &caps, n);
            let ours = under_verify(&binary, dir.path(), &copy_path, &caps, n);
            let context = format!("{} (docker run, {})", subject.name, caps.label());
            tally.compare(&context, &set.labels, runc, ours);
        }
        // runc itself, with every errno a marker (defaultErrnoRet included).
        let (full, _) = test_copy(&subject.json, Markers::All);
        let config = as_runc_config(&full);
        let config_path = dir.path().join("runc-profile.json");
        fs::write(&config_path, config.to_string()).unwrap();
        let runc = under_runc(&binary, &probes, &config, n);
        let ours = under_verify(&binary, dir.path(), &config_path, &Caps::RuncSpec, n);
        let context = format!("{} (runc run, {})", subject.name, Caps::RuncSpec.label());
        tally.compare(&context, &set.labels, runc, ours);
    }
    eprintln!(
        "compared {} probe verdicts over {profiles} profiles: docker run with Docker's default \
         capabilities and with all, and runc run ({} runs refused by both sides)",
        tally.compared, tally.refused
    );
    for (reason, names) in &skipped {
        eprintln!(
            "not probed ({}): {reason}: {}",
            names.len(),
            names.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let mismatches = tally.mismatches;
    const SHOWN: usize = 200;
    assert!(
        mismatches.is_empty(),
        "{} probes got different verdicts from runc and verify (first {SHOWN}):\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
