//! What a call costs under a profile: the instructions the kernel walks in the filter runc
//! would install ([`super::interpret`] over [`super::SeccompProgram`]), or nothing when the
//! kernel has cached the syscall as always allowed. Used by `check` (worst case per syscall
//! with argument rules) and by `cargo xtask bench` (per-call rows against Docker's default).

use libseccomp::ScmpSyscall;

use super::arches::{self, audit_arch};
use super::compile::{self, CompileError, Skipped, SyscallLayout};
use super::evaluate::Outcome;
use super::interpret::{self, RunError, SeccompData};
use super::{ProgramError, SeccompProfile, SeccompProgram};
use crate::syscalls::Arch;

/// What one call of a syscall costs the calling task in the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// In the kernel's always-allow cache (Linux ≥ 5.11): the filter does not run.
    Cached,
    /// The filter runs and walks this many instructions.
    Walked(usize),
}

impl Cost {
    /// Instructions walked (0 when cached).
    pub fn instructions(self) -> usize {
        match self {
            Cost::Cached => 0,
            Cost::Walked(n) => n,
        }
    }
}

/// A call's outcome and what deciding it cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallCost {
    /// What the task gets.
    pub outcome: Outcome,
    /// What the filter cost.
    pub cost: Cost,
}

/// Why costs cannot be measured for a profile.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// libseccomp cannot compile it.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The compiled filter cannot become a program.
    #[error(transparent)]
    Program(#[from] ProgramError),
    /// The program misbehaved when run (a libseccomp bug if ever seen).
    #[error("running the compiled filter: {0}")]
    Run(#[from] RunError),
}

/// A profile's filter as the kernel would run it for tasks of one arch.
pub struct FilterCost {
    program: SeccompProgram,
    arch: Arch,
    skipped: Vec<Skipped>,
}

impl FilterCost {
    /// Compiles `profile` for `arch` alone, with `layout`.
    pub fn compile(
        profile: &SeccompProfile,
        arch: Arch,
        layout: SyscallLayout,
    ) -> Result<Self, CostError> {
        let compiled = compile::build_filter_laid_out(profile, &[arch], layout)?;
        Ok(Self {
            program: SeccompProgram::export(&compiled)?,
            arch,
            skipped: compiled.skipped,
        })
    }

    /// The names of rules the filter does not contain, and why.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// The program's length in instructions.
    pub fn len(&self) -> usize {
        self.program.instructions().len()
    }

    /// Whether the program is empty (never: libseccomp always ends it with a return).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of `name` on this filter's arch, as libseccomp resolves it; `None` where the
    /// arch has no such call.
    pub fn number(&self, name: &str) -> Option<u32> {
        let nr = ScmpSyscall::from_name_by_arch(name, arches::scmp_arch(self.arch)).ok()?;
        u32::try_from(i32::from(nr)).ok()
    }

    /// What `name(args…)` gets and costs; `None` where the arch has no such call.
    pub fn call(&self, name: &str, args: [u64; 6]) -> Result<Option<CallCost>, RunError> {
        let Some(nr) = self.number(name) else {
            return Ok(None);
        };
        let data = SeccompData {
            nr,
            arch: audit_arch(self.arch),
            instruction_pointer: 0,
            args,
        };
        let run = interpret::run(self.program.instructions(), &data)?;
        let cost = if self.cached(nr) {
            Cost::Cached
        } else {
            Cost::Walked(run.walked)
        };
        Ok(Some(CallCost {
            outcome: run.outcome(),
            cost,
        }))
    }

    /// The most a call of `name` can cost, whatever its arguments; `None` where the arch has
    /// no such call.
    pub fn worst_case(&self, name: &str) -> Option<Cost> {
        let nr = self.number(name)?;
        if self.cached(nr) {
            return Some(Cost::Cached);
        }
        interpret::worst_case(self.program.instructions(), audit_arch(self.arch), nr)
            .map(Cost::Walked)
    }

    /// Whether the kernel caches `nr` as always allowed. It prepares the cache for the native
    /// and compat tables only: an x32 number (bit 30) is past them and always runs the filter.
    fn cached(&self, nr: u32) -> bool {
        self.arch != Arch::X32
            && interpret::always_allowed(self.program.instructions(), audit_arch(self.arch), nr)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;
    use crate::seccomp::evaluate;

    fn corpus() -> Vec<(&'static str, SeccompProfile)> {
        [
            (
                "docker-default",
                include_str!("../../../tests/data/profiles/docker-default.json"),
            ),
            (
                "podman-default",
                include_str!("../../../tests/data/profiles/podman-default.json"),
            ),
            (
                "docker-example",
                include_str!("../../../tests/data/profiles/docker-example.json"),
            ),
            (
                "gh-aw-firewall-agent",
                include_str!("../../../tests/data/profiles/gh-aw-firewall-agent-seccomp.json"),
            ),
            (
                "spo-operator",
                include_str!("../../../tests/data/profiles/spo-operator.json"),
            ),
        ]
        .into_iter()
        .map(|(label, text)| {
            (
                label,
                SeccompProfile::parse(text, Path::new(label)).unwrap(),
            )
        })
        .collect()
    }

    /// Values around every condition of `name`'s rules at each index they compare.
    fn probes(profile: &SeccompProfile, name: &str) -> Vec<[u64; 6]> {
        let mut calls = vec![[0; 6], [u64::MAX; 6]];
        let conditions = profile
            .syscalls
            .iter()
            .filter(|r| r.all_names().any(|n| n == name))
            .flat_map(|r| r.args.iter());
        for c in conditions {
            let mut values = BTreeSet::from([0, 1, u64::MAX, 1 << 32]);
            for v in [c.value, c.value_two] {
                for w in [v, v.wrapping_add(1), v.wrapping_sub(1), v | 1 << 32, v ^ 1] {
                    values.insert(w);
                }
            }
            for v in values {
                let mut args = [0; 6];
                args[c.index as usize] = v;
                calls.push(args);
            }
        }
        calls
    }

    /// The filter libseccomp compiles decides every call of the corpus as `evaluate`'s model
    /// says, on this host's arch, in both runc layouts; no run walks more than the worst case.
    #[test]
    fn compiled_filters_decide_as_the_model_says() {
        let Some(arch) = Arch::native() else { return };
        for (label, profile) in corpus() {
            for layout in [SyscallLayout::Linear, SyscallLayout::RuncTree] {
                let filter = FilterCost::compile(&profile, arch, layout).unwrap();
                for nr in 0..500 {
                    let Some(name) = arch.syscall_name(nr) else {
                        continue;
                    };
                    // The model does not know which rules libseccomp refuses (an errno above
                    // 4095, conflicting actions): `check` reports those apart.
                    let refused = |s: &&Skipped| {
                        s.name == name && matches!(s.reason, compile::SkipReason::Refused(_))
                    };
                    if filter.skipped().iter().any(|s| refused(&s)) {
                        continue;
                    }
                    let worst = filter.worst_case(name);
                    for args in probes(&profile, name) {
                        let Some(call) = filter.call(name, args).unwrap() else {
                            continue;
                        };
                        let model = evaluate::outcome(&profile, name, &args);
                        assert_eq!(call.outcome, model, "{label} {layout:?}: {name}{args:x?}");
                        let worst = worst.expect("a worst case").instructions();
                        assert!(call.cost.instructions() <= worst, "{label}: {name}");
                    }
                }
            }
        }
    }
}
