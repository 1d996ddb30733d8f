//! Embeds the kernel program built by `cargo xtask build-ebpf`.
//!
//! The object is looked up at `AGENT_AUDIT_EBPF_OBJECT` or, by default, where the xtask
//! writes it. Building userspace without it is an error that says what to run.

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let default = manifest.join("../target/bpf/bpfel-unknown-none/release/agent-audit-ebpf");
    println!("cargo:rerun-if-env-changed=AGENT_AUDIT_EBPF_OBJECT");
    let object = env::var_os("AGENT_AUDIT_EBPF_OBJECT")
        .map(PathBuf::from)
        .unwrap_or(default);
    println!("cargo:rerun-if-changed={}", object.display());
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("agent-audit-ebpf.o");
    if let Err(e) = std::fs::copy(&object, &out) {
        panic!(
            "\n\nthe kernel program is not built ({}: {e}).\n\
             Run `cargo xtask build-ebpf` (or `cargo xtask build`) first; it installs the \
             nightly toolchain pieces and bpf-linker if they are missing.\n\n",
            object.display()
        );
    }
}
