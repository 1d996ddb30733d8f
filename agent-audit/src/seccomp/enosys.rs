//! runc's -ENOSYS stub: before libseccomp's filter, runc (libcontainer/seccomp/patchbpf,
//! `generatePatch`, since 1.0) prepends a few instructions that fail with ENOSYS every syscall
//! whose number is above the highest one the profile names, on each architecture the profile
//! lists, unless the default action lets calls through (allow, log, trace). A syscall newer than
//! the profile then looks "not implemented" to libc, which falls back to an older call, instead
//! of getting the default errno (EPERM) and giving up. `verify` installs the same stub so that
//! its filter answers as runc's does; without it, `cachestat` under Docker's default gets
//! ENOSYS in a container and EPERM under `verify`.
//!
//! What counts, as runc computes it (`findLastSyscalls`): the architectures of the profile as
//! the runtime hands it to runc (`architectures`, or Docker's `archMap` entry for the host with
//! its sub-architectures; none listed: no stub; [`super::arches::ProfileArches::runtime`]), and
//! every name of every rule the runtime kept, resolved by libseccomp for that architecture
//! (unknown names ignored; rules equal to the default action count too, although the filter
//! skips them).

use libseccomp::ScmpSyscall;

use super::arches::{audit_arch, scmp_arch, ProfileArches};
use super::{Action, SeccompProfile};
use crate::syscalls::Arch;

/// x32 numbers carry this bit (and share AUDIT_ARCH_X86_64 with x86_64).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// `SECCOMP_RET_ERRNO | ENOSYS`.
const RET_ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;

// Classic BPF opcodes (linux/filter.h).
const LD_W_ABS: u16 = 0x20;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGT_K: u16 = 0x25;
const JMP_JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
/// `offsetof(struct seccomp_data, nr)` and `arch`.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;

/// The highest syscall number the profile names, per architecture that gets a stub.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnosysStub {
    /// (arch, highest number in libseccomp's numbering: x32 numbers carry bit 30).
    pub last: Vec<(Arch, u32)>,
}

impl EnosysStub {
    /// The stub runc would prepend for `profile` (already evaluated for the container: the
    /// rules the runtime kept).
    pub fn for_profile(profile: &SeccompProfile) -> Self {
        if matches!(
            profile.default_action,
            Action::Allow | Action::Log | Action::Trace
        ) {
            return Self::default();
        }
        let last = ProfileArches::resolve(profile)
            .runtime
            .into_iter()
            .filter_map(|arch| {
                let highest = profile
                    .syscalls
                    .iter()
                    .flat_map(|r| r.all_names())
                    .filter_map(|name| ScmpSyscall::from_name_by_arch(name, scmp_arch(arch)).ok())
                    // Pseudo-numbers for names the arch lacks are negative: they do not count.
                    .filter_map(|sys| u32::try_from(i32::from(sys)).ok())
                    .filter(|&nr| nr > 0)
                    .max()?;
                Some((arch, highest))
            })
            .collect();
        Self { last }
    }

    /// Whether the stub fails syscall `nr` of `arch` (libseccomp numbering) with ENOSYS.
    pub fn answers_enosys(&self, arch: Arch, nr: u32) -> bool {
        self.last.iter().any(|&(a, last)| a == arch && nr > last)
    }

    /// The instructions to run before libseccomp's program: ENOSYS above the last number,
    /// otherwise fall through to the instruction right after the stub. Empty without arches.
    pub fn instructions(&self) -> Vec<libc::sock_filter> {
        if self.last.is_empty() {
            return Vec::new();
        }
        let mut groups: Vec<(u32, Vec<(Arch, u32)>)> = Vec::new();
        for &(arch, last) in &self.last {
            let audit = audit_arch(arch);
            match groups.iter_mut().find(|(a, _)| *a == audit) {
                Some((_, members)) => members.push((arch, last)),
                None => groups.push((audit, vec![(arch, last)])),
            }
        }
        let sections: Vec<Vec<Insn>> = groups.iter().map(|(_, m)| section(m)).collect();
        // Layout: load arch; one JEQ per group; JA to the filter; the sections; RET ENOSYS;
        // then libseccomp's program (label FILTER).
        let mut program = vec![Insn::Plain(stmt(LD_W_ABS, OFFSET_ARCH))];
        let mut start = 1 + groups.len() + 1;
        for ((audit, _), body) in groups.iter().zip(&sections) {
            program.push(Insn::JumpTo {
                code: JMP_JEQ_K,
                k: *audit,
                jt: Target::At(start),
                jf: Target::Next,
            });
            start += body.len();
        }
        program.push(Insn::Always(Target::Filter));
        for body in sections {
            let base = program.len();
            program.extend(body.into_iter().map(|insn| insn.rebased(base)));
        }
        let enosys = program.len();
        program.push(Insn::Plain(stmt(RET_K, RET_ENOSYS)));
        let filter = program.len();
        program
            .iter()
            .enumerate()
            .map(|(pc, insn)| insn.resolve(pc, enosys, filter))
            .collect()
    }
}

/// One AUDIT_ARCH's section: load the number, then ENOSYS above the last one. x86_64 and x32
/// share AUDIT_ARCH_X86_64 and are told apart by bit 30 of the number; a call of the one the
/// profile does not list goes on to the filter (which refuses it as a bad arch).
fn section(members: &[(Arch, u32)]) -> Vec<Insn> {
    let last = |wanted: Arch| members.iter().find(|(a, _)| *a == wanted).map(|&(_, n)| n);
    let above = |n: u32, if_not: Target| Insn::JumpTo {
        code: JMP_JGT_K,
        k: n,
        jt: Target::Enosys,
        jf: if_not,
    };
    let mut insns = vec![Insn::Plain(stmt(LD_W_ABS, OFFSET_NR))];
    match (last(Arch::X86_64), last(Arch::X32)) {
        (Some(x86_64), Some(x32)) => {
            let x32_check = insns.len() + 2;
            insns.push(Insn::JumpTo {
                code: JMP_JSET_K,
                k: X32_SYSCALL_BIT,
                jt: Target::At(x32_check),
                jf: Target::Next,
            });
            insns.push(above(x86_64, Target::Filter));
            insns.push(above(x32, Target::Filter));
        }
        (Some(x86_64), None) => {
            insns.push(Insn::JumpTo {
                code: JMP_JSET_K,
                k: X32_SYSCALL_BIT,
                jt: Target::Filter,
                jf: Target::Next,
            });
            insns.push(above(x86_64, Target::Filter));
        }
        (None, Some(x32)) => {
            insns.push(Insn::JumpTo {
                code: JMP_JSET_K,
                k: X32_SYSCALL_BIT,
                jt: Target::Next,
                jf: Target::Filter,
            });
            insns.push(above(x32, Target::Filter));
        }
        (None, None) => {
            let n = members.iter().map(|&(_, n)| n).max().unwrap_or(0);
            insns.push(above(n, Target::Filter));
        }
    }
    insns
}

/// Where a jump goes, resolved once the layout is known.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// The next instruction.
    Next,
    /// The instruction at this index (of the section while it is built, of the program once
    /// the section is placed: see [`Insn::rebased`]).
    At(usize),
    /// The RET ENOSYS instruction.
    Enosys,
    /// The first instruction of libseccomp's program.
    Filter,
}

#[derive(Clone, Copy, Debug)]
enum Insn {
    Plain(libc::sock_filter),
    JumpTo {
        code: u16,
        k: u32,
        jt: Target,
        jf: Target,
    },
    Always(Target),
}

impl Insn {
    /// The instruction of a section placed at `base`: its `At` targets become absolute.
    fn rebased(self, base: usize) -> Self {
        let shift = |t: Target| match t {
            Target::At(i) => Target::At(i + base),
            other => other,
        };
        match self {
            Insn::JumpTo { code, k, jt, jf } => Insn::JumpTo {
                code,
                k,
                jt: shift(jt),
                jf: shift(jf),
            },
            Insn::Always(t) => Insn::Always(shift(t)),
            plain => plain,
        }
    }

    fn resolve(&self, pc: usize, enosys: usize, filter: usize) -> libc::sock_filter {
        let offset = |t: Target| -> usize {
            let to = match t {
                Target::Next => pc + 1,
                Target::At(i) => i,
                Target::Enosys => enosys,
                Target::Filter => filter,
            };
            to - pc - 1
        };
        match *self {
            Insn::Plain(s) => s,
            Insn::JumpTo { code, k, jt, jf } => libc::sock_filter {
                code,
                jt: u8::try_from(offset(jt)).expect("the stub is short"),
                jf: u8::try_from(offset(jf)).expect("the stub is short"),
                k,
            },
            Insn::Always(t) => stmt(JMP_JA, u32::try_from(offset(t)).expect("the stub is short")),
        }
    }
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(json: &str) -> SeccompProfile {
        SeccompProfile::parse(json, Path::new("t.json")).unwrap()
    }

    /// What the child needs to install the filter and report; `seccomp` (317) is the highest.
    const BASE: &str =
        r#"{"names":["prctl","seccomp","exit_group","exit"],"action":"SCMP_ACT_ALLOW"}"#;

    #[test]
    fn the_last_number_is_per_listed_arch_and_only_for_refusing_defaults() {
        let p = parse(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
                "syscalls":[{BASE},{{"names":["no_such_call","read"],"action":"SCMP_ACT_ERRNO","errnoRet":1}}]}}"#
        ));
        // prctl is 172 on i386, seccomp 354; x32 numbers carry bit 30. Rules equal to the
        // default count, unknown names do not.
        assert_eq!(
            EnosysStub::for_profile(&p).last,
            [
                (Arch::X86_64, 317),
                (Arch::X86, 354),
                (Arch::X32, X32_SYSCALL_BIT | 317)
            ]
        );
        let allow = parse(&format!(
            r#"{{"defaultAction":"SCMP_ACT_LOG","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{BASE}]}}"#
        ));
        assert!(EnosysStub::for_profile(&allow).last.is_empty());
        // No arches listed: runc has none to compute the stub for.
        let unlisted = parse(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{BASE}]}}"#
        ));
        assert!(EnosysStub::for_profile(&unlisted).instructions().is_empty());
    }

    #[test]
    fn docker_archmap_gives_the_host_entry_and_its_sub_arches() {
        let docker = parse(include_str!(
            "../../../tests/data/profiles/docker-default.json"
        ));
        if Arch::native() == Some(Arch::X86_64) {
            assert_eq!(
                ProfileArches::resolve(&docker).runtime,
                [Arch::X86_64, Arch::X86, Arch::X32]
            );
        }
    }

    /// errno of syscall `nr` (first argument -1) in a child under `profile`'s filter.
    fn errno_under(profile: &SeccompProfile, nr: libc::c_long) -> i32 {
        crate::seccomp::compile::tests::errno_under(profile, nr, [u64::MAX, 0, 0])
    }

    #[test]
    fn in_the_kernel_calls_newer_than_the_profile_get_enosys() {
        if Arch::native() != Some(Arch::X86_64) {
            return;
        }
        let p = parse(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{BASE}]}}"#
        ));
        // getpid (39) is below seccomp (317): the default action. getrandom (318) is above.
        assert_eq!(errno_under(&p, libc::SYS_getpid), libc::EPERM);
        assert_eq!(errno_under(&p, libc::SYS_getrandom), libc::ENOSYS);
        assert!(EnosysStub::for_profile(&p).answers_enosys(Arch::X86_64, 318));
        // Without listed arches runc adds no stub: the default action again.
        let unlisted = parse(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{BASE}]}}"#
        ));
        assert_eq!(errno_under(&unlisted, libc::SYS_getrandom), libc::EPERM);
    }
}
