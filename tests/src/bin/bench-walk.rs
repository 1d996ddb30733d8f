//! `bench-walk DOCKER_PROFILE GENERATED_PROFILE`: for each call of a fixed list (the syscalls a
//! generated profile narrows by argument, at the values workloads use, and cached ones), the
//! BPF instructions the kernel walks in the filter runc would install on this host's arch,
//! under Docker's default (for a container with Docker's default capabilities) and under the
//! generated profile, with runc 1.1's linear syscall lookup and runc ≥ 1.2's binary tree; then
//! the worst case of each syscall over all argument values. Prints Markdown tables. Used by
//! `cargo xtask bench`; counts come from `agent_audit::seccomp::interpret` over the program
//! libseccomp compiled, "cached" where the kernel's always-allow cache skips the filter.

use std::path::Path;

use agent_audit::seccomp::compile::SyscallLayout;
use agent_audit::seccomp::container::{Capabilities, ContainerContext};
use agent_audit::seccomp::cost::{CallCost, Cost, FilterCost};
use agent_audit::seccomp::SeccompProfile;
use agent_audit::syscalls::Arch;

const TCGETS: u64 = 0x5401;
const TIOCGWINSZ: u64 = 0x5413;
const FIONREAD: u64 = 0x541b;
const TIOCSTI: u64 = 0x5412;
/// TIOCGPTN as musl passes it: an int request, sign-extended to 64 bits.
const TIOCGPTN_SIGN_EXTENDED: u64 = 0xffff_ffff_8004_5430;
const CLONE_THREAD_FLAGS: u64 = 0x003d_0f00;
const SIGCHLD: u64 = 17;
const CLONE_NEWUSER: u64 = 0x1000_0000;

/// (label, syscall, arguments).
const CALLS: &[(&str, &str, [u64; 6])] = &[
    ("getppid()", "getppid", [0; 6]),
    ("fcntl(fd, F_GETFL)", "fcntl", [3, 3, 0, 0, 0, 0]),
    ("prctl(PR_SET_NAME)", "prctl", [15, 0, 0, 0, 0, 0]),
    ("ioctl(fd, TCGETS)", "ioctl", [0, TCGETS, 0, 0, 0, 0]),
    (
        "ioctl(fd, TIOCGWINSZ)",
        "ioctl",
        [0, TIOCGWINSZ, 0, 0, 0, 0],
    ),
    ("ioctl(fd, FIONREAD)", "ioctl", [0, FIONREAD, 0, 0, 0, 0]),
    (
        "ioctl(fd, TIOCGPTN) sign-extended",
        "ioctl",
        [0, TIOCGPTN_SIGN_EXTENDED, 0, 0, 0, 0],
    ),
    ("ioctl(fd, TIOCSTI)", "ioctl", [0, TIOCSTI, 0, 0, 0, 0]),
    ("socket(AF_UNIX)", "socket", [1, 1, 0, 0, 0, 0]),
    ("socket(AF_INET)", "socket", [2, 1, 0, 0, 0, 0]),
    ("socket(AF_INET6)", "socket", [10, 1, 0, 0, 0, 0]),
    ("socket(AF_NETLINK)", "socket", [16, 3, 0, 0, 0, 0]),
    ("socket(AF_VSOCK)", "socket", [40, 1, 0, 0, 0, 0]),
    (
        "clone(thread)",
        "clone",
        [CLONE_THREAD_FLAGS, 0, 0, 0, 0, 0],
    ),
    ("clone(SIGCHLD)", "clone", [SIGCHLD, 0, 0, 0, 0, 0]),
    (
        "clone(CLONE_NEWUSER)",
        "clone",
        [CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0, 0],
    ),
    (
        "personality(0xffffffff)",
        "personality",
        [0xffff_ffff, 0, 0, 0, 0, 0],
    ),
    ("personality(PER_LINUX)", "personality", [0, 0, 0, 0, 0, 0]),
];

const LAYOUTS: [SyscallLayout; 2] = [SyscallLayout::Linear, SyscallLayout::RuncTree];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: bench-walk DOCKER_PROFILE GENERATED_PROFILE");
        std::process::exit(2);
    }
    let arch = Arch::native().expect("a supported host arch");
    let docker =
        ContainerContext::on_this_host(Capabilities::docker_default()).effective(&read(&args[1]));
    let generated = read(&args[2]);
    let filters = |profile: &SeccompProfile| -> Vec<FilterCost> {
        LAYOUTS
            .iter()
            .map(|&layout| FilterCost::compile(profile, arch, layout).expect("compiles"))
            .collect()
    };
    let (docker, generated) = (filters(&docker), filters(&generated));
    println!(
        "| call | Docker's default, runc 1.1 | generated, runc 1.1 | Docker's default, runc ≥ 1.2 \
         | generated, runc ≥ 1.2 | goal |"
    );
    println!("|---|---|---|---|---|---|");
    for &(label, name, call_args) in CALLS {
        let cell = |f: &FilterCost| f.call(name, call_args).expect("runs").map(describe);
        let costs = |f: &FilterCost| f.call(name, call_args).expect("runs").map(|c| c.cost);
        let d: Vec<Option<Cost>> = docker.iter().map(costs).collect();
        let g: Vec<Option<Cost>> = generated.iter().map(costs).collect();
        println!(
            "| `{label}` | {} | {} | {} | {} | {} |",
            text(cell(&docker[0])),
            text(cell(&generated[0])),
            text(cell(&docker[1])),
            text(cell(&generated[1])),
            goal(&d, &g)
        );
    }
    println!();
    println!(
        "| syscall | worst case: Docker's default, runc 1.1 | generated, runc 1.1 | Docker's \
         default, runc ≥ 1.2 | generated, runc ≥ 1.2 |"
    );
    println!("|---|---|---|---|---|");
    let mut names: Vec<&str> = CALLS.iter().map(|c| c.1).collect();
    names.dedup();
    for name in names {
        let worst = |f: &FilterCost| text(f.worst_case(name).map(cost_text));
        println!(
            "| `{name}` | {} | {} | {} | {} |",
            worst(&docker[0]),
            worst(&generated[0]),
            worst(&docker[1]),
            worst(&generated[1])
        );
    }
    println!(
        "\nProgram length (instructions, runc's ENOSYS stub included): Docker's default {} / {}, \
         generated {} / {} (runc 1.1 / runc ≥ 1.2).",
        docker[0].len(),
        docker[1].len(),
        generated[0].len(),
        generated[1].len()
    );
}

fn read(path: &str) -> SeccompProfile {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    SeccompProfile::parse(&text, Path::new(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn describe(c: CallCost) -> String {
    let verdict = match c.outcome.errno {
        _ if c.outcome.allows() => String::new(),
        Some(errno) => format!(" (errno {errno})"),
        None => format!(" ({:?})", c.outcome.action),
    };
    format!("{}{verdict}", cost_text(c.cost))
}

fn cost_text(cost: Cost) -> String {
    match cost {
        Cost::Cached => "0 (cached)".into(),
        Cost::Walked(n) => n.to_string(),
    }
}

fn text(cell: Option<String>) -> String {
    cell.unwrap_or_else(|| "not on this arch".into())
}

/// PASS when the generated profile walks no more than Docker's default under both layouts;
/// MISS otherwise, with the reason when Docker's default has the call cached.
fn goal(docker: &[Option<Cost>], generated: &[Option<Cost>]) -> String {
    let worse: Vec<bool> = docker
        .iter()
        .zip(generated)
        .map(|(d, g)| match (d, g) {
            (Some(d), Some(g)) => g.instructions() > d.instructions(),
            _ => false,
        })
        .collect();
    if !worse.contains(&true) {
        return "PASS".into();
    }
    if docker.contains(&Some(Cost::Cached)) {
        "MISS: always allowed under Docker's default, so the kernel's cache skips its filter; \
         any argument rule makes the filter run"
            .into()
    } else {
        "MISS".into()
    }
}
