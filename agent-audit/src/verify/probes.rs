//! Built-in probes, tried under the profile, each in a forked child of its own that installs
//! the filter and never execs.
//!
//! Refused probes are dangerous calls with arguments that do nothing harmful even where the
//! call is allowed (invalid flags, bad descriptors, null pointers, a child that exits at once):
//! under a correct profile each fails with the errno the profile gives it, not with the kernel's
//! own answer. Some are refused only by argument rules (`socket(AF_VSOCK)`,
//! `clone(CLONE_NEWUSER)`, `personality(READ_IMPLIES_EXEC)`). Working probes check that those
//! rules still let the common case through — but only what the workload needs: with
//! recordings, a fork through `clone` when they show one (a workload that forks only with the
//! `fork` or `vfork` syscalls — Debian's dash runs commands with `vfork` — never asks the
//! profile for `clone`), a thread when they show thread creation (`clone` with
//! `CLONE_THREAD`, or `clone3`), the socket families they used; a profile that refuses
//! what the workload never did is stricter, not broken. Without recordings a working probe
//! runs only when the profile allows every call it makes, and is listed as skipped otherwise.
//!
//! Each probe runs in its own child, which reports through memory shared with this process
//! (no call the filter could refuse): a child that dies — by the filter's kill action, or any
//! other way — is a result, and a probe that could not run is a probe error, never the
//! profile's answer.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::allowlist::{Allowlist, ArgKind};
use crate::profile::args::family_label;
use crate::seccomp::evaluate;
use crate::seccomp::{SeccompProfile, SeccompProgram};
use crate::syscalls::Arch;

use super::probe_child::{in_child, Call, Got, SharedReport};

/// EPERM and ENOSYS.
pub const EPERM: i32 = 1;
/// See [`EPERM`].
pub const ENOSYS: i32 = 38;

const SIGCHLD: u64 = 17;
const CLONE_NEWNS: u64 = 0x0002_0000;
const CLONE_NEWUSER: u64 = 0x1000_0000;
/// CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM: a thread.
const THREAD_FLAGS: u64 = 0x0005_0f00;
const READ_IMPLIES_EXEC: u64 = 0x0040_0000;
const TIOCSTI: u64 = 0x5412;
const TCGETS: u64 = 0x5401;
const SOCK_STREAM: u64 = 1;
const SOCK_DGRAM: u64 = 2;
const SOCK_SEQPACKET: u64 = 5;
/// Address families `0..KNOWN_FAMILIES` exist (AF_MAX).
const KNOWN_FAMILIES: u64 = 46;
/// At most this many probes run.
const MAX_PROBES: usize = 96;

/// What a probe checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// The profile must refuse it.
    Refused,
    /// The profile must let it run.
    Works,
}

/// One probe.
#[derive(Clone, Debug)]
pub struct Probe {
    name: &'static str,
    label: String,
    args: [u64; 6],
    call: Call,
    expect: Expect,
    /// What the kernel says when the filter lets the call through, for the report.
    if_allowed: &'static str,
}

fn refused(name: &'static str, label: &str, args: [u64; 6], if_allowed: &'static str) -> Probe {
    let call = if name == "clone" {
        Call::Fork
    } else {
        Call::Plain
    };
    Probe {
        name,
        label: label.to_string(),
        args,
        call,
        expect: Expect::Refused,
        if_allowed,
    }
}

/// The dangerous calls: what `--probe-dangerous` tries.
fn refused_probes() -> Vec<Probe> {
    vec![
        // PTRACE_PEEKDATA of pid -1: no such process.
        refused("ptrace", "ptrace", [2, u64::MAX, 0, 0, 0, 0], "ESRCH"),
        // All-null mount: bad address.
        refused("mount", "mount", [0; 6], "EFAULT"),
        // Invalid flags are refused before anything is loaded (and unlike 0 segments, never
        // unloads a staged kernel).
        refused(
            "kexec_load",
            "kexec_load",
            [0, 0, 0, 0xffff_ffff, 0, 0],
            "EINVAL",
        ),
        refused(
            "name_to_handle_at",
            "name_to_handle_at",
            [u64::MAX, 0, 0, 0, 0, 0],
            "EBADF/EFAULT",
        ),
        refused(
            "open_by_handle_at",
            "open_by_handle_at",
            [u64::MAX, 0, 0, 0, 0, 0],
            "EBADF/EFAULT",
        ),
        // unshare(0) is a no-op when allowed.
        refused("unshare", "unshare", [0; 6], "success"),
        // An invalid command.
        refused("bpf", "bpf", [u64::from(u32::MAX), 0, 0, 0, 0, 0], "EINVAL"),
        // Null args: invalid when allowed. Must fail with ENOSYS so that libc falls back.
        refused("clone3", "clone3", [0; 6], "EINVAL/EFAULT"),
        // Only argument rules refuse these.
        refused(
            "socket",
            "socket(AF_ALG)",
            [38, SOCK_SEQPACKET, 0, 0, 0, 0],
            "a socket, or EAFNOSUPPORT",
        ),
        refused(
            "socket",
            "socket(AF_VSOCK)",
            [40, SOCK_STREAM, 0, 0, 0, 0],
            "a socket, or EAFNOSUPPORT",
        ),
        // The kernel reads the family as an int: AF_VSOCK with upper bits set.
        refused(
            "socket",
            "socket(AF_VSOCK|1<<32)",
            [0x1_0000_0028, SOCK_STREAM, 0, 0, 0, 0],
            "a socket, or EAFNOSUPPORT",
        ),
        refused(
            "clone",
            "clone(CLONE_NEWUSER|SIGCHLD)",
            [CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0, 0],
            "a child in a new user namespace",
        ),
        refused(
            "clone",
            "clone(CLONE_NEWNS|SIGCHLD)",
            [CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0, 0],
            "a child in a new mount namespace",
        ),
        // Bad descriptor: EBADF when allowed; the second one has the upper-bit alias of
        // CVE-2019-10063.
        refused(
            "ioctl",
            "ioctl(TIOCSTI)",
            [u64::MAX, TIOCSTI, 0, 0, 0, 0],
            "EBADF",
        ),
        refused(
            "ioctl",
            "ioctl(TIOCSTI|1<<32)",
            [u64::MAX, TIOCSTI | (1 << 32), 0, 0, 0, 0],
            "EBADF",
        ),
        refused(
            "personality",
            "personality(READ_IMPLIES_EXEC)",
            [READ_IMPLIES_EXEC, 0, 0, 0, 0, 0],
            "the old personality",
        ),
    ]
}

/// What the recordings show the workload did, for the working probes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// `clone` with `CLONE_THREAD`, or `clone3`.
    threads: bool,
    /// `clone` without `CLONE_THREAD` (or beside `clone3`, which makes the threads): the
    /// fork probe's own call. The `fork` and `vfork` syscalls do not count: they take no
    /// arguments a rule could break, and a profile that allows only them is right to refuse
    /// `clone`.
    forks: bool,
    /// `ioctl`.
    ioctl: bool,
    /// `socket`, with the families recorded (`None`: not known, any the profile allows).
    sockets: Option<Option<BTreeSet<u64>>>,
}

/// `CLONE_THREAD`.
const CLONE_THREAD: u64 = 0x0001_0000;

impl Evidence {
    /// What `lists` show, from the workload's rows (not a runtime's init); `None` without
    /// recordings.
    pub fn from_allowlists(lists: &[Allowlist]) -> Option<Self> {
        if lists.is_empty() {
            return None;
        }
        let mut e = Self::default();
        let rows = lists.iter().flat_map(|l| &l.syscalls);
        let mut clone_flags: Option<u64> = None;
        let mut clone_seen = false;
        let mut clone3_seen = false;
        for row in rows.filter(|r| r.count > 0) {
            match row.name.as_deref() {
                Some("clone") => {
                    clone_seen = true;
                    let bits = row.args.iter().find(|a| a.index == 0 && a.field.is_none());
                    if let Some(bits) = bits.and_then(|a| a.bits) {
                        *clone_flags.get_or_insert(0) |= bits;
                    }
                }
                Some("clone3") => clone3_seen = true,
                Some("ioctl") => e.ioctl = true,
                Some("socket") => e.add_families(row),
                _ => {}
            }
        }
        let clone_threads = clone_flags.is_some_and(|f| f & CLONE_THREAD != 0);
        e.threads |= clone3_seen || clone_threads;
        // Flags unknown (arguments not recorded): a clone may have been either; a fork is
        // the one whose probe needs less.
        e.forks |= clone_seen && (!clone_threads || clone3_seen);
        Some(e)
    }

    fn add_families(&mut self, row: &crate::allowlist::SyscallCount) {
        let record = row
            .args
            .iter()
            .find(|a| a.index == 0 && a.kind == ArgKind::Values && !a.overflow);
        match (record, self.sockets.as_mut()) {
            // Some recording does not say which families: any the profile allows.
            (None, _) => self.sockets = Some(None),
            (Some(_), Some(None)) => {}
            (Some(r), Some(Some(set))) => set.extend(r.values.iter().map(|v| v.value)),
            (Some(r), None) => {
                self.sockets = Some(Some(r.values.iter().map(|v| v.value).collect()));
            }
        }
    }
}

/// A working probe not run, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkippedProbe {
    /// The call as people write it.
    pub probe: String,
    /// Why it did not run.
    pub reason: String,
}

/// The probes to run for a profile, and the working probes left out.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    probes: Vec<Probe>,
    /// Working probes not run.
    pub skipped: Vec<SkippedProbe>,
}

/// A working probe with every call it makes (beyond the probed one) and whether the
/// recordings show the workload needs it.
struct Candidate {
    probe: Probe,
    /// The other calls the probe makes: `exit` for a thread, `exit_group` and `wait4` for a
    /// fork, `close` for a socket.
    needs: &'static [&'static str],
    /// `Some(false)`: the recordings show no such call.
    recorded: Option<bool>,
}

/// The working probes: the common calls argument rules must not break.
fn working_candidates(profile: &SeccompProfile, evidence: Option<&Evidence>) -> Vec<Candidate> {
    let works = |name, label: String, args, call| Probe {
        name,
        label,
        args,
        call,
        expect: Expect::Works,
        if_allowed: "success",
    };
    let mut all = vec![Candidate {
        probe: works(
            "clone",
            "fork (clone SIGCHLD)".into(),
            [SIGCHLD, 0, 0, 0, 0, 0],
            Call::Fork,
        ),
        needs: &["exit_group", "wait4"],
        recorded: evidence.map(|e| e.forks),
    }];
    if cfg!(target_arch = "x86_64") {
        all.push(Candidate {
            probe: works(
                "clone",
                "thread (clone CLONE_VM|CLONE_THREAD|…)".into(),
                [THREAD_FLAGS, 0, 0, 0, 0, 0],
                Call::Thread,
            ),
            needs: &["exit"],
            recorded: evidence.map(|e| e.threads),
        });
    }
    all.push(Candidate {
        probe: works(
            "ioctl",
            "ioctl(TCGETS)".into(),
            [u64::MAX, TCGETS, 0, 0, 0, 0],
            Call::Plain,
        ),
        needs: &[],
        recorded: evidence.map(|e| e.ioctl),
    });
    let recorded_families = evidence.map(|e| e.sockets.clone());
    for family in 0..KNOWN_FAMILIES {
        let args = [family, SOCK_DGRAM, 0, 0, 0, 0];
        let recorded = match &recorded_families {
            None => None,
            Some(None) => Some(false),
            Some(Some(None)) => {
                // Families not recorded: the ones the profile allows, as without recordings.
                (!evaluate::outcome(profile, "socket", &args).allows()).then_some(false)
            }
            Some(Some(Some(set))) => Some(set.contains(&family)),
        };
        // Without recordings only the families the profile allows are worth a probe (the
        // others are refused on purpose); with them, exactly the families used.
        if recorded.is_none() && !evaluate::outcome(profile, "socket", &args).allows() {
            continue;
        }
        all.push(Candidate {
            probe: works(
                "socket",
                format!("socket({})", family_label(family)),
                args,
                Call::Plain,
            ),
            needs: &["close"],
            recorded,
        });
    }
    all
}

/// Every probe for `profile`: the refused ones, and the working ones the workload needs (see
/// the module's documentation).
pub fn plan(profile: &SeccompProfile, evidence: Option<&Evidence>) -> Plan {
    let mut plan = Plan {
        probes: refused_probes(),
        skipped: Vec::new(),
    };
    for c in working_candidates(profile, evidence) {
        let skip = match c.recorded {
            Some(true) => None,
            Some(false) => {
                // Socket families the workload never used are not worth a line each.
                if c.probe.name != "socket" {
                    plan.skipped.push(SkippedProbe {
                        probe: c.probe.label.clone(),
                        reason: "the recordings show no such call".into(),
                    });
                }
                continue;
            }
            None => unallowed(profile, &c),
        };
        match skip {
            Some(reason) => plan.skipped.push(SkippedProbe {
                probe: c.probe.label.clone(),
                reason,
            }),
            None => plan.probes.push(c.probe),
        }
    }
    plan.probes.truncate(MAX_PROBES);
    plan
}

/// Why a probe cannot run under `profile` without recordings: a call it makes is not allowed.
fn unallowed(profile: &SeccompProfile, c: &Candidate) -> Option<String> {
    if !evaluate::outcome(profile, c.probe.name, &c.probe.args).allows() {
        return Some(format!(
            "no recordings to go by, and the profile does not allow {}",
            c.probe.label
        ));
    }
    let missing: Vec<&str> = c
        .needs
        .iter()
        .copied()
        .filter(|n| !evaluate::outcome(profile, n, &[0; 6]).allows())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "no recordings to go by, and the profile does not allow {}, which the probe needs",
            missing.join(", ")
        )
    })
}

/// What one probe got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    /// The syscall.
    pub syscall: String,
    /// The call as people write it (`socket(AF_VSOCK)`).
    pub probe: String,
    /// Whether the profile must refuse it or let it run.
    pub expect: Expect,
    /// errno the profile should produce (0 for a call that must work).
    pub expected_errno: i32,
    /// errno observed (0: the call succeeded).
    pub errno: i32,
    /// What the kernel returns for these arguments when the call is allowed.
    pub if_allowed: String,
    /// Refused: `errno == expected_errno` (or killed by SIGSYS where the profile's action is
    /// to kill); works: not refused by the filter.
    pub ok: bool,
    /// The probe's child was killed by this signal during the call (SIGSYS: the profile's
    /// kill or trap action).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub killed_by_signal: Option<i32>,
    /// The probe could not run (not the profile's answer; `ok` is false and the verdict does
    /// not count it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Whether every probe that ran got what it must (a probe error is not the profile's answer:
/// it is reported, not counted).
pub fn all_answered_right(results: &[ProbeResult]) -> bool {
    results.iter().all(|p| p.ok || p.error.is_some())
}

/// The errno a refused probe must get: clone3 must get ENOSYS (libc falls back to clone on
/// nothing else); any other dangerous call the errno the profile refuses it with, or EPERM if
/// the profile lets it through (then the probe fails).
fn expected_errno(profile: &SeccompProfile, probe: &Probe) -> i32 {
    if probe.name == "clone3" {
        return ENOSYS;
    }
    let outcome = evaluate::outcome(profile, probe.name, &probe.args);
    match outcome.errno {
        Some(e) if !outcome.allows() => errno_i32(e),
        _ => EPERM,
    }
}

/// A profile's errno as the C library reports it. `verify` compiles the profile first, which
/// refuses an errno over 16 bits; a larger one would match no errno a call can return.
fn errno_i32(errno: u32) -> i32 {
    i32::try_from(errno).unwrap_or(i32::MAX)
}

/// Runs the planned probes, each in a child of its own that installs `filter`.
pub fn run(
    filter: &SeccompProgram,
    profile: &SeccompProfile,
    plan: &Plan,
) -> std::io::Result<Vec<ProbeResult>> {
    let native = Arch::native().ok_or_else(|| std::io::Error::other("unsupported host arch"))?;
    let report = SharedReport::new()?;
    let default_errno = profile.default_errno_ret.map_or(EPERM, errno_i32);
    let mut results = Vec::new();
    for p in &plan.probes {
        let Some(nr) = native.syscall_nr(p.name).map(i64::from) else {
            continue;
        };
        let got = in_child(filter, &report, nr, &p.args, p.call);
        results.push(judge(profile, p, got, default_errno));
    }
    Ok(results)
}

/// A probe's result from what its child got.
fn judge(profile: &SeccompProfile, p: &Probe, got: Got, default_errno: i32) -> ProbeResult {
    let refused_by_signal = |signal: i32| signal == libc::SIGSYS;
    let (expected_errno, ok, errno, killed_by_signal, error) = match (p.expect, got) {
        (Expect::Refused, Got::Errno(e)) => {
            let want = expected_errno(profile, p);
            (want, e == want, e, None, None)
        }
        (Expect::Refused, Got::Killed(sig)) => {
            let refused = !evaluate::outcome(profile, p.name, &p.args).allows();
            (
                expected_errno(profile, p),
                refused && refused_by_signal(sig),
                0,
                Some(sig),
                None,
            )
        }
        (Expect::Works, Got::Errno(e)) => (0, e != EPERM && e != default_errno, e, None, None),
        (Expect::Works, Got::Killed(sig)) => (0, false, 0, Some(sig), None),
        (_, Got::Error(why)) => (0, false, 0, None, Some(why)),
    };
    ProbeResult {
        syscall: p.name.to_string(),
        probe: p.label.clone(),
        expect: p.expect,
        expected_errno,
        errno,
        if_allowed: p.if_allowed.to_string(),
        ok,
        killed_by_signal,
        error,
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::allowlist::ArgRecord;

    const X: Arch = Arch::X86_64;

    fn profile(json: &str) -> SeccompProfile {
        SeccompProfile::parse(json, Path::new("p")).unwrap()
    }

    fn working(plan: &Plan) -> Vec<&str> {
        plan.probes
            .iter()
            .filter(|p| p.expect == Expect::Works)
            .map(|p| p.label.as_str())
            .collect()
    }

    /// A recording with clone's flags union `bits` (and the other calls given).
    fn recording(clone_bits: Option<u64>, others: &[&str]) -> Allowlist {
        let mut calls: Vec<(Arch, &str, u64)> = others.iter().map(|n| (X, *n, 1)).collect();
        if clone_bits.is_some() {
            calls.push((X, "clone", 3));
        }
        let mut list = Allowlist::for_tests_of_command("w", &calls);
        if let Some(bits) = clone_bits {
            let row = list
                .syscalls
                .iter_mut()
                .find(|r| r.name.as_deref() == Some("clone"))
                .unwrap();
            let mut record = ArgRecord::values(0, None, [], false);
            record.kind = ArgKind::Flags;
            record.bits = Some(bits);
            row.args = vec![record];
        }
        list
    }

    #[test]
    fn a_process_based_recording_gets_the_fork_probe_and_not_the_thread_probe() {
        // glibc's fork: clone(CLONE_CHILD_SETTID|CLONE_CHILD_CLEARTID|SIGCHLD).
        let e = Evidence::from_allowlists(&[recording(Some(0x0120_0000), &["wait4"])]).unwrap();
        assert!(e.forks && !e.threads, "{e:?}");
        let p = profile(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#);
        let plan = plan(&p, Some(&e));
        assert_eq!(working(&plan), ["fork (clone SIGCHLD)"]);
        assert!(plan
            .skipped
            .iter()
            .any(|s| s.probe.starts_with("thread") && s.reason.contains("no such call")));
    }

    #[test]
    fn a_workload_forking_only_with_vfork_gets_no_clone_fork_probe() {
        // Debian's dash: `sh -c 'true; id'` runs `true` through vfork, never clone. Its
        // profile allows vfork and not clone, which the fork probe must not call broken.
        let e = Evidence::from_allowlists(&[recording(None, &["vfork", "fork", "wait4"])]);
        let e = e.unwrap();
        assert!(!e.forks && !e.threads, "{e:?}");
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["vfork","fork","wait4","exit_group"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let plan = plan(&p, Some(&e));
        assert!(working(&plan).is_empty(), "{:?}", working(&plan));
        assert!(plan
            .skipped
            .iter()
            .any(|s| s.probe.starts_with("fork") && s.reason.contains("no such call")));
    }

    #[test]
    fn clone3_or_clone_thread_flags_show_threads() {
        let e = Evidence::from_allowlists(&[recording(None, &["clone3"])]).unwrap();
        assert!(e.threads && !e.forks, "{e:?}");
        let e = Evidence::from_allowlists(&[recording(Some(THREAD_FLAGS), &[])]).unwrap();
        assert!(e.threads && !e.forks, "{e:?}");
        // Both: clone3 makes the threads, so clone is a fork.
        let e = Evidence::from_allowlists(&[recording(Some(THREAD_FLAGS), &["clone3"])]).unwrap();
        assert!(e.threads && e.forks, "{e:?}");
        assert!(Evidence::from_allowlists(&[]).is_none());
    }

    #[test]
    fn without_recordings_a_probe_runs_only_when_the_profile_allows_all_its_calls() {
        let no_exit = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["clone","exit_group","wait4"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let plan = plan(&no_exit, None);
        assert_eq!(working(&plan), ["fork (clone SIGCHLD)"]);
        let thread = plan
            .skipped
            .iter()
            .find(|s| s.probe.starts_with("thread"))
            .expect("the thread probe is listed as skipped");
        assert!(thread.reason.contains("does not allow exit"), "{thread:?}");
    }
}
