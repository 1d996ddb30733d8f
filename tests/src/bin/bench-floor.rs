//! `bench-floor`: attaches agent-audit's empty `tp_btf` program to `sys_enter` and holds it
//! until killed. What the loops lose while it is attached is the kernel's own price for having
//! any program there (the tracepoint slow path every task on the host pays): the floor that
//! `cargo xtask bench` compares agent-audit against.

use std::io::Write;

fn main() {
    let _attached = match agent_audit::bpf::attach_empty_program() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("bench-floor: {e}");
            std::process::exit(1);
        }
    };
    println!("attached");
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}
