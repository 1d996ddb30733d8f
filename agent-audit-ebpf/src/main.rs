//! agent-audit's kernel program: counts the syscalls of every task whose cgroup v2 is a target
//! cgroup or lies below one.
//!
//! Everything here runs on every syscall of every task on the host, so the path for a task
//! outside every target is kept to one helper call and one hash lookup; see BENCHMARKS.md for
//! what each step costs.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// `atomic_xadd`: the BPF target has no `AtomicU64::fetch_add`, but LLVM lowers this intrinsic
// to the BPF atomic add the kernel supports.
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]

#[cfg(target_arch = "bpf")]
mod program;

/// The host build of this binary is an empty placeholder: the real one targets
/// `bpfel-unknown-none` (`cargo xtask build-ebpf`).
#[cfg(not(target_arch = "bpf"))]
fn main() {}
