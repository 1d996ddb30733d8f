//! The compiled filter run as the kernel runs it: a classic BPF interpreter over the program
//! [`super::SeccompProgram`] holds (runc's ENOSYS stub, then what libseccomp generated), so that
//! what a call costs is counted on the very instructions the kernel walks, not on the profile.
//!
//! Three questions, each answered as `kernel/seccomp.c` answers it:
//! - [`run`]: the return value for one call (`seccomp_data`: arch, number, arguments) and how
//!   many instructions it walked (the final `RET` included);
//! - [`always_allowed`]: whether the kernel skips the filter for that syscall number
//!   altogether (Linux ≥ 5.11, `seccomp_cache_prepare`: it emulates the filter with only the
//!   arch and the number known, and caches the number when every instruction on the way is a
//!   load of those, an AND, a jump on a constant, and the path ends in `RET ALLOW`);
//! - [`worst_case`]: the most instructions any argument values can make that call walk (every
//!   branch on an argument taken both ways: an upper bound, reached unless a path is
//!   infeasible).

use std::collections::{BTreeMap, HashMap};

use super::evaluate::Outcome;
use super::Action;

/// `BPF_CLASS(code)` and friends (include/uapi/linux/filter.h, bpf_common.h).
mod op {
    pub const CLASS: u16 = 0x07;
    pub const LD: u16 = 0x00;
    pub const LDX: u16 = 0x01;
    pub const ST: u16 = 0x02;
    pub const STX: u16 = 0x03;
    pub const ALU: u16 = 0x04;
    pub const JMP: u16 = 0x05;
    pub const RET: u16 = 0x06;
    pub const MISC: u16 = 0x07;

    pub const MODE: u16 = 0xe0;
    pub const IMM: u16 = 0x00;
    pub const ABS: u16 = 0x20;
    pub const MEM: u16 = 0x60;
    pub const LEN: u16 = 0x80;
    pub const SIZE: u16 = 0x18;
    pub const W: u16 = 0x00;

    pub const SRC_X: u16 = 0x08;
    pub const RVAL: u16 = 0x18;
    pub const RVAL_A: u16 = 0x10;
    pub const RVAL_X: u16 = 0x08;
    pub const OP: u16 = 0xf0;

    pub const ADD: u16 = 0x00;
    pub const SUB: u16 = 0x10;
    pub const MUL: u16 = 0x20;
    pub const DIV: u16 = 0x30;
    pub const OR: u16 = 0x40;
    pub const AND: u16 = 0x50;
    pub const LSH: u16 = 0x60;
    pub const RSH: u16 = 0x70;
    pub const NEG: u16 = 0x80;
    pub const MOD: u16 = 0x90;
    pub const XOR: u16 = 0xa0;

    pub const JA: u16 = 0x00;
    pub const JEQ: u16 = 0x10;
    pub const JGT: u16 = 0x20;
    pub const JGE: u16 = 0x30;
    pub const JSET: u16 = 0x40;

    pub const TAX: u16 = 0x00;
}

/// `SECCOMP_RET_ACTION_FULL` and the actions it selects (include/uapi/linux/seccomp.h).
const RET_ACTION_FULL: u32 = 0xffff_0000;
const RET_DATA: u32 = 0x0000_ffff;
const RET_KILL_THREAD: u32 = 0x0000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
/// The largest errno the kernel returns; larger `SECCOMP_RET_DATA` is clamped to it.
const MAX_ERRNO: u32 = 4095;

/// Offsets in `struct seccomp_data`.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
/// Its size: 4 + 4 + 8 + 6 × 8 (what `BPF_LEN` loads).
const SECCOMP_DATA_LEN: u32 = 64;
const SECCOMP_DATA_SIZE: usize = SECCOMP_DATA_LEN as usize;
/// Scratch memory words (`BPF_MEMWORDS`).
const MEMWORDS: usize = 16;

/// What the kernel hands a seccomp filter for one call (`struct seccomp_data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeccompData {
    /// The syscall number as the task issued it (x32 numbers carry bit 30).
    pub nr: u32,
    /// The task's `AUDIT_ARCH_*`.
    pub arch: u32,
    /// Where the call was made (no filter this project compiles reads it).
    pub instruction_pointer: u64,
    /// The six arguments, as the kernel widened them to 64 bits.
    pub args: [u64; 6],
}

impl SeccompData {
    /// The bytes the filter loads from, in this host's byte order as in the kernel.
    fn bytes(&self) -> [u8; SECCOMP_DATA_SIZE] {
        let mut out = [0u8; SECCOMP_DATA_SIZE];
        out[0..4].copy_from_slice(&self.nr.to_ne_bytes());
        out[4..8].copy_from_slice(&self.arch.to_ne_bytes());
        out[8..16].copy_from_slice(&self.instruction_pointer.to_ne_bytes());
        for (i, arg) in self.args.iter().enumerate() {
            out[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_ne_bytes());
        }
        out
    }
}

/// One run of the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// The filter's return value (`SECCOMP_RET_*` | data).
    pub ret: u32,
    /// Instructions executed, the final `RET` included.
    pub walked: usize,
}

impl Run {
    /// What the task gets, in the profile's terms (`RET_DATA` as the errno, clamped as the
    /// kernel clamps it; an unknown action kills the process, as in `__seccomp_filter`).
    pub fn outcome(&self) -> Outcome {
        let data = self.ret & RET_DATA;
        let action = match self.ret & RET_ACTION_FULL {
            RET_ALLOW => Action::Allow,
            RET_LOG => Action::Log,
            RET_ERRNO => Action::Errno,
            RET_TRACE => Action::Trace,
            RET_USER_NOTIF => Action::Notify,
            RET_TRAP => Action::Trap,
            RET_KILL_THREAD => Action::KillThread,
            // RET_KILL_PROCESS, and any action the kernel does not know.
            _ => Action::KillProcess,
        };
        Outcome {
            action,
            errno: (action == Action::Errno).then_some(data.min(MAX_ERRNO)),
        }
    }
}

/// A program the kernel would not have loaded (`bpf_check_classic`, `seccomp_check_filter`),
/// met while running it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// A load outside `seccomp_data`, unaligned, or not a 32-bit word.
    #[error("instruction {pc}: load of offset {offset} is not a word of seccomp_data")]
    Load {
        /// Index of the instruction.
        pc: usize,
        /// Its offset.
        offset: u32,
    },
    /// A jump past the end of the program.
    #[error("instruction {pc}: jump past the end of the program")]
    Jump {
        /// Index of the instruction.
        pc: usize,
    },
    /// A scratch-memory index past `BPF_MEMWORDS`.
    #[error("instruction {pc}: scratch memory word {index} does not exist")]
    Memory {
        /// Index of the instruction.
        pc: usize,
        /// The word.
        index: u32,
    },
    /// An opcode seccomp does not accept.
    #[error("instruction {pc}: opcode {code:#06x} is not one seccomp accepts")]
    Opcode {
        /// Index of the instruction.
        pc: usize,
        /// The opcode.
        code: u16,
    },
    /// The last instruction reached is not a `RET`.
    #[error("the program ends without a return")]
    FellOff,
}

/// Runs `program` on `data`, as `bpf_prog_run` does for a seccomp filter.
pub fn run(program: &[libc::sock_filter], data: &SeccompData) -> Result<Run, RunError> {
    let bytes = data.bytes();
    let load = |pc: usize, k: u32| -> Result<u32, RunError> {
        let at = usize::try_from(k)
            .ok()
            .filter(|&at| at % 4 == 0 && at + 4 <= bytes.len());
        let at = at.ok_or(RunError::Load { pc, offset: k })?;
        Ok(u32::from_ne_bytes([
            bytes[at],
            bytes[at + 1],
            bytes[at + 2],
            bytes[at + 3],
        ]))
    };
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; MEMWORDS];
    let mut pc = 0usize;
    let mut walked = 0usize;
    loop {
        let insn = program.get(pc).ok_or(RunError::FellOff)?;
        walked += 1;
        let (code, k) = (insn.code, insn.k);
        let src = if code & op::SRC_X != 0 { x } else { k };
        match code & op::CLASS {
            op::LD | op::LDX => {
                let value = match code & op::MODE {
                    op::ABS if code & op::SIZE == op::W => load(pc, k)?,
                    op::IMM => k,
                    op::LEN => SECCOMP_DATA_LEN,
                    op::MEM => mem[memory_index(pc, k)?],
                    _ => return Err(RunError::Opcode { pc, code }),
                };
                if code & op::CLASS == op::LD {
                    a = value;
                } else {
                    x = value;
                }
            }
            op::ST => mem[memory_index(pc, k)?] = a,
            op::STX => mem[memory_index(pc, k)?] = x,
            op::ALU => match alu(code, a, src) {
                Some(value) => a = value,
                // Division by zero at run time: the kernel's filter returns 0, KILL_THREAD.
                None if matches!(code & op::OP, op::DIV | op::MOD) => {
                    return Ok(Run {
                        ret: RET_KILL_THREAD,
                        walked,
                    })
                }
                None => return Err(RunError::Opcode { pc, code }),
            },
            op::JMP => {
                let skip = match code & op::OP {
                    op::JA => Some(k),
                    _ => jump(code, a, src).map(|t| u32::from(if t { insn.jt } else { insn.jf })),
                };
                let skip = skip.ok_or(RunError::Opcode { pc, code })?;
                pc = next_pc(program, pc, skip)?;
                continue;
            }
            op::RET => {
                let ret = match code & op::RVAL {
                    op::RVAL_A => a,
                    op::RVAL_X => x,
                    _ => k,
                };
                return Ok(Run { ret, walked });
            }
            op::MISC => {
                if code & 0xf8 == op::TAX {
                    x = a;
                } else {
                    a = x;
                }
            }
            _ => return Err(RunError::Opcode { pc, code }),
        }
        pc += 1;
    }
}

fn memory_index(pc: usize, k: u32) -> Result<usize, RunError> {
    usize::try_from(k)
        .ok()
        .filter(|&i| i < MEMWORDS)
        .ok_or(RunError::Memory { pc, index: k })
}

/// The target of a jump from `pc` that skips `skip` instructions.
fn next_pc(program: &[libc::sock_filter], pc: usize, skip: u32) -> Result<usize, RunError> {
    usize::try_from(skip)
        .ok()
        .and_then(|s| pc.checked_add(1)?.checked_add(s))
        .filter(|&next| next < program.len())
        .ok_or(RunError::Jump { pc })
}

/// `A op src`; `None` for a division by zero or an unknown operation.
fn alu(code: u16, a: u32, src: u32) -> Option<u32> {
    Some(match code & op::OP {
        op::ADD => a.wrapping_add(src),
        op::SUB => a.wrapping_sub(src),
        op::MUL => a.wrapping_mul(src),
        op::DIV => a.checked_div(src)?,
        op::MOD => a.checked_rem(src)?,
        op::OR => a | src,
        op::AND => a & src,
        op::XOR => a ^ src,
        op::LSH => a.checked_shl(src).unwrap_or(0),
        op::RSH => a.checked_shr(src).unwrap_or(0),
        op::NEG => a.wrapping_neg(),
        _ => return None,
    })
}

/// Whether a conditional jump is taken; `None` for an unknown condition.
fn jump(code: u16, a: u32, src: u32) -> Option<bool> {
    Some(match code & op::OP {
        op::JEQ => a == src,
        op::JGT => a > src,
        op::JGE => a >= src,
        op::JSET => a & src != 0,
        _ => return None,
    })
}

/// Whether the kernel caches syscall `nr` of `arch` as always allowed for `program`, so that
/// the filter never runs for it: `seccomp_is_const_allow` (kernel/seccomp.c, Linux ≥ 5.11).
/// The kernel prepares the cache for the native and compat arches only, for numbers below
/// their table sizes; callers ask about those.
pub fn always_allowed(program: &[libc::sock_filter], arch: u32, nr: u32) -> bool {
    let mut a = 0u32;
    let mut pc = 0usize;
    while let Some(insn) = program.get(pc) {
        let code = insn.code;
        match code {
            c if c == op::LD | op::W | op::ABS => match insn.k {
                OFFSET_NR => a = nr,
                OFFSET_ARCH => a = arch,
                _ => return false,
            },
            c if c == op::RET => return insn.k == RET_ALLOW,
            c if c == op::JMP | op::JA => pc = pc.saturating_add(insn.k as usize),
            c if c & op::CLASS == op::JMP && c & op::SRC_X == 0 => {
                let Some(taken) = jump(code, a, insn.k) else {
                    return false;
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            c if c == op::ALU | op::AND => a &= insn.k,
            _ => return false,
        }
        pc += 1;
    }
    false
}

/// A register as far as the syscall number and arch decide it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Known {
    Value(u32),
    /// Depends on an argument (or on something no run fixes).
    Unknown,
}

/// The most instructions a call of `nr` on `arch` walks in `program`, whatever its arguments:
/// the longest path when every jump on an argument may go either way. `None` if no path ends in
/// a `RET` or one leaves the program (a program the kernel would have refused).
///
/// Classic BPF only jumps forward, so visiting instructions in ascending order visits every
/// path's states in order: the longest walk to each state (instruction, registers) is final
/// when its instruction comes up. No recursion: a filter can be 4096 instructions long.
pub fn worst_case(program: &[libc::sock_filter], arch: u32, nr: u32) -> Option<usize> {
    let mut pending: BTreeMap<usize, HashMap<Registers, usize>> = BTreeMap::new();
    pending
        .entry(0)
        .or_default()
        .insert((Known::Value(0), Known::Value(0)), 0);
    let mut longest = None;
    while let Some((pc, states)) = pending.pop_first() {
        let insn = program.get(pc)?;
        for (regs, walked) in states {
            let walked = walked + 1;
            for step in successors(insn, pc, regs, arch, nr) {
                match step {
                    Step::Return => longest = longest.max(Some(walked)),
                    Step::Next(next, regs) => {
                        let best = pending.entry(next).or_default().entry(regs).or_insert(0);
                        *best = (*best).max(walked);
                    }
                }
            }
        }
    }
    longest
}

/// The accumulator and the index register.
type Registers = (Known, Known);

/// Where an instruction can lead.
enum Step {
    Return,
    Next(usize, Registers),
}

/// The steps `insn` at `pc` can take from `(a, x)`: one, or two for a jump on an unknown value.
fn successors(
    insn: &libc::sock_filter,
    pc: usize,
    (a, x): Registers,
    arch: u32,
    nr: u32,
) -> Vec<Step> {
    let (code, k) = (insn.code, insn.k);
    let src = if code & op::SRC_X != 0 {
        x
    } else {
        Known::Value(k)
    };
    let next = |regs| vec![Step::Next(pc + 1, regs)];
    match code & op::CLASS {
        op::RET => vec![Step::Return],
        op::JMP if code & op::OP == op::JA => {
            vec![Step::Next(pc + 1 + k as usize, (a, x))]
        }
        op::JMP => {
            let taken = Step::Next(pc + 1 + usize::from(insn.jt), (a, x));
            let not_taken = Step::Next(pc + 1 + usize::from(insn.jf), (a, x));
            match (a, src) {
                (Known::Value(a), Known::Value(s)) => match jump(code, a, s) {
                    Some(true) => vec![taken],
                    Some(false) => vec![not_taken],
                    None => Vec::new(),
                },
                _ => vec![taken, not_taken],
            }
        }
        op::LD | op::LDX => {
            let value = match (code & op::MODE, k) {
                (op::ABS, OFFSET_NR) => Known::Value(nr),
                (op::ABS, OFFSET_ARCH) => Known::Value(arch),
                (op::IMM, _) => Known::Value(k),
                (op::LEN, _) => Known::Value(SECCOMP_DATA_LEN),
                _ => Known::Unknown,
            };
            next(if code & op::CLASS == op::LD {
                (value, x)
            } else {
                (a, value)
            })
        }
        op::ALU => {
            let value = match (a, src) {
                (Known::Value(a), Known::Value(s)) => {
                    alu(code, a, s).map_or(Known::Unknown, Known::Value)
                }
                _ => Known::Unknown,
            };
            next((value, x))
        }
        op::MISC if code & 0xf8 == op::TAX => next((a, a)),
        op::MISC => next((x, x)),
        // Scratch stores: a later load of scratch memory is taken as unknown.
        _ => next((a, x)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;

    fn stmt(code: u16, k: u32) -> libc::sock_filter {
        libc::sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }

    fn jump_k(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
        libc::sock_filter { code, jt, jf, k }
    }

    /// Arch check; getppid (110) allowed; ioctl (16) refused with EACCES when the low word of
    /// argument 1 is 0x5412, else allowed; anything else EPERM.
    fn program() -> Vec<libc::sock_filter> {
        vec![
            stmt(op::LD | op::W | op::ABS, OFFSET_ARCH),
            jump_k(op::JMP | op::JEQ, AUDIT_ARCH_X86_64, 1, 0),
            stmt(op::RET, RET_KILL_PROCESS_FOR_TESTS),
            stmt(op::LD | op::W | op::ABS, OFFSET_NR),
            jump_k(op::JMP | op::JEQ, 110, 0, 1),
            stmt(op::RET, RET_ALLOW),
            jump_k(op::JMP | op::JEQ, 16, 0, 4),
            stmt(op::LD | op::W | op::ABS, 24),
            jump_k(op::JMP | op::JEQ, 0x5412, 0, 1),
            stmt(op::RET, RET_ERRNO | 13),
            stmt(op::RET, RET_ALLOW),
            stmt(op::RET, RET_ERRNO | 1),
        ]
    }

    const RET_KILL_PROCESS_FOR_TESTS: u32 = 0x8000_0000;

    fn data(nr: u32, arg1: u64) -> SeccompData {
        SeccompData {
            nr,
            arch: AUDIT_ARCH_X86_64,
            instruction_pointer: 0,
            args: [0, arg1, 0, 0, 0, 0],
        }
    }

    #[test]
    fn runs_a_program_and_counts_every_instruction_to_the_return() {
        let p = program();
        let r = run(&p, &data(110, 0)).unwrap();
        assert_eq!((r.ret, r.walked), (RET_ALLOW, 5));
        assert!(r.outcome().allows());
        let r = run(&p, &data(16, 0x1_0000_5412)).unwrap();
        assert_eq!(r.walked, 8);
        assert_eq!(r.outcome().errno, Some(13));
        let r = run(&p, &data(16, 0x5401)).unwrap();
        assert_eq!((r.ret, r.walked), (RET_ALLOW, 8));
        let r = run(&p, &data(1, 0)).unwrap();
        assert_eq!((r.outcome().errno, r.walked), (Some(1), 6));
        let wrong_arch = SeccompData {
            arch: 0x4000_0003,
            ..data(110, 0)
        };
        let r = run(&p, &wrong_arch).unwrap();
        assert_eq!((r.outcome().action, r.walked), (Action::KillProcess, 3));
    }

    #[test]
    fn the_cache_takes_only_what_no_argument_decides() {
        let p = program();
        assert!(always_allowed(&p, AUDIT_ARCH_X86_64, 110));
        // ioctl reads an argument; a refused number ends in RET ERRNO; another arch is killed.
        assert!(!always_allowed(&p, AUDIT_ARCH_X86_64, 16));
        assert!(!always_allowed(&p, AUDIT_ARCH_X86_64, 1));
        assert!(!always_allowed(&p, 0x4000_0003, 110));
    }

    #[test]
    fn the_worst_case_is_the_longest_path_an_argument_can_take() {
        let p = program();
        assert_eq!(worst_case(&p, AUDIT_ARCH_X86_64, 16), Some(8));
        assert_eq!(worst_case(&p, AUDIT_ARCH_X86_64, 110), Some(5));
        assert_eq!(worst_case(&p, AUDIT_ARCH_X86_64, 1), Some(6));
    }

    #[test]
    fn programs_the_kernel_refuses_are_errors_naming_the_instruction() {
        let unaligned = [stmt(op::LD | op::W | op::ABS, 2), stmt(op::RET, RET_ALLOW)];
        assert_eq!(
            run(&unaligned, &data(0, 0)),
            Err(RunError::Load { pc: 0, offset: 2 })
        );
        let past_the_end = [stmt(op::LD | op::W | op::ABS, 64), stmt(op::RET, RET_ALLOW)];
        assert!(matches!(
            run(&past_the_end, &data(0, 0)),
            Err(RunError::Load { pc: 0, .. })
        ));
        let jump_out = [jump_k(op::JMP | op::JEQ, 0, 5, 5), stmt(op::RET, RET_ALLOW)];
        assert_eq!(run(&jump_out, &data(0, 0)), Err(RunError::Jump { pc: 0 }));
        let no_return = [stmt(op::LD | op::W | op::ABS, 0)];
        assert_eq!(run(&no_return, &data(0, 0)), Err(RunError::FellOff));
        assert_eq!(worst_case(&no_return, AUDIT_ARCH_X86_64, 0), None);
    }
}
